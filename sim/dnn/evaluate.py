"""Accuracy and per-layer distortion of a network on the emulated accelerator, and the
analytical predictor's view of the same layers.

For every configuration (one multiplier for all layers, or a per-layer assignment):

* **top-1 accuracy** of the full int8 inference with that multiplier and its 95 % Wilson score
  interval, and its drop against int8-exact (percentage points) with a 95 % interval
  (Newcombe's method 10 for paired proportions) and the exact McNemar p-value: both networks see
  the same images, so the comparison is paired (:mod:`sim.dnn.stats`);
* **measured distortion per GEMM layer**: ``||E||_F`` of the layer's accumulator error against
  int8-exact when the layer gets the int8-exact network's inputs (``local``: the quantity the
  predictor models), and ``||E||_F`` with the errors of earlier layers propagated
  (``propagated``), both over the whole test set;
* with ``predict``: ``E||E||_F^2 = M N (K s^2 + K^2 mu^2)`` per layer from uniform and from
  histogram-weighted error moments (:mod:`sim.dnn.predictor`), the relative error of the predicted
  norm against the measured one, and the total *relative* distortion (sum over layers of
  ``E||E||^2 / ||Y||^2``), whose Spearman rank correlation with the accuracy drop is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hw.mult import MultiplierError, MultiplierSpec, parse
from sim.golden import ArrayModel

from .data import Dataset
from .errors import DnnError
from .layers import Graph, run_float
from .predictor import histogram, predict_gemm, spearman
from .predictor import predict as predict_moments
from . import stats
from .quant import QuantizedModel, layer_gemm, resolve_assignment, target_signed

__all__ = ["Config", "parse_config", "evaluate", "DEFAULT_MULTS", "activation_histograms",
           "corrected_targets"]

#: Default configurations of ``python -m sim.dnn`` (a spread from harmless to destructive).
DEFAULT_MULTS = ("truncated4", "truncated6", "truncated6c", "truncated8", "truncated9c",
                 "bam2_6", "bam2_8", "perforated1", "perforated2", "drum3", "drum4", "drum6",
                 "mitchell", "kulkarni", "roba", "etm2", "etm3", "etm4")


@dataclass(frozen=True)
class Config:
    """A named multiplier assignment (see :func:`sim.dnn.quant.resolve_assignment`)."""

    label: str
    assign: object


def parse_config(text: str) -> Config:
    """``NAME`` (every layer) or ``LAYER=NAME,...[,*=NAME]`` (mixed; unlisted layers exact)."""
    text = text.strip()
    if "=" not in text:
        parse(text)                                  # MultiplierError on unknown names
        return Config(text, text)
    assign = {}
    for part in text.split(","):
        layer, sep, name = part.partition("=")
        if not sep or not layer.strip() or not name.strip():
            raise DnnError(f"malformed assignment {part!r} in {text!r}; expected LAYER=MULT")
        parse(name.strip())
        assign[layer.strip()] = name.strip()
    return Config(text, assign)


def _target_spec(target):
    if isinstance(target, MultiplierSpec):
        return target
    if isinstance(target, ArrayModel) and target.is_uniform:
        return target.grid[0][0]
    return None


def _gemm(a, b, target, acc_width, overflow):
    return layer_gemm(a, b, target, None, acc_width, overflow)


def _dims(a, b) -> tuple[int, int, int]:
    """``(M, K, N)`` of a layer's GEMM (grouped: ``K`` per group, ``N`` in all)."""
    if np.ndim(a) == 3:
        return a.shape[1], b.shape[1], b.shape[0] * b.shape[2]
    return a.shape[0], b.shape[0], b.shape[1]


def _target_label(t) -> str:
    if isinstance(t, MultiplierSpec):
        return t.name
    if isinstance(t, ArrayModel) and t.is_uniform:
        corr = "" if t.correction is None else f", correction={t.correction.mode}"
        return (f"{t.grid[0][0].name} on a {t.rows}x{t.cols} {t.dataflow} array"
                f"{corr}")
    return repr(t)


