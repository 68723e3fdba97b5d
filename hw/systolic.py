"""Systolic GEMM arrays of MAC processing elements, weight-stationary or output-stationary.

The array has ``rows x cols`` PEs (1..64 each). PE ``(r, c)`` owns a multiplier spec
``grid[r][c]`` (one spec everywhere, one per row or one per column); all specs share the operand
width ``N`` and signedness. Accumulators are ``A``-bit two's complement with the overflow rule of
:mod:`hw.mac`. Every product is ``mult(a=activation/row operand, b=weight/column operand)``. What
the array computes is exactly :class:`sim.golden.ArrayModel` (``.tile``/``tiled_gemm``).

Streams and lanes
-----------------
All edges are :mod:`amaranth.lib.stream` interfaces (``payload``/``valid``/``ready``; a transfer
happens on a clock edge where both ``valid`` and ``ready`` are high). A multi-lane field packs lane
``i`` at bits ``[i*W, (i+1)*W)`` (two's-complement bits for signed values). Result lanes are
``A``-bit signed accumulators.

Weight-stationary (``ws``, TPU-like)
------------------------------------
``weights`` (In): payload ``{data: cols x N, last: 1}``, one *row* of the weight tile per
transfer. Rows go in order ``0, 1, .., K_t-1`` into a shadow register plane; ``last`` marks row
``K_t-1`` (implied for row ``rows-1``). Rows ``>= K_t`` become inactive: they pass partial sums
through untouched, so a tile with ``K_t < rows`` is exact even for multipliers with
``mult(0, 0) != 0``. Columns ``>= N_t``: load anything and ignore those result lanes.

``acts`` (In): payload ``{data: rows x N, first: 1}``, one activation row ``A[m, k0:k0+K_t]``
per transfer (lanes ``>= K_t`` are ignored). ``first=1`` marks the first vector of a new tile: it
waits until a complete shadow tile has been loaded, then swaps it in. The swap travels through
the array with that vector's wavefront (down the input skew, then PE to PE beside the
activations, so no swap net spans the array), so earlier vectors still use the old weights and
the next tile's weights can be loaded while the current tile streams (double buffering).

``results`` (Out): payload ``cols x A``, ``C[m, n0:n0+cols]`` for one activation vector, in the
order the vectors were accepted. Activation lane ``r`` is delayed ``r`` cycles (input skew); PE
``(r, c)`` multiplies it by its weight at cycle ``t+r+c`` and adds the partial sum from above; the
sum leaves the bottom of column ``c`` and is delayed ``cols-1-c`` cycles (output deskew).

* Latency: ``rows + cols - 1 (+1 with pipeline)`` cycles from an ``acts`` transfer to the
  transfer of its result vector (``results.ready`` high).
* Throughput: one activation vector per cycle in steady state, including across tiles when the
  next tile's weights (``K_t`` transfers) were loaded in time. Weight-load window: the first
  weight transfer of the next tile happens at the earliest ``W = rows + cols - 1`` cycles after
  the transfer of the previous ``first`` vector (on the ``W``-th clock edge after it; counted
  in cycles in which the array advances), when the old shadow plane has been swapped in
  everywhere; weight transfers are then accepted until the next tile is complete, and that
  tile's ``first`` vector can follow on the next cycle. So a tile of ``M`` vectors and the next
  one's ``K_t`` weight rows overlap completely when ``M >= W + K_t``.
* After reset every PE is inactive (results are 0) until a tile has been loaded and a ``first``
  vector accepted.

Output-stationary (``os``)
--------------------------
``operands`` (In): payload ``{a: rows x N, b: cols x N, last: 1}``, one reduction step ``k``:
``a`` lane ``r`` = ``A[m0+r, k]``, ``b`` lane ``c`` = ``B[k, n0+c]``. PE ``(r, c)`` accumulates
``mult(a_r, b_c)`` over the steps of a tile; ``last=1`` marks the tile's final step (any ``K``;
the next transfer starts a new tile from 0). ``a`` lane ``r`` is delayed ``r`` cycles and flows
right, ``b`` lane ``c`` is delayed ``c`` cycles and flows down.

``results`` (Out): payload ``cols x A``; after each tile the array sends ``rows`` result
vectors, ``C[m0+r, n0:n0+cols]`` for ``r = 0 .. rows-1``. At ``last`` each PE copies its sum into
a result register; the plane of result registers is then loaded into a drain chain per column
that shifts toward row 0 while the next tile already accumulates.

* Latency: ``rows + cols (+1 with pipeline)`` cycles from the transfer of a ``last`` step to the
  transfer of result row 0; rows 1.. follow on consecutive cycles.
* Throughput: one step per cycle; a tile occupies ``max(K, rows)`` cycles (a ``last`` step is
  held back until ``rows`` cycles after the previous one, the time to drain ``rows`` results).

Back-pressure (both dataflows): global stall. Everything that moves through the array (skew and
deskew registers, PE registers, valid/control delay lines, drain chains) advances together on
``advance = ~results.valid | results.ready``, i.e. whenever the output register is empty or is
being read. Why this is enough: the array is one fixed-length pipeline in which every datum's
position is a pure function of the number of ``advance`` cycles since it entered, so freezing
all of it at once keeps every wavefront aligned with its partial sums, control bits and valid
bit; nothing is dropped because the output register only changes on ``advance``. Input
``ready`` is ``advance`` qualified by the ``first``/``last`` rules above, so it depends
combinationally on ``results.ready`` and on the input payload but never on the input ``valid``
(``weights.ready`` is registered). A cycle without an input transfer inserts a bubble that the
valid line tracks (ws) or every PE ignores (os), so gaps cannot lose, duplicate or mix data. The
cost is a combinational path from ``results.ready`` to every register enable.

Back-pressure with ``output_buffer=True`` (``hw.gen --output-buffer``): credits instead of the
stall. Nothing in the array has an enable (``advance`` is constant 1); a register
``outstanding`` counts the result vectors of accepted inputs that have not been transferred yet,
and an input that produces ``k`` results (ws: an ``acts`` vector, ``k = 1``; os: a ``last``
step, ``k = rows``) is accepted only while ``outstanding + k <= D``, the depth of an output FIFO
(:attr:`SystolicArray.output_buffer_depth`: every result in flight with ``results.ready`` high,
so then no input ever waits). A result leaves straight from the array when nothing older
waits and the consumer is ready (same latency); shown but not taken it moves to a hold register
(a presented result stays until its transfer), else it waits in the FIFO (synchronous reads,
so it maps to block RAM), which the credits keep from overflowing. Input ``ready`` then
depends on registers and the payload only. Latency,
throughput, the weight-load window and ``gemm_cycles`` are those of the stalled array with
``results.ready`` high. ``rst`` (synchronous) empties the array, drops
data in flight and forgets loaded weights.

Host protocol, ws GEMM ``A (M x K) @ B (K x N)`` (what :func:`sim.golden.tiled_gemm` models): for
each column block ``n0`` and each ``K`` block ``k0`` (``rows`` deep), send the ``K_t`` weight rows
``B[k0+k, n0:n0+cols]`` (``last`` on the final one), then the ``M`` vectors ``A[m, k0:k0+K_t]``
(``first`` on the first one); add the result blocks of successive ``k0`` with the accumulator's
overflow rule. The weights of the next block may be sent while the current vectors stream.

Whole-GEMM cycles (:func:`gemm_cycles`, manifest ``timing.gemm_cycles``): clock edges from the
first input transfer to the last result transfer when the host keeps every input stream valid
in the order above and ``results.ready`` high. ws: the first tile's ``K_0`` weight rows take
``K_0`` cycles, each later tile ``i`` starts ``max(M, W + K_i)`` cycles after the previous one
(``M`` vectors, or the weight-load window plus its ``K_i`` weight rows), and the last vector's
result arrives ``M - 1 + latency`` cycles after the last tile's first vector. os: tiles (``m0``
outer, ``n0`` inner, ``K`` steps each) follow every ``max(K, rows)`` cycles; the last tile's
``last`` step is transferred ``K - 1`` cycles after its first, and its ``rows`` results end
``latency + rows - 1`` cycles later.

Correction (``correction=``, :class:`sim.correction.CorrectionFormat`; ``hw.gen --correction
bias|cv``): every result lane leaves through one register stage (the column sum and ``S``)
followed by the multiply-add ``reduce_A(acc + ((g_c * S + h_c) >> F))`` (bias:
``reduce_A(acc + h_c)``) into ``results.payload``, bit-exact with
:meth:`sim.golden.ArrayModel.correct`. Latency +1. The per-column constants ``g_c`` (``G``-bit)
and ``h_c`` (``H``-bit, signed) travel in extra payload fields ``corr_g`` / ``corr_h`` (lane
``c`` = column ``c``): ws, on the weight transfer that completes a tile (``last``, or row
``rows-1``; ignored on the others), double-buffered like the weights (shadow, taken at the
tile's ``first`` vector, applied from that vector's result on); os, on the tile's ``last`` step,
and a ``last`` step is then held back until ``rows + cols (+1 with pipeline)`` cycles after the
previous one (the constants of one tile in flight at a time). ``S`` (``SW``-bit signed): ws, the
exact sum of the vector's ``K_t`` active activation lanes (an adder tree at the input, delayed
with the vector); os, one accumulator per PE row summing its row operands over the tile's steps
(wrapping to ``SW`` bits), drained to the output beside the result rows.

Structure: ``rows`` :class:`WSRow`/:class:`OSRow` submodules of ``cols`` PEs each, plus the
handshake, skew, deskew and control logic in the top. :func:`emit_array_verilog` writes every
distinct PE and row once and instantiates them by name."""

