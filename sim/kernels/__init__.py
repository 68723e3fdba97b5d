"""Exact integer kernels behind :mod:`sim.emulate`: thread count, compiled helpers, buffers.

* :mod:`sim.kernels.intgemm` - exact integer GEMMs from well-kept libraries (onnxruntime's
  ``MatMulInteger``, torch's ``_int_mm``), each checked on a probe before use.
* :mod:`sim.kernels.lut` - table GEMMs ``sum_k T[a, b]`` for arbitrary 4..8-bit product tables
  on the compiled kernels of ``sim/kernels/_native.c`` (runtime CPU dispatch).
* :mod:`sim.kernels.calibrate` - one measured calibration of these kernels per machine (cached),
  the constants of :mod:`sim.emulate`'s route choice.

``sim.kernels._native`` is an optional C extension built by ``pip install -e .``; without it
(:data:`native` is ``None``) everything still works on numpy and BLAS, only slower.
``AXM_EMULATE_NATIVE=0`` ignores it.

Threads: :func:`threads` is the one thread count of every kernel here (onnxruntime's intra-op
pool, the table kernels' worker threads): ``set_threads(n)``, else ``AXM_EMULATE_THREADS``, else
``OMP_NUM_THREADS``, else the CPUs this process may run on. Kernels run one after another, each on
that many threads, so they never oversubscribe the machine (BLAS keeps its own setting, which
``OMP_NUM_THREADS`` also governs).
"""

from __future__ import annotations

import math
import os
import threading

import numpy as np

__all__ = ["native", "threads", "set_threads", "workspace", "aligned_empty"]


def _load_native():
    if os.environ.get("AXM_EMULATE_NATIVE", "").strip() == "0":
        return None
    try:
        from . import _native
    except ImportError:
        return None
    return _native


#: The compiled helpers (``sim.kernels._native``) or ``None``.
native = _load_native()

_threads: int | None = None


def _env_threads(name):
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = int(text.split(",")[0])
    except ValueError:
        return None
    return value if value >= 1 else None


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def threads() -> int:
    """Worker threads of the emulator's kernels (see the module docstring)."""
    if _threads is not None:
        return _threads
    return _env_threads("AXM_EMULATE_THREADS") or _env_threads("OMP_NUM_THREADS") or _cpus()


def set_threads(n: int | None) -> None:
    """Use ``n`` threads from now on (``None``: back to the environment's choice)."""
    global _threads
    if n is not None and (not isinstance(n, (int, np.integer)) or n < 1):
        raise ValueError(f"thread count must be a positive integer, not {n!r}")
    _threads = None if n is None else int(n)


_local = threading.local()


def workspace(name: str, shape, dtype) -> np.ndarray:
    """A reusable array of ``shape`` for this thread (contents undefined).

    Buffers grow and are kept per thread and name, so the temporaries of repeated GEMMs of one
    size cost no fresh pages (each fresh MB-sized temporary costs hundreds of page faults).
    """
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = {}
    dtype = np.dtype(dtype)
    size = math.prod(shape) * dtype.itemsize
    buf = pool.get(name)
    if buf is None or buf.size < size:
        buf = pool[name] = np.empty(max(size, 64), dtype=np.uint8)
    return buf[:size].view(dtype).reshape(shape)


def aligned_empty(shape, dtype, align: int = 64) -> np.ndarray:
    """A fresh array whose data starts on an ``align``-byte boundary."""
    dtype = np.dtype(dtype)
    n = math.prod(shape) * dtype.itemsize
    raw = np.empty(n + align, dtype=np.uint8)
    off = (-raw.ctypes.data) % align
    return raw[off:off + n].view(dtype).reshape(shape)
