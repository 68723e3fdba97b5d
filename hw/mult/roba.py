"""RoBA: rounding-based approximate multiplier.

Each magnitude is rounded to the nearest power of two, ``Xr = 2^round(x)`` (``x`` in
``[2^t, 2^(t+1))`` rounds up to ``2^(t+1)`` when ``x >= 1.5 * 2^t``, ties up; ``0`` stays 0), and
``x*y = Xr*y + x*Yr - Xr*Yr + (x - Xr)(y - Yr)`` is approximated by dropping the last term:
``p = Xr*y + x*Yr - Xr*Yr``. The circuit needs only shifts and an adder/subtractor.

Reference: R. Zendegani et al., "RoBA multiplier: A rounding-based approximate multiplier for
high-speed yet energy-efficient digital signal processing", IEEE TVLSI 25(2), 2017.
Signed operands: sign-magnitude (as in the paper's signed variant).
"""

import numpy as np
from amaranth.hdl import Mux, Signal

from . import register_family
from .smag import SignMagnitudeSpec, floor_log2, leading_one

__all__ = ["RobaSpec"]


@register_family
class RobaSpec(SignMagnitudeSpec):
    family = "roba"
    summary = "round operands to powers of two, drop the (x-Xr)(y-Yr) term"
    examples = ("roba",)

    @staticmethod
    def _round_pow2(x):
        lower = np.where(x > 0, 1 << floor_log2(np.maximum(x, 1)), 0)
        return np.where(2 * x >= 3 * lower, 2 * lower, lower)

    def _unsigned_model(self, x, y):
        xr, yr = self._round_pow2(x), self._round_pow2(y)
        return xr * y + x * yr - xr * yr

    def _unsigned_build(self, m, x, y):
        exps = []
        for label, operand in (("a", x), ("b", y)):
            t = leading_one(m, operand, name=f"lod_{label}")
            below = Signal(name=f"round_up_{label}")
            m.d.comb += below.eq(((operand << 1) >> t)[0])  # bit t-1 (0 when t == 0)
            e = Signal(range(self.width + 1), name=f"exp_{label}")
            m.d.comb += e.eq(t + below)
            exps.append(e)
        ea, eb = exps
        p = Signal(2 * self.width + 1, name="roba_sum")
        with m.If(~x.any() | ~y.any()):
            m.d.comb += p.eq(0)
        with m.Else():
            m.d.comb += p.eq((y << ea) + (x << eb) - (1 << (ea + eb)))
        return p
