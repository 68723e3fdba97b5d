"""Table GEMMs ``S[m, n] = sum_k T[a[m, k], b[k, n]]`` for any 4..8-bit product table.

Kernels (``sim/kernels/_native.c``; the docstring there has the details):

============== ======================================================= =====================
name           method                                                  needs
============== ======================================================= =====================
permute-avx512 register permute: one table column in 8 zmm registers,  AVX-512F + BW
               32 products per ``vpermt2w`` group
rowadd-avx2    per-k column gather (8 x 16 transposes), then one row   AVX2
               of 8/16/32 products per vector load + add
rowadd-c       the same algorithm in plain C                           any C compiler
permute-c      the permute algorithm in GCC vector extensions for the   GCC
               baseline ISA (a compiled reference; slow)
============== ======================================================= =====================

:func:`available` lists the kernels this CPU runs that also passed a probe against numpy once
per process; :func:`default` is the first of ``permute-avx512``, ``rowadd-avx2``, ``rowadd-c``
available, or ``AXM_EMULATE_LUT=<name>`` (any available name; ``numpy`` means none of these).
The caller (``sim.emulate``) still picks per shape among the available ones by its cost model.

Values: the table is offset to ``U = T - min(T)`` (``uint16``, ``max(U) <= 65535``); up to
``depth = 65535 // max(U)`` looked-up values are summed in 16-bit lanes, the rest in uint32, and
``K`` is cut so that ``K * max(U) < 2**32``. The result is ``sum U + K * min(T)`` in int64.
Threads: the output is cut into column blocks (or row blocks when it is narrow), one per thread,
and the GIL is released in the kernels.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import sim.kernels as _pkg

from . import aligned_empty, threads, workspace

__all__ = ["KERNELS", "available", "default", "TableOperand", "table_gemm"]

KERNELS = ("permute-avx512", "rowadd-avx2", "rowadd-c", "permute-c")
_ISA = {"permute-avx512": 2, "rowadd-avx2": 1, "rowadd-c": 0, "permute-c": 0}
_PREFERENCE = ("permute-avx512", "rowadd-avx2", "rowadd-c")
WORK_BYTES = 192 * 1024          # per-thread gather buffer of rowadd (about half of an L2)
MIN_SPLIT_WORK = 1 << 18         # P*K*Q below which a table GEMM stays on one thread


class TableOperand:
    """A product table prepared for the kernels: ``values x values`` int64 ``table`` (``T[a, b]``
    with indices ``a - lo``, ``b - lo``)."""

    def __init__(self, table: np.ndarray):
        table = np.asarray(table, dtype=np.int64)
        self.V = table.shape[0]
        self.base = int(table.min()) if table.size else 0
        u = table - self.base
        self.umax = int(u.max()) if u.size else 0
        self.ok = (_pkg.native is not None and table.shape == (self.V, self.V)
                   and 16 <= self.V <= 256 and self.V % 16 == 0 and self.umax <= 0xFFFF)
        if not self.ok:
            return
        self.depth = max(1, min(256, 0xFFFF // max(self.umax, 1)))
        self.k_max = max(1, ((1 << 32) - 1) // max(self.umax, 1))
        self._u = u.astype(np.uint16)

    @functools.cached_property
    def t_rows_b(self) -> np.ndarray:        # tt[b][a] = U[a, b]: rowadd with x = a
        return np.ascontiguousarray(self._u.T)

    @functools.cached_property
    def t_rows_a(self) -> np.ndarray:        # tt[a][b] = U[a, b]: rowadd with x = b^T
        return np.ascontiguousarray(self._u)

    def padded(self, rows_a: bool) -> np.ndarray:
        """Rows padded to a multiple of 64 entries, 64-byte aligned (permute kernels)."""
        key = "_pad_a" if rows_a else "_pad_b"
        got = getattr(self, key, None)
        if got is None:
            vp = max(64, -(-self.V // 64) * 64)
            got = aligned_empty((self.V, vp), np.uint16)
            got[:] = 0
            got[:, :self.V] = self._u if rows_a else self._u.T
            setattr(self, key, got)
        return got


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool(n):
    pool = _POOLS.get(n)
    if pool is None:
        pool = _POOLS[n] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="axm-lut")
    return pool


def _run_parts(fn, parts):
    if len(parts) == 1:
        fn(*parts[0])
        return
    for f in [_pool(len(parts)).submit(fn, *p) for p in parts]:
        f.result()


def _splits(total, n, align):
    """``n`` ranges covering ``0..total`` with boundaries on multiples of ``align``."""
    blocks = -(-total // align)
    n = max(1, min(n, blocks))
    cuts = [min(total, (blocks * i // n) * align) for i in range(n + 1)]
    return [(cuts[i], cuts[i + 1]) for i in range(n) if cuts[i + 1] > cuts[i]]


def _transposed(x, name):
    """``x.T`` as a C-contiguous copy in this thread's workspace ``name``."""
    dst = workspace(name, (x.shape[1], x.shape[0]), x.dtype)
    np.copyto(dst, x.T)
    return dst


