"""Hardware side of the toolkit: Amaranth generators for approximate multipliers, MACs and
systolic arrays, and ``python -m hw.gen`` to write them as Verilog."""
