"""Plots of the toolkit are legible: after drawing, no two text artists intersect, no point label
covers a marker, nothing is drawn outside the figure, every label is shown in full, and signed /
unsigned multipliers differ in marker shape and fill. Checked on crowded synthetic data (many
coincident points, long imported-multiplier names)."""

import numpy as np
from matplotlib.collections import PathCollection
from matplotlib.text import Text

from hw.cost.plot import pareto_figure
from hw.plotlabels import wrap_label
from sim.dnn.report import figures

TOL = 0.5          # pixels


def _extent(t, renderer):
    return Text.get_window_extent(t, renderer)       # the text alone (no annotation arrow)


def drawn_texts(fig):
    """Every non-empty text artist the figure draws, with its display-space box."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    texts = list(fig.texts)
    if getattr(fig, "_suptitle", None) is not None:
        texts.append(fig._suptitle)
    for leg in fig.legends:
        texts += leg.get_texts()
    for ax in fig.axes:
        texts += list(ax.texts) + [ax.title, ax._left_title, ax._right_title]
        if ax.get_legend() is not None:
            texts += ax.get_legend().get_texts()
        if not ax.axison:                                # axis off: no ticks, no axis labels
            continue
        texts += [ax.xaxis.label, ax.yaxis.label]
        box = ax.get_window_extent(r)
        for t in ax.get_xticklabels(which="both"):      # only ticks within the view are drawn
            e = _extent(t, r)
            if box.x0 - 1 <= (e.x0 + e.x1) / 2 <= box.x1 + 1:
                texts.append(t)
        for t in ax.get_yticklabels(which="both"):
            e = _extent(t, r)
            if box.y0 - 1 <= (e.y0 + e.y1) / 2 <= box.y1 + 1:
                texts.append(t)
    out, seen = [], set()
    for t in texts:
        if id(t) in seen:
            continue
        seen.add(id(t))
        if t.get_visible() and t.get_text().strip() and (t.axes is None or t.axes.get_visible()):
            out.append((t, _extent(t, r)))
    return out


def intersect(a, b):
    return (a.x0 < b.x1 - TOL and b.x0 < a.x1 - TOL and a.y0 < b.y1 - TOL
            and b.y0 < a.y1 - TOL)


def assert_legible(fig):
    texts = drawn_texts(fig)
    assert len(texts) > 10
    page = fig.bbox
    for t, e in texts:
        assert (e.x0 >= page.x0 - 1 and e.y0 >= page.y0 - 1 and e.x1 <= page.x1 + 1
                and e.y1 <= page.y1 + 1), f"{t.get_text()!r} leaves the figure"
    for i, (t1, e1) in enumerate(texts):
        for t2, e2 in texts[i + 1:]:
            assert not intersect(e1, e2), f"{t1.get_text()!r} overlaps {t2.get_text()!r}"
    for ax in fig.axes:                                  # point labels leave markers visible
        centres = np.concatenate(
            [c.get_offset_transform().transform(np.asarray(c.get_offsets(), float))
             for c in ax.collections if isinstance(c, PathCollection)] or [np.zeros((0, 2))])
        for t, e in texts:
            if t.axes is ax and t in ax.texts and t.get_text().strip().isdigit():
                inside = ((centres[:, 0] > e.x0) & (centres[:, 0] < e.x1)
                          & (centres[:, 1] > e.y0) & (centres[:, 1] < e.y1))
                assert not inside.any(), f"label {t.get_text()} covers a marker"
    return texts


def table_text(texts):
    """The legend tables' rows, a wrapped name joined back together: "NUMBER NAME-START ..."
    then continuation lines indented by 3 spaces (names here have no spaces)."""
    out = []
    for t, _ in texts:
        lines = t.get_text().split("\n")
        if len(lines) > 1 and all(l.startswith("   ") for l in lines[1:]):
            num, start, *rest = lines[0].split()
            out.append(" ".join([num, start + "".join(l[3:] for l in lines[1:])] + rest))
        else:
            out.append(t.get_text())
    return "\n".join(out)


LONG = ["verilog:/home/researcher/libs/evoapprox/multiplers/8x8_signed/mul8s_1KV6.v:mul8s_1KV6",
        "verilog:/home/researcher/libs/evoapprox/multiplers/8x8_signed/mul8s_1KV8.v:mul8s_1KV8",
        "table:/data/products/approximate_8bit_signed_products_v2.npy",
        "conv1=drum4,conv2=drum4,conv3=exact,fc=exact", "conv1=drum4,conv2=drum6,*=exact"]


def fake_result(labels, xs, ys):
    """An evaluate()-shaped result with the given labels, predicted distortion and drops."""
    layers = ["conv1", "fc"]
    rng = np.random.default_rng(0)
    configs = []
    for label, x, y in zip(labels, xs, ys):
        lay = {}
        for l in layers:
            m = float(rng.uniform(1e4, 1e6))
            lay[l] = {"measured_norm": m, "relative": x / 2,
                      "pred_uniform": {"norm": m * 1.3, "bias_share": 0.5, "var_share": 0.5},
                      "pred_weighted": {"norm": m * 0.9, "bias_share": 0.5, "var_share": 0.5},
                      "rel_err_uniform": 0.3, "rel_err_weighted": -0.1}
        configs.append({"label": label, "accuracy": 0.98 - y / 100, "drop_pp": y,
                        "ci95_low": 0.96, "ci95_high": 0.99, "correct": 500, "n": 540,
                        "drop_ci95_low_pp": y - 1.2, "drop_ci95_high_pp": y + 1.3,
                        "mcnemar_p": 0.01 if abs(y) > 1.5 else 0.6,
                        "significant": abs(y) > 1.5, "only_ref_correct": 3,
                        "only_this_correct": 1, "layers": lay,
                        "pred_total_relative_weighted": x, "pred_total_relative_uniform": x,
                        "measured_total_relative": x})
    return {"model": "digits-cnn", "dataset": "digits", "test_images": 540,
            "calibration_images": 180, "acc_width": 32, "overflow": "wrap",
            "float_accuracy": 0.987, "int8_accuracy": 0.983,
            "layers": [{"name": l, "M": 10, "K": 9, "N": 8} for l in layers],
            "configs": configs, "spearman": {"weighted": 0.9, "uniform": 0.8, "measured": 0.9}}


def test_wrap_label_keeps_every_character():
    for label in LONG + ["x" * 80, "a", "fc1=exact,fc2=drum4,*=mitchell"]:
        for width in (5, 12, 26):
            lines = wrap_label(label, width)
            assert "".join(lines) == label
            assert all(0 < len(l) <= width for l in lines)
    assert wrap_label("conv1=drum4,conv2=drum6,*=exact", 16) == ["conv1=drum4,", "conv2=drum6,*=",
                                                                 "exact"]


def test_dnn_accuracy_plot_is_legible_when_crowded():
    names = ["truncated4", "truncated6", "drum4", "drum6", "etm2", "mitchell", "roba",
             "kulkarni", "bam2_6", "bam2_8", "perforated1", "etm4"]
    labels = names + LONG
    xs = [0.02] * 8 + [30.0, 31.0, 3.0, 0.3] + [0.021, 0.021, 0.0, 0.02, 0.5]
    ys = [0.0] * 6 + [-0.4, 0.4, 88.5, 88.5, 70.4, 15.2, 0.0, 0.2, 0.0, 1.9, 2.0]
    res = fake_result(labels, xs, ys)
    fig1, fig2 = figures(res)
    assert_legible(fig1)
    texts = assert_legible(fig2)
    table = table_text(texts)
    for label in labels:                                 # every label in full
        assert label in table, label
    numbers = sorted(int(t.get_text()) for t, _ in texts if t.get_text().isdigit()
                     and t in fig2.axes[0].texts)
    assert numbers == list(range(1, len(labels) + 1))


def test_cost_pareto_plot_is_legible_and_marks_signedness():
    rng = np.random.default_rng(3)
    rows = []
    for i in range(70):
        signed = bool(i % 2)
        lut = float(rng.integers(40, 220))
        rows.append({"name": (LONG[i % 2].rsplit(":", 1)[0] + f"_{i}") if i % 9 == 0
                     else f"mult{i}", "signed": signed, "ice40_lut4": lut,
                     "gate_area": lut * 3 + float(rng.normal(0, 5)),
                     "mre": float(10 ** rng.uniform(-4, 0)) / (lut / 40) ** 2,
                     "me": float(rng.normal(0, 50))})
    twin = {"signed": True, "ice40_lut4": 30.0, "gate_area": 85.0, "mre": 1.0, "me": 900.0}
    rows += [dict(twin, name="twin_a"), dict(twin, name="twin_b")]   # coincident, optimal
    fig = pareto_figure(rows, width=8)
    texts = assert_legible(fig)
    placed = {t.get_text() for t, _ in texts if t.get_text().isdigit()
              and t.axes is not None and t.axes.axison and t in t.axes.texts}
    listed = {}
    for line in table_text(texts).splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].isdigit():
            listed[parts[0]] = (parts[1], parts[2])
    assert placed and set(listed) == placed
    signedness = {(r["name"], "signed" if r["signed"] else "unsigned") for r in rows}
    assert set(listed.values()) <= signedness            # full names, right signedness
    assert {("twin_a", "signed"), ("twin_b", "signed")} <= set(listed.values())
    assert any(len(name) > 40 for name, _ in listed.values())     # a long name, in full
    # signed: filled circles; unsigned: open triangles - shape and fill both differ
    ax = fig.axes[0]
    data = [c for c in ax.collections if isinstance(c, PathCollection)
            and len(c.get_edgecolor()) and tuple(c.get_edgecolor()[0][:3]) != (0.0, 0.0, 0.0)]
    assert len(data) == 2
    signed, unsigned = data
    sv, uv = signed.get_paths()[0].vertices, unsigned.get_paths()[0].vertices
    assert sv.shape != uv.shape or not np.allclose(sv, uv)           # different shapes
    assert signed.get_facecolor()[0][3] > 0
    assert len(unsigned.get_facecolor()) == 0 or unsigned.get_facecolor()[0][3] == 0
    legend = " ".join(t.get_text() for leg in fig.legends for t in leg.get_texts())
    assert "signed: filled circles" in legend and "unsigned: open triangles" in legend
