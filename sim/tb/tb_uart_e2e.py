"""cocotb testbench: host driver -> UART -> accelerator RTL -> UART -> host driver, end to end.

The DUT is :class:`boards.top.AcceleratorTop` (ports ``clk``, ``rst``, ``rx``, ``tx``). A Python
UART model drives ``rx`` and decodes ``tx``; :class:`SimSerial` wraps both in a pyserial-like
object. The unchanged host driver :class:`boards.host.Accelerator` runs in a thread started
with :func:`cocotb.task.bridge`; every ``read``/``write`` of the transport is a
:func:`cocotb.task.resume` call, so simulated time only advances while the driver waits for
the link (lock-step, deterministic), and the transport's ``timeout`` is measured in simulated
seconds.

Phases (one simulator build):

1. ``status``: hand-made request frames (good, bad CRC, unknown command, oversized length,
   truncated, garbage before a frame, wrong lengths, commands in the wrong state); every response
   must equal what :class:`boards.model.DeviceModel` answers to the same bytes, and its status
   must be the one the protocol specifies (listed in the config by the test).
2. ``clean``: GEMMs through ``Accelerator.gemm`` on a clean link == ``sim.golden.tiled_gemm``.
3. ``faults``: the same over a link that corrupts frames in both directions
   (:class:`boards.faults.FaultInjector`); a GEMM must either equal the golden model or raise
   :class:`boards.host.AcceleratorError` - never return a wrong matrix. Finally a GEMM on the
   clean link shows the device recovered.

Config (``AXM_TB_CONFIG``): ``grid`` (rows x cols multiplier names), ``width``, ``signed``,
``acc_width``, ``overflow``, ``max_m``, ``divisor``, ``clk_ns``, ``timeout_cycles``,
``host_timeout_s``, ``drain_s``, ``retries``, ``identity_extra`` (keys the gateware adds to
the identity), ``status_cases`` (list of ``[name, hex bytes,
expected status or null]``), ``gemms`` and ``fault_gemms`` (lists of ``[M, K, N]``),
``fault_rate``, ``seed``, ``report``.
"""

from __future__ import annotations

import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import Event, FallingEdge, First, RisingEdge, Timer
from cocotb.utils import get_sim_time

from boards.faults import FaultInjector
from boards.host import Accelerator, AcceleratorError
from boards.model import DeviceModel
from boards.protocol import HEADER_SIZE, RESPONSE_SYNC, TRAILER_SIZE, FrameDecoder
from hw.mult import parse
from sim.golden import ArrayModel, tiled_gemm
from sim.tb.runner import testbench_config, write_report


def array_from_config(cfg) -> ArrayModel:
    grid = tuple(tuple(parse(n, width=cfg["width"], signed=cfg["signed"]) for n in row)
                 for row in cfg["grid"])
    return ArrayModel(len(grid), len(grid[0]), grid, dataflow="ws",
                      acc_width=cfg["acc_width"], overflow=cfg["overflow"])


