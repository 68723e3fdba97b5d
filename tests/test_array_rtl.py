"""Systolic arrays (hw.systolic) against the golden model sim.golden.ArrayModel.

RTL: every design below is generated with hw.gen (the code behind ``python -m hw.gen``), all of
them go into ONE Verilog harness, and the cocotb testbench sim/tb/tb_array.py drives each one
through its manifest (port names, payload fields, latency, throughput) on Verilator and on
Icarus: random tiles with valid gaps and back-pressure, operand extremes, accumulators pushed
across their limits (wrap and saturate), back-to-back tiles with the transfer rate measured,
latency measured, reset in the middle of a stream, tiled GEMMs larger than the array; both
dataflows, shapes 1x1, 1xC, Rx1, non-square and 16x16, uniform and heterogeneous multipliers.

Without a simulator: the Amaranth component itself (elaborated directly, as board builds use
it) in Amaranth's simulator, and parameter validation.
"""

import numpy as np
import pytest

from hw.mult import parse
from hw.systolic import SystolicArray
from sim.arraycheck import (StreamCodec, overflow_tiles, overflowed, prepare_harness, program,
                            random_tiles, run_harness, simulate_amaranth)
from sim.golden import ArrayModel
from sim.tb.runner import SIMULATORS, why_unavailable

ALL = ["random", "extremes", "overflow", "back_to_back", "latency", "reset", "gemm"]
HETERO = "exact,truncated4c,bam2_6"   # the last two have mult(0, 0) != 0: padding must not leak

DESIGNS = [
    # weight-stationary
    dict(rows=4, cols=3, mult=HETERO, mult_per="col",
         scenarios=["random", "extremes", "back_to_back", "latency", "reset", "gemm"]),
    dict(rows=4, cols=4, mult="drum4", acc_width=16, overflow="saturate", pipeline=True,
         scenarios=["random", "overflow", "latency", "back_to_back"]),
    dict(rows=3, cols=5, mult="exact,perforated2,mitchell", mult_per="row", signed=False,
         acc_width=16, scenarios=["random", "extremes", "overflow", "latency"]),
    dict(rows=1, cols=1, mult="truncated4c",
         scenarios=["random", "extremes", "back_to_back", "latency", "reset"]),
    dict(rows=1, cols=5, mult="kulkarni", width=4, signed=False, acc_width=8, pipeline=True,
         scenarios=["random", "overflow", "back_to_back", "latency"]),
    dict(rows=5, cols=1, mult="exact,etm4,roba,drum3,truncated7c", mult_per="row",
         acc_width=17, scenarios=["random", "overflow", "latency", "back_to_back"]),
    dict(rows=16, cols=16, mult="exact", gemm=(40, 37, 29),
         scenarios=["random", "back_to_back", "latency", "gemm"]),
    # output-stationary
    dict(rows=4, cols=3, mult=HETERO, mult_per="col", dataflow="os", acc_width=20,
         gemm=(13, 20, 10), scenarios=ALL),
    dict(rows=3, cols=4, mult="exact,drum4,perforated2_2", mult_per="row", dataflow="os",
         acc_width=18, overflow="saturate", pipeline=True,
         scenarios=["random", "overflow", "back_to_back", "latency"]),
    dict(rows=1, cols=1, mult="exact", signed=False, acc_width=16, dataflow="os",
         scenarios=["random", "overflow", "back_to_back", "latency", "reset"]),
    dict(rows=1, cols=4, mult="etm4", width=12, acc_width=28, dataflow="os",
         scenarios=["random", "extremes", "back_to_back", "latency"]),
    dict(rows=4, cols=1, mult="mitchell", pipeline=True, dataflow="os",
         scenarios=["random", "back_to_back", "latency"]),
]


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    """All designs generated once, shared by both simulators."""
    return prepare_harness(DESIGNS, tmp_path_factory.mktemp("arrays"))


