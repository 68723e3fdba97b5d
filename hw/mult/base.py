"""The multiplier spec: one object per approximate multiplier configuration.

A :class:`MultiplierSpec` binds a family and its parameters to an operand width ``N`` and a
signedness. It offers

* :meth:`MultiplierSpec.model` - a vectorised numpy reference model, written from the family's
  arithmetic definition (not from the circuit), returning exact int64 products;
* :meth:`MultiplierSpec.circuit` - a fresh combinational Amaranth :class:`Multiplier` component;
* :attr:`MultiplierSpec.name` - the canonical name, which :func:`hw.mult.parse` round-trips.

Operand convention (all families): ``a`` and ``b`` are ``N``-bit, unsigned (``0 .. 2**N-1``) or
two's-complement signed (``-2**(N-1) .. 2**(N-1)-1``); the product ``p`` is ``2N`` bits of the same
signedness. A family whose value does not fit wraps modulo ``2**(2N)`` exactly as the ``2N``-bit
output port does (no built-in family reaches that case).
"""

from __future__ import annotations

import abc
import operator
import re
from functools import cached_property

import numpy as np
from amaranth.hdl import Module, Shape, signed as signed_shape, unsigned as unsigned_shape
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..errors import ToolkitError

__all__ = ["MIN_WIDTH", "MAX_WIDTH", "MultiplierError", "MultiplierSpec", "Multiplier",
           "wrap_to_width", "check_param"]

MIN_WIDTH = 4
MAX_WIDTH = 16


class MultiplierError(ToolkitError, ValueError):
    """A multiplier name, parameter or width is invalid. The message is one user-facing line."""


def wrap_to_width(values, bits: int, is_signed: bool) -> np.ndarray:
    """Reduce integers modulo ``2**bits`` and read them as ``bits``-wide (two's-complement) values."""
    values = np.asarray(values, dtype=np.int64) & ((1 << bits) - 1)
    if is_signed:
        values = np.where(values >= (1 << (bits - 1)), values - (1 << bits), values)
    return values


