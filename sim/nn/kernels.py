"""The accelerator's integer GEMM on torch tensors, and derivative tables for retraining.

:func:`gemm` computes ``start + sum_k p(a[m, k], b[k, n])`` with the layer's multiplier ``p``,
accumulator width and overflow rule, for ``a (M x K)``, ``b (K x N)`` or grouped
``a (G, M, K)``, ``b (G, K, N)`` int64 tensors. Two back ends give the same integers:

* ``numpy`` - :func:`sim.dnn.quant.layer_gemm`, i.e. :mod:`sim.emulate` (decompositions into a
  few exact GEMMs, table gathers), the code :mod:`sim.dnn` runs: the CPU default;
* ``torch`` - the multiplier's product table (``spec.table()``, :mod:`hw.mult`) gathered with
  integer indices on the tensors' device and summed in int64 (an exact multiplier: one float64
  matmul, exact because every product and partial sum is an integer below ``2**53``); the
  accumulator rules are applied as :func:`sim.golden.accumulate` does: ``wrap`` reduces the sum
  modulo ``2**A``, ``saturate`` clamps step by step in ``k`` order wherever a bound does not
  prove that no partial sum leaves the range. Integer arithmetic only, so CPU and CUDA give
  the same bits by construction: the default on CUDA.

``backend="auto"`` picks ``numpy`` for CPU tensors and ``torch`` otherwise. A heterogeneous
:class:`~sim.golden.ArrayModel` always runs on the numpy back end.
"""

from __future__ import annotations

import numpy as np

from hw.extras import require
from hw.mult import MultiplierSpec
from sim.dnn.errors import DnnError
from sim.dnn.quant import layer_gemm
from sim.golden import ArrayModel

torch = require("torch", "the PyTorch front end (sim.nn)")

__all__ = ["gemm", "product_sums", "derivative_tables", "BACKENDS", "CHUNK"]

BACKENDS = ("auto", "numpy", "torch")
#: Elements gathered at once by the torch back end (index tensor of 8 bytes each).
CHUNK = 1 << 22

_TABLES: dict = {}


def _table(spec: MultiplierSpec, device):
    """``(flat table int32, operand lo, side, exact?, row |max|, column |max|)`` on ``device``."""
    key = (spec, str(device))
    if key not in _TABLES:
        t = np.asarray(spec.table(), dtype=np.int64)
        vals = np.asarray(spec.operand_values(), dtype=np.int64)
        exact = bool(np.array_equal(t, np.outer(vals, vals)))
        if np.abs(t).max() >= 1 << 31:
            raise DnnError(f"{spec.full_name}: products do not fit 32 bits")
        _TABLES[key] = (torch.as_tensor(t.reshape(-1), dtype=torch.int32, device=device),
                        int(vals[0]), len(vals), exact,
                        torch.as_tensor(np.abs(t).max(axis=1), device=device),
                        torch.as_tensor(np.abs(t).max(axis=0), device=device),
                        int(np.abs(t).max()))
    return _TABLES[key]


