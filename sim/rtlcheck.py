"""Bit-exact RTL checks of multipliers and arrays against their reference models on real
simulators; ``python -m sim.rtlcheck`` is the command line (``--help``).

:func:`check_multipliers` generates one Verilog top holding every requested multiplier (see
:class:`sim.tb.harness.MultiplierBank`), runs it under cocotb on Verilator or Icarus and returns
the testbench report. Vectors are all ``2**(2N)`` operand pairs when that is at most
``EXHAUSTIVE_LIMIT``, else corner cases plus seeded random pairs.

The command checks multipliers by name (built-in, ``verilog:FILE``, ``table:FILE``), a systolic
array described by the options of ``python -m hw.gen`` (:func:`sim.arraycheck.prepare_harness`
and :func:`sim.arraycheck.run_harness`), or a design that ``hw.gen`` wrote (``--manifest``):
the Verilog file itself is simulated, after checking that ``hw.gen`` regenerates it byte for
byte from the manifest's arguments.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

from hw.cli import (CONVENTIONS, Parser, UsageError, add_force, add_json, add_mult, add_seed,
                    add_signedness, add_width, integer, output_path, run_main,
                    signedness_values, split_mults)
from hw.mult import MultiplierSpec, extra_verilog_sources, parse
from hw.outputs import check_file, check_folder, write_file
from hw.verilog import emit_verilog

from .tb.harness import MultiplierBank
from .tb.runner import SIMULATORS, TestbenchError, run_cocotb

__all__ = ["EXHAUSTIVE_LIMIT", "corner_operands", "test_vectors", "check_multipliers",
           "build_parser", "format_table", "main"]

EXHAUSTIVE_LIMIT = 1 << 16


def corner_operands(width: int, is_signed: bool) -> np.ndarray:
    """0, 1, -1 (signed), max, min, max-1, min+1 and every power of two (and its negative)."""
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if is_signed else (0, (1 << width) - 1)
    values = {0, 1, lo, hi, lo + 1, hi - 1}
    if is_signed:
        values.add(-1)
    for s in range(width):
        for v in (1 << s, -(1 << s), (1 << s) - 1, (1 << s) + 1):
            if lo <= v <= hi:
                values.add(v)
    return np.array(sorted(values), dtype=np.int64)


def test_vectors(width: int, *, random_pairs: int = 100_000, seed: int = 1,
                 exhaustive: bool | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """Raw ``width``-bit operand patterns for an RTL check and how they were chosen.

    All ``2**(2N)`` pairs when that is at most :data:`EXHAUSTIVE_LIMIT` (``exhaustive=None``)
    or ``exhaustive=True``; otherwise every pair of signed and unsigned corner operands plus
    ``random_pairs`` seeded random pairs. Patterns are unsigned; each multiplier reads them
    with its own signedness.
    """
    mask = (1 << width) - 1
    if exhaustive is None:
        exhaustive = 1 << (2 * width) <= EXHAUSTIVE_LIMIT
    if exhaustive:
        v = np.arange(1 << width, dtype=np.int64)
        a, b = np.meshgrid(v, v, indexing="ij")
        return a.ravel(), b.ravel(), "exhaustive"
    corners = np.unique(np.concatenate([corner_operands(width, True),
                                        corner_operands(width, False)]) & mask)
    ca, cb = np.meshgrid(corners, corners, indexing="ij")
    rng = np.random.default_rng(seed)
    ra = rng.integers(0, 1 << width, random_pairs, dtype=np.int64)
    rb = rng.integers(0, 1 << width, random_pairs, dtype=np.int64)
    return (np.concatenate([ca.ravel(), ra]), np.concatenate([cb.ravel(), rb]),
            f"{ca.size} corner pairs + {random_pairs} random pairs (seed {seed})")


#: Copies of each multiplier per width. Verilator evaluates the whole model every step, cheaply,
#: but its C++ compile grows with the design: few lanes. Icarus compiles fast and simulates
#: event by event, so more lanes only cut the per-step Python overhead.
DEFAULT_LANES = {"verilator": {4: 2, 8: 2, 12: 2, 16: 2},
                 "icarus": {4: 4, 8: 8, 12: 4, 16: 4}}


def check_multipliers(specs, *, simulator: str, workdir: Path, width: int | None = None,
                      signed: bool = True, lanes=None, random_pairs: int = 100_000,
                      seed: int = 1, exhaustive: bool | None = None, waves=None) -> dict:
    """Check every multiplier bit-exactly on ``simulator``; return the testbench report.

    ``specs``: :class:`MultiplierSpec` objects (any mix of widths and signedness), or names parsed
    with ``width`` and ``signed``. One Verilog build holds them all, so one simulator compile
    checks everything. ``lanes``: copies per multiplier (an int, or a dict by width).
    ``exhaustive``, ``random_pairs``, ``seed``: see :func:`test_vectors`. ``waves``: see
    :func:`sim.tb.runner.run_cocotb`. The report has ``results`` (per multiplier: vectors,
    mismatches), ``mismatches`` (first failing pairs), ``passed``, ``vectors_per_second`` and
    ``coverage`` (by width).
    """
    specs = [s if isinstance(s, MultiplierSpec) else parse(s, width=width or 8, signed=signed)
             for s in specs]
    if not specs:
        raise ValueError("no multipliers to check")
    widths = sorted({s.width for s in specs})
    if lanes is None:
        lanes = {w: DEFAULT_LANES.get(simulator, {}).get(w, 4) for w in widths}
    elif isinstance(lanes, int):
        lanes = {w: lanes for w in widths}
    verilog = emit_verilog(MultiplierBank(specs, lanes), "mult_bank")
    extra = extra_verilog_sources(specs)  # modules that imported/table multipliers instantiate
    key = hashlib.sha256("\0".join([verilog, *extra, *extra.values()]).encode()).hexdigest()[:12]
    build = Path(workdir) / f"{simulator}-{'-'.join(map(str, widths))}-{key}"
    build.mkdir(parents=True, exist_ok=True)
    src = build / "mult_bank.v"
    src.write_text(verilog)
    sources = [src]
    for fname, text in extra.items():
        sources.append(build / fname)
        sources[-1].write_text(text)
    groups, coverage = [], {}
    for w in widths:
        a, b, coverage[w] = test_vectors(w, random_pairs=random_pairs, seed=seed,
                                         exhaustive=exhaustive)
        vec_path = build / f"vectors{w}.npz"
        np.savez(vec_path, a=a, b=b)
        groups.append({"width": w, "lanes": lanes[w], "vectors": str(vec_path),
                       "members": [[k, s.name, s.signed] for k, s in enumerate(specs)
                                   if s.width == w]})
    report = run_cocotb(simulator, sources=sources, toplevel="mult_bank", test_module="tb_mult",
                        build_dir=build, config={"groups": groups}, waves=waves)
    report["coverage"] = coverage
    (build / "summary.json").write_text(json.dumps(report, indent=1))
    return report


# -- command line ---------------------------------------------------------------------------------
#: Most random pairs (or tiles) one run may ask for: the vectors are held in memory.
MAX_RANDOM = 10_000_000
#: Tiles the array testbench's ``random`` scenario draws per run.
TILES_PER_RANDOM_RUN = 6
#: Mismatching result vectors the array testbench records (sim.tb.tb_array.MAX_REPORTED).
ARRAY_REPORTED = 10
#: Failing vectors printed per design and simulator.
SHOWN_FAILURES = 10
ARRAY_OPTIONS = ("rows", "cols", "mult_per", "dataflow", "acc_width", "overflow", "pipeline")

EPILOG = """\
what is checked:
  NAME... / --mult LIST  multipliers (built-in names, verilog:FILE, table:FILE; give an imported
                         netlist a reference with verilog:FILE?model=NAME), all in one Verilog
                         build per simulator: every output bit against the multiplier's model
  --array --rows R ...   a systolic array with the options of python -m hw.gen (--mult and NAMEs
                         name its multiplier(s)), driven through its manifest by the array
                         testbench (sim/arraycheck.py): random tiles with gaps and back-pressure,
                         extremes, accumulator overflow, back-to-back transfer rate, latency,
                         reset, tiled GEMMs, the weight-load window (ws) and whole-GEMM cycle
                         counts, against sim.golden and the manifest's timing
  --manifest FILE.json   a design written by python -m hw.gen: hw.gen regenerates it from the
                         manifest's arguments, the Verilog file beside the manifest must be
                         identical byte for byte (else nothing is simulated: exit 1), then that
                         file itself is simulated (an array as above; a multiplier against the
                         model of the manifest's multiplier)

vectors (multipliers): all 2^(2N) operand pairs up to N = 8; wider operands: every pair of
  signed and unsigned corner operands (0, +-1, extremes, powers of two and their neighbours)
  plus 100000 seeded random pairs. --random N: corner pairs + N random pairs at any width.
  Arrays: the scenarios above, plus --random N more random tiles (rounded up to a multiple
  of 6, the tiles of one run of the random scenario). --seed S seeds all of it (default 1).

simulators: --simulator verilator|icarus|both; default: both where installed (a note names one
  that is missing). A simulator asked for by name that is not installed: one line saying how
  to install it, exit status 2.

output: a table per design and simulator (vectors, mismatches, errors, result, vectors/s: the
  rate of the whole simulator run, whose designs are driven side by side); the first failing
  vectors (operands or tile, expected, got) on stderr. Arrays record at most 10 mismatching
  result vectors per build (shown as 10+). --json [PATH] gives everything as JSON.

waveforms: --waves FILE.fst|FILE.vcd dumps every signal of the run (Verilator --trace-fst /
  --trace, Icarus $dumpfile/$dumpvars). With two simulators each gets its own file, the
  simulator's name before the extension: FILE.verilator.fst and FILE.icarus.fst. Written like
  every output (an existing file only when axmtoolkit wrote it, or with --force). Verilator's
  FST writer needs the lz4 headers (apt-get install liblz4-dev); VCD always works.
  In pytest, AXM_WAVES=1 (or fst, vcd) keeps a waveform in every testbench build folder.

examples:
  python -m sim.rtlcheck truncated4 drum6 --width 8
  python -m sim.rtlcheck --mult 'verilog:mul8u_1DMU.v?model=exact' --unsigned --random 100000
  python -m sim.rtlcheck --array --rows 4 --cols 3 --mult exact,drum4,mitchell --mult-per col
  python -m sim.rtlcheck --manifest out/axm_ws_16x16_truncated4_8s.json --simulator icarus
  python -m sim.rtlcheck drum4 --width 4 --simulator verilator --waves drum4.vcd

exit status: 0 everything matched, 1 a mismatch (or a design file that differs from its
manifest), 2 bad input or a failed run.
"""


def build_parser() -> Parser:
    from hw.mac import MAX_ACC_WIDTH, OVERFLOW_MODES
    from hw.systolic import DATAFLOWS, MAX_DIM

    p = Parser(prog="python -m sim.rtlcheck",
               description="Verify multipliers, generated systolic arrays or designs written by\n"
                           "python -m hw.gen bit-exactly on Verilator and Icarus (cocotb).",
               epilog=EPILOG + "\n" + CONVENTIONS)
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="multiplier names (joined with --mult)")
    add_mult(p, help="multiplier name(s): NAME[,NAME...], NAME*K repeats; with --array the "
                     "array's multiplier(s), one per row/column with --mult-per")
    add_width(p)
    p.set_defaults(width=None)            # so that --manifest can refuse an explicit --width
    add_signedness(p, allow_both=True)
    g = p.add_argument_group("arrays (the options of python -m hw.gen)")
    g.add_argument("--array", action="store_true",
                   help="check a systolic array instead of bare multipliers (needs --rows)")
    g.add_argument("--rows", type=integer(1, MAX_DIM), metavar="R", help=f"PE rows, 1..{MAX_DIM}")
    g.add_argument("--cols", type=integer(1, MAX_DIM), metavar="C",
                   help=f"PE columns, 1..{MAX_DIM} (default: R)")
    g.add_argument("--mult-per", choices=("row", "col"),
                   help="with several multiplier names: one per row or one per column")
    g.add_argument("--dataflow", choices=DATAFLOWS,
                   help="ws: weight-stationary (default); os: output-stationary")
    g.add_argument("--acc-width", type=integer(1, MAX_ACC_WIDTH), metavar="A",
                   help=f"accumulator width, 2N..{MAX_ACC_WIDTH} (default: 32)")
    g.add_argument("--overflow", choices=OVERFLOW_MODES,
                   help="accumulator overflow rule (default: wrap)")
    g.add_argument("--pipeline", action="store_true", default=None,
                   help="register each product before its adder")
    p.add_argument("--manifest", metavar="FILE.json",
                   help="check the design python -m hw.gen wrote beside this manifest")
    p.add_argument("--simulator", choices=(*SIMULATORS, "both"),
                   help="simulator(s) to run (default: both where installed)")
    p.add_argument("--random", type=integer(0, MAX_RANDOM), metavar="N",
                   help="corner pairs + N seeded random pairs instead of the default vectors; "
                        "arrays: N more random tiles")
    add_seed(p, default=1, help="seed of the random vectors and tiles, 0..2^63-1 (default 1)")
    add_json(p)
    p.add_argument("--waves", metavar="FILE",
                   help="dump waveforms to FILE.fst or FILE.vcd (two simulators: "
                        "FILE.<simulator>.fst)")
    p.add_argument("--build-dir", type=output_path, metavar="DIR",
                   help="keep the simulator builds in DIR (default: a temporary folder, "
                        "removed afterwards)")
    add_force(p)
    return p


# -- choosing what runs ---------------------------------------------------------------------------
def _simulators(choice: str | None) -> list[str]:
    from .tb.runner import why_unavailable

    wanted = list(SIMULATORS) if choice in (None, "both") else [choice]
    missing = {s: why_unavailable(s) for s in wanted if why_unavailable(s)}
    if choice is not None and missing:
        raise UsageError(f"--simulator {choice}: {next(iter(missing.values()))}")
    ready = [s for s in wanted if s not in missing]
    if not ready:
        raise UsageError("no simulator installed: " + "; ".join(missing.values()))
    for sim, reason in missing.items():
        print(f"python -m sim.rtlcheck: note: not checking on {sim}: {reason}", file=sys.stderr)
    return ready


def _wave_targets(path: str | None, simulators: list[str], force: bool) -> dict:
    from .tb.runner import why_no_waves

    if path is None:
        return {}
    target = Path(path)
    fmt = target.suffix.lower().lstrip(".")
    if fmt not in ("fst", "vcd"):
        raise UsageError(f"--waves {path}: give a .fst or .vcd file name")
    targets = {}
    for sim in simulators:
        reason = why_no_waves(sim, fmt)
        if reason:
            raise UsageError(f"--waves {path}: {reason}")
        out = target if len(simulators) == 1 else target.with_name(
            f"{target.stem}.{sim}{target.suffix}")
        targets[sim] = check_file(out, force=force, label=f"--waves {out}")
    return {"format": fmt, "paths": targets}


def _array_options_given(args) -> list[str]:
    return [f"--{name.replace('_', '-')}" for name in ARRAY_OPTIONS
            if getattr(args, name) is not None]


def _vectors_text(coverage: dict) -> str:
    return "; ".join(f"{w}-bit: {text}" for w, text in sorted(coverage.items()))


# -- multipliers ----------------------------------------------------------------------------------
def _run_multipliers(specs, labels, simulators, workdir, args, waves) -> list[dict]:
    runs = []
    for sim in simulators:
        report = check_multipliers(specs, simulator=sim, workdir=workdir,
                                   exhaustive=False if args.random is not None else None,
                                   random_pairs=100_000 if args.random is None else args.random,
                                   seed=args.seed, waves=waves.get("format") or False)
        # The testbench reports the multipliers by width, in the given order within a width;
        # its names are those of the specs re-parsed from canonical names (file names only).
        ordered = sorted(specs, key=lambda s: s.width)
        if len(ordered) != len(report["results"]):
            raise RuntimeError(f"{sim} reported {len(report['results'])} multipliers, "
                               f"not {len(ordered)}")
        names = {res["name"]: labels.get(spec, spec.full_name)
                 for spec, res in zip(ordered, report["results"])}
        rows = []
        for res in report["results"]:
            rows.append({"design": names[res["name"]], "simulator": sim,
                         "vectors": res["vectors"], "mismatches": res["mismatches"],
                         "errors": 0, "passed": res["mismatches"] == 0,
                         "vectors_per_second": report.get("vectors_per_second", 0.0)})
        failures = [dict(m, design=names.get(m["name"], m["name"]), simulator=sim,
                         expected=m["model"], got=m["rtl"])
                    for m in report.get("mismatches", [])]
        runs.append({"simulator": sim, "rows": rows, "failures": failures,
                     "errors": list(report.get("errors", [])),
                     "coverage": {str(k): v for k, v in report["coverage"].items()},
                     "waves": report.get("waves")})
    return runs


# -- arrays ---------------------------------------------------------------------------------------
def _array_scenarios(dataflow: str, extra_random: int | None) -> list[str]:
    from .arraycheck import SCENARIOS

    scenarios = list(SCENARIOS)
    for extra in (["window"] if dataflow == "ws" else []) + ["cycles"]:
        if extra not in scenarios:
            scenarios.append(extra)
    if extra_random:
        scenarios += ["random"] * math.ceil(extra_random / TILES_PER_RANDOM_RUN)
    return scenarios


def _run_array_harness(harness, labels, simulators, workdir, waves) -> list[dict]:
    from .arraycheck import run_harness

    runs = []
    for sim in simulators:
        report = run_harness(harness, sim, workdir, waves=waves.get("format") or False)
        mismatches, errors = report.get("mismatches", []), report.get("errors", [])
        rows, failures, unit_errors = [], [], []
        for unit in report.get("units", []):
            prefix = unit["prefix"]
            label = labels[prefix]
            mine = [m for m in mismatches if m.get("unit") == prefix]
            errs = [e for e in errors if e.split(" ", 1)[0].rstrip(":") == prefix]
            vectors = sum(r.get("vectors", 0) for r in unit.get("results", []))
            seconds = unit["cycles"] / unit["cycles_per_second"] \
                if unit.get("cycles_per_second") else 0.0
            rows.append({"design": label, "simulator": sim, "vectors": vectors,
                         "mismatches": len(mine), "errors": len(errs),
                         "passed": not mine and not errs,
                         "mismatches_capped": len(mismatches) >= ARRAY_REPORTED,
                         "vectors_per_second": vectors / seconds if seconds else 0.0,
                         "scenarios": unit.get("results", [])})
            failures += [dict(m, design=label, simulator=sim, expected=m["model"],
                              got=m["rtl"]) for m in mine]
            unit_errors += [f"{label} on {sim}: {e.split(' ', 1)[-1]}" for e in errs]
        known = {u["prefix"] for u in report.get("units", [])}
        unit_errors += [f"on {sim}: {e}" for e in errors
                        if e.split(" ", 1)[0].rstrip(":") not in known]
        if not rows:            # the testbench stopped before reporting its units
            rows = [{"design": label, "simulator": sim, "vectors": 0, "mismatches": 0,
                     "errors": len(errors), "passed": False, "vectors_per_second": 0.0}
                    for label in labels.values()]
        runs.append({"simulator": sim, "rows": rows, "failures": failures,
                     "errors": unit_errors, "waves": report.get("waves")})
    return runs


def _array_designs(args, names) -> tuple[list[dict], dict]:
    from hw.gen import GenError, default_top_name

    if args.rows is None:
        raise UsageError("--array needs --rows R (and optionally --cols C and the other "
                         "hw.gen array options)")
    names = names or ["exact"]
    designs, labels = [], {}
    for i, signed in enumerate(signedness_values(args)):
        design = dict(rows=args.rows, cols=args.cols, mult=list(names), mult_per=args.mult_per,
                      width=args.width or 8, signed=signed, dataflow=args.dataflow or "ws",
                      acc_width=32 if args.acc_width is None else args.acc_width,
                      overflow=args.overflow or "wrap", pipeline=bool(args.pipeline))
        if len(names) > 1 and args.mult_per not in ("row", "col"):
            raise GenError(f"--mult lists {len(names)} multipliers: add --mult-per row (one "
                           "per row, top to bottom) or --mult-per col (one per column, left to "
                           "right)")
        specs = [parse(n, width=design["width"], signed=signed) for n in names]
        labels[f"u{i}"] = default_top_name(design["dataflow"], args.rows,
                                           args.cols or args.rows, specs,
                                           args.mult_per if len(names) > 1 else "all")
        design["scenarios"] = _array_scenarios(design["dataflow"], args.random)
        designs.append(design)
    return designs, labels


# -- manifests ------------------------------------------------------------------------------------
def _regenerate(manifest_path: Path):
    """Load a manifest, regenerate its design; return (manifest, Verilog path, generated)."""
    from hw.gen import generate
    from hw.manifest import load_manifest

    manifest = load_manifest(manifest_path)
    arguments = manifest.get("arguments")
    verilog = manifest.get("verilog")
    if not isinstance(arguments, dict) or not isinstance(verilog, str) \
            or Path(verilog).name != verilog or verilog in ("", ".", ".."):
        raise ValueError(f"{manifest_path}: no generator arguments or Verilog file name in it")
    allowed = set(inspect.signature(generate).parameters) - {"progress", "check_outputs"}
    unknown = sorted(set(arguments) - allowed)
    if unknown:
        raise ValueError(f"{manifest_path}: unknown generator arguments {', '.join(unknown)}")
    try:
        generated = generate(**arguments)
    except (ValueError, TypeError, OSError) as exc:
        raise ValueError(f"cannot regenerate the design of {manifest_path}: "
                         f"{' '.join(str(exc).split())} (imported multiplier files are found "
                         "as hw.gen was given them: run from the same folder)") from None
    return manifest, manifest_path.parent / verilog, generated


def _first_difference(a: bytes, b: bytes) -> str:
    lines_a, lines_b = a.split(b"\n"), b.split(b"\n")
    for i, (x, y) in enumerate(zip(lines_a, lines_b), 1):
        if x != y:
            return f"line {i}"
    return f"line {min(len(lines_a), len(lines_b)) + (0 if len(lines_a) == len(lines_b) else 1)}"


def _manifest_check(manifest_path: Path) -> tuple[dict, Path, str | None]:
    """(manifest, Verilog path, problem or None): is the file what hw.gen writes?"""
    manifest, vfile, generated = _regenerate(manifest_path)
    try:
        on_disk = vfile.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {vfile}: {exc.strerror or exc}") from None
    expected = generated.verilog.encode("utf-8")
    if on_disk == expected:
        return manifest, vfile, None
    edited = hashlib.sha256(on_disk).hexdigest() != manifest.get("verilog_sha256")
    return manifest, vfile, (
        f"{vfile} differs from the Verilog that hw.gen generates from {manifest_path.name}'s "
        f"arguments (first at {_first_difference(on_disk, expected)}; "
        + ("the file was changed after hw.gen wrote it" if edited else
           "it matches the manifest's checksum, so this toolkit version generates other "
           "Verilog") + f"); regenerate it with: {manifest.get('command', 'python -m hw.gen')}")


def _manifest_harness(manifest: dict, vfile: Path, workdir: Path, args):
    """The generated array (or every array of a bank, through ``select``) in a harness."""
    from .arraycheck import Harness, harness_units, harness_verilog, unit_config

    parts = harness_units("u0", manifest)
    text = vfile.read_text(encoding="utf-8")
    verilog = text + "\n" + harness_verilog([(p, m) for p, m, _ in parts])
    key = hashlib.sha256(verilog.encode()).hexdigest()[:12]
    workdir.mkdir(parents=True, exist_ok=True)
    src = workdir / f"array_harness-{key}.v"
    src.write_text(verilog)
    units = [unit_config(p, m, _array_scenarios(m["array"]["dataflow"], args.random),
                         args.seed + 1000 * i) for i, (p, m, _) in enumerate(parts)]
    return Harness(src, units, key)


def _manifest_labels(manifest: dict) -> dict:
    """Report labels of the harness units of :func:`_manifest_harness`."""
    bank = manifest.get("bank")
    if bank is None:
        return {"u0": manifest["top"]}
    return {f"u0s{j}": f"{manifest['top']} select={j} ({a['multiplier']})"
            for j, a in enumerate(bank["arrays"])}


def _manifest_multiplier(manifest: dict, vfile: Path) -> MultiplierSpec:
    from hw.mult.verilog_import import VerilogSpec

    arguments = manifest["arguments"]
    return VerilogSpec(vfile, module=manifest["top"], model=arguments["mult"],
                       width=arguments["width"], signed=arguments["signed"])


# -- output ---------------------------------------------------------------------------------------
COLUMNS = (("design", "design"), ("simulator", "simulator"), ("vectors", "vectors"),
           ("mismatches", "mismatches"), ("errors", "errors"), ("result", "result"),
           ("vectors/s", "vectors_per_second"))


def _cell(row: dict, key: str) -> str:
    if key == "result":
        return "pass" if row["passed"] else "FAIL"
    if key == "vectors_per_second":
        value = row[key]
        return f"{value:.0f}" if value >= 100 else f"{value:.3g}" if value else "-"
    if key == "mismatches" and row.get("mismatches_capped") and row[key] >= ARRAY_REPORTED:
        return f"{row[key]}+"
    return str(row[key])


def format_table(rows: list[dict]) -> str:
    """The summary table: one line per design and simulator (numbers right-aligned)."""
    table = [[head for head, _ in COLUMNS]] + [[_cell(r, key) for _, key in COLUMNS]
                                               for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    left = {0, 1, 5}
    return "\n".join("  ".join(c.ljust(w) if i in left else c.rjust(w)
                               for i, (c, w) in enumerate(zip(line, widths))).rstrip()
                     for line in table)


def _failure_line(f: dict) -> str:
    where = f"{f['design']} on {f['simulator']}"
    if "a" in f:
        return (f"mismatch: {where}: a={f['a']} b={f['b']} expected {f['expected']} "
                f"got {f['got']}")
    return (f"mismatch: {where}: {f.get('scenario', '?')}, {f.get('where', '?')}: expected "
            f"{f['expected']} got {f['got']}")


# -- main -----------------------------------------------------------------------------------------
def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    names = list(args.names) + split_mults(args.mult or [])
    array_opts = _array_options_given(args)
    if args.manifest is not None:
        given = (["NAME/--mult"] if names else []) + (["--array"] if args.array else []) \
            + array_opts + (["--width"] if args.width is not None else []) \
            + (["--signed/--unsigned/--signedness"] if args.signedness else [])
        if given:
            raise UsageError(f"--manifest takes the design from the manifest: drop "
                             f"{', '.join(given)}")
    elif not args.array:
        if array_opts:
            raise UsageError(f"{', '.join(array_opts)}: array options, but no --array given")
        if not names:
            raise UsageError("give multiplier NAMEs (or --mult LIST), --array with the hw.gen "
                             "array options, or --manifest FILE.json")
    if args.json not in (None, "-"):
        check_file(args.json, force=args.force, label=f"--json {args.json}")
    if args.build_dir is not None:
        check_folder(args.build_dir, force=args.force, label=f"--build-dir {args.build_dir}")

    # Everything that can be refused is refused before any simulator runs.
    mode, manifest_info, specs, labels, designs = "multipliers", None, [], {}, None
    if args.manifest is not None:
        manifest, vfile, problem = _manifest_check(Path(args.manifest))
        mode = f"manifest:{manifest.get('kind')}"
        manifest_info = {"path": str(args.manifest), "verilog": str(vfile),
                         "top": manifest.get("top"), "identical": problem is None}
        if problem:
            print(f"python -m sim.rtlcheck: {problem}", file=sys.stderr)
            if args.json is not None:
                _emit_json(args, {"passed": False, "mode": mode, "manifest": manifest_info,
                                  "results": [], "failures": [], "errors": [problem]})
            return 1
        if manifest.get("kind") in ("array", "bank"):
            labels = _manifest_labels(manifest)
        elif manifest.get("kind") == "multiplier":
            specs = [_manifest_multiplier(manifest, vfile)]
            labels = {specs[0]: f"{manifest['top']} ({specs[0].reference.full_name})"}
        else:
            raise ValueError(f"{args.manifest}: unknown design kind {manifest.get('kind')!r}")
    elif args.array:
        mode = "array"
        designs, labels = _array_designs(args, names)
    else:
        names = list(dict.fromkeys(names))
        specs = [parse(n, width=args.width or 8, signed=s) for s in signedness_values(args)
                 for n in names]
    simulators = _simulators(args.simulator)
    waves = _wave_targets(args.waves, simulators, args.force)

    with tempfile.TemporaryDirectory(prefix="axm-rtlcheck-") as tmp:
        workdir = Path(args.build_dir) if args.build_dir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            if mode == "array":
                from .arraycheck import prepare_harness
                harness = prepare_harness(designs, workdir, seed=args.seed)
                runs = _run_array_harness(harness, labels, simulators, workdir, waves)
            elif mode in ("manifest:array", "manifest:bank"):
                harness = _manifest_harness(manifest, vfile, workdir, args)
                runs = _run_array_harness(harness, labels, simulators, workdir, waves)
            else:
                runs = _run_multipliers(specs, labels, simulators, workdir, args, waves)
        except TestbenchError as exc:         # its first line; the log stays in the build
            text = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
            if not args.build_dir:
                text += " (that folder is removed: rerun with --build-dir DIR to keep it)"
            raise TestbenchError(text) from None
        written = []
        for run in runs:
            if waves and run.get("waves"):
                target = waves["paths"][run["simulator"]]
                written.append(str(write_file(target, Path(run["waves"]).read_bytes(),
                                              force=args.force)))

    rows = [r for run in runs for r in run["rows"]]
    failures = [f for run in runs for f in run["failures"]]
    errors = [e for run in runs for e in run["errors"]]
    passed = bool(rows) and all(r["passed"] for r in rows) and not failures and not errors
    result = {"passed": passed, "mode": mode, "simulators": simulators, "seed": args.seed,
              "random": args.random, "results": rows, "failures": failures, "errors": errors,
              "waves": written}
    if manifest_info:
        result["manifest"] = manifest_info
    coverage = next((run["coverage"] for run in runs if "coverage" in run), None)
    if coverage:
        result["coverage"] = coverage
    if args.json != "-":
        print(format_table([{k: v for k, v in r.items() if k != "scenarios"} for r in rows]))
        if coverage:
            print(f"vectors: {_vectors_text(coverage)}")
        for path in written:
            print(f"waves: {path}")
    if args.json is not None:
        _emit_json(args, result)
    shown: dict = {}
    for f in failures:
        key = (f["design"], f["simulator"])
        shown[key] = shown.get(key, 0) + 1
        if shown[key] <= SHOWN_FAILURES:
            print(f"python -m sim.rtlcheck: {_failure_line(f)}", file=sys.stderr)
    for e in errors:
        print(f"python -m sim.rtlcheck: error: {e}", file=sys.stderr)
    return 0 if passed else 1


def _emit_json(args, result: dict) -> None:
    text = json.dumps(result, indent=1, default=int)
    if args.json == "-":
        print(text)
    else:
        write_file(args.json, text + "\n", force=args.force)


def main(argv=None) -> int:
    """``python -m sim.rtlcheck``; returns the exit status."""
    return run_main("python -m sim.rtlcheck", _main, argv)


if __name__ == "__main__":
    sys.exit(main())
