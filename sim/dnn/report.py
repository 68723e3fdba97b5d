"""Text tables and plots of an :func:`sim.dnn.evaluate.evaluate` result."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

from hw.extras import require
from hw.outputs import write_files
from hw.plotlabels import freeze_layout, place_labels, table_rows, wrap_label

__all__ = ["format_tables", "legend_lines", "figures", "plot_files", "save_plots",
           "report_files", "write_report", "atomic_write"]


_LABEL_MAX = 28          # wider labels go on a line of their own (never cut)


def _num(x, fmt="{:.3g}"):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return fmt.format(x)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _decimals(n: int) -> int:
    """Decimals of a percentage measured on ``n`` images: one step is ``100/n`` pp."""
    return max(1, math.ceil(math.log10(max(n, 1) / 100)))


def _pval(p) -> str:
    if p is None:
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _acc_cells(acc: dict, d: int) -> str:
    lo, hi = acc["ci95_low"], acc["ci95_high"]
    ci = f"[{100 * lo:.{d}f}, {100 * hi:.{d}f}]" if _finite(lo) and _finite(hi) else ""
    return f"{100 * acc['accuracy']:>8.{d}f}{ci:>16}"


def _drop_cells(c: dict, d: int) -> str:
    if c.get("drop_ci95_low_pp") is None:           # a result without intervals
        return f"{c['drop_pp']:>+8.{d}f} {'':>17}{'':>8}"
    mark = "*" if c.get("significant") else " "
    ci = f"[{c['drop_ci95_low_pp']:+.{d}f}, {c['drop_ci95_high_pp']:+.{d}f}]"
    return f"{c['drop_pp']:>+8.{d}f}{mark}{ci:>17}{_pval(c.get('mcnemar_p')):>8}"


def _labelled(label: str, width: int, cells: str) -> list[str]:
    """One table row: the full label, on a line of its own when wider than the column."""
    if len(label) <= width:
        return [f"{label:<{width}} {cells}"]
    return [label, f"{'':<{width}} {cells}"]


def _label_width(labels) -> int:
    return min(max([len(l) for l in labels] + [len("int8-exact")]), _LABEL_MAX)


def legend_lines(res: dict) -> list[str]:
    """What the intervals, p-values and markers of the tables mean."""
    n = res["test_images"]
    k = len(res["configs"])
    text = (f"top-1 %: 95 % CI = Wilson score interval over the {n} test images. drop pp = "
            f"int8-exact minus the configuration on the same images; its 95 % CI by Newcombe's "
            f"method 10 for paired proportions (Wilson intervals combined with the pairs' "
            f"correlation); p = exact McNemar test (two-sided binomial test on the images that "
            f"exactly one of the two classifies correctly); * = p < 0.05, the drop differs "
            f"from zero ({k} comparisons, p not adjusted for multiplicity). Interval and test "
            f"are separate methods and can disagree near the 5 % boundary; the marker follows "
            f"the test.")
    return textwrap.wrap(text, 100)


def format_tables(res: dict) -> str:
    layers = [l["name"] for l in res["layers"]]
    n = res["test_images"]
    d = _decimals(n)
    labels = [c["label"] for c in res["configs"]]
    lw = _label_width(labels)
    stats_ok = "int8" in res and "float" in res
    lines = [f"model {res['model']} on {res['dataset']}: {n} test images, "
             f"{res['calibration_images']} calibration images; int8 per-channel weights, "
             f"{res['acc_width']}-bit {res['overflow']} accumulator",
             f"GEMM layers: " + ", ".join(f"{l['name']} (M={l['M']} K={l['K']} N={l['N']})"
                                          for l in res["layers"]),
             "",
             "top-1 accuracy and per-layer distortion ||E||_F of the accumulators vs int8-exact "
             "(each layer fed the int8-exact inputs)"]
    head = (f"{'config':<{lw}} {'top-1 %':>8}{'95 % CI':>16}{'drop pp':>9}{'95 % CI (pp)':>17}"
            f"{'p':>8}" + "".join(f"{l:>11}" for l in layers))
    lines += [head, "-" * len(head)]
    fl = res.get("float") or {"accuracy": res["float_accuracy"], "ci95_low": None,
                              "ci95_high": None}
    i8 = res.get("int8") or {"accuracy": res["int8_accuracy"], "ci95_low": None,
                             "ci95_high": None}
    lines += _labelled("float", lw, _acc_cells(fl, d))
    lines += _labelled("int8-exact", lw, _acc_cells(i8, d) + f"{'(ref)':>9}{'':>17}{'':>8}"
                       + "".join(f"{0:>11}" for _ in layers))
    for c in res["configs"]:
        acc = _acc_cells(c, d) if "ci95_low" in c else f"{100 * c['accuracy']:>8.{d}f}{'':>16}"
        lines += _labelled(c["label"], lw, acc + _drop_cells(c, d) + "".join(
            f"{_num(c['layers'][l]['measured_norm']):>11}" for l in layers))
    if stats_ok:
        lines += [""] + legend_lines(res)
        if "drop_ci95_low_pp" in i8:
            lines.append(
                f"int8 quantisation vs float on the same images: drop {i8['drop_pp']:+.{d}f} pp "
                f"[{i8['drop_ci95_low_pp']:+.{d}f}, {i8['drop_ci95_high_pp']:+.{d}f}], "
                f"p = {_pval(i8['mcnemar_p'])}")
    if "spearman" not in res:
        return "\n".join(lines) + "\n"
    lines += ["", "predicted vs measured ||E||_F per layer: E||E||^2 = M N (K s^2 + K^2 mu^2); "
              "uniform = uniform operands, weighted = the layer's operand histograms; "
              "rel.err = predicted/measured - 1"]
    head = (f"{'config':<{lw}} {'layer':<8}{'measured':>10}{'pred.unif':>11}{'rel.err':>9}"
            f"{'pred.wght':>11}{'rel.err':>9}{'bias %':>8}{'var %':>7}")
    lines += [head, "-" * len(head)]
    for c in res["configs"]:
        first = True
        for l in layers:
            dl = c["layers"][l]
            if "pred_uniform" not in dl:
                continue
            pw = dl["pred_weighted"]
            cells = (f"{l:<8}{_num(dl['measured_norm']):>10}"
                     f"{_num(dl['pred_uniform']['norm']):>11}"
                     f"{_num(dl['rel_err_uniform'], '{:+.2f}'):>9}"
                     f"{_num(pw['norm']):>11}{_num(dl['rel_err_weighted'], '{:+.2f}'):>9}"
                     f"{100 * pw['bias_share']:>8.1f}{100 * pw['var_share']:>7.1f}")
            lines += _labelled(c["label"] if first else "", lw, cells)
            first = False
    head = (f"{'config':<{lw}} {'drop pp':>8}{'':1}{'95 % CI (pp)':>17}{'p':>8}"
            f"{'pred.total.rel (weighted)':>27}{'(uniform)':>11}{'measured':>11}")
    lines += ["", head, "-" * len(head)]
    for c in res["configs"]:
        lines += _labelled(c["label"], lw, _drop_cells(c, d)
                           + f"{_num(c['pred_total_relative_weighted']):>27}"
                           f"{_num(c['pred_total_relative_uniform']):>11}"
                           f"{_num(c['measured_total_relative']):>11}")
    sp = res["spearman"]
    lines += ["", f"Spearman(predicted total distortion, accuracy drop) over {len(res['configs'])} "
              f"configs: weighted {_num(sp['weighted'], '{:.3f}')}, uniform "
              f"{_num(sp['uniform'], '{:.3f}')} (measured distortion: "
              f"{_num(sp['measured'], '{:.3f}')})"]
    return "\n".join(lines) + "\n"


_TABLE_WRAP = 26         # characters of a label per line in a plot's legend table
_FONT = 7                # points, numbers and legend tables
_LINE_PT = _FONT * 1.25  # one table line


def _new_figure(w, h, dpi=120):
    matplotlib = require("matplotlib", "plots")

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _distortion_figure(res: dict):
    """Per-layer predicted vs measured ||E||_F: colour = layer, filled circle = weighted
    prediction, cross = uniform prediction; legend outside the axes."""
    from matplotlib.lines import Line2D

    layers = [l["name"] for l in res["layers"]]
    fig = _new_figure(8.2, 5.2)
    ax = fig.add_subplot()
    lo, hi = math.inf, 0.0
    colors = [f"C{i % 10}" for i in range(len(layers))]
    for li, l in enumerate(layers):
        for variant, kw in (("weighted", dict(marker="o", s=26, edgecolors="none")),
                            ("uniform", dict(marker="x", s=26, linewidths=1.0))):
            pts = [(c["layers"][l]["measured_norm"], c["layers"][l][f"pred_{variant}"]["norm"])
                   for c in res["configs"] if f"pred_{variant}" in c["layers"][l]]
            pts = [(m, p) for m, p in pts if m and p and m > 0 and p > 0]
            if not pts:
                continue
            ms, ps = zip(*pts)
            lo, hi = min(lo, *ms, *ps), max(hi, *ms, *ps)
            ax.scatter(ms, ps, color=colors[li], alpha=0.8, **kw)
    if hi > 0:
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("measured ||E||_F (accumulator LSB)")
    ax.set_ylabel("predicted sqrt(E||E||_F^2)")
    ax.set_title(f"{res['model']}: per-layer distortion, predicted vs measured")
    handles = [Line2D([], [], ls="none", marker="s", color=colors[i], label=f"layer {l}")
               for i, l in enumerate(layers)]
    handles += [Line2D([], [], ls="none", marker="o", color="0.3", mec="none",
                       label="filled circle: histogram-\nweighted prediction"),
                Line2D([], [], ls="none", marker="x", color="0.3",
                       label="cross: uniform-operand\nprediction"),
                Line2D([], [], ls="--", color="k", lw=0.8, label="predicted = measured")]
    fig.legend(handles=handles, loc="outside right upper", fontsize=_FONT, frameon=False)
    return fig


def _drop_rows(res: dict) -> list[list[str]]:
    """The legend table of the accuracy plot: number, full label (wrapped), drop and its CI."""
    d = _decimals(res["test_images"])
    rows = [[f"{'#':>2} {'configuration':<{_TABLE_WRAP}} drop pp [95 % CI]"]]
    for i, c in enumerate(res["configs"], 1):
        parts = wrap_label(c["label"], _TABLE_WRAP)
        lo, hi = c.get("drop_ci95_low_pp"), c.get("drop_ci95_high_pp")
        mark = "*" if c.get("significant") else " "
        ci = f" [{lo:+.{d}f}, {hi:+.{d}f}]" if _finite(lo) and _finite(hi) else ""
        zero = "" if c.get("pred_total_relative_weighted", 1) else " (0)"
        lines = [f"{i:>2} {parts[0]:<{_TABLE_WRAP}} {c['drop_pp']:+6.{d}f}{mark}{ci}{zero}"]
        lines += [f"   {p}" for p in parts[1:]]
        rows.append(lines)
    if any(not c.get("pred_total_relative_weighted", 1) for c in res["configs"]):
        rows.append(["(0): predicted distortion 0, drawn at the left edge"])
    rows.append(["* McNemar p < 0.05; CI: Newcombe method 10 (paired)"])
    return rows


def _accuracy_figure(res: dict):
    """Accuracy drop (with its 95 % interval) against the predicted total relative distortion;
    points numbered, the numbers listed with the full labels in a table beside the axes."""
    from matplotlib.lines import Line2D

    import matplotlib.ticker

    rows = _drop_rows(res)
    n_lines = sum(len(r) for r in rows) + 1
    height = max(5.2, 1.6 + n_lines * _LINE_PT * 1.2 / 72)
    table_w = max(len(line) for r in rows for line in r) * 0.62 * _FONT / 72 + 0.3
    fig = _new_figure(6.4 + table_w, height)
    gs = fig.add_gridspec(1, 2, width_ratios=[6.2, table_w])
    ax = fig.add_subplot(gs[0])
    tax = fig.add_subplot(gs[1])
    tax.set_axis_off()
    cfgs = res["configs"]
    xs = [c.get("pred_total_relative_weighted", c.get("measured_total_relative")) or 0.0
          for c in cfgs]
    floor = min([x for x in xs if x > 0], default=1e-12) / 10
    xs = [x if x > 0 else floor for x in xs]
    ys = [c["drop_pp"] for c in cfgs]
    sig = [bool(c.get("significant")) for c in cfgs]
    if all("drop_ci95_low_pp" in c and c["drop_ci95_low_pp"] is not None for c in cfgs):
        err = [[y - c["drop_ci95_low_pp"] for y, c in zip(ys, cfgs)],
               [c["drop_ci95_high_pp"] - y for y, c in zip(ys, cfgs)]]
        ax.errorbar(xs, ys, yerr=err, fmt="none", ecolor="0.55", elinewidth=0.8, capsize=2)
    for flag, face in ((True, "C0"), (False, "white")):
        px = [x for x, s in zip(xs, sig) if s == flag]
        py = [y for y, s in zip(ys, sig) if s == flag]
        if px:
            ax.scatter(px, py, s=30, marker="o", facecolors=face, edgecolors="C0",
                       linewidths=1.2, zorder=3)
    ax.axhline(0.0, color="k", lw=0.6, zorder=1)
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=2.0, linscale=1.0)
    ax.set_xlabel("predicted total relative distortion  sum_l E||E_l||^2 / ||Y_l||^2")
    ax.set_ylabel("top-1 accuracy drop vs int8-exact (pp, symlog)")
    ax.set_title(f"{res['model']}: accuracy drop vs predicted distortion "
                 f"(Spearman {_num(res.get('spearman', {}).get('weighted'), '{:.2f}')})",
                 fontsize=10)
    ax.margins(x=0.08, y=0.08)
    lo, hi = ax.get_ylim()
    ticks = [t for t in (-100, -50, -20, -10, -5, -2, -1, 0, 1, 2, 5, 10, 20, 50, 100)
             if lo <= t <= hi]
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    handles = [Line2D([], [], ls="none", marker="o", mfc="C0", mec="C0",
                      label="filled: drop differs from 0 (McNemar p < 0.05)"),
               Line2D([], [], ls="none", marker="o", mfc="white", mec="C0",
                      label="open: not significant"),
               Line2D([], [], color="0.55", lw=0.8,
                      label="bar: 95 % CI of the drop (Newcombe, paired)")]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=_FONT,
               frameon=False)
    freeze_layout(fig)
    table_rows(tax, rows, fontsize=_FONT)
    place_labels(ax, list(zip(xs, ys)), [str(i) for i in range(1, len(cfgs) + 1)],
                 fontsize=_FONT)
    return fig


def figures(res: dict):
    """The two report figures, ``(predicted_vs_measured, accuracy_vs_distortion)``
    (matplotlib ``Figure`` objects on an Agg canvas, 120 dpi)."""
    return _distortion_figure(res), _accuracy_figure(res)


def _png(fig, dpi=120) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def plot_files(res: dict) -> dict[str, bytes]:
    """``{"predicted_vs_measured.png": ..., "accuracy_vs_distortion.png": ...}`` (PNG bytes)."""
    fig1, fig2 = figures(res)
    return {"predicted_vs_measured.png": _png(fig1), "accuracy_vs_distortion.png": _png(fig2)}


def save_plots(res: dict, directory: Path, *, force: bool = False) -> list[Path]:
    """Write ``predicted_vs_measured.png`` and ``accuracy_vs_distortion.png`` (atomically,
    under the rules of :mod:`hw.outputs`)."""
    return write_files({Path(directory) / name: data for name, data in plot_files(res).items()},
                       force=force)


def report_files(res: dict) -> dict[str, bytes]:
    """Every report file as bytes: ``results.json``, ``table.txt`` and the two plots."""
    files = {"results.json": json.dumps(res, indent=2, default=_json_default).encode(),
             "table.txt": format_tables(res).encode()}
    files.update(plot_files(res))
    return files


def report_names() -> list[str]:
    """The files :func:`write_report` writes."""
    return ["results.json", "table.txt", "predicted_vs_measured.png", "accuracy_vs_distortion.png"]


def write_report(res: dict, directory: Path, *, force: bool = False) -> list[Path]:
    """``results.json``, ``table.txt`` and the two plots in ``directory`` (created if needed);
    everything is rendered before the first file is written, and the files are written all
    or nothing under the rules of :mod:`hw.outputs`."""
    directory = Path(directory)
    files = report_files(res)
    return write_files({directory / name: data for name, data in files.items()}, force=force)


def _json_default(x):
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x)}")
