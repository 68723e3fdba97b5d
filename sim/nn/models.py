"""Plain-PyTorch network definitions (no torchvision): the digits models of :mod:`sim.dnn.models`
and ResNet-18 / ResNet-20 / MobileNetV2-class networks for imports, cross-checks, retraining and
benchmarks.

Module names are the names the toolkit uses for layers (``conv1``, ``layer1.0.conv1``,
``features.3.conv.1.0``, ``fc``...), so a per-layer multiplier assignment written for the torch
model also names the layers of its :mod:`sim.dnn` graph.

* :class:`DigitsCNN` / :class:`DigitsMLP` - the built-in ``digits-cnn`` / ``digits-mlp`` (same
  layers and names as :mod:`sim.dnn.models`).
* :func:`resnet20` - the CIFAR ResNet-20 of He et al. (2016): a 3x3 stem of ``16 w`` channels,
  three stages of three basic blocks (``16 w``, ``32 w``, ``64 w`` channels, stride 2 at the start
  of stages 2 and 3, 1x1 projection shortcuts where the shape changes), global average pooling
  and one linear layer; 0.27 M parameters at ``w = 1``.
* :func:`resnet18` - the ImageNet ResNet-18 (7x7/2 stem, 3x3/2 max pool, stages of two basic
  blocks with ``64 w .. 512 w`` channels, adaptive average pooling, linear), any input size
  from 32x32.
* :func:`mobilenet_v2` - MobileNetV2 (Sandler et al. 2018): inverted residual blocks (1x1
  expansion, 3x3 depthwise, 1x1 linear projection), ReLU6, width multiplier; the stem stride and
  the block table can be changed for small images.
"""

from __future__ import annotations

from pathlib import Path

from hw.extras import require

torch = require("torch", "the PyTorch front end (sim.nn)")
nn = torch.nn

__all__ = ["DigitsCNN", "DigitsMLP", "BasicBlock", "ResNet", "resnet20", "resnet18",
           "InvertedResidual", "MobileNetV2", "mobilenet_v2", "TORCH_MODELS", "build_torch",
           "load_digits_torch", "load_torch", "weights_path", "digits_input", "DIGITS_SIDE",
           "digits_network", "digits_torch_from_graph"]


