"""Built-in models for the digits dataset (8x8 images, 10 classes) and their stored weights.

``digits-cnn`` (input 1x8x8)::

    conv1  3x3, 1 -> 8, pad 1, ReLU          (GEMM M = 64/image, K = 9,   N = 8)
    conv2  3x3, 8 -> 16, pad 1, ReLU         (GEMM M = 64/image, K = 72,  N = 16)
    pool1  max 2x2 -> 16x4x4
    conv3  3x3, 16 -> 16, pad 1              (GEMM M = 16/image, K = 144, N = 16)
    res    ReLU(conv3 + pool1)               (residual add)
    pool2  average 2x2 -> 16x2x2, flatten
    fc     64 -> 10                          (GEMM M = 1/image,  K = 64,  N = 10)

``digits-mlp``: flatten, ``fc1`` 64 -> 64 ReLU, ``fc2`` 64 -> 32 ReLU, ``fc3`` 32 -> 10.

Weights live in ``sim/dnn/weights/<name>.npz`` (keys ``layer.W`` / ``layer.b``), written by
``scripts/train_torch_digits.py digits-cnn digits-mlp --force`` (torch, fixed seed, one thread:
the same bytes again on the same torch version and machine; 25 s).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DnnError
from .layers import Graph, Node

__all__ = ["MODELS", "build", "init_weights", "load_model", "weights_path", "layer_shapes"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def _cnn_shapes():
    return {"conv1": (8, 1, 3, 3), "conv2": (16, 8, 3, 3), "conv3": (16, 16, 3, 3),
            "fc": (10, 64)}


def _mlp_shapes():
    return {"fc1": (64, 64), "fc2": (32, 64), "fc3": (10, 32)}


MODELS = {"digits-cnn": _cnn_shapes, "digits-mlp": _mlp_shapes}


def layer_shapes(name: str) -> dict:
    if name not in MODELS:
        raise DnnError(f"unknown model {name!r}; built-in models: {', '.join(MODELS)}")
    return MODELS[name]()


def _conv(name, src, dst, w, b, relu):
    return Node(name, "conv", [src], dst, {"W": w, "b": b, "stride": (1, 1),
                                            "pads": (1, 1, 1, 1), "relu": relu})


def build(name: str, weights: dict) -> Graph:
    """The graph of built-in model ``name`` with ``weights``
    (``{"layer.W": ..., "layer.b": ...}``)."""
    shapes = layer_shapes(name)
    for layer, shape in shapes.items():
        w = weights.get(f"{layer}.W")
        if w is None or tuple(w.shape) != shape or weights.get(f"{layer}.b") is None:
            raise DnnError(f"weights for {name} lack {layer}.W of shape {shape} (or its bias)")
    w = lambda k: np.asarray(weights[k], dtype=np.float64)  # noqa: E731
    if name == "digits-cnn":
        nodes = [
            _conv("conv1", "x", "c1", w("conv1.W"), w("conv1.b"), True),
            _conv("conv2", "c1", "c2", w("conv2.W"), w("conv2.b"), True),
            Node("pool1", "maxpool", ["c2"], "p1", {"kernel": (2, 2), "stride": (2, 2)}),
            _conv("conv3", "p1", "c3", w("conv3.W"), w("conv3.b"), False),
            Node("res", "add", ["c3", "p1"], "r", {"relu": True}),
            Node("pool2", "avgpool", ["r"], "p2", {"kernel": (2, 2), "stride": (2, 2)}),
            Node("flatten", "flatten", ["p2"], "f"),
            Node("fc", "dense", ["f"], "logits", {"W": w("fc.W"), "b": w("fc.b")}),
        ]
        return Graph(name, "x", (1, 8, 8), "logits", nodes)
    nodes = [
        Node("flatten", "flatten", ["x"], "f"),
        Node("fc1", "dense", ["f"], "h1", {"W": w("fc1.W"), "b": w("fc1.b"), "relu": True}),
        Node("fc2", "dense", ["h1"], "h2", {"W": w("fc2.W"), "b": w("fc2.b"), "relu": True}),
        Node("fc3", "dense", ["h2"], "logits", {"W": w("fc3.W"), "b": w("fc3.b")}),
    ]
    return Graph(name, "x", (1, 8, 8), "logits", nodes)


def init_weights(name: str, seed: int = 0) -> dict:
    """He-normal weights, zero biases (training start; random networks for tests)."""
    rng = np.random.default_rng(seed)
    out = {}
    for layer, shape in layer_shapes(name).items():
        fan_in = int(np.prod(shape[1:]))
        out[f"{layer}.W"] = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        out[f"{layer}.b"] = np.zeros(shape[0])
    return out


def weights_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{name.replace('-', '_')}.npz"


def load_model(name: str) -> Graph:
    """Built-in model with its stored trained weights."""
    layer_shapes(name)
    path = weights_path(name)
    if not path.is_file():
        raise DnnError(f"no stored weights for {name} ({path}); run scripts/train_torch_digits.py")
    with np.load(path, allow_pickle=False) as data:
        weights = {k: data[k] for k in data.files}
    return build(name, weights)
