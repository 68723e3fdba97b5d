"""Systolic arrays (hw.systolic) against the golden model sim.golden.ArrayModel.

RTL: every design below is generated with hw.gen (the code behind ``python -m hw.gen``), all of
them go into ONE Verilog harness, and the cocotb testbench sim/tb/tb_array.py drives each one
through its manifest (port names, payload fields, latency, throughput) on Verilator and on
Icarus: random tiles with valid gaps and back-pressure, operand extremes, accumulators pushed
across their limits (wrap and saturate), back-to-back tiles with the transfer rate measured,
latency measured, reset in the middle of a stream, tiled GEMMs larger than the array; both
dataflows, shapes 1x1, 1xC, Rx1, non-square and 16x16, uniform and heterogeneous multipliers.

Cycle counts measured in the simulators (clock edges between transfers, inputs driven as fast as
the array accepts them): the ws weight-load window and whole GEMMs of many shapes (ragged
tiles, K < rows, small M, long tiles that hide the next weights), each compared with the
manifest's numbers and formula (the testbench) and here with the published ``rows + cols - 1``
window, :func:`hw.systolic.gemm_cycles` and sim.perf's network cycle model (random conv layers
among the shapes).

Without a simulator: the Amaranth component itself (elaborated directly, as board builds use
it) in Amaranth's simulator, and parameter validation.
"""

import numpy as np
import pytest

from hw.mult import parse
from hw.systolic import SystolicArray, gemm_cycles, gemm_cycles_entry
from sim.arraycheck import (StreamCodec, cycle_shapes, manifest_gemm_cycles,
                            overflow_tiles, overflowed, prepare_harness, program, random_tiles,
                            run_harness, simulate_amaranth, measure_gemm)
from sim.golden import ArrayModel
from sim.perf import ArraySpec, Layer, conv_layer, equivalent_gemm, layer_schedule
from sim.tb.runner import SIMULATORS, why_unavailable

ALL = ["random", "extremes", "overflow", "back_to_back", "latency", "reset", "gemm"]
HETERO = "exact,truncated4c,bam2_6"   # the last two have mult(0, 0) != 0: padding must not leak


def perf_layers(rows, cols, dataflow, seed, count=8, budget=300):
    """Random small conv layers (stride, padding, depthwise groups) of at most ``budget``
    cycles on a ``rows x cols`` array, each with the single GEMM whose tile stream has the same
    timing (:func:`sim.perf.equivalent_gemm`; the RTL runs that GEMM): ``[(layer, shape)]``."""
    rng = np.random.default_rng(seed)
    array, out = ArraySpec(rows, cols, dataflow), []
    while len(out) < count:
        cin, k = int(rng.integers(1, 7)), int(rng.integers(1, 4))
        h, w = int(rng.integers(k, 7)), int(rng.integers(k, 7))
        depthwise = cin > 1 and rng.random() < 0.3
        layer = conv_layer(f"L{len(out)}", batch=1, cin=cin, h=h, w=w,
                           cout=cin if depthwise else int(rng.integers(1, 9)), kernel=(k, k),
                           stride=(int(rng.integers(1, 3)),) * 2,
                           pads=(int(rng.integers(0, 2)),) * 4, groups=cin if depthwise else 1)
        if layer_schedule(layer, array).cycles <= budget:
            out.append((layer, equivalent_gemm(layer, array)))
    return out


# sim.perf's cycle model on the ws 4x3 and the pipelined os 3x4 array (the cheaper os unit to
# simulate): random conv layers run as their equivalent GEMMs
PERF_LAYERS = {("ws", 4, 3): perf_layers(4, 3, "ws", 12),
               ("os", 3, 4): perf_layers(3, 4, "os", 12)}
# ws 4x3: W = 6, so tiles of M >= 6 + K_t vectors hide the next weights: (10, 8, 3) is the
# boundary, (9, 8, 3) one vector short of it; K < rows, ragged K and N, M = 1.
WS_SHAPES = [(1, 1, 1), (1, 4, 3), (2, 3, 2), (5, 9, 7), (20, 8, 6), (3, 13, 4), (12, 2, 1),
             (10, 8, 3), (9, 8, 3)] + [shape for _, shape in PERF_LAYERS["ws", 4, 3]]
