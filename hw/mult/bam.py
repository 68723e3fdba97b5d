"""Broken-array multiplier (BAM).

``bamH_V``: keep partial-product bit ``a_i*b_j`` only where ``j >= H`` (the horizontal break
omits the ``H`` least significant rows, i.e. rows of ``b``'s low bits) and ``i + j >= V`` (the
vertical break omits columns below ``V``). ``bam0_V`` equals ``truncatedV``.

Reference: H. R. Mahdiani et al., "Bio-inspired imprecise computational blocks for efficient
VLSI implementation of soft-computing applications", IEEE TCAS-I 57(4), 2010.
Signed operands: Baugh-Wooley (see :mod:`hw.mult.pparray`).
"""

from . import register_family
from .base import check_param
from .pparray import PartialProductArraySpec

__all__ = ["BrokenArraySpec"]


@register_family
class BrokenArraySpec(PartialProductArraySpec):
    family = "bam"
    summary = "broken array: keep a_i*b_j only where j >= H and i+j >= V"
    suffix_pattern = r"(?P<h>\d+)_(?P<v>\d+)"
    examples = ("bam2_6", "bam1_8")

    @classmethod
    def example_names(cls, width):
        return [f"bam{width // 4}_{width - 2}", f"bam{width // 4}_{width}"]

    def __init__(self, *, h, v, width=8, signed=True):
        super().__init__(width=width, signed=signed)
        self._h = check_param("bam", "H", h, 0, self.width - 1)
        self._v = check_param("bam", "V", v, 0, 2 * self.width - 2)

    def _params(self):
        return (self._h, self._v)

    def _param_suffix(self):
        return f"{self._h}_{self._v}"

    def keep(self, i, j):
        return j >= self._h and i + j >= self._v
