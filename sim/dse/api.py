"""The whole exploration as one call (what ``python -m sim.dse`` runs): build the space and the
evaluators, search, evaluate the screened front bit-exactly, take the final front, apply the
accuracy constraint, pick the best point and its savings against the all-exact array and the best
single multiplier, and write the ``hw.gen`` command(s) of every front point."""

from __future__ import annotations

import shlex
import time

from .accuracy import accuracy_model
from .carbon import carbon_model
from .errors import DseError
from .explore import OBJECTIVES, Explorer, check_objectives, nondominated, pick_spread
from .hardware import Hardware
from .search import run as run_search
from .space import Point, Space

__all__ = ["explore", "hwgen_commands", "DEFAULTS"]

DEFAULTS = {"model": "digits-mlp", "dataset": "digits", "images": None, "seed": 0,
            "overflow": "wrap", "mult": ["exact", "truncated4", "truncated6", "drum4",
                                         "bam2_6"],
            "rows": [16], "cols": None, "dataflow": ["ws"], "acc_width": [32],
            "correction": ["none"],
            "objectives": ["drop", "area"], "algorithm": "auto", "screen": "predictor",
            "population": 40, "generations": 25, "max_drop": None, "drop_bound": "estimate",
            "max_arrays": None, "report_max": 32, "area": "pe"}


def _correction_args(p: Point, names, widths) -> list:
    """``--correction MODE`` and widths that hold every layer's constants: the larger of
    ``widths`` (:meth:`sim.dse.accuracy.AccuracyModel.correction_widths`) and ``hw.gen``'s
    default for the corrected arrays ``names``."""
    corrected = [m for m in names if p.corrected(m)]
    if not corrected:
        return []
    from hw.mult import parse
    from sim.correction import default_format
    fmt = default_format(p.correction, [parse(m, width=8, signed=True) for m in corrected],
                         rows=p.rows, dataflow=p.dataflow, acc_width=p.acc_width)
    widths = widths or {}
    args = ["--correction", p.correction]
    if p.correction == "cv":
        args += ["--corr-alpha-bits", str(max(fmt.alpha_bits, widths.get("alpha_bits", 0)))]
    return args + ["--corr-beta-bits", str(max(fmt.beta_bits, widths.get("beta_bits", 0)))]


def hwgen_commands(p: Point, out: str = "out", widths=None) -> list:
    """The ``python -m hw.gen`` command(s) that emit ``p``'s hardware: one array, or its bank
    of arrays (one per multiplier; a layer runs on the array of its multiplier) as one
    ``--bank`` design with a ``select`` input (banks of more than ``hw.bank.MAX_BANK``
    arrays: one command per array). A corrected point's commands carry ``--correction`` and
    constant widths that hold ``widths`` (the widest constants of its layers)."""
    from hw.bank import MAX_BANK

    common = ["--rows", str(p.rows), "--cols", str(p.cols), "--width", "8", "--signed",
              "--dataflow", p.dataflow, "--acc-width", str(p.acc_width)]
    if 1 < p.arrays <= MAX_BANK:
        return [shlex.join(["python", "-m", "hw.gen", "--bank", ",".join(p.mults), *common,
                            *_correction_args(p, p.mults, widths), "-o", f"{out}/bank"])]
    cmds = []
    for i, m in enumerate(p.mults):
        folder = f"{out}/array{i}_{m}" if p.arrays > 1 else f"{out}/{p.array_label(m)}"
        cmds.append(shlex.join(["python", "-m", "hw.gen", "--mult", m, *common,
                                *_correction_args(p, [m], widths), "-o", folder]))
    return cmds


def _drop_for(row, bound):
    return row["drop_ci95_pp"][1] if bound == "upper" else row["drop_pp"]


def _savings(row, ref) -> dict:
    out = {"against": ref["label"]}
    for k in ("area", "energy_pj", "carbon_g", "latency_us", "cdp"):
        if k in row and k in ref and ref[k]:
            out[f"{k}_saved_pct"] = 100.0 * (1.0 - row[k] / ref[k])
    out["drop_pp_delta"] = row["drop_pp"] - ref["drop_pp"]
    return out


