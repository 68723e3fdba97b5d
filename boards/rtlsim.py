"""End-to-end RTL simulation of the UART accelerator with the real host driver.

:func:`run_uart_e2e` emits :class:`boards.top.AcceleratorTop` as Verilog, runs the cocotb
testbench ``sim/tb/tb_uart_e2e.py`` on Verilator or Icarus and returns its report (status
codes of hand-made frames, clean GEMMs, GEMMs over a faulty link, recovery). :func:`status_cases`
lists the hand-made frames with the status the protocol specifies for each.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from hw.verilog import emit_verilog
from sim.golden import ArrayModel
from sim.tb.runner import run_cocotb

from .model import max_payload_for
from .protocol import (REQUEST_SYNC, Command, Status, encode_frame, operand_bytes, pack_values)
from .top import AcceleratorTop

__all__ = ["status_cases", "run_uart_e2e"]


def status_cases(array: ArrayModel, max_m: int) -> list[list]:
    """``[name, request hex, expected status]`` for the protocol's error paths, in order.

    The order matters (device state): READ before any STREAM, LOAD_WEIGHTS with bad K_t, ...
    The expected statuses are written from the protocol definition, not from the gateware.
    """
    rows, cols = array.rows, array.cols
    bpo = operand_bytes(array.operand_width)
    wlen = rows * cols * bpo
    max_payload = max_payload_for(rows, cols, array.operand_width, max_m)

    def req(seq, cmd, payload=b""):
        return encode_frame(REQUEST_SYNC, seq, cmd, payload)

    weights = bytes([rows]) + pack_values([1] * (rows * cols), bpo)
    acts = pack_values([1] * rows, bpo)
    bad_crc = bytearray(req(9, Command.IDENTIFY))
    bad_crc[-1] ^= 0x10
    flipped = bytearray(req(10, Command.LOAD_WEIGHTS, weights))
    flipped[6] ^= 0x01                                  # a payload bit: CRC must catch it
    oversize = bytes([REQUEST_SYNC, 11, Command.STREAM]) + (max_payload + 1).to_bytes(2, "little")
    garbage = bytes([0x00, 0xFF, 0x13, 0xA5, 0x37])     # no request sync byte in it
    cases = [
        ("identify", req(1, Command.IDENTIFY), Status.OK),
        ("read before stream", req(2, Command.READ), Status.ERR_STATE),
        ("stream before weights", req(3, Command.STREAM, acts), Status.ERR_STATE),
        ("unknown command", req(4, 0x7E), Status.ERR_COMMAND),
        ("identify with payload", req(5, Command.IDENTIFY, b"\x00"), Status.ERR_LENGTH),
        ("weights K_t=0", req(6, Command.LOAD_WEIGHTS, b"\x00" + weights[1:]),
         Status.ERR_ARGUMENT),
        ("weights K_t=rows+1", req(7, Command.LOAD_WEIGHTS, bytes([rows + 1]) + weights[1:]),
         Status.ERR_ARGUMENT),
        ("weights short", req(8, Command.LOAD_WEIGHTS, weights[:-1]), Status.ERR_LENGTH),
        ("bad crc", bytes(bad_crc), Status.ERR_CRC),
        ("flipped payload bit", bytes(flipped), Status.ERR_CRC),
        ("oversize length", oversize, Status.ERR_LENGTH),
        ("truncated frame", req(12, Command.IDENTIFY)[:4], Status.ERR_TIMEOUT),
        ("garbage then frame", garbage + req(13, Command.LOAD_WEIGHTS, weights), Status.OK),
        ("stream not a whole row", req(14, Command.STREAM, acts + b"\x01"), Status.ERR_LENGTH)
        if bpo * rows > 1 else None,
        ("stream above max_m", req(15, Command.STREAM, acts * (max_m + 1)), Status.ERR_LENGTH)
        if len(acts) * (max_m + 1) <= max_payload else None,
        ("stream", req(16, Command.STREAM, acts), Status.OK),
        ("read", req(17, Command.READ), Status.OK),
        ("reset", req(18, Command.RESET), Status.OK),
        ("read after reset", req(19, Command.READ), Status.ERR_STATE),
    ]
    return [[name, frame.hex(), int(status)] for c in cases if c is not None
            for name, frame, status in [c]]


def run_uart_e2e(simulator: str, workdir: Path, *, array: ArrayModel, divisor: int = 8,
                 clk_ns: int = 10, max_m: int = 4, gemms=((5, 7, 5),), fault_gemms=((4, 5, 3),),
                 fault_rate: float = 0.2, retries: int = 12, seed: int = 1,
                 timeout_cycles: int | None = None) -> dict:
    """Run the end-to-end testbench; return its report (``passed``, ``phases``, ``faults``...)."""
    top = AcceleratorTop(array, divisor=divisor, max_m=max_m, timeout_cycles=timeout_cycles)
    verilog = emit_verilog(top, "uart_top")
    key = hashlib.sha256(verilog.encode()).hexdigest()[:12]
    build = Path(workdir) / f"uart-{simulator}-{key}"
    build.mkdir(parents=True, exist_ok=True)
    src = build / "uart_top.v"
    src.write_text(verilog)
    bit_s = divisor * clk_ns * 1e-9
    # the testbench hands whole response frames to the host (it corrupts them frame by frame),
    # so the host timeout must cover the longest response: IDENTIFY or a READ of max_m rows
    longest = (max(len(top.identity), max_m * array.cols * ((array.acc_width + 7) // 8))
               + 7) * 10 * bit_s
    device_timeout_s = top.timeout_cycles * clk_ns * 1e-9
    config = {
        "grid": [[s.name for s in row] for row in array.grid], "width": array.operand_width,
        "signed": array.signed, "acc_width": array.acc_width, "overflow": array.overflow,
        "max_m": max_m, "divisor": divisor, "clk_ns": clk_ns,
        "timeout_cycles": top.timeout_cycles,
        "host_timeout_s": max(2 * longest, 4 * device_timeout_s, 200 * bit_s),
        "drain_s": 2 * device_timeout_s, "retries": retries,
        "status_cases": status_cases(array, max_m),
        # what the gateware adds to IDENTIFY; latency per the ws array's documented formula
        "identity_extra": {"pipeline": False, "latency_cycles": array.rows + array.cols - 1},
        "gemms": [list(g) for g in gemms], "fault_gemms": [list(g) for g in fault_gemms],
        "fault_rate": fault_rate, "seed": seed,
    }
    # Icarus: Verilog-2005 semantics, so Yosys' time-0 trigger of `always @*` blocks fires (the
    # engine's FSM outputs depend on a state register that does not change until a byte comes)
    extra = ["-g2005"] if simulator == "icarus" else None
    return run_cocotb(simulator, sources=[src], toplevel="uart_top", test_module="tb_uart_e2e",
                      build_dir=build, config=config, extra_build_args=extra)