def activation_histograms(qm: QuantizedModel, x_cal, *, signed: bool = True,
                          acc_width: int = 32, overflow: str = "wrap") -> dict:
    """``{GEMM layer: counts of each activation operand value}`` of the int8-exact network over
    the calibration images ``x_cal`` (the distribution the correction constants are fitted to)."""
    _, rec = qm.run(x_cal, None, acc_width=acc_width, overflow=overflow, capture=True,
                    signed=signed)
    lo, hi = parse("exact", signed=signed).operand_range
    return {layer: np.bincount((np.asarray(r["a"]) - lo).ravel(), minlength=hi - lo + 1)
            for layer, r in rec.items()}


def corrected_targets(targets: dict, mode: str, hists: dict, *, rows: int = 16,
                      acc_width: int = 32, overflow: str = "wrap") -> dict:
    """``targets`` (``{layer: spec or ArrayModel}``) with output correction ``mode`` (``none``,
    ``bias``, ``cv``; :mod:`sim.correction`): every approximate layer becomes a ``rows``-deep
    ws :class:`~sim.golden.ArrayModel` (an ArrayModel keeps its shape) with the mode's
    :func:`sim.correction.default_format`, fitted to the layer's activation histogram
    ``hists[layer]`` (:func:`activation_histograms`); exact layers stay as they are. Raises
    :class:`sim.correction.CorrectionError` where the correction is undefined."""
    from dataclasses import replace

    from sim.correction import MODES, CorrectionError, default_format

    if mode not in MODES:
        raise DnnError(f"unknown correction {mode!r}; choose none, bias or cv")
    if mode == "none":
        return dict(targets)
    new = {}
    for layer, t in targets.items():
        spec = t if isinstance(t, MultiplierSpec) else None
        if spec is not None and spec.name == "exact":
            new[layer] = t
            continue
        if spec is not None:
            t = ArrayModel(rows, rows, tuple((spec,) * rows for _ in range(rows)),
                           acc_width=acc_width, overflow=overflow)
        try:
            fmt = default_format(mode, t.distinct_specs(), rows=t.rows, dataflow=t.dataflow,
                                 acc_width=t.acc_width, dist=hists[layer])
        except CorrectionError as exc:
            raise CorrectionError(f"layer {layer}: {exc}") from None
        new[layer] = replace(t, correction=fmt)
    return new


def _with_corrections(qm, x_cal, resolved, corrections, signed, acc_width, overflow, rows):
    """Every configuration once per correction mode (:func:`corrected_targets`)."""
    from sim.correction import MODES, CorrectionError

    for mode in corrections:
        if mode not in MODES:
            raise DnnError(f"unknown correction {mode!r}; choose none, bias or cv")
    hists = activation_histograms(qm, x_cal, signed=signed, acc_width=acc_width,
                                  overflow=overflow)
    out, modes = [], []
    for cfg, targets in resolved:
        for mode in corrections:
            if mode == "none":
                out.append((cfg, targets))
                modes.append(mode)
                continue
            try:
                new = corrected_targets(targets, mode, hists, rows=rows, acc_width=acc_width,
                                        overflow=overflow)
            except CorrectionError as exc:
                raise DnnError(f"configuration {cfg.label!r}, {exc}") from None
            out.append((Config(f"{cfg.label}+{mode}", new), new))
            modes.append(mode)
    return out, modes


def _drop_keys(cmp: dict) -> dict:
    return {k: v for k, v in cmp.items() if k != "drop_pp"}


def _uncertainty(k: int, n: int, ref_ok, this_ok) -> dict:
    """The interval keys of one configuration's entry (``accuracy``/``drop_pp`` stay as before)."""
    acc = stats.accuracy_stats(k, n)
    return {"correct": acc["correct"], "n": acc["n"], "ci95_low": acc["ci95_low"],
            "ci95_high": acc["ci95_high"], **_drop_keys(stats.compare_paired(ref_ok, this_ok))}


