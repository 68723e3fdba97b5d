"""A bank of systolic arrays behind one set of streams (AutoApprox-style accelerators).

``B`` arrays of the same shape, dataflow, operand width, signedness, accumulator and pipeline
(the multipliers differ) share the ports of one :class:`hw.systolic.SystolicArray` plus a
``select`` input (``ceil(log2 B)`` bits, at least 1) that routes them. Arrays with an output
correction (``hw.gen --bank ... --correction``) share one correction format; arrays without one
(exact) may sit beside them: the bank's ports are those of a corrected array, and an array
without the ``corr_g``/``corr_h`` payload fields simply does not see them (every other field
reaches every array by name). Routing:

* input streams (``weights``/``acts`` for ws, ``operands`` for os): payload to every array,
  ``valid`` only to array ``select``, ``ready`` from array ``select``;
* ``results``: payload and ``valid`` from array ``select``, ``ready`` only to it.

So with ``select = i`` the bank is exactly array ``i`` (same latency, throughput, weight-load
window and whole-GEMM cycles; the routing is combinational and adds no register). The other
arrays see no transfer and keep their state, loaded weights included. Change ``select`` only
while no tile of the selected array is in flight (before its first input transfer of a layer,
after its last result transfer): a layer runs on one array from start to end. A ``select``
value ``>= B`` accepts nothing and presents no result.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from hw.mac import quiet_on_error
from hw.systolic import SystolicArray, _equals, _instance

__all__ = ["ArrayBank", "MAX_BANK", "select_width", "bank_arrays"]

#: Most arrays in one bank.
MAX_BANK = 16


def select_width(count: int) -> int:
    """Bits of the ``select`` port for ``count`` arrays (at least 1)."""
    return max(1, (count - 1).bit_length())


def bank_arrays(specs, rows: int, cols: int, *, dataflow: str = "ws", acc_width: int = 32,
                overflow: str = "wrap", pipeline: bool = False, correction: str = "none",
                frac=None, alpha_bits=None, beta_bits=None, sum_bits=None,
                output_buffer: bool = False):
    """``(arrays, fmt)``: one :class:`~hw.systolic.SystolicArray` per multiplier of ``specs``;
    with a ``correction`` (``bias``/``cv``) every approximate array gets it, in one format
    fitted to all of them (:func:`sim.correction.default_format`, widths overridable), and an
    exact array (no error to correct) stays uncorrected. ``fmt`` is ``None`` without a
    correction. Raises :class:`sim.correction.CorrectionError` / ``ValueError``."""
    from sim.correction import default_format    # an arithmetic oracle (lower layer)

    specs = list(specs)
    corrected = [s.name != "exact" for s in specs]
    fmt = None
    if correction != "none" or any(v is not None for v in (frac, alpha_bits, beta_bits,
                                                           sum_bits)):
        if not any(corrected):
            raise ValueError("--correction: the bank has no approximate array to correct")
        fmt = default_format(correction, [s for s, c in zip(specs, corrected) if c], rows=rows,
                             dataflow=dataflow, acc_width=acc_width, frac=frac,
                             alpha_bits=alpha_bits, beta_bits=beta_bits, sum_bits=sum_bits)
    arrays = [SystolicArray(rows, cols, spec, dataflow=dataflow, acc_width=acc_width,
                            overflow=overflow, pipeline=pipeline,
                            correction=fmt if c else None, output_buffer=output_buffer)
              for spec, c in zip(specs, corrected)]
    return arrays, fmt


def _payload_fields(signature) -> dict:
    """``{stream: {field: shape}}`` of a signature's stream members."""
    out = {}
    for name, member in signature.members.items():
        layout = member.signature.members["payload"].shape
        fields = ({f: fl.shape for f, fl in layout} if isinstance(layout, data.StructLayout)
                  else {None: layout})
        out[name] = (member.flow, fields)
    return out


def _fits(sub, interface) -> bool:
    """``sub`` has the members of ``interface``, each payload with a subset of its fields of
    the same shapes (only the correction fields may be missing)."""
    a, b = _payload_fields(sub), _payload_fields(interface)
    if a.keys() != b.keys():
        return False
    for name, (flow, fields) in a.items():
        flow_b, fields_b = b[name]
        missing = set(fields_b) - set(fields)
        if flow != flow_b or not missing <= {"corr_g", "corr_h"}:
            return False
        if any(fields_b.get(f) != shape for f, shape in fields.items()):
            return False
    return True


