"""The PyTorch front end (sim.nn): the twin equals sim.dnn's engine integer for integer, the
torch back end equals the numpy one and the sequential golden model, grouped / depthwise
convolution, straight-through gradients, the API's errors and the retraining command.

Oracles: :func:`sim.golden.gemm_reference` (sequential MAC model), the multipliers' product
tables (:mod:`hw.mult`), torch's own float ``conv2d`` / ``linear`` on operands dequantised by
the formulas written out here, and sim.dnn's hand-built digits graphs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from conftest import one_torch_thread  # noqa: E402

from hw.mult import parse  # noqa: E402
from sim.dnn import load_digits_split, load_model  # noqa: E402
from sim.dnn.errors import DnnError  # noqa: E402
from sim.dnn.layers import run_float  # noqa: E402
from sim.dnn.quant import QuantizedModel, TensorQuant  # noqa: E402
from sim.golden import gemm_reference  # noqa: E402
from sim.nn import ApproxConv2d, ApproxLinear, approximate  # noqa: E402
from sim.nn import kernels  # noqa: E402
from sim.nn.models import load_digits_torch, mobilenet_v2  # noqa: E402

F = torch.nn.functional



_one_torch_thread = pytest.fixture(autouse=True, scope="module")(one_torch_thread)


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


# -- one source of truth: twin == engine ----------------------------------------------------------
# (multiplier, signed, activations, acc_width, overflow): signed and unsigned multipliers, a
# table-only one (mitchell), both activation modes, and narrow accumulators that overflow.
ENGINE_CASES = [
    ("truncated6", True, "sym", 32, "wrap"),
    ("mitchell", True, "asym", 32, "wrap"),
    ("etm4", True, "sym", 16, "saturate"),
    ("truncated4", False, "asym", 32, "wrap"),
    ("mitchell", False, "sym", 16, "wrap"),
    ("drum4", False, "asym", 18, "saturate"),
]


@pytest.mark.parametrize("mult,signed,acts,acc,overflow", ENGINE_CASES)
def test_twin_equals_engine(digits, mult, signed, acts, acc, overflow):
    graph = load_model("digits-cnn")
    x = digits.x_test[:24]
    twin = approximate(graph, mult, digits.x_calib, activations=acts, signed=signed,
                       acc_width=acc, overflow=overflow, backend="torch")
    rec = twin.set_capture()
    with torch.no_grad():
        got = twin(torch.as_tensor(x)).numpy()
    qm = QuantizedModel(graph, digits.x_calib, activations=acts)
    want, wrec = qm.run(x, mult, acc_width=acc, overflow=overflow, signed=signed, capture=True)
    np.testing.assert_array_equal(got, want)
    for layer in ("conv1", "conv2", "conv3", "fc"):
        np.testing.assert_array_equal(rec[layer]["a"], wrec[layer]["a"])
        np.testing.assert_array_equal(rec[layer]["acc"], wrec[layer]["acc"])
    spec = parse(mult, signed=signed)
    lo, hi = spec.operand_range
    assert all(lo <= r["a"].min() and r["a"].max() <= hi for r in rec.values())
    if acc < 20:   # the narrow accumulator really overflowed somewhere (else the case is moot)
        wide = qm.run(x, mult, acc_width=40, signed=signed)
        assert not np.array_equal(wide, want)


@pytest.mark.parametrize("mode", ["bias", "cv"])
def test_twin_with_output_correction_equals_the_corrected_array(digits, mode):
    """``approximate(..., correction=)``: each approximate layer is a 16-deep ws array with
    the correction; its accumulators are sim.golden.tiled_gemm's (the definition, on the
    captured operands) and the logits are sim.dnn's (--correction) on the same images."""
    from sim.dnn.evaluate import Config, evaluate
    from sim.golden import tiled_gemm

    graph = load_model("digits-cnn")
    x = digits.x_test[:64]
    plain = approximate(graph, "truncated8", digits.x_calib)
    twin = approximate(graph, "truncated8", digits.x_calib, correction=mode)
    rec = twin.set_capture()
    with torch.no_grad():
        got = twin(torch.as_tensor(x)).numpy()
        before = plain(torch.as_tensor(x)).numpy()
    for layer in ("conv1", "conv2", "conv3", "fc"):
        target = twin.targets()[layer]
        assert target.correction is not None and target.correction.mode == mode
        r = rec[layer]
        start = r["acc"] - tiled_gemm(r["a"], r["b"], target)   # the layer's bias/offsets
        assert np.ptp(start, axis=0).max() == 0                  # one start value per column
        np.testing.assert_array_equal(r["acc"], tiled_gemm(r["a"], r["b"], target, start[0]))
    data = type(digits)(digits.name, digits.x_calib, digits.y_calib, x, digits.y_test[:64],
                        digits.classes)
    res = evaluate(graph, data, [Config("truncated8", "truncated8")], corrections=(mode,))
    acc = (got.argmax(1) == data.y_test).mean()
    assert acc == pytest.approx(res["configs"][0]["accuracy"])
    assert acc > (before.argmax(1) == data.y_test).mean() + 0.5   # truncated8 alone: ~10 %


