"""Tables (text, CSV, JSON) and the plot of a :func:`sim.perf.model.evaluate` report."""

from __future__ import annotations

import csv
import io
import json
import math

from .model import ENERGY_PARTS

__all__ = ["text_table", "csv_text", "json_text", "figure", "plot_bytes", "CSV_COLUMNS"]

#: Columns of the per-layer CSV (energy columns only when energy was computed).
CSV_COLUMNS = ["index", "name", "kind", "detail", "m", "k", "n", "groups", "macs", "tiles",
               "cycles", "stall_free_cycles", "bubble_cycles", "ideal_cycles", "mapping_util",
               "temporal_util", "overall_util", "sram_ifmap_reads", "sram_filter_reads",
               "sram_ofmap_writes", "sram_ofmap_reads", "dram_ifmap_bytes",
               "dram_filter_bytes", "dram_ofmap_bytes", "dram_psum_bytes"]


def _flat(i: int, row: dict, scalesim: bool, energy: bool) -> dict:
    out = {"index": i, **{k: row[k] for k in CSV_COLUMNS[1:17]}}
    out.update({f"sram_{k}": v for k, v in row["sram"].items()})
    d = row["dram"]
    out.update({"dram_ifmap_bytes": d["ifmap_reads"], "dram_filter_bytes": d["filter_reads"],
                "dram_ofmap_bytes": d["ofmap_writes"], "dram_psum_bytes": d["psum_spill"]})
    if scalesim:
        s = row["scalesim"]
        out.update({"scalesim_cycles": s["cycles"], "scalesim_mapping_util": s["mapping_util"],
                    "scalesim_compute_util": s["compute_util"],
                    "scalesim_overall_util": s["overall_util"]})
    if energy:
        out.update({f"energy_{k}_pj": row["energy_pj"][k] for k in ENERGY_PARTS})
        out["energy_total_pj"] = row["energy_pj"]["total"]
    return out


def csv_text(report: dict) -> str:
    """One CSV row per layer plus a ``total`` row."""
    scalesim = "scalesim" in report["layers"][0]
    energy = "energy_pj" in report["layers"][0]
    rows = [_flat(i, r, scalesim, energy) for i, r in enumerate(report["layers"], 1)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    t = report["totals"]
    total = {k: "" for k in rows[0]}
    total.update({"index": "total", "name": report["workload"], "macs": t["macs"],
                  "cycles": t["cycles"], "stall_free_cycles": t["stall_free_cycles"],
                  "bubble_cycles": t["cycles"] - t["stall_free_cycles"],
                  "ideal_cycles": t["ideal_cycles"], "overall_util": f"{t['overall_util']:.6g}"})
    for key in ("sram_ifmap_reads", "sram_filter_reads", "sram_ofmap_writes", "sram_ofmap_reads",
                "dram_ifmap_bytes", "dram_filter_bytes", "dram_ofmap_bytes", "dram_psum_bytes"):
        total[key] = sum(r[key] for r in rows)
    if scalesim:
        total["scalesim_cycles"] = t["scalesim_cycles"]
    if energy:
        for k in ENERGY_PARTS:
            total[f"energy_{k}_pj"] = f"{t['energy_pj'][k]:.6g}"
        total["energy_total_pj"] = f"{t['energy_pj']['total']:.6g}"
    writer.writerow(total)
    return buf.getvalue()


def json_text(report: dict) -> str:
    return json.dumps(report, indent=1, allow_nan=False) + "\n"


def _si(v: float, unit: str) -> str:
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g} {prefix}{unit}"
    return f"{v:.3g} {unit}"


def _energy(pj: float) -> str:
    for scale, unit in ((1e6, "uJ"), (1e3, "nJ")):
        if pj >= scale:
            return f"{pj / scale:.4g} {unit}"
    return f"{pj:.4g} pJ"


