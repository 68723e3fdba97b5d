"""sim.perf (``python -m sim.perf``): network cycles, utilisation, memory traffic and energy,
without simulators or Yosys.

Cross-checks, each against a source that is not sim.perf:

* cycles: :func:`hw.systolic.gemm_cycles` (measured equal to the RTL in
  tests/test_array_rtl.py, which also compares sim.perf itself with the RTL) on random shapes;
  grouped layers against the tile sequence :func:`sim.golden.tiled_gemm` walks through; bubbles
  and utilisation from their definitions over those recorded tiles;
* workloads: built-in networks against published MAC / parameter counts; im2col shapes of
  conv layers against torch's conv2d and of sim.dnn graphs against their executed tensors;
* SCALE-Sim v2 (https://github.com/scalesim-project/scale-sim-v2, commit 22f88b1): its own
  golden regression run (test/golden_trace/, alexnet_part on a 32x32 ws array) reproduced from
  its own config and topology files, and every formula recomputed by hand from its source;
* memory traffic and energy arithmetic by hand; Horowitz's (ISSCC 2014) 45 nm figures;
* the CLI: text, CSV, JSON and plot outputs agree with each other and with the library, and
  outputs go through hw.outputs (a file the toolkit did not write is not replaced).
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from hw.systolic import gemm_cycles
from sim.golden import tiled_gemm
from sim.perf import (ArraySpec, Buffers, Layer, PerfError, builtin_layers, conv_layer,
                      equivalent_gemm, layer_schedule, layer_traffic, layers_from_graph,
                      read_scalesim_config, read_topology, scalesim_schedule)
from sim.perf.energy import (DEFAULTS, EnergyConfig, MultiplierEnergy, layer_energy,
                             load_energy_config, sram_pj_per_byte)

ROOT = Path(__file__).resolve().parents[1]


# -- cycles -----------------------------------------------------------------------------------
def test_gemm_layers_take_the_measured_gemm_cycles():
    """A single GEMM layer's cycles are hw.systolic.gemm_cycles (the count the RTL is measured
    against), over random shapes and arrays, both dataflows, with and without pipeline."""
    rnd = random.Random(1)
    for _ in range(400):
        rows, cols = rnd.randint(1, 16), rnd.randint(1, 16)
        m, k, n = rnd.randint(1, 90), rnd.randint(1, 90), rnd.randint(1, 90)
        for dataflow in ("ws", "os"):
            for pipeline in (False, True):
                s = layer_schedule(Layer("g", "gemm", m, k, n),
                                   ArraySpec(rows, cols, dataflow, pipeline))
                assert s.cycles == gemm_cycles(m, k, n, rows=rows, cols=cols,
                                               dataflow=dataflow, pipeline=pipeline), \
                    (rows, cols, dataflow, pipeline, m, k, n)


def test_corrected_arrays_take_the_measured_gemm_cycles():
    """Arrays with an output correction stage (hw.gen --correction): the same agreement with
    hw.systolic.gemm_cycles(correction=True) (measured against the RTL in
    tests/test_correction.py)."""
    import inspect
    if "correction" not in inspect.signature(gemm_cycles).parameters:
        pytest.skip("hw.systolic.gemm_cycles has no correction parameter in this tree")
    rnd = random.Random(2)
    for _ in range(200):
        rows, cols = rnd.randint(1, 16), rnd.randint(1, 16)
        m, k, n = rnd.randint(1, 70), rnd.randint(1, 70), rnd.randint(1, 70)
        for dataflow in ("ws", "os"):
            for pipeline in (False, True):
                s = layer_schedule(Layer("g", "gemm", m, k, n),
                                   ArraySpec(rows, cols, dataflow, pipeline, correction=True))
                assert s.cycles == gemm_cycles(m, k, n, rows=rows, cols=cols, dataflow=dataflow,
                                               pipeline=pipeline, correction=True), \
                    (rows, cols, dataflow, pipeline, m, k, n)


class _TileRecorder:
    """Stands in for a sim.golden.ArrayModel: records the tiles tiled_gemm sends."""

    def __init__(self, rows, cols, dataflow):
        self.rows, self.cols, self.dataflow = rows, cols, dataflow
        self.acc_width, self.overflow = 62, "wrap"
        self.tiles = []

    def tile(self, a, b):
        self.tiles.append((a.shape[0], a.shape[1], b.shape[1]))       # (M_t, K_t, N_t)
        return np.zeros((a.shape[0], b.shape[1]), dtype=np.int64)


def _tiles(m, k, n, rows, cols, dataflow):
    rec = _TileRecorder(rows, cols, dataflow)
    tiled_gemm(np.zeros((m, k), np.int64), np.zeros((k, n), np.int64), rec)
    return rec.tiles


def _random_layers(rnd, count):
    out = []
    while len(out) < count:
        cin = rnd.randint(1, 16)
        kh, kw = rnd.randint(1, 3), rnd.randint(1, 3)
        h, w = rnd.randint(kh, 16), rnd.randint(kw, 16)
        groups = rnd.choice([1, 1, cin] + [g for g in (2, 4) if cin % g == 0])
        cout = cin if groups == cin else groups * rnd.randint(1, 12)
        out.append(conv_layer(f"c{len(out)}", batch=rnd.randint(1, 2), cin=cin, h=h, w=w,
                              cout=cout, kernel=(kh, kw),
                              stride=(rnd.randint(1, 3), rnd.randint(1, 3)),
                              pads=tuple(rnd.randint(0, 2) for _ in range(4)), groups=groups))
    return out


def test_layers_follow_the_tiles_of_tiled_gemm():
    """Grouped and plain conv layers: the groups' tiles, as sim.golden.tiled_gemm walks them,
    streamed back to back. Checked: the tile count and folds; the equivalent single GEMM has
    the same timing-relevant tile sequence (ws: stream length M and depth K_t of every tile;
    os: K steps per tile and the tile count) and the layer takes its gemm_cycles; bubbles
    (cycles minus the stall-free bound) are, by definition, the weight-load windows not
    hidden by the previous tile (ws: ``sum max(0, rows + cols - 1 + K_t - M)`` over all tiles
    but the first) or the drains not hidden (os: ``max(0, rows - K)`` per tile but the last);
    mapping utilisation is the mean over the recorded tiles of used PEs / all PEs, and
    overall utilisation MACs / (PEs x cycles)."""
    rnd = random.Random(7)
    bubbles_seen = grouped_seen = 0
    for layer in _random_layers(rnd, 40):
        for rows, cols in ((4, 3), (8, 8), (3, 7)):
            for dataflow in ("ws", "os"):
                array = ArraySpec(rows, cols, dataflow, rnd.random() < 0.5)
                group_tiles = _tiles(layer.m, layer.k, layer.n, rows, cols, dataflow)
                stream = group_tiles * layer.groups
                s = layer_schedule(layer, array)
                assert s.tiles == len(stream)
                em, ek, en = equivalent_gemm(layer, array)
                eq = _tiles(em, ek, en, rows, cols, dataflow)
                if dataflow == "ws":
                    assert [(t[0], t[1]) for t in eq] == [(t[0], t[1]) for t in stream]
                    bubbles = sum(max(0, rows + cols - 1 + t[1] - layer.m) for t in stream[1:])
                    used = [t[1] * t[2] for t in stream]
                else:
                    assert [t[1] for t in eq] == [t[1] for t in stream]
                    bubbles = (len(stream) - 1) * max(0, rows - layer.k)
                    used = [t[0] * t[2] for t in stream]
                assert s.cycles == gemm_cycles(em, ek, en, rows=rows, cols=cols,
                                               dataflow=dataflow, pipeline=array.pipeline)
                assert s.cycles - s.stall_free_cycles == bubbles
                assert s.ideal_cycles == math.ceil(layer.macs / (rows * cols))
                assert s.ideal_cycles <= s.stall_free_cycles <= s.cycles
                assert s.mapping_util == pytest.approx(np.mean(used) / (rows * cols), rel=1e-12)
                assert s.overall_util == pytest.approx(layer.macs / (rows * cols * s.cycles),
                                                       rel=1e-12)
                assert s.overall_util == pytest.approx(s.mapping_util * s.temporal_util,
                                                       rel=1e-12)
                bubbles_seen += bubbles > 0
                grouped_seen += layer.groups > 1
    assert bubbles_seen > 30 and grouped_seen > 30


def test_bubbles_by_hand():
    """4x3 ws array (weight-load window W = 4 + 3 - 1 = 6): M = 10 vectors hide the next
    4-row weight tile (10 >= 6 + 4), M = 9 leaves one bubble per tile change."""
    array = ArraySpec(4, 3, "ws")
    # tiles K_t = 4, 4; first starts after 4 weight rows; latency L = 6
    full = layer_schedule(Layer("a", "gemm", 10, 8, 3), array)
    assert (full.cycles, full.stall_free_cycles) == (4 + 10 + 10 - 1 + 6,) * 2
    short = layer_schedule(Layer("b", "gemm", 9, 8, 3), array)
    assert short.cycles == 4 + 10 + 9 - 1 + 6
    assert short.stall_free_cycles == 4 + 9 + 9 - 1 + 6
    # os 4x3, K = 2 < rows: every tile waits for the 4-cycle drain of the previous one
    os_ = layer_schedule(Layer("c", "gemm", 8, 2, 6), ArraySpec(4, 3, "os"))
    assert os_.tiles == 4
    assert os_.cycles == 3 * 4 + 2 - 1 + (4 + 3) + 4 - 1
    assert os_.cycles - os_.stall_free_cycles == 3 * (4 - 2)


def test_array_and_layer_errors():
    with pytest.raises(PerfError, match="K = 0 does not fit"):
        Layer("x", "gemm", 3, 0, 2)
    with pytest.raises(PerfError, match="unknown dataflow 'rs'"):
        ArraySpec(4, 4, "rs")
    with pytest.raises(PerfError, match="rows must be an integer in 1..4096"):
        ArraySpec(0, 4)
    with pytest.raises(PerfError, match="does not fit a 2x2 input"):
        conv_layer("c", batch=1, cin=1, h=2, w=2, cout=1, kernel=(3, 3))
    with pytest.raises(PerfError, match="not divisible into 3 groups"):
        conv_layer("c", batch=1, cin=4, h=5, w=5, cout=6, kernel=(1, 1), groups=3)
    with pytest.raises(PerfError, match="unknown built-in network 'vgg'"):
        builtin_layers("vgg")


# -- workloads ----------------------------------------------------------------------------------
def test_builtin_networks_match_published_sizes():
    """MACs and weights (conv + fc, no biases / batch norm) of the shape-only built-ins against
    the published figures: torchvision's model tables (ResNet-18 1.81 GFLOPS (MACs) and 11.7 M
    parameters, ResNet-34 3.66 and 21.8 M, ResNet-50 4.09 and 25.6 M, MobileNet V2 0.30 and
    3.5 M) and Howard et al. 2017, Table 8 (MobileNet 1.0-224: 569 M mult-adds, 4.2 M
    parameters)."""
    def size(name):
        layers = builtin_layers(name)
        return sum(x.macs for x in layers), sum(x.weight_elems for x in layers)

    for name, macs, params, rel_p in (("resnet18", 1.81e9, 11.7e6, 0.01),
                                      ("resnet50", 4.09e9, 25.6e6, 0.01),
                                      ("mobilenet-v2", 0.30e9, 3.5e6, 0.02),
                                      ("mobilenet-v1", 569e6, 4.2e6, 0.01),
                                      ("resnet34", 3.66e9, 21.8e6, 0.01)):
        got_macs, got_params = size(name)
        assert got_macs == pytest.approx(macs, rel=0.01), name
        assert got_params == pytest.approx(params, rel=rel_p), name
    two = builtin_layers("resnet18", batch=2)
    assert [x.m for x in two] == [2 * x.m for x in builtin_layers("resnet18")]
    kinds = {x.kind for x in builtin_layers("mobilenet-v2")}
    assert kinds == {"conv", "depthwise", "dense"}


def test_conv_layers_against_torch():
    """im2col view of conv2d with stride, padding, dilation and groups: M from the output torch
    computes, MACs = output elements x (Cin / groups) x kh x kw."""
    torch = pytest.importorskip("torch")
    rnd = random.Random(3)
    for _ in range(40):
        groups = rnd.choice([1, 2, 3])
        cin, cout = groups * rnd.randint(1, 4), groups * rnd.randint(1, 4)
        kh, kw = rnd.randint(1, 4), rnd.randint(1, 4)
        dil = (rnd.randint(1, 2), rnd.randint(1, 2))
        pad = (rnd.randint(0, 2), rnd.randint(0, 2))
        stride = (rnd.randint(1, 3), rnd.randint(1, 3))
        h = rnd.randint((kh - 1) * dil[0] + 1, 14)
        w = rnd.randint((kw - 1) * dil[1] + 1, 14)
        batch = rnd.randint(1, 3)
        y = torch.nn.functional.conv2d(torch.zeros(batch, cin, h, w),
                                       torch.zeros(cout, cin // groups, kh, kw),
                                       stride=stride, padding=pad, dilation=dil, groups=groups)
        layer = conv_layer("c", batch=batch, cin=cin, h=h, w=w, cout=cout, kernel=(kh, kw),
                           stride=stride, pads=(pad[0], pad[1], pad[0], pad[1]),
                           groups=groups, dilation=dil)
        assert layer.m == batch * y.shape[2] * y.shape[3]
        assert (layer.k, layer.n, layer.groups) == (cin // groups * kh * kw, cout // groups,
                                                    groups)
        assert layer.macs == y.numel() * (cin // groups) * kh * kw
        assert layer.ifmap_elems == batch * cin * h * w


@pytest.mark.parametrize("model", ["digits-cnn", "digits-mlp"])
def test_graph_layers_match_the_executed_tensors(model):
    """Layers of a sim.dnn graph: M, K, N from the tensors a float run of the graph produces."""
    from sim.dnn.layers import run_float
    from sim.dnn.models import load_model

    graph = load_model(model)
    batch = 3
    _, env = run_float(graph, np.zeros((batch,) + tuple(graph.input_shape)), keep=True)
    layers = {x.name: x for x in layers_from_graph(graph, batch=batch)}
    nodes = [nd for nd in graph.nodes if nd.op in ("conv", "dense")]
    assert list(layers) == [nd.name for nd in nodes]
    for node in nodes:
        x, y, wt = env[node.inputs[0]], env[node.output], node.attrs["W"]
        layer = layers[node.name]
        if node.op == "dense":
            assert (layer.m, layer.k, layer.n) == (batch, x.shape[1], y.shape[1])
        else:
            g = int(node.attrs.get("groups", node.attrs.get("group", 1)))
            assert layer.m == batch * y.shape[2] * y.shape[3]
            assert (layer.k, layer.n, layer.groups) == (wt.shape[1] * wt.shape[2] * wt.shape[3],
                                                        wt.shape[0] // g, g)
            assert layer.ifmap_elems == x.size


# -- SCALE-Sim v2 -----------------------------------------------------------------------------
# Verbatim from scale-sim-v2 at 22f88b1: configs/scale.cfg (with "Dataflow : ws", as
# test/scripts/function_test.sh sets before its golden run) and topologies/conv_nets/
# alexnet_part.csv.
SCALE_CFG = """[general]
run_name = scale_example_run_32x32_os

