"""Hardware cost of multipliers, MACs and arrays: Yosys/nextpnr characterisation.

* :func:`synthesize` - cell counts for ``ice40`` (``synth_ice40``), ``ecp5`` (``synth_ecp5``) and a
  technology-independent ``gate`` proxy (NAND2 equivalents), read from Yosys' ``stat -json``;
* :func:`place_and_route` - nextpnr Fmax and utilisation on iCE40UP5K-SG48 and LFE5U-85F-CABGA381,
  with registers around the design (:class:`Harness`) so timing is register-to-register;
* :func:`sweep` / :func:`write_outputs` - cost x error-metric table and Pareto plot;
* :func:`what_fits` - largest square array of a configuration on a device.

Designs are :class:`Design` objects (a label and a component factory): :func:`multiplier`,
:func:`mac`, :func:`array` or :func:`make_design`. Tools: YoWASP by default, the user's own with
``YOSYS`` / ``NEXTPNR_ICE40`` / ``NEXTPNR_ECP5``. Results are cached in the toolkit's cache
(:mod:`hw.cache`: the ``cost/`` folder of ``$AXM_CACHE_DIR``, default ``~/.cache/axmtoolkit``) by
tool version, Verilog hash and options.
CLI: ``python -m hw.cost --help``.

Example::

    from hw.mult import parse
    from hw.cost import multiplier, synthesize, place_and_route
    d = multiplier(parse("truncated4", width=8, signed=True))
    synthesize(d, "ice40").luts, place_and_route(d, "ice40up5k").fmax_mhz
"""

from hw.cache import Cache
from .designs import Design, array, bank, mac, make_bank, make_design, multiplier, register_kind
from .errors import CostError, DoesNotFit, ToolError
from .fits import FitResult, what_fits
from .harness import Harness
from .pnr import DEVICES, Device, PnrResult, find_device, place_and_route
from .synth import NAND2_EQUIVALENTS, TARGETS, SynthResult, synthesize
from .sweep import default_names, sweep, write_outputs
from .tools import find_tool, tool_version

__all__ = ["Cache", "Design", "array", "bank", "mac", "make_bank", "make_design", "multiplier",
           "register_kind", "CostError", "DoesNotFit", "ToolError", "FitResult", "what_fits",
           "Harness", "DEVICES", "Device", "PnrResult", "find_device", "place_and_route",
           "NAND2_EQUIVALENTS", "TARGETS", "SynthResult", "synthesize", "default_names",
           "sweep", "write_outputs", "find_tool", "tool_version"]