def text_table(report: dict) -> str:
    """Per-layer table and network summary, for a terminal."""
    tg = report["target"]
    scalesim = "scalesim" in report["layers"][0]
    energy = "energy_pj" in report["layers"][0]
    head = ["#", "layer", "kind", "M", "K", "N", "g", "MACs", "tiles", "cycles", "bubbles",
            "util map/temp/all"]
    if scalesim:
        head += ["SCALE-Sim cyc", "SS util"]
    head += ["DRAM B"]
    if energy:
        head += ["energy"]
    lines = []
    for i, r in enumerate(report["layers"], 1):
        cells = [str(i), r["name"], r["kind"], str(r["m"]), str(r["k"]), str(r["n"]),
                 str(r["groups"]), _si(r["macs"], ""), str(r["tiles"]), str(r["cycles"]),
                 f"{100 * r['bubble_cycles'] / r['cycles']:.1f}%",
                 f"{r['mapping_util']:.2f}/{r['temporal_util']:.2f}/{r['overall_util']:.2f}"]
        if scalesim:
            s = r["scalesim"]
            cells += [str(s["cycles"]), f"{s['overall_util']:.2f}"]
        cells += [str(r["dram_bytes"])]
        if energy:
            cells += [_energy(r["energy_pj"]["total"])]
        lines.append(cells)
    widths = [max(len(h), *(len(c[j]) for c in lines)) for j, h in enumerate(head)]
    left = {1, 2}

    def fmt(cells):
        return "  ".join(c.ljust(w) if j in left else c.rjust(w)
                         for j, (c, w) in enumerate(zip(cells, widths)))

    t = report["totals"]
    out = [f"{report['workload']}: {t['layers']} layers on a {tg['rows']}x{tg['cols']} "
           f"{tg['dataflow']} array{' (pipelined)' if tg['pipeline'] else ''}"
           f"{' (corrected)' if tg.get('correction') else ''}, "
           f"int{tg['width']} {'signed' if tg['signed'] else 'unsigned'}, "
           f"{tg['acc_width']}-bit accumulators",
           fmt(head), fmt(["-" * w for w in widths])]
    out += [fmt(c) for c in lines]
    out.append("")
    out.append(f"total: {_si(t['macs'], 'MAC')}, {t['cycles']} cycles "
               f"({t['time_us']:.4g} us at {report['clock_mhz']:g} MHz), "
               f"stall-free {t['stall_free_cycles']}, "
               f"ideal {t['ideal_cycles']}, utilisation {t['overall_util']:.3f}, "
               f"DRAM {_si(t['dram_bytes'], 'B')}, SRAM {_si(t['sram_bytes'], 'B')}")
    if scalesim:
        out.append(f"SCALE-Sim v2 compute cycles (stall-free, folds not overlapped): "
                   f"{t['scalesim_cycles']} ({t['scalesim_cycles'] / t['cycles']:.3f} x the "
                   "array's schedule)")
    if energy:
        e = t["energy_pj"]
        parts = ", ".join(f"{k} {_energy(e[k])}" for k in ENERGY_PARTS)
        out.append(f"energy per inference: {_energy(e['total'])} ({parts}); "
                   f"{t['energy_per_mac_pj']:.4g} pJ/MAC, {t['power_mw']:.4g} mW")
        for m in report["multipliers"]:
            out.append(f"  {m['name']}: {m['pj']:.4g} pJ/multiplication ({m['trace']} trace, "
                       f"proxy {m['proxy_pj']:.4g} pJ, {m['gate_area']:.0f} GE), total "
                       f"{_energy(m['total_pj'])}, {m['pj_per_mac']:.4g} pJ/MAC, "
                       f"{m['pj_per_cycle']:.4g} pJ/cycle")
    return "\n".join(out) + "\n"


# -- plot ----------------------------------------------------------------------------------------
_COLORS = {"multiplier": "tab:blue", "adder": "tab:cyan", "registers": "tab:purple",
           "leakage": "tab:gray", "sram": "tab:orange", "dram": "tab:red"}
_FONT = 7
_WRAP = 34


