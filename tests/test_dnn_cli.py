"""python -m sim.dnn: bad input gives one error line and exit status 2; a small run writes the
table, JSON and report."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sim.dnn.__main__ import main


def write_mnist(directory, n_test=5, n_train=3):
    """Random MNIST-format IDX files (magic 00 00 08 NDIM, big-endian dims, bytes)."""
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    for stem, n in (("t10k", n_test), ("train", n_train)):
        for kind, arr in (("images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28))),
                          ("labels-idx1-ubyte", rng.integers(0, 10, n))):
            arr = arr.astype(np.uint8)
            head = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big")
                                                         for d in arr.shape)
            (directory / f"{stem}-{kind}").write_bytes(head + arr.tobytes())


def _err(capsys, argv):
    code = main(argv)
    out = capsys.readouterr()
    assert code == 2, out
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m sim.dnn: error: "), out.err
    assert out.out == ""
    return lines[0]


def test_unknown_model(capsys):
    assert "unknown model 'resnet'" in _err(capsys, ["--model", "resnet"])


def test_unknown_multiplier(capsys):
    assert "unknown multiplier" in _err(capsys, ["--mult", "exact", "bogus3"])
    assert "malformed assignment" in _err(capsys, ["--mult", "fc1=,fc2=drum4"])
    assert "unknown layer" in _err(capsys, ["--model", "digits-mlp", "--mult", "conv1=drum4",
                                            "--limit", "5"])


def test_dataset_errors(tmp_path, capsys):
    assert "does not exist" in _err(capsys, ["--dataset", f"mnist:{tmp_path / 'none'}"])
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"garbage!")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"garbage!")
    assert "not an IDX file" in _err(capsys, ["--dataset", f"mnist:{tmp_path}"])
    assert "unknown dataset" in _err(capsys, ["--dataset", "svhn"])
    assert "test_batch" in _err(capsys, ["--dataset", f"cifar10:{tmp_path}"])


def test_shape_mismatch(tmp_path, capsys):
    write_mnist(tmp_path / "mnist")
    msg = _err(capsys, ["--model", "digits-cnn", "--dataset", f"mnist:{tmp_path / 'mnist'}",
                        "--calib", "2"])
    assert "expects inputs of shape (1, 8, 8)" in msg


def test_onnx_errors(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\x01garbage\xff")
    assert "ONNX" in _err(capsys, ["--onnx", str(bad)])
    nodes = [helper.make_node("Tanh", ["x"], ["y"])]
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    onnx.save(helper.make_model(g), str(tmp_path / "tanh.onnx"))
    assert "unsupported ONNX operator Tanh at node 'y'" in _err(capsys, ["--onnx",
                                                                 str(tmp_path / "tanh.onnx")])


def test_usage_errors_exit_2(capsys):
    for argv in (["--limit", "0"], ["--model", "digits-cnn", "--onnx", "x.onnx"],
                 ["--mean", "0.5"], ["--overflow", "clip"], ["--limit", "1e3"],
                 ["--std", "0", "--mean", "0"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("python -m sim.dnn: error: "), err


def test_subprocess_exit_status():
    proc = subprocess.run([sys.executable, "-m", "sim.dnn", "--model", "nosuch"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "python -m sim.dnn: error: unknown model 'nosuch'; built-in models: digits-cnn, "
        "digits-mlp"]


def test_small_run_with_report(tmp_path, capsys):
    out_json = tmp_path / "r.json"
    report = tmp_path / "rep"
    code = main(["--model", "digits-mlp", "--mult", "drum4", "truncated8", "fc1=perforated2",
                 "--limit", "120", "--json", str(out_json), "--report", str(report),
                 "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "int8-exact" in captured.out and "Spearman" in captured.out
    res = json.loads(out_json.read_text())
    assert res["test_images"] == 120
    labels = [c["label"] for c in res["configs"]]
    assert labels == ["drum4", "truncated8", "fc1=perforated2"]
    mixed = res["configs"][2]
    assert mixed["assignment"] == {"fc1": "perforated2", "fc2": "exact", "fc3": "exact"}
    assert mixed["layers"]["fc2"]["measured_norm"] == 0
    assert mixed["layers"]["fc1"]["measured_norm"] > 0
    for name in ("results.json", "table.txt", "predicted_vs_measured.png",
                 "accuracy_vs_distortion.png"):
        assert (report / name).stat().st_size > 0
    assert (report / "predicted_vs_measured.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in report.iterdir() if p.name.startswith(".")]   # no temp leftovers


def test_onnx_on_mnist_files(tmp_path, capsys):
    """An ONNX MLP for 28x28 inputs evaluated on MNIST IDX files written here."""
    write_mnist(tmp_path / "mnist", n_test=30, n_train=10)
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.05, (784, 16)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, 0.3, (10, 16)).astype(np.float32), "w2"),
             numpy_helper.from_array(np.zeros(10, np.float32), "b2")]
    nodes = [helper.make_node("Flatten", ["x"], ["f"]),
             helper.make_node("MatMul", ["f", "w1"], ["h"]),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["N", 1, 28, 28])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, ["N", 10])], inits)
    path = tmp_path / "mlp.onnx"
    onnx.save(helper.make_model(g), str(path))
    code = main(["--onnx", str(path), "--dataset", f"mnist:{tmp_path / 'mnist'}", "--mult",
                 "exact", "mitchell", "--json", "-", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    res = json.loads(captured.out)
    assert res["dataset"] == "mnist" and res["test_images"] == 30
    assert res["calibration_images"] == 10
    assert res["configs"][0]["drop_pp"] == 0.0          # "exact" equals int8-exact


def _wilson_closed_form(k, n, z=1.959963984540054):
    """Textbook Wilson score interval (Wilson 1927; Agresti & Coull 1998, eq. 2)."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5 / (1 + z * z / n)
    return centre - half, centre + half


