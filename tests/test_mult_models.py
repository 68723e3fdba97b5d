"""Reference models and registry, tied to independent facts (arithmetic definitions, hand
computations, published properties)."""

import itertools

import numpy as np
import pytest

from hw.mult import MultiplierError, example_names, families, parse
from hw.mult.truncated import expected_dropped_uniform_unsigned
from sim.metrics import characterize

ALL_NAMES_8 = example_names(8)


def _exact_grid(spec):
    v = spec.operand_values()
    return v[:, None] * v[None, :]


# ---------------------------------------------------------------------------------------------
# Registry and name grammar
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("width", [4, 8, 12, 16])
@pytest.mark.parametrize("signed", [True, False])
def test_canonical_names_round_trip(width, signed):
    for name in example_names(width):
        spec = parse(name, width=width, signed=signed)
        again = parse(spec.name, width=width, signed=signed)
        assert again == spec and again.name == spec.name
        assert hash(again) == hash(spec)


def test_every_family_has_examples_and_is_listed():
    listed = set(families())
    assert listed == {"exact", "truncated", "bam", "perforated", "drum", "mitchell", "kulkarni",
                      "roba", "etm"}
    covered = {parse(n).family for n in ALL_NAMES_8}
    assert covered == listed


def test_names_are_normalised():
    assert parse("  Truncated4C ").name == "truncated4c"
    assert parse("perforated2_0").name == "perforated2"
    assert parse("perforated2_0") == parse("perforated2")


@pytest.mark.parametrize("name, fragment", [
    ("foo3", "unknown multiplier"),
    ("truncated", "malformed parameters"),
    ("truncated0", "outside 1..15"),
    ("truncated16", "outside 1..15"),
    ("bam9_2", "outside 0..7"),
    ("bam1", "malformed"),
    ("perforated5_5", "exceed"),
    ("drum1", "outside 2..8"),
    ("etm8", "outside 1..7"),
    ("exact3", "malformed"),
    ("nosuch:thing", "unknown multiplier"),
    ("", "non-empty"),
])
def test_bad_names_are_rejected_with_one_line(name, fragment):
    with pytest.raises(MultiplierError) as info:
        parse(name, width=8)
    message = str(info.value)
    assert fragment in message and "\n" not in message


@pytest.mark.parametrize("width", [0, 3, 17, 32])
def test_width_outside_range_is_rejected(width):
    with pytest.raises(MultiplierError, match="outside the supported range 4..16"):
        parse("exact", width=width)


def test_model_rejects_out_of_range_operands():
    with pytest.raises(MultiplierError, match="outside -128..127"):
        parse("exact").model(128, 1)
    with pytest.raises(MultiplierError, match="outside 0..255"):
        parse("exact", signed=False).model(-1, 1)


# ---------------------------------------------------------------------------------------------
# Independent facts about the families
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("width", [4, 8])
def test_exact_has_all_zero_metrics(width, signed):
    spec = parse("exact", width=width, signed=signed)
    assert np.array_equal(spec.table(), _exact_grid(spec))
    m = characterize(spec)
    assert (m.me, m.mae, m.mse, m.var, m.wce, m.ep, m.mre, m.wcre, m.nmed) == (0,) * 9


@pytest.mark.parametrize("width, k", [(4, 1), (4, 3), (8, 1), (8, 4), (8, 7), (8, 12), (12, 6)])
def test_truncated_bias_is_closed_form_expected_dropped_value(width, k):
    """Unsigned: bias = -sum_{c<K} (#bits in column c) 2^c / 4 (each a_i b_j is 1 w.p. 1/4)."""
    if width == 12:
        pytest.importorskip("numpy")  # 2^24 pairs: still exhaustive, a few seconds
    spec = parse(f"truncated{k}", width=width, signed=False)
    m = characterize(spec)
    assert m.me == pytest.approx(-expected_dropped_uniform_unsigned(k, width), abs=1e-9)
    # Column c of an N x N array has min(c+1, N, 2N-1-c) bits: check the count independently.
    counts = [sum(1 for i in range(width) for j in range(width) if i + j == c)
              for c in range(k)]
    assert m.me == pytest.approx(-sum(n * 2.0 ** c / 4 for c, n in enumerate(counts)))


