"""The UART accelerator: a weight-stationary :class:`hw.systolic.SystolicArray` behind the
command protocol of :mod:`boards.protocol`, and its board wrapper.

:class:`AcceleratorTop` (ports ``rx``, ``tx``, ``busy``, ``error``) is board independent and is
what the RTL simulation tests (``sim/tb/tb_uart_e2e.py``); :class:`BoardTop` requests the
board's UART and two LEDs from an amaranth-boards platform and derives the baud divisor from the
platform's clock.
"""

from __future__ import annotations

import operator

from amaranth.hdl import Elaboratable, Module, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.mac import quiet_on_error
from hw.systolic import SystolicArray
from sim.golden import ArrayModel

from .engine import CommandEngine
from .model import max_payload_for
from .protocol import identity
from .uart import UARTRx, UARTTx, baud_divisor

__all__ = ["DEFAULT_BAUD", "DEFAULT_MAX_M", "AcceleratorTop", "BoardTop"]

DEFAULT_BAUD = 115200
DEFAULT_MAX_M = 16


class AcceleratorTop(wiring.Component):
    """UART receiver/transmitter + :class:`boards.engine.CommandEngine` + systolic array.

    Parameters
    ----------
    array : sim.golden.ArrayModel
        What to build (``ws`` dataflow): shape, multipliers, accumulator width and overflow.
        The gateware computes exactly ``array.tile`` per ``STREAM``.
    divisor : int
        Clock cycles per UART bit (>= 4), e.g. ``baud_divisor(12e6, 115200)`` = 104.
    max_m : int
        Most activation rows per ``STREAM`` (result buffer depth).
    timeout_cycles : int or None
        Inter-byte timeout of the receiver; default 64 bit times.
    pipeline : bool
        Register every product in the PEs (shorter critical path, one more cycle of latency).
    clk_hz, baud : optional, reported by ``IDENTIFY``.

    Members
    -------
    rx : In(1), idle high       serial input (host -> device)
    tx : Out(1), idle high      serial output (device -> host)
    busy : Out(1)               a command is being executed or answered
    error : Out(1)              the last response carried an error status
    """

    @quiet_on_error
    def __init__(self, array: ArrayModel, *, divisor: int, max_m: int = DEFAULT_MAX_M,
                 timeout_cycles: int | None = None, pipeline: bool = False,
                 clk_hz: float | None = None, baud: int | None = None):
        if not isinstance(array, ArrayModel):
            raise TypeError(f"expected a sim.golden.ArrayModel, got {array!r}")
        if array.dataflow != "ws":
            raise ValueError("the board top drives a weight-stationary array (dataflow 'ws')")
        self._array = array
        self._divisor = operator.index(divisor)
        self._max_m = operator.index(max_m)
        if not 1 <= self._max_m <= 4096:
            raise ValueError(f"max_m must be in 1..4096, not {max_m}")
        self._timeout = (64 * self._divisor if timeout_cycles is None
                         else operator.index(timeout_cycles))
        self._pipeline = bool(pipeline)
        self._max_payload = max_payload_for(array.rows, array.cols, array.operand_width,
                                            self._max_m)
        # build the parts now so parameter errors surface at construction; the parts of a
        # rejected top are never elaborated, so Amaranth must not report them as unused
        try:
            self._core = SystolicArray.from_model(array, pipeline=self._pipeline)
            self._identity = identity(array, max_m=self._max_m, max_payload=self._max_payload,
                                      clk_hz=clk_hz, baud=baud,
                                      extra={"pipeline": self._pipeline,
                                             "latency_cycles": self._core.latency})
            self._rx = UARTRx(self._divisor)
            self._tx = UARTTx(self._divisor)
            self._engine = CommandEngine(rows=array.rows, cols=array.cols,
                                         width=array.operand_width, acc_width=array.acc_width,
                                         max_m=self._max_m, identity=self._identity,
                                         timeout_cycles=self._timeout)
        except Exception:
            for part in (getattr(self, name, None) for name in ("_core", "_rx", "_tx")):
                if part is not None:
                    part._MustUse__silence = True       # amaranth's MustUse opt-out flag
            raise
        assert self._engine.max_payload == self._max_payload
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1),
                          "error": Out(1)})

    array = property(lambda self: self._array)
    divisor = property(lambda self: self._divisor)
    max_m = property(lambda self: self._max_m)
    max_payload = property(lambda self: self._max_payload)
    timeout_cycles = property(lambda self: self._timeout)
    identity = property(lambda self: self._identity)

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = rx = self._rx
        m.submodules.uart_tx = tx = self._tx
        m.submodules.engine = engine = self._engine
        # the engine empties the array (and its shadow weights) on RESET and before each load
        array_rst = Signal()
        m.submodules.array = ResetInserter(array_rst)(self._core)
        core = self._core
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx), array_rst.eq(engine.array_rst),
                     self.busy.eq(engine.busy), self.error.eq(engine.error)]
        wiring.connect(m, rx.o, engine.rx)
        wiring.connect(m, engine.tx, tx.i)
        wiring.connect(m, engine.weights, core.weights)
        wiring.connect(m, engine.act, core.acts)
        wiring.connect(m, core.results, engine.res)
        return m


class BoardTop(Elaboratable):
    """:class:`AcceleratorTop` on an amaranth-boards platform: UART 0 and LEDs 0 (error) and
    1 (toggles after every answered command).

    The divisor comes from ``platform.default_clk_frequency`` and ``baud``; the inter-byte
    timeout is 20 ms (USB-serial bridges may pause between packets).
    """

    def __init__(self, array: ArrayModel, *, baud: int = DEFAULT_BAUD,
                 max_m: int = DEFAULT_MAX_M, pipeline: bool = False):
        self.array = array
        self.baud = baud
        self.max_m = max_m
        self.pipeline = pipeline
        self._acc = None
        self._acc_clk = None

    def accelerator(self, clk_hz: float) -> AcceleratorTop:
        """The :class:`AcceleratorTop` for a ``clk_hz`` clock (made once, then reused)."""
        if self._acc is None or self._acc_clk != clk_hz:
            divisor = baud_divisor(clk_hz, self.baud)
            self._acc = AcceleratorTop(self.array, divisor=divisor, max_m=self.max_m,
                                       timeout_cycles=max(64 * divisor, int(clk_hz * 0.02)),
                                       pipeline=self.pipeline, clk_hz=clk_hz, baud=self.baud)
            self._acc_clk = clk_hz
        return self._acc

    def elaborate(self, platform):
        m = Module()
        m.submodules.acc = acc = self.accelerator(platform.default_clk_frequency)
        uart = platform.request("uart", 0)
        led_err = platform.request("led", 0)
        led_act = platform.request("led", 1)
        toggle = Signal()
        busy_q = Signal()
        m.d.sync += busy_q.eq(acc.busy)
        with m.If(busy_q & ~acc.busy):
            m.d.sync += toggle.eq(~toggle)
        m.d.comb += [acc.rx.eq(uart.rx.i), uart.tx.o.eq(acc.tx), led_err.o.eq(acc.error),
                     led_act.o.eq(toggle)]
        return m
