"""Writing a command's outputs without harming anything else.

Every CLI of the toolkit writes through this module, under these rules:

* **Regular files only.** An output path that exists and is a directory, a device (``/dev/null``),
  a FIFO, a socket or a symbolic link is refused; nothing is ever renamed onto such a path.
  ``-`` means standard output where a command offers it.
* **Nothing is replaced that the toolkit did not write.** An existing file is replaced only when
  it is this toolkit's own earlier output and unchanged since (the SHA-256 of every file written
  is recorded in the cache's ``outputs/`` folder, see :mod:`hw.cache`), or with ``force=True``
  (``--force``). An output *folder* must be missing, empty or hold only such files, unless
  ``force`` (then same-named files are replaced and nothing else is touched).
* **Nothing is deleted** but the temporary files and folders a run made itself, and folders it
  created for outputs that then failed.
* **Atomic, all or nothing.** Each file is written under a temporary name (``.axm-tmp-*``) in
  its own folder, and all are renamed into place only after every one was written, so a failed
  or interrupted run leaves the previous state and no partial output.

:func:`check_file` and :func:`check_folder` validate targets up front (before slow work);
:func:`write_files` writes a set of files; :func:`staged_folder` lets a tool build many files in
a private folder that is moved into the output folder only on success.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

from .cache import cache_dir, write_atomically
from .errors import ToolkitError

__all__ = ["OutputError", "TMP_PREFIX", "check_file", "check_folder", "write_files",
           "write_file", "staged_folder", "Stage", "is_own_output", "record_output"]

TMP_PREFIX = ".axm-tmp-"


class OutputError(ToolkitError):
    """An output cannot be written as asked; the message is one line naming the path."""


# -- records of what the toolkit wrote ------------------------------------------------------------
def _record_path(path: Path) -> Path:
    key = hashlib.sha256(os.fsencode(os.path.abspath(path))).hexdigest()
    return cache_dir("outputs") / key[:2] / f"{key}.json"


def _sha256_file(path: Path) -> str | None:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


def record_output(path: Path, digest: str) -> None:
    """Remember that the toolkit wrote ``path`` with content ``digest`` (best effort)."""
    entry = {"path": os.path.abspath(path), "sha256": digest}
    write_atomically(_record_path(path), json.dumps(entry).encode())


def is_own_output(path: Path) -> bool:
    """True when ``path`` is a regular file the toolkit wrote and nobody changed since."""
    try:
        entry = json.loads(_record_path(path).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(entry, dict) or entry.get("path") != os.path.abspath(path):
        return False
    return entry.get("sha256") == _sha256_file(path)


# -- checks -----------------------------------------------------------------------------------
def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _existing_ancestor(path: Path) -> Path:
    for parent in Path(os.path.abspath(path)).parents:
        if os.path.lexists(parent):
            return parent
    return Path("/")


def _not_a_folder(path: Path, label: str) -> OutputError:
    """The error for a path with a non-folder among its parents."""
    for parent in reversed(Path(os.path.abspath(path)).parents):
        try:
            st = os.lstat(parent)
        except OSError:
            break
        if not stat.S_ISDIR(st.st_mode):
            return OutputError(f"{label}: {parent} is {_kind(st.st_mode)}, not a folder")
    return OutputError(f"{label}: a part of the path is not a folder")


def _cannot_create_in(folder: Path) -> str | None:
    """Why nothing can be created in ``folder``, or ``None``. The mode bits (``os.access``) are
    not enough: root passes them everywhere, and /proc or /sys refuse new entries whatever
    they say; so a private folder is made there and removed at once."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return "permission denied"
    try:
        probe = tempfile.mkdtemp(prefix=f"{TMP_PREFIX}probe-", dir=folder)
    except OSError as exc:
        return exc.strerror or str(exc)
    with contextlib.suppress(OSError):
        os.rmdir(probe)
    return None


