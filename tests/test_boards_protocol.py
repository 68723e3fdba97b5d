"""Frame format, CRC and the pure-Python device model (boards.protocol, boards.model)."""

import binascii

import numpy as np
import pytest
from amaranth.sim import Simulator

from boards.engine import CRC
from boards.faults import FAULT_KINDS, FaultInjector
from boards.model import DeviceModel
from boards.protocol import (REQUEST_SYNC, RESPONSE_SYNC, Command, FrameDecoder, ProtocolError,
                             Status, crc16, crc16_bitwise, decode_frame, encode_frame,
                             pack_values, parse_identity, unpack_values)
from sim.golden import ArrayModel


def test_crc_published_check_value():
    # CRC-16/CCITT-FALSE catalogue entry: check = 0x29B1 for "123456789"
    assert crc16(b"123456789") == 0x29B1
    assert crc16_bitwise(b"123456789") == 0x29B1
    assert binascii.crc_hqx(b"123456789", 0xFFFF) == 0x29B1
    assert CRC.compute(b"123456789") == 0x29B1        # the gateware's parameters
    assert CRC.residue() == 0                          # whole frame after SYNC: CRC 0


def test_crc_bitwise_equals_crc_hqx_on_random_data():
    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 7, 64, 300):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert crc16_bitwise(data) == binascii.crc_hqx(data, 0xFFFF)
        assert CRC.compute(data) == binascii.crc_hqx(data, 0xFFFF)


def test_gateware_crc_equals_crc_hqx():
    """The gateware CRC processor in Amaranth's simulator: empty frame, every single byte,
    the check string and random frames, with idle cycles between bytes and a restart (``start``
    together with the first byte) on every other frame."""
    rng = np.random.default_rng(1)
    frames = [b"", b"123456789"] + [bytes([b]) for b in range(256)] + [
        rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in (2, 3, 17, 64, 300)]
    dut = CRC.create()
    got = []

    async def tb(ctx):
        for k, frame in enumerate(frames):
            together = k % 2 and frame             # start in the cycle of the first byte
            ctx.set(dut.start, 1)
            if not together:
                await ctx.tick()
                ctx.set(dut.start, 0)
            for byte in frame:
                ctx.set(dut.data, byte)
                ctx.set(dut.valid, 1)
                await ctx.tick()
                ctx.set(dut.start, 0)
                ctx.set(dut.valid, 0)
                if rng.random() < 0.3:
                    await ctx.tick().repeat(int(rng.integers(1, 4)))     # idle: CRC holds
            got.append(ctx.get(dut.crc))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert got == [binascii.crc_hqx(f, 0xFFFF) for f in frames]


def test_frame_roundtrip_and_residue():
    frame = encode_frame(REQUEST_SYNC, 7, Command.STREAM, b"\x01\x02\x03")
    assert frame[:5] == bytes([0x5A, 7, 3, 3, 0])
    assert crc16(frame[1:]) == 0                        # CRC over everything after sync
    assert decode_frame(frame, REQUEST_SYNC) == (7, 3, b"\x01\x02\x03")
    with pytest.raises(ProtocolError, match="CRC"):
        decode_frame(frame[:-1] + bytes([frame[-1] ^ 1]), REQUEST_SYNC)
    with pytest.raises(ProtocolError, match="sync"):
        decode_frame(frame, RESPONSE_SYNC)
    with pytest.raises(ProtocolError, match="bound"):
        decode_frame(frame, REQUEST_SYNC, max_payload=2)


def test_decoder_resynchronises_after_garbage_and_bounds_length():
    good = encode_frame(REQUEST_SYNC, 1, Command.IDENTIFY)
    dec = FrameDecoder(REQUEST_SYNC, max_payload=8)
    # garbage without a sync byte, then a false sync with a huge length, then a good frame
    events = dec.feed(b"\x00\x13\xff" + bytes([REQUEST_SYNC, 9, 1, 0xFF, 0x7F]) + good)
    assert events == [("error", 9, Status.ERR_LENGTH), ("frame", 1, Command.IDENTIFY, b"")]
    dec.feed(good[:3])
    assert dec.timeout() == ("error", 1, Status.ERR_TIMEOUT)
    assert dec.feed(good) == [("frame", 1, Command.IDENTIFY, b"")]


@pytest.mark.parametrize("bits,signed", [(8, True), (8, False), (12, True), (20, True),
                                         (40, True)])
