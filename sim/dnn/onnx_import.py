"""ONNX import: a float ONNX model -> :class:`~sim.dnn.layers.Graph`.

Made for what ``torch.onnx.export`` emits, with the default (dynamo, opset 18+) exporter and the
legacy TorchScript one (``dynamo=False``), for ResNet- and MobileNetV2-class networks:

* **Conv** (2-D; ``group`` incl. depthwise, ``dilations``, ``pads`` or ``auto_pad``
  SAME_UPPER / SAME_LOWER / VALID); **Gemm** (``transA`` 0; ``alpha``/``beta`` folded);
  **MatMul** with a constant right operand; a constant **Add**/**Sub**/**Mul**/**Div** right
  after a Conv/Gemm/MatMul is folded into its weights and bias;
* **BatchNormalization** (inference): folded into the Conv/Gemm before it, otherwise a depthwise
  1x1 convolution;
* **Relu**, **Clip** (ReLU6; bounds as inputs or, before opset 11, attributes), **Add** of two
  tensors (residual), **Concat** along the channel axis;
* **MaxPool**, **AveragePool** (``pads``/``auto_pad``, ``count_include_pad``),
  **GlobalAveragePool**, **ReduceMean** over the spatial axes (adaptive average pooling),
  **Flatten** (axis 1), **Reshape** / **Squeeze** to ``(batch, features)``;
* **Softmax** / **LogSoftmax** as the last operator (monotonic: top-1 unchanged, dropped);
  **Identity**, **Dropout**;
* shape arithmetic on constants (``Shape``, ``Gather``, ``Unsqueeze``, ``Concat``, ``Cast``,
  ``CastLike``, ``Expand``, ... as an unoptimised export writes it) is evaluated at import
  (onnx's reference evaluator for the rare ones).

Anything else is one :class:`~sim.dnn.errors.DnnError` line naming the operator and the node.
Batch dimension first, NCHW layout; shapes are found by running the float graph on one zero
image as it is built.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hw.extras import require

from .errors import DnnError
from .layers import Graph, Node, _float_node, fuse_relu

__all__ = ["load_onnx", "from_onnx_model", "SUPPORTED_OPS"]

LAYER_OPS = ("Conv", "Gemm", "MatMul", "BatchNormalization", "Relu", "Clip", "Add", "Sub",
             "Mul", "Div", "Concat", "MaxPool", "AveragePool", "GlobalAveragePool",
             "ReduceMean", "Flatten", "Reshape", "Squeeze", "Softmax", "LogSoftmax",
             "Identity", "Dropout")
#: Evaluated when all their inputs are constants (shape arithmetic).
CONST_OPS = ("Constant", "Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast",
             "CastLike", "Expand", "Reshape", "Slice", "Range", "ConstantOfShape", "Identity",
             "Add", "Sub", "Mul", "Div", "Neg", "Sqrt", "Transpose", "Equal", "Where",
             "ReduceProd", "Size", "Floor", "Ceil", "Min", "Max")
SUPPORTED_OPS = tuple(dict.fromkeys(LAYER_OPS + CONST_OPS))


def load_onnx(path) -> Graph:
    """Read and convert an ONNX file (one-line :class:`DnnError` on any problem)."""
    p = Path(path)
    if not p.is_file():          # before importing onnx (a second): refused at once
        raise DnnError(f"ONNX file {p} does not exist (or is not a regular file)")
    onnx = require("onnx", "ONNX import (--onnx)")
    try:
        model = onnx.load(str(p))
    except Exception as exc:  # noqa: BLE001 - protobuf raises assorted errors
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DnnError(f"cannot read ONNX model {p}: {msg}") from None
    if not model.graph.node:
        raise DnnError(f"{p} is not an ONNX model (no graph nodes)")
    return from_onnx_model(model, name=p.stem)


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _decode(v):
    return v.decode() if isinstance(v, bytes) else v


def _label(n, idx):
    return n.name or (f"{n.op_type.lower()}{idx}" if not n.output else n.output[0])


class _Importer:
    def __init__(self, model, name):
        from onnx import numpy_helper

        self.np_helper = numpy_helper
        self.model = model
        self.name = name
        g = model.graph
        self.consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        inputs = [i for i in g.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise DnnError(f"expected one graph input, found {len(inputs)}")
        inp = inputs[0]
        dims = [d.dim_value if d.HasField("dim_value") else None
                for d in inp.type.tensor_type.shape.dim]
        if len(dims) < 2 or any(d is None or d <= 0 for d in dims[1:]):
            raise DnnError(f"graph input {inp.name!r} needs a known shape after the batch "
                           f"axis, got {dims}")
        self.input = inp.name
        self.input_shape = tuple(dims[1:])
        self.batches = {0, -1, 1} | ({dims[0]} if dims[0] else set())   # static batch of export
        if len(g.output) != 1:
            raise DnnError(f"expected one graph output, found {len(g.output)}")
        self.output = g.output[0].name
        self.nodes: list[Node] = []
        self.alias: dict[str, str] = {}
        self.producer: dict[str, Node] = {}
        self.values = {inp.name: np.zeros((1,) + self.input_shape)}    # batch-1 zero run
        self.users: dict[str, int] = {}
        for n in g.node:
            for t in n.input:
                if t:
                    self.users[t] = self.users.get(t, 0) + 1

    # -- helpers ---------------------------------------------------------------------------------
    def src(self, t):
        return self.alias.get(t, t)

    def is_const(self, t):
        return t == "" or self.src(t) in self.consts

    def const(self, t, what, dtype=np.float64):
        t = self.src(t)
        if t not in self.consts:
            raise DnnError(f"{what}: input {t!r} must be a constant (initializer)")
        return np.asarray(self.consts[t]).astype(dtype)

    def shape(self, t):
        return self.values[self.src(t)].shape

    def add(self, node: Node):
        try:
            self.values[node.output] = _float_node(node, [self.values[t] for t in node.inputs])
        except DnnError:
            raise
        except Exception as exc:  # noqa: BLE001 - numpy shape errors
            raise DnnError(f"ONNX graph shapes do not fit together at node {node.name!r}: "
                           f"{exc}".splitlines()[0]) from None
        self.nodes.append(node)
        self.producer[node.output] = node

    def single_use(self, t) -> bool:
        """Whether the value of tensor ``t`` (through its aliases) has one consumer."""
        real = self.src(t)
        names = [real] + [k for k in self.alias if self.src(k) == real]
        if self.output in names:
            return False
        return sum(self.users.get(k, 0) for k in names) - (len(names) - 1) == 1

    # -- constant folding ------------------------------------------------------------------------
    def fold(self, n, a, label) -> bool:
        """Evaluate ``n`` when its inputs are constants (or it reads only a shape)."""
        op = n.op_type
        if op == "Constant":
            if "value" in a:
                v = self.np_helper.to_array(a["value"])
            else:
                key = next((k for k in ("value_float", "value_floats", "value_int",
                                        "value_ints") if k in a), None)
                if key is None:
                    raise DnnError(f"Constant node {label!r}: unsupported value kind "
                                   f"{', '.join(a) or 'none'}")
                v = np.asarray(a[key], dtype=np.float32 if "float" in key else np.int64)
            self.consts[n.output[0]] = v
            return True
        if op in ("Shape", "Size") and n.input[0] and self.src(n.input[0]) in self.values:
            shp = np.array(self.shape(n.input[0]), dtype=np.int64)
            if op == "Size":
                self.consts[n.output[0]] = np.array(np.prod(shp), dtype=np.int64)
            else:
                self.consts[n.output[0]] = shp[a.get("start", 0):a.get("end", None)]
            return True
        if op == "CastLike" and self.is_const(n.input[0]) and not self.is_const(n.input[1]):
            self.consts[n.output[0]] = np.asarray(self.consts[self.src(n.input[0])],
                                                  np.float64)   # cast like an activation
            return True
        if op not in CONST_OPS or not all(self.is_const(t) for t in n.input):
            return False
        ins = [None if t == "" else np.asarray(self.consts[self.src(t)]) for t in n.input]
        fast = {
            "Identity": lambda: ins[0],
            "Cast": lambda: ins[0].astype(_onnx_dtype(a["to"])),
            "CastLike": lambda: ins[0].astype(ins[1].dtype),
            "Unsqueeze": lambda: np.expand_dims(ins[0], tuple(
                int(v) for v in (a["axes"] if "axes" in a else ins[1]))),
            "Concat": lambda: np.concatenate([np.atleast_1d(v) for v in ins], axis=a["axis"]),
            "Gather": lambda: np.take(ins[0], ins[1], axis=a.get("axis", 0)),
            "Expand": lambda: ins[0] * np.ones(tuple(int(d) for d in ins[1]), ins[0].dtype),
        }
        if op in fast:
            v = fast[op]()
        else:
            from onnx.reference import ReferenceEvaluator

            try:
                feeds = {t: np.asarray(self.consts[self.src(t)]) for t in n.input if t}
                v = ReferenceEvaluator(n).run(None, feeds)[0]
            except Exception as exc:  # noqa: BLE001
                raise DnnError(f"cannot evaluate constant {op} node {label!r}: {exc}"
                               .splitlines()[0]) from None
        for out in n.output[:1]:
            self.consts[out] = np.asarray(v)
        return True

    # -- folding into the previous GEMM --------------------------------------------------------
    def gemm_before(self, t):
        prev = self.producer.get(self.src(t))
        if prev is not None and prev.op in ("conv", "dense") and self.single_use(t) \
                and not prev.attrs.get("relu") and prev.attrs.get("clip") is None:
            return prev
        return None

    def per_channel(self, c, prev, label):
        c = np.asarray(c, dtype=np.float64)
        nout = prev.attrs["W"].shape[0]
        if c.size == 1:
            return np.full(nout, float(c.reshape(-1)[0]))
        squeezed = c.reshape(-1)
        ok = c.size == nout and (c.ndim <= 1 or (prev.op == "conv" and c.ndim in (3, 4)
                                                 and c.shape[-3] == nout) or c.ndim == 2)
        if not ok:
            raise DnnError(f"{label}: constant of shape {c.shape} does not broadcast per "
                           f"output channel of {prev.name} ({nout} channels)")
        return squeezed

    def scale_gemm(self, prev, scale, shift):
        w = prev.attrs["W"]
        prev.attrs["W"] = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        prev.attrs["b"] = prev.attrs["b"] * scale + shift

    # -- the operators ---------------------------------------------------------------------------
    def node(self, n, idx):
        a = _attrs(n)
        op = n.op_type
        label = _label(n, idx)
        if self.fold(n, a, label):
            return
        x = self.src(n.input[0]) if n.input else None
        out = n.output[0]
        if op in ("Identity", "Dropout"):
            self.alias[out] = x
            return
        if op in ("Softmax", "LogSoftmax"):
            if out != self.output:
                raise DnnError(f"{op} node {label!r} is only supported as the last operator")
            self.alias[out] = x
            return
        if op == "Conv":
            w = self.const(n.input[1], label)
            if w.ndim != 4:
                raise DnnError(f"Conv node {label!r}: only 2-D convolutions are supported")
            groups = int(a.get("group", 1))
            cin = self.shape(x)[1]
            if w.shape[1] * groups != cin or w.shape[0] % groups:
                raise DnnError(f"Conv node {label!r}: weights {w.shape} with group={groups} do "
                               f"not fit {cin} input channels")
            b = (self.const(n.input[2], label) if len(n.input) > 2 and n.input[2]
                 else np.zeros(w.shape[0]))
            stride = tuple(a.get("strides", [1, 1]))
            dil = tuple(a.get("dilations", [1, 1]))
            pads = _pads(a, w.shape[2:], stride, dil, self.shape(x), label)
            self.add(Node(label, "conv", [x], out, {"W": w, "b": b, "stride": stride,
                                                     "pads": pads, "dilation": dil,
                                                     "groups": groups}))
        elif op == "Gemm":
            if a.get("transA", 0):
                raise DnnError(f"Gemm node {label!r}: transA=1 unsupported")
            w = self.const(n.input[1], label) * a.get("alpha", 1.0)
            w = w if a.get("transB", 0) else w.T               # -> (out, in)
            b = (self.const(n.input[2], label) * a.get("beta", 1.0)
                 if len(n.input) > 2 and n.input[2] else np.zeros(w.shape[0]))
            self.add(Node(label, "dense", [x], out,
                          {"W": w, "b": np.broadcast_to(b.reshape(-1), (w.shape[0],)).copy()}))
        elif op == "MatMul":
            w = self.const(n.input[1], label)
            if w.ndim != 2:
                raise DnnError(f"MatMul node {label!r} needs a 2-D constant right operand")
            self.add(Node(label, "dense", [x], out, {"W": w.T.copy(), "b": np.zeros(w.shape[1])}))
        elif op == "BatchNormalization":
            if a.get("training_mode", 0):
                raise DnnError(f"BatchNormalization node {label!r}: training mode unsupported "
                               "(export the model in eval mode)")
            gamma, beta, mean, var = (self.const(t, label) for t in n.input[1:5])
            s = gamma / np.sqrt(var + a.get("epsilon", 1e-5))
            shift = beta - mean * s
            prev = self.gemm_before(x)
            if prev is not None:
                self.scale_gemm(prev, s, shift)
                self.alias[out] = x
                return
            if len(self.shape(x)) != 4:
                raise DnnError(f"BatchNormalization node {label!r} on a {len(self.shape(x))}-D "
                               "tensor that no Gemm/MatMul produces is unsupported")
            c = s.size
            self.add(Node(label, "conv", [x], out,
                          {"W": s.reshape(c, 1, 1, 1), "b": shift, "stride": (1, 1),
                           "pads": (0, 0, 0, 0), "dilation": (1, 1), "groups": c}))
        elif op in ("Add", "Sub", "Mul", "Div"):
            x0, x1 = n.input[0], n.input[1]
            if not (self.is_const(x0) or self.is_const(x1)):
                if op != "Add":
                    raise DnnError(f"{op} node {label!r} of two tensors is unsupported (only "
                                   "Add, for residual connections)")
                self.add(Node(label, "add", [self.src(x0), self.src(x1)], out))
                return
            if self.is_const(x0) and op in ("Sub", "Div"):
                raise DnnError(f"{op} node {label!r}: constant on the left is unsupported")
            tensor, c = (x1, self.const(x0, label)) if self.is_const(x0) else (x0,
                                                                             self.const(x1, label))
            prev = self.gemm_before(tensor)
            if prev is None:
                raise DnnError(f"{op} node {label!r}: a constant {op} is only supported right "
                               "after Conv/Gemm/MatMul (fold input normalisation into "
                               "--mean/--std)")
            c = self.per_channel(c, prev, label)
            nout = c.size
            if op == "Add":
                self.scale_gemm(prev, np.ones(nout), c)
            elif op == "Sub":
                self.scale_gemm(prev, np.ones(nout), -c)
            elif op == "Mul":
                self.scale_gemm(prev, c, np.zeros(nout))
            else:
                self.scale_gemm(prev, 1.0 / c, np.zeros(nout))
            self.alias[out] = self.src(tensor)
        elif op == "Relu":
            self.add(Node(label, "relu", [x], out))
        elif op == "Clip":
            if len(n.input) > 1:
                lo = float(self.const(n.input[1], label)) if n.input[1] else -np.inf
                hi = (float(self.const(n.input[2], label))
                      if len(n.input) > 2 and n.input[2] else np.inf)
            else:
                lo, hi = a.get("min", -np.inf), a.get("max", np.inf)
            self.add(Node(label, "clip", [x], out, {"lo": float(lo), "hi": float(hi)}))
        elif op == "Concat":
            rank = len(self.shape(x))
            axis = a["axis"] + rank if a["axis"] < 0 else a["axis"]
            if axis != 1:
                raise DnnError(f"Concat node {label!r}: only the channel axis (1) is supported, "
                               f"got {a['axis']}")
            ins = [self.src(t) for t in n.input]
            if any(t in self.consts for t in ins):
                raise DnnError(f"Concat node {label!r}: concatenating constants is unsupported")
            self.add(Node(label, "concat", ins, out, {"axis": 1}))
        elif op in ("MaxPool", "AveragePool"):
            if a.get("ceil_mode", 0):
                raise DnnError(f"{op} node {label!r}: ceil_mode=1 unsupported")
            if any(d != 1 for d in a.get("dilations", [1, 1])):
                raise DnnError(f"{op} node {label!r}: dilated pooling unsupported")
            if len(n.output) > 1 and n.output[1]:
                raise DnnError(f"{op} node {label!r}: the indices output is unsupported")
            kernel = tuple(a["kernel_shape"])
            if len(kernel) != 2:
                raise DnnError(f"{op} node {label!r}: only 2-D pooling is supported")
            stride = tuple(a.get("strides", [1, 1]))
            attrs = {"kernel": kernel, "stride": stride,
                     "pads": _pads(a, kernel, stride, (1, 1), self.shape(x), label)}
            if op == "AveragePool":
                attrs["count_include_pad"] = bool(a.get("count_include_pad", 0))
            self.add(Node(label, "maxpool" if op == "MaxPool" else "avgpool", [x], out, attrs))
        elif op == "GlobalAveragePool":
            self.add(Node(label, "avgpool", [x], out, {"global": True}))
        elif op == "ReduceMean":
            rank = len(self.shape(x))
            axes = (a["axes"] if "axes" in a else
                    self.const(n.input[1], label, np.int64).reshape(-1).tolist()
                    if len(n.input) > 1 and n.input[1] else None)
            axes = sorted(int(v) + rank if v < 0 else int(v) for v in axes) if axes else None
            if rank != 4 or axes != [2, 3]:
                raise DnnError(f"ReduceMean node {label!r}: only the mean over the spatial "
                               f"axes of a 4-D tensor (global average pooling) is supported, "
                               f"got axes {axes} of a {rank}-D tensor")
            if a.get("keepdims", 1):
                self.add(Node(label, "avgpool", [x], out, {"global": True}))
            else:
                self.add(Node(label, "avgpool", [x], out + "/pool", {"global": True}))
                self.add(Node(label + "/flatten", "flatten", [out + "/pool"], out))
        elif op == "Flatten":
            if a.get("axis", 1) != 1:
                raise DnnError(f"Flatten node {label!r}: axis={a['axis']} unsupported")
            self.add(Node(label, "flatten", [x], out))
        elif op in ("Reshape", "Squeeze"):
            shp = self.shape(x)
            feats = int(np.prod(shp[1:]))
            if op == "Reshape":
                target = self.const(n.input[1], label, np.int64).reshape(-1).tolist()
                ok = (len(target) == 2 and target[0] in self.batches
                      and target[1] in (-1, feats) and target != [-1, -1])
            else:
                ok = len(shp) == 4 and shp[2] == shp[3] == 1
                target = ["batch", "features"]
            if list(shp) == [shp[0], feats] and len(shp) == 2:
                self.alias[out] = x                    # already (batch, features)
                return
            if not ok:
                raise DnnError(f"{op} node {label!r}: reshaping {tuple(shp[1:])} to {target} is "
                               "unsupported (only to (batch, features))")
            self.add(Node(label, "flatten", [x], out))
        else:
            raise AssertionError(op)

    def run(self) -> Graph:
        g = self.model.graph
        bad = [(n.op_type, _label(n, i)) for i, n in enumerate(g.node)
               if n.op_type not in SUPPORTED_OPS]
        if bad:
            others = sorted({op for op, _ in bad[1:]} - {bad[0][0]})
            more = f" (also: {', '.join(others)})" if others else ""
            raise DnnError(f"unsupported ONNX operator {bad[0][0]} at node {bad[0][1]!r}{more}; "
                           f"supported: {', '.join(LAYER_OPS)}")
        for idx, n in enumerate(g.node):
            if n.op_type in LAYER_OPS:
                self.node(n, idx)
            elif not self.fold(n, _attrs(n), _label(n, idx)):
                raise DnnError(f"ONNX operator {n.op_type} at node {_label(n, idx)!r} is only "
                               "supported on constants (shape arithmetic)")
        out = self.src(self.output)
        if out not in self.producer:
            raise DnnError("the graph output is not computed by any supported operator")
        graph = Graph(self.name, self.src(self.input), self.input_shape, out, self.nodes)
        return fuse_relu(graph)


def from_onnx_model(model, name: str = "onnx") -> Graph:
    return _Importer(model, name).run()


def _onnx_dtype(code):
    from onnx import helper

    return helper.tensor_dtype_to_np_dtype(code)


def _pads(a, kernel, stride, dilation, in_shape, label):
    auto = _decode(a.get("auto_pad", "NOTSET"))
    if auto == "NOTSET":
        p = list(a.get("pads", [0, 0, 0, 0]))
        if len(p) != 4:
            raise DnnError(f"node {label!r}: expected 4 pads for a 2-D operator, got {p}")
        return (p[0], p[1], p[2], p[3])                    # ONNX: top, left, bottom, right
    if auto == "VALID":
        return (0, 0, 0, 0)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for size, k, s, d in zip(in_shape[2:], kernel, stride, dilation):
            total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small, big = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else big)
            end.append(big if auto == "SAME_UPPER" else small)
        return (begin[0], begin[1], end[0], end[1])
    raise DnnError(f"node {label!r}: auto_pad={auto} unsupported")
