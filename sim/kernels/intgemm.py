"""Exact 8-bit integer GEMMs from well-kept libraries, each proven exact on this CPU first.

A kernel computes ``out (M x N, int32) = a (M x K) @ b (K x N)`` for 8-bit operands whose value
ranges it declares (``a_lo``/``b_lo``: 0 for uint8, -128 for int8; 256 values from there):

* ``onnxruntime-u8s8`` / ``onnxruntime-u8u8``: onnxruntime's ``MatMulInteger`` (MLAS kernels;
  u8 x s8 is its fast path on VNNI CPUs, u8 x u8 elsewhere). The model is a single node, its
  protobuf written here (importing the ``onnx`` package would cost ~2 s).
* ``torch-s8s8``: ``torch._int_mm`` (int8 x int8 -> int32); considered only when torch is already
  imported by the caller (``sim.nn``) or ``AXM_EMULATE_TORCH=1`` (its import costs ~2 s).

Exactness: the kernels accumulate in int32, so the caller bounds ``sum_k |a*b|`` below ``2**31``
(:func:`k_chunk`). Some instruction sets also round or saturate inside: AVX2's ``VPMADDUBSW``
(u8 x s8 pairs summed into a saturating int16) gives ``255*(-128)*2 -> -32768``. Every kernel is
therefore run once per process on a probe of extreme and random operands (:func:`probe`) and used
only if it equals the exact int64 product; :func:`kernels` lists the ones that passed, fastest
kind first. ``AXM_EMULATE_INTGEMM=none`` (or a kernel name) restricts the choice.
"""

from __future__ import annotations

import functools
import os
import sys
import threading

import numpy as np

from . import threads

__all__ = ["IntKernel", "kernels", "probe", "k_chunk", "reset", "INT32_MAX"]

INT32_MAX = (1 << 31) - 1


