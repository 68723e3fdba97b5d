"""Shared machinery of partial-product-array families (truncated, BAM, perforated).

Partial products (``i`` indexes bits of ``a``, ``j`` bits of ``b``, weight ``2**(i+j)``):

* unsigned: ``pp[i][j] = a_i & b_j``;
* signed (modified Baugh-Wooley): ``pp[i][j] = a_i & b_j`` when both or neither of ``i``, ``j``
  is the sign position ``N-1``, else ``~(a_i & b_j)``; plus the constant ``2**N + 2**(2N-1)``.
  The sum of all bits and the constant, modulo ``2**(2N)``, is the exact two's-complement product.

A family keeps a subset of these bits (its *keep mask*) and may add a compensation constant.
The reference model is ``exact product - sum of dropped pp bits + compensation`` (mod 2**2N);
the circuit sums the kept bits row by row plus the constants. The Baugh-Wooley constant is not a
partial-product bit and is never dropped.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Const, Module

from .base import MultiplierSpec

__all__ = ["PartialProductArraySpec"]


class PartialProductArraySpec(MultiplierSpec):
    """Base for families defined by a keep mask over the (Baugh-Wooley) partial-product array."""

    signed_handling = ("Baugh-Wooley partial products (inverted sign-row/column bits plus "
                       "constant 2^N + 2^(2N-1)); the same keep mask applies to them")

    def keep(self, i: int, j: int) -> bool:
        """``True`` when partial-product bit ``a_i*b_j`` is kept."""
        raise NotImplementedError

    def compensation(self) -> int:
        """Constant added to the product (0 unless the family compensates)."""
        return 0

    def _inverted(self, i: int, j: int) -> bool:
        n = self.width - 1
        return self.signed and ((i == n) != (j == n))

    def dropped_positions(self) -> list[tuple[int, int]]:
        return [(i, j) for i in range(self.width) for j in range(self.width)
                if not self.keep(i, j)]

    def expected_dropped(self) -> float:
        """Expected value of the dropped bits for independent uniform operands.

        Each bit ``a_i & b_j`` is 1 with probability 1/4, an inverted one with 3/4.
        """
        return sum((0.75 if self._inverted(i, j) else 0.25) * 2.0 ** (i + j)
                   for i, j in self.dropped_positions())

    def _model(self, a, b):
        mask = (1 << self.width) - 1
        au, bu = a & mask, b & mask
        dropped = np.zeros(np.broadcast(au, bu).shape, dtype=np.int64)
        for i, j in self.dropped_positions():
            bit = ((au >> i) & (bu >> j)) & 1
            if self._inverted(i, j):
                bit = 1 - bit
            dropped += bit << (i + j)
        return a * b - dropped + self.compensation()

    def _build(self, m: Module, a, b):
        n = self.width
        au, bu = a.as_unsigned(), b.as_unsigned()
        total = Const(self.compensation() + ((1 << n) + (1 << (2 * n - 1)) if self.signed else 0),
                      2 * n)
        for j in range(n):
            keep = sum(1 << i for i in range(n) if self.keep(i, j))
            if not keep:
                continue
            invert = sum(1 << i for i in range(n) if self.keep(i, j) and self._inverted(i, j))
            # Row j as one vector operation: (a & b_j...b_j) ^ inverted bits, masked to the kept
            # bits (after synthesis the same gates as per-bit ANDs; far fewer simulator events).
            row = ((au & bu[j].replicate(n)) ^ Const(invert, n)) & Const(keep, n)
            total = total + (row << j)
        return total
