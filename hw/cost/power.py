"""Switching-activity power proxy of combinational circuits (multipliers) from their gate netlist.

Flow
----
1. **Netlist**: the design goes through the gate-level proxy of :mod:`hw.cost.synth` (``synth
   -flatten``, ``abc -g`` with :data:`hw.cost.synth.ABC_GATES`: Yosys' generic 2-input gates
   ``$_AND_ .. $_MUX_`` plus ``$_NOT_``/``$_BUF_``) and Yosys writes it as JSON (``write_json``).
   The netlist is cached (:mod:`hw.cache`, kind ``power-netlist``) by Yosys version, Verilog hash
   and script, like every other cost figure.
2. **Simulation**: :class:`GateNetlist` simulates it in numpy, *bit-parallel*: every net is a row
   of ``uint64`` words, bit ``i`` of the row being the net's value for operand pair ``i``, so one
   vectorised operation per gate type and logic level evaluates 64 pairs per word. Why numpy and
   not Verilator: the netlist has a few hundred gates and no state, so a levelised numpy
   evaluation of 10^4-10^5 operand pairs takes milliseconds, needs no compiler or simulator
   build (a test stays cheap), and gives per-net toggle counts directly; Verilator would need a
   build per netlist and per-net toggle dumping (VCD) to get the same numbers.
   Two timing models (``delay=``):

   * ``"zero"``: functional toggles only - each net toggles at most once per new operand pair
     (``popcount(old ^ new)``);
   * ``"unit"`` (default): every gate has a delay of one step; after the inputs change all gates
     are re-evaluated from the previous step's values until nothing moves, and every transition
     on every net counts, so *glitches* (hazards on unbalanced paths, large in array multipliers)
     are included. The final state equals the zero-delay result.

3. **Energy**: each toggle of a net costs ``1/2 C V^2`` (half of ``C V^2`` is dissipated on the
   rising and half on the falling transition), with ``C`` the net's capacitance proxy from
   :data:`CAPACITANCE_UNITS` (logical effort), times :data:`UNIT_CAPACITANCE_FF`. Dynamic energy
   per operation = the sum over nets of ``toggles x 1/2 C V^2`` divided by the number of operand
   pairs applied. Leakage-like term: gate area (NAND2 equivalents, :mod:`hw.cost.synth`) times
   :data:`LEAKAGE_NW_PER_GE`; energy per cycle = that power times the clock period.

Capacitance proxy (:data:`CAPACITANCE_UNITS`)
---------------------------------------------
In units of the input capacitance of a unit inverter. An input pin loads its net with the gate's
*logical effort* ``g`` of that input, a gate output with its *parasitic delay* ``p`` (output
diffusion capacitance), both the textbook static-CMOS values of Weste & Harris, *CMOS VLSI
Design* (4th ed., 2011), Tables 4.2 and 4.3 (also Sutherland, Sproull & Harris, *Logical Effort*,
1999): INV ``g=1, p=1``; NAND2 ``g=4/3, p=2``; NOR2 ``g=5/3, p=2``; XOR2/XNOR2 ``g=4, p=4``;
2:1 MUX (tristate) ``g=2, p=4``. Yosys gates without a single-stage CMOS cell are two stages, and
the internal node is charged to the net whose toggle moves it: ``$_AND_`` = NAND2+INV and
``$_OR_`` = NOR2+INV (output load ``p + g_inv + p_inv = 4``), ``$_ANDNOT_`` (``A & ~B``) =
NOR2(INV(A), B) and ``$_ORNOT_`` (``A | ~B``) = NAND2(INV(A), B) (pin ``A`` loads its net with
the inverter's input, output and the NOR/NAND input: ``1 + 1 + g``), ``$_MUX_``'s select also
drives its complement (``2 + 1 + 2 = 5``), ``$_BUF_`` = two inverters. A primary output drives
one adder input (an XOR2, ``g = 4``: :data:`OUTPUT_LOAD_UNITS`). Wires are not modelled
(pre-layout).

``UNIT_CAPACITANCE_FF`` is calibrated on the Nangate 45 nm Open Cell Library (typical corner):
NAND2_X1 input pins A1/A2 have 1.599032 / 1.664199 fF, so the unit is their mean divided by
``g = 4/3`` (1.2237 fF). ``LEAKAGE_NW_PER_GE``: the same library's INV_X1 leaks 14.353185 nW
(``cell_leakage_power``) on 0.532 um^2, i.e. 21.53 nW per NAND2 equivalent (0.798 um^2).
``VDD`` defaults to 0.9 V, the supply of the 45 nm energy table of Horowitz (ISSCC 2014) that
:mod:`sim.perf` combines these figures with. All of this is a *proxy*: it ranks circuits and
gives the right order of magnitude; docs/perf.md compares it with published post-layout figures.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from hw.cache import Cache

from . import tools
from .designs import Design
from .errors import CostError, ToolError
from .synth import NANGATE45_AREA, gate_area, run_yosys, synth_commands

__all__ = ["PROXY_VERSION", "CAPACITANCE_UNITS", "OUTPUT_LOAD_UNITS", "UNIT_CAPACITANCE_FF",
           "LEAKAGE_NW_PER_GE", "VDD", "DELAYS", "GateNetlist", "gate_netlist", "netlist_json",
           "PowerResult",
           "switching_energy", "operand_bits", "ENERGY_DEFAULTS", "ENERGY_SOURCES",
           "uniform_trace", "register_bits", "hamming", "multiplier_pj", "pe_energy",
           "pe_gate_area"]

#: Bumped when the meaning of a cached power figure changes.
PROXY_VERSION = 1

#: Per Yosys gate type: input-pin loads (``g``, unit-inverter input capacitances) and the
#: output load of the gate itself (``p`` plus internal nodes that follow the output). See the
#: module docstring for the sources and the two-stage decompositions.
CAPACITANCE_UNITS = {
    "$_NOT_": ({"A": 1.0}, 1.0),
    "$_BUF_": ({"A": 1.0}, 3.0),
    "$_NAND_": ({"A": 4 / 3, "B": 4 / 3}, 2.0),
    "$_NOR_": ({"A": 5 / 3, "B": 5 / 3}, 2.0),
    "$_AND_": ({"A": 4 / 3, "B": 4 / 3}, 4.0),
    "$_OR_": ({"A": 5 / 3, "B": 5 / 3}, 4.0),
    "$_ANDNOT_": ({"A": 1.0 + 1.0 + 5 / 3, "B": 5 / 3}, 2.0),
    "$_ORNOT_": ({"A": 1.0 + 1.0 + 4 / 3, "B": 4 / 3}, 2.0),
    "$_XOR_": ({"A": 4.0, "B": 4.0}, 4.0),
    "$_XNOR_": ({"A": 4.0, "B": 4.0}, 4.0),
    "$_MUX_": ({"A": 2.0, "B": 2.0, "S": 5.0}, 4.0),
}
#: A primary output drives one adder input (an XOR2 input, ``g = 4``).
OUTPUT_LOAD_UNITS = 4.0
#: Nangate 45 nm NAND2_X1 input capacitance (A1 1.599032 fF, A2 1.664199 fF) / (4/3).
UNIT_CAPACITANCE_FF = round((1.599032 + 1.664199) / 2 / (4 / 3), 4)
#: Nangate 45 nm INV_X1 leakage (14.353185 nW) per NAND2-equivalent area.
LEAKAGE_NW_PER_GE = round(14.353185 * NANGATE45_AREA["NAND2_X1"] / NANGATE45_AREA["INV_X1"], 3)
#: Supply voltage of the energy figures (V), as in Horowitz's 45 nm table.
VDD = 0.9
DELAYS = ("unit", "zero")

_OPS = {
    "$_NOT_": lambda a, b, s: ~a,
    "$_BUF_": lambda a, b, s: a,
    "$_NAND_": lambda a, b, s: ~(a & b),
    "$_NOR_": lambda a, b, s: ~(a | b),
    "$_AND_": lambda a, b, s: a & b,
    "$_OR_": lambda a, b, s: a | b,
    "$_ANDNOT_": lambda a, b, s: a & ~b,
    "$_ORNOT_": lambda a, b, s: a | ~b,
    "$_XOR_": lambda a, b, s: a ^ b,
    "$_XNOR_": lambda a, b, s: ~(a ^ b),
    "$_MUX_": lambda a, b, s: (a & ~s) | (b & s),       # Y = S ? B : A
}


def operand_bits(values, width: int) -> np.ndarray:
    """``(width, n)`` bit planes (bit ``i`` of the two's-complement ``width``-bit value)."""
    v = np.asarray(values, dtype=np.int64) & ((1 << width) - 1)
    return ((v[None, :] >> np.arange(width, dtype=np.int64)[:, None]) & 1).astype(np.uint8)


def _pack(planes: np.ndarray) -> np.ndarray:
    """``(k, n)`` 0/1 planes -> ``(k, ceil(n/64))`` uint64 words (sample ``i`` at word
    ``i // 64``, bit ``i % 64``; padding bits 0)."""
    k, n = planes.shape
    words = -(-n // 64)
    padded = np.zeros((k, words * 64), dtype=np.uint8)
    padded[:, :n] = planes
    packed = np.packbits(padded.reshape(k, words, 8, 8)[:, :, ::-1, ::-1], axis=-1,
                         bitorder="big")
    return packed.reshape(k, words, 8).view(">u8").reshape(k, words).astype(np.uint64)


class GateNetlist:
    """A flat combinational netlist of Yosys generic gates, read from ``write_json`` output.

    ``inputs`` / ``outputs``: port name -> list of net indices (LSB first). Nets 0 and 1 are
    the constants 0 and 1. Raises :class:`CostError` for sequential or unknown cells.
    """

    def __init__(self, yosys_json: dict, top: str = "top"):
        try:
            module = yosys_json["modules"][top]
            ports, cells = module["ports"], module["cells"]
        except (KeyError, TypeError):
            raise CostError(f"Yosys netlist has no module {top!r}") from None
        index = {"0": 0, "1": 1, "x": 0, "z": 0}

        def net(bit):
            key = str(bit)
            if key not in index:
                index[key] = len(index) - 2        # "x"/"z" share net 0
            return index[key]

        self.inputs, self.outputs = {}, {}
        for name, port in sorted(ports.items()):
            bits = [net(b) for b in port["bits"]]
            (self.inputs if port["direction"] == "input" else self.outputs)[name] = bits
        gates = []
        for name, cell in cells.items():
            kind = cell["type"]
            if kind not in _OPS:
                raise CostError(f"power proxy: cell {name} of type {kind} is not a combinational "
                                "generic gate (sequential designs are not simulated)")
            conn = {pin: net(bits[0]) for pin, bits in cell["connections"].items()}
            gates.append((kind, conn))
        self.net_count = len(index) - 2
        self.gates = gates
        self.cells = {}
        for kind, _ in gates:
            self.cells[kind] = self.cells.get(kind, 0) + 1
        self._levelize()
        self._capacitance()

    # -- structure ---------------------------------------------------------------------------
    def _levelize(self):
        driver = {}
        for i, (kind, conn) in enumerate(self.gates):
            if conn["Y"] in driver or conn["Y"] < 2:
                raise CostError("power proxy: a net has two drivers")
            driver[conn["Y"]] = i
        level = {n: 0 for bits in self.inputs.values() for n in bits}
        level[0] = level[1] = 0
        order, state = [], {}

        def visit(net):                          # iterative DFS: netlists can be deep
            stack = [(net, False)]
            while stack:
                n, done = stack.pop()
                if n in level:
                    continue
                if done:
                    kind, conn = self.gates[driver[n]]
                    level[n] = 1 + max(level[conn[p]] for p in conn if p != "Y")
                    order.append(driver[n])
                    continue
                if state.get(n) == "open":
                    raise CostError("power proxy: the netlist has a combinational loop")
                if n not in driver:
                    level[n] = 0                 # undriven net: constant 0
                    continue
                state[n] = "open"
                stack.append((n, True))
                kind, conn = self.gates[driver[n]]
                stack.extend((conn[p], False) for p in conn if p != "Y")

        for i, (_, conn) in enumerate(self.gates):
            visit(conn["Y"])
        self.depth = max([level[self.gates[i][1]["Y"]] for i in order], default=0)
        # gates grouped by (level, type) for the zero-delay sweep, by type for unit delay
        groups: dict = {}
        for i in order:
            kind, conn = self.gates[i]
            groups.setdefault((level[conn["Y"]], kind), []).append(conn)
        self._by_level = [(lv, kind, self._arrays(kind, conns))
                          for (lv, kind), conns in sorted(groups.items())]
        by_type: dict = {}
        for kind, conn in self.gates:
            by_type.setdefault(kind, []).append(conn)
        self._by_type = [(kind, self._arrays(kind, conns)) for kind, conns in by_type.items()]

    @staticmethod
    def _arrays(kind, conns):
        pins = ("A", "B", "S")
        out = {"Y": np.array([c["Y"] for c in conns], dtype=np.int64)}
        for p in pins:
            if p in conns[0]:
                out[p] = np.array([c[p] for c in conns], dtype=np.int64)
        return out

    def _capacitance(self):
        cap = np.zeros(self.net_count + 2)
        for kind, conn in self.gates:
            pins, own = CAPACITANCE_UNITS[kind]
            cap[conn["Y"]] += own
            for p, g in pins.items():
                cap[conn[p]] += g
        for bits in self.outputs.values():
            for n in bits:
                cap[n] += OUTPUT_LOAD_UNITS
        cap[:2] = 0.0                            # constants never toggle
        self.capacitance_units = cap

    # -- simulation ----------------------------------------------------------------------------
    def _inputs_packed(self, values: dict, count: int) -> np.ndarray:
        state = np.zeros((self.net_count + 2, -(-count // 64)), dtype=np.uint64)
        state[1] = ~np.uint64(0)
        for name, bits in self.inputs.items():
            if name not in values:
                raise CostError(f"power proxy: no values for input port {name!r}")
            planes = operand_bits(values[name], len(bits))
            state[bits] = _pack(planes)
        return state

    def _settle(self, state: np.ndarray) -> np.ndarray:
        for _, kind, idx in self._by_level:
            op = _OPS[kind]
            state[idx["Y"]] = op(state[idx["A"]], state[idx["B"]] if "B" in idx else None,
                                 state[idx["S"]] if "S" in idx else None)
        return state

    def evaluate(self, values: dict) -> dict:
        """Output ports' values (unsigned integers) for the input vectors ``values``
        (``{port: int array}``): the functional check of the netlist."""
        count = len(next(iter(values.values())))
        state = self._settle(self._inputs_packed(values, count))
        out = {}
        for name, bits in self.outputs.items():
            words = state[bits]
            planes = np.unpackbits(words.astype(">u8").view(np.uint8).reshape(len(bits), -1),
                                   axis=1, bitorder="big")
            planes = planes.reshape(len(bits), -1, 64)[:, :, ::-1].reshape(len(bits), -1)
            planes = planes[:, :count].astype(np.int64)
            out[name] = (planes << np.arange(len(bits), dtype=np.int64)[:, None]).sum(axis=0)
        return out

    def toggles(self, values: dict, *, delay: str = "unit") -> tuple[np.ndarray, int]:
        """Per-net toggle counts over the transitions ``values[i] -> values[i+1]`` and the
        number of transitions. ``delay``: ``"unit"`` (glitches counted) or ``"zero"``."""
        if delay not in DELAYS:
            raise CostError(f"unknown delay model {delay!r}; choose {' or '.join(DELAYS)}")
        count = len(next(iter(values.values())))
        if count < 2:
            raise CostError("power proxy: a trace needs at least two operand pairs")
        old = {k: np.asarray(v)[:-1] for k, v in values.items()}
        new = {k: np.asarray(v)[1:] for k, v in values.items()}
        n = count - 1
        before = self._settle(self._inputs_packed(old, n))
        if delay == "zero":
            after = self._settle(self._inputs_packed(new, n))
            return np.bitwise_count(before ^ after).sum(axis=1, dtype=np.int64), n
        state = self._inputs_packed(new, n)      # inputs switch; gates still hold old values
        input_rows = sorted({b for bits in self.inputs.values() for b in bits})
        counts = np.bitwise_count(before[input_rows] ^ state[input_rows]).sum(
            axis=1, dtype=np.int64)
        total = np.zeros(self.net_count + 2, dtype=np.int64)
        total[input_rows] += counts
        gate_rows = np.array([c["Y"] for _, c in self.gates], dtype=np.int64)
        state[gate_rows] = before[gate_rows]
        for _ in range(self.depth + 1):
            nxt = state.copy()
            for kind, idx in self._by_type:
                op = _OPS[kind]
                nxt[idx["Y"]] = op(state[idx["A"]], state[idx["B"]] if "B" in idx else None,
                                   state[idx["S"]] if "S" in idx else None)
            diff = nxt[gate_rows] ^ state[gate_rows]
            flips = np.bitwise_count(diff).sum(axis=1, dtype=np.int64)
            if not flips.any():
                break
            total[gate_rows] += flips
            state = nxt
        else:
            raise CostError("power proxy: the unit-delay simulation did not settle")
        return total, n


def _netlist_json(design: Design, cache: Cache, timeout: float | None) -> dict:
    return netlist_json(design.verilog, design.label, cache=cache, timeout=timeout,
                        sha256=design.verilog_sha256)


def netlist_json(verilog: str, label: str, *, cache: Cache, timeout: float | None = 1800,
                 sha256: str | None = None) -> dict:
    """The gate-level proxy netlist (Yosys JSON, cells and ports only) of the Verilog text
    ``verilog`` whose top module is ``top`` (Yosys, cached by tool version, text and script).
    :func:`gate_netlist` for a :class:`Design`; this entry point serves foreign netlists
    (e.g. EvoApproxLib's, benchmarks/bench_power_proxy.py)."""
    commands = synth_commands("gate") + ["write_json -compat-int netlist.json"]
    tool = tools.find_tool("yosys")
    version = tools.tool_version(tool, cache)
    digest = sha256 or hashlib.sha256(verilog.encode()).hexdigest()
    key = {"yosys": version, "verilog": digest, "commands": commands}
    hit = cache.get("power-netlist", key)
    if hit is not None:
        return hit
    with tools.build_folder(None, "axm-power-") as path:
        run_yosys(path, verilog, commands, timeout=timeout, label=label)
        try:
            netlist = json.loads((path / "netlist.json").read_text())
        except (OSError, ValueError) as err:
            raise ToolError(f"yosys wrote no readable netlist for {label} ({err})") \
                from None
    module = netlist.get("modules", {}).get("top", {})
    slim = {"modules": {"top": {"ports": module.get("ports", {}), "cells": {
        name: {"type": c["type"], "connections": c["connections"]}
        for name, c in module.get("cells", {}).items()}}}}
    cache.put("power-netlist", key, slim)
    return slim


def gate_netlist(design: Design, *, cache: Cache | None = None,
                 timeout: float | None = 1800) -> GateNetlist:
    """The gate-level proxy netlist of ``design`` (Yosys, cached)."""
    cache = Cache() if cache is None else cache
    return GateNetlist(_netlist_json(design, cache, timeout))


@dataclass
class PowerResult:
    """Energy of one circuit on one operand trace (see the module docstring)."""

    design: str
    delay: str
    operations: int                 # operand pairs applied (transitions)
    energy_fj: float                # dynamic energy per operation, femtojoules
    toggles: float                  # net toggles per operation
    gate_area: float                # NAND2 equivalents
    leakage_nw: float               # leakage-like power proxy, nanowatts
    cells: dict
    trace_sha256: str
    vdd: float = VDD
    unit_capacitance_ff: float = UNIT_CAPACITANCE_FF
    proxy_version: int = PROXY_VERSION
    cached: bool = field(default=False, compare=False)

    def leakage_fj_per_cycle(self, clock_mhz: float) -> float:
        """Leakage-like energy per clock cycle at ``clock_mhz`` (femtojoules)."""
        return self.leakage_nw / clock_mhz       # 1e-9 W / 1e6 Hz = 1e-15 J

    def as_dict(self) -> dict:
        value = asdict(self)
        value.pop("cached")
        return value


def _trace_digest(values: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(values):
        arr = np.ascontiguousarray(np.asarray(values[name], dtype=np.int64))
        h.update(name.encode() + b"\0" + arr.tobytes())
    return h.hexdigest()


def switching_energy(design: Design, values: dict, *, delay: str = "unit", vdd: float = VDD,
                     cache: Cache | None = None, timeout: float | None = 1800) -> PowerResult:
    """Dynamic energy per operation of ``design`` (combinational) on the operand trace
    ``values`` (``{input port: integer array}``, consecutive entries applied one after the
    other), plus its area and leakage proxy. Cached by netlist, trace and model."""
    if delay not in DELAYS:
        raise CostError(f"unknown delay model {delay!r}; choose {' or '.join(DELAYS)}")
    if not vdd > 0:
        raise CostError(f"supply voltage must be positive, not {vdd!r}")
    cache = Cache() if cache is None else cache
    digest = _trace_digest(values)
    commands = synth_commands("gate")
    key = {"verilog": design.verilog_sha256, "commands": commands, "trace": digest,
           "delay": delay, "vdd": vdd, "proxy": PROXY_VERSION,
           "capacitance": {k: [v[0], v[1]] for k, v in CAPACITANCE_UNITS.items()},
           "unit_ff": UNIT_CAPACITANCE_FF, "output_load": OUTPUT_LOAD_UNITS,
           "leak": LEAKAGE_NW_PER_GE}
    hit = cache.get("power", key)
    if hit is not None:
        return PowerResult(**{**hit, "design": design.label, "cached": True})
    netlist = gate_netlist(design, cache=cache, timeout=timeout)
    counts, n = netlist.toggles(values, delay=delay)
    unit_energy_fj = 0.5 * UNIT_CAPACITANCE_FF * vdd * vdd          # fF * V^2 = fJ
    energy = float((counts * netlist.capacitance_units).sum()) * unit_energy_fj / n
    area = gate_area(netlist.cells)
    result = PowerResult(design=design.label, delay=delay, operations=n,
                         energy_fj=round(energy, 4), toggles=round(float(counts.sum()) / n, 4),
                         gate_area=area, leakage_nw=round(area * LEAKAGE_NW_PER_GE, 3),
                         cells=dict(sorted(netlist.cells.items())), trace_sha256=digest, vdd=vdd)
    cache.put("power", key, result.as_dict())
    return result


# -- per-MAC energy of one PE (shared by sim.perf and the hw.gen manifest) -------------------------
#: 45 nm energy constants (pJ unless stated); :data:`ENERGY_SOURCES` says where each comes from.
ENERGY_DEFAULTS = {
    "clock_mhz": 1000.0,
    "mult8_pj": 0.2,
    "add32_pj": 0.1,
    "ff_clock_fj": round(8 * 0.5 * UNIT_CAPACITANCE_FF * VDD * VDD, 3),
    "ff_toggle_fj": round(6 * 0.5 * UNIT_CAPACITANCE_FF * VDD * VDD, 3),
    "sram_8kb_pj": 10.0,
    "sram_32kb_pj": 20.0,
    "sram_1mb_pj": 100.0,
    "dram_pj_per_byte": 160.0,
    "multiplier_energy": "calibrated",
    "psum_toggle_fraction": 0.25,
}

ENERGY_SOURCES = {
    "clock_mhz": "assumed clock for the leakage term and for time/power figures",
    "mult8_pj": "Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC "
                "2014: 8-bit integer multiply, 45 nm, 0.9 V (calibration point of the proxy)",
    "add32_pj": "Horowitz ISSCC 2014: 32-bit integer add 0.1 pJ; scaled by acc_width / 32",
    "ff_clock_fj": "estimate: a flip-flop's clock load of 4 unit-inverter input capacitances "
                   "(1.2237 fF, Nangate 45 nm NAND2_X1 / (4/3)) charged on both clock edges, "
                   "8 x 1/2 C V^2 at 0.9 V",
    "ff_toggle_fj": "estimate: 6 unit capacitances switched per output toggle of a flip-flop "
                    "(master/slave nodes and Q), 6 x 1/2 C V^2",
    "sram_8kb_pj": "Horowitz ISSCC 2014: 64-bit access of an 8 KB SRAM 10 pJ",
    "sram_32kb_pj": "Horowitz ISSCC 2014: 64-bit access of a 32 KB SRAM 20 pJ",
    "sram_1mb_pj": "Horowitz ISSCC 2014: 64-bit access of a 1 MB SRAM 100 pJ",
    "dram_pj_per_byte": "Horowitz ISSCC 2014: 32-bit DRAM read 640 pJ = 160 pJ/byte",
    "multiplier_energy": "'calibrated' (proxy scaled so that the exact multiplier on uniform "
                         "operands costs mult8_pj x (N/8)^2) or 'proxy' (raw switching energy)",
    "psum_toggle_fraction": "assumption: share of the accumulator register's bits that toggle "
                            "per MAC",
}


def uniform_trace(spec, dataflow: str, length: int = 8192, seed: int = 0, run: int = 64) -> dict:
    """Uniform random operands of ``spec``'s range as one PE sees them: ``os`` - both change
    every step; ``ws`` - the weight ``b`` is held for runs of ``run`` activations."""
    lo, hi = spec.operand_range
    rng = np.random.default_rng(seed)
    a = rng.integers(lo, hi + 1, size=length, dtype=np.int64)
    if dataflow == "ws":
        b = np.repeat(rng.integers(lo, hi + 1, size=-(-length // run), dtype=np.int64),
                      run)[:length]
    else:
        b = rng.integers(lo, hi + 1, size=length, dtype=np.int64)
    return {"a": a, "b": b}


def register_bits(dataflow: str, width: int, acc_width: int) -> dict:
    """Flip-flops per PE clocked every cycle by kind: ws - the passing activation and the
    partial sum (the weight registers change only at tile loads); os - both operands and the
    accumulator (the drain stage shifts only while draining)."""
    if dataflow == "ws":
        return {"act": width, "weight": 0, "acc": acc_width}
    return {"act": width, "weight": width, "acc": acc_width}


def hamming(values, width: int) -> float:
    """Mean Hamming distance of consecutive ``width``-bit values (register data toggles)."""
    v = np.asarray(values, dtype=np.int64) & ((1 << width) - 1)
    return float(np.bitwise_count((v[1:] ^ v[:-1]).astype(np.uint64)).mean())


def multiplier_pj(spec, trace: dict, *, mode: str = "calibrated", mult8_pj: float = 0.2,
                  delay: str = "unit", cache: Cache | None = None) -> dict:
    """Energy per multiplication of ``spec`` on ``trace`` in pJ: ``pj`` (calibrated or raw per
    ``mode``), ``proxy_pj`` (raw), ``reference_pj`` (raw proxy of the exact multiplier of the
    same width and signedness on uniform operands, both changing every step), gate area,
    toggles, and whether the figures came from the cache."""
    from hw.mult import parse

    from .designs import multiplier

    res = switching_energy(multiplier(spec), trace, delay=delay, cache=cache)
    pj, ref = res.energy_fj / 1000.0, None
    if mode == "calibrated":
        exact = parse("exact", width=spec.width, signed=spec.signed)
        ref = switching_energy(multiplier(exact), uniform_trace(exact, "os", seed=12345),
                               delay=delay, cache=cache).energy_fj / 1000.0
        pj = pj / ref * mult8_pj * (spec.width / 8) ** 2
    elif mode != "proxy":
        raise CostError(f"unknown multiplier energy mode {mode!r}; choose calibrated or proxy")
    return {"name": spec.portable_name, "pj": pj, "proxy_pj": res.energy_fj / 1000.0,
            "reference_pj": ref, "gate_area": res.gate_area, "toggles": res.toggles,
            "delay": delay, "cached": res.cached}


def pe_energy(spec, *, dataflow: str, acc_width: int, trace: dict | None = None,
              constants: dict | None = None, delay: str = "unit",
              cache: Cache | None = None) -> dict:
    """Energy of one busy PE per cycle (one MAC) in pJ, by part: ``multiplier`` (proxy on
    ``trace``, default :func:`uniform_trace` of the dataflow), ``adder`` (Horowitz 32-bit add
    scaled to ``acc_width``), ``registers`` (clock load of every PE flip-flop plus the data
    toggles of the operands and ``psum_toggle_fraction`` of the accumulator), ``total``."""
    c = dict(ENERGY_DEFAULTS, **(constants or {}))
    trace = uniform_trace(spec, dataflow) if trace is None else trace
    mult = multiplier_pj(spec, trace, mode=c["multiplier_energy"], mult8_pj=c["mult8_pj"],
                         delay=delay, cache=cache)
    bits = register_bits(dataflow, spec.width, acc_width)
    toggles = (hamming(trace["a"], spec.width)
               + (hamming(trace["b"], spec.width) if bits["weight"] else 0.0)
               + c["psum_toggle_fraction"] * acc_width)
    parts = {"multiplier": mult["pj"], "adder": c["add32_pj"] * acc_width / 32,
             "registers": (sum(bits.values()) * c["ff_clock_fj"]
                           + toggles * c["ff_toggle_fj"]) / 1000.0}
    parts["total"] = sum(parts.values())
    return {"parts": parts, "multiplier": mult, "register_bits": bits,
            "register_toggles": toggles}


def pe_gate_area(spec, *, dataflow: str, acc_width: int = 32, overflow: str = "wrap",
                 pipeline: bool = False, cache: Cache | None = None) -> float:
    """Gate-level proxy area (NAND2 equivalents, :mod:`hw.cost.synth`) of one PE of
    ``dataflow`` around ``spec`` (Yosys, cached): the area of the leakage-like term."""
    from hw.systolic import OSProcessingElement, WSProcessingElement

    from .synth import synthesize

    cls = WSProcessingElement if dataflow == "ws" else OSProcessingElement
    label = f"pe:{dataflow}:{spec.full_name}:A{acc_width}:{overflow}" + (
        ":pipe" if pipeline else "")
    design = Design(label, lambda: cls(spec, acc_width=acc_width, overflow=overflow,
                                       pipeline=pipeline), spec=spec)
    return synthesize(design, "gate", cache=cache).gate_area
