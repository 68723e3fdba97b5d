"""Analytical prediction of the GEMM output error from a multiplier's error moments.

For a GEMM ``Y = A (M x K) @ B (K x N)`` computed with an approximate multiplier, every output is
``Y_mn + E_mn`` with ``E_mn = sum_k e(a_mk, b_kn)``, ``e = approx - exact``. If the error terms
are independent with mean ``mu`` and variance ``s^2`` (the operand pairs drawn from the layer's
operand distributions), ``E[E_mn] = K mu`` and ``Var[E_mn] = K s^2``, so

    E ||E||_F^2 = M N (K s^2 + K^2 mu^2)

(variance part ``M N K s^2``, bias part ``M N K^2 mu^2``: the bias grows with ``K^2``, which is
why bias-compensated multipliers matter in deep reductions). ``mu`` and ``s^2`` come from
:func:`sim.metrics.characterize`: over uniform operands, or weighted by the layer's real operand
histograms (``dist_a`` = activation histogram, ``dist_b`` = weight histogram).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import numpy as np

from hw.extras import require
from hw.mult import MultiplierSpec
from sim.metrics import characterize

__all__ = ["Prediction", "predict", "predict_gemm", "histogram", "spearman",
           "monte_carlo_energy"]


@dataclass(frozen=True)
class Prediction:
    """Predicted ``E||E||_F^2`` of one GEMM and its parts."""

    energy: float          # E ||E||_F^2
    bias_energy: float     # M N K^2 mu^2
    var_energy: float      # M N K s^2
    mu: float
    var: float
    m: int
    k: int
    n: int

    @property
    def norm(self) -> float:
        """``sqrt(E ||E||_F^2)``, comparable to a measured Frobenius norm."""
        return math.sqrt(self.energy)

    @property
    def bias_share(self) -> float:
        return self.bias_energy / self.energy if self.energy > 0 else 0.0

    @property
    def var_share(self) -> float:
        return self.var_energy / self.energy if self.energy > 0 else 0.0

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(norm=self.norm, bias_share=self.bias_share, var_share=self.var_share)
        return d


def predict(mu: float, var: float, m: int, k: int, n: int) -> Prediction:
    """``E||E||_F^2 = M N (K var + K^2 mu^2)`` from error moments."""
    bias = m * n * k * k * mu * mu
    variance = m * n * k * var
    return Prediction(bias + variance, bias, variance, mu, var, m, k, n)


def histogram(spec: MultiplierSpec, values) -> np.ndarray:
    """Normalised histogram of operand ``values`` over ``spec.operand_values()``."""
    lo, hi = spec.operand_range
    v = np.asarray(values, dtype=np.int64).ravel()
    h = np.bincount(v - lo, minlength=hi - lo + 1).astype(np.float64)
    return h / h.sum()


@functools.lru_cache(maxsize=4096)
def _moments(spec, ha: bytes | None, hb: bytes | None):
    da = None if ha is None else np.frombuffer(ha, dtype=np.float64)
    db = None if hb is None else np.frombuffer(hb, dtype=np.float64)
    met = characterize(spec, dist_a=da, dist_b=db)
    return met.me, met.var


def predict_gemm(spec: MultiplierSpec, m: int, k: int, n: int, *, dist_a=None,
                 dist_b=None) -> Prediction:
    """Prediction for an ``M x K x N`` GEMM on ``spec``: uniform operands, or weighted by
    normalised histograms ``dist_a`` (activations) / ``dist_b`` (weights)."""
    key_a = None if dist_a is None else np.ascontiguousarray(dist_a, np.float64).tobytes()
    key_b = None if dist_b is None else np.ascontiguousarray(dist_b, np.float64).tobytes()
    mu, var = _moments(spec, key_a, key_b)
    return predict(mu, var, m, k, n)


def monte_carlo_energy(spec: MultiplierSpec, m: int, k: int, n: int, *, dist_a=None,
                       dist_b=None, trials: int = 20, seed: int = 0) -> float:
    """Mean ``||E||_F^2`` over random GEMMs whose entries are drawn from the distributions (the
    exact product minus the emulated approximate one; used to validate :func:`predict_gemm`)."""
    from sim.emulate import product_sum

    rng = np.random.default_rng(seed)
    values = spec.operand_values()
    total = 0.0
    for _ in range(trials):
        a = rng.choice(values, size=(m, k), p=dist_a)
        b = rng.choice(values, size=(k, n), p=dist_b)
        err = product_sum(a, b, spec) - a @ b
        total += float((err.astype(np.float64) ** 2).sum())
    return total / trials


def spearman(x, y) -> float:
    """Spearman rank correlation (``nan`` when either side is constant)."""
    require("scipy", "the Spearman correlation")
    from scipy.stats import spearmanr

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(spearmanr(x, y).statistic)