def _mcnemar_by_sum(b, c):
    from math import comb
    n = b + c
    if n == 0:
        return 1.0
    pr = [comb(n, i) / 2 ** n for i in range(n + 1)]
    return min(1.0, sum(q for q in pr if q <= pr[b] * (1 + 1e-9)))


def test_report_keeps_full_labels_and_gives_intervals(tmp_path, capsys):
    """Labels that share their first 21 characters (per-layer assignments, an imported
    product table with a long path) stay distinct everywhere; every accuracy has its Wilson
    interval and every drop its paired interval and McNemar p-value."""
    from hw.mult import parse

    folder = tmp_path / "a_rather_long_folder_name_for_imported_multipliers"
    folder.mkdir()
    exact_tab = folder / "exact_products_signed_8bit.npy"
    drum_tab = folder / "drum4_products_signed_8bit.npy"
    np.save(exact_tab, parse("exact", width=8, signed=True).table())
    np.save(drum_tab, parse("drum4", width=8, signed=True).table())
    mults = ["fc1=perforated2,fc2=drum4", "fc1=perforated2,fc2=drum6", "drum4",
             f"table:{exact_tab}", f"table:{drum_tab}", "truncated8"]
    report = tmp_path / "rep"
    code = main(["--model", "digits-mlp", "--mult", *mults, "--limit", "150",
                 "--report", str(report), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    res = json.loads((report / "results.json").read_text())
    table = (report / "table.txt").read_text()
    assert [c["label"] for c in res["configs"]] == mults
    for label in mults:
        assert label in captured.out and label in table
    n = res["test_images"]
    assert n == 150
    for key in ("float", "int8"):
        lo, hi = _wilson_closed_form(res[key]["correct"], n)
        assert res[key]["ci95_low"] == pytest.approx(lo, abs=1e-12)
        assert res[key]["ci95_high"] == pytest.approx(hi, abs=1e-12)
    int8_ok = res["int8"]["correct"]
    by_label = {c["label"]: c for c in res["configs"]}
    for c in res["configs"]:
        assert c["n"] == n and c["correct"] == round(c["accuracy"] * n)
        lo, hi = _wilson_closed_form(c["correct"], n)
        assert (c["ci95_low"], c["ci95_high"]) == (pytest.approx(lo, abs=1e-12),
                                                   pytest.approx(hi, abs=1e-12))
        b, cc = c["only_ref_correct"], c["only_this_correct"]
        assert int8_ok - b + cc == c["correct"]                 # paired counts fit the margins
        assert c["mcnemar_p"] == pytest.approx(_mcnemar_by_sum(b, cc), rel=1e-9)
        assert c["significant"] == (c["mcnemar_p"] < 0.05)
        assert c["drop_ci95_low_pp"] <= c["drop_pp"] <= c["drop_ci95_high_pp"]
        lines = table.splitlines()
        at = next(i for i, line in enumerate(lines) if line.split()[:1] == [c["label"]])
        cells = lines[at] if len(lines[at].split()) > 1 else lines[at + 1]   # long: next line
        assert f"[{100 * c['ci95_low']:.1f}, {100 * c['ci95_high']:.1f}]" in cells
        tokens = cells.split()
        assert f"{c['drop_pp']:+.1f}{'*' if c['significant'] else ''}" in tokens
        assert f"[{c['drop_ci95_low_pp']:+.1f}," in tokens
        assert f"{c['drop_ci95_high_pp']:+.1f}]" in tokens
    same = by_label[f"table:{exact_tab}"]                    # the exact table is int8-exact
    assert (same["only_ref_correct"], same["only_this_correct"], same["mcnemar_p"]) == (0, 0, 1)
    twin, drum = by_label[f"table:{drum_tab}"], by_label["drum4"]
    assert (twin["correct"], twin["only_ref_correct"]) == (drum["correct"],
                                                           drum["only_ref_correct"])
    wrecked = by_label["truncated8"]
    assert wrecked["significant"] and wrecked["drop_ci95_low_pp"] > 0
    assert "Wilson" in table and "McNemar" in table and "Newcombe" in table
