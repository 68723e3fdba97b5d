"""The exploration: objectives of points, the archive of everything screened, the cached
bit-exact evaluations, the Pareto front and the best point under the accuracy constraint.

Objectives (all minimised; :data:`OBJECTIVES`): ``drop`` (accuracy drop: the predictor's
relative distortion while screening, the bit-exact drop in percentage points for reported
points), ``area`` (NAND2 equivalents), ``latency`` (us), ``energy`` (pJ per inference),
``carbon`` (embodied, g CO2e) and ``cdp`` (carbon x delay, g s). Constraints: at most
``max_arrays`` arrays in the bank, and (reported points) ``drop <= max_drop`` on the drop's
point estimate or on its 95 % upper bound (``drop_bound="upper"``).
"""

from __future__ import annotations

import time

import numpy as np

from hw.cache import Cache, cache_root

from .errors import DseError
from .space import Point, Space

__all__ = ["OBJECTIVES", "Explorer", "nondominated", "check_objectives", "CACHE_KIND"]

#: Objective name -> metric key.
OBJECTIVES = {"drop": "drop", "area": "area", "latency": "latency_us", "energy": "energy_pj",
              "carbon": "carbon_g", "cdp": "cdp"}
CACHE_KIND = "dse"


def nondominated(F) -> np.ndarray:
    """Indices of the non-dominated rows of ``F`` (minimisation; equal rows all kept)."""
    F = np.asarray(F, dtype=np.float64)
    if len(F) == 0:
        return np.zeros(0, dtype=int)
    keep = np.ones(len(F), dtype=bool)
    for i in range(len(F)):
        if not keep[i]:
            continue
        le = np.all(F <= F[i], axis=1) & np.any(F < F[i], axis=1)
        if le.any():
            keep[i] = False
            continue
        dominated = np.all(F[i] <= F, axis=1) & np.any(F[i] < F, axis=1)
        keep &= ~dominated
    return np.flatnonzero(keep)


def check_objectives(objectives) -> None:
    """:class:`DseError` unless ``objectives`` are known, distinct, include ``drop`` and at
    least one hardware objective."""
    bad = [o for o in objectives if o not in OBJECTIVES]
    if bad or not objectives:
        raise DseError(f"unknown objective(s) {', '.join(map(str, bad)) or '(none)'}; choose "
                       f"from {', '.join(OBJECTIVES)}")
    if len(set(objectives)) != len(objectives):
        raise DseError("an objective is listed twice")
    if "drop" not in objectives:
        raise DseError("the objectives must include drop (accuracy)")
    if len(objectives) < 2:
        raise DseError("give at least one hardware objective besides drop "
                       f"({', '.join(o for o in OBJECTIVES if o != 'drop')})")