def explore(space: Space, *, settings: dict, objectives=("drop", "area"), algorithm="auto",
            screen="predictor", population=40, generations=25, seed=0, max_drop=None,
            drop_bound="estimate", max_arrays=None, report_max=32, area="pe", carbon=None,
            energy=False, executor=None, cache=None, hw_cache=None) -> dict:
    """Run the exploration (module docstring); returns a JSON-ready dict. ``settings``: the
    :class:`sim.dse.accuracy.AccuracyModel` settings. Raises :class:`DseError` (one line) when
    the constraint leaves no point, naming the closest ones."""
    if drop_bound not in ("estimate", "upper"):
        raise DseError(f"unknown drop bound {drop_bound!r}; choose estimate or upper")
    from .search import ALGORITHMS
    start = time.perf_counter()
    check_objectives(objectives)
    if algorithm not in ALGORITHMS:
        raise DseError(f"unknown algorithm {algorithm!r}; choose {', '.join(ALGORITHMS)}")
    acc = accuracy_model(settings)          # the network (built-in or torch-trained), data
    graph = acc.graph
    carbon = carbon or carbon_model()
    hw = Hardware(graph, area=area, carbon=carbon, energy=energy or "energy" in objectives,
                  model_name=settings.get("model"), cache=hw_cache)
    names = sorted({m for c in space.candidates for m in c})
    hw.check_names(names)
    ex = Explorer(space, acc, hw, objectives, screen=screen, max_arrays=max_arrays,
                  executor=executor, cache=cache, settings=settings)
    used = run_search(ex, algorithm, population=population, generations=generations,
                      seed=seed, max_drop=max_drop)
    search_s = time.perf_counter() - start
    screened = ex.screened_front()
    if not screened:
        raise DseError(f"no point of the space has at most {max_arrays} array(s) in its bank")
    chosen = pick_spread(sorted(ex.screened_ranks(report_max), key=lambda r: r["F"]),
                         report_max)
    # single-multiplier baselines on each reported array configuration
    hw_keys = list(dict.fromkeys(key for r in chosen for key in (
        (r["point"].rows, r["point"].cols, r["point"].dataflow, r["point"].acc_width, c)
        for c in dict.fromkeys(("none", r["point"].correction)))))
    baselines = []
    for rows, cols, df, accw, corr in hw_keys:
        like = Point((), rows, cols, df, accw, corr)
        baselines += [b for b in ex.uniform_points(like) if b not in baselines]
    base_recs = ex.screen(baselines)
    chosen_pts = {c["point"] for c in chosen}
    records = chosen + [r for r in base_recs if r["point"] not in chosen_pts]
    points = [r["point"] for r in records]
    reported = ex.report(records)
    front_idx = set(nondominated([r["F"] for r in reported]).tolist())
    baseline_set = set(baselines)
    by_label = {}
    for i, (r, p) in enumerate(zip(reported, points)):
        r["front"] = i in front_idx
        r["baseline"] = p in baseline_set
        r["feasible"] = max_drop is None or _drop_for(r, drop_bound) <= max_drop
        r["hw_gen"] = hwgen_commands(p, widths=acc.correction_widths(
            p.assignment, p.acc_width, p.correction, p.rows))
        r["F"] = [float(v) for v in r["F"]]
        by_label[r["label"]] = (r, p)
    front = sorted((r for r in reported if r["front"]), key=lambda r: r["F"])
    feasible = [r for r in reported if r["feasible"]]
    if not feasible:
        close = sorted(reported, key=lambda r: _drop_for(r, drop_bound))[:3]
        text = "; ".join(f"{r['label']} drop {r['drop_pp']:.2f} pp [{r['drop_ci95_pp'][0]:.2f},"
                         f" {r['drop_ci95_pp'][1]:.2f}]" for r in close)
        raise DseError(f"no evaluated point meets drop <= {max_drop:g} pp "
                       f"({'95 % upper bound' if drop_bound == 'upper' else 'estimate'}); "
                       f"closest: {text}")
    cost = next(o for o in objectives if o != "drop")
    ck = OBJECTIVES[cost]
    best = min(feasible, key=lambda r: (r[ck], r["drop_pp"]))
    _, bp = by_label[best["label"]]
    same_hw = [r for r in reported if r["baseline"] and (r["rows"], r["cols"], r["dataflow"],
               r["acc_width"]) == (bp.rows, bp.cols, bp.dataflow, bp.acc_width)]
    summary = {"best": best["label"], "cost_objective": cost}
    exact = [r for r in same_hw if r["arrays"] == ["exact"]]
    if exact:
        summary["vs_all_exact"] = _savings(best, exact[0])
    uni = [r for r in same_hw if r["feasible"]]
    if uni:
        bu = min(uni, key=lambda r: (r[ck], r["drop_pp"]))
        summary["best_single_multiplier"] = bu["label"]
        summary["vs_best_single"] = _savings(best, bu)
    return {
        "model": settings["model"], "dataset": settings.get("dataset", "digits"),
        "validation_images": acc.identity["n"], "space": space.describe(),
        "objectives": list(objectives), "algorithm": used, "screen": screen,
        "constraints": {"max_drop_pp": max_drop, "drop_bound": drop_bound,
                        "max_arrays": max_arrays},
        "hardware": hw.describe(), "int8_accuracy": float(acc.reference(
            space.acc_widths[0])["ok"].mean()),
        "screened_points": len(ex.archive), "screened_front": len(screened),
        "reported": reported, "front": [r["label"] for r in front], "summary": summary,
        "stats": {**ex.stats, "seconds": time.perf_counter() - start, "search_s": search_s,
                  "executor": getattr(ex.executor, "kind", "local"),
                  "workers": getattr(ex.executor, "workers", 1)},
        "archive": [{"label": r["point"].label, **r["point"].as_dict(),
                     **{k: v for k, v in r["metrics"].items()}, "feasible": r["feasible"]}
                    for r in ex.archive.values()],
    }
