"""The emulated-accelerator twin of a network: :class:`ApproxModel`, an ``nn.Module`` made of
:class:`~sim.nn.layers.ApproxConv2d` / :class:`~sim.nn.layers.ApproxLinear` (one per GEMM layer)
and :class:`~sim.nn.layers.QuantOp` (the integer operators between them), built from a
:class:`sim.dnn.layers.Graph` and its :class:`sim.dnn.quant.QuantizedModel`.

The twin computes what :meth:`sim.dnn.quant.QuantizedModel.run` computes, integer for integer
(the same quantisation parameters, operand mapping, zero-point terms, accumulator rules and
requantisation), on torch tensors, and is trainable (straight-through gradients,
:mod:`sim.nn.layers`). GEMM modules sit at their layer names (``twin.get_submodule(
"layer1.0.conv1")``); :meth:`ApproxModel.to_graph` / :meth:`ApproxModel.quantized` give the
(retrained) network back to :mod:`sim.dnn`.
"""

from __future__ import annotations

import numpy as np

from hw.extras import require
from sim.dnn.errors import DnnError
from sim.dnn.layers import GEMM_OPS, Graph, Node, activation_range
from sim.dnn.quant import QuantizedModel, _check_target

from .layers import DTYPE, ApproxConv2d, ApproxLinear, QuantOp

torch = require("torch", "the PyTorch front end (sim.nn)")
nn = torch.nn

__all__ = ["ApproxModel"]


def _place(root, name: str, module) -> bool:
    """Register ``module`` at the dotted path ``name`` under ``root`` (plain containers in
    between); ``False`` when the path is not usable (empty parts, taken)."""
    parts = name.split(".")
    if any(not p for p in parts):
        return False
    node = root
    for p in parts[:-1]:
        child = node._modules.get(p)
        if child is None:
            if hasattr(node, p):
                return False
            child = nn.Module()
            node.add_module(p, child)
        elif type(child) is not nn.Module:
            return False
        node = child
    if parts[-1] in node._modules or hasattr(node, parts[-1]):
        return False
    node.add_module(parts[-1], module)
    return True


def _key(name: str, taken) -> str:
    base = name.replace(".", "_") or "node"
    key, k = base, 1
    while key in taken:
        k += 1
        key = f"{base}_{k}"
    return key