from __future__ import annotations

import operator
from collections.abc import Sequence

from amaranth.hdl import (Cat, ClockSignal, Const, EnableInserter, Instance, Module, Mux,
                          ResetSignal, Signal, signed, unsigned)
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.mac import MultiplyAdd, accumulate, check_mac_params, quiet_on_error
from hw.mult import MultiplierSpec

__all__ = ["DATAFLOWS", "MAX_DIM", "WSProcessingElement", "OSProcessingElement", "WSRow",
           "OSRow", "SystolicArray", "emit_array_verilog", "gemm_cycles", "gemm_cycles_entry",
           "GEMM_CYCLES"]

DATAFLOWS = ("ws", "os")
MAX_DIM = 64


def _lane(bits, index: int, width: int, shape):
    value = bits[index * width:(index + 1) * width]
    return value.as_signed() if shape.signed else value


#: The whole-GEMM cycle count of :func:`gemm_cycles` as Python expressions (evaluated in order,
#: with ``ceil``, ``min`` and ``max``) of ``M, K, N, rows, cols, pipeline`` (0 or 1); written
#: into manifests as ``timing.gemm_cycles``.
GEMM_CYCLES = {
    "ws": {
        "where": {"kb": "ceil(K / rows)", "nb": "ceil(N / cols)", "K0": "min(K, rows)",
                  "Kr": "K - (kb - 1) * rows", "W": "rows + cols - 1",
                  "L": "rows + cols - 1 + pipeline"},
        "formula": "K0 + nb * (kb - 1) * max(M, W + rows) + nb * max(M, W + Kr) "
                   "- max(M, W + K0) + M - 1 + L",
    },
    "os": {
        "where": {"T": "ceil(M / rows) * ceil(N / cols)", "L": "rows + cols + pipeline"},
        "formula": "(T - 1) * max(K, rows) + K - 1 + L + rows - 1",
    },
}


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def gemm_cycles(m: int, k: int, n: int, *, rows: int, cols: int, dataflow: str = "ws",
                pipeline: bool = False, correction: bool = False) -> int:
    """Clock cycles of the GEMM ``A (m x k) @ B (k x n)`` on a ``rows x cols`` array, host
    protocol of the module docstring: clock edges from the first input transfer to the last
    result transfer, inputs driven as fast as the array accepts them, ``results.ready`` high.

    ws: tiles ``n0`` (outer) x ``k0`` (inner), ``K_i = min(rows, k - k0)`` weight rows and ``m``
    vectors each; the first starts after its ``K_0`` weight rows, tile ``i > 0`` starts
    ``max(m, W + K_i)`` cycles after tile ``i-1`` (``W = rows + cols - 1``, the weight-load
    window), and the last result comes ``m - 1 + latency`` cycles after the last tile started.
    os: ``ceil(m/rows) * ceil(n/cols)`` tiles of ``k`` steps, one every ``max(k, rows)``
    cycles; the last one's results end ``k - 1 + latency + rows - 1`` cycles after it started.
    (:data:`GEMM_CYCLES` is the same count as closed formulas.) ``correction``: latency +1, and
    os tiles follow every ``max(k, rows + cols + pipeline)`` cycles. Raises ``ValueError``.
    """
    for label, value in (("m", m), ("k", k), ("n", n), ("rows", rows), ("cols", cols)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"gemm_cycles: {label} must be a positive integer, not {value!r}")
    if dataflow not in DATAFLOWS:
        raise ValueError(f"dataflow must be one of {', '.join(DATAFLOWS)}, not {dataflow!r}")
    extra = 1 if pipeline else 0
    corr = 1 if correction else 0
    if dataflow == "os":
        tiles = _ceil_div(m, rows) * _ceil_div(n, cols)
        period = rows + cols + extra if correction else rows
        return (tiles - 1) * max(k, period) + (k - 1) + (rows + cols + extra + corr) + (rows - 1)
    window, latency = rows + cols - 1, rows + cols - 1 + extra + corr
    depths = [min(rows, k - k0) for _ in range(0, n, cols) for k0 in range(0, k, rows)]
    start = depths[0]                                   # the first tile's weight rows
    for depth in depths[1:]:
        start += max(m, window + depth)
    return start + m - 1 + latency


def gemm_cycles_entry(rows: int, cols: int, dataflow: str, pipeline: bool,
                      correction: bool = False) -> dict:
    """The manifest entry ``timing.gemm_cycles`` of such an array: description, the formula of
    :data:`GEMM_CYCLES` and the array's parameters (with ``correction``: ``L`` + 1 and, os,
    tiles paced by ``P = rows + cols + pipeline``)."""
    ws = dataflow == "ws"
    protocol = ("tiles n0 (outer) x k0 (inner): K_t = min(rows, K - k0) weight rows, then "
                "M vectors; the host adds the K-block results (no array cycles)" if ws else
                "tiles m0 (outer) x n0 (inner): K steps each, rows result vectors each")
    where = dict(GEMM_CYCLES[dataflow]["where"])
    formula = GEMM_CYCLES[dataflow]["formula"]
    params = {"rows": rows, "cols": cols, "pipeline": int(bool(pipeline))}
    if correction:
        where["L"] += " + correction"
        params["correction"] = 1
        if not ws:
            where["P"] = "rows + cols + pipeline"
            formula = formula.replace("max(K, rows)", "max(K, P)")
    return {
        "description": "whole GEMM A (M x K) @ B (K x N): clock edges from the first input "
                       "transfer to the last result transfer, every input stream kept valid "
                       "in host-protocol order and results.ready high; " + protocol,
        "formula": formula,
        "where": where,
        "functions": "ceil: round up; min, max (Python expression syntax)",
        "parameters": params,
        "python": "hw.systolic.gemm_cycles(M, K, N, rows=, cols=, dataflow=, pipeline=" +
                  (", correction=True)" if correction else ")"),
    }


def _equals(value, constant: int):
    """``value == constant``; written ``~value.any()`` for 0, which Verilog lint takes without
    a width warning (Yosys turns ``value == 0`` into ``!value``)."""
    return ~value.any() if constant == 0 else value == constant


def _tree_sum(terms):
    """Balanced adder tree of ``terms`` (Amaranth widens each sum by one bit)."""
    terms = list(terms)
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


def _delay(m: Module, value, cycles: int, name: str, *, reset_less: bool = True) -> list:
    """``[value, value delayed 1 cycle, .., delayed `cycles`]`` in domain ``sync`` of ``m``."""
    taps = [value]
    for i in range(cycles):
        reg = Signal.like(value, name=f"{name}_d{i + 1}", reset_less=reset_less)
        m.d.sync += reg.eq(taps[-1])
        taps.append(reg)
    return taps


