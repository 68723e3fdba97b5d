"""The multiplier power proxy (hw.cost.power) against published post-layout power figures.

EvoApproxLib (https://github.com/ehw-fit/evoapproxlib) ships each circuit with its power on the
45 nm PDK in the file header (``// PDK45_PWR = 0.425 mW``). This script runs the toolkit's
proxy on those circuits (the generic Verilog files, synthesised to Yosys' generic gates exactly
as the toolkit's own multipliers are, simulated on uniform random operands with both operands
changing every step, unit gate delays) and compares: proxy energy per operation and its ratio
to the library's exact circuit, the published power and its ratio, and Spearman's rank
correlation between the two. Absolute values are not comparable (the library does not state
the clock or switching activity behind its mW figures); ratios and ranks are.

    python benchmarks/bench_power_proxy.py EVOAPPROX/multiplers/8x8_signed/pareto_pwr_mae/*.v
    python benchmarks/bench_power_proxy.py --unsigned EVOAPPROX/multiplers/8x8_unsigned/pareto_pwr_mae/*.v

Files ending in ``_pdk45.v`` (mapped to the PDK's cells) are skipped: the generic versions
describe the same circuits.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hw.cache import Cache  # noqa: E402
from hw.cost.power import UNIT_CAPACITANCE_FF, VDD, GateNetlist, netlist_json  # noqa: E402


def _spearman(x, y) -> float:
    rx = np.argsort(np.argsort(x)).astype(float)
    ry = np.argsort(np.argsort(y)).astype(float)
    return float(np.corrcoef(rx, ry)[0, 1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--unsigned", action="store_true", help="operands are unsigned (mul8u_*)")
    p.add_argument("--pairs", type=int, default=8192, help="operand pairs simulated")
    p.add_argument("--delay", choices=("unit", "zero"), default="unit")
    args = p.parse_args(argv)
    cache = Cache()
    lo, hi = (0, 255) if args.unsigned else (-128, 127)
    rng = np.random.default_rng(0)
    values = {"A": rng.integers(lo, hi + 1, args.pairs), "B": rng.integers(lo, hi + 1,
                                                                           args.pairs)}
    rows = []
    for path in sorted(args.files):
        if path.name.endswith("_pdk45.v"):
            continue
        text = path.read_text()
        pwr = re.search(r"PDK45_PWR\s*=\s*([0-9.]+)\s*mW", text)
        area = re.search(r"PDK45_AREA\s*=\s*([0-9.]+)", text)
        mae = re.search(r"MAE%\s*=\s*([0-9.]+)", text)
        module = re.search(r"^module\s+(\w+)", text, re.M).group(1)
        t0 = time.perf_counter()
        verilog = re.sub(rf"^module\s+{module}\b", "module top", text, count=1, flags=re.M)
        net = GateNetlist(netlist_json(verilog, path.name, cache=cache))
        counts, n = net.toggles(values, delay=args.delay)
        fj = float((counts * net.capacitance_units).sum()) * 0.5 * UNIT_CAPACITANCE_FF \
            * VDD * VDD / n
        rows.append({"name": module, "pdk45_mw": float(pwr.group(1)) if pwr else None,
                     "pdk45_um2": float(area.group(1)) if area else None,
                     "mae_percent": float(mae.group(1)) if mae else None, "proxy_fj": fj,
                     "gates": sum(net.cells.values()), "seconds": time.perf_counter() - t0})
    rows = [r for r in rows if r["pdk45_mw"] is not None]
    exact = min(rows, key=lambda r: r["mae_percent"])
    print("| circuit | MAE % | PDK45 power (mW) | relative | proxy (fJ/op) | relative | "
          "PDK45 area (um^2) | gates |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in sorted(rows, key=lambda r: -r["pdk45_mw"]):
        print(f"| {r['name']} | {r['mae_percent']:g} | {r['pdk45_mw']:.3f} | "
              f"{r['pdk45_mw'] / exact['pdk45_mw']:.2f} | {r['proxy_fj']:.1f} | "
              f"{r['proxy_fj'] / exact['proxy_fj']:.2f} | {r['pdk45_um2']:g} | {r['gates']} |")
    rho = _spearman([r["pdk45_mw"] for r in rows], [r["proxy_fj"] for r in rows])
    rho_area = _spearman([r["pdk45_um2"] for r in rows], [r["proxy_fj"] for r in rows])
    print(f"\nSpearman rank correlation, proxy energy vs PDK45 power: {rho:.3f} "
          f"(vs PDK45 area: {rho_area:.3f}); {len(rows)} circuits, {args.pairs} operand pairs, "
          f"{args.delay} delay; {sum(r['seconds'] for r in rows):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
