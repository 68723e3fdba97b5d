"""On-disk result cache for tool runs.

Location: ``$AXM_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/axmtoolkit/cost``, else
``~/.cache/axmtoolkit/cost``. One JSON file per entry, named by the SHA-256 of the key, which
always contains the tool versions, the hash of the design's Verilog text and every option that
changes the result, so a stale hit is impossible short of a tool rebuilt without a version change.
Entries are written atomically (temporary file + rename); deleting the folder is always safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

__all__ = ["SCHEMA", "Cache", "default_cache_dir", "key_digest"]

#: Bumped when the meaning of cached figures changes.
SCHEMA = 1


def default_cache_dir() -> Path:
    env = os.environ.get("AXM_CACHE_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "axmtoolkit" / "cost"


def key_digest(kind: str, key: dict) -> str:
    text = json.dumps({"kind": kind, "schema": SCHEMA, "key": key}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class Cache:
    """JSON result cache. ``Cache(enabled=False)`` never hits and never writes.

    ``root`` defaults to :func:`default_cache_dir` evaluated at construction time.
    """

    def __init__(self, root: str | os.PathLike | None = None, *, enabled: bool = True):
        self._root = Path(root) if root is not None else default_cache_dir()
        self._enabled = enabled

    @property
    def root(self) -> Path:
        return self._root

    @property
    def enabled(self) -> bool:
        return self._enabled

    def _path(self, kind: str, key: dict) -> Path:
        digest = key_digest(kind, key)
        return self._root / kind / digest[:2] / f"{digest}.json"

    def get(self, kind: str, key: dict):
        """The stored value for ``key``, or ``None``. Unreadable entries count as misses."""
        if not self._enabled:
            return None
        try:
            entry = json.loads(self._path(kind, key).read_text())
        except (OSError, ValueError):
            return None
        return entry.get("value") if isinstance(entry, dict) else None

    def put(self, kind: str, key: dict, value) -> None:
        """Store ``value`` (JSON-able) under ``key``. Failing to write is not an error."""
        if not self._enabled:
            return
        path = self._path(kind, key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w") as f:
                json.dump({"kind": kind, "schema": SCHEMA, "key": key, "value": value}, f,
                          sort_keys=True, indent=1)
            os.replace(tmp, path)
        except OSError:
            pass