class WSProcessingElement(wiring.Component):
    """Weight-stationary PE: holds one weight (plus a shadow copy for the next tile), multiplies
    the passing activation by it and adds the partial sum from above.

    Members
    -------
    ce : In(1)           clock enable of the compute registers (the array's ``advance``)
    act_in : In(N)       activation from the left (or from the input skew)
    psum_in : In(signed(A))  partial sum from above (0 for row 0)
    swap : In(1)         from this step on use the shadow weight and shadow active bit
    swap_out : Out(1)    ``swap`` registered (clock enable ``ce``): the right neighbour's
                         ``swap``, so the flag travels PE to PE with the activations and no
                         net fans out across an anti-diagonal of the array
    wr : In(1)           write ``wr_weight``/``wr_active`` into the shadow registers (not gated
                         by ``ce``: weights load while the array is stalled)
    wr_weight : In(N), wr_active : In(1)
    act_out : Out(N)     ``act_in`` registered (to the right neighbour)
    psum_out : Out(signed(A))  registered ``reduce_A(psum_in + mult(act_in, w))`` if the PE is
        active, else ``psum_in`` (inactive rows pass partial sums through)

    Latency 1 (2 with ``pipeline``: the product is registered, so ``psum_in`` must arrive one
    cycle after ``act_in``, which the array's timing guarantees). After reset: inactive.
    """

    def __init__(self, spec: MultiplierSpec, *, acc_width: int = 32, overflow: str = "wrap",
                 pipeline: bool = False):
        self._mac = MultiplyAdd(spec, acc_width=acc_width, overflow=overflow, pipeline=pipeline)
        super().__init__(self.signature_for(spec, self._mac.acc_width))

    @staticmethod
    def signature_for(spec: MultiplierSpec, acc_width: int) -> wiring.Signature:
        op, acc = spec.operand_shape, signed(acc_width)
        return wiring.Signature({"ce": In(1), "act_in": In(op), "psum_in": In(acc),
                                 "swap": In(1), "wr": In(1), "wr_weight": In(op),
                                 "wr_active": In(1), "act_out": Out(op), "psum_out": Out(acc),
                                 "swap_out": Out(1)})

    def elaborate(self, platform):
        m = Module()
        mac = self._mac
        m.submodules.mac = EnableInserter(self.ce)(mac)  # the product register, if any
        shadow_w = Signal.like(self.wr_weight, reset_less=True)
        shadow_active = Signal()
        with m.If(self.wr):
            m.d.sync += [shadow_w.eq(self.wr_weight), shadow_active.eq(self.wr_active)]
        weight = Signal.like(self.wr_weight, reset_less=True)
        active = Signal()
        w_use = Mux(self.swap, shadow_w, weight)
        active_use = Mux(self.swap, shadow_active, active)
        act = Signal.like(self.act_out, reset_less=True)     # data registers need no reset
        psum = Signal.like(self.psum_out, reset_less=True)
        # With ``pipeline`` (built for Fmax): no reset, unlike the array's swap delay line. PE
        # (r, c)'s copy holds the same value as tap r + c + 1 of that line, and Yosys merges
        # equal flip-flops of one kind (opt_merge), which makes one net fan out over an
        # anti-diagonal again; without ``pipeline`` that merge is kept (fewer flip-flops, and
        # on ECP5 ABC9 maps the PEs in fewer LUTs when this path stays the critical one).
        # Safe without reset: after a reset every PE and its shadow are inactive, so a stale
        # flag (one step, at the next clock enable) swaps in an inactive or the same shadow.
        swap_next = Signal(reset_less=mac.pipeline)
        m.d.comb += [mac.a.eq(self.act_in), mac.b.eq(w_use), mac.acc_in.eq(self.psum_in),
                     self.act_out.eq(act), self.psum_out.eq(psum), self.swap_out.eq(swap_next)]
        with m.If(self.ce):
            m.d.sync += [weight.eq(w_use), active.eq(active_use), act.eq(self.act_in),
                         swap_next.eq(self.swap)]
            if mac.pipeline:
                active_add = Signal()
                m.d.sync += active_add.eq(active_use)
            else:
                active_add = active_use
            m.d.sync += psum.eq(Mux(active_add, mac.acc_out, self.psum_in))
        return m


class OSProcessingElement(wiring.Component):
    """Output-stationary PE: accumulates ``mult(a, b)`` of the operands passing through and
    holds one stage of its column's drain chain.

    Members
    -------
    ce : In(1)                   clock enable (the array's ``advance``); gates every register
    a_in : In(N), b_in : In(N)   row operand from the left, column operand from above
    valid : In(1)                this step carries data (else the accumulator is left alone)
    last : In(1)                 final step of the tile: the sum ``reduce_A(acc + mult(a, b))``
                                 goes to the result register and the accumulator restarts at 0
    a_out : Out(N), b_out : Out(N)  operands registered (to the right / below)
    load : In(1)                 drain stage takes the result register (else ``drain_in``)
    drain_in : In(signed(A)), drain_valid_in : In(1)  stage below (0 for the bottom row)
    drain_out : Out(signed(A)), drain_valid_out : Out(1)  this stage (to the row above)

    Latency 1 (2 with ``pipeline``; ``valid``/``last`` are delayed with the product).
    """

    def __init__(self, spec: MultiplierSpec, *, acc_width: int = 32, overflow: str = "wrap",
                 pipeline: bool = False):
        self._mac = MultiplyAdd(spec, acc_width=acc_width, overflow=overflow, pipeline=pipeline)
        super().__init__(self.signature_for(spec, self._mac.acc_width))

    @staticmethod
    def signature_for(spec: MultiplierSpec, acc_width: int) -> wiring.Signature:
        op, acc = spec.operand_shape, signed(acc_width)
        return wiring.Signature({"ce": In(1), "a_in": In(op), "b_in": In(op), "valid": In(1),
                                 "last": In(1), "a_out": Out(op), "b_out": Out(op),
                                 "load": In(1), "drain_in": In(acc), "drain_valid_in": In(1),
                                 "drain_out": Out(acc), "drain_valid_out": Out(1)})

    def elaborate(self, platform):
        m = Module()
        mac = self._mac
        m.submodules.mac = EnableInserter(self.ce)(mac)  # the product register, if any
        acc = Signal.like(self.drain_out)
        result = Signal.like(self.drain_out, reset_less=True)
        a = Signal.like(self.a_out, reset_less=True)          # data registers need no reset
        b = Signal.like(self.b_out, reset_less=True)
        drain = Signal.like(self.drain_out, reset_less=True)
        m.d.comb += [mac.a.eq(self.a_in), mac.b.eq(self.b_in), mac.acc_in.eq(acc),
                     self.a_out.eq(a), self.b_out.eq(b), self.drain_out.eq(drain)]
        with m.If(self.ce):
            valid, last = self.valid, self.last
            if mac.pipeline:
                valid, last = Signal(), Signal()
                m.d.sync += [valid.eq(self.valid), last.eq(self.last)]
            m.d.sync += [a.eq(self.a_in), b.eq(self.b_in)]
            with m.If(valid):
                with m.If(last):
                    m.d.sync += [result.eq(mac.acc_out), acc.eq(0)]
                with m.Else():
                    m.d.sync += acc.eq(mac.acc_out)
            with m.If(self.load):
                m.d.sync += [drain.eq(result), self.drain_valid_out.eq(1)]
            with m.Else():
                m.d.sync += [drain.eq(self.drain_in),
                             self.drain_valid_out.eq(self.drain_valid_in)]
        return m



def _check_specs(specs) -> tuple:
    specs = tuple(specs)
    if not specs:
        raise ValueError("a row needs at least one multiplier")
    for spec in specs:
        if not isinstance(spec, MultiplierSpec):
            raise TypeError(f"expected a MultiplierSpec, got {spec!r}")
        if (spec.width, spec.signed) != (specs[0].width, specs[0].signed):
            raise ValueError("all multipliers of an array must share width and signedness")
    return specs


