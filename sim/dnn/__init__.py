"""DNN evaluation on the emulated approximate accelerator.

* :mod:`sim.dnn.layers` - graph IR and float operators (conv via im2col, dense, pools, add);
* :mod:`sim.dnn.quant` - int8 post-training quantisation and bit-exact integer inference (the
  scheme is documented there);
* :mod:`sim.dnn.data` - digits (bundled), MNIST (IDX) and CIFAR-10 (pickle batches) loaders;
* :mod:`sim.dnn.models` - built-in digits CNN / MLP with stored weights;
* :mod:`sim.dnn.onnx_import` - ONNX models;
* :mod:`sim.dnn.predictor` - analytical error prediction ``M N (K s^2 + K^2 mu^2)``;
* :mod:`sim.dnn.evaluate` / ``python -m sim.dnn`` - the experiment and its CLI.
"""

from .data import Dataset, load_dataset, load_digits_split
from .errors import DnnError
from .evaluate import DEFAULT_MULTS, Config, evaluate, parse_config
from .layers import Graph, Node, run_float
from .models import MODELS, load_model
from .quant import QuantizedModel

__all__ = ["Dataset", "load_dataset", "load_digits_split", "DnnError", "DEFAULT_MULTS",
           "Config", "evaluate", "parse_config", "Graph", "Node", "run_float", "MODELS",
           "load_model", "QuantizedModel"]
