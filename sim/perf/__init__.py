"""Network-level performance and energy model of the generated systolic array.

* :mod:`sim.perf.workload` - layers (GEMM view) from a :class:`sim.dnn.Graph`, built-in shape
  lists (ResNet, MobileNet) and SCALE-Sim topology / ``.cfg`` files;
* :mod:`sim.perf.schedule` - cycles, folds and utilisation: the array's overlapped host-protocol
  schedule (exact against the RTL) and SCALE-Sim v2's compute-cycle formulas;
* :mod:`sim.perf.memory` - SRAM accesses and DRAM traffic per operand for given buffer sizes;
* :mod:`sim.perf.energy` - energy per layer: multiplier switching proxy (:mod:`hw.cost.power`)
  on dataflow-shaped operand traces, adder, registers, leakage, SRAM and DRAM (Horowitz 45 nm);
* :mod:`sim.perf.model` / :mod:`sim.perf.report` / ``python -m sim.perf`` - the whole network,
  tables (text, CSV, JSON) and a plot.
"""

from .errors import PerfError
from .memory import Buffers, Traffic, layer_traffic
from .schedule import ArraySpec, Schedule, equivalent_gemm, layer_schedule, scalesim_schedule
from .workload import (BUILTIN, Layer, ScaleSimConfig, builtin_layers, conv_layer,
                       layers_from_graph, read_scalesim_config, read_topology)

__all__ = ["PerfError", "Buffers", "Traffic", "layer_traffic", "ArraySpec", "Schedule",
           "equivalent_gemm", "layer_schedule", "scalesim_schedule", "BUILTIN", "Layer",
           "ScaleSimConfig", "builtin_layers", "conv_layer", "layers_from_graph",
           "read_scalesim_config", "read_topology"]
