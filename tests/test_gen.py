"""``python -m hw.gen``: outputs, manifest contents, reproducibility and bad-input handling.

The manifest's port list is checked against the port declarations parsed from the generated
Verilog, its metrics against a direct numpy evaluation of the multiplier model.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hw.manifest
from hw.gen import generate, main, parse_mult_list
from hw.mult import parse

REPO = Path(__file__).resolve().parent.parent


def _verilog_ports(text: str, module: str) -> dict:
    """``{name: (direction, width)}`` of ``module``'s ports, parsed from the Verilog text."""
    body = text[text.index(f"module {module}("):]
    body = body[:body.index("endmodule")]
    ports = {}
    for direction, msb, name in re.findall(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);",
                                           body, re.M):
        ports[name] = (direction, int(msb) + 1 if msb else 1)
    return ports


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_defaults_from_the_command_line(tmp_path):
    """The documented minimal call, as a user runs it (fresh interpreter, cwd = tmp)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "hw.gen", "--rows", "16", "--mult",
                           "truncated4"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["axm_ws_16x16_truncated4_8s.json", "axm_ws_16x16_truncated4_8s.v"]
    man = json.loads((tmp_path / "out" / "axm_ws_16x16_truncated4_8s.json").read_text())
    arr = man["array"]
    assert (arr["rows"], arr["cols"], arr["operand_width"], arr["signed"], arr["dataflow"],
            arr["acc_width"], arr["overflow"], arr["pipeline"]) == \
        (16, 16, 8, True, "ws", 32, "wrap", False)
    assert man["timing"]["latency_cycles"] == 16 + 16 - 1
    assert man["multipliers"][0]["name"] == "truncated4"


def test_array_manifest_matches_verilog(tmp_path, capsys):
    code, out, err = _run(["--rows", "3", "--cols", "5", "--mult", "exact*2,truncated4c",
                           "--mult-per", "row", "--dataflow", "os", "--acc-width", "20",
                           "--overflow", "saturate", "--pipeline", "-o", str(tmp_path)], capsys)
    assert code == 0, err
    top = man_top = next(p.stem for p in tmp_path.glob("axm_os_3x5_mixed_*_8s.json"))
    man = json.loads((tmp_path / f"{top}.json").read_text())
    verilog = (tmp_path / f"{top}.v").read_text()
    assert man["top"] == man_top and man["verilog"] == f"{top}.v"
    declared = _verilog_ports(verilog, man["top"])
    listed = {p["name"]: (p["direction"], p["width"]) for p in man["ports"]}
    assert listed == declared
    assert all(p["meaning"] for p in man["ports"])
    # payload fields tile the payload exactly: a (3 lanes), b (5 lanes), last
    operands = next(p for p in man["ports"] if p["name"] == "operands__payload")
    fields = {f["name"]: f for f in operands["fields"]}
    assert (fields["a"]["offset"], fields["a"]["width"]) == (0, 3 * 8)
    assert (fields["b"]["offset"], fields["b"]["width"]) == (24, 5 * 8)
    assert (fields["last"]["offset"], fields["last"]["width"], operands["width"]) == (64, 1, 65)
    assert man["timing"]["latency_cycles"] == 3 + 5 + 1
    assert man["timing"]["min_cycles_per_tile"] == 3
    assert man["array"]["multiplier_names"] == ["exact", "exact", "truncated4c"]
    assert [m["name"] for m in man["multipliers"]] == ["exact", "truncated4c"]
    assert man["multipliers"][1]["used_by"] == "rows [2]"
    assert man["tool"]["amaranth"] and man["tool"]["name"] == "axmtoolkit"
    assert man["command"].startswith("python -m hw.gen --rows 3 --cols 5")
    # one PE module per distinct multiplier, one row module per distinct row
    modules = re.findall(r"^module (\S+)\(", verilog, re.M)
    assert sorted(m for m in modules if re.fullmatch(rf"{top}_pe\d", m)) == \
        [f"{top}_pe0", f"{top}_pe1"]
    assert sorted(m for m in modules if re.fullmatch(rf"{top}_row\d", m)) == \
        [f"{top}_row0", f"{top}_row1"]


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_manifest_cycle_counts(dataflow):
    """The weight-load window measured on the RTL (tests/test_array_rtl.py: rows + cols - 1)
    and a gemm_cycles formula that evaluates to hw.systolic.gemm_cycles."""
    gen = generate(rows=5, cols=3, mult="exact", dataflow=dataflow, pipeline=True)
    timing = gen.manifest["timing"]
    if dataflow == "ws":
        assert timing["weight_load_window_cycles"] == 5 + 3 - 1
        assert "7 cycles after" in timing["weight_load_cycles"]
        ready = next(p for p in gen.manifest["ports"] if p["name"] == "weights__ready")
        assert "7 cycles after" in ready["meaning"]
    entry = timing["gemm_cycles"]
    from hw.systolic import gemm_cycles
    from sim.arraycheck import manifest_gemm_cycles

    assert entry["parameters"] == {"rows": 5, "cols": 3, "pipeline": 1}
    assert entry["formula"] and entry["description"]
    for m, k, n in [(1, 1, 1), (7, 12, 4), (20, 5, 3), (2, 3, 10)]:
        assert manifest_gemm_cycles(entry, m, k, n) == gemm_cycles(
            m, k, n, rows=5, cols=3, dataflow=dataflow, pipeline=True)


def test_manifest_metrics_are_the_multipliers_errors():
    gen = generate(rows=2, mult="exact,truncated4", mult_per="col")
    by_name = {m["name"]: m for m in gen.manifest["multipliers"]}
    assert by_name["exact"]["metrics"]["mae"] == 0 and by_name["exact"]["metrics"]["ep"] == 0
    spec = parse("truncated4")
    v = spec.operand_values()
    a, b = np.meshgrid(v, v, indexing="ij")
    err = spec.model(a, b) - a * b
    metrics = by_name["truncated4"]["metrics"]
    assert metrics["me"] == pytest.approx(err.mean())
    assert metrics["mae"] == pytest.approx(np.abs(err).mean())
    assert metrics["wce"] == np.abs(err).max()
    assert by_name["truncated4"]["spec"] == spec.describe()


def test_same_arguments_same_bytes(tmp_path, capsys):
    args = ["--rows", "4", "--cols", "2", "--mult", "drum4,bam2_6", "--mult-per", "col",
            "--unsigned", "--acc-width", "24"]
    assert _run(args + ["-o", str(tmp_path / "a")], capsys)[0] == 0
    assert _run(args + ["-o", str(tmp_path / "b")], capsys)[0] == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir()) and len(names) == 2
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    text = (tmp_path / "a" / names[1]).read_text()
    assert str(tmp_path) not in text


def test_bank_manifest_ports_and_command(tmp_path, capsys):
    """hw.gen --bank: the Verilog top declares the manifest's ports (the arrays' ports plus
    select), one module per array, the manifest's command gives the same bytes again."""
    args = ["--rows", "2", "--cols", "3", "--bank", "exact,truncated4,drum4", "--unsigned"]
    code, out, err = _run(args + ["-o", str(tmp_path / "a")], capsys)
    assert code == 0, err
    top = "axm_ws_2x3_bank_exact_truncated4_drum4_8u"
    man = json.loads((tmp_path / "a" / f"{top}.json").read_text())
    verilog = (tmp_path / "a" / f"{top}.v").read_text()
    assert man["top"] == top and man["kind"] == "bank"
    listed = {p["name"]: (p["direction"], p["width"]) for p in man["ports"]}
    assert listed == _verilog_ports(verilog, top)
    assert listed["select"] == ("input", 2)
    single = generate(rows=2, cols=3, mult="exact", signed=False).manifest
    assert {k: v for k, v in listed.items() if k != "select"} == \
        {p["name"]: (p["direction"], p["width"]) for p in single["ports"]}
    assert man["timing"] == single["timing"]          # routing adds no cycle
    bank = man["bank"]
    assert bank["count"] == 3 and [a["multiplier"] for a in bank["arrays"]] == \
        ["exact", "truncated4", "drum4"]
    assert [a["array"]["multiplier_names"] for a in bank["arrays"]] == \
        [["exact"], ["truncated4"], ["drum4"]]
    modules = re.findall(r"^module (\S+)\(", verilog, re.M)
    assert {f"{top}_a{i}" for i in range(3)} <= set(modules)
    words = man["command"].split()[3:]
    assert _run(words + ["-o", str(tmp_path / "b")], capsys)[0] == 0
    assert (tmp_path / "b" / f"{top}.v").read_bytes() == verilog.encode()


