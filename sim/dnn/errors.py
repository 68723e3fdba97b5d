"""The one exception type of :mod:`sim.dnn` (one-line, user-facing messages)."""

from hw.errors import ToolkitError

__all__ = ["DnnError"]


class DnnError(ToolkitError, ValueError):
    """Bad model, dataset, ONNX file or configuration. The message is one line; the CLI prints it
    and exits with status 2."""
