"""One measured calibration of the emulator's kernels on this machine: the constants of
:mod:`sim.emulate`'s cost model (its per-multiplier, per-shape choice of route).

Measured (about 0.3 s, at the thread count of :func:`sim.kernels.threads`):

* each exact integer GEMM kernel (:mod:`sim.kernels.intgemm`) and float32/float64 BLAS:
  ``t = t0 + M*K*N / rate`` from a 64^3 and a 256^3 product;
* each table kernel (:mod:`sim.kernels.lut`): ``t = t0 + K*Q*V / build + P*K*Q / main`` from a
  tall and a wide shape (``P`` the long output side, ``Q`` the short one, ``V`` table entries);
* per-element costs of the helpers: ``index8`` (range check + uint8 offset of int64 operands),
  ``expand``, ``lutsum``, ``combine``, and a numpy ``take``.

The result is cached in the toolkit's cache (``hw.cache``, kind ``emulate``), keyed by the CPU
(model and flags), the thread count, the kernels that passed their probes and the library
versions; a stale or missing entry only costs one more calibration. ``AXM_EMULATE_CALIBRATION=0``
skips measuring and uses :data:`DEFAULTS` (figures of a 2-core AVX2 machine), so the choice is
the same on every run.
"""

from __future__ import annotations

import functools
import os
import platform
import time

import numpy as np

import sim.kernels as _pkg

from . import intgemm, lut, threads

__all__ = ["constants", "measure", "DEFAULTS"]

SCHEMA = 1

#: Used when calibration is off (AVX2, 2 cores; seconds and operations per second).
DEFAULTS = {
    "int": {"onnxruntime-u8u8": [2.5e-5, 8.0e10], "onnxruntime-u8s8": [2.5e-5, 8.0e10],
            "torch-s8s8": [5e-5, 7e8]},
    "f32": [1e-5, 6e10], "f64": [1e-5, 3e10],
    "lut": {"permute-avx512": [2e-5, 1e12, 2e10], "rowadd-avx2": [2e-5, 1.5e9, 2.4e10],
            "rowadd-c": [2e-5, 3e8, 3e9], "permute-c": [2e-5, 1e12, 2e7]},
    "elem": {"index8": 1.2e-9, "expand": 1.0e-9, "lutsum": 0.6e-9, "combine": 1.5e-9,
             "take": 2.5e-9},
}


def _best(fn, reps=3):
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _fit(small, big, w_small, w_big):
    """``t = t0 + w / rate`` through two points (rate from the slope, t0 >= 0)."""
    slope = max((big - small) / max(w_big - w_small, 1), 1e-15)
    t0 = max(small - w_small * slope, 0.0)
    return [t0, 1.0 / slope]


def _measure_int(kernel, rng):
    times = []
    for s in (64, 256):
        a = rng.integers(0, 256, (s, s)).astype(np.uint8).view(kernel.a_dtype)
        b = rng.integers(0, 256, (s, s)).astype(np.uint8).view(kernel.b_dtype)
        out = np.empty((s, s), np.int32)
        times.append(_best(lambda: kernel.matmul(a, b, out)))
    return _fit(times[0], times[1], 64 ** 3, 256 ** 3)


def _measure_blas(dtype, rng):
    times = []
    for s in (64, 256):
        a = rng.integers(-128, 128, (s, s)).astype(dtype)
        b = rng.integers(-128, 128, (s, s)).astype(dtype)
        times.append(_best(lambda: np.matmul(a, b)))
    return _fit(times[0], times[1], 64 ** 3, 256 ** 3)


