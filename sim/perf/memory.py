"""SRAM accesses and DRAM traffic of a layer on the array, per operand, for given buffer sizes.

Three on-chip buffers, as in SCALE-Sim: IFMAP (activations), FILTER (weights) and OFMAP
(partial sums / outputs), each double-buffered (half holds the data in use, half is filled for
the next tiles: an operand is *resident* when it fits in half its buffer, SCALE-Sim's active
fraction 0.5). Element sizes: operands ``ceil(width / 8)`` bytes, partial sums
``ceil(acc_width / 8)`` bytes, outputs written back to DRAM ``out_bytes`` (requantised: the
operand size by default).

SRAM accesses (elements) follow the host protocol of :mod:`sim.perf.schedule`:

=============  ================================  =======================================
operand        ws (tiles n0 outer, k0 inner)     os (tiles m0 outer, n0 inner)
=============  ================================  =======================================
IFMAP reads    ``M K nb`` (every vector per      ``M K nb`` (the ``m0`` row block per
               column block)                     ``n0`` tile)
FILTER reads   ``K N`` (each weight once)        ``K N mb`` (``B`` per row block)
OFMAP writes   ``M N kb`` (a partial sum per     ``M N`` (each result once)
               ``K`` block; the host adds them)
OFMAP reads    ``M N (kb - 1)`` (read-modify-    0
               write of the partial sums)
=============  ================================  =======================================

(times ``groups``; ``nb = ceil(N / cols)``, ``kb = ceil(K / rows)``, ``mb = ceil(M / rows)``).
The ws counts equal SCALE-Sim's request counts (its IFMAP reads, filter reads and OFMAP writes).

DRAM traffic (bytes), first-order reuse per dataflow:

* **ws**: weights are read once (each belongs to one tile). The IFMAP (raw input tensor of a
  group, ``ifmap_elems / groups``) is read once if resident, else once per column block
  (``nb`` times). Partial sums stay on chip when one column block of them (``M x cols``) is
  resident; otherwise every ``K`` block after the first writes and reads them back
  (``2 (kb - 1) M N`` psum transfers). Outputs are written once.
* **os**: the IFMAP is read once if a row block of the im2col matrix (``rows x K``) is resident
  (it is reused by every ``n0`` tile), else ``nb`` times; weights once if all of a group's
  ``K x N`` weights are resident, else once per row block (``mb`` times). Outputs once.

A buffer smaller than one tile's operands (``rows x cols`` weights, ...) is refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import PerfError
from .schedule import ArraySpec
from .workload import Layer

__all__ = ["Buffers", "Traffic", "layer_traffic"]


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class Buffers:
    """On-chip SRAM sizes in KiB (SCALE-Sim's defaults) and element sizes in bytes."""

    ifmap_kb: float = 256
    filter_kb: float = 256
    ofmap_kb: float = 128
    operand_bytes: int = 1
    psum_bytes: int = 4
    out_bytes: int = 1

    def __post_init__(self):
        for name in ("ifmap_kb", "filter_kb", "ofmap_kb"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1 << 30:
                raise PerfError(f"SRAM size {name} must be a positive number of KiB, not {v!r}")
        for name in ("operand_bytes", "psum_bytes", "out_bytes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 16:
                raise PerfError(f"{name} must be an integer in 1..16, not {v!r}")

    def half(self, which: str) -> float:
        """Bytes available to the data in use (half of the double-buffered SRAM)."""
        return getattr(self, f"{which}_kb") * 1024 / 2


@dataclass(frozen=True)
class Traffic:
    """Accesses of one layer: SRAM in elements per operand, DRAM in bytes per operand."""

    sram: dict          # ifmap_reads, filter_reads, ofmap_writes, ofmap_reads (elements)
    sram_bytes: dict    # the same in bytes
    dram: dict          # ifmap_reads, filter_reads, ofmap_writes, psum_spill (bytes)
    resident: dict      # which operand stays on chip

    @property
    def dram_bytes(self) -> int:
        return sum(self.dram.values())

    def as_dict(self) -> dict:
        return {**asdict(self), "dram_bytes": self.dram_bytes}


def layer_traffic(layer: Layer, array: ArraySpec, buffers: Buffers) -> Traffic:
    """SRAM and DRAM traffic of ``layer`` (module docstring)."""
    g, m, k, n = layer.groups, layer.m, layer.k, layer.n
    ob, pb = buffers.operand_bytes, buffers.psum_bytes
    nb, kb, mb = _cdiv(n, array.cols), _cdiv(k, array.rows), _cdiv(m, array.rows)
    tile_w = min(k, array.rows) * min(n, array.cols) * ob
    if tile_w > buffers.half("filter"):
        raise PerfError(f"layer {layer.name!r}: one {min(k, array.rows)}x{min(n, array.cols)} "
                        f"weight tile ({tile_w} B) does not fit half the "
                        f"{buffers.filter_kb:g} KiB filter SRAM")
    ifmap_group = layer.ifmap_elems / g * ob
    if array.dataflow == "ws":
        sram = {"ifmap_reads": m * k * nb * g, "filter_reads": k * n * g,
                "ofmap_writes": m * n * kb * g, "ofmap_reads": m * n * (kb - 1) * g}
        if_res = ifmap_group <= buffers.half("ifmap")
        ps_res = m * min(n, array.cols) * pb <= buffers.half("ofmap")
        dram = {"ifmap_reads": round(layer.ifmap_elems * ob * (1 if if_res else nb)),
                "filter_reads": layer.weight_elems * ob,
                "ofmap_writes": layer.ofmap_elems * buffers.out_bytes,
                "psum_spill": 0 if ps_res else 2 * (kb - 1) * layer.ofmap_elems * pb}
        resident = {"ifmap": if_res, "filter": True, "psum": ps_res}
    else:
        sram = {"ifmap_reads": m * k * nb * g, "filter_reads": k * n * mb * g,
                "ofmap_writes": m * n * g, "ofmap_reads": 0}
        if_res = min(m, array.rows) * k * ob <= buffers.half("ifmap")
        w_res = k * n * ob <= buffers.half("filter")
        dram = {"ifmap_reads": round(layer.ifmap_elems * ob * (1 if if_res else nb)),
                "filter_reads": layer.weight_elems * ob * (1 if w_res else mb),
                "ofmap_writes": layer.ofmap_elems * buffers.out_bytes, "psum_spill": 0}
        resident = {"ifmap": if_res, "filter": w_res, "psum": True}
    size = {"ifmap_reads": ob, "filter_reads": ob, "ofmap_writes": pb, "ofmap_reads": pb}
    sram_bytes = {key: v * size[key] for key, v in sram.items()}
    return Traffic(sram, sram_bytes, dram, resident)
