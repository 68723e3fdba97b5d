"""hw.cost.power: the gate-level switching power proxy (Yosys generic-gate netlists simulated in
numpy), its cache, and the energy figures built on it (``hw.gen --energy``, ``sim.perf``).

Cross-checks: the simulated netlist computes the multiplier's arithmetic definition on every
operand pair; zero-delay output toggles equal the bit flips of consecutive products; the
proxy ranks circuits whose power order is certain (exact > truncated4 > truncated8 > bam2_8:
each removes partial-product logic from the previous one's); a second call is served from the
cache without Yosys.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hw.cost import Cache, CostError, multiplier, tools
from hw.mult import parse


def _tools_missing():
    try:
        tools.find_tool("yosys")
    except CostError as err:
        return str(err)
    return None


_MISSING = _tools_missing()
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=f"Yosys unavailable: {_MISSING}")

ORDER = ["exact", "truncated4", "truncated8", "bam2_8"]


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    """One cache for the module (``$AXM_CACHE_DIR`` of the in-process CLI runs too)."""
    return tmp_path_factory.mktemp("axm-cache")


@pytest.fixture(scope="module")
def cache(cache_root):
    return Cache(cache_root / "cost")


@pytest.fixture(scope="module")
def designs():
    """The multipliers as hw.cost designs, elaborated once (a Design keeps its Verilog)."""
    return {name: multiplier(parse(name, width=8, signed=True)) for name in ORDER}


def _all_pairs(spec):
    lo, hi = spec.operand_range
    a, b = np.meshgrid(np.arange(lo, hi + 1), np.arange(lo, hi + 1), indexing="ij")
    return a.ravel(), b.ravel()


def test_netlists_compute_the_multipliers(cache, designs):
    """Every operand pair (8-bit signed) through the simulated gate netlist equals the
    multiplier's model (its arithmetic definition); zero-delay toggles of the output nets are
    the flipped product bits of consecutive pairs, and unit delay never counts fewer."""
    from hw.cost.power import gate_netlist

    for name in ORDER:
        spec = parse(name, width=8, signed=True)
        net = gate_netlist(designs[name], cache=cache)
        a, b = _all_pairs(spec)
        want = spec.model(a, b).astype(np.int64) & 0xFFFF
        got = net.evaluate({"a": a, "b": b})["p"]
        assert np.array_equal(got, want), name
        rng = np.random.default_rng(5)
        ta, tb = rng.integers(-128, 128, 3000), rng.integers(-128, 128, 3000)
        zero, n = net.toggles({"a": ta, "b": tb}, delay="zero")
        unit, _ = net.toggles({"a": ta, "b": tb}, delay="unit")
        assert n == 2999
        p = spec.model(ta, tb).astype(np.int64) & 0xFFFF
        flips = [int(((p[1:] ^ p[:-1]) >> i & 1).sum()) for i in range(16)]
        assert [int(zero[bit]) for bit in net.outputs["p"]] == flips, name
        assert np.all(unit >= zero) and unit.sum() > zero.sum(), name   # glitches


def test_energy_order_of_certain_circuits(cache, designs):
    """exact > truncated4 > truncated8 > bam2_8 in energy per operation (bam2_8 keeps a subset
    of truncated8's partial products, which keeps a subset of truncated4's): on uniform random
    operands changing every step (the usual characterisation condition, os pattern) with and
    without glitches, and on ws-pattern operands (weight held for 64 steps) without glitches.

    Known limit, not hidden: on the ws pattern *with* glitches (unit delay) the proxy puts
    bam2_8 0.45 % above truncated8 (430.6 vs 428.7 fJ, seed 0): the two netlists are within a
    few gates of each other and their hazards differ; that case is checked for the rest of the
    order only (docs/perf.md)."""
    from hw.cost.power import switching_energy, uniform_trace

    for dataflow in ("os", "ws"):
        for delay in ("unit", "zero"):
            results = []
            for name in ORDER:
                spec = parse(name, width=8, signed=True)
                results.append(switching_energy(designs[name],
                                                uniform_trace(spec, dataflow, length=4096),
                                                delay=delay, cache=cache))
            energies = [r.energy_fj for r in results]
            if (dataflow, delay) == ("ws", "unit"):
                assert energies[0] > energies[1] > max(energies[2:]), energies
            else:
                assert energies == sorted(energies, reverse=True), (dataflow, delay, energies)
                assert len(set(energies)) == 4
            # gate area: exact > truncated4 > both others (truncated8 and bam2_8 are within
            # a few gates of each other in this proxy: not an order this test can demand)
            areas = [r.gate_area for r in results]
            assert areas[0] > areas[1] > max(areas[2:]), areas
            # within an order of magnitude of Horowitz's 0.2 pJ (45 nm) for an 8-bit multiply;
            # the raw proxy is several times higher (docs/perf.md), hence the calibration
            assert 0.02 < energies[0] / 1000 < 2.0, energies


def test_second_call_does_not_run_yosys(tmp_path, monkeypatch):
    """The netlist and each (netlist, trace, model) result are cached: a repeated call and a
    new trace on the same circuit run Yosys no more."""
    import hw.cost.power as power

    calls = []
    real = power.run_yosys
    monkeypatch.setattr(power, "run_yosys", lambda *a, **k: calls.append(1) or real(*a, **k))
    cache = Cache(tmp_path / "cost")
    spec = parse("truncated2", width=4, signed=False)
    trace = power.uniform_trace(spec, "os", length=500, seed=1)
    first = power.switching_energy(multiplier(spec), trace, cache=cache)
    assert len(calls) == 1 and not first.cached
    again = power.switching_energy(multiplier(spec), trace, cache=cache)
    assert len(calls) == 1 and again.cached and again.energy_fj == first.energy_fj
    other = power.switching_energy(multiplier(spec), power.uniform_trace(spec, "ws", seed=2),
                                   cache=cache)
    assert len(calls) == 1 and not other.cached and other.energy_fj != first.energy_fj


def test_gen_energy_manifest_field(cache_root, tmp_path, monkeypatch):
    """``python -m hw.gen --rows 2 --energy``: the manifest's ``energy`` field - per-MAC parts
    that add up, the adder at Horowitz's 0.1 pJ for 32 bits, the exact multiplier below its
    calibration point of 0.2 pJ on ws operands (the weight is held, so fewer toggles than the
    uniform os reference), and the array's pJ per cycle = PEs x per MAC + leakage."""
    from hw.gen import main

    monkeypatch.setenv("AXM_CACHE_DIR", str(cache_root))
    assert main(["--rows", "2", "--energy", "--out", str(tmp_path / "out")]) == 0
    (path,) = (tmp_path / "out").glob("*.json")
    e = json.loads(path.read_text())["energy"]
    per = e["pj_per_mac"]
    assert per["total"] == pytest.approx(per["multiplier"] + per["adder"] + per["registers"],
                                         abs=2e-5)
    assert per["adder"] == pytest.approx(0.1)
    assert 0.05 < per["multiplier"] < 0.2 and per["registers"] > 0
    assert e["pj_per_cycle"] == pytest.approx(4 * per["total"] + e["leakage_pj_per_cycle"],
                                              abs=1e-3)
    (m,) = e["multipliers"]
    assert m["name"] == "exact" and m["pes"] == 4 and m["pe_gate_area"] > m["multiplier_gate_area"]
    assert "Horowitz" in e["sources"]["mult8_pj"]
    assert main(["--rows", "2", "--cols", "3", "--dataflow", "os", "--pipeline", "--out",
                 str(tmp_path / "plain")]) == 0
    (plain,) = (tmp_path / "plain").glob("*.json")
    assert "energy" not in json.loads(plain.read_text())
    # sim.perf takes the array from the manifest
    from sim.perf.__main__ import main as perf_main
    assert perf_main(["--manifest", str(plain), "--model", "resnet18", "--no-energy",
                      "--json", str(tmp_path / "r.json")]) == 0
    target = json.loads((tmp_path / "r.json").read_text())["target"]
    assert (target["rows"], target["cols"], target["dataflow"], target["pipeline"]) == \
        (2, 3, "os", True)