def test_corrected_bank_manifest(tmp_path, capsys):
    """hw.gen --bank ... --correction: every approximate array corrected in one format, the
    exact array not; the ports are a corrected array's (plus select); per-array timing; the
    manifest's command gives the same bytes again."""
    args = ["--rows", "3", "--bank", "exact,truncated6,drum4", "--correction", "cv"]
    code, out, err = _run(args + ["-o", str(tmp_path / "a")], capsys)
    assert code == 0, err
    top = "axm_ws_3x3_bank_exact_truncated6_drum4_8s_cv"
    man = json.loads((tmp_path / "a" / f"{top}.json").read_text())
    verilog = (tmp_path / "a" / f"{top}.v").read_text()
    listed = {p["name"]: (p["direction"], p["width"]) for p in man["ports"]}
    assert listed == _verilog_ports(verilog, top)
    single = generate(rows=3, mult="truncated6,drum4,drum4", mult_per="row", correction="cv")
    fmt = single.manifest["array"]["correction"]
    arrays = man["bank"]["arrays"]
    assert [a["array"].get("correction", {}).get("mode") for a in arrays] == [None, "cv", "cv"]
    for a in arrays[1:]:      # one format for both: the one fitted to both multipliers
        assert {k: a["array"]["correction"][k] for k in ("frac_bits", "alpha_bits", "beta_bits")} \
            == {k: fmt[k] for k in ("frac_bits", "alpha_bits", "beta_bits")}
    plain = generate(rows=3, mult="exact").manifest
    assert {k: v for k, v in listed.items() if k != "select"} == \
        {p["name"]: (p["direction"], p["width"]) for p in single.manifest["ports"]}
    assert [a["timing"]["latency_cycles"] for a in arrays] == \
        [plain["timing"]["latency_cycles"]] + [plain["timing"]["latency_cycles"] + 1] * 2
    assert man["bank"]["correction"]["arrays"] == [1, 2]
    words = man["command"].split()[3:]
    assert "--correction" in words
    assert _run(words + ["-o", str(tmp_path / "b")], capsys)[0] == 0
    assert (tmp_path / "b" / f"{top}.v").read_bytes() == verilog.encode()


