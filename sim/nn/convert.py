"""A float ``torch.nn.Module`` -> :class:`sim.dnn.layers.Graph` (``torch.fx``), so that the
quantisation and the integer semantics of a torch model are those of :mod:`sim.dnn`.

The model is traced with :func:`torch.fx.symbolic_trace` (control flow that depends on tensor
values cannot be traced) and its shapes are propagated with one zero image. GEMM layers keep
their module names (``layer1.0.conv1``), so per-layer assignments name the same layers in torch
and in :mod:`sim.dnn`. Supported:

* modules: ``Conv2d`` (groups, dilation, ``padding`` as numbers, ``"same"`` or ``"valid"``,
  zero padding), ``Linear``, ``BatchNorm2d`` / ``BatchNorm1d`` (inference statistics; folded
  into the conv/linear before them, else a depthwise 1x1 conv), ``ReLU``, ``ReLU6``,
  ``Hardtanh``, ``MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d`` (to 1x1, or by a whole
  factor), ``Flatten``, ``Dropout*``, ``Identity``, ``Softmax`` / ``LogSoftmax`` at the end;
* functions and methods: ``+`` / ``torch.add`` (residual; a constant right after a GEMM is its
  bias), ``relu``, ``relu6``, ``clamp``/``clip``, ``hardtanh``, ``torch.cat`` (channels),
  ``flatten`` / ``view`` / ``reshape`` to ``(batch, features)``, ``mean`` over the spatial axes,
  ``adaptive_avg_pool2d``, ``max_pool2d``, ``avg_pool2d``, ``dropout``, ``softmax`` at the end,
  and ``size`` / ``shape`` look-ups.

Anything else is one :class:`~sim.dnn.errors.DnnError` line naming the module (and its type) or
the function and the node.
"""

from __future__ import annotations

import math
import operator

import numpy as np

from hw.extras import require
from sim.dnn.errors import DnnError
from sim.dnn.layers import Graph, Node, fuse_relu, run_float

torch = require("torch", "the PyTorch front end (sim.nn)")
nn = torch.nn
F = torch.nn.functional

__all__ = ["to_graph", "check_graph"]


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _np(t):
    return t.detach().to("cpu", torch.float64).numpy().copy()


