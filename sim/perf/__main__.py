"""CLI: cycles, utilisation, memory traffic and energy of a whole network on the generated array.

See ``python -m sim.perf --help``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hw.cli import (CONVENTIONS, Parser, UsageError, add_cache, add_force, add_seed,
                    add_signedness, apply_cache, integer, number, output_path, run_main,
                    signedness_values, split_mults)
from hw.mult import MAX_WIDTH, MIN_WIDTH
from hw.outputs import check_file, write_files

from .energy import DEFAULTS, TRACES, EnergyConfig, load_energy_config, with_clock
from .errors import PerfError
from .memory import Buffers
from .schedule import DATAFLOWS, MAX_SIDE, SCHEDULES, ArraySpec
from .workload import BUILTIN, builtin_layers, read_scalesim_config, read_topology

EPILOG = f"""\
examples:
  python -m sim.perf --model resnet50 --rows 16 --dataflow ws
  python -m sim.perf --model digits-cnn --rows 8 --mult exact,truncated4,drum5 --plot perf.png
  python -m sim.perf --config scale.cfg --topology alexnet.csv --schedule scalesim --no-energy
  python -m sim.perf --manifest out/axm_ws_16x16_truncated4_8s.json --model mobilenet-v1 \\
      --csv layers.csv --json report.json

workloads: --model NAME (sim.dnn models digits-cnn, digits-mlp with weights; shape-only
built-ins {', '.join(BUILTIN)}), --onnx FILE (a float ONNX model, via sim.dnn), --topology FILE
(SCALE-Sim topology CSV: the convolution form or 'Layer, M, N, K,'). Conv layers are mapped by
im2col (stride, padding, dilation, groups; depthwise = one GEMM per channel).

array: --rows/--cols/--dataflow/--pipeline, or a SCALE-Sim .cfg (--config: ArrayHeight,
ArrayWidth, Dataflow, SRAM sizes), or an hw.gen manifest (--manifest: shape, dataflow, pipeline,
multiplier, width, signedness, accumulator). Explicit options override the files.

schedules: 'array' is the generated array's real overlapped host-protocol schedule (weight
double buffering, os drain overlap), equal to the RTL cycle counts; '--schedule scalesim' adds
SCALE-Sim v2's stall-free compute cycles and utilisation (folds not overlapped) beside it.