def _instance(m: Module, name: str, sig: wiring.Signature, module: str):
    """Add an ``Instance`` of Verilog module ``module`` whose ports are ``sig``'s members (plus
    ``clk``/``rst``); return an interface object holding the connected signals."""
    iface = sig.create(path=(name,))
    ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
    for path, member, value in sig.flatten(iface):
        ports[("i_" if member.flow == In else "o_") + "__".join(map(str, path))] = value
    m.submodules[name] = Instance(module, **ports)
    return iface


class _Row(wiring.Component):
    """Common part of :class:`WSRow` and :class:`OSRow`: ``len(specs)`` PEs side by side."""

    _pe_class: type

    @quiet_on_error
    def __init__(self, specs, *, acc_width: int = 32, overflow: str = "wrap",
                 pipeline: bool = False, pe_modules: dict | None = None):
        self._specs = _check_specs(specs)
        self._acc_width = check_mac_params(self._specs[0], acc_width, overflow)
        self._overflow = overflow
        self._pipeline = bool(pipeline)
        self._pe_modules = pe_modules
        super().__init__(self.signature_for(self._specs[0], len(self._specs), self._acc_width))

    def _pes(self, m: Module) -> list:
        pes = []
        for c, spec in enumerate(self._specs):
            if self._pe_modules is None:
                pe = self._pe_class(spec, acc_width=self._acc_width, overflow=self._overflow,
                                    pipeline=self._pipeline)
                m.submodules[f"pe_{c}"] = pe
            else:
                pe = _instance(m, f"pe_{c}", self._pe_class.signature_for(spec, self._acc_width),
                               self._pe_modules[spec])
            m.d.comb += pe.ce.eq(self.ce)
            pes.append(pe)
        return pes


class WSRow(_Row):
    """One row of :class:`WSProcessingElement` (PE ``c`` uses ``specs[c]``); activations enter
    at the left and move one PE per cycle to the right.

    Members (``C = len(specs)``; ``X[c]`` belongs to PE ``c``, a separate Verilog port
    ``X__c``): ``ce`` In(1); ``act_in`` In(N); ``psum_in[c]``/``psum_out[c]`` In/Out(signed(A));
    ``swap`` In(1) (PE 0's; it moves one PE per cycle to the right with the activations);
    ``wr``, ``wr_active`` In(1) and ``wr_weight[c]`` In(N) write the row's shadow weights.
    """

    _pe_class = WSProcessingElement

    @staticmethod
    def signature_for(spec: MultiplierSpec, cols: int, acc_width: int) -> wiring.Signature:
        op, acc = spec.operand_shape, signed(acc_width)
        return wiring.Signature({
            "ce": In(1), "act_in": In(op), "psum_in": In(acc).array(cols),
            "swap": In(1), "wr": In(1), "wr_active": In(1),
            "wr_weight": In(op).array(cols), "psum_out": Out(acc).array(cols)})

    def elaborate(self, platform):
        m = Module()
        pes = self._pes(m)
        for c, pe in enumerate(pes):
            m.d.comb += [pe.act_in.eq(self.act_in if c == 0 else pes[c - 1].act_out),
                         pe.psum_in.eq(self.psum_in[c]), self.psum_out[c].eq(pe.psum_out),
                         pe.swap.eq(self.swap if c == 0 else pes[c - 1].swap_out),
                         pe.wr.eq(self.wr),
                         pe.wr_active.eq(self.wr_active), pe.wr_weight.eq(self.wr_weight[c])]
        return m


class OSRow(_Row):
    """One row of :class:`OSProcessingElement`; row operands enter at the left and move right,
    column operands pass down through the row.

    Members (``C = len(specs)``; ``X[c]`` belongs to PE ``c``, a separate Verilog port
    ``X__c``): ``ce`` In(1); ``a_in`` In(N); ``b_in[c]``/``b_out[c]`` In/Out(N); ``valid[c]``,
    ``last[c]``, ``load[c]`` In(1); ``drain_in[c]``/``drain_out[c]`` In/Out(signed(A)) and
    ``drain_valid_in[c]``/``drain_valid_out[c]`` In/Out(1): the row's stage of every column's
    drain chain.
    """

    _pe_class = OSProcessingElement

    @staticmethod
    def signature_for(spec: MultiplierSpec, cols: int, acc_width: int) -> wiring.Signature:
        op, acc = spec.operand_shape, signed(acc_width)
        return wiring.Signature({
            "ce": In(1), "a_in": In(op), "b_in": In(op).array(cols),
            "b_out": Out(op).array(cols), "valid": In(1).array(cols),
            "last": In(1).array(cols), "load": In(1).array(cols),
            "drain_in": In(acc).array(cols), "drain_valid_in": In(1).array(cols),
            "drain_out": Out(acc).array(cols), "drain_valid_out": Out(1).array(cols)})

    def elaborate(self, platform):
        m = Module()
        pes = self._pes(m)
        for c, pe in enumerate(pes):
            m.d.comb += [pe.a_in.eq(self.a_in if c == 0 else pes[c - 1].a_out),
                         pe.b_in.eq(self.b_in[c]), self.b_out[c].eq(pe.b_out),
                         pe.valid.eq(self.valid[c]), pe.last.eq(self.last[c]),
                         pe.load.eq(self.load[c]), pe.drain_in.eq(self.drain_in[c]),
                         pe.drain_valid_in.eq(self.drain_valid_in[c]),
                         self.drain_out[c].eq(pe.drain_out),
                         self.drain_valid_out[c].eq(pe.drain_valid_out)]
        return m


