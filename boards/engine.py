"""Gateware for the board protocol (:mod:`boards.protocol`): frame receiver, frame sender and
the command engine that drives an array through three streams.

All components are in the ``sync`` domain. Byte streams are ``amaranth.lib.stream`` interfaces
(8-bit payload); the engine's array side is

* ``weights``  payload ``{data: cols x N, last: 1}``: weight rows ``0 .. K_t-1`` of a tile,
  ``last`` on row ``K_t-1``
* ``act``      payload ``{data: rows x N, first: 1}``: one activation row per transfer, lane ``r``
  at bits ``[r*N, (r+1)*N)``; ``first`` on the first row after a weight load
* ``res``      one result row per transfer, lane ``c`` at bits ``[c*A, (c+1)*A)`` (``A``-bit two's
  complement accumulators); always ready, the engine stores a row per cycle
* ``array_rst`` one-cycle pulse on ``RESET`` and before every weight load (it empties the array,
  so a repeated ``LOAD_WEIGHTS`` never waits for a shadow plane that is still full)

which is the weight-stationary interface of :class:`hw.systolic.SystolicArray` (see its module
docstring), so the top connects them directly (:mod:`boards.top`).
"""

from __future__ import annotations

import operator

from amaranth.hdl import Cat, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.crc.catalog import CRC16_CCITT_FALSE
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.mac import quiet_on_error

from .protocol import (REQUEST_SYNC, RESPONSE_SYNC, Command, Status, operand_bytes,
                       result_bytes)

__all__ = ["CRC", "FrameReceiver", "FrameSender", "CommandEngine"]

#: The frame CRC (:mod:`boards.protocol`) over bytes: ``amaranth.lib.crc`` parameters whose
#: :meth:`~amaranth.lib.crc.Parameters.create` gives the one-byte-per-cycle processor used here.
CRC = CRC16_CCITT_FALSE(data_width=8)


def _positive(label, value, lo=1, hi=None):
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{label} must be an integer, not {value!r}") from None
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{label} must be in {lo}..{hi if hi is not None else 'inf'}, "
                         f"not {value}")
    return value


