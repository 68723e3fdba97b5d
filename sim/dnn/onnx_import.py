"""ONNX import: a float ONNX model -> :class:`~sim.dnn.layers.Graph`.

Supported operators: Conv (group 1, dilation 1, explicit pads or auto_pad), Gemm (transA 0;
alpha/beta folded), MatMul with a constant right operand (and a following constant Add folded
into its bias), Relu, MaxPool, AveragePool, GlobalAveragePool, Flatten (axis 1), Reshape to
``(batch, features)``, Add of two tensors (residual), and the inference no-ops Identity /
Dropout. A trailing Softmax (monotonic: top-1 unchanged) is dropped. Anything else is reported by
name in one :class:`~sim.dnn.errors.DnnError` line. Batch dimension first, NCHW layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hw.extras import require

from .errors import DnnError
from .layers import Graph, Node, fuse_relu

__all__ = ["load_onnx", "from_onnx_model", "SUPPORTED_OPS"]

SUPPORTED_OPS = ("Conv", "Gemm", "MatMul", "Relu", "MaxPool", "AveragePool",
                 "GlobalAveragePool", "Flatten", "Reshape", "Add", "Identity", "Dropout",
                 "Softmax", "Constant")


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


def from_onnx_model(model, name: str = "onnx") -> Graph:
    from onnx import numpy_helper

    g = model.graph
    unsupported = sorted({n.op_type for n in g.node if n.op_type not in SUPPORTED_OPS})
    if unsupported:
        raise DnnError(f"unsupported ONNX operator(s): {', '.join(unsupported)} "
                       f"(supported: {', '.join(SUPPORTED_OPS[:-1])})")
    consts = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant":
            a = _attrs(n)
            if "value" not in a:
                raise DnnError(f"Constant node {n.name or n.output[0]!r}: only 'value' supported")
            consts[n.output[0]] = numpy_helper.to_array(a["value"]).astype(np.float64)
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1:
        raise DnnError(f"expected one graph input, found {len(inputs)}")
    inp = inputs[0]
    dims = [d.dim_value if d.HasField("dim_value") else None
            for d in inp.type.tensor_type.shape.dim]
    if len(dims) < 2 or any(d is None or d <= 0 for d in dims[1:]):
        raise DnnError(f"graph input {inp.name!r} needs a known shape after the batch axis, "
                       f"got {dims}")
    input_shape = tuple(dims[1:])
    if len(g.output) != 1:
        raise DnnError(f"expected one graph output, found {len(g.output)}")
    output = g.output[0].name

    nodes: list[Node] = []
    alias: dict[str, str] = {}
    producer: dict[str, Node] = {}
    ops = [n for n in g.node if n.op_type != "Constant"]

    def src(t):
        return alias.get(t, t)

    def const(t, what):
        if t not in consts:
            raise DnnError(f"{what}: input {t!r} must be a constant (initializer)")
        return consts[t]

    for idx, n in enumerate(ops):
        label = n.name or f"{n.op_type.lower()}{idx}"
        a = _attrs(n)
        op = n.op_type
        if op in ("Identity", "Dropout"):
            alias[n.output[0]] = src(n.input[0])
            continue
        if op == "Softmax":
            if n.output[0] != output:
                raise DnnError("Softmax is only supported as the last operator")
            alias[n.output[0]] = src(n.input[0])
            continue
        if op == "Conv":
            w = const(n.input[1], label)
            if w.ndim != 4:
                raise DnnError(f"{label}: only 2-D convolutions are supported")
            if a.get("group", 1) != 1:
                raise DnnError(f"{label}: grouped convolution (group={a['group']}) unsupported")
            if any(d != 1 for d in a.get("dilations", [1, 1])):
                raise DnnError(f"{label}: dilated convolution unsupported")
            b = consts[n.input[2]] if len(n.input) > 2 and n.input[2] else np.zeros(w.shape[0])
            stride = tuple(a.get("strides", [1, 1]))
            node = Node(label, "conv", [src(n.input[0])], n.output[0],
                        {"W": w, "b": b, "stride": stride,
                         "pads": _pads(a, w.shape[2:], stride, label)})
        elif op == "Gemm":
            if a.get("transA", 0):
                raise DnnError(f"{label}: Gemm with transA=1 unsupported")
            w = const(n.input[1], label) * a.get("alpha", 1.0)
            w = w if a.get("transB", 0) else w.T               # -> (out, in)
            b = (const(n.input[2], label) * a.get("beta", 1.0)
                 if len(n.input) > 2 and n.input[2] else np.zeros(w.shape[0]))
            node = Node(label, "dense", [src(n.input[0])], n.output[0],
                        {"W": w, "b": np.broadcast_to(b.reshape(-1), (w.shape[0],)).copy()})
        elif op == "MatMul":
            w = const(n.input[1], label)
            if w.ndim != 2:
                raise DnnError(f"{label}: MatMul needs a 2-D constant right operand")
            node = Node(label, "dense", [src(n.input[0])], n.output[0],
                        {"W": w.T.copy(), "b": np.zeros(w.shape[1]), "matmul": True})
        elif op == "Add":
            x0, x1 = n.input[0], n.input[1]
            if x0 in consts or x1 in consts:
                tensor, c = (x1, consts[x0]) if x0 in consts else (x0, consts[x1])
                prev = producer.get(src(tensor))
                users = sum(src(t) == src(tensor) for m in ops for t in m.input)
                if prev is None or prev.op not in ("dense", "conv") or users != 1:
                    raise DnnError(f"{label}: Add of a constant is only supported as the bias "
                                   "right after Gemm/MatMul/Conv")
                c = c.reshape(-1)
                nout = prev.attrs["W"].shape[0]
                if c.size not in (1, nout):
                    raise DnnError(f"{label}: bias of {c.size} values for {nout} outputs")
                prev.attrs["b"] = prev.attrs["b"] + np.broadcast_to(c, (nout,))
                alias[n.output[0]] = src(tensor)
                continue
            node = Node(label, "add", [src(x0), src(x1)], n.output[0])
        elif op == "Relu":
            node = Node(label, "relu", [src(n.input[0])], n.output[0])
        elif op in ("MaxPool", "AveragePool"):
            if a.get("ceil_mode", 0):
                raise DnnError(f"{label}: ceil_mode=1 unsupported")
            if any(d != 1 for d in a.get("dilations", [1, 1])):
                raise DnnError(f"{label}: dilated pooling unsupported")
            kernel = tuple(a["kernel_shape"])
            stride = tuple(a.get("strides", [1, 1]))
            attrs = {"kernel": kernel, "stride": stride, "pads": _pads(a, kernel, stride, label)}
            if op == "AveragePool":
                attrs["count_include_pad"] = bool(a.get("count_include_pad", 0))
            node = Node(label, "maxpool" if op == "MaxPool" else "avgpool",
                        [src(n.input[0])], n.output[0], attrs)
        elif op == "GlobalAveragePool":
            node = Node(label, "avgpool", [src(n.input[0])], n.output[0], {"global": True})
        elif op == "Flatten":
            if a.get("axis", 1) != 1:
                raise DnnError(f"{label}: Flatten with axis={a['axis']} unsupported")
            node = Node(label, "flatten", [src(n.input[0])], n.output[0])
        else:  # Reshape
            shape = const(n.input[1], label).astype(np.int64).reshape(-1)
            if shape.size != 2 or not (shape[0] in (0, -1) or shape[1] == -1):
                raise DnnError(f"{label}: Reshape to {shape.tolist()} unsupported "
                               "(only (batch, features))")
            node = Node(label, "flatten", [src(n.input[0])], n.output[0])
        nodes.append(node)
        producer[node.output] = node
    out = src(output)
    if out not in producer:
        raise DnnError("the graph output is not computed by any supported operator")
    for nd in nodes:
        nd.attrs.pop("matmul", None)
    graph = Graph(name, src(inp.name), input_shape, out, nodes)
    _check_shapes(graph)
    return fuse_relu(graph)


def _pads(a, kernel, stride, label):
    auto = _decode(a.get("auto_pad", "NOTSET"))
    if auto in ("NOTSET", "VALID"):
        p = list(a.get("pads", [0, 0, 0, 0])) if auto == "NOTSET" else [0, 0, 0, 0]
        if len(p) != 4:
            raise DnnError(f"{label}: expected 4 pads for a 2-D operator, got {p}")
        return (p[0], p[1], p[2], p[3])                    # ONNX: top, left, bottom, right
    raise DnnError(f"{label}: auto_pad={auto} unsupported (export with explicit pads)")


def _check_shapes(graph: Graph):
    """Run a zero image through the float graph: catches inconsistent shapes early."""
    from .layers import run_float

    try:
        run_float(graph, np.zeros((1,) + tuple(graph.input_shape)))
    except DnnError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy shape errors
        raise DnnError(f"ONNX graph shapes do not fit together: {exc}".splitlines()[0]) \
            from None
