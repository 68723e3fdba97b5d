"""The public API of :mod:`sim.nn` (:func:`approximate`, :func:`resolve`, :func:`as_array`);
import it from :mod:`sim.nn`."""

from __future__ import annotations

import numpy as np

from hw.extras import require

torch = require("torch", "the PyTorch front end (sim.nn)")

from sim.dnn.errors import DnnError  # noqa: E402
from sim.dnn.layers import GEMM_OPS, Graph  # noqa: E402
from sim.dnn.quant import QuantizedModel, match_names, resolve_assignment  # noqa: E402

from .convert import check_graph, to_graph  # noqa: E402
from .twin import ApproxModel  # noqa: E402

__all__ = ["approximate", "resolve", "as_array"]


def as_array(data, what: str = "calibration data") -> np.ndarray:
    """A float64 numpy array from a tensor, an array, or an iterable of batches (tensors,
    arrays, or ``(x, label)`` pairs as a ``DataLoader`` yields)."""
    if data is None:
        raise DnnError(f"{what} is missing")
    if torch.is_tensor(data):
        return data.detach().cpu().double().numpy()
    if isinstance(data, np.ndarray):
        if not np.issubdtype(data.dtype, np.number):
            raise DnnError(f"{what} must be numbers, not {data.dtype}")
        return data.astype(np.float64, copy=False)
    try:
        batches = [b[0] if isinstance(b, (tuple, list)) else b for b in data]
    except TypeError:
        raise DnnError(f"{what} must be a tensor, an array or an iterable of batches, not "
                       f"{type(data).__name__}") from None
    if not batches:
        raise DnnError(f"{what} is empty")
    try:
        return np.concatenate([as_array(b, what) for b in batches])
    except ValueError as exc:
        raise DnnError(f"{what}: batches of different shapes ({exc})".splitlines()[0]) from None


def resolve(graph: Graph, assignment, *, signed: bool = True, model=None) -> dict:
    """``{GEMM layer: spec or ArrayModel}`` for an assignment: ``None`` (exact), one multiplier
    (name, :class:`hw.mult.MultiplierSpec` or :class:`sim.golden.ArrayModel`) for every layer,
    or ``{layer name or glob: multiplier, "*": default}`` (unlisted layers exact; names are
    parsed as 8-bit multipliers of the given signedness). With the torch ``model`` the graph was
    made from, naming one of its modules that has no GEMM (a batch norm folded into a conv, a
    ReLU, a container) is an error that says so."""
    if not isinstance(assignment, dict):
        return resolve_assignment(graph, assignment, signed)
    layers = [n.name for n in graph.gemm_nodes()]
    others = {n.name: n.op for n in graph.nodes if n.op not in GEMM_OPS}
    if model is not None:
        for name, m in model.named_modules():
            if name and name not in layers:
                others.setdefault(name, type(m).__name__)
    chosen = match_names(layers, others, assignment, "assignment", graph.name)
    return resolve_assignment(graph, chosen, signed)


def approximate(model, assignment=None, calibration_data=None, *, activations=None,
                signed: bool = True, acc_width: int = 32, overflow: str = "wrap",
                backend: str = "auto", grad: str = "ste", smooth: int = 0, input_shape=None,
                check: bool = True, correction: str = "none",
                correction_rows: int = 16) -> ApproxModel:
    """The emulated-accelerator twin of ``model``.

    ``model``: a float ``torch.nn.Module`` (traced with ``torch.fx``; :mod:`sim.nn.convert`
    lists what is understood) or a :class:`sim.dnn.layers.Graph`. ``assignment``: multipliers
    per layer (:func:`resolve`; layer names are module names, ``layer1.0.conv1``).
    ``calibration_data``: float images ``(N,) + input shape`` (tensor, array or batches) that
    set the activation scales (held-out data, not the test set). ``activations``: ``"sym"``
    (default), ``"asym"`` (uint8 with zero points) or per layer
    (:func:`sim.dnn.quant.activation_modes`). ``acc_width`` / ``overflow``: the accumulator.
    ``backend``: the integer GEMM (:mod:`sim.nn.kernels`). ``grad``: ``"ste"`` (exact-product
    gradient) or ``"table"`` (the multiplier's derivative table, ``smooth``-averaged).
    ``check``: verify that the converted graph computes what ``model`` does (float).
    ``correction``: output correction of the approximate layers, ``"none"`` (default),
    ``"bias"`` or ``"cv"`` (:mod:`sim.correction`): each runs on a ``correction_rows``-deep ws
    array whose constants are fitted to its activations over ``calibration_data``, exactly as
    ``python -m sim.dnn --correction`` does (:func:`sim.dnn.evaluate.corrected_targets`).

    Bad input (unknown layer names, a layer without a GEMM, an unsupported module, calibration
    data of the wrong shape) raises :class:`~sim.dnn.errors.DnnError` with a one-line message.
    """
    calib = as_array(calibration_data)
    if calib.ndim < 2 or len(calib) == 0:
        raise DnnError(f"calibration data needs a batch axis and at least one image, got shape "
                       f"{calib.shape}")
    torch_model = None
    if isinstance(model, Graph):
        graph = model
    elif isinstance(model, torch.nn.Module):
        torch_model = model
        shape = tuple(input_shape) if input_shape is not None else tuple(calib.shape[1:])
        graph = to_graph(model, shape)
        if check:
            check_graph(model, graph, calib[:4].reshape((-1,) + shape))
    else:
        raise DnnError(f"expected a torch.nn.Module or a sim.dnn Graph, not "
                       f"{type(model).__name__}")
    want = tuple(graph.input_shape)
    if tuple(calib.shape[1:]) != want:
        raise DnnError(f"calibration data of shape {tuple(calib.shape[1:])} does not fit "
                       f"{graph.name}, which expects {want}")
    targets = resolve(graph, assignment, signed=signed, model=torch_model)
    qm = QuantizedModel(graph, calib, activations=activations)
    if correction != "none":
        from sim.correction import CorrectionError
        from sim.dnn.evaluate import activation_histograms, corrected_targets

        if not isinstance(correction_rows, int) or not 1 <= correction_rows <= 64:
            raise DnnError(f"correction_rows must be an integer in 1..64, not {correction_rows!r}")
        try:
            hists = activation_histograms(qm, calib, signed=signed, acc_width=acc_width,
                                          overflow=overflow)
            targets = corrected_targets(targets, correction, hists, rows=correction_rows,
                                        acc_width=acc_width, overflow=overflow)
        except CorrectionError as exc:
            raise DnnError(f"{graph.name}: {exc}") from None
    device = None
    if torch_model is not None:
        p = next(torch_model.parameters(), None)
        device = None if p is None else p.device
    return ApproxModel(graph, qm, targets, acc_width=acc_width, overflow=overflow,
                       backend=backend, grad=grad, smooth=smooth, device=device)
