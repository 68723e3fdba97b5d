"""ONNX import of what ``torch.onnx.export`` emits today (the default dynamo exporter and the
legacy TorchScript one) for ResNet-20, ResNet-18 and MobileNetV2-class networks.

Oracles: onnxruntime runs the same ONNX files (float path: max abs difference below 1e-4 of the
largest output); the float path itself for int8-exact top-1 agreement on the digits test images
(networks trained by ``scripts/train_torch_digits.py``); hand-written ONNX graphs for what the
exports do not exercise (``auto_pad``, ``Concat``, padded average pooling, ``ReduceMean`` with
axes as input).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from conftest import one_torch_thread  # noqa: E402
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from sim.dnn import load_digits_split  # noqa: E402
from sim.dnn.errors import DnnError  # noqa: E402
from sim.dnn.layers import run_float  # noqa: E402
from sim.dnn.onnx_import import from_onnx_model, load_onnx  # noqa: E402
from sim.dnn.quant import QuantizedModel  # noqa: E402
from sim.nn.models import digits_input, load_torch, mobilenet_v2, resnet18, resnet20  # noqa: E402

HAVE_ONNXSCRIPT = importlib.util.find_spec("onnxscript") is not None
_one_torch_thread = pytest.fixture(autouse=True, scope="module")(one_torch_thread)


EXPORTERS = ["legacy", pytest.param("dynamo", marks=pytest.mark.skipif(
    not HAVE_ONNXSCRIPT, reason="the default (dynamo) exporter needs onnxscript"))]


def _randomise_bn(model, seed):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
    return model.eval()


def _export(model, shape, exporter, path):
    x = torch.zeros((1,) + tuple(shape))
    model.eval()
    if exporter == "legacy":
        torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["x"],
                          output_names=["y"])
    else:
        torch.onnx.export(model, (x,), str(path), dynamo=True, input_names=["x"],
                          output_names=["y"])
    return path


def _ort(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + 1].astype(np.float32)})[0]
                           for i in range(len(x))])


def _ops(path):
    return {n.op_type for n in onnx.load(str(path)).graph.node}


#: Trained on digits by scripts/train_torch_digits.py (weights in sim/nn/weights): 1x8x8 inputs
#: (ResNet-18: 1x32x32, the digits upsampled by pixel repetition).
TRAINED = ["digits-resnet20", "digits-resnet18", "digits-mobilenetv2"]


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


def _structure(name, graph):
    if "mobilenet" in name:
        assert any(n.attrs.get("groups", 1) > 1 for n in graph.gemm_nodes())   # depthwise
        assert any(n.attrs.get("clip") for n in graph.gemm_nodes())             # ReLU6 fused
    assert any(n.op == "add" for n in graph.nodes)                               # residuals


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", TRAINED)
def test_export_import_float_and_int8(tmp_path, digits, name, exporter):
    """ResNet-20, ResNet-18 and MobileNetV2 trained on digits, exported by torch.onnx (default
    and legacy exporter), imported: float path = onnxruntime (max abs difference below 1e-4 of
    the largest logit) and int8-exact top-1 = float top-1 on >= 99 % of the 540 digits test
    images (the float accuracy shows the networks are trained, so agreement is not trivial)."""
    model = load_torch(name)
    x_test, x_cal = digits_input(name, digits.x_test), digits_input(name, digits.x_calib)
    path = _export(model, x_test.shape[1:], exporter, tmp_path / f"{name}.onnx")
    graph = load_onnx(path)
    _structure(name, graph)
    ref = _ort(path, x_test[:8])
    got = run_float(graph, x_test[:8])
    err = float(np.abs(got - ref).max()) / float(np.abs(ref).max())
    assert err < 1e-4, (name, exporter, err, sorted(_ops(path)))
    float_top = run_float(graph, x_test).argmax(1)
    assert (float_top == digits.y_test).mean() > 0.85
    int8_top = QuantizedModel(graph, x_cal).run(x_test, "exact").argmax(1)
    agree = (int8_top == float_top).mean()
    assert agree >= 0.99, agree
    if exporter == "legacy":      # uint8 activations with zero points, unsigned multiplier
        asym_top = QuantizedModel(graph, x_cal, activations="asym").run(
            x_test, "exact", signed=False).argmax(1)
        assert (asym_top == float_top).mean() >= 0.99


ARCHS = {
    # CIFAR/ImageNet-shaped, random weights: float path only (the legacy exporter)
    "resnet20": (lambda: resnet20(width=1, num_classes=10), (3, 32, 32)),
    "resnet18": (lambda: resnet18(width=8, num_classes=10), (3, 32, 32)),
    "mobilenetv2": (lambda: mobilenet_v2(width=0.25, num_classes=10, last_channel=64),
                    (3, 32, 32)),
}


@pytest.mark.parametrize("arch", list(ARCHS))
def test_three_channel_float_path_matches_onnxruntime(tmp_path, arch):
    build, shape = ARCHS[arch]
    torch.manual_seed(0)
    model = _randomise_bn(build(), 1)
    path = _export(model, shape, "legacy", tmp_path / f"{arch}.onnx")
    graph = load_onnx(path)
    x = np.random.default_rng(0).normal(0, 1, (3,) + shape)
    ref = _ort(path, x)
    got = run_float(graph, x)
    err = float(np.abs(got - ref).max()) / float(np.abs(ref).max())
    assert err < 1e-4, (arch, err, sorted(_ops(path)))


# -- hand-written graphs: what the exports above do not emit --------------------------------------
def _conv(name, x, w, out, **attrs):
    return helper.make_node("Conv", [x, w], [out], name=name, **attrs)


def test_auto_pad_concat_pools_reducemean_against_onnxruntime():
    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, s).astype(np.float32), n)
             for n, s in (("w1", (4, 2, 3, 3)), ("w2", (3, 2, 2, 2)), ("w3", (7, 1, 3, 3)),
                          ("fc", (7, 5)))]
    inits += [numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
              numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
              numpy_helper.from_array(np.array(0.5, np.float32), "hi")]
    nodes = [
        _conv("same_up", "x", "w1", "a", auto_pad="SAME_UPPER", strides=[2, 2]),
        _conv("same_lo", "x", "w2", "b", auto_pad="SAME_LOWER", strides=[2, 2]),
        helper.make_node("Relu", ["a"], ["ar"], name="relu_a"),
        helper.make_node("Clip", ["b", "lo", "hi"], ["bc"], name="clip_b"),
        helper.make_node("Concat", ["ar", "bc"], ["c"], name="cat", axis=1),
        _conv("dw", "c", "w3", "d", group=7, pads=[1, 1, 1, 1], dilations=[1, 1]),
        helper.make_node("AveragePool", ["d"], ["e"], name="avg", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], strides=[1, 1], count_include_pad=0),
        helper.make_node("ReduceMean", ["e", "axes"], ["f"], name="gap", keepdims=0),
        helper.make_node("MatMul", ["f", "fc"], ["y"], name="head"),
    ]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     [1, 2, 7, 9])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    graph = from_onnx_model(model, "hand")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for _ in range(3):
        x = rng.normal(0, 1, (1, 2, 7, 9))
        ref = sess.run(None, {"x": x.astype(np.float32)})[0]
        got = run_float(graph, x)
        assert float(np.abs(got - ref).max()) / float(np.abs(ref).max()) < 1e-4


def test_unsupported_operator_is_one_line_naming_op_and_node(tmp_path):
    nodes = [_conv("conv", "x", "w", "a"), helper.make_node("Sigmoid", ["a"], ["y"],
                                                            name="the_act")]
    w = numpy_helper.from_array(np.ones((2, 1, 1, 1), np.float32), "w")
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     [1, 1, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    with pytest.raises(DnnError) as exc:
        from_onnx_model(helper.make_model(g), "m")
    msg = str(exc.value)
    assert "\n" not in msg and "Sigmoid" in msg and "'the_act'" in msg
    # and as exported by torch (legacy exporter: SiLU -> Sigmoid, Mul)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.SiLU()).eval()
    path = _export(net, (1, 6, 6), "legacy", tmp_path / "silu.onnx")
    with pytest.raises(DnnError, match=r"unsupported ONNX operator (Sigmoid|Mul) at node '[^']+'"):
        load_onnx(path)