class SystolicArray(wiring.Component):
    """``rows x cols`` systolic GEMM array; see the module docstring for protocol and timing.

    Parameters
    ----------
    rows, cols : int
        1..64 each.
    mult : MultiplierSpec or rows x cols nested sequence of MultiplierSpec
        One multiplier for every PE, or ``mult[r][c]`` for PE ``(r, c)`` (same width and
        signedness everywhere).
    dataflow : ``"ws"`` or ``"os"``
    acc_width : int
        Accumulator width ``A``, ``2N .. 62`` (default 32).
    overflow : ``"wrap"`` or ``"saturate"``
    pipeline : bool
        Register every product before its adder (one more cycle of latency).
    correction : :class:`sim.correction.CorrectionFormat` or None
        Bias / control-variate correction at the column outputs (module docstring): extra
        payload fields ``corr_g`` / ``corr_h``, one more cycle of latency; os: ``last`` steps
        paced by ``rows + cols (+1)``.
    output_buffer : bool
        Credit-based back-pressure instead of the global stall (module docstring): the array
        never stalls, results wait in an output FIFO of :attr:`output_buffer_depth` vectors,
        and inputs are accepted only while their results are sure to find room. Same
        latency, throughput and cycle counts with ``results.ready`` high.

    Members (``ws``): ``weights`` In(stream), ``acts`` In(stream), ``results`` Out(stream).
    Members (``os``): ``operands`` In(stream), ``results`` Out(stream).
    Structure: ``rows`` :class:`WSRow`/:class:`OSRow` submodules plus the skew, deskew and
    control logic in the top. For manifests: :attr:`latency`, :meth:`timing` (latency,
    throughput, weight-load window and the whole-GEMM cycle formula), :meth:`gemm_cycles` and
    :meth:`interface` (every Verilog port with its payload fields).
    """

    @quiet_on_error
    def __init__(self, rows: int, cols: int, mult, *, dataflow: str = "ws",
                 acc_width: int = 32, overflow: str = "wrap", pipeline: bool = False,
                 correction=None, output_buffer: bool = False):
        self._rows = self._check_dim("rows", rows)
        self._cols = self._check_dim("cols", cols)
        if dataflow not in DATAFLOWS:
            raise ValueError(f"dataflow must be one of {', '.join(DATAFLOWS)}, not {dataflow!r}")
        self._grid = self._make_grid(mult)
        first = self._grid[0][0]
        self._acc_width = check_mac_params(first, acc_width, overflow)
        self._dataflow = dataflow
        self._overflow = overflow
        self._pipeline = bool(pipeline)
        if not isinstance(output_buffer, bool):
            raise TypeError(f"output_buffer must be True or False, not {output_buffer!r}")
        self._output_buffer = output_buffer
        self._row_modules = None  # row specs -> Verilog module name, see emit_array_verilog
        self._correction = self._check_correction(correction)
        n, a = first.width, self._acc_width
        result = stream.Signature(unsigned(self._cols * a))
        corr = {}
        if self._correction is not None:
            if self._correction.mode == "cv":
                corr["corr_g"] = self._cols * self._correction.alpha_bits
            corr["corr_h"] = self._cols * self._correction.beta_bits
        if dataflow == "ws":
            self._layouts = {
                "weights": data.StructLayout({"data": self._cols * n, "last": 1, **corr}),
                "acts": data.StructLayout({"data": self._rows * n, "first": 1})}
        else:
            self._layouts = {"operands": data.StructLayout(
                {"a": self._rows * n, "b": self._cols * n, "last": 1, **corr})}
        members = {port: In(stream.Signature(layout)) for port, layout in self._layouts.items()}
        members["results"] = Out(result)
        super().__init__(members)

    def _check_correction(self, correction):
        if correction is None:
            return None
        from sim.correction import CorrectionError, CorrectionFormat, check_correctable
        if not isinstance(correction, CorrectionFormat):
            raise TypeError(f"correction must be a sim.correction.CorrectionFormat or None, "
                            f"not {correction!r}")
        for row in self._grid:
            for spec in row:
                check_correctable(spec, correction.mode)
        if self._dataflow == "os" and any(len({row[c] for row in self._grid}) > 1
                                          for c in range(self._cols)):
            raise CorrectionError(f"--correction {correction.mode} is undefined for an os "
                                  "array with different multipliers in one column (the column "
                                  "constants would have to serve every row)")
        return correction.without_dist()

    @staticmethod
    def _check_dim(label, value) -> int:
        try:
            value = operator.index(value)
        except TypeError:
            raise TypeError(f"{label} must be an integer, not {value!r}") from None
        if not 1 <= value <= MAX_DIM:
            raise ValueError(f"{label} must be in 1..{MAX_DIM}, not {value}")
        return value

    def _make_grid(self, mult) -> tuple:
        if isinstance(mult, MultiplierSpec):
            return tuple(tuple(mult for _ in range(self._cols)) for _ in range(self._rows))
        if not isinstance(mult, Sequence) or len(mult) != self._rows or any(
                not isinstance(row, Sequence) or len(row) != self._cols for row in mult):
            raise ValueError(f"multiplier grid must be a MultiplierSpec or {self._rows} x "
                             f"{self._cols} nested sequences of them")
        grid = tuple(_check_specs(row) for row in mult)
        _check_specs(row[0] for row in grid)
        return grid

    @classmethod
    def from_model(cls, model, *, pipeline: bool = False) -> "SystolicArray":
        """The array that computes what a :class:`sim.golden.ArrayModel` describes."""
        return cls(model.rows, model.cols, model.grid, dataflow=model.dataflow,
                   acc_width=model.acc_width, overflow=model.overflow, pipeline=pipeline,
                   correction=model.correction)

    # -- parameters ---------------------------------------------------------------------------
    rows = property(lambda self: self._rows)
    cols = property(lambda self: self._cols)
    grid = property(lambda self: self._grid)
    dataflow = property(lambda self: self._dataflow)
    acc_width = property(lambda self: self._acc_width)
    overflow = property(lambda self: self._overflow)
    pipeline = property(lambda self: self._pipeline)
    output_buffer = property(lambda self: self._output_buffer)
    #: ``None`` or the :class:`sim.correction.CorrectionFormat` (without its distribution).
    correction = property(lambda self: self._correction)
    operand_width = property(lambda self: self._grid[0][0].width)
    signed = property(lambda self: self._grid[0][0].signed)

    @property
    def latency(self) -> int:
        """ws: cycles from an ``acts`` transfer to its result transfer. os: cycles from a
        ``last`` step transfer to the transfer of result row 0. (``results.ready`` high.)"""
        extra = (1 if self._pipeline else 0) + (1 if self._correction is not None else 0)
        if self._dataflow == "ws":
            return self._rows + self._cols - 1 + extra
        return self._rows + self._cols + extra

    @property
    def output_buffer_depth(self) -> int:
        """Result vectors the output FIFO holds (0 without ``output_buffer``): every result
        of an accepted input, so that with ``results.ready`` high no input waits for credit.
        ws: ``latency + 2``; os: ``rows * (ceil((latency + rows) / period) + 1)`` (``period``:
        fewest cycles between two ``last`` steps)."""
        if not self._output_buffer:
            return 0
        if self._dataflow == "ws":
            return self.latency + 2
        return self._rows * (_ceil_div(self.latency + self._rows, self._os_period) + 1)

    def payload_layouts(self) -> dict:
        """Input payload layouts by port name (``StructLayout``)."""
        return dict(self._layouts)

    def distinct_specs(self) -> list:
        """The multipliers in use, in row-major order of first appearance."""
        seen = []
        for row in self._grid:
            for spec in row:
                if spec not in seen:
                    seen.append(spec)
        return seen

    def back_pressure(self) -> dict:
        """How ``results.ready`` low acts (manifest ``timing.back_pressure``)."""
        if not self._output_buffer:
            return {"mode": "global stall",
                    "rule": "every register of the array advances on ~results.valid | "
                            "results.ready (combinational path from results.ready to every "
                            "register enable)"}
        per = "an acts vector" if self._dataflow == "ws" else f"a last step ({self._rows})"
        return {"mode": "credit", "fifo_depth": self.output_buffer_depth,
                "fifo_bits": self.output_buffer_depth * self._cols * self._acc_width,
                "rule": f"the array never stalls; {per} is accepted only while the results of "
                        f"every accepted input fit the {self.output_buffer_depth}-vector output "
                        "FIFO (a registered count), so no path from results.ready reaches the "
                        "array; with results.ready high no input ever waits for credit"}

    def timing(self) -> dict:
        """Latency and throughput in cycles (for manifests; see the module docstring)."""
        r, c = self._rows, self._cols
        corr = self._correction is not None
        plus = " (+1 with --pipeline)" + (" + 1 (--correction)" if corr else "")
        if self._dataflow == "ws":
            return {
                "latency_cycles": self.latency,
                "latency": "cycles from an acts transfer to the transfer of its result vector "
                           "(results.ready held high); rows + cols - 1" + plus,
                "throughput": {"acts_per_cycle": 1, "results_per_cycle": 1},
                "throughput_note": "one activation vector per cycle in steady state, also "
                                   "across tiles when the next tile's K_t weight rows have been "
                                   "loaded before its first vector (tiles of M >= "
                                   f"{r + c - 1} + K_t vectors)",
                "weight_load_cycles": "K_t weight transfers per tile (double-buffered shadow "
                                      "weights); the first one at the earliest "
                                      f"{r + c - 1} cycles after the transfer of the previous "
                                      "tile's first vector, the next tile's first vector at "
                                      "the earliest 1 cycle after its last weight row",
                "weight_load_window_cycles": r + c - 1,
                "weight_load_window": "clock edges from the transfer of a tile's first vector "
                                      "to the earliest transfer of the next tile's first "
                                      "weight row (rows + cols - 1; counted in cycles in which "
                                      "the array advances, i.e. results not stalled)",
                "gemm_cycles": gemm_cycles_entry(r, c, "ws", self._pipeline, corr),
                "back_pressure": self.back_pressure(),
            }
        period = self._os_period
        return {
            "latency_cycles": self.latency,
            "latency": "cycles from the transfer of a tile's last step to the transfer of its "
                       "result row 0 (results.ready held high); rows + cols" + plus +
                       "; rows 1.. follow on consecutive cycles",
            "throughput": {"steps_per_cycle": 1, "results_per_tile": r},
            "throughput_note": f"a tile of K steps occupies max(K, {period}) cycles: a last "
                               f"step is accepted {period} cycles after the previous one at "
                               "the earliest" + (" (the correction constants of one tile in "
                                                 "flight)" if corr else ""),
            "min_cycles_per_tile": period,
            "gemm_cycles": gemm_cycles_entry(r, c, "os", self._pipeline, corr),
            "back_pressure": self.back_pressure(),
        }

    @property
    def _os_period(self) -> int:
        """os: fewest cycles between two accepted ``last`` steps."""
        if self._correction is None:
            return self._rows
        return self._rows + self._cols + (1 if self._pipeline else 0)

    def gemm_cycles(self, m: int, k: int, n: int) -> int:
        """:func:`gemm_cycles` of the GEMM ``(m x k) @ (k x n)`` on this array."""
        return gemm_cycles(m, k, n, rows=self._rows, cols=self._cols, dataflow=self._dataflow,
                           pipeline=self._pipeline, correction=self._correction is not None)

    def interface(self) -> list[dict]:
        """Every top-level port: Verilog name, direction, width, meaning, payload fields."""
        n, a, r, c = self.operand_width, self._acc_width, self._rows, self._cols
        kind = "signed" if self.signed else "unsigned"
        ports = [
            {"name": "clk", "direction": "input", "width": 1,
             "meaning": "clock; all state changes on its rising edge"},
            {"name": "rst", "direction": "input", "width": 1,
             "meaning": "synchronous reset, active high: empties the array, drops data in "
                        "flight" + (" and forgets loaded weights" if self._dataflow == "ws"
                                    else "")},
        ]
        meanings = {
            "weights": ("one row of the weight tile per transfer: rows 0..K_t-1 in order, "
                        "last=1 on row K_t-1 (rows below it become pass-through)",
                        {"data": (c, n, f"weight lanes, lane c = B[k0+row, n0+c] ({kind})"),
                         "last": (1, 1, "this is the tile's last weight row")}),
            "acts": ("one activation vector per transfer (A[m, k0:k0+K_t]); lanes >= K_t are "
                     "ignored",
                     {"data": (r, n, f"activation lanes, lane r = A[m, k0+r] ({kind})"),
                      "first": (1, 1, "first vector of a new tile: waits for a complete "
                                      "weight tile, then switches to it")}),
            "operands": ("one reduction step k per transfer",
                         {"a": (r, n, f"row operands, lane r = A[m0+r, k] ({kind})"),
                          "b": (c, n, f"column operands, lane c = B[k, n0+c] ({kind})"),
                          "last": (1, 1, "last step of the tile (k = K-1)")}),
        }
        result_meaning = ("one result vector per activation vector, in order"
                          if self._dataflow == "ws" else
                          f"{r} result vectors per tile: row r = C[m0+r, n0:n0+{c}]")
        fmt = self._correction
        if fmt is not None:
            when = ("taken from the transfer that completes the tile (last=1 or row rows-1), "
                    "ignored on other rows" if self._dataflow == "ws" else
                    "taken with the tile's last step, ignored on other steps")
            scale = f" / 2^{fmt.frac}" if fmt.frac else ""
            corr_fields = {
                "corr_g": (c, fmt.alpha_bits, f"correction slope per column, lane c = g_c = "
                           f"-round(2^{fmt.frac} * alpha_c) (signed {fmt.alpha_bits}-bit; "
                           f"sim.correction.column_constants); {when}"),
                "corr_h": (c, fmt.beta_bits, f"correction offset per column, lane c = h_c "
                           f"(signed {fmt.beta_bits}-bit, {fmt.frac} fraction bits; "
                           + ("result c = reduce_A(acc_c + h_c)); " if fmt.mode == "bias" else
                              f"result c = reduce_A(acc_c + floor((g_c * S + h_c){scale}))); ")
                           + when)}
            for _, fields in meanings.values():
                fields.update(corr_fields)
        for port, layout in self._layouts.items():
            text, fields = meanings[port]
            entries = []
            for fname, field in layout:
                lanes, width, meaning = fields[fname]
                entry = {"name": fname, "offset": field.offset, "width": field.width,
                         "meaning": meaning}
                if fname in ("data", "a", "b"):
                    entry.update(lanes=lanes, lane_width=width, signed=self.signed)
                elif fname in ("corr_g", "corr_h"):
                    entry.update(lanes=lanes, lane_width=width, signed=True)
                entries.append(entry)
            if port == "weights":
                ready = ("weights transfer on this clock edge if valid is high; registered: "
                         "low while a complete tile waits for its first vector and until "
                         f"{r + c - 1} cycles after that vector's transfer")
            else:
                flag = "first" if port == "acts" else "last"
                ready = (f"{port} transfer on this clock edge if valid is high; combinational "
                         f"from results__ready and payload.{flag}, never from valid")
            ports += [
                {"name": f"{port}__payload", "direction": "input",
                 "width": data.Layout.cast(layout).size, "meaning": text, "fields": entries},
                {"name": f"{port}__valid", "direction": "input", "width": 1,
                 "meaning": f"{port} payload is valid (keep it and the payload until ready)"},
                {"name": f"{port}__ready", "direction": "output", "width": 1,
                 "meaning": ready},
            ]
        ports += [
            {"name": "results__payload", "direction": "output", "width": c * a,
             "meaning": result_meaning,
             "fields": [{"name": "data", "offset": 0, "width": c * a, "lanes": c,
                         "lane_width": a, "signed": True,
                         "meaning": f"{a}-bit two's-complement accumulators, lane c = column "
                                    "c"}]},
            {"name": "results__valid", "direction": "output", "width": 1,
             "meaning": "a result vector is available" + (
                 " (from the output FIFO, or straight from the array when it is empty)"
                 if self._output_buffer else " (registered)")},
            {"name": "results__ready", "direction": "input", "width": 1,
             "meaning": "consumer accepts the result vector; " + (
                 "low: results wait in the output FIFO and inputs pause once their results "
                 "would not fit" if self._output_buffer else "low stalls the whole array")},
        ]
        return ports

    def row_component(self, specs, *, pe_modules: dict | None = None) -> _Row:
        """A fresh row of this array's kind for the multipliers ``specs``."""
        cls = WSRow if self._dataflow == "ws" else OSRow
        return cls(specs, acc_width=self._acc_width, overflow=self._overflow,
                   pipeline=self._pipeline, pe_modules=pe_modules)

    def pe_component(self, spec: MultiplierSpec) -> wiring.Component:
        """A fresh PE of this array's kind for ``spec``."""
        cls = WSProcessingElement if self._dataflow == "ws" else OSProcessingElement
        return cls(spec, acc_width=self._acc_width, overflow=self._overflow,
                   pipeline=self._pipeline)

    # -- elaboration --------------------------------------------------------------------------
    def _row(self, m: Module, r: int, advance):
        specs = self._grid[r]
        if self._row_modules is None:
            row = self.row_component(specs)
            m.submodules[f"row_{r}"] = row
        else:
            cls = WSRow if self._dataflow == "ws" else OSRow
            row = _instance(m, f"row_{r}", cls.signature_for(specs[0], self._cols,
                                                             self._acc_width),
                            self._row_modules[specs])
        m.d.comb += row.ce.eq(advance)
        return row

    def elaborate(self, platform):
        m = Module()
        res = self.results
        if self._output_buffer:
            # Credit-based: nothing stalls; `outstanding` counts the results of accepted
            # inputs not yet transferred, and an input that produces `k` results is accepted
            # only while `outstanding + k <= depth` (registered, so no path from
            # `results.ready` reaches into the array).
            advance = Const(1, 1)
            depth = self.output_buffer_depth
            per_input = 1 if self._dataflow == "ws" else self._rows
            outstanding = Signal(range(depth + 1), name="outstanding")
            credit = Signal(name="credit")
            m.d.comb += credit.eq(outstanding <= depth - per_input)
        else:
            advance = Signal()
            m.d.comb += advance.eq(~res.valid | res.ready)
            credit = Const(1, 1)
        rows = [self._row(m, r, advance) for r in range(self._rows)]
        pipe = Module()  # skew, deskew and control delay lines: they move on `advance`
        if self._output_buffer:
            m.submodules.pipe = pipe
        else:
            m.submodules.pipe = EnableInserter(advance)(pipe)
        if self._dataflow == "ws":
            produced, payload, valid = self._elaborate_ws(m, pipe, rows, advance, credit)
        else:
            produced, payload, valid = self._elaborate_os(m, pipe, rows, advance, credit)
        if not self._output_buffer:
            m.d.comb += [res.payload.eq(payload), res.valid.eq(valid)]
            return m
        # Output: a hold register, then a FIFO with synchronous reads (block RAM), then the
        # array itself, oldest first. A result goes straight out when both are empty and the
        # consumer is ready (so the latency is unchanged); shown but not taken, it moves to the
        # hold register (a presented result never changes or disappears before its
        # transfer); otherwise it queues in the FIFO, which the credits keep from overflowing.
        from amaranth.lib.fifo import SyncFIFOBuffered
        fifo = m.submodules.out_fifo = SyncFIFOBuffered(width=len(res.payload), depth=depth)
        hold = Signal(len(res.payload), name="out_hold", reset_less=True)
        hold_valid = Signal(name="out_hold_valid")
        direct = Signal(name="out_direct")       # the array's result is the one presented
        m.d.comb += direct.eq(~hold_valid & ~fifo.level.any() & valid)
        with m.If(hold_valid):
            m.d.comb += [res.payload.eq(hold), res.valid.eq(1)]
        with m.Elif(fifo.r_rdy):
            m.d.comb += [res.payload.eq(fifo.r_data), res.valid.eq(1)]
        with m.Else():
            m.d.comb += [res.payload.eq(payload), res.valid.eq(direct)]
        m.d.comb += [fifo.r_en.eq(~hold_valid & res.ready),
                     fifo.w_data.eq(payload),
                     fifo.w_en.eq(valid & ~direct)]
        with m.If(direct & ~res.ready):
            m.d.sync += [hold.eq(payload), hold_valid.eq(1)]
        with m.Elif(hold_valid & res.ready):
            m.d.sync += hold_valid.eq(0)
        taken = res.valid & res.ready
        m.d.sync += outstanding.eq(outstanding + Mux(produced, per_input, 0) - taken)
        return m

    def _elaborate_ws(self, m, pipe, rows, advance, credit):
        n_rows, cols, n = self._rows, self._cols, self.operand_width
        op_shape = self._grid[0][0].operand_shape

        # Weight loading into the PEs' shadow registers, independent of `advance`: row
        # `w_count` is written; `last` also deactivates every row below it.
        # (A one-row array needs no row counter: every weight transfer completes the tile.)
        w_count = Signal(range(n_rows), name="w_count") if n_rows > 1 else Const(0, 1)
        w_full = Signal(name="w_full")    # a complete shadow tile waits for its `first` vector
        busy = Signal(range(n_rows + cols), name="swap_busy")  # a swap is still travelling
        w_take = Signal()
        w_last = self.weights.payload.last
        m.d.comb += [self.weights.ready.eq(~w_full & ~busy.any()),
                     w_take.eq(self.weights.valid & self.weights.ready)]
        with m.If(w_take):
            if n_rows == 1:
                m.d.sync += w_full.eq(1)
            else:
                with m.If(w_last | _equals(w_count, n_rows - 1)):
                    m.d.sync += [w_full.eq(1), w_count.eq(0)]
                with m.Else():
                    m.d.sync += w_count.eq(w_count + 1)
        for r, row in enumerate(rows):
            here = _equals(w_count, r)
            below_last = ((w_count < r) & w_last) if r else Const(0, 1)
            m.d.comb += [row.wr.eq(w_take & (here | below_last)), row.wr_active.eq(here)]
            m.d.comb += [row.wr_weight[c].eq(_lane(self.weights.payload.data, c, n, op_shape))
                         for c in range(cols)]
        corr = self._correction
        if corr is not None:
            completes = (w_last | _equals(w_count, n_rows - 1)) if n_rows > 1 else Const(1, 1)
            shadow = self._corr_registers("shadow")
            with m.If(w_take & completes):
                m.d.sync += self._corr_load(shadow, self.weights.payload)
            if corr.mode == "cv":             # active activation lanes of the shadow tile
                shadow_mask = Signal(n_rows, name="corr_shadow_mask")
                for r in range(n_rows):
                    here = _equals(w_count, r)
                    below_last = ((w_count < r) & w_last) if r else Const(0, 1)
                    with m.If(w_take & here):
                        m.d.sync += shadow_mask[r].eq(1)
                    with m.Elif(w_take & below_last):
                        m.d.sync += shadow_mask[r].eq(0)

        # Activations; a `first` vector waits for a full shadow tile and starts the swap wave.
        first = self.acts.payload.first
        accepted = Signal()
        swap0 = Signal()
        m.d.comb += [self.acts.ready.eq(advance & credit & (~first | w_full)),
                     accepted.eq(self.acts.valid & self.acts.ready),
                     swap0.eq(accepted & first)]
        with m.If(swap0):
            m.d.sync += [w_full.eq(0), busy.eq(n_rows + cols - 2)]
        with m.Elif(advance & (busy != 0)):
            m.d.sync += busy.eq(busy - 1)
        sums = None
        if corr is not None:
            # Constants: shadow -> `mid` with the tile's first vector -> `out` when that
            # vector's sums reach the output stage (rows + cols - 1 (+1) cycles later; the next
            # tile's first vector comes at the earliest rows + cols cycles after it).
            mid = self._corr_registers("mid")
            with m.If(swap0):
                m.d.sync += [d.eq(s) for d, s in zip(mid, shadow)]
            if corr.mode == "cv":             # S = sum of the vector's active lanes
                cur_mask = Signal(n_rows, name="corr_mask")
                with m.If(swap0):
                    m.d.sync += cur_mask.eq(shadow_mask)
                mask = Mux(first, shadow_mask, cur_mask)
                terms = [Mux(mask[r], _lane(self.acts.payload.data, r, n, op_shape), 0)
                         for r in range(n_rows)]
                s_in = Signal(signed(corr.sum_bits), name="corr_sum")
                m.d.comb += s_in.eq(_tree_sum(terms))
                sums = _delay(pipe, s_in, self.latency - 1, "corr_sum")[-1]

        # PE (r, c) sees vector t at step t + r + c: lane r is delayed r steps, the swap flag
        # r steps into row r and then moves with the activations (c more steps); column c's
        # sum leaves row rows-1 and is delayed cols-1-c more steps. The correction's column
        # stage needs the flag rows + cols - 2 steps late (the last PE's step).
        swap = _delay(pipe, swap0, n_rows + cols - 2 if corr is not None else n_rows - 1,
                      "swap", reset_less=False)
        # With ``pipeline``, row 0 swaps on a *presented* first vector, accepted or not, so no
        # path runs from the acceptance logic (credits, the stall, a complete shadow tile) into
        # PE (0, 0)'s weight multiplexer and multiplier. An early swap is harmless: the step it
        # comes with is a bubble (its result is never valid), every vector of the old tile has
        # already passed that PE, and the accepted first vector swaps the (then complete)
        # shadow in again. (Without ``pipeline`` the accepted swap: see the PE's swap copy.)
        spec_swap = swap0
        if self._pipeline:
            spec_swap = Signal(name="swap_presented")
            m.d.comb += spec_swap.eq(self.acts.valid & first)
        valid = _delay(pipe, accepted, self.latency, "valid", reset_less=False)
        for r, row in enumerate(rows):
            skew = _delay(pipe, _lane(self.acts.payload.data, r, n, op_shape), r, f"act{r}")
            m.d.comb += row.act_in.eq(skew[-1])
            for c in range(cols):
                m.d.comb += row.psum_in[c].eq(0 if r == 0 else rows[r - 1].psum_out[c])
            m.d.comb += row.swap.eq(swap[r] if r else spec_swap)
        outs = [_delay(pipe, rows[-1].psum_out[c], cols - 1 - c, f"col{c}")[-1]
                for c in range(cols)]
        if corr is not None:
            swap_out = _delay(pipe, swap[-1], self.latency - 1 - (n_rows + cols - 2),
                              "corr_swap", reset_less=False)[-1]
            outs = self._corr_output(m, pipe, outs, mid, swap_out, sums)
        return accepted, Cat(o.as_unsigned() for o in outs), valid[-1]

    def _elaborate_os(self, m, pipe, rows, advance, credit):
        n_rows, cols, n = self._rows, self._cols, self.operand_width
        op_shape = self._grid[0][0].operand_shape
        extra = 1 if self._pipeline else 0
        p = self.operands.payload

        # A `last` step waits until `rows` cycles after the previous one (drain chain free;
        # with one row it never waits).
        accepted = Signal()
        period = self._os_period
        if period > 1:
            hold = Signal(range(period), name="hold")
            m.d.comb += self.operands.ready.eq(advance & (~p.last | (~hold.any() & credit)))
            with m.If(accepted & p.last):
                m.d.sync += hold.eq(period - 1)
            with m.Elif(advance & (hold != 0)):
                m.d.sync += hold.eq(hold - 1)
        else:
            m.d.comb += self.operands.ready.eq(advance & (~p.last | credit))
        m.d.comb += accepted.eq(self.operands.valid & self.operands.ready)

        # PE (r, c) sees step t at t + r + c: a lane r delayed r, b lane c delayed c, valid and
        # last r + c. Column c's results are complete rows + c (+1) steps after the `last` step
        # entered: then they are loaded into the drain chain, which shifts toward row 0.
        depth = n_rows + cols - 1 + extra
        valid = _delay(pipe, accepted, depth, "valid", reset_less=False)
        last = _delay(pipe, accepted & p.last, depth, "last", reset_less=False)
        b_skew = [_delay(pipe, _lane(p.b, c, n, op_shape), c, f"b{c}")[-1] for c in range(cols)]
        for r, row in enumerate(rows):
            m.d.comb += row.a_in.eq(_delay(pipe, _lane(p.a, r, n, op_shape), r, f"a{r}")[-1])
            for c in range(cols):
                m.d.comb += [row.b_in[c].eq(b_skew[c] if r == 0 else rows[r - 1].b_out[c]),
                             row.valid[c].eq(valid[r + c]), row.last[c].eq(last[r + c]),
                             row.load[c].eq(last[n_rows + c + extra])]
                if r + 1 < n_rows:
                    m.d.comb += [row.drain_in[c].eq(rows[r + 1].drain_out[c]),
                                 row.drain_valid_in[c].eq(rows[r + 1].drain_valid_out[c])]
        # Row 0 of each drain chain leaves through the deskew (column c: cols-1-c steps).
        outs = [_delay(pipe, rows[0].drain_out[c], cols - 1 - c, f"out{c}")[-1]
                for c in range(cols)]
        out_valid = rows[0].drain_valid_out[cols - 1]
        corr = self._correction
        if corr is not None:
            # Constants with the last step -> `mid`; -> `out` when result row 0 reaches the
            # output stage (a tile's row 0 is at the deskew outputs rows + cols + extra cycles
            # after its last step, which is also the pacing of last steps).
            mid = self._corr_registers("mid")
            with m.If(accepted & p.last):
                m.d.sync += self._corr_load(mid, p)
            first_out = _delay(pipe, last[-1], 1, "corr_first", reset_less=False)[-1]
            sums = None
            if corr.mode == "cv":
                # One accumulator per PE row, beside PE (r, 0) (a lane r, valid/last r), its
                # sum kept at the tile's last step and drained toward row 0 beside the results
                # (loaded one cycle before row 0 reaches the output stage).
                sw = signed(corr.sum_bits)
                res = []
                for r in range(n_rows):
                    acc_s = Signal(sw, name=f"corr_acc{r}")
                    kept = Signal(sw, name=f"corr_row{r}", reset_less=True)
                    a_r = rows[r].a_in
                    with pipe.If(valid[r]):
                        with pipe.If(last[r]):
                            pipe.d.sync += [kept.eq(acc_s + a_r), acc_s.eq(0)]
                        with pipe.Else():
                            pipe.d.sync += acc_s.eq(acc_s + a_r)
                    res.append(kept)
                chain = [Signal(sw, name=f"corr_drain{r}", reset_less=True)
                         for r in range(n_rows)]
                for r in range(n_rows):
                    below = chain[r + 1] if r + 1 < n_rows else 0
                    pipe.d.sync += chain[r].eq(Mux(last[-1], res[r], below))
                sums = chain[0]
            outs = self._corr_output(m, pipe, outs, mid, first_out, sums)
            out_valid = _delay(pipe, out_valid, 1, "corr_valid", reset_less=False)[-1]
        return accepted & p.last, Cat(o.as_unsigned() for o in outs), out_valid

    # -- correction (module docstring) ------------------------------------------------------
    def _corr_registers(self, name: str) -> list:
        """``[g_0.., h_0..]`` registers of one constant bank (no ``g`` for bias)."""
        fmt, regs = self._correction, []
        if fmt.mode == "cv":
            regs += [Signal(signed(fmt.alpha_bits), name=f"corr_{name}_g{c}")
                     for c in range(self._cols)]
        regs += [Signal(signed(fmt.beta_bits), name=f"corr_{name}_h{c}")
                 for c in range(self._cols)]
        return regs

    def _corr_load(self, bank: list, payload) -> list:
        fmt, cols = self._correction, self._cols
        lanes = []
        if fmt.mode == "cv":
            lanes += [payload.corr_g[c * fmt.alpha_bits:(c + 1) * fmt.alpha_bits].as_signed()
                      for c in range(cols)]
        lanes += [payload.corr_h[c * fmt.beta_bits:(c + 1) * fmt.beta_bits].as_signed()
                  for c in range(cols)]
        return [d.eq(v) for d, v in zip(bank, lanes)]

    def _corr_output(self, m, pipe, outs, mid, take, sums) -> list:
        """The registered output stage: ``reduce_A(out_c + ((g_c S + h_c) >> F))`` with the
        ``out`` bank, which takes ``mid`` on the edge where ``take`` (the first result of a
        tile is entering the stage)."""
        fmt, cols = self._correction, self._cols
        bank = self._corr_registers("out")
        with pipe.If(take):
            pipe.d.sync += [d.eq(s) for d, s in zip(bank, mid)]
        staged = []
        for c in range(cols):
            reg = Signal.like(outs[c], name=f"corr_stage{c}", reset_less=True)
            pipe.d.sync += reg.eq(outs[c])
            staged.append(reg)
        if fmt.mode == "cv":
            s_stage = Signal(signed(fmt.sum_bits), name="corr_stage_sum", reset_less=True)
            pipe.d.sync += s_stage.eq(sums)
            g, h = bank[:cols], bank[cols:]
        else:
            h = bank
        result = []
        for c in range(cols):
            if fmt.mode == "cv":
                corr = (g[c] * s_stage + h[c]) >> fmt.frac
            else:
                corr = h[c]
            y = Signal(signed(self._acc_width), name=f"corr_out{c}")
            m.d.comb += y.eq(accumulate(staged[c], corr, self._acc_width, self._overflow))
            result.append(y)
        return result


def emit_array_verilog(array: SystolicArray, name: str) -> str:
    """Verilog text of ``array`` with top module ``name``; same arguments -> same bytes.

    Amaranth emits one Verilog module per elaborated instance (megabytes for 32 x 32 PEs), so
    here every distinct PE (one per multiplier spec) and every distinct row (one per sequence
    of specs) is emitted once, as ``{name}_pe{i}`` / ``{name}_row{j}``, and instantiated by
    name. The logic is the same as elaborating ``array`` directly.
    """
    from hw.verilog import emit_verilog_many

    pe_modules, row_modules, designs = {}, {}, []
    for specs in array.grid:
        for spec in specs:
            if spec not in pe_modules:
                pe_modules[spec] = f"{name}_pe{len(pe_modules)}"
                designs.append((array.pe_component(spec), pe_modules[spec]))
    for specs in array.grid:
        if specs not in row_modules:
            row_modules[specs] = f"{name}_row{len(row_modules)}"
            designs.append((array.row_component(specs, pe_modules=pe_modules),
                            row_modules[specs]))
    saved, array._row_modules = array._row_modules, row_modules
    try:
        return emit_verilog_many([(array, name)] + designs)
    finally:
        array._row_modules = saved
