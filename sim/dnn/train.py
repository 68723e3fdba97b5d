"""Minimal numpy training (float, softmax cross-entropy, Adam) for the built-in models.

Supports the operators the built-in graphs use: conv (any stride/padding), dense, ReLU (fused or
not), non-overlapping max/average pooling, flatten and add. Deterministic for a given seed (up to
BLAS summation order).
"""

from __future__ import annotations

import numpy as np

from .errors import DnnError
from .layers import Graph, im2col, pool_params, run_float

__all__ = ["train", "accuracy"]


def _forward(graph: Graph, x):
    env = {graph.input: x}
    cache = {}
    for node in graph.nodes:
        a = node.attrs
        args = [env[t] for t in node.inputs]
        x0 = args[0]
        if node.op == "conv":
            w = a["W"]
            cols, oh, ow = im2col(x0, w.shape[2:], a["stride"], a["pads"])
            y = (cols @ w.reshape(w.shape[0], -1).T + a["b"])
            y = y.reshape(x0.shape[0], oh, ow, -1).transpose(0, 3, 1, 2)
            cache[node.name] = (cols, x0.shape, oh, ow)
        elif node.op == "dense":
            y = x0 @ a["W"].T + a["b"]
            cache[node.name] = x0
        elif node.op in ("maxpool", "avgpool"):
            kernel, stride, pads = pool_params(node, x0.shape)
            if tuple(kernel) != tuple(stride) or any(pads):
                raise DnnError("training supports non-overlapping pooling without padding")
            b, c, h, w_ = x0.shape
            kh, kw = kernel
            oh, ow = h // kh, w_ // kw
            blocks = x0[:, :, :oh * kh, :ow * kw].reshape(b, c, oh, kh, ow, kw)
            if node.op == "maxpool":
                y = blocks.max(axis=(3, 5))
                mask = blocks == y[:, :, :, None, :, None]
                mask = mask / mask.sum(axis=(3, 5), keepdims=True)
            else:
                y = blocks.mean(axis=(3, 5))
                mask = np.full(blocks.shape, 1.0 / (kh * kw))
            cache[node.name] = (mask, x0.shape)
        elif node.op == "flatten":
            y = x0.reshape(x0.shape[0], -1)
            cache[node.name] = x0.shape
        elif node.op == "relu":
            y = np.maximum(x0, 0)
        else:
            y = args[0] + args[1]
        if a.get("relu") or node.op == "relu":
            y = np.maximum(y, 0)
            cache[node.name + "/relu"] = y > 0
        env[node.output] = y
    return env, cache


def _backward(graph: Graph, env, cache, grad_out):
    grads = {graph.output: grad_out}
    pgrads = {}
    for node in reversed(graph.nodes):
        g = grads.pop(node.output, None)
        if g is None:
            continue
        if node.name + "/relu" in cache:
            g = g * cache[node.name + "/relu"]
        a = node.attrs
        if node.op == "conv":
            cols, xshape, oh, ow = cache[node.name]
            w = a["W"]
            gm = g.transpose(0, 2, 3, 1).reshape(-1, w.shape[0])
            pgrads[node.name] = ((gm.T @ cols).reshape(w.shape), gm.sum(axis=0))
            dcols = (gm @ w.reshape(w.shape[0], -1)).reshape(
                xshape[0], oh, ow, xshape[1], w.shape[2], w.shape[3]).transpose(0, 3, 4, 5, 1, 2)
            pt, pl, pb, pr = a["pads"]
            sh, sw = a["stride"]
            dx = np.zeros((xshape[0], xshape[1], xshape[2] + pt + pb, xshape[3] + pl + pr))
            for i in range(w.shape[2]):
                for j in range(w.shape[3]):
                    dx[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += dcols[:, :, i, j]
            dx = dx[:, :, pt:pt + xshape[2], pl:pl + xshape[3]]
            _acc(grads, node.inputs[0], dx)
        elif node.op == "dense":
            x0 = cache[node.name]
            pgrads[node.name] = (g.T @ x0, g.sum(axis=0))
            _acc(grads, node.inputs[0], g @ a["W"])
        elif node.op in ("maxpool", "avgpool"):
            mask, xshape = cache[node.name]
            dx = np.zeros(xshape)
            b, c, oh, kh, ow, kw = mask.shape
            dx[:, :, :oh * kh, :ow * kw] = (mask * g[:, :, :, None, :, None]).reshape(
                b, c, oh * kh, ow * kw)
            _acc(grads, node.inputs[0], dx)
        elif node.op == "flatten":
            _acc(grads, node.inputs[0], g.reshape(cache[node.name]))
        elif node.op == "relu":
            _acc(grads, node.inputs[0], g)
        else:
            _acc(grads, node.inputs[0], g)
            _acc(grads, node.inputs[1], g)
    return pgrads


def _acc(grads, name, g):
    grads[name] = grads[name] + g if name in grads else g


def accuracy(graph: Graph, x, y) -> float:
    return float((run_float(graph, x).argmax(axis=1) == y).mean())


def train(graph: Graph, x, y, *, epochs=40, batch=32, lr=3e-3, weight_decay=1e-4, seed=0,
          progress=False) -> Graph:
    """Train ``graph``'s weights in place (Adam, cosine-decayed learning rate)."""
    rng = np.random.default_rng(seed)
    params = {n.name: n for n in graph.gemm_nodes()}
    m = {k: [np.zeros_like(n.attrs["W"]), np.zeros_like(n.attrs["b"])] for k, n in params.items()}
    v = {k: [np.zeros_like(n.attrs["W"]), np.zeros_like(n.attrs["b"])] for k, n in params.items()}
    step = 0
    total = epochs * ((len(x) + batch - 1) // batch)
    it = range(epochs)
    if progress:
        from hw.cli import progress as progress_bar
        it = progress_bar(it, desc=f"train {graph.name}", unit="epoch")
    for _ in it:
        order = rng.permutation(len(x))
        for s in range(0, len(x), batch):
            idx = order[s:s + batch]
            env, cache = _forward(graph, x[idx])
            logits = env[graph.output]
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(idx)), y[idx]] -= 1.0
            pg = _backward(graph, env, cache, p / len(idx))
            step += 1
            rate = lr * 0.5 * (1 + np.cos(np.pi * step / total))
            for name, node in params.items():
                for i, key in enumerate(("W", "b")):
                    grad = pg[name][i] + (weight_decay * node.attrs[key] if key == "W" else 0)
                    m[name][i] = 0.9 * m[name][i] + 0.1 * grad
                    v[name][i] = 0.999 * v[name][i] + 0.001 * grad * grad
                    mh = m[name][i] / (1 - 0.9 ** step)
                    vh = v[name][i] / (1 - 0.999 ** step)
                    node.attrs[key] = node.attrs[key] - rate * mh / (np.sqrt(vh) + 1e-8)
    return graph