def _check_parent(path: Path, label: str) -> None:
    parent = Path(os.path.abspath(path)).parent
    if os.path.isdir(parent):
        why = _cannot_create_in(parent)
        if why:
            raise OutputError(f"{label}: cannot write into {parent} ({why})")
        return
    ancestor = _existing_ancestor(path)
    if not os.path.isdir(ancestor):
        raise _not_a_folder(path, label)
    why = _cannot_create_in(ancestor)
    if why:
        raise OutputError(f"{label}: cannot create folders in {ancestor} ({why})")


def _lstat(path: Path, label: str):
    """``os.lstat(path)``, or ``None`` when it does not exist and may be created (its nearest
    existing folder is writable); :class:`OutputError` otherwise."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        _check_parent(path, label)
        return None
    except NotADirectoryError:
        raise _not_a_folder(path, label) from None
    except OSError as exc:
        raise OutputError(f"{label}: {exc.strerror or exc}") from None


def check_file(path, *, force: bool = False, label: str | None = None) -> Path:
    """Validate one output file path; return it as a :class:`Path`. Raises :class:`OutputError`.

    Missing folders above it are allowed (they will be created) when the nearest existing one is
    a writable folder.
    """
    path = Path(path)
    label = label or str(path)
    if not str(path) or path.name in ("", ".", ".."):
        raise OutputError(f"{label}: not a file name")
    st = _lstat(path, label)
    if st is None:
        return path
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{label} exists and is {_kind(st.st_mode)}; outputs are written "
                          "only to regular files")
    _check_parent(path, label)
    if not force and not is_own_output(path):
        raise OutputError(f"{label} exists and was not written by axmtoolkit (or was changed "
                          "since); pass --force to replace it")
    return path


def check_folder(path, *, force: bool = False, label: str | None = None) -> Path:
    """Validate an output folder: missing (it will be created), empty, holding only the
    toolkit's own unchanged outputs, or anything with ``force``. Raises :class:`OutputError`."""
    path = Path(path)
    label = label or str(path)
    st = _lstat(path, label)
    if st is None:
        return path
    if not stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{label} exists and is {_kind(st.st_mode)}, not a folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{label}: cannot write into it (permission denied)")
    if not force:
        foreign = [e.name for e in os.scandir(path) if not e.name.startswith(TMP_PREFIX)
                   and not (e.is_file(follow_symlinks=False) and is_own_output(Path(e.path)))]
        if foreign:
            raise OutputError(f"{label} is not empty ({len(foreign)} entr"
                              f"{'y' if len(foreign) == 1 else 'ies'} not written by axmtoolkit, "
                              f"e.g. {sorted(foreign)[0]!r}); choose a new folder or pass "
                              "--force (files of the same names are then replaced, nothing "
                              "else is touched)")
    return path


# -- writing ----------------------------------------------------------------------------------
def _make_folders(folder: Path, created: list[Path]) -> None:
    missing = []
    p = Path(os.path.abspath(folder))
    while not os.path.lexists(p):
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        os.mkdir(d)
        created.append(d)


def _remove_created(created: list[Path]) -> None:
    for d in reversed(created):
        with contextlib.suppress(OSError):
            os.rmdir(d)         # only if still empty


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_files(files: dict, *, force: bool = False) -> list[Path]:
    """Write ``{path: bytes | str}`` all or nothing (see the module docstring); return the
    paths in order. Text is written as UTF-8 with ``\\n`` line ends. Raises
    :class:`OutputError` before writing anything when a target is not allowed, and on I/O
    errors, after putting back what was there (files it replaced are restored from hard-link
    backups, files it created are removed)."""
    targets = [(check_file(p, force=force), data) for p, data in files.items()]
    created: list[Path] = []
    temps: list[tuple[str, Path, str]] = []
    backups: dict[Path, str] = {}
    placed: list[Path] = []
    try:
        for path, data in targets:
            _make_folders(path.parent, created)
            blob = data.encode("utf-8") if isinstance(data, str) else bytes(data)
            fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", dir=path.parent)
            temps.append((tmp, path, hashlib.sha256(blob).hexdigest()))
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.chmod(tmp, 0o666 & ~_umask())      # mkstemp makes 0600 files
        for path, _ in targets:                   # re-check: a path may have appeared meanwhile
            check_file(path, force=force)
            if os.path.lexists(path):
                backups[path] = _backup(path)
        for tmp, path, _ in temps:
            os.replace(tmp, path)
            placed.append(path)
    except BaseException as exc:
        _undo(placed, backups)
        _cleanup(temps, created)
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {exc.filename or 'output'}: "
                              f"{exc.strerror or exc}") from None
        raise
    for backup in backups.values():
        with contextlib.suppress(OSError):
            os.unlink(backup)
    for _, path, digest in temps:
        record_output(path, digest)
    return [path for path, _ in targets]


