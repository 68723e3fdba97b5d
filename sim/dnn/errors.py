"""The one exception type of :mod:`sim.dnn` (one-line, user-facing messages)."""

__all__ = ["DnnError"]


class DnnError(ValueError):
    """Bad model, dataset, ONNX file or configuration. The message is one line; the CLI prints it
    and exits with status 2."""
