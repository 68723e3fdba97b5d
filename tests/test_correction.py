"""Accuracy recovery: bias compensation and control-variate correction (sim.correction, issue 13).

Cross-checks: the least-squares fit against numpy's lstsq and the closed form of perforation
(``p = a * w'`` with the skipped rows of ``w`` cleared, by the arithmetic definition); corrected
GEMMs against the exact product where the correction must be exact, against the fixed-point
definition written out here with Python integers, and golden model against fast emulation; the
Amaranth component (both dataflows, gaps and back-pressure) against the golden model, and its
cycle counts against ``hw.systolic.gemm_cycles`` and the manifest formula. The RTL checks on
Verilator and Icarus are the corrected designs in tests/test_array_rtl.py (one shared harness).
"""

import json

import numpy as np
import pytest

from hw.gen import generate, main as gen_main
from hw.mult import parse
from hw.systolic import SystolicArray, gemm_cycles
from sim.arraycheck import (StreamCodec, extreme_tiles, manifest_gemm_cycles,
                            model_from_manifest, overflow_tiles, program, random_tiles,
                            simulate_amaranth, measure_gemm)
from sim.correction import (CorrectionError, CorrectionFormat, column_constants, default_format,
                            linear_fit, residual_moments)
from sim.emulate import emulate_tiled
from sim.golden import ArrayModel, accumulate, tiled_gemm

HETERO = ["exact", "truncated4c", "bam2_6", "drum4"]


def _fmt(mode, mults, rows=4, dataflow="ws", acc_width=32, **kw):
    return default_format(mode, [parse(m, signed=kw.pop("signed", True)) for m in mults],
                          rows=rows, dataflow=dataflow, acc_width=acc_width, **kw)


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("skip", [1, 2])
def test_fit_closed_form_of_perforation(signed, skip):
    """Perforation is linear in the activation: alpha(w) = w' - w = -(w mod 2^skip) exactly,
    beta the same for every w (Baugh-Wooley's constant when signed), residual zero."""
    spec = parse(f"perforated{skip}", signed=signed)
    v = spec.operand_values()
    alpha, beta = linear_fit(spec, "cv")
    assert np.array_equal(alpha, -(v & ((1 << skip) - 1)))
    assert np.ptp(beta) == 0 and (beta[0] == 0) == (not signed)
    cleared = v & ~((1 << skip) - 1)                       # arithmetic definition of w'
    table = spec.model(v[:, None], v[None, :])
    assert np.array_equal(table - np.outer(v, cleared), np.full_like(table, int(beta[0])))
    # what is left is the column-mean term only: Var_w(alpha) Var_a(a), uniform operands
    res = residual_moments(spec, "cv")
    assert res["mu"] == 0.0
    assert res["var"] == pytest.approx((4 ** skip - 1) / 12 * (v.size ** 2 - 1) / 12)


def test_fit_is_weighted_least_squares():
    """alpha, beta minimise sum_a P(a) (e(a, w) - alpha a - beta)^2 (numpy lstsq on the
    weighted system, from spec.model); bias-only is the weighted mean error."""
    spec = parse("truncated8")
    v = spec.operand_values()
    rng = np.random.default_rng(3)
    dist = rng.random(v.size) * (v >= 0)                   # ReLU-like: non-negative a only
    p = dist / dist.sum()
    alpha, beta = linear_fit(spec, "cv", dist)
    b_alpha, b_beta = linear_fit(spec, "bias", dist)
    assert not b_alpha.any()
    for w in (-128, -77, -1, 0, 5, 127):
        e = spec.model(v, w) - v * w
        sw = np.sqrt(p)
        sol = np.linalg.lstsq(np.stack([v * sw, sw], axis=1), e * sw, rcond=None)[0]
        i = w - v[0]
        assert alpha[i] == pytest.approx(sol[0], abs=1e-9)
        assert beta[i] == pytest.approx(sol[1], abs=1e-6)
        assert b_beta[i] == pytest.approx(float(p @ e), abs=1e-9)


