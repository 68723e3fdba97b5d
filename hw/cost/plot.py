"""Error-cost Pareto plots (matplotlib, Agg backend; PNG bytes, reproducible per version)."""

from __future__ import annotations

import io

__all__ = ["pareto_front", "pareto_png"]


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


def pareto_png(rows, *, width: int) -> bytes:
    """2 x 2 panels: (MRE, |bias|) against (iCE40 LUTs, gate area); one colour per signedness,
    Pareto-optimal points ringed, labelled and joined by a step line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 10), constrained_layout=True)
    styles = {True: ("tab:blue", "o", "signed"), False: ("tab:orange", "^", "unsigned")}
    for (ekey, elabel, efn), ax_row in zip(_ERRORS, axes):
        for (ckey, clabel), ax in zip(_AXES, ax_row):
            for signed, (colour, marker, slabel) in styles.items():
                sub = [r for r in rows if r["signed"] == signed and r.get(ckey) is not None]
                if not sub:
                    continue
                pts = [(float(r[ckey]), float(efn(r))) for r in sub]
                ax.scatter([p[0] for p in pts], [p[1] for p in pts], c=colour, marker=marker,
                           s=28, alpha=0.55, label=f"{slabel}")
                front = sorted(pareto_front(pts), key=lambda i: pts[i])
                fx = [pts[i][0] for i in front]
                fy = [pts[i][1] for i in front]
                ax.step(fx, fy, where="post", color=colour, lw=1.2, alpha=0.9)
                ax.scatter(fx, fy, facecolors="none", edgecolors="black", marker="o", s=90,
                           lw=1.1, label=f"{slabel} Pareto-optimal")
                for i in front:
                    ax.annotate(sub[i]["name"], pts[i], textcoords="offset points",
                                xytext=(4, 4), fontsize=7, color=colour)
            ax.set_xlabel(clabel)
            ax.set_ylabel(elabel)
            ax.set_yscale("symlog", linthresh=0.01 if ekey == "mre" else 0.1)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(f"{width}-bit approximate multipliers: error against hardware cost "
                 f"(Pareto-optimal points ringed)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