def evaluate(graph: Graph, data: Dataset, configs, *, acc_width: int = 32,
             overflow: str = "wrap", predict: bool = False, batch: int = 2048,
             progress: bool = False, signed: bool = True, activations=None,
             quantized: QuantizedModel | None = None, corrections=("none",),
             correction_rows: int = 16) -> dict:
    """Run the experiment (module docstring); returns a JSON-ready dict.

    ``signed``: signedness of the multipliers (names are parsed so; every configuration must
    use multipliers of that signedness). ``activations``: per-layer activation quantisation
    (:func:`sim.dnn.quant.activation_modes`). ``quantized``: a ready :class:`QuantizedModel`
    of ``graph`` (e.g. with the scales a retrained network was trained with) instead of
    calibrating on ``data.x_calib``. ``corrections``: each configuration is evaluated once
    per mode (``none``, ``bias``, ``cv``; labels ``NAME+bias`` ...): approximate layers then
    run on a ``correction_rows``-deep weight-stationary array with that correction, its
    constants fitted to the layer's calibration activation histogram
    (:func:`_corrected_targets`, :mod:`sim.correction`)."""
    configs = [c if isinstance(c, Config) else parse_config(c) for c in configs]
    try:
        resolved = [(c, resolve_assignment(graph, c.assign, signed)) for c in configs]
    except MultiplierError as exc:
        raise DnnError(str(exc)) from None
    for cfg, targets in resolved:
        for layer, target in targets.items():
            if target_signed(target) != signed:
                raise DnnError(f"configuration {cfg.label!r}: layer {layer} has a "
                               f"{'signed' if not signed else 'unsigned'} multiplier; one "
                               f"evaluation uses {'signed' if signed else 'unsigned'} "
                               "multipliers only")
    if data.image_shape != tuple(graph.input_shape) and int(np.prod(data.image_shape)) != int(
            np.prod(graph.input_shape)):
        raise DnnError(f"model {graph.name} expects inputs of shape {tuple(graph.input_shape)}, "
                       f"dataset {data.name} has {data.image_shape}")
    x_test = data.x_test.reshape((-1,) + tuple(graph.input_shape))
    x_cal = data.x_calib.reshape((-1,) + tuple(graph.input_shape))
    y_test = data.y_test
    qm = quantized if quantized is not None else QuantizedModel(graph, x_cal,
                                                                 activations=activations)
    modes = ["none"] * len(resolved)
    if tuple(corrections) != ("none",):
        resolved, modes = _with_corrections(qm, x_cal, resolved, corrections, signed, acc_width,
                                            overflow, correction_rows)
        configs = [c for c, _ in resolved]
    float_ok = run_float(graph, x_test).argmax(axis=1) == y_test
    float_acc = float(float_ok.mean())
    layers = [n.name for n in graph.gemm_nodes()]
    exact = parse("exact", signed=signed)
    op_lo = exact.operand_range[0]
    op_count = exact.operand_range[1] - op_lo + 1

    rows = {l: 0 for l in layers}
    kdim, ndim = {}, {}
    signal = {l: 0.0 for l in layers}
    hist_a = {l: None for l in layers}
    hist_b = {}
    correct_exact = 0
    correct = [0] * len(configs)
    ok_exact = []                                   # per-image correctness, batch by batch
    ok = [[] for _ in configs]
    local = [{l: 0.0 for l in layers} for _ in configs]
    propagated = [{l: 0.0 for l in layers} for _ in configs]

    starts = range(0, len(x_test), batch)
    bar = None
    if progress:
        from hw.cli import progress as progress_bar
        bar = progress_bar(total=len(starts) * (1 + len(configs)), desc=f"{graph.name}",
                           unit="run")
    for s in starts:
        xb, yb = x_test[s:s + batch], y_test[s:s + batch]
        logits, rec = qm.run(xb, None, acc_width=acc_width, overflow=overflow, capture=True,
                             signed=signed)
        hit = logits.argmax(axis=1) == yb
        ok_exact.append(hit)
        correct_exact += int(hit.sum())
        exact_y = {}
        for l in layers:
            a, b = rec[l]["a"], rec[l]["b"]
            y = _gemm(a, b, exact, acc_width, overflow)
            exact_y[l] = y
            mm, kdim[l], ndim[l] = _dims(a, b)
            rows[l] += mm
            signal[l] += float((y.astype(np.float64) ** 2).sum())
            counts = np.bincount((a - op_lo).ravel(), minlength=op_count)
            hist_a[l] = counts if hist_a[l] is None else hist_a[l] + counts
            hist_b[l] = b
        if bar is not None:
            bar.update()
        for i, (cfg, targets) in enumerate(resolved):
            lg, rc = qm.run(xb, targets, acc_width=acc_width, overflow=overflow,
                            capture=True, signed=signed)
            hit = lg.argmax(axis=1) == yb
            ok[i].append(hit)
            correct[i] += int(hit.sum())
            for l in layers:
                err = _gemm(rec[l]["a"], rec[l]["b"], targets[l], acc_width, overflow) - exact_y[l]
                local[i][l] += float((err.astype(np.float64) ** 2).sum())
                perr = rc[l]["acc"] - rec[l]["acc"]
                propagated[i][l] += float((perr.astype(np.float64) ** 2).sum())
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()

    n_test = len(x_test)
    int8_acc = correct_exact / n_test
    ok_exact = np.concatenate(ok_exact)
    out = {
        "model": graph.name, "dataset": data.name, "test_images": n_test,
        "calibration_images": len(x_cal), "acc_width": acc_width, "overflow": overflow,
        "multipliers": "signed" if signed else "unsigned",
        "activations": {l.name: qm.modes[l.inputs[0]] for l in graph.gemm_nodes()},
        "float_accuracy": float_acc, "int8_accuracy": int8_acc,
        "statistics": {"confidence": stats.CONFIDENCE, "alpha": stats.ALPHA,
                       "accuracy_interval": stats.ACCURACY_METHOD,
                       "drop_interval": stats.DROP_METHOD, "drop_test": stats.TEST_METHOD,
                       "reference": "int8-exact"},
        "float": stats.accuracy_stats(int(float_ok.sum()), n_test),
        "int8": stats.accuracy_stats(correct_exact, n_test),
        "layers": [{"name": l, "M": rows[l], "K": kdim[l], "N": ndim[l],
                    "signal_norm": math.sqrt(signal[l])} for l in layers],
        "configs": [],
    }
    for i, (cfg, targets) in enumerate(resolved):
        entry = {"label": cfg.label, "accuracy": correct[i] / n_test,
                 "drop_pp": 100.0 * (int8_acc - correct[i] / n_test),
                 **_uncertainty(correct[i], n_test, ok_exact, np.concatenate(ok[i])),
                 "assignment": {l: _target_label(t) for l, t in targets.items()},
                 "correction": modes[i], "layers": {}}
        total = {"uniform": 0.0, "weighted": 0.0, "measured": 0.0}
        for l in layers:
            meas = math.sqrt(local[i][l])
            d = {"measured_norm": meas, "propagated_norm": math.sqrt(propagated[i][l]),
                 "relative": local[i][l] / signal[l] if signal[l] else math.nan}
            total["measured"] += d["relative"] if signal[l] else 0.0
            spec = _target_spec(targets[l])
            if predict and spec is not None:
                ha = hist_a[l] / hist_a[l].sum()
                hb = histogram(spec, hist_b[l])
                for variant, kw in (("uniform", {}), ("weighted", {"dist_a": ha, "dist_b": hb})):
                    if modes[i] == "none":
                        p = predict_gemm(spec, rows[l], kdim[l], ndim[l], **kw)
                    else:                   # the residual after the correction
                        from sim.correction import residual_moments
                        mo = residual_moments(spec, modes[i], kw.get("dist_a"), kw.get("dist_b"))
                        p = predict_moments(mo["mu"], mo["var"], rows[l], kdim[l], ndim[l])
                    d[f"pred_{variant}"] = p.as_dict()
                    d[f"rel_err_{variant}"] = (p.norm / meas - 1.0) if meas > 0 else (
                        0.0 if p.norm == 0 else math.inf)
                    if signal[l]:
                        total[variant] += p.energy / signal[l]
            entry["layers"][l] = d
        entry["measured_total_relative"] = total["measured"]
        if predict:
            entry["pred_total_relative_uniform"] = total["uniform"]
            entry["pred_total_relative_weighted"] = total["weighted"]
        out["configs"].append(entry)
    out["int8"].update(stats.compare_paired(float_ok, ok_exact), reference="float")
    if predict:
        drops = [c["drop_pp"] for c in out["configs"]]
        out["spearman"] = {
            v: spearman([c[f"pred_total_relative_{v}"] for c in out["configs"]], drops)
            for v in ("weighted", "uniform")}
        out["spearman"]["measured"] = spearman(
            [c["measured_total_relative"] for c in out["configs"]], drops)
    return out
