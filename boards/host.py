"""Host driver for the UART accelerator board (and its simulation).

:class:`Accelerator` talks the protocol of :mod:`boards.protocol` over a pyserial port, or over
any object with pyserial's ``read(n)`` / ``write(b)`` / ``timeout`` (tests inject a
:class:`boards.model.ModelTransport` or the cocotb bridge of ``sim/tb/tb_uart_e2e.py``)::

    from boards.host import Accelerator
    with Accelerator("/dev/ttyUSB1") as acc:     # or Accelerator(transport)
        print(acc.info)                          # the device's identity (rows, cols, mults, ...)
        c = acc.gemm(a, b)                       # == sim.golden.tiled_gemm(a, b, acc.array)

Every request gets a fresh sequence number; a response counts only if its CRC is right, it
echoes that number and its length fits the command. Corrupted or missing responses and the
device's transient errors (``ERR_CRC``, ``ERR_TIMEOUT``, ``ERR_LENGTH`` - the request was
damaged on the way) make the driver drain the line and resend; every command is idempotent
(results stay on the device until the next ``LOAD_WEIGHTS``), so resending is safe. After
``retries`` failed attempts it raises :class:`LinkError`; a definite rejection
(``ERR_COMMAND``, ``ERR_ARGUMENT``, ``ERR_STATE``) raises :class:`DeviceError` at once. The
driver never returns a result it has not received intact.

CLI (``python -m boards.host --help``)::

    python -m boards.host --port /dev/ttyUSB1 --identify
    python -m boards.host --port /dev/ttyUSB1 --selftest --tests 50 --seed 1
    python -m boards.host --model 4x4:truncated4c --selftest     # no board: Python model
"""

from __future__ import annotations

import sys
import time

import numpy as np

from hw.cli import (CONVENTIONS, Parser, UsageError, add_seed, add_signedness, add_width,
                    integer, number, run_main, signedness_values)
from hw.errors import ToolkitError
from hw.extras import require
from sim.golden import ArrayModel, accumulate, check_gemm_shapes, tiled_gemm

from .protocol import (MAX_FRAME_PAYLOAD, REQUEST_SYNC, RESPONSE_SYNC, Command, ProtocolError,
                       Status, crc16, encode_frame, operand_bytes, pack_values, parse_identity,
                       result_bytes, unpack_values)

__all__ = ["AcceleratorError", "LinkError", "DeviceError", "Accelerator", "main"]

DEFAULT_BAUD = 115200
#: Statuses that mean "the request was damaged in transit": resend it.
TRANSIENT = (Status.ERR_CRC, Status.ERR_TIMEOUT, Status.ERR_LENGTH)


class AcceleratorError(ToolkitError, RuntimeError):
    """Base class of the driver's errors; the message is one line."""


class LinkError(AcceleratorError):
    """No valid response after all retries (timeouts, corrupted frames), or a bad port."""


class DeviceError(AcceleratorError):
    """The device rejected a well-formed request (unknown command, bad argument, bad state)."""

    def __init__(self, command: Command, status: int):
        self.command, self.status = command, status
        try:
            label = Status(status).name
        except ValueError:
            label = f"status 0x{status:02x}"
        super().__init__(f"device rejected {command.name}: {label}")


class _Garbled(Exception):
    pass


class _Silent(Exception):
    pass


