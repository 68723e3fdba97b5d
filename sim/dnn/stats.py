"""Uncertainty of accuracies measured on a finite test set (95 % intervals, paired tests).

* :func:`accuracy_interval` - Wilson score interval of a proportion ``k / n`` (no continuity
  correction; :func:`scipy.stats.binomtest`).
* :func:`mcnemar_exact` - exact McNemar test of two classifiers evaluated on the *same* images:
  two-sided binomial test of the ``b`` images only the first gets right against the ``c`` only
  the second gets right, ``B(b + c, 1/2)`` under the null hypothesis of equal accuracy.
* :func:`paired_difference` - difference of the two paired accuracies ``(b - c) / n`` with
  Newcombe's (1998) method 10 interval: the Wilson intervals ``(l1, u1)``, ``(l2, u2)`` of both
  accuracies combined by square-and-add, corrected for the correlation of the pairs by
  ``phi = C / sqrt((a+b)(c+d)(a+c)(b+d))``, ``C = ad - bc - n/2`` if ``ad - bc > n/2``, ``0`` if
  ``0 <= ad - bc <= n/2``, ``ad - bc`` if negative (``phi = 0`` when a margin is empty)::

      lower = D - sqrt((p1-l1)^2 - 2 phi (p1-l1)(u2-p2) + (u2-p2)^2)
      upper = D + sqrt((p2-l2)^2 - 2 phi (p2-l2)(u1-p1) + (u1-p1)^2)

  with ``a`` = images both get right, ``d`` = both wrong, ``p1 = (a+b)/n``, ``p2 = (a+c)/n``.
  Newcombe, Stat. Med. 17:2635-2650 (1998); Fagerland, Lydersen & Laake, *Statistical Analysis
  of Contingency Tables* (2017), ch. 8 ("Newcombe square-and-add").

:func:`compare_paired` bundles the three for two per-image correctness vectors.
"""

from __future__ import annotations

import math

import numpy as np

from hw.extras import require

__all__ = ["CONFIDENCE", "ALPHA", "accuracy_interval", "mcnemar_exact", "paired_difference",
           "accuracy_stats", "compare_paired", "DROP_METHOD", "TEST_METHOD", "ACCURACY_METHOD"]

#: Confidence level of every interval, and the significance level of the paired test.
CONFIDENCE = 0.95
ALPHA = 0.05
ACCURACY_METHOD = "Wilson score interval"
DROP_METHOD = "Newcombe (1998) method 10 (paired square-and-add of Wilson intervals)"
TEST_METHOD = "exact McNemar test (two-sided binomial test on the discordant images)"


def accuracy_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval ``(low, high)`` of the proportion ``k / n`` (``0 <= k <= n``)."""
    require("scipy", "confidence intervals")
    from scipy.stats import binomtest

    k, n = int(k), int(n)
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value of ``b`` against ``c`` discordant pairs (1 if none)."""
    from scipy.stats import binomtest

    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    if b + c == 0:
        return 1.0
    return float(binomtest(b, b + c, 0.5).pvalue)


def paired_difference(a: int, b: int, c: int, d: int,
                      confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """``(D, low, high)``: ``D = p1 - p2 = (b - c) / n`` of a paired 2x2 table and its Newcombe
    method 10 interval (module docstring). ``a`` = both succeed, ``b`` = only the first,
    ``c`` = only the second, ``d`` = neither."""
    a, b, c, d = (int(v) for v in (a, b, c, d))
    if min(a, b, c, d) < 0:
        raise ValueError(f"counts must be >= 0, got {(a, b, c, d)}")
    n = a + b + c + d
    if n < 1:
        raise ValueError("empty table")
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = accuracy_interval(a + b, n, confidence)
    l2, u2 = accuracy_interval(a + c, n, confidence)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    phi = 0.0
    if margins > 0:
        cross = a * d - b * c
        num = cross - n / 2 if cross > n / 2 else (0.0 if cross >= 0 else cross)
        phi = num / math.sqrt(margins)
    dl1, du1, dl2, du2 = p1 - l1, u1 - p1, p2 - l2, u2 - p2
    diff = (b - c) / n
    low = diff - math.sqrt(max(dl1 ** 2 - 2 * phi * dl1 * du2 + du2 ** 2, 0.0))
    high = diff + math.sqrt(max(dl2 ** 2 - 2 * phi * dl2 * du1 + du1 ** 2, 0.0))
    return diff, max(low, -1.0), min(high, 1.0)


def accuracy_stats(k: int, n: int) -> dict:
    """``{"accuracy", "correct", "n", "ci95_low", "ci95_high"}`` of ``k`` right out of ``n``."""
    lo, hi = accuracy_interval(k, n)
    return {"accuracy": k / n, "correct": int(k), "n": int(n), "ci95_low": lo, "ci95_high": hi}


def compare_paired(ref_correct, correct) -> dict:
    """Accuracy drop of ``correct`` against ``ref_correct`` (boolean per-image vectors over the
    same images), in percentage points: ``drop_pp`` (ref - this), its interval
    ``drop_ci95_low_pp``/``drop_ci95_high_pp``, the McNemar p-value ``mcnemar_p``, the
    discordant counts ``only_ref_correct``/``only_this_correct`` and ``significant``
    (``p < ALPHA``)."""
    ref = np.asarray(ref_correct, dtype=bool)
    cur = np.asarray(correct, dtype=bool)
    if ref.shape != cur.shape or ref.ndim != 1:
        raise ValueError(f"per-image vectors differ in shape: {ref.shape} vs {cur.shape}")
    a = int((ref & cur).sum())
    b = int((ref & ~cur).sum())
    c = int((~ref & cur).sum())
    d = int((~ref & ~cur).sum())
    diff, lo, hi = paired_difference(a, b, c, d)
    p = mcnemar_exact(b, c)
    return {"drop_pp": 100.0 * diff, "drop_ci95_low_pp": 100.0 * lo,
            "drop_ci95_high_pp": 100.0 * hi, "mcnemar_p": p, "significant": p < ALPHA,
            "only_ref_correct": b, "only_this_correct": c}
