"""Hardware side of a design point: area, latency, energy, embodied carbon.

Everything other packages provide goes through the small adapters here (one edit when their API
changes), and what is unavailable degrades to a labelled fallback:

* **Area** (NAND2 equivalents, gate-level proxy of :mod:`hw.cost.synth`): the bank of a point is
  one ``rows x cols`` array per distinct multiplier, so ``area = sum over its arrays of
  rows * cols * PE area``. Sources (``area=``): ``pe`` - one PE (multiplier, adder, registers;
  :func:`hw.cost.power.pe_gate_area`), ``mult`` - the multiplier alone (:func:`hw.cost.synthesize`,
  target ``gate``), both synthesised with Yosys once and cached by ``hw.cost``; ``table:FILE`` -
  the ``gate_area`` column of a ``hw.cost`` sweep CSV (``name,signed,gate_area,...``; the
  multiplier alone), no tool run. Edges, buffers and the bank's routing are not counted. A
  corrected array (``--correction``) adds its correction logic: the gate area of the whole
  ``rows x cols`` array with the correction minus the same array without it (both synthesised
  by ``hw.cost``, cached; each multiplier's own default format, where the bank shares one).
* **Latency**: cycles of batch-1 inference, layer by layer, on the point's array from
  :func:`sim.perf.layer_schedule` (the RTL's schedule), at ``sim.perf``'s clock (default
  :data:`hw.cost.power.ENERGY_DEFAULTS` ``clock_mhz``). Without ``sim.perf``: ideal cycles
  ``ceil(MACs / PEs)`` (labelled ``"ideal"``).
* **Energy** (pJ per inference): ``sim.perf``'s per-layer energy (multiplier switching proxy,
  adder, registers, leakage of the active array, SRAM, DRAM) with each layer's own multiplier;
  idle arrays of a bank are taken as power-gated (no leakage). Needs Yosys (cached).
* **Carbon**: :mod:`sim.dse.carbon` on the point's total gate area; carbon-delay product
  ``cdp = carbon (g) x latency (s)``.

Not counted for a corrected array: the one extra cycle of latency per tile and the energy of
the correction logic (its area, and so its embodied carbon, is counted).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from .carbon import CarbonModel
from .errors import DseError

__all__ = ["Hardware", "AREA_SOURCES", "perf_available"]

AREA_SOURCES = ("pe", "mult", "table:FILE")


def perf_available() -> bool:
    try:
        import sim.perf  # noqa: F401
        from sim.perf import layer_schedule  # noqa: F401
    except Exception:   # noqa: BLE001 - any import failure: fall back
        return False
    return True


def _read_table(path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise DseError(f"area table {path}: {'is not a file' if p.exists() else 'does not exist'}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DseError(f"area table {path}: cannot read it ({exc})") from None
    rows = list(csv.DictReader(text.splitlines()))
    if not rows or not {"name", "gate_area"} <= set(rows[0]):
        raise DseError(f"area table {path}: needs a CSV header with name and gate_area "
                       "(hw.cost sweep output)")
    table = {}
    for r in rows:
        if str(r.get("signed", "True")).strip().lower() not in ("true", "1", "yes", "signed"):
            continue
        try:
            v = float(r["gate_area"])
        except (TypeError, ValueError):
            raise DseError(f"area table {path}: gate_area {r['gate_area']!r} of "
                           f"{r['name']!r} is not a number") from None
        if not math.isfinite(v) or v <= 0:
            raise DseError(f"area table {path}: gate_area of {r['name']!r} must be > 0")
        table[r["name"].strip()] = v
    return table


class Hardware:
    """Area/latency/energy/carbon of points on one network (module docstring)."""

    def __init__(self, graph, *, area: str = "pe", carbon: CarbonModel, energy: bool = False,
                 model_name: str | None = None, cache=None):
        self.graph = graph
        self.carbon = carbon
        self.energy_enabled = energy
        self.model_name = model_name
        self.cache = cache
        self.area_source = area
        self._table = None
        if area.startswith("table:"):
            self._table = _read_table(area[len("table:"):])
        elif area not in ("pe", "mult"):
            raise DseError(f"unknown area source {area!r}; choose pe, mult or table:FILE")
        self.perf = perf_available()
        if energy and not self.perf:
            raise DseError("energy needs sim.perf, which cannot be imported here")
        self._pe_area = {}
        self._corr_area = {}
        self._cycles = {}
        self._energy = {}
        self._layers = None

    def check_names(self, names) -> None:
        """Refuse candidates the area table lacks (before any search)."""
        if self._table is not None:
            missing = [n for n in names if n not in self._table]
            if missing:
                raise DseError(f"area table {self.area_source[6:]} has no signed entry for "
                               f"{', '.join(missing)}")

    # -- area -------------------------------------------------------------------------------
    def pe_area(self, name: str, dataflow: str, acc_width: int) -> float:
        key = (name, dataflow, acc_width) if self._table is None else (name,)
        if key not in self._pe_area:
            self._pe_area[key] = self._compute_area(name, dataflow, acc_width)
        return self._pe_area[key]

    def _compute_area(self, name, dataflow, acc_width) -> float:
        if self._table is not None:
            return self._table[name]
        from hw.mult import parse
        spec = parse(name, width=8, signed=True)
        if self.area_source == "pe":
            from hw.cost.power import pe_gate_area
            return float(pe_gate_area(spec, dataflow=dataflow, acc_width=acc_width,
                                      cache=self.cache))
        from hw.cost import multiplier, synthesize
        return float(synthesize(multiplier(spec), "gate", cache=self.cache).gate_area)

    def correction_area(self, name: str, mode: str, rows: int, cols: int, dataflow: str,
                        acc_width: int) -> float:
        """Gate area of the correction logic of one ``rows x cols`` array of ``name``."""
        key = (name, mode, rows, cols, dataflow, acc_width)
        if key not in self._corr_area:
            from hw.cost import array, synthesize
            from hw.mult import parse
            spec = parse(name, width=8, signed=True)
            with_c, plain = (synthesize(array(spec, rows, cols, dataflow=dataflow,
                                              acc_width=acc_width, correction=c), "gate",
                                        cache=self.cache).gate_area for c in (mode, "none"))
            self._corr_area[key] = float(with_c - plain)
        return self._corr_area[key]

    def area(self, point) -> float:
        total = 0.0
        for m in point.mults:
            total += point.rows * point.cols * self.pe_area(m, point.dataflow, point.acc_width)
            if point.corrected(m):
                total += self.correction_area(m, point.correction, point.rows, point.cols,
                                              point.dataflow, point.acc_width)
        return float(total)

    # -- latency ------------------------------------------------------------------------------
    def _perf_layers(self):
        if self._layers is None:
            if self.perf:
                from sim.perf import layers_from_graph
                self._layers = layers_from_graph(self.graph, batch=1)
            else:
                self._layers = None
        return self._layers

    def clock_mhz(self) -> float:
        try:
            from hw.cost.power import ENERGY_DEFAULTS
            return float(ENERGY_DEFAULTS["clock_mhz"])
        except Exception:   # noqa: BLE001
            return 100.0

    def cycles(self, point) -> dict:
        """``{layer: cycles}`` of batch-1 inference on the point's array."""
        key = (point.rows, point.cols, point.dataflow)
        if key not in self._cycles:
            if self.perf:
                from sim.perf import ArraySpec, layer_schedule
                arr = ArraySpec(point.rows, point.cols, point.dataflow)
                self._cycles[key] = {l.name: int(layer_schedule(l, arr).cycles)
                                     for l in self._perf_layers()}
            else:
                out = {}
                for node in self.graph.gemm_nodes():
                    w = node.attrs["W"]
                    macs = int(w.size) * self._rows_per_image(node)
                    out[node.name] = -(-macs // (point.rows * point.cols))
                self._cycles[key] = out
        return self._cycles[key]

    def _rows_per_image(self, node) -> int:     # ideal fallback only: output pixels
        import numpy as np
        from sim.dnn.layers import run_float
        _, env = run_float(self.graph, np.zeros((1,) + tuple(self.graph.input_shape)), keep=True)
        out = env[node.output]
        return int(np.prod(out.shape[2:])) if out.ndim == 4 else 1

    def latency_us(self, point) -> float:
        return sum(self.cycles(point).values()) / self.clock_mhz()

    # -- energy -------------------------------------------------------------------------------
    def _layer_energy(self, name, point) -> dict:
        key = (name, point.rows, point.cols, point.dataflow, point.acc_width)
        if key not in self._energy:
            from sim.perf import ArraySpec
            from sim.perf.model import Target, evaluate
            target = Target(ArraySpec(point.rows, point.cols, point.dataflow),
                            acc_width=point.acc_width)
            operands = None
            trace = "uniform"
            if self.model_name in ("digits-cnn", "digits-mlp"):
                from sim.perf.energy import network_operands
                operands, trace = network_operands(self.model_name), "network"
            rep = evaluate(self._perf_layers(), target, mults=(name,), trace=trace,
                           operands=operands, cache=self.cache)
            self._energy[key] = {r["name"]: float(r["energy_pj"]["total"])
                                 for r in rep["layers"]}
        return self._energy[key]

    def energy_pj(self, point) -> float:
        total = 0.0
        for layer, name in point.assign:
            total += self._layer_energy(name, point)[layer]
        return total

    # -- all metrics --------------------------------------------------------------------------
    def metrics(self, point, objectives=()) -> dict:
        area = self.area(point)
        lat = self.latency_us(point)
        c = self.carbon.of_gates(area)
        out = {"area": area, "area_mm2": c["area_mm2"], "latency_us": lat,
               "cycles": int(sum(self.cycles(point).values())), "carbon_g": c["carbon_g"],
               "yield": c["yield"], "cdp": c["carbon_g"] * lat * 1e-6}
        if self.energy_enabled or "energy" in objectives:
            out["energy_pj"] = self.energy_pj(point)
        return out

    def describe(self) -> dict:
        return {"area_source": self.area_source, "area_unit": "NAND2 equivalents (gate proxy)",
                "latency": "sim.perf layer_schedule" if self.perf else "ideal ceil(MACs/PEs)",
                "clock_mhz": self.clock_mhz(), "carbon": self.carbon.as_dict(),
                "bank": "one rows x cols array per distinct multiplier; idle arrays "
                        "power-gated"}
