"""What gets costed: a :class:`Design` wraps a *component factory*.

A design is a label, a zero-argument callable returning a fresh ``wiring.Component`` and a
JSON-able description. Everything in :mod:`hw.cost` takes a design, so any Amaranth component can
be costed (``Design("my_thing", MyThing)``). Ready-made constructors:

* :func:`multiplier` - ``spec.circuit()`` (combinational ``N x N -> 2N``);
* :func:`mac` - :class:`hw.mac.MAC` (multiplier + ``A``-bit accumulator register);
* :func:`array` - :class:`hw.systolic.SystolicArray` (``rows x cols`` MAC PEs, ``ws`` or ``os``).

:func:`make_design` builds one of those from command-line style arguments, through the
:data:`KINDS` registry (:func:`register_kind` adds more).
"""

from __future__ import annotations

import hashlib
import importlib
from functools import cached_property
from typing import Callable

from hw.mult import MultiplierError, MultiplierSpec, extra_verilog_sources, parse
from hw.verilog import emit_verilog

from .errors import CostError

__all__ = ["Design", "TOP", "multiplier", "mac", "array", "make_design", "KINDS",
           "register_kind"]

#: Name of the top module of every emitted design.
TOP = "top"


class Design:
    """A hardware configuration to cost.

    Parameters
    ----------
    label : str
        Unique, human-readable name (e.g. ``mult:truncated4@8s``); used in tables and errors.
    factory : callable
        Returns a fresh ``wiring.Component`` each call.
    info : dict
        JSON-able description (kind, multiplier, parameters) copied into results.
    pe_count : int
        Number of multipliers inside (1 for a multiplier or MAC, ``rows*cols`` for an array).
    """

    def __init__(self, label: str, factory: Callable, *, info: dict | None = None,
                 pe_count: int = 1, extra_verilog: dict | None = None,
                 spec: MultiplierSpec | None = None):
        if not isinstance(label, str) or not label:
            raise CostError(f"design label must be a non-empty string, not {label!r}")
        if not callable(factory):
            raise CostError(f"design factory for {label} is not callable")
        self._label = label
        self._factory = factory
        self._info = dict(info or {})
        self._pe_count = int(pe_count)
        # Modules the design instantiates but does not generate (imported multipliers).
        self._extra_verilog = dict(extra_verilog or {})
        self._spec = spec

    label = property(lambda self: self._label)
    #: The multiplier of a multiplier/MAC/array design (``None`` for other designs).
    spec = property(lambda self: self._spec)
    extra_verilog = property(lambda self: dict(self._extra_verilog))
    info = property(lambda self: dict(self._info))
    pe_count = property(lambda self: self._pe_count)

    def component(self):
        """A fresh component instance."""
        return self._factory()

    @cached_property
    def verilog(self) -> str:
        """Verilog of the design with top module :data:`TOP` (reproducible bytes), followed by
        the sources of imported modules it instantiates (``verilog:``/``table:`` multipliers)."""
        return emit_verilog(self.component(), TOP) + "".join(self._extra_verilog.values())

    @cached_property
    def verilog_sha256(self) -> str:
        return hashlib.sha256(self.verilog.encode()).hexdigest()

    @cached_property
    def _port_bits(self) -> tuple[int, int]:
        from .harness import port_bits
        component = self.component()
        component._MustUse__silence = True     # inspected, never elaborated
        return port_bits(component)

    def port_bits(self) -> tuple[int, int]:
        """``(input_bits, output_bits)`` of the component's ports."""
        return self._port_bits

    def describe(self) -> dict:
        return {"label": self._label, "pe_count": self._pe_count, **self._info}

    def __repr__(self):
        return f"<Design {self._label}>"


def _spec_info(spec: MultiplierSpec) -> dict:
    return {"multiplier": spec.portable_name, "width": spec.width, "signed": spec.signed}


