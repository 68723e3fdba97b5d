"""A small 8N1 UART written for this project.

``amaranth-stdio`` (which has a UART) is not released on PyPI (only an empty placeholder,
version 0), so the boards package carries its own: :class:`UARTTx` and :class:`UARTRx`, both
clocked by the ``sync`` domain and parameterised by ``divisor`` = clock cycles per bit (see
:func:`baud_divisor`). Frames are 8N1: one start bit (0), eight data bits LSB first, one stop
bit (1); the idle line is high.
"""

from __future__ import annotations

import operator

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from hw.mac import quiet_on_error

__all__ = ["MIN_DIVISOR", "baud_divisor", "UARTTx", "UARTRx"]

#: Smallest supported divisor: the receiver samples in the middle of a bit, so it needs a few
#: clocks per bit (4..8 is what the simulations use; real boards use 100+).
MIN_DIVISOR = 4


def baud_divisor(clk_freq: float, baud: int, *, tolerance: float = 0.02) -> int:
    """Clock cycles per bit for ``baud`` at ``clk_freq`` Hz, rounded to the nearest integer.

    Raises :class:`ValueError` when the divisor would be below :data:`MIN_DIVISOR` or the
    resulting bit rate is more than ``tolerance`` (default 2 %) off ``baud`` (8N1 tolerates
    about 4 % between both ends, so each end gets half of it).
    """
    if not baud or baud <= 0:
        raise ValueError(f"baud rate must be positive, not {baud!r}")
    if not clk_freq or clk_freq <= 0:
        raise ValueError(f"clock frequency must be positive, not {clk_freq!r}")
    divisor = round(clk_freq / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"{baud} baud is too fast for a {clk_freq / 1e6:g} MHz clock "
                         f"(needs at least {MIN_DIVISOR} clocks per bit)")
    error = abs(clk_freq / divisor - baud) / baud
    if error > tolerance:
        raise ValueError(f"{baud} baud from a {clk_freq / 1e6:g} MHz clock is {error:.1%} off "
                         f"(divisor {divisor}); pick another baud rate")
    return divisor


def _check_divisor(divisor) -> int:
    try:
        divisor = operator.index(divisor)
    except TypeError:
        raise TypeError(f"divisor must be an integer, not {divisor!r}") from None
    if divisor < MIN_DIVISOR:
        raise ValueError(f"divisor must be at least {MIN_DIVISOR} clocks per bit, not {divisor}")
    return divisor


class UARTTx(wiring.Component):
    """8N1 transmitter.

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send. A byte is taken (``ready``) only while the transmitter is idle, so one
        frame of ``10 * divisor`` cycles follows each accepted byte.
    tx : Out(1), idle high
        Serial output (drive the board's TX pin with it).
    busy : Out(1)
        High while a frame is being shifted out.
    """

    @quiet_on_error
    def __init__(self, divisor: int):
        self._divisor = _check_divisor(divisor)
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1),
                          "busy": Out(1)})

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        shreg = Signal(10, init=0x3FF)      # stop, data[7:0], start; shifted out LSB first
        bits = Signal(range(11))            # bits left in the frame
        count = Signal(range(self._divisor))
        m.d.comb += [self.tx.eq(shreg[0]), self.busy.eq(bits != 0),
                     self.i.ready.eq(bits == 0)]
        with m.If(bits == 0):
            with m.If(self.i.valid):
                m.d.sync += [shreg.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))),
                             bits.eq(10), count.eq(self._divisor - 1)]
        with m.Elif(count == 0):
            m.d.sync += [shreg.eq(Cat(shreg[1:], Const(1, 1))), bits.eq(bits - 1),
                         count.eq(self._divisor - 1)]
        with m.Else():
            m.d.sync += count.eq(count - 1)
        return m


class UARTRx(wiring.Component):
    """8N1 receiver with a 2-flip-flop input synchroniser and mid-bit sampling.

    The line is synchronised by two flip-flops (``amaranth.lib.cdc.FFSynchronizer``, reset high).
    A falling edge starts a frame; the start bit is re-checked half a bit later (a shorter
    glitch is ignored) and every following bit is sampled ``divisor`` cycles after the previous
    sample, i.e. in the middle of the bit. A byte whose stop bit reads 0 is dropped
    (framing error) and the receiver waits for the line to go idle before the next start bit.

    Members
    -------
    rx : In(1), idle high
        Serial input (the board's RX pin).
    o : Out(stream.Signature(8))
        Received bytes. ``valid`` stays high until ``ready``; a byte that completes while the
        previous one is still waiting is dropped (overrun).
    error : Out(1)
        One-cycle pulse on a framing error or an overrun.
    """

    @quiet_on_error
    def __init__(self, divisor: int):
        self._divisor = _check_divisor(divisor)
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(8)),
                          "error": Out(1)})

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.sync_ff = FFSynchronizer(self.rx, line, init=1, stages=2)
        count = Signal(range(self._divisor))
        bits = Signal(range(9))
        shreg = Signal(8)

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        m.d.sync += self.error.eq(0)

        with m.FSM(name="rx"):
            with m.State("IDLE"):
                with m.If(~line):
                    # first sample of the start bit; its middle is divisor//2 cycles later
                    m.d.sync += count.eq(self._divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(count != 0):
                    m.d.sync += count.eq(count - 1)
                with m.Elif(line):
                    m.next = "IDLE"             # glitch shorter than half a bit
                with m.Else():
                    m.d.sync += [count.eq(self._divisor - 1), bits.eq(8)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(count != 0):
                    m.d.sync += count.eq(count - 1)
                with m.Else():
                    m.d.sync += [shreg.eq(Cat(shreg[1:], line)), bits.eq(bits - 1),
                                 count.eq(self._divisor - 1)]
                    with m.If(bits == 1):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(count != 0):
                    m.d.sync += count.eq(count - 1)
                with m.Elif(line):
                    with m.If(self.o.valid & ~self.o.ready):
                        m.d.sync += self.error.eq(1)            # overrun: drop the new byte
                    with m.Else():
                        m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += self.error.eq(1)                # framing error
                    m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m
