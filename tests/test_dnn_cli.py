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
    assert len(lines) == 1 and lines[0].startswith("error:"), out.err
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
    assert "unsupported ONNX operator(s): Tanh" in _err(capsys, ["--onnx",
                                                                 str(tmp_path / "tanh.onnx")])


def test_usage_errors_exit_2(capsys):
    for argv in (["--limit", "0"], ["--model", "digits-cnn", "--onnx", "x.onnx"],
                 ["--mean", "0.5"], ["--overflow", "clip"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "error:" in err[0]


def test_subprocess_exit_status():
    proc = subprocess.run([sys.executable, "-m", "sim.dnn", "--model", "nosuch"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "error: unknown model 'nosuch'; built-in models: digits-cnn, digits-mlp"]


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
