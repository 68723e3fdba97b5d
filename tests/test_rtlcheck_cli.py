"""``python -m sim.rtlcheck``: the command that verifies a user's own multipliers and designs.

Kept cheap: 4-bit multipliers and a 2x3 array, five simulator builds in all. Expected values come
from the arithmetic (2^(2N) exhaustive pairs, 5 * 3 = 15), from a netlist written here that is
wrong for exactly one operand pair, and from the published file formats (the VCD header of IEEE
1364 section 18, the FST header block: type 0, 329-byte section, Euler's number as endianness
test).
"""

import json
import math
import os
import shutil
import struct
import subprocess
import sys

import pytest

from hw.gen import main as gen_main
from sim.rtlcheck import main
from sim.tb.runner import why_unavailable

pytestmark = pytest.mark.rtl

# Wrong for a = 5, b = 3 only (15 -> 14): read as unsigned 4-bit operands.
BAD_NETLIST = """\
module bad4 (input [3:0] a, input [3:0] b, output [7:0] p);
  assign p = (a == 4'd5 && b == 4'd3) ? 8'd14 : a * b;
endmodule
"""


def _need(*simulators):
    for sim in simulators:
        reason = why_unavailable(sim)
        if reason:
            pytest.skip(reason)


def _run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _table(out: str) -> list[list[str]]:
    lines = out.splitlines()
    assert lines[0].split() == ["design", "simulator", "vectors", "mismatches", "errors",
                                "result", "vectors/s"]
    return [line.split() for line in lines[1:] if line and not line.startswith(("vectors:",
                                                                                "waves:"))]


def _check_vcd(path):
    text = path.read_text()
    # IEEE 1364 VCD: declarations, $enddefinitions, then timestamps (#t) with value changes.
    head, sep, body = text.partition("$enddefinitions $end")
    assert sep and "$timescale" in head and "$scope module mult_bank $end" in head
    assert "$var " in head and " p0 " in head.replace("[", " [")
    assert any(line.startswith("#") for line in body.splitlines())


def _check_fst(path):
    data = path.read_bytes()
    # FST header block: block type FST_BL_HDR (0), section length 329 (big-endian), start and
    # end time, then the double 2.718281828... (e) written in the machine's byte order.
    assert len(data) > 330 and data[0] == 0
    assert struct.unpack(">Q", data[1:9])[0] == 329
    e = [struct.unpack(order + "d", data[25:33])[0] for order in "<>"]
    assert any(abs(v - math.e) < 1e-12 for v in e)
    assert struct.unpack(">Q", data[17:25])[0] > 0       # the run took simulated time


# -- runs that pass -------------------------------------------------------------------------------
def test_passing_run_both_simulators_table_json_and_vcd(tmp_path, capsys):
    _need("verilator", "icarus")
    waves = tmp_path / "run.vcd"
    status, out, err = _run(capsys, "exact", "--mult", "truncated2,drum2", "--width", "4",
                            "--unsigned", "--simulator", "both", "--waves", waves,
                            "--json", tmp_path / "r.json")
    assert status == 0, err
    rows = _table(out)
    # NAMEs and --mult joined, each on both simulators, on all 2^(2*4) operand pairs
    assert sorted((r[0], r[1]) for r in rows) == sorted(
        (f"{n}@4u", s) for n in ("exact", "truncated2", "drum2")
        for s in ("verilator", "icarus"))
    assert all(r[2] == str(2 ** 8) and r[3] == "0" and r[5] == "pass" for r in rows)
    assert "4-bit: exhaustive" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] is True and report["failures"] == []
    assert len(report["results"]) == 6
    # --simulator both: one waveform per simulator, named after it
    for sim in ("verilator", "icarus"):
        _check_vcd(tmp_path / f"run.{sim}.vcd")
    assert not waves.exists()
    assert sorted(report["waves"]) == sorted(str(tmp_path / f"run.{s}.vcd")
                                             for s in ("verilator", "icarus"))


@pytest.fixture(scope="module")
def generated_array(tmp_path_factory):
    """A 2x3 output-stationary array of two multipliers, written by python -m hw.gen."""
    out = tmp_path_factory.mktemp("gen")
    assert gen_main(["--rows", "2", "--cols", "3", "--mult", "exact,truncated2", "--mult-per",
                     "row", "--width", "4", "--dataflow", "os", "--acc-width", "12", "-o",
                     str(out)]) == 0
    (manifest,) = out.glob("*.json")
    return manifest


def test_manifest_of_a_bank_checks_every_array(tmp_path, capsys):
    """--manifest of hw.gen --bank: each array through select, against its own multiplier."""
    _need("icarus")
    assert gen_main(["--rows", "2", "--bank", "exact,truncated2", "--width", "4",
                     "--acc-width", "12", "-o", str(tmp_path)]) == 0
    (manifest,) = tmp_path.glob("*.json")
    capsys.readouterr()                                   # hw.gen's own output
    status, out, err = _run(capsys, "--manifest", manifest, "--simulator", "icarus", "--json")
    assert status == 0, err
    report = json.loads(out)
    assert report["passed"] and report["mode"] == "manifest:bank"
    assert [r["design"] for r in report["results"]] == [
        f"{manifest.stem} select=0 (exact)", f"{manifest.stem} select=1 (truncated2)"]
    assert all(r["vectors"] > 0 and r["mismatches"] == 0 for r in report["results"])