# os 4x3: K < rows (drain-paced tiles), K = rows, K > rows, ragged M and N, M = 1.
OS_SHAPES = [(1, 1, 1), (4, 4, 3), (5, 2, 7), (13, 9, 3), (8, 3, 6), (1, 12, 1)]

DESIGNS = [
    # weight-stationary
    dict(rows=4, cols=3, mult=HETERO, mult_per="col", cycle_shapes=WS_SHAPES,
         scenarios=["random", "extremes", "stall", "back_to_back", "latency", "reset", "gemm",
                    "window", "cycles"]),
    dict(rows=4, cols=4, mult="drum4", acc_width=16, overflow="saturate", pipeline=True,
         scenarios=["random", "overflow", "latency", "back_to_back", "window", "cycles"]),
    dict(rows=3, cols=5, mult="exact,perforated2,mitchell", mult_per="row", signed=False,
         acc_width=16, scenarios=["random", "extremes", "overflow", "latency"]),
    dict(rows=1, cols=1, mult="truncated4c",
         scenarios=["random", "extremes", "back_to_back", "latency", "reset", "window",
                    "cycles"]),
    dict(rows=1, cols=5, mult="kulkarni", width=4, signed=False, acc_width=8, pipeline=True,
         scenarios=["random", "overflow", "back_to_back", "latency", "cycles"]),
    dict(rows=5, cols=1, mult="exact,etm4,roba,drum3,truncated7c", mult_per="row",
         acc_width=17, scenarios=["random", "overflow", "latency", "back_to_back", "window"]),
    dict(rows=16, cols=16, mult="exact", gemm=(40, 37, 29),
         scenarios=["random", "back_to_back", "latency", "window", "cycles", "gemm"]),
    # output-stationary
    dict(rows=4, cols=3, mult=HETERO, mult_per="col", dataflow="os", acc_width=20,
         gemm=(13, 20, 10), cycle_shapes=OS_SHAPES, scenarios=ALL + ["cycles"]),
    dict(rows=3, cols=4, mult="exact,drum4,perforated2_2", mult_per="row", dataflow="os",
         acc_width=18, overflow="saturate", pipeline=True,
         cycle_shapes=cycle_shapes(ArrayModel.uniform(3, 4, "exact", dataflow="os"))
         + [shape for _, shape in PERF_LAYERS["os", 3, 4]],
         scenarios=["random", "overflow", "back_to_back", "latency", "cycles"]),
    dict(rows=1, cols=1, mult="exact", signed=False, acc_width=16, dataflow="os",
         scenarios=["random", "overflow", "back_to_back", "latency", "reset", "cycles"]),
    dict(rows=1, cols=4, mult="etm4", width=12, acc_width=28, dataflow="os",
         scenarios=["random", "extremes", "back_to_back", "latency"]),
    dict(rows=4, cols=1, mult="mitchell", pipeline=True, dataflow="os",
         scenarios=["random", "back_to_back", "latency", "cycles"]),
]
# Credit-based back-pressure with an output FIFO (hw.gen --output-buffer, issue 15): the same
# scenarios (random gaps and back-pressure, latency, throughput, window, cycles) must hold.
DESIGNS += [
    dict(rows=4, cols=3, mult=HETERO, mult_per="col", output_buffer=True, cycle_shapes=WS_SHAPES,
         scenarios=["random", "extremes", "stall", "back_to_back", "latency", "reset", "gemm",
                    "window", "cycles"]),
    dict(rows=3, cols=4, mult="exact,drum4,perforated2_2", mult_per="row", dataflow="os",
         acc_width=18, overflow="saturate", pipeline=True, output_buffer=True,
         cycle_shapes=OS_SHAPES + [shape for _, shape in PERF_LAYERS["os", 3, 4]],
         scenarios=["random", "overflow", "stall", "back_to_back", "latency", "reset", "cycles",
                    "gemm"]),
    dict(rows=1, cols=1, mult="truncated4c", output_buffer=True,
         scenarios=["random", "stall", "back_to_back", "latency", "reset", "window", "cycles"]),
]
# Corrected arrays (hw.gen --correction, issue 13; cycles: tests/test_correction.py)
DESIGNS += [
    dict(rows=4, cols=3, mult=HETERO, mult_per="col", acc_width=16, overflow="saturate",
         correction="cv", scenarios=["random", "extremes", "overflow", "back_to_back", "latency",
                                     "reset", "gemm"]),
    dict(rows=3, cols=2, mult="exact,perforated2,mitchell", mult_per="row", signed=False,
         acc_width=16, pipeline=True, correction="cv",
         scenarios=["random", "extremes", "overflow", "latency", "gemm"]),
    dict(rows=3, cols=4, mult="truncated8", dataflow="os", pipeline=True, acc_width=20,
         correction="cv", scenarios=["random", "extremes", "overflow", "latency", "reset",
                                     "gemm"]),
    dict(rows=2, cols=2, mult="drum4,exact", mult_per="col", dataflow="os", acc_width=18,
         overflow="saturate", correction="bias",
         scenarios=["random", "extremes", "overflow", "latency"]),
]