def _measure_lut(name, rng):
    table = rng.integers(-16000, 16000, (256, 256))
    op = lut.TableOperand(table)

    def run(m, k, n):
        a = rng.integers(0, 256, (m, k)).astype(np.uint8)
        b = rng.integers(0, 256, (k, n)).astype(np.uint8)
        return _best(lambda: lut.table_gemm(op, a, b, name), reps=2)

    t_tiny = run(16, 8, 16)
    shapes = ((4096, 32, 16), (64, 32, 256)) if name != "permute-c" else ((256, 8, 4), (64, 8, 32))
    rows = []
    for (m, k, n) in shapes:
        p, q = max(m, n), min(m, n)
        rows.append((k * q * 256, p * k * q, run(m, k, n) - t_tiny))
    (b1, m1, t1), (b2, m2, t2) = rows
    det = b1 * m2 - b2 * m1                 # solve t = b / build + m / main
    inv_build = max((t1 * m2 - t2 * m1) / det, 1e-13) if det else 1e-13
    inv_main = max((b1 * t2 - b2 * t1) / det, 1e-13) if det else 1e-13
    return [max(t_tiny, 0.0), 1.0 / inv_build, 1.0 / inv_main]


def _measure_elem(rng):
    n = 1 << 20
    x = rng.integers(-128, 128, n)
    d = np.empty(n, np.uint8)
    out = {"take": _best(lambda: np.take(np.zeros(256, np.float32), d.astype(np.intp))) / n}
    if _pkg.native is None:
        out.update({k: v for k, v in DEFAULTS["elem"].items() if k != "take"})
        return out
    out["index8"] = _best(lambda: _pkg.native.index8(x, 8, 1, -128, 127, d)) / n
    lutv = np.zeros((256, 4), np.uint8)
    dst = np.empty(n * 4, np.uint8)
    out["expand"] = _best(
        lambda: _pkg.native.expand(d, n, 1, lutv, 256, 4, 0, dst)) / (4 * n)
    h = np.zeros(256, np.int64)
    rs = np.empty(1024, np.int64)
    out["lutsum"] = _best(lambda: _pkg.native.lutsum(d, 1024, n // 1024, h, 256, 1, rs)) / n
    part = np.zeros(n, np.int32)
    res = np.empty(n, np.int64)
    out["combine"] = _best(lambda: _pkg.native.combine(res, 1024, n // 1024, [(part, 3, 0, 0)],
                                                  None, None, 0, 0)) / n
    return out


def measure() -> dict:
    """Measure the constants now (see the module docstring)."""
    rng = np.random.default_rng(1)
    return {
        "int": {k.name: _measure_int(k, rng) for k in intgemm.kernels()},
        "f32": _measure_blas(np.float32, rng), "f64": _measure_blas(np.float64, rng),
        "lut": {name: _measure_lut(name, rng) for name in lut.available()},
        "elem": _measure_elem(rng),
    }


def _cpu_id() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        model = next((l.split(":", 1)[1].strip() for l in text.splitlines()
                      if l.startswith("model name")), "")
        flags = next((l.split(":", 1)[1].strip() for l in text.splitlines()
                      if l.startswith("flags")), "")
        return f"{model}|{flags}"
    except OSError:
        return f"{platform.machine()}|{platform.processor()}"


def _versions() -> dict:
    out = {"numpy": np.__version__}
    try:
        from .intgemm import import_onnxruntime
        out["onnxruntime"] = import_onnxruntime().__version__
    except ImportError:
        pass
    if _pkg.native is not None:
        try:
            out["native"] = os.path.getmtime(_pkg.native.__file__)
        except OSError:
            pass
    return out


@functools.lru_cache(maxsize=None)
def _constants(nthreads: int) -> dict:
    if os.environ.get("AXM_EMULATE_CALIBRATION", "").strip() == "0":
        return DEFAULTS
    key = {"cpu": _cpu_id(), "threads": nthreads, "versions": _versions(),
           "int": [k.name for k in intgemm.kernels()], "lut": lut.available(),
           "schema": SCHEMA}
    from hw.cache import Cache, cache_root
    cache = Cache(cache_root())
    got = cache.get("emulate", key)
    if isinstance(got, dict) and set(got) >= {"int", "f32", "f64", "lut", "elem"}:
        return got
    value = measure()
    cache.put("emulate", key, value)
    return value


def constants() -> dict:
    """The cost-model constants for the current thread count (measured once, cached)."""
    return _constants(threads())
