"""Largest accelerator (UART top + array) that fits a board, found by building it.

Method: full builds (Yosys, nextpnr, packer) of :class:`boards.top.BoardTop` for growing arrays:
squares ``2x2, 3x3, ..`` until one fails to place, route or meet the board clock; then the two
shapes between the last good square ``n x n`` and the failed one (``n x (n+1)``,
``(n+1) x n``). A shape *fits* when the bitstream is produced, i.e. the design placed, routed
and met timing at the board clock. The logic-cell counts of the successful builds are also
fitted linearly (``cells = base + per_pe * PEs``) to show the fixed cost of the UART engine and
the cost per PE.

``python -m boards.fit --board icebreaker --mult exact --mult truncated8`` prints one line per
build and a summary per multiplier (``--json`` for machine-readable output).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from hw.cli import (CONVENTIONS, Parser, UsageError, add_force, add_json, integer, run_main,
                    signedness_values, split_mults)
from hw.outputs import check_file, write_file

from .build import (BOARDS, BuildError, add_board_args, array_from_args, build_bitstream,
                    find_board)

__all__ = ["largest_fit", "main"]


def _attempt(board, rows, cols, mult, workdir, opts) -> dict:
    array = array_from_args(rows=rows, cols=cols, mult=mult, **opts["array"])
    out = Path(workdir) / (f"{board}-{rows}x{cols}-" + re.sub(r"[^\w.-]+", "_", mult)[:60])
    record = {"rows": rows, "cols": cols, "pes": rows * cols, "mult": mult}
    try:
        res = build_bitstream(board, array, out_dir=out, progress=False, **opts["build"])
    except BuildError as exc:
        record.update(fits=False, error=str(exc).split(" (log:")[0])
        return record
    finally:
        shutil.rmtree(out, ignore_errors=True)
    cell = BOARDS[board].logic_cell
    (fmax,) = res.fmax_mhz.values() if len(res.fmax_mhz) == 1 else (
        min(res.fmax_mhz.values(), key=lambda f: f["achieved"]),)
    record.update(fits=True, cells=res.utilisation[cell]["used"],
                  available=res.utilisation[cell]["available"],
                  utilisation={k: v["used"] for k, v in res.utilisation.items() if v["used"]},
                  fmax_mhz=round(fmax["achieved"], 1), seconds=round(res.seconds, 1))
    return record


def largest_fit(board: str, mult: str, *, max_dim: int | None = None, workdir=None,
                log=None, **opts) -> dict:
    """Search as described in the module docstring; returns ``{"largest": record, "attempts":
    [...], "linear": {"base": .., "per_pe": .., "capacity_pes": ..}}``."""
    info = BOARDS[board]
    max_dim = max_dim or info.max_dim
    split = {"array": {k: opts[k] for k in ("width", "signed", "acc_width", "overflow")
                       if k in opts},
             "build": {k: opts[k] for k in ("baud", "max_m", "pipeline", "dsp", "seed")
                       if k in opts}}
    attempts = []
    with tempfile.TemporaryDirectory(prefix="fit-", dir=workdir) as tmp:
        def run(r, c):
            rec = _attempt(board, r, c, mult, tmp, split)
            attempts.append(rec)
            if log:
                log(rec)
            return rec["fits"]

        n = 1
        while n + 1 <= max_dim and run(n + 1, n + 1):
            n += 1
        if n + 1 <= max_dim:
            for r, c in ((n, n + 1), (n + 1, n)):
                run(r, c)
    good = [a for a in attempts if a["fits"]]
    largest = max(good, key=lambda a: (a["pes"], -abs(a["rows"] - a["cols"])), default=None)
    linear = None
    if len(good) >= 2:
        pes = np.array([a["pes"] for a in good], dtype=float)
        cells = np.array([a["cells"] for a in good], dtype=float)
        per_pe, base = np.polyfit(pes, cells, 1)
        avail = good[0]["available"]
        linear = {"base_cells": round(base), "cells_per_pe": round(per_pe, 1),
                  "capacity_pes": int((avail - base) // per_pe) if per_pe > 0 else None}
    return {"board": board, "mult": mult, "largest": largest, "attempts": attempts,
            "linear": linear}


def _parser() -> Parser:
    p = Parser(
        prog="python -m boards.fit",
        description="Find the largest array (with the UART top) that fits a board by building "
                    "growing shapes until place & route fails.",
        epilog="examples:\n  python -m boards.fit --board icebreaker --mult exact,truncated8\n"
               "  python -m boards.fit --board ulx3s --mult drum6 --max-dim 8 --json fit.json\n"
               "--mult: each name is searched separately.\n\n" + CONVENTIONS)
    add_board_args(p, mult_required=True,
                   mult_help="multiplier name(s) to compare: NAME[,NAME...] (--mult may be "
                             "repeated)")
    p.add_argument("--max-dim", type=integer(2, 64), default=None,
                   help="largest rows/cols to try, 2.. (the search starts at 2x2; default: "
                        "the board's limit)")
    add_json(p)
    add_force(p)
    return p


def _main(argv) -> int:
    args = _parser().parse_args(argv)
    board = find_board(args.board)
    info = BOARDS[board]
    if args.max_dim is not None and args.max_dim > info.max_dim:
        raise UsageError(f"--max-dim {args.max_dim} is above the {board}'s limit "
                         f"{info.max_dim}")
    if args.json not in (None, "-"):
        check_file(args.json, force=args.force, label=f"--json {args.json}")
    (signed,) = signedness_values(args)
    opts = dict(width=args.width, signed=signed, acc_width=args.acc_width,
                overflow=args.overflow)
    mults = list(dict.fromkeys(split_mults(args.mult)))
    for m in mults:
        array_from_args(rows=1, cols=1, mult=m, **opts)        # bad names: refused now

    def log(rec):
        if rec["fits"]:
            print(f"  {rec['rows']}x{rec['cols']} {rec['mult']}: fits, {rec['cells']}/"
                  f"{rec['available']} cells, Fmax {rec['fmax_mhz']} MHz, {rec['seconds']} s",
                  file=sys.stderr)
        else:
            print(f"  {rec['rows']}x{rec['cols']} {rec['mult']}: does not fit: {rec['error']}",
                  file=sys.stderr)

    results = [largest_fit(board, m, max_dim=args.max_dim, log=log, **opts) for m in mults]
    if args.json is not None:
        text = json.dumps(results, indent=1)
        if args.json == "-":
            print(text)
            return 0
        write_file(args.json, text + "\n", force=args.force)
    for res in results:
        big = res["largest"]
        shape = f"{big['rows']}x{big['cols']}" if big else "nothing"
        extra = ""
        if res["linear"]:
            lin = res["linear"]
            extra = (f"; cells ~ {lin['base_cells']} + {lin['cells_per_pe']} per PE "
                     f"(capacity ~{lin['capacity_pes']} PEs)")
        print(f"{board} {res['mult']}: largest fitting array {shape}{extra}")
    return 0


def main(argv=None) -> int:
    """``python -m boards.fit``; returns the exit status."""
    return run_main("python -m boards.fit", _main, argv)


if __name__ == "__main__":
    sys.exit(main())