def product_sums(a, b, spec: MultiplierSpec):
    """``S[g, m, n] = sum_k p(a[g, m, k], b[g, k, n])`` (exact int64) on the tensors' device."""
    tab, lo, side, exact = _table(spec, a.device)[:4]
    if exact:
        return torch.bmm(a.double(), b.double()).round().to(torch.int64)
    g, m, k = a.shape
    n = b.shape[2]
    ia = (a - lo) * side
    ib = b - lo
    out = torch.zeros((g, m, n), dtype=torch.int64, device=a.device)
    rows = max(1, min(m, CHUNK // max(1, g * n)))
    kc = max(1, min(k, CHUNK // max(1, g * rows * n)))
    for m0 in range(0, m, rows):
        m1 = min(m, m0 + rows)
        for k0 in range(0, k, kc):
            k1 = min(k, k0 + kc)
            idx = ia[:, m0:m1, k0:k1, None] + ib[:, None, k0:k1, :]
            out[:, m0:m1] += tab[idx].sum(dim=2, dtype=torch.int64)
    return out


def _accumulate(a, b, spec, start, acc_width, overflow):
    if not 2 <= acc_width <= 62:
        raise DnnError(f"the torch back end supports accumulators of 2..62 bits, not {acc_width}")
    g, m, k = a.shape
    n = b.shape[2]
    total = product_sums(a, b, spec)
    if start is not None:
        total = total + start
    limit = (1 << (acc_width - 1)) - 1
    slack = 0 if start is None else int(start.abs().max()) if start.numel() else 0
    peak = _table(spec, a.device)[6]
    if k * peak + slack <= limit:
        return total
    if overflow == "wrap":
        half = 1 << (acc_width - 1)
        return torch.remainder(total + half, 1 << acc_width) - half
    _, lo, _, _, row_max, col_max, _ = _table(spec, a.device)
    rb = row_max[a - lo].sum(dim=2)                       # G, M
    cb = col_max[b - lo].sum(dim=1)                       # G, N
    bound = torch.minimum(rb[:, :, None], cb[:, None, :])
    if start is not None:
        bound = bound + start.abs()
    unsafe = bound > limit
    if not bool(unsafe.any()):
        return total
    tab, lo, side = _table(spec, a.device)[:3]
    gi, mi, ni = unsafe.nonzero(as_tuple=True)            # only where a bound may be crossed
    acc = (torch.zeros(gi.shape, dtype=torch.int64, device=a.device) if start is None
           else start.expand_as(total)[gi, mi, ni].clone())
    rows = (a[gi, mi, :] - lo) * side                     # U x K
    cols = b[gi, :, ni] - lo                              # U x K
    step = max(1, CHUNK // max(1, len(gi)))
    for k0 in range(0, k, step):                          # the hardware's sequential clamp
        prod = torch.take(tab, rows[:, k0:k0 + step] + cols[:, k0:k0 + step]).to(torch.int64)
        for j in range(prod.shape[1]):
            acc = torch.clamp(acc + prod[:, j], -limit - 1, limit)
    total = total.clone()
    total[gi, mi, ni] = acc
    return total


def gemm(a, b, target, start=None, *, acc_width: int = 32, overflow: str = "wrap",
         backend: str = "auto"):
    """The accumulators ``start + sum_k p(a_k, b_k)`` (module docstring); int64 on ``a``'s
    device, ``M x N`` (grouped operands: ``M x G N``, column ``g N + n``)."""
    if backend not in BACKENDS:
        raise DnnError(f"backend {backend!r} unknown; expected one of {', '.join(BACKENDS)}")
    if overflow not in ("wrap", "saturate"):
        raise DnnError(f"overflow mode {overflow!r} unknown; expected wrap or saturate")
    device = a.device
    use_numpy = backend == "numpy" or (backend == "auto" and device.type == "cpu") or \
        isinstance(target, ArrayModel)
    if use_numpy:
        st = None if start is None else start.cpu().numpy()
        acc = layer_gemm(a.cpu().numpy(), b.cpu().numpy(), target, st, acc_width, overflow)
        return torch.from_numpy(np.ascontiguousarray(acc, dtype=np.int64)).to(device)
    grouped = a.dim() == 3
    a3 = a if grouped else a[None]
    b3 = b if grouped else b[None]
    g, m, _ = a3.shape
    n = b3.shape[2]
    st = None
    if start is not None:
        st = start.reshape(m, g, n).permute(1, 0, 2) if grouped else start[None]
    lo, hi = target.operand_range
    for name, t in (("activation", a3), ("weight", b3)):
        if t.numel() and (int(t.min()) < lo or int(t.max()) > hi):
            raise DnnError(f"{name} operands outside {lo}..{hi} for {target.full_name}")
    acc = _accumulate(a3, b3, target, st, acc_width, overflow)      # G, M, N
    return acc.permute(1, 0, 2).reshape(m, g * n) if grouped else acc[0]


_DERIV: dict = {}


def derivative_tables(spec: MultiplierSpec, device, smooth: int = 0):
    """``(D_a, D_b)``: central differences of the product table along ``a`` and along ``b``
    (one-sided at the ends), float64 flat tables on ``device``; ``smooth`` > 0 averages each
    difference over a window of ``2 smooth + 1`` operand values first (an error surface with
    steps gets a usable slope). For the exact product ``D_a[a, b] = b`` and ``D_b = a``."""
    key = (spec, str(device), smooth)
    if key not in _DERIV:
        t = np.asarray(spec.table(), dtype=np.float64)

        def diff(t):
            d = np.empty_like(t)
            d[1:-1] = (t[2:] - t[:-2]) / 2
            d[0] = t[1] - t[0]
            d[-1] = t[-1] - t[-2]
            if smooth:
                w = 2 * smooth + 1
                pad = np.pad(d, ((smooth, smooth), (0, 0)), mode="edge")
                d = np.cumsum(pad, axis=0)
                d = np.vstack([d[w - 1:w], d[w:] - d[:-w]]) / w
            return d

        da = diff(t)
        db = diff(t.T).T
        _DERIV[key] = (torch.as_tensor(da.reshape(-1), device=device),
                       torch.as_tensor(db.reshape(-1), device=device))
    return _DERIV[key]


def table_grads(a, b, spec, grad_a, grad_b, smooth: int = 0):
    """Gradients through ``S = sum_k p(a_k, b_k)`` by the derivative tables: for grouped
    operands ``a (G, M, K)``, ``b (G, K, N)`` and output gradients ``(G, M, N)`` (float64),
    returns ``sum_n grad_a D_a (G, M, K)`` and ``sum_m grad_b D_b (G, K, N)``."""
    da_tab, db_tab = derivative_tables(spec, a.device, smooth)
    lo, side = spec.operand_range[0], 1 << spec.width
    g, m, k = a.shape
    n = b.shape[2]
    ia = (a - lo) * side
    ib = b - lo
    ga = torch.zeros((g, m, k), dtype=torch.float64, device=a.device)
    gb = torch.zeros((g, k, n), dtype=torch.float64, device=a.device)
    kc = max(1, min(k, CHUNK // max(1, g * m * n)))
    for k0 in range(0, k, kc):
        k1 = min(k, k0 + kc)
        idx = ia[:, :, k0:k1, None] + ib[:, None, k0:k1, :]          # G, M, kc, N
        ga[:, :, k0:k1] = (da_tab[idx] * grad_a[:, :, None, :]).sum(dim=3)
        gb[:, k0:k1, :] = (db_tab[idx] * grad_b[:, :, None, :]).sum(dim=1)
    return ga, gb
