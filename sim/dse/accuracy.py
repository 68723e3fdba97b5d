"""Accuracy of a per-layer multiplier assignment: the analytical predictor (screening) and
bit-exact int8 inference on the validation images (every reported point).

* **Screen** (:meth:`AccuracyModel.predicted`): the total relative distortion
  ``sum_l E||E_l||_F^2 / ||Y_l||_F^2`` of :mod:`sim.dnn.predictor` with operand-weighted error
  moments: each layer's activation histogram and weights from an int8-exact run on the
  validation images, ``E||E||^2 = M N (K s^2 + K^2 mu^2)``. Unitless; it ranks assignments
  (``sim.dnn --predict`` reports its Spearman correlation with the accuracy drop). Layer terms
  are computed once per (layer, candidate), so a point costs a few additions.
* **Bit-exact** (:meth:`AccuracyModel.measured`): the network quantised as ``sim.dnn`` does
  (:class:`sim.dnn.QuantizedModel`, calibrated on the calibration split), run with the
  assignment on the validation images; top-1 accuracy with its 95 % Wilson interval and the
  paired drop against int8-exact with Newcombe's interval and McNemar's p-value
  (:mod:`sim.dnn.stats`). The validation images are ``sim.dnn``'s test split (the first
  ``images`` of them): the front is *selected* on the same images it is reported on, so its
  intervals do not include the selection (re-evaluate a chosen point with ``python -m sim.dnn``
  on other data for an unbiased figure).

Accuracy does not depend on the array shape or dataflow (the golden model is exact per GEMM),
only on the assignment, the accumulator width and the overflow rule; with an output correction
(``bias``/``cv``, :mod:`sim.correction`) also on the array's ``rows``, the depth of the tiles
whose constants the host computes: every approximate layer runs as ``sim.dnn --correction``
runs it (:func:`sim.dnn.evaluate.corrected_targets`, constants fitted to the layer's
activation histogram over the calibration images), and the predictor uses the error left after
the correction (:func:`sim.correction.residual_moments`).
"""

from __future__ import annotations

import functools
import hashlib
import json

import numpy as np

from .errors import DseError

__all__ = ["AccuracyModel", "accuracy_model", "network_layers", "DEFAULT_IMAGES"]

DEFAULT_IMAGES = None     # all validation images


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


