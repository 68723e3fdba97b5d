"""cocotb testbenches and the runner that drives them on Verilator and Icarus."""
