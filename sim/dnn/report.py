"""Text tables and plots of an :func:`sim.dnn.evaluate.evaluate` result."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

__all__ = ["format_tables", "save_plots", "write_report", "atomic_write"]


def _num(x, fmt="{:.3g}"):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return fmt.format(x)


def format_tables(res: dict) -> str:
    layers = [l["name"] for l in res["layers"]]
    lines = [f"model {res['model']} on {res['dataset']}: {res['test_images']} test images, "
             f"{res['calibration_images']} calibration images; int8 per-channel weights, "
             f"{res['acc_width']}-bit {res['overflow']} accumulator",
             f"GEMM layers: " + ", ".join(f"{l['name']} (M={l['M']} K={l['K']} N={l['N']})"
                                          for l in res["layers"]),
             "",
             "top-1 accuracy and per-layer distortion ||E||_F of the accumulators vs int8-exact "
             "(each layer fed the int8-exact inputs)"]
    head = f"{'config':<22}{'top-1 %':>9}{'drop pp':>9}" + "".join(f"{l:>12}" for l in layers)
    lines += [head, "-" * len(head)]
    lines.append(f"{'float':<22}{100 * res['float_accuracy']:>9.2f}{'':>9}")
    lines.append(f"{'int8-exact':<22}{100 * res['int8_accuracy']:>9.2f}{0.0:>9.2f}"
                 + "".join(f"{0:>12}" for _ in layers))
    for c in res["configs"]:
        lines.append(f"{c['label'][:21]:<22}{100 * c['accuracy']:>9.2f}{c['drop_pp']:>9.2f}"
                     + "".join(f"{_num(c['layers'][l]['measured_norm']):>12}" for l in layers))
    if "spearman" not in res:
        return "\n".join(lines) + "\n"
    lines += ["", "predicted vs measured ||E||_F per layer: E||E||^2 = M N (K s^2 + K^2 mu^2); "
              "uniform = uniform operands, weighted = the layer's operand histograms; "
              "rel.err = predicted/measured - 1"]
    head = (f"{'config':<22}{'layer':<8}{'measured':>10}{'pred.unif':>11}{'rel.err':>9}"
            f"{'pred.wght':>11}{'rel.err':>9}{'bias %':>8}{'var %':>7}")
    lines += [head, "-" * len(head)]
    for c in res["configs"]:
        for l in layers:
            d = c["layers"][l]
            if "pred_uniform" not in d:
                continue
            pw = d["pred_weighted"]
            lines.append(
                f"{c['label'][:21]:<22}{l:<8}{_num(d['measured_norm']):>10}"
                f"{_num(d['pred_uniform']['norm']):>11}{_num(d['rel_err_uniform'], '{:+.2f}'):>9}"
                f"{_num(pw['norm']):>11}{_num(d['rel_err_weighted'], '{:+.2f}'):>9}"
                f"{100 * pw['bias_share']:>8.1f}{100 * pw['var_share']:>7.1f}")
    lines += ["", f"{'config':<22}{'drop pp':>9}{'pred.total.rel (weighted)':>27}"
              f"{'(uniform)':>11}{'measured':>11}"]
    for c in res["configs"]:
        lines.append(f"{c['label'][:21]:<22}{c['drop_pp']:>9.2f}"
                     f"{_num(c['pred_total_relative_weighted']):>27}"
                     f"{_num(c['pred_total_relative_uniform']):>11}"
                     f"{_num(c['measured_total_relative']):>11}")
    sp = res["spearman"]
    lines += ["", f"Spearman(predicted total distortion, accuracy drop) over {len(res['configs'])} "
              f"configs: weighted {_num(sp['weighted'], '{:.3f}')}, uniform "
              f"{_num(sp['uniform'], '{:.3f}')} (measured distortion: "
              f"{_num(sp['measured'], '{:.3f}')})"]
    return "\n".join(lines) + "\n"


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write via a temporary file in the same directory and rename (no partial files)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _figures(res: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = [l["name"] for l in res["layers"]]
    fig1, ax = plt.subplots(figsize=(6.4, 5.2))
    lo, hi = math.inf, 0.0
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for li, l in enumerate(layers):
        for variant, marker in (("weighted", "o"), ("uniform", "x")):
            pts = [(c["layers"][l]["measured_norm"], c["layers"][l][f"pred_{variant}"]["norm"])
                   for c in res["configs"] if f"pred_{variant}" in c["layers"][l]]
            pts = [(m, p) for m, p in pts if m > 0 and p > 0]
            if not pts:
                continue
            ms, ps = zip(*pts)
            lo, hi = min(lo, *ms, *ps), max(hi, *ms, *ps)
            ax.scatter(ms, ps, marker=marker, color=colors[li % len(colors)],
                       label=f"{l} ({variant})", alpha=0.8)
    if hi > 0:
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="predicted = measured")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured ||E||_F (accumulator LSB)")
    ax.set_ylabel("predicted sqrt(E||E||_F^2)")
    ax.set_title(f"{res['model']}: per-layer distortion, predicted vs measured")
    ax.legend(fontsize=7)
    fig1.tight_layout()

    fig2, ax = plt.subplots(figsize=(6.4, 5.2))
    pts = [(c["pred_total_relative_weighted"], c["drop_pp"], c["label"]) for c in res["configs"]]
    floor = min([p for p, _, _ in pts if p > 0], default=1e-12) / 10
    for p, d, label in pts:
        x = p if p > 0 else floor
        ax.scatter([x], [d], color="C0")
        ax.annotate(label, (x, d), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("predicted total relative distortion  sum_l E||E_l||^2 / ||Y_l||^2")
    ax.set_ylabel("top-1 accuracy drop vs int8-exact (pp)")
    ax.set_title(f"{res['model']}: accuracy drop vs predicted distortion "
                 f"(Spearman {_num(res['spearman']['weighted'], '{:.2f}')})")
    fig2.tight_layout()
    return fig1, fig2, plt


def save_plots(res: dict, directory: Path) -> list[Path]:
    """Write ``predicted_vs_measured.png`` and ``accuracy_vs_distortion.png`` (atomically)."""
    import io

    fig1, fig2, plt = _figures(res)
    paths = []
    for fig, name in ((fig1, "predicted_vs_measured.png"), (fig2, "accuracy_vs_distortion.png")):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=120)
        plt.close(fig)
        atomic_write(Path(directory) / name, buf.getvalue())
        paths.append(Path(directory) / name)
    return paths


def write_report(res: dict, directory: Path) -> list[Path]:
    """``results.json``, ``table.txt`` and the two plots in ``directory`` (created if needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(directory / "results.json", json.dumps(res, indent=2, default=_json_default))
    atomic_write(directory / "table.txt", format_tables(res))
    return [directory / "results.json", directory / "table.txt"] + save_plots(res, directory)


def _json_default(x):
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x)}")
