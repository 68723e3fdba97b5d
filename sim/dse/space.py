"""The design space: per-layer multiplier candidates, array shape, dataflow, accumulator width.

A :class:`Point` is one design: a multiplier for every GEMM layer of the network and one array
configuration (``rows x cols``, dataflow, accumulator width, output correction). The hardware
of a point is a *bank* of arrays of that configuration, one per distinct multiplier of the
assignment, each layer routed to the array of its multiplier (AutoApprox, DATE 2022); a uniform
assignment is a single array. The correction (``none``, ``bias``, ``cv``; :mod:`sim.correction`,
``hw.gen --correction``) is a property of the bank: every approximate array gets it, exact
arrays have nothing to correct (``hw.gen --bank ... --correction``); labels write a corrected
array ``NAME+MODE``. Corrected points need the ws dataflow (the emulation corrects ws tiles).
:class:`Space` encodes points as integer vectors (one index per variable) for the search
algorithms.

Config file (TOML), every key optional but the candidates::

    model = "digits-mlp"          # built-in model (sim.dnn.MODELS)
    dataset = "digits"
    images = 300                  # validation images for the bit-exact accuracy
    [space]
    mult = ["exact", "truncated4", "drum4"]     # candidates of every layer
    rows = [8, 16]
    cols = [8, 16]                # default: the rows (square arrays)
    dataflow = ["ws"]
    acc_width = [32]
    correction = ["none", "bias", "cv"]          # output correction of the approximate arrays
    [space.layers]                # per-layer candidates (replace ``mult`` for that layer)
    fc3 = ["exact", "truncated4"]
    [search]                      # command-line option names, without the dashes
    algorithm = "nsga2"
    objectives = ["drop", "area"]
    max_drop = 0.5
    [carbon]                      # sim.dse.carbon: node, ci_fab, epa, gpa, mpa, d0, alpha, nand2_um2
    node = 28
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from hw.mult import MultiplierError, parse

from .errors import DseError

__all__ = ["Point", "Space", "DATAFLOWS", "CORRECTIONS", "MAX_SIDE", "ACC_RANGE", "load_config",
           "check_name"]

DATAFLOWS = ("ws", "os")
CORRECTIONS = ("none", "bias", "cv")
MAX_SIDE = 64                 # hw.gen's limit
ACC_RANGE = (16, 62)          # hw.gen: 2N..62 for 8-bit operands
#: Largest number of points :func:`Space.enumerate` walks.
MAX_ENUMERATE = 200_000


@dataclass(frozen=True)
class Point:
    """One design: ``assign`` = ``((layer, multiplier), ...)`` in layer order, and the array
    configuration; ``correction`` applies to every approximate array (``none`` when there is
    none: an all-exact point is never corrected)."""

    assign: tuple
    rows: int
    cols: int
    dataflow: str = "ws"
    acc_width: int = 32
    correction: str = "none"

    def __post_init__(self):
        if self.correction != "none" and self.assign and all(_is_exact(m) for _, m in self.assign):
            object.__setattr__(self, "correction", "none")

    @property
    def mults(self) -> tuple:
        """The distinct multipliers (one array each), in first-use order."""
        return tuple(dict.fromkeys(m for _, m in self.assign))

    @property
    def arrays(self) -> int:
        return len(self.mults)

    def corrected(self, name: str) -> bool:
        """Whether the array of multiplier ``name`` carries the correction."""
        return self.correction != "none" and not _is_exact(name)

    def array_label(self, name: str) -> str:
        """``NAME`` or ``NAME+MODE`` for a corrected array."""
        return f"{name}+{self.correction}" if self.corrected(name) else name

    @property
    def assignment(self) -> dict:
        return dict(self.assign)

    @property
    def label(self) -> str:
        ms = self.mults
        text = (self.array_label(ms[0]) if len(ms) == 1 else
                ",".join(f"{l}={self.array_label(m)}" for l, m in self.assign))
        return f"{text} @{self.rows}x{self.cols} {self.dataflow} A{self.acc_width}"

    @property
    def accuracy_key(self) -> tuple:
        """What the accuracy depends on: the assignment and the accumulator; with a correction
        also its mode and the tile depth ``rows`` (the constants are per ``rows``-deep tile)."""
        if self.correction == "none":
            return (self.assign, self.acc_width)
        return (self.assign, self.acc_width, self.correction, self.rows)

    def as_dict(self) -> dict:
        return {"assignment": self.assignment, "rows": self.rows, "cols": self.cols,
                "dataflow": self.dataflow, "acc_width": self.acc_width,
                "correction": self.correction,
                "arrays": [self.array_label(m) for m in self.mults]}


def _is_exact(name: str) -> bool:
    return parse(name, width=8, signed=True).name == "exact"


def check_name(name: str) -> str:
    """``name`` if it is a multiplier the 8-bit signed toolkit knows (its canonical spelling
    is not forced); :class:`DseError` otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise DseError(f"a multiplier candidate must be a non-empty name, not {name!r}")
    try:
        parse(name.strip(), width=8, signed=True)
    except MultiplierError as exc:
        raise DseError(f"candidate {name.strip()!r}: {exc}") from None
    return name.strip()


