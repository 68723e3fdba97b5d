"""Timings of bring-your-own multipliers (prints figures for BENCHMARKS.md; not a test).

    python benchmarks/bench_import_mult.py               # 8-bit, fresh cache in a temp folder
    python benchmarks/bench_import_mult.py --width 12    # exhaustive 2^24-pair derivation

Figures: ``verilog:`` table derivation with Verilator (first ever: also builds the cached
Verilator runtime objects; then a new netlist; then a cache hit), and ``table:`` loading (.npy,
.csv) and ROM Verilog generation (:func:`hw.mult.table.rom_verilog`) with its size.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hw.mult import parse  # noqa: E402
from hw.mult import table as table_mod  # noqa: E402
from hw.mult import verilog_import  # noqa: E402


def timed(label, fn):
    t0 = time.perf_counter()
    result = fn()
    print(f"{label:58s} {time.perf_counter() - t0:8.3f} s")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=8, help="operand width N (4..12)")
    args = parser.parse_args(argv)
    n = args.width
    if not 4 <= n <= 12:
        parser.error("--width must be in 4..12")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["AXM_CACHE_DIR"] = str(tmp / "cache")
        for i, name in enumerate(("first", "second")):
            (tmp / f"{name}.v").write_text(
                f"module m{i}(input [{n - 1}:0] A, B, output [{2 * n - 1}:0] O);\n"
                f"  assign O = A * B + {i} - {i};\nendmodule\n")
        timed(f"derive {n}-bit table, empty cache (builds runtime)",
              lambda: parse(f"verilog:{tmp / 'first.v'}", width=n, signed=False))
        timed(f"derive {n}-bit table, another netlist",
              lambda: parse(f"verilog:{tmp / 'second.v'}", width=n, signed=False))
        verilog_import._TABLES.clear()
        verilog_import._ANALYSES.clear()
        spec = timed(f"parse {n}-bit netlist, table cached on disk (Yosys check)",
                     lambda: parse(f"verilog:{tmp / 'second.v'}", width=n, signed=False))
        assert (spec.table() == parse("exact", width=n, signed=False).table()).all()

        values = parse("drum4" if n >= 4 else "exact", width=n, signed=True).table()
        np.save(tmp / "t.npy", values)
        np.savetxt(tmp / "t.csv", values, fmt="%d", delimiter=",")
        timed(f"load {n}-bit table (.npy)", lambda: parse(f"table:{tmp / 't.npy'}", width=n))
        tspec = timed(f"load {n}-bit table (.csv)", lambda: parse(f"table:{tmp / 't.csv'}",
                                                                   width=n))
        table_mod._ROM_VERILOG.clear()
        text = timed(f"generate {n}-bit ROM Verilog", lambda: tspec.extra_verilog())
        size = sum(len(t) for t in text.values())
        print(f"{'ROM Verilog size':58s} {size / 1e6:8.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
