"""Train the built-in digits models (numpy, fixed seed) and store their weights.

    python scripts/train_digits.py                  # both models -> sim/dnn/weights/*.npz
    python scripts/train_digits.py --model digits-cnn --epochs 60 --out /tmp/w

Training uses only the train split of sim.dnn.data.load_digits_split (the calibration and test
splits stay unseen). Takes about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.dnn.data import load_digits_split  # noqa: E402
from sim.dnn.errors import DnnError  # noqa: E402
from sim.dnn.models import MODELS, WEIGHTS_DIR, build, init_weights  # noqa: E402
from sim.dnn.train import accuracy, train  # noqa: E402

EPOCHS = {"digits-cnn": 40, "digits-mlp": 60}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--epochs", type=int, help="default: 40 (cnn), 60 (mlp)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(WEIGHTS_DIR), help="output directory")
    args = ap.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        ap.error("--epochs must be positive")
    data = load_digits_split(seed=0)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        for name in args.model:
            graph = build(name, init_weights(name, seed=args.seed))
            train(graph, data.x_train, data.y_train, epochs=args.epochs or EPOCHS[name],
                  seed=args.seed, progress=sys.stderr.isatty())
            weights = {}
            for node in graph.gemm_nodes():
                weights[f"{node.name}.W"] = node.attrs["W"].astype(np.float32)
                weights[f"{node.name}.b"] = node.attrs["b"].astype(np.float32)
            target = out_dir / f"{name.replace('-', '_')}.npz"
            fd, tmp = tempfile.mkstemp(suffix=".npz", dir=out_dir)
            os.close(fd)
            np.savez_compressed(tmp, **weights)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
            print(f"{name}: train acc {accuracy(graph, data.x_train, data.y_train):.4f}, "
                  f"calibration-split acc {accuracy(graph, data.x_calib, data.y_calib):.4f} "
                  f"-> {target}")
    except DnnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
