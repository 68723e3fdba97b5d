"""Approximate multiplier library: registry and name grammar.

Name grammar (case-insensitive, no spaces)::

    exact                 exact product (synthesis chooses the structure)
    truncatedK            drop partial-product bits a_i*b_j with i+j < K
    truncatedKc           ... plus the rounded expected value of the dropped bits (bias fix)
    bamH_V                broken-array multiplier: keep a_i*b_j only where j >= H and i+j >= V
    perforatedM[_J]       skip M partial-product rows starting at row J (default 0)
    drumK                 DRUM: keep K bits from the leading one, lowest kept bit forced to 1
    mitchell              Mitchell's logarithmic multiplier
    kulkarni              Kulkarni's under-designed multiplier (2x2 block: 3*3 = 7)
    roba                  rounding-based approximate multiplier
    etmM                  error-tolerant multiplier split at M bits
    verilog:PATH[:MODULE] imported combinational netlist (e.g. EvoApproxLib); its reference
                          table is derived by exhaustive Verilator simulation (N <= 12)
    table:PATH            product table (.npy/.csv, 2^N x 2^N, row = a, column = b, both in
                          ascending operand value); the circuit is a ROM generated from it

Width ``N`` (4..16) and signedness are not part of the name: they are passed to :func:`parse`.
"""

from __future__ import annotations

import re
from typing import Callable

from .base import (MAX_WIDTH, MIN_WIDTH, Multiplier, MultiplierError, MultiplierSpec,
                   wrap_to_width)

__all__ = ["MultiplierSpec", "Multiplier", "MultiplierError", "MIN_WIDTH", "MAX_WIDTH",
           "wrap_to_width", "parse", "families", "family", "register_family", "register_scheme",
           "example_names"]

_FAMILIES: dict[str, type[MultiplierSpec]] = {}
_SCHEMES: dict[str, Callable[..., MultiplierSpec]] = {}
_NAME_RE = re.compile(r"([a-z]+)(.*)")


def register_family(cls: type[MultiplierSpec]) -> type[MultiplierSpec]:
    """Class decorator adding a family. The class provides ``family``, ``suffix_pattern`` (a regex
    for the text after the prefix, with named integer groups), ``examples`` and accepts the
    groups as keyword arguments besides ``width`` and ``signed``."""
    if cls.family in _FAMILIES:
        raise ValueError(f"family {cls.family!r} registered twice")
    _FAMILIES[cls.family] = cls
    return cls


def register_scheme(scheme: str, factory: Callable[..., MultiplierSpec]) -> None:
    """Make names ``SCHEME:ARG`` parse to ``factory(ARG, width=..., signed=...)``.

    The factory may ignore ``width``/``signed`` when the source fixes them (it must then check
    them itself when they are given explicitly) and raises :class:`MultiplierError` on bad input.
    """
    _SCHEMES[scheme] = factory


def families() -> dict[str, type[MultiplierSpec]]:
    """Registered families by prefix, in registration order."""
    return dict(_FAMILIES)


def family(prefix: str) -> type[MultiplierSpec]:
    try:
        return _FAMILIES[prefix]
    except KeyError:
        raise MultiplierError(_unknown(prefix)) from None


def _unknown(what: str) -> str:
    return (f"unknown multiplier {what!r}; known families: {', '.join(_FAMILIES)}"
            + (f"; schemes: {', '.join(s + ':' for s in _SCHEMES)}" if _SCHEMES else ""))


def parse(name: str, *, width: int = 8, signed: bool = True) -> MultiplierSpec:
    """Parse a multiplier name into a spec for ``width``-bit (un)signed operands.

    Raises :class:`MultiplierError` with a one-line message on unknown families, malformed
    parameters or out-of-range values.
    """
    if isinstance(name, MultiplierSpec):
        return name
    if not isinstance(name, str) or not name.strip():
        raise MultiplierError(f"multiplier name must be a non-empty string, not {name!r}")
    text = name.strip()
    scheme, sep, arg = text.partition(":")
    if sep and re.fullmatch(r"[a-zA-Z][\w-]*", scheme):
        factory = _SCHEMES.get(scheme.lower())
        if factory is None:
            raise MultiplierError(_unknown(scheme + ":"))
        return factory(arg, width=width, signed=signed)
    match = _NAME_RE.fullmatch(text.lower())
    if match is None:
        raise MultiplierError(_unknown(text))
    prefix, suffix = match.groups()
    if prefix not in _FAMILIES:
        raise MultiplierError(_unknown(text))        # the whole name, not its first letters
    cls = family(prefix)
    params = re.fullmatch(cls.suffix_pattern, suffix, re.ASCII)   # 0-9, not "４"
    if params is None:
        raise MultiplierError(
            f"malformed parameters {suffix!r} for {prefix!r}; expected e.g. "
            f"{', '.join(cls.examples)}")
    kwargs = {k: (int(v) if v is not None and v.isdigit() else v)
              for k, v in params.groupdict().items()}
    return cls(**kwargs, width=width, signed=signed)


def example_names(width: int = 8, *, per_family: int | None = None) -> list[str]:
    """Representative names of every family valid at ``width`` (used by sweeps, docs and RTL
    checks); ``per_family`` limits how many parameterisations each family contributes."""
    names = []
    for cls in _FAMILIES.values():
        names.extend(cls.example_names(width)[:per_family])
    return names


# Register the built-in families (import order = listing order).
from . import exact, truncated, bam, perforated, drum, mitchell, kulkarni, roba, etm  # noqa: E402,F401

# Bring-your-own multipliers: ``table:PATH`` and ``verilog:PATH[:MODULE]`` schemes.
from . import table, verilog_import  # noqa: E402,F401
from .table import extra_verilog_sources  # noqa: E402,F401
