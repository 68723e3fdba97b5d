"""The toolkit's one cache: where derived data is kept between runs, and how it is written.

Rule (the only one): the cache root is ``$AXM_CACHE_DIR`` when that is set and not empty, else
``$XDG_CACHE_HOME/axmtoolkit``, else ``~/.cache/axmtoolkit``. Every CLI's ``--cache-dir DIR``
means the same as ``AXM_CACHE_DIR=DIR``; ``--no-cache`` neither reads nor writes it. One folder
per kind of entry below the root (:data:`KINDS`).

Every entry is keyed by the content it was built from (sources, tool versions, options), so a
stale hit needs a tool rebuilt without a version change. Entries are written atomically
(temporary file in the same folder, then a rename), so a concurrent reader never sees half an
entry, and a failure to write is never an error: deleting the cache only costs time.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

__all__ = ["KINDS", "SCHEMA", "cache_root", "cache_dir", "save_atomically", "write_atomically",
           "key_digest", "Cache"]

#: The cache's sub-folders and what they hold.
KINDS = {
    "cost": "synthesis and place-and-route figures (JSON, one file per key)",
    "verilog-tables": "product tables derived from imported netlists (.npy)",
    "verilator": "design-independent Verilator objects (runtime, cocotb main), by compile line",
    "outputs": "records of the files the CLIs wrote, so a rerun may replace its own outputs",
    "emulate": "measured speed of sim.emulate's kernels on this machine (JSON), for routing",
    "dse": "bit-exact accuracy of design points evaluated by sim.dse (JSON), by network, "
           "images and assignment",
}

#: Bumped when the meaning of cached JSON figures changes.
SCHEMA = 1


def cache_root() -> Path:
    """The cache root (see the module docstring), evaluated now."""
    env = os.environ.get("AXM_CACHE_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base).expanduser() if base else Path.home() / ".cache") / "axmtoolkit"


def cache_dir(kind: str) -> Path:
    """The folder of one kind of entry (one of :data:`KINDS`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown cache kind {kind!r}; known: {', '.join(KINDS)}")
    return cache_root() / kind


def write_atomically(dst: Path, data: bytes) -> bool:
    """Write ``data`` to ``dst`` through a temporary file and a rename. Returns ``False`` (and
    leaves nothing behind) when that is impossible: caching is optional."""
    tmp = None
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=".tmp-", suffix=dst.suffix)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dst)
        return True
    except OSError:
        if tmp is not None:
            with _quiet():
                os.unlink(tmp)
        return False


def save_atomically(src: Path, dst: Path) -> bool:
    """Copy the file ``src`` to ``dst`` atomically (see :func:`write_atomically`)."""
    try:
        data = Path(src).read_bytes()
    except OSError:
        return False
    return write_atomically(dst, data)


class _quiet:
    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return kind is not None and issubclass(kind, OSError)


def key_digest(kind: str, key: dict) -> str:
    """SHA-256 of a JSON key (sorted), its kind and :data:`SCHEMA`."""
    text = json.dumps({"kind": kind, "schema": SCHEMA, "key": key}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class Cache:
    """JSON result cache (the ``cost`` folder by default). ``Cache(enabled=False)`` never hits
    and never writes; ``root`` names another folder (tests, benchmarks). The root is fixed when
    the object is made."""

    def __init__(self, root: str | os.PathLike | None = None, *, enabled: bool = True):
        self._root = Path(root) if root is not None else cache_dir("cost")
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
        if not isinstance(entry, dict) or entry.get("key") != json.loads(json.dumps(key)):
            return None     # a digest collision or a damaged entry

        return entry.get("value")

    def put(self, kind: str, key: dict, value) -> None:
        """Store ``value`` (JSON-able) under ``key``. Failing to write is not an error."""
        if not self._enabled:
            return
        text = json.dumps({"kind": kind, "schema": SCHEMA, "key": key, "value": value},
                          sort_keys=True, indent=1)
        write_atomically(self._path(kind, key), text.encode())
