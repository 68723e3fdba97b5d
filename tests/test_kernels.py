"""The emulator's kernels (sim.kernels) and routes (sim.emulate.routes): every route, forced
explicitly, equals the golden model (sim.golden) and the plain table definition
``sum_k T[a, b]``, for every family, imported tables, signed and unsigned 4..8-bit operands,
accumulator widths and both overflow modes; the int32 bound, the start-up probes, the fallbacks
when the compiled extension or onnxruntime is missing, and the thread setting."""

import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sim.emulate as emu
import sim.kernels as kern
from hw.mult import example_names, parse
from sim.golden import ArrayModel, gemm_reference, tiled_gemm
from sim.kernels import calibrate, intgemm, lut

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                      HealthCheck.function_scoped_fixture],
                derandomize=True)
needs_native = pytest.mark.skipif(kern.native is None, reason="sim.kernels._native not built")
needs_int = pytest.mark.skipif(not intgemm.kernels(), reason="no exact integer GEMM kernel")


def plain(a, b, table, lo):
    """The arithmetic definition: ``S[m, n] = sum_k T[a[m, k] - lo, b[k, n] - lo]``."""
    t = np.asarray(table, dtype=np.int64)
    return t[(a - lo)[:, :, None], (b - lo)[None, :, :]].sum(axis=1)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """Imported product tables (``table:PATH``), made as tests/test_import_mult.py makes them:
    a random signed 8-bit table, a random unsigned 4-bit one, a DRUM4 table."""
    root = tmp_path_factory.mktemp("tables")
    rng = np.random.default_rng(5)
    out = {}
    for name, table, width, signed in (
            ("rand8s", rng.integers(-(1 << 15), 1 << 15, (256, 256)), 8, True),
            ("rand4u", rng.integers(0, 256, (16, 16)), 4, False),
            ("drum4s", parse("drum4").table(), 8, True),
            ("rand6u", rng.integers(0, 1 << 12, (64, 64)), 6, False)):
        path = root / f"{name}.npy"
        np.save(path, table)
        out[name] = (f"table:{path}", width, signed)
    return out


@pytest.fixture
def threads_reset():
    yield
    kern.set_threads(None)


def _mat(rng, lo, hi, shape, extreme):
    x = rng.integers(lo, hi + 1, shape)
    if extreme:
        x = np.where(rng.random(shape) < 0.6, rng.choice([lo, hi, lo + 1, hi - 1], shape), x)
    return x


