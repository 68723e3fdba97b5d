"""The accelerator's serial protocol: frame format, CRC, commands and status codes.

Shared by the gateware (:mod:`boards.engine`), the pure-Python device model
(:mod:`boards.model`) and the host driver (:mod:`boards.host`), so the constants live here once.

Frame format (both directions)::

    SYNC  SEQ  CODE  LEN_LO  LEN_HI  PAYLOAD[LEN]  CRC_HI  CRC_LO

* ``SYNC`` is :data:`REQUEST_SYNC` (0x5A) host -> device and :data:`RESPONSE_SYNC` (0xA5)
  device -> host.
* ``SEQ`` is chosen by the host (it counts attempts) and echoed in the response, so the host can
  tell a late or spurious response from the one it waits for.
* ``CODE`` is a command (:class:`Command`) in a request, a status (:class:`Status`) in a response.
* ``LEN`` is the payload length, little-endian, at most the device's ``max_payload`` (requests)
  or what the command can return (responses); a longer length is rejected before any payload
  is read, which bounds how long a receiver can be misled by a false sync byte.
* ``CRC`` is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final
  XOR; check value 0x29B1 for ``b"123456789"``) over ``SEQ .. PAYLOAD``, sent most significant
  byte first. It is what :func:`binascii.crc_hqx` computes with ``0xFFFF`` as start value (the
  host side) and ``amaranth.lib.crc.catalog.CRC16_CCITT_FALSE`` (the gateware,
  :data:`boards.engine.CRC`); the CRC of a whole frame after ``SYNC`` (CRC bytes included) is
  therefore 0.

The device answers every request it receives with a response that echoes ``SEQ``: ``OK`` with
the command's result, or an error status with an empty payload. A frame with a wrong CRC, a
bad length or a gap longer than the inter-byte timeout is never executed. Bytes that arrive
while the device is busy with a command (executing it or sending the response) are dropped.

Commands (payload request -> payload of the ``OK`` response)

=================  =========================================  ===================================
``IDENTIFY``       empty                                      identity JSON (see :func:`identity`)
``LOAD_WEIGHTS``   ``K_t`` (1 byte, 1..rows), then            empty
                   ``rows x cols`` weights, row-major
``STREAM``         ``M x rows`` activations, row-major,       empty (results are kept on chip)
                   ``1 <= M <= max_m``
``READ``           empty                                      ``M x cols`` results of the last
                                                              ``STREAM``, row-major
``RESET``          empty                                      empty (weights and results cleared)
=================  =========================================  ===================================

Operands take ``ceil(width / 8)`` bytes, results ``ceil(acc_width / 8)`` bytes, both
little-endian two's complement (unsigned operands: plain binary). Weights of PE rows ``>= K_t``
take no part in the sum (the pass computes ``sim.golden.ArrayModel.tile`` with ``K_t`` rows);
send zeros for them and for the matching activation columns.
"""

from __future__ import annotations

import binascii
import enum
import json
import struct

import numpy as np

__all__ = ["REQUEST_SYNC", "RESPONSE_SYNC", "HEADER_SIZE", "TRAILER_SIZE", "PROTOCOL_VERSION",
           "Command", "Status", "ProtocolError", "crc16", "crc16_bitwise", "encode_frame",
           "decode_frame", "FrameDecoder", "operand_bytes", "result_bytes",
           "pack_values", "unpack_values", "identity", "parse_identity"]

PROTOCOL_VERSION = 1
REQUEST_SYNC = 0x5A
RESPONSE_SYNC = 0xA5
HEADER_SIZE = 5            # SYNC SEQ CODE LEN_LO LEN_HI
TRAILER_SIZE = 2           # CRC_HI CRC_LO
CRC_INIT = 0xFFFF
CRC_POLY = 0x1021
#: Protocol-level bound on any payload (the 16-bit length field allows more).
MAX_FRAME_PAYLOAD = 16384


class Command(enum.IntEnum):
    IDENTIFY = 0x01
    LOAD_WEIGHTS = 0x02
    STREAM = 0x03
    READ = 0x04
    RESET = 0x05


class Status(enum.IntEnum):
    OK = 0x00
    ERR_CRC = 0x01          # CRC mismatch: frame corrupted, not executed
    ERR_LENGTH = 0x02       # length above max_payload or wrong for the command
    ERR_COMMAND = 0x03      # unknown command code
    ERR_TIMEOUT = 0x04      # gap between two bytes of a frame longer than the timeout
    ERR_ARGUMENT = 0x05     # a field of the payload is out of range (e.g. K_t)
    ERR_STATE = 0x06        # command not valid now (STREAM before LOAD_WEIGHTS, READ before STREAM)


