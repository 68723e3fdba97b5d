"""cocotb testbench: drive operand vectors through a :class:`MultiplierBank` and compare every
lane of every multiplier with its numpy reference model.

Config (``AXM_TB_CONFIG``): ``names`` (multiplier names), ``width``, ``signed``, ``lanes``,
``vectors`` (path of an ``.npz`` with int64 arrays ``a`` and ``b``), ``report``.
The report lists, per multiplier, the number of vectors checked and the first mismatches.
"""

import time

import cocotb
import numpy as np
from cocotb.triggers import Timer

from hw.mult import parse
from sim.tb.harness import pack_lanes, unpack_lanes
from sim.tb.runner import testbench_config, write_report

MAX_REPORTED = 10


@cocotb.test()
async def multipliers_match_models(dut):
    cfg = testbench_config()
    width, is_signed, lanes = cfg["width"], cfg["signed"], cfg["lanes"]
    specs = [parse(n, width=width, signed=is_signed) for n in cfg["names"]]
    vectors = np.load(cfg["vectors"])
    a, b = vectors["a"], vectors["b"]
    count = len(a)
    pad = (-count) % lanes
    a_pad = np.concatenate([a, np.zeros(pad, dtype=np.int64)])
    b_pad = np.concatenate([b, np.zeros(pad, dtype=np.int64)])
    ports = [getattr(dut, f"p{k}") for k in range(len(specs))]
    got = np.zeros((len(specs), len(a_pad)), dtype=np.int64)
    start = time.perf_counter()
    for lo in range(0, len(a_pad), lanes):
        dut.a.value = pack_lanes(a_pad[lo:lo + lanes], width)
        dut.b.value = pack_lanes(b_pad[lo:lo + lanes], width)
        await Timer(1, "ns")
        for k, port in enumerate(ports):
            got[k, lo:lo + lanes] = unpack_lanes(port.value.to_unsigned(), lanes, 2 * width,
                                                 is_signed)
    elapsed = time.perf_counter() - start
    results, mismatches = [], []
    for k, spec in enumerate(specs):
        want = spec.model(a, b)
        bad = np.nonzero(got[k, :count] != want)[0]
        results.append({"name": spec.name, "vectors": int(count), "mismatches": int(len(bad))})
        for i in bad[:MAX_REPORTED]:
            mismatches.append({"name": spec.name, "a": int(a[i]), "b": int(b[i]),
                               "rtl": int(got[k, i]), "model": int(want[i])})
    write_report(cfg, {"results": results, "mismatches": mismatches, "vectors": int(count),
                       "seconds": elapsed, "vectors_per_second": count / max(elapsed, 1e-9)})
    assert not mismatches, f"RTL differs from the model: {mismatches[:3]}"
