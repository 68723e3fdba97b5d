"""Where the test suite's CPU time goes (load-independent, unlike wall time).

    AXM_CPU_PROFILE=/tmp/cpu.jsonl python -m pytest -n 2 --dist loadscope -q
    python benchmarks/suite_cpu.py /tmp/cpu.jsonl [--top 30]

Prints the CPU seconds per test file and the most expensive tests (setup + call + teardown;
the CPU of the processes a test waited for is included, that of background threads of other
tests is not), and the total: on 2 cores the suite cannot take less wall time than total / 2.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile", help="the AXM_CPU_PROFILE file")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args(argv)
    per_test, per_file = defaultdict(float), defaultdict(float)
    with open(args.profile) as f:
        for line in f:
            rec = json.loads(line)
            per_test[rec["test"]] += rec["cpu_s"]
            per_file[rec["test"].split("::")[0]] += rec["cpu_s"]
    total = sum(per_file.values())
    print(f"total {total:.0f} CPU s over {len(per_test)} tests (>= {total / 2:.0f} s wall on "
          "2 cores)\n\nper file:")
    for name, s in sorted(per_file.items(), key=lambda kv: -kv[1]):
        print(f"  {s:7.1f} s  {100 * s / total:5.1f} %  {name}")
    print(f"\ntop {args.top} tests:")
    for name, s in sorted(per_test.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"  {s:7.1f} s  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
