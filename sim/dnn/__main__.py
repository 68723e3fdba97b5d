"""CLI: accuracy of a quantised network on the emulated approximate accelerator.

See ``python -m sim.dnn --help``.
"""

from __future__ import annotations

import json
import math
import sys
import textwrap
from pathlib import Path

from hw.cli import (CONVENTIONS, Parser, UsageError, add_force, add_signedness, integer, number,
                    output_path, run_main, signedness_values, split_mults)
from hw.outputs import check_file, check_folder, write_file

from .data import load_dataset
from .evaluate import DEFAULT_MULTS, evaluate, parse_config
from .models import MODELS, load_model
from .report import format_tables, report_names, write_report

EPILOG = f"""\
examples:
  python -m sim.dnn --model digits-cnn --mult exact truncated4 drum6
  python -m sim.dnn --model digits-cnn --report out/         # default list, predictor, plots
  python -m sim.dnn --model digits-mlp --mult "fc1=exact,*=drum4" --json -
  python -m sim.dnn --onnx net.onnx --dataset mnist:/data/mnist --limit 2000 --mult mitchell
  python -m sim.dnn --onnx cifar.onnx --dataset cifar10:/data/cifar-10-batches-py \\
      --mean 0.49 0.48 0.45 --std 0.25 0.24 0.26 --mult drum5

configurations (--mult): a multiplier name (8-bit, signed unless --unsigned; every GEMM layer;
grammar in `python -m sim.characterize --help`), or LAYER=NAME,...[,*=NAME] for a per-layer
assignment (unlisted layers exact; layers of digits-cnn: conv1 conv2 conv3 fc, of digits-mlp:
fc1 fc2 fc3, of an ONNX model: its node names). Without --mult:
{textwrap.fill(' '.join(DEFAULT_MULTS), 90, initial_indent='  ', subsequent_indent='  ')}

distortion: ||E||_F of each GEMM layer's accumulators against int8-exact, the layer fed the
int8-exact inputs. --predict adds E||E||^2 = M N (K s^2 + K^2 mu^2) from the multiplier's error
moments (uniform, and weighted by the layer's operand histograms), bias/variance shares, and the
Spearman correlation of the predicted total relative distortion with the accuracy drop.

datasets: digits (scikit-learn, bundled), mnist:DIR (IDX files), cifar10:DIR (python batches).
Nothing is downloaded. Built-in models: {', '.join(MODELS)}.
"""


def build_parser() -> Parser:
    p = Parser(prog="python -m sim.dnn",
               description="Top-1 accuracy of an int8-quantised network (float, int8-exact and "
                           "each approximate multiplier) on the bit-exact emulated "
                           "accelerator, per-layer distortion, and the analytical error "
                           "predictor (--predict / --report).",
               epilog=EPILOG + "\n" + CONVENTIONS)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", help=f"built-in model ({', '.join(MODELS)}; default digits-cnn)")
    src.add_argument("--onnx", metavar="PATH", help="float ONNX model to import")
    p.add_argument("--dataset", default="digits",
                   help="digits | mnist:DIR | cifar10:DIR (default digits)")
    p.add_argument("--mult", action="extend", nargs="+", metavar="CONFIG",
                   help="configurations: NAME[,NAME...] (NAME*K repeats), each one evaluated, "
                        "or LAYER=NAME,... for one per-layer configuration (see below)")
    p.add_argument("--correction", nargs="+", choices=("none", "bias", "cv"), metavar="MODE",
                   help="evaluate every configuration with each accuracy-recovery mode: none, "
                        "bias, cv (approximate layers on a 16-deep ws array with that "
                        "correction, constants fitted to calibration activations; labels "
                        "NAME+bias, NAME+cv; docs/correction.md). Default: none")
    p.add_argument("--predict", action="store_true",
                   help="add the analytical predictor, its per-layer error and the Spearman "
                        "correlation with the accuracy drop")
    p.add_argument("--report", metavar="DIR", type=output_path,
                   help="write results.json, table.txt and plots to DIR (implies --predict)")
    p.add_argument("--json", nargs="?", const="-", metavar="PATH",
                   help="the results as JSON on stdout, or written to PATH")
    add_force(p)
    p.add_argument("--limit", type=integer(1, 10 ** 9), metavar="N",
                   help="evaluate the first N test images")
    p.add_argument("--calib", type=integer(1, 10 ** 9), default=1000, metavar="N",
                   help="calibration images for mnist/cifar10 (default 1000)")
    p.add_argument("--mean", type=number(-1e6, 1e6), nargs="+",
                   help="per-channel input mean to subtract")
    p.add_argument("--std", type=number(0, 1e6, lo_open=True), nargs="+",
                   help="per-channel input std to divide by (> 0)")
    p.add_argument("--acc-width", type=integer(16, 63), default=32,
                   help="accumulator bits, 16..63 (default 32)")
    p.add_argument("--overflow", choices=("wrap", "saturate"), default="wrap",
                   help="accumulator overflow mode (default wrap)")
    add_signedness(p)
    p.add_argument("--activations", choices=("sym", "asym"), default="sym",
                   help="activation quantisation: sym (int8, zero point 0; default) or asym "
                        "(uint8 with a zero point); how the multiplier sees the operands: "
                        "sim/dnn/quant.py, docs/nn.md")
    p.add_argument("--batch", type=integer(1, 1 << 20), default=2048,
                   help="images per batch (default 2048)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def config_texts(values) -> list[str]:
    """``--mult`` values as configuration texts: a value with ``=`` is one per-layer
    configuration; any other value is a multiplier list (the shared grammar)."""
    texts = []
    for value in values:
        texts.extend([value.strip()] if "=" in value else split_mults(value))
    return texts


def _clean(x):
    """JSON-safe copy: NaN/inf -> None."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    return x


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    if (args.mean is None) != (args.std is None):
        raise UsageError("--mean and --std go together")
    if args.mean is not None and len(args.mean) != len(args.std):
        raise UsageError(f"--mean has {len(args.mean)} values but --std has {len(args.std)}")
    if args.json not in (None, "-"):
        check_file(args.json, force=args.force, label=f"--json {args.json}")
    if args.report is not None:
        check_folder(args.report, force=True, label=f"--report {args.report}")
        for name in report_names():
            check_file(Path(args.report) / name, force=args.force)
    predict = args.predict or args.report is not None
    configs = [parse_config(c) for c in config_texts(args.mult or DEFAULT_MULTS)]
    graph = load_model(args.model or "digits-cnn") if args.onnx is None else None
    if args.onnx is not None:
        from .onnx_import import load_onnx
        graph = load_onnx(args.onnx)
    data = load_dataset(args.dataset, calib=args.calib).limited(args.limit)
    if args.mean is not None:
        data = data.normalized(args.mean, args.std)
    res = evaluate(graph, data, configs, acc_width=args.acc_width, overflow=args.overflow,
                   predict=predict, batch=args.batch, progress=not args.no_progress,
                   signed=signedness_values(args)[0], activations=args.activations,
                   corrections=tuple(dict.fromkeys(args.correction or ["none"])))
    res = _clean(res)
    text = json.dumps(res, indent=2)
    if args.json == "-":
        print(text)
    else:
        print(format_tables(res), end="")
    if args.json not in (None, "-"):
        write_file(args.json, text + "\n", force=args.force)
    if args.report is not None:
        for path in write_report(res, Path(args.report), force=args.force):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    """``python -m sim.dnn``; returns the exit status."""
    return run_main("python -m sim.dnn", _main, argv)


if __name__ == "__main__":
    sys.exit(main())
