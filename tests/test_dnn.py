"""int8 inference (sim.dnn.quant) against a plain integer reference written from the documented
scheme, the stored digits models, per-layer assignments and the quantisation helpers."""

import math

import numpy as np
import pytest

from hw.mult import parse
from sim.dnn import DnnError, QuantizedModel, load_digits_split, load_model, run_float
from sim.dnn.layers import Graph, Node
from sim.dnn.models import build, init_weights
from sim.dnn.quant import quantize_multiplier, requantize


# -- an independent integer reference: loops and einsum, no im2col, no emulator ----------------

def _round_shift(x, m0, sh):
    return (x * m0 + (1 << (sh - 1))) >> sh


def _conv_ref(xq, wq, mult, stride, pads):
    """Direct convolution: out[b, o, y, x] = sum_{c,i,j} p(x[b, c, y*s+i, x*s+j], w[o, c, i, j])."""
    b, c, h, w = xq.shape
    o, _, kh, kw = wq.shape
    pt, pl, pb, pr = pads
    xp = np.zeros((b, c, h + pt + pb, w + pl + pr), np.int64)
    xp[:, :, pt:pt + h, pl:pl + w] = xq
    oh = (h + pt + pb - kh) // stride[0] + 1
    ow = (w + pl + pr - kw) // stride[1] + 1
    out = np.zeros((b, o, oh, ow), np.int64)
    for y in range(oh):
        for x in range(ow):
            patch = xp[:, :, y * stride[0]:y * stride[0] + kh, x * stride[1]:x * stride[1] + kw]
            prod = mult(patch[:, None], wq[None])              # b, o, c, kh, kw
            out[:, :, y, x] = prod.sum(axis=(2, 3, 4))
    return out


def _wrap32(x):
    return ((x + (1 << 31)) % (1 << 32)) - (1 << 31)


