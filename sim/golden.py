"""Bit-exact functional model of the MAC unit and the systolic array: the oracle for cocotb tests,
the host driver and the fast emulator (:mod:`sim.emulate` must equal it on every input).

Conventions
-----------
* Operand order: every product is ``mult(a=activation, b=weight)`` - approximate multipliers are
  not commutative (perforation skips rows of ``b``, BAM breaks rows of ``b``, ...).
* Accumulation: an ``A``-bit two's-complement accumulator starts at 0 and adds one product per
  step in ascending ``k`` order. ``wrap``: the sum is reduced modulo ``2**A`` after every addition
  (like a plain adder). ``saturate``: after every addition the sum is clamped to
  ``[-2**(A-1), 2**(A-1)-1]``.
* Weight-stationary array (``ws``), ``rows x cols`` PEs: one pass multiplies a ``K_t x N_t`` weight
  tile (``K_t <= rows``, ``N_t <= cols``; PE ``(r, c)`` holds ``B[k0+r, n0+c]``) with every
  activation row; partial sums flow down the column, so output ``C[m, n0+c]`` of a pass is the
  accumulation over ``r = 0..K_t-1`` using multiplier ``grid[r][c]``. A GEMM with ``K > rows`` is
  split into ``K`` tiles; the host adds the tile results in tile order with the same accumulator
  width and overflow mode (:func:`tiled_gemm`).
* Output-stationary array (``os``): PE ``(r, c)`` owns ``C[m0+r, n0+c]`` and accumulates over the
  whole ``K`` with multiplier ``grid[r][c]``; ``M`` and ``N`` are tiled by ``rows`` and ``cols``.
* Correction (``ArrayModel.correction``, a :class:`sim.correction.CorrectionFormat`): every
  pass's column outputs become ``reduce_A(acc + ((g_n S_m + h_n) >> F))`` with the pass's
  column constants (from its weight tile, :func:`sim.correction.column_constants`) and the
  activation sums ``S_m`` of the pass (ws: over its ``K_t`` lanes; os: over the whole ``K``);
  ws K tiles are corrected one by one, then added by the host as above.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hw.mult import MultiplierError, MultiplierSpec, parse

__all__ = ["OVERFLOW_MODES", "DATAFLOWS", "accumulate", "mac", "ArrayModel", "gemm_reference",
           "tiled_gemm", "check_gemm_shapes"]

OVERFLOW_MODES = ("wrap", "saturate")
DATAFLOWS = ("ws", "os")


def _check_overflow(overflow: str) -> None:
    if overflow not in OVERFLOW_MODES:
        raise ValueError(f"overflow mode must be one of {', '.join(OVERFLOW_MODES)}, "
                         f"not {overflow!r}")


def accumulate(acc, addend, acc_width: int, overflow: str) -> np.ndarray:
    """One accumulator step: ``acc + addend`` reduced to ``acc_width`` bits by ``overflow``."""
    _check_overflow(overflow)
    total = np.asarray(acc, dtype=np.int64) + np.asarray(addend, dtype=np.int64)
    lo, hi = -(1 << (acc_width - 1)), (1 << (acc_width - 1)) - 1
    if overflow == "saturate":
        return np.clip(total, lo, hi)
    total = total & ((1 << acc_width) - 1)
    return np.where(total > hi, total - (1 << acc_width), total)


def mac(spec: MultiplierSpec, acc, a, b, acc_width: int = 32, overflow: str = "wrap"):
    """MAC unit model: ``acc + spec.model(a, b)`` with the accumulator's overflow rule."""
    return accumulate(acc, spec.model(a, b), acc_width, overflow)


