"""Outputs of an exploration: the front and all reported points as CSV and JSON, every screened
point as CSV, and the plot (accuracy drop against area / energy / carbon, front highlighted)."""

from __future__ import annotations

import csv
import io
import json

from hw.extras import require

__all__ = ["front_csv", "points_csv", "json_text", "plot_bytes", "text_summary", "FILES"]

FILES = ("front.csv", "front.json", "points.csv", "front.png")

_COLS = ["label", "front", "feasible", "baseline", "arrays", "rows", "cols", "dataflow",
         "acc_width", "accuracy", "accuracy_ci95_low", "accuracy_ci95_high", "drop_pp",
         "drop_ci95_low_pp", "drop_ci95_high_pp", "mcnemar_p", "screen_drop", "area",
         "area_mm2", "latency_us", "cycles", "energy_pj", "carbon_g", "cdp", "assignment",
         "hw_gen"]


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return " ".join(str(x) for x in v)
    if isinstance(v, dict):
        return ",".join(f"{k}={x}" for k, x in v.items())
    return v


def front_csv(result: dict) -> str:
    """One row per reported point (front and baselines), front first."""
    rows = sorted(result["reported"], key=lambda r: (not r["front"], r["F"]))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=_COLS, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        flat = dict(r)
        flat["accuracy_ci95_low"], flat["accuracy_ci95_high"] = r["accuracy_ci95"]
        flat["drop_ci95_low_pp"], flat["drop_ci95_high_pp"] = r["drop_ci95_pp"]
        flat["hw_gen"] = " ; ".join(r["hw_gen"])
        w.writerow({k: _fmt(flat.get(k, "")) for k in _COLS})
    return buf.getvalue()


def points_csv(result: dict) -> str:
    """Every screened point with its screened metrics."""
    rows = result["archive"]
    cols = ["label", "feasible", "arrays", "rows", "cols", "dataflow", "acc_width", "drop",
            "area", "area_mm2", "latency_us", "cycles", "energy_pj", "carbon_g", "cdp",
            "assignment"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: _fmt(r.get(k, "")) for k in cols})
    return buf.getvalue()


def json_text(result: dict, *, archive: bool = False) -> str:
    out = {k: v for k, v in result.items() if archive or k != "archive"}
    return json.dumps(out, indent=1, sort_keys=False) + "\n"


def plot_bytes(result: dict) -> bytes:
    """PNG: bit-exact drop (pp, 95 % interval bars) against area, energy (when computed) and
    carbon; screened points grey, baselines hollow, front red."""
    matplotlib = require("matplotlib", "the plot (or --no-plot)")
    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = result["reported"]
    axes_keys = [k for k in ("area", "energy_pj", "carbon_g") if all(k in r for r in rows)]
    labels = {"area": "area (NAND2 eq.)", "energy_pj": "energy / inference (pJ)",
              "carbon_g": "embodied carbon (g CO2e)"}
    fig = Figure(figsize=(4.2 * len(axes_keys), 3.6), dpi=110)
    FigureCanvasAgg(fig)
    for i, k in enumerate(axes_keys):
        ax = fig.add_subplot(1, len(axes_keys), i + 1)
        for group, style in ((lambda r: not r["front"] and not r["baseline"],
                              dict(color="0.6", marker="o", label="evaluated")),
                             (lambda r: r["baseline"] and not r["front"],
                              dict(color="tab:blue", marker="s", mfc="none",
                                   label="single multiplier")),
                             (lambda r: r["front"], dict(color="tab:red", marker="D",
                                                         label="Pareto front"))):
            sel = [r for r in rows if group(r)]
            if not sel:
                continue
            x = [r[k] for r in sel]
            y = [r["drop_pp"] for r in sel]
            err = [[r["drop_pp"] - r["drop_ci95_pp"][0] for r in sel],
                   [r["drop_ci95_pp"][1] - r["drop_pp"] for r in sel]]
            ax.errorbar(x, y, yerr=err, ls="none", ms=4, elinewidth=0.6, capsize=1.5, **style)
        mx = result["constraints"]["max_drop_pp"]
        if mx is not None:
            ax.axhline(mx, color="k", lw=0.6, ls="--")
        ax.set_xlabel(labels[k])
        ax.set_ylabel("accuracy drop (pp, 95 % CI)")
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7)
    fig.suptitle(f"{result['model']}: {result['algorithm']} over {result['space']['size']} "
                 f"points, {result['validation_images']} validation images", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, metadata={"Software": None})
    return buf.getvalue()


def text_summary(result: dict) -> str:
    lines = [f"{result['model']}: {result['algorithm']}, {result['screened_points']} points "
             f"screened ({result['screen']}), {len(result['reported'])} evaluated bit-exact on "
             f"{result['validation_images']} images; int8-exact accuracy "
             f"{100 * result['int8_accuracy']:.2f} %"]
    lines.append(f"{'front point':58s} {'drop pp [95% CI]':>22s} {'area':>9s} "
                 f"{'carbon g':>9s} {'lat us':>8s}")
    for r in sorted((r for r in result["reported"] if r["front"]), key=lambda r: r["F"]):
        ci = f"{r['drop_pp']:.2f} [{r['drop_ci95_pp'][0]:.2f},{r['drop_ci95_pp'][1]:.2f}]"
        lines.append(f"{r['label'][:58]:58s} {ci:>22s} {r['area']:9.0f} {r['carbon_g']:9.4f} "
                     f"{r['latency_us']:8.3f}")
    s = result["summary"]
    lines.append(f"best ({s['cost_objective']}, within the constraint): {s['best']}")
    for key in ("vs_all_exact", "vs_best_single"):
        if key in s:
            v = s[key]
            saved = ", ".join(f"{k.replace('_saved_pct', '')} {x:.1f} %"
                              for k, x in v.items() if k.endswith("_saved_pct"))
            lines.append(f"  saves against {v['against']}: {saved}")
    return "\n".join(lines) + "\n"
