"""Bit-exact RTL checks of multipliers against their reference models on real simulators.

:func:`check_multipliers` generates one Verilog top holding every requested multiplier (see
:class:`sim.tb.harness.MultiplierBank`), runs it under cocotb on Verilator or Icarus and returns
the testbench report. Vectors are all ``2**(2N)`` operand pairs when that is at most
``EXHAUSTIVE_LIMIT``, else corner cases plus seeded random pairs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from hw.mult import MultiplierSpec, extra_verilog_sources, parse
from hw.verilog import emit_verilog

from .tb.harness import MultiplierBank
from .tb.runner import run_cocotb

__all__ = ["EXHAUSTIVE_LIMIT", "corner_operands", "test_vectors", "check_multipliers"]

EXHAUSTIVE_LIMIT = 1 << 16


def corner_operands(width: int, is_signed: bool) -> np.ndarray:
    """0, 1, -1 (signed), max, min, max-1, min+1 and every power of two (and its negative)."""
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if is_signed else (0, (1 << width) - 1)
    values = {0, 1, lo, hi, lo + 1, hi - 1}
    if is_signed:
        values.add(-1)
    for s in range(width):
        for v in (1 << s, -(1 << s), (1 << s) - 1, (1 << s) + 1):
            if lo <= v <= hi:
                values.add(v)
    return np.array(sorted(values), dtype=np.int64)


def test_vectors(width: int, *, random_pairs: int = 100_000,
                 seed: int = 1) -> tuple[np.ndarray, np.ndarray, str]:
    """Raw ``width``-bit operand patterns for an RTL check and how they were chosen.

    All ``2**(2N)`` pairs when that is at most :data:`EXHAUSTIVE_LIMIT`; otherwise every pair of
    signed and unsigned corner operands plus ``random_pairs`` seeded random pairs. Patterns are
    unsigned; each multiplier reads them with its own signedness.
    """
    mask = (1 << width) - 1
    if 1 << (2 * width) <= EXHAUSTIVE_LIMIT:
        v = np.arange(1 << width, dtype=np.int64)
        a, b = np.meshgrid(v, v, indexing="ij")
        return a.ravel(), b.ravel(), "exhaustive"
    corners = np.unique(np.concatenate([corner_operands(width, True),
                                        corner_operands(width, False)]) & mask)
    ca, cb = np.meshgrid(corners, corners, indexing="ij")
    rng = np.random.default_rng(seed)
    ra = rng.integers(0, 1 << width, random_pairs, dtype=np.int64)
    rb = rng.integers(0, 1 << width, random_pairs, dtype=np.int64)
    return (np.concatenate([ca.ravel(), ra]), np.concatenate([cb.ravel(), rb]),
            f"{ca.size} corner pairs + {random_pairs} random pairs (seed {seed})")


#: Copies of each multiplier per width. Verilator evaluates the whole model every step, cheaply,
#: but its C++ compile grows with the design: few lanes. Icarus compiles fast and simulates
#: event by event, so more lanes only cut the per-step Python overhead.
DEFAULT_LANES = {"verilator": {4: 2, 8: 2, 12: 2, 16: 2},
                 "icarus": {4: 4, 8: 8, 12: 4, 16: 4}}


def check_multipliers(specs, *, simulator: str, workdir: Path, width: int | None = None,
                      signed: bool = True, lanes=None, random_pairs: int = 100_000,
                      seed: int = 1) -> dict:
    """Check every multiplier bit-exactly on ``simulator``; return the testbench report.

    ``specs``: :class:`MultiplierSpec` objects (any mix of widths and signedness), or names parsed
    with ``width`` and ``signed``. One Verilog build holds them all, so one simulator compile
    checks everything. ``lanes``: copies per multiplier (an int, or a dict by width).
    The report has ``results`` (per multiplier: vectors, mismatches), ``mismatches`` (first
    failing pairs), ``passed``, ``vectors_per_second`` and ``coverage`` (by width).
    """
    specs = [s if isinstance(s, MultiplierSpec) else parse(s, width=width or 8, signed=signed)
             for s in specs]
    if not specs:
        raise ValueError("no multipliers to check")
    widths = sorted({s.width for s in specs})
    if lanes is None:
        lanes = {w: DEFAULT_LANES.get(simulator, {}).get(w, 4) for w in widths}
    elif isinstance(lanes, int):
        lanes = {w: lanes for w in widths}
    verilog = emit_verilog(MultiplierBank(specs, lanes), "mult_bank")
    extra = extra_verilog_sources(specs)  # modules that imported/table multipliers instantiate
    key = hashlib.sha256("\0".join([verilog, *extra, *extra.values()]).encode()).hexdigest()[:12]
    build = Path(workdir) / f"{simulator}-{'-'.join(map(str, widths))}-{key}"
    build.mkdir(parents=True, exist_ok=True)
    src = build / "mult_bank.v"
    src.write_text(verilog)
    sources = [src]
    for fname, text in extra.items():
        sources.append(build / fname)
        sources[-1].write_text(text)
    groups, coverage = [], {}
    for w in widths:
        a, b, coverage[w] = test_vectors(w, random_pairs=random_pairs, seed=seed)
        vec_path = build / f"vectors{w}.npz"
        np.savez(vec_path, a=a, b=b)
        groups.append({"width": w, "lanes": lanes[w], "vectors": str(vec_path),
                       "members": [[k, s.name, s.signed] for k, s in enumerate(specs)
                                   if s.width == w]})
    report = run_cocotb(simulator, sources=sources, toplevel="mult_bank", test_module="tb_mult",
                        build_dir=build, config={"groups": groups})
    report["coverage"] = coverage
    (build / "summary.json").write_text(json.dumps(report, indent=1))
    return report