class ProtocolError(ValueError):
    """A byte string is not a valid frame (bad sync, length or CRC). One-line message."""


# -- CRC --------------------------------------------------------------------------------------
def crc16(data: bytes, crc: int = CRC_INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (continuing from ``crc``) via :func:`binascii.crc_hqx`."""
    return binascii.crc_hqx(bytes(data), crc)


def crc16_bitwise(data: bytes, crc: int = CRC_INIT) -> int:
    """The same CRC computed bit by bit from its definition (independent cross-check)."""
    for byte in bytes(data):
        for i in range(7, -1, -1):
            feedback = ((crc >> 15) ^ (byte >> i)) & 1
            crc = ((crc << 1) & 0xFFFF) ^ (CRC_POLY if feedback else 0)
    return crc


# -- frames -----------------------------------------------------------------------------------
def encode_frame(sync: int, seq: int, code: int, payload: bytes = b"") -> bytes:
    """One frame: header, payload and CRC (module docstring)."""
    payload = bytes(payload)
    if len(payload) > 0xFFFF:
        raise ProtocolError(f"payload of {len(payload)} bytes does not fit the 16-bit length")
    body = struct.pack("<BBH", seq & 0xFF, code & 0xFF, len(payload)) + payload
    return bytes([sync]) + body + crc16(body).to_bytes(2, "big")


def decode_frame(frame: bytes, sync: int, *, max_payload: int = MAX_FRAME_PAYLOAD):
    """Parse one complete frame; return ``(seq, code, payload)`` or raise :class:`ProtocolError`."""
    frame = bytes(frame)
    if len(frame) < HEADER_SIZE + TRAILER_SIZE:
        raise ProtocolError(f"frame of {len(frame)} bytes is shorter than a header and CRC")
    if frame[0] != sync:
        raise ProtocolError(f"frame starts with 0x{frame[0]:02x}, not sync byte 0x{sync:02x}")
    seq, code, length = struct.unpack("<BBH", frame[1:5])
    if length > max_payload:
        raise ProtocolError(f"payload length {length} exceeds the bound {max_payload}")
    if len(frame) != HEADER_SIZE + length + TRAILER_SIZE:
        raise ProtocolError(f"frame has {len(frame)} bytes, its header says "
                            f"{HEADER_SIZE + length + TRAILER_SIZE}")
    if crc16(frame[1:]) != 0:
        raise ProtocolError("CRC mismatch")
    return seq, code, frame[HEADER_SIZE:HEADER_SIZE + length]


class FrameDecoder:
    """Incremental receiver: feed bytes, collect complete frames and errors.

    Mirrors the gateware receiver: it hunts for ``sync``, bounds the length by ``max_payload``
    (a longer one is reported right after the header and hunting restarts there) and checks
    the CRC. :meth:`timeout` drops a partial frame (the inter-byte timeout). Each call of
    :meth:`feed` returns a list of events ``("frame", seq, code, payload)`` or
    ``("error", seq, Status)``.
    """

    def __init__(self, sync: int, max_payload: int = MAX_FRAME_PAYLOAD):
        self.sync = sync
        self.max_payload = max_payload
        self._buf = bytearray()
        self._hunting = True

    @property
    def in_frame(self) -> bool:
        return not self._hunting

    def reset(self) -> None:
        self._buf.clear()
        self._hunting = True

    def timeout(self):
        """The line went quiet mid-frame: drop it. Returns the error event or ``None``."""
        if self._hunting:
            return None
        seq = self._buf[1] if len(self._buf) > 1 else 0
        self.reset()
        return ("error", seq, Status.ERR_TIMEOUT)

    def feed(self, data: bytes) -> list:
        events = []
        for byte in bytes(data):
            if self._hunting:
                if byte == self.sync:
                    self._buf = bytearray([byte])
                    self._hunting = False
                continue
            self._buf.append(byte)
            if len(self._buf) < HEADER_SIZE:
                continue
            length = self._buf[3] | self._buf[4] << 8
            if len(self._buf) == HEADER_SIZE and length > self.max_payload:
                events.append(("error", self._buf[1], Status.ERR_LENGTH))
                self.reset()
                continue
            if len(self._buf) == HEADER_SIZE + length + TRAILER_SIZE:
                frame = bytes(self._buf)
                self.reset()
                if crc16(frame[1:]) != 0:
                    events.append(("error", frame[1], Status.ERR_CRC))
                else:
                    events.append(("frame", frame[1], frame[2],
                                   frame[HEADER_SIZE:HEADER_SIZE + length]))
        return events


# -- payload values ---------------------------------------------------------------------------
def operand_bytes(width: int) -> int:
    return (width + 7) // 8


def result_bytes(acc_width: int) -> int:
    return (acc_width + 7) // 8


def pack_values(values, nbytes: int) -> bytes:
    """Integers (any sign) as ``nbytes``-byte little-endian two's complement, in order."""
    v = np.asarray(values, dtype=np.int64).ravel()
    raw = (v & ((1 << (8 * nbytes)) - 1) if nbytes < 8 else v).astype("<u8")
    return raw.view(np.uint8).reshape(-1, 8)[:, :nbytes].tobytes()


def unpack_values(data: bytes, nbytes: int, bits: int, is_signed: bool) -> np.ndarray:
    """Inverse of :func:`pack_values` for ``bits``-wide values (higher bits ignored)."""
    raw = np.frombuffer(bytes(data), dtype=np.uint8)
    if raw.size % nbytes:
        raise ProtocolError(f"{raw.size} bytes are not a whole number of {nbytes}-byte values")
    wide = np.zeros((raw.size // nbytes, 8), dtype=np.uint8)
    wide[:, :nbytes] = raw.reshape(-1, nbytes)
    values = wide.reshape(-1).view("<u8").astype(np.int64) & ((1 << bits) - 1)
    if is_signed:
        values = np.where(values >> (bits - 1) & 1, values - (1 << bits), values)
    return values


# -- identity ---------------------------------------------------------------------------------
_IDENTITY_KEYS = ("rows", "cols", "width", "signed", "acc_width", "overflow", "dataflow",
                  "mults", "grid", "max_m", "max_payload")


def identity(array, *, max_m: int, max_payload: int, clk_hz: float | None = None,
             baud: int | None = None, extra: dict | None = None) -> bytes:
    """The ``IDENTIFY`` payload: compact JSON with the array's key facts.

    ``array`` is a :class:`sim.golden.ArrayModel`. ``mults`` lists the distinct multiplier names
    and ``grid`` holds, per PE row, a string of indices into ``mults`` (``"0000"``) so a 16x16
    array with mixed multipliers stays short. ``extra`` adds keys (the gateware adds
    ``pipeline`` and the array's ``latency_cycles``).
    """
    mults = array.distinct_specs()
    index = {s: i for i, s in enumerate(mults)}
    if len(mults) > 36:
        raise ValueError("at most 36 distinct multipliers fit the identity's grid encoding")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    grid = ["".join(digits[index[s]] for s in row) for row in array.grid]
    info = {"protocol": PROTOCOL_VERSION, "rows": array.rows, "cols": array.cols,
            "width": array.operand_width, "signed": array.signed,
            "acc_width": array.acc_width, "overflow": array.overflow,
            "dataflow": array.dataflow, "mults": [s.portable_name for s in mults], "grid": grid,
            "max_m": max_m, "max_payload": max_payload}
    if clk_hz is not None:
        info["clk_hz"] = int(clk_hz)
    if baud is not None:
        info["baud"] = int(baud)
    if extra:
        info.update(extra)
    return json.dumps(info, separators=(",", ":"), sort_keys=True).encode()


def parse_identity(payload: bytes):
    """``(info dict, ArrayModel)`` from an ``IDENTIFY`` payload; :class:`ProtocolError` if bad."""
    from hw.mult import parse
    from sim.golden import ArrayModel
    try:
        info = json.loads(bytes(payload).decode())
        missing = [k for k in _IDENTITY_KEYS if k not in info]
        if missing:
            raise ProtocolError(f"identity lacks {', '.join(missing)}")
        if info.get("protocol") != PROTOCOL_VERSION:
            raise ProtocolError(f"device speaks protocol {info.get('protocol')}, "
                                f"this driver {PROTOCOL_VERSION}")
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"
        specs = [parse(n, width=info["width"], signed=info["signed"]) for n in info["mults"]]
        grid = tuple(tuple(specs[digits.index(ch)] for ch in row) for row in info["grid"])
        model = ArrayModel(info["rows"], info["cols"], grid, dataflow=info["dataflow"],
                           acc_width=info["acc_width"], overflow=info["overflow"])
    except ProtocolError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed identity: {exc}") from None
    return info, model
