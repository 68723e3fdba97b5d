"""Cycle model of a layer on a ``rows x cols`` array: the array's own overlapped schedule, and
SCALE-Sim v2's compute-cycle formulas for comparison.

Array schedule (``schedule="array"``)
-------------------------------------
Exactly the host protocol of :mod:`hw.systolic` (what :func:`sim.golden.tiled_gemm` computes and
:func:`hw.systolic.gemm_cycles` / the manifest's ``timing.gemm_cycles`` count, measured equal to
the RTL): clock edges from the first input transfer to the last result transfer, inputs kept
valid, ``results.ready`` high. A layer's ``groups`` GEMMs are sent back to back as one stream of
tiles (group outer), so the next group's first weights load while the previous group's last
tile streams.

* ``ws``: tiles ``(group, n0, k0)``, each ``K_t = min(rows, K - k0)`` weight rows then ``M``
  activation vectors. The first tile starts after its ``K_0`` weight rows; tile ``i`` starts
  ``max(M, W + K_i)`` cycles after tile ``i - 1`` (``W = rows + cols - 1``, the weight-load
  window: double buffering hides the next weights only when ``M >= W + K_i``; fewer activation
  rows leave ``W + K_i - M`` bubbles); the last result leaves ``M - 1 + L`` cycles after the last
  tile started (latency ``L = rows + cols - 1 (+1 pipeline)``). ``K``-block partial results are
  added by the host (no array cycles).
* ``os``: tiles ``(group, m0, n0)`` of ``K`` steps, one every ``max(K, rows)`` cycles (the
  drain of ``rows`` result vectors overlaps the next tile's accumulation; tiles shorter than
  ``rows`` steps wait for it); the last tile's results end ``K - 1 + L + rows - 1`` cycles after
  it started (``L = rows + cols (+1)``).
* ``correction`` (arrays generated with ``hw.gen --correction``, :func:`hw.systolic.gemm_cycles`
  with ``correction=True``): ``L`` one cycle longer, and os tiles follow every ``max(K, rows +
  cols (+1 pipelined))`` cycles (a tile's last step waits for the previous tile's correction).

Per layer: ``cycles``; ``stall_free_cycles``, the same schedule with every tile following its
predecessor after exactly its stream length (``M`` or ``K``: weight loads / drains fully
hidden), a lower bound that differs from ``cycles`` by the bubbles; ``ideal_cycles``
``= ceil(MACs / (rows * cols))``; ``folds`` (tiles per dimension); PE utilisation:
``mapping`` (share of PEs holding useful work in a tile, mean over tiles), ``temporal``
(share of the cycles in which a tile streams useful steps) and ``overall = MACs / (rows * cols *
cycles) = mapping * temporal``.

SCALE-Sim schedule (``schedule="scalesim"``)
--------------------------------------------
SCALE-Sim v2 (https://github.com/scalesim-project/scale-sim-v2, commit 22f88b1 of 2025-02-25)
builds per-fold demand matrices (``scalesim/compute/systolic_compute_ws.py`` /
``systolic_compute_os.py``) and reports as total cycles the last cycle at which the OFMAP SRAM is
written (``memory/double_buffered_scratchpad_mem.py``). Without memory stalls (its
``InterfaceBandwidth: CALC`` mode) that is, with ``F = row_fold x col_fold`` folds:

* ``ws`` (``Sr = K`` rows, ``Sc = N`` columns, ``T = M`` vectors): each fold is ``rows`` cycles of
  weight load, ``T`` vectors, ``cols - 1`` cycles of drain and ``rows - 1`` of skew:
  ``cycles = F (T + 2 rows + cols - 2) - 1``; compute utilisation per fold
  ``mapping x T / (T + 2 rows + 2 cols - 3)``;
* ``os`` (``Sr = M``, ``Sc = N``, ``T = K``): ``cycles = F (T + rows + cols - 2) - 1``; per fold
  ``mapping x T / (T + rows + cols - 2)``.

Folds never overlap there; SRAM request counts: ws IFMAP reads ``M K col_fold``, filter reads
``K N``, OFMAP writes ``M N row_fold``; os IFMAP ``M K col_fold``, filter ``K N row_fold``, OFMAP
``M N + F (rows + cols)`` (SCALE-Sim adds ``rows + cols`` per fold, reproduced as is). A grouped
layer is ``groups`` SCALE-Sim layers (its depthwise handling). The ``alexnet_part`` golden run of
SCALE-Sim's own test (``test/golden_trace/COMPUTE_REPORT.csv``: 32x32 ws, 112283 cycles,
mapping 94.53125 %, compute utilisation 90.78000992063492 %) is reproduced exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import PerfError
from .workload import Layer

__all__ = ["ArraySpec", "Schedule", "layer_schedule", "scalesim_schedule", "tile_starts",
           "SCHEDULES", "equivalent_gemm"]

SCHEDULES = ("array", "scalesim")
DATAFLOWS = ("ws", "os")
#: Largest array side the model accepts (the generator stops at 64; SCALE-Sim configs such as
#: the 256 x 256 TPU still get modelled).
MAX_SIDE = 4096


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class ArraySpec:
    """The array a workload runs on: ``rows x cols`` PEs, dataflow, product pipeline, output
    correction stage (``hw.gen --correction``)."""

    rows: int
    cols: int
    dataflow: str = "ws"
    pipeline: bool = False
    correction: bool = False

    def __post_init__(self):
        for label in ("rows", "cols"):
            v = getattr(self, label)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_SIDE:
                raise PerfError(f"array {label} must be an integer in 1..{MAX_SIDE}, not {v!r}")
        if self.dataflow not in DATAFLOWS:
            raise PerfError(f"unknown dataflow {self.dataflow!r}; choose ws or os")

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    @property
    def latency(self) -> int:
        base = self.rows + self.cols - 1 if self.dataflow == "ws" else self.rows + self.cols
        return base + int(bool(self.pipeline)) + int(bool(self.correction))

    @property
    def os_period(self) -> int:
        """Shortest os tile period: the drain of ``rows`` result vectors, or with correction
        ``rows + cols (+1 pipelined)``."""
        if self.correction:
            return self.rows + self.cols + int(bool(self.pipeline))
        return self.rows

    @property
    def window(self) -> int:
        """ws weight-load window ``rows + cols - 1``."""
        return self.rows + self.cols - 1


@dataclass(frozen=True)
class Schedule:
    """Cycle figures of one layer (module docstring)."""

    schedule: str
    cycles: int
    stall_free_cycles: int | None
    ideal_cycles: int
    tiles: int
    folds: dict
    mapping_util: float
    temporal_util: float
    overall_util: float
    sram_reads: dict | None = None       # SCALE-Sim request counts (scalesim schedule only)

    def as_dict(self) -> dict:
        return asdict(self)


def _folds(layer: Layer, array: ArraySpec) -> tuple[dict, int]:
    nb = _cdiv(layer.n, array.cols)
    if array.dataflow == "ws":
        kb = _cdiv(layer.k, array.rows)
        return {"groups": layer.groups, "n": nb, "k": kb}, layer.groups * nb * kb
    mb = _cdiv(layer.m, array.rows)
    return {"groups": layer.groups, "m": mb, "n": nb}, layer.groups * mb * nb


def tile_starts(layer: Layer, array: ArraySpec) -> list[tuple[int, int]]:
    """``(start cycle, stream length)`` of every tile in issue order, cycle 0 being the first
    input transfer (the reference the closed forms of :func:`layer_schedule` are checked
    against; a list as long as the tile count)."""
    out = []
    if array.dataflow == "ws":
        depths = [min(array.rows, layer.k - k0) for _ in range(layer.groups)
                  for _ in range(0, layer.n, array.cols) for k0 in range(0, layer.k, array.rows)]
        start = depths[0]
        out.append((start, layer.m))
        for depth in depths[1:]:
            start += max(layer.m, array.window + depth)
            out.append((start, layer.m))
        return out
    _, count = _folds(layer, array)
    step = max(layer.k, array.os_period)
    return [(i * step, layer.k) for i in range(count)]


def _end(last_start: int, layer: Layer, array: ArraySpec) -> int:
    if array.dataflow == "ws":
        return last_start + layer.m - 1 + array.latency
    return last_start + layer.k - 1 + array.latency + array.rows - 1


def layer_schedule(layer: Layer, array: ArraySpec) -> Schedule:
    """The array's overlapped schedule of ``layer`` (module docstring), in closed form."""
    folds, tiles = _folds(layer, array)
    r, w = array.rows, array.window
    if array.dataflow == "ws":
        m, kb = layer.m, folds["k"]
        k0 = min(r, layer.k)
        kr = layer.k - (kb - 1) * r
        per_block = (kb - 1) * max(m, w + r) + max(m, w + kr)
        last_start = k0 + (layer.groups * folds["n"]) * per_block - max(m, w + k0)
        free_last = k0 + (tiles - 1) * m
        steps = m
        used = layer.k * layer.n                       # sum over a group's tiles of K_t N_t
        per_group_tiles = folds["n"] * kb
    else:
        step = max(layer.k, array.os_period)
        last_start = (tiles - 1) * step
        free_last = (tiles - 1) * layer.k
        steps = layer.k
        used = layer.m * layer.n
        per_group_tiles = folds["m"] * folds["n"]
    cycles = _end(last_start, layer, array)
    free = _end(free_last, layer, array)
    mapping = used / (per_group_tiles * array.pes)
    temporal = tiles * steps / cycles
    return Schedule("array", cycles, free, _cdiv(layer.macs, array.pes), tiles, folds,
                    mapping, temporal, layer.macs / (array.pes * cycles))


