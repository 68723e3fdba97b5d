"""Energy of a layer on the array: MACs x energy per MAC (multiplier + adder + registers),
leakage, and SRAM/DRAM accesses x energy per access.

Multiplier: the switching-activity proxy of :mod:`hw.cost.power` (gate netlist from Yosys,
unit-delay simulation, logical-effort capacitances) on an operand *trace* that follows what one
PE sees in the dataflow: ``ws`` - the weight is held for a tile's ``M`` vectors while the
activations stream (``a = A[:, k]`` in row order, ``b = B[k, n]`` fixed), ``os`` - both operands
change every step (``a = A[m, :]``, ``b = B[:, n]`` along ``k``). Traces: ``uniform`` (random
operands, weight runs of 64 for ws) or ``network`` (the int8 operands of a quantised network's
GEMM layers, sampled in proportion to their MACs: :func:`network_operands`). By default
(``multiplier_energy = "calibrated"``) the proxy is scaled so that the exact multiplier of the same
width and signedness on uniform operands (os pattern) costs Horowitz's 8-bit multiply
(``mult8_pj x (N/8)^2``); the raw proxy energy is reported beside it.

Constants (:data:`DEFAULTS`, 45 nm, 0.9 V; override any of them in a TOML file, section
``[energy]``, or the clock in ``[clock]``): see :data:`SOURCES` and docs/perf.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from hw.cost.power import ENERGY_DEFAULTS as DEFAULTS      # one source of truth (hw.gen too)
from hw.cost.power import ENERGY_SOURCES as SOURCES
from hw.cost.power import hamming as _hamming
from hw.cost.power import register_bits as _register_bits
from hw.cost.power import uniform_trace

from .errors import PerfError
from .memory import Buffers, Traffic
from .schedule import ArraySpec, Schedule
from .workload import Layer

__all__ = ["DEFAULTS", "SOURCES", "EnergyConfig", "load_energy_config", "TRACES",
           "uniform_trace", "network_operands", "network_trace", "MultiplierEnergy",
           "multiplier_energy", "sram_pj_per_byte", "layer_energy", "register_bits"]

TRACES = ("network", "uniform")
MULT_MODES = ("calibrated", "proxy")


@dataclass(frozen=True)
class EnergyConfig:
    """Energy constants (:data:`DEFAULTS`); ``source`` says where the overrides came from."""

    clock_mhz: float = DEFAULTS["clock_mhz"]
    mult8_pj: float = DEFAULTS["mult8_pj"]
    add32_pj: float = DEFAULTS["add32_pj"]
    ff_clock_fj: float = DEFAULTS["ff_clock_fj"]
    ff_toggle_fj: float = DEFAULTS["ff_toggle_fj"]
    sram_8kb_pj: float = DEFAULTS["sram_8kb_pj"]
    sram_32kb_pj: float = DEFAULTS["sram_32kb_pj"]
    sram_1mb_pj: float = DEFAULTS["sram_1mb_pj"]
    dram_pj_per_byte: float = DEFAULTS["dram_pj_per_byte"]
    multiplier_energy: str = DEFAULTS["multiplier_energy"]
    psum_toggle_fraction: float = DEFAULTS["psum_toggle_fraction"]
    source: str = "defaults"

    def __post_init__(self):
        for name in DEFAULTS:
            v = getattr(self, name)
            if name == "multiplier_energy":
                if v not in MULT_MODES:
                    raise PerfError(f"energy config: multiplier_energy must be one of "
                                    f"{', '.join(MULT_MODES)}, not {v!r}")
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v < 0 or (name == "clock_mhz" and v == 0) or v > 1e9:
                raise PerfError(f"energy config: {name} must be a finite non-negative number"
                                f"{' (> 0)' if name == 'clock_mhz' else ''}, not {v!r}")
        if self.psum_toggle_fraction > 1:
            raise PerfError("energy config: psum_toggle_fraction must be at most 1")

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in DEFAULTS} | {"source": self.source}


def load_energy_config(path) -> EnergyConfig:
    """An :class:`EnergyConfig` from a TOML file: ``[energy]`` keys of :data:`DEFAULTS` (any
    subset) and ``[clock] mhz``. Unknown keys or sections are an error (a typo must not be
    silently ignored)."""
    import tomllib

    p = Path(path)
    if not p.is_file():
        raise PerfError(f"energy config {p} does not exist (or is not a regular file)")
    try:
        with open(p, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise PerfError(f"energy config {p} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PerfError(f"cannot read energy config {p}: {exc}") from None
    unknown = sorted(set(data) - {"energy", "clock"})
    if unknown:
        raise PerfError(f"energy config {p}: unknown section(s) {', '.join(unknown)} "
                        "(known: [energy], [clock])")
    values = {}
    for section, allowed in (("energy", set(DEFAULTS) - {"clock_mhz"}), ("clock", {"mhz"})):
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise PerfError(f"energy config {p}: {section} must be a table")
        bad = sorted(set(table) - allowed)
        if bad:
            raise PerfError(f"energy config {p}: unknown key(s) {', '.join(bad)} in "
                            f"[{section}]; known: {', '.join(sorted(allowed))}")
        for key, v in table.items():
            values["clock_mhz" if section == "clock" else key] = v
    return EnergyConfig(**values, source=str(p))


def sram_pj_per_byte(size_kb: float, cfg: EnergyConfig) -> float:
    """Energy per byte of an SRAM of ``size_kb`` KiB: Horowitz's 64-bit access energies at 8 KB,
    32 KB and 1 MB, interpolated (and extrapolated) linearly in log(size) - log(energy)."""
    pts = [(math.log(8), math.log(cfg.sram_8kb_pj)), (math.log(32), math.log(cfg.sram_32kb_pj)),
           (math.log(1024), math.log(cfg.sram_1mb_pj))]
    x = math.log(size_kb)
    (x0, y0), (x1, y1) = (pts[0], pts[1]) if x <= pts[1][0] else (pts[1], pts[2])
    return math.exp(y0 + (y1 - y0) * (x - x0) / (x1 - x0)) / 8.0


# -- operand traces -------------------------------------------------------------------------------
def network_operands(model: str = "digits-cnn", images: int = 8, seed: int = 0) -> dict:
    """``{layer: (A, B)}``: the int8 GEMM operands (activation matrix ``A (M x K)``, weight
    matrix ``B (K x N)``) of built-in :mod:`sim.dnn` model ``model`` quantised as
    :class:`sim.dnn.QuantizedModel` does, on ``images`` digits test images."""
    from sim.dnn import QuantizedModel, load_digits_split, load_model

    data = load_digits_split(seed)
    q = QuantizedModel(load_model(model), data.x_calib)
    _, records = q.run(data.x_test[:images], capture=True)
    return {name: (np.asarray(r["a"], np.int64), np.asarray(r["b"], np.int64))
            for name, r in records.items()}


def network_trace(operands: dict, dataflow: str, length: int = 8192, seed: int = 0,
                  max_run: int = 256) -> dict:
    """A PE's operand sequence (module docstring) sampled from ``operands`` (``{layer: (A,
    B)}``), layers picked in proportion to their MACs, ``length`` pairs."""
    names = sorted(operands)
    macs = np.array([operands[n][0].shape[0] * operands[n][0].shape[1] * operands[n][1].shape[1]
                     for n in names], dtype=np.float64)
    rng = np.random.default_rng(seed)
    a_parts, b_parts, total = [], [], 0
    while total < length:
        a_mat, b_mat = operands[names[rng.choice(len(names), p=macs / macs.sum())]]
        m, k = a_mat.shape
        n = b_mat.shape[1]
        if dataflow == "ws":
            kk, nn = int(rng.integers(k)), int(rng.integers(n))
            run = min(m, max_run)
            start = int(rng.integers(m - run + 1))
            a = a_mat[start:start + run, kk]
            b = np.full(run, b_mat[kk, nn], dtype=np.int64)
        else:
            mm, nn = int(rng.integers(m)), int(rng.integers(n))
            a, b = a_mat[mm, :], b_mat[:, nn]
        a_parts.append(a)
        b_parts.append(b)
        total += len(a)
    return {"a": np.concatenate(a_parts)[:length], "b": np.concatenate(b_parts)[:length]}


# -- multiplier energy ---------------------------------------------------------------------------
@dataclass(frozen=True)
class MultiplierEnergy:
    """Per-operation energy of one multiplier on one trace (pJ), with the proxy's raw
    figures."""

    name: str
    pj: float                   # the figure used (calibrated or raw, per the config)
    proxy_pj: float             # raw switching energy of the gate netlist
    reference_pj: float | None  # raw proxy of the exact multiplier, uniform os operands
    gate_area: float            # NAND2 equivalents of the multiplier
    toggles: float              # net toggles per operation
    act_toggle_bits: float      # mean Hamming distance of consecutive a / b operands
    weight_toggle_bits: float
    trace: str
    delay: str
    cached: bool = field(default=False, compare=False)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "cached"}


def multiplier_energy(spec, trace: dict, *, cfg: EnergyConfig, trace_name: str,
                      delay: str = "unit", cache=None) -> MultiplierEnergy:
    """Energy per multiplication of ``spec`` on ``trace`` (``{"a", "b"}`` arrays), from the
    gate-level proxy (:func:`hw.cost.power.multiplier_pj`; Yosys, cached)."""
    from hw.cost.power import multiplier_pj

    r = multiplier_pj(spec, trace, mode=cfg.multiplier_energy, mult8_pj=cfg.mult8_pj,
                      delay=delay, cache=cache)
    return MultiplierEnergy(spec.portable_name, r["pj"], r["proxy_pj"], r["reference_pj"],
                            r["gate_area"], r["toggles"], _hamming(trace["a"], spec.width),
                            _hamming(trace["b"], spec.width), trace_name, delay, r["cached"])


def register_bits(array: ArraySpec, width: int, acc_width: int) -> dict:
    """Flip-flops per PE clocked every cycle (:func:`hw.cost.power.register_bits`)."""
    return _register_bits(array.dataflow, width, acc_width)


def layer_energy(layer: Layer, sched: Schedule, traffic: Traffic, array: ArraySpec,
                 buffers: Buffers, mult: MultiplierEnergy, cfg: EnergyConfig, *,
                 width: int, acc_width: int, pe_area: float) -> dict:
    """Energy of one layer in pJ by component (module docstring); ``pe_area`` is the PE's gate
    area (NAND2 equivalents) for the leakage-like term."""
    from hw.cost.power import LEAKAGE_NW_PER_GE

    macs = layer.macs
    bits = register_bits(array, width, acc_width)
    clocked = sum(bits.values())
    data_toggles = (mult.act_toggle_bits + (mult.weight_toggle_bits if bits["weight"] else 0)
                    + cfg.psum_toggle_fraction * acc_width)
    pe_cycles = sched.cycles * array.pes
    out = {
        "multiplier": macs * mult.pj,
        "adder": macs * cfg.add32_pj * acc_width / 32,
        "registers": (pe_cycles * clocked * cfg.ff_clock_fj
                      + macs * data_toggles * cfg.ff_toggle_fj) / 1000.0,
        "leakage": pe_cycles * pe_area * LEAKAGE_NW_PER_GE / cfg.clock_mhz / 1000.0,
        "sram": sum(traffic.sram_bytes[f"{op}_reads"] * sram_pj_per_byte(
                    getattr(buffers, f"{op}_kb"), cfg) for op in ("ifmap", "filter"))
        + (traffic.sram_bytes["ofmap_writes"] + traffic.sram_bytes["ofmap_reads"])
        * sram_pj_per_byte(buffers.ofmap_kb, cfg),
        "dram": traffic.dram_bytes * cfg.dram_pj_per_byte,
    }
    out["total"] = sum(out.values())
    return out


def with_clock(cfg: EnergyConfig, mhz: float | None) -> EnergyConfig:
    return cfg if mhz is None else replace(cfg, clock_mhz=mhz)