def test_manifest_of_a_generated_array_passes_with_fst(generated_array, tmp_path, capsys):
    _need("icarus")
    waves = tmp_path / "array.fst"
    status, out, err = _run(capsys, "--manifest", generated_array, "--simulator", "icarus",
                            "--waves", waves, "--random", "12", "--json")
    assert status == 0, err
    report = json.loads(out)
    assert report["passed"] and report["manifest"]["identical"] is True
    (row,) = report["results"]
    assert row["design"] == generated_array.stem and row["simulator"] == "icarus"
    scenarios = [s["scenario"] for s in row["scenarios"]]
    # the default scenarios plus two more random runs (12 tiles, 6 per run)
    assert {"random", "extremes", "overflow", "back_to_back", "latency", "reset",
            "gemm"} <= set(scenarios)
    assert scenarios.count("random") == 3
    assert row["vectors"] > 0 and row["mismatches"] == 0 and row["errors"] == 0
    _check_fst(waves)


def test_edited_design_file_is_refused_before_simulation(generated_array, tmp_path, capsys):
    folder = tmp_path / "copy"
    folder.mkdir()
    manifest = folder / generated_array.name
    shutil.copy(generated_array, manifest)
    verilog = generated_array.with_suffix(".v").read_text()
    # one changed constant deep inside the file
    assert "1'h0" in verilog
    manifest.with_suffix(".v").write_text(verilog.replace("1'h0", "1'h1", 1))
    status, out, err = _run(capsys, "--manifest", manifest, "--simulator", "icarus")
    assert status == 1 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "differs from the Verilog that hw.gen generates" in err
    assert "changed after hw.gen wrote it" in err and "python -m hw.gen --rows 2" in err


# -- a wrong multiplier ---------------------------------------------------------------------------
def test_wrong_imported_multiplier_exits_1_and_names_the_pair(tmp_path, capsys, monkeypatch):
    _need("icarus")
    (tmp_path / "bad4.v").write_text(BAD_NETLIST)
    monkeypatch.chdir(tmp_path)
    status, out, err = _run(capsys, "verilog:bad4.v?model=exact", "--width", "4", "--unsigned",
                            "--simulator", "icarus")
    assert status == 1
    (row,) = _table(out)
    assert row[1:6] == ["icarus", "256", "1", "0", "FAIL"]
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "a=5 b=3 expected 15 got 14" in lines[0] and "bad4" in lines[0]


# -- bad input: one line, exit 2 ------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    ([], "give multiplier NAMEs"),
    (["exact", "--random", "-1"], "out of range"),
    (["exact", "--random", "1e6"], "not an integer"),
    (["nosuch9"], "unknown multiplier"),
    (["exact", "--waves", "w.txt"], "give a .fst or .vcd file name"),
    (["exact", "--rows", "2"], "array options, but no --array"),
    (["--array", "--width", "4"], "--array needs --rows"),
    (["--array", "--rows", "2", "--mult", "exact,drum4"], "--mult-per"),
    (["--manifest", "missing.json"], "cannot read manifest"),
    (["--manifest", "m.json", "--width", "4"], "drop --width"),
    (["exact", "--simulator", "modelsim"], "invalid choice"),
])
def test_bad_input_is_one_line_exit_2(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, err = _run(capsys, *argv)
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert message in err and "Traceback" not in err


def test_waves_never_overwrite_foreign_files_or_folders(tmp_path, capsys):
    _need("icarus")
    foreign = tmp_path / "mine.vcd"
    foreign.write_text("not a toolkit output\n")
    (tmp_path / "dir.vcd").mkdir()
    for target, message in ((foreign, "pass --force"), (tmp_path / "dir.vcd", "is a folder")):
        status, out, err = _run(capsys, "exact", "--width", "4", "--simulator", "icarus",
                                "--waves", target)
        assert status == 2 and out == "" and message in err
        assert len(err.strip().splitlines()) == 1
    assert foreign.read_text() == "not a toolkit output\n"


def test_missing_simulator_says_how_to_install_it(capsys, monkeypatch):
    real = shutil.which
    monkeypatch.setattr(shutil, "which",
                        lambda cmd, *a, **k: None if cmd in ("iverilog", "vvp") else real(cmd,
                                                                                           *a, **k))
    status, out, err = _run(capsys, "exact", "--width", "4", "--simulator", "icarus")
    assert status == 2 and out == ""
    assert err.strip().splitlines() == [
        "python -m sim.rtlcheck: error: --simulator icarus: Icarus Verilog not found: "
        "apt-get install iverilog"]


def test_module_entry_point_refuses_an_empty_command_line():
    run = subprocess.run([sys.executable, "-m", "sim.rtlcheck"], capture_output=True, text=True,
                         timeout=120, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and "give multiplier NAMEs" in run.stderr


# -- the cocotb tests' switch ---------------------------------------------------------------------
def test_axm_waves_keeps_a_waveform_in_the_build_folder(tmp_path, monkeypatch):
    _need("icarus")
    from sim.rtlcheck import check_multipliers

    monkeypatch.setenv("AXM_WAVES", "vcd")
    report = check_multipliers(["exact"], width=4, simulator="icarus", workdir=tmp_path)
    assert report["passed"]
    path = tmp_path / os.path.relpath(report["waves"], tmp_path)
    assert path.parent.parent == tmp_path and path.name == "waves.vcd"
    _check_vcd(path)
