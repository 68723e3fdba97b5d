"""Drop-in approximate layers: ``ApproxConv2d`` / ``ApproxLinear`` whose forward pass is the
emulated accelerator, and the integer operators between them.

Every module takes and returns *dequantised* float64 tensors ``S (q - z)`` and works on the
integers ``q`` inside: an input is quantised with :meth:`sim.dnn.quant.TensorQuant.quantize`'s
formula ``clip(floor(x / S + 1/2) + z, lo, hi)`` in float64, which for a tensor that another
module of the twin made gives back its integers exactly, and for a float input is the host-side
quantisation of :mod:`sim.dnn`. All integer parameters (weights, bias, requantisation
multipliers and shifts, clamps) come from :func:`sim.dnn.quant.gemm_params` and
:class:`sim.dnn.quant.QuantizedModel`; the operand mapping, zero-point corrections and
accumulator rules are those of :mod:`sim.dnn.quant` (documented there), so the integers equal
:meth:`sim.dnn.quant.QuantizedModel.run`'s.

A GEMM layer: quantise the input (``in_q``) and the weights, integer GEMM with the layer's
multiplier (:func:`sim.nn.kernels.gemm`), then either requantise to the next tensor
(``out_q``; the fused ReLU / clip are the output clamp) or, with ``out_q = None``, dequantise
the accumulators ``acc S_x S_w[c]`` and apply the fused ReLU / clip to them (what the host does
with logits, and what a drop-in layer inside a float model returns).

Gradients (retraining): the value is the accelerator's, the gradient is that of the float
layer on the *dequantised* operands with exact products (straight-through estimator):
``x_hat = S_x (q - z)`` and ``W_hat = S_w w`` pass gradients to ``x`` and ``W`` unchanged
(``x`` where it was not clipped), and outputs that the clamp cut get none. With
``grad="table"`` the products' partial derivatives come from the multiplier's error surface
instead: central differences of its product table (:func:`sim.nn.kernels.derivative_tables`).
"""

from __future__ import annotations

import numpy as np

from hw.extras import require
from sim.dnn.errors import DnnError
from sim.dnn.quant import ADD_SHIFT, TensorQuant, gemm_params, operand_offsets, target_signed

from . import kernels

torch = require("torch", "the PyTorch front end (sim.nn)")
nn = torch.nn
F = torch.nn.functional

__all__ = ["ApproxConv2d", "ApproxLinear", "QuantOp", "quantize", "dequantize", "GRADS"]

GRADS = ("ste", "table")
DTYPE = torch.float64


def quantize(x, tq: TensorQuant):
    """``clip(floor(x / S + 1/2) + z, lo, hi)`` as int64 (float64 arithmetic, like numpy)."""
    q = torch.floor(x.to(DTYPE) / tq.scale + 0.5) + tq.zero_point
    return q.clamp(tq.lo, tq.hi).to(torch.int64)


def dequantize(q, tq: TensorQuant):
    return (q - tq.zero_point).to(DTYPE) * tq.scale