class FrameReceiver(wiring.Component):
    """Request-frame receiver: sync hunt, length bound, CRC check, inter-byte timeout.

    A :data:`CRC` processor takes every byte after ``SYNC``, the two CRC bytes included; the
    frame is good when it ends with the CRC residue (0, ``match_detected``), which is checked in
    the cycle after the last byte (so ``done`` comes two cycles after it; a byte offered in
    between is dropped, the UART delivers one per ``10 * divisor`` cycles).

    Members
    -------
    i : In(stream.Signature(8))
        Bytes from the UART receiver; always ready.
    enable : In(1)
        While low, bytes are dropped and the receiver hunts for a sync byte.
    done : Out(1)
        One-cycle pulse: a frame ended. ``status`` is ``OK`` (payload stored, CRC right),
        ``ERR_CRC``, ``ERR_LENGTH`` (``length > max_payload``; reported right after the header)
        or ``ERR_TIMEOUT`` (more than ``timeout_cycles`` between two bytes of a frame).
    seq, code, length, status : Out
        Fields of the last frame, valid from ``done`` until the next sync byte.
    wr_addr, wr_data, wr_en : Out
        Write port for the payload buffer (byte ``i`` of the payload goes to address ``i``).
    """

    @quiet_on_error
    def __init__(self, *, max_payload: int, timeout_cycles: int):
        self._max_payload = _positive("max_payload", max_payload, 1, 0xFFFF)
        self._timeout = _positive("timeout_cycles", timeout_cycles, 2)
        # the length field is compared in full (16 bits); the buffer index only needs max_payload
        super().__init__({
            "i": In(stream.Signature(8)), "enable": In(1),
            "done": Out(1), "seq": Out(8), "code": Out(8), "length": Out(16),
            "status": Out(8),
            "wr_addr": Out(range(self._max_payload)), "wr_data": Out(8), "wr_en": Out(1)})

    def elaborate(self, platform):
        m = Module()
        byte = self.i.payload
        got = Signal()
        m.d.comb += [self.i.ready.eq(1), got.eq(self.i.valid & self.enable)]
        m.submodules.crc = crc = CRC.create()   # registered: updated the cycle after a byte
        index = Signal(range(self._max_payload + 1))
        idle = Signal(range(self._timeout + 1))
        m.d.sync += self.done.eq(0)
        m.d.comb += [self.wr_addr.eq(index), self.wr_data.eq(byte), crc.data.eq(byte)]
        with m.If(got):
            m.d.sync += idle.eq(0)
        with m.Else():
            m.d.sync += idle.eq(idle + 1)

        def finish(status):
            m.d.sync += [self.status.eq(status), self.done.eq(1)]
            m.next = "HUNT"

        def guard():
            # inside a frame: drop it when the engine takes the link away, or time out
            with m.If(~self.enable):
                m.next = "HUNT"
            with m.Elif(~got & (idle >= self._timeout - 1)):
                finish(Status.ERR_TIMEOUT)

        with m.FSM(name="rx") as fsm:
            with m.State("HUNT"):
                with m.If(got & (byte == REQUEST_SYNC)):
                    m.d.comb += crc.start.eq(1)
                    m.d.sync += [self.seq.eq(0), index.eq(0)]
                    m.next = "SEQ"
            for state, field, target in (("SEQ", self.seq, "CODE"), ("CODE", self.code, "LEN0")):
                with m.State(state):
                    with m.If(got):
                        m.d.sync += field.eq(byte)
                        m.next = target
                    guard()
            with m.State("LEN0"):
                with m.If(got):
                    m.d.sync += self.length[:8].eq(byte)
                    m.next = "LEN1"
                guard()
            with m.State("LEN1"):
                with m.If(got):
                    m.d.sync += self.length[8:].eq(byte)
                    with m.If(Cat(self.length[:8], byte) > self._max_payload):
                        finish(Status.ERR_LENGTH)
                    with m.Elif(Cat(self.length[:8], byte) == 0):
                        m.next = "CRC0"
                    with m.Else():
                        m.next = "PAYLOAD"
                guard()
            with m.State("PAYLOAD"):
                with m.If(got):
                    m.d.comb += self.wr_en.eq(1)
                    m.d.sync += index.eq(index + 1)
                    with m.If(index + 1 == self.length):
                        m.next = "CRC0"
                guard()
            with m.State("CRC0"):
                with m.If(got):
                    m.next = "CRC1"
                guard()
            with m.State("CRC1"):
                with m.If(got):
                    m.next = "CHECK"
                guard()
            with m.State("CHECK"):              # the CRC register now includes CRC_LO
                with m.If(crc.match_detected):
                    finish(Status.OK)
                with m.Else():
                    finish(Status.ERR_CRC)
        m.d.comb += crc.valid.eq(got & ~fsm.ongoing("HUNT"))
        return m


