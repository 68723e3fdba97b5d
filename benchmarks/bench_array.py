"""Systolic-array generator and RTL simulation figures.

1. Generation (``hw.gen.generate``: elaboration, Verilog emission, multiplier metrics) for
   4x4, 16x16 and 32x32 arrays, both dataflows: wall time (best of ``--reps``) and the size of
   the Verilog file.
2. Simulated clock cycles per second of a 16x16 weight-stationary array driven by the cocotb
   testbench (sim/tb/tb_array.py, ``stream`` scenario: one gap-free stream of activation
   vectors, results checked against sim.golden) under Verilator and Icarus, plus the build time.
   The figure includes cocotb's per-cycle Python overhead, which dominates for small arrays.

    python benchmarks/bench_array.py
    python benchmarks/bench_array.py --mult truncated4 --vectors 4000 --sim verilator
    python benchmarks/bench_array.py --no-sim --sizes 4 16 32 64
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hw.gen import generate  # noqa: E402
from sim.arraycheck import prepare_harness, run_harness  # noqa: E402
from sim.tb.runner import SIMULATORS, why_unavailable  # noqa: E402


def bench_generation(sizes, mult, reps):
    rows = []
    for dataflow in ("ws", "os"):
        for n in sizes:
            best, size = float("inf"), 0
            for _ in range(reps):
                t0 = time.perf_counter()
                gen = generate(rows=n, mult=mult, dataflow=dataflow)
                best = min(best, time.perf_counter() - t0)
                size = len(gen.verilog.encode())
            rows.append({"dataflow": dataflow, "size": f"{n}x{n}", "seconds": best,
                         "verilog_bytes": size})
            print(f"generate {dataflow} {n:>2}x{n:<2} {mult:<12} {best:7.2f} s  "
                  f"{size / 1e3:9.1f} kB Verilog", flush=True)
    return rows


def bench_simulation(simulators, mult, vectors, workdir):
    design = dict(rows=16, cols=16, mult=mult, scenarios=["stream"], stream_length=vectors)
    harness = prepare_harness([design], workdir)
    rows = []
    for sim in simulators:
        reason = why_unavailable(sim)
        if reason:
            print(f"{sim}: skipped ({reason})")
            continue
        t0 = time.perf_counter()
        report = run_harness(harness, sim, workdir)
        total = time.perf_counter() - t0
        res = report["units"][0]["results"][0]
        row = {"simulator": sim, "passed": report["passed"], "cycles": res["sim_cycles"],
               "cycles_per_second": res["sim_cycles_per_second"],
               "build_and_run_seconds": total}
        rows.append(row)
        print(f"simulate 16x16 ws {mult} on {sim:<9}: {row['cycles_per_second']:8.0f} cycles/s "
              f"over {row['cycles']} cycles (results {'match' if row['passed'] else 'DIFFER'}); "
              f"build + run {total:.1f} s", flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[4, 16, 32])
    p.add_argument("--mult", default="exact")
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--vectors", type=int, default=2000, help="activation vectors streamed")
    p.add_argument("--sim", nargs="+", choices=SIMULATORS, default=list(SIMULATORS))
    p.add_argument("--no-sim", action="store_true", help="generation figures only")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    figures = {"generation": bench_generation(args.sizes, args.mult, args.reps)}
    if not args.no_sim:
        with tempfile.TemporaryDirectory(prefix="bench_array_") as tmp:
            figures["simulation"] = bench_simulation(args.sim, args.mult, args.vectors,
                                                     Path(tmp))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0 if all(r["passed"] for r in figures.get("simulation", [])) else 1


if __name__ == "__main__":
    sys.exit(main())