class MultiplierSpec(abc.ABC):
    """An approximate ``N``x``N`` -> ``2N`` bit multiplier: parameters, reference model, circuit.

    Subclasses set ``family`` (the name prefix), implement :meth:`_model` and :meth:`_build`, and
    override :meth:`_params` / :meth:`_param_suffix` when the family takes parameters.
    """

    #: Name prefix of the family, e.g. ``"truncated"``.
    family: str = ""
    #: One-line description for listings.
    summary: str = ""
    #: How signed operands are handled, one line, for listings and the README.
    signed_handling: str = ""
    #: Regex for the name text after the prefix; named groups become constructor arguments.
    suffix_pattern: str = ""
    #: Example names, shown in error messages and ``--help``.
    examples: tuple[str, ...] = ()

    @classmethod
    def example_names(cls, width: int) -> list[str]:
        """Representative names of this family valid at ``width`` (for sweeps and tables)."""
        return list(cls.examples)

    def __init__(self, *, width: int = 8, signed: bool = True):
        try:
            width = operator.index(width)
        except TypeError:
            raise MultiplierError(f"width must be an integer, not {width!r}") from None
        if not MIN_WIDTH <= width <= MAX_WIDTH:
            raise MultiplierError(
                f"width {width} is outside the supported range {MIN_WIDTH}..{MAX_WIDTH}")
        self._width = width
        self._signed = bool(signed)

    # -- identity ------------------------------------------------------------------------------
    @property
    def width(self) -> int:
        """Operand width ``N`` in bits."""
        return self._width

    @property
    def signed(self) -> bool:
        """``True`` for two's-complement operands and product, ``False`` for unsigned."""
        return self._signed

    @property
    def product_width(self) -> int:
        return 2 * self._width

    def _param_suffix(self) -> str:
        """The part of the canonical name after the family prefix."""
        return ""

    def _params(self) -> tuple:
        """Family parameters, used for equality and hashing."""
        return ()

    @property
    def name(self) -> str:
        """Canonical name (``parse(spec.name, width=..., signed=...) == spec``)."""
        return f"{self.family}{self._param_suffix()}"

    @property
    def portable_name(self) -> str:
        """The name as manifests, commands and reports show it: :attr:`name` for the built-in
        families; for ``table:``/``verilog:`` the path as the user gave it when relative, else
        just the file name, so no absolute path ends up in generated files."""
        return self.name

    @property
    def ident(self) -> str:
        """The name as a Verilog-identifier fragment (``[a-z0-9_]``, at most 60 characters),
        free of paths; used in default module names. Families whose name holds a path
        (``table:``, ``verilog:``) use the file name and a content hash."""
        return re.sub(r"[^A-Za-z0-9_]+", "_", self.name)[:60].strip("_") or self.family

    @property
    def full_name(self) -> str:
        """Portable name with width and signedness, e.g. ``truncated4@8s`` / ``drum6@8u``."""
        return f"{self.portable_name}@{self._width}{'s' if self._signed else 'u'}"

    def _key(self):
        return (type(self), self._params(), self._width, self._signed)

    def __eq__(self, other):
        return isinstance(other, MultiplierSpec) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return f"<MultiplierSpec {self.full_name}>"

    # -- operands ------------------------------------------------------------------------------
    @property
    def operand_shape(self) -> Shape:
        return signed_shape(self._width) if self._signed else unsigned_shape(self._width)

    @property
    def product_shape(self) -> Shape:
        w = self.product_width
        return signed_shape(w) if self._signed else unsigned_shape(w)

    @property
    def operand_range(self) -> tuple[int, int]:
        """Inclusive ``(min, max)`` of an operand."""
        if self._signed:
            return -(1 << (self._width - 1)), (1 << (self._width - 1)) - 1
        return 0, (1 << self._width) - 1

    def operand_values(self) -> np.ndarray:
        """Every operand value in ascending order (int64)."""
        lo, hi = self.operand_range
        return np.arange(lo, hi + 1, dtype=np.int64)

    # -- reference model -----------------------------------------------------------------------
    def model(self, a, b) -> np.ndarray:
        """Approximate products of ``a`` and ``b`` (broadcast), as int64, bit-exact.

        Raises :class:`MultiplierError` when an operand is outside :attr:`operand_range`.
        """
        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        lo, hi = self.operand_range
        for label, v in (("a", a), ("b", b)):
            if v.size and (v.min() < lo or v.max() > hi):
                raise MultiplierError(
                    f"operand {label} of {self.full_name} outside {lo}..{hi}")
        a, b = np.broadcast_arrays(a, b)
        return wrap_to_width(self._model(a, b), self.product_width, self._signed)

    @abc.abstractmethod
    def _model(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Products from the arithmetic definition. Operands are in range; result is int64."""

    def table(self) -> np.ndarray:
        """Full product table ``T[a - min, b - min]`` (``2**N`` x ``2**N`` int64; N <= 12)."""
        return self._table

    @cached_property
    def _table(self) -> np.ndarray:
        if self._width > 12:
            raise MultiplierError(
                f"a full product table of {self.full_name} would have 2^{2 * self._width} entries")
        v = self.operand_values()
        return self.model(v[:, None], v[None, :])

    # -- circuit -------------------------------------------------------------------------------
    def circuit(self) -> "Multiplier":
        """A new combinational :class:`Multiplier` component implementing this spec."""
        return Multiplier(self)

    @abc.abstractmethod
    def _build(self, m: Module, a, b):
        """Add the product logic to ``m``; return a value whose low ``2N`` bits are the product.

        ``a`` and ``b`` are the operand signals (shape :attr:`operand_shape`).
        """

    # -- descriptions --------------------------------------------------------------------------
    def describe(self) -> dict:
        """JSON-ready description (used in manifests)."""
        return {"name": self.portable_name, "family": self.family, "width": self._width,
                "signed": self._signed, "params": list(self._params()),
                "signed_handling": self.signed_handling}


def check_param(spec_name: str, label: str, value, lo: int, hi: int) -> int:
    """Validate an integer parameter ``lo <= value <= hi``; raise :class:`MultiplierError`."""
    try:
        value = operator.index(value)
    except TypeError:
        raise MultiplierError(f"{spec_name}: {label} must be an integer, not {value!r}") from None
    if not lo <= value <= hi:
        raise MultiplierError(f"{spec_name}: {label}={value} is outside {lo}..{hi}")
    return value


class Multiplier(wiring.Component):
    """Combinational ``N``x``N`` -> ``2N`` multiplier built from a :class:`MultiplierSpec`.

    Members
    -------
    a, b : In(N), signed or unsigned as the spec says
    p : Out(2N), same signedness; ``p == spec.model(a, b)`` for every operand pair.
    Latency: 0 (purely combinational).
    """

    def __init__(self, spec: MultiplierSpec):
        if not isinstance(spec, MultiplierSpec):
            raise TypeError(f"expected a MultiplierSpec, got {spec!r}")
        self._spec = spec
        super().__init__({"a": In(spec.operand_shape), "b": In(spec.operand_shape),
                          "p": Out(spec.product_shape)})

    @property
    def spec(self) -> MultiplierSpec:
        return self._spec

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.p.eq(self._spec._build(m, self.a, self.b))
        return m