def multiplier(spec: MultiplierSpec) -> Design:
    """The bare combinational multiplier of ``spec``."""
    return Design(f"mult:{spec.full_name}", spec.circuit, info={"kind": "mult", **_spec_info(spec)},
                  extra_verilog=extra_verilog_sources([spec]))


def _optional(module: str, what: str):
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise CostError(f"{what} needs {module} ({err})") from None


def _validate(build):
    """Construct once to check the parameters (one-line :class:`CostError` on bad ones)."""
    try:
        component = build()
    except (TypeError, ValueError) as err:
        raise CostError(str(err)) from None
    component._MustUse__silence = True       # built only to validate, never elaborated


def mac(spec: MultiplierSpec, *, acc_width: int = 32, overflow: str = "wrap",
        pipeline: bool = False) -> Design:
    """A :class:`hw.mac.MAC` unit around ``spec`` (accumulator register included)."""
    mod = _optional("hw.mac", "a MAC design")
    _validate(lambda: mod.MAC(spec, acc_width=acc_width, overflow=overflow, pipeline=pipeline))
    label = f"mac:{spec.full_name}:A{acc_width}:{overflow}" + (":pipe" if pipeline else "")
    return Design(label, lambda: mod.MAC(spec, acc_width=acc_width, overflow=overflow,
                                         pipeline=pipeline),
                  info={"kind": "mac", **_spec_info(spec), "acc_width": acc_width,
                        "overflow": overflow, "pipeline": pipeline},
                  extra_verilog=extra_verilog_sources([spec]))


def array(spec: MultiplierSpec, rows: int, cols: int, *, dataflow: str = "ws",
          acc_width: int = 32, overflow: str = "wrap", pipeline: bool = False,
          correction: str = "none", output_buffer: bool = False) -> Design:
    """A :class:`hw.systolic.SystolicArray` of ``rows x cols`` PEs, all using ``spec``;
    ``correction``: ``none``, ``bias`` or ``cv`` with ``hw.gen``'s default widths
    (:func:`sim.correction.default_format`)."""
    mod = _optional("hw.systolic", "an array design")
    fmt = None
    if correction != "none":
        from sim.correction import CorrectionError, default_format
        try:
            fmt = default_format(correction, spec, rows=rows, dataflow=dataflow,
                                 acc_width=acc_width)
        except CorrectionError as exc:
            raise CostError(str(exc)) from None

    def build():
        return mod.SystolicArray(rows, cols, spec, dataflow=dataflow, acc_width=acc_width,
                                 overflow=overflow, pipeline=pipeline, correction=fmt,
                                 output_buffer=bool(output_buffer))

    _validate(build)
    label = (f"array:{spec.full_name}:{rows}x{cols}:{dataflow}:A{acc_width}:{overflow}"
             + (":pipe" if pipeline else "") + (f":{correction}" if fmt is not None else "")
             + (":obuf" if output_buffer else ""))
    extra = {} if fmt is None else {"correction": fmt.hardware}
    return Design(label, build, pe_count=rows * cols,
                  info={"kind": "array", **_spec_info(spec), "rows": rows, "cols": cols,
                        "dataflow": dataflow, "acc_width": acc_width, "overflow": overflow,
                        "pipeline": pipeline, **extra,
                        **({"output_buffer": True} if output_buffer else {})},
                  extra_verilog=extra_verilog_sources([spec]), spec=spec)