class DigitsCNN(nn.Module):
    """``digits-cnn`` of :mod:`sim.dnn.models` (input 1x8x8, 10 classes)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool1 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(16, 16, 3, padding=1)
        self.pool2 = nn.AvgPool2d(2)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        p = self.pool1(x)
        x = torch.relu(self.conv3(p) + p)
        x = self.pool2(x)
        return self.fc(torch.flatten(x, 1))


class DigitsMLP(nn.Module):
    """``digits-mlp``: flatten, 64 -> 64 -> 32 -> 10 with ReLUs."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 64)
        self.fc2 = nn.Linear(64, 32)
        self.fc3 = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN, ReLU after the first and after the residual sum; a 1x1 conv + BN
    projection (``downsample``) when stride or width change."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """Basic-block ResNet: ``stem`` "cifar" (3x3/1) or "imagenet" (7x7/2 + 3x3/2 max pool)."""

    def __init__(self, blocks, widths, *, stem="imagenet", in_channels=3, num_classes=1000):
        super().__init__()
        w0 = widths[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, w0, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        else:
            self.conv1 = nn.Conv2d(in_channels, w0, 3, 1, 1, bias=False)
            self.maxpool = None
        self.bn1 = nn.BatchNorm2d(w0)
        self.relu = nn.ReLU(inplace=True)
        cin = w0
        for i, (n, w) in enumerate(zip(blocks, widths)):
            layers = []
            for j in range(n):
                layers.append(BasicBlock(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.stages = len(blocks)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for i in range(self.stages):
            x = getattr(self, f"layer{i + 1}")(x)
        x = self.avgpool(x)
        return self.fc(torch.flatten(x, 1))


def resnet20(*, width: float = 1, in_channels: int = 3, num_classes: int = 10) -> ResNet:
    """ResNet-20 for small images (CIFAR-10: 32x32; digits: 8x8); ``width`` scales the
    ``16, 32, 64`` channels of the stages (0.5: ``8, 16, 32``)."""
    w = [max(1, int(round(c * width))) for c in (16, 32, 64)]
    return ResNet((3, 3, 3), tuple(w), stem="cifar", in_channels=in_channels,
                  num_classes=num_classes)


def resnet18(*, width: int = 64, in_channels: int = 3, num_classes: int = 1000) -> ResNet:
    """ResNet-18 (``width`` = channels of the first stage; 64 is the published network)."""
    return ResNet((2, 2, 2, 2), (width, 2 * width, 4 * width, 8 * width), stem="imagenet",
                  in_channels=in_channels, num_classes=num_classes)


def _divisible(v, divisor=8):
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _conv_bn(cin, cout, k, stride, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """1x1 expansion (``t`` > 1), 3x3 depthwise, 1x1 linear projection; residual sum when the
    stride is 1 and the width unchanged."""

    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hidden = int(round(cin * t))
        self.use_res = stride == 1 and cin == cout
        layers = [] if t == 1 else [_conv_bn(cin, hidden, 1, 1)]
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


#: MobileNetV2's block table: expansion t, channels c, repeats n, first stride s.
MOBILENET_V2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                         (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class MobileNetV2(nn.Module):
    def __init__(self, *, width: float = 1.0, in_channels: int = 3, num_classes: int = 1000,
                 stem_stride: int = 2, settings=MOBILENET_V2_SETTINGS, last_channel: int = 1280,
                 dropout: float = 0.2):
        super().__init__()
        cin = _divisible(32 * width)
        last = _divisible(last_channel * max(1.0, width))
        feats = [_conv_bn(in_channels, cin, 3, stem_stride)]
        for t, c, n, s in settings:
            cout = _divisible(c * width)
            for i in range(n):
                feats.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        feats.append(_conv_bn(cin, last, 1, 1))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(torch.flatten(x, 1))


def mobilenet_v2(**kwargs) -> MobileNetV2:
    return MobileNetV2(**kwargs)


#: Digits-sized MobileNetV2 (8x8 input): stride-1 stem, two downsampling stages.
DIGITS_MOBILENET_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2))

#: Torch models by the names the toolkit uses (``digits-cnn`` / ``digits-mlp`` match
#: :data:`sim.dnn.MODELS`; the others are the larger networks for digits, 1x8x8 inputs, whose
#: weights ``scripts/train_torch_digits.py`` writes to ``sim/nn/weights``).
TORCH_MODELS = {
    "digits-cnn": lambda: DigitsCNN(),
    "digits-mlp": lambda: DigitsMLP(),
    "digits-resnet20": lambda: resnet20(width=0.5, in_channels=1, num_classes=10),
    "digits-resnet18": lambda: resnet18(width=8, in_channels=1, num_classes=10),
    "digits-mobilenetv2": lambda: mobilenet_v2(width=0.5, in_channels=1, num_classes=10,
                                               stem_stride=1,
                                               settings=DIGITS_MOBILENET_SETTINGS,
                                               last_channel=128, dropout=0.0),
}

#: Input side of the digits networks (digits images are 8x8; ResNet-18 gets them upsampled 4x by
#: pixel repetition, :func:`digits_input`, so that its 7x7/2 stem and max pool leave 8x8 maps).
DIGITS_SIDE = {"digits-resnet18": 32}

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def digits_input(name: str, x):
    """Digits images ``(B, 1, 8, 8)`` as network ``name`` takes them (numpy in, numpy out)."""
    import numpy as np

    side = DIGITS_SIDE.get(name, 8)
    x = np.asarray(x)
    if side == 8:
        return x
    f = side // 8
    return np.repeat(np.repeat(x, f, axis=2), f, axis=3)


def weights_path(name: str):
    return WEIGHTS_DIR / f"{name.replace('-', '_')}.npz"


def load_torch(name: str):
    """A torch model of :data:`TORCH_MODELS` with its stored trained weights (eval mode,
    float32): ``digits-cnn`` / ``digits-mlp`` from ``sim/dnn/weights``, the larger ones from
    ``sim/nn/weights`` (written by ``scripts/train_torch_digits.py``)."""
    import numpy as np

    from sim.dnn.errors import DnnError

    if name in ("digits-cnn", "digits-mlp"):
        return load_digits_torch(name)
    model = build_torch(name)
    path = weights_path(name)
    if not path.is_file():
        raise DnnError(f"no stored weights for {name} ({path}); run "
                       "scripts/train_torch_digits.py")
    with np.load(path, allow_pickle=False) as f:
        state = {k: torch.as_tensor(f[k]) for k in f.files}
    model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in state.items()})
    return model.eval()


def load_digits_torch(name: str, dtype=None):
    """Built-in ``digits-cnn`` / ``digits-mlp`` as a torch model (parameters of ``dtype``,
    default float32) with the stored weights of :func:`sim.dnn.models.load_model`
    (``sim/dnn/weights``)."""
    from sim.dnn.errors import DnnError
    from sim.dnn.models import load_model

    if name not in ("digits-cnn", "digits-mlp"):
        raise DnnError(f"no stored weights for torch model {name!r}; stored: digits-cnn, "
                       "digits-mlp")
    return digits_torch_from_graph(name, load_model(name), dtype)


def digits_torch_from_graph(name: str, graph, dtype=None):
    """A fresh torch ``digits-cnn`` / ``digits-mlp`` (eval mode, parameters of ``dtype``,
    default float32) holding the weights of its :mod:`sim.dnn` ``graph`` (e.g.
    ``sim.dnn.models.build(name, init_weights(name))``)."""
    import numpy as np

    model = build_torch(name).to(dtype or torch.float32)
    with torch.no_grad():
        for node in graph.gemm_nodes():
            layer = model.get_submodule(node.name)
            layer.weight.copy_(torch.as_tensor(np.asarray(node.attrs["W"]).reshape(
                layer.weight.shape)))
            layer.bias.copy_(torch.as_tensor(np.asarray(node.attrs["b"])))
    return model.eval()


def digits_network(name: str, data=None):
    """A digits network as a :mod:`sim.dnn` graph with its stored weights, and ``data``
    (a :class:`sim.dnn.data.Dataset` of digits images, default the digits splits) as the
    network takes it: ``(graph, dataset)``. Built-in models come from
    :func:`sim.dnn.models.load_model`, the torch-trained ones (``digits-resnet20``, ...)
    through :func:`sim.nn.to_graph` (batch norm folded)."""
    from sim.dnn.data import Dataset, load_digits_split
    from sim.dnn.models import MODELS, load_model

    data = load_digits_split() if data is None else data
    if name in MODELS:
        return load_model(name), data
    from .convert import to_graph

    model = load_torch(name)
    data = Dataset(data.name, digits_input(name, data.x_calib), data.y_calib,
                   digits_input(name, data.x_test), data.y_test, data.classes)
    return to_graph(model, data.image_shape, name=name), data


def build_torch(name: str):
    """A fresh (untrained) torch model of one of :data:`TORCH_MODELS`."""
    from sim.dnn.errors import DnnError

    if name not in TORCH_MODELS:
        raise DnnError(f"unknown model {name!r}; torch models: {', '.join(TORCH_MODELS)}")
    return TORCH_MODELS[name]()
