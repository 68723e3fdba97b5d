"""Cycle-accurate RTL checks of generated systolic arrays against :mod:`sim.golden`.

:func:`check_arrays` generates every requested design with :func:`hw.gen.generate` (the code
behind ``python -m hw.gen``), puts them side by side in ONE Verilog harness (so one simulator
build checks them all), runs the cocotb testbench :mod:`sim.tb.tb_array` on Verilator or Icarus
and returns its report. The testbench knows the designs only through their manifests: port
names, payload bit fields, latency and throughput are read from the JSON.

The pure-Python part lives here too, shared by the testbench: payload packing from manifest
fields (:class:`StreamCodec`), and *programs* - the input transfers of a scenario plus the
result vectors :class:`sim.golden.ArrayModel` says must come out (:func:`ws_program`,
:func:`os_program`, :func:`gemm_program`).

Scenarios (names for ``check_arrays(..., scenarios=...)``):

``random``       random tiles (random K_t/N_t or M_t/N_t, operands, junk in unused lanes)
                 with random valid gaps and random back-pressure
``extremes``     operands at both ends of the range (min*min, min*max, max*max sums); with a
                 correction also tiles whose constants sit at both ends of their widths
``overflow``     partial sums driven across the accumulator limits, up then down
``back_to_back`` several tiles with no idle cycle and no back-pressure; measures the
                 input/output transfer rate and compares it with the manifest
``latency``      one vector (ws) / one tile (os) into an empty array; compares with manifest
``reset``        reset in the middle of a stream, then a fresh stream must be correct
``gemm``         a GEMM larger than the array, tiled as :func:`sim.golden.tiled_gemm` does
``window``       (ws) the weight-load window: clock edges from a tile's first vector to the
                 next tile's first weight transfer (waiting weights); compares with manifest
``cycles``       whole GEMMs (:func:`cycle_shapes`, or the design's ``cycle_shapes``) driven
                 as fast as the array accepts, no back-pressure: clock edges from the first
                 input transfer to the last result transfer, compared with the manifest's
                 ``gemm_cycles`` formula (:func:`manifest_gemm_cycles`); results checked too
``stream``       (benchmark, not in the default set) a long gap-free stream; reports the
                 simulator's cycles per second
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from sim.golden import ArrayModel, accumulate, tiled_gemm

__all__ = ["SCENARIOS", "StreamCodec", "Program", "model_from_manifest", "manifest_gemm_cycles",
           "cycle_shapes", "pack", "unpack",
           "program", "ws_program", "os_program", "gemm_program", "random_tiles",
           "extreme_tiles", "overflow_tiles", "overflowed", "simulate_amaranth", "measure_gemm",
           "harness_verilog", "harness_units", "unit_config", "Harness", "prepare_harness",
           "run_harness", "check_arrays"]

SCENARIOS = ("random", "extremes", "overflow", "back_to_back", "latency", "reset", "gemm")


# -- packing ---------------------------------------------------------------------------------
def pack(values, width: int) -> int:
    """Lane ``i`` of ``values`` (two's complement, ``width`` bits) at bits ``[i*W, (i+1)*W)``."""
    mask = (1 << width) - 1
    word = 0
    for i, v in enumerate(np.asarray(values, dtype=np.int64).tolist()):
        word |= (v & mask) << (i * width)
    return word


def unpack(word: int, lanes: int, width: int, is_signed: bool) -> np.ndarray:
    mask = (1 << width) - 1
    out = [(word >> (i * width)) & mask for i in range(lanes)]
    if is_signed:
        out = [v - (1 << width) if v >> (width - 1) else v for v in out]
    return np.array(out, dtype=np.int64)


class StreamCodec:
    """Packs/unpacks one stream payload as the manifest's ``fields`` describe it."""

    def __init__(self, port: dict):
        self.name = port["name"]
        self.width = port["width"]
        self.fields = {f["name"]: f for f in port.get("fields", [])}

    def encode(self, **values) -> int:
        word = 0
        for fname, value in values.items():
            f = self.fields[fname]
            if "lanes" in f:
                lanes = np.asarray(value, dtype=np.int64)
                if lanes.shape != (f["lanes"],):
                    raise ValueError(f"{self.name}.{fname} needs {f['lanes']} lanes")
                bits = pack(lanes, f["lane_width"])
            else:
                bits = int(value) & ((1 << f["width"]) - 1)
            word |= bits << f["offset"]
        return word

    def decode(self, word: int, fname: str = "data") -> np.ndarray:
        f = self.fields[fname]
        bits = (word >> f["offset"]) & ((1 << f["width"]) - 1)
        return unpack(bits, f["lanes"], f["lane_width"], f["signed"])


def model_from_manifest(manifest: dict, names=None) -> ArrayModel:
    """The golden model of a generated array, rebuilt from its manifest. ``names`` replaces the
    manifest's multiplier names (e.g. :attr:`hw.gen.Generated.model_names`, whose imported
    files are found from any working folder)."""
    arr = manifest["array"]
    kw = dict(width=arr["operand_width"], signed=arr["signed"], dataflow=arr["dataflow"],
              acc_width=arr["acc_width"], overflow=arr["overflow"])
    names = list(names) if names else arr["multiplier_names"]
    per = arr["multipliers_per"]
    if arr.get("correction"):
        from sim.correction import CorrectionFormat
        c = arr["correction"]
        kw["correction"] = CorrectionFormat(c["mode"], c["frac_bits"], c["alpha_bits"],
                                            c["beta_bits"], c["sum_bits"])
    if per == "all":
        return ArrayModel.uniform(arr["rows"], arr["cols"], names[0], **kw)
    if per == "row":
        return ArrayModel.per_row(arr["rows"], arr["cols"], names, **kw)
    return ArrayModel.per_col(arr["rows"], arr["cols"], names, **kw)


def manifest_gemm_cycles(entry: dict, m: int, k: int, n: int) -> int:
    """A manifest's ``timing.gemm_cycles`` formula evaluated for ``(M, K, N)``: its ``where``
    definitions in order, then ``formula`` (Python expressions with ``ceil``, ``min``, ``max``
    over ``M, K, N`` and the entry's ``parameters``)."""
    env = dict(entry["parameters"], M=m, K=k, N=n)
    scope = {"__builtins__": {}, "ceil": math.ceil, "min": min, "max": max}
    for name, expr in entry["where"].items():
        env[name] = eval(expr, scope, dict(env))  # noqa: S307 - the toolkit's own manifest
    value = eval(entry["formula"], scope, env)  # noqa: S307
    if value != int(value):
        raise ValueError(f"gemm_cycles formula gave a non-integer {value!r}")
    return int(value)


def cycle_shapes(model: ArrayModel) -> list[tuple[int, int, int]]:
    """GEMM shapes ``(M, K, N)`` for the ``cycles`` scenario: a single product, K < rows with
    a few vectors, ragged K and N blocks, ragged M (os), tiles long enough to hide the next
    tile's weights (ws), N < cols."""
    r, c = model.rows, model.cols
    return [(1, 1, 1), (2, max(1, r - 1), c), (3, 2 * r + 1, c + 1),
            (2 * r + c + 2, r, max(1, 2 * c - 1)), (2 * r + 1, r + 2, max(1, c - 1))]


# -- programs ----------------------------------------------------------------------------------
@dataclass
class Program:
    """Input transfers (packed payloads per input stream, in order) and expected results."""

    inputs: dict
    expected: list = field(default_factory=list)     # result vectors (cols lanes), in order
    labels: list = field(default_factory=list)       # where each expected vector comes from
    tiles: list = field(default_factory=list)        # (first result index, count) per tile
    operands: list = field(default_factory=list)     # (a, b) per tile as the golden model saw


def _operand_range(model: ArrayModel) -> tuple[int, int]:
    return model.grid[0][0].operand_range


def _pad(rng, block: np.ndarray, shape, lo: int, hi: int) -> np.ndarray:
    """``block`` in the top-left corner of a ``shape`` matrix of random junk."""
    out = rng.integers(lo, hi + 1, size=shape, dtype=np.int64)
    out[:block.shape[0], :block.shape[1]] = block
    return out


def _corr_fields(model: ArrayModel, rng, consts=None, junk: bool = False, codec=None) -> dict:
    """Payload fields ``corr_g`` / ``corr_h``: ``consts`` or random junk (for the transfers
    whose constants must be ignored). Without a correction: junk in whatever correction fields
    the port still has (an uncorrected array of a corrected bank must ignore them), else none."""
    fmt = model.correction
    if fmt is None:
        fields = {} if codec is None else codec.fields
        return {f: rng.integers(0, 1 << fields[f]["lane_width"], size=fields[f]["lanes"])
                for f in ("corr_g", "corr_h") if f in fields}
    if junk:
        g = rng.integers(-(1 << (fmt.alpha_bits - 1)), 1 << (fmt.alpha_bits - 1),
                         size=model.cols) if fmt.alpha_bits else None
        h = rng.integers(-(1 << (fmt.beta_bits - 1)), 1 << (fmt.beta_bits - 1), size=model.cols)
    else:
        g, h = consts
    out = {"corr_h": h}
    if fmt.mode == "cv":
        out["corr_g"] = g
    return out


def _split_tile(tile):
    """``(a, b)`` or ``(a, b, consts)`` -> ``(a, b, consts or None)``."""
    return (tile[0], tile[1], tile[2] if len(tile) > 2 else None)


def ws_program(model: ArrayModel, codecs: dict, tiles, rng) -> Program:
    """Weight-stationary passes: ``tiles`` is a list of ``(a, b)`` with ``a`` M x K_t
    activations, ``b`` K_t x N_t weights (or ``(a, b, (g, h))`` with correction constants for
    all ``cols`` columns; default: the host's :meth:`~sim.golden.ArrayModel.tile_constants`).
    Unused weight columns and activation lanes carry random junk; the expected vectors cover
    all ``cols`` lanes (junk weight columns included, junk activation lanes must be ignored).
    With a correction the constants ride on the tile's last weight row, junk on the others."""
    lo, hi = _operand_range(model)
    prog = Program(inputs={"weights": [], "acts": []})
    for t, tile in enumerate(tiles):
        a, b, consts = _split_tile(tile)
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        k_t = b.shape[0]
        b_pad = _pad(rng, b, (k_t, model.cols), lo, hi)
        a_pad = _pad(rng, a, (a.shape[0], model.rows), lo, hi)
        if model.correction is not None and consts is None:
            consts = model.tile_constants(b_pad)
        for k in range(k_t):
            prog.inputs["weights"].append(
                codecs["weights"].encode(data=b_pad[k], last=int(k == k_t - 1),
                                         **_corr_fields(model, rng, consts, k != k_t - 1,
                                                          codecs["weights"])))
        for m in range(a.shape[0]):
            prog.inputs["acts"].append(codecs["acts"].encode(data=a_pad[m], first=int(m == 0)))
        want = model.tile(a, b_pad, consts)
        prog.operands.append((a, b_pad))
        prog.tiles.append((len(prog.expected), a.shape[0]))
        for m in range(a.shape[0]):
            prog.expected.append(want[m])
            prog.labels.append(f"tile {t} row {m}")
    return prog


def os_program(model: ArrayModel, codecs: dict, tiles, rng) -> Program:
    """Output-stationary tiles: ``(a, b)`` with ``a`` M_t x K, ``b`` K x N_t. Unused lanes
    carry junk, so all ``rows x cols`` results of a tile are checked."""
    lo, hi = _operand_range(model)
    prog = Program(inputs={"operands": []})
    for t, tile in enumerate(tiles):
        a, b, consts = _split_tile(tile)
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        k = a.shape[1]
        a_pad = _pad(rng, a, (model.rows, k), lo, hi)
        b_pad = _pad(rng, b, (k, model.cols), lo, hi)
        if model.correction is not None and consts is None:
            consts = model.tile_constants(b_pad)
        for s in range(k):
            prog.inputs["operands"].append(
                codecs["operands"].encode(a=a_pad[:, s], b=b_pad[s], last=int(s == k - 1),
                                          **_corr_fields(model, rng, consts, s != k - 1,
                                                           codecs["operands"])))
        want = model.tile(a_pad, b_pad, consts)
        prog.operands.append((a_pad, b_pad))
        prog.tiles.append((len(prog.expected), model.rows))
        for r in range(model.rows):
            prog.expected.append(want[r])
            prog.labels.append(f"tile {t} row {r}")
    return prog


def program(model: ArrayModel, codecs: dict, tiles, rng) -> Program:
    return (ws_program if model.dataflow == "ws" else os_program)(model, codecs, tiles, rng)


def random_tiles(model: ArrayModel, rng, count: int, *, max_m: int = 6, max_k: int = 10,
                 full: bool = False, lo=None, hi=None) -> list:
    """Random tiles for either dataflow; ``full`` uses the whole array (K_t = rows etc.)."""
    olo, ohi = _operand_range(model)
    lo = olo if lo is None else lo
    hi = ohi if hi is None else hi
    tiles = []
    for _ in range(count):
        if model.dataflow == "ws":
            k = model.rows if full else int(rng.integers(1, model.rows + 1))
            n = model.cols if full else int(rng.integers(1, model.cols + 1))
            m = int(rng.integers(1, max_m + 1))
        else:
            m = model.rows if full else int(rng.integers(1, model.rows + 1))
            n = model.cols if full else int(rng.integers(1, model.cols + 1))
            k = int(rng.integers(1, max_k + 1))
        tiles.append((rng.integers(lo, hi + 1, size=(m, k), dtype=np.int64),
                      rng.integers(lo, hi + 1, size=(k, n), dtype=np.int64)))
    return tiles


def extreme_tiles(model: ArrayModel, rng, count: int = 4) -> list:
    """Tiles whose operands are only the range ends (and 0, +-1)."""
    lo, hi = _operand_range(model)
    values = np.array(sorted({lo, hi, lo + 1, hi - 1, 0, 1, -1 if lo < 0 else 2}))
    tiles = []
    for i in range(count):
        if i == 0:       # every product is min*min (the largest for signed operands)
            pick_a = pick_b = lambda shape: np.full(shape, lo)
        elif i == 1:     # min*max: the most negative products (signed) / max*max (unsigned)
            pick_a = lambda shape: np.full(shape, lo if lo < 0 else hi)  # noqa: E731
            pick_b = lambda shape: np.full(shape, hi)  # noqa: E731
        else:
            pick_a = pick_b = lambda shape: rng.choice(values, size=shape)  # noqa: E731
        if model.dataflow == "ws":
            shape_a, shape_b = (3, model.rows), (model.rows, model.cols)
        else:
            k = 2 * model.rows + 1
            shape_a, shape_b = (model.rows, k), (k, model.cols)
        tiles.append((pick_a(shape_a).astype(np.int64), pick_b(shape_b).astype(np.int64)))
    fmt = model.correction
    if fmt is not None:      # constants at both ends of their widths, operands at the ends
        glim = 1 << max(fmt.alpha_bits - 1, 0)
        hlim = 1 << (fmt.beta_bits - 1)
        for i, (ga, hb) in enumerate([(-glim, -hlim), (glim - 1, hlim - 1), (-glim, hlim - 1),
                                      (glim - 1, -hlim)]):
            a, b = tiles[i % 2]
            g = np.full(model.cols, ga if fmt.mode == "cv" else 0, dtype=np.int64)
            h = np.full(model.cols, hb, dtype=np.int64)
            g[::2] = -g[::2] - 1 if fmt.mode == "cv" else 0      # the other end every 2nd lane
            h[1::3] = rng.integers(-hlim, hlim, size=h[1::3].size)
            tiles.append((a, b, (g, h)))
    return tiles


def overflow_tiles(model: ArrayModel, rng) -> list:
    """Tiles whose running sums cross the accumulator limits: a run of the largest products
    until the sum passes the limit, then a run of the most negative ones (signed operands);
    and runs that end beyond the limits (up only, down only). With ``saturate`` a run goes on
    from the clamped value, with ``wrap`` from the wrapped one. ws passes have ``rows`` steps,
    so the limit is reached only when ``rows`` large products exceed it (use a narrow
    accumulator, e.g. ``2N`` bits)."""
    lo, hi = _operand_range(model)
    specs = [s for row in model.grid for s in row]
    lim = 1 << (model.acc_width - 1)
    up = (lo, lo) if lo < 0 else (hi, hi)
    down = (lo, hi) if lo < 0 else None
    p_up = max(1, min(int(s.model(*up)) for s in specs))
    # up then down (saturate clamps, then comes back), up only and down only (the final sum
    # is out of range, so wrap and saturate both differ from the exact sum)
    runs = [(up, down), (up, None)] + ([(down, None)] if down else [])
    tiles = []
    for first, second in runs:
        p_first = p_up if first == up else max(1, min(-int(s.model(*down)) for s in specs))
        n_first = lim // p_first + 1
        steps = model.rows if model.dataflow == "ws" else min(
            600, 2 * n_first + 1 if second else n_first + n_first // 2 + 1)
        ops = [first if (i < n_first or second is None) else second for i in range(steps)]
        a_col = np.array([o[0] for o in ops], dtype=np.int64)
        b_col = np.array([o[1] for o in ops], dtype=np.int64)
        if model.dataflow == "ws":       # a: M x K_t (3 vectors, the middle one random)
            a = np.tile(a_col, (3, 1))
            a[1] = rng.integers(lo, hi + 1, size=steps)
            b = np.tile(b_col[:, None], (1, model.cols))
        else:                            # a: rows x K (last row random), b: K x cols
            a = np.tile(a_col, (model.rows, 1))
            a[-1] = rng.integers(lo, hi + 1, size=steps)
            b = np.tile(b_col[:, None], (1, model.cols))
        tiles.append((a, b))
    return tiles


def overflowed(model: ArrayModel, prog: Program) -> int:
    """How many expected result vectors differ from the exact (overflow-free) sums."""
    wide = replace(model, acc_width=62)
    exact = [v for a, b in prog.operands for v in wide.tile(a, b)]
    return int(sum(np.any(e != w) for e, w in zip(prog.expected, exact)))


def gemm_program(model: ArrayModel, codecs: dict, a, b, rng):
    """The passes of ``a @ b`` in the order :func:`sim.golden.tiled_gemm` uses. Returns the
    program and a function that assembles the received result vectors into the product (host
    side: ws K-tile partial results are added with the array's accumulator rule)."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    m, k = a.shape
    n = b.shape[1]
    tiles, places = [], []
    if model.dataflow == "ws":
        for n0 in range(0, n, model.cols):
            n1 = min(n0 + model.cols, n)
            for t, k0 in enumerate(range(0, k, model.rows)):
                k1 = min(k0 + model.rows, k)
                tiles.append((a[:, k0:k1], b[k0:k1, n0:n1]))
                places.append((n0, n1, t))
    else:
        for m0 in range(0, m, model.rows):
            m1 = min(m0 + model.rows, m)
            for n0 in range(0, n, model.cols):
                n1 = min(n0 + model.cols, n)
                tiles.append((a[m0:m1, :], b[:, n0:n1]))
                places.append((m0, m1, n0, n1))
    prog = program(model, codecs, tiles, rng)

    def assemble(vectors) -> np.ndarray:
        out = np.zeros((m, n), dtype=np.int64)
        for (start, count), place in zip(prog.tiles, places):
            block = np.array(vectors[start:start + count], dtype=np.int64)
            if model.dataflow == "ws":
                n0, n1, t = place
                part = block[:, :n1 - n0]
                out[:, n0:n1] = part if t == 0 else accumulate(
                    out[:, n0:n1], part, model.acc_width, model.overflow)
            else:
                m0, m1, n0, n1 = place
                out[m0:m1, n0:n1] = block[:m1 - m0, :n1 - n0]
        return out

    return prog, assemble, tiled_gemm(a, b, model)


# -- Amaranth simulation of the component itself -------------------------------------------------
def measure_gemm(array, model: ArrayModel, a, b, rng) -> tuple[np.ndarray, np.ndarray, int]:
    """``a @ b`` through ``array`` in Amaranth's simulator (inputs kept valid, results always
    ready): ``(received product, sim.golden.tiled_gemm's product, clock edges from the first
    input transfer to the last result transfer)`` - the figure the manifest's
    ``timing.gemm_cycles`` and :func:`hw.systolic.gemm_cycles` predict."""
    codecs = {p["name"].split("__")[0]: StreamCodec(p)
              for p in array.interface() if p["name"].endswith("__payload")}
    prog, assemble, want = gemm_program(model, codecs, a, b, rng)
    record = {}
    words = simulate_amaranth(array, prog, record=record)
    got = assemble([codecs["results"].decode(w) for w in words])
    return got, want, record["results"][-1] - min(c[0] for c in record.values() if c)


def simulate_amaranth(array, prog: Program, *, seed: int = 0, p_gap: float = 0.0,
                      p_stall: float = 0.0, max_cycles: int = 20_000,
                      record: dict | None = None) -> list[int]:
    """Run ``prog`` through ``array`` (a :class:`hw.systolic.SystolicArray`, elaborated
    directly: no shared PE modules) in Amaranth's simulator, with the same stream discipline
    as the cocotb testbench; return the result payload words in arrival order. ``record``
    (a dict) receives the clock-edge numbers of the transfers: ``record[stream]`` for each
    input stream and ``record["results"]``."""
    import random

    from amaranth.sim import Simulator

    rng = random.Random(seed)
    streams = {name: getattr(array, name) for name in prog.inputs}
    words = []
    record = {} if record is None else record
    for name in [*streams, "results"]:
        record[name] = []

    async def bench(ctx):
        idx = {n: 0 for n in streams}
        holding = {n: False for n in streams}
        for cycle in range(max_cycles):
            if all(idx[n] >= len(prog.inputs[n]) for n in streams) and \
                    len(words) >= len(prog.expected):
                return
            driven = {}
            for n, port in streams.items():
                items = prog.inputs[n]
                driven[n] = idx[n] < len(items) and (holding[n] or rng.random() >= p_gap)
                ctx.set(port.valid, int(driven[n]))
                if driven[n]:
                    ctx.set(port.payload.as_value(), items[idx[n]])
                    holding[n] = True
            ready = int(not (p_stall and rng.random() < p_stall))
            ctx.set(array.results.ready, ready)
            for n, port in streams.items():
                if driven[n] and ctx.get(port.ready):
                    idx[n] += 1
                    holding[n] = False
                    record[n].append(cycle)
            if ready and ctx.get(array.results.valid):
                words.append(ctx.get(array.results.payload))
                record["results"].append(cycle)
            await ctx.tick()
        raise TimeoutError(f"no result after {max_cycles} cycles")

    sim = Simulator(array)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return words


# -- harness and runner ------------------------------------------------------------------------
def harness_verilog(units: list[tuple[str, dict]], name: str = "array_harness") -> str:
    """A Verilog top with one instance of each generated array: ``units`` is a list of
    ``(prefix, manifest)``; instance ports appear as ``{prefix}__{port}``. Every instance has
    its own clock, so an event-driven simulator spends nothing on the idle ones. A manifest's
    ``ports_tied`` (``{port: Verilog constant}``) are tied inside the harness (a bank unit's
    ``select``)."""
    ports, body = [], []
    for prefix, manifest in units:
        conns = [f".{name}({manifest['ports_tied'][name]})" for name in
                 sorted(manifest.get("ports_tied", {}))]
        for port in manifest["ports"]:
            w = port["width"]
            rng = f"[{w - 1}:0] " if w > 1 else ""
            ports.append(f"{port['direction']} {rng}{prefix}__{port['name']}")
            conns.append(f".{port['name']}({prefix}__{port['name']})")
        body.append(f"  {manifest['top']} {prefix} (\n    " + ",\n    ".join(conns) + "\n  );")
    return (f"module {name} (\n  " + ",\n  ".join(ports) + "\n);\n" + "\n".join(body)
            + "\nendmodule\n")


def harness_units(prefix: str, manifest: dict, model_names=None) -> list:
    """``(prefix, manifest, model names)`` of the harness units of one generated design: the
    array itself, or for a bank (``hw.gen --bank``) one instance per array with ``select``
    tied to it (``ports_tied``), whose manifest is the bank's with that array's ``array``
    and ``timing`` entries. ``model_names``: :attr:`hw.gen.Generated.model_names`
    (``None``: the manifest's)."""
    bank = manifest.get("bank")
    if bank is None:
        return [(prefix, manifest, model_names)]
    sel = bank["select"]
    out = []
    for j, entry in enumerate(bank["arrays"]):
        unit = dict(manifest, array=entry["array"],
                    timing=entry.get("timing", manifest["timing"]),
                    ports=[p for p in manifest["ports"] if p["name"] != sel["name"]],
                    ports_tied={sel["name"]: f"{sel['width']}'d{j}"})
        out.append((f"{prefix}s{j}", unit, None if model_names is None else [model_names[j]]))
    return out


def unit_config(prefix: str, manifest: dict, scenarios, seed: int, *, model_names=None,
                gemm=None, cycle_shapes=None, stream_length: int = 2000) -> dict:
    """One unit of the testbench configuration (:mod:`sim.tb.tb_array`)."""
    return {"prefix": prefix, "manifest": manifest, "model_names": model_names,
            "scenarios": list(scenarios), "gemm": gemm, "seed": seed,
            "cycle_shapes": cycle_shapes, "stream_length": stream_length}


@dataclass(frozen=True)
class Harness:
    """Generated designs in one Verilog file, ready for :func:`run_harness`."""

    source: Path
    units: list
    key: str


def prepare_harness(designs: list[dict], workdir: Path, *, seed: int = 1,
                    scenarios=SCENARIOS) -> Harness:
    """Generate ``designs`` (each a dict of :func:`hw.gen.generate` keyword arguments, plus
    optional ``"scenarios"``, ``"gemm"`` (M, K, N), ``"cycle_shapes"`` (list of (M, K, N)) and
    ``"stream_length"`` keys) and write one harness file."""
    from hw.gen import generate
    from hw.sources import merge_sources

    texts, units, unit_cfg, gens = [], [], [], []
    for i, design in enumerate(designs):
        args = {k: v for k, v in design.items()
                if k not in ("scenarios", "gemm", "cycle_shapes", "stream_length")}
        gen = generate(**args, name=f"u{i}_{design.get('dataflow', 'ws')}")
        texts.append(gen.design_verilog)
        gens.append(gen)
        for prefix, manifest, names in harness_units(f"u{i}", gen.manifest, gen.model_names):
            units.append((prefix, manifest))
            unit_cfg.append(unit_config(prefix, manifest, design.get("scenarios", scenarios),
                                        seed + 1000 * len(unit_cfg), model_names=names,
                                        gemm=design.get("gemm"),
                                        cycle_shapes=design.get("cycle_shapes"),
                                        stream_length=design.get("stream_length", 2000)))
    # Designs may bring netlists that define the same helper modules: each module once,
    # differing ones of the same name renamed (hw.sources.merge_sources).
    extra = merge_sources(sorted({item for g in gens for item in g.extra_sources.items()}))
    verilog = "".join(texts) + "".join(extra.values()) + \
        harness_verilog(units)
    key = hashlib.sha256(verilog.encode()).hexdigest()[:12]
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    src = workdir / f"array_harness-{key}.v"
    src.write_text(verilog)
    return Harness(src, unit_cfg, key)


def run_harness(harness: Harness, simulator: str, workdir: Path, waves=None) -> dict:
    """Run the testbench on ``simulator``; return its report (``passed``, ``mismatches``,
    ``errors``, ``units`` with per-scenario results and measured latency/throughput).
    ``waves``: see :func:`sim.tb.runner.run_cocotb`."""
    from .tb.runner import run_cocotb

    build = Path(workdir) / f"{simulator}-{harness.key}"
    extra = ["-g2005"] if simulator == "icarus" else None  # -g2005: see run_cocotb
    # Verilator: the model is compiled once and then mostly waits for Python, so C++ at -O0
    # (half the compile time of the default -Os) costs nothing that matters. Passed through
    # CXXFLAGS, which the runner's cache of Verilator runtime objects keys on.
    saved = os.environ.get("CXXFLAGS")
    if simulator == "verilator":
        os.environ["CXXFLAGS"] = f"{saved or ''} -O0".strip()
    try:
        report = run_cocotb(simulator, sources=[harness.source], toplevel="array_harness",
                            test_module="tb_array", build_dir=build,
                            config={"units": harness.units}, extra_build_args=extra,
                            waves=waves)
    finally:
        if saved is None:
            os.environ.pop("CXXFLAGS", None)
        else:
            os.environ["CXXFLAGS"] = saved
    (build / "summary.json").write_text(json.dumps(report, indent=1))
    return report


def check_arrays(designs: list[dict], *, simulator: str, workdir: Path, seed: int = 1,
                 scenarios=SCENARIOS) -> dict:
    """:func:`prepare_harness` then :func:`run_harness` (one build for all ``designs``)."""
    harness = prepare_harness(designs, workdir, seed=seed, scenarios=scenarios)
    return run_harness(harness, simulator, workdir)
