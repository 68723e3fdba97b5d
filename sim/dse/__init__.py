"""Design-space exploration (``python -m sim.dse``, docs/dse.md): which approximate multiplier
for which layer, on what array, for how much accuracy, and what it saves.

* :mod:`sim.dse.space` - the space (per-layer candidates, rows x cols, dataflow, accumulator) and
  its integer encoding; TOML config files;
* :mod:`sim.dse.accuracy` - predictor screen and bit-exact accuracy with 95 % intervals;
* :mod:`sim.dse.hardware` - area (hw.cost gate proxy), latency and energy (sim.perf), carbon;
* :mod:`sim.dse.carbon` - ACT-style embodied carbon with sourced node constants;
* :mod:`sim.dse.explore` / :mod:`sim.dse.search` - archive, cache, fronts; NSGA-II (pymoo),
  sensitivity-guided greedy, exhaustive;
* :mod:`sim.dse.parallel` - in-process, Dask LocalCluster or an existing scheduler;
* :mod:`sim.dse.api` / :mod:`sim.dse.report` - the whole run and its outputs.
"""

from .api import explore, hwgen_commands
from .carbon import CarbonModel, carbon_model, die_yield, embodied_carbon
from .errors import DseError
from .explore import OBJECTIVES, Explorer, nondominated
from .space import Point, Space, load_config

__all__ = ["explore", "hwgen_commands", "CarbonModel", "carbon_model", "die_yield",
           "embodied_carbon", "DseError", "OBJECTIVES", "Explorer", "nondominated", "Point",
           "Space", "load_config"]
