"""Throughput of the bit-exact emulator (:mod:`sim.emulate`) relative to an exact integer GEMM.

For every multiplier (default: ``hw.mult.example_names(8)`` plus an imported random product
table, ``table:``) and every size ``S`` it times an ``S x S x S`` GEMM with uniform random
operands (32-bit wrapping accumulator) and, right before each repetition, the exact uint8 x int8
integer GEMM of the same size (onnxruntime ``MatMulInteger``; float64 BLAS when onnxruntime is
missing). Repetitions are interleaved (reference, multiplier, reference, next multiplier, ...)
so both see the same machine load; the table reports medians over repetitions and the spread
(25th-75th percentile) of the per-repetition ratio ``t(reference) / t(emulate)``. Every
multiplier's result is checked against the golden model on a slice of the output.

Targets (issue 16), by the route each family really takes:
exact, perforated, DRUM >= 0.5; Kulkarni, RoBA >= 0.3; truncated / BAM >= 0.15;
table path (Mitchell, imported tables) and ETM >= 0.05.

``--e2e`` also runs the built-in digits CNN over the digits test set with ``--e2e-mult``
multipliers, on this emulator and on the one of the last commit (``git show HEAD:sim/emulate.py``,
or ``--before-rev REV``) loaded as a separate module, the rest of the toolkit unchanged), checks that both give the same
logits, and reports images/s and the speed-up.

    python benchmarks/bench_emulate.py                        # 256^3 and 512^3, all examples
    python benchmarks/bench_emulate.py --size 256 --mult exact mitchell --reps 5
    python benchmarks/bench_emulate.py --e2e --e2e-only --threads 2
    python benchmarks/bench_emulate.py --e2e-only --resnet20 32 --threads 1
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hw.mult import MultiplierError, example_names, parse  # noqa: E402
from sim import kernels  # noqa: E402
from sim.emulate import choose_route, emulate_gemm, plan  # noqa: E402
from sim.golden import gemm_reference  # noqa: E402
from sim.kernels import intgemm  # noqa: E402

TARGETS = {"exact": 0.5, "perforated": 0.5, "drum": 0.5, "kulkarni": 0.3, "roba": 0.3,
           "truncated": 0.15, "bam": 0.15, "mitchell": 0.05, "table": 0.05, "verilog": 0.05,
           "etm": 0.05}


def _time(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def reference_gemm(size, rng):
    """``(name, fn)``: the fastest exact integer GEMM of ``size``^3 that passed its probe on this
    CPU (onnxruntime ``MatMulInteger`` u8 x s8 where it is exact, i.e. on VNNI / AVX-512 CPUs;
    u8 x u8 on AVX2, where the u8 x s8 path saturates), float64 BLAS when there is none."""
    found = intgemm.kernels()
    if found:
        kernel = found[0]
        a = rng.integers(0, 256, (size, size)).astype(kernel.a_dtype)
        b = rng.integers(kernel.b_lo, kernel.b_lo + 256, (size, size)).astype(kernel.b_dtype)
        out = np.empty((size, size), np.int32)
        kernel.matmul(a, b, out)
        assert np.array_equal(out, a.astype(np.int64) @ b.astype(np.int64))
        return f"{kernel.name} (exact integer GEMM)", lambda: kernel.matmul(a, b, out)
    a = rng.integers(0, 256, (size, size)).astype(np.float64)
    b = rng.integers(-128, 128, (size, size)).astype(np.float64)
    return "float64 np.matmul (no exact integer kernel)", lambda: np.matmul(a, b)


def imported_table(tmpdir: Path, signed: bool) -> str:
    """A random product table saved as ``.npy`` (what an imported netlist becomes)."""
    rng = np.random.default_rng(123)
    lo, hi = (-(1 << 15), 1 << 15) if signed else (0, 1 << 16)
    path = tmpdir / ("random_s.npy" if signed else "random_u.npy")
    np.save(path, rng.integers(lo, hi, (256, 256)))
    return f"table:{path}"


def run(names, sizes=(256, 512), signed=True, reps=7, seed=0, before=None):
    """Rows per size and multiplier; ``before``: also time that emulator module (interleaved)
    and report the speed-up over it."""
    rng = np.random.default_rng(seed)
    rows = []
    specs = [parse(name, signed=signed) for name in names]
    for size in sizes:
        ref_name, ref = reference_gemm(size, rng)
        cases = []
        for spec in specs:
            lo, hi = spec.operand_range
            a = rng.integers(lo, hi + 1, (size, size))
            b = rng.integers(lo, hi + 1, (size, size))
            out = emulate_gemm(a, b, spec)                       # warm-up: plan, kernels
            assert np.array_equal(out[:4], gemm_reference(a[:4], b, spec)), spec.full_name
            cases.append((spec, a, b))
        ref()
        times = {spec.full_name: [] for spec in specs}
        refs = {spec.full_name: [] for spec in specs}
        olds = {spec.full_name: [] for spec in specs}
        if before is not None:
            for spec, a, b in cases:
                before.emulate_gemm(a, b, spec)
        for _ in range(reps):                                    # interleaved
            for spec, a, b in cases:
                refs[spec.full_name].append(_time(ref))
                times[spec.full_name].append(_time(lambda: emulate_gemm(a, b, spec)))
                if before is not None:
                    olds[spec.full_name].append(_time(lambda: before.emulate_gemm(a, b, spec)))
        for spec, _, _ in cases:
            t, r = np.array(times[spec.full_name]), np.array(refs[spec.full_name])
            ratio = r / t
            p = plan(spec)
            target = TARGETS.get(spec.family, TARGETS.get(spec.name.split(":")[0], 0.0))
            rows.append({
                "size": size, "mult": spec.name if len(spec.name) < 20 else "table:random",
                "family": spec.family, "method": p.method, "terms": p.terms,
                "route": choose_route(spec, size, size, size),
                "emulate_ms": float(np.median(t)) * 1e3, "ref_ms": float(np.median(r)) * 1e3,
                "ratio": float(np.median(ratio)), "ratio_p25": float(np.percentile(ratio, 25)),
                "ratio_p75": float(np.percentile(ratio, 75)), "target": target,
                "ok": float(np.median(ratio)) >= target, "reference": ref_name,
                "gmacs": size ** 3 / float(np.median(t)) / 1e9})
            if olds[spec.full_name]:
                rows[-1]["before_ms"] = float(np.median(olds[spec.full_name])) * 1e3
                rows[-1]["speedup"] = rows[-1]["before_ms"] / rows[-1]["emulate_ms"]
    return rows


BEFORE_REV = "HEAD"     # --before-rev


def _old_emulator():
    """The emulator of commit :data:`BEFORE_REV` (default the last one), as a module of its own
    (None outside a git checkout)."""
    try:
        src = subprocess.run(["git", "-C", str(ROOT), "show", f"{BEFORE_REV}:sim/emulate.py"],
                             check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp()) / "emulate_before.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("emulate_before", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["emulate_before"] = mod          # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _resnet20(images):
    """ResNet-20 (sim.nn.models, random weights, seed 0) as a sim.dnn graph and random inputs."""
    import torch

    from sim.nn.convert import to_graph
    from sim.nn.models import resnet20

    torch.manual_seed(0)
    graph = to_graph(resnet20().eval(), (3, 32, 32))
    rng = np.random.default_rng(0)
    return (graph, rng.random((16, 3, 32, 32)).astype(np.float32),
            rng.random((images, 3, 32, 32)).astype(np.float32))


def e2e(mults, reps=3, model="digits-cnn", images=32):
    """``model`` (digits-cnn over its test set, or resnet20 on ``images`` random inputs):
    images/s on this emulator and on the last commit's."""
    import sim.dnn.quant as quant

    if model == "resnet20":
        graph, x_cal, x_test = _resnet20(images)
        qm = quant.QuantizedModel(graph, x_cal)
    else:
        from sim.dnn.data import load_digits_split
        from sim.dnn.models import load_model

        data = load_digits_split()
        graph = load_model("digits-cnn")
        shape = (-1,) + tuple(graph.input_shape)
        x_test = data.x_test.reshape(shape)
        qm = quant.QuantizedModel(graph, data.x_calib.reshape(shape))
    old = _old_emulator()
    new_fns = (quant.emulate_gemm, quant.emulate_tiled)
    old_fns = (old.emulate_gemm, old.emulate_tiled) if old is not None else None

    def use(fns):
        quant.emulate_gemm, quant.emulate_tiled = fns

    rows = []
    try:
        for name in mults:
            use(new_fns)
            want = qm.run(x_test, name)
            t_new, t_old = [], []
            if old_fns is not None:
                use(old_fns)
                got = qm.run(x_test, name)
                assert np.array_equal(got, want), f"{name}: old and new emulator differ"
            for _ in range(reps):
                use(new_fns)
                t_new.append(_time(lambda: qm.run(x_test, name)))
                if old_fns is not None:
                    use(old_fns)
                    t_old.append(_time(lambda: qm.run(x_test, name)))
            n = x_test.shape[0]
            row = {"model": model, "images": n, "mult": name,
                   "images_per_s": n / float(np.median(t_new)),
                   "spread": [n / max(t_new), n / min(t_new)]}
            if t_old:
                row["before_images_per_s"] = n / float(np.median(t_old))
                row["speedup"] = float(np.median(t_old)) / float(np.median(t_new))
            rows.append(row)
    finally:
        use(new_fns)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, nargs="+", default=[256, 512],
                    help="M = K = N (default 256 512)")
    ap.add_argument("--unsigned", action="store_true")
    ap.add_argument("--reps", type=int, default=7, help="interleaved repetitions (default 7)")
    ap.add_argument("--mult", nargs="+",
                    help="multiplier names (default: example_names(8) and an imported table)")
    ap.add_argument("--json", help="write the rows as JSON to this path")
    ap.add_argument("--threads", type=int, help="emulator threads (default: sim.kernels.threads)")
    ap.add_argument("--e2e", action="store_true", help="also the digits-cnn end-to-end run")
    ap.add_argument("--before", action="store_true",
                    help="also time the last commit's emulator on every GEMM (speed-up column)")
    ap.add_argument("--before-rev", default="HEAD", metavar="REV",
                    help="the commit whose sim/emulate.py is 'before' (default HEAD; the "
                         "emulator before issue 16's kernels: d0b43f0^)")
    ap.add_argument("--e2e-only", action="store_true", help="only the end-to-end run")
    ap.add_argument("--e2e-mult", nargs="+", default=["exact", "truncated4", "mitchell"])
    ap.add_argument("--resnet20", type=int, metavar="IMAGES",
                    help="also ResNet-20 (random weights, needs torch) on IMAGES random images")
    args = ap.parse_args(argv)
    global BEFORE_REV
    BEFORE_REV = args.before_rev
    if min(args.size) < 1 or args.reps < 1:
        ap.error("--size and --reps must be positive")
    if args.threads is not None:
        if args.threads < 1:
            ap.error("--threads must be positive")
        kernels.set_threads(args.threads)
    result = {"threads": kernels.threads(), "gemm": [], "e2e": []}
    try:
        if not args.e2e_only:
            with tempfile.TemporaryDirectory() as tmp:
                names = args.mult or (list(example_names(8))
                                      + [imported_table(Path(tmp), not args.unsigned)])
                result["gemm"] = run(names, args.size, not args.unsigned, args.reps,
                                     before=_old_emulator() if args.before else None)
        if args.e2e or args.e2e_only:
            result["e2e"] = e2e(args.e2e_mult)
        if args.resnet20:
            result["e2e"] += e2e(args.e2e_mult, model="resnet20", images=args.resnet20)
    except MultiplierError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = result["gemm"]
    if rows:
        print(f"{'unsigned' if args.unsigned else 'signed'} 8-bit, ratio = t(reference) / "
              f"t(emulate), medians of {args.reps} interleaved repetitions, threads "
              f"{result['threads']}; reference: {rows[0]['reference']}")
        print(f"{'size':>5} {'multiplier':<14}{'route':<10}{'emulate ms':>11}{'ref ms':>8}"
              f"{'GMAC/s':>8}{'ratio':>7} {'p25-p75':<12}{'target':>6}  ok")
        for r in rows:
            print(f"{r['size']:>5} {r['mult']:<14}{r['route']:<10}{r['emulate_ms']:>11.2f}"
                  f"{r['ref_ms']:>8.3f}{r['gmacs']:>8.1f}{r['ratio']:>7.3f} "
                  f"{r['ratio_p25']:.3f}-{r['ratio_p75']:.3f}  {r['target']:>5.2f}  "
                  f"{'yes' if r['ok'] else 'NO '}"
                  + (f"  before {r['before_ms']:.2f} ms ({r['speedup']:.1f}x)"
                     if "speedup" in r else ""))
    for r in result["e2e"]:
        before = (f", before {r['before_images_per_s']:.0f} images/s, speed-up "
                  f"{r['speedup']:.1f}x") if "speedup" in r else ""
        print(f"{r['model']} {r['images']} images, {r['mult']}: "
              f"{r['images_per_s']:.0f} images/s ({r['spread'][0]:.0f}-{r['spread'][1]:.0f})"
              f"{before}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
