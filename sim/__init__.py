"""Simulation side of the toolkit: golden models, error metrics, emulation, cocotb testbenches."""
