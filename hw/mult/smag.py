"""Shared machinery of sign-magnitude families (DRUM, Mitchell, Kulkarni, RoBA, ETM).

These families are defined on unsigned magnitudes. For signed operands the product is
``sign(a)*sign(b) * f(|a|, |b|)`` where ``|a|`` is an ``N``-bit unsigned magnitude (so
``|-2**(N-1)| = 2**(N-1)`` is represented exactly); unsigned operands use ``f(a, b)`` directly.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Mux, Signal

from .base import MultiplierSpec

__all__ = ["SignMagnitudeSpec", "leading_one", "floor_log2"]


def floor_log2(x: np.ndarray) -> np.ndarray:
    """``floor(log2(x))`` for positive int64 ``x < 2**53`` (exact via ``frexp``; 0 maps to 0)."""
    x = np.asarray(x, dtype=np.int64)
    _, exponent = np.frexp(np.maximum(x, 1).astype(np.float64))
    return (exponent - 1).astype(np.int64)


def leading_one(m: Module, x, name: str = "lod"):
    """Leading-one detector: returns a signal holding the index of the highest set bit of ``x``
    (0 when ``x`` is 0)."""
    t = Signal(range(max(len(x), 2)), name=name)
    for i in range(len(x)):
        with m.If(x[i]):
            m.d.comb += t.eq(i)
    return t


class SignMagnitudeSpec(MultiplierSpec):
    """Base for families defined on unsigned magnitudes."""

    signed_handling = "sign-magnitude: f(|a|, |b|) negated when the signs differ"

    def _unsigned_model(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Approximate product of ``N``-bit magnitudes, from the arithmetic definition."""
        raise NotImplementedError

    def _unsigned_build(self, m: Module, x, y):
        """Circuit for the magnitude product of ``N``-bit unsigned ``x`` and ``y``."""
        raise NotImplementedError

    def _model(self, a, b):
        if not self.signed:
            return self._unsigned_model(a, b)
        magnitude = self._unsigned_model(np.abs(a), np.abs(b))
        return np.where((a < 0) != (b < 0), -magnitude, magnitude)

    def _build(self, m, a, b):
        if not self.signed:
            return self._unsigned_build(m, a, b)
        x = Signal(self.width, name="mag_a")
        y = Signal(self.width, name="mag_b")
        m.d.comb += [x.eq(abs(a)), y.eq(abs(b))]
        magnitude = Signal(2 * self.width, name="mag_p")
        m.d.comb += magnitude.eq(self._unsigned_build(m, x, y))
        negative = a[-1] ^ b[-1]
        return Mux(negative, -magnitude, magnitude)
