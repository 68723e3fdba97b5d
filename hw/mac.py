"""Multiply-accumulate: the datapath of every processing element.

Arithmetic (bit-exact model: :func:`sim.golden.mac` / :func:`sim.golden.accumulate`)::

    p       = spec.model(a, b)                      # N x N -> 2N bits, approximate
    acc_out = reduce_A(acc_in + p)                  # exact sum, then the overflow rule

The accumulator is an ``A``-bit two's-complement number (also for unsigned multipliers, whose
``2N``-bit product is zero-extended), ``A >= 2N``. ``wrap`` keeps the low ``A`` bits of the sum
(a plain adder); ``saturate`` clamps the sum to ``[-2**(A-1), 2**(A-1)-1]``. The rule is applied
after every addition, so a saturated run never wraps back.

:func:`accumulate` builds that adder as an Amaranth expression. :class:`MultiplyAdd` is the
combinational (or product-pipelined) datapath the systolic array's PEs are made of; :class:`MAC`
is a stand-alone MAC unit with its own accumulator register.
"""

from __future__ import annotations

import functools
import operator

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.mult import MultiplierSpec

__all__ = ["OVERFLOW_MODES", "MAX_ACC_WIDTH", "check_mac_params", "accumulate", "MultiplyAdd",
           "MAC", "quiet_on_error"]

OVERFLOW_MODES = ("wrap", "saturate")
#: Widest accumulator: the numpy golden model computes in int64 (a 62-bit saturating sum plus a
#: 32-bit product cannot overflow it).
MAX_ACC_WIDTH = 62


def quiet_on_error(init):
    """Decorator for component ``__init__``: a component whose parameters were rejected is not
    reported as "created but never used" by Amaranth when it is garbage-collected."""
    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        try:
            init(self, *args, **kwargs)
        except Exception:
            self._MustUse__silence = True  # amaranth's MustUse opt-out flag
            raise
    return wrapper


def check_mac_params(spec, acc_width, overflow) -> int:
    """Validate a MAC configuration; return ``acc_width`` as an int. Raises ``ValueError`` /
    ``TypeError`` with a one-line message."""
    if not isinstance(spec, MultiplierSpec):
        raise TypeError(f"expected a MultiplierSpec, got {spec!r}")
    try:
        acc_width = operator.index(acc_width)
    except TypeError:
        raise TypeError(f"accumulator width must be an integer, not {acc_width!r}") from None
    if not spec.product_width <= acc_width <= MAX_ACC_WIDTH:
        raise ValueError(f"accumulator width {acc_width} must be in {spec.product_width}.."
                         f"{MAX_ACC_WIDTH} (at least the {spec.product_width}-bit product of "
                         f"{spec.full_name})")
    if overflow not in OVERFLOW_MODES:
        raise ValueError(f"overflow mode must be one of {', '.join(OVERFLOW_MODES)}, "
                         f"not {overflow!r}")
    return acc_width


def accumulate(acc, addend, acc_width: int, overflow: str):
    """Amaranth expression for ``reduce_A(acc + addend)`` (``signed(acc_width)``).

    ``acc`` and ``addend`` may be any shapes no wider than ``acc_width`` bits (as values); the
    sum is formed exactly before the overflow rule is applied.
    """
    total = acc + addend
    if overflow == "wrap":
        return total[:acc_width].as_signed()
    if overflow != "saturate":
        raise ValueError(f"overflow mode must be one of {', '.join(OVERFLOW_MODES)}, "
                         f"not {overflow!r}")
    lo = Const(-(1 << (acc_width - 1)), signed(acc_width))
    hi = Const((1 << (acc_width - 1)) - 1, signed(acc_width))
    return Mux(total > hi, hi, Mux(total < lo, lo, total[:acc_width].as_signed()))