class FrameSender(wiring.Component):
    """Response-frame sender: header, payload from a byte stream, CRC (an :data:`CRC`
    processor fed with every byte of ``SEQ .. PAYLOAD`` as it is handed to ``o``).

    Members
    -------
    start : In(1)
        Start a frame with ``seq``, ``code`` and ``length`` (sampled now). Ignored while busy.
    seq, code : In(8); length : In(range(max_length + 1))
    payload : In(stream.Signature(8))
        Exactly ``length`` payload bytes, taken in order while the payload is being sent.
    o : Out(stream.Signature(8))
        Frame bytes to the UART transmitter.
    busy : Out(1)
        High from ``start`` until the last CRC byte has been handed to ``o``.
    """

    @quiet_on_error
    def __init__(self, max_length: int = 0xFFFF):
        self._max_length = _positive("max_length", max_length, 1, 0xFFFF)
        super().__init__({"start": In(1), "seq": In(8), "code": In(8),
                          "length": In(range(self._max_length + 1)),
                          "payload": In(stream.Signature(8)), "o": Out(stream.Signature(8)),
                          "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        seq, code = Signal(8), Signal(8)
        length = Signal(16)              # sent as two bytes; the high bits are constant 0
        left = Signal(range(self._max_length + 1))
        m.submodules.crc = crc = CRC.create()
        in_crc = Signal()         # the byte being sent counts towards the CRC
        m.d.comb += [crc.data.eq(self.o.payload),
                     crc.valid.eq(self.o.valid & self.o.ready & in_crc)]

        def emit(value, target):
            m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(value)]
            with m.If(self.o.ready):
                m.next = target

        with m.FSM(name="tx") as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += crc.start.eq(1)
                    m.d.sync += [seq.eq(self.seq), code.eq(self.code), length.eq(self.length),
                                 left.eq(self.length)]
                    m.next = "SYNC"
            with m.State("SYNC"):
                emit(RESPONSE_SYNC, "SEQ")
            with m.State("SEQ"):
                emit(seq, "CODE")
            with m.State("CODE"):
                emit(code, "LEN0")
            with m.State("LEN0"):
                emit(length[:8], "LEN1")
            with m.State("LEN1"):
                emit(length[8:], "PAYLOAD")
            with m.State("PAYLOAD"):
                with m.If(left == 0):
                    m.next = "CRC0"
                with m.Else():
                    m.d.comb += [self.o.valid.eq(self.payload.valid),
                                 self.o.payload.eq(self.payload.payload),
                                 self.payload.ready.eq(self.o.ready)]
                    with m.If(self.payload.valid & self.o.ready):
                        m.d.sync += left.eq(left - 1)
            with m.State("CRC0"):
                emit(crc.crc[8:], "CRC1")
            with m.State("CRC1"):
                emit(crc.crc[:8], "IDLE")
        m.d.comb += [self.busy.eq(~fsm.ongoing("IDLE")),
                     in_crc.eq(fsm.ongoing("SEQ") | fsm.ongoing("CODE") | fsm.ongoing("LEN0")
                               | fsm.ongoing("LEN1") | fsm.ongoing("PAYLOAD"))]
        return m


class CommandEngine(wiring.Component):
    """Executes request frames against an array and answers each with a response frame.

    Parameters
    ----------
    rows, cols, width, acc_width : int
        Array shape, operand width ``N`` and accumulator width ``A``.
    max_m : int
        Most activation rows per ``STREAM`` (sizes the result buffer: ``max_m`` words of
        ``cols * A`` bits).
    identity : bytes
        ``IDENTIFY`` payload (:func:`boards.protocol.identity`), stored in a ROM.
    timeout_cycles : int
        Inter-byte timeout of the receiver.

    Members
    -------
    rx : In(stream.Signature(8))      bytes from the UART receiver
    tx : Out(stream.Signature(8))     bytes to the UART transmitter
    weights : Out(stream.Signature({data: cols * N, last: 1}))
    act : Out(stream.Signature({data: rows * N, first: 1}))
    res : In(stream.Signature(cols * A))
    array_rst : Out(1)
    busy : Out(1)        a command is executing or its response is being sent
    error : Out(1)       the last response carried an error status (for a LED)

    Buffers: the request payload (``max_payload`` bytes), the identity ROM and the results are
    synchronous memories (block RAM). Bytes that arrive while ``busy`` are dropped.
    """

    @quiet_on_error
    def __init__(self, *, rows: int, cols: int, width: int, acc_width: int, max_m: int,
                 identity: bytes, timeout_cycles: int):
        self.rows = _positive("rows", rows, 1, 64)
        self.cols = _positive("cols", cols, 1, 64)
        self.width = _positive("width", width, 1, 32)
        self.acc_width = _positive("acc_width", acc_width, 2, 64)
        self.max_m = _positive("max_m", max_m, 1, 4096)
        self.bpo = operand_bytes(self.width)
        self.rbytes = result_bytes(self.acc_width)
        self.weights_length = 1 + self.rows * self.cols * self.bpo
        self.row_length = self.rows * self.bpo
        self.max_payload = max(self.weights_length, self.max_m * self.row_length)
        if self.max_payload > 0xFFFF or self.max_m * self.cols * self.rbytes > 0xFFFF:
            raise ValueError("buffers exceed the 16-bit frame length; lower max_m")
        self.identity = bytes(identity)
        if not 0 < len(self.identity) <= 0xFFFF:
            raise ValueError("identity must be 1..65535 bytes")
        self.timeout_cycles = _positive("timeout_cycles", timeout_cycles, 2)
        super().__init__({
            "rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8)),
            "weights": Out(stream.Signature(data.StructLayout(
                {"data": self.cols * self.width, "last": 1}))),
            "act": Out(stream.Signature(data.StructLayout(
                {"data": self.rows * self.width, "first": 1}))),
            "res": In(stream.Signature(self.cols * self.acc_width)),
            "array_rst": Out(1), "busy": Out(1), "error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        rows, cols, width, acc_w = self.rows, self.cols, self.width, self.acc_width
        bpo, rbytes = self.bpo, self.rbytes

        m.submodules.receiver = rcv = FrameReceiver(max_payload=self.max_payload,
                                                    timeout_cycles=self.timeout_cycles)
        max_resp = max(len(self.identity), self.max_m * cols * rbytes)
        m.submodules.sender = snd = FrameSender(max_resp)
        wiring.connect(m, wiring.flipped(self.rx), rcv.i)
        wiring.connect(m, snd.o, wiring.flipped(self.tx))

        m.submodules.payload_mem = pmem = Memory(shape=8, depth=self.max_payload, init=[])
        pw = pmem.write_port()
        pr = pmem.read_port(transparent_for=())
        m.d.comb += [pw.addr.eq(rcv.wr_addr), pw.data.eq(rcv.wr_data), pw.en.eq(rcv.wr_en)]

        m.submodules.identity_rom = rom = Memory(shape=8, depth=len(self.identity),
                                                 init=list(self.identity))
        rr = rom.read_port()

        # one result row per word, lane c = the A-bit two's complement accumulator of column c
        m.submodules.result_mem = rmem = Memory(shape=data.ArrayLayout(signed(acc_w), cols),
                                                depth=self.max_m, init=[])
        rw = rmem.write_port()
        rres = rmem.read_port(transparent_for=())

        # -- result collection: one row per cycle ------------------------------------------------
        res_count = Signal(range(self.max_m + 1))
        res_clear = Signal()
        m.d.comb += [self.res.ready.eq(1), rw.addr.eq(res_count), rw.data.eq(self.res.payload)]
        with m.If(res_clear):
            m.d.sync += res_count.eq(0)
        with m.Elif(self.res.valid & (res_count < self.max_m)):
            m.d.comb += rw.en.eq(1)
            m.d.sync += res_count.eq(res_count + 1)

        # result word as little-endian bytes, each accumulator sign-extended to rbytes
        res_bytes = Signal(data.ArrayLayout(signed(8 * rbytes), cols))
        m.d.comb += [res_bytes[c].eq(rres.data[c]) for c in range(cols)]

        # -- state ------------------------------------------------------------------------------
        weights_loaded = Signal()
        results_m = Signal(range(self.max_m + 1))     # 0: no results
        seq = Signal(8)
        status = Signal(8)
        resp_len = Signal(range(max_resp + 1))
        source_rom = Signal()
        # read pointer into the request buffer or the ROM; counter of rows / response bytes
        ptr = Signal(range(max(self.max_payload, len(self.identity)) + 1))
        count = Signal(range(max(max_resp, self.rows) + 1))
        sub = Signal(range(max(self.row_length, cols * bpo, rbytes * cols) + 1))
        res_row = Signal(range(self.max_m + 1))
        rows_total = Signal(range(self.max_m + 1))
        rows_fed = Signal(range(self.max_m + 1))
        acc_len = Signal(range(self.max_payload + self.row_length + 1))
        # operands as received: bpo bytes each, shifted in little-endian (byte 0 ends lowest)
        wrow = Signal(data.ArrayLayout(8 * bpo, cols))
        row = Signal(data.ArrayLayout(8 * bpo, rows))
        k_reg = Signal(range(self.rows + 1))
        tile_pending = Signal()          # weights in the array's shadow plane, not swapped in
        m.d.comb += [pr.addr.eq(ptr), rr.addr.eq(ptr), rres.addr.eq(res_row)]
        m.d.comb += [self.weights.payload.data.eq(Cat(*(wrow[c][:width] for c in range(cols)))),
                     self.weights.payload.last.eq(count == k_reg - 1),
                     self.act.payload.data.eq(Cat(*(row[r][:width] for r in range(rows)))),
                     self.act.payload.first.eq(tile_pending & (rows_fed == 0))]
        m.d.sync += self.array_rst.eq(0)

        # response payload byte stream (ROM bytes or result bytes)
        out_valid = Signal()
        out_byte = Signal(8)
        m.d.comb += [snd.payload.valid.eq(out_valid), snd.payload.payload.eq(out_byte)]

        def respond(code, length=0, rom=False):
            m.d.sync += [status.eq(code), resp_len.eq(length), source_rom.eq(rom),
                         ptr.eq(0), count.eq(0), sub.eq(0), res_row.eq(0), out_valid.eq(0)]
            m.next = "RESPOND"

        with m.FSM(name="engine") as fsm:
            with m.State("IDLE"):
                m.d.comb += rcv.enable.eq(1)
                with m.If(rcv.done):
                    m.d.sync += [seq.eq(rcv.seq), ptr.eq(0)]
                    with m.If(rcv.status != Status.OK):
                        respond(rcv.status)
                    with m.Elif(rcv.code == Command.IDENTIFY):
                        with m.If(rcv.length != 0):
                            respond(Status.ERR_LENGTH)
                        with m.Else():
                            respond(Status.OK, len(self.identity), rom=True)
                    with m.Elif(rcv.code == Command.RESET):
                        with m.If(rcv.length != 0):
                            respond(Status.ERR_LENGTH)
                        with m.Else():
                            m.d.sync += [self.array_rst.eq(1), weights_loaded.eq(0),
                                         results_m.eq(0), k_reg.eq(0), tile_pending.eq(0)]
                            respond(Status.OK)
                    with m.Elif(rcv.code == Command.READ):
                        with m.If(rcv.length != 0):
                            respond(Status.ERR_LENGTH)
                        with m.Elif(results_m == 0):
                            respond(Status.ERR_STATE)
                        with m.Else():
                            respond(Status.OK, results_m * (cols * rbytes))
                    with m.Elif(rcv.code == Command.LOAD_WEIGHTS):
                        with m.If(rcv.length != self.weights_length):
                            respond(Status.ERR_LENGTH)
                        with m.Else():
                            m.next = "LW_K_WAIT"
                    with m.Elif(rcv.code == Command.STREAM):
                        m.d.sync += [acc_len.eq(0), rows_total.eq(0)]
                        m.next = "ST_CHECK"
                    with m.Else():
                        respond(Status.ERR_COMMAND)

            # ---- LOAD_WEIGHTS: byte 0 = K_t, then rows x cols operands; rows < K_t are sent --
            with m.State("LW_K_WAIT"):          # read port addr = 0; data next cycle
                m.next = "LW_K"
            with m.State("LW_K"):
                with m.If((pr.data == 0) | (pr.data > rows)):
                    respond(Status.ERR_ARGUMENT)
                with m.Else():
                    m.d.sync += [k_reg.eq(pr.data), ptr.eq(1), count.eq(0), sub.eq(0),
                                 weights_loaded.eq(0), results_m.eq(0), tile_pending.eq(0),
                                 self.array_rst.eq(1)]
                    m.next = "LW_FETCH"
            with m.State("LW_FETCH"):
                m.next = "LW_BYTE"
            with m.State("LW_BYTE"):
                m.d.sync += [wrow.eq(Cat(wrow.as_value()[8:], pr.data)), ptr.eq(ptr + 1)]
                with m.If(sub == cols * bpo - 1):
                    m.d.sync += sub.eq(0)
                    m.next = "LW_PUSH"
                with m.Else():
                    m.d.sync += sub.eq(sub + 1)
                    m.next = "LW_FETCH"
            with m.State("LW_PUSH"):
                m.d.comb += self.weights.valid.eq(1)
                with m.If(self.weights.ready):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == k_reg - 1):
                        m.d.sync += [weights_loaded.eq(1), tile_pending.eq(1)]
                        respond(Status.OK)
                    with m.Else():
                        m.next = "LW_FETCH"

            # ---- STREAM: length must be M * row_length, 1 <= M <= max_m ------------------------
            with m.State("ST_CHECK"):
                with m.If((acc_len < rcv.length) & (rows_total < self.max_m)):
                    m.d.sync += [acc_len.eq(acc_len + self.row_length),
                                 rows_total.eq(rows_total + 1)]
                with m.Elif((acc_len != rcv.length) | (rows_total == 0)):
                    respond(Status.ERR_LENGTH)
                with m.Elif(~weights_loaded):
                    respond(Status.ERR_STATE)
                with m.Else():
                    m.d.comb += res_clear.eq(1)
                    m.d.sync += [ptr.eq(0), sub.eq(0), count.eq(0), rows_fed.eq(0),
                                 results_m.eq(0)]
                    m.next = "ST_FETCH"
            with m.State("ST_FETCH"):
                m.next = "ST_BYTE"
            with m.State("ST_BYTE"):
                m.d.sync += [row.eq(Cat(row.as_value()[8:], pr.data)), ptr.eq(ptr + 1)]
                with m.If(sub == self.row_length - 1):
                    m.d.sync += sub.eq(0)
                    m.next = "ST_PUSH"
                with m.Else():
                    m.d.sync += sub.eq(sub + 1)
                    m.next = "ST_FETCH"
            with m.State("ST_PUSH"):
                m.d.comb += self.act.valid.eq(1)
                with m.If(self.act.ready):
                    m.d.sync += [rows_fed.eq(rows_fed + 1), tile_pending.eq(0)]
                    with m.If(rows_fed + 1 == rows_total):
                        m.next = "ST_DRAIN"
                    with m.Else():
                        m.next = "ST_FETCH"
            with m.State("ST_DRAIN"):
                with m.If(res_count == rows_total):
                    m.d.sync += results_m.eq(rows_total)
                    respond(Status.OK)

            # ---- response ---------------------------------------------------------------------
            with m.State("RESPOND"):
                m.d.comb += [snd.start.eq(1), snd.seq.eq(seq), snd.code.eq(status),
                             snd.length.eq(resp_len)]
                m.d.sync += self.error.eq(status != Status.OK)
                m.next = "SENDING"
            with m.State("SENDING"):
                # payload producer: ``count`` bytes offered so far; fetch, then offer one byte
                with m.If(out_valid & snd.payload.ready):
                    m.d.sync += out_valid.eq(0)
                with m.If(~out_valid & (count < resp_len)):
                    m.next = "SEND_FETCH"
                with m.If(~snd.busy & ~out_valid & (count >= resp_len)):
                    m.next = "IDLE"
            with m.State("SEND_FETCH"):         # addresses (ptr / res_row) settle in the RAMs
                m.next = "SEND_DATA"
            with m.State("SEND_DATA"):
                with m.If(source_rom):
                    m.d.sync += out_byte.eq(rr.data)
                with m.Else():
                    m.d.sync += out_byte.eq(res_bytes.as_value().word_select(sub, 8))
                m.d.sync += [out_valid.eq(1), count.eq(count + 1), ptr.eq(ptr + 1)]
                with m.If(sub == cols * rbytes - 1):
                    m.d.sync += [sub.eq(0), res_row.eq(res_row + 1)]
                with m.Else():
                    m.d.sync += sub.eq(sub + 1)
                m.next = "SENDING"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m
