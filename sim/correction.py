"""Accuracy recovery without retraining: bias compensation and control-variate (CV) correction
of approximate multipliers in a GEMM array (Zervakis et al., DAC 2021 / arXiv 2412.16757).

Definition
----------
A multiplier ``p`` with error ``e(a, w) = p(a, w) - a*w`` (``a`` activation, ``w`` weight) is
approximated, for every weight value ``w``, by a line in the activation::

    e(a, w) ~ alpha(w) * a + beta(w)

fitted by least squares over the activation distribution ``P(a)`` (uniform over the operand
range by default, or a histogram, e.g. of a DNN layer's calibration activations):
``alpha(w) = Cov_P(a, e(., w)) / Var_P(a)``, ``beta(w) = E_P[e(., w)] - alpha(w) E_P[a]``. The
fit is exact where the family is linear in ``a``: perforation (``p = a * w'`` with the skipped
rows of ``w`` cleared) gives the closed form ``alpha(w) = w' - w``, ``beta = 0``. Bias-only
compensation is the special case ``alpha = 0``, ``beta(w) = E_P[e(., w)]``.

For output column ``n`` of a tile (ws: one pass of ``K_t <= rows`` weight rows; os: the whole
``K``), the correction subtracted from the column's accumulator is
``alpha_n * sum_k a_k + sum_k beta(w_kn)`` with ``alpha_n = mean_k alpha(w_kn)``: ``sum_k a_k``
is one accumulator per activation row shared by all columns, ``alpha_n`` and the beta sum are
per-column constants computed on the host when the weights are loaded.

Fixed point (what the hardware computes, bit for bit; :func:`apply`)
-------------------------------------------------------------------
Per column two signed constants, ``g`` (``G = alpha_bits`` bits) and ``h`` (``H = beta_bits``
bits), with ``F = frac`` fraction bits (:func:`column_constants`)::

    g_n = -floor(2^F alpha_n + 1/2)
    h_n = -floor(2^F sum_k beta(w_kn) + 1/2) + (2^(F-1) if F > 0 else 0)
    S   = sum_k a_k                  (exact; os: reduced to SW = sum_bits bits, wrap)
    y   = reduce_A(acc + ((g_n * S + h_n) >> F))      (>>: arithmetic shift, floor)

so ``(g S + h) >> F = round(-(alpha_n S + sum beta))`` up to the quantisation of ``alpha_n``.
``reduce_A`` is the accumulator's overflow rule (wrap / saturate, :func:`sim.golden.accumulate`).
``bias``: ``F = 0``, no ``g``, no ``S``: ``y = reduce_A(acc + h_n)``. Constants that do not fit
their widths are refused (:class:`CorrectionError`), never wrapped.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from hw.errors import ToolkitError
from hw.mult import MultiplierSpec

__all__ = ["MODES", "CorrectionError", "CorrectionFormat", "default_format", "linear_fit",
           "column_constants", "activation_sums", "apply", "check_correctable",
           "residual_moments", "MAX_TABLE_WIDTH", "DEFAULT_FRAC"]

MODES = ("none", "bias", "cv")
#: The fit needs the error table of the multiplier.
MAX_TABLE_WIDTH = 12
#: Default fraction bits of ``alpha_n``.
DEFAULT_FRAC = 6
#: os arrays: default activation-sum width is N + this (+1 unsigned): K up to 4096 exact.
OS_SUM_EXTRA_BITS = 12


class CorrectionError(ToolkitError, ValueError):
    """A correction that is undefined or whose constants do not fit (one-line message)."""


@dataclass(frozen=True)
class CorrectionFormat:
    """Fixed-point format of the correction (module docstring) and, for the host, the
    activation distribution the constants are fitted to.

    ``mode``: ``bias`` or ``cv``. ``frac`` F, ``alpha_bits`` G (0 for bias), ``beta_bits`` H,
    ``sum_bits`` SW (0 for bias). ``dist``: ``None`` (uniform) or a tuple of probabilities
    over the activation operand values in ascending order (host-side only: the hardware never
    sees it)."""

    mode: str
    frac: int
    alpha_bits: int
    beta_bits: int
    sum_bits: int
    dist: tuple | None = None

    def __post_init__(self):
        if self.mode not in ("bias", "cv"):
            raise CorrectionError(f"correction mode must be bias or cv, not {self.mode!r}")
        for label, v, lo, hi in (("frac", self.frac, 0, 24), ("alpha_bits", self.alpha_bits, 0, 32),
                                 ("beta_bits", self.beta_bits, 1, 62),
                                 ("sum_bits", self.sum_bits, 0, 40)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
                raise CorrectionError(f"correction {label} must be an integer in {lo}..{hi}, "
                                      f"not {v!r}")
        if self.mode == "bias" and (self.frac or self.alpha_bits or self.sum_bits):
            raise CorrectionError("bias correction has no fraction, alpha or sum bits")
        if self.mode == "cv" and (self.alpha_bits < 2 or self.sum_bits < 2 or self.frac < 1):
            raise CorrectionError("cv correction needs frac >= 1, alpha_bits >= 2 and "
                                  "sum_bits >= 2")

    @property
    def hardware(self) -> dict:
        """The widths as the manifest states them."""
        return {"mode": self.mode, "frac_bits": self.frac, "alpha_bits": self.alpha_bits,
                "beta_bits": self.beta_bits, "sum_bits": self.sum_bits}

    def without_dist(self) -> "CorrectionFormat":
        return CorrectionFormat(self.mode, self.frac, self.alpha_bits, self.beta_bits,
                                self.sum_bits)


def _clog2(n: int) -> int:
    return max(0, (int(n) - 1).bit_length())


def _bits_for(bound: float) -> int:
    """Signed bits holding every integer of magnitude up to ``bound``, plus one guard bit."""
    return int(math.ceil(bound)).bit_length() + 2


def default_format(mode: str, specs, *, rows: int, dataflow: str = "ws", acc_width: int = 32,
                   frac=None, alpha_bits=None, beta_bits=None, sum_bits=None,
                   dist=None) -> CorrectionFormat | None:
    """The format ``python -m hw.gen --correction MODE`` uses for an array of the multipliers
    ``specs`` (``None`` for ``none``); given widths override the defaults.

    Defaults, from the fit of the multipliers over ``dist`` (``None``: uniform; one guard bit
    for other distributions):
    ``F = 6``; ``G = F + bits(max_w |alpha(w)|)``; ``H = F + bits(rows * max_w |beta(w)|)``
    for ws (every pass is at most ``rows`` deep), ``A + F`` for os (``K`` is unbounded);
    ``S`` exact for ws (``N + ceil(log2 rows)`` bits, +1 unsigned), ``N + 12`` (+1 unsigned)
    for os (``K`` up to 4096 exact, wrapping beyond). ``bits(x)``: sign, magnitude and one
    guard bit.
    """
    if mode not in MODES:
        raise CorrectionError(f"unknown correction {mode!r}; choose none, bias or cv")
    if mode == "none":
        given = [n for n, v in (("frac", frac), ("alpha bits", alpha_bits),
                                ("beta bits", beta_bits), ("sum bits", sum_bits)) if v is not None]
        if given:
            raise CorrectionError(f"correction {', '.join(given)} given without a correction "
                                  "(--correction bias or cv)")
        return None
    specs = list(dict.fromkeys([specs] if isinstance(specs, MultiplierSpec) else specs))
    for spec in specs:
        check_correctable(spec, mode)
    width, signed = specs[0].width, specs[0].signed
    extra = 0 if signed else 1
    fits = [linear_fit(spec, mode, dist) for spec in specs]
    max_alpha = max(float(np.abs(a).max()) for a, _ in fits)
    max_beta = max(float(np.abs(b).max()) for _, b in fits)
    if mode == "bias":
        for label, v in (("frac", frac), ("alpha bits", alpha_bits), ("sum bits", sum_bits)):
            if v is not None:
                raise CorrectionError(f"bias correction has no {label} (only cv)")
        f, g, s = 0, 0, 0
    else:
        f = DEFAULT_FRAC if frac is None else frac
        g = f + _bits_for(max_alpha) if alpha_bits is None else alpha_bits
        if sum_bits is not None and dataflow == "ws":
            raise CorrectionError("the activation-sum width of a ws array is fixed (exact over "
                                  "its rows lanes); sum bits are an os option")
        s = (width + _clog2(rows) + extra if dataflow == "ws" else
             width + OS_SUM_EXTRA_BITS + extra) if sum_bits is None else sum_bits
    if beta_bits is None:
        beta_bits = f + (_bits_for(rows * max_beta) if dataflow == "ws" else acc_width)
    names = ", ".join(spec.full_name for spec in specs)
    # given widths must hold the constants of every tile the fit can produce (os: of a
    # one-step tile, K being unbounded)
    need_g = int(math.ceil(max_alpha * (1 << f))).bit_length() + 1
    if mode == "cv" and g < need_g:
        raise CorrectionError(f"--corr-alpha-bits {g} cannot hold the slope constants of "
                              f"{names} (|alpha| up to {max_alpha:.3g} at {f} fraction bits "
                              f"needs {need_g} bits)")
    depth = rows if dataflow == "ws" else 1
    need_h = int(math.ceil(depth * max_beta * (1 << f) + (1 << f))).bit_length() + 1
    if beta_bits < need_h:
        raise CorrectionError(f"--corr-beta-bits {beta_bits} cannot hold the offset constants "
                              f"of {names} (|sum beta| up to {depth * max_beta:.4g} over "
                              f"{depth} rows at {f} fraction bits needs {need_h} bits)")
    if dist is not None:
        dist = tuple(float(x) for x in np.asarray(dist, dtype=np.float64).ravel())
    return CorrectionFormat(mode, f, g, min(beta_bits, 62), s, dist)


def _distribution(spec: MultiplierSpec, dist) -> np.ndarray:
    count = 1 << spec.width
    if dist is None:
        return np.full(count, 1.0 / count)
    p = np.asarray(dist, dtype=np.float64).ravel()
    if p.size != count:
        raise CorrectionError(f"activation distribution has {p.size} entries; "
                              f"{spec.full_name} needs {count}")
    if not np.all(np.isfinite(p)) or (p < 0).any() or p.sum() <= 0:
        raise CorrectionError("activation distribution must be finite, non-negative and not "
                              "all zero")
    return p / p.sum()


def check_correctable(spec: MultiplierSpec, mode: str) -> None:
    """Raise :class:`CorrectionError` where the correction of ``spec`` is undefined."""
    if mode in ("bias", "cv") and spec.width > MAX_TABLE_WIDTH:
        raise CorrectionError(f"--correction {mode} is undefined for {spec.full_name}: the fit "
                              f"needs its error table (operand width up to {MAX_TABLE_WIDTH})")


@functools.lru_cache(maxsize=128)
def _fit_cached(spec, mode, dist):
    check_correctable(spec, mode)
    p = _distribution(spec, dist)
    v = spec.operand_values().astype(np.float64)
    err = spec.table().astype(np.float64) - np.outer(v, v)       # e[a - lo, w - lo]
    mean_e = p @ err
    if mode == "bias":
        return np.zeros_like(mean_e), mean_e
    mean_a = float(p @ v)
    var = float(p @ (v - mean_a) ** 2)
    if not var > 0:
        raise CorrectionError("cv correction is undefined for an activation distribution with "
                              "a single value (zero variance); use --correction bias")
    alpha = (p * (v - mean_a)) @ (err - mean_e) / var
    beta = mean_e - alpha * mean_a
    alpha.flags.writeable = beta.flags.writeable = False
    return alpha, beta


def linear_fit(spec: MultiplierSpec, mode: str = "cv", dist=None):
    """``(alpha, beta)``: float64 vectors over the weight values ``spec.operand_values()``
    (module docstring); ``dist`` over the activation values, ``None``: uniform."""
    if mode not in ("bias", "cv"):
        raise CorrectionError(f"correction mode must be bias or cv, not {mode!r}")
    key = None if dist is None else tuple(float(x) for x in np.asarray(dist).ravel())
    return _fit_cached(spec, mode, key)


def _round(x: np.ndarray) -> np.ndarray:
    return np.floor(x + 0.5)


def column_constants(b, spec_of, fmt: CorrectionFormat):
    """``(g, h)`` (int64, one per column) of the weight tile ``b`` (``K x N``), the PE at
    ``(k, n)`` using ``spec_of(k, n)`` (a spec, or a callable); module docstring. Raises
    :class:`CorrectionError` when a constant does not fit ``G`` / ``H`` bits."""
    b = np.asarray(b, dtype=np.int64)
    k, n = b.shape
    alpha_sum = np.zeros(n)
    beta_sum = np.zeros(n)
    if isinstance(spec_of, MultiplierSpec):
        groups = {spec_of: np.ones((k, n), bool)}
    else:
        groups = {}
        for kk in range(k):
            for nn in range(n):
                groups.setdefault(spec_of(kk, nn), np.zeros((k, n), bool))[kk, nn] = True
    for spec, sel in groups.items():
        alpha, beta = linear_fit(spec, fmt.mode, fmt.dist)
        idx = b - spec.operand_range[0]
        alpha_sum += np.where(sel, alpha[idx], 0.0).sum(axis=0)
        beta_sum += np.where(sel, beta[idx], 0.0).sum(axis=0)
    scale = float(1 << fmt.frac)
    if fmt.mode == "cv" and k:
        g = -_round(scale * alpha_sum / k)
    else:
        g = np.zeros(n)
    h = -_round(scale * beta_sum) + ((1 << (fmt.frac - 1)) if fmt.frac else 0)
    for label, vals, bits, opt in (("alpha", g, fmt.alpha_bits, "--corr-alpha-bits"),
                                   ("beta", h, fmt.beta_bits, "--corr-beta-bits")):
        if fmt.mode == "bias" and label == "alpha":
            continue
        lim = 1 << (bits - 1)
        bad = (vals < -lim) | (vals > lim - 1)
        if bad.any():
            col = int(np.flatnonzero(bad)[0])
            raise CorrectionError(f"correction {label} constant {int(vals[col])} of column "
                                  f"{col} overflows its {bits}-bit width (range {-lim}.."
                                  f"{lim - 1}); widen it with {opt}")
    return g.astype(np.int64), h.astype(np.int64)


def _wrap(x, bits: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64) & ((1 << bits) - 1)
    return np.where(x >= 1 << (bits - 1), x - (1 << bits), x)


def activation_sums(a, fmt: CorrectionFormat) -> np.ndarray:
    """``S[m] = sum_k a[m, k]`` reduced to ``sum_bits`` bits (two's complement, wrap)."""
    s = np.asarray(a, dtype=np.int64).sum(axis=1)
    return _wrap(s, fmt.sum_bits) if fmt.mode == "cv" else np.zeros_like(s)


def apply(acc, sums, g, h, fmt: CorrectionFormat, acc_width: int, overflow: str) -> np.ndarray:
    """``reduce_A(acc + ((g S + h) >> F))`` for accumulators ``acc (M x N)``, activation sums
    ``S (M,)``, constants ``g``, ``h`` (N,). Python integers throughout where int64 could
    overflow (wide formats)."""
    from sim.golden import accumulate

    acc = np.asarray(acc, dtype=np.int64)
    g = np.asarray(g, dtype=np.int64)[None, :]
    h = np.asarray(h, dtype=np.int64)[None, :]
    s = np.asarray(sums, dtype=np.int64)[:, None]
    if fmt.alpha_bits + fmt.sum_bits + 1 < 62 and fmt.beta_bits < 62:
        corr = (g * s + h) >> fmt.frac
    else:
        corr = np.array([[(int(gg) * int(ss) + int(hh)) >> fmt.frac
                          for gg, hh in zip(g[0], h[0])] for ss in s[:, 0]],
                        dtype=object).reshape(acc.shape)
        lim = (1 << 62)
        corr = np.clip(corr, -lim, lim).astype(np.int64)
    return accumulate(acc, corr, acc_width, overflow)


def residual_moments(spec: MultiplierSpec, mode: str, dist_a=None, dist_b=None) -> dict:
    """Per-product error moments after the correction, for the GEMM predictor
    (:func:`sim.dnn.predictor.predict`): ``mu``, ``var`` of ``r = e - alpha(w) a - beta(w)``
    under ``P(a) x P(w)`` (``dist_a`` also the fit's distribution; ``None``: uniform), plus,
    for cv, ``Var_w(alpha(w)) Var_a(a)``: the hardware subtracts the column mean of ``alpha``
    times ``sum_k a_k``, which leaves ``sum_k (alpha(w_k) - mean alpha)(a_k - mean a)``. The
    fixed-point rounding of the constants is neglected."""
    pa = _distribution(spec, dist_a)
    pw = _distribution(spec, dist_b)
    v = spec.operand_values().astype(np.float64)
    err = spec.table().astype(np.float64) - np.outer(v, v)
    extra = 0.0
    if mode == "none":
        r = err
    else:
        alpha, beta = linear_fit(spec, mode, None if dist_a is None else tuple(pa))
        r = err - np.outer(v, alpha) - beta[None, :]
        if mode == "cv":
            mean_a = float(pa @ v)
            var_a = float(pa @ (v - mean_a) ** 2)
            mean_al = float(pw @ alpha)
            extra = float(pw @ (alpha - mean_al) ** 2) * var_a
    mu = float(pa @ r @ pw)
    var = float(pa @ (r - mu) ** 2 @ pw) + extra
    return {"mu": mu, "var": var}