class Accelerator:
    """Driver for one board.

    Parameters
    ----------
    port : str or pyserial-like object
        A device path/URL opened with :func:`serial.serial_for_url` at ``baud``, or an object
        with ``read``, ``write`` and a ``timeout`` attribute (its ``timeout`` is set to
        ``timeout``; ``reset_input_buffer`` is used when present).
    timeout : float
        Seconds of silence after which a read gives up (the port's read timeout).
    retries : int
        Resends of one request before :class:`LinkError`.
    drain_time : float
        Quiet time that ends draining the line after a bad response (default ``timeout / 4``).
    identify : bool
        Ask the device for its identity now (sets :attr:`info` and :attr:`array`).
    """

    def __init__(self, port, *, baud: int = DEFAULT_BAUD, timeout: float = 1.0,
                 retries: int = 8, drain_time: float | None = None, identify: bool = True):
        if retries < 0:
            raise ValueError(f"retries must be >= 0, not {retries}")
        if timeout is None or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self._owns_port = isinstance(port, str)
        if self._owns_port:
            serial = require("serial", "talking to a board over a serial port")
            try:
                port = serial.serial_for_url(port, baudrate=baud, timeout=timeout)
            except (serial.SerialException, ValueError, OSError) as exc:
                raise LinkError(f"cannot open serial port {port!r}: "
                                f"{str(exc).splitlines()[0] if str(exc) else exc}") from None
        else:
            for attr in ("read", "write"):
                if not callable(getattr(port, attr, None)):
                    raise TypeError(f"port object lacks a {attr}() method")
            port.timeout = timeout
        self.port = port
        self.timeout = timeout
        self.retries = retries
        self.drain_time = drain_time if drain_time is not None else timeout / 4
        self._seq = 0
        #: Counters: ``requests``, ``resends``, ``garbled``, ``timeouts``, ``stale``, plus one
        #: per transient status name.
        self.stats: dict[str, int] = {"requests": 0, "resends": 0, "garbled": 0, "timeouts": 0,
                                      "stale": 0}
        self.info: dict | None = None
        self.array: ArrayModel | None = None
        if identify:
            self.identify()

    # -- context manager ---------------------------------------------------------------------
    def close(self) -> None:
        if self._owns_port:
            self.port.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- link layer ---------------------------------------------------------------------------
    def _read_exact(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.port.read(min(n - len(data), 4096))
            if not chunk:
                raise _Silent(f"timed out after {self.timeout:g} s waiting for the device")
            data += chunk
        return bytes(data)

    def _max_response(self) -> int:
        if self.info is None:
            return MAX_FRAME_PAYLOAD
        return max(4096, self.info["max_m"] * self.info["cols"]
                   * result_bytes(self.info["acc_width"]))

    def _read_response(self, seq: int) -> tuple[int, bytes]:
        """The response carrying ``seq``; skips stale responses and noise between frames."""
        bound = self._max_response()
        skipped = 0
        while True:
            byte = self._read_exact(1)
            if byte[0] != RESPONSE_SYNC:
                skipped += 1
                if skipped > bound + 64:
                    raise _Garbled("no sync byte in the device's output")
                continue
            header = self._read_exact(4)
            length = header[2] | header[3] << 8
            if length > bound:
                raise _Garbled(f"response length {length} above the bound {bound}")
            body = self._read_exact(length + 2)
            if crc16(header + body) != 0:
                raise _Garbled("response CRC mismatch")
            if header[0] != seq:
                self.stats["stale"] += 1
                skipped += length + 7
                continue
            return header[1], body[:length]

    def _drain(self) -> None:
        """Read until the line has been quiet for ``drain_time`` (end of a damaged frame)."""
        old = self.port.timeout
        self.port.timeout = self.drain_time
        try:
            for _ in range(1000):
                if not self.port.read(4096):
                    break
        finally:
            self.port.timeout = old

    def _flush_input(self) -> None:
        reset = getattr(self.port, "reset_input_buffer", None)
        if callable(reset):
            reset()

    def request(self, command: Command, payload: bytes = b"", *,
                expect_length: int | None = None) -> bytes:
        """Send one command, resending as needed; return the ``OK`` response's payload."""
        command = Command(command)
        problem = "no attempt made"
        self._flush_input()
        for attempt in range(self.retries + 1):
            self._seq = (self._seq + 1) & 0xFF
            seq = self._seq
            self.stats["requests"] += 1
            if attempt:
                self.stats["resends"] += 1
            self.port.write(encode_frame(REQUEST_SYNC, seq, command, payload))
            try:
                status, reply = self._read_response(seq)
            except _Silent as exc:
                self.stats["timeouts"] += 1
                problem = str(exc)
                self._drain()
                continue
            except _Garbled as exc:
                self.stats["garbled"] += 1
                problem = str(exc)
                self._drain()
                continue
            if status == Status.OK:
                if expect_length is not None and len(reply) != expect_length:
                    self.stats["garbled"] += 1
                    problem = (f"{command.name} returned {len(reply)} bytes, "
                               f"expected {expect_length}")
                    self._drain()
                    continue
                return reply
            if status in TRANSIENT:
                name = Status(status).name
                self.stats[name] = self.stats.get(name, 0) + 1
                problem = f"device reported {name}"
                self._drain()
                continue
            raise DeviceError(command, status)
        raise LinkError(f"{command.name} failed after {self.retries + 1} attempts: {problem}")

    # -- commands -----------------------------------------------------------------------------
    def identify(self) -> dict:
        """Ask the device what it is; sets and returns :attr:`info` (also :attr:`array`)."""
        reply = self.request(Command.IDENTIFY)
        try:
            info, array = parse_identity(reply)
        except ProtocolError as exc:
            raise LinkError(str(exc)) from None
        if array.dataflow != "ws":
            raise LinkError(f"device reports dataflow {array.dataflow!r}; driver handles 'ws'")
        self.info, self.array = info, array
        return info

    def reset(self) -> None:
        """Clear the device's weights and results."""
        self.request(Command.RESET, expect_length=0)

    def _need_info(self):
        if self.info is None:
            self.identify()
        return self.info

    def load_weights(self, w, k_active: int | None = None) -> None:
        """Load a ``K_t x N_t`` weight tile (padded with zeros to ``rows x cols``)."""
        info = self._need_info()
        w = self._operands(w, "weights")
        rows, cols = info["rows"], info["cols"]
        if w.shape[0] > rows or w.shape[1] > cols or w.shape[0] == 0:
            raise ValueError(f"weight tile {w.shape} does not fit the {rows}x{cols} array")
        k_active = w.shape[0] if k_active is None else k_active
        full = np.zeros((rows, cols), dtype=np.int64)
        full[:w.shape[0], :w.shape[1]] = w
        payload = bytes([k_active]) + pack_values(full, operand_bytes(info["width"]))
        self.request(Command.LOAD_WEIGHTS, payload, expect_length=0)
        self._k_active = k_active

    def stream(self, a) -> None:
        """Stream ``M x K_t`` activations (``M <= max_m``); results stay on the device."""
        info = self._need_info()
        a = self._operands(a, "activations")
        rows = info["rows"]
        if not 1 <= a.shape[0] <= info["max_m"] or a.shape[1] > rows:
            raise ValueError(f"activation block {a.shape} exceeds {info['max_m']} x {rows}")
        full = np.zeros((a.shape[0], rows), dtype=np.int64)
        full[:, :a.shape[1]] = a
        self.request(Command.STREAM, pack_values(full, operand_bytes(info["width"])),
                     expect_length=0)
        self._m = a.shape[0]

    def read(self, m: int) -> np.ndarray:
        """Results of the last :meth:`stream` of ``m`` rows: ``m x cols`` int64."""
        info = self._need_info()
        nbytes = result_bytes(info["acc_width"])
        reply = self.request(Command.READ, expect_length=m * info["cols"] * nbytes)
        return unpack_values(reply, nbytes, info["acc_width"], True).reshape(m, info["cols"])

    def tile(self, a, b) -> np.ndarray:
        """One pass: ``a (M x K_t) @ b (K_t x N_t)`` as ``ArrayModel.tile`` computes it."""
        info = self._need_info()
        b = self._operands(b, "weights")
        a = self._operands(a, "activations")
        check_gemm_shapes(a, b)
        self.load_weights(b)
        out = np.empty((a.shape[0], b.shape[1]), dtype=np.int64)
        for m0 in range(0, a.shape[0], info["max_m"]):
            m1 = min(m0 + info["max_m"], a.shape[0])
            self.stream(a[m0:m1])
            out[m0:m1] = self.read(m1 - m0)[:, :b.shape[1]]
        return out

    def gemm(self, a, b) -> np.ndarray:
        """``a (M x K) @ b (K x N)`` on the device, equal to ``tiled_gemm(a, b, self.array)``."""
        info = self._need_info()
        arr = self.array
        a = self._operands(a, "A")
        b = self._operands(b, "B")
        check_gemm_shapes(a, b)
        (m, k), n = a.shape, b.shape[1]
        out = np.zeros((m, n), dtype=np.int64)
        if m == 0 or n == 0 or k == 0:
            return out
        rows, cols = info["rows"], info["cols"]
        for n0 in range(0, n, cols):
            n1 = min(n0 + cols, n)
            for t, k0 in enumerate(range(0, k, rows)):
                k1 = min(k0 + rows, k)
                part = self.tile(a[:, k0:k1], b[k0:k1, n0:n1])
                out[:, n0:n1] = part if t == 0 else accumulate(
                    out[:, n0:n1], part, arr.acc_width, arr.overflow)
        return out

    def _operands(self, x, label: str) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"{label} must be a 2-D matrix, not shape {x.shape}")
        if x.size and not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"{label} must hold integers, not {x.dtype}")
        x = x.astype(np.int64)
        lo, hi = self.array.grid[0][0].operand_range
        if x.size and (x.min() < lo or x.max() > hi):
            raise ValueError(f"{label} has values outside the operand range {lo}..{hi}")
        return x


