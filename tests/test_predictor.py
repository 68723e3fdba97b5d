"""The analytical predictor E||E||_F^2 = M N (K s^2 + K^2 mu^2) against Monte Carlo error
injection on random matrices, against error moments computed here from the product tables, and
on the digits MLP (predicted vs measured distortion, rank correlation with the accuracy drop)."""

import math

import numpy as np
import pytest

from hw.mult import parse
from sim.dnn import evaluate, load_digits_split, load_model
from sim.dnn.predictor import (histogram, monte_carlo_energy, predict, predict_gemm,
                               spearman)

#: Monte Carlo tolerance: 20 trials of a 48 x 40 x 24 GEMM (observed deviations <= 4 %; rows share
#: the weights, so outputs are correlated) stays well inside this for every case below.
MC_TOL = 0.10


def _relu_like(spec):
    """Activation-like histogram: half zeros, geometric tail over 1..127."""
    v = spec.operand_values()
    h = np.where(v == 0, 60.0, np.where(v > 0, np.exp(-v / 25.0), 0.0))
    return h / h.sum()


def _weight_like(spec):
    v = spec.operand_values().astype(float)
    h = np.exp(-0.5 * (v / 40.0) ** 2)
    h[0] = 0.0                                   # -128 unused by symmetric quantisation
    return h / h.sum()


@pytest.mark.parametrize("name", ["truncated6", "truncated6c", "drum4", "mitchell", "etm3",
                                  "bam2_6", "roba"])
@pytest.mark.parametrize("weighted", [False, True])
def test_prediction_agrees_with_monte_carlo(name, weighted):
    spec = parse(name)
    kw = {"dist_a": _relu_like(spec), "dist_b": _weight_like(spec)} if weighted else {}
    m, k, n = 48, 40, 24
    pred = predict_gemm(spec, m, k, n, **kw)
    mc = monte_carlo_energy(spec, m, k, n, trials=20, seed=1, **kw)
    assert pred.energy > 0
    assert abs(pred.energy / mc - 1) < MC_TOL, (pred.energy, mc)


def test_moments_match_the_table():
    spec = parse("drum4")
    v = spec.operand_values()
    err = (spec.table() - np.outer(v, v)).astype(float)
    ha, hb = _relu_like(spec), _weight_like(spec)
    w = np.outer(ha, hb)
    mu = (w * err).sum()
    var = (w * err ** 2).sum() - mu ** 2
    p = predict_gemm(spec, 10, 7, 3, dist_a=ha, dist_b=hb)
    assert p.mu == pytest.approx(mu, rel=1e-9, abs=1e-12)
    assert p.var == pytest.approx(var, rel=1e-9)
    assert p.energy == pytest.approx(10 * 3 * (7 * var + 49 * mu ** 2), rel=1e-9)
    u = predict_gemm(spec, 1, 1, 1)
    assert u.mu == pytest.approx(err.mean(), abs=1e-12)


def test_bias_and_variance_shares():
    p = predict(mu=2.0, var=8.0, m=3, k=4, n=5)
    assert p.bias_energy == 3 * 5 * 16 * 4.0 and p.var_energy == 3 * 5 * 4 * 8.0
    assert p.bias_share + p.var_share == pytest.approx(1.0)
    assert p.norm == pytest.approx(math.sqrt(p.energy))
    assert predict(0.0, 0.0, 4, 4, 4).bias_share == 0.0
    # compensation removes the bias of truncation: the bias share collapses
    plain = predict_gemm(parse("truncated6"), 64, 256, 64)
    comp = predict_gemm(parse("truncated6c"), 64, 256, 64)
    assert plain.bias_share > 0.9 and comp.bias_share < 0.1


def test_histogram_and_spearman():
    spec = parse("exact")
    h = histogram(spec, [0, 0, 1, -128])
    assert h[128] == 0.5 and h[129] == 0.25 and h[0] == 0.25
    assert spearman([1, 2, 3, 4], [10, 20, 25, 100]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_predictor_on_the_digits_mlp():
    """Weighted predictions track the measured per-layer distortion, and the predicted total
    distortion ranks the configurations like their accuracy drop."""
    configs = ["truncated4", "truncated7", "truncated9c", "bam2_8", "perforated2", "drum3",
               "drum5", "mitchell", "kulkarni", "etm4", "etm2", "roba"]
    res = evaluate(load_model("digits-mlp"), load_digits_split(), configs, predict=True)
    for c in res["configs"]:
        for layer, d in c["layers"].items():
            if d["measured_norm"] > 0:
                assert abs(d["rel_err_weighted"]) < 0.5, (c["label"], layer, d)
    assert res["spearman"]["weighted"] > 0.7
