"""Whole-network evaluation: cycles, utilisation, memory traffic and energy of every layer and
their totals (the library behind ``python -m sim.perf``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .energy import (EnergyConfig, MultiplierEnergy, layer_energy, multiplier_energy,
                     network_trace, uniform_trace)
from .errors import PerfError
from .memory import Buffers, layer_traffic
from .schedule import ArraySpec, layer_schedule, scalesim_schedule
from .workload import Layer

__all__ = ["Target", "evaluate", "pe_gate_area", "ENERGY_PARTS"]

ENERGY_PARTS = ("multiplier", "adder", "registers", "leakage", "sram", "dram")


@dataclass(frozen=True)
class Target:
    """What the workload runs on: the array, its arithmetic and its buffers."""

    array: ArraySpec
    buffers: Buffers = field(default_factory=Buffers)
    width: int = 8
    signed: bool = True
    acc_width: int = 32
    overflow: str = "wrap"

    def describe(self) -> dict:
        return {**asdict(self.array), "width": self.width, "signed": self.signed,
                "acc_width": self.acc_width, "overflow": self.overflow,
                "buffers": asdict(self.buffers)}


def pe_gate_area(spec, target: Target, *, cache=None) -> float:
    """Gate-level proxy area of one PE of ``target`` (:func:`hw.cost.power.pe_gate_area`)."""
    from hw.cost.power import pe_gate_area as area

    return area(spec, dataflow=target.array.dataflow, acc_width=target.acc_width,
                overflow=target.overflow, pipeline=target.array.pipeline, cache=cache)


def _trace(spec, dataflow, trace, operands, seed):
    if trace == "uniform":
        return uniform_trace(spec, dataflow, seed=seed), "uniform"
    if operands is None:
        raise PerfError("a network trace needs operands (network_operands())")
    if (spec.width, spec.signed) != (8, True):
        raise PerfError("network traces hold int8 operands: use --trace uniform for "
                        f"{spec.width}-bit {'signed' if spec.signed else 'unsigned'} "
                        "multipliers")
    return network_trace(operands, dataflow, seed=seed), "network"


def evaluate(layers: list[Layer], target: Target, *, mults=("exact",), energy: bool = True,
             energy_cfg: EnergyConfig | None = None, trace: str = "network", operands=None,
             trace_label: str | None = None, delay: str = "unit", scalesim: bool = False,
             cache=None, seed: int = 0, name: str = "network") -> dict:
    """The report of ``layers`` on ``target`` (a JSON-able dict: ``layers``, ``totals``,
    ``multipliers``). ``mults``: multiplier names (energy per layer uses the first; ``totals``
    and ``comparison`` cover each). ``energy=False``: cycles and traffic only (no Yosys)."""
    from hw.mult import parse

    if not layers:
        raise PerfError("the workload has no layers")
    cfg = energy_cfg or EnergyConfig()
    array, buffers = target.array, target.buffers
    rows = []
    for layer in layers:
        sched = layer_schedule(layer, array)
        traffic = layer_traffic(layer, array, buffers)
        row = {**layer.as_dict(), **{k: v for k, v in sched.as_dict().items()
                                      if k not in ("schedule", "sram_reads")},
               "bubble_cycles": sched.cycles - sched.stall_free_cycles,
               "sram": traffic.sram, "sram_bytes": traffic.sram_bytes, "dram": traffic.dram,
               "dram_bytes": traffic.dram_bytes, "resident": traffic.resident,
               "_sched": sched, "_traffic": traffic, "_layer": layer}
        if scalesim:
            s = scalesim_schedule(layer, array)
            row["scalesim"] = {"cycles": s.cycles, "folds": s.folds,
                               "mapping_util": s.mapping_util, "compute_util": s.temporal_util,
                               "overall_util": s.overall_util, "sram_requests": s.sram_reads}
        rows.append(row)
    totals = {"layers": len(rows), "macs": sum(r["macs"] for r in rows),
              "cycles": sum(r["cycles"] for r in rows),
              "stall_free_cycles": sum(r["stall_free_cycles"] for r in rows),
              "ideal_cycles": sum(r["ideal_cycles"] for r in rows),
              "dram_bytes": sum(r["dram_bytes"] for r in rows),
              "sram_bytes": sum(sum(r["sram_bytes"].values()) for r in rows)}
    totals["overall_util"] = totals["macs"] / (array.pes * totals["cycles"])
    totals["time_us"] = totals["cycles"] / cfg.clock_mhz
    if scalesim:
        totals["scalesim_cycles"] = sum(r["scalesim"]["cycles"] for r in rows)
    report = {"workload": name, "target": target.describe(), "clock_mhz": cfg.clock_mhz,
              "layers": rows,
              "totals": totals, "energy_config": cfg.as_dict() if energy else None,
              "multipliers": [], "comparison": []}
    if energy:
        names = list(dict.fromkeys(mults))
        for i, mname in enumerate(names):
            spec = parse(mname, width=target.width, signed=target.signed)
            tr, label = _trace(spec, array.dataflow, trace, operands, seed)
            me: MultiplierEnergy = multiplier_energy(spec, tr, cfg=cfg, delay=delay,
                                                     trace_name=trace_label or label,
                                                     cache=cache)
            area = pe_gate_area(spec, target, cache=cache)
            parts_total = dict.fromkeys(ENERGY_PARTS, 0.0)
            for row in rows:
                e = layer_energy(row["_layer"], row["_sched"], row["_traffic"], array,
                                 buffers, me, cfg, width=target.width,
                                 acc_width=target.acc_width, pe_area=area)
                for k in ENERGY_PARTS:
                    parts_total[k] += e[k]
                if i == 0:
                    row["energy_pj"] = e
            total = sum(parts_total.values())
            entry = {**me.as_dict(), "pe_gate_area": area, "energy_pj": parts_total,
                     "total_pj": total, "pj_per_mac": total / totals["macs"],
                     "compute_pj_per_mac": (parts_total["multiplier"] + parts_total["adder"]
                                            + parts_total["registers"]) / totals["macs"],
                     "pj_per_cycle": total / totals["cycles"],
                     "power_mw": total / totals["cycles"] * cfg.clock_mhz / 1e3}
            report["multipliers"].append(entry)
        first = report["multipliers"][0]
        totals["energy_pj"] = dict(first["energy_pj"], total=first["total_pj"])
        totals["energy_per_mac_pj"] = first["pj_per_mac"]
        totals["power_mw"] = first["power_mw"]
        base = first["total_pj"]
        report["comparison"] = [{"multiplier": m["name"], "total_pj": m["total_pj"],
                                 "pj_per_mac": m["pj_per_mac"],
                                 "multiplier_pj": m["pj"],
                                 "relative_to_first": m["total_pj"] / base}
                                for m in report["multipliers"]]
    for row in rows:
        for key in ("_sched", "_traffic", "_layer"):
            row.pop(key)
    return report