class MultiplyAdd(wiring.Component):
    """``acc_out = reduce_A(acc_in + mult(a, b))`` - the PE datapath.

    Members
    -------
    a, b : In(N)
        Operands, shape ``spec.operand_shape``; the product is ``mult(a, b)`` (order matters for
        approximate multipliers: ``a`` is the activation / row operand, ``b`` the weight).
    acc_in : In(signed(A))
        Addend (partial sum or accumulator value).
    acc_out : Out(signed(A))

    Latency: 0 (combinational) without ``pipeline``. With ``pipeline=True`` the product is
    registered (domain ``sync``), so ``acc_out`` at cycle ``t`` is ``acc_in(t) + mult(a(t-1),
    b(t-1))``; callers delay the matching ``acc_in`` by one cycle.
    """

    @quiet_on_error
    def __init__(self, spec: MultiplierSpec, *, acc_width: int = 32, overflow: str = "wrap",
                 pipeline: bool = False):
        self._acc_width = check_mac_params(spec, acc_width, overflow)
        self._spec = spec
        self._overflow = overflow
        self._pipeline = bool(pipeline)
        super().__init__({"a": In(spec.operand_shape), "b": In(spec.operand_shape),
                          "acc_in": In(signed(self._acc_width)),
                          "acc_out": Out(signed(self._acc_width))})

    spec = property(lambda self: self._spec)
    acc_width = property(lambda self: self._acc_width)
    overflow = property(lambda self: self._overflow)
    pipeline = property(lambda self: self._pipeline)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mult = mult = self._spec.circuit()
        m.d.comb += [mult.a.eq(self.a), mult.b.eq(self.b)]
        if self._pipeline:
            product = Signal(self._spec.product_shape, reset_less=True)
            m.d.sync += product.eq(mult.p)
        else:
            product = mult.p
        m.d.comb += self.acc_out.eq(accumulate(self.acc_in, product, self._acc_width,
                                               self._overflow))
        return m


class MAC(wiring.Component):
    """Stand-alone MAC unit: an ``A``-bit accumulator register fed by one multiplier.

    Members
    -------
    a, b : In(N)
        Operands (``spec.operand_shape``); product ``mult(a, b)``.
    valid : In(1)
        Add ``mult(a, b)`` to the accumulator.
    clear : In(1)
        Start a new accumulation: the addend is taken to be 0 instead of ``acc``. With ``valid``
        the accumulator becomes ``reduce_A(0 + p)``, without it 0.
    acc : Out(signed(A))
        The accumulator register (reset value 0).

    Timing: ``acc`` reflects operands presented ``1`` cycle earlier (``2`` with ``pipeline``,
    which registers the product and the control bits before the adder). One operand pair per
    cycle. Overflow per :func:`accumulate` after every addition.
    """

    @quiet_on_error
    def __init__(self, spec: MultiplierSpec, *, acc_width: int = 32, overflow: str = "wrap",
                 pipeline: bool = False):
        self._datapath = MultiplyAdd(spec, acc_width=acc_width, overflow=overflow,
                                     pipeline=pipeline)
        super().__init__({"a": In(spec.operand_shape), "b": In(spec.operand_shape),
                          "valid": In(1), "clear": In(1),
                          "acc": Out(signed(self._datapath.acc_width))})

    spec = property(lambda self: self._datapath.spec)
    acc_width = property(lambda self: self._datapath.acc_width)
    overflow = property(lambda self: self._datapath.overflow)
    pipeline = property(lambda self: self._datapath.pipeline)

    @property
    def latency(self) -> int:
        """Cycles from presenting ``a``/``b`` to the updated ``acc``."""
        return 2 if self.pipeline else 1

    def elaborate(self, platform):
        m = Module()
        m.submodules.datapath = dp = self._datapath
        valid, clear = self.valid, self.clear
        if self.pipeline:
            valid, clear = Signal(), Signal()
            m.d.sync += [valid.eq(self.valid), clear.eq(self.clear)]
        m.d.comb += [dp.a.eq(self.a), dp.b.eq(self.b),
                     dp.acc_in.eq(Mux(clear, 0, self.acc))]
        with m.If(valid):
            m.d.sync += self.acc.eq(dp.acc_out)
        with m.Elif(clear):
            m.d.sync += self.acc.eq(0)
        return m
