"""Workloads: the GEMM layers of a network, from a :class:`sim.dnn.Graph`, a built-in shape list
or SCALE-Sim files.

A :class:`Layer` is what the array sees: ``groups`` independent GEMMs
``A (M x K) @ B (K x N)`` (conv via im2col: ``M = batch x OH x OW`` output pixels,
``K = Cin/groups x kh x kw``, ``N = Cout/groups``; dense: ``M = batch``, ``K = in``,
``N = out``; depthwise: ``groups = Cin``, ``K = kh x kw``). Stride, padding and dilation only
change ``OH x OW``; the raw input tensor size is kept (``ifmap_elems``) for DRAM traffic.

SCALE-Sim v2 files (https://github.com/scalesim-project/scale-sim-v2, read at commit 22f88b1,
``scalesim/topology_utils.py`` and ``scalesim/scale_config.py``):

* topology CSV, convolution form: header line, then
  ``name, IFMAP height, IFMAP width, filter height, filter width, channels, num filter, stride[,
  stride width],`` (a trailing comma is usual; SCALE-Sim drops the last field). No padding
  field: SCALE-Sim takes ``OH = ceil((H - R + S) / S)`` output rows (a last, partial window
  counts), and so does this reader. A layer whose name
  contains ``DP`` is depthwise: SCALE-Sim runs it as ``channels`` layers of one channel each,
  here one layer with ``groups = channels``.
* topology CSV, GEMM form: header ``Layer, M, N, K,`` then ``name, M, N, K,``; SCALE-Sim maps it
  to an ``M x K`` IFMAP and ``N`` filters of ``1 x K``, i.e. ``A (M x K) @ B (K x N)``.
* ``.cfg`` (INI): ``[architecture_presets]`` ``ArrayHeight``, ``ArrayWidth``, ``Dataflow``
  (``ws``/``os``/``is``; the generated array has no ``is``), ``IfmapSramSzkB``,
  ``FilterSramSzkB``, ``OfmapSramSzkB``; other keys are read by SCALE-Sim but not needed here.
"""

from __future__ import annotations

import configparser
import csv
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import PerfError

__all__ = ["Layer", "layers_from_graph", "BUILTIN", "builtin_layers", "ScaleSimConfig",
           "read_scalesim_config", "read_topology", "conv_layer", "MAX_FILE_BYTES"]

KINDS = ("conv", "depthwise", "dense", "gemm")
#: Workload files larger than this are refused (a topology of 10^5 layers is ~5 MB).
MAX_FILE_BYTES = 16 << 20
#: Largest dimension accepted (a GEMM of 2^40 MACs per group is already absurd).
MAX_DIM = 1 << 31