@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize("signed", [True, False])
def test_cv_makes_perforation_exact(dataflow, signed):
    """Columns whose weights share their low bits have one alpha: the CV correction then
    removes the whole error, so the corrected GEMM is the exact product a @ b (golden model and
    emulation), over several K tiles and ragged blocks; without correction it is not."""
    spec = parse("perforated2", signed=signed)
    lo, hi = spec.operand_range
    rng = np.random.default_rng(1)
    m, k, n = 9, 11, 7
    a = rng.integers(lo, hi + 1, size=(m, k))
    b = rng.integers(lo, hi + 1, size=(k, n)) & ~3
    b = np.clip(b | rng.integers(0, 4, size=n)[None, :], lo, hi)    # low bits per column
    fmt = default_format("cv", spec, rows=4, dataflow=dataflow, acc_width=32)
    model = ArrayModel(4, 3, ((spec,) * 3,) * 4, dataflow=dataflow, correction=fmt)
    want = a @ b
    assert not np.array_equal(tiled_gemm(a, b, ArrayModel(4, 3, ((spec,) * 3,) * 4,
                                                          dataflow=dataflow)), want)
    assert np.array_equal(tiled_gemm(a, b, model), want)
    assert np.array_equal(emulate_tiled(a, b, model), want)


def _definition(a, b, model):
    """Corrected tiled GEMM from the module docstrings, Python integers: per pass, the
    accumulator over its products with the overflow rule, then acc + ((g S + h) >> F) with the
    rule, ws passes added by the host with the rule."""
    fmt, lim = model.correction, 1 << (model.acc_width - 1)

    def red(x):
        if model.overflow == "saturate":
            return max(-lim, min(lim - 1, x))
        return (x + lim) % (2 * lim) - lim

    def s_bits(x):
        return (x + (1 << (fmt.sum_bits - 1))) % (1 << fmt.sum_bits) - (1 << (fmt.sum_bits - 1))

    m, k = a.shape
    n = b.shape[1]
    out = [[0] * n for _ in range(m)]
    ws = model.dataflow == "ws"
    k_blocks = range(0, k, model.rows) if ws else [0]
    for n0 in range(0, n, model.cols):
        cols = range(n0, min(n, n0 + model.cols))
        for t, k0 in enumerate(k_blocks):
            ks = range(k0, min(k, k0 + model.rows)) if ws else range(k)
            spec_of = (lambda kk, nn: model.grid[kk - k0][nn - n0]) if ws else \
                (lambda kk, nn: model.grid[0][nn - n0])
            g, h = column_constants(b[list(ks)][:, list(cols)],
                                    lambda kk, nn: spec_of(kk + ks[0], nn + n0), fmt)
            for mm in range(m):
                s = sum(int(a[mm, kk]) for kk in ks)
                s = s_bits(s) if fmt.mode == "cv" else 0
                for j, nn in enumerate(cols):
                    acc = 0
                    for kk in ks:
                        spec = spec_of(kk, nn) if ws else model.grid[mm % model.rows][nn - n0]
                        acc = red(acc + int(spec.model(a[mm, kk], b[kk, nn])))
                    y = red(acc + ((int(g[j]) * s + int(h[j])) >> fmt.frac))
                    out[mm][nn] = y if t == 0 else red(out[mm][nn] + y)
    return np.array(out, dtype=np.int64)


@pytest.mark.parametrize("dataflow,mode,overflow", [("ws", "cv", "saturate"),
                                                    ("ws", "bias", "wrap"),
                                                    ("os", "cv", "wrap"),
                                                    ("os", "bias", "saturate")])
def test_golden_and_emulation_equal_the_definition(dataflow, mode, overflow):
    rng = np.random.default_rng(11)
    fmt = _fmt(mode, HETERO[:3], rows=4, dataflow=dataflow, acc_width=18,
               **({"sum_bits": 9} if dataflow == "os" and mode == "cv" else {}))
    model = ArrayModel.per_col(4, 3, HETERO[:3], dataflow=dataflow, acc_width=18,
                               overflow=overflow, correction=fmt)
    a = rng.integers(-128, 128, size=(7, 13))
    a[0] = 127                                    # drives the 9-bit os sums around (wrap)
    b = rng.integers(-128, 128, size=(13, 5))
    want = _definition(a, b, model)
    assert np.array_equal(tiled_gemm(a, b, model), want)
    assert np.array_equal(emulate_tiled(a, b, model), want)