class Explorer:
    """State of one exploration (see the module docstring)."""

    def __init__(self, space: Space, accuracy, hardware, objectives=("drop", "area"), *,
                 screen: str = "predictor", max_arrays: int | None = None, executor=None,
                 cache: Cache | None = None, settings: dict | None = None):
        from .parallel import LocalExecutor

        check_objectives(objectives)
        if screen not in ("predictor", "exact"):
            raise DseError(f"unknown screen {screen!r}; choose predictor or exact")
        if set(space.layers) != set(accuracy.layers):
            raise DseError("the space's layers differ from the network's GEMM layers")
        self.space = space
        self.acc = accuracy
        self.hw = hardware
        self.objectives = tuple(objectives)
        self.screen_mode = screen
        self.max_arrays = max_arrays
        self.executor = executor or LocalExecutor()
        self.cache = cache if cache is not None else Cache(cache_root())
        self.settings = settings if settings is not None else accuracy.settings
        self.archive: dict = {}             # Point -> record
        self.trajectories: list = []        # greedy: the points of each walk, in order
        self.measured: dict = {}            # (assign tuple, acc) -> bit-exact result
        self.stats = {"screened": 0, "screen_s": 0.0, "computed": 0, "cached": 0,
                      "measure_s": 0.0}

    # -- screening ------------------------------------------------------------------------------
    def feasible_bank(self, p: Point) -> bool:
        return self.max_arrays is None or p.arrays <= self.max_arrays

    def screen(self, points) -> list:
        """Records (``{"point", "metrics", "drop", "F"}``) of ``points``; new ones enter the
        archive. ``drop`` is the predictor's distortion or the bit-exact drop (pp)."""
        points = list(points)
        new = list(dict.fromkeys(p for p in points if p not in self.archive))
        if new:
            start = time.perf_counter()
            if self.screen_mode == "exact":
                res = self.measure(new)
                drops = [res[p.accuracy_key]["drop_pp"] for p in new]
            else:
                drops = [self.acc.predicted(p.assignment, p.acc_width, p.correction)
                         for p in new]
            for p, d in zip(new, drops):
                m = self.hw.metrics(p, self.objectives)
                m["drop"] = float(d)
                self.archive[p] = {"point": p, "metrics": m,
                                   "F": [m[OBJECTIVES[o]] for o in self.objectives],
                                   "feasible": self.feasible_bank(p)}
            self.stats["screened"] += len(new)
            self.stats["screen_s"] += time.perf_counter() - start
        return [self.archive[p] for p in points]

    # -- bit-exact evaluation -------------------------------------------------------------------
    def measure(self, points) -> dict:
        """Bit-exact accuracy of ``points`` (cached by content; computed through the
        executor, each result cached as it arrives)."""
        keys = list(dict.fromkeys(p.accuracy_key for p in points))
        todo = []
        for k in keys:
            if k in self.measured:
                continue
            hit = self.cache.get(CACHE_KIND, self.acc.cache_key(dict(k[0]), *k[1:]))
            if hit is not None:
                self.measured[k] = hit
                self.stats["cached"] += 1
            else:
                todo.append(k)
        if todo:
            start = time.perf_counter()
            items = [(dict(k[0]), *k[1:]) for k in todo]
            for i, result in self.executor.map(self.settings, items):
                self.measured[todo[i]] = result
                self.cache.put(CACHE_KIND, self.acc.cache_key(*items[i]), result)
                self.stats["computed"] += 1
            self.stats["measure_s"] += time.perf_counter() - start
        return {k: self.measured[k] for k in keys}

    # -- fronts ---------------------------------------------------------------------------------
    def screened_front(self) -> list:
        """The non-dominated feasible records of the archive, sorted by objectives."""
        return self.screened_ranks(1)

    def screened_ranks(self, limit: int) -> list:
        """Successive non-dominated ranks of the feasible archive (rank 1 = the front), as
        many whole ranks as fit in ``limit`` records (at least the front): the predictor's
        ranking is approximate, so near-front points get their bit-exact check too."""
        recs = [r for r in self.archive.values() if r["feasible"]]
        out = []
        while recs:
            idx = nondominated([r["F"] for r in recs])
            rank = sorted((recs[i] for i in idx), key=lambda r: r["F"])
            if out and len(out) + len(rank) > limit:
                break
            out += rank
            chosen = set(idx.tolist())
            recs = [r for i, r in enumerate(recs) if i not in chosen]
        return out

    def report(self, records) -> list:
        """Rows of ``records`` with their bit-exact accuracy (objective ``drop`` in pp)."""
        res = self.measure([r["point"] for r in records])
        rows = []
        for r in records:
            p = r["point"]
            acc = res[p.accuracy_key]
            m = dict(r["metrics"])
            screen = m.pop("drop")
            row = {"label": p.label, **p.as_dict(), **m, **acc,
                   "screen_drop": screen, "screen": self.screen_mode}
            row["F"] = [acc["drop_pp"] if o == "drop" else m[OBJECTIVES[o]]
                        for o in self.objectives]
            rows.append(row)
        return rows

    def uniform_points(self, like: Point) -> list:
        """The single-multiplier points on ``like``'s array (one per common candidate)."""
        return [Point(tuple((l, m) for l in self.space.layers), like.rows, like.cols,
                      like.dataflow, like.acc_width, like.correction)
                for m in self.space.uniform_names()]


def pick_spread(records, limit: int) -> list:
    """At most ``limit`` of ``records`` (sorted by their objective vectors), evenly spread."""
    if len(records) <= limit:
        return list(records)
    idx = np.unique(np.round(np.linspace(0, len(records) - 1, limit)).astype(int))
    return [records[i] for i in idx]
