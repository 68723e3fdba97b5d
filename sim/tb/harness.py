"""Test tops that put many circuits into one Verilog build (one simulator compile checks all).

:class:`MultiplierBank` instantiates ``lanes`` copies of each multiplier on shared operand buses.
Lane ``l`` of operand ``a`` sits at bits ``[l*S_in, l*S_in + N)`` of port ``a`` (two's-complement
bits for signed operands), with ``S_in`` = ``N`` rounded up to whole bytes; product lane ``l`` of
multiplier ``k`` sits at ``[l*S_out, l*S_out + 2N)`` of port ``p{k}``. Byte-aligned lanes let the
testbench pack and unpack vectors with numpy.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.mult import MultiplierSpec

__all__ = ["MultiplierBank", "byte_stride", "pack_lanes", "unpack_lanes"]


def byte_stride(bits: int) -> int:
    return 8 * ((bits + 7) // 8)


def pack_lanes(values: np.ndarray, bits: int) -> int:
    """Pack integers (two's complement, ``bits`` wide) into one int at byte-aligned lanes."""
    nbytes = byte_stride(bits) // 8
    raw = (np.asarray(values, dtype=np.int64) & ((1 << bits) - 1)).astype("<u8")
    return int.from_bytes(raw.view(np.uint8).reshape(-1, 8)[:, :nbytes].tobytes(), "little")


def unpack_lanes(word: int, lanes: int, bits: int, is_signed: bool) -> np.ndarray:
    """Inverse of :func:`pack_lanes` for ``lanes`` lanes."""
    nbytes = byte_stride(bits) // 8
    raw = np.frombuffer(word.to_bytes(lanes * nbytes, "little"), dtype=np.uint8)
    wide = np.zeros((lanes, 8), dtype=np.uint8)
    wide[:, :nbytes] = raw.reshape(lanes, nbytes)
    values = wide.reshape(-1).view("<u8").astype(np.int64) & ((1 << bits) - 1)
    if is_signed:
        values = np.where(values >> (bits - 1) & 1, values - (1 << bits), values)
    return values


class MultiplierBank(wiring.Component):
    """``lanes`` copies of each spec in ``specs`` (all of one width and signedness).

    Ports: ``a``, ``b`` (``lanes * S_in`` bits), ``p0 .. p{K-1}`` (``lanes * S_out`` bits).
    Combinational.
    """

    def __init__(self, specs: list[MultiplierSpec], lanes: int):
        if not specs:
            raise ValueError("MultiplierBank needs at least one multiplier")
        widths = {(s.width, s.signed) for s in specs}
        if len(widths) != 1:
            raise ValueError("all multipliers in a bank must share width and signedness")
        if lanes < 1:
            raise ValueError(f"lanes must be >= 1, not {lanes}")
        self._specs = list(specs)
        self._lanes = lanes
        n = specs[0].width
        self._in_stride, self._out_stride = byte_stride(n), byte_stride(2 * n)
        members = {"a": In(lanes * self._in_stride), "b": In(lanes * self._in_stride)}
        for k in range(len(specs)):
            members[f"p{k}"] = Out(lanes * self._out_stride)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        n = self._specs[0].width
        for k, spec in enumerate(self._specs):
            out = getattr(self, f"p{k}")
            for lane in range(self._lanes):
                mult = spec.circuit()
                m.submodules[f"m{k}_l{lane}"] = mult
                lo = lane * self._in_stride
                m.d.comb += [mult.a.eq(self.a[lo:lo + n]), mult.b.eq(self.b[lo:lo + n])]
                olo = lane * self._out_stride
                m.d.comb += out[olo:olo + 2 * n].eq(mult.p.as_unsigned())
        return m
