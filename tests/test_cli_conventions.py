"""One grammar for every command line (hw/cli.py), one cache rule (hw/cache.py).

Each CLI's parser is exercised with the shared spellings (no command is run): multiplier lists
with ``NAME*K`` and repeated ``--mult``, the signedness options, device names shared by
``hw.cost`` and the boards, ``--json [PATH]``; plus the cache root rule and quiet progress bars
when stderr is not a terminal.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hw.cache import cache_dir, cache_root
from hw.cli import split_mults, UsageError
from hw.devices import find_device

REPO = Path(__file__).resolve().parent.parent

PARSERS = {"hw.gen": "build_parser", "sim.characterize": "build_parser",
           "sim.dnn.__main__": "build_parser", "hw.cost.cli": "build_parser",
           "boards.build": "_parser", "boards.fit": "_parser", "boards.host": "_parser",
           "sim.rtlcheck": "build_parser", "sim.perf.__main__": "build_parser",
           "sim.dse.__main__": "build_parser", "sim.nn.retrain": "build_parser"}


def _parser(module):
    return getattr(importlib.import_module(module), PARSERS[module])()


def test_multiplier_lists_mean_the_same_everywhere():
    assert split_mults(["exact*2, drum4", "bam2_6"]) == ["exact", "exact", "drum4", "bam2_6"]
    for bad in ("exact*0", "exact*x", "*3", "a,,b", "exact*5000"):
        with pytest.raises(UsageError):
            split_mults(bad)
    argv = ["--mult", "exact*2,drum4", "--mult", "bam2_6"]
    expected = ["exact", "exact", "drum4", "bam2_6"]
    for module, extra in (("hw.gen", ["--rows", "4"]), ("sim.characterize", []),
                          ("hw.cost.cli", ["synth"]), ("boards.build", ["--board", "ulx3s"]),
                          ("boards.fit", ["--board", "ulx3s"]), ("sim.rtlcheck", []),
                          ("sim.perf.__main__", []), ("sim.dse.__main__", [])):
        args = _parser(module).parse_args(extra + argv)
        assert split_mults(args.mult) == expected, module


@pytest.mark.parametrize("module,extra", [
    ("hw.gen", []), ("sim.characterize", []), ("hw.cost.cli", ["synth"]),
    ("boards.build", ["--board", "icebreaker"]), ("boards.fit", ["--board", "icebreaker",
                                                                 "--mult", "exact"]),
    ("boards.host", ["--model", "2x2", "--identify"]), ("sim.rtlcheck", []),
    ("sim.perf.__main__", [])])
def test_width_and_signedness_spellings(module, extra):
    p = _parser(module)
    assert p.parse_args(extra + ["--width", "6", "--unsigned"]).signedness == "unsigned"
    assert p.parse_args(extra + ["--signedness", "unsigned"]).signedness == "unsigned"
    assert p.parse_args(extra + ["--signed"]).signedness == "signed"
    assert p.parse_args(extra + ["--width", "6"]).width == 6


def test_one_set_of_device_names():
    """hw.cost --device and boards --board accept the same names for the same FPGAs."""
    from boards.build import find_board
    from hw.cost.pnr import find_device as cost_device
    for names, board, part in ((("up5k", "ice40up5k", "iCE40UP5K-SG48", "icebreaker"),
                                "icebreaker", "iCE40UP5K-SG48"),
                               (("85f", "ecp5-85f", "lfe5u-85f", "ulx3s", "ECP5"),
                                "ulx3s", "LFE5U-85F-CABGA381")):
        for name in names:
            assert find_device(name).part == part
            assert find_board(name) == board
            assert cost_device(name).name == part
    cost = _parser("hw.cost.cli").parse_args(["pnr", "exact", "--device", "icebreaker"])
    assert cost.device.part == "iCE40UP5K-SG48"


def test_json_option_takes_stdout_or_a_path():
    p = _parser("sim.characterize")
    assert p.parse_args(["exact", "--json"]).json == "-"
    assert p.parse_args(["exact", "--json", "r.json"]).json == "r.json"
    assert _parser("hw.cost.cli").parse_args(["synth", "exact", "--json"]).json == "-"
    assert _parser("sim.dnn.__main__").parse_args(["--json"]).json == "-"


def test_help_documents_the_conventions_once_for_all():
    for module in PARSERS:
        text = _parser(module).format_help()
        assert "conventions (the same in every axmtoolkit command)" in text, module
        assert "NAME*K" in text and "--force" in text, module


def test_cache_root_rule(monkeypatch, tmp_path):
    monkeypatch.setenv("AXM_CACHE_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_root() == tmp_path / "a" and cache_dir("cost") == tmp_path / "a" / "cost"
    monkeypatch.setenv("AXM_CACHE_DIR", "  ")
    assert cache_root() == tmp_path / "x" / "axmtoolkit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root() == Path.home() / ".cache" / "axmtoolkit"
    with pytest.raises(ValueError):
        cache_dir("nosuch")
    from hw.cost import Cache
    monkeypatch.setenv("AXM_CACHE_DIR", str(tmp_path / "b"))
    assert Cache().root == tmp_path / "b" / "cost"       # hw.cost follows the same rule


def test_cache_dir_option_is_the_environment_variable(tmp_path):
    """``--cache-dir`` = ``AXM_CACHE_DIR``: an imported table derived under one is found by
    the other (no Verilator run the second time: the cache entry is used)."""
    from hw.cli import apply_cache
    import argparse
    ns = argparse.Namespace(cache_dir=str(tmp_path / "c"), no_cache=False)
    old = os.environ.get("AXM_CACHE_DIR")
    try:
        assert apply_cache(ns) is True
        assert os.environ["AXM_CACHE_DIR"] == str(tmp_path / "c")
    finally:
        if old is None:
            os.environ.pop("AXM_CACHE_DIR", None)
        else:
            os.environ["AXM_CACHE_DIR"] = old


def test_no_progress_output_when_stderr_is_not_a_terminal(tmp_path):
    """No progress bar, no carriage returns in logs: stderr of a successful run is empty."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "AXM_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("AXM_PROGRESS", None)
    proc = subprocess.run([sys.executable, "-m", "hw.gen", "--rows", "4", "--mult",
                           "truncated4", "-o", str(tmp_path / "out")], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and "\r" not in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "sim.characterize", "exact", "--width", "12"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and "\r" not in proc.stderr


def test_top_names_differ_by_multiplier_and_never_hold_paths(tmp_path):
    """Two 4x4 arrays with different multipliers define no module of the same name; an
    imported table's file appears by name and content hash, the same from any folder."""
    import numpy as np
    from hw.gen import generate
    from hw.mult import parse
    a = generate(rows=4, mult="exact")
    b = generate(rows=4, mult="truncated4")

    def modules(g):
        return set(re.findall(r"^module \\?([^\s(]+)", g.verilog, re.M))

    assert a.top != b.top and modules(a) and not (modules(a) & modules(b))
    texts = []
    for folder in ("one", "two"):
        d = tmp_path / folder
        d.mkdir()
        np.save(d / "mul.npy", parse("drum4").table())
        cwd = os.getcwd()
        os.chdir(d)
        try:
            g = generate(rows=2, mult="table:mul.npy")
        finally:
            os.chdir(cwd)
        assert str(tmp_path) not in g.verilog and str(tmp_path) not in g.files[f"{g.top}.json"]
        assert g.top.startswith("axm_ws_2x2_table_mul_")
        texts.append(g.files)
    assert texts[0] == texts[1]                       # same command, other folder: same bytes
