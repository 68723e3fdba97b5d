"""Fast bit-exact emulation of approximate GEMMs: equals :mod:`sim.golden` on every input.

:func:`emulate` computes ``a (M x K) @ b (K x N)`` exactly as :func:`sim.golden.gemm_reference`
(a single multiplier, sequential accumulation) or :func:`sim.golden.tiled_gemm` (an
:class:`~sim.golden.ArrayModel`, including heterogeneous per-row / per-column grids) does, but at
close to BLAS speed. It works in two steps.

1. **Exact sum of approximate products** ``S[m, n] = sum_k p(a[m, k], b[k, n])`` (unbounded
   integers), by one of three methods chosen per multiplier (:func:`plan`):

   * ``separable``: the product is written as ``p(a, b) = c + sum_t f_t(a) * g_t(b)`` with
     integer lookup vectors ``f_t``, ``g_t`` over the operand values, so ``S`` is ``K*c`` plus a
     few integer GEMMs ``f_t(A) @ g_t(B)``. They run on float32 BLAS where every partial sum is
     provably below ``2**24`` (float64 below ``2**53``, splitting ``K`` when needed), hence exactly.
     Decompositions (``register_decomposition``):

     - exact: ``a*b``;
     - truncated / BAM / perforated (keep mask over the Baugh-Wooley array, :mod:`hw.mult.pparray`):
       ``a*b + comp - sum_dropped 2^(i+j) [inv + (1-2 inv) a_i b_j]``, the dropped bits grouped
       by bit of ``a`` (or of ``b``, whichever gives fewer terms); proportional terms are merged, so
       perforation is one GEMM ``a * (b with the skipped rows cleared)``;
     - DRUM: ``sa*D(|a|) * sb*D(|b|)`` (one GEMM);
     - Kulkarni: ``a*b - 2 * (sa sum_i [X_i=3] 4^i) * (sb sum_j [Y_j=3] 4^j)`` (base-4 digits);
     - RoBA: ``a*b - sa(|a| - Xr) * sb(|b| - Yr)``;
     - ETM: high-part product, low-part product where both high parts are 0, and the OR-scan
       fill as a function of ``max(level_a, level_b)`` written with ``[level < c]`` indicators
       (``2M + 4`` terms).

     For widths up to 12 every decomposition is checked against ``spec.table()`` once per
     process; pairs where the ``2N``-bit product wraps (e.g. signed ``drum2`` at -128 * -128) are
     repaired with a few one-hot terms, and a decomposition that does not match falls back to the
     table method.
   * ``table``: any other multiplier with ``N <= 12`` (Mitchell, product tables): for each
     ``k`` the table columns of ``b[k, :]`` are gathered once (``2^N x N``) and their rows added
     for every ``a[m, k]`` (a contiguous row gather), on whichever side is shorter; a signed
     sign-magnitude table gathers from the half-size magnitude table and negates rows; large
     problems are split over ``THREADS`` worker threads by output column.
   * ``model``: ``N > 12`` without a provably wrap-free decomposition: ``spec.model`` on chunks.

2. **The accumulator**: ``wrap`` reduces ``S`` (plus ``start``) modulo ``2**A`` - modular
   addition is associative, so this equals every step-wise and tile-wise wrap. ``saturate``
   equals the plain sum whenever no partial sum can leave ``[-2**(A-1), 2**(A-1)-1]``; this is
   proved per output from ``sum_k max|p(a[m,k], .)|`` (row bound) and ``sum_k max|p(., b[k,n])|``
   (column bound). Outputs where neither bound proves it are recomputed by the exact sequential
   clamp, in ``k`` order and with the array's ``K`` tiles and host additions (``ws``), as the
   hardware does.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from hw.mult import MultiplierError, MultiplierSpec, parse
from hw.mult.pparray import PartialProductArraySpec
from sim.golden import OVERFLOW_MODES, ArrayModel, accumulate, check_gemm_shapes

__all__ = ["Plan", "plan", "register_decomposition", "emulate", "emulate_gemm",
           "emulate_tiled", "product_sum", "METHODS"]

METHODS = ("separable", "table", "model")
F32_EXACT = 1 << 24          # float32 integers below this are exact, so is every partial sum
F64_EXACT = 1 << 53
MAX_TABLE_WIDTH = 12
MAX_RESIDUAL_TERMS = 4       # one-hot repair terms allowed before giving up on a decomposition
GATHER_ELEMS = 1 << 22       # elements per chunk of the model fallback
#: Worker threads of the table gather (numpy releases the GIL); ``AXM_EMULATE_THREADS`` overrides.
THREADS = max(1, int(os.environ.get("AXM_EMULATE_THREADS", min(os.cpu_count() or 1, 4))))
PARALLEL_MIN_WORK = 1 << 21  # M*N*K below which the gather stays on one thread

# -- decompositions --------------------------------------------------------------------------------

_DECOMPOSITIONS: list[tuple[type, Callable]] = []


def register_decomposition(cls: type, fn: Callable) -> None:
    """Declare ``fn(spec) -> (const, [(f, g), ...], wrap_free)`` for specs of class ``cls``.

    ``f`` and ``g`` are int64 vectors over ``spec.operand_values()``; the unwrapped product must
    be ``const + sum_t f_t[a] * g_t[b]``. ``wrap_free`` says the value provably fits the ``2N``-bit
    product (needed above 12 bits, where no table check is possible).
    """
    _DECOMPOSITIONS.insert(0, (cls, fn))


def _sign(v):
    return np.where(v < 0, -1, 1).astype(np.int64)


def _fits(spec, const, terms) -> bool:
    """Crude proof that signed ``const + sum f*g`` never leaves the product range (``False``
    for unsigned specs: a negative value would wrap)."""
    bound = abs(const) + sum(int(np.abs(f).max()) * int(np.abs(g).max()) for f, g in terms)
    return spec.signed and bound <= (1 << (2 * spec.width - 1)) - 1


def _decompose_exact(spec):
    v = spec.operand_values()
    return 0, [(v, v.copy())], True


def _decompose_pparray(spec: PartialProductArraySpec):
    n = spec.width
    v = spec.operand_values()
    u = v & ((1 << n) - 1)
    bits = [(u >> i) & 1 for i in range(n)]
    dropped = spec.dropped_positions()
    const = int(spec.compensation())
    s = np.zeros((n, n), dtype=object)       # raw = a*b + const - sum_ij s_ij a_i b_j
    for i, j in dropped:
        inv = spec._inverted(i, j)
        const -= (1 << (i + j)) if inv else 0
        s[i, j] = (-1 if inv else 1) * (1 << (i + j))
    by_a = [(bits[i], -sum(int(s[i, j]) * bits[j] for j in range(n)))
            for i in range(n) if any(s[i, j] for j in range(n))]
    by_b = [(-sum(int(s[i, j]) * bits[i] for i in range(n)), bits[j])
            for j in range(n) if any(s[i, j] for i in range(n))]
    terms = [(v, v.copy())] + [(np.asarray(f, np.int64), np.asarray(g, np.int64))
                               for f, g in (by_a if len(by_a) <= len(by_b) else by_b)]
    # Unsigned: the value is the sum of kept bits (0 <= kept <= a*b) plus the compensation.
    top = (1 << spec.width) - 1
    wrap_free = ((not spec.signed and top * top + const <= (1 << 2 * n) - 1)
                 or _fits(spec, const, terms))
    return const, terms, wrap_free


def _decompose_drum(spec):
    v = spec.operand_values()
    # D(1) = 1 for every K >= 2, so model(x, 1) = sign(x) * D(|x|).
    f = spec.model(v, 1)
    g = spec.model(1, v)
    wrap_free = int(np.abs(f).max()) * int(np.abs(g).max()) <= (
        (1 << (2 * spec.width - 1)) - 1 if spec.signed else (1 << 2 * spec.width) - 1)
    return 0, [(f, g)], wrap_free


def _decompose_kulkarni(spec):
    v = spec.operand_values()
    mag, sg = np.abs(v), _sign(v)
    q = np.zeros_like(v)
    for i in range((spec.width + 1) // 2 + 1):
        q += np.where(((mag >> (2 * i)) & 3) == 3, 1 << (2 * i), 0)
    # p = x*y - 2 * sum_ij [X_i = 3][Y_j = 3] 4^(i+j): each 3x3 digit block gives 7, not 9.
    return 0, [(v, v.copy()), (-2 * sg * q, sg * q)], True


def _decompose_roba(spec):
    v = spec.operand_values()
    mag, sg = np.abs(v), _sign(v)
    t = np.zeros_like(mag)
    for s in range(spec.width + 1):
        t = np.where(mag >> s > 0, s, t)
    lower = np.where(mag > 0, 1 << t, 0)
    rounded = np.where(2 * mag >= 3 * lower, 2 * lower, lower)
    d = sg * (mag - rounded)
    # Xr*y + x*Yr - Xr*Yr = x*y - (x - Xr)(y - Yr), signs applied to both factors.
    return 0, [(v, v.copy()), (-d, d.copy())], not spec.signed or _fits(spec, 0, [(v, v), (d, d)])


def _decompose_etm(spec):
    v = spec.operand_values()
    mm = spec._m
    mag, sg = np.abs(v), _sign(v)
    hi, lo = mag >> mm, mag & ((1 << mm) - 1)
    z = (hi == 0).astype(np.int64)
    level = np.zeros_like(lo)                 # 0 when the low part is 0, else floor_log2 + 1
    for s in range(mm):
        level = np.where(lo >> s > 0, s + 1, level)

    def h(c):                                 # fill value for max(level) == c
        return 0 if c == 0 else (1 << (mm + c)) - 1

    # p = Z_a Z_b lo_a lo_b + hi_a hi_b 2^2M + (1 - Z_a Z_b) h(max(level_a, level_b)),
    # h(max) = h(M) - sum_c (h(c) - h(c-1)) [level_a < c][level_b < c]; signs on both sides.
    terms = [(sg * z * lo, sg * z * lo), (sg * hi << (2 * mm), sg * hi), (sg, sg * h(mm)),
             (-sg * z, sg * z * h(mm))]
    for c in range(1, mm + 1):
        below = (level < c).astype(np.int64)
        d = h(c) - h(c - 1)
        terms += [(-sg * below * d, sg * below), (sg * z * below * d, sg * z * below)]
    return 0, terms, True


def _register_builtin():
    from hw.mult import drum, etm, exact, kulkarni, roba
    register_decomposition(etm.EtmSpec, _decompose_etm)
    register_decomposition(PartialProductArraySpec, _decompose_pparray)
    register_decomposition(exact.ExactSpec, _decompose_exact)
    register_decomposition(drum.DrumSpec, _decompose_drum)
    register_decomposition(kulkarni.KulkarniSpec, _decompose_kulkarni)
    register_decomposition(roba.RobaSpec, _decompose_roba)


_register_builtin()


def _proportional(x, y):
    """Integer ``c`` with ``x == c * y`` (``y`` not all zero), else ``None``."""
    nz = np.flatnonzero(y)
    if nz.size == 0:
        return None
    i = nz[0]
    if x[i] % y[i]:
        return None
    c = x[i] // y[i]
    return int(c) if np.array_equal(x, c * y) else None


def _merge_terms(terms):
    """Merge terms whose ``f`` (or ``g``) vectors are integer multiples of each other."""
    terms = [(f, g) for f, g in terms if f.any() and g.any()]
    changed = True
    while changed:
        changed = False
        for i in range(len(terms)):
            for j in range(len(terms)):
                if i == j:
                    continue
                (fi, gi), (fj, gj) = terms[i], terms[j]
                c = _proportional(fi, fj)
                if c is not None:              # fi gi + fj gj = fj (c gi + gj)
                    merged = (fj, c * gi + gj)
                else:
                    c = _proportional(gi, gj)
                    merged = (c * fi + fj, gj) if c is not None else None
                if merged is None:
                    continue
                rest = [t for k, t in enumerate(terms) if k not in (i, j)]
                terms = rest + ([merged] if merged[0].any() and merged[1].any() else [])
                changed = True
                break
            if changed:
                break
    return terms


@dataclass(frozen=True, eq=False)
class Plan:
    """How :func:`product_sum` computes sums of products of one multiplier.

    ``method`` is one of :data:`METHODS`; ``separable`` plans hold ``const`` and the lookup
    matrices ``f`` / ``g`` (terms x operand values); ``table`` plans hold the product table.
    """

    spec: MultiplierSpec
    method: str
    const: int = 0
    f: np.ndarray | None = field(default=None, repr=False)
    g: np.ndarray | None = field(default=None, repr=False)
    table: np.ndarray | None = field(default=None, repr=False)
    note: str = ""
    mag_table: np.ndarray | None = field(default=None, repr=False)

    @functools.cached_property
    def table_abs_max(self) -> int:
        return int(np.abs(self.table).max()) if self.table is not None else 0

    @property
    def terms(self) -> int:
        return 0 if self.f is None else self.f.shape[0]

    @functools.cached_property
    def abs_max_a(self) -> np.ndarray:
        """``max_b |p(a, b)|`` for every operand value ``a`` (an upper bound above 12 bits)."""
        return self._abs_max(0)

    @functools.cached_property
    def abs_max_b(self) -> np.ndarray:
        return self._abs_max(1)

    def _abs_max(self, axis):
        if self.table is not None:
            return np.abs(self.table).max(axis=1 - axis)
        if self.method == "separable":
            own, other = (self.f, self.g) if axis == 0 else (self.g, self.f)
            return abs(self.const) + np.abs(own).T @ np.abs(other).max(axis=1)
        w = self.spec.product_width
        bound = (1 << (w - 1)) if self.spec.signed else (1 << w) - 1
        return np.full(1 << self.spec.width, bound, dtype=np.int64)


def _find_decomposition(spec):
    for cls, fn in _DECOMPOSITIONS:
        if isinstance(spec, cls):
            return fn(spec)
    return None


@functools.lru_cache(maxsize=256)
def plan(spec: MultiplierSpec) -> Plan:
    """The emulation plan of ``spec`` (cached per process; see the module docstring)."""
    spec = parse(spec) if isinstance(spec, str) else spec
    dec = _find_decomposition(spec)
    if spec.width > MAX_TABLE_WIDTH:
        if dec is not None and dec[2]:
            const, terms, _ = dec
            terms = _merge_terms(terms)
            return Plan(spec, "separable", const, np.array([f for f, _ in terms]),
                        np.array([g for _, g in terms]), note="unchecked above 12 bits")
        return Plan(spec, "model")
    table = spec.table()
    if dec is not None:
        const, terms, _ = dec
        terms = _merge_terms(terms)
        f = np.array([t[0] for t in terms], dtype=np.int64).reshape(len(terms), -1)
        g = np.array([t[1] for t in terms], dtype=np.int64).reshape(len(terms), -1)
        raw = const + f.T @ g
        residual = table - raw
        rows = np.flatnonzero(residual.any(axis=1))
        cols = np.flatnonzero(residual.any(axis=0))
        if min(rows.size, cols.size) <= MAX_RESIDUAL_TERMS:
            def onehot(i):
                e = np.zeros(table.shape[0], dtype=np.int64)
                e[i] = 1
                return e

            extra = ([(onehot(r), residual[r]) for r in rows] if rows.size <= cols.size
                     else [(residual[:, c], onehot(c)) for c in cols])
            if extra:
                f = np.vstack([f] + [e[0][None] for e in extra])
                g = np.vstack([g] + [e[1][None] for e in extra])
            return Plan(spec, "separable", const, f, g, table=table,
                        note=f"{len(extra)} wrap repair terms" if extra else "")
        return Plan(spec, "table", table=table, mag_table=_magnitude_table(spec, table),
                    note="decomposition did not match the model; using the table")
    return Plan(spec, "table", table=table, mag_table=_magnitude_table(spec, table))


def _magnitude_table(spec, table):
    """``T+`` with ``T[a, b] = sa sb T+[|a|, |b|]`` for a signed sign-magnitude table, or None."""
    if not spec.signed:
        return None
    v = spec.operand_values()
    mag, sg = np.abs(v), _sign(v)
    tm = np.zeros((mag.max() + 1,) * 2, dtype=np.int64)
    tm[mag[:, None], mag[None, :]] = table * sg[:, None] * sg[None, :]
    if not np.array_equal(tm[mag[:, None], mag[None, :]] * sg[:, None] * sg[None, :], table):
        return None
    return tm


# -- exact sums of approximate products ------------------------------------------------------------

def _check_operands(spec, a, b):
    lo, hi = spec.operand_range
    for label, x in (("a", a), ("b", b)):
        if x.size and (x.min() < lo or x.max() > hi):
            raise MultiplierError(f"operand {label} of {spec.full_name} outside {lo}..{hi}")


def _separable_sum(p: Plan, ai, bi, mask):
    """``sum_k const + sum_t f_t(a) g_t(b)`` (only where ``mask[k, n]`` when given), exact int64.

    All terms go into one GEMM ``A' (M x K*T) @ B' (K*T x N)`` with ``A'[m, k*T+t] = f_t(a[m,k])``
    and ``B'[k*T+t, n] = g_t(b[k,n])``, run in float32 when every partial sum is provably below
    ``2**24`` (float64 below ``2**53``), splitting ``K`` into chunks otherwise.
    """
    m, k = ai.shape
    n = bi.shape[1]
    per_k = int((np.abs(p.f).max(axis=1) * np.abs(p.g).max(axis=1)).sum())  # max |sum_t f g|
    chunk, dtype = k, np.float32
    if per_k * k >= F32_EXACT:
        chunk = F32_EXACT // max(per_k, 1) - 1
        if chunk < 64:
            chunk, dtype = F64_EXACT // max(per_k, 1) - 1, np.float64
    single = p.terms == 1
    ft = p.f.T.astype(dtype)                         # values x terms
    gt = (p.g if single else p.g.T).astype(dtype)
    out = None
    for k0 in range(0, k, max(chunk, 1)):
        k1 = min(k, k0 + chunk)
        fa = np.take(ft, ai[:, k0:k1], axis=0).reshape(m, -1)          # M x (K*T)
        if single:
            gb = np.take(gt[0], bi[k0:k1])                             # K x N
            if mask is not None:
                gb *= mask[k0:k1]
        else:
            gb = np.take(gt, bi[k0:k1].T, axis=0)                      # N x K x T
            if mask is not None:
                gb *= mask[k0:k1].T[:, :, None]
            gb = gb.reshape(n, -1).T
        part = np.matmul(fa, gb).astype(np.int64)
        out = part if out is None else out + part
    if out is None:
        out = np.zeros((m, n), dtype=np.int64)
    if p.const:
        count = k if mask is None else mask.sum(axis=0)[None, :]
        out += p.const * count
    return out


def _table_sum(p: Plan, ai, bi, mask):
    """``sum_k T[a, b]`` by per-k gathers, exact int64.

    For each ``k`` the table columns of one operand row are gathered once (``U = T[:, b[k, :]]``,
    ``values x N``) and then added row by row for every ``a[m, k]`` (a contiguous row gather);
    the roles are swapped when ``M < N``. A sign-magnitude table (``T[a, b] = sa sb T+[|a|, |b|]``)
    gathers from ``T+`` (half the rows) and appends the negated rows instead.
    """
    m, k = ai.shape
    n = bi.shape[1]
    tmax = p.table_abs_max
    acc = np.int32 if tmax * max(k, 1) < (1 << 31) else np.int64
    signmag = p.mag_table is not None
    transpose = m < n and mask is None
    if transpose:       # C^T = sum_k T^T[b, a]: gather along the shorter side
        ai, bi = bi.T, ai.T
        m, n = n, m
    if signmag:
        vals = p.spec.operand_values()
        h = p.mag_table.shape[0]
        tab = p.mag_table.T if transpose else p.mag_table
        rows = np.take(np.abs(vals) + h * (vals < 0), ai)   # row index into [T+ ; -T+]
        cols = np.take(np.abs(vals), bi)
        csign = np.take(np.where(vals < 0, -1, 1).astype(acc), bi)
    else:
        tab = p.table.T if transpose else p.table
        rows, cols, csign = ai, bi, None
    ncols = tab.shape[1]
    tab = np.ascontiguousarray(tab, dtype=acc)
    if mask is not None:                               # masked products read a zero column
        tab = np.concatenate([tab, np.zeros((tab.shape[0], 1), acc)], axis=1)
        cols = np.where(mask, cols, ncols)
    out = np.zeros((m, n), dtype=acc)

    def work(c0, c1):           # output columns c0:c1 (numpy releases the GIL in take/add)
        o = out[:, c0:c1]
        cl = cols[:, c0:c1]
        if signmag:
            sg = csign[:, c0:c1]
            u = np.empty((2 * tab.shape[0], c1 - c0), dtype=acc)
            top, bottom = u[:tab.shape[0]], u[tab.shape[0]:]
            for kk in range(k):
                np.multiply(np.take(tab, cl[kk], axis=1), sg[kk], out=top)
                np.negative(top, out=bottom)
                o += np.take(u, rows[:, kk], axis=0)
        else:
            for kk in range(k):
                o += np.take(np.take(tab, cl[kk], axis=1), rows[:, kk], axis=0)

    threads = min(THREADS, n // 32) if m * n * k >= PARALLEL_MIN_WORK else 1
    if threads > 1:
        bounds = np.linspace(0, n, threads + 1).astype(int)
        list(_pool().map(lambda i: work(bounds[i], bounds[i + 1]), range(threads)))
    else:
        work(0, n)
    out = out.astype(np.int64)
    return out.T if transpose else out


_POOL = None


def _pool():
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor
        _POOL = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="emulate")
    return _POOL


def _model_sum(p: Plan, a, b, mask):
    spec = p.spec
    m, k = a.shape
    n = b.shape[1]
    out = np.zeros((m, n), dtype=np.int64)
    chunk = max(1, GATHER_ELEMS // max(m * n, 1))
    for k0 in range(0, k, chunk):
        prod = spec.model(a[:, k0:k0 + chunk, None], b[None, k0:k0 + chunk, :])
        if mask is not None:
            prod = prod * mask[None, k0:k0 + chunk, :]
        out += prod.sum(axis=1)
    return out


def _psum(spec, a, b, mask=None):
    """:func:`product_sum` without validation (operands already checked)."""
    p = plan(spec)
    if p.method == "model":
        return _model_sum(p, a, b, mask)
    lo = spec.operand_range[0]
    ai = a.astype(np.intp)
    bi = b.astype(np.intp)
    if lo:
        ai -= lo
        bi -= lo
    if p.method == "separable":
        return _separable_sum(p, ai, bi, mask)
    return _table_sum(p, ai, bi, mask)


def product_sum(a, b, spec, mask=None) -> np.ndarray:
    """Exact (unbounded, int64) ``sum_k spec.model(a[m, k], b[k, n])`` for ``a (M x K)``,
    ``b (K x N)``. ``mask`` (``K x N`` bool) keeps only the products where it is true."""
    spec = parse(spec) if isinstance(spec, str) else spec
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    check_gemm_shapes(a, b)
    _check_operands(spec, a, b)
    if mask is not None:
        mask = np.broadcast_to(np.asarray(mask, dtype=bool), (a.shape[1], b.shape[1]))
    return _psum(spec, a, b, mask)


# -- accumulator -----------------------------------------------------------------------------------

def _check_acc(acc_width, overflow):
    if overflow not in OVERFLOW_MODES:
        raise ValueError(f"overflow mode must be one of {', '.join(OVERFLOW_MODES)}, "
                         f"not {overflow!r}")
    if not isinstance(acc_width, (int, np.integer)) or not 2 <= acc_width <= 63:
        raise ValueError(f"accumulator width must be an integer in 2..63, not {acc_width!r}")


class _Assignment:
    """Which multiplier computes each product: ``ids`` (indices into ``specs``) tiled
    periodically over ``(k, n)`` (``axis0 == "k"``: ws arrays, single multipliers) or over
    ``(m, n)`` (``"m"``: os arrays)."""

    def __init__(self, specs, ids, axis0):
        self.specs = specs
        self.ids = ids
        self.axis0 = axis0

    def grid_for(self, size0, size1):
        pr, pc = self.ids.shape
        return self.ids[np.ix_(np.arange(size0) % pr, np.arange(size1) % pc)]

    def groups(self, size0, size1):
        """``(spec, rows, cols, mask-or-None)`` for every spec in use."""
        if len(self.specs) == 1:
            yield self.specs[0], slice(None), slice(None), None
            return
        grid = self.grid_for(size0, size1)
        for sid, spec in enumerate(self.specs):
            sel = grid == sid
            rows = np.flatnonzero(sel.any(axis=1))
            cols = np.flatnonzero(sel.any(axis=0))
            if rows.size == 0:
                continue
            sub = sel[np.ix_(rows, cols)]
            yield spec, rows, cols, (None if sub.all() else sub)


def _single(spec):
    return _Assignment([spec], np.zeros((1, 1), dtype=np.intp), "k")


def _raw(a, b, assign):
    """Exact sums ``S[m, n] = sum_k p_(m,k,n)(a[m, k], b[k, n])``."""
    m, k = a.shape
    n = b.shape[1]
    if len(assign.specs) == 1:
        return _psum(assign.specs[0], a, b)
    total = np.zeros((m, n), dtype=np.int64)
    if assign.axis0 == "k":
        for spec, ks, ns, mask in assign.groups(k, n):
            total[:, ns] += _psum(spec, a[:, ks], b[np.ix_(ks, ns)], mask)
        return total
    for spec, ms, ns, mask in assign.groups(m, n):
        part = _psum(spec, a[ms], b[:, ns])
        if mask is None:
            total[np.ix_(ms, ns)] = part
        else:
            block = total[np.ix_(ms, ns)]
            block[mask] = part[mask]
            total[np.ix_(ms, ns)] = block
    return total


def _bounds(a, b, assign):
    """Upper bounds of ``sum_k |p|`` per output: ``min(row bound, column bound)`` (M x N)."""
    m, k = a.shape
    n = b.shape[1]
    row_b = np.zeros((m, n), dtype=np.int64)
    col_b = np.zeros((m, n), dtype=np.int64)
    axis_k = assign.axis0 == "k"
    for spec, r, c, mask in assign.groups(k if axis_k else m, n):
        p = plan(spec)
        lo = spec.operand_range[0]
        if axis_k:
            pa = p.abs_max_a[a[:, r] - lo]                 # M x K': |p(a, anything)|
            pb = p.abs_max_b[b[r][:, c] - lo]              # K' x N'
            if mask is not None:
                pb = pb * mask
            row_b[:, c] += pa.sum(axis=1, keepdims=True)   # (over-counts masked k: still a bound)
            col_b[:, c] += pb.sum(axis=0)[None, :]
        else:
            rb = p.abs_max_a[a[r] - lo].sum(axis=1)[:, None]
            cb = p.abs_max_b[b[:, c] - lo].sum(axis=0)[None, :]
            sel = np.ones((len(np.arange(m)[r]), len(np.arange(n)[c])), bool) \
                if mask is None else mask
            for dst, src in ((row_b, rb), (col_b, cb)):
                block = dst[np.ix_(np.arange(m)[r], np.arange(n)[c])]
                block[sel] = np.broadcast_to(src, sel.shape)[sel]
                dst[np.ix_(np.arange(m)[r], np.arange(n)[c])] = block
    return np.minimum(row_b, col_b)


def _products_k(a_col, b_row, assign, kk):
    """Products of reduction step ``kk`` for every output (exact model values)."""
    m, n = a_col.size, b_row.size
    if len(assign.specs) == 1:
        return assign.specs[0].model(a_col[:, None], b_row[None, :])
    if assign.axis0 == "k":
        pr, pc = assign.ids.shape
        ids = np.broadcast_to(assign.ids[kk % pr][np.arange(n) % pc], (m, n))
    else:
        ids = assign.grid_for(m, n)
    out = np.empty((m, n), dtype=np.int64)
    for sid in np.unique(ids):
        sel = ids == sid
        out[sel] = assign.specs[sid].model(a_col[:, None], b_row[None, :])[sel]
    return out


def _sequential(a, b, assign, acc_width, start, tile_rows):
    """Exact step-by-step saturating accumulation (ws: K tiles of ``tile_rows`` added by the
    host with the same rule; otherwise one pass from ``start``)."""
    m, k = a.shape
    n = b.shape[1]
    if tile_rows is None:
        acc = np.zeros((m, n), np.int64) if start is None else start.copy()
        for kk in range(k):
            acc = accumulate(acc, _products_k(a[:, kk], b[kk], assign, kk),
                             acc_width, "saturate")
        return acc
    out = None
    for k0 in range(0, k, tile_rows):
        part = np.zeros((m, n), np.int64)
        for kk in range(k0, min(k, k0 + tile_rows)):
            part = accumulate(part, _products_k(a[:, kk], b[kk], assign, kk),
                              acc_width, "saturate")
        out = part if out is None else accumulate(out, part, acc_width, "saturate")
    return np.zeros((m, n), np.int64) if out is None else out


def _global_bound(assign, k):
    """``K * max |p|`` over every multiplier in use (no data needed)."""
    return k * max(int(max(plan(s).abs_max_a.max(), 0)) for s in assign.specs)


def _emulate(a, b, assign, acc_width, overflow, start=None, tile_rows=None):
    _check_acc(acc_width, overflow)
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    check_gemm_shapes(a, b)
    m, k = a.shape
    n = b.shape[1]
    if start is not None:
        start = np.broadcast_to(np.asarray(start, dtype=np.int64), (m, n)).copy()
    checked = set()
    for spec in assign.specs:
        if (spec.width, spec.signed) not in checked:
            _check_operands(spec, a, b)
            checked.add((spec.width, spec.signed))
    if k == 0:                      # no step runs: the accumulator keeps its start value
        return np.zeros((m, n), np.int64) if start is None else start
    total = _raw(a, b, assign)
    slack = 0 if start is None else np.abs(start)
    if start is not None:
        total += start
    limit = (1 << (acc_width - 1)) - 1
    if _global_bound(assign, k) + (0 if start is None else int(slack.max())) <= limit:
        return total                # no partial sum can leave the accumulator range
    if overflow == "wrap":          # modular addition is associative
        return accumulate(np.zeros_like(total), total, acc_width, "wrap")
    safe = _bounds(a, b, assign) + slack <= limit
    if safe.all():
        return total
    rows = np.flatnonzero(~safe.all(axis=1))
    cols = np.flatnonzero(~safe.all(axis=0))
    if assign.axis0 == "m":         # keep each output's own multiplier
        sub = _Assignment(assign.specs, assign.grid_for(m, n)[np.ix_(rows, cols)], "m")
    elif cols.size != n:
        sub = _Assignment(assign.specs, assign.grid_for(k, n)[:, cols], "k")
    else:
        sub = assign
    exact = _sequential(a[rows], b[:, cols], sub, acc_width,
                        None if start is None else start[np.ix_(rows, cols)], tile_rows)
    block = total[np.ix_(rows, cols)]
    unsafe = ~safe[np.ix_(rows, cols)]
    block[unsafe] = exact[unsafe]
    total[np.ix_(rows, cols)] = block
    return total


# -- public entry points ---------------------------------------------------------------------------

def _grid_assignment(grid, k, n):
    if isinstance(grid, (MultiplierSpec, str)):
        return _single(parse(grid) if isinstance(grid, str) else grid)
    if callable(grid):
        specs, ids = [], np.zeros((max(k, 1), max(n, 1)), dtype=np.intp)
        for kk in range(k):
            for nn in range(n):
                s = grid(kk, nn)
                if s not in specs:
                    specs.append(s)
                ids[kk, nn] = specs.index(s)
        if not specs:
            raise ValueError("empty GEMM with a callable grid: no multiplier to use")
        return _Assignment(specs, ids, "k")
    raise TypeError(f"grid must be a MultiplierSpec, a name or a callable, not {grid!r}")


def emulate_gemm(a, b, grid, *, acc_width: int = 32, overflow: str = "wrap",
                 start=None) -> np.ndarray:
    """Same result as :func:`sim.golden.gemm_reference` (same arguments), fast.

    ``grid``: a spec, a multiplier name (8-bit signed) or a callable ``(k, n) -> spec``.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    check_gemm_shapes(a, b)
    assign = _grid_assignment(grid, a.shape[1], b.shape[1])
    return _emulate(a, b, assign, acc_width, overflow, start=start)


