"""Logic synthesis with Yosys: iCE40 and ECP5 cell counts and a gate-level area proxy.

Targets
-------
``ice40``  ``synth_ice40`` (``-dsp`` with ``dsp=True``): ``SB_LUT4``, ``SB_CARRY``, ``SB_DFF*``,
           ``SB_MAC16``. ``luts`` = number of ``SB_LUT4``.
``ecp5``   ``synth_ecp5`` (``-nodsp`` unless ``dsp=True``): ``LUT4``, ``CCU2C``, ``TRELLIS_FF``,
           ``MULT18X18D``. ``luts`` = ``LUT4 + 2 * CCU2C`` (a ``CCU2C`` carry cell occupies the
           two LUT4s of a slice half); ``PFUMX``/``L6MUX21`` are slice muxes, not LUTs.
``gate``   technology-independent proxy: ``synth -flatten``, ``dfflegalize`` to plain
           ``$_DFF_P_`` (enables and synchronous resets become gates), ``abc -g`` with the gate set
           :data:`ABC_GATES`, then ``area`` = sum of :data:`NAND2_EQUIVALENTS` (Nangate 45 nm
           X1 cell areas divided by the NAND2_X1 area).

Every figure is read from Yosys' own ``stat -json`` report; the raw cell counts are kept in
:attr:`SynthResult.cells`. Results are cached (:mod:`hw.cache`) by Yosys version, Verilog
hash, target and options.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import tools
from hw.cache import Cache
from .designs import TOP, Design
from .errors import CostError, ToolError

__all__ = ["TARGETS", "ABC_GATES", "NANGATE45_AREA", "NAND2_EQUIVALENTS", "SynthResult",
           "synthesize", "synth_commands", "run_yosys", "gate_area"]

TARGETS = ("ice40", "ecp5", "gate")

#: Gate set given to ``abc -g`` for the gate-level proxy (ABC adds inverters as needed).
ABC_GATES = "AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT,MUX"

#: Nangate 45 nm Open Cell Library (typical corner) X1 cell areas in um^2.
NANGATE45_AREA = {"INV_X1": 0.532, "NAND2_X1": 0.798, "NOR2_X1": 0.798, "AND2_X1": 1.064,
                  "OR2_X1": 1.064, "XOR2_X1": 1.596, "XNOR2_X1": 1.596, "MUX2_X1": 1.862,
                  "DFF_X1": 4.522}


def _ge(*cells: str) -> float:
    return round(sum(NANGATE45_AREA[c] for c in cells) / NANGATE45_AREA["NAND2_X1"], 4)


#: Area of each Yosys gate in NAND2 equivalents. ``ANDNOT``/``ORNOT`` (``A & ~B``, ``A | ~B``)
#: have no Nangate cell; they are costed as an inverter plus a NOR2/NAND2.
NAND2_EQUIVALENTS = {
    "$_BUF_": 0.0, "$_NOT_": _ge("INV_X1"),
    "$_NAND_": _ge("NAND2_X1"), "$_NOR_": _ge("NOR2_X1"),
    "$_AND_": _ge("AND2_X1"), "$_OR_": _ge("OR2_X1"),
    "$_ANDNOT_": _ge("INV_X1", "NOR2_X1"), "$_ORNOT_": _ge("INV_X1", "NAND2_X1"),
    "$_XOR_": _ge("XOR2_X1"), "$_XNOR_": _ge("XNOR2_X1"),
    "$_MUX_": _ge("MUX2_X1"), "$_DFF_P_": _ge("DFF_X1"),
}

_CLASSES = {
    "ice40": {"lut4": ("SB_LUT4",), "carry": ("SB_CARRY",), "ff": ("SB_DFF",),
              "dsp": ("SB_MAC16",), "bram": ("SB_RAM40_4K", "SB_SPRAM256KA")},
    "ecp5": {"lut4": ("LUT4",), "carry": ("CCU2C",), "ff": ("TRELLIS_FF",),
             "dsp": ("MULT18X18D", "ALU54B"), "bram": ("DP16KD",)},
    "gate": {"ff": ("$_DFF_P_",)},
}


def synth_commands(target: str, *, dsp: bool = False, json_out: str | None = None) -> list[str]:
    """The Yosys commands run after ``read_verilog`` for ``target``."""
    if target == "ice40":
        cmd = f"synth_ice40 -top {TOP}" + (" -dsp" if dsp else "")
    elif target == "ecp5":
        cmd = f"synth_ecp5 -top {TOP}" + ("" if dsp else " -nodsp")
    elif target == "gate":
        if dsp:
            raise CostError("the gate-level proxy has no DSP blocks; drop --dsp")
        if json_out:
            raise CostError("the gate-level proxy cannot be placed and routed")
        return [f"synth -flatten -top {TOP}", "dfflegalize -cell $_DFF_P_ 01",
                f"abc -g {ABC_GATES}", "opt_clean", "delete t:$scopeinfo"]
    else:
        raise CostError(f"unknown synthesis target {target!r}; known: {', '.join(TARGETS)}")
    if json_out:
        cmd += f" -json {json_out}"
    return [cmd]


@dataclass
class SynthResult:
    """Cell counts of one design on one target (all read from Yosys' ``stat -json``)."""

    design: str
    target: str
    dsp: bool
    cells: dict               # cell type -> count, as reported
    luts: int | None          # LUT4 equivalents (FPGA targets), see the module docstring
    lut4: int | None
    carry: int | None
    ff: int
    dsp_blocks: int | None
    bram: int | None
    gate_area: float | None   # NAND2 equivalents (gate target)
    gate_count: int | None
    tool: str
    tool_version: str
    verilog_sha256: str
    script: list
    seconds: float
    cached: bool = field(default=False, compare=False)

    def as_dict(self) -> dict:
        return asdict(self)


def gate_area(cells: dict) -> float:
    """NAND2-equivalent area of a ``$_*_`` gate netlist; unknown cell types are an error."""
    unknown = sorted(set(cells) - set(NAND2_EQUIVALENTS))
    if unknown:
        raise CostError(f"gate-level proxy: no area for cell type(s) {', '.join(unknown)}")
    return round(sum(NAND2_EQUIVALENTS[t] * n for t, n in cells.items()), 3)


def _count(cells: dict, prefixes) -> int:
    return sum(n for t, n in cells.items() if t.startswith(tuple(prefixes)))


def run_yosys(workdir: Path, verilog: str, commands: list[str], *, timeout: float | None,
              label: str) -> dict:
    """Run Yosys on ``verilog`` in ``workdir``; return the parsed ``stat -json`` design entry."""
    tool = tools.find_tool("yosys")
    (workdir / "design.v").write_text(verilog)
    script = ["read_verilog design.v", *commands, "tee -q -o stat.json stat -json"]
    (workdir / "synth.ys").write_text("\n".join(script) + "\n")
    (workdir / "stat.json").unlink(missing_ok=True)          # never read a stale report
    result = tools.run(tool, ["-q", "-l", "yosys.log", "-s", "synth.ys"], cwd=workdir,
                       timeout=timeout)
    if result.returncode != 0:
        log = workdir / "yosys.log"
        text = log.read_text(errors="replace") if log.is_file() else ""
        raise ToolError(f"yosys failed on {label}: {tools.failure_summary(result, text)}")
    try:
        stat = json.loads((workdir / "stat.json").read_text())
        design = stat["design"]
        cells = {t: n for t, n in design.get("num_cells_by_type", {}).items()
                 if t != "$scopeinfo"}     # hierarchy bookkeeping, not logic
        return {"cells": cells,
                "num_cells": design.get("num_cells")}
    except (OSError, ValueError, KeyError) as err:
        raise ToolError(f"yosys wrote no readable stat -json report for {label} ({err})") from None


def synthesize(design: Design, target: str, *, dsp: bool = False, cache: Cache | None = None,
               timeout: float | None = 1800, workdir: str | Path | None = None) -> SynthResult:
    """Synthesise ``design`` for ``target`` (``ice40``, ``ecp5`` or ``gate``).

    ``cache``: a :class:`Cache` (default: the user cache); ``Cache(enabled=False)`` to force a
    run. ``workdir``: keep the build files there (default: a temporary folder, removed).
    Raises :class:`CostError` / :class:`ToolError` with one-line messages.
    """
    commands = synth_commands(target, dsp=dsp)
    cache = Cache() if cache is None else cache
    tool = tools.find_tool("yosys")
    version = tools.tool_version(tool, cache)
    key = {"yosys": version, "verilog": design.verilog_sha256, "target": target, "dsp": dsp,
           "commands": commands}
    hit = cache.get("synth", key)
    if hit is not None:
        return SynthResult(**{**hit, "design": design.label, "cached": True})
    start = time.monotonic()
    with tools.build_folder(workdir, "axm-synth-") as path:
        stat = run_yosys(path, design.verilog, commands, timeout=timeout, label=design.label)
    cells = stat["cells"]
    classes = _CLASSES[target]
    result = SynthResult(
        design=design.label, target=target, dsp=dsp, cells=cells,
        luts=None, lut4=None, carry=None, ff=_count(cells, classes["ff"]),
        dsp_blocks=None, bram=None, gate_area=None, gate_count=None,
        tool=tool.origin, tool_version=version, verilog_sha256=design.verilog_sha256,
        script=commands, seconds=round(time.monotonic() - start, 3))
    if target == "gate":
        result.gate_area = gate_area(cells)
        result.gate_count = sum(n for t, n in cells.items() if t != "$_DFF_P_")
    else:
        result.lut4 = _count(cells, classes["lut4"])
        result.carry = _count(cells, classes["carry"])
        result.dsp_blocks = _count(cells, classes["dsp"])
        result.bram = _count(cells, classes["bram"])
        result.luts = result.lut4 + (2 * result.carry if target == "ecp5" else 0)
    value = result.as_dict()
    del value["cached"]
    cache.put("synth", key, value)
    return result
