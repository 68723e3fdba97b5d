"""Timings of hw.cost (prints figures for BENCHMARKS.md; not a test).

    python benchmarks/bench_cost.py            # fresh cache in a temp folder
    python benchmarks/bench_cost.py --cold     # also time the YoWASP JIT compilation (slow)

Figures: seconds per Yosys synthesis (8-bit exact multiplier, each target), per nextpnr run
(iCE40UP5K, ECP5-85F), per 2x2-array synthesis, and a cached rerun of all of them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from hw.cost import Cache, array, multiplier, place_and_route, synthesize, tools
from hw.mult import parse


def timed(label, fn):
    t0 = time.perf_counter()
    result = fn()
    dt = time.perf_counter() - t0
    print(f"{label:48s} {dt:8.2f} s")
    return result, dt


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cold", action="store_true",
                    help="time each tool's first start with an empty YoWASP JIT cache")
    args = ap.parse_args()
    if args.cold:
        with tempfile.TemporaryDirectory() as jit:
            env = {**os.environ, "YOWASP_CACHE_DIR": jit}
            for name in tools.TOOL_NAMES:
                tool = tools.find_tool(name)
                flag = "-V" if name == "yosys" else "--version"
                timed(f"cold start (JIT compile) {name}",
                      lambda: subprocess.run([*tool.argv, flag], env=env, capture_output=True))
    spec = parse("exact", width=8, signed=True)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Cache(tmp)
        jobs = [(f"synth {t} 8-bit exact", lambda t=t: synthesize(multiplier(spec), t,
                                                                    cache=cache))
                for t in ("ice40", "ecp5", "gate")]
        jobs += [(f"pnr {d} 8-bit exact (harness)",
                  lambda d=d: place_and_route(multiplier(spec), d, cache=cache))
                 for d in ("up5k", "ecp5-85f")]
        jobs += [("synth ice40 2x2 ws array", lambda: synthesize(array(spec, 2, 2), "ice40",
                                                                   cache=cache))]
        total = 0.0
        for label, fn in jobs:
            total += timed(label, fn)[1]
        print(f"{'total, fresh cache':48s} {total:8.2f} s")
        t0 = time.perf_counter()
        for _, fn in jobs:
            assert fn().cached
        print(f"{'total, cached rerun':48s} {time.perf_counter() - t0:8.2f} s")
    print(f"python {sys.version.split()[0]}; " + "; ".join(
        tools.tool_version(tools.find_tool(n)) for n in tools.TOOL_NAMES))


if __name__ == "__main__":
    main()
