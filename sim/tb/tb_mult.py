"""cocotb testbench: drive operand vectors through a :class:`MultiplierBank` and compare every
lane of every multiplier with its numpy reference model.

Config (``AXM_TB_CONFIG``): ``groups``, one per operand width, each with ``width``, ``lanes``,
``vectors`` (path of an ``.npz`` with int64 arrays ``a`` and ``b`` of raw ``width``-bit patterns,
which each multiplier reads with its own signedness) and ``members`` (list of ``[port index,
name, signed]``); plus ``report``. The report lists, per multiplier, the vectors checked and the
first mismatches.
"""

import time

import cocotb
import numpy as np
from cocotb.triggers import Timer

from hw.mult import parse, wrap_to_width
from sim.tb.harness import pack_lanes, unpack_lanes
from sim.tb.runner import testbench_config, write_report

MAX_REPORTED = 10
X_VALUE = -1  # marks an output that read as X/Z (never equal to a packed product)


def _reader(port):
    """A fast raw reader of a port: the simulator's binary string turned into an int (skipping
    cocotb's LogicArray construction, which dominates Verilator runs); X/Z -> ``X_VALUE``."""
    raw = getattr(getattr(port, "_handle", None), "get_signal_val_binstr", None)

    def read():
        try:
            return int(raw(), 2) if raw else port.value.to_unsigned()
        except ValueError:
            return X_VALUE
    return read


def _members(group):
    """``[(port index, spec)]`` of a group (parsing an imported netlist runs Yosys: done before
    the timed part)."""
    return [(k, parse(name, width=group["width"], signed=sgn))
            for k, name, sgn in group["members"]]


async def _drive_group(dut, group, members):
    width, lanes = group["width"], group["lanes"]
    vectors = np.load(group["vectors"])
    a, b = vectors["a"], vectors["b"]
    count = len(a)
    pad = (-count) % lanes
    a_pad = np.concatenate([a, np.zeros(pad, dtype=np.int64)])
    b_pad = np.concatenate([b, np.zeros(pad, dtype=np.int64)])
    a_port, b_port = getattr(dut, f"a{width}"), getattr(dut, f"b{width}")
    readers = [_reader(getattr(dut, f"p{k}")) for k, _ in members]
    words = [[] for _ in members]
    for lo in range(0, len(a_pad), lanes):
        a_port.value = pack_lanes(a_pad[lo:lo + lanes], width)
        b_port.value = pack_lanes(b_pad[lo:lo + lanes], width)
        await Timer(1, "ns")
        for i, read in enumerate(readers):
            words[i].append(read())
    results, mismatches = [], []
    for (k, spec), w in zip(members, words):
        unknown = np.repeat(np.array(w) == X_VALUE, lanes)[:count]
        got = unpack_lanes([max(x, 0) for x in w], lanes, 2 * width, spec.signed)[:count]
        got[unknown] = X_VALUE << 40  # X/Z never matches a model value
        sa, sb = wrap_to_width(a, width, spec.signed), wrap_to_width(b, width, spec.signed)
        want = spec.model(sa, sb)
        bad = np.nonzero(got != want)[0]
        results.append({"name": spec.full_name, "vectors": int(count),
                        "mismatches": int(len(bad))})
        for i in bad[:MAX_REPORTED]:
            mismatches.append({"name": spec.full_name, "a": int(sa[i]), "b": int(sb[i]),
                               "rtl": int(got[i]), "model": int(want[i])})
    return count, results, mismatches


@cocotb.test()
async def multipliers_match_models(dut):
    cfg = testbench_config()
    results, mismatches, vectors = [], [], 0
    members = [_members(group) for group in cfg["groups"]]
    start = time.perf_counter()
    for group, mine in zip(cfg["groups"], members):
        count, res, bad = await _drive_group(dut, group, mine)
        vectors += count
        results += res
        mismatches += bad
    elapsed = time.perf_counter() - start
    write_report(cfg, {"results": results, "mismatches": mismatches, "vectors": vectors,
                       "seconds": elapsed, "vectors_per_second": vectors / max(elapsed, 1e-9)})
    assert not mismatches, f"RTL differs from the model: {mismatches[:3]}"