def _backup(path: Path) -> str:
    """A hard link (else a copy) of ``path`` beside it, to restore it if the write fails."""
    fd, backup = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.old.", dir=path.parent)
    os.close(fd)
    os.unlink(backup)
    try:
        os.link(path, backup)
    except OSError:
        shutil.copy2(path, backup)
    return backup


def _undo(placed: list[Path], backups: dict) -> None:
    for path in placed:
        with contextlib.suppress(OSError):
            if path in backups:
                os.replace(backups.pop(path), path)
            else:
                os.unlink(path)
    for backup in backups.values():
        with contextlib.suppress(OSError):
            os.unlink(backup)


def _cleanup(temps, created) -> None:
    for tmp, _, _ in temps:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    _remove_created(created)


def write_file(path, data, *, force: bool = False) -> Path:
    """:func:`write_files` for one file."""
    return write_files({Path(path): data}, force=force)[0]


class Stage:
    """What :func:`staged_folder` yields: ``path`` (the private folder) and, after the ``with``
    block succeeded, ``moved`` (the files now in the output folder)."""

    def __init__(self, path: Path):
        self.path = path
        self.moved: list[Path] = []


@contextlib.contextmanager
def staged_folder(out_dir, *, force: bool = False, keep=None):
    """Yield a :class:`Stage` whose ``path`` is a fresh private folder (``OUT/.axm-tmp-*``) to
    build in; on success move its files
    (``keep(relative_path) -> bool`` selects them, default all) into ``out_dir`` under the rules
    of :func:`write_files`, then remove the private folder. On any failure or interruption the
    private folder is removed and ``out_dir`` is as before (created folders removed again).

    Sub-folders are moved file by file. Raises :class:`OutputError` up front when ``out_dir``
    is not allowed (:func:`check_folder`).
    """
    out_dir = check_folder(out_dir, force=force)
    created: list[Path] = []
    try:
        _make_folders(out_dir, created)
        stage = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", dir=out_dir))
    except OSError as exc:
        _remove_created(created)
        raise OutputError(f"cannot create {out_dir}: {exc.strerror or exc}") from None
    staged = Stage(stage)
    try:
        yield staged
        files = {}
        for root, _, names in os.walk(stage):
            for name in names:
                src = Path(root, name)
                rel = src.relative_to(stage)
                if (keep is None or keep(rel)) and src.is_file() and not src.is_symlink():
                    files[rel] = src
        staged.moved = _move_in(files, out_dir, force)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        _remove_created(created)
        raise
    shutil.rmtree(stage, ignore_errors=True)


def _move_in(files: dict, out_dir: Path, force: bool) -> list[Path]:
    """Move staged files (same file system) into ``out_dir`` with the checks of
    :func:`write_files`."""
    targets = {rel: check_file(out_dir / rel, force=force) for rel in sorted(files)}
    created: list[Path] = []
    done = []
    try:
        for rel, dst in targets.items():
            _make_folders(dst.parent, created)
            os.replace(files[rel], dst)
            done.append(dst)
    except OSError as exc:
        _remove_created(created)
        raise OutputError(f"cannot move outputs into {out_dir}: {exc.strerror or exc}") from None
    for dst in done:
        digest = _sha256_file(dst)
        if digest:
            record_output(dst, digest)
    return done
