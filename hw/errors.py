"""The toolkit's base exception.

Every error a user can cause (a bad name, a bad number, a file that cannot be read or written, a
tool that fails) is a :class:`ToolkitError` whose message is one line that says what is wrong
and, where it helps, what to do. The CLIs (:func:`hw.cli.run_main`) print it on stderr and exit
with status 2; library callers catch it like any exception.
"""

__all__ = ["ToolkitError"]


class ToolkitError(Exception):
    """A user-facing failure; ``str(err)`` is one line."""