def _positive(label: str, value, layer: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PerfError(f"layer {layer!r}: {label} must be an integer, not {value!r}")
    if value < 1:
        raise PerfError(f"layer {layer!r}: {label} = {value} does not fit the array "
                        f"(every GEMM dimension must be at least 1)")
    if value > MAX_DIM:
        raise PerfError(f"layer {layer!r}: {label} = {value} is larger than {MAX_DIM}")
    return value


@dataclass(frozen=True)
class Layer:
    """One GEMM layer: ``groups`` GEMMs ``(m x k) @ (k x n)`` (see the module docstring).

    ``ifmap_elems``: distinct input activations (the raw input tensor; ``m * k * groups`` for
    a plain GEMM); ``detail``: a human-readable shape (``"3x3/2 p1 64->128 @56x56"``)."""

    name: str
    kind: str
    m: int
    k: int
    n: int
    groups: int = 1
    ifmap_elems: int | None = None
    detail: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise PerfError(f"a layer needs a non-empty name, not {self.name!r}")
        if self.kind not in KINDS:
            raise PerfError(f"layer {self.name!r}: unknown kind {self.kind!r}; "
                            f"known: {', '.join(KINDS)}")
        for label in ("m", "k", "n", "groups"):
            _positive(label.upper() if label != "groups" else "groups", getattr(self, label),
                      self.name)
        if self.ifmap_elems is None:
            object.__setattr__(self, "ifmap_elems", self.m * self.k * self.groups)
        else:
            _positive("ifmap_elems", self.ifmap_elems, self.name)

    @property
    def macs(self) -> int:
        return self.m * self.k * self.n * self.groups

    @property
    def weight_elems(self) -> int:
        return self.k * self.n * self.groups

    @property
    def ofmap_elems(self) -> int:
        return self.m * self.n * self.groups

    def as_dict(self) -> dict:
        return {**asdict(self), "macs": self.macs}


# -- from a sim.dnn graph ---------------------------------------------------------------------
def _out_hw(h, w, kernel, stride, pads, dilation, name):
    kh = (kernel[0] - 1) * dilation[0] + 1
    kw = (kernel[1] - 1) * dilation[1] + 1
    oh = (h + pads[0] + pads[2] - kh) // stride[0] + 1
    ow = (w + pads[1] + pads[3] - kw) // stride[1] + 1
    if oh < 1 or ow < 1:
        raise PerfError(f"layer {name!r}: kernel {kernel[0]}x{kernel[1]} does not fit a "
                        f"{h}x{w} input")
    return oh, ow


def conv_layer(name: str, *, batch: int, cin: int, h: int, w: int, cout: int, kernel,
               stride=(1, 1), pads=(0, 0, 0, 0), groups: int = 1, dilation=(1, 1)) -> Layer:
    """The :class:`Layer` of a 2-D convolution (NCHW input ``batch x cin x h x w``)."""
    kernel, stride, dilation = tuple(kernel), tuple(stride), tuple(dilation)
    pads = tuple(pads)
    for label, v in (("batch", batch), ("input channels", cin), ("output channels", cout),
                     ("groups", groups)):
        _positive(label, v, name)
    if cin % groups or cout % groups:
        raise PerfError(f"layer {name!r}: {cin} input / {cout} output channels are not "
                        f"divisible into {groups} groups")
    oh, ow = _out_hw(h, w, kernel, stride, pads, dilation, name)
    kind = "depthwise" if groups > 1 and groups == cin and cin > 1 else "conv"
    pad = f" p{pads[0]}" if len(set(pads)) == 1 and pads[0] else \
        (f" p{','.join(map(str, pads))}" if any(pads) else "")
    st = f"/{stride[0]}" if stride[0] == stride[1] else f"/{stride[0]}x{stride[1]}"
    detail = (f"{kernel[0]}x{kernel[1]}{st if stride != (1, 1) else ''}{pad} {cin}->{cout}"
              + (f" g{groups}" if groups > 1 else "") + f" @{h}x{w}")
    return Layer(name, kind, batch * oh * ow, cin // groups * kernel[0] * kernel[1],
                 cout // groups, groups, batch * cin * h * w, detail)


def _shape_of(graph, batch):
    """Tensor shapes of ``graph`` for ``batch`` images: inferred per operator; a graph with an
    operator this does not know is run once in float on zeros (:func:`sim.dnn.run_float`)."""
    shapes = {graph.input: (batch,) + tuple(graph.input_shape)}
    for node in graph.nodes:
        a = node.attrs
        try:
            x = shapes[node.inputs[0]]
        except (KeyError, IndexError):
            raise PerfError(f"node {node.name!r} reads an unknown tensor") from None
        if node.op == "conv":
            wshape = a["W"].shape
            oh, ow = _out_hw(x[2], x[3], wshape[2:], tuple(a.get("stride", (1, 1))),
                             tuple(a.get("pads", (0, 0, 0, 0))),
                             tuple(a.get("dilation", (1, 1))), node.name)
            y = (x[0], wshape[0], oh, ow)
        elif node.op == "dense":
            y = (x[0], a["W"].shape[0])
        elif node.op in ("relu", "clip", "add"):
            y = x
        elif node.op in ("maxpool", "avgpool"):
            from sim.dnn.layers import pool_params
            kernel, stride, pads = pool_params(node, x)
            y = (x[0], x[1]) + _out_hw(x[2], x[3], kernel, stride, pads, (1, 1), node.name)
        elif node.op == "flatten":
            y = (x[0], math.prod(x[1:]))
        elif node.op == "concat":
            axis = int(a.get("axis", 1))
            parts = [shapes[t] for t in node.inputs]
            y = tuple(sum(p[axis] for p in parts) if i == axis else d
                      for i, d in enumerate(x))
        else:
            return None
        shapes[node.output] = y
    return shapes


def layers_from_graph(graph, *, batch: int = 1) -> list[Layer]:
    """The GEMM layers (conv, dense) of a :class:`sim.dnn.Graph` for ``batch`` images."""
    _positive("batch", batch, graph.name)
    shapes = _shape_of(graph, batch)
    if shapes is None:
        import numpy as np

        from sim.dnn.layers import run_float
        _, env = run_float(graph, np.zeros((batch,) + tuple(graph.input_shape)), keep=True)
        shapes = {k: v.shape for k, v in env.items()}
    layers = []
    for node in graph.nodes:
        if node.op not in ("conv", "dense"):
            continue
        x = shapes[node.inputs[0]]
        a = node.attrs
        if node.op == "dense":
            if len(x) != 2:
                raise PerfError(f"dense layer {node.name!r} needs a 2-D input, got {x}")
            out, inp = a["W"].shape
            layers.append(Layer(node.name, "dense", x[0], inp, out, 1, x[0] * inp,
                                f"{inp}->{out}"))
            continue
        cout, cin_g, kh, kw = a["W"].shape
        groups = int(a.get("groups", a.get("group", 1)))
        if cin_g * groups != x[1]:
            raise PerfError(f"conv layer {node.name!r}: weights for {cin_g * groups} input "
                            f"channels, input has {x[1]}")
        layers.append(conv_layer(node.name, batch=x[0], cin=x[1], h=x[2], w=x[3], cout=cout,
                                 kernel=(kh, kw), stride=a.get("stride", (1, 1)),
                                 pads=a.get("pads", (0, 0, 0, 0)), groups=groups,
                                 dilation=a.get("dilation", (1, 1))))
    if not layers:
        raise PerfError(f"network {graph.name!r} has no conv or dense layer")
    return layers


# -- built-in shape-only networks (ImageNet, 224 x 224) --------------------------------------
def _resnet(depth: int, batch: int) -> list[Layer]:
    blocks = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3]}[depth]
    bottleneck = depth >= 50
    out = [conv_layer("conv1", batch=batch, cin=3, h=224, w=224, cout=64, kernel=(7, 7),
                      stride=(2, 2), pads=(3, 3, 3, 3))]
    size, cin = 56, 64                          # after the 3x3/2 max pool
    for stage, count in enumerate(blocks, start=1):
        width = 64 << (stage - 1)
        for b in range(count):
            stride = 2 if (b == 0 and stage > 1) else 1
            name = f"layer{stage}.{b}"
            cout = width * 4 if bottleneck else width
            hw = size
            if bottleneck:
                out.append(conv_layer(f"{name}.conv1", batch=batch, cin=cin, h=hw, w=hw,
                                      cout=width, kernel=(1, 1)))
                out.append(conv_layer(f"{name}.conv2", batch=batch, cin=width, h=hw, w=hw,
                                      cout=width, kernel=(3, 3), stride=(stride, stride),
                                      pads=(1, 1, 1, 1)))
                small = (hw - 1) // stride + 1
                out.append(conv_layer(f"{name}.conv3", batch=batch, cin=width, h=small,
                                      w=small, cout=cout, kernel=(1, 1)))
            else:
                out.append(conv_layer(f"{name}.conv1", batch=batch, cin=cin, h=hw, w=hw,
                                      cout=width, kernel=(3, 3), stride=(stride, stride),
                                      pads=(1, 1, 1, 1)))
                small = (hw - 1) // stride + 1
                out.append(conv_layer(f"{name}.conv2", batch=batch, cin=width, h=small,
                                      w=small, cout=width, kernel=(3, 3), pads=(1, 1, 1, 1)))
            if stride != 1 or cin != cout:
                out.append(conv_layer(f"{name}.downsample", batch=batch, cin=cin, h=hw, w=hw,
                                      cout=cout, kernel=(1, 1), stride=(stride, stride)))
            cin, size = cout, (hw - 1) // stride + 1
    out.append(Layer("fc", "dense", batch, cin, 1000, 1, batch * cin, f"{cin}->1000"))
    return out


