"""JSON manifests written beside generated Verilog.

A manifest is what tests, the host driver and reports read instead of guessing: tool versions,
the generator arguments, the top module, every port (name, direction, width, meaning and payload
fields with bit offsets), latency/throughput in cycles, and each multiplier's description and
error metrics (:func:`sim.metrics.characterize`). Its text depends only on the arguments (no
paths, no timestamps), so regenerating gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from hw.mult import MultiplierSpec

__all__ = ["FORMAT", "tool_info", "multiplier_entry", "metrics_for", "array_manifest",
           "multiplier_manifest", "dumps", "load_manifest", "energy_entry"]

FORMAT = "axmtoolkit-manifest/1"
#: Operand widths up to this are characterised exhaustively; wider ones from seeded samples.
EXHAUSTIVE_MAX_WIDTH = 10
SAMPLED_PAIRS = 1 << 20


def tool_info() -> dict:
    import amaranth
    try:
        from importlib.metadata import version
        own = version("axmtoolkit")
    except Exception:  # not installed (running from a checkout)
        own = "unknown"
    return {"name": "axmtoolkit", "version": own, "amaranth": amaranth.__version__}


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def metrics_for(spec: MultiplierSpec) -> dict:
    """Error metrics of ``spec`` (uniform operands): exhaustive up to 10-bit operands, else
    ``2**20`` pairs sampled with seed 0. NaN/inf become ``null``."""
    from sim.metrics import characterize  # lazily: hw must not need sim at import time

    if spec.width <= EXHAUSTIVE_MAX_WIDTH:
        m = characterize(spec)
    else:
        m = characterize(spec, sample=SAMPLED_PAIRS, seed=0)
    return {k: _finite(v) for k, v in m.as_dict().items()}


def multiplier_entry(spec: MultiplierSpec, **extra) -> dict:
    return {"name": spec.portable_name, "full_name": spec.full_name, "spec": spec.describe(),
            "metrics": metrics_for(spec), **extra}


def _common(kind: str, top: str, verilog_file: str, verilog_text: str, arguments: dict,
            command: str) -> dict:
    return {"format": FORMAT, "tool": tool_info(), "kind": kind, "command": command,
            "arguments": arguments, "top": top, "verilog": verilog_file,
            "verilog_sha256": hashlib.sha256(verilog_text.encode()).hexdigest(),
            "clock": {"port": "clk", "edge": "rising"} if kind == "array" else None,
            "reset": {"port": "rst", "type": "synchronous, active high"}
            if kind == "array" else None}


def array_manifest(array, *, top: str, verilog_file: str, verilog_text: str, arguments: dict,
                   command: str, assignment: dict) -> dict:
    """Manifest of a :class:`hw.systolic.SystolicArray`. ``assignment`` says which PEs use
    which multiplier: ``{"per": "all"|"row"|"col", "names": [...]}``."""
    manifest = _common("array", top, verilog_file, verilog_text, arguments, command)
    streams = {}
    for port in array.interface():
        stem, sep, member = port["name"].partition("__")
        if sep:
            streams.setdefault(stem, {"direction": "input" if stem != "results" else "output"})
            streams[stem][member] = port["name"]
    per = assignment["per"]
    entries = []
    for spec in array.distinct_specs():
        if per == "all":
            where = "all PEs"
        else:
            idx = [i for i, name in enumerate(assignment["names"])
                   if name == spec.portable_name]
            where = f"{per}s {idx}"
        entries.append(multiplier_entry(spec, used_by=where))
    manifest.update({
        "array": {"rows": array.rows, "cols": array.cols, "dataflow": array.dataflow,
                  "operand_width": array.operand_width, "signed": array.signed,
                  "acc_width": array.acc_width, "overflow": array.overflow,
                  "pipeline": array.pipeline, "multipliers_per": per,
                  "multiplier_names": assignment["names"],
                  "product": "mult(a=activation/row operand, b=weight/column operand)",
                  "golden_model": "sim.golden.ArrayModel"},
        "ports": array.interface(),
        "streams": streams,
        "timing": array.timing(),
        "multipliers": entries,
    })
    return manifest


def multiplier_manifest(spec: MultiplierSpec, *, top: str, verilog_file: str,
                        verilog_text: str, arguments: dict, command: str) -> dict:
    """Manifest of a stand-alone combinational multiplier (``spec.circuit()``)."""
    manifest = _common("multiplier", top, verilog_file, verilog_text, arguments, command)
    kind = "two's-complement" if spec.signed else "unsigned"
    n = spec.width
    manifest.update({
        "ports": [
            {"name": "a", "direction": "input", "width": n,
             "meaning": f"first operand ({kind}; the activation in arrays)"},
            {"name": "b", "direction": "input", "width": n,
             "meaning": f"second operand ({kind}; the weight in arrays)"},
            {"name": "p", "direction": "output", "width": 2 * n,
             "meaning": f"approximate product ({kind}), bit-exact with "
                        f"hw.mult.parse({spec.portable_name!r}).model(a, b)"},
        ],
        "timing": {"latency_cycles": 0, "latency": "combinational (no clock)",
                   "throughput": {"products_per_cycle": 1}},
        "multipliers": [multiplier_entry(spec)],
    })
    return manifest


def dumps(manifest: dict) -> str:
    return json.dumps(manifest, indent=2, allow_nan=False) + "\n"


def load_manifest(path) -> dict:
    """Read a manifest and check its format tag; raises ``ValueError`` on anything else (a
    FIFO or device is refused unread: reading one could wait forever)."""
    if not Path(path).is_file():
        raise ValueError(f"cannot read manifest {path}: it does not exist or is not a regular "
                         "file")
    try:
        manifest = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read manifest {path}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not an {FORMAT} manifest")
    return manifest


# -- opt-in energy figures (python -m hw.gen --energy; sim.perf issue) ---------------------------
def energy_entry(array, *, cache=None) -> dict:
    """The manifest field ``energy`` of a :class:`hw.systolic.SystolicArray`: energy per MAC of
    its PEs (multiplier from the gate-level switching proxy, adder, registers) and pJ per cycle
    of the whole array at full utilisation (leakage included), on uniform random operands
    shaped by the dataflow. Needs Yosys (the proxy's netlists, :mod:`hw.cost.power`); figures
    are cached. Whole networks: ``python -m sim.perf``."""
    from hw.cost.power import (ENERGY_DEFAULTS, ENERGY_SOURCES, LEAKAGE_NW_PER_GE, pe_energy,
                               pe_gate_area)

    pes = array.rows * array.cols
    counts = {}
    for row in array.grid:
        for spec in row:
            counts[spec] = counts.get(spec, 0) + 1
    mults, per_mac, leak_fj = [], dict.fromkeys(("multiplier", "adder", "registers"), 0.0), 0.0
    for spec, n in counts.items():
        e = pe_energy(spec, dataflow=array.dataflow, acc_width=array.acc_width, cache=cache)
        area = pe_gate_area(spec, dataflow=array.dataflow, acc_width=array.acc_width,
                            overflow=array.overflow, pipeline=array.pipeline, cache=cache)
        mults.append({"name": spec.portable_name, "pes": n,
                      "pj_per_multiplication": round(e["multiplier"]["pj"], 5),
                      "proxy_pj_per_multiplication": round(e["multiplier"]["proxy_pj"], 5),
                      "multiplier_gate_area": e["multiplier"]["gate_area"],
                      "pe_gate_area": area})
        for k in per_mac:
            per_mac[k] += e["parts"][k] * n / pes
        leak_fj += n * area * LEAKAGE_NW_PER_GE / ENERGY_DEFAULTS["clock_mhz"]
    per_mac = {k: round(v, 5) for k, v in per_mac.items()}
    per_mac["total"] = round(sum(per_mac.values()), 5)
    leak = leak_fj / 1000.0
    return {
        "description": "energy of a busy PE per cycle (one MAC) and of the whole array per "
                       "cycle at full utilisation; multiplier: gate-level switching proxy "
                       "(Yosys generic gates, unit-delay simulation, logical-effort "
                       "capacitances, calibrated so that the exact multiplier costs "
                       f"{ENERGY_DEFAULTS['mult8_pj']} pJ x (N/8)^2); adder, registers: 45 nm "
                       "constants; operands uniform random (ws: weight held for 64 vectors, "
                       "os: both operands change every step)",
        "clock_mhz": ENERGY_DEFAULTS["clock_mhz"],
        "multipliers": mults,
        "pj_per_mac": per_mac,
        "leakage_pj_per_cycle": round(leak, 5),
        "pj_per_cycle": round(pes * per_mac["total"] + leak, 4),
        "sources": {k: ENERGY_SOURCES[k] for k in ("mult8_pj", "add32_pj", "ff_clock_fj",
                                                   "ff_toggle_fj")},
        "python": "hw.cost.power.pe_energy; networks: python -m sim.perf",
    }
