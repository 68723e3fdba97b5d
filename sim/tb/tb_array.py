"""cocotb testbench for generated systolic arrays (see :mod:`sim.arraycheck`).

Config (``AXM_TB_CONFIG``): ``units``: list of ``{prefix, manifest, scenarios, gemm, seed}``;
each unit is one generated array inside the harness, its ports named ``{prefix}__{port}``.
Everything about a unit (port names, payload fields, latency, throughput, multipliers) comes
from its manifest; expected results come from :class:`sim.golden.ArrayModel`.

Stream discipline of the drivers: inputs are changed only right after a rising edge; a source
that raised ``valid`` keeps it and the payload until the transfer; handshakes are sampled at
the falling edge (after combinational ``ready`` settled) and count for the next rising edge.
"""

import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from sim.arraycheck import (StreamCodec, cycle_shapes, extreme_tiles, gemm_program,
                            manifest_gemm_cycles, model_from_manifest, overflow_tiles,
                            overflowed, program, random_tiles)
from sim.tb.runner import testbench_config, write_report

MAX_REPORTED = 10


def _bit(handle) -> int:
    return 1 if str(handle.value) == "1" else 0


class Unit:
    """One array in the harness: its handles, codecs and golden model."""

    def __init__(self, dut, cfg, errors, mismatches):
        self.prefix = cfg["prefix"]
        self.manifest = cfg["manifest"]
        self.model = model_from_manifest(self.manifest, cfg.get("model_names"))
        self.timing = self.manifest["timing"]
        self.errors, self.mismatches = errors, mismatches
        ports = {p["name"]: p for p in self.manifest["ports"]}
        self.codecs = {name: StreamCodec(ports[s["payload"]])
                       for name, s in self.manifest["streams"].items()}
        h = lambda name: getattr(dut, f"{self.prefix}__{name}")  # noqa: E731
        self.clk = h(self.manifest["clock"]["port"])
        self.rst = h(self.manifest["reset"]["port"])
        self.inputs = {name: (h(s["payload"]), h(s["valid"]), h(s["ready"]))
                       for name, s in self.manifest["streams"].items()
                       if s["direction"] == "input"}
        out = self.manifest["streams"]["results"]
        self.out_payload, self.out_valid, self.out_ready = (h(out["payload"]), h(out["valid"]),
                                                            h(out["ready"]))
        self.cycle = 0
        self.reset_pending = None
        self.stream_length = cfg.get("stream_length", 2000)

    def idle_inputs(self):
        for _, valid, _ in self.inputs.values():
            valid.value = 0

    async def tick(self):
        await RisingEdge(self.clk)
        self.cycle += 1

    async def reset(self, cycles=2):
        self.idle_inputs()
        self.out_ready.value = 1
        self.rst.value = 1
        for _ in range(cycles):
            await self.tick()
        self.rst.value = 0

    async def run(self, prog, rng, *, p_gap=0.0, p_stall=0.0, reset_at=None, max_cycles=None,
                  stall_runs=None):
        """Drive ``prog``; return (result words, result cycles, input transfer cycles by
        stream). With ``reset_at``: assert reset at that cycle (relative) and stop.
        ``stall_runs = (low, high)``: ``results.ready`` low for ``low`` cycles, then high for
        ``high``, repeating (instead of ``p_stall``). Sets :attr:`max_backlog`: the most
        results owed at once (of accepted inputs, not yet transferred)."""
        names = list(prog.inputs)
        idx = {n: 0 for n in names}
        holding = {n: False for n in names}
        in_cycles = {n: [] for n in names}
        words, out_cycles = [], []
        total_in = sum(len(v) for v in prog.inputs.values())
        limit = max_cycles or (50 + 4 * (total_in + len(prog.expected))
                               * (1 + int(10 * (p_gap + p_stall)))
                               + 4 * self.model.rows * self.model.cols)
        start = self.cycle
        owed, self.max_backlog = 0, 0
        shown = None              # a result presented but not taken: it must stay as it was
        while True:
            done = all(idx[n] >= len(prog.inputs[n]) for n in names) and \
                len(words) >= len(prog.expected)
            if done:
                break
            if reset_at is not None and self.cycle - start >= reset_at:
                self.reset_pending = {n: len(prog.inputs[n]) - idx[n] for n in names}
                await self.reset()
                return words, out_cycles, in_cycles
            if self.cycle - start > limit:
                self.errors.append(f"{self.prefix}: timeout after {limit} cycles "
                                   f"(inputs {idx}, results {len(words)}/{len(prog.expected)})")
                await self.reset()
                return words, out_cycles, in_cycles
            driven = {}
            for n in names:
                payload, valid, _ = self.inputs[n]
                items = prog.inputs[n]
                if idx[n] < len(items) and (holding[n] or rng.random() >= p_gap):
                    payload.value = items[idx[n]]
                    valid.value = 1
                    holding[n] = driven[n] = True
                else:
                    valid.value = 0
                    driven[n] = False
            if stall_runs is not None:
                low, high = stall_runs
                ready = int((self.cycle - start) % (low + high) >= low)
            else:
                ready = 0 if (p_stall and rng.random() < p_stall) else 1
            self.out_ready.value = ready
            await FallingEdge(self.clk)
            for n in names:
                if driven[n] and _bit(self.inputs[n][2]):
                    owed += self._results_of(n, prog.inputs[n][idx[n]])
                    in_cycles[n].append(self.cycle - start)
                    idx[n] += 1
                    holding[n] = False
            out_valid = _bit(self.out_valid)
            if shown is not None and (not out_valid
                                      or self.out_payload.value.to_unsigned() != shown):
                self.errors.append(f"{self.prefix}: a result vector presented while "
                                   "results.ready was low changed or vanished before its "
                                   f"transfer (cycle {self.cycle - start})")
            shown = None
            if out_valid and not ready:
                shown = self.out_payload.value.to_unsigned()
            if ready and out_valid:
                words.append(self.out_payload.value.to_unsigned())
                out_cycles.append(self.cycle - start)
                owed -= 1
            self.max_backlog = max(self.max_backlog, owed)
            await self.tick()
        self.idle_inputs()
        return words, out_cycles, in_cycles

    def _results_of(self, stream: str, word: int) -> int:
        """Result vectors an input transfer produces: ws ``acts`` 1, os ``last`` steps
        ``rows``, otherwise 0."""
        if stream == "acts":
            return 1
        if stream == "operands":
            f = self.codecs["operands"].fields["last"]
            return self.model.rows if (word >> f["offset"]) & 1 else 0
        return 0

    async def quiet(self, cycles) -> int:
        """Idle ``cycles`` cycles with ``ready`` high; return how many results appeared."""
        self.idle_inputs()
        self.out_ready.value = 1
        extra = 0
        for _ in range(cycles):
            await FallingEdge(self.clk)
            extra += _bit(self.out_valid)
            await self.tick()
        return extra

    def compare(self, scenario, prog, words, count=None) -> tuple[int, list]:
        """Compare received words with the expected vectors; return (#checked, vectors)."""
        codec = self.codecs["results"]
        got = [codec.decode(w) for w in words]
        count = len(prog.expected) if count is None else count
        if len(got) < count:
            self.errors.append(f"{self.prefix} {scenario}: {len(got)} results, expected "
                               f"{count}")
        for i, (g, want) in enumerate(zip(got[:count], prog.expected[:count])):
            if not np.array_equal(g, want) and len(self.mismatches) < MAX_REPORTED:
                self.mismatches.append({"unit": self.prefix, "scenario": scenario,
                                        "index": i, "where": prog.labels[i],
                                        "rtl": g.tolist(), "model": want.tolist()})
        return min(len(got), count), got


