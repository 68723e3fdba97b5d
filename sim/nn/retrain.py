"""Approximation-aware retraining: fine-tune a network *through* the approximate multiplier.

The forward pass is the emulated accelerator (:class:`sim.nn.ApproxModel`: quantisation, the
approximate integer GEMM, requantisation), the backward pass the float layer's gradient on the
dequantised operands with exact products (straight-through estimator), or with ``grad="table"``
the multiplier's derivative table (:mod:`sim.nn.layers`). Activation scales stay those of the
calibration (frozen ranges); weights and biases (batch norm folded into them) are trained, and
the integer weights, biases and requantisation constants follow them (per-channel scales are
re-derived from the current weights on every step).

* :func:`finetune` - Adam on cross-entropy over ``(x, y)`` for a number of epochs (seeded);
* :func:`correct` - per-image top-1 correctness of a twin;
* :func:`recovery` - the experiment of ``python -m sim.nn.retrain``: for each multiplier the
  accuracy before and after fine-tuning beside float and int8-exact, each with its 95 % Wilson
  interval, and the paired change after - before (Newcombe interval, exact McNemar test,
  :mod:`sim.dnn.stats`). The accuracies after retraining are measured by :mod:`sim.dnn`'s engine
  on the retrained graph (:meth:`~sim.nn.ApproxModel.quantized`), the toolkit's reference.
"""

from __future__ import annotations

import numpy as np

from hw.extras import require
from sim.dnn import stats
from sim.dnn.data import Dataset
from sim.dnn.errors import DnnError
from sim.dnn.layers import Graph, run_float

__all__ = ["finetune", "correct", "recovery", "format_table", "main"]


def _torch():
    return require("torch", "retraining (sim.nn.retrain)")


def finetune(model, x, y, *, epochs: int = 10, lr: float = 1e-3, batch: int = 64, seed: int = 0,
             weight_decay: float = 0.0, progress=None) -> list[float]:
    """Fine-tune ``model`` (a twin, or any ``nn.Module``) in place on images ``x`` and integer
    labels ``y`` with Adam and cross-entropy; returns the mean loss of each epoch. Deterministic
    for a ``seed`` (shuffling and torch's generator). ``progress``: a callable run once per
    batch (e.g. a progress bar's ``update``)."""
    torch = _torch()
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.int64)
    if len(x) == 0 or len(x) != len(y):
        raise DnnError(f"training needs images and as many labels, got {len(x)} and {len(y)}")
    if epochs < 1 or batch < 1 or not lr > 0:
        raise DnnError("epochs and batch must be >= 1 and lr > 0")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise DnnError("the model has no trainable parameters")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss()
    device = params[0].device
    was = model.training
    model.train()
    history = []
    try:
        for _ in range(epochs):
            order = rng.permutation(len(x))
            total = 0.0
            for s in range(0, len(x), batch):
                idx = order[s:s + batch]
                xb = torch.as_tensor(x[idx], device=device)
                yb = torch.as_tensor(y[idx], device=device)
                opt.zero_grad()
                loss = loss_fn(model(xb), yb)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                if progress is not None:
                    progress()
            history.append(total / len(x))
    finally:
        model.train(was)
    return history


def correct(model, x, y, *, batch: int = 512) -> np.ndarray:
    """Boolean per image: whether ``model``'s top-1 class is ``y``."""
    torch = _torch()
    x = np.asarray(x, np.float64)
    param = next(model.parameters(), None)
    device = param.device if param is not None else "cpu"
    out = []
    with torch.no_grad():
        for s in range(0, len(x), batch):
            out.append(model(torch.as_tensor(x[s:s + batch], device=device))
                       .argmax(dim=1).cpu().numpy())
    return np.concatenate(out) == np.asarray(y)


def _acc(ok) -> dict:
    ok = np.asarray(ok, bool)
    return stats.accuracy_stats(int(ok.sum()), len(ok))


