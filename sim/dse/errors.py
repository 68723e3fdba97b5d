"""Errors of the design-space exploration (one-line messages)."""

from hw.errors import ToolkitError


class DseError(ToolkitError):
    """A design space, objective, constraint or cluster that cannot be used as given."""
