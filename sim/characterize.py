"""Characterise approximate multipliers: ``python -m sim.characterize NAME... [options]``.

Prints EvoApproxLib-style error metrics (see :mod:`sim.metrics`) as an aligned table, Markdown,
JSON or CSV.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

import numpy as np

from hw.mult import MultiplierError, example_names, parse
from hw.mult import __doc__ as GRAMMAR

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
    """Operand samples or a histogram from ``.npy``, ``.csv`` or whitespace-separated text."""
    p = Path(path)
    if not p.is_file():
        raise MultiplierError(f"distribution file not found: {path}")
    try:
        if p.suffix == ".npy":
            arr = np.load(p, allow_pickle=False)
        else:
            text = p.read_text().replace(",", " ").split()
            arr = np.array([float(t) for t in text])
            if np.all(np.mod(arr, 1) == 0):
                arr = arr.astype(np.int64)
    except (ValueError, OSError) as exc:
        raise MultiplierError(f"cannot read distribution {path}: {exc}") from None
    return np.ravel(arr)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m sim.characterize",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Error metrics (ME/bias, MAE, MSE, VAR, WCE, EP, MRE, WCRE, NMED) of "
                    "approximate multipliers, exhaustive over all operand pairs up to 12 bit.",
        epilog="examples:\n"
               "  python -m sim.characterize truncated4 truncated4c drum6 --width 8\n"
               "  python -m sim.characterize --all --width 8 --unsigned --csv\n"
               "  python -m sim.characterize drum8 --width 16 --sample 1000000 --seed 3\n"
               "  python -m sim.characterize roba --dist-a acts.npy --dist-b weights.npy\n\n"
               + GRAMMAR)
    p.add_argument("names", nargs="*", metavar="NAME", help="multiplier names (grammar below)")
    p.add_argument("--all", action="store_true",
                   help="characterise representative parameters of every family")
    p.add_argument("--width", type=int, default=8, help="operand width N, 4..16 (default 8)")
    sign = p.add_mutually_exclusive_group()
    sign.add_argument("--signed", dest="signed", action="store_true", default=True,
                      help="two's-complement operands (default)")
    sign.add_argument("--unsigned", dest="signed", action="store_false", help="unsigned operands")
    p.add_argument("--sample", type=int, metavar="PAIRS",
                   help="draw this many random pairs instead of enumerating all of them")
    p.add_argument("--seed", type=int, default=0, help="seed for --sample (default 0)")
    p.add_argument("--dist-a", metavar="FILE",
                   help="distribution of operand a: samples or a 2^N histogram (.npy/.csv/.txt)")
    p.add_argument("--dist-b", metavar="FILE", help="distribution of operand b (as --dist-a)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_const", dest="format", const="json")
    fmt.add_argument("--csv", action="store_const", dest="format", const="csv")
    fmt.add_argument("--markdown", action="store_const", dest="format", const="markdown")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    names = list(args.names)
    try:
        if args.all:
            parse("exact", width=args.width)  # validates the width before expanding names
            names += [n for n in example_names(args.width) if n not in names]
        if not names:
            parser.error("give at least one multiplier NAME or --all")
        specs = [parse(n, width=args.width, signed=args.signed) for n in names]
        if args.width > 12 and args.sample is None:
            print(f"note: exhaustive {args.width}-bit run enumerates 2^{2 * args.width} pairs "
                  "per multiplier; use --sample PAIRS for a quick estimate", file=sys.stderr)
        dist_a = load_distribution(args.dist_a) if args.dist_a else None
        dist_b = load_distribution(args.dist_b) if args.dist_b else None
        rows = []
        for spec in specs:
            m = characterize(spec, dist_a=dist_a, dist_b=dist_b, sample=args.sample,
                             seed=args.seed, progress=sys.stderr.isatty() or args.width > 12)
            rows.append(m.as_dict())
    except MultiplierError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.sample is not None:
        print(f"sampled {args.sample} pairs per multiplier, seed {args.seed}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    elif args.format == "csv":
        print(format_csv(rows))
    elif args.format == "markdown":
        print(format_markdown(rows))
    else:
        kind = "signed" if args.signed else "unsigned"
        print(f"{args.width}-bit {kind} multipliers")
        print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