def _ints(values, label, lo, hi) -> tuple:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise DseError(f"{label} must be integers in {lo}..{hi}, not {v!r}")
        out.append(v)
    if not out:
        raise DseError(f"{label}: the list is empty")
    return tuple(dict.fromkeys(out))


def _choices(values, label, allowed) -> tuple:
    """``values`` without repeats, each one of ``allowed``; :class:`DseError` otherwise."""
    for v in values:
        if v not in allowed:
            raise DseError(f"unknown {label} {v!r}; choose {', '.join(allowed[:-1])} or "
                           f"{allowed[-1]}")
    if not values:
        raise DseError(f"{label}: the list is empty")
    return tuple(dict.fromkeys(values))


@dataclass(frozen=True)
class Space:
    """Candidates per layer (``layers[i]`` takes one of ``candidates[i]``) and the array
    options; every variable with one choice is fixed."""

    layers: tuple
    candidates: tuple
    rows: tuple = (16,)
    cols: tuple | None = None          # None: square arrays (cols = rows)
    dataflows: tuple = ("ws",)
    acc_widths: tuple = (32,)
    corrections: tuple = ("none",)

    def __post_init__(self):
        if not self.layers:
            raise DseError("the design space has no layers")
        if len(self.candidates) != len(self.layers):
            raise DseError("one candidate list per layer is needed")
        cands = []
        for layer, c in zip(self.layers, self.candidates):
            names = tuple(dict.fromkeys(check_name(n) for n in c))
            if not names:
                raise DseError(f"the design space is empty: layer {layer} has no candidate")
            cands.append(names)
        object.__setattr__(self, "candidates", tuple(cands))
        object.__setattr__(self, "rows", _ints(self.rows, "rows", 1, MAX_SIDE))
        if self.cols is not None:
            object.__setattr__(self, "cols", _ints(self.cols, "cols", 1, MAX_SIDE))
        object.__setattr__(self, "dataflows", _choices(self.dataflows, "dataflow", DATAFLOWS))
        object.__setattr__(self, "acc_widths", _ints(self.acc_widths, "acc_width", *ACC_RANGE))
        object.__setattr__(self, "corrections",
                           _choices(self.corrections, "correction", CORRECTIONS))
        if set(self.corrections) - {"none"} and "os" in self.dataflows:
            raise DseError("a corrected design space needs dataflow ws only (the emulation "
                           "corrects weight-stationary tiles)")

    # -- the integer encoding ------------------------------------------------------------------
    @property
    def shapes(self) -> tuple:
        """``(rows, cols)`` pairs."""
        if self.cols is None:
            return tuple((r, r) for r in self.rows)
        return tuple(itertools.product(self.rows, self.cols))

    @property
    def variables(self) -> list:
        """``[(name, choices), ...]``: one per layer, then shape, dataflow, accumulator,
        correction."""
        return ([(l, c) for l, c in zip(self.layers, self.candidates)]
                + [("shape", self.shapes), ("dataflow", self.dataflows),
                   ("acc_width", self.acc_widths), ("correction", self.corrections)])

    @property
    def bounds(self) -> list:
        return [len(c) - 1 for _, c in self.variables]

    @property
    def size(self) -> int:
        return math.prod(len(c) for _, c in self.variables)

    def decode(self, x) -> Point:
        idx = [int(round(float(v))) for v in x]
        vs = self.variables
        if len(idx) != len(vs):
            raise DseError(f"a point of this space has {len(vs)} variables, got {len(idx)}")
        for i, (name, choices) in zip(idx, vs):
            if not 0 <= i < len(choices):
                raise DseError(f"variable {name}: index {i} out of range 0..{len(choices) - 1}")
        n = len(self.layers)
        assign = tuple((l, c[i]) for (l, c), i in zip(vs[:n], idx[:n]))
        rows, cols = self.shapes[idx[n]]
        return Point(assign, rows, cols, self.dataflows[idx[n + 1]], self.acc_widths[idx[n + 2]],
                     self.corrections[idx[n + 3]])

    def encode(self, p: Point) -> list:
        x = [self.candidates[i].index(m) for i, (_, m) in enumerate(p.assign)]
        return x + [self.shapes.index((p.rows, p.cols)), self.dataflows.index(p.dataflow),
                    self.acc_widths.index(p.acc_width), self.corrections.index(p.correction)]

    def enumerate(self):
        """Every distinct point (refused above :data:`MAX_ENUMERATE`; an all-exact point
        once, whatever the correction)."""
        if self.size > MAX_ENUMERATE:
            raise DseError(f"the space has {self.size} points, too many to enumerate (at most "
                           f"{MAX_ENUMERATE}); use --algorithm nsga2 or greedy")
        seen = set()
        for x in itertools.product(*[range(len(c)) for _, c in self.variables]):
            p = self.decode(x)
            if p not in seen:
                seen.add(p)
                yield p

    def uniform_names(self) -> tuple:
        """Candidates every layer accepts (the single-multiplier baselines)."""
        common = [m for m in self.candidates[0] if all(m in c for c in self.candidates[1:])]
        return tuple(common)

    def describe(self) -> dict:
        return {"layers": {l: list(c) for l, c in zip(self.layers, self.candidates)},
                "shapes": [list(s) for s in self.shapes], "dataflows": list(self.dataflows),
                "acc_widths": list(self.acc_widths), "corrections": list(self.corrections),
                "size": self.size}


def load_config(path) -> dict:
    """Read a TOML config file (module docstring) into a plain dict; :class:`DseError` when it
    cannot be read or is not TOML."""
    import tomllib
    from pathlib import Path

    p = Path(path)
    try:
        if not p.is_file():
            raise DseError(f"config {path}: {'is not a file' if p.exists() else 'does not exist'}")
        data = p.read_bytes()
    except OSError as exc:
        raise DseError(f"config {path}: {exc.strerror or exc}") from None
    if len(data) > 1 << 20:
        raise DseError(f"config {path}: larger than 1 MiB")
    try:
        cfg = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DseError(f"config {path} is not valid TOML: {exc}") from None
    known = {"model", "dataset", "images", "space", "search", "carbon"}
    extra = set(cfg) - known
    if extra:
        raise DseError(f"config {path}: unknown key(s) {', '.join(sorted(extra))}; known: "
                       f"{', '.join(sorted(known))}")
    for section in ("space", "search", "carbon"):
        if section in cfg and not isinstance(cfg[section], dict):
            raise DseError(f"config {path}: [{section}] must be a table")
    return cfg
