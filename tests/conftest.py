"""Suite-wide pytest settings.

``AXM_CPU_PROFILE=FILE`` records the CPU seconds (this process and the children it waited for)
of every test's setup, call and teardown into ``FILE`` (one JSON line per phase; with xdist each
worker appends its own lines). CPU time, unlike wall time, hardly depends on the machine's load,
so ``benchmarks/suite_cpu.py FILE`` can say where the suite's time goes on a busy machine.
"""

from __future__ import annotations

import json
import os
import resource

import pytest

_PROFILE = os.environ.get("AXM_CPU_PROFILE", "").strip()


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


if _PROFILE:
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_setup(item):
        start = _cpu()
        yield
        _record(item, "setup", _cpu() - start)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(item):
        start = _cpu()
        yield
        _record(item, "call", _cpu() - start)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_teardown(item):
        start = _cpu()
        yield
        _record(item, "teardown", _cpu() - start)

    def _record(item, phase, seconds):
        with open(_PROFILE, "a") as f:
            f.write(json.dumps({"test": item.nodeid, "phase": phase,
                                "cpu_s": round(seconds, 3)}) + "\n")
