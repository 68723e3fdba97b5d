"""How fast every CLI refuses the bad invocations of ``tests/bad_inputs.py`` (not a test).

    python benchmarks/bench_bad_inputs.py                  # every case as a real process
    python benchmarks/bench_bad_inputs.py -k hw.cost -j 2  # cases whose id matches, 2 at once
    python benchmarks/bench_bad_inputs.py --limit 30       # stop a case after 30 s
    python benchmarks/bench_bad_inputs.py --root /tmp/old  # the same corpus on another checkout

Each case runs as ``python -m CLI ...`` in a fresh scratch folder with a private ``TMPDIR`` and
an empty cache (``AXM_CACHE_DIR``), exactly as ``tests/test_bad_inputs.py`` runs its subprocess
subset, and is checked the same way (exit 2, one stderr line, nothing changed, nothing left).
Prints the slowest refusals, every case over the target (a refusal should take under
``--target`` seconds, default 5: bad input is refused before any slow work) and every case that
was not refused cleanly. The known failures of the corpus (``known=``) are run too, up to
``--limit``. Wall time includes the interpreter start and the imports (~1 s for most CLIs).
Exit status 1 when a case that is not a known failure was not refused cleanly.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import test_bad_inputs as t  # noqa: E402
from bad_inputs import CASES  # noqa: E402


def _run(case, limit: float) -> tuple[float, str]:
    """Seconds the refusal took and ``"ok"`` or what was wrong."""
    timing = {}

    def timed_runner(c, scratch, tmpdir, cache):
        start = time.perf_counter()
        try:
            return t.run_as_process(c, scratch, tmpdir, cache)
        finally:
            timing["s"] = time.perf_counter() - start

    t.HANG_S = limit
    with tempfile.TemporaryDirectory(prefix="bench-bad-") as tmp:
        try:
            t.check(case, timed_runner, Path(tmp))
            verdict = "ok"
        except AssertionError as exc:
            text = " ".join(str(exc).split())
            verdict = (f"still running after {limit:g} s" if "'hang'" in text[:40] else
                       "not refused cleanly: " + text[:300])
        except BaseException as exc:      # pytest.skip (no mknod here), ...
            verdict = f"skipped: {type(exc).__name__}: {exc}"
    return timing.get("s", float("nan")), verdict


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", metavar="REGEX", default="", help="only cases whose id matches")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="cases run at once (default 1)")
    parser.add_argument("--limit", type=float, default=120, help="seconds before a case is "
                        "stopped (default 120)")
    parser.add_argument("--target", type=float, default=5.0, help="seconds a refusal may take "
                        "(default 5)")
    parser.add_argument("--root", metavar="DIR", help="run the CLIs of this checkout instead "
                        "(e.g. a git worktree of the code before a fix)")
    parser.add_argument("--top", type=int, default=15, help="slowest cases shown (default 15)")
    args = parser.parse_args(argv)
    cases = [c for c in CASES if re.search(args.k, c.id)]
    if args.root:
        t.ROOT = Path(args.root).resolve()
    start = time.perf_counter()
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        results = list(pool.map(lambda c: (c, *_run(c, args.limit)), cases))
    total = time.perf_counter() - start
    results.sort(key=lambda r: -r[1] if r[1] == r[1] else float("-inf"))
    print(f"{len(cases)} cases as processes in {total:.0f} s (-j {args.jobs}); "
          f"median {sorted(r[1] for r in results)[len(results) // 2]:.2f} s")
    print(f"slowest {min(args.top, len(results))}:")
    for c, seconds, verdict in results[:args.top]:
        print(f"  {seconds:7.2f} s  {c.id}" + ("" if verdict == "ok" else f"  [{verdict}]")
              + (" (known)" if c.known else ""))
    over = [r for r in results if not r[1] <= args.target]
    print(f"over the {args.target:g} s target: {len(over)}")
    for c, seconds, verdict in over:
        print(f"  {seconds:7.2f} s  {c.id}" + (" (known failure)" if c.known else ""))
    bad = [r for r in results if r[2] != "ok" and not r[2].startswith("skipped")]
    print(f"not refused cleanly: {len(bad)}")
    for c, seconds, verdict in bad:
        print(f"  {c.id}: {verdict}" + (" (known failure)" if c.known else ""))
    return 1 if any(not c.known for c, _, _ in bad) else 0


if __name__ == "__main__":
    sys.exit(main())
