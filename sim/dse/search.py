"""Search algorithms over a :class:`sim.dse.explore.Explorer`'s space; each screens points
into the explorer's archive (the front is taken from the whole archive afterwards).

* :func:`exhaustive` - every point (small spaces).
* :func:`nsga2` - pymoo's NSGA-II on the integer encoding (:class:`sim.dse.space.Space`):
  ``IntegerRandomSampling``, SBX and polynomial mutation on floats with ``RoundingRepair``,
  duplicates eliminated; the bank limit is an inequality constraint ``arrays - max <= 0``.
  The whole population of a generation is screened in one call (so a bit-exact screen fans
  out to the Dask workers).
* :func:`greedy` - sensitivity-guided assignment in the spirit of AutoApprox (DATE 2022): per
  array configuration, start from the most accurate candidate of every layer and repeatedly
  apply the change with the largest saving of the first hardware objective per unit of added
  accuracy loss (the layers' *sensitivity*) - one layer to another multiplier, or one array of
  the bank (all layers on it) to another multiplier - while the bank limit (and with a
  bit-exact screen, ``max_drop``) holds. Every step is kept, so the walk traces a front.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from .errors import DseError

__all__ = ["ALGORITHMS", "exhaustive", "nsga2", "greedy", "run"]

ALGORITHMS = ("auto", "exhaustive", "nsga2", "greedy")
#: ``auto`` enumerates spaces up to this size, else runs NSGA-II.
AUTO_EXHAUSTIVE = 4096


def exhaustive(ex, **_) -> None:
    ex.screen(list(ex.space.enumerate()))


def nsga2(ex, *, population: int = 40, generations: int = 25, seed: int = 0, **_) -> None:
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling
    from pymoo.optimize import minimize

    space = ex.space
    xu = np.array(space.bounds, dtype=float)
    constrained = ex.max_arrays is not None

    class _Problem(Problem):
        def __init__(self):
            super().__init__(n_var=len(xu), n_obj=len(ex.objectives),
                             n_ieq_constr=1 if constrained else 0, xl=np.zeros(len(xu)),
                             xu=xu, vtype=int)

        def _evaluate(self, X, out, *args, **kwargs):
            pts = [space.decode(x) for x in np.asarray(X)]
            recs = ex.screen(pts)
            out["F"] = np.array([r["F"] for r in recs], dtype=float)
            if constrained:
                out["G"] = np.array([[p.arrays - ex.max_arrays] for p in pts], dtype=float)

    if len(xu) == 0 or not xu.any():
        exhaustive(ex)
        return
    algorithm = NSGA2(pop_size=population, sampling=IntegerRandomSampling(),
                      crossover=SBX(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                      mutation=PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                      eliminate_duplicates=True)
    minimize(_Problem(), algorithm, ("n_gen", generations), seed=seed % (2 ** 32),
             verbose=False)


def greedy(ex, *, max_drop: float | None = None, **_) -> None:
    space = ex.space
    cost_obj = next(i for i, o in enumerate(ex.objectives) if o != "drop")
    drop_obj = ex.objectives.index("drop")
    n = len(space.layers)
    for shape_i, df_i, acc_i, corr_i in itertools.product(
            range(len(space.shapes)), range(len(space.dataflows)),
            range(len(space.acc_widths)), range(len(space.corrections))):
        hw = [shape_i, df_i, acc_i, corr_i]
        acc = space.acc_widths[acc_i]
        corr = space.corrections[corr_i]
        # most accurate candidate per layer (predictor terms: the sensitivity table)
        start = []
        for l, cands in zip(space.layers, space.candidates):
            terms = [ex.acc._layer_term(l, c, acc, corr) for c in cands]
            start.append(int(np.argmin(terms)))
        cur = ex.screen([space.decode(start + hw)])[0]
        x = list(start)
        walk = [cur["point"]]
        ex.trajectories.append(walk)
        while True:
            moves, xs = [], []
            for i in range(n):                  # one layer to another multiplier
                for j in range(len(space.candidates[i])):
                    if j != x[i]:
                        y = list(x)
                        y[i] = j
                        xs.append(y)
            cur_names = [space.candidates[i][x[i]] for i in range(n)]
            for m in dict.fromkeys(cur_names):  # one array of the bank to another
                group = [i for i in range(n) if cur_names[i] == m]
                if len(group) < 2:
                    continue
                for c in space.candidates[group[0]]:
                    if c != m and all(c in space.candidates[i] for i in group):
                        y = list(x)
                        for i in group:
                            y[i] = space.candidates[i].index(c)
                        xs.append(y)
            moves = [space.decode(y + hw) for y in xs]
            if not moves:
                break
            best, best_score = None, -math.inf
            for y, r in zip(xs, ex.screen(moves)):
                saving = cur["F"][cost_obj] - r["F"][cost_obj]
                if saving <= 0 or not r["feasible"]:
                    continue
                if ex.screen_mode == "exact" and max_drop is not None \
                        and r["F"][drop_obj] > max_drop:
                    continue
                loss = max(r["F"][drop_obj] - cur["F"][drop_obj], 0.0)
                score = saving / (loss + 1e-12)
                if score > best_score:
                    best, best_score = (y, r), score
            if best is None:
                break
            x, cur = best
            walk.append(cur["point"])


def run(ex, algorithm: str = "auto", **options) -> str:
    """Run ``algorithm`` (``auto``: exhaustive up to :data:`AUTO_EXHAUSTIVE` points, else
    NSGA-II); returns the algorithm used."""
    if algorithm not in ALGORITHMS:
        raise DseError(f"unknown algorithm {algorithm!r}; choose {', '.join(ALGORITHMS)}")
    if algorithm == "auto":
        algorithm = "exhaustive" if ex.space.size <= AUTO_EXHAUSTIVE else "nsga2"
    {"exhaustive": exhaustive, "nsga2": nsga2, "greedy": greedy}[algorithm](ex, **options)
    return algorithm
