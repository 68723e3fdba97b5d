"""Multiplier-library benchmarks (issue: foundation).

Prints time and peak memory of
  1. exhaustive 8-bit characterisation of every family (signed), one row per multiplier;
  2. exhaustive 16-bit characterisation of one family (2^32 pairs, chunked);
  3. the exhaustive 8-bit RTL check (all families, signed + unsigned) on each simulator:
     build time, simulation time and vectors per second.

    python benchmarks/bench_mult.py [--skip16] [--family16 drum8] [--skip-rtl]
"""

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hw.mult import example_names, parse  # noqa: E402
from sim.metrics import characterize  # noqa: E402
from sim.rtlcheck import check_multipliers  # noqa: E402
from sim.tb.runner import why_unavailable  # noqa: E402


def measured(fn):
    tracemalloc.start()
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, seconds, peak / 2 ** 20


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family16", default="drum8", help="family for the 16-bit run")
    ap.add_argument("--skip16", action="store_true")
    ap.add_argument("--skip-rtl", action="store_true")
    args = ap.parse_args()

    print("1) exhaustive 8-bit characterisation (65,536 pairs each, signed)")
    total = 0.0
    for name in example_names(8):
        spec = parse(name, width=8, signed=True)
        _, s, mb = measured(lambda: characterize(spec))
        total += s
        print(f"   {name:14s} {s * 1e3:8.1f} ms   peak {mb:6.1f} MiB")
    print(f"   all {len(example_names(8))} multipliers: {total:.2f} s")

    if not args.skip16:
        spec = parse(args.family16, width=16, signed=True)
        m, s, mb = measured(lambda: characterize(spec, progress=True))
        print(f"2) exhaustive 16-bit characterisation of {spec.full_name}: {m.pairs:,} pairs in "
              f"{s:.1f} s ({m.pairs / s / 1e6:.1f} M pairs/s), peak {mb:.0f} MiB; "
              f"ME={m.me:.4g} MRE={100 * m.mre:.4g}%")

    if not args.skip_rtl:
        specs = [parse(n, width=8, signed=sg) for sg in (True, False) for n in example_names(8)]
        print(f"3) exhaustive 8-bit RTL check, {len(specs)} multipliers x 65,536 pairs")
        for sim in ("verilator", "icarus"):
            reason = why_unavailable(sim)
            if reason:
                print(f"   {sim}: skipped ({reason})")
                continue
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                report = check_multipliers(specs, simulator=sim, workdir=Path(tmp))
                wall = time.perf_counter() - t0
            checked = sum(r["vectors"] for r in report["results"])
            print(f"   {sim:9s} passed={report['passed']}  wall {wall:6.1f} s  "
                  f"simulation {report['seconds']:6.1f} s  "
                  f"{report['vectors_per_second']:,.0f} vectors/s "
                  f"({checked / report['seconds']:,.0f} multiplier-checks/s)")


if __name__ == "__main__":
    main()
