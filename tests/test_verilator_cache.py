"""The Verilator object cache never links an object into a design it was not compiled for.

Regression test: the cache used to keep cocotb's ``verilator.o`` (which includes the design's
``Vtop.h``) and linked it into the next build, so after ``check_multipliers`` on one set of
multipliers (the documented API) the bank tests crashed ("Couldn't find root handle",
``free(): invalid pointer``). Here two designs with different top-level interfaces are built
one after the other in one fresh cache, and each must check bit-exactly; the second build must reuse the cached runtime, and
the two designs must not share ``verilator.o``.
"""

from __future__ import annotations

import pytest

from hw.mult import parse
from sim.rtlcheck import check_multipliers
from sim.tb.runner import why_unavailable

pytestmark = [pytest.mark.rtl,
              pytest.mark.skipif(why_unavailable("verilator") is not None,
                                 reason=why_unavailable("verilator") or "")]


def _check(specs, workdir):
    report = check_multipliers(specs, simulator="verilator", workdir=workdir, lanes=1)
    assert report["passed"], report.get("errors") or report.get("mismatches")
    return report


def test_two_designs_share_one_cache_without_crashing(tmp_path, monkeypatch):
    monkeypatch.setenv("AXM_CACHE_DIR", str(tmp_path / "cache"))
    small = [parse("drum3", width=4, signed=False)]
    other = [parse("truncated2", width=4), parse("exact", width=5, signed=False)]
    _check(small, tmp_path / "a")           # fills the cache
    _check(other, tmp_path / "b")           # another top interface: must not reuse verilator.o
    folder = tmp_path / "cache" / "verilator"
    entries = {}
    for key_dir in folder.iterdir():
        entries.setdefault(key_dir.name.split("-")[0], []).extend(key_dir.glob("*.o"))
    # the runtime was compiled once and reused by the second build (no second entry) ...
    assert len(entries["verilated"]) == 1 and len(entries["verilated_vpi"]) == 1
    # ... while cocotb's main, which includes the design's Vtop.h, was compiled for each
    assert len(entries["verilator"]) == 2, "each top interface has its own cocotb main object"