@pytest.mark.parametrize("k", [2, 4, 6])
def test_signed_truncation_below_sign_column_has_the_same_bias(k):
    """Below column N-1 no Baugh-Wooley bit is inverted, so the bias equals the unsigned one."""
    m = characterize(parse(f"truncated{k}", width=8, signed=True))
    assert m.me == pytest.approx(-expected_dropped_uniform_unsigned(k, 8))


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("k", [2, 4, 6, 8, 10])
def test_compensated_truncation_bias_is_rounding_residue(k, signed):
    spec = parse(f"truncated{k}", width=8, signed=signed)
    comp = parse(f"truncated{k}c", width=8, signed=signed)
    expected = -characterize(spec).me  # E[dropped], measured exhaustively
    residue = np.floor(expected + 0.5) - expected
    assert characterize(comp).me == pytest.approx(residue, abs=1e-9)
    assert abs(characterize(comp).me) <= 0.5
    assert np.array_equal(comp.table() - spec.table(), np.full_like(spec.table(), comp.compensation()))


@pytest.mark.parametrize("signed", [True, False])
def test_mitchell_worst_relative_error_is_one_ninth(signed):
    """Mitchell's log approximation: max relative error 1/9 at f1 = f2 = 1/2 (e.g. 3 x 3 -> 8)."""
    spec = parse("mitchell", width=8, signed=signed)
    m = characterize(spec)
    assert m.wcre == pytest.approx(1 / 9)
    assert spec.model(3, 3) == 8 and spec.model(12, 6) == 64
    # Mitchell never overestimates the magnitude.
    t, exact = spec.table(), _exact_grid(spec)
    assert np.all(np.abs(t) <= np.abs(exact))


@pytest.mark.parametrize("name", ["truncated4", "truncated9", "bam2_6", "bam0_3", "bam3_9",
                                  "perforated2", "perforated3_2", "perforated1_7"])
def test_array_truncations_never_overestimate_unsigned(name):
    spec = parse(name, width=8, signed=False)
    assert np.all(spec.table() <= _exact_grid(spec))


def test_bam_with_no_horizontal_break_equals_truncation():
    for v in (3, 6, 9):
        for signed in (True, False):
            assert np.array_equal(parse(f"bam0_{v}", signed=signed).table(),
                                  parse(f"truncated{v}", signed=signed).table())


def test_perforation_unsigned_is_exact_product_of_masked_operand():
    """Skipping rows J..J+M-1 of b = multiplying by b with those bits cleared."""
    spec = parse("perforated3_2", width=8, signed=False)
    v = spec.operand_values()
    masked = v & ~(0b111 << 2)
    assert np.array_equal(spec.table(), v[:, None] * masked[None, :])


def test_truncated_matches_bit_level_sum_of_kept_partial_products():
    """Independent bit loop with Python integers (unsigned and Baugh-Wooley signed)."""
    n, k = 5, 4
    for signed in (False, True):
        spec = parse(f"truncated{k}", width=n, signed=signed)
        lo, hi = spec.operand_range
        for a, b in itertools.product(range(lo, hi + 1), repeat=2):
            au, bu = a & 31, b & 31
            total = ((1 << n) + (1 << (2 * n - 1))) if signed else 0
            for i in range(n):
                for j in range(n):
                    bit = (au >> i) & (bu >> j) & 1
                    if signed and ((i == n - 1) != (j == n - 1)):
                        bit ^= 1
                    if i + j >= k:
                        total += bit << (i + j)
            total &= (1 << 2 * n) - 1
            if signed and total >= 1 << (2 * n - 1):
                total -= 1 << 2 * n
            assert spec.model(a, b) == total, (a, b)