def _mobilenet_v1(batch: int) -> list[Layer]:
    out = [conv_layer("conv1", batch=batch, cin=3, h=224, w=224, cout=32, kernel=(3, 3),
                      stride=(2, 2), pads=(1, 1, 1, 1))]
    cfg = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + \
        [(1024, 2), (1024, 1)]
    size, cin = 112, 32
    for i, (cout, s) in enumerate(cfg, start=1):
        out.append(conv_layer(f"dw{i}", batch=batch, cin=cin, h=size, w=size, cout=cin,
                              kernel=(3, 3), stride=(s, s), pads=(1, 1, 1, 1), groups=cin))
        size = (size - 1) // s + 1
        out.append(conv_layer(f"pw{i}", batch=batch, cin=cin, h=size, w=size, cout=cout,
                              kernel=(1, 1)))
        cin = cout
    out.append(Layer("fc", "dense", batch, cin, 1000, 1, batch * cin, f"{cin}->1000"))
    return out


def _mobilenet_v2(batch: int) -> list[Layer]:
    """MobileNetV2 1.0 / 224 (Sandler et al., CVPR 2018, Table 2): inverted residual blocks
    (1x1 expansion by ``t``, 3x3 depthwise with the block's stride, 1x1 projection; no
    expansion layer when ``t = 1``), then a 1x1 conv to 1280 channels and the classifier."""
    out = [conv_layer("conv1", batch=batch, cin=3, h=224, w=224, cout=32, kernel=(3, 3),
                      stride=(2, 2), pads=(1, 1, 1, 1))]
    cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
           (6, 160, 3, 2), (6, 320, 1, 1)]
    size, cin, index = 112, 32, 0
    for t, c, n, s in cfg:
        for i in range(n):
            stride = s if i == 0 else 1
            name, hidden = f"block{index}", cin * t
            if t != 1:
                out.append(conv_layer(f"{name}.expand", batch=batch, cin=cin, h=size, w=size,
                                      cout=hidden, kernel=(1, 1)))
            out.append(conv_layer(f"{name}.dw", batch=batch, cin=hidden, h=size, w=size,
                                  cout=hidden, kernel=(3, 3), stride=(stride, stride),
                                  pads=(1, 1, 1, 1), groups=hidden))
            size = (size - 1) // stride + 1
            out.append(conv_layer(f"{name}.project", batch=batch, cin=hidden, h=size, w=size,
                                  cout=c, kernel=(1, 1)))
            cin, index = c, index + 1
    out.append(conv_layer("conv_last", batch=batch, cin=cin, h=size, w=size, cout=1280,
                          kernel=(1, 1)))
    out.append(Layer("fc", "dense", batch, 1280, 1000, 1, batch * 1280, "1280->1000"))
    return out


