"""A bank of systolic arrays behind one set of streams (AutoApprox-style accelerators).

``B`` arrays of the same shape, dataflow, operand width, signedness, accumulator and pipeline
(the multipliers differ) share the ports of one :class:`hw.systolic.SystolicArray` plus a
``select`` input (``ceil(log2 B)`` bits, at least 1) that routes them:

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
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from hw.mac import quiet_on_error
from hw.systolic import SystolicArray, _equals, _instance

__all__ = ["ArrayBank", "MAX_BANK", "select_width"]

#: Most arrays in one bank.
MAX_BANK = 16


def select_width(count: int) -> int:
    """Bits of the ``select`` port for ``count`` arrays (at least 1)."""
    return max(1, (count - 1).bit_length())


class ArrayBank(wiring.Component):
    """``arrays`` (2..16 :class:`~hw.systolic.SystolicArray` of one interface) behind one set of
    streams and ``select`` (module docstring).

    ``modules``: Verilog module names of the arrays, emitted separately
    (:func:`hw.systolic.emit_array_verilog`) and instantiated by name; ``None``: the arrays are
    elaborated as submodules (costing, simulation in Amaranth).
    Members: ``select`` In(S) and the members of ``arrays[0]``.
    """

    @quiet_on_error
    def __init__(self, arrays, modules=None):
        arrays = list(arrays)
        if not 2 <= len(arrays) <= MAX_BANK:
            raise ValueError(f"a bank holds 2..{MAX_BANK} arrays, not {len(arrays)}")
        if not all(isinstance(a, SystolicArray) for a in arrays):
            raise TypeError("a bank holds SystolicArray instances")
        first = arrays[0]
        for i, a in enumerate(arrays[1:], 1):
            same = (a.rows, a.cols, a.dataflow, a.acc_width, a.overflow, a.pipeline,
                    a.operand_width, a.signed)
            want = (first.rows, first.cols, first.dataflow, first.acc_width, first.overflow,
                    first.pipeline, first.operand_width, first.signed)
            if same != want or a.signature != first.signature:
                raise ValueError(f"bank array {i} differs from array 0 in shape, dataflow, "
                                 "width, signedness, accumulator, pipeline or correction: "
                                 "a bank shares one interface")
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

    def elaborate(self, platform):
        m = Module()
        units = []
        for i, array in enumerate(self._arrays):
            if self._modules is None:
                m.submodules[f"array{i}"] = array
                units.append(array)
            else:
                units.append(_instance(m, f"array{i}", array.signature, self._modules[i]))
        for name, member in self._arrays[0].signature.members.items():
            port = getattr(self, name)
            inward = member.flow == In
            for i, unit in enumerate(units):
                sub = getattr(unit, name)
                chosen = _equals(self.select, i)
                if inward:
                    m.d.comb += [sub.payload.eq(port.payload), sub.valid.eq(port.valid & chosen)]
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