@settings(max_examples=250, **SETTINGS)
@given(data=st.data())
def test_every_route_equals_golden(tables, data):
    width = data.draw(st.integers(4, 8))
    signed = data.draw(st.booleans())
    names = list(example_names(width)) + [t for t, w, s in tables.values()
                                          if w == width and s == signed]
    spec = parse(data.draw(st.sampled_from(names)), width=width, signed=signed)
    route = data.draw(st.sampled_from(emu.routes(spec)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    m, k, n = (data.draw(st.integers(1, 12)) for _ in range(3))
    extreme = data.draw(st.booleans())
    lo, hi = spec.operand_range
    a, b = _mat(rng, lo, hi, (m, k), extreme), _mat(rng, lo, hi, (k, n), extreme)
    w = spec.product_width
    acc = data.draw(st.sampled_from([w, w + 2, 32, 48]))
    overflow = data.draw(st.sampled_from(["wrap", "saturate"]))
    with emu.forced_route(route):
        assert emu.choose_route(spec, m, k, n) == route
        got = emu.emulate_gemm(a, b, spec, acc_width=acc, overflow=overflow)
    want = gemm_reference(a, b, spec, acc_width=acc, overflow=overflow)
    np.testing.assert_array_equal(got, want, err_msg=f"{spec.full_name} {route} {acc} {overflow}")


@needs_native
@pytest.mark.parametrize("shape", [(300, 37, 150), (150, 37, 300), (131, 20, 7)])
def test_table_kernels_on_large_shapes(shape, threads_reset, monkeypatch):
    """Sizes that run the vector bodies (128-row permute blocks, 32-column rowadd blocks) and
    the thread split; every table kernel of this CPU, 16-bit depth 1 (unsigned 8-bit) to deep
    (error table), vs the plain definition."""
    m, k, n = shape
    rng = np.random.default_rng(m + n)
    cases = [parse("mitchell", signed=False), parse("mitchell"), parse("drum4", width=4)]
    for spec in cases:
        lo, hi = spec.operand_range
        a, b = _mat(rng, lo, hi, (m, k), True), _mat(rng, lo, hi, (k, n), True)
        p = emu.plan(spec)
        want = plain(a, b, p.table, lo)
        for name in lut.available():
            monkeypatch.setenv("AXM_EMULATE_LUT", name)
            for nt in (1, 2):
                kern.set_threads(nt)
                for route in [r for r in emu.routes(spec) if r.startswith("lut")]:
                    with emu.forced_route(route):
                        got = emu.product_sum(a, b, spec)
                    np.testing.assert_array_equal(got, want, err_msg=f"{spec} {name} {route}")
    assert emu._table_operand(emu.plan(parse("mitchell")), True).depth > \
        emu._table_operand(emu.plan(parse("mitchell")), False).depth


@needs_native
def test_table_kernel_extreme_values():
    """A table using the full 16-bit span (depth 1) and one of 16 entries; both orientations."""
    rng = np.random.default_rng(3)
    for v in (16, 256):
        table = rng.integers(-(1 << 15), 1 << 15, (v, v))
        table[0, 0], table[-1, -1] = -(1 << 15), (1 << 15) - 1
        op = lut.TableOperand(table)
        assert op.ok and op.depth == 1
        for (m, k, n) in ((140, 9, 40), (40, 9, 140)):
            a = rng.choice([0, v - 1, 1], (m, k)).astype(np.uint8)
            b = rng.choice([0, v - 1, 2], (k, n)).astype(np.uint8)
            want = plain(a.astype(np.int64), b.astype(np.int64), table, 0)
            for name in lut.available():
                res, tr = lut.table_gemm(op, a, b, name, 2)
                got = (res.T if tr else res).astype(np.int64) + k * op.base
                np.testing.assert_array_equal(got, want, err_msg=name)


class _Int64Kernel(intgemm.IntKernel):
    """A stand-in kernel that checks the int32 promise: every partial sum of every output
    must stay within int32 (it computes in int64 and records the largest |partial sum|)."""

    name = "test-int64"
    b_lo = -128

    def __init__(self):
        self.peak = 0
        self.calls = 0

    def matmul(self, a, b, out):
        self.calls += 1
        steps = a.astype(np.int64)[:, :, None] * b.astype(np.int64)[None, :, :]
        self.peak = max(self.peak, int(np.abs(np.cumsum(steps, axis=1)).max()))
        assert self.peak <= intgemm.INT32_MAX
        out[...] = steps.sum(axis=1)
        return out


@pytest.mark.parametrize("name,signed", [("exact", True), ("exact", False), ("etm4", True),
                                         ("truncated4c", False), ("kulkarni", True)])
def test_int32_never_overflows_split_k(name, signed, monkeypatch):
    """K = 70000 extreme operands: one step adds up to 255 * 128, so K must be split; the
    stand-in kernel asserts every partial sum fits int32 and the result equals int64 numpy."""
    fake = _Int64Kernel()
    monkeypatch.setattr(intgemm, "kernels", lambda: [fake])
    spec = parse(name, signed=signed)
    lo, hi = spec.operand_range
    k = 70000
    a = np.array([[hi] * k, [lo] * k])
    b = np.stack([np.full(k, lo), np.full(k, hi)], axis=1)
    with emu.forced_route("int"):
        got = emu.product_sum(a, b, spec)
    table = emu.plan(spec).table
    want = np.array([[table[x - lo, y - lo] for y in (lo, hi)] for x in (hi, lo)]) * k
    np.testing.assert_array_equal(got, want)
    assert fake.calls >= 2
    if name == "exact":                       # the split was needed: K * 255 * 128 > 2**31
        assert fake.peak > 1 << 30


@needs_int
def test_real_kernel_long_reduction_is_exact():
    spec = parse("exact")
    k = 70000
    a = np.full((3, k), 127)
    a[1] = -128
    b = np.full((k, 2), -128)
    b[:, 1] = 127
    with emu.forced_route("int"):
        got = emu.product_sum(a, b, spec)
    np.testing.assert_array_equal(got, a @ b)


def test_int_route_small_k_chunks(monkeypatch):
    """Forced tiny K chunks (every chunk boundary, stacked digit groups) stay exact."""
    monkeypatch.setattr(intgemm, "k_chunk", lambda per_k: 5)
    if not intgemm.kernels():
        monkeypatch.setattr(intgemm, "kernels", lambda: [_Int64Kernel()])
    rng = np.random.default_rng(2)
    for name in ("exact", "etm4", "bam2_6", "drum6", "roba"):
        for signed in (True, False):
            spec = parse(name, signed=signed)
            lo, hi = spec.operand_range
            a, b = _mat(rng, lo, hi, (6, 23), True), _mat(rng, lo, hi, (23, 5), True)
            with emu.forced_route("int"):
                got = emu.product_sum(a, b, spec)
            np.testing.assert_array_equal(got, plain(a, b, emu.plan(spec).table, lo))


def test_wide_operands_int_route():
    """16-bit operands need several 8-bit digits per term."""
    rng = np.random.default_rng(4)
    for name in ("exact", "drum6", "kulkarni"):
        for signed in (True, False):
            spec = parse(name, width=16, signed=signed)
            lo, hi = spec.operand_range
            a, b = _mat(rng, lo, hi, (4, 9), True), _mat(rng, lo, hi, (9, 3), True)
            for route in emu.routes(spec):
                with emu.forced_route(route):
                    got = emu.emulate_gemm(a, b, spec, acc_width=60)
                np.testing.assert_array_equal(got, gemm_reference(a, b, spec, acc_width=60))


@settings(max_examples=60, **SETTINGS)
@given(st.lists(st.integers(-(1 << 40), 1 << 40), min_size=1, max_size=40))
def test_digit_split(values):
    vec = np.array(values, dtype=np.int64)
    c, s, digits = emu._digits(vec)
    assert s >= 1 and all(((d >= 0) & (d <= 255)).all() for d in digits)
    back = c + s * sum(d.astype(object) * 256 ** i for i, d in enumerate(digits))
    assert list(back) == list(values)


class _Saturating(intgemm.IntKernel):
    """Models AVX2's VPMADDUBSW: u8 x s8 pairs summed in a saturating int16."""

    name = "test-sat"
    b_lo = -128

    def matmul(self, a, b, out):
        x = a.astype(np.int64)
        y = b.astype(np.int64)
        k = x.shape[1] - x.shape[1] % 2
        pair = x[:, 0:k:2, None] * y[None, 0:k:2] + x[:, 1:k:2, None] * y[None, 1:k:2]
        out[...] = np.clip(pair, -32768, 32767).sum(axis=1) + (
            x[:, k:] @ y[k:] if k < x.shape[1] else 0)
        return out


def test_probe_rejects_inexact_kernels(monkeypatch):
    made = {"test-sat": _Saturating(), "test-good": _Int64Kernel()}
    made["test-good"].name = "test-good"
    monkeypatch.setattr(intgemm, "_make", lambda name: made.get(name))
    assert intgemm.probe.__wrapped__("test-sat") is False
    assert intgemm.probe.__wrapped__("test-good") is True
    assert intgemm.probe.__wrapped__("no-such") is False


@pytest.fixture
def hidden_libraries(monkeypatch):
    """Hide onnxruntime and torch from the kernel finder (as if not installed)."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setitem(sys.modules, "torch", None)
    intgemm.reset()
    yield
    monkeypatch.undo()
    intgemm.reset()


@pytest.mark.parametrize("no_native", [False, True])
def test_fallbacks_without_onnxruntime_or_extension(no_native, tables, hidden_libraries,
                                                    monkeypatch):
    if no_native:
        monkeypatch.setattr(kern, "native", None)
    assert intgemm.kernels() == []
    rng = np.random.default_rng(8)
    for name in ("exact", "etm4", "mitchell", tables["rand8s"][0]):
        spec = parse(name)
        r = emu.routes(spec)
        assert "int" not in r and "lut-error" not in r
        assert ("lut" in r) == (not no_native and bool(lut.available()))
        a, b = _mat(rng, -128, 127, (30, 50), True), _mat(rng, -128, 127, (50, 20), True)
        np.testing.assert_array_equal(emu.emulate_gemm(a, b, spec, acc_width=40),
                                      gemm_reference(a, b, spec, acc_width=40))


def test_int_route_without_extension(monkeypatch):
    """The integer route's helpers (index, expand, sums, combine) also run on numpy."""
    monkeypatch.setattr(kern, "native", None)
    if not intgemm.kernels():
        monkeypatch.setattr(intgemm, "kernels", lambda: [_Int64Kernel()])
    rng = np.random.default_rng(9)
    for name in ("exact", "etm4", "bam2_6"):
        for signed in (True, False):
            spec = parse(name, signed=signed)
            lo, hi = spec.operand_range
            a, b = _mat(rng, lo, hi, (9, 31), True), _mat(rng, lo, hi, (31, 7), True)
            with emu.forced_route("int"):
                got = emu.product_sum(a, b, spec)
            np.testing.assert_array_equal(got, plain(a, b, emu.plan(spec).table, lo))


def test_thread_setting(monkeypatch, threads_reset):
    monkeypatch.delenv("AXM_EMULATE_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert kern.threads() == 3
    monkeypatch.setenv("AXM_EMULATE_THREADS", "2")
    assert kern.threads() == 2
    kern.set_threads(1)
    assert kern.threads() == 1
    with pytest.raises(ValueError):
        kern.set_threads(0)


@needs_native
def test_table_kernel_uses_the_thread_setting(monkeypatch, threads_reset):
    seen = []
    real = lut._run_parts
    monkeypatch.setattr(lut, "_run_parts", lambda fn, parts: (seen.append(len(parts)),
                                                              real(fn, parts)))
    spec = parse("mitchell")
    rng = np.random.default_rng(1)
    a, b = rng.integers(-128, 128, (256, 64)), rng.integers(-128, 128, (64, 256))
    want = plain(a, b, emu.plan(spec).table, -128)
    for nt in (1, 2, 3):
        kern.set_threads(nt)
        seen.clear()
        with emu.forced_route("lut"):
            np.testing.assert_array_equal(emu.product_sum(a, b, spec), want)
        assert seen and max(seen) == nt


@needs_int
def test_onnxruntime_session_uses_the_thread_setting(threads_reset):
    k = next((x for x in intgemm.kernels() if x.name.startswith("onnxruntime")), None)
    if k is None:
        pytest.skip("onnxruntime kernel not exact here")
    for nt in (1, 2):
        kern.set_threads(nt)
        out = np.empty((3, 2), np.int32)
        k.matmul(np.ones((3, 4), np.uint8), np.ones((4, 2), k.b_dtype), out)
        assert (out == 4).all()
        sess, _ = k._session()
        assert sess.get_session_options().intra_op_num_threads == nt


def test_workspace_reuses_memory():
    x = kern.workspace("test-ws", (64, 64), np.int32)
    y = kern.workspace("test-ws", (32, 16), np.int64)
    assert x.ctypes.data == y.ctypes.data


def test_calibration_is_cached_and_drives_the_choice(tmp_path, monkeypatch):
    monkeypatch.setenv("AXM_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("AXM_EMULATE_CALIBRATION", raising=False)
    fast_int = {**calibrate.DEFAULTS,
                "int": {n: [1e-6, 1e14] for n in intgemm.NAMES},
                "f32": [1e-2, 1e6], "f64": [1e-2, 1e6]}
    calls = []
    monkeypatch.setattr(calibrate, "measure", lambda: calls.append(1) or fast_int)
    cached = calibrate._constants
    cached.cache_clear()
    try:
        assert calibrate.constants()["f32"] == [1e-2, 1e6]
        calibrate._constants.cache_clear()
        assert calibrate.constants()["f32"] == [1e-2, 1e6] and calls == [1]   # from the cache
        if intgemm.kernels():
            assert emu.choose_route(parse("kulkarni"), 64, 64, 64) == "int"
        slow_int = {**fast_int, "int": {n: [1.0, 1e3] for n in intgemm.NAMES},
                    "f32": [1e-6, 1e14], "f64": [1e-6, 1e14]}
        monkeypatch.setattr(calibrate, "_constants", lambda n: slow_int)
        assert emu.choose_route(parse("kulkarni"), 64, 64, 64) == "float"
    finally:
        cached.cache_clear()
    monkeypatch.setenv("AXM_EMULATE_CALIBRATION", "0")
    assert cached.__wrapped__(1) is calibrate.DEFAULTS


def test_bad_route_name():
    with pytest.raises(ValueError, match="route"):
        emu.set_route("fastest")


@needs_native
def test_windowed_terms_and_outlier_fix(monkeypatch):
    """DRUM's lookup vectors span 261 values (-136 only at -128): the int route clips them to
    one 256-value window and fixes the products of -128 from the residual table."""
    if not intgemm.kernels():
        monkeypatch.setattr(intgemm, "kernels", lambda: [_Int64Kernel()])
    rng = np.random.default_rng(6)
    for name in ("drum3", "drum5"):
        spec = parse(name)
        prog = emu._int_program(emu.plan(spec), emu._int_kernel().name, True)
        assert prog.oa == bytes([0]) and len(prog.groups) == 1
        a = _mat(rng, -128, 127, (70, 40), True)
        b = _mat(rng, -128, 127, (40, 50), True)
        a[3], b[:, 4] = -128, -128
        with emu.forced_route("int"):
            got = emu.product_sum(a, b, spec)
        np.testing.assert_array_equal(got, plain(a, b, emu.plan(spec).table, -128))


@needs_native
@pytest.mark.parametrize("n_out,shape", [(1, (9, 50, 3000)), (4, (13, 37, 700)),
                                         (2, (5, 3, 1))])
def test_outlier_fix_kernel_against_its_definition(n_out, shape):
    """``outliers`` adds ``ra[a, b]`` wherever ``a`` is one of the outlier values ``oa`` and
    ``rb[a, b]`` wherever ``b`` is one of ``ob``; shapes whose ``K`` spans several of its row
    blocks (``N = 3000``: 10 rows of ``b`` per block), up to 4 values per side, dense hits."""
    rng = np.random.default_rng(n_out)
    m, k, n = shape
    oa = rng.choice(256, n_out, replace=False).astype(np.uint8)
    ob = rng.choice(256, n_out, replace=False).astype(np.uint8)
    ia = rng.integers(0, 256, (m, k)).astype(np.uint8)
    ib = rng.integers(0, 256, (k, n)).astype(np.uint8)
    ia = np.where(rng.random((m, k)) < 0.3, rng.choice(oa, (m, k)), ia).astype(np.uint8)
    ib = np.where(rng.random((k, n)) < 0.3, rng.choice(ob, (k, n)), ib).astype(np.uint8)
    ra = rng.integers(-(1 << 40), 1 << 40, (256, 256))
    rb = rng.integers(-(1 << 40), 1 << 40, (256, 256))
    start = rng.integers(-(1 << 50), 1 << 50, (m, n))
    want = start.copy()
    hit_a = np.isin(ia, oa)
    hit_b = np.isin(ib, ob)
    want += np.einsum("mk,mkn->mn", hit_a.astype(np.int64), ra[ia[:, :, None], ib[None]])
    want += np.einsum("kn,mkn->mn", hit_b.astype(np.int64), rb[ia[:, :, None], ib[None]])
    got = start.copy()
    hits = kern.native.outliers(got, m, k, n, ia, ib, 256, oa.tobytes(), ra, ob.tobytes(), rb)
    assert hits == (int(hit_a.sum()), int(hit_b.sum()))
    np.testing.assert_array_equal(got, want)


@needs_native
def test_error_table_route_only_when_the_error_fits_16_bits(tables):
    """A random table's error ``T - a*b`` spans more than 16 bits: no ``lut-error`` route."""
    spec = parse(tables["rand8s"][0])
    error = emu._error_table(emu.plan(spec))
    assert int(error.max()) - int(error.min()) > 0xFFFF
    assert "lut-error" not in emu.routes(spec) and "lut" in emu.routes(spec)
    assert "lut-error" in emu.routes(parse("mitchell")) or not intgemm.kernels()


@settings(max_examples=40, **SETTINGS)
@given(data=st.data())
def test_forced_routes_on_arrays(data):
    """Heterogeneous arrays (per-column multipliers: os groups take the fast routes, ws groups
    the masked ones) with every route forced equal sim.golden.tiled_gemm."""
    signed = data.draw(st.booleans())
    cols = data.draw(st.integers(1, 3))
    names = data.draw(st.lists(st.sampled_from(list(example_names(8))), min_size=cols,
                               max_size=cols))
    array = ArrayModel.per_col(2, cols, names, width=8, signed=signed,
                               dataflow=data.draw(st.sampled_from(["ws", "os"])),
                               overflow=data.draw(st.sampled_from(["wrap", "saturate"])),
                               acc_width=data.draw(st.sampled_from([17, 32])))
    route = data.draw(st.sampled_from(emu.ROUTES))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    lo, hi = array.grid[0][0].operand_range
    a = _mat(rng, lo, hi, (data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9))), True)
    b = _mat(rng, lo, hi, (a.shape[1], data.draw(st.integers(1, 9))), True)
    with emu.forced_route(route):
        got = emu.emulate_tiled(a, b, array)
    np.testing.assert_array_equal(got, tiled_gemm(a, b, array), err_msg=f"{array!r} {route}")


def test_integer_route_leaves_nothing_in_tmpdir(tmp_path):
    """Regression: loading onnxruntime (1.32) writes a session-id file ``.ses`` into
    ``$TMPDIR``; every run of the integer route left it in the user's temporary folder. It must
    land in the toolkit's cache instead (a fresh process: the import happens once per process)."""
    pytest.importorskip("onnxruntime")
    import os
    import subprocess
    from pathlib import Path

    tmp, cache = tmp_path / "tmp", tmp_path / "cache"
    tmp.mkdir()
    code = ("import numpy as np, sim.emulate as emu\n"
            "from hw.mult import parse\n"
            "a = np.arange(64 * 48).reshape(64, 48) % 256 - 128\n"
            "b = np.arange(48 * 32).reshape(48, 32) % 255 - 127\n"
            "with emu.forced_route('int'):\n"
            "    y = emu.emulate_gemm(a, b, parse('exact'))\n"
            "assert (y == a @ b).all()\n"
            "import sys; assert 'onnxruntime' in sys.modules\n")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "TMPDIR": str(tmp), "AXM_CACHE_DIR": str(cache),
           "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(tmp)) == []
