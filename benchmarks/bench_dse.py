"""Design-space exploration speed (``sim.dse``): evaluations per second with the analytical
predictor and with bit-exact inference, the speed-up of a 2-worker Dask LocalCluster over one
process for bit-exact evaluations, and the time NSGA-II takes to a converged front.

* **predictor**: points screened per second (distortion from per-layer terms, plus the area,
  latency and carbon of each point), after the one-off set-up (the int8-exact reference run);
* **bit-exact**: full int8 inference of the validation images per point, in this process (the
  emulator's kernels use every core; and with one thread) and on a LocalCluster of 2 workers
  (``threads_per_worker=1``; Dask sets one thread per worker; cold: includes starting the cluster
  and the workers' own set-up, as a user sees it; warm: the same points again); no cache;
* **convergence**: NSGA-II (population 40) generations until the front's hypervolume (objectives
  normalised over the enumerated space, reference point 1.1) reaches 99 % of the exhaustive
  front's, and the wall time to get there; the exhaustive enumeration's time beside it.

Areas come from ``docs/cost_w8.csv`` (the hw.cost sweep), so no Yosys runs.

    python benchmarks/bench_dse.py
    python benchmarks/bench_dse.py --model digits-cnn --points 48 --json dse.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from hw.cache import Cache  # noqa: E402
from sim.dse import Space, carbon_model, search  # noqa: E402
from sim.dse.accuracy import accuracy_model  # noqa: E402
from sim.dse.explore import Explorer  # noqa: E402
from sim.dse.hardware import Hardware  # noqa: E402
from sim.dse.parallel import DaskExecutor, LocalExecutor  # noqa: E402

NAMES = ("exact", "truncated4", "truncated4c", "truncated7", "truncated7c", "bam2_6", "bam2_8",
         "perforated2", "drum3", "drum5", "mitchell", "kulkarni")


def _explorer(acc, space, executor=None, objectives=("drop", "area", "latency")):
    hw = Hardware(acc.graph, area=f"table:{ROOT / 'docs' / 'cost_w8.csv'}",
                  carbon=carbon_model(28))
    return Explorer(space, acc, hw, objectives, executor=executor, cache=Cache(enabled=False))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="digits-mlp")
    ap.add_argument("--points", type=int, default=32, help="bit-exact points per timing")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    settings = {"model": args.model, "dataset": "digits", "images": None, "seed": 0,
                "overflow": "wrap"}
    t0 = time.perf_counter()
    acc = accuracy_model(settings)
    acc.reference(32)
    setup_s = time.perf_counter() - t0
    layers = acc.layers
    names = NAMES[:6] if len(layers) > 3 else NAMES[:9]
    space = Space(layers, (names,) * len(layers), rows=(4, 8, 16), cols=(4, 16))
    out = {"model": args.model, "layers": len(layers), "space": space.size,
           "validation_images": int(len(acc.x)), "setup_s": setup_s,
           "cpus": os.cpu_count(), "load_avg": os.getloadavg()[0]}

    # predictor screening: the whole space
    ex = _explorer(acc, space)
    t = time.perf_counter()
    search.run(ex, "exhaustive")
    exh_s = time.perf_counter() - t
    out["predictor_evals_per_s"] = space.size / exh_s
    out["exhaustive_s"] = exh_s

    # bit-exact: the same points in one process and on a LocalCluster
    rng = np.random.default_rng(0)
    pts = [space.decode([rng.integers(0, b + 1) for b in space.bounds])
           for _ in range(args.points * 3)]
    pts = list(dict.fromkeys((p.assign, p.acc_width) for p in pts))[:args.points]
    from sim.dse.space import Point
    pts = [Point(a, 8, 8, "ws", w) for a, w in pts]
    one = _explorer(acc, space, LocalExecutor())
    t = time.perf_counter()
    one.measure(pts)
    local_s = time.perf_counter() - t
    single_s = None
    try:                                  # the emulator's own threads off: one core
        from sim.kernels import set_threads
        set_threads(1)
        one.measured.clear()
        t = time.perf_counter()
        one.measure(pts)
        single_s = time.perf_counter() - t
        set_threads(None)
    except ImportError:
        pass
    with DaskExecutor(workers=args.workers) as dx:
        many = _explorer(acc, space, dx)
        t = time.perf_counter()
        many.measure(pts)
        dask_s = time.perf_counter() - t
        t = time.perf_counter()
        many.measured.clear()
        many.measure(pts)                  # warm cluster, workers set up
        warm_s = time.perf_counter() - t
    out.update({"bit_exact_points": len(pts), "bit_exact_evals_per_s": len(pts) / local_s,
                f"dask{args.workers}_evals_per_s": len(pts) / dask_s,
                f"dask{args.workers}_warm_evals_per_s": len(pts) / warm_s,
                f"dask{args.workers}_speedup": local_s / dask_s,
                f"dask{args.workers}_warm_speedup": local_s / warm_s})
    if single_s is not None:
        out["bit_exact_1thread_evals_per_s"] = len(pts) / single_s
        out[f"dask{args.workers}_warm_speedup_over_1thread"] = single_s / warm_s

    # convergence of NSGA-II against the exhaustive front
    from pymoo.indicators.hv import HV
    allF = np.array([r["F"] for r in ex.archive.values()])
    lo, hi = allF.min(axis=0), allF.max(axis=0)
    hv = HV(ref_point=np.full(allF.shape[1], 1.1))
    norm = lambda recs: (np.array([r["F"] for r in recs]) - lo) / (hi - lo)  # noqa: E731
    true = hv(norm(ex.screened_front()))
    conv = []
    for seed in range(3):
        for gens in (5, 10, 15, 20, 30, 40, 60, 80):
            ga = _explorer(acc, space)
            t = time.perf_counter()
            search.run(ga, "nsga2", population=40, generations=gens, seed=seed)
            s = time.perf_counter() - t
            ratio = hv(norm(ga.screened_front())) / true
            if ratio >= 0.99:
                conv.append({"seed": seed, "generations": gens, "evaluations": len(ga.archive),
                             "seconds": s, "hv_ratio": ratio})
                break
        else:
            conv.append({"seed": seed, "generations": None, "hv_ratio": ratio})
    out["nsga2_to_99pct_hv"] = conv
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