def _span(model):
    """``(lo, hi + 1)`` of the operand range (for ``rng.integers``)."""
    lo, hi = model.grid[0][0].operand_range
    return lo, hi + 1


async def run_scenario(unit: Unit, scenario: str, rng, gemm_shape, shapes=None):
    """Run one scenario; return a dict with what was checked and measured."""
    model, codecs = unit.model, unit.codecs
    ws = model.dataflow == "ws"
    result = {"scenario": scenario}
    if scenario == "random":
        prog = program(model, codecs, random_tiles(model, rng, 6), rng)
        words, _, _ = await unit.run(prog, rng, p_gap=0.3, p_stall=0.3)
        result["vectors"], _ = unit.compare(scenario, prog, words)
    elif scenario == "extremes":
        prog = program(model, codecs, extreme_tiles(model, rng), rng)
        words, _, _ = await unit.run(prog, rng, p_stall=0.2)
        result["vectors"], _ = unit.compare(scenario, prog, words)
    elif scenario == "overflow":
        prog = program(model, codecs, overflow_tiles(model, rng), rng)
        words, _, _ = await unit.run(prog, rng, p_gap=0.1, p_stall=0.1)
        result["vectors"], _ = unit.compare(scenario, prog, words)
        result["overflowed_vectors"] = overflowed(model, prog)
    elif scenario == "stall":
        # Long consumer stalls, inputs always offered: results must wait (in the stalled array,
        # or in the output FIFO under credits) and none may be lost, duplicated or reordered.
        # max_backlog: the most results owed at once (an output-buffered array: its FIFO
        # depth, once the credits run out).
        span = model.rows + model.cols
        if ws:
            tiles = [(rng.integers(*_span(model), size=(3 * span + 4, model.rows)),
                      rng.integers(*_span(model), size=(model.rows, model.cols)))
                     for _ in range(2)]
        else:
            tiles = random_tiles(model, rng, 4 * span // model.rows + 4, full=True)
        prog = program(model, codecs, tiles, rng)
        low, high = 3 * span + 8, 2
        words, _, _ = await unit.run(prog, rng, stall_runs=(low, high), max_cycles=(
            (len(prog.expected) // high + 2) * (low + high) + 8 * span))
        result["vectors"], _ = unit.compare(scenario, prog, words)
        result["max_backlog"] = unit.max_backlog
    elif scenario == "back_to_back":
        # Tiles long enough for the next tile's weights (ws) / a drain (os) to hide behind
        # the current one: the input must then flow without a single idle cycle.
        if ws:
            m = 2 * (model.rows + model.cols)
            tiles = [(rng.integers(*_rng(model), size=(m, model.rows)),
                      rng.integers(*_rng(model), size=(model.rows, model.cols)))
                     for _ in range(3)]
            main = "acts"
        else:
            tiles = [(rng.integers(*_rng(model), size=(model.rows, model.rows + 2)),
                      rng.integers(*_rng(model), size=(model.rows + 2, model.cols)))
                     for _ in range(3)]
            main = "operands"
        prog = program(model, codecs, tiles, rng)
        words, out_cycles, in_cycles = await unit.run(prog, rng)
        result["vectors"], _ = unit.compare(scenario, prog, words)
        cyc = in_cycles[main]
        if ws:
            # no gap at all between the first vector and the last one, across tiles
            result["input_cycles_per_vector"] = (cyc[-1] - cyc[0]) / (len(cyc) - 1)
            result["output_cycles_per_vector"] = (out_cycles[-1] - out_cycles[0]) / (
                len(out_cycles) - 1)
            want = 1 / unit.timing["throughput"]["acts_per_cycle"]
            for key in ("input_cycles_per_vector", "output_cycles_per_vector"):
                if result[key] != want:
                    unit.errors.append(f"{unit.prefix} back_to_back: {key} = {result[key]}, "
                                       f"manifest says {want}")
        else:
            result["input_cycles_per_step"] = (cyc[-1] - cyc[0]) / (len(cyc) - 1)
            if result["input_cycles_per_step"] != 1:
                unit.errors.append(f"{unit.prefix} back_to_back: steps were not accepted "
                                   f"every cycle ({result['input_cycles_per_step']})")
            # tiles shorter than `rows` steps are paced by the drain: max(K, rows) cycles
            short_k = max(1, model.rows // 2)
            tiles = [(rng.integers(*_rng(model), size=(model.rows, short_k)),
                      rng.integers(*_rng(model), size=(short_k, model.cols)))
                     for _ in range(4)]
            prog2 = program(model, codecs, tiles, rng)
            words, _, in_cycles = await unit.run(prog2, rng)
            unit.compare(scenario + "/short", prog2, words)
            lasts = in_cycles[main][short_k - 1::short_k]
            per_tile = (lasts[-1] - lasts[0]) / (len(lasts) - 1)
            result["cycles_per_short_tile"] = per_tile
            want = max(short_k, unit.timing["min_cycles_per_tile"])
            if per_tile != want:
                unit.errors.append(f"{unit.prefix} back_to_back: a {short_k}-step tile took "
                                   f"{per_tile} cycles, manifest implies {want}")
    elif scenario == "latency":
        # Into an empty array with results.ready high: one vector (ws) / one tile (os).
        await unit.quiet(2)
        if ws:
            tile = random_tiles(model, rng, 1, full=True)
            prog = program(model, codecs, [(tile[0][0][:1], tile[0][1])], rng)
            words, out_cycles, in_cycles = await unit.run(prog, rng)
            measured = out_cycles[0] - in_cycles["acts"][0]
        else:
            prog = program(model, codecs, random_tiles(model, rng, 1), rng)
            words, out_cycles, in_cycles = await unit.run(prog, rng)
            measured = out_cycles[0] - in_cycles["operands"][-1]
        result["vectors"], _ = unit.compare(scenario, prog, words)
        result["latency_cycles"] = measured
        if measured != unit.timing["latency_cycles"]:
            unit.errors.append(f"{unit.prefix} latency: measured {measured} cycles, manifest "
                               f"says {unit.timing['latency_cycles']}")
    elif scenario == "reset":
        prog = program(model, codecs, random_tiles(model, rng, 4), rng)
        total = sum(len(v) for v in prog.inputs.values())
        cut = int(rng.integers(max(2, total // 4), max(3, total // 2 + 2)))
        unit.reset_pending = None
        words, _, _ = await unit.run(prog, rng, p_gap=0.2, p_stall=0.2, reset_at=cut)
        if not unit.reset_pending or not any(unit.reset_pending.values()):
            unit.errors.append(f"{unit.prefix} reset: the stream ended before the reset")
        result["inputs_left_at_reset"] = unit.reset_pending
        # results that came out before the reset must still be right
        unit.compare(scenario + "/before", prog, words, count=len(words))
        stray = await unit.quiet(model.rows + model.cols + 4)
        if stray:
            unit.errors.append(f"{unit.prefix} reset: {stray} results appeared after reset")
        prog = program(model, codecs, random_tiles(model, rng, 3), rng)
        words, _, _ = await unit.run(prog, rng, p_gap=0.2, p_stall=0.2)
        result["vectors"], _ = unit.compare(scenario + "/after", prog, words)
        result["reset_after_cycles"] = cut
    elif scenario == "gemm":
        m, k, n = gemm_shape
        lo, hi = _rng(model)
        a = rng.integers(lo, hi, size=(m, k))
        b = rng.integers(lo, hi, size=(k, n))
        prog, assemble, want = gemm_program(model, codecs, a, b, rng)
        words, _, _ = await unit.run(prog, rng, p_gap=0.1, p_stall=0.1)
        result["vectors"], got = unit.compare(scenario, prog, words)
        if len(got) == len(prog.expected):
            out = assemble(got)
            bad = int(np.sum(out != want))
            result["gemm"] = f"{m}x{k} @ {k}x{n}"
            result["gemm_mismatches"] = bad
            if bad:
                unit.errors.append(f"{unit.prefix} gemm: {bad} of {out.size} outputs differ "
                                   "from sim.golden.tiled_gemm")
    elif scenario == "window":
        # ws weight-load window: tile 1's weight rows wait (valid high) behind tile 0; the
        # clock edges from tile 0's first vector to tile 1's first weight transfer.
        if not ws:
            unit.errors.append(f"{unit.prefix} window: only for weight-stationary arrays")
            return result
        want = unit.timing["weight_load_window_cycles"]
        r, c = model.rows, model.cols
        result["windows"] = []
        for m, k0, k1 in [(1, r, r), (3, max(1, r - 1), 1), (r + c + 3, 1, r)]:
            await unit.quiet(r + c + 2)  # idle and empty: no swap still travelling
            tiles = [(rng.integers(*_rng(model), size=(m, k0)),
                      rng.integers(*_rng(model), size=(k0, c))),
                     (rng.integers(*_rng(model), size=(m, k1)),
                      rng.integers(*_rng(model), size=(k1, c)))]
            prog = program(model, codecs, tiles, rng)
            words, _, in_cycles = await unit.run(prog, rng)
            unit.compare(f"{scenario} {m}/{k0}/{k1}", prog, words)
            measured = in_cycles["weights"][k0] - in_cycles["acts"][0]
            result["windows"].append({"m": m, "k0": k0, "k1": k1, "cycles": measured})
            if measured != want:
                unit.errors.append(f"{unit.prefix} window: tile 1's first weight row came "
                                   f"{measured} cycles after tile 0's first vector (M={m}, "
                                   f"K0={k0}), manifest says {want}")
        result["vectors"] = len(result["windows"])
    elif scenario == "cycles":
        # Whole GEMMs driven as fast as the array accepts (every input valid at once, no
        # gaps, no back-pressure): clock edges from the first input transfer to the last
        # result transfer, against the manifest's gemm_cycles formula.
        entry = unit.timing["gemm_cycles"]
        lo, hi = _rng(model)
        result["gemm_cycles"] = []
        checked = 0
        for m, k, n in (shapes or cycle_shapes(model)):
            await unit.quiet(model.rows + model.cols + 2)  # idle and empty
            a = rng.integers(lo, hi, size=(m, k))
            b = rng.integers(lo, hi, size=(k, n))
            prog, assemble, want = gemm_program(model, codecs, a, b, rng)
            words, out_cycles, in_cycles = await unit.run(prog, rng)
            count, got = unit.compare(f"{scenario} {m}x{k}x{n}", prog, words)
            checked += count
            if len(got) != len(prog.expected):
                continue
            bad = int(np.sum(assemble(got) != want))
            if bad:
                unit.errors.append(f"{unit.prefix} cycles {m}x{k}x{n}: {bad} outputs differ "
                                   "from sim.golden.tiled_gemm")
            measured = out_cycles[-1] - min(c[0] for c in in_cycles.values() if c)
            formula = manifest_gemm_cycles(entry, m, k, n)
            result["gemm_cycles"].append({"shape": [m, k, n], "cycles": measured,
                                          "manifest": formula})
            if measured != formula:
                unit.errors.append(f"{unit.prefix} cycles {m}x{k}x{n}: measured {measured}, "
                                   f"manifest formula says {formula}")
        result["vectors"] = checked
    elif scenario == "stream":
        # Benchmark: a long stream without gaps or back-pressure; simulator speed measured
        # over the drive loop only (program and golden model built beforehand).
        count = unit.stream_length
        if ws:
            tiles = [(rng.integers(*_rng(model), size=(count, model.rows)),
                      rng.integers(*_rng(model), size=(model.rows, model.cols)))]
        else:
            k = max(model.rows, 16)
            tiles = [(rng.integers(*_rng(model), size=(model.rows, k)),
                      rng.integers(*_rng(model), size=(k, model.cols)))
                     for _ in range(max(1, count // k))]
        prog = program(model, codecs, tiles, rng)
        t0, c0 = time.perf_counter(), unit.cycle
        words, _, _ = await unit.run(prog, rng)
        result["sim_cycles"] = unit.cycle - c0
        result["sim_cycles_per_second"] = result["sim_cycles"] / (time.perf_counter() - t0)
        result["vectors"], _ = unit.compare(scenario, prog, words)
    else:
        unit.errors.append(f"unknown scenario {scenario!r}")
        return result
    extra = await unit.quiet(4)
    if extra:
        unit.errors.append(f"{unit.prefix} {scenario}: {extra} extra result vectors "
                           "(duplicates?)")
    return result


def _rng(model):
    lo, hi = model.grid[0][0].operand_range
    return lo, hi + 1


@cocotb.test()
async def arrays_match_golden_model(dut):
    cfg = testbench_config()
    errors, mismatches, units_report = [], [], []
    units = [Unit(dut, u, errors, mismatches) for u in cfg["units"]]
    for unit in units:
        unit.idle_inputs()
        unit.out_ready.value = 1
        unit.rst.value = 0
        unit.clk.value = 0
    start = time.perf_counter()
    total_cycles = 0
    for unit, ucfg in zip(units, cfg["units"]):
        # Only the unit under test gets a clock: idle units cost the simulator nothing.
        clock = cocotb.start_soon(Clock(unit.clk, 10, unit="ns").start())
        await unit.reset()
        rng = np.random.default_rng(ucfg["seed"])
        results = []
        t0, c0 = time.perf_counter(), unit.cycle
        for scenario in ucfg["scenarios"]:
            try:
                results.append(await run_scenario(unit, scenario, rng, ucfg.get("gemm")
                                                  or (3 * unit.model.rows + 1,
                                                      2 * unit.model.rows + 3,
                                                      2 * unit.model.cols + 1),
                                                  ucfg.get("cycle_shapes")))
            except Exception as exc:  # report, keep checking the other scenarios
                errors.append(f"{unit.prefix} {scenario}: {type(exc).__name__}: {exc}")
                await unit.reset()
        clock.cancel()
        cycles = unit.cycle - c0
        total_cycles += cycles
        units_report.append({"prefix": unit.prefix, "top": unit.manifest["top"],
                             "command": unit.manifest["command"], "results": results,
                             "cycles": cycles,
                             "cycles_per_second": cycles / max(time.perf_counter() - t0, 1e-9)})
    elapsed = time.perf_counter() - start
    write_report(cfg, {"units": units_report, "errors": errors, "mismatches": mismatches,
                       "cycles": total_cycles, "seconds": elapsed,
                       "cycles_per_second": total_cycles / max(elapsed, 1e-9)})
    assert not errors and not mismatches, f"{errors[:3]} {mismatches[:2]}"