def test_exact_multipliers_agree_in_every_operand_mapping(digits):
    """With exact products the zero-point and offset terms cancel exactly: a signed and an
    unsigned exact multiplier give the same logits (sym and asym activations)."""
    graph = load_model("digits-cnn")
    x = digits.x_test[:64]
    for acts in ("sym", "asym"):
        outs = []
        for signed in (True, False):
            twin = approximate(graph, "exact", digits.x_calib, activations=acts, signed=signed,
                               backend="torch")
            with torch.no_grad():
                outs.append(twin(torch.as_tensor(x)).numpy())
        np.testing.assert_array_equal(outs[0], outs[1])


def test_torch_model_twin_names_globs_default(digits):
    """A torch model: converted float graph equals sim.dnn's hand-built one; per-layer
    assignment by name, glob and default reaches the right layers; same integers as the
    engine on the built-in graph."""
    model = load_digits_torch("digits-cnn", torch.float64)
    x = digits.x_test[:40]
    assign = {"fc": "exact", "conv[12]": "drum4", "*": "truncated5"}
    twin = approximate(model, assign, torch.as_tensor(digits.x_calib))
    assert {k: t.name for k, t in twin.targets().items()} == {
        "conv1": "drum4", "conv2": "drum4", "conv3": "truncated5", "fc": "exact"}
    assert isinstance(twin.get_submodule("conv2"), ApproxConv2d)
    graph = load_model("digits-cnn")
    np.testing.assert_allclose(run_float(twin.to_graph(), x), run_float(graph, x), rtol=1e-12,
                               atol=1e-12)
    with torch.no_grad():
        got = twin(torch.as_tensor(x)).numpy()
    want = QuantizedModel(graph, digits.x_calib).run(x, assign)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(twin.quantized().run(x, assign), got)


def test_relu_fused_into_the_last_gemm_applies_to_the_logits(digits):
    """Regression: a ReLU after the last Linear / Conv (fused into its GEMM) shaped the float
    model's output but was dropped from the logits of sim.dnn and of the twin. Now the logits
    are ``max(dequantised accumulators, 0)``: exactly the twin of the same network without
    that ReLU, clipped at 0, and zero where torch's float model gives 0 (clearly negative
    pre-activations)."""
    def net(final_relu, conv):
        torch.manual_seed(3)
        head = ([torch.nn.Conv2d(4, 5, 6)] if conv else
                [torch.nn.Flatten(), torch.nn.Linear(144, 10)])
        layers = [torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU()] + head
        return torch.nn.Sequential(*layers, *([torch.nn.ReLU()] if final_relu else [])).double()

    x = digits.x_test[:48]
    for conv in (False, True):
        with_relu, without = net(True, conv), net(False, conv)
        with torch.no_grad():
            f = with_relu(torch.as_tensor(x)).numpy()
            pre = without(torch.as_tensor(x)).numpy()
        outs = []
        for model in (with_relu, without):
            twin = approximate(model, "mitchell", torch.as_tensor(digits.x_calib))
            with torch.no_grad():
                y = twin(torch.as_tensor(x)).numpy()
            np.testing.assert_array_equal(twin.quantized().run(x, "mitchell"), y)   # sim.dnn
            outs.append(y)
        y, y_pre = outs
        np.testing.assert_array_equal(y, np.maximum(y_pre, 0))
        assert y.min() == 0 and y_pre.min() < 0
        clear = pre < -0.1 * np.abs(pre).max()
        assert clear.sum() > 20 and np.all(f[clear] == 0) and np.all(y[clear] == 0)


