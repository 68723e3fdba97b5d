"""Error metrics of approximate multipliers (EvoApproxLib definitions).

With ``e = approx(a, b) - a*b`` over the operand pairs (each pair weighted by ``w_a[a] * w_b[b]``;
uniform weights by default):

=====  ==========================================================================
ME     mean error ``E[e]`` (the bias; signed)
MAE    mean absolute error ``E[|e|]``
MSE    mean squared error ``E[e^2]``
VAR    error variance ``E[e^2] - E[e]^2``
WCE    worst-case error ``max |e|`` (over pairs with non-zero weight)
EP     error probability: share of pairs with ``e != 0`` (a fraction in 0..1)
MRE    mean relative error ``E[|e| / |a*b|]`` over pairs with ``a*b != 0``
WCRE   worst-case relative error ``max |e| / |a*b|`` over pairs with ``a*b != 0``
NMED   normalised mean error distance ``MAE / max |a*b|`` (max over the operand range)
=====  ==========================================================================

All pairs are enumerated when there are at most ``2**24`` (N <= 12); above that, every pair is
enumerated in chunks (bounded memory, progress bar) unless a sample size is given, in which case
pairs are drawn (uniformly, or from the operand distributions) with a printed seed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from hw.mult import MultiplierError, MultiplierSpec

__all__ = ["Metrics", "characterize", "operand_histogram", "FIELDS", "EXHAUSTIVE_PAIRS"]

EXHAUSTIVE_PAIRS = 1 << 24
CHUNK_PAIRS = 1 << 22          # ~4M pairs per chunk: a few int64/float64 arrays, < 300 MB
#: Up to this many sampled pairs are drawn in one call (as before chunked sampling existed).
SAMPLE_AT_ONCE = 1 << 24
FIELDS = ("me", "mae", "mse", "var", "wce", "ep", "mre", "wcre", "nmed")


@dataclass(frozen=True)
class Metrics:
    """Error metrics of one multiplier (module docstring has the definitions)."""

    name: str
    width: int
    signed: bool
    me: float
    mae: float
    mse: float
    var: float
    wce: int
    ep: float
    mre: float
    wcre: float
    nmed: float
    pairs: int
    method: str

    def as_dict(self) -> dict:
        return asdict(self)


def operand_histogram(spec: MultiplierSpec, values_or_weights) -> np.ndarray:
    """Weights over ``spec.operand_values()`` from either a histogram (length ``2**N``, already
    aligned with the operand values) or an array of operand samples."""
    try:
        arr = np.asarray(values_or_weights)
    except (ValueError, TypeError, OverflowError) as exc:
        raise MultiplierError(f"an operand distribution must be numbers ({exc})") from None
    n_values = 1 << spec.width
    if arr.ndim != 1 or arr.size == 0:
        raise MultiplierError("an operand distribution must be a non-empty 1-D array")
    if arr.dtype.kind not in "iuf" and arr.dtype != np.bool_:
        raise MultiplierError(f"an operand distribution must be numbers, not {arr.dtype}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise MultiplierError("an operand distribution must not hold NaN or infinite values")
    if arr.size == n_values and np.issubdtype(arr.dtype, np.floating):
        weights = arr.astype(np.float64)
    else:
        if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
            raise MultiplierError("operand samples must be integers (or give a float histogram "
                                  f"of length {n_values})")
        lo, hi = spec.operand_range
        if arr.min() < lo or arr.max() > hi:
            raise MultiplierError(f"operand samples outside {lo}..{hi} for {spec.full_name}")
        samples = arr.astype(np.int64)
        weights = np.bincount(samples - lo, minlength=n_values).astype(np.float64)
    if np.any(weights < 0) or not np.any(weights > 0):
        raise MultiplierError("operand weights must be non-negative with a positive sum")
    weights = weights / weights.max()      # huge finite weights (1e308 each) sum without overflow
    return weights / weights.sum()


class _Accumulator:
    """Streaming weighted sums of the error statistics."""

    def __init__(self):
        self.w = self.we = self.wae = self.wse = self.wnz_err = 0.0
        self.w_rel = self.wrel = 0.0
        self.wce = 0
        self.wcre = 0.0
        self.pairs = 0

    def add(self, exact, approx, weight=None):
        """Add pairs; ``weight`` None means weight 1 for each pair (the faster path)."""
        err = approx - exact
        abs_err = np.abs(err)
        self.pairs += int(exact.size)
        if weight is None:
            errf = err.astype(np.float64)
            self.w += exact.size
            self.we += float(err.sum())
            self.wae += float(abs_err.sum())
            self.wse += float(np.dot(errf, errf))
            self.wnz_err += float(np.count_nonzero(err))
            self.wce = max(self.wce, int(abs_err.max()))
            nz = exact != 0
            rel = abs_err[nz] / np.abs(exact[nz]).astype(np.float64)
            self.w_rel += rel.size
            self.wrel += float(rel.sum())
            if rel.size:
                self.wcre = max(self.wcre, float(rel.max()))
            return
        errf = err.astype(np.float64)
        positive = weight > 0
        self.w += weight.sum()
        self.we += (weight * errf).sum()
        self.wae += (weight * abs_err).sum()
        self.wse += (weight * errf * errf).sum()
        self.wnz_err += weight[err != 0].sum()
        if positive.any():
            self.wce = max(self.wce, int(abs_err[positive].max()))
        rel_mask = (exact != 0) & positive
        if rel_mask.any():
            rel = abs_err[rel_mask] / np.abs(exact[rel_mask]).astype(np.float64)
            self.w_rel += weight[rel_mask].sum()
            self.wrel += (weight[rel_mask] * rel).sum()
            self.wcre = max(self.wcre, float(rel.max()))


def characterize(spec: MultiplierSpec, *, dist_a=None, dist_b=None, sample: int | None = None,
                 seed: int = 0, progress: bool = False) -> Metrics:
    """Error metrics of ``spec``, exhaustive or sampled, uniform or operand-weighted.

    ``dist_a``/``dist_b``: operand distributions (see :func:`operand_histogram`); missing ones are
    uniform. ``sample``: draw this many pairs instead of enumerating (required for nothing; useful
    at 16 bit). ``progress``: show a tqdm bar for chunked runs.
    """
    values = spec.operand_values()
    n_values = values.size
    wa = operand_histogram(spec, dist_a) if dist_a is not None else np.full(n_values, 1 / n_values)
    wb = operand_histogram(spec, dist_b) if dist_b is not None else np.full(n_values, 1 / n_values)
    weighted = dist_a is not None or dist_b is not None
    acc = _Accumulator()
    if sample is not None:
        if sample < 1:
            raise MultiplierError(f"sample size must be positive, not {sample}")
        rng = np.random.default_rng(seed)
        if sample <= SAMPLE_AT_ONCE:     # all pairs drawn at once (the figures of earlier runs)
            a = rng.choice(values, size=sample, p=wa)
            b = rng.choice(values, size=sample, p=wb)
            for lo in range(0, sample, CHUNK_PAIRS):
                ca, cb = a[lo:lo + CHUNK_PAIRS], b[lo:lo + CHUNK_PAIRS]
                acc.add(ca * cb, spec.model(ca, cb))
        else:                            # drawn chunk by chunk: memory stays bounded
            from hw.cli import progress as progress_bar
            with progress_bar(total=sample, unit="pair", unit_scale=True, desc=spec.full_name,
                              disable=not progress) as bar:
                for lo in range(0, sample, CHUNK_PAIRS):
                    size = min(CHUNK_PAIRS, sample - lo)
                    ca = rng.choice(values, size=size, p=wa)
                    cb = rng.choice(values, size=size, p=wb)
                    acc.add(ca * cb, spec.model(ca, cb))
                    bar.update(size)
        method = f"sampled {sample} pairs (seed {seed}" + (", weighted)" if weighted else ")")
    else:
        rows_per_chunk = max(1, CHUNK_PAIRS // n_values)
        starts = range(0, n_values, rows_per_chunk)
        bar = None
        if progress and len(starts) > 1:
            from hw.cli import progress as progress_bar
            bar = progress_bar(total=n_values * n_values, unit="pair", unit_scale=True,
                               desc=spec.full_name)
        for lo in starts:
            ra = values[lo:lo + rows_per_chunk]
            a = np.repeat(ra, n_values)
            b = np.tile(values, ra.size)
            weight = np.outer(wa[lo:lo + rows_per_chunk], wb).ravel() if weighted else None
            acc.add(a * b, spec.model(a, b), weight)
            if bar is not None:
                bar.update(a.size)
        if bar is not None:
            bar.close()
        method = "exhaustive" + (" (weighted)" if weighted else "")
    me = acc.we / acc.w
    mse = acc.wse / acc.w
    mae = acc.wae / acc.w
    lo, hi = spec.operand_range
    max_product = max(abs(lo * lo), abs(hi * hi), abs(lo * hi))
    return Metrics(name=spec.portable_name, width=spec.width, signed=spec.signed, me=me, mae=mae, mse=mse,
                   var=max(mse - me * me, 0.0), wce=acc.wce, ep=acc.wnz_err / acc.w,
                   mre=acc.wrel / acc.w_rel if acc.w_rel else math.nan, wcre=acc.wcre,
                   nmed=mae / max_product, pairs=acc.pairs, method=method)