def recovery(graph: Graph, data: Dataset, mults, *, epochs: int = 10, lr: float = 1e-3,
             batch: int = 64, seed: int = 0, activations=None, signed: bool = True,
             acc_width: int = 32, overflow: str = "wrap", grad: str = "ste", smooth: int = 0,
             progress=None) -> dict:
    """Retraining experiment (module docstring) of ``graph`` on ``data`` (its ``x_train`` /
    ``y_train`` to train on, ``x_calib`` for the activation scales, ``x_test`` / ``y_test`` to
    measure) for each multiplier (or per-layer assignment, or :class:`sim.dnn.evaluate.Config`)
    in ``mults``. Returns a JSON-ready dict and ``[(label, retrained Graph)]``.
    ``progress(total)``: returns a per-batch callable (or ``None``)."""
    from .api import approximate

    if data.x_train is None or data.y_train is None or len(data.x_train) == 0:
        raise DnnError(f"dataset {data.name} has no training split to retrain on")
    shape = tuple(graph.input_shape)
    if int(np.prod(data.image_shape)) != int(np.prod(shape)):
        raise DnnError(f"model {graph.name} expects inputs of shape {shape}, dataset "
                       f"{data.name} has images of shape {data.image_shape}")
    x_train = data.x_train.reshape((-1,) + shape)
    x_cal = data.x_calib.reshape((-1,) + shape)
    x_test = data.x_test.reshape((-1,) + shape)
    y_test = data.y_test
    common = dict(activations=activations, signed=signed, acc_width=acc_width,
                  overflow=overflow, grad=grad, smooth=smooth)
    from .api import resolve

    for mult in mults:                       # every configuration checked before any training
        resolve(graph, getattr(mult, "assign", mult), signed=signed)
    float_ok = run_float(graph, x_test).argmax(axis=1) == y_test
    exact_twin = approximate(graph, None, x_cal, **common)
    exact_ok = exact_twin.quantized().run(x_test, None, acc_width=acc_width, overflow=overflow,
                                          signed=signed).argmax(axis=1) == y_test
    steps = epochs * (-(-len(x_train) // batch))
    rows = []
    weights = []
    for mult in mults:
        assign = getattr(mult, "assign", mult)           # a sim.dnn Config, or an assignment
        label = getattr(mult, "label", None) or (
            assign if isinstance(assign, str) else getattr(assign, "full_name", repr(assign)))
        twin = approximate(graph, assign, x_cal, **common)
        targets = twin.targets()
        qm0 = twin.quantized()
        before = qm0.run(x_test, targets, acc_width=acc_width, overflow=overflow,
                         signed=signed).argmax(axis=1) == y_test
        tick = progress(steps) if progress is not None else None
        losses = finetune(twin, x_train, data.y_train, epochs=epochs, lr=lr, batch=batch,
                          seed=seed, progress=tick)
        qm1 = twin.quantized()
        after = qm1.run(x_test, targets, acc_width=acc_width, overflow=overflow,
                        signed=signed).argmax(axis=1) == y_test
        change = stats.compare_paired(before, after)
        rows.append({
            "multiplier": label,
            "layers": {k: getattr(t, "full_name", repr(t)) for k, t in targets.items()},
            "before": _acc(before), "after": _acc(after),
            "loss_before_pp_vs_exact": 100.0 * (exact_ok.mean() - before.mean()),
            "gain_pp": -change["drop_pp"],
            "gain_ci95_low_pp": -change["drop_ci95_high_pp"],
            "gain_ci95_high_pp": -change["drop_ci95_low_pp"],
            "mcnemar_p": change["mcnemar_p"], "significant": change["significant"],
            "epoch_loss": losses,
        })
        weights.append((label, twin.to_graph()))
    return {
        "model": graph.name, "dataset": data.name, "test_images": int(len(x_test)),
        "train_images": int(len(x_train)), "calibration_images": int(len(x_cal)),
        "epochs": epochs, "lr": lr, "batch": batch, "seed": seed, "grad": grad,
        "smooth": smooth, "acc_width": acc_width, "overflow": overflow,
        "multipliers": "signed" if signed else "unsigned",
        "activations": activations or "sym",
        "statistics": {"confidence": stats.CONFIDENCE,
                       "accuracy_interval": stats.ACCURACY_METHOD,
                       "gain_interval": stats.DROP_METHOD, "test": stats.TEST_METHOD},
        "float": _acc(float_ok), "int8_exact": _acc(exact_ok), "results": rows,
    }, weights


def _pct(s: dict) -> str:
    return (f"{100 * s['accuracy']:6.2f} % [{100 * s['ci95_low']:5.1f}, "
            f"{100 * s['ci95_high']:5.1f}]")


def format_table(res: dict) -> str:
    """The experiment as a text table."""
    lines = [f"{res['model']} on {res['dataset']}: {res['test_images']} test images, "
             f"retrained on {res['train_images']} for {res['epochs']} epochs (lr {res['lr']:g}, "
             f"batch {res['batch']}, grad {res['grad']}, seed {res['seed']}); "
             "accuracy [95 % interval]",
             f"  float                  {_pct(res['float'])}",
             f"  int8 exact (baseline)  {_pct(res['int8_exact'])}",
             f"  {'multiplier':<22} {'before':<26} {'after':<26} gain pp [95 %]      McNemar p"]
    for r in res["results"]:
        lines.append(f"  {r['multiplier']:<22} {_pct(r['before']):<26} {_pct(r['after']):<26} "
                     f"{r['gain_pp']:+5.1f} [{r['gain_ci95_low_pp']:+5.1f}, "
                     f"{r['gain_ci95_high_pp']:+5.1f}]  {r['mcnemar_p']:.2g}")
    return "\n".join(lines) + "\n"




# -- the command -----------------------------------------------------------------------------------

EPILOG = """\
examples:
  python -m sim.nn.retrain                      # digits-cnn; truncated7 etm4 perforated1
  python -m sim.nn.retrain --model digits-mlp --mult drum3 --epochs 10 --json -
  python -m sim.nn.retrain --mult "conv1=exact,*=etm4" --grad table --out retrained/

The network runs on the emulated accelerator (quantisation, approximate integer GEMM,
requantisation) in the forward pass; the backward pass is the float layer's gradient on the
dequantised operands (--grad ste, straight-through) or the multiplier's derivative table (--grad
table). Activation scales come from the calibration split and stay fixed; weights and biases are
trained with Adam on the training split and measured on the test split by sim.dnn's engine.
Accuracies carry 95 % Wilson intervals; the gain (after - before, same test images) a Newcombe
interval and an exact McNemar test. --out DIR writes results.json and one NAME.npz of retrained
float weights (keys LAYER.W / LAYER.b) per configuration.
"""


def build_parser():
    from hw.cli import (CONVENTIONS, Parser, add_force, add_json, add_out, add_seed,
                        add_signedness, integer, number)

    p = Parser(prog="python -m sim.nn.retrain",
               description="Approximation-aware retraining: accuracy of a quantised network "
                           "on the emulated approximate accelerator before and after "
                           "fine-tuning through the approximate multiplier, beside float and "
                           "int8-exact.", epilog=EPILOG + "\n" + CONVENTIONS)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", help="built-in model: digits-cnn (default), digits-mlp, or a torch "
                                      f"network with stored weights ({', '.join(TORCH_DIGITS)})")
    src.add_argument("--onnx", metavar="PATH", help="float ONNX model to import")
    p.add_argument("--dataset", default="digits",
                   help="a dataset with a training split (default digits)")
    p.add_argument("--mult", action="extend", nargs="+", metavar="CONFIG",
                   help="configurations as in python -m sim.dnn: NAME[,NAME...] (NAME*K "
                        "repeats) or LAYER=NAME,...[,*=NAME] (default: truncated7 etm4 "
                        "perforated1)")
    p.add_argument("--epochs", type=integer(1, 10000), default=10, help="epochs (default 10)")
    p.add_argument("--lr", type=number(0, 10, lo_open=True), default=1e-3,
                   help="Adam learning rate (default 0.001)")
    p.add_argument("--batch", type=integer(1, 1 << 16), default=64,
                   help="training batch (default 64)")
    add_seed(p)
    p.add_argument("--grad", choices=("ste", "table"), default="ste",
                   help="backward pass: exact-product gradient (ste, default) or the "
                        "multiplier's derivative table")
    p.add_argument("--smooth", type=integer(0, 64), default=0, metavar="W",
                   help="--grad table: average the derivatives over 2W+1 operand values")
    p.add_argument("--activations", choices=("sym", "asym"), default="sym",
                   help="activation quantisation (sim.dnn.quant; default sym)")
    add_signedness(p)
    p.add_argument("--acc-width", type=integer(16, 62), default=32,
                   help="accumulator bits, 16..62 (default 32)")
    p.add_argument("--overflow", choices=("wrap", "saturate"), default="wrap",
                   help="accumulator overflow mode (default wrap)")
    p.add_argument("--limit", type=integer(1, 10 ** 9), metavar="N",
                   help="measure on the first N test images")
    add_json(p)
    add_out(p, metavar="DIR", help="write results.json and the retrained weights to DIR")
    add_force(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


DEFAULT_RETRAIN = ("truncated7", "etm4", "perforated1")
#: Torch networks trained on digits whose weights are stored (sim/nn/weights).
TORCH_DIGITS = ("digits-resnet20", "digits-resnet18", "digits-mobilenetv2")


def _safe_name(label: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)
    return keep[:80] or "config"


def _main(argv) -> int:
    import io
    import json
    import sys
    from pathlib import Path

    from hw.cli import progress, signedness_values
    from hw.outputs import check_file, check_folder, write_file, write_files
    from sim.dnn.__main__ import _clean, config_texts
    from sim.dnn.data import load_dataset
    from sim.dnn.evaluate import parse_config
    from sim.dnn.models import load_model

    args = build_parser().parse_args(argv)
    if args.json not in (None, "-"):
        check_file(args.json, force=args.force, label=f"--json {args.json}")
    configs = [parse_config(c) for c in config_texts(args.mult or DEFAULT_RETRAIN)]
    names = []
    for c in configs:
        base, k = _safe_name(c.label), 1
        name = base
        while name in names:
            k += 1
            name = f"{base}_{k}"
        names.append(name)
    if args.out is not None:
        check_folder(args.out, force=True, label=f"--out {args.out}")
        for name in ["results.json"] + [f"{n}.npz" for n in names]:
            check_file(Path(args.out) / name, force=args.force)
    name = args.model or "digits-cnn"
    data = None
    if args.onnx is not None:
        from sim.dnn.onnx_import import load_onnx
        graph = load_onnx(args.onnx)
    elif name in TORCH_DIGITS:
        if args.dataset != "digits":
            raise DnnError(f"model {name} is trained on digits; --dataset {args.dataset} "
                           "does not fit it")
        from .convert import to_graph
        from .models import digits_input, load_torch

        base = load_dataset("digits").limited(args.limit)
        f = lambda x: digits_input(name, x)  # noqa: E731
        data = Dataset(base.name, f(base.x_calib), base.y_calib, f(base.x_test), base.y_test,
                       base.classes, f(base.x_train), base.y_train)
        graph = to_graph(load_torch(name), data.image_shape, name=name)
    else:
        graph = load_model(name)
    if data is None:
        data = load_dataset(args.dataset).limited(args.limit)
    _torch()
    signed = signedness_values(args)[0]
    bar = None
    if not args.no_progress:
        bar = progress(total=0, unit="batch", desc="retraining")
        if bar.disable:
            bar = None

        def tick(total):
            bar.total += total
            bar.refresh()
            return bar.update
    res, graphs = recovery(graph, data, configs, epochs=args.epochs, lr=args.lr,
                           batch=args.batch, seed=args.seed, activations=args.activations,
                           signed=signed, acc_width=args.acc_width, overflow=args.overflow,
                           grad=args.grad, smooth=args.smooth,
                           progress=tick if bar is not None else None)
    if bar is not None:
        bar.close()
    res = _clean(res)
    res["command"] = "python -m sim.nn.retrain " + " ".join(argv if argv is not None
                                                             else sys.argv[1:])
    text = json.dumps(res, indent=2)
    print(text if args.json == "-" else format_table(res), end="\n" if args.json == "-" else "")
    if args.json not in (None, "-"):
        write_file(args.json, text + "\n", force=args.force)
    if args.out is not None:
        files = {Path(args.out) / "results.json": text + "\n"}
        for name, (_, g) in zip(names, graphs):
            buf = io.BytesIO()
            arrays = {}
            for node in g.gemm_nodes():
                arrays[f"{node.name}.W"] = node.attrs["W"]
                arrays[f"{node.name}.b"] = node.attrs["b"]
            np.savez(buf, **arrays)
            files[Path(args.out) / f"{name}.npz"] = buf.getvalue()
        for path in write_files(files, force=args.force):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    """``python -m sim.nn.retrain``; returns the exit status."""
    from hw.cli import run_main

    return run_main("python -m sim.nn.retrain", _main, argv)


if __name__ == "__main__":
    import sys

    sys.exit(main())