def figure(report: dict):
    """Per-layer cycles (stall-free part and bubbles, SCALE-Sim's count as a marker) and
    per-layer energy stacked by component (log scale), layers numbered on the x axis and listed
    in a table beside the panels (no label overlaps: :mod:`hw.plotlabels`)."""
    from hw.extras import require

    matplotlib = require("matplotlib", "the plot (--plot)")
    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from hw.plotlabels import freeze_layout, table_rows, wrap_label

    layers = report["layers"]
    n = len(layers)
    energy = "energy_pj" in layers[0]
    scalesim = "scalesim" in layers[0]
    table = [[f"{'#':>3} layer (kind M x K x N, groups)"]]
    for i, r in enumerate(layers, 1):
        text = f"{r['name']} ({r['kind']} {r['m']}x{r['k']}x{r['n']}" + \
            (f", g{r['groups']}" if r["groups"] > 1 else "") + ")"
        parts = wrap_label(text, _WRAP)
        table.append([f"{i:>3} {parts[0]}"] + [f"    {p}" for p in parts[1:]])
    n_lines = sum(len(t) for t in table)
    height = max(7.5, 1.6 + n_lines * _FONT * 1.25 * 1.15 / 72)
    fig = Figure(figsize=(15, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(2 if energy else 1, 2, width_ratios=[1, 0.36])
    ax_c = fig.add_subplot(gs[0, 0])
    ax_e = fig.add_subplot(gs[1, 0], sharex=ax_c) if energy else None
    tax = fig.add_subplot(gs[:, 1])
    tax.set_axis_off()
    x = list(range(1, n + 1))
    free = [r["stall_free_cycles"] for r in layers]
    bub = [r["bubble_cycles"] for r in layers]
    ax_c.bar(x, free, color="tab:green", label="stall-free schedule (streaming, fill, drain)")
    ax_c.bar(x, bub, bottom=free, color="tab:olive",
             label="bubbles (weight loads / drains not hidden)")
    if scalesim:
        ax_c.plot(x, [r["scalesim"]["cycles"] for r in layers], ls="none", marker="_",
                  ms=9, mew=2, color="black", label="SCALE-Sim v2 compute cycles")
    ax_c.set_yscale("log")
    ax_c.set_ylabel("cycles per layer (log scale)")
    ax_c.grid(True, axis="y", which="both", alpha=0.3)
    tg = report["target"]
    ax_c.set_title(f"{report['workload']} on a {tg['rows']}x{tg['cols']} {tg['dataflow']} array:"
                   f" {report['totals']['cycles']} cycles", fontsize=10)
    axes = [ax_c]
    if energy:
        bottom = [0.0] * n
        for part in ENERGY_PARTS:
            vals = [r["energy_pj"][part] for r in layers]
            ax_e.bar(x, vals, bottom=bottom, color=_COLORS[part], label=part)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax_e.set_yscale("log")
        positive = [min(r["energy_pj"][p] for p in ENERGY_PARTS if r["energy_pj"][p] > 0)
                    for r in layers if r["energy_pj"]["total"] > 0]
        if positive:
            ax_e.set_ylim(bottom=min(positive) * 0.5)
        ax_e.set_ylabel("energy per layer (pJ, log scale)")
        ax_e.grid(True, axis="y", which="both", alpha=0.3)
        m = report["multipliers"][0]
        ax_e.set_title(f"energy by component ({m['name']}, {m['trace']} operands): "
                       f"{report['totals']['energy_pj']['total'] / 1e3:.4g} nJ", fontsize=10)
        axes.append(ax_e)
    handles, labels = [], []
    for ax in axes:
        h, lab = ax.get_legend_handles_labels()
        handles += h
        labels += lab
    fig.legend(handles, labels, loc="outside lower center", ncols=5, fontsize=8,
               frameon=False)
    axes[-1].set_xlabel("layer (numbers listed on the right)")
    for ax in axes:
        ax.set_xlim(0.3, n + 0.7)
    freeze_layout(fig)
    # thin the layer-number ticks until neighbouring labels cannot touch
    renderer = fig.canvas.get_renderer()
    width_px = axes[-1].get_window_extent(renderer).width
    label_px = (len(str(n)) * 0.62 + 0.8) * _FONT * fig.dpi / 72
    step = max(1, math.ceil(label_px / (width_px / n)))
    ticks = [i for i in x if (i - 1) % step == 0]
    for ax in axes:
        ax.set_xticks(ticks)
        ax.tick_params(axis="x", labelsize=_FONT)
    ax_c.tick_params(axis="x", labelbottom=not energy)
    table_rows(tax, table, fontsize=_FONT)
    return fig


def plot_bytes(report: dict, fmt: str = "png") -> bytes:
    fig = figure(report)
    buf = io.BytesIO()
    meta = {"png": {"Software": None}, "svg": {"Date": None},
            "pdf": {"CreationDate": None}}.get(fmt)
    fig.savefig(buf, format=fmt, dpi=fig.dpi, metadata=meta)
    return buf.getvalue()