def test_approximate_bad_input(digits):
    model = load_digits_torch("digits-cnn")
    cal = digits.x_calib[:20]
    gelu = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4),
                               torch.nn.GELU())
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4),
                              torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(144, 3))
    twin = approximate(net, None, cal)
    cases = [
        (lambda: approximate(model, {"conv9": "exact"}, cal), r"unknown layer 'conv9'"),
        (lambda: approximate(model, {"pool1": "exact"}, cal), r"'pool1' .*maxpool.* has no GEMM"),
        (lambda: approximate(model, {"layer*": "exact"}, cal),
         r"pattern 'layer\*' matches no GEMM"),
        (lambda: approximate(model, "bogus", cal), r"bogus"),
        (lambda: approximate(model, None, cal.reshape(len(cal), 64)), r"do not fit DigitsCNN"),
        (lambda: approximate(model, None, cal[:, :, :7]), r"do not fit DigitsCNN"),
        (lambda: approximate(gelu, None, cal), r"unsupported module '2' \(GELU\)"),
        (lambda: approximate(net, {"1": "drum4"}, cal), r"'1' .*BatchNorm2d.*has no GEMM"),
        (lambda: approximate(model, None, None), r"calibration data is missing"),
        (lambda: approximate(model, "truncated8", cal, correction="vc"), r"unknown correction"),
        (lambda: approximate(model, "truncated8", cal, correction="cv", correction_rows=0),
         r"correction_rows must be"),
        (lambda: twin(torch.zeros(2, 1, 9, 9)), r"expects inputs of shape \(B, 1, 8, 8\)"),
    ]
    for call, says in cases:
        with pytest.raises(DnnError, match=says) as exc:
            call()
        assert "\n" not in str(exc.value)


def test_missing_torch_is_one_line(monkeypatch):
    import sys

    from hw.extras import MissingDependency, require

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingDependency, match=r'needs torch.*pip install -e "\.\[torch\]"'):
        require("torch", "the PyTorch front end (sim.nn)")


# -- back ends ------------------------------------------------------------------------------------
def _operands(spec, rng, shape):
    lo, hi = spec.operand_range
    return rng.integers(lo, hi + 1, size=shape)


@pytest.mark.parametrize("name,signed", [("exact", True), ("truncated6", True),
                                         ("mitchell", True), ("etm4", True), ("drum4", False),
                                         ("perforated1", False), ("mitchell", False)])
def test_torch_backend_equals_numpy_and_golden(name, signed):
    spec = parse(name, signed=signed)
    rng = np.random.default_rng(len(name))
    m, k, n = 13, 40, 6
    a = _operands(spec, rng, (m, k))
    b = _operands(spec, rng, (k, n))
    start = rng.integers(-3000, 3000, size=(m, n))
    for acc, overflow in ((32, "wrap"), (16, "wrap"), (16, "saturate"), (19, "saturate")):
        want = gemm_reference(a, b, spec, acc_width=acc, overflow=overflow, start=start)
        for backend in ("numpy", "torch"):
            got = kernels.gemm(torch.as_tensor(a), torch.as_tensor(b), spec,
                               torch.as_tensor(start), acc_width=acc, overflow=overflow,
                               backend=backend).numpy()
            np.testing.assert_array_equal(got, want, err_msg=f"{backend} {acc} {overflow}")
    # grouped: G x (M x K) @ (K x N) -> M x G N
    g = 3
    ag = _operands(spec, rng, (g, m, 9))
    bg = _operands(spec, rng, (g, 9, 4))
    want = np.concatenate([gemm_reference(ag[i], bg[i], spec) for i in range(g)], axis=1)
    for backend in ("numpy", "torch"):
        got = kernels.gemm(torch.as_tensor(ag), torch.as_tensor(bg), spec,
                           backend=backend).numpy()
        np.testing.assert_array_equal(got, want)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu(digits):
    graph = load_model("digits-cnn")
    x = torch.as_tensor(digits.x_test[:64])
    for mult in ("mitchell", "truncated6"):
        cpu = approximate(graph, mult, digits.x_calib)
        gpu = approximate(graph, mult, digits.x_calib).to("cuda")
        with torch.no_grad():
            np.testing.assert_array_equal(gpu(x.cuda()).cpu().numpy(), cpu(x).numpy())


