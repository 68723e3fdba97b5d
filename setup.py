"""Build hook for the optional compiled kernels of the emulator (everything else is in
pyproject.toml). ``sim.kernels._native`` is a plain C extension (no numpy headers needed) built
with the system C compiler by ``pip install -e .``; ``optional=True`` turns a failed build into a
warning, and sim.emulate then runs on its numpy/BLAS paths (slower, same results)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "sim.kernels._native", ["sim/kernels/_native.c"], optional=True,
    extra_compile_args=["-O3", "-std=gnu11", "-fno-strict-aliasing"])])
