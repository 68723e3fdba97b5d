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
    assert files == ["axm_ws_16x16.json", "axm_ws_16x16.v"]
    man = json.loads((tmp_path / "out" / "axm_ws_16x16.json").read_text())
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
    man = json.loads((tmp_path / "axm_os_3x5.json").read_text())
    verilog = (tmp_path / "axm_os_3x5.v").read_text()
    assert man["top"] == "axm_os_3x5" and man["verilog"] == "axm_os_3x5.v"
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
    assert sorted(m for m in modules if re.fullmatch(r"axm_os_3x5_pe\d", m)) == \
        ["axm_os_3x5_pe0", "axm_os_3x5_pe1"]
    assert sorted(m for m in modules if re.fullmatch(r"axm_os_3x5_row\d", m)) == \
        ["axm_os_3x5_row0", "axm_os_3x5_row1"]


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
    for name in ("axm_ws_4x2.v", "axm_ws_4x2.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    text = (tmp_path / "a" / "axm_ws_4x2.v").read_text()
    assert str(tmp_path) not in text


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
    (["--rows", "0"], "--rows must be in 1..64"),
    (["--rows", "65"], "--rows must be in 1..64"),
    (["--rows", "4", "--cols", "65"], "--cols must be in 1..64"),
    (["--rows", "four"], "invalid int value"),
    (["--rows", "4", "--dataflow", "rs"], "unknown dataflow"),
    (["--rows", "4", "--overflow", "clamp"], "unknown overflow mode"),
    (["--rows", "4", "--acc-width", "15"], "narrower than the 16-bit product"),
    (["--rows", "4", "--mult", "exact,truncated4"], "--mult-per"),
    (["--rows", "4", "--mult", "exact*3", "--mult-per", "row"], "3 multipliers but the array "
                                                                 "has 4 rows"),
    (["--rows", "2", "--cols", "3", "--mult", "exact,drum4", "--mult-per", "col"],
     "has 3 columns"),
    (["--rows", "4", "--mult", "exact*0,drum4"], "bad repetition"),
    (["--rows", "4", "--mult", "wallace"], "unknown multiplier 'wallace'"),
    (["--rows", "4", "--mult", "truncated99"], "truncated"),
    (["--rows", "4", "--width", "3"], "width 3 is outside"),
    (["--mult", "exact", "--width", "17"], "width 17 is outside"),
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
    assert code == 2 and err.count("\n") == 1 and "cannot write" in err
    assert blocker.read_text() == "not a directory"


def test_failed_write_leaves_no_partial_files(tmp_path, monkeypatch):
    real_replace = os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(hw.manifest.os, "replace", failing_replace)
    with pytest.raises(OSError):
        hw.manifest.write_atomically(tmp_path, {"x.v": "module x; endmodule\n", "x.json": "{}"})
    assert list(tmp_path.iterdir()) == []


def test_parse_mult_list():
    assert parse_mult_list("exact*2, drum4 ,bam2_6*1") == ["exact", "exact", "drum4", "bam2_6"]