# -- grouped / depthwise convolution --------------------------------------------------------------
def _fake_quant(x, s, lo, hi):
    return (np.clip(np.floor(x / s + 0.5), lo, hi)) * s


@pytest.mark.parametrize("groups,cin,cout,dil,stride,pads",
                         [(1, 3, 5, 1, 1, (1, 1, 1, 1)), (2, 4, 6, 1, 2, (0, 1, 2, 1)),
                          (6, 6, 6, 2, 1, (2, 2, 2, 2)), (4, 4, 8, 1, 1, (1, 0, 1, 0))])
def test_grouped_conv_exact_is_float_conv_of_dequantised(groups, cin, cout, dil, stride, pads):
    """Exact products: the layer's dequantised accumulators are torch's float conv2d of the
    fake-quantised input and weights (quantisation written out here), for signed and
    unsigned multipliers, sym and asym activations."""
    rng = np.random.default_rng(groups)
    x = rng.normal(0, 1, (2, cin, 7, 6))
    w = rng.normal(0, 0.5, (cout, cin // groups, 3, 3))
    b = rng.normal(0, 0.1, cout)
    peak = np.abs(w).reshape(cout, -1).max(axis=1)
    sw = peak / 127
    w_hat = np.clip(np.rint(w / sw[:, None, None, None]), -127, 127) * sw[:, None, None, None]
    for acts in ("sym", "asym"):
        if acts == "sym":
            tq = TensorQuant(float(np.abs(x).max()) / 127, True)
            x_hat = _fake_quant(x, tq.scale, -127, 127)
        else:
            lo_f, hi_f = min(x.min(), 0), max(x.max(), 0)
            s = (hi_f - lo_f) / 255
            z = int(np.rint(-lo_f / s))
            tq = TensorQuant(s, True, z, True)
            x_hat = (np.clip(np.floor(x / s + 0.5) + z, 0, 255) - z) * s
        b_hat = np.rint(b / (tq.scale * sw)) * tq.scale * sw
        xp = np.pad(x_hat, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
        want = F.conv2d(torch.as_tensor(xp), torch.as_tensor(w_hat), torch.as_tensor(b_hat),
                        stride, 0, dil, groups).numpy()
        for signed in (True, False):
            layer = ApproxConv2d(cin, cout, 3, target=parse("exact", signed=signed), in_q=tq,
                                 stride=stride, pads=pads, dilation=dil, groups=groups,
                                 backend="torch")
            with torch.no_grad():
                layer.weight.copy_(torch.as_tensor(w))
                layer.bias.copy_(torch.as_tensor(b))
                got = layer(torch.as_tensor(x)).numpy()
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_depthwise_network_twin_equals_engine(digits):
    """A MobileNetV2 (depthwise and 1x1 convolutions, ReLU6, residual adds, batch norm folded)
    with an approximate unsigned multiplier: twin (torch back end) == engine."""
    torch.manual_seed(0)
    model = mobilenet_v2(width=0.25, in_channels=1, num_classes=10, stem_stride=1,
                         settings=((1, 8, 1, 1), (6, 8, 2, 2), (6, 16, 1, 2)), last_channel=32,
                         dropout=0.0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):     # non-trivial statistics to fold
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    model.eval()
    twin = approximate(model, {"*": "mitchell", "features.0.0": "exact"}, digits.x_calib,
                       signed=False, activations="asym", backend="torch")
    groups = [m.groups for m in twin.gemm_layers().values() if isinstance(m, ApproxConv2d)]
    assert max(groups) > 1
    x = digits.x_test[:12]
    with torch.no_grad():
        got = twin(torch.as_tensor(x)).numpy()
    graph = twin.to_graph()
    want = QuantizedModel(graph, digits.x_calib, activations="asym").run(
        x, {"*": "mitchell", "features.0.0": "exact"}, signed=False)
    np.testing.assert_array_equal(got, want)


# -- gradients ------------------------------------------------------------------------------------
@pytest.mark.parametrize("mult", ["truncated6", "mitchell"])
def test_ste_gradient_is_float_gradient_on_dequantised_operands(mult):
    """STE: d loss / d (x, W, b) of the approximate layer equals the float layer's gradient at
    the dequantised operands (x_hat, W_hat), masked where x was clipped and where the output
    clamp (fused ReLU) cut."""
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.normal(0, 1, (3, 4, 6, 6)), requires_grad=True)
    w = rng.normal(0, 0.4, (6, 2, 3, 3))
    b = rng.normal(0, 0.1, 6)
    in_q = TensorQuant(1.5 / 127, True)              # |x| > 1.5 gets clipped
    out_q = TensorQuant(2.0 / 127, False)           # ReLU output, clamped at 2.0
    layer = ApproxConv2d(4, 6, 3, target=parse(mult), in_q=in_q, out_q=out_q, pads=(1, 1, 1, 1),
                         groups=2, act=(0.0, np.inf))
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(w))
        layer.bias.copy_(torch.as_tensor(b))
    layer.capture = {}
    y = layer(x)
    g = torch.as_tensor(rng.normal(0, 1, y.shape))
    (y * g).sum().backward()

    sw = np.abs(w).reshape(6, -1).max(axis=1) / 127
    w_hat = torch.as_tensor(np.clip(np.rint(w / sw[:, None, None, None]), -127, 127)
                            * sw[:, None, None, None], dtype=torch.float64).requires_grad_()
    xd = x.detach().numpy()
    q = np.floor(xd / in_q.scale + 0.5)
    x_hat = torch.as_tensor(np.clip(q, -127, 127) * in_q.scale).requires_grad_()
    bias = torch.as_tensor(b).requires_grad_()
    ref = F.conv2d(x_hat, w_hat, bias, 1, 1, 1, 2)
    # outputs cut by the clamp (ReLU at 0, top of the range at 127 S_y) pass no gradient: the
    # requantised accumulator before the clamp is round(acc S_x S_w / S_y)
    acc = layer.capture["acc"]                                  # (B OH OW) x Cout
    pre = np.floor(acc * (in_q.scale * sw) / out_q.scale + 0.5)
    pre = pre.reshape(3, 6, 6, 6).transpose(0, 3, 1, 2)
    live = torch.as_tensor(((pre >= 0) & (pre <= 127)).astype(np.float64))
    assert 0.1 < float(live.mean()) < 0.9
    (ref * g * live).sum().backward()
    inside = torch.as_tensor(((q >= -127) & (q <= 127)).astype(np.float64))
    assert float(inside.mean()) < 1.0
    np.testing.assert_allclose(x.grad.numpy(), (x_hat.grad * inside).numpy(), atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad.numpy(), w_hat.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(layer.bias.grad.numpy(), bias.grad.numpy(), atol=1e-10)


def test_table_gradient_of_exact_multiplier_is_ste():
    """The derivative table of the exact product is exact (d(ab)/da = b): grad="table" then
    gives the straight-through gradient, in every operand mapping (the zero-point and offset
    terms depend on the operands too), for a linear and a grouped conv layer."""
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (7, 12))
    xc = rng.normal(0, 1, (2, 4, 5, 5))
    w = rng.normal(0, 0.3, (5, 12))
    wc = rng.normal(0, 0.3, (6, 2, 3, 3))
    sym = TensorQuant(float(np.abs(x).max()) / 127, True)
    lo, hi = min(x.min(), xc.min()), max(x.max(), xc.max())
    s = (hi - lo) / 255
    asym = TensorQuant(s, True, int(np.rint(-lo / s)), True)
    for in_q in (sym, asym):
        for signed in (True, False):
            grads = []
            for mode in ("ste", "table"):
                spec = parse("exact", signed=signed)
                lin = ApproxLinear(12, 5, target=spec, in_q=in_q, grad=mode)
                conv = ApproxConv2d(4, 6, 3, target=spec, in_q=in_q, grad=mode, groups=2,
                                    pads=(1, 0, 1, 1))
                with torch.no_grad():
                    lin.weight.copy_(torch.as_tensor(w))
                    conv.weight.copy_(torch.as_tensor(wc))
                    lin.bias.fill_(0.1)
                    conv.bias.fill_(-0.1)
                xt = torch.tensor(x, requires_grad=True)
                xct = torch.tensor(xc, requires_grad=True)
                (lin(xt).pow(2).sum() + conv(xct).pow(2).sum()).backward()
                grads.append([t.numpy() for t in (xt.grad, lin.weight.grad, xct.grad,
                                                  conv.weight.grad)])
            for got, want in zip(grads[1], grads[0]):
                np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9,
                                           err_msg=f"{in_q.mode} signed={signed}")
    da, db = kernels.derivative_tables(parse("truncated6"), "cpu")
    assert float(da.abs().sum()) > 0 and da.shape == db.shape == (256 * 256,)


