"""CLI: accuracy of a quantised network on the emulated approximate accelerator.

See ``python -m sim.dnn --help``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
from pathlib import Path

from hw.mult import MultiplierError

from .data import load_dataset
from .errors import DnnError
from .evaluate import DEFAULT_MULTS, evaluate, parse_config
from .models import MODELS, load_model
from .report import atomic_write, format_tables, write_report

EPILOG = f"""\
examples:
  python -m sim.dnn --model digits-cnn --mult exact truncated4 drum6
  python -m sim.dnn --model digits-cnn --report out/         # default list, predictor, plots
  python -m sim.dnn --model digits-mlp --mult "fc1=exact,*=drum4" --json -
  python -m sim.dnn --onnx net.onnx --dataset mnist:/data/mnist --limit 2000 --mult mitchell
  python -m sim.dnn --onnx cifar.onnx --dataset cifar10:/data/cifar-10-batches-py \\
      --mean 0.49 0.48 0.45 --std 0.25 0.24 0.26 --mult drum5

configurations (--mult): a multiplier name (8-bit signed, every GEMM layer; grammar in
`python -m sim.characterize --help`), or LAYER=NAME,...[,*=NAME] for a per-layer assignment
(unlisted layers exact; layers of digits-cnn: conv1 conv2 conv3 fc, of digits-mlp: fc1 fc2
fc3, of an ONNX model: its node names). Without --mult:
{textwrap.fill(' '.join(DEFAULT_MULTS), 90, initial_indent='  ', subsequent_indent='  ')}

distortion: ||E||_F of each GEMM layer's accumulators against int8-exact, the layer fed the
int8-exact inputs. --predict adds E||E||^2 = M N (K s^2 + K^2 mu^2) from the multiplier's error
moments (uniform, and weighted by the layer's operand histograms), bias/variance shares, and the
Spearman correlation of the predicted total relative distortion with the accuracy drop.

datasets: digits (scikit-learn, bundled), mnist:DIR (IDX files), cifar10:DIR (python batches).
Nothing is downloaded. Built-in models: {', '.join(MODELS)}.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m sim.dnn", formatter_class=argparse.RawDescriptionHelpFormatter,
                description="Top-1 accuracy of an int8-quantised network (float, int8-exact and "
                            "each approximate multiplier) on the bit-exact emulated "
                            "accelerator, per-layer distortion, and the analytical error "
                            "predictor (--predict / --report).",
                epilog=EPILOG)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", help=f"built-in model ({', '.join(MODELS)}; default digits-cnn)")
    src.add_argument("--onnx", metavar="PATH", help="float ONNX model to import")
    p.add_argument("--dataset", default="digits",
                   help="digits | mnist:DIR | cifar10:DIR (default digits)")
    p.add_argument("--mult", nargs="+", metavar="CONFIG", help="configurations (see below)")
    p.add_argument("--predict", action="store_true",
                   help="add the analytical predictor, its per-layer error and the Spearman "
                        "correlation with the accuracy drop")
    p.add_argument("--report", metavar="DIR",
                   help="write results.json, table.txt and plots to DIR (implies --predict)")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON ('-' = stdout)")
    p.add_argument("--limit", type=int, metavar="N", help="evaluate the first N test images")
    p.add_argument("--calib", type=int, default=1000, metavar="N",
                   help="calibration images for mnist/cifar10 (default 1000)")
    p.add_argument("--mean", type=float, nargs="+", help="per-channel input mean to subtract")
    p.add_argument("--std", type=float, nargs="+", help="per-channel input std to divide by")
    p.add_argument("--acc-width", type=int, default=32, help="accumulator bits (default 32)")
    p.add_argument("--overflow", choices=("wrap", "saturate"), default="wrap",
                   help="accumulator overflow mode (default wrap)")
    p.add_argument("--batch", type=int, default=2048, help="images per batch (default 2048)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _clean(x):
    """JSON-safe copy: NaN/inf -> None."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    return x


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for label, value, lo in (("--limit", args.limit, 1), ("--calib", args.calib, 1),
                             ("--batch", args.batch, 1), ("--acc-width", args.acc_width, 16)):
        if value is not None and value < lo:
            parser.error(f"{label} must be at least {lo}, not {value}")
    if args.acc_width > 63:
        parser.error(f"--acc-width must be at most 63, not {args.acc_width}")
    if (args.mean is None) != (args.std is None):
        parser.error("--mean and --std go together")
    if args.json not in (None, "-") and not Path(args.json).resolve().parent.is_dir():
        parser.error(f"--json: directory of {args.json} does not exist")
    if args.report is not None and Path(args.report).exists() and not Path(args.report).is_dir():
        parser.error(f"--report: {args.report} exists and is not a directory")
    predict = args.predict or args.report is not None
    try:
        configs = [parse_config(c) for c in (args.mult or DEFAULT_MULTS)]
        graph = load_model(args.model or "digits-cnn") if args.onnx is None else None
        if args.onnx is not None:
            from .onnx_import import load_onnx
            graph = load_onnx(args.onnx)
        data = load_dataset(args.dataset, calib=args.calib).limited(args.limit)
        if args.mean is not None:
            data = data.normalized(args.mean, args.std)
        res = evaluate(graph, data, configs, acc_width=args.acc_width, overflow=args.overflow,
                       predict=predict, batch=args.batch,
                       progress=not args.no_progress and sys.stderr.isatty())
    except (DnnError, MultiplierError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    res = _clean(res)
    text = json.dumps(res, indent=2)
    if args.json == "-":
        print(text)
    else:
        print(format_tables(res), end="")
    try:
        if args.json not in (None, "-"):
            atomic_write(Path(args.json), text + "\n")
        if args.report is not None:
            for path in write_report(res, Path(args.report)):
                print(f"wrote {path}", file=sys.stderr)
    except OSError as exc:
        print(f"error: cannot write output: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
