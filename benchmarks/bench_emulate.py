"""Throughput of the fast bit-exact emulator (:mod:`sim.emulate`) relative to float64 BLAS.

For every example multiplier of a width (``hw.mult.example_names``) it times an ``S x S x S``
GEMM with uniform random operands, 32-bit wrapping accumulator, and divides the time of a plain
``np.matmul`` on float64 operands (the exact product, measured in the same run, interleaved) by
it. Targets: >= 0.25 for decomposable (``separable``) families, >= 0.05 for table families.
Figures are the best of ``--reps`` runs (the machine may be shared). One run is also checked
against the golden model on a slice of the output.

    python benchmarks/bench_emulate.py                 # 256^3, int8 signed, all examples
    python benchmarks/bench_emulate.py --size 128 --unsigned --mult exact mitchell
    python benchmarks/bench_emulate.py --json out.json --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hw.mult import MultiplierError, example_names, parse  # noqa: E402
from sim.emulate import emulate_gemm, plan  # noqa: E402
from sim.golden import gemm_reference  # noqa: E402

TARGETS = {"separable": 0.25, "table": 0.05, "model": 0.0}


def _best(fn, reps):
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def plain_gather(a, b, spec):
    """The naive reference point: one fancy-index table gather per k (``T[a[:, k], b[k, :]]``)."""
    lo = spec.operand_range[0]
    table = spec.table().astype(np.int32).ravel()
    nv = 1 << spec.width
    ai, bi = a - lo, b - lo
    out = np.zeros((a.shape[0], b.shape[1]), np.int64)
    for k in range(a.shape[1]):
        out += table[ai[:, k, None] * nv + bi[None, k, :]]
    return out


def run(names, size=256, width=8, signed=True, reps=15, seed=0, plain=True):
    rng = np.random.default_rng(seed)
    rows = []
    for name in names:
        spec = parse(name, width=width, signed=signed)
        lo, hi = spec.operand_range
        a = rng.integers(lo, hi + 1, (size, size))
        b = rng.integers(lo, hi + 1, (size, size))
        af, bf = a.astype(np.float64), b.astype(np.float64)
        p = plan(spec)
        out = emulate_gemm(a, b, spec)                      # warm-up (plan, table)
        ref = gemm_reference(a[:8], b, spec)
        assert np.array_equal(out[:8], ref), f"{spec.full_name}: emulation != golden"
        np.matmul(af, bf)
        t_blas, t_emu = float("inf"), float("inf")
        for _ in range(reps):                               # interleaved: same conditions
            t_blas = min(t_blas, _best(lambda: np.matmul(af, bf), 3))
            t_emu = min(t_emu, _best(lambda: emulate_gemm(a, b, spec), 1))
        ratio = t_blas / t_emu
        rows.append({"mult": spec.name, "method": p.method, "terms": p.terms,
                     "emulate_ms": t_emu * 1e3, "blas_f64_ms": t_blas * 1e3, "ratio": ratio,
                     "target": TARGETS[p.method], "ok": ratio >= TARGETS[p.method]})
        if plain and p.method == "table":
            assert np.array_equal(plain_gather(a, b, spec), out)
            t_plain = min(_best(lambda: plain_gather(a, b, spec), 1) for _ in range(3))
            rows.append({"mult": spec.name + " (plain)", "method": "per-k gather",
                         "terms": 0, "emulate_ms": t_plain * 1e3, "blas_f64_ms": t_blas * 1e3,
                         "ratio": t_blas / t_plain, "target": 0.0, "ok": True})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256, help="M = K = N (default 256)")
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--unsigned", action="store_true")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--mult", nargs="+", help="multiplier names (default: example_names)")
    ap.add_argument("--json", help="write the rows as JSON to this path")
    ap.add_argument("--threads", type=int,
                    help="BLAS and gather threads for both sides (default: as configured)")
    args = ap.parse_args(argv)
    if args.size < 1 or args.reps < 1:
        ap.error("--size and --reps must be positive")
    if args.threads is not None and args.threads < 1:
        ap.error("--threads must be positive")
    limiter = None
    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        import sim.emulate
        sim.emulate.THREADS = args.threads
        limiter = threadpool_limits(limits=args.threads, user_api="blas")
    try:
        names = args.mult or example_names(args.width)
        rows = run(names, args.size, args.width, not args.unsigned, args.reps)
    except MultiplierError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if limiter is not None:
        limiter.restore_original_limits()
    threads = args.threads if args.threads is not None else "default"
    print(f"{args.size}^3 GEMM, {args.width}-bit {'unsigned' if args.unsigned else 'signed'}, "
          f"ratio = t(float64 np.matmul) / t(emulate), best of {args.reps}, threads {threads}")
    print(f"{'multiplier':<16}{'method':<11}{'terms':>6}{'emulate ms':>12}{'f64 ms':>9}"
          f"{'ratio':>8}{'target':>8}  ok")
    for r in rows:
        print(f"{r['mult']:<16}{r['method']:<11}{r['terms']:>6}{r['emulate_ms']:>12.3f}"
              f"{r['blas_f64_ms']:>9.3f}{r['ratio']:>8.3f}{r['target']:>8.2f}  "
              f"{'yes' if r['ok'] else 'NO'}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