def scalesim_schedule(layer: Layer, array: ArraySpec) -> Schedule:
    """SCALE-Sim v2's stall-free compute cycles and utilisation of ``layer`` (module
    docstring); ``groups`` layers of one group each."""
    r, c = array.rows, array.cols
    if array.dataflow == "ws":
        sr, sc, t = layer.k, layer.n, layer.m
    else:
        sr, sc, t = layer.m, layer.n, layer.k
    rf, cf = _cdiv(sr, r), _cdiv(sc, c)
    folds = rf * cf
    mapping = (sr * sc) / (folds * r * c)
    if array.dataflow == "ws":
        per_fold = t + 2 * r + c - 2
        compute = mapping * t / (t + 2 * r + 2 * c - 3)
        reads = {"ifmap": layer.m * layer.k * cf, "filter": layer.k * layer.n,
                 "ofmap_writes": layer.m * layer.n * rf}
    else:
        per_fold = t + r + c - 2
        compute = mapping * t / (t + r + c - 2)
        reads = {"ifmap": layer.m * layer.k * cf, "filter": layer.k * layer.n * rf,
                 "ofmap_writes": layer.m * layer.n + folds * (r + c)}
    g = layer.groups
    cycles = g * (folds * per_fold - 1)
    reads = {k: v * g for k, v in reads.items()}
    key = ("k", "n") if array.dataflow == "ws" else ("m", "n")
    return Schedule("scalesim", cycles, None, _cdiv(layer.macs, array.pes), g * folds,
                    {"groups": g, key[0]: rf, key[1]: cf}, mapping, compute,
                    layer.macs / (array.pes * cycles), reads)


def equivalent_gemm(layer: Layer, array: ArraySpec) -> tuple[int, int, int]:
    """A single GEMM ``(M, K, N)`` whose tile sequence on ``array`` has the same timing as
    ``layer``'s (for a grouped layer: ws timing depends only on ``M`` and the tile depths, os
    timing only on ``K`` and the tile count). Used to run a grouped layer's schedule on the RTL
    with one GEMM."""
    folds, _ = _folds(layer, array)
    if layer.groups == 1:
        return layer.m, layer.k, layer.n
    if array.dataflow == "ws":
        return layer.m, layer.k, layer.groups * folds["n"] * array.cols
    return layer.groups * folds["m"] * array.rows, layer.k, folds["n"] * array.cols


def schedule(layer: Layer, array: ArraySpec, which: str = "array") -> Schedule:
    if which == "array":
        return layer_schedule(layer, array)
    if which == "scalesim":
        return scalesim_schedule(layer, array)
    raise PerfError(f"unknown schedule {which!r}; choose {' or '.join(SCHEDULES)}")