def test_correction_removes_the_mean_error():
    """truncated8 on uniform random operands: bias and CV take the mean output error from
    hundreds of LSBs per product to under 2 % of it; CV also lowers the mean squared error
    below bias-only (it follows the activations)."""
    spec = parse("truncated8")
    rng = np.random.default_rng(5)
    a = rng.integers(-128, 128, size=(400, 64))
    b = rng.integers(-128, 128, size=(64, 32))
    exact = a @ b
    errs = {}
    for mode in ("none", "bias", "cv"):
        fmt = None if mode == "none" else default_format(mode, spec, rows=16)
        model = ArrayModel(16, 16, ((spec,) * 16,) * 16, correction=fmt)
        errs[mode] = (emulate_tiled(a, b, model) - exact).astype(np.float64)
    assert abs(errs["none"].mean()) > 64 * 300
    for mode in ("bias", "cv"):
        assert abs(errs[mode].mean()) < 0.02 * abs(errs["none"].mean())
    assert (errs["cv"] ** 2).mean() < 0.9 * (errs["bias"] ** 2).mean()


def test_bad_corrections_are_one_line_errors():
    with pytest.raises(CorrectionError, match="error table") as exc:
        default_format("cv", parse("drum4", width=13), rows=4)
    assert "\n" not in str(exc.value)
    with pytest.raises(CorrectionError, match="zero variance"):
        linear_fit(parse("truncated8"), "cv", np.eye(256)[3])
    with pytest.raises(CorrectionError, match="overflows its 3-bit width"):
        column_constants(np.full((4, 2), -128), parse("truncated8"),
                         CorrectionFormat("cv", 6, 8, 3, 10))
    with pytest.raises(CorrectionError, match="different multipliers in one column"):
        ArrayModel.per_row(2, 2, ["exact", "drum4"], dataflow="os",
                           correction=_fmt("bias", ["exact", "drum4"], rows=2, dataflow="os"))
    with pytest.raises(CorrectionError, match="10 entries; truncated8@8s needs 256"):
        linear_fit(parse("truncated8"), "cv", np.ones(10))
    with pytest.raises(CorrectionError, match="cannot hold the slope"):
        _fmt("cv", ["drum4"], alpha_bits=8)


def _codecs(array):
    return {p["name"].split("__")[0]: StreamCodec(p)
            for p in array.interface() if p["name"].endswith("__payload")}


@pytest.mark.parametrize("dataflow,mode,pipeline", [("ws", "cv", True), ("ws", "bias", False),
                                                    ("os", "cv", False), ("os", "bias", True)])
def test_component_in_amaranth_simulator(dataflow, mode, pipeline):
    """The corrected component elaborated directly: random, accumulator-overflow and extreme
    tiles (operands and constants at both ends of their widths), gaps and back-pressure."""
    fmt = _fmt(mode, HETERO, rows=3, dataflow=dataflow, acc_width=18)
    model = ArrayModel.per_col(3, 4, HETERO, dataflow=dataflow, acc_width=18,
                               overflow="saturate", correction=fmt)
    array = SystolicArray.from_model(model, pipeline=pipeline)
    codecs = _codecs(array)
    rng = np.random.default_rng(7)
    prog = program(model, codecs, random_tiles(model, rng, 2) + overflow_tiles(model, rng)
                   + extreme_tiles(model, rng), rng)
    words = simulate_amaranth(array, prog, seed=3, p_gap=0.3, p_stall=0.3)
    got = np.array([codecs["results"].decode(w) for w in words])
    assert np.array_equal(got, np.array(prog.expected))
    plain = ArrayModel.per_col(3, 4, HETERO, dataflow=dataflow, acc_width=18,
                               overflow="saturate")
    uncorrected = [v for a, b in prog.operands for v in plain.tile(a, b)]
    assert sum(np.any(u != e) for u, e in zip(uncorrected, prog.expected)) > len(got) // 2


