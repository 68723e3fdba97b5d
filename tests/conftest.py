"""Suite-wide pytest settings.

Scheduling: with ``-n 2 --dist loadscope`` pytest-xdist hands out whole modules/classes in
collection order, so one long scope at the end leaves a worker idle. The known long scopes
(:data:`LONG_SCOPES`, CPU seconds measured with ``benchmarks/suite_cpu.py``) are collected
first, longest first (the LPT rule), the rest keep their order.

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

#: Scope (file, or file::Class) -> CPU seconds it took (fresh clone, cold caches, 2 idle
#: cores of this stop's slower machine; ``benchmarks/suite_cpu.py`` of an ``AXM_CPU_PROFILE``
#: run).
LONG_SCOPES = {
    "tests/test_import_mult.py": 256,
    "tests/test_bad_inputs.py": 196,           # includes compiling YoWASP Yosys when cold
    "tests/test_mult_rtl.py::TestIcarusWide": 182,
    "tests/test_array_rtl.py": 125,
    "tests/test_boards_build.py": 114,
    "tests/test_cost.py": 106,
    "tests/test_mult_rtl.py::TestIcarusNarrow": 99,
    "tests/test_mult_rtl.py::TestVerilator": 59,
    "tests/test_rtlcheck_cli.py": 58,
    "tests/test_lint.py": 48,
    "tests/test_verilator_cache.py": 44,
    "tests/test_uart_e2e.py": 36,
    "tests/test_onnx_export.py": 36,
    "tests/test_sources.py": 35,
    "tests/test_dse.py": 21,
    "tests/test_power.py": 17,
    "tests/test_nn.py": 16,
    "tests/test_emulate.py": 13,
    "tests/test_gen.py": 12,
}


def _scope_cost(item) -> float:
    path = item.nodeid.split("::")[0]
    cls = getattr(item, "cls", None)
    if cls is not None and f"{path}::{cls.__name__}" in LONG_SCOPES:
        return LONG_SCOPES[f"{path}::{cls.__name__}"]
    return LONG_SCOPES.get(path, 0.0)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Keep the LPT order under ``--dist loadscope``: pytest-xdist otherwise re-sorts the
    scopes by their number of tests (its ``--loadscope-reorder`` default), which put the two
    slow Icarus banks (two tests each) last and left one worker alone for minutes."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: -_scope_cost(item))       # stable: order kept within scopes


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


def one_torch_thread():
    """One torch intra-op thread while a test module runs (use as an autouse module fixture in
    torch tests): the suite runs on 2 cores with 2 workers, and torch's own pool would only
    oversubscribe them (tiny tensors: spinning threads cost more than they save)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