def test_output_buffer_manifest_and_command(tmp_path, capsys):
    """hw.gen --output-buffer: same ports and cycle counts as the stalled array, a credit
    entry with the FIFO depth the docstring gives, and the manifest's command gives the same
    bytes again."""
    for extra, depth in ((["--rows", "4", "--cols", "3"], 4 + 3 - 1 + 2),
                         (["--rows", "3", "--cols", "4", "--dataflow", "os", "--pipeline"],
                          3 * (-(-(3 + 4 + 1 + 3) // 3) + 1))):
        code, out, err = _run(extra + ["--output-buffer", "-o", str(tmp_path / "a")], capsys)
        assert code == 0, err
        (path,) = sorted((tmp_path / "a").glob("*_ob.json"))[-1:]
        man = json.loads(path.read_text())
        kw = dict(rows=int(extra[1]), cols=int(extra[3]), dataflow="os" if "os" in extra
                  else "ws", pipeline="--pipeline" in extra)
        plain = generate(**kw).manifest
        assert [(p["name"], p["width"]) for p in man["ports"]] == \
            [(p["name"], p["width"]) for p in plain["ports"]]
        for key in ("latency_cycles", "gemm_cycles", "throughput"):
            assert man["timing"][key] == plain["timing"][key]
        assert man["timing"]["back_pressure"]["fifo_depth"] == depth
        assert plain["timing"]["back_pressure"]["mode"] == "global stall"
        words = man["command"].split()[3:]
        assert "--output-buffer" in words
        assert _run(words + ["-o", str(tmp_path / "b")], capsys)[0] == 0
        verilog = path.with_suffix(".v").read_bytes()
        assert (tmp_path / "b" / path.with_suffix(".v").name).read_bytes() == verilog
        assert b"out_fifo" in verilog
        for d in ("a", "b"):
            for f in (tmp_path / d).iterdir():
                f.unlink()


def test_multiplier_only(tmp_path, capsys):
    code, out, err = _run(["--mult", "mitchell", "--width", "6", "--unsigned", "-o",
                           str(tmp_path)], capsys)
    assert code == 0, err
    man = json.loads((tmp_path / "axm_mult_mitchell_6u.json").read_text())
    verilog = (tmp_path / "axm_mult_mitchell_6u.v").read_text()
    assert man["kind"] == "multiplier" and man["timing"]["latency_cycles"] == 0
    assert _verilog_ports(verilog, man["top"]) == {"a": ("input", 6), "b": ("input", 6),
                                                   "p": ("output", 12)}
    assert {p["name"]: (p["direction"], p["width"]) for p in man["ports"]} == \
        _verilog_ports(verilog, man["top"])
    assert man["multipliers"][0]["full_name"] == "mitchell@6u"


def test_help_teaches_the_grammar(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for needle in ("truncatedK", "bamH_V", "drumK", "--mult-per", "NAME*K", "--dataflow",
                   "python -m hw.gen --rows 16 --mult truncated4", "manifest"):
        assert needle in text


@pytest.mark.parametrize("argv,message", [
    (["--rows", "0"], "argument --rows: 0 is out of range 1..64"),
    (["--rows", "65"], "argument --rows: 65 is out of range 1..64"),
    (["--rows", "4", "--cols", "65"], "argument --cols: 65 is out of range 1..64"),
    (["--rows", "four"], "'four' is not an integer"),
    (["--rows", "1e3"], "'1e3' is not an integer (write it out: 1000)"),
    (["--rows", "9" * 5000], "is too large"),
    (["--rows", "2**40"], "'2**40' is not an integer"),
    (["--rows", "4", "--dataflow", "rs"], "argument --dataflow: invalid choice: 'rs'"),
    (["--rows", "4", "--overflow", "clamp"], "argument --overflow: invalid choice: 'clamp'"),
    (["--rows", "4", "--acc-width", "15"], "narrower than the 16-bit product"),
    (["--rows", "4", "--mult", "exact,truncated4"], "--mult-per"),
    (["--rows", "4", "--mult", "exact*3", "--mult-per", "row"], "3 multipliers but the array "
                                                                 "has 4 rows"),
    (["--rows", "2", "--cols", "3", "--mult", "exact,drum4", "--mult-per", "col"],
     "has 3 columns"),
    (["--rows", "4", "--mult", "exact*0,drum4"], "bad repetition"),
    (["--rows", "4", "--mult", "wallace"], "unknown multiplier 'wallace'"),
    (["--rows", "4", "--mult", "truncated99"], "truncated"),
    (["--rows", "4", "--width", "3"], "argument --width: 3 is out of range 4..16"),
    (["--mult", "exact", "--width", "17"], "argument --width: 17 is out of range 4..16"),
    (["--cols", "4"], "no --rows"),
    (["--rows", "2", "--name", "2bad-name"], "not a Verilog identifier"),
])
def test_bad_input_one_line_exit_2_no_files(tmp_path, capsys, argv, message):
    out_dir = tmp_path / "out"
    code, out, err = _run(argv + ["-o", str(out_dir)], capsys)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and err.startswith("python -m hw.gen: error: ")
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_unwritable_output_dir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, out, err = _run(["--rows", "2", "-o", str(blocker / "sub")], capsys)
    assert code == 2 and err.count("\n") == 1 and f"{blocker} is a file, not a folder" in err
    assert blocker.read_text() == "not a directory"


def test_failed_write_restores_what_was_there(tmp_path, monkeypatch):
    """All or nothing: a failure while renaming the second file puts the first one back."""
    import hw.outputs
    from hw.outputs import OutputError, write_files

    monkeypatch.setenv("AXM_CACHE_DIR", str(tmp_path / "cache"))
    old = tmp_path / "x.v"
    write_files({old: "old text\n"})          # the toolkit's own earlier output
    real_replace = os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(hw.outputs.os, "replace", failing_replace)
    with pytest.raises(OutputError, match="No space left"):
        write_files({old: "module x; endmodule\n", tmp_path / "x.json": "{}"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "x.v"]
    assert old.read_text() == "old text\n"


def test_parse_mult_list():
    assert parse_mult_list("exact*2, drum4 ,bam2_6*1") == ["exact", "exact", "drum4", "bam2_6"]
