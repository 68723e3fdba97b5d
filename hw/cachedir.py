"""Where the toolkit keeps derived data between runs, and atomic writes into it.

Location: ``$AXM_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/axmtoolkit``, else
``~/.cache/axmtoolkit``. Sub-folders: ``cost/`` (synthesis figures), ``verilog-tables/``
(tables derived from imported netlists), ``verilator-runtime/`` (prebuilt Verilator objects).
Everything there is an optimisation: deleting it only costs time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["cache_dir", "save_atomically"]


def cache_dir() -> Path:
    """The toolkit's cache root (see the module docstring)."""
    env = os.environ.get("AXM_CACHE_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base).expanduser() if base else Path.home() / ".cache") / "axmtoolkit"


def save_atomically(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` through a temporary file and a rename, so a concurrent reader never
    sees half a file (a concurrent writer may win). Errors are ignored: caching is optional."""
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dst.parent, suffix=".tmp")
        os.close(fd)
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except OSError:
        pass
