"""Pure-Python model of the accelerator board, byte for byte at the protocol level.

:class:`DeviceModel` speaks the protocol of :mod:`boards.protocol` with the arithmetic of
:class:`sim.golden.ArrayModel`, so the host driver can be unit-tested (retries, timeouts, fault
injection) without a simulator. :class:`ModelTransport` wraps it in a pyserial-like object.
The model handles frames instantly; unlike the gateware it does not drop bytes that arrive while
a command executes (it never is busy).
"""

from __future__ import annotations


from sim.golden import ArrayModel

from .protocol import (REQUEST_SYNC, RESPONSE_SYNC, Command, FrameDecoder, Status,
                       encode_frame, identity, operand_bytes, pack_values, result_bytes,
                       unpack_values)

__all__ = ["DeviceModel", "ModelTransport", "max_payload_for"]


def max_payload_for(rows: int, cols: int, width: int, max_m: int) -> int:
    """Request payload bound the device needs: the larger of LOAD_WEIGHTS and a full STREAM."""
    bpo = operand_bytes(width)
    return max(1 + rows * cols * bpo, max_m * rows * bpo)


class DeviceModel:
    """Protocol-level device: feed request bytes, get response bytes.

    ``array`` is the :class:`sim.golden.ArrayModel` (``ws`` dataflow) the device implements,
    ``max_m`` the most activation rows one ``STREAM`` may carry; ``identity_extra`` adds keys to
    the ``IDENTIFY`` answer (the gateware reports ``pipeline`` and ``latency_cycles``).
    """

    def __init__(self, array: ArrayModel, *, max_m: int = 16, identity_extra: dict | None = None):
        if array.dataflow != "ws":
            raise ValueError("the board protocol drives a weight-stationary (ws) array")
        if not 1 <= max_m <= 4096:
            raise ValueError(f"max_m must be in 1..4096, not {max_m}")
        self.array = array
        self.max_m = max_m
        self.max_payload = max_payload_for(array.rows, array.cols, array.operand_width, max_m)
        self._bpo = operand_bytes(array.operand_width)
        self._rbytes = result_bytes(array.acc_width)
        self._identity = identity(array, max_m=max_m, max_payload=self.max_payload,
                                  extra=identity_extra)
        self._rx = FrameDecoder(REQUEST_SYNC, self.max_payload)
        self.executed: list[Command] = []       # commands run, in order (for tests)
        self._clear()

    def _clear(self):
        self._weights = None
        self._k_active = 0
        self._results = None

    # -- byte interface --------------------------------------------------------------------------
    def feed(self, data: bytes) -> bytes:
        """Process request bytes; return the response bytes they cause."""
        out = bytearray()
        for event in self._rx.feed(data):
            if event[0] == "error":
                out += encode_frame(RESPONSE_SYNC, event[1], event[2])
            else:
                _, seq, code, payload = event
                status, reply = self._execute(code, payload)
                out += encode_frame(RESPONSE_SYNC, seq, status, reply)
        return bytes(out)

    def timeout(self) -> bytes:
        """The inter-byte timeout elapsed: a partial frame is answered with ``ERR_TIMEOUT``."""
        event = self._rx.timeout()
        return b"" if event is None else encode_frame(RESPONSE_SYNC, event[1], event[2])

    # -- commands --------------------------------------------------------------------------------
    def _execute(self, code: int, payload: bytes):
        a = self.array
        try:
            cmd = Command(code)
        except ValueError:
            return Status.ERR_COMMAND, b""
        if cmd in (Command.IDENTIFY, Command.READ, Command.RESET) and payload:
            return Status.ERR_LENGTH, b""
        if cmd is Command.IDENTIFY:
            self.executed.append(cmd)
            return Status.OK, self._identity
        if cmd is Command.RESET:
            self.executed.append(cmd)
            self._clear()
            return Status.OK, b""
        if cmd is Command.LOAD_WEIGHTS:
            if len(payload) != 1 + a.rows * a.cols * self._bpo:
                return Status.ERR_LENGTH, b""
            k_active = payload[0]
            if not 1 <= k_active <= a.rows:
                return Status.ERR_ARGUMENT, b""
            self.executed.append(cmd)
            self._weights = unpack_values(payload[1:], self._bpo, a.operand_width,
                                          a.signed).reshape(a.rows, a.cols)
            self._k_active = k_active
            self._results = None
            return Status.OK, b""
        if cmd is Command.STREAM:
            row = a.rows * self._bpo
            if not payload or len(payload) % row or len(payload) // row > self.max_m:
                return Status.ERR_LENGTH, b""
            if self._weights is None:
                return Status.ERR_STATE, b""
            self.executed.append(cmd)
            acts = unpack_values(payload, self._bpo, a.operand_width, a.signed)
            acts = acts.reshape(-1, a.rows)
            k = self._k_active
            self._results = a.tile(acts[:, :k], self._weights[:k, :])
            return Status.OK, b""
        # READ
        if self._results is None:
            return Status.ERR_STATE, b""
        self.executed.append(cmd)
        return Status.OK, pack_values(self._results, self._rbytes)


class ModelTransport:
    """A pyserial-like link to a :class:`DeviceModel` (``write``, ``read``, ``timeout``,
    ``reset_input_buffer``, ``close``).

    ``faults`` (a :class:`boards.faults.FaultInjector` or ``None``) corrupts frames in both
    directions. A ``read`` that finds no data lets the device's inter-byte timeout elapse (so a
    truncated request is answered with ``ERR_TIMEOUT``) and returns what that produced, possibly
    ``b""`` (a timeout, as pyserial returns on silence).
    """

    def __init__(self, model: DeviceModel, *, faults=None, timeout: float = 1.0):
        self.model = model
        self.faults = faults
        self.timeout = timeout
        self._pending = bytearray()
        self.is_open = True
        self.writes = 0

    def write(self, data: bytes) -> int:
        data = bytes(data)
        self.writes += 1
        sent = self.faults.to_device(data) if self.faults else data
        reply = self.model.feed(sent)
        self._pending += self.faults.to_host(reply) if (self.faults and reply) else reply
        return len(data)

    def read(self, size: int = 1) -> bytes:
        if not self._pending:
            reply = self.model.timeout()
            if reply:
                self._pending += self.faults.to_host(reply) if self.faults else reply
        chunk = bytes(self._pending[:size])
        del self._pending[:size]
        return chunk

    @property
    def in_waiting(self) -> int:
        return len(self._pending)

    def reset_input_buffer(self) -> None:
        self._pending.clear()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.is_open = False
