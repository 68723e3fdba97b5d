"""Column-truncated multiplier, optionally with constant compensation.

``truncatedK``: every partial-product bit ``a_i*b_j`` with ``i + j < K`` is dropped (the ``K``
least significant columns of the array are not built). Unsigned truncation never overestimates:
its error is ``-sum(dropped bits)``, whose mean for uniform operands is
``-sum_{i+j<K} 2^(i+j)/4`` (closed form in :func:`expected_dropped_uniform_unsigned`).

``truncatedKc``: the same plus the constant ``round(E[dropped])`` (round half up) where the
expectation is over independent uniform operands (each ``a_i*b_j`` is 1 with probability 1/4,
an inverted Baugh-Wooley bit with 3/4). This cancels the bias to within 1/2 LSB, which is the
correction the GEMM error analysis calls for (bias contributes ``K^2*mu^2``).

Reference: e.g. Schulte & Swartzlander, "Truncated multiplication with correction constant",
VLSI Signal Processing VI, 1993. Signed operands: Baugh-Wooley (see :mod:`hw.mult.pparray`).
"""

import math

from . import register_family
from .base import check_param
from .pparray import PartialProductArraySpec

__all__ = ["TruncatedSpec", "expected_dropped_uniform_unsigned"]


def expected_dropped_uniform_unsigned(k: int, width: int) -> float:
    """Closed form of E[dropped] for unsigned uniform operands: sum over columns c < K of
    (number of bits in column c) * 2^c / 4."""
    return sum(min(c + 1, width, 2 * width - 1 - c) * 2.0 ** c / 4 for c in range(k))


@register_family
class TruncatedSpec(PartialProductArraySpec):
    family = "truncated"
    summary = "drop partial-product columns i+j < K (suffix c: add rounded expected value)"
    suffix_pattern = r"(?P<k>\d+)(?P<compensated>c?)"
    examples = ("truncated4", "truncated6c")

    @classmethod
    def example_names(cls, width):
        return [f"truncated{width // 2}", f"truncated{width // 2}c", f"truncated{width - 1}",
                f"truncated{width - 1}c"]

    def __init__(self, *, k, compensated=False, width=8, signed=True):
        super().__init__(width=width, signed=signed)
        self._k = check_param("truncated", "K", k, 1, 2 * self.width - 1)
        self._compensated = bool(compensated)

    @property
    def k(self):
        return self._k

    @property
    def compensated(self):
        return self._compensated

    def _params(self):
        return (self._k, self._compensated)

    def _param_suffix(self):
        return f"{self._k}{'c' if self._compensated else ''}"

    def keep(self, i, j):
        return i + j >= self._k

    def compensation(self):
        return math.floor(self.expected_dropped() + 0.5) if self._compensated else 0
