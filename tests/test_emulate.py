"""The fast emulator equals the golden model (sim.golden) on every input: property tests over
every family, widths, signedness, shapes (K = 1, odd sizes), accumulator widths and both overflow
modes, single multipliers and (heterogeneous) arrays."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hw.mult import MultiplierError, example_names, parse
from hw.mult.base import MultiplierSpec
from sim.emulate import emulate, emulate_gemm, emulate_tiled, plan, product_sum
from sim.golden import ArrayModel, accumulate, gemm_reference, tiled_gemm

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow],
                derandomize=True)
DECOMPOSABLE = ("exact", "truncated", "bam", "perforated", "drum", "kulkarni", "roba", "etm")


@st.composite
def operands(draw, spec, max_dim=9):
    """Matrices with values biased to the extremes (saturation and wrap paths get exercised)."""
    m = draw(st.integers(1, max_dim))
    k = draw(st.integers(1, max_dim))
    n = draw(st.integers(1, max_dim))
    lo, hi = spec.operand_range
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    extreme = draw(st.booleans())
    def mat(shape):
        x = rng.integers(lo, hi + 1, shape)
        if extreme:
            x = np.where(rng.random(shape) < 0.6, rng.choice([lo, hi, lo + 1, hi - 1], shape), x)
        return x
    return mat((m, k)), mat((k, n))


def _acc_widths(spec):
    w = spec.product_width
    return st.sampled_from([w, w + 1, w + 3, 32])


@pytest.mark.parametrize("width,signed", [(8, True), (8, False), (4, True), (5, False),
                                          (6, True), (7, False)])
@settings(max_examples=70, **SETTINGS)
@given(data=st.data())
def test_single_multiplier_equals_golden(width, signed, data):
    name = data.draw(st.sampled_from(example_names(width)))
    spec = parse(name, width=width, signed=signed)
    a, b = data.draw(operands(spec))
    acc = data.draw(_acc_widths(spec))
    overflow = data.draw(st.sampled_from(["wrap", "saturate"]))
    want = gemm_reference(a, b, spec, acc_width=acc, overflow=overflow)
    got = emulate_gemm(a, b, spec, acc_width=acc, overflow=overflow)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want, err_msg=f"{spec.full_name} acc={acc} {overflow}")


@pytest.mark.parametrize("name", example_names(8))
def test_every_example_exhaustive_pairs_k1(name):
    """K = 1 over every operand pair: the emulated products equal the model bit for bit."""
    for signed in (True, False):
        spec = parse(name, signed=signed)
        v = spec.operand_values()
        got = emulate_gemm(v[:, None], v[None, :], spec, acc_width=17, overflow="wrap")
        np.testing.assert_array_equal(got, spec.table())


def test_decomposable_families_avoid_the_table():
    for name in example_names(8):
        for signed in (True, False):
            spec = parse(name, signed=signed)
            method = plan(spec).method
            if spec.family in DECOMPOSABLE:
                assert method == "separable", spec.full_name
            else:
                assert method == "table", spec.full_name
    assert plan(parse("perforated2")).terms == 1          # one GEMM: a * (b with rows cleared)
    assert plan(parse("drum4")).terms == 1
    assert plan(parse("kulkarni")).terms == 2
    assert plan(parse("roba")).terms == 2


def test_wrapping_product_is_repaired():
    """Signed drum2 at 5 bits: (-16) * (-16) -> 24 * 24 = 576 wraps in the 10-bit product."""
    spec = parse("drum2", width=5)
    assert int(spec.model(-16, -16)) != 576
    a = np.array([[-16, -16, 3], [15, -16, -1]])
    b = np.array([[-16, 7], [-16, -16], [2, 5]])
    np.testing.assert_array_equal(emulate_gemm(a, b, spec), gemm_reference(a, b, spec))


@pytest.mark.parametrize("width", [13, 16])
@pytest.mark.parametrize("name", ["exact", "truncated9", "truncated5c", "bam3_10", "perforated2_3",
                                  "drum6", "kulkarni", "roba", "mitchell", "etm5"])
def test_wide_operands(width, name):
    rng = np.random.default_rng(width)
    for signed in (True, False):
        spec = parse(name, width=width, signed=signed)
        lo, hi = spec.operand_range
        a = rng.integers(lo, hi + 1, (5, 7))
        b = rng.integers(lo, hi + 1, (7, 4))
        a[0, :] = lo
        b[:, 0] = lo if signed else hi
        for acc, overflow in ((48, "wrap"), (2 * width + 1, "saturate"), (2 * width, "wrap")):
            np.testing.assert_array_equal(
                emulate_gemm(a, b, spec, acc_width=acc, overflow=overflow),
                gemm_reference(a, b, spec, acc_width=acc, overflow=overflow),
                err_msg=f"{spec.full_name} {acc} {overflow}")


@pytest.mark.parametrize("name,width,k", [("exact", 8, 1500), ("truncated6", 8, 1100),
                                          ("exact", 16, 300), ("roba", 12, 600)])
def test_long_reductions_split_k_exactly(name, width, k):
    """K large enough that one float32 GEMM could round: the emulator splits K."""
    spec = parse(name, width=width)
    lo, hi = spec.operand_range
    rng = np.random.default_rng(k)
    a = rng.choice([lo, hi], (3, k))
    b = rng.choice([lo, lo + 1], (k, 4))
    a[0], b[:, 0] = lo, lo
    want = gemm_reference(a, b, spec, acc_width=60)
    assert np.abs(want).max() > 1 << 24
    np.testing.assert_array_equal(emulate_gemm(a, b, spec, acc_width=60), want)


def test_saturation_fallback_and_start():
    spec = parse("truncated3", width=8)
    a = np.full((4, 40), -128)
    a[1] = 127
    a[2, ::2] = 127
    b = np.full((40, 3), -128)
    b[:, 1] = 1
    for overflow in ("saturate", "wrap"):
        for start in (None, np.array([[5, -7, 100000]])):
            want = gemm_reference(a, b, spec, acc_width=18, overflow=overflow, start=start)
            got = emulate_gemm(a, b, spec, acc_width=18, overflow=overflow, start=start)
            np.testing.assert_array_equal(got, want)
    # the first row really saturates; the second column never does
    sat = gemm_reference(a, b, spec, acc_width=18, overflow="saturate")
    assert sat[0, 0] == (1 << 17) - 1


def test_callable_grid_equals_golden():
    specs = [parse(n) for n in ("exact", "mitchell", "truncated5", "etm3")]
    grid = lambda k, n: specs[(k * 3 + n) % 4]  # noqa: E731
    rng = np.random.default_rng(3)
    a = rng.integers(-128, 128, (5, 9))
    b = rng.integers(-128, 128, (9, 6))
    for overflow in ("wrap", "saturate"):
        np.testing.assert_array_equal(
            emulate_gemm(a, b, grid, acc_width=17, overflow=overflow),
            gemm_reference(a, b, grid, acc_width=17, overflow=overflow))


NAMES8 = example_names(8)


@settings(max_examples=60, **SETTINGS)
@given(data=st.data())
def test_arrays_equal_tiled_golden(data):
    rows = data.draw(st.integers(1, 4))
    cols = data.draw(st.integers(1, 4))
    signed = data.draw(st.booleans())
    width = data.draw(st.sampled_from([8, 6]))
    names = example_names(width)
    kind = data.draw(st.sampled_from(["uniform", "per_row", "per_col"]))
    kw = dict(width=width, signed=signed, dataflow=data.draw(st.sampled_from(["ws", "os"])),
              overflow=data.draw(st.sampled_from(["wrap", "saturate"])),
              acc_width=data.draw(st.sampled_from([2 * width, 2 * width + 2, 32])))
    if kind == "uniform":
        array = ArrayModel.uniform(rows, cols, data.draw(st.sampled_from(names)), **kw)
    elif kind == "per_row":
        array = ArrayModel.per_row(rows, cols, data.draw(
            st.lists(st.sampled_from(names), min_size=rows, max_size=rows)), **kw)
    else:
        array = ArrayModel.per_col(rows, cols, data.draw(
            st.lists(st.sampled_from(names), min_size=cols, max_size=cols)), **kw)
    a, b = data.draw(operands(array.grid[0][0], max_dim=10))
    np.testing.assert_array_equal(emulate_tiled(a, b, array), tiled_gemm(a, b, array),
                                  err_msg=repr(array))
    np.testing.assert_array_equal(emulate(a, b, array), tiled_gemm(a, b, array))


def test_tiled_start_is_the_host_accumulators_initial_value():
    """``start``: the host's accumulator starts there and adds each pass (ws: every K tile;
    os: the one pass) with the array's rule; PEs start at 0. Reference: golden passes added
    by hand, and :func:`sim.golden.tiled_gemm` with ``start``."""
    rng = np.random.default_rng(5)
    a = rng.choice([255, 250, 3, 0], (5, 13))
    b = rng.choice([255, 240, 1, 128], (13, 7))
    start = rng.integers(-(1 << 18), 1 << 18, (5, 7))
    for dataflow in ("ws", "os"):
        array = ArrayModel.per_row(4, 3, ["exact", "mitchell", "truncated4", "drum3"],
                                   signed=False, dataflow=dataflow, acc_width=19,
                                   overflow="saturate")
        want = start.copy()
        if dataflow == "ws":
            for n0 in range(0, 7, 3):
                for k0 in range(0, 13, 4):
                    part = array.tile(a[:, k0:k0 + 4], b[k0:k0 + 4, n0:n0 + 3])
                    want[:, n0:n0 + 3] = accumulate(want[:, n0:n0 + 3], part, 19, "saturate")
        else:
            for m0 in range(0, 5, 4):
                for n0 in range(0, 7, 3):
                    part = array.tile(a[m0:m0 + 4], b[:, n0:n0 + 3])
                    want[m0:m0 + 4, n0:n0 + 3] = accumulate(want[m0:m0 + 4, n0:n0 + 3], part,
                                                            19, "saturate")
        np.testing.assert_array_equal(tiled_gemm(a, b, array, start), want)
        np.testing.assert_array_equal(emulate_tiled(a, b, array, start), want)
        np.testing.assert_array_equal(emulate_tiled(a, b, array, start[0]), tiled_gemm(
            a, b, array, np.broadcast_to(start[0], (5, 7))))
        if dataflow == "ws":        # several K tiles: adding start last would differ
            assert not np.array_equal(want, accumulate(tiled_gemm(a, b, array), start, 19,
                                                       "saturate"))


def test_checkerboard_grid_both_dataflows():
    specs = [parse(n) for n in ("mitchell", "drum3", "exact", "bam2_6")]
    grid = tuple(tuple(specs[(r + 2 * c) % 4] for c in range(3)) for r in range(2))
    rng = np.random.default_rng(7)
    a = rng.choice([-128, 127, 5, -3], (7, 11))
    b = rng.choice([-128, 127, 9, -100], (11, 8))
    for dataflow in ("ws", "os"):
        for overflow in ("wrap", "saturate"):
            array = ArrayModel(2, 3, grid, dataflow=dataflow, acc_width=17, overflow=overflow)
            np.testing.assert_array_equal(emulate_tiled(a, b, array), tiled_gemm(a, b, array))


def test_product_table_scheme(tmp_path):
    """A bring-your-own table with no structure goes through the gather path."""
    rng = np.random.default_rng(11)
    table = rng.integers(-(1 << 11), 1 << 11, (64, 64))
    path = tmp_path / "t.npy"
    np.save(path, table)
    spec = parse(f"table:{path}", width=6, signed=True)
    assert plan(spec).method == "table"
    a = rng.integers(-32, 32, (9, 13))
    b = rng.integers(-32, 32, (13, 20))           # M < N: transposed gather
    for overflow in ("wrap", "saturate"):
        np.testing.assert_array_equal(
            emulate_gemm(a, b, spec, acc_width=14, overflow=overflow),
            gemm_reference(a, b, spec, acc_width=14, overflow=overflow))


def test_unregistered_family_uses_the_table():
    class Odd(MultiplierSpec):
        family = "odd"

        def _model(self, a, b):
            return a * b + ((a ^ b) & 3)

        def _build(self, m, a, b):  # pragma: no cover - never built here
            raise NotImplementedError

    spec = Odd(width=5, signed=False)
    assert plan(spec).method == "table"
    rng = np.random.default_rng(0)
    a = rng.integers(0, 32, (6, 4))
    b = rng.integers(0, 32, (4, 3))
    np.testing.assert_array_equal(product_sum(a, b, spec),
                                  gemm_reference(a, b, spec, acc_width=40))


def test_bad_input():
    spec = parse("drum4")
    a = np.zeros((2, 3), dtype=np.int64)
    with pytest.raises(MultiplierError):
        emulate_gemm(a + 200, np.zeros((3, 2)), spec)
    with pytest.raises(ValueError, match="inner dimensions"):
        emulate_gemm(a, np.zeros((2, 2)), spec)
    with pytest.raises(ValueError, match="overflow"):
        emulate_gemm(a, np.zeros((3, 2)), spec, overflow="clip")
    with pytest.raises(MultiplierError):
        emulate(a, np.zeros((3, 2)), "nosuchmult")
    assert emulate_gemm(np.zeros((2, 0)), np.zeros((0, 3)), spec).shape == (2, 3)


@pytest.mark.parametrize("shape", [(64, 340, 96), (40, 300, 180)])
def test_large_table_gather_threads_and_orientation(shape):
    """Big enough for the multi-threaded gather; M < N exercises the transposed orientation."""
    m, k, n = shape
    rng = np.random.default_rng(m)
    a = rng.integers(-128, 128, (m, k))
    b = rng.integers(-128, 128, (k, n))
    for name, signed in (("mitchell", True), ("mitchell", False)):
        spec = parse(name, signed=signed)
        lo, hi = spec.operand_range
        aa, bb = np.clip(a - lo // 2 if not signed else a, lo, hi), np.clip(b, lo, hi)
        np.testing.assert_array_equal(emulate_gemm(aa, bb, spec, acc_width=40),
                                      gemm_reference(aa, bb, spec, acc_width=40))


@pytest.mark.parametrize("signed", [True, False])
def test_narrow_integer_operands_equal_int64(signed):
    """Operands of any integer dtype (a DNN's int16 patches, uint8 images) are read as they are
    and give the int64 result, for every example family; a narrow value outside the
    multiplier's range still raises, and the caller's ``start`` is never written."""
    rng = np.random.default_rng(int(signed))
    dtypes = [np.int8, np.int16, np.int32] if signed else [np.uint8, np.uint16, np.int16,
                                                           np.uint32]
    for name in example_names(8):
        spec = parse(name, signed=signed)
        lo, hi = spec.operand_range
        a = rng.integers(lo, hi + 1, (33, 70))
        b = rng.integers(lo, hi + 1, (70, 21))
        a[0], b[:, 0] = lo, hi
        start = rng.integers(-1000, 1000, (33, 21))
        kept = start.copy()
        want = gemm_reference(a, b, spec, start=start)
        for dt in dtypes:
            got = emulate_gemm(a.astype(dt), b.astype(dt), spec, start=start)
            np.testing.assert_array_equal(got, want, err_msg=f"{name} {np.dtype(dt)}")
            np.testing.assert_array_equal(start, kept)
    spec = parse("exact", signed=signed)
    bad = np.full((2, 3), 200 if signed else 300, np.int16)
    with pytest.raises(MultiplierError):
        emulate_gemm(bad, np.zeros((3, 2), np.int16), spec)
    start = np.ones((2, 3), np.int64)
    out = emulate_gemm(np.zeros((2, 0), np.int8), np.zeros((0, 3), np.int8), spec, start=start)
    out[0, 0] = 5
    assert start[0, 0] == 1