class SimSerial:
    """pyserial-like transport over the DUT's UART pins, for use from a bridge thread.

    ``faults`` (optional :class:`FaultInjector`) corrupts whole request frames (one ``write``)
    and whole response frames (delimited by the monitor from their header).
    """

    def __init__(self, dut, *, bit_ns: int, clk_ns: int, faults=None):
        self.dut = dut
        self.bit_ns = bit_ns
        self.clk_ns = clk_ns
        self.faults = faults
        self.timeout = 1e-3
        self._rx = bytearray()
        self._frame = bytearray()
        self._event = Event()
        self.bytes_to_device = 0
        self.bytes_from_device = 0
        dut.rx.value = 1

    # -- UART model (coroutines, scheduler thread) ----------------------------------------------
    async def _send_byte(self, byte: int):
        for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
            self.dut.rx.value = bit
            await Timer(self.bit_ns, unit="ns")

    async def monitor(self):
        """Decode ``tx`` forever (mid-bit sampling); hand complete frames to the host side."""
        while True:
            await FallingEdge(self.dut.tx)
            await Timer(self.bit_ns // 2, unit="ns")
            if int(self.dut.tx.value):
                continue                                   # glitch, not a start bit
            value = 0
            for i in range(8):
                await Timer(self.bit_ns, unit="ns")
                value |= int(self.dut.tx.value) << i
            await Timer(self.bit_ns, unit="ns")            # middle of the stop bit
            self.bytes_from_device += 1
            self._on_byte(value)

    def _on_byte(self, value: int):
        # the device only emits whole frames: cut them at sync + header length
        if not self._frame and value != RESPONSE_SYNC:
            self._deliver(bytes([value]))
            return
        self._frame.append(value)
        if len(self._frame) >= HEADER_SIZE:
            length = self._frame[3] | self._frame[4] << 8
            if len(self._frame) == HEADER_SIZE + length + TRAILER_SIZE:
                frame = bytes(self._frame)
                self._frame.clear()
                self._deliver(self.faults.to_host(frame) if self.faults else frame)

    def _deliver(self, data: bytes):
        self._rx += data
        self._event.set()

    async def _write(self, data: bytes):
        data = self.faults.to_device(data) if self.faults else data
        await RisingEdge(self.dut.clk)
        await Timer(self.clk_ns // 4 or 1, unit="ns")      # change rx away from clock edges
        for byte in data:
            await self._send_byte(byte)
        self.bytes_to_device += len(data)

    async def _read(self, size: int) -> bytes:
        deadline = get_sim_time("ns") + self.timeout * 1e9
        while len(self._rx) < size:
            remaining = deadline - get_sim_time("ns")
            if remaining < 1:
                break
            self._event.clear()
            await First(self._event.wait(), Timer(round(remaining), unit="ns"))
        chunk = bytes(self._rx[:size])
        del self._rx[:size]
        return chunk

    # -- pyserial interface (bridge thread) -----------------------------------------------------
    def write(self, data: bytes) -> int:
        resume(self._write)(bytes(data))
        return len(data)

    def read(self, size: int = 1) -> bytes:
        return resume(self._read)(size)

    def reset_input_buffer(self):
        self._rx.clear()

    def close(self):
        pass


def _read_frame(link: SimSerial) -> bytes:
    """Raw response bytes up to the end of one frame (or whatever came before a timeout)."""
    dec = FrameDecoder(RESPONSE_SYNC)
    got = bytearray()
    while True:
        b = link.read(1)
        if not b:
            return bytes(got)
        got += b
        if any(ev[0] == "frame" for ev in dec.feed(b)):
            return bytes(got)


@cocotb.test()
async def host_drives_rtl_over_uart(dut):
    cfg = testbench_config()
    array = array_from_config(cfg)
    clk_ns, divisor = cfg["clk_ns"], cfg["divisor"]
    Clock(dut.clk, clk_ns, unit="ns", impl="gpi").start()
    dut.rx.value = 1
    dut.rst.value = 1
    for _ in range(4):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)

    faults = FaultInjector(cfg["seed"], rate=cfg["fault_rate"])
    faults.enabled = False
    link = SimSerial(dut, bit_ns=divisor * clk_ns, clk_ns=clk_ns, faults=faults)
    cocotb.start_soon(link.monitor())
    errors, mismatches, phases = [], [], {}
    rng = np.random.default_rng(cfg["seed"])
    lo, hi = array.grid[0][0].operand_range
    # device inter-byte timeout in simulated seconds, plus margin: lets a truncated frame expire
    quiet_s = 2 * cfg["timeout_cycles"] * clk_ns * 1e-9

    def status_phase():
        model = DeviceModel(array, max_m=cfg["max_m"], identity_extra=cfg["identity_extra"])
        link.timeout = cfg["host_timeout_s"]
        results = []
        for name, hexbytes, expected in cfg["status_cases"]:
            request = bytes.fromhex(hexbytes)
            link.reset_input_buffer()
            link.write(request)
            got = _read_frame(link)
            want = model.feed(request)
            if not want:                       # truncated: the device times out
                want = model.timeout()
            dec = FrameDecoder(RESPONSE_SYNC)
            events = dec.feed(got)
            frames = [ev for ev in events if ev[0] == "frame"]
            status = frames[-1][2] if frames else None
            results.append({"case": name, "status": status, "expected": expected})
            if got != want:
                errors.append({"case": name, "rtl": got.hex(), "model": want.hex()})
            if expected is not None and status != expected:
                errors.append({"case": name, "status": status, "expected": expected})
        return results

    def gemm_phase(shapes, label):
        acc = Accelerator(link, timeout=cfg["host_timeout_s"], retries=cfg["retries"],
                          drain_time=max(cfg["drain_s"], quiet_s))
        done = []
        for m, k, n in shapes:
            a = rng.integers(lo, hi + 1, (m, k))
            b = rng.integers(lo, hi + 1, (k, n))
            want = tiled_gemm(a, b, array)
            try:
                got = acc.gemm(a, b)
            except AcceleratorError as exc:
                done.append({"shape": [m, k, n], "outcome": "raised", "error": str(exc)})
                continue
            ok = bool(np.array_equal(got, want))
            done.append({"shape": [m, k, n], "outcome": "ok" if ok else "WRONG"})
            if not ok:
                bad = np.argwhere(got != want)[:5]
                mismatches.append({"phase": label, "shape": [m, k, n],
                                   "first": [[int(i), int(j), int(got[i, j]), int(want[i, j])]
                                             for i, j in bad]})
        return {"gemms": done, "stats": dict(acc.stats), "info": acc.info}

    @bridge
    def host_session():
        start = time.perf_counter()
        phases["status"] = status_phase()
        phases["clean"] = gemm_phase(cfg["gemms"], "clean")
        faults.enabled = True
        phases["faults"] = gemm_phase(cfg["fault_gemms"], "faults")
        faults.enabled = False
        phases["recovery"] = gemm_phase([[3, array.rows + 1, array.cols + 1]], "recovery")
        phases["wall_s"] = time.perf_counter() - start

    try:
        await host_session()
    except Exception as exc:  # noqa: BLE001 - reported, then the test fails
        errors.append({"exception": f"{type(exc).__name__}: {exc}"})
    kinds = {}
    for direction, kind in faults.log:
        kinds[f"{direction}:{kind}"] = kinds.get(f"{direction}:{kind}", 0) + 1
    if phases.get("recovery") and phases["recovery"]["gemms"][0]["outcome"] != "ok":
        errors.append({"recovery": phases["recovery"]["gemms"][0]})
    for label in ("clean",):
        for g in phases.get(label, {}).get("gemms", []):
            if g["outcome"] != "ok":
                errors.append({label: g})
    write_report(cfg, {"phases": phases, "faults": kinds, "errors": errors,
                       "mismatches": mismatches,
                       "bytes_to_device": link.bytes_to_device,
                       "bytes_from_device": link.bytes_from_device,
                       "sim_time_us": get_sim_time("us")})
    assert not errors and not mismatches, f"errors {errors[:3]} mismatches {mismatches[:3]}"