#: Built-in shape-only networks (no weights): name -> builder(batch).
BUILTIN = {"resnet18": lambda b: _resnet(18, b), "resnet34": lambda b: _resnet(34, b),
           "resnet50": lambda b: _resnet(50, b), "mobilenet-v1": _mobilenet_v1,
           "mobilenet-v2": _mobilenet_v2}


def builtin_layers(name: str, batch: int = 1) -> list[Layer]:
    if name not in BUILTIN:
        raise PerfError(f"unknown built-in network {name!r}; known: {', '.join(BUILTIN)}")
    _positive("batch", batch, name)
    return BUILTIN[name](batch)


# -- SCALE-Sim files --------------------------------------------------------------------------
def _read_text(path, what: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise PerfError(f"{what} {p} does not exist (or is not a regular file)")
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise PerfError(f"{what} {p} is {size} bytes, more than {MAX_FILE_BYTES}")
        data = p.read_bytes()
    except OSError as exc:
        raise PerfError(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PerfError(f"{what} {p} is not a text file (not UTF-8)") from None


def _int_field(text: str, label: str, where: str) -> int:
    t = text.strip()
    if not t.isascii() or not t.lstrip("+").isdigit() or len(t) > 12:
        raise PerfError(f"{where}: {label} {t!r} is not a positive integer")
    value = int(t)
    if value < 1:
        raise PerfError(f"{where}: {label} = {value} does not fit (must be at least 1)")
    return value


CONV_FIELDS = ("IFMAP height", "IFMAP width", "filter height", "filter width", "channels",
               "num filter", "stride")


def read_topology(path) -> list[Layer]:
    """Layers of a SCALE-Sim topology CSV (convolution or ``Layer, M, N, K`` GEMM form, told
    apart by the header). One-line :class:`PerfError` on a malformed file."""
    text = _read_text(path, "topology file")
    rows = [r for r in csv.reader(text.splitlines())]
    rows = [[c.strip() for c in r] for r in rows]
    rows = [r[:-1] if r and r[-1] == "" else r for r in rows]      # the trailing comma
    body = [(i + 1, r) for i, r in enumerate(rows) if any(r)]
    if not body:
        raise PerfError(f"topology file {path} is empty")
    (_, header), body = body[0], body[1:]
    names = [h.lower() for h in header[1:4]]
    gemm = names == ["m", "n", "k"]
    if not gemm and len(header) < 8:
        raise PerfError(f"{path}:1: header has {len(header)} fields; expected the convolution "
                        "form (name, IFMAP height, IFMAP width, filter height, filter width, "
                        "channels, num filter, strides) or 'Layer, M, N, K'")
    if not body:
        raise PerfError(f"topology file {path} has a header but no layers")
    layers, seen = [], set()
    for line, r in body:
        where = f"{path}:{line}"
        name = r[0]
        if not name:
            raise PerfError(f"{where}: empty layer name")
        if name in seen:
            raise PerfError(f"{where}: layer name {name!r} appears twice")
        seen.add(name)
        if gemm:
            if len(r) < 4:
                raise PerfError(f"{where}: expected 'name, M, N, K', got {len(r)} fields")
            m, n, k = (_int_field(r[i], lab, where) for i, lab in ((1, "M"), (2, "N"), (3, "K")))
            layers.append(Layer(name, "gemm", m, k, n, 1, m * k, f"{m}x{k} @ {k}x{n}"))
            continue
        if len(r) not in (8, 9):
            raise PerfError(f"{where}: expected 8 or 9 fields (name, {', '.join(CONV_FIELDS)}"
                            f"[, stride width]), got {len(r)}")
        h, w, fh, fw, c, nf, sh = (_int_field(v, lab, where)
                                   for v, lab in zip(r[1:8], CONV_FIELDS))
        sw = _int_field(r[8], "stride width", where) if len(r) == 9 else sh
        if fh > h or fw > w:
            raise PerfError(f"{where}: filter {fh}x{fw} is larger than the {h}x{w} IFMAP")
        depthwise = "DP" in name
        groups = c if depthwise else 1
        oh, ow = -(-(h - fh + sh) // sh), -(-(w - fw + sw) // sw)   # SCALE-Sim's ceil
        st = f"/{sh}" if sh == sw else f"/{sh}x{sw}"
        detail = (f"{fh}x{fw}{st if (sh, sw) != (1, 1) else ''} {c}->{nf * groups}"
                  + (f" g{groups}" if groups > 1 else "") + f" @{h}x{w}")
        layer = Layer(name, "depthwise" if depthwise else "conv", oh * ow,
                      (c // groups) * fh * fw, nf, groups, h * w * c, detail)
        layers.append(layer)
    return layers


@dataclass(frozen=True)
class ScaleSimConfig:
    """The parts of a SCALE-Sim ``.cfg`` this model uses (SRAM sizes in KiB)."""

    rows: int
    cols: int
    dataflow: str
    ifmap_sram_kb: int = 256            # SCALE-Sim's defaults (scale_config.py)
    filter_sram_kb: int = 256
    ofmap_sram_kb: int = 128
    run_name: str = "scale_run"
    topology: str | None = None


def read_scalesim_config(path) -> ScaleSimConfig:
    """Read a SCALE-Sim ``.cfg``; one-line :class:`PerfError` when it is malformed or asks for
    a dataflow the generated array does not implement."""
    text = _read_text(path, "SCALE-Sim config")
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        msg = " ".join(str(exc).split())
        raise PerfError(f"SCALE-Sim config {path} is malformed: {msg[:300]}") from None
    sec = "architecture_presets"
    if not parser.has_section(sec):
        raise PerfError(f"SCALE-Sim config {path} has no [{sec}] section")
    where = f"{path} [{sec}]"

    def get(key, default=None):
        if parser.has_option(sec, key):
            return parser.get(sec, key)
        if default is None:
            raise PerfError(f"{where}: {key} is missing")
        return default

    rows = _int_field(get("ArrayHeight"), "ArrayHeight", where)
    cols = _int_field(get("ArrayWidth"), "ArrayWidth", where)
    dataflow = get("Dataflow").strip().lower()
    if dataflow not in ("ws", "os"):
        extra = (" ('is', input stationary, is a SCALE-Sim dataflow the generated array does "
                 "not implement)" if dataflow == "is" else "")
        raise PerfError(f"{where}: unknown dataflow {dataflow!r}; choose ws or os{extra}")
    sizes = [_int_field(get(k, d), k, where) for k, d in
             (("IfmapSramSzkB", "256"), ("FilterSramSzkB", "256"), ("OfmapSramSzkB", "128"))]
    run_name = parser.get("general", "run_name", fallback="scale_run").strip()
    topo = None
    if parser.has_option("network_presets", "TopologyCsvLoc"):
        topo = parser.get("network_presets", "TopologyCsvLoc").strip().strip('"')
    return ScaleSimConfig(rows, cols, dataflow, *sizes, run_name=run_name, topology=topo)
