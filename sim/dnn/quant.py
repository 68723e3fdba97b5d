"""int8 post-training quantisation and bit-exact integer inference on the emulated accelerator.

Scheme (what an integer accelerator with int32 accumulators does; real value = scale * integer)
-------------------------------------------------------------------------------------------
* **Weights**: symmetric, per output channel: ``S_w[c] = max|W[c]| / 127``,
  ``q_w = clip(rint(W / S_w[c]), -127, 127)`` (``-128`` unused, so the range is symmetric).
* **Activations**: symmetric, per tensor, calibrated on held-out data (never the test set):
  ``S = max|x| / 127`` over the calibration images. A tensor that is never negative (inputs in
  ``[0, 1]``, every ReLU output) is ``0..127``; otherwise ``-127..127``. Host-side input
  quantisation: ``q = clip(floor(x / S + 1/2), lo, 127)``.
* **GEMM layers** (conv via im2col, dense): the accelerator computes
  ``acc = bias_q + sum_k p(a_k, w_k)`` in a 32-bit accumulator (``wrap`` by default; width and
  overflow mode configurable) where ``p`` is the layer's (approximate) multiplier, ``a`` the
  int8 activation and ``w`` the int8 weight (:func:`sim.emulate.emulate_gemm`, bit-exact with
  :mod:`sim.golden`; the accumulator starts at the bias). ``bias_q = rint(b / (S_x S_w[c]))``.
* **Requantisation** to the next layer's int8: ``M = S_x S_w[c] / S_y`` is stored as a 31-bit
  integer multiplier and a right shift, ``M = M0 * 2^-sh`` with ``M0`` in ``[2^30, 2^31)``;
  ``y = clip((acc * M0 + 2^(sh-1)) >> sh, lo, 127)`` (int64 product, arithmetic shift: round half
  up). A ReLU that follows the layer is fused: ``lo = 0``; otherwise ``lo = -127``.
* **Residual add**: ``y = clip((q1 M1 + q2 M2 + 2^23) >> 24, lo, 127)`` with
  ``M_i = rint(S_i / S_y * 2^24)``.
* **Pooling** keeps the input scale: max pool is exact on integers; average pool is
  ``floor((2 * sum + count) / (2 * count))`` (round half up).
* **Logits**: the last GEMM's accumulator is not requantised; the host reads it and dequantises
  with ``S_x S_w[c]`` (so the arg-max sees the per-channel scales).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hw.mult import MultiplierSpec, parse
from sim.emulate import emulate_gemm, emulate_tiled
from sim.golden import ArrayModel, accumulate

from .errors import DnnError
from .layers import GEMM_OPS, Graph, im2col, pool, pool_params, run_float

__all__ = ["TensorQuant", "QuantizedModel", "quantize_multiplier", "requantize",
           "resolve_assignment", "ADD_SHIFT"]

QMAX = 127
ADD_SHIFT = 24


@dataclass(frozen=True)
class TensorQuant:
    """Scale and range of one int8 activation tensor."""

    scale: float
    signed: bool

    @property
    def lo(self) -> int:
        return -QMAX if self.signed else 0


def quantize_multiplier(m: float) -> tuple[int, int]:
    """``(M0, sh)`` with ``m ~= M0 * 2**-sh`` and ``2**30 <= M0 < 2**31`` (``M0 = 0`` if
    ``m = 0``; for tiny ``m`` the shift is capped at 62 and ``M0`` gets smaller)."""
    if not m > 0:
        return 0, 1
    mant, exp = math.frexp(m)                  # m = mant * 2**exp, mant in [0.5, 1)
    m0 = int(round(mant * (1 << 31)))
    if m0 == 1 << 31:
        m0 //= 2
        exp += 1
    sh = 31 - exp
    if sh < 1:
        raise DnnError(f"requantisation multiplier {m:g} is too large for a 31-bit fixed point")
    if sh > 62:
        m0 >>= sh - 62
        sh = 62
    return m0, sh


def requantize(acc, m0, sh, lo, hi=QMAX) -> np.ndarray:
    """``clip((acc * M0 + 2**(sh-1)) >> sh, lo, hi)`` per output channel (last axis)."""
    acc = np.asarray(acc, dtype=np.int64)
    m0 = np.asarray(m0, dtype=np.int64)
    sh = np.asarray(sh, dtype=np.int64)
    y = (acc * m0 + (np.int64(1) << (sh - 1))) >> sh
    return np.clip(y, lo, hi)


def resolve_assignment(graph: Graph, assign) -> dict:
    """Per GEMM layer name -> spec or :class:`~sim.golden.ArrayModel`.

    ``assign``: ``None`` (exact), a spec / name / ArrayModel for every layer, or a dict
    ``{layer: target}`` where the key ``"*"`` sets the default (exact otherwise).
    """
    layers = [n.name for n in graph.gemm_nodes()]

    def one(target):
        if isinstance(target, (MultiplierSpec, ArrayModel)):
            return target
        return parse(target, width=8, signed=True)

    if assign is None:
        return {name: one("exact") for name in layers}
    if not isinstance(assign, dict):
        t = one(assign)
        return {name: t for name in layers}
    unknown = [k for k in assign if k != "*" and k not in layers]
    if unknown:
        raise DnnError(f"unknown layer(s) {', '.join(unknown)}; GEMM layers of "
                       f"{graph.name}: {', '.join(layers)}")
    default = one(assign.get("*", "exact"))
    return {name: one(assign[name]) if name in assign else default for name in layers}


def _check_target(name, target):
    spec = target.grid[0][0] if isinstance(target, ArrayModel) else target
    if spec.width != 8 or not spec.signed:
        raise DnnError(f"layer {name}: the int8 network needs 8-bit signed multipliers, "
                       f"not {spec.full_name}")


class QuantizedModel:
    """A float :class:`~sim.dnn.layers.Graph` quantised to int8 with calibration images."""

    def __init__(self, graph: Graph, calib_x: np.ndarray):
        if len(calib_x) == 0:
            raise DnnError("calibration needs at least one image")
        self.graph = graph
        _, env = run_float(graph, calib_x, keep=True)
        self.tq: dict[str, TensorQuant] = {}
        self.tq[graph.input] = self._calibrated(env[graph.input])
        self.params: dict[str, dict] = {}
        for node in graph.nodes:
            src = self.tq[node.inputs[0]]
            if node.op in GEMM_OPS:
                out = self._calibrated(env[node.output], node.attrs.get("relu"))
                self.tq[node.output] = out
                self.params[node.name] = self._gemm_params(node, src, out)
            elif node.op == "add":
                out = self._calibrated(env[node.output], node.attrs.get("relu"))
                self.tq[node.output] = out
                ms = [int(round(self.tq[t].scale / out.scale * (1 << ADD_SHIFT)))
                      for t in node.inputs]
                self.params[node.name] = {"m": ms}
            elif node.op == "relu":
                self.tq[node.output] = TensorQuant(src.scale, False)
            else:                               # pools, flatten: the scale passes through
                self.tq[node.output] = src

    @staticmethod
    def _calibrated(x, relu=False) -> TensorQuant:
        x = np.asarray(x)
        peak = float(np.abs(x).max()) if x.size else 0.0
        signed = bool(x.size and x.min() < 0) and not relu
        return TensorQuant(peak / QMAX if peak > 0 else 1.0, signed)

    def _gemm_params(self, node, src: TensorQuant, out: TensorQuant) -> dict:
        w = np.asarray(node.attrs["W"], dtype=np.float64)
        wmat = w.reshape(w.shape[0], -1)                      # N x K
        peak = np.abs(wmat).max(axis=1)
        w_scale = np.where(peak > 0, peak / QMAX, 1.0)
        qw = np.clip(np.rint(wmat / w_scale[:, None]), -QMAX, QMAX).astype(np.int64)
        acc_scale = src.scale * w_scale
        qb = np.rint(np.asarray(node.attrs["b"], dtype=np.float64) / acc_scale)
        qb = np.clip(qb, -(1 << 31), (1 << 31) - 1).astype(np.int64)
        m0, sh = zip(*(quantize_multiplier(s / out.scale) for s in acc_scale))
        return {"qw": qw.T.copy(), "w_scale": w_scale, "acc_scale": acc_scale, "qb": qb,
                "m0": np.array(m0, np.int64), "sh": np.array(sh, np.int64), "lo": out.lo}

    # -- integer execution -----------------------------------------------------------------------
    def quantize_input(self, x) -> np.ndarray:
        t = self.tq[self.graph.input]
        q = np.floor(np.asarray(x, dtype=np.float64) / t.scale + 0.5)
        return np.clip(q, t.lo, QMAX).astype(np.int64)

    def gemm_operands(self, node, xq) -> tuple[np.ndarray, np.ndarray, tuple]:
        """Activation matrix ``A (M x K)``, weight matrix ``B (K x N)`` and the output layout."""
        p = self.params[node.name]
        if node.op == "conv":
            w = node.attrs["W"]
            cols, oh, ow = im2col(xq, w.shape[2:], node.attrs["stride"], node.attrs["pads"])
            return cols, p["qw"], ("conv", xq.shape[0], oh, ow)
        if xq.ndim != 2:
            raise DnnError(f"dense layer {node.name!r} needs a 2-D input, got {xq.shape}")
        return xq, p["qw"], ("dense",)

    def gemm(self, node, a, b, target, acc_width=32, overflow="wrap") -> np.ndarray:
        """The accelerator's accumulators (bias included) for one GEMM layer."""
        bias = self.params[node.name]["qb"][None, :]
        if isinstance(target, ArrayModel):
            acc = emulate_tiled(a, b, target)
            return accumulate(acc, np.broadcast_to(bias, acc.shape), target.acc_width,
                              target.overflow)
        return emulate_gemm(a, b, target, acc_width=acc_width, overflow=overflow, start=bias)

    def run(self, x, assign=None, *, acc_width: int = 32, overflow: str = "wrap",
            capture: bool = False, quantized_input: bool = False):
        """Integer inference. Returns float logits (dequantised accumulators) and, with
        ``capture``, ``{layer: {"a": A, "b": B, "acc": accumulators}}`` for every GEMM layer."""
        targets = resolve_assignment(self.graph, assign)
        for name, target in targets.items():
            _check_target(name, target)
        g = self.graph
        env = {g.input: np.asarray(x, np.int64) if quantized_input else self.quantize_input(x)}
        records = {}
        for node in g.nodes:
            args = [env[t] for t in node.inputs]
            env[node.output] = self._run_node(node, args, targets, acc_width, overflow,
                                              records if capture else None,
                                              final=node.output == g.output)
        out = env[g.output]
        producer = next((n for n in g.nodes if n.output == g.output), None)
        if producer is None or producer.op not in GEMM_OPS:
            out = out.astype(np.float64) * self.tq[g.output].scale
        return (out, records) if capture else out

    def _run_node(self, node, args, targets, acc_width, overflow, records, final):
        x = args[0]
        if node.op in GEMM_OPS:
            a, b, layout = self.gemm_operands(node, x)
            acc = self.gemm(node, a, b, targets[node.name], acc_width, overflow)
            if records is not None:
                records[node.name] = {"a": a, "b": b, "acc": acc}
            if final:            # the host reads the accumulators and dequantises them
                y = acc * self.params[node.name]["acc_scale"]
            else:
                p = self.params[node.name]
                y = requantize(acc, p["m0"], p["sh"], p["lo"])
            if layout[0] == "conv":
                _, bsz, oh, ow = layout
                y = y.reshape(bsz, oh, ow, -1).transpose(0, 3, 1, 2)
            return y
        if node.op == "add":
            p = self.params[node.name]
            total = args[0] * p["m"][0] + args[1] * p["m"][1] + (1 << (ADD_SHIFT - 1))
            return np.clip(total >> ADD_SHIFT, self.tq[node.output].lo, QMAX)
        if node.op == "relu":
            return np.maximum(x, 0)
        if node.op == "flatten":
            return x.reshape(x.shape[0], -1)
        kernel, stride, pads = pool_params(node, x.shape)
        if node.op == "maxpool":
            return pool(x, "max", kernel, stride, pads)
        total, count = pool(x, "avg", kernel, stride, pads,
                            node.attrs.get("count_include_pad", False))
        return (2 * total + count) // (2 * count)
