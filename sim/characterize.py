"""Characterise approximate multipliers: ``python -m sim.characterize NAME... [options]``.

Prints EvoApproxLib-style error metrics (see :mod:`sim.metrics`) as an aligned table, Markdown,
JSON or CSV.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np

from hw.cli import (CONVENTIONS, Parser, UsageError, add_force, add_mult, add_seed,
                    add_signedness, add_width, integer, run_main, signedness_values, split_mults)
from hw.mult import MultiplierError, example_names, parse
from hw.mult import __doc__ as GRAMMAR
from hw.outputs import check_file, write_file

from .metrics import FIELDS, characterize

__all__ = ["main", "format_table", "format_markdown", "load_distribution"]

HEADERS = {"name": "name", "me": "ME (bias)", "mae": "MAE", "mse": "MSE", "var": "VAR",
           "wce": "WCE", "ep": "EP %", "mre": "MRE %", "wcre": "WCRE %", "nmed": "NMED %",
           "method": "method"}
PERCENT = {"ep", "mre", "wcre", "nmed"}


def _cells(row: dict) -> list[str]:
    out = []
    for key in HEADERS:
        v = row[key]
        if key in PERCENT:
            out.append(f"{100 * v:.4g}")
        elif key in ("me", "mae", "mse", "var"):
            out.append(f"{v:.6g}")
        else:
            out.append(str(v))
    return out


def format_table(rows: list[dict]) -> str:
    """Aligned plain-text table (numbers right-aligned)."""
    table = [list(HEADERS.values())] + [_cells(r) for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADERS))]
    lines = []
    for r in table:
        lines.append("  ".join(c.ljust(w) if i in (0, len(HEADERS) - 1) else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    return "\n".join(lines)


def format_markdown(rows: list[dict]) -> str:
    head = list(HEADERS.values())
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---" if i in (0, len(head) - 1) else "---:"
                            for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def format_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["name", "width", "signed", *FIELDS, "pairs",
                                             "method"], lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: r[k] for k in writer.fieldnames})
    return buf.getvalue().rstrip("\n")


def load_distribution(path: str) -> np.ndarray:
    """Operand samples or a histogram from ``.npy``, ``.csv`` or whitespace-separated text.
    Raises :class:`MultiplierError` (one line) on a missing or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise MultiplierError(f"distribution file not found (or not a file): {path}")
    try:
        if p.suffix == ".npy":      # mapped first: a header claiming a huge shape costs nothing
            arr = np.array(np.load(p, mmap_mode="r", allow_pickle=False))
        else:
            text = p.read_text().replace(",", " ").split()
            arr = np.array([float(t) for t in text])
            if arr.size and np.all(np.isfinite(arr)) and np.all(np.mod(arr, 1) == 0) \
                    and np.all(np.abs(arr) < 2 ** 62):
                arr = arr.astype(np.int64)
    except (ValueError, OSError, EOFError, UnicodeDecodeError) as exc:
        detail = " ".join(str(exc).split())[:120]
        raise MultiplierError(f"cannot read distribution {path}: {detail}") from None
    return np.ravel(arr)


def build_parser() -> Parser:
    p = Parser(
        prog="python -m sim.characterize",
        description="Error metrics (ME/bias, MAE, MSE, VAR, WCE, EP, MRE, WCRE, NMED) of "
                    "approximate multipliers, exhaustive over all operand pairs up to 12 bit.",
        epilog="examples:\n"
               "  python -m sim.characterize truncated4 truncated4c drum6 --width 8\n"
               "  python -m sim.characterize --mult truncated4,truncated4c,drum6\n"
               "  python -m sim.characterize --all --width 8 --signedness both --csv\n"
               "  python -m sim.characterize drum8 --width 16 --sample 1000000 --seed 3\n"
               "  python -m sim.characterize roba --dist-a acts.npy --dist-b weights.npy\n\n"
               + GRAMMAR + "\n" + CONVENTIONS)
    p.add_argument("names", nargs="*", metavar="NAME", help="multiplier names (grammar below)")
    add_mult(p)
    p.add_argument("--all", action="store_true",
                   help="characterise representative parameters of every family")
    add_width(p)
    add_signedness(p, allow_both=True)
    p.add_argument("--sample", type=integer(1, MAX_SAMPLE), metavar="PAIRS",
                   help=f"draw this many random pairs instead of enumerating all of them "
                        f"(1..{MAX_SAMPLE:.0e})")
    add_seed(p, help="seed for --sample, 0..2^63-1 (default 0)")
    p.add_argument("--dist-a", metavar="FILE",
                   help="distribution of operand a: samples or a 2^N histogram (.npy/.csv/.txt)")
    p.add_argument("--dist-b", metavar="FILE", help="distribution of operand b (as --dist-a)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", nargs="?", const="-", metavar="PATH",
                     help="results as JSON on stdout, or written to PATH")
    fmt.add_argument("--csv", action="store_const", dest="format", const="csv")
    fmt.add_argument("--markdown", action="store_const", dest="format", const="markdown")
    add_force(p)
    return p


#: Largest --sample (10^10 pairs: about half an hour of model evaluation).
MAX_SAMPLE = 10 ** 10


def _main(argv) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    names = list(args.names) + split_mults(args.mult or [])
    if args.json not in (None, "-"):
        check_file(args.json, force=args.force, label=f"--json {args.json}")
    signedness = signedness_values(args)
    if args.all:
        parse("exact", width=args.width)  # validates the width before expanding names
        names += [n for n in example_names(args.width) if n not in names]
    if not names:
        raise UsageError("give at least one multiplier NAME (or --mult LIST, or --all)")
    names = list(dict.fromkeys(names))
    specs = [parse(n, width=args.width, signed=s) for s in signedness for n in names]
    if args.width > 12 and args.sample is None:
        print(f"note: exhaustive {args.width}-bit run enumerates 2^{2 * args.width} pairs "
              "per multiplier; use --sample PAIRS for a quick estimate", file=sys.stderr)
    dist_a = load_distribution(args.dist_a) if args.dist_a else None
    dist_b = load_distribution(args.dist_b) if args.dist_b else None
    rows = []
    for spec in specs:
        m = characterize(spec, dist_a=dist_a, dist_b=dist_b, sample=args.sample,
                         seed=args.seed, progress=True)
        rows.append(m.as_dict())
    if args.sample is not None:
        print(f"sampled {args.sample} pairs per multiplier, seed {args.seed}", file=sys.stderr)
    if args.json is not None:
        text = json.dumps(rows, indent=1)
        if args.json == "-":
            print(text)
        else:
            write_file(args.json, text + "\n", force=args.force)
    elif args.format == "csv":
        print(format_csv(rows))
    elif args.format == "markdown":
        print(format_markdown(rows))
    else:
        for signed in signedness:
            print(f"{args.width}-bit {'signed' if signed else 'unsigned'} multipliers")
            print(format_table([r for r in rows if r["signed"] == signed]))
    return 0


def main(argv=None) -> int:
    """``python -m sim.characterize``; returns the exit status."""
    return run_main("python -m sim.characterize", _main, argv)


if __name__ == "__main__":
    sys.exit(main())