# -- retraining -----------------------------------------------------------------------------------
def test_retrain_cli_writes_weights_that_reproduce_its_figures(tmp_path):
    from sim.nn.retrain import main

    out = tmp_path / "r"
    rc = main(["--model", "digits-mlp", "--mult", "truncated6", "--epochs", "1", "--limit",
               "200", "--out", str(out), "--no-progress", "--json", str(tmp_path / "r.json")])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res == json.loads((tmp_path / "r.json").read_text())
    row = res["results"][0]
    assert row["multiplier"] == "truncated6" and len(row["epoch_loss"]) == 1
    assert row["before"]["ci95_low"] <= row["before"]["accuracy"] <= row["before"]["ci95_high"]
    # the written weights, quantised with the same calibration, give the reported accuracy
    data = load_digits_split().limited(200)
    with np.load(out / "truncated6.npz") as f:
        weights = {k: f[k] for k in f.files}
    from sim.dnn.models import build
    graph = build("digits-mlp", weights)
    base = approximate(load_model("digits-mlp"), None, data.x_calib)
    qm = QuantizedModel(graph, tq=base.tq)
    acc = (qm.run(data.x_test, "truncated6").argmax(1) == data.y_test).mean()
    assert acc == pytest.approx(row["after"]["accuracy"])
    assert not np.allclose(weights["fc1.W"], load_model("digits-mlp").nodes[1].attrs["W"])


