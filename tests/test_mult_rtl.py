"""Every multiplier circuit, bit-exact against its reference model on Verilator and on Icarus.

One Verilog build per simulator holds every family, signed and unsigned, at 4, 8, 12 and 16 bits
(two parameterisations per family at 4 and 8 bits, one at 12 and 16). 4- and 8-bit multipliers
are checked on all 2^(2N) operand pairs; 12- and 16-bit ones on every pair of corner operands
plus seeded random pairs: 100,000 on Verilator, RANDOM_PAIRS["icarus"] on Icarus (an
event-driven simulator, ~20x slower on these netlists; it is the second, independent simulator).
"""

import pytest

from hw.mult import example_names, parse
from sim.rtlcheck import check_multipliers, corner_operands
from sim.tb.runner import why_unavailable

WIDTHS = (4, 8, 12, 16)
PER_FAMILY = {4: None, 8: None, 12: 1, 16: 1}
RANDOM_PAIRS = {"verilator": 100_000, "icarus": 20_000}
SPECS = [parse(name, width=w, signed=s) for w in WIDTHS for s in (True, False)
         for name in example_names(w, per_family=PER_FAMILY[w])]


pytestmark = pytest.mark.rtl


@pytest.fixture(scope="class")
def report(request, tmp_path_factory):
    simulator, widths = request.cls.simulator, request.cls.widths
    reason = why_unavailable(simulator)
    if reason:
        pytest.skip(reason)
    specs = [s for s in SPECS if s.width in widths]
    return check_multipliers(specs, simulator=simulator, random_pairs=RANDOM_PAIRS[simulator],
                             workdir=tmp_path_factory.mktemp(f"rtl-{simulator}"))


class _BankChecks:
    """One simulator run of a bank (a class per simulator and width group, so that
    pytest-xdist's ``--dist loadscope`` can run them on different workers)."""

    simulator = ""
    widths = WIDTHS

    def test_bank_ran_and_every_multiplier_matches(self, report):
        assert report["simulator"] == self.simulator
        assert report["passed"], report["mismatches"][:5]
        assert [r["name"] for r in report["results"]] == [s.full_name for s in sorted(
            (s for s in SPECS if s.width in self.widths), key=lambda s: s.width)]

    def test_coverage_per_width(self, report):
        for width in self.widths:
            rows = [r for r in report["results"]
                    if r["name"].endswith((f"@{width}s", f"@{width}u"))]
            assert len(rows) == 2 * len(example_names(width, per_family=PER_FAMILY[width]))
            if width <= 8:
                assert report["coverage"][width] == "exhaustive"
                assert all(r["vectors"] == 1 << (2 * width) for r in rows)
            else:
                corners = len(set(corner_operands(width, True) & ((1 << width) - 1))
                              | set(corner_operands(width, False)))
                assert all(r["vectors"] == RANDOM_PAIRS[self.simulator] + corners ** 2
                           for r in rows)
            assert all(r["mismatches"] == 0 for r in rows)


class TestVerilator(_BankChecks):
    simulator = "verilator"


class TestIcarusNarrow(_BankChecks):
    """Icarus is the slow simulator: its bank is split in two builds of similar run time."""
    simulator = "icarus"
    widths = (4, 8)


class TestIcarusWide(_BankChecks):
    simulator = "icarus"
    widths = (12, 16)


def test_both_icarus_banks_cover_every_width():
    assert sorted(TestIcarusNarrow.widths + TestIcarusWide.widths) == sorted(WIDTHS)


def test_corner_operands_include_the_extremes():
    c = set(corner_operands(8, True).tolist())
    assert {0, 1, -1, 127, -128, 64, -64}.issubset(c)
    assert {0, 1, 255, 128}.issubset(set(corner_operands(8, False).tolist()))
