"""Partial-product perforation.

``perforatedM_J``: the ``M`` consecutive partial-product rows ``J .. J+M-1`` (row ``j`` holds
``a * b_j``) are not generated; ``perforatedM`` means ``J = 0``. Unsigned, the error is
``-a * (b & rowmask)``, so it never overestimates.

Reference: G. Zervakis et al., "Design-efficient approximate multiplication circuits through
partial product perforation", IEEE TVLSI 24(10), 2016.
Signed operands: Baugh-Wooley rows (see :mod:`hw.mult.pparray`).
"""

from . import register_family
from .base import MultiplierError, check_param
from .pparray import PartialProductArraySpec

__all__ = ["PerforatedSpec"]


@register_family
class PerforatedSpec(PartialProductArraySpec):
    family = "perforated"
    summary = "skip M partial-product rows starting at row J (default 0)"
    suffix_pattern = r"(?P<m>\d+)(?:_(?P<j>\d+))?"
    examples = ("perforated2", "perforated2_1")

    @classmethod
    def example_names(cls, width):
        return [f"perforated{width // 4}", f"perforated{width // 4}_{width // 4}"]

    def __init__(self, *, m, j=None, width=8, signed=True):
        super().__init__(width=width, signed=signed)
        self._m = check_param("perforated", "M", m, 1, self.width - 1)
        self._j = check_param("perforated", "J", 0 if j is None else j, 0, self.width - 1)
        if self._m + self._j > self.width:
            raise MultiplierError(
                f"perforated: rows {self._j}..{self._j + self._m - 1} exceed the "
                f"{self.width} rows of a {self.width}-bit multiplier")

    def _params(self):
        return (self._m, self._j)

    def _param_suffix(self):
        return f"{self._m}" + (f"_{self._j}" if self._j else "")

    def keep(self, i, j):
        return not self._j <= j < self._j + self._m
