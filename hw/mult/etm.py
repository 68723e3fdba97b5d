"""ETM: error-tolerant multiplier.

``etmM`` splits each magnitude into a high part (bits ``N-1..M``) and a low part (bits
``M-1..0``). When both high parts are zero, the multiplier is used on the low parts and the
product is exact (``xL * yL``). Otherwise the high parts are multiplied exactly and the low
``2M`` result bits come from the *non-multiplication part*: scanning the low operand bits from
``M-1`` down to 0, at the first position ``k`` where ``x_k`` or ``y_k`` is 1, result bits
``M+k .. 0`` are set to 1 (none when both low parts are zero):
``p = (xH * yH) << 2M | (2^(M+k+1) - 1)``. Cross terms ``xH*yL`` are not computed.

Reference: K. Y. Kyaw, W. L. Goh, K. S. Yeo, "Low-power high-speed multiplier for
error-tolerant application", IEEE EDSSC 2010 (the placement of the non-multiplication result
bits, not fully specified there, is fixed as above). Signed operands: sign-magnitude.
"""

import numpy as np
from amaranth.hdl import Mux, Signal

from . import register_family
from .base import check_param
from .smag import SignMagnitudeSpec, floor_log2, leading_one

__all__ = ["EtmSpec"]


@register_family
class EtmSpec(SignMagnitudeSpec):
    family = "etm"
    summary = "exact high-part product, OR-scan fill of the low 2M result bits"
    suffix_pattern = r"(?P<m>\d+)"
    examples = ("etm4", "etm3")

    @classmethod
    def example_names(cls, width):
        return [f"etm{width // 2}", f"etm{width // 4}"]

    def __init__(self, *, m, width=8, signed=True):
        super().__init__(width=width, signed=signed)
        self._m = check_param("etm", "M", m, 1, self.width - 1)

    def _params(self):
        return (self._m,)

    def _param_suffix(self):
        return str(self._m)

    def _unsigned_model(self, x, y):
        mm = self._m
        low_mask = (1 << mm) - 1
        xh, yh, xl, yl = x >> mm, y >> mm, x & low_mask, y & low_mask
        either = xl | yl
        k = floor_log2(np.maximum(either, 1))
        fill = np.where(either > 0, (1 << (mm + k + 1)) - 1, 0)
        approx = ((xh * yh) << (2 * mm)) | fill
        return np.where((xh == 0) & (yh == 0), xl * yl, approx)

    def _unsigned_build(self, m, x, y):
        mm = self._m
        xl, yl, xh, yh = x[:mm], y[:mm], x[mm:], y[mm:]
        # Non-multiplication part: once a 1 is seen scanning down, every lower bit is 1.
        scan = Signal(mm, name="etm_scan")
        either = xl | yl
        for i in range(mm):
            m.d.comb += scan[i].eq(either[i:].any())
        fill = Signal(2 * mm, name="etm_fill")
        m.d.comb += fill.eq(Mux(either.any(), (scan << mm) | ((1 << mm) - 1), 0))
        low_only = Signal(name="etm_low_only")   # both high parts are zero
        m.d.comb += low_only.eq(~(xh | yh).any())
        # One shared multiplier: the low parts when the high parts are zero, else the high parts.
        hw = self.width - mm
        width = max(hw, mm)
        ma = Signal(width, name="etm_mul_a")
        mb = Signal(width, name="etm_mul_b")
        m.d.comb += [ma.eq(Mux(low_only, xl, xh)), mb.eq(Mux(low_only, yl, yh))]
        prod = Signal(2 * width, name="etm_mul_p")
        m.d.comb += prod.eq(ma * mb)
        return Mux(low_only, prod, (prod << (2 * mm)) | fill)
