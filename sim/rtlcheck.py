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

from hw.mult import MultiplierSpec, parse
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


def test_vectors(width: int, is_signed: bool, *, random_pairs: int = 100_000,
                 seed: int = 1) -> tuple[np.ndarray, np.ndarray, str]:
    """Operand pairs for an RTL check and a description (``exhaustive`` or the seed/count)."""
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if is_signed else (0, (1 << width) - 1)
    if 1 << (2 * width) <= EXHAUSTIVE_LIMIT:
        v = np.arange(lo, hi + 1, dtype=np.int64)
        a, b = np.meshgrid(v, v, indexing="ij")
        return a.ravel(), b.ravel(), "exhaustive"
    corners = corner_operands(width, is_signed)
    ca, cb = np.meshgrid(corners, corners, indexing="ij")
    rng = np.random.default_rng(seed)
    ra = rng.integers(lo, hi + 1, random_pairs, dtype=np.int64)
    rb = rng.integers(lo, hi + 1, random_pairs, dtype=np.int64)
    return (np.concatenate([ca.ravel(), ra]), np.concatenate([cb.ravel(), rb]),
            f"{ca.size} corner pairs + {random_pairs} random pairs (seed {seed})")


def check_multipliers(names, *, width: int, signed: bool, simulator: str, workdir: Path,
                      lanes: int | None = None, random_pairs: int = 100_000,
                      seed: int = 1) -> dict:
    """Check every multiplier in ``names`` bit-exactly on ``simulator``; return the report.

    The report has ``results`` (per multiplier: vectors, mismatches), ``mismatches`` (first
    failing pairs), ``passed``, ``vectors_per_second`` and ``coverage`` (how vectors were chosen).
    """
    specs: list[MultiplierSpec] = [parse(n, width=width, signed=signed) for n in names]
    if lanes is None:
        lanes = 16 if width <= 8 else 8
    verilog = emit_verilog(MultiplierBank(specs, lanes), "mult_bank")
    a, b, coverage = test_vectors(width, signed, random_pairs=random_pairs, seed=seed)
    key = hashlib.sha256(verilog.encode()).hexdigest()[:12]
    build = Path(workdir) / f"{simulator}-{width}{'s' if signed else 'u'}-{key}"
    build.mkdir(parents=True, exist_ok=True)
    src = build / "mult_bank.v"
    src.write_text(verilog)
    vec_path = build / "vectors.npz"
    np.savez(vec_path, a=a, b=b)
    config = {"names": [s.name for s in specs], "width": width, "signed": signed,
              "lanes": lanes, "vectors": str(vec_path)}
    report = run_cocotb(simulator, sources=[src], toplevel="mult_bank", test_module="tb_mult",
                        build_dir=build, config=config)
    report["coverage"] = coverage
    (build / "summary.json").write_text(json.dumps(report, indent=1))
    return report
