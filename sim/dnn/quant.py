"""8-bit post-training quantisation and bit-exact integer inference on the emulated accelerator.

Scheme (what an integer accelerator with int32 accumulators does; real value = scale * integer)
-------------------------------------------------------------------------------------------
* **Weights**: symmetric, per output channel: ``S_w[c] = max|W[c]| / 127``,
  ``w = clip(rint(W / S_w[c]), -127, 127)`` (``-128`` unused, so the range is symmetric).
* **Activations**, calibrated per tensor on held-out data (never the test set), in one of two
  modes chosen per layer (``activations``; :func:`activation_modes`):

  - ``sym`` (default): ``q = clip(floor(x / S + 1/2), lo, 127)``, ``S = max|x| / 127``; a tensor
    that is never negative (inputs in ``[0, 1]``, ReLU outputs) is ``0..127`` (``lo = 0``),
    otherwise ``-127..127``. Zero point 0.
  - ``asym``: uint8 with a zero point, ``q = clip(floor(x / S + 1/2) + z, 0, 255)``,
    ``S = (max(x, 0) - min(x, 0)) / 255``, ``z = rint(-min(x, 0) / S)``; real value
    ``S (q - z)``. ReLU outputs get ``z = 0`` and the whole ``0..255``.

* **GEMM layers** (conv via im2col, one GEMM per group for grouped / depthwise conv; dense): the
  layer needs ``sum_k (q_k - z) w_k``. The multiplier gets the operands ``a = q + o_a`` and
  ``b = w + o_w`` (:func:`operand_offsets`):

  ============================  ==================  ============================================
  activations / multiplier      ``a`` (activation)  ``b`` (weight)
  ============================  ==================  ============================================
  sym / signed 8x8              ``q``: -127..127    ``w``: -127..127
  asym / signed 8x8             ``q - 128``         ``w``
  sym, never negative / unsigned  ``q``: 0..127     ``w + 128``: 1..255
  sym, signed / unsigned 8x8    ``q + 128``: 1..255 ``w + 128``
  asym / unsigned 8x8           ``q``: 0..255       ``w + 128``
  ============================  ==================  ============================================

  so that ``sum_k (q_k - z) w_k = sum_k a_k b_k - o_w sum_k a_k - c sum_k b_k + K c o_w`` with
  ``c = o_a + z``: the accelerator computes ``acc = start + sum_k p(a_k, b_k)`` with the
  layer's (approximate) multiplier ``p`` (:func:`sim.emulate.emulate_gemm`, bit-exact with
  :mod:`sim.golden`) in a 32-bit accumulator (``wrap`` by default; width and overflow mode
  configurable) that starts at ``start = bias_q - c sum_k b_k + K c o_w - o_w sum_k a_k``: the
  weight column sums are constants of the layer, the activation row sums ``sum_k a_k`` are
  exact integer sums over the operands streamed into the array (what gemmlowp-style integer
  hardware computes beside the GEMM). The multiplier thus really sees the operands above, and
  its error ``p(a, b) - a b`` is what reaches the accumulator; with an exact multiplier every
  row of the table gives the same accumulators. Convolution padding is the zero point (real 0):
  ``a = z + o_a``. ``bias_q = rint(b / (S_x S_w[c]))``.
* **Requantisation** to the next layer's integers: ``M = S_x S_w[c] / S_y`` is stored as a 31-bit
  integer multiplier and a right shift, ``M = M0 * 2^-sh`` with ``M0`` in ``[2^30, 2^31)``;
  ``y = clip(z_y + ((acc * M0 + 2^(sh-1)) >> sh), lo, hi)`` (int64 product, arithmetic shift:
  round half up). A fused ReLU / clip (ReLU6) sets ``lo`` / ``hi`` to the quantised bounds
  (``lo = z_y`` for ReLU); otherwise ``lo, hi`` is the tensor's range.
* **Residual add / concat**: ``y = clip(z_y + ((sum_i (q_i - z_i) M_i + 2^23) >> 24), lo, hi)``
  with ``M_i = rint(S_i / S_y * 2^24)`` (one term per input for concat).
* **Pooling** keeps the input scale and zero point: max pool is exact on integers; average pool
  is ``z + floor((2 * sum(q - z) + count) / (2 * count))`` (round half up).
* **Logits**: the last GEMM's accumulator is not requantised; the host reads it and dequantises
  with ``S_x S_w[c]`` (so the arg-max sees the per-channel scales); a ReLU / clip fused into
  that GEMM is applied to the dequantised values, as in the float model.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass

import numpy as np

from hw.mult import MultiplierError, MultiplierSpec, parse
from sim.emulate import emulate_gemm, emulate_tiled
from sim.golden import ArrayModel

from .errors import DnnError
from .layers import GEMM_OPS, Graph, activation_range, im2col, pool, pool_params, run_float

__all__ = ["TensorQuant", "QuantizedModel", "quantize_multiplier", "requantize",
           "resolve_assignment", "match_layers", "match_names", "activation_modes", "operand_offsets",
           "gemm_params", "calibrate", "layer_gemm", "target_signed", "ADD_SHIFT", "MODES",
           "PASS_THROUGH"]

QMAX = 127
ADD_SHIFT = 24
MODES = ("sym", "asym")
#: Operators whose output keeps the input's scale and zero point.
PASS_THROUGH = ("maxpool", "avgpool", "flatten", "relu", "clip")


@dataclass(frozen=True)
class TensorQuant:
    """Scale, zero point and integer range of one activation tensor (module docstring)."""

    scale: float
    signed: bool
    zero_point: int = 0
    asym: bool = False

    @property
    def lo(self) -> int:
        return 0 if self.asym else (-QMAX if self.signed else 0)

    @property
    def hi(self) -> int:
        return 255 if self.asym else QMAX

    @property
    def mode(self) -> str:
        return "asym" if self.asym else "sym"

    def quantize(self, x) -> np.ndarray:
        """Host-side quantisation ``clip(floor(x / S + 1/2) + z, lo, hi)`` (float64)."""
        q = np.floor(np.asarray(x, dtype=np.float64) / self.scale + 0.5) + self.zero_point
        return np.clip(q, self.lo, self.hi).astype(np.int64)

    def clamp(self, f_lo: float, f_hi: float) -> tuple[int, int]:
        """Integer bounds of the real interval ``[f_lo, f_hi]`` (infinite: the range)."""
        lo, hi = self.lo, self.hi
        if math.isfinite(f_lo):
            lo = max(lo, int(math.floor(f_lo / self.scale + 0.5)) + self.zero_point)
        if math.isfinite(f_hi):
            hi = min(hi, int(math.floor(f_hi / self.scale + 0.5)) + self.zero_point)
        return lo, max(lo, hi)

    def dequantize(self, q) -> np.ndarray:
        return (np.asarray(q, np.float64) - self.zero_point) * self.scale


def calibrate(x, mode: str = "sym", nonneg: bool = False) -> TensorQuant:
    """The :class:`TensorQuant` of calibration values ``x`` (``nonneg``: a ReLU output)."""
    x = np.asarray(x, dtype=np.float64)
    lo_f = min(float(x.min()), 0.0) if x.size else 0.0
    hi_f = max(float(x.max()), 0.0) if x.size else 0.0
    if nonneg:
        lo_f = 0.0
    if mode == "asym":
        scale = (hi_f - lo_f) / 255 if hi_f > lo_f else 1.0
        z = int(np.clip(np.rint(-lo_f / scale), 0, 255))
        return TensorQuant(scale, lo_f < 0, z, True)
    peak = max(-lo_f, hi_f)
    return TensorQuant(peak / QMAX if peak > 0 else 1.0, lo_f < 0)


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


def requantize(acc, m0, sh, lo, hi=QMAX, zero_point=0) -> np.ndarray:
    """``clip(z + ((acc * M0 + 2**(sh-1)) >> sh), lo, hi)`` per output channel (last axis)."""
    acc = np.asarray(acc, dtype=np.int64)
    m0 = np.asarray(m0, dtype=np.int64)
    sh = np.asarray(sh, dtype=np.int64)
    y = ((acc * m0 + (np.int64(1) << (sh - 1))) >> sh) + zero_point
    return np.clip(y, lo, hi)


# -- naming layers ---------------------------------------------------------------------------------

def match_layers(graph: Graph, assign: dict, what: str = "assignment") -> dict:
    """``{gemm_layer: value}`` for the layers a dict names: exact layer names first, then glob
    patterns (``fnmatch``: ``layer1.*``) in dict order, then ``"*"``; unnamed layers are left
    out. Unknown names, names of layers without a GEMM and patterns that match no GEMM layer
    are one-line :class:`DnnError`."""
    return match_names([n.name for n in graph.gemm_nodes()],
                       {n.name: n.op for n in graph.nodes if n.op not in GEMM_OPS}, assign,
                       what, graph.name)


def match_names(layers, others: dict, assign: dict, what: str = "assignment",
                model: str = "the model") -> dict:
    """:func:`match_layers` on a list of GEMM layer names and ``{name: kind}`` of the other
    layers (for the error that names a layer without a GEMM)."""
    out, patterns = {}, []
    for key, value in assign.items():
        if not isinstance(key, str) or not key:
            raise DnnError(f"{what}: layer names must be non-empty strings, not {key!r}")
        if key == "*":
            continue
        if key in layers:
            out[key] = value
        elif key in others:
            raise DnnError(f"{what}: layer {key!r} of {model} is a {others[key]}, which "
                           f"has no GEMM (GEMM layers: {_listing(layers)})")
        elif any(c in key for c in "*?["):
            hits = fnmatch.filter(layers, key)
            if not hits:
                raise DnnError(f"{what}: pattern {key!r} matches no GEMM layer of {model} "
                               f"(GEMM layers: {_listing(layers)})")
            patterns.append((hits, value))
        else:
            raise DnnError(f"{what}: unknown layer {key!r}; GEMM layers of {model}: "
                           f"{_listing(layers)}")
    for hits, value in patterns:
        for name in hits:
            out.setdefault(name, value)
    if "*" in assign:
        for name in layers:
            out.setdefault(name, assign["*"])
    return out


def _listing(names, limit=12) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _one_target(target, signed: bool):
    if isinstance(target, (MultiplierSpec, ArrayModel)):
        return target
    try:
        return parse(target, width=8, signed=signed)
    except MultiplierError as exc:
        raise DnnError(str(exc)) from None


def resolve_assignment(graph: Graph, assign, signed: bool = True) -> dict:
    """Per GEMM layer name -> spec or :class:`~sim.golden.ArrayModel`.

    ``assign``: ``None`` (exact), a spec / name / ArrayModel for every layer, or a dict
    ``{layer or glob: target}`` where the key ``"*"`` sets the default (exact otherwise); names
    are parsed as 8-bit multipliers of the given signedness.
    """
    layers = [n.name for n in graph.gemm_nodes()]
    if assign is None:
        t = _one_target("exact", signed)
        return {name: t for name in layers}
    if not isinstance(assign, dict):
        t = _one_target(assign, signed)
        return {name: t for name in layers}
    chosen = match_layers(graph, assign)
    exact = _one_target("exact", signed)
    cache = {}

    def one(v):
        key = v if isinstance(v, str) else id(v)
        if key not in cache:
            cache[key] = _one_target(v, signed)
        return cache[key]

    return {name: one(chosen[name]) if name in chosen else exact for name in layers}


def target_signed(target) -> bool:
    """Signedness of a multiplier or of a (uniformly signed) array."""
    if isinstance(target, ArrayModel):
        kinds = {s.signed for s in target.distinct_specs()}
        if len(kinds) != 1:
            raise DnnError("an array mixing signed and unsigned multipliers cannot run a layer")
        return kinds.pop()
    return target.signed


def _check_target(name, target):
    specs = target.distinct_specs() if isinstance(target, ArrayModel) else [target]
    for spec in specs:
        if spec.width != 8:
            raise DnnError(f"layer {name}: the 8-bit network needs 8-bit multipliers, "
                           f"not {spec.full_name}")
    target_signed(target)


def activation_modes(graph: Graph, activations=None) -> dict:
    """Quantisation mode (``sym`` / ``asym``) of every tensor.

    ``activations``: ``None`` / ``"sym"`` / ``"asym"`` for every layer, or a dict
    ``{gemm layer or glob: mode, "*": default}``: a layer's mode is that of its *input*
    activations (the multiplier's ``a`` operand). Tensors made by pools, flatten and
    stand-alone ReLU/clip share their input's quantisation; a tensor that feeds GEMM layers of
    different modes is an error; tensors that feed no GEMM layer take the default.
    """
    if activations is None:
        activations = "sym"
    if isinstance(activations, str):
        activations = {"*": activations}
    if not isinstance(activations, dict):
        raise DnnError(f"activations must be 'sym', 'asym' or a dict, not {activations!r}")
    for v in activations.values():
        if v not in MODES:
            raise DnnError(f"activation mode {v!r} unknown; expected one of {', '.join(MODES)}")
    default = activations.get("*", "sym")
    chosen = match_layers(graph, activations, "activations")
    producer = {n.output: n for n in graph.nodes}

    def root(t):
        while t in producer and producer[t].op in PASS_THROUGH:
            t = producer[t].inputs[0]
        return t

    want: dict[str, tuple[str, str]] = {}
    for node in graph.gemm_nodes():
        mode = chosen.get(node.name, default)
        r = root(node.inputs[0])
        if r in want and want[r][0] != mode:
            raise DnnError(f"activations: tensor {r!r} feeds layer {want[r][1]} ({want[r][0]}) "
                           f"and layer {node.name} ({mode}); give both the same mode")
        want.setdefault(r, (mode, node.name))
    tensors = [graph.input] + [n.output for n in graph.nodes]
    return {t: want.get(root(t), (default,))[0] for t in tensors}


def operand_offsets(src: TensorQuant, signed_mult: bool) -> tuple[int, int]:
    """``(o_a, o_w)``: what is added to the activation integers and to the weights to make the
    multiplier's operands (table in the module docstring)."""
    if signed_mult:
        return (-128 if src.asym else 0), 0
    return (0 if (src.asym or not src.signed) else 128), 128


def gemm_params(w, b, src: TensorQuant, out: TensorQuant, act=(-np.inf, np.inf)) -> dict:
    """Integer parameters of one GEMM layer with float weights ``w (Cout, ...)`` and bias ``b``,
    input quantisation ``src``, output quantisation ``out`` and fused activation interval
    ``act``: ``qw (Kg x Cout)``, ``w_scale``, ``acc_scale = S_x S_w``, ``qb``, ``m0``, ``sh``
    (requantisation), ``lo``, ``hi`` (output clamp), ``zero_point`` (of the output)."""
    w = np.asarray(w, dtype=np.float64)
    wmat = w.reshape(w.shape[0], -1)                      # Cout x Kg
    peak = np.abs(wmat).max(axis=1)
    w_scale = np.where(peak > 0, peak / QMAX, 1.0)
    qw = np.clip(np.rint(wmat / w_scale[:, None]), -QMAX, QMAX).astype(np.int64)
    acc_scale = src.scale * w_scale
    qb = np.rint(np.asarray(b, dtype=np.float64).reshape(-1) / acc_scale)
    qb = np.clip(qb, -(1 << 31), (1 << 31) - 1).astype(np.int64)
    m0, sh = zip(*(quantize_multiplier(s / out.scale) for s in acc_scale))
    lo, hi = out.clamp(*act)
    return {"qw": qw.T.copy(), "w_scale": w_scale, "acc_scale": acc_scale, "qb": qb,
            "m0": np.array(m0, np.int64), "sh": np.array(sh, np.int64), "lo": lo, "hi": hi,
            "zero_point": out.zero_point}


def _narrow(xq) -> np.ndarray:
    """``xq`` as int16 when its values fit (8-bit activations do): the im2col patches and
    operand offsets of a GEMM layer then move a quarter of the bytes, and the emulator reads
    them without an int64 copy. Values are checked, not assumed (a quantised input given by
    the caller may hold anything), so nothing wraps."""
    xq = np.asarray(xq)
    if xq.dtype.kind != "i" or xq.dtype.itemsize <= 2 or not xq.size:
        return xq
    lo, hi = int(xq.min()), int(xq.max())
    if lo < -(1 << 14) or hi >= 1 << 14:      # room for the operand offsets added later
        return xq
    return xq.astype(np.int16)


def layer_gemm(a, b, target, start, acc_width=32, overflow="wrap") -> np.ndarray:
    """``start + sum_k p(a_k, b_k)`` with the accumulator rules: ``a (M x K)``, ``b (K x N)``,
    or grouped ``a (G, M, Kg)``, ``b (G, Kg, Ng)`` (output column ``g Ng + n``); ``start`` is
    ``M x N`` (``None``: zero). The accumulation starts from ``start``: one multiplier, the MAC
    accumulator's initial value; an :class:`~sim.golden.ArrayModel`, the host accumulator's,
    to which the array's passes are added (:func:`sim.golden.tiled_gemm`)."""
    a = np.asarray(a)
    if a.ndim == 3:
        g, m, _ = a.shape
        ng = b.shape[2]
        parts = [layer_gemm(a[i], b[i], target,
                            None if start is None else start[:, i * ng:(i + 1) * ng],
                            acc_width, overflow) for i in range(g)]
        return np.concatenate(parts, axis=1) if parts else np.zeros((m, 0), np.int64)
    if isinstance(target, ArrayModel):    # the host's accumulator starts at ``start``
        return emulate_tiled(a, b, target, start)
    return emulate_gemm(a, b, target, acc_width=acc_width, overflow=overflow, start=start)


class QuantizedModel:
    """A float :class:`~sim.dnn.layers.Graph` quantised with calibration images.

    ``activations``: per-layer mode (:func:`activation_modes`). ``tq``: a ready
    ``{tensor: TensorQuant}`` (e.g. of a retrained network) instead of calibrating; then
    ``calib_x`` may be ``None``.
    """

    def __init__(self, graph: Graph, calib_x=None, *, activations=None, tq: dict | None = None):
        self.graph = graph
        self.modes = activation_modes(graph, activations)
        if tq is not None:
            missing = [t for t in self.modes if t not in tq]
            if missing:
                raise DnnError(f"tensor quantisation given for {graph.name} lacks "
                               f"{', '.join(missing[:5])}")
            self.tq = dict(tq)
            self.modes = {t: q.mode for t, q in self.tq.items()}
        else:
            if calib_x is None or len(calib_x) == 0:
                raise DnnError("calibration needs at least one image")
            calib_x = np.asarray(calib_x, dtype=np.float64)
            shape = tuple(graph.input_shape)
            if calib_x.ndim < 2 or tuple(calib_x.shape[1:]) != shape:
                if calib_x.ndim >= 2 and calib_x[0].size == int(np.prod(shape)):
                    calib_x = calib_x.reshape((-1,) + shape)
                else:
                    raise DnnError(f"calibration data of shape {tuple(calib_x.shape[1:])} does "
                                   f"not fit {graph.name}, which expects {shape}")
            self.tq = self._calibrate(calib_x)
        self.params: dict[str, dict] = {}
        for node in graph.nodes:
            out = self.tq[node.output]
            if node.op in GEMM_OPS:
                src = self.tq[node.inputs[0]]
                self.params[node.name] = gemm_params(node.attrs["W"], node.attrs["b"], src, out,
                                                     activation_range(node.attrs))
                self.params[node.name]["groups"] = node.attrs.get("groups", 1)
            elif node.op in ("add", "concat"):
                lo, hi = out.clamp(*activation_range(node.attrs))
                ms = [int(round(self.tq[t].scale / out.scale * (1 << ADD_SHIFT)))
                      for t in node.inputs]
                self.params[node.name] = {"m": ms, "lo": lo, "hi": hi}

    def _calibrate(self, calib_x) -> dict:
        graph = self.graph
        _, env = run_float(graph, calib_x, keep=True)
        tq = {graph.input: calibrate(env[graph.input], self.modes[graph.input])}
        for node in graph.nodes:
            src = tq[node.inputs[0]]
            if node.op in GEMM_OPS + ("add", "concat"):
                nonneg = activation_range(node.attrs)[0] >= 0
                tq[node.output] = calibrate(env[node.output], self.modes[node.output], nonneg)
            elif node.op in ("relu", "clip") and not src.asym:
                lo = 0.0 if node.op == "relu" else node.attrs["lo"]
                tq[node.output] = TensorQuant(src.scale, src.signed and lo < 0)
            else:                               # pools, flatten, asym relu: all passes through
                tq[node.output] = src
        return tq

    # -- integer execution -----------------------------------------------------------------------
    def quantize_input(self, x) -> np.ndarray:
        return self.tq[self.graph.input].quantize(x)

    def gemm_operands(self, node, xq, signed_mult: bool = True):
        """The multiplier's operands of one GEMM layer and the accumulator start:
        ``(A, B, start, layout)`` with ``A (M x K)``, ``B (K x N)`` (grouped conv:
        ``A (G, M, Kg)``, ``B (G, Kg, Ng)``) and ``start (M x N)`` (module docstring)."""
        p = self.params[node.name]
        src = self.tq[node.inputs[0]]
        off_a, off_w = operand_offsets(src, signed_mult)
        z = src.zero_point
        xq = _narrow(xq)
        if node.op == "conv":
            w = node.attrs["W"]
            groups = p["groups"]
            if xq.ndim != 4 or xq.shape[1] != w.shape[1] * groups:
                raise DnnError(f"conv layer {node.name!r} expects {w.shape[1] * groups} input "
                               f"channels, got a tensor of shape {tuple(xq.shape)}")
            cols, oh, ow = im2col(xq, w.shape[2:], node.attrs["stride"], node.attrs["pads"],
                                  pad_value=z, dilation=node.attrs.get("dilation", (1, 1)))
            layout = ("conv", xq.shape[0], oh, ow)
        else:
            if xq.ndim != 2 or xq.shape[1] != p["qw"].shape[0]:
                raise DnnError(f"dense layer {node.name!r} expects {p['qw'].shape[0]} inputs, "
                               f"got a tensor of shape {tuple(xq.shape)}")
            cols, groups, layout = xq, 1, ("dense",)
        a = cols + off_a if off_a else cols
        b = p["qw"] + off_w if off_w else p["qw"]
        c = off_a + z
        m, kg, n = a.shape[0], b.shape[0], b.shape[1]
        ng = n // groups
        start = np.broadcast_to(p["qb"][None, :], (m, n))
        if c or off_w:
            colsum = b.sum(axis=0)                               # N
            start = start - c * colsum[None, :] + kg * c * off_w
            if off_w:
                rows = a.reshape(m, groups, kg).sum(axis=2)      # M x G
                start = start - off_w * np.repeat(rows, ng, axis=1)
        if groups > 1:
            a = a.reshape(m, groups, kg).transpose(1, 0, 2)
            b = b.reshape(kg, groups, ng).transpose(1, 0, 2)
        return a, b, np.ascontiguousarray(start, dtype=np.int64), layout

    def run(self, x, assign=None, *, acc_width: int = 32, overflow: str = "wrap",
            capture: bool = False, quantized_input: bool = False, signed: bool = True):
        """Integer inference. Returns float logits (dequantised accumulators) and, with
        ``capture``, ``{layer: {"a": A, "b": B, "acc": accumulators}}`` for every GEMM layer
        (``A``, ``B``: the multiplier's operands). ``signed``: how multiplier names in
        ``assign`` are parsed."""
        targets = resolve_assignment(self.graph, assign, signed)
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
            out = self.tq[g.output].dequantize(out)
        return (out, records) if capture else out

    def _run_node(self, node, args, targets, acc_width, overflow, records, final):
        x = args[0]
        if node.op in GEMM_OPS:
            target = targets[node.name]
            a, b, start, layout = self.gemm_operands(node, x, target_signed(target))
            acc = layer_gemm(a, b, target, start, acc_width, overflow)
            if records is not None:
                records[node.name] = {"a": np.asarray(a, np.int64),
                                      "b": np.asarray(b, np.int64), "acc": acc}
            p = self.params[node.name]
            if final:            # the host reads the accumulators and dequantises them
                y = acc * p["acc_scale"]
                lo, hi = activation_range(node.attrs)
                if lo > -np.inf or hi < np.inf:      # a fused ReLU / clip on the logits
                    y = np.clip(y, lo, hi)
            else:
                y = requantize(acc, p["m0"], p["sh"], p["lo"], p["hi"], p["zero_point"])
            if layout[0] == "conv":
                _, bsz, oh, ow = layout
                y = y.reshape(bsz, oh, ow, -1).transpose(0, 3, 1, 2)
            return y
        if node.op in ("add", "concat"):
            p = self.params[node.name]
            out = self.tq[node.output]
            rnd = 1 << (ADD_SHIFT - 1)
            terms = [(q - self.tq[t].zero_point) * m for q, t, m in zip(args, node.inputs, p["m"])]
            if node.op == "add":
                y = ((terms[0] + terms[1] + rnd) >> ADD_SHIFT) + out.zero_point
            else:
                y = np.concatenate([((t + rnd) >> ADD_SHIFT) + out.zero_point for t in terms],
                                   axis=node.attrs.get("axis", 1))
            return np.clip(y, p["lo"], p["hi"])
        src = self.tq[node.inputs[0]]
        if node.op == "relu":
            return np.maximum(x, src.zero_point)
        if node.op == "clip":
            return np.clip(x, *src.clamp(node.attrs["lo"], node.attrs["hi"]))
        if node.op == "flatten":
            return x.reshape(x.shape[0], -1)
        kernel, stride, pads = pool_params(node, x.shape)
        if node.op == "maxpool":
            return pool(x, "max", kernel, stride, pads)
        z = src.zero_point
        total, count = pool(x - z if z else x, "avg", kernel, stride, pads,
                            node.attrs.get("count_include_pad", False))
        return (2 * total + count) // (2 * count) + z