@pytest.mark.rtl
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_arrays_match_golden_model(harness, simulator, tmp_path):
    reason = why_unavailable(simulator)
    if reason:
        pytest.skip(reason)
    report = run_harness(harness, simulator, tmp_path)
    assert report["passed"], (report["errors"][:5], report["mismatches"][:3])
    assert len(report["units"]) == len(DESIGNS)
    for design, unit in zip(DESIGNS, report["units"]):
        ran = {r["scenario"]: r for r in unit["results"]}
        assert list(ran) == design["scenarios"], unit["top"]
        for name, res in ran.items():
            if name != "back_to_back":
                assert res.get("vectors", 0) > 0, (unit["top"], name)
        if "overflow" in ran:  # the accumulator limits really were crossed
            assert ran["overflow"]["overflowed_vectors"] > 0, unit["top"]
        if "reset" in ran:  # the reset really hit a stream in flight
            assert sum(ran["reset"]["inputs_left_at_reset"].values()) > 0
        if "gemm" in ran:
            assert ran["gemm"]["gemm_mismatches"] == 0
        if "latency" in ran:  # the testbench compared it with the manifest; check the formula
            rows, cols = design["rows"], design.get("cols", design["rows"])
            extra = 1 if design.get("pipeline") else 0
            ws = design.get("dataflow", "ws") == "ws"
            assert ran["latency"]["latency_cycles"] == rows + cols - (1 if ws else 0) + extra
        if "back_to_back" in ran:
            res = ran["back_to_back"]
            if design.get("dataflow", "ws") == "ws":
                assert res["input_cycles_per_vector"] == res["output_cycles_per_vector"] == 1
            else:
                assert res["input_cycles_per_step"] == 1
                # tiles of rows//2 steps are paced by the drain: one per `rows` cycles
                assert res["cycles_per_short_tile"] == design["rows"]
    big = [u for d, u in zip(DESIGNS, report["units"]) if d["rows"] == 16]
    assert big and big[0]["results"][-1]["gemm"] == "40x37 @ 37x29"


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_component_in_amaranth_simulator(dataflow):
    """The component as Amaranth elaborates it (what board builds use), not the shared-module
    Verilog: random tiles and accumulator overflow with gaps and back-pressure."""
    model = ArrayModel.per_col(3, 4, ["exact", "truncated4c", "bam2_6", "drum4"],
                               dataflow=dataflow, acc_width=16 if dataflow == "ws" else 18,
                               overflow="saturate")
    array = SystolicArray.from_model(model, pipeline=dataflow == "os")
    codecs = {p["name"].split("__")[0]: StreamCodec(p)
              for p in array.interface() if p["name"].endswith("__payload")}
    rng = np.random.default_rng(7)
    prog = program(model, codecs, random_tiles(model, rng, 4) + overflow_tiles(model, rng), rng)
    assert overflowed(model, prog) > 0
    words = simulate_amaranth(array, prog, seed=3, p_gap=0.3, p_stall=0.3)
    got = np.array([codecs["results"].decode(w) for w in words])
    assert got.shape == (len(prog.expected), 4)
    assert np.array_equal(got, np.array(prog.expected))


def test_array_parameter_errors():
    spec = parse("exact")
    with pytest.raises(ValueError, match="rows must be in 1..64"):
        SystolicArray(0, 4, spec)
    with pytest.raises(ValueError, match="cols must be in 1..64"):
        SystolicArray(4, 65, spec)
    with pytest.raises(ValueError, match="dataflow"):
        SystolicArray(2, 2, spec, dataflow="rs")
    with pytest.raises(ValueError, match="2 x 3"):
        SystolicArray(2, 3, [[spec] * 3])
    with pytest.raises(ValueError, match="width and signedness"):
        SystolicArray(1, 2, [[spec, parse("exact", width=6)]])
    with pytest.raises(ValueError, match="at least the 16-bit product"):
        SystolicArray(2, 2, spec, acc_width=12)