def test_drum_hand_examples():
    spec = parse("drum4", width=8, signed=False)
    # 183 = 0b1011_0111: leading one at 7, keep bits 7..4 = 1011, force bit 4 -> 0b1011_0000.
    assert spec.model(183, 1) == 176
    # 0b0110_0001 = 97: keep bits 6..3 = 1100, force bit 3 -> 0b0110_1000 = 104.
    assert spec.model(97, 1) == 104
    assert spec.model(15, 15) == 225          # 4-bit operands pass exactly
    assert parse("drum8", width=8, signed=False).table().tolist() == \
        _exact_grid(parse("exact", width=8, signed=False)).tolist()
    signed_spec = parse("drum4", width=8, signed=True)
    assert signed_spec.model(-97, 1) == -104
    # |-128| = 0b1000_0000 -> bits 7..4 = 1000, bit 4 forced -> 0b1001_0000 = 144.
    assert signed_spec.model(-128, -128) == 144 * 144


def test_drum_is_nearly_unbiased_compared_with_truncation():
    drum = characterize(parse("drum4", width=8, signed=False))
    trunc = characterize(parse("truncated8", width=8, signed=False))
    assert abs(drum.me) < 0.2 * drum.mae
    assert abs(trunc.me) == pytest.approx(trunc.mae)


def test_kulkarni_hand_examples():
    spec = parse("kulkarni", width=4, signed=False)
    assert spec.model(3, 3) == 7
    # 15 = digits (3, 3): 7 + (7 + 7) * 4 + 7 * 16 = 175.
    assert spec.model(15, 15) == 175
    assert spec.model(2, 3) == 6 and spec.model(13, 6) == 78   # no 3x3 digit pair: exact
    # Errors only where some base-4 digit pair is (3, 3); never overestimates.
    full = parse("kulkarni", width=8, signed=False)
    t, exact = full.table(), _exact_grid(full)
    assert np.all(t <= exact)
    assert characterize(full).wcre == pytest.approx(2 / 9)  # published: max error 22.2 %


def test_roba_hand_examples():
    spec = parse("roba", width=8, signed=False)
    # 6 rounds up to 8 (tie 6 = 1.5 * 4 goes up): 8*6 + 6*8 - 64 = 32.
    assert spec.model(6, 6) == 32
    # 5 -> 4, 9 -> 8: 4*9 + 5*8 - 32 = 44 = 45 - (5-4)(9-8).
    assert spec.model(5, 9) == 44
    assert spec.model(16, 77) == 16 * 77          # power of two: exact
    assert spec.model(0, 200) == 0


def test_etm_hand_examples():
    spec = parse("etm4", width=8, signed=False)
    assert spec.model(9, 13) == 117                # both high parts zero: exact
    # 0x35 x 0x21: high parts 3*2 = 6 -> 6 << 8; low parts 5 | 1 = 0b0101 -> k = 2,
    # bits 4+2 .. 0 set -> 127.
    assert spec.model(0x35, 0x21) == (6 << 8) | 127
    assert spec.model(0x30, 0x20) == 6 << 8        # low parts zero: no fill


@pytest.mark.parametrize("name", ALL_NAMES_8)
@pytest.mark.parametrize("signed", [True, False])
def test_models_fit_the_product_width_without_wrapping(name, signed):
    """Sanity of every definition: no 8-bit family leaves the 16-bit product range."""
    spec = parse(name, width=8, signed=signed)
    v = spec.operand_values()
    raw = spec._model(*np.meshgrid(v, v, indexing="ij"))
    lo = -(1 << 15) if signed else 0
    hi = (1 << 15) - 1 if signed else (1 << 16) - 1
    assert raw.min() >= lo and raw.max() <= hi


@pytest.mark.parametrize("name", ["drum4", "mitchell", "kulkarni", "roba", "etm3"])
def test_sign_magnitude_families_are_odd_functions(name):
    spec = parse(name, width=8, signed=True)
    a = np.concatenate([np.arange(-127, 0), np.arange(1, 128)])  # etm(0, b) != 0: no sign
    for b in (1, 5, 77, 127):
        assert np.array_equal(spec.model(-a, b), -spec.model(a, b))
        assert np.array_equal(spec.model(a, b), parse(name, width=8, signed=False).model(
            np.abs(a), b) * np.sign(a))