[architecture_presets]
ArrayHeight:    32
ArrayWidth:     32
IfmapSramSzkB:   64\x20
FilterSramSzkB:  64\x20
OfmapSramSzkB:   64\x20
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 10
Dataflow : ws
MemoryBanks:   1

[run_presets]
InterfaceBandwidth: CALC\x20
"""
ALEXNET_PART = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
                "Num Filter, Strides,\nConv1,  224, 224,    11, 11,    3,      96,     4,")
# topologies/conv_nets/Resnet18.csv, first lines (the header ends in ", "), and
# topologies/GEMM_mnk/test_mnk_input.csv
RESNET18_HEAD = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
                 "Num Filter, Strides, \nConv1,224,224,7,7,3,64,2,\nConv2_1a,56,56,3,3,64,64,1,\n")
MNK = "Layer Name, M, N, K,\nTest 1, 128, 64, 256,"


def test_scalesim_golden_run_reproduced(tmp_path):
    """SCALE-Sim's own regression run (test/golden_trace/COMPUTE_REPORT.csv: 112283 total
    cycles, 0 stalls, overall util 91.68309650614964 %, mapping efficiency 94.53125 %, compute
    util 90.78000992063492 %; DETAILED_ACCESS_REPORT.csv: SRAM IFMAP reads 3294225, filter
    reads 34848, OFMAP writes 3484800), from its config and topology files."""
    (tmp_path / "scale.cfg").write_text(SCALE_CFG)
    (tmp_path / "alexnet_part.csv").write_text(ALEXNET_PART)
    cfg = read_scalesim_config(tmp_path / "scale.cfg")
    assert (cfg.rows, cfg.cols, cfg.dataflow) == (32, 32, "ws")
    assert (cfg.ifmap_sram_kb, cfg.filter_sram_kb, cfg.ofmap_sram_kb) == (64, 64, 64)
    assert cfg.run_name == "scale_example_run_32x32_os"
    (layer,) = read_topology(tmp_path / "alexnet_part.csv")
    array = ArraySpec(cfg.rows, cfg.cols, cfg.dataflow)
    s = scalesim_schedule(layer, array)
    assert s.cycles == 112283
    assert 100 * s.mapping_util == pytest.approx(94.53125, rel=1e-12)
    assert 100 * s.temporal_util == pytest.approx(90.78000992063492, rel=1e-12)
    assert 100 * s.overall_util == pytest.approx(91.68309650614964, rel=1e-12)
    assert s.sram_reads == {"ifmap": 3294225, "filter": 34848, "ofmap_writes": 3484800}
    # sim.perf's own ws SRAM counts are SCALE-Sim's request counts (docstring of memory.py)
    t = layer_traffic(layer, array, Buffers(64, 64, 64))
    assert (t.sram["ifmap_reads"], t.sram["filter_reads"], t.sram["ofmap_writes"]) == \
        (3294225, 34848, 3484800)
    # the generated array's overlapped schedule is faster than SCALE-Sim's folds
    assert layer_schedule(layer, array).cycles < s.cycles


def test_scalesim_formulas_by_hand(tmp_path):
    """Each SCALE-Sim v2 formula (scale-sim-v2 @ 22f88b1) recomputed by hand.

    Total cycles = the cycle of the last OFMAP demand line served
    (scalesim/memory/double_buffered_scratchpad_mem.py:209, ``ofmap_serviced_cycles[-1]``;
    line ``i`` is served at cycle ``i`` without stalls, line 170), i.e. demand lines - 1.
    ws demand lines per fold (scalesim/compute/systolic_compute_ws.py): the filter demand is
    ``arr_row`` weight rows (lines 248-250 pad them) plus ``arr_row + arr_col + T - 2`` (line
    226); compute util per fold ``mac_used * T / (R C (lines + C - 1))`` (lines 265-267).
    os (systolic_compute_os.py): OFMAP demand ``T - 1`` prefix lines (line 316) plus ``arr_row``
    rows (341-343), skewed over ``arr_col`` columns (370, skew_matrix adds ``cols - 1``); util
    per fold ``mac_used * T / (R C (T - 1 + R + C - 1))`` (362-364). Depthwise (``DP`` in the
    name): one layer per channel (scalesim/topology_utils.py:98-102); OFMAP size
    ``ceil((H - R + S) / S)`` (topology_utils.py:209-210); GEMM form ``[m, k, 1, k, 1, n, 1,
    1]`` (topology_utils.py:74)."""
    # ws, 8x4 array, GEMM M=50, K=20, N=10: Sr=K=20, Sc=N=10, T=M=50
    #   row folds ceil(20/8)=3, col folds ceil(10/4)=3, F=9
    #   lines per fold 8 + (8 + 4 + 50 - 2) = 68 -> total 9 * 68 - 1 = 611
    #   mac_used per fold: rows used 8, 8, 4; cols used 4, 4, 2
    #   mapping = mean(rows_used * cols_used) / 32 = (20 * 10 / 9) / 32
    #   compute util = mean(mac_used) * 50 / (32 * (68 + 4 - 1))
    s = scalesim_schedule(Layer("g", "gemm", 50, 20, 10), ArraySpec(8, 4, "ws"))
    assert s.cycles == 611
    assert s.mapping_util == pytest.approx((200 / 9) / 32, rel=1e-12)
    assert s.temporal_util == pytest.approx((200 / 9) * 50 / (32 * 71), rel=1e-12)
    # requests: IFMAP T x rows_used per fold (ws.py:198): 50 * 20 * 3 col folds = 3000;
    # filter rows_used x cols_used (241): 200; OFMAP T x cols_used per fold (295): 50*10*3
    assert s.sram_reads == {"ifmap": 3000, "filter": 200, "ofmap_writes": 1500}
    # os, same array and GEMM: Sr=M=50, Sc=N=10, T=K=20; row folds ceil(50/8)=7, col folds 3
    #   lines per fold (20 - 1) + 8 + 4 - 1 = 30 -> total 21 * 30 - 1 = 629
    #   IFMAP T x rows_used (os.py:240): 20 * 50 * 3 = 3000; filter T x cols_used (285):
    #   20 * 10 * 7 = 1400; OFMAP rows_used x cols_used + (8 + 4) per fold (334, 349):
    #   500 + 21 * 12 = 752
    s = scalesim_schedule(Layer("g", "gemm", 50, 20, 10), ArraySpec(8, 4, "os"))
    assert s.cycles == 629
    assert s.mapping_util == pytest.approx((500 / 21) / 32, rel=1e-12)
    assert s.temporal_util == pytest.approx((500 / 21) * 20 / (32 * 30), rel=1e-12)
    assert s.sram_reads == {"ifmap": 3000, "filter": 1400, "ofmap_writes": 752}
    # topology files: depthwise, 9-field stride, GEMM form, SCALE-Sim's Resnet18 header
    (tmp_path / "t.csv").write_text(
        "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
        "Num Filter, Strides,\n"
        "DP1, 10, 9, 3, 3, 4, 1, 2,\n"          # 4 channel layers, OFMAP ceil(9/2)=5 x 4
        "Conv, 10, 9, 3, 2, 4, 6, 2, 3,\n")     # stride 2 x 3: ceil(9/2)=5 x ceil(10/3)=4
    dp, conv = read_topology(tmp_path / "t.csv")
    assert (dp.kind, dp.m, dp.k, dp.n, dp.groups) == ("depthwise", 20, 9, 1, 4)
    assert (conv.kind, conv.m, conv.k, conv.n, conv.groups) == ("conv", 20, 24, 6, 1)
    # DP1 on a 4x4 ws array: per channel Sr=9 (3 row folds), Sc=1 (1 col fold), T=20:
    #   3 * (20 + 8 + 4 - 2) - 1 = 89 cycles per channel layer, 4 layers
    assert scalesim_schedule(dp, ArraySpec(4, 4, "ws")).cycles == 4 * 89
    (tmp_path / "mnk.csv").write_text(MNK)
    (gemm,) = read_topology(tmp_path / "mnk.csv")
    assert (gemm.name, gemm.m, gemm.k, gemm.n, gemm.kind) == ("Test 1", 128, 256, 64, "gemm")
    (tmp_path / "r18.csv").write_text(RESNET18_HEAD)
    c1, c2 = read_topology(tmp_path / "r18.csv")
    # Conv1: ceil((224 - 7 + 2) / 2) = 110 (SCALE-Sim has no padding field)
    assert (c1.m, c1.k, c1.n) == (110 * 110, 7 * 7 * 3, 64)
    assert (c2.m, c2.k, c2.n) == (54 * 54, 3 * 3 * 64, 64)


@pytest.mark.parametrize("text,says", [
    ("", "is empty"),
    ("Layer name, IFMAP Height\n", "header has 2 fields"),
    ("Layer, M, N, K,\n", "no layers"),
    ("Layer, M, N, K,\nfc, 4, 0, 8,\n", r":2: N = 0 does not fit"),
    ("Layer, M, N, K,\nfc, 4, x, 8,\n", r":2: N 'x' is not a positive integer"),
    ("Layer, M, N, K,\nfc, 4, 8,\n", r":2: expected 'name, M, N, K'"),
    ("Layer, M, N, K,\nfc, 4, 8, 2,\nfc, 1, 1, 1,\n", r":3: layer name 'fc' appears twice"),
    (ALEXNET_PART.replace("11, 11", "300, 11"), r"filter 300x11 is larger"),
    (ALEXNET_PART.replace("96,", "96, 1, 1, 1,"), r"expected 8 or 9 fields"),
    (ALEXNET_PART.replace("96", "-96"), r"'-96' is not a positive integer"),
])
def test_bad_topology_files(tmp_path, text, says):
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(PerfError, match=says):
        read_topology(tmp_path / "t.csv")


@pytest.mark.parametrize("edit,says", [
    (lambda t: t.replace("ws", "is"), "'is', input stationary"),
    (lambda t: t.replace("[architecture_presets]", "[arch]"), r"no \[architecture_presets\]"),
    (lambda t: t.replace("ArrayHeight:    32", "ArrayHeight: 0"), "ArrayHeight = 0"),
    (lambda t: t.replace("ArrayWidth:     32\n", ""), "ArrayWidth is missing"),
    (lambda t: t.replace("[general]", "general]"), "malformed"),
    (lambda t: t + "[general]\nx = 1\n", "malformed"),
])
def test_bad_scalesim_configs(tmp_path, edit, says):
    (tmp_path / "s.cfg").write_text(edit(SCALE_CFG))
    with pytest.raises(PerfError, match=says):
        read_scalesim_config(tmp_path / "s.cfg")


# -- memory traffic ----------------------------------------------------------------------------
def test_traffic_by_hand():
    """4x3 array, GEMM M=10, K=9, N=7: nb = 3 column blocks, kb = 3 K blocks, mb = 3 row blocks.
    Big buffers: every operand read from DRAM once; tiny ones: re-reads and psum spills."""
    layer = Layer("g", "gemm", 10, 9, 7)
    big = Buffers(256, 256, 128)
    ws = layer_traffic(layer, ArraySpec(4, 3, "ws"), big)
    assert ws.sram == {"ifmap_reads": 10 * 9 * 3, "filter_reads": 63,
                       "ofmap_writes": 70 * 3, "ofmap_reads": 70 * 2}
    assert ws.sram_bytes["ofmap_writes"] == 70 * 3 * 4           # 32-bit partial sums
    assert ws.dram == {"ifmap_reads": 90, "filter_reads": 63, "ofmap_writes": 70,
                       "psum_spill": 0}
    os_ = layer_traffic(layer, ArraySpec(4, 3, "os"), big)
    assert os_.sram == {"ifmap_reads": 270, "filter_reads": 63 * 3, "ofmap_writes": 70,
                        "ofmap_reads": 0}
    # 64-byte halves: the 90-byte IFMAP and the 10 x 3 psum block (120 B) do not stay on chip
    tiny = Buffers(0.125, 0.125, 0.125)
    ws = layer_traffic(layer, ArraySpec(4, 3, "ws"), tiny)
    assert ws.resident == {"ifmap": False, "filter": True, "psum": False}
    assert ws.dram == {"ifmap_reads": 90 * 3, "filter_reads": 63, "ofmap_writes": 70,
                       "psum_spill": 2 * 2 * 70 * 4}
    # os: a 4 x 9 row block (36 B) stays, the 63 weights (63 B) fit in 64 B
    os_ = layer_traffic(layer, ArraySpec(4, 3, "os"), tiny)
    assert os_.resident == {"ifmap": True, "filter": True, "psum": True}
    assert os_.dram_bytes == 90 + 63 + 70
    with pytest.raises(PerfError, match="weight tile"):
        layer_traffic(Layer("big", "gemm", 10, 64, 64), ArraySpec(64, 64, "ws"),
                      Buffers(filter_kb=0.5))           # 4096 B tile, 256 B half buffer


# -- energy -----------------------------------------------------------------------------------
def test_sram_energy_is_horowitz_at_his_sizes():
    """Horowitz ISSCC 2014, 45 nm: 64-bit SRAM reads of 10 pJ (8 KB), 20 pJ (32 KB), 100 pJ
    (1 MB); per byte an eighth; monotone in between."""
    cfg = EnergyConfig()
    for kb, pj in ((8, 10), (32, 20), (1024, 100)):
        assert sram_pj_per_byte(kb, cfg) == pytest.approx(pj / 8, rel=1e-12)
    sizes = [1, 4, 8, 16, 32, 64, 256, 1024, 4096]
    values = [sram_pj_per_byte(s, cfg) for s in sizes]
    assert values == sorted(values)
    assert DEFAULTS["dram_pj_per_byte"] == 640 / 4 and DEFAULTS["mult8_pj"] == 0.2


def test_energy_config_file(tmp_path):
    p = tmp_path / "e.toml"
    p.write_text("[energy]\nmult8_pj = 0.3\ndram_pj_per_byte = 100\n[clock]\nmhz = 500\n")
    cfg = load_energy_config(p)
    assert (cfg.mult8_pj, cfg.dram_pj_per_byte, cfg.clock_mhz) == (0.3, 100, 500)
    assert cfg.add32_pj == DEFAULTS["add32_pj"] and cfg.source == str(p)
    for text, says in (("[energy]\nmult_pj = 1\n", "unknown key.*mult_pj"),
                       ("[power]\n", "unknown section"),
                       ("[energy]\nadd32_pj = -1\n", "add32_pj must be a finite"),
                       ("[energy]\nadd32_pj = nan\n", "add32_pj must be a finite"),
                       ("[clock]\nmhz = 0\n", "clock_mhz must be"),
                       ("[energy\n", "not valid TOML"),
                       ("[energy]\nmultiplier_energy = 'x'\n", "multiplier_energy must be")):
        p.write_text(text)
        with pytest.raises(PerfError, match=says):
            load_energy_config(p)


def test_layer_energy_by_hand():
    """ws 4x3 array, GEMM M=10, K=8, N=3 (2 tiles, 29 cycles), a multiplier of 0.15 pJ whose
    trace toggles 3 activation and 2 weight bits per step; defaults otherwise."""
    layer = Layer("g", "gemm", 10, 8, 3)
    array = ArraySpec(4, 3, "ws")
    sched = layer_schedule(layer, array)
    assert sched.cycles == 4 + 10 + 10 - 1 + 6
    buffers = Buffers(8, 32, 1024)
    traffic = layer_traffic(layer, array, buffers)
    mult = MultiplierEnergy("m", 0.15, 0.1, 0.1, 300.0, 50.0, 3.0, 2.0, "t", "unit")
    cfg = EnergyConfig()
    e = layer_energy(layer, sched, traffic, array, buffers, mult, cfg, width=8, acc_width=32,
                     pe_area=500.0)
    macs, pe_cycles = 240, 29 * 12
    assert e["multiplier"] == pytest.approx(macs * 0.15)
    assert e["adder"] == pytest.approx(macs * 0.1)
    # ws PE registers clocked every cycle: 8 activation + 32 partial-sum bits (weights only
    # change at tile loads); data toggles per MAC: 3 activation bits + a quarter of 32
    clock = pe_cycles * 40 * DEFAULTS["ff_clock_fj"]
    toggles = macs * (3 + 0.25 * 32) * DEFAULTS["ff_toggle_fj"]
    assert e["registers"] == pytest.approx((clock + toggles) / 1000)
    from hw.cost.power import LEAKAGE_NW_PER_GE
    assert e["leakage"] == pytest.approx(pe_cycles * 500 * LEAKAGE_NW_PER_GE / 1000 / 1000)
    # SRAM: IFMAP 10*8*1 reads from 8 KB (10/8 pJ/B), FILTER 24 from 32 KB (20/8), OFMAP
    # 30*2 writes + 30 reads of 4-byte partial sums from 1 MB (100/8)
    assert e["sram"] == pytest.approx(80 * 10 / 8 + 24 * 20 / 8 + (60 + 30) * 4 * 100 / 8)
    assert e["dram"] == pytest.approx((80 + 24 + 30) * 160)
    assert e["total"] == pytest.approx(sum(v for k, v in e.items() if k != "total"))


# -- CLI --------------------------------------------------------------------------------------
def _run(argv, capsys):
    from sim.perf.__main__ import main
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_outputs_agree(tmp_path, capsys, monkeypatch):
    """``--no-energy --schedule scalesim`` on ResNet-18: the text table, CSV, JSON and plot,
    and the figures equal the library's."""
    monkeypatch.setenv("AXM_CACHE_DIR", str(tmp_path / "cache"))
    csv_p, json_p, png = tmp_path / "l.csv", tmp_path / "r.json", tmp_path / "p.png"
    status, out, err = _run(["--model", "resnet18", "--rows", "16", "--dataflow", "os",
                             "--no-energy", "--schedule", "scalesim", "--csv", str(csv_p),
                             "--json", str(json_p), "--plot", str(png)], capsys)
    assert status == 0, err
    report = json.loads(json_p.read_text())
    layers = builtin_layers("resnet18")
    array = ArraySpec(16, 16, "os")
    assert [r["cycles"] for r in report["layers"]] == \
        [layer_schedule(x, array).cycles for x in layers]
    assert [r["scalesim"]["cycles"] for r in report["layers"]] == \
        [scalesim_schedule(x, array).cycles for x in layers]
    t = report["totals"]
    assert t["cycles"] == sum(r["cycles"] for r in report["layers"])
    assert t["macs"] == sum(x.macs for x in layers)
    import csv
    rows = list(csv.DictReader(csv_p.read_text().splitlines()))
    assert len(rows) == len(layers) + 1 and rows[-1]["index"] == "total"
    assert [int(r["cycles"]) for r in rows[:-1]] == [r["cycles"] for r in report["layers"]]
    assert int(rows[-1]["cycles"]) == t["cycles"]
    assert int(rows[-1]["scalesim_cycles"]) == t["scalesim_cycles"]
    assert sum(int(r["dram_ifmap_bytes"]) for r in rows[:-1]) == int(rows[-1]["dram_ifmap_bytes"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"{t['cycles']} cycles" in out and "SCALE-Sim v2" in out
    assert out.count("\n") >= len(layers) + 3
    # JSON on stdout is the same report
    status, out, _ = _run(["--model", "resnet18", "--rows", "16", "--dataflow", "os",
                           "--no-energy", "--schedule", "scalesim", "--json"], capsys)
    assert status == 0 and json.loads(out) == report
    # a file the toolkit did not write is not replaced (hw.outputs), nothing else is written
    user = tmp_path / "mine.csv"
    user.write_text("precious\n")
    status, out, err = _run(["--model", "resnet18", "--no-energy", "--csv", str(user),
                             "--json", str(tmp_path / "new.json")], capsys)
    assert status == 2 and len(err.splitlines()) == 1 and "mine.csv" in err
    assert user.read_text() == "precious\n" and not (tmp_path / "new.json").exists()
    # its own earlier output may be replaced
    status, _, err = _run(["--model", "resnet18", "--rows", "8", "--no-energy", "--csv",
                           str(csv_p)], capsys)
    assert status == 0, err
    assert len(csv_p.read_text().splitlines()) == len(layers) + 2


def test_cli_reads_scalesim_files(tmp_path, capsys, monkeypatch):
    """--config and --topology: the array and SRAM sizes come from the .cfg; explicit options
    override them."""
    monkeypatch.setenv("AXM_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "scale.cfg").write_text(SCALE_CFG)
    (tmp_path / "a.csv").write_text(ALEXNET_PART)
    status, out, err = _run(["--config", str(tmp_path / "scale.cfg"), "--topology",
                             str(tmp_path / "a.csv"), "--schedule", "scalesim", "--no-energy",
                             "--json"], capsys)
    assert status == 0, err
    report = json.loads(out)
    assert report["target"]["rows"] == report["target"]["cols"] == 32
    assert report["target"]["buffers"]["ifmap_kb"] == 64
    assert report["layers"][0]["scalesim"]["cycles"] == 112283
    status, out, err = _run(["--config", str(tmp_path / "scale.cfg"), "--topology",
                             str(tmp_path / "a.csv"), "--rows", "8", "--dataflow", "os",
                             "--no-energy", "--json"], capsys)
    assert status == 0, err
    tg = json.loads(out)["target"]
    assert (tg["rows"], tg["cols"], tg["dataflow"]) == (8, 8, "os")
