"""Mitchell's logarithmic multiplier (full-precision fractions).

With ``x = 2^k1 (1 + f1)``, ``y = 2^k2 (1 + f2)`` (``0 <= f < 1``), ``log2`` is approximated by
``k + f``, the logs are added and the antilog approximated the same way:
``p = 2^(k1+k2) (1 + f1 + f2)`` if ``f1 + f2 < 1``, else ``2^(k1+k2+1) (f1 + f2)``; ``p = 0``
when an operand is 0. No fraction bits are dropped, so ``p`` is an integer and the only error is
the logarithm approximation: always an underestimate, worst relative error 1/9 (at
``f1 = f2 = 1/2``). The model evaluates the formula in float64 (exact here); the circuit works
on fixed-point fractions with leading-one detectors, an adder and a barrel shifter.

Reference: J. N. Mitchell, "Computer multiplication and division using binary logarithms",
IRE Trans. Electronic Computers EC-11(4), 1962. Signed operands: sign-magnitude.
"""

import numpy as np
from amaranth.hdl import Signal

from . import register_family
from .smag import SignMagnitudeSpec, floor_log2, leading_one

__all__ = ["MitchellSpec"]


@register_family
class MitchellSpec(SignMagnitudeSpec):
    family = "mitchell"
    summary = "logarithmic multiplier (piecewise-linear log2 and antilog)"
    examples = ("mitchell",)

    def _unsigned_model(self, x, y):
        safe_x, safe_y = np.maximum(x, 1), np.maximum(y, 1)
        k1, k2 = floor_log2(safe_x), floor_log2(safe_y)
        f1 = safe_x / 2.0 ** k1 - 1.0
        f2 = safe_y / 2.0 ** k2 - 1.0
        scale = 2.0 ** (k1 + k2)
        p = np.where(f1 + f2 < 1.0, scale * (1.0 + f1 + f2), 2.0 * scale * (f1 + f2))
        return np.where((x == 0) | (y == 0), 0, p.astype(np.int64))

    def _unsigned_build(self, m, x, y):
        n = self.width
        frac_bits = n - 1
        fractions, exps = [], []
        for label, operand in (("a", x), ("b", y)):
            k = leading_one(m, operand, name=f"lod_{label}")
            # Fraction aligned to frac_bits fixed point: the bits below the leading one.
            frac = Signal(frac_bits, name=f"frac_{label}")
            m.d.comb += frac.eq((operand << frac_bits) >> k)
            fractions.append(frac)
            exps.append(k)
        fsum = Signal(frac_bits + 1, name="frac_sum")
        m.d.comb += fsum.eq(fractions[0] + fractions[1])
        e = exps[0] + exps[1]
        p = Signal(2 * n, name="antilog")
        with m.If(~x.any() | ~y.any()):
            m.d.comb += p.eq(0)
        with m.Elif(fsum[frac_bits]):  # f1 + f2 >= 1
            m.d.comb += p.eq((fsum << (e + 1)) >> frac_bits)
        with m.Else():
            m.d.comb += p.eq(((fsum | (1 << frac_bits)) << e) >> frac_bits)
        return p
