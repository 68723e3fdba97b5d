"""Datasets: scikit-learn's bundled digits (always available), MNIST (IDX files) and CIFAR-10
(python pickle batches) from a user-given directory. Nothing is downloaded.

Every loader returns a :class:`Dataset` of float images ``(B, C, H, W)`` in ``[0, 1]`` with a
*calibration* split (for the int8 activation scales) disjoint from the *test* split:

* ``digits``: 1797 8x8 images (pixel values 0..16, scaled by 1/16), split with a fixed seed into
  train 60 % / calibration 10 % / test 30 % (stratified).
* ``mnist:DIR``: ``t10k-images-idx3-ubyte`` / ``t10k-labels-idx1-ubyte`` (optionally ``.gz``, or
  ``t10k-images.idx3-ubyte`` spelling) are the test set; calibration uses the first images of
  ``train-images-idx3-ubyte`` when present, else the first ``calib`` test images (which are then
  left out of the test set).
* ``cifar10:DIR``: ``test_batch`` is the test set, ``data_batch_1`` (or the start of the test
  batch, as above) the calibration set. The pickles are read with a restricted unpickler that
  only accepts plain containers and numpy arrays.
"""

from __future__ import annotations

import gzip
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hw.extras import require

from .errors import DnnError

__all__ = ["Dataset", "load_digits_split", "load_mnist", "load_cifar10", "load_dataset",
           "read_idx", "DATASETS"]

DATASETS = ("digits", "mnist:DIR", "cifar10:DIR")


@dataclass
class Dataset:
    name: str
    x_calib: np.ndarray
    y_calib: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int
    x_train: np.ndarray | None = None
    y_train: np.ndarray | None = None

    @property
    def image_shape(self) -> tuple:
        return tuple(self.x_test.shape[1:])

    def limited(self, n: int | None) -> "Dataset":
        """The same dataset with at most ``n`` test images."""
        if n is None:
            return self
        return Dataset(self.name, self.x_calib, self.y_calib, self.x_test[:n], self.y_test[:n],
                       self.classes, self.x_train, self.y_train)

    def normalized(self, mean, std) -> "Dataset":
        """``(x - mean) / std`` per channel (for models trained on normalised inputs)."""
        c = self.image_shape[0]
        for label, values in (("--mean", mean), ("--std", std)):
            if np.size(values) not in (1, c):
                raise DnnError(f"{label} gives {np.size(values)} values but dataset "
                               f"{self.name} has {c} channel{'s' if c > 1 else ''}")
        mean = np.broadcast_to(np.asarray(mean, np.float64), (c,))[None, :, None, None]
        std = np.broadcast_to(np.asarray(std, np.float64), (c,))[None, :, None, None]
        if np.any(std <= 0):
            raise DnnError("--std values must be positive")
        f = lambda x: None if x is None else (x - mean) / std  # noqa: E731
        return Dataset(self.name, f(self.x_calib), self.y_calib, f(self.x_test), self.y_test,
                       self.classes, f(self.x_train), self.y_train)


def load_digits_split(seed: int = 0) -> Dataset:
    """scikit-learn's handwritten digits, split train/calibration/test = 60/10/30 %."""
    require("sklearn", "the digits dataset (sim.dnn's default)")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float64)[:, None, :, :]
    y = d.target.astype(np.int64)
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.3, random_state=seed,
                                                      stratify=y)
    x_train, x_cal, y_train, y_cal = train_test_split(x_rest, y_rest, test_size=1 / 7,
                                                      random_state=seed, stratify=y_rest)
    return Dataset("digits", x_cal, y_cal, x_test, y_test, 10, x_train, y_train)


