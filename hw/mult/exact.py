"""Exact multiplier: the baseline every approximate family is compared with."""

from . import register_family
from .base import MultiplierSpec

__all__ = ["ExactSpec"]


@register_family
class ExactSpec(MultiplierSpec):
    """``p = a * b`` exactly. The circuit is a plain ``*`` so synthesis chooses the structure
    (carry chains / DSP blocks on FPGAs). Signed operands: native two's-complement product."""

    family = "exact"
    summary = "exact product (baseline)"
    signed_handling = "native two's-complement product"
    examples = ("exact",)

    def __init__(self, *, width=8, signed=True):
        super().__init__(width=width, signed=signed)

    def _model(self, a, b):
        return a * b

    def _build(self, m, a, b):
        return a * b