def _grad_on(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _ste(value, surrogate, mask=None):
    """``value`` forward, ``d surrogate`` (times ``mask``) backward."""
    delta = surrogate - surrogate.detach()
    if mask is not None:
        delta = delta * mask
    return value.detach() + delta


def _input_ste(x, q, tq):
    """``x_hat = S (q - z)`` with the gradient passed to ``x`` where it was not clipped."""
    x_hat = dequantize(q, tq)
    if not x.requires_grad:
        return x_hat
    raw = torch.floor(x.detach().to(DTYPE) / tq.scale + 0.5) + tq.zero_point
    inside = ((raw >= tq.lo) & (raw <= tq.hi)).to(DTYPE)
    return _ste(x_hat, x.to(DTYPE), inside)


def _shift_round(acc, m0, sh):
    """``(acc * M0 + 2**(sh-1)) >> sh`` (int64, arithmetic shift)."""
    one = torch.ones_like(sh)
    return torch.bitwise_right_shift(acc * m0 + torch.bitwise_left_shift(one, sh - 1), sh)


class _ApproxGemm:
    """What ApproxConv2d and ApproxLinear share (mixed into the torch layer classes)."""

    def _setup(self, target, in_q: TensorQuant, out_q: TensorQuant | None, act, acc_width,
               overflow, backend, grad, smooth):
        if grad not in GRADS:
            raise DnnError(f"grad {grad!r} unknown; expected one of {', '.join(GRADS)}")
        if backend not in kernels.BACKENDS:
            raise DnnError(f"backend {backend!r} unknown; expected one of "
                           f"{', '.join(kernels.BACKENDS)}")
        self.target = target
        self.in_q = in_q
        self.out_q = out_q
        self.act = (float(act[0]), float(act[1]))
        self.acc_width = int(acc_width)
        self.overflow = overflow
        self.backend = backend
        self.grad_mode = grad
        self.smooth = int(smooth)
        self.capture = None             # a dict to record {"a", "b", "acc"} into, or None
        self._cache = None

    def set_target(self, target):
        self.target = target

    def extra_repr(self):
        name = getattr(self.target, "full_name", repr(self.target))
        pads = getattr(self, "pads", None)
        return (super().extra_repr() + (f", pads={pads}" if pads and any(pads) else "")
                + f", mult={name}, acts={self.in_q.mode}, "
                f"acc={self.acc_width}/{self.overflow}" + (", logits" if self.out_q is None
                                                          else ""))

    def quant_params(self):
        """:func:`sim.dnn.quant.gemm_params` of the current weights (cached until they change),
        as tensors on the weights' device."""
        w, b = self.weight, self.bias
        key = (w._version, None if b is None else b._version, w.data_ptr(), str(w.device),
               id(self.in_q), id(self.out_q), self.act)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        bias = np.zeros(w.shape[0]) if b is None else b.detach().cpu().double().numpy()
        out = self.out_q if self.out_q is not None else TensorQuant(1.0, True)
        p = gemm_params(w.detach().cpu().double().numpy(), bias, self.in_q, out, self.act)
        dev = w.device
        t = {k: torch.as_tensor(p[k], device=dev) for k in ("qw", "qb", "m0", "sh", "w_scale",
                                                           "acc_scale")}
        t.update(lo=p["lo"], hi=p["hi"], zero_point=p["zero_point"])
        self._cache = (key, t)
        return t

    def _integer(self, cols, p, groups):
        """Operands, accumulator start and the accumulators of the GEMM (module docstring of
        :mod:`sim.dnn.quant`): ``cols (M x G Kg)`` integer activations."""
        signed = target_signed(self.target)
        off_a, off_w = operand_offsets(self.in_q, signed)
        z = self.in_q.zero_point
        a = cols + off_a if off_a else cols
        b = p["qw"] + off_w if off_w else p["qw"]
        m, kg, n = a.shape[0], b.shape[0], b.shape[1]
        ng = n // groups
        c = off_a + z
        start = p["qb"][None, :].expand(m, n)
        if c or off_w:
            start = start - c * b.sum(dim=0)[None, :] + kg * c * off_w
            if off_w:
                rows = a.reshape(m, groups, kg).sum(dim=2)
                start = start - off_w * rows.repeat_interleave(ng, dim=1)
        start = start.contiguous()
        if groups > 1:
            a = a.reshape(m, groups, kg).permute(1, 0, 2).contiguous()
            b = b.reshape(kg, groups, ng).permute(1, 0, 2).contiguous()
        acc = kernels.gemm(a, b, self.target, start, acc_width=self.acc_width,
                           overflow=self.overflow, backend=self.backend)
        if self.capture is not None:
            self.capture.update(a=a.cpu().numpy(), b=b.cpu().numpy(), acc=acc.cpu().numpy())
        return a, b, acc

    def _output(self, acc, p):
        """Requantised output (integers, pre-clamp mask) or dequantised accumulators."""
        if self.out_q is None:   # dequantised; a fused ReLU / clip applies to them (sim.dnn)
            y = acc.to(DTYPE) * p["acc_scale"]
            lo, hi = self.act
            if lo == -np.inf and hi == np.inf:
                return y, None
            inside = ((y >= lo) & (y <= hi)).to(DTYPE)
            return y.clamp(lo, hi), inside
        y = _shift_round(acc, p["m0"], p["sh"]) + p["zero_point"]
        inside = ((y >= p["lo"]) & (y <= p["hi"])).to(DTYPE)
        y = y.clamp(p["lo"], p["hi"])
        return dequantize(y, self.out_q), inside

    def _offsets(self):
        """``(o_w, c = o_a + z)`` of the operand mapping (:func:`sim.dnn.quant.operand_offsets`)."""
        off_a, off_w = operand_offsets(self.in_q, target_signed(self.target))
        return off_w, off_a + self.in_q.zero_point

    def _weights_hat(self, p):
        w_hat = (p["qw"].T.to(DTYPE) * p["w_scale"][:, None]).reshape(self.weight.shape)
        return _ste(w_hat, self.weight.to(DTYPE)) if self.weight.requires_grad else w_hat


class _TableGrad(torch.autograd.Function):
    """Backward of ``acc_real = S_x S_w (sum_k p(a_k, b_k) - o_w sum_k a_k - c sum_k b_k) + ...``
    through the derivative tables: inputs ``x_hat cols (G, M, K)``, ``w_hat (G, K, N)``; the
    zero-point / offset terms (``o_w``, ``c = o_a + z``; :mod:`sim.dnn.quant`) depend on the
    operands too, so ``d/da = D_a - o_w`` and ``d/db = D_b - c``. The forward value is not
    used."""

    @staticmethod
    def forward(ctx, cols_hat, w_hat, a, b, spec, s_x, s_w, smooth, off_w, c):
        ctx.save_for_backward(a, b, s_w)
        ctx.spec, ctx.s_x, ctx.smooth, ctx.off_w, ctx.c = spec, s_x, smooth, off_w, c
        return torch.zeros(a.shape[0], a.shape[1], b.shape[2], dtype=DTYPE, device=a.device)

    @staticmethod
    def backward(ctx, grad):
        a, b, s_w = ctx.saved_tensors
        g = grad.to(DTYPE)
        ga_out = g * s_w
        ga, gb = kernels.table_grads(a, b, ctx.spec, ga_out, g, ctx.smooth)
        if ctx.off_w:
            ga = ga - ctx.off_w * ga_out.sum(dim=2, keepdim=True)
        if ctx.c:
            gb = gb - ctx.c * g.sum(dim=1, keepdim=True)
        return ga, gb * ctx.s_x, None, None, None, None, None, None, None, None


class ApproxConv2d(_ApproxGemm, nn.Conv2d):
    """A ``Conv2d`` (any groups / dilation; ``pads (top, left, bottom, right)`` may be
    asymmetric) computed by the emulated accelerator (module docstring).

    ``target``: :class:`hw.mult.MultiplierSpec` (8-bit, signed or unsigned) or
    :class:`sim.golden.ArrayModel`; ``in_q`` / ``out_q``: :class:`~sim.dnn.quant.TensorQuant`
    of the input and output (``out_q = None``: float output ``acc S_x S_w``); ``act``: fused
    activation interval (ReLU: ``(0, inf)``, ReLU6: ``(0, 6)``).
    """

    def __init__(self, in_channels, out_channels, kernel_size, *, target, in_q, out_q=None,
                 stride=1, pads=(0, 0, 0, 0), dilation=1, groups=1, bias=True,
                 act=(-np.inf, np.inf), acc_width=32, overflow="wrap", backend="auto",
                 grad="ste", smooth=0, device=None):
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, stride=stride,
                           padding=0, dilation=dilation, groups=groups, bias=bias,
                           device=device, dtype=DTYPE)
        self.pads = tuple(int(p) for p in pads)
        self._setup(target, in_q, out_q, act, acc_width, overflow, backend, grad, smooth)

    @classmethod
    def from_conv(cls, conv, *, target, in_q, out_q=None, **kw):
        """An approximate twin of ``torch.nn.Conv2d`` ``conv`` (its weights copied)."""
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise DnnError("from_conv needs a Conv2d with numeric zero padding")
        ph, pw = conv.padding
        layer = cls(conv.in_channels, conv.out_channels, conv.kernel_size, target=target,
                    in_q=in_q, out_q=out_q, stride=conv.stride, pads=(ph, pw, ph, pw),
                    dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None,
                    device=conv.weight.device, **kw)
        with torch.no_grad():
            layer.weight.copy_(conv.weight)
            if conv.bias is not None:
                layer.bias.copy_(conv.bias)
        return layer

    def _cols(self, q):
        pt, pl, pb, pr = self.pads
        kh, kw = self.kernel_size
        dh, dw = self.dilation
        sh, sw = self.stride
        if any(self.pads):
            q = F.pad(q, (pl, pr, pt, pb), value=self.in_q.zero_point)
        ekh, ekw = (kh - 1) * dh + 1, (kw - 1) * dw + 1
        if q.shape[2] < ekh or q.shape[3] < ekw:
            raise DnnError(f"kernel {kh}x{kw} does not fit a {q.shape[2] - pt - pb}x"
                           f"{q.shape[3] - pl - pr} input")
        win = q.unfold(2, ekh, sh).unfold(3, ekw, sw)[..., ::dh, ::dw]   # B C OH OW kh kw
        bsz, c, oh, ow = win.shape[:4]
        cols = win.permute(0, 2, 3, 1, 4, 5).reshape(bsz * oh * ow, c * kh * kw)
        return cols, bsz, oh, ow

    def forward(self, x):
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise DnnError(f"{type(self).__name__} expects (B, {self.in_channels}, H, W) inputs, "
                           f"got {tuple(x.shape)}")
        p = self.quant_params()
        q = quantize(x, self.in_q)
        cols, bsz, oh, ow = self._cols(q)
        a, b, acc = self._integer(cols, p, self.groups)
        y, inside = self._output(acc, p)
        y = y.reshape(bsz, oh, ow, -1).permute(0, 3, 1, 2)
        inside = None if inside is None else inside.reshape(bsz, oh, ow, -1).permute(0, 3, 1, 2)
        if not _grad_on(x, self.weight, self.bias):
            return y
        x_hat = _input_ste(x, q, self.in_q)
        w_hat = self._weights_hat(p)
        bias = None if self.bias is None else self.bias.to(DTYPE)
        pt, pl, pb, pr = self.pads
        xp = F.pad(x_hat, (pl, pr, pt, pb)) if any(self.pads) else x_hat
        if self.grad_mode == "ste":
            sur = F.conv2d(xp, w_hat, bias, self.stride, 0, self.dilation, self.groups)
        else:
            sur = self._table_surrogate(xp, w_hat, a, b, p, bias, bsz, oh, ow)
        return _ste(y, sur, inside)

    def _table_surrogate(self, xp, w_hat, a, b, p, bias, bsz, oh, ow):
        kh, kw = self.kernel_size
        cols = F.unfold(xp, (kh, kw), dilation=self.dilation, stride=self.stride)   # B, CK, L
        cols = cols.permute(0, 2, 1).reshape(bsz * oh * ow, -1)
        g = self.groups
        m = cols.shape[0]
        cols = cols.reshape(m, g, -1).permute(1, 0, 2)
        wm = w_hat.reshape(g, self.out_channels // g, -1).permute(0, 2, 1)
        a3 = a if a.dim() == 3 else a[None]
        b3 = b if b.dim() == 3 else b[None]
        s_w = p["w_scale"].reshape(g, 1, -1)
        out = _TableGrad.apply(cols, wm, a3, b3, self.target, self.in_q.scale, s_w,
                               self.smooth, *self._offsets())
        out = out.permute(1, 0, 2).reshape(m, -1)
        if bias is not None:
            out = out + bias
        return out.reshape(bsz, oh, ow, -1).permute(0, 3, 1, 2)


class ApproxLinear(_ApproxGemm, nn.Linear):
    """A ``Linear`` layer computed by the emulated accelerator (see :class:`ApproxConv2d`)."""

    groups = 1

    def __init__(self, in_features, out_features, *, target, in_q, out_q=None, bias=True,
                 act=(-np.inf, np.inf), acc_width=32, overflow="wrap", backend="auto",
                 grad="ste", smooth=0, device=None):
        nn.Linear.__init__(self, in_features, out_features, bias=bias, device=device,
                           dtype=DTYPE)
        self._setup(target, in_q, out_q, act, acc_width, overflow, backend, grad, smooth)

    @classmethod
    def from_linear(cls, lin, *, target, in_q, out_q=None, **kw):
        layer = cls(lin.in_features, lin.out_features, target=target, in_q=in_q, out_q=out_q,
                    bias=lin.bias is not None, device=lin.weight.device, **kw)
        with torch.no_grad():
            layer.weight.copy_(lin.weight)
            if lin.bias is not None:
                layer.bias.copy_(lin.bias)
        return layer

    def forward(self, x):
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise DnnError(f"{type(self).__name__} expects (B, {self.in_features}) inputs, got "
                           f"{tuple(x.shape)}")
        p = self.quant_params()
        q = quantize(x, self.in_q)
        a, b, acc = self._integer(q, p, 1)
        y, inside = self._output(acc, p)
        if not _grad_on(x, self.weight, self.bias):
            return y
        x_hat = _input_ste(x, q, self.in_q)
        w_hat = self._weights_hat(p)
        bias = None if self.bias is None else self.bias.to(DTYPE)
        if self.grad_mode == "ste":
            sur = F.linear(x_hat, w_hat, bias)
        else:
            sur = _TableGrad.apply(x_hat[None], w_hat.T[None], a[None], b[None], self.target,
                                   self.in_q.scale, p["w_scale"][None, None, :],
                                   self.smooth, *self._offsets())[0]
            if bias is not None:
                sur = sur + bias
        return _ste(y, sur, inside)


class QuantOp(nn.Module):
    """One non-GEMM operator of :mod:`sim.dnn`'s integer network: ``add``, ``concat``,
    ``maxpool``, ``avgpool``, ``flatten``, ``relu``, ``clip`` (formulas in
    :mod:`sim.dnn.quant`), with the float operator as its gradient."""

    def __init__(self, op: str, in_qs, out_q: TensorQuant, attrs: dict, params: dict | None):
        super().__init__()
        self.op = op
        self.in_qs = list(in_qs)
        self.out_q = out_q
        self.attrs = dict(attrs)
        self.params = dict(params or {})

    def extra_repr(self):
        return self.op

    def forward(self, *xs):
        qs = [quantize(x, t) for x, t in zip(xs, self.in_qs)]
        y, inside = self._integer(qs)
        out = dequantize(y, self.out_q)
        if not _grad_on(*xs):
            return out
        hats = [_input_ste(x, q, t) for x, q, t in zip(xs, qs, self.in_qs)]
        return _ste(out, self._float(hats), inside)

    def _integer(self, qs):
        op, a = self.op, self.attrs
        x = qs[0]
        src = self.in_qs[0]
        if op in ("add", "concat"):
            p = self.params
            rnd = 1 << (ADD_SHIFT - 1)
            z_y = self.out_q.zero_point
            terms = [(q - t.zero_point) * m for q, t, m in zip(qs, self.in_qs, p["m"])]
            if op == "add":
                y = torch.bitwise_right_shift(terms[0] + terms[1] + rnd, ADD_SHIFT) + z_y
            else:
                y = torch.cat([torch.bitwise_right_shift(t + rnd, ADD_SHIFT) + z_y
                               for t in terms], dim=a.get("axis", 1))
            inside = ((y >= p["lo"]) & (y <= p["hi"])).to(DTYPE)
            return y.clamp(p["lo"], p["hi"]), inside
        if op == "relu":
            return torch.clamp(x, min=src.zero_point), (x >= src.zero_point).to(DTYPE)
        if op == "clip":
            lo, hi = src.clamp(a["lo"], a["hi"])
            return x.clamp(lo, hi), ((x >= lo) & (x <= hi)).to(DTYPE)
        if op == "flatten":
            return x.reshape(x.shape[0], -1), None
        kernel, stride, pads = self._pool_geometry(x)
        pt, pl, pb, pr = pads
        kh, kw = kernel
        if op == "maxpool":
            fill = -(1 << 40)                   # below every activation: never the max
            xp = F.pad(x, (pl, pr, pt, pb), value=fill) if any(pads) else x
            return xp.unfold(2, kh, stride[0]).unfold(3, kw, stride[1]).amax(dim=(4, 5)), None
        z = src.zero_point
        d = x - z
        xp = F.pad(d, (pl, pr, pt, pb)) if any(pads) else d
        total = xp.unfold(2, kh, stride[0]).unfold(3, kw, stride[1]).sum(dim=(4, 5))
        if a.get("count_include_pad", False) or not any(pads):
            count = torch.full(total.shape[2:], kh * kw, dtype=torch.int64, device=x.device)
        else:
            ones = F.pad(torch.ones(x.shape[2:], dtype=torch.int64, device=x.device),
                         (pl, pr, pt, pb))
            count = ones.unfold(0, kh, stride[0]).unfold(1, kw, stride[1]).sum(dim=(2, 3))
        return torch.div(2 * total + count, 2 * count, rounding_mode="floor") + z, None

    def _pool_geometry(self, x):
        a = self.attrs
        if a.get("global"):
            return (x.shape[2], x.shape[3]), (1, 1), (0, 0, 0, 0)
        return tuple(a["kernel"]), tuple(a["stride"]), tuple(a.get("pads", (0, 0, 0, 0)))

    def _float(self, xs):
        op, a = self.op, self.attrs
        x = xs[0]
        if op == "add":
            return xs[0] + xs[1]
        if op == "concat":
            return torch.cat(xs, dim=a.get("axis", 1))
        if op == "relu":
            return F.relu(x)
        if op == "clip":
            return torch.clamp(x, a["lo"], a["hi"])
        if op == "flatten":
            return x.reshape(x.shape[0], -1)
        kernel, stride, pads = self._pool_geometry(x)
        pt, pl, pb, pr = pads
        if op == "maxpool":
            xp = F.pad(x, (pl, pr, pt, pb), value=-np.inf) if any(pads) else x
            return F.max_pool2d(xp, kernel, stride)
        if a.get("count_include_pad", False) or not any(pads):
            xp = F.pad(x, (pl, pr, pt, pb)) if any(pads) else x
            return F.avg_pool2d(xp, kernel, stride)
        xp = F.pad(x, (pl, pr, pt, pb))
        ones = F.pad(torch.ones_like(x[:1, :1]), (pl, pr, pt, pb))
        return F.avg_pool2d(xp, kernel, stride) / F.avg_pool2d(ones, kernel, stride)