def bank(specs, rows: int, cols: int, *, dataflow: str = "ws", acc_width: int = 32,
         overflow: str = "wrap", pipeline: bool = False, correction: str = "none",
         output_buffer: bool = False) -> Design:
    """A :class:`hw.bank.ArrayBank`: one ``rows x cols`` array per multiplier of ``specs``
    behind one set of streams (``hw.gen --bank``); ``correction``: every approximate array
    corrected in one format with ``hw.gen``'s default widths (:func:`hw.bank.bank_arrays`)."""
    bankmod = _optional("hw.bank", "a bank design")
    specs = list(specs)

    def build():
        arrays, _ = bankmod.bank_arrays(specs, rows, cols, dataflow=dataflow,
                                        acc_width=acc_width, overflow=overflow,
                                        pipeline=pipeline, correction=correction,
                                        output_buffer=bool(output_buffer))
        return bankmod.ArrayBank(arrays)

    _validate(build)                         # CorrectionError is a ValueError
    names = ",".join(spec.full_name for spec in specs)
    label = (f"bank:{names}:{rows}x{cols}:{dataflow}:A{acc_width}:{overflow}"
             + (":pipe" if pipeline else "")
             + (f":{correction}" if correction != "none" else "")
             + (":obuf" if output_buffer else ""))
    return Design(label, build, pe_count=len(specs) * rows * cols,
                  info={"kind": "bank", "multipliers": [s.full_name for s in specs],
                        "width": specs[0].width, "signed": specs[0].signed, "rows": rows,
                        "cols": cols, "dataflow": dataflow, "acc_width": acc_width,
                        "overflow": overflow, "pipeline": pipeline,
                        **({"correction": correction} if correction != "none" else {})},
                  extra_verilog=extra_verilog_sources(specs))


def make_bank(names, *, width: int = 8, signed: bool = True, rows: int = 2, cols=None,
              correction=None, **options) -> Design:
    """:func:`bank` of multiplier ``names`` (``None`` options dropped; one-line
    :class:`CostError` on bad input)."""
    try:
        specs = [parse(n, width=width, signed=signed) for n in names]
    except MultiplierError as err:
        raise CostError(str(err)) from None
    if len(set(specs)) != len(specs):
        raise CostError("a bank lists a multiplier twice")
    return bank(specs, rows, rows if cols is None else cols, correction=correction or "none",
                **{k: v for k, v in options.items() if v is not None})


def _make_mult(spec, **opts):
    if opts:
        raise CostError(f"options {', '.join(sorted(opts))} do not apply to a multiplier")
    return multiplier(spec)


def _make_mac(spec, **opts):
    opts.pop("dataflow", None)
    if opts.pop("correction", "none") != "none":
        raise CostError("--correction applies to arrays (--kind array)")
    if opts.pop("output_buffer", False):
        raise CostError("--output-buffer applies to arrays (--kind array or bank)")
    _no_array_dims(opts, "a MAC")
    return mac(spec, **opts)


def _no_array_dims(opts, what):
    for k in ("rows", "cols"):
        if opts.pop(k, None) not in (None, 1):
            raise CostError(f"--{k} does not apply to {what}")


def _make_array(spec, *, rows=2, cols=None, **opts):
    return array(spec, rows, rows if cols is None else cols, **opts)


#: Design kinds for :func:`make_design`: ``kind -> builder(spec, **options) -> Design``.
KINDS: dict[str, Callable[..., Design]] = {"mult": _make_mult, "mac": _make_mac,
                                           "array": _make_array}


def register_kind(kind: str, builder: Callable[..., Design]) -> None:
    """Add a design kind (``builder(spec, **options) -> Design``)."""
    KINDS[kind] = builder


def make_design(kind: str, name: str | MultiplierSpec, *, width: int = 8, signed: bool = True,
                **options) -> Design:
    """Design of ``kind`` (``mult``, ``mac``, ``array``) around multiplier ``name``.

    ``options`` are the builder's keyword arguments (``None`` values are dropped), e.g.
    ``rows``/``cols``/``dataflow``/``acc_width``/``overflow``/``pipeline``. Raises
    :class:`CostError` (one line) on bad input.
    """
    builder = KINDS.get(kind)
    if builder is None:
        raise CostError(f"unknown design kind {kind!r}; known: {', '.join(KINDS)}")
    try:
        spec = parse(name, width=width, signed=signed)
    except MultiplierError as err:
        raise CostError(str(err)) from None
    return builder(spec, **{k: v for k, v in options.items() if v is not None})
