"""Network performance / energy model figures (``sim.perf``) and how long the model takes.

For each network and array (default: ResNet-18 and MobileNetV2 on 16x16 ws and os arrays,
exact 8-bit signed multiplier, SCALE-Sim's default SRAM sizes 256/256/128 KiB): cycles of the
array's overlapped schedule, SCALE-Sim v2's compute cycles for the same layers, utilisation,
DRAM traffic and energy per inference, per MAC and per multiplication, and the wall time of
the model (cycles + traffic only, and with energy; the energy run's multiplier netlists come
from the cache after the first run, which is timed separately as ``first``).

    python benchmarks/bench_perf.py
    python benchmarks/bench_perf.py --models resnet50 --sizes 32 --mult exact truncated4
    python benchmarks/bench_perf.py --json perf.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hw.cache import Cache  # noqa: E402
from sim.perf import ArraySpec, Buffers, builtin_layers  # noqa: E402
from sim.perf.energy import network_operands  # noqa: E402
from sim.perf.model import Target, evaluate  # noqa: E402


def _timed(fn, reps):
    best, out = float("inf"), None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet18", "mobilenet-v2"])
    p.add_argument("--sizes", nargs="+", type=int, default=[16])
    p.add_argument("--dataflows", nargs="+", default=["ws", "os"])
    p.add_argument("--mult", nargs="+", default=["exact"])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    cache = Cache()
    t0 = time.perf_counter()
    operands = network_operands("digits-cnn")
    print(f"int8 operand traces (digits-cnn, 8 images): {time.perf_counter() - t0:.2f} s")
    rows = []
    print("| network | array | cycles | SCALE-Sim cycles | utilisation | bubbles | DRAM MB | "
          "energy / inference | pJ / MAC | multiplier pJ / op | model time (no energy / "
          "energy) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.models:
        layers = builtin_layers(name)
        for size in args.sizes:
            for dataflow in args.dataflows:
                target = Target(ArraySpec(size, size, dataflow), Buffers())
                t_fast, fast = _timed(lambda: evaluate(layers, target, energy=False,
                                                       scalesim=True, name=name), args.reps)
                run = lambda: evaluate(layers, target, mults=args.mult, operands=operands,  # noqa: E731
                                       trace_label="network (digits-cnn operands, stand-in)",
                                       scalesim=True, cache=cache, name=name)
                t_first, _ = _timed(run, 1)
                t_energy, rep = _timed(run, args.reps)
                t = rep["totals"]
                m = rep["multipliers"][0]
                bubbles = (t["cycles"] - t["stall_free_cycles"]) / t["cycles"]
                row = {"network": name, "array": f"{size}x{size} {dataflow}",
                       "macs": t["macs"], "cycles": t["cycles"],
                       "scalesim_cycles": t["scalesim_cycles"],
                       "utilisation": t["overall_util"], "bubble_share": bubbles,
                       "dram_bytes": t["dram_bytes"], "energy_uj": t["energy_pj"]["total"] / 1e6,
                       "energy_pj": t["energy_pj"], "pj_per_mac": t["energy_per_mac_pj"],
                       "multiplier_pj": m["pj"], "comparison": rep["comparison"],
                       "seconds_no_energy": t_fast, "seconds_energy": t_energy,
                       "seconds_energy_first": t_first}
                rows.append(row)
                print(f"| {name} | {row['array']} | {t['cycles']:,} | "
                      f"{t['scalesim_cycles']:,} | {t['overall_util']:.3f} | "
                      f"{100 * bubbles:.1f} % | {t['dram_bytes'] / 1e6:.2f} | "
                      f"{row['energy_uj']:.1f} uJ | {t['energy_per_mac_pj']:.3f} | "
                      f"{m['pj']:.4f} | {t_fast * 1e3:.0f} ms / {t_energy * 1e3:.0f} ms |",
                      flush=True)
                if len(args.mult) > 1:
                    for c in rep["comparison"]:
                        print(f"|   {c['multiplier']} | | | | | | | | {c['pj_per_mac']:.3f} | "
                              f"{c['multiplier_pj']:.4f} | |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
