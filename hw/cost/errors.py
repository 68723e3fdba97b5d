"""Exceptions of :mod:`hw.cost` (every message is one user-facing line)."""

__all__ = ["CostError", "ToolError", "DoesNotFit"]


class CostError(Exception):
    """Bad input or a failed tool run. ``str(err)`` is one line; the CLI prints it and exits 2."""


class ToolError(CostError):
    """A tool is missing, is not runnable, failed or timed out."""


class DoesNotFit(CostError):
    """The design does not fit the device (raised by place and route)."""