class ApproxModel(nn.Module):
    """The twin of ``graph`` quantised as ``qm`` with multiplier ``targets[layer]`` per GEMM layer
    (:func:`sim.nn.approximate` builds it). Input: float images ``(B,) + graph.input_shape``;
    output: float64 logits (the last GEMM's dequantised accumulators, as in :mod:`sim.dnn`)."""

    def __init__(self, graph: Graph, qm: QuantizedModel, targets: dict, *, acc_width: int = 32,
                 overflow: str = "wrap", backend: str = "auto", grad: str = "ste",
                 smooth: int = 0, device=None):
        super().__init__()
        self.graph_name = graph.name
        self.input_name, self.output_name = graph.input, graph.output
        self.input_shape = tuple(graph.input_shape)
        self.tq = dict(qm.tq)
        self.ops = nn.ModuleDict()
        self._gemm: dict[str, nn.Module] = {}
        self._gemm_keys: dict[str, str] = {}
        self._run: list = []
        self._nodes = {n.name: n for n in graph.nodes}
        missing = [n.name for n in graph.gemm_nodes() if n.name not in targets]
        if missing:
            raise DnnError(f"no multiplier for layer(s) {', '.join(missing[:5])}")
        for node in graph.nodes:
            if node.op in GEMM_OPS:
                module = self._gemm_module(node, qm, targets[node.name], acc_width, overflow,
                                           backend, grad, smooth, device)
                self._gemm[node.name] = module
                if not _place(self, node.name, module):
                    key = _key("gemm_" + node.name, self._modules)
                    self.add_module(key, module)
                    self._gemm_keys[node.name] = key
            else:
                module = QuantOp(node.op, [self.tq[t] for t in node.inputs],
                                 self.tq[node.output], node.attrs, qm.params.get(node.name))
                self.ops[_key(node.name, self.ops)] = module
            self._run.append((node.name, list(node.inputs), node.output, module))

    def _gemm_module(self, node, qm, target, acc_width, overflow, backend, grad, smooth, device):
        _check_target(node.name, target)
        a = node.attrs
        final = node.output == self.output_name
        kw = dict(target=target, in_q=self.tq[node.inputs[0]],
                  out_q=None if final else self.tq[node.output], act=activation_range(a),
                  acc_width=acc_width, overflow=overflow, backend=backend, grad=grad,
                  smooth=smooth, device=device)
        w = np.asarray(a["W"], np.float64)
        if node.op == "conv":
            groups = int(a.get("groups", 1))
            module = ApproxConv2d(w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]),
                                  stride=tuple(a["stride"]), pads=tuple(a["pads"]),
                                  dilation=tuple(a.get("dilation", (1, 1))), groups=groups,
                                  **kw)
        else:
            module = ApproxLinear(w.shape[1], w.shape[0], **kw)
        with torch.no_grad():
            module.weight.copy_(torch.as_tensor(w))
            module.bias.copy_(torch.as_tensor(np.asarray(a["b"], np.float64).reshape(-1)))
        return module

    # -- access ----------------------------------------------------------------------------------
    def gemm_layers(self) -> dict:
        """``{layer name: ApproxConv2d / ApproxLinear}`` in execution order."""
        return dict(self._gemm)

    def layer(self, name: str):
        if name not in self._gemm:
            raise DnnError(f"no GEMM layer {name!r} in {self.graph_name}; GEMM layers: "
                           f"{', '.join(self._gemm)}")
        return self._gemm[name]

    def targets(self) -> dict:
        return {k: m.target for k, m in self._gemm.items()}

    def set_targets(self, targets: dict):
        """Give layers other multipliers (``{layer: spec or ArrayModel}``)."""
        for name, t in targets.items():
            _check_target(name, t)
            self.layer(name).set_target(t)

    def set_capture(self, on: bool = True) -> dict:
        """Record every GEMM layer's operands and accumulators on the next forward passes:
        returns the ``{layer: {"a", "b", "acc"}}`` dict that is filled (numpy)."""
        records = {}
        for name, m in self._gemm.items():
            if on:
                records[name] = {}
                m.capture = records[name]
            else:
                m.capture = None
        return records

    # -- back to sim.dnn -------------------------------------------------------------------------
    def to_graph(self) -> Graph:
        """The float graph with the twin's current (e.g. retrained) weights."""
        nodes = []
        for name, node in self._nodes.items():
            attrs = dict(node.attrs)
            if name in self._gemm:
                m = self._gemm[name]
                attrs["W"] = m.weight.detach().cpu().double().numpy().copy()
                attrs["b"] = m.bias.detach().cpu().double().numpy().copy()
            nodes.append(Node(node.name, node.op, list(node.inputs), node.output, attrs))
        return Graph(self.graph_name, self.input_name, self.input_shape, self.output_name, nodes)

    def quantized(self) -> QuantizedModel:
        """:class:`~sim.dnn.quant.QuantizedModel` of :meth:`to_graph` with the twin's activation
        quantisation (its calibration), for :mod:`sim.dnn`'s engine and evaluation."""
        return QuantizedModel(self.to_graph(), tq=self.tq)

    # -- forward ---------------------------------------------------------------------------------
    def forward(self, x):
        x = torch.as_tensor(x)
        if x.dim() != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            raise DnnError(f"{self.graph_name} expects inputs of shape (B, "
                           f"{', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}")
        env = {self.input_name: x.to(DTYPE)}
        for _, inputs, output, module in self._run:
            env[output] = module(*[env[t] for t in inputs])
        return env[self.output_name]

    def extra_repr(self):
        return f"{self.graph_name}, input {self.input_shape}"