def k_chunk(per_k: int) -> int:
    """Largest ``K`` whose sums stay int32 when one step adds at most ``per_k`` in magnitude."""
    return max(1, INT32_MAX // max(per_k, 1))


# -- a hand-written ONNX model: Y = MatMulInteger(A, B) ----------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(num: int, value) -> bytes:
    if isinstance(value, int):
        return _varint(num << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(num << 3 | 2) + _varint(len(data)) + data


_UINT8, _INT8, _INT32 = 2, 3, 6        # onnx.TensorProto.DataType


def _value_info(name: str, elem: int, dims) -> bytes:
    shape = b"".join(_field(1, _field(2, d)) for d in dims)          # Dimension.dim_param
    tensor = _field(1, elem) + _field(2, shape)                      # TypeProto.Tensor
    return _field(1, name) + _field(2, _field(1, tensor))            # ValueInfoProto


def matmulinteger_model(a_type: int, b_type: int) -> bytes:
    """Serialized ONNX ModelProto (IR 8, opset 13) of one ``MatMulInteger`` node."""
    node = _field(1, "A") + _field(1, "B") + _field(2, "Y") + _field(4, "MatMulInteger")
    graph = (_field(1, node) + _field(2, "g") + _field(11, _value_info("A", a_type, "MK"))
             + _field(11, _value_info("B", b_type, "KN"))
             + _field(12, _value_info("Y", _INT32, "MN")))
    opset = _field(1, "") + _field(2, 13)
    return _field(1, 8) + _field(7, graph) + _field(8, opset)


# -- kernels --------------------------------------------------------------------------------


def import_onnxruntime():
    """``onnxruntime``, imported so that it leaves nothing behind: its native library writes a
    small session-id file ``.ses`` into ``$TMPDIR`` when it loads (seen with 1.32), which
    would break the promise that a run leaves no files in the user's temporary folder. The
    import runs with ``TMPDIR`` pointing at a folder of the toolkit's cache (kind ``emulate``)
    and restores it afterwards; Python's own temporary folder is fixed before that."""
    import sys
    if "onnxruntime" in sys.modules:
        return sys.modules["onnxruntime"]
    import os
    import tempfile

    from hw.cache import cache_dir

    tempfile.gettempdir()                 # Python's choice is made (and kept) before the switch
    private = cache_dir("emulate") / "onnxruntime-tmp"
    saved = os.environ.get("TMPDIR")
    try:
        private.mkdir(parents=True, exist_ok=True)
        os.environ["TMPDIR"] = str(private)
    except OSError:                       # an unwritable cache: import as usual
        private = None
    try:
        import onnxruntime
    finally:
        if private is not None:
            if saved is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = saved
    return onnxruntime

class IntKernel:
    """One exact integer GEMM: ``matmul(a, b, out)`` with ``a`` of dtype :attr:`a_dtype`,
    ``b`` of :attr:`b_dtype` (C-contiguous), ``out`` int32 (C-contiguous, written)."""

    name = "?"
    a_lo = 0
    b_lo = 0

    @property
    def a_dtype(self):
        return np.uint8 if self.a_lo == 0 else np.int8

    @property
    def b_dtype(self):
        return np.uint8 if self.b_lo == 0 else np.int8

    def matmul(self, a, b, out):  # pragma: no cover - interface
        raise NotImplementedError


class OrtKernel(IntKernel):
    def __init__(self, b_signed: bool):
        self.b_lo = -128 if b_signed else 0
        self.name = "onnxruntime-u8s8" if b_signed else "onnxruntime-u8u8"
        self._model = matmulinteger_model(_UINT8, _INT8 if b_signed else _UINT8)
        self._sessions = {}
        self._local = threading.local()

    def _session(self):
        """``(session, io_binding)`` for the current thread count; sessions are shared (their
        ``run`` is thread-safe), bindings are per calling thread."""
        n = threads()
        sess = self._sessions.get(n)
        if sess is None:
            ort = import_onnxruntime()
            so = ort.SessionOptions()
            so.intra_op_num_threads = n
            so.inter_op_num_threads = 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            so.log_severity_level = 3
            # idle pool threads sleep instead of spinning: they must not slow down the table
            # kernels, BLAS or other processes between GEMMs
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            sess = self._sessions.setdefault(
                n, ort.InferenceSession(self._model, so, providers=["CPUExecutionProvider"]))
        binds = getattr(self._local, "binds", None)
        if binds is None:
            binds = self._local.binds = {}
        io = binds.get(n)
        if io is None:
            io = binds[n] = sess.io_binding()
        return sess, io

    def matmul(self, a, b, out):
        sess, io = self._session()
        io.bind_cpu_input("A", a)
        io.bind_cpu_input("B", b)
        io.bind_output("Y", "cpu", 0, np.int32, out.shape, out.ctypes.data)
        sess.run_with_iobinding(io)
        io.clear_binding_inputs()
        io.clear_binding_outputs()
        return out


class TorchKernel(IntKernel):
    name = "torch-s8s8"
    a_lo = -128
    b_lo = -128

    def matmul(self, a, b, out):
        import torch
        n = threads()
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
        m, k = a.shape
        nn = b.shape[1]
        # _int_mm wants M > 16 and K, N multiples of 8: pad with zeros (they add nothing)
        mp, kp, np_ = max(m, 17), -(-k // 8) * 8, -(-nn // 8) * 8
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        if (mp, kp, np_) != (m, k, nn):
            ta = torch.nn.functional.pad(ta, (0, kp - k, 0, mp - m))
            tb = torch.nn.functional.pad(tb, (0, np_ - nn, 0, kp - k))
        res = torch._int_mm(ta, tb)
        out[...] = res[:m, :nn].numpy()
        return out


def _probe_operands(kernel, rng):
    """Extreme corners (the VPMADDUBSW saturation case among them) and random values."""
    alo, blo = kernel.a_lo, kernel.b_lo
    ahi, bhi = alo + 255, blo + 255
    m, k, n = 24, 64, 24
    a = rng.integers(alo, ahi + 1, (m, k))
    b = rng.integers(blo, bhi + 1, (k, n))
    a[0], a[1], a[2, ::2], a[3] = ahi, alo, ahi, alo + 1
    b[:, 0], b[:, 1], b[::2, 2], b[:, 3] = blo, bhi, bhi, blo + 1
    a[4:8] = rng.choice([alo, ahi], (4, k))
    b[:, 4:8] = rng.choice([blo, bhi], (k, 4))
    return a, b


@functools.lru_cache(maxsize=None)
def probe(name: str) -> bool:
    """Whether kernel ``name`` is installed and bit-exact on this CPU (checked once)."""
    kernel = _make(name)
    if kernel is None:
        return False
    rng = np.random.default_rng(20240617)
    try:
        for _ in range(2):
            a, b = _probe_operands(kernel, rng)
            out = np.empty((a.shape[0], b.shape[1]), np.int32)
            kernel.matmul(np.ascontiguousarray(a.astype(kernel.a_dtype)),
                          np.ascontiguousarray(b.astype(kernel.b_dtype)), out)
            if not np.array_equal(out, a @ b):
                return False
    except Exception:          # a library that fails to load or run is simply not used
        return False
    return True


_KERNELS = {}


def _make(name: str):
    if name in _KERNELS:
        return _KERNELS[name]
    kernel = None
    if name.startswith("onnxruntime-"):
        try:
            import_onnxruntime()
            kernel = OrtKernel(b_signed=name.endswith("u8s8"))
        except ImportError:
            kernel = None
    elif name == "torch-s8s8":
        wanted = "torch" in sys.modules or os.environ.get("AXM_EMULATE_TORCH", "") == "1"
        if wanted:
            try:
                import torch
                kernel = TorchKernel() if hasattr(torch, "_int_mm") else None
            except ImportError:
                kernel = None
    _KERNELS[name] = kernel
    return kernel


#: Every kernel this module knows, in order of preference.
NAMES = ("onnxruntime-u8s8", "onnxruntime-u8u8", "torch-s8s8")


def kernels() -> list[IntKernel]:
    """The kernels that passed :func:`probe` (``AXM_EMULATE_INTGEMM`` restricts: ``none`` or
    comma-separated names). u8 x u8 is dropped when u8 x s8 is exact (same library, same
    speed class)."""
    want = os.environ.get("AXM_EMULATE_INTGEMM", "").strip()
    names = NAMES if not want else tuple(w.strip() for w in want.split(",") if w.strip() in NAMES)
    ok = [n for n in names if probe(n)]
    if "onnxruntime-u8s8" in ok and "onnxruntime-u8u8" in ok and not want:
        ok.remove("onnxruntime-u8u8")
    return [_make(n) for n in ok]


def reset() -> None:
    """Forget the probes and kernels (they are found again on next use, e.g. after a library
    was installed or hidden)."""
    probe.cache_clear()
    _KERNELS.clear()
