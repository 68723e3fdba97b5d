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


def unpack_lanes(words, lanes: int, bits: int, is_signed: bool) -> np.ndarray:
    """Inverse of :func:`pack_lanes`: one int (or a list of ints) of ``lanes`` lanes each ->
    a flat int64 array of lane values, word after word."""
    words = [words] if isinstance(words, int) else list(words)
    nbytes = byte_stride(bits) // 8
    raw = np.frombuffer(b"".join(w.to_bytes(lanes * nbytes, "little") for w in words),
                        dtype=np.uint8).reshape(-1, nbytes)
    wide = np.zeros((raw.shape[0], 8), dtype=np.uint8)
    wide[:, :nbytes] = raw
    values = wide.reshape(-1).view("<u8").astype(np.int64) & ((1 << bits) - 1)
    if is_signed:
        values = np.where(values >> (bits - 1) & 1, values - (1 << bits), values)
    return values


class MultiplierBank(wiring.Component):
    """``lanes[N]`` copies of each spec in ``specs``, grouped by operand width ``N``.

    Signed and unsigned specs may be mixed: the operand buses carry raw bit patterns, which each
    multiplier reads with its own signedness. Widths may be mixed too: each width ``N`` gets its
    own operand buses.

    Ports: ``a{N}``, ``b{N}`` (``lanes[N] * S_in`` bits) for every width present;
    ``p0 .. p{K-1}`` (``lanes[N] * S_out`` bits, ``N`` the width of spec ``k``). Combinational.
    """

    def __init__(self, specs: list[MultiplierSpec], lanes):
        if not specs:
            raise ValueError("MultiplierBank needs at least one multiplier")
        widths = sorted({s.width for s in specs})
        if isinstance(lanes, int):
            lanes = {w: lanes for w in widths}
        if any(lanes.get(w, 0) < 1 for w in widths):
            raise ValueError(f"every width needs >= 1 lane, got {lanes}")
        self._specs = list(specs)
        self._lanes = dict(lanes)
        members = {}
        for w in widths:
            members[f"a{w}"] = In(lanes[w] * byte_stride(w))
            members[f"b{w}"] = In(lanes[w] * byte_stride(w))
        for k, spec in enumerate(specs):
            members[f"p{k}"] = Out(lanes[spec.width] * byte_stride(2 * spec.width))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for k, spec in enumerate(self._specs):
            n = spec.width
            a, b, out = getattr(self, f"a{n}"), getattr(self, f"b{n}"), getattr(self, f"p{k}")
            in_stride, out_stride = byte_stride(n), byte_stride(2 * n)
            for lane in range(self._lanes[n]):
                mult = spec.circuit()
                m.submodules[f"m{k}_l{lane}"] = mult
                lo = lane * in_stride
                m.d.comb += [mult.a.eq(a[lo:lo + n]), mult.b.eq(b[lo:lo + n])]
                olo = lane * out_stride
                m.d.comb += out[olo:olo + 2 * n].eq(mult.p.as_unsigned())
        return m
