"""sim.metrics and the sim.characterize CLI, checked against plain-Python definitions."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import sim.metrics as metrics_module
from hw.mult import parse
from sim.characterize import main
from sim.metrics import characterize


def brute_force_metrics(spec, wa=None, wb=None):
    """EvoApproxLib definitions evaluated pair by pair with Python numbers."""
    values = [int(v) for v in spec.operand_values()]
    wa = wa or {v: 1.0 for v in values}
    wb = wb or {v: 1.0 for v in values}
    tot = se = sae = sse = sep = rel_w = rel = 0.0
    wce = 0
    wcre = 0.0
    for a in values:
        for b in values:
            w = wa.get(a, 0.0) * wb.get(b, 0.0)
            if w == 0:
                continue
            exact = a * b
            err = int(spec.model(a, b)) - exact
            tot += w
            se += w * err
            sae += w * abs(err)
            sse += w * err * err
            sep += w * (err != 0)
            wce = max(wce, abs(err))
            if exact:
                rel_w += w
                rel += w * abs(err) / abs(exact)
                wcre = max(wcre, abs(err) / abs(exact))
    lo, hi = spec.operand_range
    max_prod = max(lo * lo, hi * hi)
    return {"me": se / tot, "mae": sae / tot, "mse": sse / tot,
            "var": sse / tot - (se / tot) ** 2, "wce": wce, "ep": sep / tot,
            "mre": rel / rel_w, "wcre": wcre, "nmed": sae / tot / max_prod}


@pytest.mark.parametrize("name", ["truncated3", "bam1_3", "perforated1_1", "drum2", "mitchell",
                                  "kulkarni", "roba", "etm2", "truncated3c"])
@pytest.mark.parametrize("signed", [True, False])
def test_metrics_match_brute_force_definitions(name, signed):
    spec = parse(name, width=4, signed=signed)
    got = characterize(spec).as_dict()
    want = brute_force_metrics(spec)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
    assert got["pairs"] == 256 and got["method"] == "exhaustive"


def test_weighted_metrics_match_brute_force():
    spec = parse("drum2", width=4, signed=True)
    rng = np.random.default_rng(5)
    ha = rng.random(16)
    hb = rng.random(16) * (rng.random(16) > 0.3)
    values = [int(v) for v in spec.operand_values()]
    got = characterize(spec, dist_a=ha, dist_b=hb)
    want = brute_force_metrics(spec, dict(zip(values, ha)), dict(zip(values, hb)))
    for key, value in want.items():
        assert getattr(got, key) == pytest.approx(value, rel=1e-9), key
    assert "weighted" in got.method


def test_samples_become_histograms():
    spec = parse("truncated4", width=8, signed=True)
    samples = np.array([3, 3, 3, -7])  # a is 3 w.p. 3/4, -7 w.p. 1/4; b = 100 always
    m = characterize(spec, dist_a=samples, dist_b=np.array([100]))
    e3 = int(spec.model(3, 100)) - 300
    e7 = int(spec.model(-7, 100)) + 700
    assert m.me == pytest.approx(0.75 * e3 + 0.25 * e7)
    assert m.wce == max(abs(e3), abs(e7))


def test_chunked_enumeration_equals_single_chunk(monkeypatch):
    spec = parse("roba", width=8, signed=True)
    whole = characterize(spec)
    monkeypatch.setattr(metrics_module, "CHUNK_PAIRS", 1000)
    chunked = characterize(spec)
    for key in ("me", "mae", "mse", "wce", "ep", "mre", "wcre"):
        assert getattr(chunked, key) == pytest.approx(getattr(whole, key), rel=1e-12)
    assert chunked.pairs == whole.pairs == 65536


def test_sampling_is_seeded_and_close_to_exhaustive():
    spec = parse("drum4", width=8, signed=False)
    a = characterize(spec, sample=200_000, seed=7)
    b = characterize(spec, sample=200_000, seed=7)
    full = characterize(spec)
    assert a == b and "seed 7" in a.method
    assert a.mae == pytest.approx(full.mae, rel=0.02)


def test_sixteen_bit_sampling_runs():
    m = characterize(parse("truncated8", width=16, signed=True), sample=50_000, seed=1)
    assert m.pairs == 50_000 and m.me < 0


def test_nan_mre_only_when_every_product_is_zero():
    spec = parse("exact", width=4, signed=False)
    m = characterize(spec, dist_a=np.array([0]))
    assert math.isnan(m.mre) and m.mae == 0


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
def test_cli_json_matches_library(capsys):
    assert main(["truncated4", "mitchell", "--width", "8", "--unsigned", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["truncated4", "mitchell"]
    lib = characterize(parse("mitchell", width=8, signed=False))
    assert rows[1]["wcre"] == pytest.approx(lib.wcre) and rows[1]["signed"] is False


def test_cli_csv_and_table(capsys):
    assert main(["exact", "drum4", "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("name,width,signed,me,") and len(lines) == 3
    assert main(["--all", "--width", "4"]) == 0
    out = capsys.readouterr().out
    assert "ME (bias)" in out and "kulkarni" in out and "etm" in out


def test_cli_distribution_files(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.arange(0, 50))
    (tmp_path / "b.csv").write_text("1,2,3,4\n")
    assert main(["roba", "--dist-a", str(tmp_path / "a.npy"),
                 "--dist-b", str(tmp_path / "b.csv"), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert "weighted" in row["method"]


@pytest.mark.parametrize("argv, fragment", [
    (["nosuch"], "unknown multiplier"),
    (["truncated40"], "outside"),
    (["exact", "--width", "0"], "argument --width: 0 is out of range 4..16"),
    (["exact", "--width", "x"], "argument --width: 'x' is not an integer"),
    ([], "give at least one"),
    (["exact", "--dist-a", "/nonexistent/file.npy"], "not found"),
])
def test_cli_bad_input_is_one_line_exit_2(argv, fragment):
    proc = subprocess.run([sys.executable, "-m", "sim.characterize", *argv],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert fragment in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stdout == ""
