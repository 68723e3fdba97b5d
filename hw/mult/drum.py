"""DRUM: dynamic range unbiased multiplier.

``drumK``: an operand magnitude ``x`` whose leading one is at position ``t >= K`` is replaced by
its bits ``[t : t-K+1]`` with the lowest kept bit forced to 1 (and the bits below it zero),
``x' = ((x >> (t-K+1)) | 1) << (t-K+1)``; operands with ``t < K`` pass exactly. The product is
``x' * y'``. Forcing the lowest kept bit to 1 makes the truncation error unbiased on average.
The circuit is the real DRUM structure: leading-one detectors, ``K``-bit extraction, a ``K``x``K``
exact core and a left shift by the two shift amounts.

Reference: S. Hashemi, R. I. Bahar, S. Reda, "DRUM: A dynamic range unbiased multiplier for
approximate applications", ICCAD 2015. Signed operands: sign-magnitude.
"""

import numpy as np
from amaranth.hdl import Mux, Signal

from . import register_family
from .base import check_param
from .smag import SignMagnitudeSpec, floor_log2, leading_one

__all__ = ["DrumSpec"]


@register_family
class DrumSpec(SignMagnitudeSpec):
    family = "drum"
    summary = "keep K bits from the leading one, lowest kept bit forced to 1"
    suffix_pattern = r"(?P<k>\d+)"
    examples = ("drum4", "drum6")

    @classmethod
    def example_names(cls, width):
        return [f"drum{max(2, width // 2 - 1)}", f"drum{max(2, width // 2 + 1)}"]

    def __init__(self, *, k, width=8, signed=True):
        super().__init__(width=width, signed=signed)
        self._k = check_param("drum", "K", k, 2, self.width)

    def _params(self):
        return (self._k,)

    def _param_suffix(self):
        return str(self._k)

    def _approximate_operand(self, x):
        t = floor_log2(x)
        shift = np.maximum(t - self._k + 1, 0)
        return np.where(t >= self._k, ((x >> shift) | 1) << shift, x)

    def _unsigned_model(self, x, y):
        return self._approximate_operand(x) * self._approximate_operand(y)

    def _unsigned_build(self, m, x, y):
        k, n = self._k, self.width
        if k >= n:  # every magnitude fits in K bits: DRUM is exact
            return x * y
        cores, shifts = [], []
        for label, operand in (("a", x), ("b", y)):
            t = leading_one(m, operand, name=f"lod_{label}")
            shift = Signal(range(n - k + 1), name=f"shift_{label}")
            core = Signal(k, name=f"core_{label}")
            with m.If(t >= k):
                m.d.comb += [shift.eq(t - k + 1), core.eq((operand >> shift)[:k] | 1)]
            with m.Else():
                m.d.comb += [shift.eq(0), core.eq(operand[:k])]
            cores.append(core)
            shifts.append(shift)
        product = Signal(2 * k, name="core_p")
        m.d.comb += product.eq(cores[0] * cores[1])
        return product << (shifts[0] + shifts[1])
