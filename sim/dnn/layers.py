"""Network graph and its float operators (NCHW layout, numpy).

A :class:`Graph` is a list of :class:`Node` in topological order; tensors are named and a node
reads ``inputs`` and writes ``output``. Operators (``op``):

=========  ======================================================================================
conv       2-D convolution, ``W (Cout, Cin/groups, kh, kw)``, bias ``b (Cout)``, ``stride (sh, sw)``,
           ``pads (top, left, bottom, right)``, optional ``dilation (dh, dw)`` and ``groups``
           (depthwise: ``groups = Cin``); computed as im2col -> one GEMM per group
dense      fully connected, ``W (out, in)``, ``b (out)``: ``y = x W^T + b``
relu       ``max(x, 0)`` (fused into the preceding conv/dense/add when it is the only consumer)
clip       ``min(max(x, lo), hi)`` (ReLU6: ``lo = 0, hi = 6``; fused like relu)
maxpool    ``kernel (kh, kw)``, ``stride``, ``pads`` (padding never wins the max)
avgpool    ``kernel``, ``stride``, ``pads``, ``count_include_pad``; ``global`` for global average
flatten    ``(B, ...) -> (B, prod)``
add        element-wise sum of two tensors (residual connections)
concat     concatenation along ``axis`` (1: channels)
=========  ======================================================================================

A fused activation is ``attrs["relu"] = True`` and/or ``attrs["clip"] = (lo, hi)`` on a conv,
dense or add node (:func:`activation_range` gives the combined interval).

GEMM nodes (conv, dense) are where the accelerator works: the activation matrix is the GEMM's
``a`` operand (rows = output pixels x batch, columns = reduction index ``k``) and the weight
matrix ``W`` reshaped to ``K x N`` is its ``b`` operand, as in :mod:`sim.golden`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import DnnError

__all__ = ["Node", "Graph", "im2col", "conv_output_hw", "pool", "run_float", "GEMM_OPS",
           "fuse_relu", "activation_range", "OPS"]

GEMM_OPS = ("conv", "dense")
OPS = GEMM_OPS + ("relu", "clip", "maxpool", "avgpool", "flatten", "add", "concat")
#: Producers an activation (relu / clip) is fused into.
FUSABLE = GEMM_OPS + ("add",)


@dataclass
class Node:
    """One operator: ``op`` reads the tensors named ``inputs`` and writes ``output``."""

    name: str
    op: str
    inputs: list
    output: str
    attrs: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.op not in OPS:
            raise DnnError(f"unknown operator {self.op!r} in node {self.name!r}")


@dataclass
class Graph:
    """A feed-forward network: ``input`` tensor of shape ``(B,) + input_shape``, ``output``
    tensor (logits), nodes in topological order."""

    name: str
    input: str
    input_shape: tuple
    output: str
    nodes: list

    def gemm_nodes(self) -> list:
        return [n for n in self.nodes if n.op in GEMM_OPS]

    def consumers(self, tensor: str) -> list:
        return [n for n in self.nodes if tensor in n.inputs]

    def summary(self) -> str:
        parts = []
        for n in self.nodes:
            act = ("+relu" if n.attrs.get("relu") else "") + (
                "+clip({:g},{:g})".format(*n.attrs["clip"]) if n.attrs.get("clip") else "")
            if n.op == "conv":
                w = n.attrs["W"]
                g = n.attrs.get("groups", 1)
                parts.append(f"{n.name}: conv {w.shape[1] * g}->{w.shape[0]} "
                             f"{w.shape[2]}x{w.shape[3]}" + (f" g{g}" if g > 1 else "") + act)
            elif n.op == "dense":
                w = n.attrs["W"]
                parts.append(f"{n.name}: dense {w.shape[1]}->{w.shape[0]}" + act)
            else:
                parts.append(f"{n.name}: {n.op}")
        return "; ".join(parts)


def activation_range(attrs: dict) -> tuple[float, float]:
    """The interval a fused activation clamps to (``(-inf, inf)`` when there is none)."""
    lo, hi = (0.0, np.inf) if attrs.get("relu") else (-np.inf, np.inf)
    if attrs.get("clip") is not None:
        clo, chi = attrs["clip"]
        lo, hi = max(lo, float(clo)), min(hi, float(chi))
    return lo, hi


def fuse_relu(graph: Graph) -> Graph:
    """Fold every ``relu`` / ``clip`` whose input comes from a conv/dense/add used only by it
    into the producer (``attrs["relu"] = True`` / ``attrs["clip"] = (lo, hi)``); other relus and
    clips stay as nodes."""
    nodes = list(graph.nodes)
    producer = {n.output: n for n in nodes}
    out_nodes, renamed, fused = [], {}, set()

    def users(tensor):
        return sum(renamed.get(t, t) == tensor for m in nodes if id(m) not in fused
                   for t in m.inputs)

    for n in nodes:
        n.inputs = [renamed.get(t, t) for t in n.inputs]
        src = producer.get(n.inputs[0]) if n.op in ("relu", "clip") else None
        if (src is not None and src.op in FUSABLE and users(src.output) == 1
                and src.output != graph.output):
            fused.add(id(n))
            if n.op == "relu":
                src.attrs["relu"] = True
            else:
                lo, hi = activation_range(src.attrs)
                src.attrs["clip"] = (max(lo, n.attrs["lo"]), min(hi, n.attrs["hi"]))
            renamed[n.output] = src.output
            producer[src.output] = src
            continue
        out_nodes.append(n)
    output = renamed.get(graph.output, graph.output)
    return Graph(graph.name, graph.input, graph.input_shape, output, out_nodes)


# -- shape helpers ---------------------------------------------------------------------------------

def conv_output_hw(h, w, kernel, stride, pads, dilation=(1, 1)):
    kh, kw = (kernel[0] - 1) * dilation[0] + 1, (kernel[1] - 1) * dilation[1] + 1
    sh, sw = stride
    pt, pl, pb, pr = pads
    oh = (h + pt + pb - kh) // sh + 1
    ow = (w + pl + pr - kw) // sw + 1
    if oh < 1 or ow < 1:
        raise DnnError(f"kernel {kh}x{kw} does not fit a {h}x{w} input")
    return oh, ow


def im2col(x: np.ndarray, kernel, stride, pads, pad_value=0,
           dilation=(1, 1)) -> tuple[np.ndarray, int, int]:
    """``(B, C, H, W)`` -> ``(B*OH*OW, C*kh*kw)`` patches (row ``(b, oy, ox)``, column
    ``(c, i, j)``, matching ``W.reshape(Cout, -1)``), and ``OH, OW``. Padding cells hold
    ``pad_value``; ``dilation`` spaces the kernel taps."""
    b, c, h, w = x.shape
    kh, kw = kernel
    dh, dw = dilation
    sh, sw = stride
    pt, pl, pb, pr = pads
    oh, ow = conv_output_hw(h, w, kernel, stride, pads, dilation)
    if any(pads):
        x = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=pad_value)
    # one strided copy per kernel tap (kh*kw large copies: 2-3x faster than copying a
    # sliding-window view, whose innermost run is only kw elements long)
    cols = np.empty((b, oh, ow, c, kh, kw), dtype=x.dtype)
    xt = x.transpose(0, 2, 3, 1)                                   # B, H, W, C (a view)
    for i in range(kh):
        for j in range(kw):
            y0, x0 = i * dh, j * dw
            cols[..., i, j] = xt[:, y0:y0 + (oh - 1) * sh + 1:sh, x0:x0 + (ow - 1) * sw + 1:sw]
    return cols.reshape(b * oh * ow, c * kh * kw), oh, ow


def pool(x: np.ndarray, kind: str, kernel, stride, pads, count_include_pad=False):
    """Max or average pooling of ``(B, C, H, W)``; works for floats and integers (average of
    integers: exact sum and count returned as a pair for the caller to round)."""
    b, c, h, w = x.shape
    kh, kw = kernel
    sh, sw = stride
    pt, pl, pb, pr = pads
    oh, ow = conv_output_hw(h, w, kernel, stride, pads)
    if kind == "max":
        fill = -np.inf if np.issubdtype(x.dtype, np.floating) else np.iinfo(np.int64).min
        xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill) \
            if any(pads) else x
        win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
        return win[:, :, ::sh, ::sw][:, :, :oh, :ow].max(axis=(4, 5))
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr))) if any(pads) else x
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    total = win[:, :, ::sh, ::sw][:, :, :oh, :ow].sum(axis=(4, 5))
    if count_include_pad or not any(pads):
        count = np.full((oh, ow), kh * kw, dtype=np.int64)
    else:
        ones = np.pad(np.ones((h, w), np.int64), ((pt, pb), (pl, pr)))
        cw = np.lib.stride_tricks.sliding_window_view(ones, (kh, kw))
        count = cw[::sh, ::sw][:oh, :ow].sum(axis=(2, 3))
    return total, count


def pool_params(node: Node, x_shape) -> tuple:
    a = node.attrs
    if a.get("global"):
        return (x_shape[2], x_shape[3]), (1, 1), (0, 0, 0, 0)
    return tuple(a["kernel"]), tuple(a["stride"]), tuple(a.get("pads", (0, 0, 0, 0)))


# -- float execution -------------------------------------------------------------------------------

def _float_node(node: Node, args: list) -> np.ndarray:
    a = node.attrs
    x = args[0]
    if node.op == "conv":
        w, bias = a["W"], a["b"]
        groups = a.get("groups", 1)
        if x.ndim != 4 or x.shape[1] != w.shape[1] * groups:
            raise DnnError(f"conv layer {node.name!r} expects {w.shape[1] * groups} input "
                           f"channels, got a tensor of shape {tuple(x.shape)}")
        cols, oh, ow = im2col(x, w.shape[2:], a["stride"], a["pads"],
                              dilation=a.get("dilation", (1, 1)))
        y = grouped_matmul(cols, w, groups) + bias
        y = y.reshape(x.shape[0], oh, ow, w.shape[0]).transpose(0, 3, 1, 2)
    elif node.op == "dense":
        if x.ndim != 2 or x.shape[1] != a["W"].shape[1]:
            raise DnnError(f"dense layer {node.name!r} expects {a['W'].shape[1]} inputs, got a "
                           f"tensor of shape {tuple(x.shape)}")
        y = x @ a["W"].T + a["b"]
    elif node.op == "relu":
        y = np.maximum(x, 0)
    elif node.op == "clip":
        y = np.clip(x, a["lo"], a["hi"])
    elif node.op == "concat":
        y = np.concatenate(args, axis=a.get("axis", 1))
    elif node.op in ("maxpool", "avgpool"):
        kernel, stride, pads = pool_params(node, x.shape)
        if node.op == "maxpool":
            y = pool(x, "max", kernel, stride, pads)
        else:
            total, count = pool(x, "avg", kernel, stride, pads, a.get("count_include_pad", False))
            y = total / count
    elif node.op == "flatten":
        y = x.reshape(x.shape[0], -1)
    else:  # add
        y = args[0] + args[1]
    if node.op in FUSABLE and (a.get("relu") or a.get("clip") is not None):
        y = np.clip(y, *activation_range(a))
    return y


def grouped_matmul(cols: np.ndarray, w: np.ndarray, groups: int) -> np.ndarray:
    """``cols (M, groups*Kg) @ W^T`` group by group: output channel ``o`` of group
    ``g = o // (Cout/groups)`` sees only its group's columns."""
    wm = w.reshape(w.shape[0], -1)
    if groups == 1:
        return cols @ wm.T
    m, kg, ng = cols.shape[0], wm.shape[1], w.shape[0] // groups
    out = np.matmul(cols.reshape(m, groups, kg).transpose(1, 0, 2),
                    wm.reshape(groups, ng, kg).transpose(0, 2, 1))      # G, M, Ng
    return out.transpose(1, 0, 2).reshape(m, groups * ng)


def run_float(graph: Graph, x: np.ndarray, keep: bool = False):
    """Float forward pass; returns the output, or ``(output, {tensor: value})`` with ``keep``."""
    env = {graph.input: np.asarray(x, dtype=np.float64)}
    for node in graph.nodes:
        env[node.output] = _float_node(node, [env[t] for t in node.inputs])
    return (env[graph.output], env) if keep else env[graph.output]