# Banks of arrays (hw.gen --bank, issue 14): the harness instantiates each bank once per array
# with ``select`` tied to it; each such unit must compute its own array's golden GEMMs (the
# multipliers differ, so a routing error shows as mismatches) with that array's timing.
BANKS = [
    # corrected bank: exact stays uncorrected beside two cv arrays and must ignore the
    # correction fields (the harness sends junk in them)
    dict(bank="exact,truncated4c,bam2_6", rows=3, cols=3, correction="cv",
         scenarios=["random", "extremes", "back_to_back", "latency", "reset", "gemm", "window"]),
    dict(bank="drum4,mitchell", rows=2, cols=3, dataflow="os", signed=False, pipeline=True,
         acc_width=20, scenarios=["random", "extremes", "back_to_back", "latency", "gemm"]),
]


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    """All designs generated once, shared by both simulators."""
    return prepare_harness(DESIGNS + BANKS, tmp_path_factory.mktemp("arrays"))


@pytest.fixture(scope="module", params=SIMULATORS)
def report(request, harness, tmp_path_factory):
    """One build and run of the whole harness per simulator."""
    reason = why_unavailable(request.param)
    if reason:
        pytest.skip(reason)
    return run_harness(harness, request.param, tmp_path_factory.mktemp(request.param))


@pytest.mark.rtl
def test_arrays_match_golden_model(report):
    assert report["passed"], (report["errors"][:5], report["mismatches"][:3])
    assert len(report["units"]) == len(DESIGNS) + sum(len(b["bank"].split(",")) for b in BANKS)
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
            extra = (1 if design.get("pipeline") else 0) + (
                1 if design.get("correction", "none") != "none" else 0)
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


@pytest.mark.rtl
def test_bank_arrays_each_compute_their_own_golden_gemms(report, harness):
    """Every array of a bank, selected through ``select``, passed its scenarios against its
    own multiplier's model; latency and throughput are a single array's (no added stage)."""
    units = report["units"][len(DESIGNS):]
    cfgs = harness.units[len(DESIGNS):]
    i = 0
    for bank in BANKS:
        names = bank["bank"].split(",")
        ws = bank.get("dataflow", "ws") == "ws"
        rows, cols = bank["rows"], bank["cols"]
        tops = set()
        for j, name in enumerate(names):
            unit, cfg = units[i], cfgs[i]
            i += 1
            tops.add(unit["top"])
            assert cfg["manifest"]["ports_tied"] == {"select": f"{1 if len(names) <= 2 else 2}'d{j}"}
            assert cfg["model_names"] == [parse(name, signed=bank.get("signed", True)).name]
            ran = {r["scenario"]: r for r in unit["results"]}
            assert list(ran) == bank["scenarios"]
            assert all(r.get("vectors", 1) > 0 for r in ran.values())
            assert ran["gemm"]["gemm_mismatches"] == 0
            corrected = bank.get("correction", "none") != "none" and name != "exact"
            assert ran["latency"]["latency_cycles"] == (rows + cols - ws + bank.get("pipeline", 0)
                                                        + corrected)
            fmt = cfg["manifest"]["array"].get("correction")
            assert (fmt or {}).get("mode") == (bank.get("correction") if corrected else None)
            if ws:
                assert ran["back_to_back"]["input_cycles_per_vector"] == 1
                assert {w["cycles"] for w in ran["window"]["windows"]} == {rows + cols - 1}
        assert len(tops) == 1                      # one bank module, instantiated per array
    assert report["passed"], (report["errors"][:5], report["mismatches"][:3])