def test_pack_unpack_values(bits, signed):
    rng = np.random.default_rng(bits)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    v = np.concatenate([[lo, hi, 0], rng.integers(lo, hi + 1, 50)]).astype(np.int64)
    nbytes = (bits + 7) // 8
    raw = pack_values(v, nbytes)
    assert len(raw) == nbytes * len(v)
    # little-endian two's complement, checked with int.to_bytes
    assert raw[:nbytes] == int(lo).to_bytes(nbytes, "little", signed=signed)
    assert np.array_equal(unpack_values(raw, nbytes, bits, signed), v)


def test_identity_roundtrip():
    arr = ArrayModel.per_row(3, 2, ["exact", "truncated4c", "bam2_6"], acc_width=20,
                             overflow="saturate")
    dev = DeviceModel(arr, max_m=5)
    reply = dev.feed(encode_frame(REQUEST_SYNC, 1, Command.IDENTIFY))
    _, status, payload = decode_frame(reply, RESPONSE_SYNC)
    assert status == Status.OK
    info, model = parse_identity(payload)
    assert model == arr
    assert info["max_m"] == 5 and info["max_payload"] == max(1 + 3 * 2, 5 * 3)
    with pytest.raises(ProtocolError):
        parse_identity(b"{not json")


def _transact(dev, seq, cmd, payload=b""):
    _, status, reply = decode_frame(dev.feed(encode_frame(REQUEST_SYNC, seq, cmd, payload)),
                                    RESPONSE_SYNC)
    return status, reply


def test_model_tile_masks_inactive_rows():
    """K_t < rows: rows >= K_t must not add mult(0, 0) (truncated4c gives 12 for 0*0)."""
    arr = ArrayModel.uniform(3, 2, "truncated4c")
    assert arr.grid[0][0].model(0, 0) == 12
    dev = DeviceModel(arr, max_m=4)
    w = np.array([[3, -4], [0, 0], [0, 0]])
    assert _transact(dev, 1, Command.LOAD_WEIGHTS, bytes([1]) + pack_values(w, 1))[0] == 0
    acts = np.array([[5, 0, 0], [-7, 0, 0]])
    assert _transact(dev, 2, Command.STREAM, pack_values(acts, 1))[0] == 0
    status, reply = _transact(dev, 3, Command.READ)
    got = unpack_values(reply, 4, 32, True).reshape(2, 2)
    spec = arr.grid[0][0]
    want = spec.model(acts[:, :1], w[:1, :])              # one product per output
    assert np.array_equal(got, want)


def test_model_status_codes():
    arr = ArrayModel.uniform(2, 2, "exact")
    dev = DeviceModel(arr, max_m=2)
    assert _transact(dev, 1, Command.READ)[0] == Status.ERR_STATE
    assert _transact(dev, 2, Command.STREAM, b"\x01\x02")[0] == Status.ERR_STATE
    assert _transact(dev, 3, 0x7E)[0] == Status.ERR_COMMAND
    assert _transact(dev, 4, Command.LOAD_WEIGHTS, b"\x00" + b"\x01" * 4)[0] == \
        Status.ERR_ARGUMENT
    assert _transact(dev, 5, Command.LOAD_WEIGHTS, b"\x01" * 4)[0] == Status.ERR_LENGTH
    assert _transact(dev, 6, Command.LOAD_WEIGHTS, b"\x02" + b"\x01" * 4)[0] == Status.OK
    assert _transact(dev, 7, Command.STREAM, b"\x01\x02\x03")[0] == Status.ERR_LENGTH
    assert _transact(dev, 8, Command.STREAM, b"\x01" * 6)[0] == Status.ERR_LENGTH  # M=3 > 2
    bad = bytearray(encode_frame(REQUEST_SYNC, 9, Command.IDENTIFY))
    bad[-2] ^= 0x40
    assert decode_frame(dev.feed(bytes(bad)), RESPONSE_SYNC)[1] == Status.ERR_CRC
    assert dev.executed == [Command.LOAD_WEIGHTS]        # nothing else ran


def test_fault_injector_is_seeded_and_covers_kinds():
    frame = encode_frame(REQUEST_SYNC, 1, Command.STREAM, bytes(range(20)))
    a, b = FaultInjector(5, rate=1.0), FaultInjector(5, rate=1.0)
    outs = [a.to_device(frame) for _ in range(200)]
    assert outs == [b.to_device(frame) for _ in range(200)]
    assert {k for _, k in a.log} == set(FAULT_KINDS)
    assert all(o != frame for o, (_, k) in zip(outs, a.log))   # every fault changes the bytes
    with pytest.raises(ValueError):
        FaultInjector(kinds=("melt",))