def _rowadd(op, ai, bi, out, isa, nthreads):
    """``out (P x Q) += sum_k U[x[p,k], y[k,q]]`` with P the longer side (out is M x N, or
    N x M transposed when N > M; returns whether it is transposed)."""
    m, k = ai.shape
    n = bi.shape[1]
    if n > m:                                # P = N: x = b^T, y = a^T, table rows by a
        x = _transposed(bi, "lut-x")
        y = _transposed(ai, "lut-y")
        tt, p_, q_ = op.t_rows_a, n, m
    else:
        x, y, tt, p_, q_ = ai, bi, op.t_rows_b, m, n
    res = out[:p_ * q_].reshape(p_, q_)
    res[:] = 0
    work = p_ * k * q_
    nt = nthreads if work >= MIN_SPLIT_WORK else 1
    if nt > 1 and q_ >= 64:
        ranges = [(0, p_, q0, q1) for q0, q1 in _splits(q_, nt, 32)]
    elif nt > 1:
        ranges = [(p0, p1, 0, q_) for p0, p1 in _splits(p_, nt, 8)]
    else:
        ranges = [(0, p_, 0, q_)]

    def part(p0, p1, q0, q1):
        wb = workspace("lut-work", (WORK_BYTES // 2,), np.uint16)
        _pkg.native.rowadd(tt, op.V, x, y, res, p_, k, q_, p0, p1, q0, q1, op.depth, isa,
                           wb)

    _run_parts(part, ranges)
    return res, n > m


def _permute(op, ai, bi, out, isa, nthreads):
    m, k = ai.shape
    n = bi.shape[1]
    if n >= m:                               # vector along n: xt = b, y = a^T, rows by a
        xt, y, tt, p_, q_ = bi, _transposed(ai, "lut-y"), op.padded(True), n, m
        transposed = False
    else:                                    # vector along m: xt = a^T, y = b, rows by b
        xt, y, tt, p_, q_ = _transposed(ai, "lut-x"), bi, op.padded(False), m, n
        transposed = True
    res = out[:p_ * q_].reshape(q_, p_)
    res[:] = 0
    nt = nthreads if p_ * k * q_ >= MIN_SPLIT_WORK else 1
    if nt > 1 and q_ >= nt:
        ranges = [(0, p_, q0, q1) for q0, q1 in _splits(q_, nt, 1)]
    elif nt > 1:
        ranges = [(p0, p1, 0, q_) for p0, p1 in _splits(p_, nt, 128)]
    else:
        ranges = [(0, p_, 0, q_)]

    def part(p0, p1, q0, q1):
        _pkg.native.permute(tt, op.V, tt.shape[1], xt, y, res, p_, k, q_, p0, p1, q0, q1,
                       op.depth, isa)

    _run_parts(part, ranges)
    return res, transposed


def table_gemm(op: TableOperand, ai: np.ndarray, bi: np.ndarray, kernel: str,
               nthreads: int | None = None):
    """``(R, transposed)``: uint32 ``R`` with ``sum_k U[ai[m,k], bi[k,n]]`` (``R`` is N x M when
    ``transposed``), for uint8 C-contiguous index matrices and ``K <= op.k_max``. ``R`` lives in
    this thread's workspace until the next call."""
    m, k = ai.shape
    n = bi.shape[1]
    if k > op.k_max:
        raise ValueError(f"table GEMM with K = {k} > {op.k_max} could wrap uint32")
    out = workspace("lut-out", (m * n,), np.uint32)
    nthreads = threads() if nthreads is None else nthreads
    if kernel.startswith("rowadd"):
        return _rowadd(op, ai, bi, out, _ISA[kernel], nthreads)
    return _permute(op, ai, bi, out, _ISA[kernel], nthreads)


@functools.lru_cache(maxsize=None)
def _probe(kernel: str) -> bool:
    """The kernel runs on this CPU and equals a numpy reference on random and extreme tables."""
    if _pkg.native is None:
        return False
    isa = _ISA[kernel]
    feats = _pkg.native.features()
    if not feats.get({0: "portable", 1: "avx2", 2: "avx512"}[isa], 0):
        return False
    rng = np.random.default_rng(7)
    for v, (m, k, n), hi in ((256, (37, 70, 41), 0xFFFF), (16, (300, 9, 130), 40),
                             (64, (140, 33, 8), 3000)):
        low = -(hi // 2)                    # values low..low+hi: max(U) = hi exactly
        table = rng.integers(low, low + hi + 1, (v, v))
        table[0, 0], table[-1, -1] = low, low + hi
        op = TableOperand(table)
        if not op.ok:
            return False
        a = rng.integers(0, v, (m, k)).astype(np.uint8)
        b = rng.integers(0, v, (k, n)).astype(np.uint8)
        a[0], b[:, 0] = v - 1, v - 1
        want = op._u.astype(np.int64)[a[:, :, None], b[None, :, :]].sum(axis=1)
        for nt in (1, 2):
            res, tr = table_gemm(op, a, b, kernel, nt)
            got = res.T if tr else res
            if not np.array_equal(got.astype(np.int64), want):
                return False
    return True


def available() -> list[str]:
    """Kernels of :data:`KERNELS` this CPU runs and that passed the probe."""
    if _pkg.native is None:
        return []
    return [name for name in KERNELS if _probe(name)]


def default() -> str | None:
    """The dispatched kernel (``AXM_EMULATE_LUT`` overrides), or ``None`` (numpy only)."""
    if _pkg.native is None:
        return None
    want = os.environ.get("AXM_EMULATE_LUT", "").strip()
    if want:
        return want if want in KERNELS and _probe(want) else None
    return next((name for name in _PREFERENCE if _probe(name)), None)