@pytest.mark.rtl
def test_output_buffer_holds_every_result_under_long_stalls(report, harness):
    """Long consumer stalls with inputs always offered: every result arrives, in order, on
    the globally stalled array and on the credit-based one (hw.gen --output-buffer), whose
    backlog reaches its FIFO depth (the credits ran out) and never exceeds it."""
    seen = {False: 0, True: 0}
    for design, unit, cfg in zip(DESIGNS, report["units"], harness.units):
        res = _scenario(unit, "stall")
        if res is None:
            continue
        assert res["vectors"] > 0, unit["top"]
        back = cfg["manifest"]["timing"]["back_pressure"]
        buffered = bool(design.get("output_buffer"))
        assert back["mode"] == ("credit" if buffered else "global stall")
        if buffered:
            assert res["max_backlog"] == back["fifo_depth"], (unit["top"], res)
        seen[buffered] += 1
    assert seen[True] >= 3 and seen[False] >= 1
    assert report["passed"], (report["errors"][:5], report["mismatches"][:3])


def _scenario(unit, name):
    return {r["scenario"]: r for r in unit["results"]}.get(name)


@pytest.mark.rtl
def test_weight_load_window_measured(report):
    """The next tile's first weight row is accepted rows + cols - 1 cycles after the previous
    first vector (what the docstring and the manifest state), for full and ragged tiles."""
    seen = 0
    for design, unit in zip(DESIGNS, report["units"]):
        res = _scenario(unit, "window")
        if res is None:
            continue
        rows, cols = design["rows"], design.get("cols", design["rows"])
        assert len(res["windows"]) == 3, unit["top"]
        assert {w["cycles"] for w in res["windows"]} == {rows + cols - 1}, (unit["top"], res)
        seen += 1
    assert seen >= 4
    assert report["passed"], (report["errors"][:5], report["mismatches"][:3])


@pytest.mark.rtl
def test_whole_gemm_cycles_measured(report, harness):
    """Measured whole-GEMM cycles equal hw.systolic.gemm_cycles and the manifest's formula,
    for both dataflows, with and without pipeline, on every shape that was run."""
    seen = {}
    for design, cfg, unit in zip(DESIGNS, harness.units, report["units"]):
        res = _scenario(unit, "cycles")
        if res is None:
            continue
        rows, cols = design["rows"], design.get("cols", design["rows"])
        dataflow, pipeline = design.get("dataflow", "ws"), bool(design.get("pipeline"))
        shapes = design.get("cycle_shapes") or cycle_shapes(
            ArrayModel.uniform(rows, cols, "exact", dataflow=dataflow))
        assert [tuple(g["shape"]) for g in res["gemm_cycles"]] == [tuple(s) for s in shapes]
        entry = cfg["manifest"]["timing"]["gemm_cycles"]
        for g in res["gemm_cycles"]:
            m, k, n = g["shape"]
            assert g["cycles"] == gemm_cycles(m, k, n, rows=rows, cols=cols, dataflow=dataflow,
                                              pipeline=pipeline), (unit["top"], g)
            assert g["cycles"] == manifest_gemm_cycles(entry, m, k, n), (unit["top"], g)
        seen[(dataflow, pipeline)] = seen.get((dataflow, pipeline), 0) + len(shapes)
    assert set(seen) == {("ws", False), ("ws", True), ("os", False), ("os", True)}
    assert report["passed"], (report["errors"][:5], report["mismatches"][:3])


