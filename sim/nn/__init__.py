"""PyTorch front end: the emulated approximate accelerator as ``torch.nn`` modules.

* :func:`approximate` - a float ``nn.Module`` (or a :class:`sim.dnn.layers.Graph`, e.g. an ONNX
  import) -> its emulated-accelerator twin (:class:`ApproxModel`, still an ``nn.Module``), with
  a multiplier per layer (module name, glob or default);
* :class:`ApproxConv2d` / :class:`ApproxLinear` - drop-in approximate layers (any groups,
  depthwise), :class:`QuantOp` - the integer operators between them (:mod:`sim.nn.layers`);
* :mod:`sim.nn.kernels` - the integer GEMM on torch tensors (numpy and torch back ends, CPU /
  CUDA, the same bits) and derivative tables;
* :mod:`sim.nn.convert` - ``torch.fx`` conversion to :mod:`sim.dnn`'s graph;
* :mod:`sim.nn.retrain` - approximation-aware fine-tuning (API and ``python -m sim.nn.retrain``);
* :mod:`sim.nn.models` - ResNet-18/-20, MobileNetV2 and the digits models in plain torch.

torch is the optional extra ``torch`` (``pip install -e ".[torch]"``); without it, using any of
these names raises :class:`hw.extras.MissingDependency` (one line naming the extra).
"""

from __future__ import annotations

import importlib

#: Public name -> the submodule that defines it (imported on first use, so that ``import sim.nn``
#: and ``python -m sim.nn.retrain --help`` work, and fail in one line, without torch).
_LAZY = {"approximate": "api", "resolve": "api", "as_array": "api", "ApproxModel": "twin",
         "ApproxConv2d": "layers", "ApproxLinear": "layers", "QuantOp": "layers",
         "to_graph": "convert", "check_graph": "convert", "finetune": "retrain",
         "correct": "retrain", "recovery": "retrain"}

__all__ = sorted(_LAZY) + ["DnnError"]

from sim.dnn.errors import DnnError  # noqa: E402


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