# -- MNIST -----------------------------------------------------------------------------------------

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (``.gz`` allowed): magic ``00 00 TYPE NDIM``, big-endian int32 dims."""
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DnnError(f"cannot read {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or raw[3] == 0:
        raise DnnError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DnnError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    count = int(np.prod(dims)) if dims else 0
    if len(raw) != header + count * dtype.itemsize:
        raise DnnError(f"{path}: IDX size mismatch (header says {dims}, file has "
                       f"{len(raw) - header} data bytes)")
    return np.frombuffer(raw, dtype=dtype, offset=header, count=count).reshape(dims)


def _find(directory: Path, stem: str, kind: str) -> Path | None:
    for name in (f"{stem}-{kind}", f"{stem}-{kind.replace('-idx', '.idx')}"):
        for suffix in ("", ".gz"):
            p = directory / (name + suffix)
            if p.is_file():
                return p
    return None


def _images_labels(directory, stem):
    ip = _find(directory, stem, "images-idx3-ubyte")
    lp = _find(directory, stem, "labels-idx1-ubyte")
    if ip is None or lp is None:
        return None
    images, labels = read_idx(ip), read_idx(lp)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DnnError(f"MNIST files in {directory} have inconsistent shapes "
                       f"{images.shape} / {labels.shape}")
    return images.astype(np.float64)[:, None] / 255.0, labels.astype(np.int64)


def _directory(path, what) -> Path:
    d = Path(path)
    if not str(path):
        raise DnnError(f"{what}: give a directory, e.g. {what}:/data/{what}")
    if not d.exists():
        raise DnnError(f"{what} directory {d} does not exist")
    if not d.is_dir():
        raise DnnError(f"{what} path {d} is not a directory")
    return d


def _split_calibration(name, test, calib_source, calib, classes):
    (xt, yt) = test
    if calib_source is not None:
        xc, yc = calib_source
        return Dataset(name, xc[:calib], yc[:calib], xt, yt, classes)
    if len(xt) <= calib:
        raise DnnError(f"{name}: {len(xt)} test images are too few to also calibrate on {calib}")
    return Dataset(name, xt[:calib], yt[:calib], xt[calib:], yt[calib:], classes)


def load_mnist(path, calib: int = 1000) -> Dataset:
    d = _directory(path, "mnist")
    test = _images_labels(d, "t10k")
    if test is None:
        raise DnnError(f"no MNIST test files (t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte) "
                       f"in {d}")
    return _split_calibration("mnist", test, _images_labels(d, "train"), calib, 10)


# -- CIFAR-10 --------------------------------------------------------------------------------------

class _SafeUnpickler(pickle.Unpickler):
    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("builtins", "list"), ("builtins", "dict")}

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _cifar_batch(path: Path):
    try:
        obj = _SafeUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - any decoding failure is a bad file
        raise DnnError(f"{path} is not a CIFAR-10 python batch: {exc}".splitlines()[0]) from None
    if not isinstance(obj, dict):
        raise DnnError(f"{path} is not a CIFAR-10 python batch (not a dict)")
    data = obj.get(b"data", obj.get("data"))
    labels = obj.get(b"labels", obj.get("labels"))
    if data is None or labels is None:
        raise DnnError(f"{path} is not a CIFAR-10 python batch (no data/labels)")
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise DnnError(f"{path}: expected data of shape (N, 3072) and N labels, got "
                       f"{data.shape} and {labels.shape}")
    return data.reshape(-1, 3, 32, 32).astype(np.float64) / 255.0, labels


def load_cifar10(path, calib: int = 1000) -> Dataset:
    d = _directory(path, "cifar10")
    if (d / "cifar-10-batches-py").is_dir():
        d = d / "cifar-10-batches-py"
    test_path = d / "test_batch"
    if not test_path.is_file():
        raise DnnError(f"no CIFAR-10 test_batch in {d}")
    train_path = d / "data_batch_1"
    source = _cifar_batch(train_path) if train_path.is_file() else None
    return _split_calibration("cifar10", _cifar_batch(test_path), source, calib, 10)


def load_dataset(spec: str, *, calib: int = 1000, seed: int = 0) -> Dataset:
    """``digits``, ``mnist:DIR`` or ``cifar10:DIR``."""
    kind, sep, path = spec.partition(":")
    kind = kind.lower()
    if kind == "digits" and not sep:
        return load_digits_split(seed)
    if kind == "mnist" and sep:
        return load_mnist(path, calib)
    if kind == "cifar10" and sep:
        return load_cifar10(path, calib)
    raise DnnError(f"unknown dataset {spec!r}; expected one of {', '.join(DATASETS)}")