@pytest.mark.rtl
def test_perf_model_cycles_measured(report):
    """sim.perf's cycle model (``python -m sim.perf``) equals the measured cycles, zero
    tolerance: every whole GEMM of every design as a GEMM layer (both dataflows, with and
    without pipeline, 1x1 to 16x16), and random conv layers (:func:`perf_layers`: ragged tiles,
    K < rows, M < rows + cols, depthwise groups streamed back to back, bubbles where too few
    activation rows leave the next weights' load window exposed) run as their equivalent
    GEMM."""
    seen = {"layers": 0, "bubbles": 0, "grouped": 0, "k_lt_rows": 0, "m_lt_r_c": 0,
            "ragged": 0}
    for design, unit in zip(DESIGNS, report["units"]):
        res = _scenario(unit, "cycles")
        if res is None:
            continue
        rows, cols = design["rows"], design.get("cols", design["rows"])
        dataflow = design.get("dataflow", "ws")
        array = ArraySpec(rows, cols, dataflow, bool(design.get("pipeline")))
        measured = {tuple(g["shape"]): g["cycles"] for g in res["gemm_cycles"]}
        for (m, k, n), cycles in measured.items():
            assert layer_schedule(Layer("g", "gemm", m, k, n), array).cycles == cycles, \
                (unit["top"], m, k, n)
        for layer, shape in PERF_LAYERS.get((dataflow, rows, cols), []):
            s = layer_schedule(layer, array)
            assert s.cycles == measured[shape], (unit["top"], layer)
            seen["layers"] += 1
            seen["bubbles"] += s.cycles > s.stall_free_cycles
            seen["grouped"] += layer.groups > 1
            seen["k_lt_rows"] += layer.k < rows
            seen["m_lt_r_c"] += layer.m < rows + cols
            seen["ragged"] += bool(layer.k % rows or layer.n % cols or layer.m % rows)
    expected = sum(len(PERF_LAYERS.get((d.get("dataflow", "ws"), d["rows"],
                                        d.get("cols", d["rows"])), []))
                   for d in DESIGNS if "cycles" in d["scenarios"])
    assert seen["layers"] == expected >= 16 and min(seen.values()) >= 2, seen
    assert report["passed"], (report["errors"][:5], report["mismatches"][:3])


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


@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize("pipeline", [False, True])
def test_cycles_in_amaranth_simulator(dataflow, pipeline):
    """Without Verilator/Icarus: the weight-load window and whole-GEMM cycles of the component
    elaborated directly, measured in Amaranth's simulator (clock edges between transfers)."""
    rows, cols = 3, 2
    model = ArrayModel.uniform(rows, cols, "truncated4c", dataflow=dataflow)
    array = SystolicArray.from_model(model, pipeline=pipeline)
    codecs = {p["name"].split("__")[0]: StreamCodec(p)
              for p in array.interface() if p["name"].endswith("__payload")}
    entry = array.timing()["gemm_cycles"]
    rng = np.random.default_rng(5)
    for m, k, n in [(1, 1, 1), (2, 2, 2), (4, 7, 3), (9, 3, 1), (2, 5, 5)]:
        a = rng.integers(-128, 128, size=(m, k))
        b = rng.integers(-128, 128, size=(k, n))
        got, want, measured = measure_gemm(array, model, a, b, rng)
        assert np.array_equal(got, want)
        assert measured == array.gemm_cycles(m, k, n) == manifest_gemm_cycles(entry, m, k, n)
    if dataflow == "ws":  # tile 1's waiting weights: first one rows + cols - 1 edges later
        prog = program(model, codecs, random_tiles(model, rng, 2, max_m=1, full=True), rng)
        record = {}
        simulate_amaranth(array, prog, record=record)
        assert record["weights"][rows] - record["acts"][0] == rows + cols - 1 == \
            array.timing()["weight_load_window_cycles"]


def test_gemm_cycles_formula_and_function_agree():
    """The manifest's closed formula (hw.systolic.GEMM_CYCLES) and the tile-by-tile sum of
    hw.systolic.gemm_cycles count the same cycles, over many shapes and arrays."""
    for rows, cols in [(1, 1), (1, 4), (4, 1), (3, 5), (8, 8), (16, 16)]:
        for dataflow in ("ws", "os"):
            for pipeline in (False, True):
                entry = gemm_cycles_entry(rows, cols, dataflow, pipeline)
                assert entry["parameters"] == {"rows": rows, "cols": cols,
                                               "pipeline": int(pipeline)}
                for m in (1, 2, rows, rows + 1, 3 * rows + cols + 5):
                    for k in (1, rows - 1 or 1, rows, 2 * rows + 1, 40):
                        for n in (1, cols, cols + 1, 3 * cols):
                            assert manifest_gemm_cycles(entry, m, k, n) == gemm_cycles(
                                m, k, n, rows=rows, cols=cols, dataflow=dataflow,
                                pipeline=pipeline), (rows, cols, dataflow, pipeline, m, k, n)
    with pytest.raises(ValueError, match="m must be a positive integer"):
        gemm_cycles(0, 1, 1, rows=2, cols=2)
    with pytest.raises(ValueError, match="dataflow"):
        gemm_cycles(1, 1, 1, rows=2, cols=2, dataflow="rs")


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