energy: multiplier from a gate-level switching proxy (Yosys gate netlist, unit-delay numpy
simulation, operand traces shaped by the dataflow: --trace network uses int8 DNN operands
(digits-cnn's for shape-only workloads), uniform random ones otherwise); adder, registers,
leakage, SRAM and DRAM from 45 nm constants (Horowitz, ISSCC 2014), overridable with
--energy-config FILE.toml ([energy] keys: {', '.join(k for k in DEFAULTS if k != 'clock_mhz')};
[clock] mhz). --no-energy: cycles and traffic only (no Yosys). Details: docs/perf.md.
"""


def build_parser() -> Parser:
    p = Parser(prog="python -m sim.perf",
               description="Performance and energy model of a whole DNN on the generated "
                           "systolic array: per-layer cycles, folds, PE utilisation, SRAM/DRAM "
                           "traffic and energy, and network totals.",
               epilog=EPILOG + "\n" + CONVENTIONS)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", metavar="NAME",
                     help="built-in network (default digits-cnn; see below)")
    src.add_argument("--onnx", metavar="FILE", help="float ONNX model")
    src.add_argument("--topology", metavar="FILE", help="SCALE-Sim topology CSV")
    p.add_argument("--batch", type=integer(1, 1 << 16), default=None, metavar="B",
                   help="images per inference (default 1; --model/--onnx only)")
    p.add_argument("--config", metavar="FILE", help="SCALE-Sim .cfg (array and SRAM sizes)")
    p.add_argument("--manifest", metavar="FILE", help="hw.gen manifest of the array")
    p.add_argument("--rows", type=integer(1, MAX_SIDE), metavar="R",
                   help="PE rows (default 16)")
    p.add_argument("--cols", type=integer(1, MAX_SIDE), metavar="C",
                   help="PE columns (default: rows)")
    p.add_argument("--dataflow", choices=DATAFLOWS, help="ws (default) or os")
    p.add_argument("--pipeline", action="store_true", default=None,
                   help="products registered before the adder (+1 cycle latency)")
    p.add_argument("--schedule", choices=SCHEDULES, default="array",
                   help="array (default) or scalesim (adds SCALE-Sim v2's figures)")
    p.add_argument("--sram-kb", type=number(0, 1 << 30, lo_open=True), nargs=3,
                   metavar=("IFMAP", "FILTER", "OFMAP"),
                   help="SRAM sizes in KiB (default: the .cfg's, else 256 256 128)")
    p.add_argument("--mult", action="extend", nargs="+", metavar="LIST",
                   help="multiplier(s) NAME[,NAME...] (default exact; the first one's energy "
                        "is shown per layer, every one in the summary)")
    p.add_argument("--width", type=integer(MIN_WIDTH, MAX_WIDTH), default=None, metavar="N",
                   help=f"operand width in bits, {MIN_WIDTH}..{MAX_WIDTH} (default 8)")
    add_signedness(p)
    p.add_argument("--acc-width", type=integer(2, 64), default=None, metavar="A",
                   help="accumulator width (default 32)")
    p.add_argument("--trace", choices=TRACES, default=None,
                   help="multiplier operand trace: network (default for 8-bit signed) or "
                        "uniform")
    p.add_argument("--delay", choices=("unit", "zero"), default="unit",
                   help="gate timing of the power proxy: unit (glitches counted, default) or "
                        "zero")
    p.add_argument("--energy-config", metavar="FILE.toml", help="energy constants to override")
    p.add_argument("--clock-mhz", type=number(0, 1e6, lo_open=True), metavar="F",
                   help=f"clock for time, power and leakage (default {DEFAULTS['clock_mhz']:g})")
    p.add_argument("--no-energy", action="store_true",
                   help="cycles and memory traffic only (no Yosys run)")
    p.add_argument("--json", nargs="?", const="-", metavar="PATH",
                   help="the report as JSON on stdout, or written to PATH")
    p.add_argument("--csv", type=output_path, metavar="PATH", help="per-layer table as CSV")
    p.add_argument("--plot", type=output_path, metavar="PATH",
                   help="per-layer cycles and energy plot (.png, .svg or .pdf)")
    add_force(p)
    add_seed(p)
    add_cache(p)
    return p


def _manifest_target(path) -> dict:
    from hw.manifest import load_manifest

    m = load_manifest(path)
    arr = m.get("array")
    if m.get("kind") != "array" or not isinstance(arr, dict):
        raise PerfError(f"{path} is the manifest of a {m.get('kind')!r}, not of an array")
    try:
        return {"rows": int(arr["rows"]), "cols": int(arr["cols"]),
                "dataflow": arr["dataflow"], "pipeline": bool(arr["pipeline"]),
                "correction": bool(arr.get("correction")),
                "width": int(arr["operand_width"]), "signed": bool(arr["signed"]),
                "acc_width": int(arr["acc_width"]), "overflow": arr["overflow"],
                "mult": list(arr["multiplier_names"])}
    except (KeyError, TypeError, ValueError) as exc:
        raise PerfError(f"manifest {path} lacks array field {exc}") from None


def _workload(args):
    """``(layers, name, operands or None, trace label)``."""
    from sim.dnn.models import MODELS

    if args.topology is not None:
        if args.batch is not None:
            raise UsageError("--batch applies to --model/--onnx (SCALE-Sim topologies are "
                             "batch 1)")
        return read_topology(args.topology), Path(args.topology).stem, None
    batch = args.batch or 1
    if args.onnx is not None:
        from sim.dnn.onnx_import import load_onnx

        from .workload import layers_from_graph
        graph = load_onnx(args.onnx)
        return layers_from_graph(graph, batch=batch), graph.name, None
    name = args.model or "digits-cnn"
    if name in MODELS:
        from sim.dnn.models import load_model

        from .workload import layers_from_graph
        return layers_from_graph(load_model(name), batch=batch), name, name
    if name in BUILTIN:
        return builtin_layers(name, batch), name, None
    raise PerfError(f"unknown model {name!r}; known: {', '.join(list(MODELS) + list(BUILTIN))}")


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    cache_on = apply_cache(args)
    for label, path in (("--json", args.json if args.json != "-" else None),
                        ("--csv", args.csv), ("--plot", args.plot)):
        if path is not None:
            check_file(path, force=args.force, label=f"{label} {path}")
    fmt = None
    if args.plot is not None:
        fmt = Path(args.plot).suffix.lower().lstrip(".")
        if fmt not in ("png", "svg", "pdf"):
            raise UsageError(f"--plot {args.plot}: the file name must end in .png, .svg or "
                             ".pdf")
    energy_cfg = load_energy_config(args.energy_config) if args.energy_config else EnergyConfig()
    energy_cfg = with_clock(energy_cfg, args.clock_mhz)
    base = {"rows": 16, "cols": None, "dataflow": "ws", "pipeline": False, "correction": False,
            "width": 8, "signed": True, "acc_width": 32, "overflow": "wrap", "mult": ["exact"]}
    sram = None
    if args.manifest is not None:
        base.update(_manifest_target(args.manifest))
    if args.config is not None:
        cfg = read_scalesim_config(args.config)
        base.update(rows=cfg.rows, cols=cfg.cols, dataflow=cfg.dataflow)
        sram = (cfg.ifmap_sram_kb, cfg.filter_sram_kb, cfg.ofmap_sram_kb)
    if args.sram_kb is not None:
        sram = tuple(args.sram_kb)
    rows = args.rows or base["rows"]
    cols = args.cols or (base["cols"] if args.rows is None and base["cols"] else rows)
    signed = base["signed"] if args.signedness is None else signedness_values(args)[0]
    width = args.width or base["width"]
    mults = split_mults(args.mult) if args.mult else base["mult"]
    array = ArraySpec(rows, cols, args.dataflow or base["dataflow"],
                      base["pipeline"] if args.pipeline is None else True, base["correction"])
    acc = args.acc_width or base["acc_width"]
    if acc < 2 * width:
        raise UsageError(f"--acc-width {acc} is narrower than the {2 * width}-bit product")
    kb = dict(zip(("ifmap_kb", "filter_kb", "ofmap_kb"), sram)) if sram else {}
    buffers = Buffers(**kb, operand_bytes=-(-width // 8), psum_bytes=-(-acc // 8),
                      out_bytes=-(-width // 8))
    from .model import Target, evaluate
    target = Target(array, buffers, width, signed, acc, base["overflow"])
    layers, name, own = _workload(args)
    energy = not args.no_energy
    operands, label = None, None
    trace = args.trace or ("network" if (width, signed) == (8, True) else "uniform")
    if energy:
        from hw.mult import parse
        for m in dict.fromkeys(mults):          # names checked before the slow part
            parse(m, width=width, signed=signed)
        if trace == "network":
            from .energy import network_operands
            source = own or "digits-cnn"
            operands = network_operands(source, seed=0)
            label = f"network ({source} operands{'' if own else ', stand-in'})"
    from hw.cache import Cache
    report = evaluate(layers, target, mults=mults, energy=energy, energy_cfg=energy_cfg,
                      trace=trace, operands=operands, trace_label=label, delay=args.delay,
                      scalesim=args.schedule == "scalesim",
                      cache=Cache(enabled=cache_on), seed=args.seed, name=name)
    from .report import csv_text, json_text, plot_bytes, text_table
    outputs = {}
    if args.json not in (None, "-"):
        outputs[args.json] = json_text(report)
    if args.csv is not None:
        outputs[args.csv] = csv_text(report)
    if args.plot is not None:
        outputs[args.plot] = plot_bytes(report, fmt)
    if args.json == "-":
        print(json_text(report), end="")
    else:
        print(text_table(report), end="")
    if outputs:
        for path in write_files({Path(k): v for k, v in outputs.items()}, force=args.force):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    """``python -m sim.perf``; returns the exit status."""
    return run_main("python -m sim.perf", _main, argv)


if __name__ == "__main__":
    sys.exit(main())
