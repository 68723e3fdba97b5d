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
     problems are split over :func:`sim.kernels.threads` worker threads by output column.
   * ``model``: ``N > 12`` without a provably wrap-free decomposition: ``spec.model`` on chunks.

   **Routes** (:func:`routes`, :func:`choose_route`): the sums of a plan run on one of several
   kernels, all exact, chosen per multiplier and shape by a cost model whose constants are
   measured once per machine and cached (:mod:`sim.kernels.calibrate`, cache kind ``emulate``):

   * ``int``: every separable term on an exact 8-bit integer GEMM from a well-kept library
     (onnxruntime ``MatMulInteger`` u8 x s8, torch ``_int_mm``; :mod:`sim.kernels.intgemm`,
     probed for bit-exactness at first use). Each lookup vector is shifted, scaled by its gcd
     and split into base-256 digits so it fits the kernel's operand type exactly
     (:func:`_int_program`); the shifts become per-value row / column sums and a constant.
     Terms whose scales differ by a factor the digits can absorb share one stacked GEMM (all
     bit-plane terms of truncation / BAM are one GEMM); a vector that needs a second digit
     only because of at most 4 operand values (signed DRUM's ``-128``) is clipped to one
     256-value window and those operands' products are fixed from the residual table.
     ``K`` is cut so that ``K' * max|x*y| <= 2**31 - 1``: int32 never wraps.
   * ``float``: the same terms on float32/float64 BLAS (the fallback without such a library,
     and for masked sums of heterogeneous weight-stationary grids).
   * ``lut``: the product table (4..8-bit operands, signed or unsigned, any table) on the
     compiled table kernels of :mod:`sim.kernels.lut` (register permute on AVX-512BW, a
     gather/row-add kernel on AVX2, portable C otherwise; runtime dispatch, probed; the
     cheapest for the shape by the same cost model).
   * ``lut-error``: ``a*b`` on the integer kernel plus the error table ``T - a*b`` on the
     table kernel; the error spans fewer values, so more lookups add up in 16-bit lanes.
   * ``gather``: the numpy table gather below (without the compiled extension).

   ``set_route`` / ``forced_route`` / ``AXM_EMULATE_ROUTE`` force a route wherever it
   applies (tests, benchmarks). Threads: :func:`sim.kernels.threads` (``set_threads``, else
   ``AXM_EMULATE_THREADS``, else ``OMP_NUM_THREADS``, else the usable CPUs) for every kernel;
   kernels run one after another, so they never oversubscribe. Temporaries live in per-thread
   workspaces (:func:`sim.kernels.workspace`) reused from call to call.

2. **The accumulator**: ``wrap`` reduces ``S`` (plus ``start``) modulo ``2**A`` - modular
   addition is associative, so this equals every step-wise and tile-wise wrap. ``saturate``
   equals the plain sum whenever no partial sum can leave ``[-2**(A-1), 2**(A-1)-1]``; this is
   proved per output from ``sum_k max|p(a[m,k], .)|`` (row bound) and ``sum_k max|p(., b[k,n])|``
   (column bound). Outputs where neither bound proves it are recomputed by the exact sequential
   clamp, in ``k`` order and with the array's ``K`` tiles and host additions (``ws``), as the
   hardware does.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from hw.mult import MultiplierError, MultiplierSpec, parse
from hw.mult.pparray import PartialProductArraySpec
from sim import kernels as _kernels
from sim.golden import OVERFLOW_MODES, ArrayModel, accumulate, check_gemm_shapes
from sim.kernels import calibrate as _calibrate
from sim.kernels import intgemm as _intgemm
from sim.kernels import lut as _lut

__all__ = ["Plan", "plan", "register_decomposition", "emulate", "emulate_gemm",
           "emulate_tiled", "emulate_corrected", "product_sum", "METHODS"]

METHODS = ("separable", "table", "model")
F32_EXACT = 1 << 24          # float32 integers below this are exact, so is every partial sum
F64_EXACT = 1 << 53
MAX_TABLE_WIDTH = 12
MAX_RESIDUAL_TERMS = 4       # one-hot repair terms allowed before giving up on a decomposition
GATHER_ELEMS = 1 << 22       # elements per chunk of the model fallback
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


PARALLEL_MIN_ELEMS = 1 << 20     # elements below which a helper pass stays on one thread


def _row_blocks(rows, elems):
    """Row ranges for the helper passes, one per thread (one range for small arrays)."""
    nt = min(_kernels.threads(), rows) if elems >= PARALLEL_MIN_ELEMS else 1
    cuts = [rows * i // max(nt, 1) for i in range(nt + 1)]
    return [(cuts[i], cuts[i + 1]) for i in range(nt) if cuts[i + 1] > cuts[i]]


def _run_blocks(fn, blocks):
    """``[fn(r0, r1) for each block]``, on the pool when there are several."""
    if len(blocks) <= 1:
        return [fn(*blk) for blk in blocks]
    return list(_pool(len(blocks)).map(lambda blk: fn(*blk), blocks))


def _checked_index8(spec, a, b):
    """``(a - lo, b - lo)`` as uint8 workspaces, raising like :func:`_check_operands`."""
    lo, hi = spec.operand_range
    out = []
    for x, name in ((a, "emu-ai"), (b, "emu-bi")):
        dst = _kernels.workspace(name, x.shape, np.uint8)
        x = np.ascontiguousarray(x)
        size, signed = x.dtype.itemsize, int(x.dtype.kind == "i")
        oks = _run_blocks(lambda r0, r1: _kernels.native.index8(x[r0:r1], size, signed, lo, hi,
                                                                dst[r0:r1]),
                          _row_blocks(x.shape[0], x.size))
        if not all(oks):
            _check_operands(spec, a, b)
            raise MultiplierError(f"operands of {spec.full_name} outside {lo}..{hi}")
        out.append(dst)
    return tuple(out)


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

    threads = min(_kernels.threads(), n // 32) if m * n * k >= PARALLEL_MIN_WORK else 1
    if threads > 1:
        bounds = np.linspace(0, n, threads + 1).astype(int)
        list(_pool(threads).map(lambda i: work(bounds[i], bounds[i + 1]), range(threads)))
    else:
        work(0, n)
    out = out.astype(np.int64)
    return out.T if transpose else out


_POOLS: dict = {}


def _pool(n):
    if n not in _POOLS:
        from concurrent.futures import ThreadPoolExecutor
        _POOLS[n] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="emulate")
    return _POOLS[n]


def _model_sum(p: Plan, a, b, mask):
    spec = p.spec
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
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


# -- routes: which kernels compute a plan's sums ---------------------------------------------------

#: Every way :func:`product_sum` can compute a plan's sums (see :func:`routes`).
ROUTES = ("int", "float", "lut", "lut-error", "gather", "model")
_forced: str | None = None


def set_route(name: str | None) -> None:
    """Use route ``name`` for every plan that offers it (``None``: the cost model decides).

    Meant for tests and benchmarks; results are the same on every route. ``AXM_EMULATE_ROUTE``
    sets the initial value."""
    global _forced
    if name is not None and name not in ROUTES:
        raise ValueError(f"route must be one of {', '.join(ROUTES)}, not {name!r}")
    _forced = name


@contextlib.contextmanager
def forced_route(name: str | None):
    """``with forced_route("lut"): ...`` - :func:`set_route` for the duration of a block."""
    old = _forced
    set_route(name)
    try:
        yield
    finally:
        set_route(old)


_env_route = os.environ.get("AXM_EMULATE_ROUTE", "").strip()
if _env_route in ROUTES:
    _forced = _env_route


def _int_kernel():
    got = _intgemm.kernels()
    return got[0] if got else None


def _lut_kernel():
    return _lut.default()


def _lut_ok(p: Plan) -> bool:
    return (p.table is not None and 16 <= p.table.shape[0] <= 256 and _kernels.native is not None
            and _lut_kernel() is not None)


def routes(spec) -> list[str]:
    """The routes that can compute ``spec``'s sums on this machine now (masked sums of
    heterogeneous weight-stationary grids always take ``float`` / ``gather``):

    * ``int``: the separable terms as exact 8-bit integer GEMMs (:mod:`sim.kernels.intgemm`);
    * ``float``: the same terms on float32/float64 BLAS (the fallback);
    * ``lut``: the product table on a compiled table kernel (:mod:`sim.kernels.lut`);
    * ``lut-error``: ``a*b`` on the integer kernel plus the error table ``T - a*b`` on a table
      kernel (the error usually spans far fewer values, so more sums stay in 16-bit lanes);
    * ``gather``: the numpy table gather; ``model``: ``spec.model`` on chunks.
    """
    p = plan(parse(spec) if isinstance(spec, str) else spec)
    if p.method == "model":
        return ["model"]
    have_int = _int_kernel() is not None
    out = []
    if p.method == "separable":
        out += (["int"] if have_int else []) + ["float"]
    if _lut_ok(p):
        if _table_operand(p, False).ok:
            out.append("lut")
        if have_int and _table_operand(p, True).ok:        # the error fits 16 bits
            out.append("lut-error")
    if p.method == "table":
        out.append("gather")
    return out


@functools.lru_cache(maxsize=256)
def _error_table(p: Plan):
    v = p.spec.operand_values()
    return p.table - v[:, None] * v[None, :]


@functools.lru_cache(maxsize=512)
def _table_operand(p: Plan, error: bool) -> _lut.TableOperand:
    return _lut.TableOperand(_error_table(p) if error else p.table)


#: Relative cost of widening 16-bit lane sums, per table kernel kind (measured: the permute
#: kernel is bound by its lookups, so a deeper error table hardly helps it; rowadd widens
#: every ``depth`` rows).
DEPTH_COST = {"permute": 0.0, "rowadd": 0.2}


def _depth_factor(op, c, name) -> float:
    """Relative cost of table kernel ``name`` at ``op``'s 16-bit accumulation depth (the
    calibration table has depth 2)."""
    kind = name.split("-")[0]
    w = c.get("depth_cost", {}).get(kind, DEPTH_COST.get(kind, 0.5))
    return (1 + w / op.depth) / (1 + w / 2)


def _lut_cost(op, m, k, n, name, c) -> float:
    t0, build, main = c["lut"].get(name, [1e-4, 1e9, 1e9])
    pp, q = max(m, n), min(m, n)
    return t0 + k * q * op.V / build + pp * k * q / main * _depth_factor(op, c, name)


def _lut_choice(op, m, k, n) -> str:
    """The table kernel for this shape: ``AXM_EMULATE_LUT`` when set, else the cheapest
    available one by the calibrated model (register permute for wide outputs, the gather /
    row-add kernel for narrow ones, whose per-k gather is then small)."""
    if os.environ.get("AXM_EMULATE_LUT", "").strip():
        return _lut_kernel()
    c = _calibrate.constants()
    avail = _lut.available()
    return min(avail, key=lambda name: _lut_cost(op, m, k, n, name, c))


def _cost(p: Plan, route: str, m: int, k: int, n: int) -> float:
    """Estimated seconds of ``route`` for an ``m x k x n`` sum (:mod:`sim.kernels.calibrate`)."""
    c = _calibrate.constants()
    el = c["elem"]
    mkn, io = m * k * n, m * k + k * n
    if route == "int" or route == "lut-error":
        kern = _int_kernel()
        t0, rate = c["int"].get(kern.name, [5e-5, 1e10])
        prog = _int_program(p if route == "int" else _exact_plan(p.spec), kern.name,
                            p.spec.width <= 8 and _kernels.native is not None)
        t = 0.0
        for _, la, lb, off_a, off_b in prog.groups:
            t += t0 + mkn * la.shape[1] / rate + el["combine"] * m * n
            t += el["expand"] * la.shape[1] * ((off_a is None) * m * k + (off_b is None) * k * n)
        t += el["index8"] * io + el["lutsum"] * (bool(prog.h_row.any()) * m * k
                                                 + bool(prog.h_col.any()) * k * n)
        t += el["take"] * mkn * (len(prog.oa) + len(prog.ob)) / max(prog.ra.shape[0], 1) \
            if prog.ra is not None else 0.0
        if route == "int":
            return t
        op = _table_operand(p, True)
        return t + _lut_cost(op, m, k, n, _lut_choice(op, m, k, n), c)
    if route == "lut":
        op = _table_operand(p, False)
        return (_lut_cost(op, m, k, n, _lut_choice(op, m, k, n), c)
                + el["index8"] * io + el["combine"] * m * n)
    if route == "float":
        per_k = int((np.abs(p.f).max(axis=1) * np.abs(p.g).max(axis=1)).sum())
        t0, rate = c["f32"] if per_k * k < F32_EXACT else c["f64"]
        return t0 + mkn * p.terms / rate + el["take"] * io * p.terms
    if route == "gather":
        return el["take"] * mkn / max(1, min(_kernels.threads(), 4)) * 2
    return float("inf")


def choose_route(spec, m: int, k: int, n: int) -> str:
    """The route :func:`product_sum` takes for an ``m x k x n`` sum of ``spec`` (the forced one
    when it applies, else the cheapest by :func:`_cost`)."""
    p = plan(parse(spec) if isinstance(spec, str) else spec)
    avail = routes(p.spec)
    if _forced in avail:
        return _forced
    if len(avail) == 1:
        return avail[0]
    key = (p, m, k, n, _kernels.threads(), tuple(avail), id(_calibrate.constants()))
    got = _CHOICES.get(key)
    if got is None:
        if len(_CHOICES) > 4096:
            _CHOICES.clear()
        got = _CHOICES[key] = min(avail, key=lambda r: _cost(p, r, m, k, n))
    return got


_CHOICES: dict = {}


@functools.lru_cache(maxsize=64)
def _exact_plan(spec) -> Plan:
    v = spec.operand_values()
    return Plan(spec, "separable", 0, v[None, :].copy(), v[None, :].copy())


def _digits(vec):
    """``vec = c + s * sum_i 256**i d_i`` with digit vectors ``d_i`` in ``0..255``."""
    vec = np.asarray(vec, dtype=np.int64)
    c = int(vec.min())
    w = vec - c
    s = int(np.gcd.reduce(w)) if w.any() else 1
    w //= s
    nd = max(1, (int(w.max()).bit_length() + 7) // 8)
    return c, s, [(w >> (8 * i)) & 255 for i in range(nd)]


@dataclass(eq=False)
class _IntProgram:
    """A separable plan laid out for one 8-bit integer kernel:
    ``S = sum_g scale_g * (A_g @ B_g) + sum_k h_row[a] + sum_k h_col[b] + K * c_k`` where
    ``A_g = lut_a_g[a]`` (M x K*T_g) and ``B_g = lut_b_g[b]`` (K*T_g x N) hold kernel-typed
    digits (``digit + a_lo``, ``digit + b_lo``)."""

    groups: list            # (scale, lut_a (V x T), lut_b (V x T), off_a, off_b): uint8 bits;
                            # off_*: lut == (index + off) mod 256 (one uint8 add), else None
    h_row: np.ndarray
    h_col: np.ndarray
    c_k: int
    per_k: int              # max |x * y| of one kernel product (int32 bound)
    width: int              # sum of T_g
    oa: bytes = b""         # index values of a (at most 4) whose products are fixed up ...
    ra: np.ndarray | None = None     # ... by adding ra[a, b] (V x V residual), likewise
    ob: bytes = b""         # for b with rb (rows of oa zeroed: no pair is fixed twice)
    rb: np.ndarray | None = None


MAX_OUTLIERS = 4


def _window(vec):
    """Indices of ``vec`` outside the 256-value window that holds most of its entries."""
    vals = np.sort(vec)
    ends = np.searchsorted(vals, vals + 255, side="right")
    best = int(np.argmax(ends - np.arange(vals.size)))
    lo = int(vals[best])
    return lo, np.flatnonzero((vec < lo) | (vec > lo + 255))


def _windowed_terms(p: Plan):
    """Terms whose lookup vectors need a second base-256 digit for a few values only are
    clipped into one 256-value window; the products of those few operand values (at most
    :data:`MAX_OUTLIERS` per side) are then corrected from the residual table. Returns
    ``(f, g, oa, ob)`` or ``None`` when this does not pay."""
    if p.table is None or p.table.shape[0] > 256:
        return None
    f, g = p.f.copy(), p.g.copy()
    oa, ob = set(), set()
    for t in range(f.shape[0]):
        for vecs, side in ((f, oa), (g, ob)):
            vec = vecs[t]
            if int(vec.max()) - int(vec.min()) <= 255:
                continue
            lo, out = _window(vec)
            side.update(int(i) for i in out)
            vecs[t] = np.clip(vec, lo, lo + 255)
    if not (oa or ob) or len(oa) > MAX_OUTLIERS or len(ob) > MAX_OUTLIERS:
        return None
    return f, g, sorted(oa), sorted(ob)


@functools.lru_cache(maxsize=512)
def _int_program(p: Plan, kernel_name: str, windows: bool = False) -> _IntProgram:
    """Shift and split every term of ``p`` into the kernel's operand types.

    With ``f = cF + sF sum_i 256^i F_i`` and ``g = cG + sG sum_j 256^j G_j`` (digits in 0..255,
    passed to the kernel as ``x = F_i + a_lo``, ``y = G_j + b_lo``)::

        sum_k f g = K cF cG + cG sum_k (f - cF) + cF sum_k (g - cG)
                    + sum_ij sF sG 256^(i+j) (sum_k x y - b_lo sum_k F_i - a_lo sum_k G_j
                                              - K a_lo b_lo)

    All row and column terms are per-value vectors (``h_row``, ``h_col``); pairs share one
    stacked GEMM when their scales differ by a factor ``r`` with ``r * digit <= 255`` on one
    side (the bit-plane terms of truncation and BAM become one GEMM).
    """
    kern = next(k for k in _intgemm.kernels() if k.name == kernel_name)
    a_lo, b_lo = kern.a_lo, kern.b_lo
    nv = p.f.shape[1]
    win = _windowed_terms(p) if windows else None
    pf, pg = (p.f, p.g) if win is None else win[:2]
    h_row = np.zeros(nv, np.int64)
    h_col = np.zeros(nv, np.int64)
    c_k = int(p.const)
    pairs = []                                 # (scale, F digit, G digit)
    for f, g in zip(pf, pg):
        cf, sf, fd = _digits(f)
        cg, sg, gd = _digits(g)
        c_k += cf * cg
        h_row += cg * (f - cf)
        h_col += cf * (g - cg)
        pairs += [(sf * sg * (1 << (8 * (i + j))), fi, gj) for i, fi in enumerate(fd)
                  for j, gj in enumerate(gd) if fi.any() and gj.any()]
    # One stacked GEMM per group: a pair joins a group of scale s0 when s / s0 = r is an
    # integer and r * digit still fits 0..255 on one side (bit planes times powers of 2).
    merged: list[list] = []                    # [scale, [(F', G'), ...]]
    for sc, fi, gj in sorted(pairs, key=lambda t: t[0]):
        for grp in merged:
            r, rem = divmod(sc, grp[0])
            if rem:
                continue
            if int(fi.max()) * r <= 255:
                grp[1].append((fi * r, gj))
                break
            if int(gj.max()) * r <= 255:
                grp[1].append((fi, gj * r))
                break
        else:
            merged.append([sc, [(fi, gj)]])
    groups, width, per_k = [], 0, 1
    for sc, members in merged:
        for fi, gj in members:
            h_row -= sc * b_lo * fi
            h_col -= sc * a_lo * gj
            c_k -= sc * a_lo * b_lo
        la = np.stack([fi + a_lo for fi, _ in members], axis=1)
        lb = np.stack([gj + b_lo for _, gj in members], axis=1)
        per_k = max(per_k, int(np.abs(la).max()) * int(np.abs(lb).max()))
        la, lb = (la & 255).astype(np.uint8), (lb & 255).astype(np.uint8)
        groups.append((sc, la, lb, _affine(la), _affine(lb)))
        width += len(members)
    prog = _IntProgram(groups, h_row, h_col, c_k, per_k, width)
    if win is not None:
        oa, ob = win[2], win[3]
        resid = p.table - (p.const + pf.T @ pg)
        keep = np.zeros(resid.shape, bool)
        keep[oa, :] = True
        keep[:, ob] = True
        assert not resid[~keep].any(), "windowed terms changed in-window products"
        rb = resid.copy()
        rb[oa, :] = 0
        prog.oa, prog.ra = bytes(oa), np.ascontiguousarray(resid)
        prog.ob, prog.rb = bytes(ob), np.ascontiguousarray(rb)
    return prog


def _affine(lut):
    """``off`` when the single-column ``lut`` is ``(index + off) mod 256``, else ``None``."""
    if lut.shape[1] != 1 or lut.shape[0] > 256:
        return None
    off = int(lut[0, 0])
    want = (np.arange(lut.shape[0]) + off) & 255
    return off if np.array_equal(lut[:, 0], want) else None


def _shifted(idx, off, name):
    """``(idx + off) mod 256`` (uint8), no copy when ``off`` is 0."""
    if off == 0:
        return idx
    return np.add(idx, np.uint8(off), out=_kernels.workspace(name, idx.shape, np.uint8))


def _index8(x, lo, name):
    """``x - lo`` as a C-contiguous uint8 matrix in this thread's workspace ``name``."""
    dst = _kernels.workspace(name, x.shape, np.uint8)
    nat = _kernels.native
    if nat is not None:
        src = np.ascontiguousarray(x, dtype=np.int64)
        if not nat.index8(src, 8, 1, lo, lo + 255, dst):
            raise MultiplierError("operand outside the multiplier's range")
    else:
        np.subtract(x, lo, out=dst, casting="unsafe")
    return dst


def _expand_a(idx, lut, name):
    """``lut[idx]`` laid out M x (K*T) (kernel operand A)."""
    m, k = idx.shape
    t = lut.shape[1]
    if t == 1 and _kernels.native is None:
        return np.take(lut[:, 0], idx)
    dst = _kernels.workspace(name, (m, k * t), np.uint8)
    if _kernels.native is not None and lut.shape[0] <= 256:
        _kernels.native.expand(idx, m, k, np.ascontiguousarray(lut), lut.shape[0], t, 0, dst)
    else:
        np.take(lut, idx, axis=0, out=dst.reshape(m, k, t))
    return dst


def _expand_b(idx, lut, name):
    """``lut[idx]`` laid out (K*T) x N (kernel operand B)."""
    k, n = idx.shape
    t = lut.shape[1]
    if t == 1 and _kernels.native is None:
        return np.take(lut[:, 0], idx)
    dst = _kernels.workspace(name, (k * t, n), np.uint8)
    if _kernels.native is not None and lut.shape[0] <= 256:
        _kernels.native.expand(idx, k, n, np.ascontiguousarray(lut), lut.shape[0], t, 1, dst)
    else:
        dst.reshape(k, t, n)[...] = np.take(lut, idx, axis=0).transpose(0, 2, 1)
    return dst


def _lutsum(idx, h, axis):
    """``sum`` of ``h[idx]`` along ``axis`` (int64); an affine ``h`` is a plain index sum."""
    nat = _kernels.native
    if nat is not None and idx.dtype == np.uint8 and h.shape[0] <= 256:
        r, c = idx.shape
        dst = np.empty(r if axis else c, np.int64)
        nat.lutsum(idx, r, c, np.ascontiguousarray(h, np.int64), h.shape[0], axis, dst)
        return dst
    step = int(h[1] - h[0]) if h.shape[0] > 1 else 0
    if np.array_equal(h, h[0] + step * np.arange(h.shape[0])):
        return int(h[0]) * idx.shape[axis] + step * idx.sum(axis=axis, dtype=np.int64)
    return np.take(h, idx).sum(axis=axis)


def _combine(out, parts, rowc, colc, c0, accumulate):
    """``out (M x N int64) [+]= sum s * part + rowc[:, None] + colc[None, :] + c0`` for parts
    ``(array, scale, transposed)`` (int32 or uint32)."""
    m, n = out.shape
    nat = _kernels.native
    if nat is not None and len(parts) <= 16 and not any(tr for _, _, tr in parts):
        blocks = _row_blocks(m, m * n)
        if len(blocks) > 1:
            def block(r0, r1):
                nat.combine(out[r0:r1], r1 - r0, n, [(x[r0:r1], s, x.dtype == np.uint32, False)
                                                     for x, s, _ in parts],
                            None if rowc is None else rowc[r0:r1], colc, c0, accumulate)
            _run_blocks(block, blocks)
            return out
    if nat is not None:
        first = True
        for i in range(0, max(len(parts), 1), 16):
            chunk = [(x, s, x.dtype == np.uint32, tr) for x, s, tr in parts[i:i + 16]]
            nat.combine(out, m, n, chunk, rowc if first else None, colc if first else None,
                        c0 if first else 0, accumulate or not first)
            first = False
        return out
    if not accumulate:
        out[...] = c0
    else:
        out += c0
    if rowc is not None:
        out += rowc[:, None]
    if colc is not None:
        out += colc[None, :]
    for x, s, tr in parts:
        out += (x.T if tr else x).astype(np.int64) * s
    return out


def _int_sum(p: Plan, ai, bi, out, accumulate=False):
    """``sum_k`` of ``p``'s separable terms on the exact integer kernel (indices ``ai``, ``bi``:
    uint8, or intp above 8 bits), into ``out``. Each kernel sum is bounded by
    ``K' * per_k <= 2**31 - 1`` (``K'`` the stacked chunk length), so int32 never wraps."""
    kern = _int_kernel()
    fast = ai.dtype == np.uint8
    prog = _int_program(p, kern.name, fast and _kernels.native is not None)
    m, k = ai.shape
    n = bi.shape[1]
    rowc = _lutsum(ai, prog.h_row, 1) if prog.h_row.any() else None
    colc = _lutsum(bi, prog.h_col, 0) if prog.h_col.any() else None
    first = True
    kmax = _intgemm.k_chunk(prog.per_k)
    for s, la, lb, off_a, off_b in prog.groups:
        t = la.shape[1]
        chunk = max(1, kmax // t)
        for k0 in range(0, k, chunk):
            k1 = min(k, k0 + chunk)
            sa = ai if (k0, k1) == (0, k) else np.ascontiguousarray(ai[:, k0:k1])
            sb = bi[k0:k1]
            xa = (_shifted(sa, off_a, "emu-xa") if fast and off_a is not None
                  else _expand_a(sa, la, "emu-xa"))
            xb = (_shifted(sb, off_b, "emu-xb") if fast and off_b is not None
                  else _expand_b(sb, lb, "emu-xb"))
            part = _kernels.workspace("emu-part", (m, n), np.int32)
            kern.matmul(np.ascontiguousarray(xa).view(kern.a_dtype),
                        np.ascontiguousarray(xb).view(kern.b_dtype), part)
            _combine(out, [(part, s, False)], rowc if first else None,
                     colc if first else None, k * prog.c_k if first else 0,
                     accumulate or not first)
            first = False
    if first:
        _combine(out, [], rowc, colc, k * prog.c_k, accumulate)
    if prog.oa or prog.ob:
        _kernels.native.outliers(out, m, k, n, ai, bi, prog.ra.shape[0], prog.oa, prog.ra,
                                 prog.ob, prog.rb)
    return out


def _lut_table_sum(op, ai, bi, out, accumulate=False):
    """``sum_k T[a, b]`` on the chosen table kernel (uint8 indices), into ``out``."""
    k = ai.shape[1]
    kernel = _lut_choice(op, ai.shape[0], min(k, op.k_max), bi.shape[1])
    first = True
    for k0 in range(0, k, op.k_max):
        k1 = min(k, k0 + op.k_max)
        sa = ai if (k0, k1) == (0, k) else np.ascontiguousarray(ai[:, k0:k1])
        res, tr = _lut.table_gemm(op, sa, np.ascontiguousarray(bi[k0:k1]), kernel)
        _combine(out, [(res, 1, tr)], None, None, (k1 - k0) * op.base, accumulate or not first)
        first = False
    return out


def _psum(spec, a, b, mask=None, route=None, idx=None):
    """:func:`product_sum` without validation (operands already checked; ``idx``: their
    uint8 indices ``a - lo``, ``b - lo`` when already made)."""
    p = plan(spec)
    if p.method == "model":
        return _model_sum(p, a, b, mask)
    m, k = a.shape
    n = b.shape[1]
    lo = spec.operand_range[0]
    if mask is None and m * n and k:
        route = route or choose_route(spec, m, k, n)
        if route in ("int", "lut", "lut-error"):
            small = p.spec.width <= 8
            if idx is not None:
                ai, bi = idx
            elif small:
                ai = _index8(a, lo, "emu-ai")
                bi = _index8(b, lo, "emu-bi")
            else:
                ai = a.astype(np.intp) - lo
                bi = b.astype(np.intp) - lo
            out = np.empty((m, n), np.int64)
            if route == "int":
                return _int_sum(p, ai, bi, out)
            _lut_table_sum(_table_operand(p, route == "lut-error"), ai, bi, out)
            if route == "lut-error":
                _int_sum(_exact_plan(p.spec), ai, bi, out, accumulate=True)
            return out
    else:
        route = "float" if p.method == "separable" else "gather"
    ai = a.astype(np.intp)
    bi = b.astype(np.intp)
    if lo:
        ai -= lo
        bi -= lo
    if p.method == "separable" and route != "gather":
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


def _raw(a, b, assign, idx=None):
    """Exact sums ``S[m, n] = sum_k p_(m,k,n)(a[m, k], b[k, n])``."""
    m, k = a.shape
    n = b.shape[1]
    if len(assign.specs) == 1:
        return _psum(assign.specs[0], a, b, idx=idx)
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
    """Exact step-by-step saturating accumulation (ws: K tiles of ``tile_rows``, each from 0,
    added by the host to ``start`` (or to each other) with the same rule; otherwise one pass
    from ``start``)."""
    m, k = a.shape
    n = b.shape[1]
    if tile_rows is None:
        acc = np.zeros((m, n), np.int64) if start is None else start.copy()
        for kk in range(k):
            acc = accumulate(acc, _products_k(a[:, kk], b[kk], assign, kk),
                             acc_width, "saturate")
        return acc
    out = None if start is None else start.copy()
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


def _narrow_int(x) -> bool:
    """Whether ``x`` is an integer array the compiled index pass reads as it is (int8..int64,
    uint8..uint32): narrow operands (a DNN's int16 im2col patches) then need no int64 copy."""
    return x.dtype.kind in "iu" and x.dtype.itemsize <= 8 and x.dtype != np.uint64


def _emulate(a, b, assign, acc_width, overflow, start=None, tile_rows=None):
    _check_acc(acc_width, overflow)
    a, b = np.asarray(a), np.asarray(b)
    check_gemm_shapes(a, b)
    m, k = a.shape
    n = b.shape[1]
    if start is not None:           # read only below (no copy unless it must be made)
        start = np.broadcast_to(np.asarray(start, dtype=np.int64), (m, n))
    idx = None
    if (len(assign.specs) == 1 and assign.specs[0].width <= 8 and a.size and b.size
            and _kernels.native is not None and _narrow_int(a) and _narrow_int(b)):
        idx = _checked_index8(assign.specs[0], a, b)     # range check and indices, one pass
    else:
        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        checked = set()
        for spec in assign.specs:
            if (spec.width, spec.signed) not in checked:
                _check_operands(spec, a, b)
                checked.add((spec.width, spec.signed))
    if k == 0:                      # no step runs: the accumulator keeps its start value
        return np.zeros((m, n), np.int64) if start is None else start.copy()
    total = _raw(a, b, assign, idx)
    slack_max = 0
    if start is not None:
        total += start
        if start.size:
            slack_max = max(int(start.max()), -int(start.min()))
    limit = (1 << (acc_width - 1)) - 1
    if _global_bound(assign, k) + slack_max <= limit:
        return total                # no partial sum can leave the accumulator range
    if overflow == "wrap":          # modular addition is associative
        return accumulate(np.zeros_like(total), total, acc_width, "wrap")
    a = np.asarray(a, dtype=np.int64)    # the saturation path works on int64 operands
    b = np.asarray(b, dtype=np.int64)
    slack = 0 if start is None else np.abs(start)
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
    a, b = np.asarray(a), np.asarray(b)
    if not (_narrow_int(a) and _narrow_int(b)):
        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
    check_gemm_shapes(a, b)
    assign = _grid_assignment(grid, a.shape[1], b.shape[1])
    return _emulate(a, b, assign, acc_width, overflow, start=start)


def emulate_tiled(a, b, array: ArrayModel, start=None) -> np.ndarray:
    """Same result as :func:`sim.golden.tiled_gemm` (``a`` activations, ``b`` weights,
    ``start`` the host accumulator's initial value per output), fast. An array with a
    correction goes through :func:`emulate_corrected`."""
    if array.correction is not None:
        return emulate_corrected(a, b, array, start)
    specs = array.distinct_specs()
    ids = np.array([[specs.index(s) for s in row] for row in array.grid], dtype=np.intp)
    if len(specs) == 1:
        ids = ids[:1, :1]
    if array.dataflow == "ws":
        return _emulate(a, b, _Assignment(specs, ids, "k"), array.acc_width, array.overflow,
                        start=start, tile_rows=array.rows)
    # os: the PEs accumulate the whole K from 0; the host adds that one pass to ``start``.
    k = np.shape(a)[-1] if np.ndim(a) else 0
    return _emulate(a, b, _Assignment(specs, ids, "m"), array.acc_width, array.overflow,
                    start=start, tile_rows=None if start is None else max(k, 1))


def emulate_corrected(a, b, array: ArrayModel, start=None) -> np.ndarray:
    """:func:`sim.golden.tiled_gemm` of an array with a correction
    (:mod:`sim.correction`), as a separate step on top of the uncorrected emulation: ws, each
    ``rows``-deep K tile is emulated, corrected with its own column constants and activation
    sums, and the tiles are added with the accumulator rule; os, the whole product is emulated
    and corrected once (constants per ``cols`` block, sums over the whole ``K``). ``start``:
    the host accumulator's initial value (as in :func:`emulate_tiled`)."""
    from dataclasses import replace

    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    check_gemm_shapes(a, b)
    base = replace(array, correction=None)
    m, k = a.shape
    n = b.shape[1]

    def constants(bt):
        parts = [array.tile_constants(bt[:, n0:n0 + array.cols]) for n0 in range(0, n, array.cols)]
        if not parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    if start is not None:
        start = np.broadcast_to(np.asarray(start, dtype=np.int64), (m, n))
    if array.dataflow == "os":
        out = array.correct(emulate_tiled(a, b, base), a, constants(b))
        return out if start is None else accumulate(start, out, array.acc_width,
                                                    array.overflow)
    out = np.zeros((m, n), dtype=np.int64) if start is None else start.copy()
    for t, k0 in enumerate(range(0, k, array.rows)):
        at, bt = a[:, k0:k0 + array.rows], b[k0:k0 + array.rows]
        part = array.correct(emulate_tiled(at, bt, base), at, constants(bt))
        out = part if t == 0 and start is None else accumulate(out, part, array.acc_width,
                                                               array.overflow)
    return out


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
