"""MAC unit (hw.mac): cycle-by-cycle against the golden model sim.golden.mac/accumulate.

The RTL of the same datapath (MultiplyAdd inside every PE) is checked on Verilator and Icarus by
tests/test_array_rtl.py; here the stand-alone MAC runs in Amaranth's simulator.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.mac import MAC, MultiplyAdd, check_mac_params
from hw.mult import parse
from sim.golden import accumulate, mac as golden_mac

CONFIGS = [
    # (multiplier, width, signed, acc_width, overflow, pipeline)
    ("exact", 8, True, 32, "wrap", False),
    ("truncated4c", 8, True, 16, "saturate", True),
    ("bam2_6", 8, True, 17, "wrap", False),
    ("drum4", 8, False, 17, "saturate", False),
    ("mitchell", 6, False, 12, "wrap", True),
    ("etm4", 12, True, 26, "saturate", False),
]


def _stimulus(spec, acc_width, cycles, seed):
    """Operands biased to the range ends so that the accumulator hits its limits often."""
    rng = np.random.default_rng(seed)
    lo, hi = spec.operand_range
    a = rng.integers(lo, hi + 1, cycles)
    b = rng.integers(lo, hi + 1, cycles)
    ends = rng.random(cycles) < 0.6
    a[ends] = lo if spec.signed else hi
    b[ends] = np.where(rng.random(ends.sum()) < 0.7, lo if spec.signed else hi, hi)
    valid = rng.random(cycles) < 0.8
    clear = rng.random(cycles) < 0.04
    return a, b, valid, clear


def _reference(spec, a, b, valid, clear, acc_width, overflow):
    """Accumulator value after each cycle, from sim.golden.accumulate."""
    acc, out = 0, []
    for ai, bi, v, c in zip(a, b, valid, clear):
        if v:
            acc = int(accumulate(0 if c else acc, spec.model(ai, bi), acc_width, overflow))
        elif c:
            acc = 0
        out.append(acc)
    return out


@pytest.mark.parametrize("name,width,is_signed,acc_width,overflow,pipeline", CONFIGS)
def test_mac_matches_golden_accumulation(name, width, is_signed, acc_width, overflow, pipeline):
    spec = parse(name, width=width, signed=is_signed)
    dut = MAC(spec, acc_width=acc_width, overflow=overflow, pipeline=pipeline)
    assert dut.latency == (2 if pipeline else 1)
    cycles = 400
    a, b, valid, clear = _stimulus(spec, acc_width, cycles, seed=width + acc_width)
    want = _reference(spec, a, b, valid, clear, acc_width, overflow)
    got = []

    async def bench(ctx):
        for i in range(cycles + dut.latency):
            j = min(i, cycles - 1)
            ctx.set(dut.a, int(a[j]))
            ctx.set(dut.b, int(b[j]))
            ctx.set(dut.valid, int(valid[j]) if i < cycles else 0)
            ctx.set(dut.clear, int(clear[j]) if i < cycles else 0)
            await ctx.tick()
            got.append(ctx.get(dut.acc))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # acc after the operands of cycle i have been added: `latency` ticks later
    assert got[dut.latency - 1:dut.latency - 1 + cycles] == want
    if acc_width < 30:  # the overflow rule must have mattered
        assert want != _reference(spec, a, b, valid, clear, 62, overflow)


@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_multiply_add_at_the_limits(overflow):
    """Combinational datapath: acc_in at and next to both limits, every operand corner."""
    spec = parse("truncated4c", width=8, signed=True)
    acc_width = 18
    dut = MultiplyAdd(spec, acc_width=acc_width, overflow=overflow)
    lim = 1 << (acc_width - 1)
    accs = [-lim, -lim + 1, -lim + 20000, -1, 0, 1, lim - 20000, lim - 2, lim - 1]
    corners = [-128, -127, -1, 0, 1, 126, 127]
    cases = [(acc, x, y) for acc in accs for x in corners for y in corners]
    got = []

    async def bench(ctx):
        for acc, x, y in cases:
            ctx.set(dut.acc_in, acc)
            ctx.set(dut.a, x)
            ctx.set(dut.b, y)
            got.append(ctx.get(dut.acc_out))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    want = [int(golden_mac(spec, acc, x, y, acc_width, overflow)) for acc, x, y in cases]
    assert got == want
    if overflow == "saturate":
        assert lim - 1 in got and -lim in got


def test_mac_parameter_errors():
    spec = parse("exact", width=8)
    with pytest.raises(ValueError, match="narrower|must be in 16"):
        MAC(spec, acc_width=15)
    with pytest.raises(ValueError, match="overflow mode"):
        MAC(spec, overflow="clamp")
    with pytest.raises(TypeError, match="integer"):
        MAC(spec, acc_width=32.5)
    with pytest.raises(TypeError, match="MultiplierSpec"):
        MultiplyAdd("exact")
    assert check_mac_params(spec, 16, "wrap") == 16
