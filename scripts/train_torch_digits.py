"""Train the digits networks with torch and store their weights (the only trainer of the toolkit).

    python scripts/train_torch_digits.py --force            # all of them (6 CPU-minutes)
    python scripts/train_torch_digits.py digits-cnn digits-mlp --force
    python scripts/train_torch_digits.py digits-resnet20 --epochs 30 --force
    python scripts/train_torch_digits.py --evaluate --mult truncated7 etm4 mitchell   # stored

Networks (``sim.nn.models.TORCH_MODELS``): the built-in ``digits-cnn`` and ``digits-mlp`` of
:mod:`sim.dnn.models` (weights in ``sim/dnn/weights`` as ``layer.W`` / ``layer.b`` arrays, so
``sim.dnn`` reads them without torch; 40 / 60 epochs, recipe in :func:`train`),
``digits-resnet20`` (ResNet-20, width 0.5),
``digits-resnet18`` (ResNet-18, first stage 8 channels, digits upsampled to 32x32 by pixel
repetition), ``digits-mobilenetv2`` (MobileNetV2,
width 0.5, three stages; these three: 20 epochs, weights in ``sim/nn/weights``).
Data: scikit-learn's bundled digits (``sim.dnn.data``: train split; calibration and test splits
untouched). Cross-entropy, learning rate 3e-3 with cosine decay, fixed seed, one
torch thread (the same torch version on the same machine writes the same bytes), then the
batch-norm statistics are recomputed over the whole training split. Prints float and
int8-exact test accuracy with 95 % intervals.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from hw.outputs import write_file  # noqa: E402
from sim.dnn import load_digits_split  # noqa: E402
from sim.dnn.layers import run_float  # noqa: E402
from sim.dnn.models import build as build_graph, init_weights  # noqa: E402
from sim.dnn.models import weights_path as dnn_weights_path  # noqa: E402
from sim.dnn.quant import QuantizedModel  # noqa: E402
from sim.dnn.stats import accuracy_interval  # noqa: E402
from sim.nn import to_graph  # noqa: E402
from sim.nn.models import (build_torch, digits_input, digits_torch_from_graph,  # noqa: E402
                           weights_path)

NETS = ("digits-cnn", "digits-mlp", "digits-resnet20", "digits-resnet18", "digits-mobilenetv2")
BUILTIN = {"digits-cnn": 40, "digits-mlp": 60}   # sim.dnn's own models: epochs


def train(name: str, epochs: int | None = None, seed: int = 0):
    """Train network ``name`` from its seeded initialisation; returns (model in eval mode, data).

    Built-in models: He-normal start, Adam with L2 weight decay 1e-4, batch 32, cosine decay
    per step (the recipe of the numpy trainer this replaces). Larger networks: torch's default
    initialisation, Adam, batch 64, cosine decay per epoch."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = load_digits_split()
    builtin = name in BUILTIN
    # built-in: He-normal weights, zero biases (sim.dnn.models.init_weights, numpy, seeded)
    model = digits_torch_from_graph(name, build_graph(name, init_weights(name, seed=seed))) \
        if builtin else build_torch(name)
    epochs = epochs or BUILTIN.get(name, 20)
    batch = 32 if builtin else 64
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4 if builtin else 0)
    if builtin:
        steps = epochs * -(-len(data.x_train) // batch)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda t: 0.5 * (1 + math.cos(math.pi * t / steps)))
    else:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    x = torch.as_tensor(digits_input(name, data.x_train), dtype=torch.float32)
    y = torch.as_tensor(data.y_train)
    for _ in range(epochs):
        model.train()
        order = rng.permutation(len(x))
        for s in range(0, len(x), batch):
            idx = order[s:s + batch]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
            if builtin:
                sched.step()
        if not builtin:
            sched.step()
    for m in model.modules():                     # exact statistics of the training split
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(x)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.1
    return model.eval(), data


def evaluate_stored(names, mults) -> int:
    """Float, int8-exact and approximate accuracy (95 % intervals) of the stored networks."""
    from sim.dnn.data import Dataset
    from sim.dnn.evaluate import evaluate
    from sim.nn.models import load_torch

    base = load_digits_split()
    for name in names:
        data = Dataset(base.name, digits_input(name, base.x_calib), base.y_calib,
                       digits_input(name, base.x_test), base.y_test, base.classes)
        graph = to_graph(load_torch(name), data.image_shape, name=name)
        res = evaluate(graph, data, mults)
        cells = [f"{k} {100 * res[key]['accuracy']:.2f} % [{100 * res[key]['ci95_low']:.1f}, "
                 f"{100 * res[key]['ci95_high']:.1f}]" for k, key in (("float", "float"),
                                                                     ("int8-exact", "int8"))]
        for r in res["configs"]:
            cells.append(f"{r['label']} {100 * r['accuracy']:.2f} % "
                         f"[{100 * r['ci95_low']:.1f}, {100 * r['ci95_high']:.1f}]")
        print(f"{name}: " + "; ".join(cells))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", metavar="NAME", help=f"of {', '.join(NETS)} (default all)")
    p.add_argument("--epochs", type=int, default=None,
                   help="default: 40 (digits-cnn), 60 (digits-mlp), 20 (the others)")
    p.add_argument("--force", action="store_true")
    p.add_argument("--evaluate", action="store_true",
                   help="no training: evaluate the stored weights (sim.dnn.evaluate) with --mult")
    p.add_argument("--mult", nargs="+", default=["truncated7", "etm4", "mitchell"])
    args = p.parse_args(argv)
    bad = [n for n in args.names if n not in NETS]
    if args.epochs is not None and args.epochs < 1:
        p.error("--epochs must be positive")
    if bad:
        p.error(f"unknown network {bad[0]!r}; choose from {', '.join(NETS)}")
    torch.set_num_threads(1)
    if args.evaluate:
        return evaluate_stored(args.names or NETS, args.mult)
    for name in args.names or NETS:
        model, data = train(name, args.epochs)
        x_test, x_cal = digits_input(name, data.x_test), digits_input(name, data.x_calib)
        graph = to_graph(model, x_test.shape[1:], name=name)
        n = len(data.y_test)
        f_ok = int((run_float(graph, x_test).argmax(1) == data.y_test).sum())
        q_ok = int((QuantizedModel(graph, x_cal).run(x_test, "exact").argmax(1)
                    == data.y_test).sum())
        for label, k in (("float", f_ok), ("int8-exact", q_ok)):
            lo, hi = accuracy_interval(k, n)
            print(f"{name}: {label} {100 * k / n:.2f} % [{100 * lo:.1f}, {100 * hi:.1f}] "
                  f"({n} test images)")
        buf = io.BytesIO()
        if name in BUILTIN:                       # sim.dnn's format: layer.W / layer.b
            arrays = {f"{node.name}.{k}": np.asarray(node.attrs[k], dtype=np.float32)
                      for node in graph.gemm_nodes() for k in ("W", "b")}
            target = dnn_weights_path(name)
        else:
            arrays = {k: v.detach().numpy() for k, v in model.state_dict().items()}
            target = weights_path(name)
        np.savez_compressed(buf, **arrays)
        path = write_file(target, buf.getvalue(), force=args.force)
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
