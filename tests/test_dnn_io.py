"""Dataset loaders (MNIST IDX, CIFAR-10 pickles; files written here) and ONNX import (models
built here with the onnx helper API, cross-checked with the native path and onnx's reference
evaluator)."""

import gzip
import pickle

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from sim.dnn import DnnError, QuantizedModel, load_digits_split, load_model, run_float
from sim.dnn.data import load_cifar10, load_dataset, load_mnist, read_idx
from sim.dnn.onnx_import import from_onnx_model, load_onnx


# -- MNIST -----------------------------------------------------------------------------------------

def write_idx(path, array, gz=False):
    array = np.asarray(array, dtype=np.uint8)
    data = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def write_mnist(directory, n_test=5, n_train=3, gz=False, seed=0, size=28):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    sfx = ".gz" if gz else ""
    sets = {"t10k": n_test, "train": n_train}
    out = {}
    for stem, n in sets.items():
        if not n:
            continue
        img = rng.integers(0, 256, (n, size, size))
        lab = rng.integers(0, 10, n)
        write_idx(directory / f"{stem}-images-idx3-ubyte{sfx}", img, gz)
        write_idx(directory / f"{stem}-labels-idx1-ubyte{sfx}", lab, gz)
        out[stem] = (img, lab)
    return out


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_loader(tmp_path, gz):
    raw = write_mnist(tmp_path, gz=gz)
    ds = load_mnist(tmp_path)
    img, lab = raw["t10k"]
    assert ds.x_test.shape == (5, 1, 28, 28)
    np.testing.assert_allclose(ds.x_test[:, 0] * 255, img)
    np.testing.assert_array_equal(ds.y_test, lab)
    np.testing.assert_allclose(ds.x_calib[:, 0] * 255, raw["train"][0])     # held-out source


def test_mnist_without_train_files_calibrates_on_a_test_prefix(tmp_path):
    raw = write_mnist(tmp_path, n_test=6, n_train=0)
    ds = load_mnist(tmp_path, calib=2)
    assert len(ds.x_calib) == 2 and len(ds.x_test) == 4
    np.testing.assert_array_equal(ds.y_test, raw["t10k"][1][2:])


def test_mnist_bad_files(tmp_path):
    with pytest.raises(DnnError, match="does not exist"):
        load_mnist(tmp_path / "nope")
    with pytest.raises(DnnError, match="no MNIST test files"):
        load_mnist(tmp_path)
    write_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x12\x34garbage")
    with pytest.raises(DnnError, match="bad magic"):
        load_mnist(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((5, 28, 28)))
    data = (tmp_path / "t10k-images-idx3-ubyte").read_bytes()
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(data[:-10])
    with pytest.raises(DnnError, match="size mismatch"):
        read_idx(tmp_path / "t10k-images-idx3-ubyte")
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((4, 28, 28)))
    with pytest.raises(DnnError, match="inconsistent"):
        load_mnist(tmp_path)


# -- CIFAR-10 --------------------------------------------------------------------------------------

def write_cifar(directory, n=4, seed=0):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in ("test_batch", "data_batch_1"):
        data = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        (directory / name).write_bytes(pickle.dumps({b"data": data, b"labels": labels,
                                                     b"batch_label": b"x"}))
        out[name] = (data, labels)
    return out


def test_cifar_loader(tmp_path):
    raw = write_cifar(tmp_path)
    ds = load_cifar10(tmp_path)
    data, labels = raw["test_batch"]
    assert ds.x_test.shape == (4, 3, 32, 32)
    # CIFAR rows hold 1024 red, then green, then blue values, row-major per channel
    np.testing.assert_allclose(ds.x_test[1, 1, 2, 3] * 255, data[1, 1024 + 2 * 32 + 3])
    np.testing.assert_array_equal(ds.y_test, labels)
    np.testing.assert_allclose(ds.x_calib.reshape(4, -1) * 255, raw["data_batch_1"][0])
    norm = ds.normalized([0.5, 0.5, 0.5], [0.25, 0.5, 1.0])
    np.testing.assert_allclose(norm.x_test[:, 1], (ds.x_test[:, 1] - 0.5) / 0.5)


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned",))


