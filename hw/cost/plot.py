"""Error-cost Pareto plots (matplotlib, Agg backend; PNG bytes, reproducible per version)."""

from __future__ import annotations

import io

from hw.extras import require

__all__ = ["pareto_front", "pareto_figure", "pareto_png"]


def pareto_front(points) -> list[int]:
    """Indices of the Pareto-optimal ``(cost, error)`` points (both minimised).

    A point is optimal when no other point is at most as costly and at most as wrong while
    being strictly better in one of the two. Ties (identical points) are all optimal.
    """
    pts = list(points)
    front = []
    for i, (c, e) in enumerate(pts):
        dominated = any((c2 <= c and e2 <= e) and (c2 < c or e2 < e)
                        for j, (c2, e2) in enumerate(pts) if j != i)
        if not dominated:
            front.append(i)
    return front


_AXES = (("ice40_lut4", "iCE40 LUT4 (synth_ice40)"),
         ("gate_area", "gate-level area (NAND2 equivalents)"))
_ERRORS = (("mre", "MRE (%)", lambda r: 100 * r["mre"]),
           ("me", "|bias| = |ME| (LSB)", lambda r: abs(r["me"])))
#: signed -> (colour, marker, face colour, text colour, legend text)
_STYLES = {True: ("tab:blue", "o", "tab:blue", "#1f5f99", "signed: filled circles"),
           False: ("tab:orange", "^", "none", "#a85200", "unsigned: open triangles")}
_FONT = 7
_WRAP = 22


def _front_numbers(rows) -> dict:
    """``(name, signed) -> number`` for every point that is Pareto-optimal in some panel
    (signed first, then unsigned, each by name), so one multiplier has one number."""
    keys = set()
    for ekey, _, efn in _ERRORS:
        for ckey, _ in _AXES:
            for signed in (True, False):
                sub = [r for r in rows if r["signed"] == signed and r.get(ckey) is not None]
                pts = [(float(r[ckey]), float(efn(r))) for r in sub]
                keys.update((sub[i]["name"], signed) for i in pareto_front(pts))
    order = sorted(keys, key=lambda k: (not k[1], k[0]))
    return {k: i for i, k in enumerate(order, 1)}


def pareto_png(rows, *, width: int) -> bytes:
    """:func:`pareto_figure` as PNG bytes (110 dpi)."""
    fig = pareto_figure(rows, width=width)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, metadata={"Software": None})
    return buf.getvalue()


def pareto_figure(rows, *, width: int):
    """A matplotlib ``Figure`` (Agg canvas, 110 dpi) of 2 x 2 panels: (MRE, |bias|) against
    (iCE40 LUTs, gate area). Signed multipliers are filled circles, unsigned ones open triangles
    (shape and fill differ; the legend says so); Pareto-optimal points are ringed, joined by a
    step line per signedness and numbered, the numbers listed with the full names in a table
    beside the panels (labels never overlap: :func:`hw.plotlabels.place_labels`)."""
    matplotlib = require("matplotlib", "the Pareto plot (or --no-plot)")
    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from hw.plotlabels import freeze_layout, place_labels, table_rows, wrap_label

    numbers = _front_numbers(rows)
    table = [[f"{'#':>2} {'multiplier':<{_WRAP}} signedness"]]
    table_colors = ["black"]
    for (name, signed), num in numbers.items():
        parts = wrap_label(name, _WRAP)
        table.append([f"{num:>2} {parts[0]:<{_WRAP}} {'signed' if signed else 'unsigned'}"]
                     + [f"   {p}" for p in parts[1:]])
        table_colors.append(_STYLES[signed][3])
    n_lines = sum(len(r) for r in table)
    height = max(10.0, 1.5 + n_lines * _FONT * 1.25 * 1.2 / 72)
    fig = Figure(figsize=(16, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(2, 3, width_ratios=[1, 1, 0.42])
    axes = [[fig.add_subplot(gs[r, c]) for c in range(2)] for r in range(2)]
    tax = fig.add_subplot(gs[:, 2])
    tax.set_axis_off()
    panels = []
    for (ekey, elabel, efn), ax_row in zip(_ERRORS, axes):
        for (ckey, clabel), ax in zip(_AXES, ax_row):
            labelled = []
            for signed, (colour, marker, face, tcolour, _) in _STYLES.items():
                sub = [r for r in rows if r["signed"] == signed and r.get(ckey) is not None]
                if not sub:
                    continue
                pts = [(float(r[ckey]), float(efn(r))) for r in sub]
                ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=marker, s=30,
                           facecolors=face, edgecolors=colour, linewidths=1.1, alpha=0.75)
                front = sorted(pareto_front(pts), key=lambda i: pts[i])
                fx = [pts[i][0] for i in front]
                fy = [pts[i][1] for i in front]
                ax.step(fx, fy, where="post", color=colour, lw=1.2, alpha=0.9)
                ax.scatter(fx, fy, facecolors="none", edgecolors="black", marker="o", s=100,
                           lw=1.0)
                labelled += [(pts[i], str(numbers[(sub[i]["name"], signed)]), tcolour)
                             for i in front]
            ax.set_xlabel(clabel)
            ax.set_ylabel(elabel)
            ax.set_yscale("symlog", linthresh=0.01 if ekey == "mre" else 0.1)
            ax.grid(True, which="both", alpha=0.3)
            ax.margins(0.06)
            panels.append((ax, labelled))
    handles = [Line2D([], [], ls="none", marker=m, mfc=f if f != "none" else "white", mec=c,
                      mew=1.1, label=t) for c, m, f, _, t in _STYLES.values()]
    handles += [Line2D([], [], ls="none", marker="o", mfc="none", mec="black", ms=10,
                       label="Pareto-optimal: black ring, numbered (names in the table)"),
                Line2D([], [], color="0.3", lw=1.2, label="Pareto front (one per signedness)")]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8,
               frameon=False)
    fig.suptitle(f"{width}-bit approximate multipliers: error against hardware cost "
                 f"(Pareto-optimal points ringed and numbered)")
    freeze_layout(fig)
    table_rows(tax, table, fontsize=_FONT, colors=table_colors)
    for ax, labelled in panels:
        if labelled:
            place_labels(ax, [p for p, _, _ in labelled], [t for _, t, _ in labelled],
                         colors=[c for _, _, c in labelled], fontsize=_FONT)
    return fig
