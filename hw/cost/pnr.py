"""Place and route with nextpnr: Fmax and packed utilisation on iCE40UP5K and ECP5-85F.

The design is wrapped in a :class:`~hw.cost.harness.Harness` (input and output registers, so
every timed path is register-to-register), synthesised with ``synth_ice40``/``synth_ecp5`` and
placed and routed without pin constraints (nextpnr places the pins). Fmax is nextpnr's achieved
frequency for ``clk`` after routing, for one placement seed (default 1; seeds move Fmax by
roughly +-10 %). ``pack_only=True`` stops after packing: utilisation only, in seconds, which is
what :mod:`hw.cost.fits` uses to estimate.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hw.devices import find_device as shared_find_device
from hw.errors import ToolkitError

from . import tools
from hw.cache import Cache
from .designs import Design
from .errors import CostError, DoesNotFit, ToolError
from .harness import IO_MODES, Harness
from .synth import run_yosys, synth_commands

__all__ = ["Device", "DEVICES", "find_device", "PnrResult", "place_and_route", "harness_design",
           "critical_path"]


@dataclass(frozen=True)
class Device:
    """An FPGA device nextpnr can target."""

    name: str                 # canonical name
    family: str               # synthesis target: "ice40" or "ecp5"
    tool: str                 # "nextpnr-ice40" / "nextpnr-ecp5"
    args: tuple               # nextpnr device/package arguments
    logic: str                # utilisation entry counting LUT4-equivalent logic cells
    capacity: int             # LUT4s on the device (datasheet)
    direct_io: int            # pins usable for a "direct" harness (clk and rst included)
    freq_mhz: float           # clock constraint given to nextpnr (timing-driven target)
    aliases: tuple = ()


DEVICES = {
    "ice40up5k": Device("iCE40UP5K-SG48", "ice40", "nextpnr-ice40", ("--up5k", "--package", "sg48"),
                        "ICESTORM_LC", 5280, 39, 100.0,
                        ("up5k", "ice40", "ice40-up5k", "ice40up5k-sg48")),
    "ecp5-85f": Device("LFE5U-85F-CABGA381", "ecp5", "nextpnr-ecp5",
                       ("--85k", "--package", "CABGA381"), "TRELLIS_COMB", 83640, 197, 200.0,
                       ("85f", "ecp5", "lfe5u-85f", "lfe5u-85f-cabga381", "ecp5-85k")),
}


def find_device(name: str) -> Device:
    """Device by any of its names (:func:`hw.devices.find_device`: key, part number, alias or
    board, case-insensitive); :class:`CostError` listing the known ones."""
    try:
        return DEVICES[shared_find_device(name).key]
    except ToolkitError as err:
        raise CostError(str(err)) from None


@dataclass
class PnrResult:
    """Outcome of one nextpnr run (utilisation as nextpnr reports it)."""

    design: str
    device: str
    dsp: bool
    io: str
    seed: int
    freq_mhz: float
    pack_only: bool
    fmax_mhz: float | None            # None with pack_only
    logic_used: int                   # ICESTORM_LC / TRELLIS_COMB
    logic_available: int
    utilization: dict                 # resource -> {"used": n, "available": n}
    synth_cells: dict                 # harness + design cells from Yosys' stat -json
    tools: dict                       # tool name -> version line
    verilog_sha256: str               # of the harness Verilog
    seconds: float
    cached: bool = field(default=False, compare=False)
    #: The slowest register-to-register path (:func:`critical_path`); ``None`` with pack_only
    #: and in results cached before it was recorded.
    critical_path: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    def over_capacity(self) -> dict:
        """Resources whose use exceeds the device (only non-empty for pack-only results)."""
        return {k: v for k, v in self.utilization.items() if v["used"] > v["available"]}


def critical_path(report: dict) -> dict | None:
    """The slowest clock-to-clock path of a nextpnr ``--report`` JSON, summarised:
    ``{"from", "to"}`` (start and end cells), ``delay_ns`` (its total), ``logic_ns`` and
    ``routing_ns`` (their split), ``logic_levels`` (logic segments) and ``slowest_nets`` (up to
    three ``[net, ns]``, longest routing delays first): where timing closure has to start."""
    best = None
    for path in report.get("critical_paths", []):
        if "<async>" in (path.get("from", ""), path.get("to", "")):
            continue                         # I/O paths of the harness, not the design's
        segs = path.get("path") or []
        total = sum(float(seg.get("delay", 0.0)) for seg in segs)
        if segs and (best is None or total > best[0]):
            best = (total, segs)
    if best is None:
        return None
    total, segs = best
    logic = sum(float(seg.get("delay", 0.0)) for seg in segs if seg.get("type") != "routing")
    nets = sorted(((seg.get("net", "?"), round(float(seg.get("delay", 0.0)), 3))
                   for seg in segs if seg.get("type") == "routing"), key=lambda t: -t[1])
    return {"from": segs[0].get("from", {}).get("cell", "?"),
            "to": segs[-1].get("to", {}).get("cell", "?"),
            "delay_ns": round(total, 3), "logic_ns": round(logic, 3),
            "routing_ns": round(total - logic, 3),
            "logic_levels": sum(seg.get("type") == "logic" for seg in segs),
            "slowest_nets": [list(n) for n in nets[:3] if n[1] > 0]}


def harness_design(design: Design, device: Device, io: str = "auto") -> Design:
    """``design`` wrapped in a register :class:`Harness` (``io``: direct, serial or auto).

    Memoised per design, so the Verilog is emitted once.
    """
    if io == "auto":
        ins, outs = design.port_bits()
        io = "direct" if ins + outs + 2 <= device.direct_io else "serial"
    elif io not in IO_MODES:
        raise CostError(f"I/O mode must be auto, {', '.join(IO_MODES)}; not {io!r}")
    memo = design.__dict__.setdefault("_harnesses", {})
    if io not in memo:
        memo[io] = Design(f"{design.label}+harness:{io}",
                          lambda: Harness(design.component(), io),
                          info={**design.info, "harness": io}, pe_count=design.pe_count,
                          extra_verilog=design.extra_verilog)
    return memo[io]


_UTIL_LINE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%", re.M)


def _nextpnr_failure(design_label, device, text, result=None) -> CostError:
    over = {m[1]: {"used": int(m[2]), "available": int(m[3])}
            for m in _UTIL_LINE.finditer(text) if int(m[2]) > int(m[3])}
    if over:
        return DoesNotFit(f"{design_label} does not fit {device.name}: needs "
                          + ", ".join(f"{k} {v['used']}/{v['available']}"
                                      for k, v in over.items())
                          + "; try a smaller design or a larger device", over)
    lines = [ln.strip() for ln in text.splitlines() if "ERROR" in ln]
    line = re.sub(r"\s+", " ", lines[0]) if lines else "nextpnr failed"
    line = re.sub(r"'[^']{40,}'", "'...'", line)          # netlist names can be kilobytes long
    if any(s in line.lower() for s in ("unable to place", "no bels remaining", "too many")):
        return DoesNotFit(f"{design_label} does not fit {device.name}: {line}")
    if result is not None:
        line = tools.failure_summary(result, text)
    return ToolError(f"nextpnr failed on {design_label} for {device.name}: {line}")


def _refuse_hopeless(design: Design, device: Device) -> None:
    """:class:`DoesNotFit` before any tool runs when an array's PEs alone need more flip-flops
    than ``device`` has logic cells (one PE counted in Amaranth's netlist; every iCE40/ECP5
    cell holds one flip-flop)."""
    info, spec = design.info, design.spec
    if info.get("kind") != "array" or spec is None:
        return
    from hw.systolic import SystolicArray
    from hw.verilog import flip_flop_bits
    core = SystolicArray(1, 1, spec, dataflow=info["dataflow"], acc_width=info["acc_width"],
                         overflow=info["overflow"], pipeline=info["pipeline"])
    core._MustUse__silence = True
    needed = info["rows"] * info["cols"] * flip_flop_bits(core.pe_component(spec))
    if needed > device.capacity:
        raise DoesNotFit(f"{design.label} does not fit {device.name}: its PEs alone need "
                         f"{needed} flip-flops, the device has {device.capacity} logic cells "
                         f"(nothing was run; --pack-only measures it anyway)",
                         {"flip-flops": {"used": needed, "available": device.capacity}})


def place_and_route(design: Design, device: str | Device = "ice40up5k", *, dsp: bool = False,
                    seed: int = 1, freq_mhz: float | None = None, io: str = "auto",
                    pack_only: bool = False, cache: Cache | None = None,
                    timeout: float | None = 3600,
                    workdir: str | Path | None = None) -> PnrResult:
    """Wrap ``design`` in registers, synthesise, place and route on ``device``.

    Raises :class:`DoesNotFit` when nextpnr cannot fit it (with ``pack_only`` the result is
    returned and :meth:`PnrResult.over_capacity` says what is exceeded), :class:`ToolError` on
    other tool failures.
    """
    device = device if isinstance(device, Device) else find_device(device)
    freq = float(freq_mhz or device.freq_mhz)
    if not pack_only:
        _refuse_hopeless(design, device)
    wrapped = harness_design(design, device, io)
    cache = Cache() if cache is None else cache
    yosys = tools.find_tool("yosys")
    nextpnr = tools.find_tool(device.tool)
    versions = {"yosys": tools.tool_version(yosys, cache),
                device.tool: tools.tool_version(nextpnr, cache)}
    commands = synth_commands(device.family, dsp=dsp, json_out="design.json")
    args = [*device.args, "--json", "design.json", "--report", "report.json", "--seed", seed,
            "--freq", f"{freq:g}", "--timing-allow-fail", "-q", "-l", "nextpnr.log"]
    if pack_only:
        args.append("--pack-only")
    key = {"tools": versions, "verilog": wrapped.verilog_sha256, "device": device.name,
           "commands": commands, "nextpnr_args": [str(a) for a in args]}
    hit = cache.get("pnr", key)
    if hit is not None:
        if "does_not_fit" in hit:
            raise DoesNotFit(hit["does_not_fit"], hit.get("over"))
        return PnrResult(**{**hit, "design": design.label, "cached": True})
    start = time.monotonic()
    with tools.build_folder(workdir, "axm-pnr-") as path:
        stat = run_yosys(path, wrapped.verilog, commands, timeout=timeout, label=wrapped.label)
        (path / "report.json").unlink(missing_ok=True)      # never read a stale report
        result = tools.run(nextpnr, args, cwd=path, timeout=timeout)
        log = path / "nextpnr.log"
        text = result.stdout + result.stderr + (log.read_text(errors="replace")
                                                if log.is_file() else "")
        report = None
        if (path / "report.json").is_file():
            try:
                report = json.loads((path / "report.json").read_text())
            except ValueError:
                report = None
        if result.returncode != 0 or report is None:
            err = _nextpnr_failure(design.label, device, text, result)
            if isinstance(err, DoesNotFit):
                cache.put("pnr", key, {"does_not_fit": str(err), "over": err.over})
            raise err
    util = {k: {"used": int(v["used"]), "available": int(v["available"])}
            for k, v in sorted(report.get("utilization", {}).items())}
    fmax = None
    if not pack_only:
        clocks = report.get("fmax", {})
        if not clocks:
            raise ToolError(f"nextpnr reported no clock for {design.label}; nothing to time")
        fmax = round(min(float(c["achieved"]) for c in clocks.values()), 2)
    logic = util.get(device.logic, {"used": 0, "available": device.capacity})
    out = PnrResult(design=design.label, device=device.name, dsp=dsp, io=wrapped.info["harness"],
                    seed=int(seed), freq_mhz=freq, pack_only=pack_only, fmax_mhz=fmax,
                    logic_used=logic["used"], logic_available=logic["available"],
                    utilization=util, synth_cells=stat["cells"], tools=versions,
                    verilog_sha256=wrapped.verilog_sha256,
                    seconds=round(time.monotonic() - start, 3),
                    critical_path=None if pack_only else critical_path(report))
    value = out.as_dict()
    del value["cached"]
    cache.put("pnr", key, value)
    return out
