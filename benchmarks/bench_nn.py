"""Images/s of the emulated ResNet-20 (the PyTorch front end, :mod:`sim.nn`) beside torch's own
float inference of the same model in the same run.

For every multiplier (default: ``exact``; ``truncated4``, a decomposable family that runs as a
few exact integer GEMMs; ``mitchell``, a table-only family) it builds the emulated-accelerator
twin (:func:`sim.nn.approximate`, calibrated on held-out images, 8-bit signed, sym activations,
32-bit wrap accumulators, numpy back end = :mod:`sim.dnn`'s engine) and times, in interleaved
repetitions (float, twin, float, twin, ...; both see the same machine load), the float32 torch
forward of the model and the twin's forward over the same images in batches. The table gives
medians over the repetitions, the spread (slowest-fastest repetition) and the ratio
``t(torch float) / t(twin)``. Correctness: the twin's logits equal :mod:`sim.dnn`'s engine
(``twin.quantized().run``) on the first batch, and for the digits model the top-1 accuracy of
every configuration is printed.

Models: ``digits-resnet20`` (ResNet-20 width 0.5 trained on digits by
``scripts/train_torch_digits.py``, the 540 test images, 1x8x8) or ``resnet20`` (ResNet-20
width 1, random weights, seed 0, ``--images`` random 3x32x32 inputs).

    python benchmarks/bench_nn.py                                   # digits-resnet20, 2 threads
    python benchmarks/bench_nn.py --model resnet20 --images 64 --reps 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from sim import kernels  # noqa: E402
from sim.dnn.data import load_digits_split  # noqa: E402
from sim.nn import approximate  # noqa: E402
from sim.nn.models import digits_input, load_torch, resnet20  # noqa: E402


def _data(model: str, images: int):
    """``(float model, calibration images, test images, labels or None)``."""
    if model == "digits-resnet20":
        d = load_digits_split()
        x_test = digits_input(model, d.x_test)[:images or None]
        return (load_torch(model), digits_input(model, d.x_calib).astype(np.float32),
                x_test.astype(np.float32), d.y_test[:len(x_test)])
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    return (resnet20().eval(), rng.random((32, 3, 32, 32), dtype=np.float32),
            rng.random((images or 64, 3, 32, 32), dtype=np.float32), None)


def _batches(x, batch):
    return [torch.as_tensor(x[i:i + batch]) for i in range(0, len(x), batch)]


def run(model_name="digits-resnet20", mults=("exact", "truncated4", "mitchell"), images=0,
        batch=64, reps=3, threads=2):
    torch.set_num_threads(threads)
    kernels.set_threads(threads)
    model, x_cal, x_test, y = _data(model_name, images)
    xs = _batches(x_test, batch)
    n = len(x_test)

    def float_pass():
        with torch.no_grad():
            return torch.cat([model(b) for b in xs])

    float_pass()                                    # warm-up (allocator, thread pool)
    f_acc = None if y is None else float((float_pass().argmax(1).numpy() == y).mean())
    rows = []
    for mult in mults:
        twin = approximate(model, mult, torch.as_tensor(x_cal), backend="numpy")

        def twin_pass():
            with torch.no_grad():
                return torch.cat([twin(b) for b in xs])

        first = twin(xs[0]).detach().numpy()
        engine = twin.quantized().run(xs[0].numpy().astype(np.float64), mult)
        assert np.array_equal(first, engine), f"{mult}: twin and sim.dnn engine differ"
        t_f, t_e = [], []
        logits = None
        for _ in range(reps):
            t0 = time.perf_counter()
            float_pass()
            t_f.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            logits = twin_pass()
            t_e.append(time.perf_counter() - t0)
        row = {"model": model_name, "images": n, "batch": batch, "threads": threads,
               "mult": mult, "images_per_s": n / float(np.median(t_e)),
               "spread": [n / max(t_e), n / min(t_e)],
               "float_images_per_s": n / float(np.median(t_f)),
               "ratio": float(np.median(t_f)) / float(np.median(t_e))}
        if y is not None:
            row["accuracy"] = float((logits.argmax(1).numpy() == y).mean())
            row["float_accuracy"] = f_acc
        rows.append(row)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["digits-resnet20", "resnet20"], default="digits-resnet20")
    ap.add_argument("--mult", nargs="+", default=["exact", "truncated4", "mitchell"])
    ap.add_argument("--images", type=int, default=0,
                    help="images (digits: first N test images, default all 540; resnet20: "
                         "random inputs, default 64)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions (default 3)")
    ap.add_argument("--threads", type=int, default=2,
                    help="torch and emulator threads (default 2)")
    ap.add_argument("--json", help="write the rows as JSON to this path")
    args = ap.parse_args(argv)
    rows = run(args.model, args.mult, args.images, args.batch, args.reps, args.threads)
    r0 = rows[0]
    print(f"{r0['model']}: {r0['images']} images, batch {r0['batch']}, {r0['threads']} threads, "
          f"medians of {args.reps} interleaved repetitions; ratio = t(torch float) / t(twin)")
    print(f"{'multiplier':<12}{'twin img/s':>11}{'spread':>14}{'float img/s':>12}{'ratio':>8}"
          + ("  top-1 (float)" if "accuracy" in r0 else ""))
    for r in rows:
        acc = (f"  {100 * r['accuracy']:.2f} % ({100 * r['float_accuracy']:.2f} %)"
               if "accuracy" in r else "")
        print(f"{r['mult']:<12}{r['images_per_s']:>11.0f}"
              f"{r['spread'][0]:>7.0f}-{r['spread'][1]:<6.0f}{r['float_images_per_s']:>12.0f}"
              f"{r['ratio']:>8.4f}{acc}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