def emulate_tiled(a, b, array: ArrayModel) -> np.ndarray:
    """Same result as :func:`sim.golden.tiled_gemm` (``a`` activations, ``b`` weights), fast."""
    specs = array.distinct_specs()
    ids = np.array([[specs.index(s) for s in row] for row in array.grid], dtype=np.intp)
    if len(specs) == 1:
        ids = ids[:1, :1]
    if array.dataflow == "ws":
        return _emulate(a, b, _Assignment(specs, ids, "k"), array.acc_width, array.overflow,
                        tile_rows=array.rows)
    return _emulate(a, b, _Assignment(specs, ids, "m"), array.acc_width, array.overflow)


def emulate(a, b, target="exact", *, acc_width: int = 32, overflow: str = "wrap",
            width: int = 8, signed: bool = True) -> np.ndarray:
    """Bit-exact approximate ``a @ b`` on ``target``: an :class:`~sim.golden.ArrayModel`
    (like :func:`sim.golden.tiled_gemm`; its own accumulator settings apply) or one multiplier
    (spec or name parsed at ``width``/``signed``; like :func:`sim.golden.gemm_reference`)."""
    if isinstance(target, ArrayModel):
        return emulate_tiled(a, b, target)
    if isinstance(target, str):
        target = parse(target, width=width, signed=signed)
    return emulate_gemm(a, b, target, acc_width=acc_width, overflow=overflow)