class AccuracyModel:
    """Network + validation data + int8 quantisation (see the module docstring).

    ``settings``: ``{"model", "dataset", "images", "seed", "overflow"}`` (JSON-able: Dask
    workers rebuild the model from it, :func:`accuracy_model`)."""

    def __init__(self, settings: dict):
        from sim.dnn import QuantizedModel, load_dataset
        from sim.dnn.errors import DnnError

        self.settings = dict(settings)
        try:
            data = load_dataset(settings.get("dataset", "digits"),
                                seed=int(settings.get("seed", 0)))
            self.graph, data = _network(settings["model"], data)
        except DnnError as exc:
            raise DseError(str(exc)) from None
        data = data.limited(settings.get("images"))
        shape = (-1,) + tuple(self.graph.input_shape)
        self.x = data.x_test.reshape(shape)
        self.y = data.y_test
        x_cal = self._x_cal = data.x_calib.reshape(shape)
        self.overflow = settings.get("overflow", "wrap")
        self.qm = QuantizedModel(self.graph, x_cal)
        self.layers = tuple(n.name for n in self.graph.gemm_nodes())
        weights = [a for n in self.graph.nodes for k, a in sorted(n.attrs.items())
                   if isinstance(a, np.ndarray)]
        #: What the cached evaluations are keyed by (model weights, images, quantisation).
        self.identity = {"model": settings["model"], "weights": _digest(weights),
                         "images": _digest([self.x, self.y, x_cal]), "n": int(len(self.x)),
                         "overflow": self.overflow}
        self._ref = {}
        self._terms = {}
        self._hists = {}

    # -- the int8-exact reference ------------------------------------------------------------
    def reference(self, acc_width: int) -> dict:
        if acc_width not in self._ref:
            logits, rec = self.qm.run(self.x, None, acc_width=acc_width,
                                      overflow=self.overflow, capture=True, signed=True)
            self._ref[acc_width] = {"ok": logits.argmax(axis=1) == self.y, "rec": rec}
        return self._ref[acc_width]

    def _layer_term(self, layer: str, name: str, acc_width: int, correction: str) -> float:
        key = (layer, name, acc_width, correction)
        if key not in self._terms:
            from hw.mult import parse
            from sim.dnn.predictor import histogram, predict, predict_gemm

            spec = parse(name, width=8, signed=True)
            r = self.reference(acc_width)["rec"][layer]
            a, b = np.asarray(r["a"]), np.asarray(r["b"])
            if a.ndim == 3:                      # grouped: (groups, M, K) @ (groups, K, N)
                m, k, n = a.shape[1], b.shape[1], b.shape[0] * b.shape[2]
            else:
                m, k, n = a.shape[0], b.shape[0], b.shape[1]
            signal = float((np.asarray(r["acc"], np.float64) ** 2).sum())
            if spec.name == "exact" or signal == 0:
                self._terms[key] = 0.0
            elif correction == "none":
                p = predict_gemm(spec, m, k, n, dist_a=histogram(spec, a),
                                 dist_b=histogram(spec, b))
                self._terms[key] = p.energy / signal
            else:                                   # what the correction leaves
                from sim.correction import residual_moments
                mo = residual_moments(spec, correction, histogram(spec, a), histogram(spec, b))
                self._terms[key] = predict(mo["mu"], mo["var"], m, k, n).energy / signal
        return self._terms[key]

    def predicted(self, assign: dict, acc_width: int, correction: str = "none") -> float:
        """Total relative distortion of ``assign`` (``{layer: name}``), after ``correction``."""
        return float(sum(self._layer_term(l, assign[l], acc_width, correction)
                         for l in self.layers))

    def _histograms(self, acc_width: int) -> dict:
        if acc_width not in self._hists:
            from sim.dnn.evaluate import activation_histograms
            self._hists[acc_width] = activation_histograms(
                self.qm, self._x_cal, acc_width=acc_width, overflow=self.overflow)
        return self._hists[acc_width]

    def corrected(self, assign: dict, acc_width: int, correction: str, rows: int) -> dict:
        """``{layer: target}`` of ``assign`` with the output correction on ``rows``-deep ws
        tiles (:func:`sim.dnn.evaluate.corrected_targets`); plain targets for ``none``."""
        from sim.correction import CorrectionError
        from sim.dnn.evaluate import corrected_targets
        from sim.dnn.quant import resolve_assignment

        targets = resolve_assignment(self.graph, dict(assign), True)
        if correction == "none":
            return targets
        try:
            return corrected_targets(targets, correction, self._histograms(acc_width),
                                     rows=rows, acc_width=acc_width, overflow=self.overflow)
        except CorrectionError as exc:
            raise DseError(str(exc)) from None

    def correction_widths(self, assign: dict, acc_width: int, correction: str,
                          rows: int) -> dict:
        """The widest constants the host loads for ``assign`` (``{"alpha_bits",
        "beta_bits"}`` over its corrected layers), so the emitted hardware holds every
        layer's constants; ``{}`` without a correction."""
        widths = {}
        for t in self.corrected(assign, acc_width, correction, rows).values():
            fmt = getattr(t, "correction", None)
            if fmt is not None:
                for k in ("alpha_bits", "beta_bits"):
                    widths[k] = max(widths.get(k, 0), getattr(fmt, k))
        return widths

    def measured(self, assign: dict, acc_width: int, correction: str = "none",
                 rows: int = 16) -> dict:
        """Bit-exact accuracy of ``assign`` (with ``correction`` on ``rows``-deep tiles) and
        its drop against int8-exact (pp, 95 % CI)."""
        from sim.dnn import stats

        ref = self.reference(acc_width)["ok"]
        targets = self.corrected(assign, acc_width, correction, rows)
        logits = self.qm.run(self.x, targets, acc_width=acc_width, overflow=self.overflow,
                             signed=True)
        if isinstance(logits, tuple):
            logits = logits[0]
        ok = logits.argmax(axis=1) == self.y
        acc = stats.accuracy_stats(int(ok.sum()), len(ok))
        cmp = stats.compare_paired(ref, ok)
        return {"accuracy": acc["accuracy"], "accuracy_ci95": [acc["ci95_low"], acc["ci95_high"]],
                "int8_accuracy": float(ref.mean()), "drop_pp": cmp["drop_pp"],
                "drop_ci95_pp": [cmp["drop_ci95_low_pp"], cmp["drop_ci95_high_pp"]],
                "mcnemar_p": cmp["mcnemar_p"], "n": int(len(ok))}

    def cache_key(self, assign: dict, acc_width: int, correction: str = "none",
                  rows: int | None = None) -> dict:
        key = {"identity": self.identity, "assign": dict(assign), "acc_width": acc_width,
               "what": "bit-exact accuracy"}
        if correction != "none":
            key.update(correction=correction, rows=rows)
        return key


def _network(name: str, data):
    """``(graph, data)``: a built-in model of :mod:`sim.dnn`, or a torch-trained digits network
    of :data:`sim.nn.models.TORCH_MODELS` (needs torch; data as the network takes it)."""
    from sim.dnn import MODELS, load_model

    if name in MODELS:
        return load_model(name), data
    from sim.dnn.errors import DnnError
    try:
        from sim.nn.models import TORCH_MODELS, digits_network
    except ImportError:
        raise DnnError(f"unknown model {name!r}; built-in models: {', '.join(MODELS)} "
                       "(the torch digits networks need the torch extra)") from None
    if name not in TORCH_MODELS:
        raise DnnError(f"unknown model {name!r}; models: "
                       f"{', '.join(dict.fromkeys([*MODELS, *TORCH_MODELS]))}")
    if data.name != "digits":
        raise DnnError(f"{name} is a digits network; --dataset must be digits")
    return digits_network(name, data)


def network_layers(name: str) -> tuple:
    """The GEMM layer names of network ``name`` (:func:`_network`); :class:`DseError` if
    unknown."""
    from sim.dnn import load_digits_split
    from sim.dnn.errors import DnnError

    try:
        graph, _ = _network(name, load_digits_split())
    except DnnError as exc:
        raise DseError(str(exc)) from None
    return tuple(n.name for n in graph.gemm_nodes())


@functools.lru_cache(maxsize=4)
def _model(text: str) -> AccuracyModel:
    return AccuracyModel(json.loads(text))


def accuracy_model(settings: dict) -> AccuracyModel:
    """One :class:`AccuracyModel` per settings and process (workers keep theirs)."""
    return _model(json.dumps(settings, sort_keys=True))
