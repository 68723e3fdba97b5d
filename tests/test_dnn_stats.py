"""sim.dnn.stats against independent computations: the Wilson interval solved from its
definition by bisection (stdlib normal quantile), the exact McNemar p-value summed from binomial
coefficients, published worked examples, and the coverage / size of the interval and the test
by simulation."""

import math
from statistics import NormalDist

import numpy as np
import pytest

from sim.dnn.stats import (accuracy_interval, compare_paired, mcnemar_exact,
                           paired_difference)

Z = NormalDist().inv_cdf(0.975)


def wilson_by_bisection(k, n, z=Z):
    """The Wilson score interval by its definition: the p with |k/n - p| <= z sqrt(p(1-p)/n),
    the ends found by bisection on each side of k/n (no closed form)."""
    ph = k / n

    def inside(p):
        return (ph - p) ** 2 <= z * z * p * (1 - p) / n

    def edge(a, b):                      # a inside, b outside (or the boundary 0/1)
        if inside(b):
            return b
        for _ in range(200):
            m = (a + b) / 2
            a, b = (m, b) if inside(m) else (a, m)
        return (a + b) / 2

    return edge(ph, 0.0), edge(ph, 1.0)


def mcnemar_by_definition(b, c):
    """Two-sided exact binomial test of b successes in b + c trials at p = 1/2: the sum of the
    probabilities of every outcome at most as likely as the observed one."""
    n = b + c
    if n == 0:
        return 1.0
    probs = [math.comb(n, i) / 2 ** n for i in range(n + 1)]
    return min(1.0, sum(q for q in probs if q <= probs[b] * (1 + 1e-9)))


# -- Wilson score interval ------------------------------------------------------------------

@pytest.mark.parametrize("k,n,low,high", [
    # Newcombe, Stat. Med. 17:857-872 (1998), Table II, method 3 (score, no correction)
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718)])
def test_wilson_published_examples(k, n, low, high):
    lo, hi = accuracy_interval(k, n)
    assert lo == pytest.approx(low, abs=5e-5) and hi == pytest.approx(high, abs=5e-5)


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (531, 540), (540, 540), (53, 540), (7, 10),
                                 (4990, 5000), (1, 10000)])
def test_wilson_equals_definition(k, n):
    lo, hi = accuracy_interval(k, n)
    blo, bhi = wilson_by_bisection(k, n)
    assert lo == pytest.approx(blo, abs=1e-9) and hi == pytest.approx(bhi, abs=1e-9)
    assert lo <= k / n <= hi


def test_wilson_bad_input():
    for k, n in ((1, 0), (-1, 5), (6, 5)):
        with pytest.raises(ValueError):
            accuracy_interval(k, n)


# -- exact McNemar test -----------------------------------------------------------------------

@pytest.mark.parametrize("b,c", [(0, 0), (0, 1), (1, 0), (3, 3), (11, 3), (6, 16), (0, 9),
                                 (40, 25), (100, 140)])
def test_mcnemar_equals_definition(b, c):
    assert mcnemar_exact(b, c) == pytest.approx(mcnemar_by_definition(b, c), rel=1e-9, abs=1e-15)
    assert mcnemar_exact(b, c) == mcnemar_exact(c, b)


def test_mcnemar_published_example():
    # Cavo et al. (2012) table [[59, 6], [16, 80]] in Fagerland, Lydersen & Laake, Statistical
    # Analysis of Contingency Tables (2017), ch. 8: McNemar exact conditional test P = 0.052479
    assert mcnemar_exact(6, 16) == pytest.approx(0.052479, abs=5e-7)


# -- Newcombe's paired interval ---------------------------------------------------------------

def test_newcombe_published_example():
    # same table, same source: Newcombe square-and-add -0.0621 (95 % CI -0.1186 to -0.0046)
    d, lo, hi = paired_difference(59, 6, 16, 80)
    assert d == pytest.approx(-0.0621, abs=5e-5)
    assert lo == pytest.approx(-0.1186, abs=5e-5) and hi == pytest.approx(-0.0046, abs=5e-5)


def newcombe_by_formula(a, b, c, d):
    """Newcombe (1998) method 10 written out from the paper, with the bisection Wilson."""
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_by_bisection(a + b, n)
    l2, u2 = wilson_by_bisection(a + c, n)
    den = (a + b) * (c + d) * (a + c) * (b + d)
    x = a * d - b * c
    phi = 0.0 if den == 0 else (max(x - n / 2, 0) if x > 0 else x) / math.sqrt(den)
    e = p1 - p2
    return (e - math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2),
            e + math.sqrt((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2))


@pytest.mark.parametrize("table", [(520, 11, 3, 6), (30, 0, 0, 510), (0, 10, 0, 0),
                                   (48, 1, 1, 490), (5, 40, 2, 493), (1, 1, 7, 12)])
def test_newcombe_equals_formula(table):
    _, lo, hi = paired_difference(*table)
    flo, fhi = newcombe_by_formula(*table)
    assert lo == pytest.approx(max(flo, -1), abs=1e-9)
    assert hi == pytest.approx(min(fhi, 1), abs=1e-9)
    assert lo <= (table[1] - table[2]) / sum(table) <= hi


def test_interval_coverage_and_test_size_by_simulation():
    """540 paired images, as in the digits report: the 95 % interval of the difference covers
    the true difference about 95 % of the time, and the exact test rejects a true null at most
    5 % of the time (it is conservative)."""
    rng = np.random.default_rng(1)
    n, sims = 540, 500
    for probs in ((0.95, 0.015, 0.015, 0.02), (0.93, 0.03, 0.01, 0.03)):   # a, b, c, d
        true = probs[1] - probs[2]
        cache, cover, reject = {}, 0, 0
        for t in map(tuple, rng.multinomial(n, probs, size=sims)):
            if t not in cache:
                _, lo, hi = paired_difference(*t)
                cache[t] = (lo <= true <= hi, mcnemar_exact(t[1], t[2]) < 0.05)
            cover += cache[t][0]
            reject += cache[t][1]
        assert 0.92 <= cover / sims <= 0.98, (probs, cover / sims)
        if probs[1] == probs[2]:
            assert reject / sims <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / sims), reject / sims


def test_compare_paired_counts_and_units():
    ref = np.array([1] * 500 + [1] * 11 + [0] * 3 + [0] * 26, bool)
    cur = np.array([1] * 500 + [0] * 11 + [1] * 3 + [0] * 26, bool)
    r = compare_paired(ref, cur)
    assert (r["only_ref_correct"], r["only_this_correct"]) == (11, 3)
    assert r["drop_pp"] == pytest.approx(100 * 8 / 540)
    assert r["mcnemar_p"] == pytest.approx(mcnemar_by_definition(11, 3))
    lo, hi = newcombe_by_formula(500, 11, 3, 26)
    assert r["drop_ci95_low_pp"] == pytest.approx(100 * lo) and r["drop_ci95_high_pp"] == \
        pytest.approx(100 * hi)
    assert r["significant"] == (r["mcnemar_p"] < 0.05)
    with pytest.raises(ValueError):
        compare_paired(ref, cur[:-1])