def test_perf_energy_end_to_end(cache_root, tmp_path, monkeypatch, capsys):
    """``python -m sim.perf --model digits-cnn --mult exact,bam2_8`` with energy
    (network operand traces): per-layer energies add up to the totals, the multiplier part is
    MACs x energy per multiplication, and the approximate multiplier costs less."""
    from sim.perf.__main__ import main

    monkeypatch.setenv("AXM_CACHE_DIR", str(cache_root))
    out = tmp_path / "r.json"
    assert main(["--model", "digits-cnn", "--rows", "8", "--mult", "exact,bam2_8",
                 "--json", str(out), "--plot", str(tmp_path / "p.svg")]) == 0
    capsys.readouterr()
    report = json.loads(out.read_text())
    t = report["totals"]
    for part in ("multiplier", "adder", "registers", "leakage", "sram", "dram", "total"):
        assert sum(r["energy_pj"][part] for r in report["layers"]) == \
            pytest.approx(t["energy_pj"][part], rel=1e-9)
    first = report["multipliers"][0]
    assert first["trace"].startswith("network")
    assert t["energy_pj"]["multiplier"] == pytest.approx(t["macs"] * first["pj"], rel=1e-9)
    totals = [m["total_pj"] for m in report["multipliers"]]
    assert totals == sorted(totals, reverse=True) and totals[0] > totals[-1]
    assert (tmp_path / "p.svg").read_text().lstrip().startswith("<?xml")
