"""Kulkarni's under-designed multiplier (UDM).

A 2x2 building block computes the exact product except ``3 * 3 = 7`` (``0b111``, 3 output bits
instead of 4). Larger multipliers are composed recursively from four half-width multipliers and
exact adders: ``x*y = xH*yH 2^(2h) + (xH*yL + xL*yH) 2^h + xL*yL``. Widths that are not a power
of two are zero-extended to the next one. Equivalently (the reference model), with base-4 digits
``x = sum X_i 4^i``, ``p = sum_{i,j} B(X_i, Y_j) 4^(i+j)`` where ``B`` is the 2x2 block.

Reference: P. Kulkarni, P. Gupta, M. Ercegovac, "Trading accuracy for power with an
underdesigned multiplier architecture", VLSI Design 2011. Signed operands: sign-magnitude.
"""

import numpy as np
from amaranth.hdl import Cat

from . import register_family
from .smag import SignMagnitudeSpec

__all__ = ["KulkarniSpec"]


def _block(x, y):
    """The 2x2 block on base-4 digits: exact, except 3*3 = 7."""
    return np.where((x == 3) & (y == 3), 7, x * y)


@register_family
class KulkarniSpec(SignMagnitudeSpec):
    family = "kulkarni"
    summary = "recursive 2x2 under-designed blocks (3*3 = 7)"
    examples = ("kulkarni",)

    def _unsigned_model(self, x, y):
        digits = (self.width + 1) // 2
        p = np.zeros(np.broadcast(x, y).shape, dtype=np.int64)
        for i in range(digits):
            for j in range(digits):
                p += _block((x >> 2 * i) & 3, (y >> 2 * j) & 3) << 2 * (i + j)
        return p

    def _unsigned_build(self, m, x, y):
        padded = 1 << (self.width - 1).bit_length()
        return self._compose(x.as_unsigned(), y.as_unsigned(), padded)

    def _compose(self, x, y, w):
        if w == 2:
            x0, x1 = (x[0] if len(x) > 0 else 0), (x[1] if len(x) > 1 else 0)
            y0, y1 = (y[0] if len(y) > 0 else 0), (y[1] if len(y) > 1 else 0)
            # Block outputs: p0 = x0 y0, p1 = x1 y0 | x0 y1, p2 = x1 y1.
            return Cat(x0 & y0, (x1 & y0) | (x0 & y1), x1 & y1)
        h = w // 2
        xl, xh, yl, yh = x[:h], x[h:w], y[:h], y[h:w]
        return ((self._compose(xh, yh, h) << 2 * h)
                + ((self._compose(xh, yl, h) + self._compose(xl, yh, h)) << h)
                + self._compose(xl, yl, h))