def reference(qm: QuantizedModel, x, mult):
    """Integer inference from the quant module's documented scheme (scales taken from qm)."""
    g = qm.graph
    t_in = qm.tq[g.input]
    env = {g.input: np.clip(np.floor(x / t_in.scale + 0.5), t_in.lo, 127).astype(np.int64)}
    for node in g.nodes:
        a = node.attrs
        xs = [env[t] for t in node.inputs]
        if node.op in ("conv", "dense"):
            w = a["W"]
            wm = w.reshape(w.shape[0], -1)
            sw = np.abs(wm).max(axis=1) / 127
            wq = np.clip(np.rint(wm / sw[:, None]), -127, 127).astype(np.int64)
            sx = qm.tq[node.inputs[0]].scale
            bq = np.rint(a["b"] / (sx * sw)).astype(np.int64)
            if node.op == "conv":
                acc = _conv_ref(xs[0], wq.reshape(w.shape), mult, a["stride"], a["pads"])
                acc = acc + bq[None, :, None, None]
            else:
                acc = mult(xs[0][:, None, :], wq[None]).sum(axis=2) + bq[None]
            acc = _wrap32(acc)
            if node.output == g.output:
                shape = (1, -1, 1, 1) if acc.ndim == 4 else (1, -1)
                env[node.output] = acc * (sx * sw).reshape(shape)
                continue
            out = qm.tq[node.output]
            y = np.empty_like(acc)
            for ch in range(acc.shape[1]):
                mant, e = math.frexp(sx * sw[ch] / out.scale)
                m0 = int(round(mant * 2**31))
                sh = 31 - e
                y[:, ch] = _round_shift(acc[:, ch], m0, sh)
            env[node.output] = np.clip(y, 0 if a.get("relu") else -127, 127)
        elif node.op == "add":
            out = qm.tq[node.output]
            m1, m2 = (int(round(qm.tq[t].scale / out.scale * 2**24)) for t in node.inputs)
            y = _round_shift(xs[0] * m1 + xs[1] * m2, 1, 24)
            env[node.output] = np.clip(y, 0 if a.get("relu") else -127, 127)
        elif node.op == "maxpool":
            k, s = a["kernel"], a["stride"]
            b_, c, h, w = xs[0].shape
            oh, ow = (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1
            y = np.empty((b_, c, oh, ow), np.int64)
            for i in range(oh):
                for j in range(ow):
                    y[:, :, i, j] = xs[0][:, :, i * s[0]:i * s[0] + k[0],
                                          j * s[1]:j * s[1] + k[1]].max(axis=(2, 3))
            env[node.output] = y
        elif node.op == "avgpool":
            k, s = a["kernel"], a["stride"]
            b_, c, h, w = xs[0].shape
            oh, ow = (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1
            y = np.empty((b_, c, oh, ow), np.int64)
            n = k[0] * k[1]
            for i in range(oh):
                for j in range(ow):
                    tot = xs[0][:, :, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]].sum(
                        axis=(2, 3))
                    y[:, :, i, j] = np.floor((tot + n / 2) / n).astype(np.int64)  # half up
            env[node.output] = y
        elif node.op == "flatten":
            env[node.output] = xs[0].reshape(len(xs[0]), -1)
        elif node.op == "relu":
            env[node.output] = np.maximum(xs[0], 0)
    return env[g.output]


def _random_net(seed):
    """A small random network touching every operator: strided conv with asymmetric pads,
    signed (non-ReLU) activations, residual add, max/avg pools, dense layers."""
    rng = np.random.default_rng(seed)
    r = lambda *s: rng.normal(0, 0.5, s)  # noqa: E731
    nodes = [
        Node("c1", "conv", ["x"], "a", {"W": r(4, 2, 3, 3), "b": r(4), "stride": (1, 1),
                                         "pads": (1, 1, 1, 1), "relu": True}),
        Node("c2", "conv", ["a"], "b", {"W": r(4, 4, 3, 3), "b": r(4), "stride": (1, 1),
                                         "pads": (1, 0, 1, 2)}),
        Node("add", "add", ["b", "a"], "c", {"relu": True}),
        Node("mp", "maxpool", ["c"], "d", {"kernel": (2, 2), "stride": (2, 2)}),
        Node("c3", "conv", ["d"], "e", {"W": r(6, 4, 2, 2), "b": r(6), "stride": (1, 1),
                                         "pads": (0, 0, 0, 0)}),
        Node("ap", "avgpool", ["e"], "f", {"kernel": (1, 2), "stride": (1, 1)}),
        Node("fl", "flatten", ["f"], "g"),
        Node("d1", "dense", ["g"], "h", {"W": r(7, 12), "b": r(7)}),
        Node("relu", "relu", ["h"], "i"),
        Node("d2", "dense", ["i"], "out", {"W": r(3, 7), "b": r(3)}),
    ]
    return Graph("random", "x", (2, 6, 6), "out", nodes)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mult", ["exact", "drum4", "mitchell", "truncated5"])
def test_int8_inference_equals_integer_reference(seed, mult):
    graph = _random_net(seed)
    rng = np.random.default_rng(100 + seed)
    x_cal = rng.normal(0, 1, (16, 2, 6, 6))
    x = rng.normal(0, 1.2, (5, 2, 6, 6))                   # beyond the calibrated range too
    qm = QuantizedModel(graph, x_cal)
    assert qm.tq["a"].signed is False and qm.tq["b"].signed is True
    spec = parse(mult)
    want = reference(qm, x, lambda a, b: spec.model(a, b))
    got = qm.run(x, mult)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("model", ["digits-cnn", "digits-mlp"])
def test_random_builtin_networks_equal_reference(model):
    weights = init_weights(model, seed=5)
    rng = np.random.default_rng(5)
    for k in weights:
        if k.endswith(".b"):
            weights[k] = rng.normal(0, 0.1, weights[k].shape)
    graph = build(model, weights)
    data = load_digits_split()
    qm = QuantizedModel(graph, data.x_calib[:50])
    x = data.x_test[:12]
    np.testing.assert_array_equal(qm.run(x, "exact"), reference(qm, x, lambda a, b: a * b))


def test_digits_cnn_int8_within_one_point_of_float():
    data = load_digits_split()
    graph = load_model("digits-cnn")
    float_acc = (run_float(graph, data.x_test).argmax(1) == data.y_test).mean()
    qm = QuantizedModel(graph, data.x_calib)
    int8_acc = (qm.run(data.x_test).argmax(1) == data.y_test).mean()
    assert float_acc > 0.95
    assert abs(float_acc - int8_acc) <= 0.01


def test_digits_mlp_trained():
    data = load_digits_split()
    graph = load_model("digits-mlp")
    assert (run_float(graph, data.x_test).argmax(1) == data.y_test).mean() > 0.95


def test_per_layer_assignment():
    data = load_digits_split()
    graph = load_model("digits-mlp")
    qm = QuantizedModel(graph, data.x_calib)
    x = data.x_test[:40]
    mixed = qm.run(x, {"fc1": "perforated3", "*": "exact"}, capture=True)[1]
    whole = qm.run(x, "perforated3", capture=True)[1]
    exact = qm.run(x, None, capture=True)[1]
    # fc1 sees the same inputs in every run; its accumulators follow its own multiplier
    np.testing.assert_array_equal(mixed["fc1"]["acc"], whole["fc1"]["acc"])
    assert not np.array_equal(mixed["fc1"]["acc"], exact["fc1"]["acc"])
    # fc3 is exact in the mixed run: exact products of the (perturbed) inputs
    b = mixed["fc3"]
    want = b["a"] @ b["b"] + qm.params["fc3"]["qb"][None]
    np.testing.assert_array_equal(b["acc"], want)
    with pytest.raises(DnnError, match="unknown layer"):
        qm.run(x, {"conv9": "exact"})
    with pytest.raises(DnnError, match="8-bit multipliers"):
        qm.run(x, parse("drum4", width=6))


def test_saturating_narrow_accumulator_changes_results():
    data = load_digits_split()
    qm = QuantizedModel(load_model("digits-cnn"), data.x_calib)
    x = data.x_test[:8]
    wide = qm.run(x, "exact", acc_width=32, overflow="saturate")
    np.testing.assert_array_equal(wide, qm.run(x, "exact"))
    narrow = qm.run(x, "exact", acc_width=16, overflow="saturate")
    assert not np.array_equal(narrow, wide)


@pytest.mark.parametrize("m", [1.0, 0.75, 0.5, 0.123456789, 3.7e-5, 1.9, 1e-12])
def test_quantize_multiplier(m):
    m0, sh = quantize_multiplier(m)
    assert abs(m0 * 2.0**-sh - m) <= max(m * 2.0**-30, 2.0**-62)   # shift capped at 62
    if m > 1e-9:
        assert 2**30 <= m0 < 2**31


def test_requantize_rounds_half_up_and_clips():
    # M = 0.5 exactly: 3 * 0.5 = 1.5 -> 2, -3 * 0.5 = -1.5 -> -1, 1000 * 0.5 -> clipped to 127
    m0, sh = quantize_multiplier(0.5)
    got = requantize(np.array([[3], [-3], [1000], [-1000]]), [m0], [sh], lo=-127)
    np.testing.assert_array_equal(got[:, 0], [2, -1, 127, -127])


def test_array_target_starts_accumulation_from_zero_point_terms():
    """Regression: with an ArrayModel target, ``layer_gemm`` starts the host's accumulator at
    the bias / zero-point terms and adds the K tiles to it (what the hardware does), instead of
    adding those terms after the tiles. Unsigned multipliers and asym activations make the raw
    tile sums large and the start very negative, so a 20-bit saturating accumulator saturates
    the old order but not the hardware's. Reference: the golden model's passes added by hand."""
    from sim.dnn.quant import layer_gemm
    from sim.emulate import emulate_tiled
    from sim.golden import ArrayModel, accumulate

    data = load_digits_split()
    graph = load_model("digits-mlp")
    qm = QuantizedModel(graph, data.x_calib, activations="asym")
    acc = 20
    arr = ArrayModel.per_row(8, 4, ["exact", "truncated4", "mitchell", "exact"] * 2,
                             signed=False, acc_width=acc, overflow="saturate")
    xq = qm.quantize_input(data.x_test[:6]).reshape(6, -1)
    a, b, start, _ = qm.gemm_operands(graph.gemm_nodes()[0], xq, signed_mult=False)
    want = start.copy()
    for n0 in range(0, b.shape[1], arr.cols):
        for k0 in range(0, a.shape[1], arr.rows):
            part = arr.tile(a[:, k0:k0 + arr.rows], b[k0:k0 + arr.rows, n0:n0 + arr.cols])
            want[:, n0:n0 + arr.cols] = accumulate(want[:, n0:n0 + arr.cols], part, acc,
                                                   "saturate")
    np.testing.assert_array_equal(layer_gemm(a, b, arr, start), want)
    old = accumulate(emulate_tiled(a, b, arr), start, acc, "saturate")
    assert (old != want).mean() > 0.5           # the order really matters here


@pytest.mark.parametrize("shape,kernel,stride,pads,dilation", [
    ((2, 3, 7, 9), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    ((1, 4, 9, 8), (3, 2), (2, 3), (0, 2, 1, 0), (1, 1)),
    ((3, 2, 11, 10), (3, 3), (2, 1), (2, 1, 0, 3), (2, 3)),
    ((2, 1, 5, 5), (1, 1), (1, 1), (0, 0, 0, 0), (1, 1)),
    ((1, 2, 4, 4), (4, 4), (1, 1), (0, 0, 0, 0), (1, 1))])
@pytest.mark.parametrize("dtype", [np.int16, np.int64])
def test_im2col_equals_torch_unfold(shape, kernel, stride, pads, dilation, dtype):
    """im2col (one strided copy per kernel tap) == torch's ``F.unfold`` (an independent
    implementation) on the same padded input: strides, asymmetric pads with a non-zero pad
    value, dilation, 1x1 and whole-image kernels, narrow and wide integers."""
    torch = pytest.importorskip("torch")
    from sim.dnn.layers import im2col
    x = np.random.default_rng(sum(shape)).integers(-300, 300, shape).astype(dtype)
    pt, pl, pb, pr = pads
    cols, oh, ow = im2col(x, kernel, stride, pads, pad_value=-7, dilation=dilation)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=-7)
    ref = torch.nn.functional.unfold(torch.as_tensor(xp), kernel, dilation=dilation,
                                     stride=stride).numpy()             # B, C*kh*kw, L
    assert ref.shape[2] == oh * ow
    want = ref.transpose(0, 2, 1).reshape(shape[0] * oh * ow, -1)
    assert cols.dtype == dtype
    np.testing.assert_array_equal(cols, want)


def test_quantized_input_outside_int16_is_not_wrapped():
    """GEMM inputs are narrowed to int16 only when their values fit: a caller's quantised
    input holding 65,636 (= 100 mod 2**16, a valid value once wrapped) or 2**40 is
    refused as an operand outside the multiplier's range, never wrapped into it."""
    from hw.mult import MultiplierError
    data = load_digits_split()
    graph = load_model("digits-cnn")
    shape = (-1,) + tuple(graph.input_shape)
    qm = QuantizedModel(graph, data.x_calib.reshape(shape))
    xq = qm.quantize_input(data.x_test[:3].reshape(shape))
    for value in (65536 + 100, 1 << 40, -65536 + 5):
        bad = xq.copy()
        bad[0, 0, 0, 0] = value
        with pytest.raises(MultiplierError, match="outside"):
            qm.run(bad, "exact", quantized_input=True)
    np.testing.assert_array_equal(qm.run(xq, "exact", quantized_input=True),
                                  qm.run(xq.astype(np.int16), "exact", quantized_input=True))
