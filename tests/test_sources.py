"""Imported netlists that define the same helper (or top) module names combine in one design.

Three hand-written 4-bit netlists share module names the way one library's netlists do: ``A``
and ``C`` define identical ``pp`` (partial-product row) and ``add8`` cells; ``B`` defines the
same ``add8`` but a *different* ``pp`` (it drops bit 0 of ``a``), and its top module has the same
name as ``A``'s. Independent references: ``A`` and ``C`` compute ``a*b`` (numpy), ``B`` computes
``(a & 14) * b`` (its definition). Merged into one array, every PE must still compute its own
netlist's function, on Verilator and on Icarus; merging must emit identical modules once and
rename differing ones deterministically.

Regression test: every one of these combinations used to fail ("module 'pp' is defined in both
A.v and B.v" / "two multipliers bring different Verilog named 'mul4.v'").
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from hw.mult import extra_verilog_sources, parse
from hw.sources import merge_sources, split_modules
from sim.tb.runner import SIMULATORS, why_unavailable

CELLS = """\
// cells of a small netlist library
module pp(input [3:0] a, input bj, output [3:0] p);
  assign p = a & {4{bj}};
endmodule
module add8(input [7:0] x, input [7:0] y, output [7:0] s);
  assign s = x + y;
endmodule
"""
TOP = """\
module {top}(input [3:0] a, input [3:0] b, output [7:0] o);
  wire [3:0] p0, p1, p2, p3;
  wire [7:0] s0, s1;
  pp u0(.a(a), .bj(b[0]), .p(p0));
  pp u1(.a(a), .bj(b[1]), .p(p1));
  pp u2(.a(a), .bj(b[2]), .p(p2));
  pp u3(.a(a), .bj(b[3]), .p(p3));
  add8 x0(.x({{4'b0, p0}}), .y({{3'b0, p1, 1'b0}}), .s(s0));
  add8 x1(.x({{2'b0, p2, 2'b0}}), .y({{1'b0, p3, 3'b0}}), .s(s1));
  add8 x2(.x(s0), .y(s1), .s(o));
endmodule
"""
NETLIST_A = CELLS + TOP.format(top="mul4")
NETLIST_B = CELLS.replace("assign p = a & {4{bj}};", "assign p = a & {4{bj}} & 4'b1110;") \
    + TOP.format(top="mul4")
NETLIST_C = CELLS + TOP.format(top="mul4x")


@pytest.fixture(scope="module")
def netlists(tmp_path_factory):
    d = tmp_path_factory.mktemp("lib")
    paths = {}
    for name, text in (("A", NETLIST_A), ("B", NETLIST_B), ("C", NETLIST_C)):
        (d / f"{name}.v").write_text(text)
        paths[name] = d / f"{name}.v"
    return paths


def _modules(text):
    return [m.name for m in split_modules(text)]


def test_merge_emits_identical_modules_once_and_renames_differing_ones():
    merged = merge_sources([("A.v", NETLIST_A), ("B.v", NETLIST_B), ("C.v", NETLIST_C)])
    names = [n for text in merged.values() for n in _modules(text)]
    assert len(names) == len(set(names)), names                 # every module once
    # add8 is the same everywhere: kept under its name, defined once
    assert names.count("add8") == 1
    # pp and mul4 differ between A and B: both variants renamed, nothing keeps the bare name
    assert "pp" not in names and "mul4" not in names
    pps = [n for n in names if n.startswith("pp_")]
    muls = [n for n in names if n.startswith("mul4_")]
    assert len(pps) == 2 and len(muls) == 2
    # C's pp is A's pp (same text): C instantiates A's renamed pp and defines no pp itself
    a_text, b_text, c_text = merged["A.v"], merged["B.v"], merged["C.v"]
    a_pp = next(n for n in _modules(a_text) if n.startswith("pp_"))
    assert re.search(rf"\b{a_pp} u0\(", c_text) and not [n for n in _modules(c_text)
                                                         if n.startswith("pp")]
    b_pp = next(n for n in _modules(b_text) if n.startswith("pp_"))
    assert b_pp != a_pp and re.search(rf"\b{b_pp} u0\(", b_text)
    # deterministic: the same inputs give the same bytes, whatever else is in the process
    assert merge_sources([("A.v", NETLIST_A), ("B.v", NETLIST_B), ("C.v", NETLIST_C)]) == merged


def test_module_identity_includes_the_cells_it_instantiates():
    """Two tops with identical text are different modules when their cells differ."""
    merged = merge_sources([("A.v", NETLIST_A), ("B.v", NETLIST_B)])
    tops = [n for text in merged.values() for n in _modules(text) if n.startswith("mul4")]
    assert len(tops) == 2 and len(set(tops)) == 2


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog not installed")
def test_merged_sources_elaborate_in_icarus(tmp_path, netlists):
    specs = [parse(f"verilog:{p}", width=4, signed=False) for p in netlists.values()]
    merged = extra_verilog_sources(specs)
    src = tmp_path / "all.v"
    src.write_text("".join(merged.values()))
    run = subprocess.run(["iverilog", "-g2005", "-o", str(tmp_path / "x"), str(src)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_tables_are_each_netlists_own_function(netlists):
    v = np.arange(16)
    a, b = np.meshgrid(v, v, indexing="ij")
    assert (parse(f"verilog:{netlists['A']}", width=4, signed=False).table() == a * b).all()
    assert (parse(f"verilog:{netlists['B']}", width=4, signed=False).table()
            == (a & 14) * b).all()
    assert (parse(f"verilog:{netlists['C']}", width=4, signed=False).table() == a * b).all()


@pytest.mark.rtl
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_array_of_three_netlists_with_shared_cell_names(simulator, netlists, tmp_path):
    """One array, one row per netlist, and a bank check of all three: bit-exact."""
    reason = why_unavailable(simulator)
    if reason:
        pytest.skip(reason)
    from sim.arraycheck import check_arrays
    mults = ",".join(f"verilog:{netlists[k]}" for k in "ABC")
    report = check_arrays([{"rows": 3, "cols": 2, "mult": mults, "mult_per": "row",
                            "width": 4, "signed": False, "acc_width": 16,
                            "scenarios": ["random", "extremes"]}],
                          simulator=simulator, workdir=tmp_path)
    assert report["passed"], report.get("errors") or report.get("mismatches")


@pytest.mark.rtl
def test_bank_check_of_three_netlists(netlists, tmp_path):
    reason = why_unavailable("verilator")
    if reason:
        pytest.skip(reason)
    from sim.rtlcheck import check_multipliers
    specs = [parse(f"verilog:{netlists[k]}", width=4, signed=False) for k in "ABC"]
    report = check_multipliers(specs, simulator="verilator", workdir=tmp_path, lanes=1)
    assert report["passed"], report.get("mismatches")
    assert all(r["vectors"] == 256 for r in report["results"])


def test_generated_array_defines_every_module_once(netlists, tmp_path):
    from hw.gen import generate
    gen = generate(rows=3, cols=1, mult=[f"verilog:{netlists[k]}" for k in "ABC"],
                   mult_per="row", width=4, signed=False)
    modules = re.findall(r"^\s*module\s+\\?([^\s(;]+)", gen.verilog, re.M)
    assert len(modules) == len(set(modules))
    assert str(netlists["A"].parent) not in gen.verilog        # no paths in the output
    assert str(netlists["A"].parent) not in gen.files[f"{gen.top}.json"]
