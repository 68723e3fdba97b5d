"""Exceptions of :mod:`hw.cost` (every message is one user-facing line)."""

from hw.errors import ToolkitError

__all__ = ["CostError", "ToolError", "DoesNotFit"]


class CostError(ToolkitError):
    """Bad input or a failed tool run. ``str(err)`` is one line; the CLI prints it and exits 2."""


class ToolError(CostError):
    """A tool is missing, is not runnable, failed or timed out."""


class DoesNotFit(CostError):
    """The design does not fit the device (raised by place and route).

    ``over`` maps each exceeded resource to ``{"used": n, "available": n}`` when nextpnr
    reported it (empty otherwise).
    """

    def __init__(self, message: str, over: dict | None = None):
        super().__init__(message)
        self.over = dict(over or {})
