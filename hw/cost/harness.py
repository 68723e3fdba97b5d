"""Register harness for timing: every path of the design becomes register-to-register.

:class:`Harness` wraps any ``wiring.Component`` (combinational or clocked in domain ``sync``):

* ``io="direct"``: each input port gets an input register and each output port an output
  register; the top-level ports keep the design's port names (nested names joined by ``__``).
  Uses ``in_bits + out_bits + 2`` pins (plus ``clk`` and ``rst``).
* ``io="serial"``: for designs with more port bits than the package has pins. All input bits
  come from one shift register fed by pin ``si`` (one flip-flop per bit, no logic); all output
  bits are registered, XOR-reduced and registered again onto pin ``so`` (about ``out_bits / 3``
  extra LUT4s, a 2-3 LUT deep path). Nothing can be optimised away: every input bit is a
  distinct register and every output bit reaches a pin.

Harness registers are reset-less; the design's own registers keep their reset (``rst`` pin).
Latency: design latency + 1 (direct) cycle; the harness is for synthesis and timing only.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .errors import CostError

__all__ = ["IO_MODES", "Harness", "port_bits"]

IO_MODES = ("direct", "serial")


def _ports(component):
    """``[(name, is_input, value), ...]`` for every port bit group of ``component``."""
    ports = []
    for path, member, value in component.signature.flatten(component):
        name = "__".join(str(p) for p in path)
        ports.append((name, member.flow == wiring.In, Value.cast(value)))
    return ports


def port_bits(component) -> tuple[int, int]:
    """``(input_bits, output_bits)`` of ``component``'s flattened signature."""
    ins = outs = 0
    for _, is_in, value in _ports(component):
        if is_in:
            ins += len(value)
        else:
            outs += len(value)
    return ins, outs


class Harness(wiring.Component):
    """Registers around ``inner``; see the module docstring for the two I/O modes.

    ``direct`` members mirror ``inner``'s ports (flattened, unsigned); ``serial`` members are
    ``si: In(1)`` and ``so: Out(1)``.
    """

    def __init__(self, inner: wiring.Component, io: str = "direct"):
        if io not in IO_MODES:
            raise CostError(f"I/O mode must be one of {', '.join(IO_MODES)}, not {io!r}")
        self._inner = inner
        self._io = io
        self._ports = _ports(inner)
        if not any(is_in for _, is_in, _ in self._ports) or \
                not any(not is_in for _, is_in, _ in self._ports):
            raise CostError("a design needs at least one input and one output port to be timed")
        if io == "direct":
            members = {name: (In if is_in else Out)(len(value))
                       for name, is_in, value in self._ports}
        else:
            members = {"si": In(1), "so": Out(1)}
        super().__init__(members)

    io = property(lambda self: self._io)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self._inner
        if self._io == "direct":
            for name, is_in, value in self._ports:
                reg = Signal(len(value), name=f"r_{name}", reset_less=True)
                if is_in:
                    m.d.sync += reg.eq(getattr(self, name))
                    m.d.comb += value.eq(reg)
                else:
                    m.d.sync += reg.eq(value)
                    m.d.comb += getattr(self, name).eq(reg)
            return m
        ins = [value for _, is_in, value in self._ports if is_in]
        outs = [value for _, is_in, value in self._ports if not is_in]
        n_in = sum(len(v) for v in ins)
        chain = Signal(n_in, name="scan_in", reset_less=True)
        m.d.sync += chain.eq(Cat(self.si, chain[:-1]) if n_in > 1 else self.si)
        offset = 0
        for value in ins:
            m.d.comb += value.eq(chain[offset:offset + len(value)])
            offset += len(value)
        captured = Signal(sum(len(v) for v in outs), name="capture", reset_less=True)
        so = Signal(name="so_reg", reset_less=True)
        m.d.sync += [captured.eq(Cat(*outs)), so.eq(captured.xor())]
        m.d.comb += self.so.eq(so)
        return m