# -- CLI --------------------------------------------------------------------------------------
def selftest(acc: Accelerator, *, tests: int = 20, max_dim: int = 24, seed: int = 0,
             progress: bool = True) -> list[dict]:
    """Random GEMMs on the device compared with :func:`sim.golden.tiled_gemm`; one record each."""
    from hw.cli import progress as progress_bar
    rng = np.random.default_rng(seed)
    lo, hi = acc.array.grid[0][0].operand_range
    records = []
    for i in progress_bar(range(tests), desc="selftest", unit="gemm", disable=not progress):
        m, k, n = (int(v) for v in rng.integers(1, max_dim + 1, 3))
        a = rng.integers(lo, hi + 1, (m, k))
        b = rng.integers(lo, hi + 1, (k, n))
        start = time.perf_counter()
        got = acc.gemm(a, b)
        seconds = time.perf_counter() - start
        want = tiled_gemm(a, b, acc.array)
        records.append({"test": i, "shape": (m, k, n), "ok": bool(np.array_equal(got, want)),
                        "seconds": seconds})
    return records


def _parser() -> Parser:
    p = Parser(
        prog="python -m boards.host",
        description="Drive the UART accelerator board: identify it or run a self-test of "
                    "random GEMMs against the bit-exact golden model (sim.golden.tiled_gemm).",
        epilog="examples:\n"
               "  python -m boards.host --port /dev/ttyUSB1 --identify\n"
               "  python -m boards.host --port /dev/ttyUSB1 --selftest --tests 50 --seed 1\n"
               "  python -m boards.host --port /dev/ttyUSB1 --baud 115200 --timeout 2 --selftest\n"
               "  python -m boards.host --model 4x4 --mult truncated4c --selftest   (Python "
               "device model, no board;\n      the old spelling --model 4x4:truncated4c works "
               "too)\n"
               "exit status: 0 success, 1 self-test mismatch, 2 bad usage / port / timeout\n\n"
               + CONVENTIONS)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--port",
                       help="serial device or pyserial URL (iCEBreaker: the second FTDI "
                            "interface, e.g. /dev/ttyUSB1; ULX3S: /dev/ttyUSB0)")
    where.add_argument("--model", metavar="RxC[:MULT]",
                       help="talk to the pure-Python device model instead, e.g. 2x2 or "
                            "4x4:truncated4c (32-bit wrapping accumulators)")
    p.add_argument("--mult", metavar="NAME", help="with --model: the multiplier (default exact)")
    add_width(p)
    add_signedness(p)
    p.add_argument("--baud", type=integer(1, 100_000_000), default=DEFAULT_BAUD,
                   help=f"bit rate the bitstream was built for (default {DEFAULT_BAUD})")
    p.add_argument("--timeout", type=number(0, 3600, lo_open=True), default=1.0,
                   help="seconds of silence before a read gives up (default 1.0)")
    p.add_argument("--retries", type=integer(0, 1000), default=8,
                   help="resends per request (default 8)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--identify", action="store_true", help="print the device's identity")
    what.add_argument("--selftest", action="store_true",
                      help="random GEMMs compared with the golden model")
    p.add_argument("--tests", type=integer(1, 1_000_000), default=20,
                   help="self-test GEMMs (default 20)")
    p.add_argument("--max-dim", type=integer(1, 4096), default=24,
                   help="largest M, K, N of a self-test GEMM (default 24)")
    add_seed(p, help="self-test random seed, 0..2^63-1 (default 0)")
    return p


