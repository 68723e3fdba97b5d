"""The one exception type of :mod:`sim.perf` (one-line, user-facing messages)."""

from hw.errors import ToolkitError

__all__ = ["PerfError"]


class PerfError(ToolkitError, ValueError):
    """Bad layer, workload file, array or energy configuration. The message is one line; the
    CLI prints it and exits with status 2."""
