"""The gateware frame sender, receiver and command engine (boards.engine) in Amaranth's
simulator, against the host's frame encoder (boards.protocol.encode_frame, whose CRC is
binascii.crc_hqx) and the pure-Python device model (boards.model.DeviceModel).

Frames: empty payloads, single bytes and random payloads; random back-pressure and gaps, so
bytes that are offered but not taken must not enter the CRC."""

import binascii
import gc
import warnings

import numpy as np
import pytest
from amaranth.hdl import Fragment, Module, ResetInserter, Signal, UnusedElaboratable
from amaranth.lib import wiring
from amaranth.sim import Simulator

from boards.engine import CommandEngine, FrameReceiver, FrameSender
from boards.top import AcceleratorTop
from boards.uart import UARTRx, UARTTx
from boards.model import DeviceModel
from boards.protocol import (REQUEST_SYNC, RESPONSE_SYNC, Command, Status, decode_frame,
                             encode_frame, identity, pack_values)
from hw.systolic import SystolicArray
from sim.golden import ArrayModel

MAX = 300


def _frames(seed):
    rng = np.random.default_rng(seed)
    payloads = [b"", b"\x00", b"\xff", b"\x5a", b"\xa5"] + [
        rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in (1, 2, 5, 64, MAX)]
    return [(int(rng.integers(256)), int(rng.integers(256)), p) for p in payloads]


def _run(dut, tb):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()


def test_sender_frames_equal_host_encoder():
    frames = _frames(2)
    dut = FrameSender(MAX)
    rng = np.random.default_rng(3)
    sent = []

    async def tb(ctx):
        for seq, code, payload in frames:
            ctx.set(dut.seq, seq)
            ctx.set(dut.code, code)
            ctx.set(dut.length, len(payload))
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            out, i = [], 0
            while ctx.get(dut.busy):
                ready = bool(rng.random() < 0.6)             # back-pressure from the UART
                offer = i < len(payload) and bool(rng.random() < 0.8)
                ctx.set(dut.o.ready, ready)
                ctx.set(dut.payload.valid, offer)
                ctx.set(dut.payload.payload, payload[i] if offer else 0xEE)
                if ctx.get(dut.o.valid) and ready:
                    out.append(ctx.get(dut.o.payload))
                if offer and ctx.get(dut.payload.ready):
                    i += 1
                await ctx.tick()
            ctx.set(dut.o.ready, 0)
            ctx.set(dut.payload.valid, 0)
            assert i == len(payload)
            sent.append(bytes(out))

    _run(dut, tb)
    for (seq, code, payload), frame in zip(frames, sent, strict=True):
        assert frame == encode_frame(RESPONSE_SYNC, seq, code, payload)
        assert int.from_bytes(frame[-2:], "big") == binascii.crc_hqx(frame[1:-2], 0xFFFF)


def _receive(frames, gaps_seed=4):
    """Feed ``frames`` (bytes) to a FrameReceiver; return per frame (done count, status, seq,
    code, length, {address: byte} written to the payload buffer)."""
    dut = FrameReceiver(max_payload=MAX, timeout_cycles=1000)
    rng = np.random.default_rng(gaps_seed)
    results = []

    async def tb(ctx):
        ctx.set(dut.enable, 1)
        for frame in frames:
            mem, dones = {}, 0
            for byte in frame:
                ctx.set(dut.i.payload, byte)
                ctx.set(dut.i.valid, 1)
                if ctx.get(dut.wr_en):
                    mem[ctx.get(dut.wr_addr)] = ctx.get(dut.wr_data)
                await ctx.tick()
                ctx.set(dut.i.valid, 0)
                dones += ctx.get(dut.done)
                for _ in range(int(rng.integers(0, 4))):    # gaps well below the timeout
                    await ctx.tick()
                    dones += ctx.get(dut.done)
            for _ in range(3):                              # the CRC check takes a cycle
                await ctx.tick()
                dones += ctx.get(dut.done)
            results.append((dones, ctx.get(dut.status), ctx.get(dut.seq), ctx.get(dut.code),
                            ctx.get(dut.length), mem))

    _run(dut, tb)
    return results


def test_receiver_accepts_host_frames():
    frames = _frames(5)
    got = _receive([encode_frame(REQUEST_SYNC, seq, code, p) for seq, code, p in frames])
    for (seq, code, payload), (dones, status, rseq, rcode, length, mem) in zip(frames, got,
                                                                               strict=True):
        assert (dones, status) == (1, Status.OK)
        assert (rseq, rcode, length, mem) == (seq, code, len(payload), dict(enumerate(payload)))


@pytest.mark.parametrize("seed", [6, 7])
def test_receiver_rejects_any_flipped_bit(seed):
    """One bit flipped in SEQ, CODE, the payload or the CRC: ERR_CRC (CRC-16 detects every
    single-bit error), never OK."""
    rng = np.random.default_rng(seed)
    frames = []
    for seq, code, payload in _frames(seed):
        frame = bytearray(encode_frame(REQUEST_SYNC, seq, code, payload))
        # the length bytes (3, 4) are left alone: a changed length changes the frame's extent
        pos = [1, 2] + list(range(5, len(frame)))
        frame[pos[int(rng.integers(len(pos)))]] ^= 1 << int(rng.integers(8))
        frames.append(bytes(frame))
    for dones, status, *_ in _receive(frames, seed):
        assert (dones, status) == (1, Status.ERR_CRC)


