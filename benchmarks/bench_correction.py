"""Accuracy recovery (issue 13): DNN accuracy with no correction, bias and control variate, and
what the correction costs in hardware.

1. ``accuracy``: digits-cnn (``--model``: another digits network) on the whole digits test
   set for each multiplier, ``--correction none bias cv`` (sim.dnn.evaluate with the
   predictor): top-1 accuracy with its 95 % Wilson
   interval, the drop against int8-exact with its 95 % paired interval, and the predicted
   (residual moments after the correction, sim.correction.residual_moments) vs measured total
   relative distortion.
2. ``cost``: Yosys synthesis (hw.cost.synthesize, cached; ``--targets ice40 gate``) of
   ``rows x cols`` ws arrays: exact, and each ``--mult`` with no correction, bias and cv. A 16x16
   array takes 3-26 minutes per synthesis with the WebAssembly Yosys.

    python benchmarks/bench_correction.py accuracy --json out/corr_acc.json
    python benchmarks/bench_correction.py accuracy --model digits-resnet20 --json out/r20.json
    python benchmarks/bench_correction.py cost --mult bam2_6 perforated3 --targets ice40 \
        --json out/corr_cost.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MULTS = ["truncated7", "truncated8", "truncated9c", "perforated1", "perforated2",
         "perforated3", "bam2_6", "bam2_8", "drum3", "etm4"]


def _network(model):
    """``(graph, dataset)``: a built-in sim.dnn model, or a torch-trained digits network."""
    from sim.dnn.data import load_dataset
    from sim.dnn.models import MODELS, load_model

    if model in MODELS:
        return load_model(model), load_dataset("digits")
    from sim.nn.models import digits_network
    return digits_network(model, load_dataset("digits"))


def accuracy(mults, limit=None, model="digits-cnn"):
    from sim.dnn.evaluate import evaluate

    graph, data = _network(model)
    data = data.limited(limit)
    t0 = time.perf_counter()
    res = evaluate(graph, data, mults, predict=True, corrections=("none", "bias", "cv"))
    rows = []
    for c in res["configs"]:
        rows.append({"config": c["label"], "accuracy": c["accuracy"],
                     "ci95": [c["ci95_low"], c["ci95_high"]], "drop_pp": c["drop_pp"],
                     "drop_ci95": [c.get("drop_ci95_low_pp"), c.get("drop_ci95_high_pp")],
                     "mcnemar_p": c.get("mcnemar_p"),
                     "measured_total_relative": c["measured_total_relative"],
                     "pred_total_relative_weighted": c["pred_total_relative_weighted"],
                     "layers": {l: {"measured": d["measured_norm"],
                                    "predicted": d.get("pred_weighted", {}).get("norm")}
                                for l, d in c["layers"].items()}})
    return {"model": res["model"], "test_images": res["test_images"],
            "int8": res["int8"], "seconds": time.perf_counter() - t0, "rows": rows}


def _design(spec, rows, cols, mode):
    """``(hw.cost design, CorrectionFormat or None)`` of a ws array with ``mode``."""
    from hw.cost import array
    from sim.correction import default_format

    fmt = default_format(mode, spec, rows=rows)
    return array(spec, rows, cols, correction=mode), fmt


def cost(mults, rows, cols, targets):
    """Synthesise exact (none) and each multiplier with none, bias and cv."""
    from hw.cost import synthesize
    from hw.mult import parse

    result = {"rows": rows, "cols": cols, "targets": targets, "arrays": {}}
    for name in ["exact"] + mults:
        spec = parse(name)
        modes = ("none",) if name == "exact" else ("none", "bias", "cv")
        result["arrays"][name] = {}
        for mode in modes:
            design, fmt = _design(spec, rows, cols, mode)
            entry = {"format": None if fmt is None else fmt.hardware}
            for target in targets:
                t0 = time.perf_counter()
                res = synthesize(design, target, timeout=7200)
                entry[target] = {"lut4": res.lut4, "carry": res.carry, "ff": res.ff,
                                 "gate_area": res.gate_area, "cached": res.cached,
                                 "seconds": round(time.perf_counter() - t0, 1)}
            result["arrays"][name][mode] = entry
            print(name, mode, entry, file=sys.stderr, flush=True)
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("accuracy", "cost"))
    p.add_argument("--mult", nargs="+", default=MULTS)
    p.add_argument("--limit", type=int)
    p.add_argument("--model", default="digits-cnn",
                   help="digits-cnn (default), digits-mlp or a torch digits network "
                        "(digits-resnet20, digits-resnet18, digits-mobilenetv2)")
    p.add_argument("--rows", type=int, default=16)
    p.add_argument("--cols", type=int, default=16)
    p.add_argument("--targets", nargs="+", default=["ice40", "gate"])
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    if args.what == "accuracy":
        out = accuracy(args.mult, args.limit, args.model)
    else:
        out = cost(args.mult, args.rows, args.cols, args.targets)
    text = json.dumps(out, indent=1)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