def test_cifar_bad_files(tmp_path):
    with pytest.raises(DnnError, match="no CIFAR-10 test_batch"):
        load_cifar10(tmp_path)
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DnnError, match="not a CIFAR-10 python batch"):
        load_cifar10(tmp_path)
    (tmp_path / "test_batch").write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(DnnError, match="refusing"):
        load_cifar10(tmp_path)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8),
                                                        b"labels": [0, 1]}))
    with pytest.raises(DnnError, match="3072"):
        load_cifar10(tmp_path)
    with pytest.raises(DnnError, match="unknown dataset"):
        load_dataset("imagenet:/x")


# -- ONNX ------------------------------------------------------------------------------------------

def _init(name, array):
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def _model(nodes, inits, in_shape, out_dim, name="t"):
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", out_dim])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model


def cnn_to_onnx(graph):
    """The native digits CNN written out with the onnx helper API."""
    w = {n.name: n.attrs for n in graph.gemm_nodes()}
    inits = []
    for k, a in w.items():
        inits += [_init(f"{k}.W", a["W"]), _init(f"{k}.b", a["b"])]
    conv = lambda name, x, y: helper.make_node(  # noqa: E731
        "Conv", [x, f"{name}.W", f"{name}.b"], [y], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
        strides=[1, 1], name=name)
    nodes = [conv("conv1", "x", "c1"), helper.make_node("Relu", ["c1"], ["r1"]),
             conv("conv2", "r1", "c2"), helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("MaxPool", ["r2"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             conv("conv3", "p1", "c3"), helper.make_node("Add", ["c3", "p1"], ["s"]),
             helper.make_node("Relu", ["s"], ["r"]),
             helper.make_node("AveragePool", ["r"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p2"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "fc.W", "fc.b"], ["y"], transB=1, name="fc")]
    return _model(nodes, inits, [1, 8, 8], 10)


def mlp_to_onnx(graph):
    """The native digits MLP with Reshape, MatMul + Add (bias), Gemm (transB 0, alpha), Identity
    and a trailing Softmax."""
    a = {n.name: n.attrs for n in graph.gemm_nodes()}
    inits = [_init("shape", [-1, 64]), _init("w1", a["fc1"]["W"].T), _init("b1", a["fc1"]["b"]),
             _init("w2", a["fc2"]["W"].T / 2), _init("b2", a["fc2"]["b"]),
             _init("w3", a["fc3"]["W"]), _init("b3", a["fc3"]["b"])]
    inits[0] = numpy_helper.from_array(np.array([-1, 64], np.int64), "shape")
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["f"]),
             helper.make_node("MatMul", ["f", "w1"], ["m1"], name="fc1"),
             helper.make_node("Add", ["m1", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("Gemm", ["r1", "w2", "b2"], ["h2"], alpha=2.0, name="fc2"),
             helper.make_node("Relu", ["h2"], ["r2"]),
             helper.make_node("Identity", ["r2"], ["i2"]),
             helper.make_node("Gemm", ["i2", "w3", "b3"], ["z"], transB=1, name="fc3"),
             helper.make_node("Softmax", ["z"], ["y"], axis=1)]
    return _model(nodes, inits, [1, 8, 8], 10)


@pytest.mark.parametrize("model_name,export", [("digits-cnn", cnn_to_onnx),
                                               ("digits-mlp", mlp_to_onnx)])
def test_onnx_import_matches_native(tmp_path, model_name, export):
    native = load_model(model_name)
    path = tmp_path / "m.onnx"
    onnx.save(export(native), str(path))
    imported = load_onnx(path)
    assert [n.name for n in imported.gemm_nodes()] == [n.name for n in native.gemm_nodes()]
    data = load_digits_split()
    x = data.x_test[:64]
    native_logits = run_float(native, x)
    np.testing.assert_allclose(run_float(imported, x), native_logits, rtol=1e-9, atol=1e-9)
    # onnx's own reference evaluator agrees on the float model (softmax undone for the MLP)
    ref = ReferenceEvaluator(str(path)).run(None, {"x": x.astype(np.float32)})[0]
    if model_name == "digits-mlp":
        ref = np.log(ref)
        native_logits = native_logits - np.log(np.exp(native_logits).sum(1, keepdims=True))
    np.testing.assert_allclose(ref, native_logits, rtol=1e-4, atol=1e-4)
    # same int8 logits, exact and approximate
    qn = QuantizedModel(native, data.x_calib)
    qi = QuantizedModel(imported, data.x_calib)
    for mult in ("exact", "drum4"):
        np.testing.assert_array_equal(qi.run(x, mult), qn.run(x, mult))


def test_onnx_global_pool_and_strided_conv_against_reference_evaluator(tmp_path):
    rng = np.random.default_rng(0)
    inits = [_init("w", rng.normal(0, 0.4, (5, 3, 3, 3))), _init("b", rng.normal(0, 0.1, 5)),
             _init("wf", rng.normal(0, 0.4, (4, 5))), _init("bf", rng.normal(0, 0.1, 4))]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3],
                              strides=[2, 2], pads=[1, 0, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["m"], kernel_shape=[3, 3], strides=[1, 1],
                              pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["m"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], transB=1)]
    model = _model(nodes, inits, [3, 9, 7], 4)
    path = tmp_path / "g.onnx"
    onnx.save(model, str(path))
    graph = load_onnx(path)
    x = rng.random((6, 3, 9, 7))
    ref = ReferenceEvaluator(model).run(None, {"x": x.astype(np.float32)})[0]
    np.testing.assert_allclose(run_float(graph, x), ref, rtol=1e-4, atol=1e-4)
    qm = QuantizedModel(graph, rng.random((10, 3, 9, 7)))
    q = qm.run(x, "exact")
    assert np.abs(q - ref).max() < 0.05 * np.abs(ref).max() + 0.05


def test_onnx_asymmetric_pool_padding():
    """pads = [top, left, bottom, right] (ONNX: begins then ends; onnx's shape inference agrees;
    its reference evaluator does not, so the expected values are written out here)."""
    x = np.arange(12.0).reshape(1, 1, 3, 4)
    nodes = [helper.make_node("MaxPool", ["x"], ["m"], kernel_shape=[2, 2], strides=[1, 1],
                              pads=[0, 0, 1, 1]),
             helper.make_node("AveragePool", ["x"], ["a"], kernel_shape=[2, 2], strides=[1, 1],
                              pads=[0, 0, 1, 1]),
             helper.make_node("Add", ["m", "a"], ["s"]),
             helper.make_node("Flatten", ["s"], ["y"])]
    model = _model(nodes, [], [1, 3, 4], 12)
    inferred = onnx.shape_inference.infer_shapes(model).graph.value_info
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim][1:] for v in inferred}
    assert dims["m"] == [1, 3, 4]
    want_max = np.array([[5, 6, 7, 7], [9, 10, 11, 11], [9, 10, 11, 11]])
    want_avg = np.array([[2.5, 3.5, 4.5, 5], [6.5, 7.5, 8.5, 9], [8.5, 9.5, 10.5, 11]])
    got = run_float(from_onnx_model(model), x)
    np.testing.assert_allclose(got.reshape(3, 4), want_max + want_avg)


def test_onnx_errors(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07 this is not protobuf \xff\xff\xff")
    with pytest.raises(DnnError, match="cannot read ONNX model|not an ONNX model"):
        load_onnx(bad)
    with pytest.raises(DnnError, match="does not exist"):
        load_onnx(tmp_path / "missing.onnx")
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"]),
             helper.make_node("LeakyRelu", ["s"], ["t"]),
             helper.make_node("Flatten", ["t"], ["y"])]
    with pytest.raises(DnnError, match=r"unsupported ONNX operator Sigmoid at node 's' "
                                       r"\(also: LeakyRelu\)"):
        from_onnx_model(_model(nodes, [], [4], 4))
    w = _init("w", np.ones((4, 1, 3, 3)))
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], group=3),
             helper.make_node("Flatten", ["c"], ["y"])]
    with pytest.raises(DnnError, match="group"):
        from_onnx_model(_model(nodes, [w], [2, 5, 5], 36))
    nodes = [helper.make_node("Gemm", ["x", "w2"], ["y"], transB=1)]
    with pytest.raises(DnnError, match=r"shapes do not fit|layer 'y' expects 5 inputs"):
        from_onnx_model(_model(nodes, [_init("w2", np.ones((3, 5)))], [4], 3))