# -- the command engine with a real array, at the byte-stream level ----------------------------
def _engine_harness(array, max_m, ident):
    core = SystolicArray.from_model(array)
    eng = CommandEngine(rows=array.rows, cols=array.cols, width=array.operand_width,
                        acc_width=array.acc_width, max_m=max_m, identity=ident,
                        timeout_cycles=1000)
    m = Module()
    m.submodules.engine = eng
    array_rst = Signal()
    m.submodules.array = ResetInserter(array_rst)(core)
    m.d.comb += array_rst.eq(eng.array_rst)
    wiring.connect(m, eng.weights, core.weights)
    wiring.connect(m, eng.act, core.acts)
    wiring.connect(m, core.results, eng.res)
    return m, eng


@pytest.mark.parametrize("array", [
    # 10-bit operands (2 bytes each, 6 padding bits), 22-bit accumulators sent as 3 bytes
    # (sign-extended), wrapping; 6-bit unsigned operands, 13-bit saturating accumulators
    ArrayModel.uniform(2, 3, "exact", width=10, acc_width=22),
    ArrayModel.per_row(3, 2, ["exact", "truncated4c", "exact"], width=6, signed=False,
                       acc_width=13, overflow="saturate"),
], ids=["s10-acc22-wrap", "u6-acc13-sat"])
def test_engine_responses_equal_device_model(array):
    """Every response of the gateware engine (bytes, CRC included) equals the pure-Python
    DeviceModel's answer to the same request; operands at the extremes of their range."""
    max_m = 4
    model = DeviceModel(array, max_m=max_m)
    ident = identity(array, max_m=max_m, max_payload=model.max_payload)
    m, eng = _engine_harness(array, max_m, ident)
    rng = np.random.default_rng(array.rows)
    n, signed_ = array.operand_width, array.signed
    lo, hi = (-(1 << (n - 1)), (1 << (n - 1)) - 1) if signed_ else (0, (1 << n) - 1)
    bpo = (n + 7) // 8

    def values(count):
        return rng.choice([lo, hi, lo + 1, hi - 1, 0, int(rng.integers(lo, hi + 1))], count)

    def weights(k_t):
        return bytes([k_t]) + pack_values(values(array.rows * array.cols), bpo)

    requests = [(Command.IDENTIFY, b""), (Command.READ, b""),
                (Command.LOAD_WEIGHTS, weights(array.rows)),
                (Command.STREAM, pack_values(values(max_m * array.rows), bpo)),
                (Command.READ, b""),
                (Command.LOAD_WEIGHTS, weights(1)),
                (Command.STREAM, pack_values(values(array.rows), bpo)),
                (Command.READ, b""), (Command.RESET, b""), (Command.READ, b"")]
    frames = [encode_frame(REQUEST_SYNC, i, cmd, p) for i, (cmd, p) in enumerate(requests)]
    bad = bytearray(frames[4])
    bad[-1] ^= 0x04
    frames.insert(5, bytes(bad))
    got = []

    async def tb(ctx):
        ctx.set(eng.tx.ready, 1)
        for frame in frames:
            for byte in frame:
                ctx.set(eng.rx.payload, byte)
                ctx.set(eng.rx.valid, 1)
                await ctx.tick()
                ctx.set(eng.rx.valid, 0)
                await ctx.tick().repeat(2)
            out = bytearray()
            for _ in range(20000):
                if ctx.get(eng.tx.valid):
                    out.append(ctx.get(eng.tx.payload))
                await ctx.tick()
                if len(out) >= 5 and len(out) == 7 + (out[3] | out[4] << 8):
                    break
            while ctx.get(eng.busy):                    # bytes sent now would be dropped
                await ctx.tick()
            got.append(bytes(out))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    want = [model.feed(frame) for frame in frames]
    assert [decode_frame(w, RESPONSE_SYNC)[1] for w in want] == [
        Status.OK, Status.ERR_STATE, Status.OK, Status.OK, Status.OK, Status.ERR_CRC,
        Status.OK, Status.OK, Status.OK, Status.OK, Status.ERR_STATE]
    assert got == want


def _unused_warnings(make) -> list:
    """``make()`` must raise; return the UnusedElaboratable warnings its remains cause."""
    Fragment.get(Module(), None)        # Amaranth reports unused ones after a first elaboration
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            make()
        except (ValueError, TypeError):
            pass
        else:
            raise AssertionError("expected the parameters to be rejected")
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, UnusedElaboratable)]


@pytest.mark.parametrize("make", [
    lambda: UARTTx(3),
    lambda: UARTRx(4.5),
    lambda: FrameSender(0),
    lambda: FrameReceiver(max_payload=0x10000, timeout_cycles=10),
    lambda: CommandEngine(rows=2, cols=2, width=8, acc_width=16, max_m=4, identity=b"",
                          timeout_cycles=10),
    lambda: AcceleratorTop(ArrayModel.uniform(2, 2, "exact"), divisor=2),       # UART rejects
    lambda: AcceleratorTop(ArrayModel.uniform(16, 16, "exact"), divisor=8, max_m=4096),
], ids=["uart-tx", "uart-rx", "sender", "receiver", "engine", "top-divisor", "top-buffers"])
def test_rejected_parameters_leave_no_unused_elaboratable(make):
    """A component whose parameters were rejected (and the parts a rejected top had already
    built) is not reported by Amaranth as "created but never used"."""
    assert _unused_warnings(make) == []