def _first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class _Converter:
    def __init__(self, model, input_shape, name):
        self.model = model
        self.input_shape = tuple(int(d) for d in input_shape)
        self.name = name
        self.nodes: list[Node] = []
        self.tensor: dict = {}          # fx node -> graph tensor name (None: not a tensor)
        self.producer: dict[str, Node] = {}
        self.consts: dict = {}          # fx node -> torch tensor (get_attr)
        self.names: set[str] = set()

    # -- helpers ---------------------------------------------------------------------------------
    def shape(self, n):
        meta = n.meta.get("tensor_meta")
        return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None

    def src(self, arg, node):
        t = self.tensor.get(arg) if hasattr(arg, "op") else None
        if t is None:
            raise DnnError(f"node {node.name!r} ({self.what(node)}): expected a tensor input, "
                           f"got {arg!r}")
        return t

    def what(self, n):
        if n.op == "call_module":
            return f"module {n.target!r}, {type(self.mod(n)).__name__}"
        if n.op in ("call_function", "call_method"):
            t = n.target
            return getattr(t, "__name__", str(t)) if n.op == "call_function" else f".{t}()"
        return n.op

    def mod(self, n):
        return self.model.get_submodule(n.target)

    def emit(self, n, node: Node):
        self.unique(node)
        self.nodes.append(node)
        self.producer[node.output] = node
        self.tensor[n] = node.output

    def unique(self, node: Node):
        """Node names are module names; a module called twice gets ``name:2``, ``name:3``..."""
        base, k = node.name, 1
        while node.name in self.names:
            k += 1
            node.name = f"{base}:{k}"
        self.names.add(node.name)

    def alias(self, n, arg):
        self.tensor[n] = self.src(arg, n)

    def single_gemm(self, n, arg):
        """The GEMM node producing ``arg`` when ``n`` is its only user (for folding)."""
        t = self.tensor.get(arg)
        prev = self.producer.get(t)
        if (prev is not None and prev.op in ("conv", "dense") and len(arg.users) == 1
                and not prev.attrs.get("relu") and prev.attrs.get("clip") is None
                and prev.output == t):
            return prev
        return None

    @staticmethod
    def fold_scale(prev, scale, shift):
        w = prev.attrs["W"]
        prev.attrs["W"] = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        prev.attrs["b"] = prev.attrs["b"] * scale + shift

    def arg(self, n, i, key, default=None):
        if len(n.args) > i:
            return n.args[i]
        return n.kwargs.get(key, default)

    # -- modules ---------------------------------------------------------------------------------
    def module(self, n):
        m = self.mod(n)
        x = n.args[0] if n.args else None
        name = n.target
        if isinstance(m, nn.Conv2d):
            if m.padding_mode != "zeros":
                raise DnnError(f"module {name!r} (Conv2d): padding_mode={m.padding_mode!r} "
                               "unsupported (only zeros)")
            k, d = _pair(m.kernel_size), _pair(m.dilation)
            if isinstance(m.padding, str):
                if m.padding == "valid":
                    pads = (0, 0, 0, 0)
                else:                                # "same": torch pads the extra at the end
                    tot = [dd * (kk - 1) for kk, dd in zip(k, d)]
                    pads = (tot[0] // 2, tot[1] // 2, tot[0] - tot[0] // 2, tot[1] - tot[1] // 2)
            else:
                ph, pw = _pair(m.padding)
                pads = (ph, pw, ph, pw)
            b = _np(m.bias) if m.bias is not None else np.zeros(m.out_channels)
            self.emit(n, Node(name, "conv", [self.src(x, n)], n.name,
                              {"W": _np(m.weight), "b": b, "stride": _pair(m.stride),
                               "pads": pads, "dilation": d, "groups": m.groups}))
        elif isinstance(m, nn.Linear):
            b = _np(m.bias) if m.bias is not None else np.zeros(m.out_features)
            self.emit(n, Node(name, "dense", [self.src(x, n)], n.name,
                              {"W": _np(m.weight), "b": b}))
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            if m.running_mean is None or m.running_var is None:
                raise DnnError(f"module {name!r} ({type(m).__name__}) has no running "
                               "statistics (track_running_stats=False) to fold")
            s = _np(m.running_var) + m.eps
            s = (_np(m.weight) if m.weight is not None else np.ones_like(s)) / np.sqrt(s)
            shift = (_np(m.bias) if m.bias is not None else 0.0) - _np(m.running_mean) * s
            prev = self.single_gemm(n, x)
            if prev is not None:
                self.fold_scale(prev, s, shift)
                self.tensor[n] = prev.output
            elif isinstance(m, nn.BatchNorm2d):
                c = s.size
                self.emit(n, Node(name, "conv", [self.src(x, n)], n.name,
                                  {"W": s.reshape(c, 1, 1, 1), "b": shift, "stride": (1, 1),
                                   "pads": (0, 0, 0, 0), "dilation": (1, 1), "groups": c}))
            else:
                raise DnnError(f"module {name!r} (BatchNorm1d) is only supported right after a "
                               "Linear layer")
        elif isinstance(m, nn.ReLU):
            self.emit(n, Node(name, "relu", [self.src(x, n)], n.name))
        elif isinstance(m, (nn.ReLU6, nn.Hardtanh)):
            lo, hi = (0.0, 6.0) if isinstance(m, nn.ReLU6) else (m.min_val, m.max_val)
            self.emit(n, Node(name, "clip", [self.src(x, n)], n.name,
                              {"lo": float(lo), "hi": float(hi)}))
        elif isinstance(m, nn.MaxPool2d):
            self.pool(n, name, "max", x, m.kernel_size, m.stride, m.padding, m.dilation,
                      m.ceil_mode, return_indices=m.return_indices)
        elif isinstance(m, nn.AvgPool2d):
            if m.divisor_override:
                raise DnnError(f"module {name!r} (AvgPool2d): divisor_override unsupported")
            self.pool(n, name, "avg", x, m.kernel_size, m.stride, m.padding, 1, m.ceil_mode,
                      m.count_include_pad)
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            self.adaptive(n, name, x, m.output_size)
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise DnnError(f"module {name!r} (Flatten): only start_dim=1, end_dim=-1")
            self.flatten(n, name, x)
        elif isinstance(m, (nn.Dropout, nn.Dropout2d, nn.Dropout1d, nn.AlphaDropout,
                            nn.Identity)):
            self.alias(n, x)
        elif isinstance(m, (nn.Softmax, nn.LogSoftmax)):
            self.final_only(n, x)
        else:
            raise DnnError(f"unsupported module {name!r} ({type(m).__name__}); supported: "
                           "Conv2d, Linear, BatchNorm2d/1d, ReLU, ReLU6, Hardtanh, MaxPool2d, "
                           "AvgPool2d, AdaptiveAvgPool2d, Flatten, Dropout, Identity")

    def final_only(self, n, x):
        if any(u.op != "output" for u in n.users):
            raise DnnError(f"node {n.name!r} ({self.what(n)}): softmax is only supported as "
                           "the last operation")
        self.alias(n, x)

    def pool(self, n, name, kind, x, kernel, stride, padding, dilation, ceil_mode,
             count_include_pad=False, return_indices=False):
        if ceil_mode or return_indices or _pair(dilation) != (1, 1):
            raise DnnError(f"node {name!r} ({self.what(n)}): ceil_mode, return_indices and "
                           "dilation are unsupported in pooling")
        k = _pair(kernel)
        s = _pair(stride) if stride not in (None, ()) and stride != [] else k
        ph, pw = _pair(padding)
        attrs = {"kernel": k, "stride": s, "pads": (ph, pw, ph, pw)}
        if kind == "avg":
            attrs["count_include_pad"] = bool(count_include_pad)
        self.emit(n, Node(name, "maxpool" if kind == "max" else "avgpool", [self.src(x, n)],
                          n.name, attrs))

    def adaptive(self, n, name, x, size):
        shp = self.shape(x)
        oh, ow = _pair(size) if size is not None else (None, None)
        h, w = shp[2], shp[3]
        oh, ow = oh or h, ow or w
        if (oh, ow) == (1, 1):
            self.emit(n, Node(name, "avgpool", [self.src(x, n)], n.name, {"global": True}))
        elif h % oh == 0 and w % ow == 0:
            k = (h // oh, w // ow)
            self.emit(n, Node(name, "avgpool", [self.src(x, n)], n.name,
                              {"kernel": k, "stride": k, "pads": (0, 0, 0, 0)}))
        else:
            raise DnnError(f"node {name!r}: adaptive average pooling {h}x{w} -> {oh}x{ow} is "
                           "not a whole factor")

    def flatten(self, n, name, x):
        shp = self.shape(x)
        if shp is not None and len(shp) == 2:
            self.alias(n, x)
        else:
            self.emit(n, Node(name, "flatten", [self.src(x, n)], n.name))

    # -- functions and methods -------------------------------------------------------------------
    def function(self, n):
        t = n.target
        name = n.name
        args = n.args
        is_t = lambda a: hasattr(a, "op") and self.tensor.get(a) is not None  # noqa: E731
        if n.op == "call_method":
            key = t
        else:
            key = {operator.add: "add", operator.iadd: "add", torch.add: "add",
                   torch.relu: "relu", F.relu: "relu", torch.relu_: "relu", F.relu6: "relu6",
                   torch.clamp: "clamp", torch.clip: "clamp", F.hardtanh: "hardtanh",
                   torch.flatten: "flatten", torch.cat: "cat", torch.concat: "cat",
                   torch.mean: "mean", F.adaptive_avg_pool2d: "adaptive_avg_pool2d",
                   F.max_pool2d: "max_pool2d", F.avg_pool2d: "avg_pool2d",
                   F.dropout: "dropout", F.softmax: "softmax", F.log_softmax: "softmax",
                   torch.softmax: "softmax", torch.log_softmax: "softmax",
                   operator.getitem: "getitem", getattr: "getattr"}.get(t)
        if key in ("size", "dim", "getattr", "getitem") and not (
                key == "getitem" and is_t(args[0])):
            self.tensor[n] = None                # a shape look-up, not a tensor
            return
        if key in ("add", "add_", "__add__", "__iadd__"):
            a, b = args[0], args[1] if len(args) > 1 else n.kwargs.get("other")
            if n.kwargs.get("alpha", 1) != 1:
                raise DnnError(f"node {name!r}: add with alpha unsupported")
            if is_t(a) and is_t(b):
                self.emit(n, Node(name, "add", [self.src(a, n), self.src(b, n)], name))
                return
            tensor, c = (a, b) if is_t(a) else (b, a)
            prev = self.single_gemm(n, tensor) if is_t(tensor) else None
            if prev is None:
                raise DnnError(f"node {name!r} ({self.what(n)}): adding a constant is only "
                               "supported right after a conv/linear layer (as its bias)")
            c = c.detach().cpu().double().numpy() if torch.is_tensor(c) else np.asarray(
                self.consts[c].detach().cpu().double().numpy() if hasattr(c, "op") else c,
                dtype=np.float64)
            nout = prev.attrs["W"].shape[0]
            c = np.asarray(c, np.float64).reshape(-1)
            if c.size not in (1, nout):
                raise DnnError(f"node {name!r}: a constant of {c.size} values for {nout} "
                               "channels")
            self.fold_scale(prev, np.ones(nout), np.broadcast_to(c, (nout,)))
            self.tensor[n] = prev.output
            return
        x = args[0] if args else None
        if key in ("relu", "relu_"):
            self.emit(n, Node(name, "relu", [self.src(x, n)], name))
        elif key in ("relu6", "clamp", "clip", "clamp_", "hardtanh"):
            if key == "relu6":
                lo, hi = 0.0, 6.0
            elif key == "hardtanh":
                lo = self.arg(n, 1, "min_val", -1.0)
                hi = self.arg(n, 2, "max_val", 1.0)
            else:
                lo, hi = self.arg(n, 1, "min"), self.arg(n, 2, "max")
            if any(torch.is_tensor(v) or hasattr(v, "op") for v in (lo, hi)):
                raise DnnError(f"node {name!r}: clamp bounds must be numbers")
            lo = -math.inf if lo is None else float(lo)
            hi = math.inf if hi is None else float(hi)
            self.emit(n, Node(name, "clip", [self.src(x, n)], name, {"lo": lo, "hi": hi}))
        elif key == "flatten":
            start = self.arg(n, 1, "start_dim", 0)
            end = self.arg(n, 2, "end_dim", -1)
            if start != 1 or end != -1:
                raise DnnError(f"node {name!r}: flatten(start_dim={start}) unsupported (only "
                               "flatten(x, 1))")
            self.flatten(n, name, x)
        elif key in ("view", "reshape"):
            out = self.shape(n)
            if out is None or len(out) != 2 or out[0] != 1:
                raise DnnError(f"node {name!r} (.{key}()): only reshaping to (batch, features) "
                               "is supported")
            self.flatten(n, name, x)
        elif key == "cat":
            tensors = list(x) if isinstance(x, (list, tuple)) else [x]
            dim = self.arg(n, 1, "dim", 0)
            rank = len(self.shape(n))
            if (dim + rank if dim < 0 else dim) != 1:
                raise DnnError(f"node {name!r} (cat): only the channel axis (dim=1)")
            self.emit(n, Node(name, "concat", [self.src(a, n) for a in tensors], name,
                              {"axis": 1}))
        elif key == "mean":
            dims = self.arg(n, 1, "dim")
            keep = self.arg(n, 2, "keepdim", False)
            rank = len(self.shape(x))
            dims = sorted((d + rank if d < 0 else d)
                          for d in (dims if isinstance(dims, (list, tuple)) else [dims]))
            if rank != 4 or dims != [2, 3]:
                raise DnnError(f"node {name!r} (mean): only the mean over the spatial axes of "
                               "a 4-D tensor is supported")
            if keep:
                self.emit(n, Node(name, "avgpool", [self.src(x, n)], name, {"global": True}))
            else:
                pooled = Node(name, "avgpool", [self.src(x, n)], name + "/pool",
                              {"global": True})
                self.unique(pooled)
                self.nodes.append(pooled)
                self.emit(n, Node(name + "/flatten", "flatten", [name + "/pool"], name))
        elif key == "adaptive_avg_pool2d":
            self.adaptive(n, name, x, self.arg(n, 1, "output_size"))
        elif key == "max_pool2d":
            self.pool(n, name, "max", x, self.arg(n, 1, "kernel_size"),
                      self.arg(n, 2, "stride"), self.arg(n, 3, "padding", 0),
                      self.arg(n, 4, "dilation", 1), self.arg(n, 5, "ceil_mode", False),
                      return_indices=self.arg(n, 6, "return_indices", False))
        elif key == "avg_pool2d":
            if self.arg(n, 6, "divisor_override") is not None:
                raise DnnError(f"node {name!r}: avg_pool2d divisor_override unsupported")
            self.pool(n, name, "avg", x, self.arg(n, 1, "kernel_size"),
                      self.arg(n, 2, "stride"), self.arg(n, 3, "padding", 0), 1,
                      self.arg(n, 4, "ceil_mode", False),
                      self.arg(n, 5, "count_include_pad", True))
        elif key in ("dropout", "contiguous", "clone", "detach"):
            self.alias(n, x)
        elif key in ("softmax", "log_softmax"):
            self.final_only(n, x)
        else:
            raise DnnError(f"unsupported operation {self.what(n)} at node {name!r}")

    # -- the walk --------------------------------------------------------------------------------
    def run(self, gm) -> Graph:
        inputs = [n for n in gm.graph.nodes if n.op == "placeholder"]
        if len(inputs) != 1:
            raise DnnError(f"{self.name}: the model must take one input tensor, it takes "
                           f"{len(inputs)}")
        out = None
        for n in gm.graph.nodes:
            if n.op == "placeholder":
                self.tensor[n] = n.name
            elif n.op == "get_attr":
                self.consts[n] = _get_attr(gm, n.target)
                self.tensor[n] = None
            elif n.op == "call_module":
                self.module(n)
            elif n.op in ("call_function", "call_method"):
                self.function(n)
            elif n.op == "output":
                res = n.args[0]
                if isinstance(res, (tuple, list)) or not hasattr(res, "op"):
                    raise DnnError(f"{self.name}: the model must return one tensor")
                out = self.src(res, n)
        if out not in self.producer:
            raise DnnError(f"{self.name}: the output is not computed by any layer")
        graph = Graph(self.name, inputs[0].name, self.input_shape, out, self.nodes)
        return fuse_relu(graph)


def _get_attr(gm, target):
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _device_dtype(model):
    """Where ``model``'s parameters live and their float type (CPU / float32 without any)."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else "cpu"
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    return device, dtype


def to_graph(model, input_shape, *, name: str | None = None) -> Graph:
    """The :class:`~sim.dnn.layers.Graph` of a float torch model (in inference mode: batch norm
    folded, dropout off) for inputs of shape ``(B,) + input_shape``."""
    from torch.fx.passes.shape_prop import ShapeProp

    name = name or type(model).__name__
    if not isinstance(model, nn.Module):
        raise DnnError(f"expected a torch.nn.Module, got {type(model).__name__}")
    was_training = model.training
    model.eval()
    try:
        try:
            gm = torch.fx.symbolic_trace(model)
        except Exception as exc:  # noqa: BLE001 - tracing raises assorted errors
            raise DnnError(f"cannot trace {name} with torch.fx: {_first_line(exc)}") from None
        try:
            device, dtype = _device_dtype(model)
            with torch.no_grad():
                ShapeProp(gm).propagate(torch.zeros((1,) + tuple(input_shape), device=device,
                                                    dtype=dtype))
        except Exception as exc:  # noqa: BLE001 - a shape mismatch inside the model
            raise DnnError(f"inputs of shape {tuple(input_shape)} do not fit {name}: "
                           f"{_first_line(exc)}") from None
        return _Converter(gm, input_shape, name).run(gm)
    finally:
        model.train(was_training)


def check_graph(model, graph: Graph, x, rtol: float = 1e-3):
    """Raise :class:`DnnError` unless ``graph`` computes what ``model`` does on ``x`` (float;
    relative to the largest output)."""
    was_training = model.training
    model.eval()
    try:
        device, dtype = _device_dtype(model)
        with torch.no_grad():
            want = model(torch.as_tensor(x, dtype=dtype, device=device)).double().cpu()
    finally:
        model.train(was_training)
    got = run_float(graph, np.asarray(x, np.float64))
    want = want.numpy().reshape(got.shape)
    scale = max(float(np.abs(want).max()), 1e-12)
    err = float(np.abs(got - want).max()) / scale
    if not err <= rtol:
        raise DnnError(f"the converted graph of {graph.name} differs from the torch model by "
                       f"{err:.2g} (relative); an operation was not understood")
    return err
