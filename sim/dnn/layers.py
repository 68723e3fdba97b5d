"""Network graph and its float operators (NCHW layout, numpy).

A :class:`Graph` is a list of :class:`Node` in topological order; tensors are named and a node
reads ``inputs`` and writes ``output``. Operators (``op``):

=========  ======================================================================================
conv       2-D convolution, ``W (Cout, Cin, kh, kw)``, bias ``b (Cout)``, ``stride (sh, sw)``,
           ``pads (top, left, bottom, right)``; computed as im2col -> GEMM
dense      fully connected, ``W (out, in)``, ``b (out)``: ``y = x W^T + b``
relu       ``max(x, 0)`` (fused into the preceding conv/dense/add when it is the only consumer)
maxpool    ``kernel (kh, kw)``, ``stride``, ``pads`` (padding never wins the max)
avgpool    ``kernel``, ``stride``, ``pads``, ``count_include_pad``; ``global`` for global average
flatten    ``(B, ...) -> (B, prod)``
add        element-wise sum of two tensors (residual connections)
=========  ======================================================================================

GEMM nodes (conv, dense) are where the accelerator works: the activation matrix is the GEMM's
``a`` operand (rows = output pixels x batch, columns = reduction index ``k``) and the weight
matrix ``W`` reshaped to ``K x N`` is its ``b`` operand, as in :mod:`sim.golden`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import DnnError

__all__ = ["Node", "Graph", "im2col", "conv_output_hw", "pool", "run_float", "GEMM_OPS",
           "fuse_relu"]

GEMM_OPS = ("conv", "dense")
OPS = GEMM_OPS + ("relu", "maxpool", "avgpool", "flatten", "add")


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
            if n.op == "conv":
                w = n.attrs["W"]
                parts.append(f"{n.name}: conv {w.shape[1]}->{w.shape[0]} {w.shape[2]}x{w.shape[3]}"
                             + ("+relu" if n.attrs.get("relu") else ""))
            elif n.op == "dense":
                w = n.attrs["W"]
                parts.append(f"{n.name}: dense {w.shape[1]}->{w.shape[0]}"
                             + ("+relu" if n.attrs.get("relu") else ""))
            else:
                parts.append(f"{n.name}: {n.op}")
        return "; ".join(parts)


def fuse_relu(graph: Graph) -> Graph:
    """Fold every ``relu`` whose input comes from a conv/dense/add used only by that relu into
    the producer (``attrs["relu"] = True``); other relus stay as nodes."""
    nodes = list(graph.nodes)
    producer = {n.output: n for n in nodes}
    out_nodes, renamed = [], {}
    for n in nodes:
        n.inputs = [renamed.get(t, t) for t in n.inputs]
        src = producer.get(n.inputs[0]) if n.op == "relu" else None
        if (src is not None and src.op in GEMM_OPS + ("add",) and not src.attrs.get("relu")
                and len([m for m in nodes if src.output in m.inputs]) == 1
                and src.output != graph.output):
            src.attrs["relu"] = True
            renamed[n.output] = src.output
            continue
        out_nodes.append(n)
    output = renamed.get(graph.output, graph.output)
    return Graph(graph.name, graph.input, graph.input_shape, output, out_nodes)


# -- shape helpers ---------------------------------------------------------------------------------

def conv_output_hw(h, w, kernel, stride, pads):
    kh, kw = kernel
    sh, sw = stride
    pt, pl, pb, pr = pads
    oh = (h + pt + pb - kh) // sh + 1
    ow = (w + pl + pr - kw) // sw + 1
    if oh < 1 or ow < 1:
        raise DnnError(f"kernel {kh}x{kw} does not fit a {h}x{w} input")
    return oh, ow


def im2col(x: np.ndarray, kernel, stride, pads, pad_value=0) -> tuple[np.ndarray, int, int]:
    """``(B, C, H, W)`` -> ``(B*OH*OW, C*kh*kw)`` patches (row ``(b, oy, ox)``, column
    ``(c, i, j)``, matching ``W.reshape(Cout, -1)``), and ``OH, OW``."""
    b, c, h, w = x.shape
    kh, kw = kernel
    sh, sw = stride
    pt, pl, pb, pr = pads
    oh, ow = conv_output_hw(h, w, kernel, stride, pads)
    if any(pads):
        x = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=pad_value)
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    win = win[:, :, ::sh, ::sw][:, :, :oh, :ow]                  # B, C, OH, OW, kh, kw
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(b * oh * ow, c * kh * kw)
    return cols, oh, ow


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
        cols, oh, ow = im2col(x, w.shape[2:], a["stride"], a["pads"])
        y = cols @ w.reshape(w.shape[0], -1).T + bias
        y = y.reshape(x.shape[0], oh, ow, w.shape[0]).transpose(0, 3, 1, 2)
    elif node.op == "dense":
        if x.ndim != 2:
            raise DnnError(f"dense layer {node.name!r} needs a 2-D input, got {x.shape}")
        y = x @ a["W"].T + a["b"]
    elif node.op == "relu":
        y = np.maximum(x, 0)
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
    if a.get("relu"):
        y = np.maximum(y, 0)
    return y


def run_float(graph: Graph, x: np.ndarray, keep: bool = False):
    """Float forward pass; returns the output, or ``(output, {tensor: value})`` with ``keep``."""
    env = {graph.input: np.asarray(x, dtype=np.float64)}
    for node in graph.nodes:
        env[node.output] = _float_node(node, [env[t] for t in node.inputs])
    return (env[graph.output], env) if keep else env[graph.output]