def _model_port(text: str, args):
    from .model import DeviceModel, ModelTransport
    shape, sep, mult = text.partition(":")
    rows, x, cols = shape.lower().partition("x")
    if not (x and rows.isdigit() and cols.isdigit() and len(rows) < 4 and len(cols) < 4):
        raise UsageError(f"--model wants ROWSxCOLS[:MULT] (e.g. 2x2:exact), not {text[:40]!r}")
    if mult and args.mult and mult != args.mult:
        raise UsageError(f"--model {text} and --mult {args.mult} name two multipliers")
    (signed,) = signedness_values(args)
    array = ArrayModel.uniform(int(rows), int(cols), args.mult or mult or "exact",
                               width=args.width, signed=signed)
    return ModelTransport(DeviceModel(array))


def _main(argv) -> int:
    args = _parser().parse_args(argv)
    if args.mult and not args.model:
        raise UsageError("--mult goes with --model (a board reports its own multipliers)")
    port = _model_port(args.model, args) if args.model else args.port
    with Accelerator(port, baud=args.baud, timeout=args.timeout,
                     retries=args.retries) as acc:
        if args.identify:
            for key, value in sorted(acc.info.items()):
                print(f"{key}: {value}")
            return 0
        records = selftest(acc, tests=args.tests, max_dim=args.max_dim, seed=args.seed)
    bad = [r for r in records if not r["ok"]]
    total = sum(r["seconds"] for r in records)
    print(f"{len(records) - len(bad)}/{len(records)} GEMMs match the golden model "
          f"({total:.2f} s on the device link, {acc.stats['resends']} resends)")
    if bad:
        print(f"python -m boards.host: mismatch in tests {[r['test'] for r in bad]}",
              file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    """``python -m boards.host``; returns the exit status."""
    return run_main("python -m boards.host", _main, argv)


if __name__ == "__main__":
    sys.exit(main())