def check_gemm_shapes(a: np.ndarray, b: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``a @ b`` is a product of two matrices."""
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"expected 2-D operands, got shapes {a.shape} and {b.shape}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"inner dimensions differ: {a.shape} @ {b.shape}")


def _gemm_operands(a, b):
    """``a``, ``b`` as int64 matrices and ``(M, K, N)``; raises on mismatched shapes."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    check_gemm_shapes(a, b)
    return a, b, (a.shape[0], a.shape[1], b.shape[1])


def gemm_reference(a, b, grid, *, acc_width: int = 32, overflow: str = "wrap",
                   start=None) -> np.ndarray:
    """Sequential accumulation of ``a (M x K) @ b (K x N)`` with per-element multipliers.

    ``grid`` is a single spec, or a callable ``(k, n) -> spec`` giving the multiplier for
    reduction index ``k`` and output column ``n`` (all output rows share it). Accumulates in
    ascending ``k`` from ``start`` (zeros by default).
    """
    a, b, (m, k, n) = _gemm_operands(a, b)
    acc = np.zeros((m, n), dtype=np.int64) if start is None else np.array(start, dtype=np.int64)
    single = grid if isinstance(grid, MultiplierSpec) else None
    for kk in range(k):
        if single is not None:
            prod = single.model(a[:, kk:kk + 1], b[kk:kk + 1, :])
        else:  # one model call per distinct multiplier of this k (columns grouped)
            prod = np.empty((m, n), dtype=np.int64)
            groups: dict = {}
            for nn in range(n):
                groups.setdefault(grid(kk, nn), []).append(nn)
            for spec, cols in groups.items():
                prod[:, cols] = spec.model(a[:, kk:kk + 1], b[kk:kk + 1, cols])
        acc = accumulate(acc, prod, acc_width, overflow)
    return acc


@dataclass(frozen=True)
class ArrayModel:
    """What the generated array computes: shape, dataflow, multipliers, accumulator.

    ``grid`` is a ``rows x cols`` tuple of tuples of specs (PE ``(r, c)`` uses ``grid[r][c]``);
    build it with :meth:`uniform`, :meth:`per_row` or :meth:`per_col`.
    """

    rows: int
    cols: int
    grid: tuple
    dataflow: str = "ws"
    acc_width: int = 32
    overflow: str = "wrap"
    max_dim: int = field(default=64, repr=False)
    #: ``None`` or a :class:`sim.correction.CorrectionFormat` (bias / control variate).
    correction: object = None

    def __post_init__(self):
        for label, v in (("rows", self.rows), ("cols", self.cols)):
            if not isinstance(v, int) or not 1 <= v <= self.max_dim:
                raise ValueError(f"{label} must be an integer in 1..{self.max_dim}, not {v!r}")
        if self.dataflow not in DATAFLOWS:
            raise ValueError(f"dataflow must be one of {', '.join(DATAFLOWS)}, "
                             f"not {self.dataflow!r}")
        _check_overflow(self.overflow)
        if len(self.grid) != self.rows or any(len(r) != self.cols for r in self.grid):
            raise ValueError(f"multiplier grid must be {self.rows} x {self.cols}")
        first = self.grid[0][0]
        for row in self.grid:
            for spec in row:
                if (spec.width, spec.signed) != (first.width, first.signed):
                    raise ValueError("all multipliers of an array must share width and "
                                     "signedness")
        if self.acc_width < first.product_width:
            raise ValueError(f"accumulator width {self.acc_width} is narrower than the "
                             f"{first.product_width}-bit product")
        if self.correction is not None:
            from sim.correction import CorrectionError, CorrectionFormat, check_correctable
            if not isinstance(self.correction, CorrectionFormat):
                raise TypeError(f"correction must be a CorrectionFormat or None, not "
                                f"{self.correction!r}")
            for spec in self.distinct_specs():
                check_correctable(spec, self.correction.mode)
            if self.dataflow == "os" and any(
                    len({row[c] for row in self.grid}) > 1 for c in range(self.cols)):
                raise CorrectionError(f"--correction {self.correction.mode} is undefined for an "
                                      "os array with different multipliers in one column (the "
                                      "column constants would have to serve every row)")

    # -- constructors ----------------------------------------------------------------------------
    @classmethod
    def uniform(cls, rows, cols, mult, *, width=8, signed=True, **kw) -> "ArrayModel":
        spec = parse(mult, width=width, signed=signed)
        return cls(rows, cols, tuple(tuple(spec for _ in range(cols)) for _ in range(rows)), **kw)

    @classmethod
    def per_row(cls, rows, cols, mults, *, width=8, signed=True, **kw) -> "ArrayModel":
        if len(mults) != rows:
            raise MultiplierError(f"{len(mults)} multipliers given for {rows} rows")
        specs = [parse(mm, width=width, signed=signed) for mm in mults]
        return cls(rows, cols, tuple(tuple(s for _ in range(cols)) for s in specs), **kw)

    @classmethod
    def per_col(cls, rows, cols, mults, *, width=8, signed=True, **kw) -> "ArrayModel":
        if len(mults) != cols:
            raise MultiplierError(f"{len(mults)} multipliers given for {cols} columns")
        specs = tuple(parse(mm, width=width, signed=signed) for mm in mults)
        return cls(rows, cols, tuple(specs for _ in range(rows)), **kw)

    # -- properties ------------------------------------------------------------------------------
    @property
    def operand_width(self) -> int:
        return self.grid[0][0].width

    @property
    def signed(self) -> bool:
        return self.grid[0][0].signed

    @property
    def is_uniform(self) -> bool:
        first = self.grid[0][0]
        return all(s == first for row in self.grid for s in row)

    def distinct_specs(self) -> list[MultiplierSpec]:
        seen = []
        for row in self.grid:
            for s in row:
                if s not in seen:
                    seen.append(s)
        return seen

    # -- correction ------------------------------------------------------------------------------
    def tile_constants(self, b) -> tuple:
        """Per-column correction constants ``(g, h)`` of one pass's weight tile ``b``
        (``K_t x N_t``; os: the whole ``K``), as the host computes them when it loads the
        weights (:func:`sim.correction.column_constants`)."""
        from sim.correction import column_constants
        b = np.asarray(b, dtype=np.int64)
        grid = self.grid
        if self.is_uniform:
            spec_of = grid[0][0]
        elif self.dataflow == "ws":
            spec_of = lambda kk, nn: grid[kk][nn]  # noqa: E731
        else:
            spec_of = lambda kk, nn: grid[0][nn]  # noqa: E731
        return column_constants(b, spec_of, self.correction)

    def correct(self, acc, a, consts) -> np.ndarray:
        """``acc`` (a pass's M x N_t accumulators) with the correction applied."""
        from sim.correction import activation_sums, apply
        g, h = consts
        return apply(acc, activation_sums(a, self.correction), g, h, self.correction,
                     self.acc_width, self.overflow)

    # -- one pass of the hardware ----------------------------------------------------------------
    def tile(self, a, b, consts=None) -> np.ndarray:
        """One pass: ``a`` (M x K_t) activations, ``b`` (K_t x N_t) weights -> M x N_t.

        ``ws``: ``K_t <= rows``, ``N_t <= cols``, any ``M``. ``os``: ``M <= rows``,
        ``N_t <= cols``, any ``K``. With a correction, ``consts`` (``(g, h)`` per column)
        replaces the host's :meth:`tile_constants`.
        """
        raw = self._tile(a, b)
        if self.correction is None:
            return raw
        return self.correct(raw, a, self.tile_constants(b) if consts is None else consts)

    def _tile(self, a, b) -> np.ndarray:
        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        m, k = a.shape
        _, n = b.shape
        if self.dataflow == "ws":
            if k > self.rows or n > self.cols:
                raise ValueError(f"ws tile {k}x{n} exceeds the {self.rows}x{self.cols} array")
            grid = self.grid
            return gemm_reference(a, b, self.grid[0][0] if self.is_uniform
                                  else (lambda kk, nn: grid[kk][nn]),
                                  acc_width=self.acc_width, overflow=self.overflow)
        if m > self.rows or n > self.cols:
            raise ValueError(f"os tile {m}x{n} exceeds the {self.rows}x{self.cols} array")
        if self.is_uniform:
            return gemm_reference(a, b, self.grid[0][0], acc_width=self.acc_width,
                                  overflow=self.overflow)
        out = np.empty((m, n), dtype=np.int64)
        for r in range(m):  # output row r uses the multipliers of PE row r
            row_specs = self.grid[r]
            out[r:r + 1, :] = gemm_reference(
                a[r:r + 1, :], b, (lambda kk, nn, rs=row_specs: rs[nn]),
                acc_width=self.acc_width, overflow=self.overflow)
        return out


def tiled_gemm(a, b, array: ArrayModel, start=None) -> np.ndarray:
    """``a (M x K) @ b (K x N)`` exactly as the array computes it tile by tile (module doc).

    ``start`` (``M x N`` or broadcastable; ``None``: zeros) is the initial value of the host's
    accumulator for each output: the array's PEs start every pass at 0 (as in
    :mod:`hw.systolic`), and the host adds the passes' results to ``start`` one by one, in tile
    order, with the array's accumulator width and overflow rule (os: the single pass).
    """
    a, b, (m, k, n) = _gemm_operands(a, b)
    if start is None:
        out = np.zeros((m, n), dtype=np.int64)
        add = lambda acc, part, t: part if t == 0 else accumulate(  # noqa: E731
            acc, part, array.acc_width, array.overflow)
    else:
        out = np.broadcast_to(np.asarray(start, dtype=np.int64), (m, n)).copy()
        add = lambda acc, part, t: accumulate(  # noqa: E731
            acc, part, array.acc_width, array.overflow)
    if array.dataflow == "ws":
        for n0 in range(0, n, array.cols):
            n1 = min(n0 + array.cols, n)
            for t, k0 in enumerate(range(0, k, array.rows)):
                k1 = min(k0 + array.rows, k)
                part = array.tile(a[:, k0:k1], b[k0:k1, n0:n1])
                out[:, n0:n1] = add(out[:, n0:n1], part, t)
        return out
    for m0 in range(0, m, array.rows):
        m1 = min(m0 + array.rows, m)
        for n0 in range(0, n, array.cols):
            n1 = min(n0 + array.cols, n)
            out[m0:m1, n0:n1] = add(out[m0:m1, n0:n1], array.tile(a[m0:m1, :], b[:, n0:n1]), 0)
    return out
