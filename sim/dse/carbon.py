"""Embodied carbon of a logic die, ACT-style (Gupta et al., ISCA 2022), with the die-yield model
of 3D-Carbon (Zhao et al., DAC 2024)::

    C = A * (CI_fab * EPA + GPA + MPA) / Y          [g CO2e]
    Y = (1 + A_mm2 * D0 / alpha) ** -alpha          (negative-binomial die yield)

``A``: die area in cm^2 (``A_mm2`` in mm^2 for the yield), ``CI_fab``: carbon intensity of the
fab's electricity (g CO2e/kWh), ``EPA``: fab electricity per area (kWh/cm^2), ``GPA``: direct
process-gas emissions per area (g CO2e/cm^2), ``MPA``: procured materials per area
(g CO2e/cm^2), ``D0``: defect density (defects/mm^2), ``alpha``: clustering parameter.

The die area of a design comes from its gate-level proxy area in NAND2 equivalents (GE,
:mod:`hw.cost.synth`) times the area of one NAND2 at the node (:data:`NODES` ``nand2_um2``), so
the result covers the logic only (no SRAM, pads, package; ACT's packaging term is left out).

Constants (:data:`NODES`, every one overridable: :func:`carbon_model` / ``[carbon]`` in a
``sim.dse`` config):

* ``epa``: ACT ``logic/epa.json`` (28 nm 0.90, 14 nm 1.20, 7 nm 2.15 kWh/cm^2; identical in
  3D-Carbon ``parameters/logic/epa.json``).
* ``gpa``: ACT ``logic/gpa_99.json`` (99 % abatement; = 3D-Carbon ``parameters/logic/gpa.json``):
  28 nm 100, 14 nm 125, 7 nm 200 g/cm^2. ACT's 95 % table (175 / 200 / 350) is :data:`GPA_95`.
* ``mpa``: ACT ``logic/materials.json`` / 3D-Carbon ``mpa.json``: 500 g/cm^2 at every node.
* ``d0``, ``alpha``: 3D-Carbon ``parameters/configs/die_yield.json``: 28 nm (0.0007, 10),
  14 nm (0.001, 10), 7 nm (0.001, 10).
* ``ci_fab``: ACT ``carbon_intensity/location.json``, Taiwan 583 g/kWh (:data:`CI_FAB`).
* ``nand2_um2``: 7 nm: ASAP7 ``NAND2xp33_ASAP7_75t_R``, 0.05832 um^2 (predictive PDK, Clark et
  al., Microelectronics Journal 2016; 4 CPP x 54 nm x 270 nm cell height); 45 nm: NanGate 45 nm
  Open Cell Library NAND2_X1, 0.798 um^2 (the unit of :mod:`hw.cost.power`). 14 and 28 nm have
  no open library: **proxy**, the power law through those two points
  (``0.05832 * (node/7) ** 1.406``: 0.1545 and 0.4095 um^2). Give your library's figure.
* **45 nm is a labelled proxy**: ACT and 3D-Carbon stop at 28 nm, so 45 nm takes the 28 nm
  EPA/GPA/MPA/yield figures (older nodes need less energy per area, so this overstates it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from .errors import DseError

__all__ = ["NODES", "GPA_95", "CI_FAB", "CarbonModel", "carbon_model", "die_yield",
           "embodied_carbon"]

#: Fab carbon intensity (g CO2e / kWh), ACT carbon_intensity/location.json.
CI_FAB = {"taiwan": 583, "world": 301, "usa": 380, "europe": 295, "singapore": 495,
          "iceland": 28}

#: ACT logic/gpa_95.json (95 % abatement), g CO2e / cm^2.
GPA_95 = {7: 350, 14: 200, 28: 175, 45: 175}

_ASAP7_NAND2 = 0.05832
_NANGATE45_NAND2 = 0.798
_EXP = math.log(_NANGATE45_NAND2 / _ASAP7_NAND2) / math.log(45 / 7)

#: Per-node constants (module docstring); ``proxy`` lists the fields that are not published.
NODES = {
    7: {"epa": 2.15, "gpa": 200.0, "mpa": 500.0, "d0": 0.001, "alpha": 10.0,
        "nand2_um2": _ASAP7_NAND2, "proxy": ()},
    14: {"epa": 1.20, "gpa": 125.0, "mpa": 500.0, "d0": 0.001, "alpha": 10.0,
         "nand2_um2": round(_ASAP7_NAND2 * (14 / 7) ** _EXP, 4), "proxy": ("nand2_um2",)},
    28: {"epa": 0.90, "gpa": 100.0, "mpa": 500.0, "d0": 0.0007, "alpha": 10.0,
         "nand2_um2": round(_ASAP7_NAND2 * (28 / 7) ** _EXP, 4), "proxy": ("nand2_um2",)},
    45: {"epa": 0.90, "gpa": 100.0, "mpa": 500.0, "d0": 0.0007, "alpha": 10.0,
         "nand2_um2": _NANGATE45_NAND2, "proxy": ("epa", "gpa", "mpa", "d0", "alpha")},
}

_FIELDS = ("ci_fab", "epa", "gpa", "mpa", "d0", "alpha", "nand2_um2")


@dataclass(frozen=True)
class CarbonModel:
    """The constants of one node and fab (module docstring for units)."""

    node: int
    ci_fab: float
    epa: float
    gpa: float
    mpa: float
    d0: float
    alpha: float
    nand2_um2: float
    proxy: tuple = ()

    def carbon_per_cm2(self) -> float:
        """``CI_fab * EPA + GPA + MPA`` in g CO2e / cm^2 (before yield)."""
        return self.ci_fab * self.epa + self.gpa + self.mpa

    def area_mm2(self, gate_area: float) -> float:
        return gate_area * self.nand2_um2 * 1e-6

    def of_gates(self, gate_area: float) -> dict:
        """Embodied carbon of a die of ``gate_area`` NAND2 equivalents."""
        mm2 = self.area_mm2(gate_area)
        y = die_yield(mm2, self.d0, self.alpha)
        return {"area_mm2": mm2, "yield": y,
                "carbon_g": embodied_carbon(mm2, self.carbon_per_cm2(), y)}

    def as_dict(self) -> dict:
        d = asdict(self)
        d["proxy"] = list(self.proxy)
        d["label"] = f"{self.node} nm" + (f" (proxy: {', '.join(self.proxy)})"
                                          if self.proxy else "")
        return d


def die_yield(area_mm2: float, d0: float, alpha: float) -> float:
    """Negative-binomial yield ``(1 + A D0 / alpha)^-alpha`` (``A`` mm^2, ``D0`` per mm^2)."""
    if area_mm2 < 0 or d0 < 0 or alpha <= 0:
        raise DseError(f"yield needs area >= 0, D0 >= 0, alpha > 0 (got {area_mm2}, {d0}, "
                       f"{alpha})")
    return (1.0 + area_mm2 * d0 / alpha) ** (-alpha)


def embodied_carbon(area_mm2: float, carbon_per_cm2: float, yield_: float) -> float:
    """``A (cm^2) * carbon per cm^2 / yield`` in g CO2e."""
    return area_mm2 / 100.0 * carbon_per_cm2 / yield_


def carbon_model(node: int = 28, *, ci_fab: float | str = "taiwan", **overrides) -> CarbonModel:
    """The :class:`CarbonModel` of ``node`` (7, 14, 28 or 45 nm) with any constant replaced
    (``epa=``, ``gpa=``, ``mpa=``, ``d0=``, ``alpha=``, ``nand2_um2=``); ``ci_fab`` in g/kWh or a
    location of :data:`CI_FAB`. An overridden proxy constant is no longer a proxy."""
    if isinstance(node, bool) or node not in NODES:
        raise DseError(f"unknown technology node {node!r}; choose "
                       f"{', '.join(str(n) for n in NODES)} (nm)")
    if isinstance(ci_fab, str):
        if ci_fab.lower() not in CI_FAB:
            raise DseError(f"unknown fab location {ci_fab!r}; choose {', '.join(CI_FAB)} or a "
                           "number in g CO2e/kWh")
        ci_fab = CI_FAB[ci_fab.lower()]
    base = dict(NODES[node])
    proxy = tuple(base.pop("proxy"))
    model = CarbonModel(node=node, ci_fab=float(ci_fab), proxy=proxy, **base)
    unknown = set(overrides) - set(_FIELDS)
    if unknown:
        raise DseError(f"unknown carbon constant(s) {', '.join(sorted(unknown))}; known: "
                       f"{', '.join(_FIELDS)}")
    for k, v in overrides.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or v < 0 or (k in ("alpha", "nand2_um2") and v == 0):
            raise DseError(f"carbon constant {k} must be a finite number >= 0"
                           f"{' (and > 0)' if k in ('alpha', 'nand2_um2') else ''}, not {v!r}")
    if overrides:
        model = replace(model, **{k: float(v) for k, v in overrides.items()},
                        proxy=tuple(p for p in proxy if p not in overrides))
    if model.ci_fab < 0 or not math.isfinite(model.ci_fab):
        raise DseError(f"ci_fab must be a finite number >= 0, not {ci_fab!r}")
    return model