def interface_index(arrays) -> int:
    """The array whose ports a bank takes: the first with the most payload fields (a corrected
    array when there is one)."""
    def count(a):
        return sum(len(fields) for _, fields in _payload_fields(a.signature).values())
    best = max(count(a) for a in arrays)
    return next(i for i, a in enumerate(arrays) if count(a) == best)


def _connect_fields(sub, port) -> list:
    """``sub.eq(port)``, field by field when ``sub`` has fewer fields than ``port``."""
    if not isinstance(port, data.View) or list(sub.shape()) == list(port.shape()):
        return [sub.eq(port)]
    sub_fields = [f for f, _ in sub.shape()]
    return [getattr(sub, f).eq(getattr(port, f)) for f in sub_fields]


class ArrayBank(wiring.Component):
    """``arrays`` (2..16 :class:`~hw.systolic.SystolicArray` of one interface) behind one set of
    streams and ``select`` (module docstring).

    ``modules``: Verilog module names of the arrays, emitted separately
    (:func:`hw.systolic.emit_array_verilog`) and instantiated by name; ``None``: the arrays are
    elaborated as submodules (costing, simulation in Amaranth).
    Members: ``select`` In(S) and the members of ``arrays[interface]``.
    """

    @quiet_on_error
    def __init__(self, arrays, modules=None):
        arrays = list(arrays)
        if not 2 <= len(arrays) <= MAX_BANK:
            raise ValueError(f"a bank holds 2..{MAX_BANK} arrays, not {len(arrays)}")
        if not all(isinstance(a, SystolicArray) for a in arrays):
            raise TypeError("a bank holds SystolicArray instances")
        self._interface = interface_index(arrays)
        first = arrays[self._interface]
        for i, a in enumerate(arrays):
            same = (a.rows, a.cols, a.dataflow, a.acc_width, a.overflow, a.pipeline,
                    a.operand_width, a.signed, a.output_buffer)
            want = (first.rows, first.cols, first.dataflow, first.acc_width, first.overflow,
                    first.pipeline, first.operand_width, first.signed, first.output_buffer)
            if same != want or not _fits(a.signature, first.signature):
                raise ValueError(f"bank array {i} differs from array {self._interface} in "
                                 "shape, dataflow, width, signedness, accumulator, pipeline, "
                                 "output buffer or correction format: a bank shares one "
                                 "interface")
        if modules is not None and len(modules) != len(arrays):
            raise ValueError("one Verilog module name per array")
        self._arrays = arrays
        self._modules = None if modules is None else list(modules)
        members = {"select": In(select_width(len(arrays)))}
        members.update(dict(first.signature.members.items()))
        super().__init__(members)
        for a in arrays:      # elaborated with the bank (or instantiated by name): no warning
            a._MustUse__silence = True   # of their own when the bank is only validated

    @property
    def arrays(self) -> list:
        return list(self._arrays)

    @property
    def interface(self) -> int:
        """Index of the array whose ports the bank has (a corrected one if any)."""
        return self._interface

    def elaborate(self, platform):
        m = Module()
        units = []
        for i, array in enumerate(self._arrays):
            if self._modules is None:
                m.submodules[f"array{i}"] = array
                units.append(array)
            else:
                units.append(_instance(m, f"array{i}", array.signature, self._modules[i]))
        for name, member in self._arrays[self._interface].signature.members.items():
            port = getattr(self, name)
            inward = member.flow == In
            for i, unit in enumerate(units):
                sub = getattr(unit, name)
                chosen = _equals(self.select, i)
                if inward:
                    m.d.comb += [*_connect_fields(sub.payload, port.payload),
                                 sub.valid.eq(port.valid & chosen)]
                else:
                    m.d.comb += sub.ready.eq(port.ready & chosen)
            with m.Switch(self.select):
                for i, unit in enumerate(units):
                    sub = getattr(unit, name)
                    with m.Case(i):
                        if inward:
                            m.d.comb += port.ready.eq(sub.ready)
                        else:
                            m.d.comb += [port.payload.eq(sub.payload), port.valid.eq(sub.valid)]
                with m.Default():              # no such array: nothing accepted or presented
                    if inward:
                        m.d.comb += port.ready.eq(0)
                    else:
                        m.d.comb += [port.payload.eq(0), port.valid.eq(0)]
        return m