def test_dnn_cli_runs_unsigned_multipliers_with_uint8_activations(capsys):
    """python -m sim.dnn --unsigned --activations asym: a whole network on an unsigned
    multiplier; its exact configuration equals the signed int8-exact reference."""
    from sim.dnn.__main__ import main as dnn_main

    rc = dnn_main(["--model", "digits-mlp", "--mult", "exact", "drum4", "--unsigned",
                   "--activations", "asym", "--limit", "60", "--json", "-", "--no-progress"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["multipliers"] == "unsigned"
    assert set(res["activations"].values()) == {"asym"}
    data = load_digits_split().limited(60)
    qm = QuantizedModel(load_model("digits-mlp"), data.x_calib, activations="asym")
    ref = (qm.run(data.x_test, "exact").argmax(1) == data.y_test).mean()
    assert res["int8_accuracy"] == pytest.approx(ref)


def test_training_script_reproduces_the_shipped_digits_weights():
    """scripts/train_torch_digits.py is the only trainer: rerunning it for digits-mlp gives the
    network that sim/dnn/weights ships (bit for bit on the machine that wrote them; elsewhere
    BLAS summation order may differ, so predictions are compared, not bytes)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "train_torch_digits.py"
    spec = importlib.util.spec_from_file_location("train_torch_digits", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    model, data = script.train("digits-mlp")
    x = torch.as_tensor(data.x_test, dtype=torch.float32)
    with torch.no_grad():
        fresh = model(x).numpy()
    shipped = run_float(load_model("digits-mlp"), data.x_test)
    assert (fresh.argmax(1) == shipped.argmax(1)).mean() >= 0.99
    np.testing.assert_allclose(fresh, shipped, rtol=0.05, atol=0.05)