@pytest.mark.parametrize("dataflow,pipeline", [("ws", True), ("os", False)])
def test_cycles_in_amaranth_simulator(dataflow, pipeline):
    """Whole-GEMM cycles of corrected arrays, measured: latency + 1, os tiles paced by
    rows + cols (+1): equal to gemm_cycles(correction=True) and to the manifest formula."""
    rows, cols = 3, 2
    model = ArrayModel.uniform(rows, cols, "truncated6", dataflow=dataflow,
                               correction=_fmt("cv", ["truncated6"], rows=rows,
                                               dataflow=dataflow))
    array = SystolicArray.from_model(model, pipeline=pipeline)
    codecs = _codecs(array)
    entry = array.timing()["gemm_cycles"]
    assert array.latency == rows + cols - (dataflow == "ws") + pipeline + 1
    rng = np.random.default_rng(5)
    for m, k, n in [(1, 1, 1), (4, 7, 3), (7, 2, 3)]:
        a = rng.integers(-128, 128, size=(m, k))
        b = rng.integers(-128, 128, size=(k, n))
        got, want, measured = measure_gemm(array, model, a, b, rng)
        assert np.array_equal(got, want)
        assert measured == gemm_cycles(m, k, n, rows=rows, cols=cols, dataflow=dataflow,
                                       pipeline=pipeline, correction=True)
        assert measured == manifest_gemm_cycles(entry, m, k, n)
    if dataflow == "os":     # short tiles: one last step per rows + cols + pipeline cycles
        assert gemm_cycles(7, 2, 3, rows=rows, cols=cols, dataflow="os", correction=True) - \
            gemm_cycles(4, 2, 3, rows=rows, cols=cols, dataflow="os", correction=True) == \
            2 * (rows + cols)


def test_generated_manifest_and_command(tmp_path):
    """hw.gen --correction: top name, manifest widths and payload fields, the model rebuilt from
    the manifest, and the manifest's command regenerating the same bytes."""
    gen = generate(rows=3, cols=2, mult="truncated8", dataflow="os", correction="cv")
    assert gen.top == "axm_os_3x2_truncated8_8s_cv"
    corr = gen.manifest["array"]["correction"]
    assert (corr["mode"], corr["frac_bits"], corr["sum_bits"]) == ("cv", 6, 20)
    fields = {f["name"]: f for p in gen.manifest["ports"] if p["name"] == "operands__payload"
              for f in p["fields"]}
    assert fields["corr_g"]["lane_width"] == corr["alpha_bits"] and fields["corr_g"]["lanes"] == 2
    assert fields["corr_h"]["width"] == 2 * corr["beta_bits"]
    model = model_from_manifest(gen.manifest)
    assert model.correction.hardware == {k: corr[k] for k in
                                         ("mode", "frac_bits", "alpha_bits", "beta_bits",
                                          "sum_bits")}
    argv = gen.manifest["command"].split()[3:] + ["-o", str(tmp_path)]
    assert gen_main(argv) == 0
    assert (tmp_path / f"{gen.top}.v").read_text() == gen.verilog
    assert json.loads((tmp_path / f"{gen.top}.json").read_text()) == gen.manifest


def test_dnn_corrected_layers_are_bit_exact_and_recover_accuracy():
    """sim.dnn --correction: a corrected layer's accumulators equal the golden model's tiled
    GEMM plus the layer's start; truncated8 + cv recovers most of the accuracy it loses."""
    from sim.dnn.data import load_dataset
    from sim.dnn.evaluate import Config, _with_corrections, evaluate
    from sim.dnn.models import load_model
    from sim.dnn.quant import QuantizedModel, layer_gemm, resolve_assignment

    graph = load_model("digits-cnn")
    data = load_dataset("digits").limited(30)
    x_cal = data.x_calib.reshape((-1,) + tuple(graph.input_shape))
    qm = QuantizedModel(graph, x_cal)
    resolved = [(Config("truncated8", "truncated8"), resolve_assignment(graph, "truncated8"))]
    out, modes = _with_corrections(qm, x_cal, resolved, ("cv",), True, 32, "wrap", 16)
    assert modes == ["cv"] and out[0][0].label == "truncated8+cv"
    targets = out[0][1]
    xq = qm.quantize_input(data.x_test[:2].reshape((-1,) + tuple(graph.input_shape)))
    _, rec = qm.run(xq, None, capture=True, quantized_input=True)
    a, b = rec["conv3"]["a"], rec["conv3"]["b"]
    start = np.zeros((a.shape[0], b.shape[1]), np.int64) + 7
    target = targets["conv3"]
    assert target.correction is not None and target.correction.dist is not None
    assert np.array_equal(layer_gemm(a, b, target, start),
                          accumulate(tiled_gemm(a, b, target), start, 32, "wrap"))
    res = evaluate(graph, data, ["truncated8"], corrections=("none", "cv"))
    acc = {c["label"]: c["accuracy"] for c in res["configs"]}
    assert acc["truncated8+cv"] > acc["truncated8"] + 0.5
    assert [c["correction"] for c in res["configs"]] == ["none", "cv"]
