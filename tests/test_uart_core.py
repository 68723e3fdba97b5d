"""The project's 8N1 UART (boards.uart) in Amaranth's simulator, against a bit-level line model
written here from the 8N1 definition (start 0, data LSB first, stop 1, idle high)."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from boards.uart import MIN_DIVISOR, UARTRx, UARTTx, baud_divisor


def line_bits(byte: int, stop: int = 1) -> list[int]:
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


def test_baud_divisor():
    assert baud_divisor(12e6, 115200) == 104          # iCEBreaker: 12 MHz / 115200
    assert baud_divisor(25e6, 115200) == 217          # ULX3S: 25 MHz
    assert baud_divisor(100e6, 1_000_000) == 100
    with pytest.raises(ValueError, match="too fast"):
        baud_divisor(12e6, 4_000_000)
    with pytest.raises(ValueError, match="off"):
        baud_divisor(12e6, 2_300_000)                  # divisor 5 -> 2.4 Mbaud, 4 % off
    with pytest.raises(ValueError):
        baud_divisor(12e6, 0)


def test_divisor_validation():
    with pytest.raises(ValueError, match="at least"):
        UARTTx(MIN_DIVISOR - 1)
    with pytest.raises(TypeError):
        UARTRx(4.5)


def _run(dut, testbench, *, background=None):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    if background:
        sim.add_testbench(background, background=True)
    sim.run()


@pytest.mark.parametrize("divisor", [4, 7])
def test_tx_frames_match_line_model(divisor):
    data = [0x00, 0xFF, 0x55, 0xA5, 0x01, 0x80, 0x3C]
    dut = UARTTx(divisor)
    seen = []

    async def tb(ctx):
        for byte in data:
            while not ctx.get(dut.i.ready):
                await ctx.tick()
            ctx.set(dut.i.payload, byte)
            ctx.set(dut.i.valid, 1)
            await ctx.tick()
            ctx.set(dut.i.valid, 0)
            # sample the line in the middle of every bit of the frame just started
            bits = []
            await ctx.tick().repeat(divisor // 2)
            for _ in range(10):
                bits.append(ctx.get(dut.tx))
                await ctx.tick().repeat(divisor)
            seen.append(bits)
        assert ctx.get(dut.tx) == 1                   # idle high afterwards

    _run(dut, tb)
    assert seen == [line_bits(b) for b in data]


def _rx_testbench(dut, frames, divisor, got, errors, *, bit_cycles=None, gap=3):
    """Drive ``frames`` (lists of line levels per bit) with ``bit_cycles`` clocks per bit."""
    bit_cycles = bit_cycles or divisor

    async def tb(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(5)
        for bits in frames:
            for level in bits:
                if isinstance(level, tuple):           # (level, cycles): explicit duration
                    ctx.set(dut.rx, level[0])
                    await ctx.tick().repeat(level[1])
                    continue
                ctx.set(dut.rx, level)
                await ctx.tick().repeat(bit_cycles)
            ctx.set(dut.rx, 1)
            await ctx.tick().repeat(gap)
        await ctx.tick().repeat(4 * divisor)

    async def collect(ctx):
        ctx.set(dut.o.ready, 1)
        async for _, _, valid, payload, err in ctx.tick().sample(dut.o.valid, dut.o.payload,
                                                                 dut.error):
            if valid:
                got.append(payload)
            if err:
                errors.append(len(got))

    return tb, collect


@pytest.mark.parametrize("divisor,bit_cycles", [(4, 4), (8, 8), (32, 31), (32, 33)])
def test_rx_receives_bytes(divisor, bit_cycles):
    """Random bytes, also from a sender whose bit time is 3 % off (mid-bit sampling keeps the
    drift at the stop bit below half a bit)."""
    data = [int(v) for v in np.random.default_rng(divisor + bit_cycles).integers(0, 256, 24)]
    dut = UARTRx(divisor)
    got, errors = [], []
    tb, collect = _rx_testbench(dut, [line_bits(b) for b in data], divisor, got, errors,
                                bit_cycles=bit_cycles)
    _run(dut, tb, background=collect)
    assert got == data
    assert errors == []


def test_rx_framing_error_glitch_and_recovery():
    divisor = 8
    dut = UARTRx(divisor)
    got, errors = [], []
    frames = [
        line_bits(0x42),
        line_bits(0x99, stop=0) + [(0, 3 * divisor)],   # stop bit 0 (and a break): dropped
        [(0, divisor // 2 - 2)],                         # glitch shorter than half a bit
        line_bits(0x17),
    ]
    tb, collect = _rx_testbench(dut, frames, divisor, got, errors, gap=2 * divisor)
    _run(dut, tb, background=collect)
    assert got == [0x42, 0x17]
    assert errors == [1]                                # one framing error, after the first byte


def test_rx_overrun_drops_new_byte():
    divisor = 4
    dut = UARTRx(divisor)
    got, errors = [], []

    async def tb(ctx):
        ctx.set(dut.rx, 1)
        ctx.set(dut.o.ready, 0)                         # nobody reads: second byte overruns
        await ctx.tick().repeat(3)
        for byte in (0x11, 0x22):
            for level in line_bits(byte):
                ctx.set(dut.rx, level)
                await ctx.tick().repeat(divisor)
        await ctx.tick().repeat(2 * divisor)
        got.append(ctx.get(dut.o.payload))
        errors.append(ctx.get(dut.o.valid))

    error_seen = []

    async def watch(ctx):
        async for _, _, err in ctx.tick().sample(dut.error):
            if err:
                error_seen.append(1)

    _run(dut, tb, background=watch)
    assert got == [0x11] and errors == [1]              # first byte kept, still valid
    assert error_seen == [1]


def test_loopback_tx_into_rx():
    divisor = 5
    m = Module()
    m.submodules.tx = tx = UARTTx(divisor)
    m.submodules.rx = rx = UARTRx(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    data = [int(v) for v in np.random.default_rng(3).integers(0, 256, 16)]
    got = []

    async def tb(ctx):
        ctx.set(rx.o.ready, 1)
        for byte in data:
            ctx.set(tx.i.payload, byte)
            ctx.set(tx.i.valid, 1)
            while True:                                  # transfer on an edge with ready high
                ready = ctx.get(tx.i.ready)
                await ctx.tick()
                if ready:
                    break
        ctx.set(tx.i.valid, 0)
        await ctx.tick().repeat(12 * divisor)

    async def collect(ctx):
        async for _, _, valid, payload in ctx.tick().sample(rx.o.valid, rx.o.payload):
            if valid:
                got.append(payload)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.add_testbench(collect, background=True)
    sim.run()
    assert got == data
