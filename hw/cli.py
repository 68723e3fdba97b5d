"""One grammar for every command line of the toolkit, and the one way they fail.

Every ``python -m ...`` command builds its parser from :class:`Parser` and the ``add_*`` helpers
here, and runs its body through :func:`run_main`, so that

* the same option means the same thing everywhere (:data:`CONVENTIONS`, printed by ``--help``);
* numbers are checked when parsed: ``--sample 1e11``, a 5000-digit number, ``nan``, a negative
  seed or ``-j 0`` is one clear line, never a traceback or a silent acceptance;
* any failure is one line on stderr (``PROG: error: ...``) and exit status 2, whatever raised
  it; warnings of a failed run are dropped; ``SIGTERM``/``SIGHUP`` unwind like Ctrl-C, so
  temporary files and folders are removed (exit 130/143); ``AXM_DEBUG=1`` shows tracebacks;
* progress bars (tqdm) appear only when stderr is a terminal (``AXM_PROGRESS=0/1`` overrides),
  so logs get no carriage-return spam.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import signal
import sys
import warnings

from .devices import FpgaDevice, device_names, find_device
from .errors import ToolkitError

__all__ = ["CONVENTIONS", "UsageError", "Parser", "integer", "number", "seed", "split_mults",
           "add_mult", "add_width", "add_signedness", "signedness_values", "add_device",
           "add_accumulator", "add_out", "add_force", "add_json", "add_seed", "add_jobs", "add_timeout",
           "add_cache", "apply_cache", "output_path", "progress_enabled", "progress",
           "run_main", "fail"]

CONVENTIONS = f"""\
conventions (the same in every axmtoolkit command):
  --mult LIST        multipliers: NAME[,NAME...]; NAME*K repeats NAME K times; --mult may be
                     repeated and take several lists, which are joined. Names (exact,
                     truncated4, drum6, verilog:FILE, table:FILE, ...): python -m
                     sim.characterize --help
  --width N          operand width in bits, 4..16 (default 8)
  --signed, --unsigned, --signedness signed|unsigned[|both]
                     two's-complement (default) or unsigned operands
  --device NAME      {device_names()}
  -o, --out PATH     where outputs go; folders are created; an existing file is replaced only
                     when axmtoolkit wrote it and it is unchanged, a folder must be new, empty
                     or hold only such files, unless --force (nothing else is ever touched)
  --json [PATH]      results as JSON on stdout, or written to PATH
  --seed S           random seed, 0..2^63-1;  -j/--jobs N  parallel jobs, 1..256
  --timeout SECONDS  limit per tool run;  --cache-dir DIR (= AXM_CACHE_DIR), --no-cache
exit status: 0 done; 1 a verification found a mismatch; 2 bad input or a failed run (one line
on stderr, no output written); 130 interrupted.
"""

_MAX_DIGITS = 19
_INT = re.compile(r"[+-]?\d+(_\d+)*", re.ASCII)     # 0-9 only, not "４"


class UsageError(ToolkitError):
    """A bad command-line value found after parsing (mutually exclusive options, ...)."""


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors are one line and exit status 2.

    Sub-command parsers made with ``add_subparsers().add_parser`` are of this class too. The
    default formatter keeps the epilog's line breaks.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {_clip(' '.join(str(message).split()))}\n")


def fail(message: str):
    """Raise a :class:`UsageError` (for checks after parsing)."""
    raise UsageError(message)


# -- number types ---------------------------------------------------------------------------------
def _short(text: str) -> str:
    text = str(text)
    return text if len(text) <= 24 else text[:20] + "..."


def integer(lo: int | None = None, hi: int | None = None):
    """An ``argparse`` type: a decimal integer in ``lo..hi`` (either bound optional).

    Refuses floats (``1e11``, ``2.0``), expressions (``2**40``) and more than 19 digits with a
    message saying what is allowed.
    """
    def parse(text: str) -> int:
        t = str(text).strip()
        if not _INT.fullmatch(t):
            hint = ""
            with contextlib.suppress(ValueError, OverflowError):
                value = float(t)
                if math.isfinite(value) and value == int(value):
                    hint = f" (write it out: {int(value)})"
            raise argparse.ArgumentTypeError(f"{_short(t)!r} is not an integer{hint}")
        if len(t.lstrip("+-").replace("_", "")) > _MAX_DIGITS:
            raise argparse.ArgumentTypeError(f"{_short(t)!r} is too large")
        value = int(t)
        if lo is not None and value < lo or hi is not None and value > hi:
            raise argparse.ArgumentTypeError(f"{value} is out of range {_range(lo, hi)}")
        return value
    parse.__name__ = "integer"
    return parse


def _range(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f"{lo}..{hi}"
    return f">= {lo}" if lo is not None else f"<= {hi}"


def number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False):
    """An ``argparse`` type: a finite decimal number in ``lo..hi`` (``lo_open``: ``> lo``)."""
    def parse(text: str) -> float:
        t = str(text).strip()
        if len(t) > 40 or not t.isascii():
            raise argparse.ArgumentTypeError(f"{_short(t)!r} is not a number")
        try:
            value = float(t)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{_short(t)!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{_short(t)!r} is not a finite number")
        if lo is not None and (value <= lo if lo_open else value < lo) \
                or hi is not None and value > hi:
            bounds = ([f"{'>' if lo_open else '>='} {lo:g}"] if lo is not None else []) \
                + ([f"<= {hi:g}"] if hi is not None else [])
            raise argparse.ArgumentTypeError(f"{value:g} must be {' and '.join(bounds)}")
        return value
    parse.__name__ = "number"
    return parse


#: Seeds: numpy's generators take any non-negative integer; 63 bits keep them portable.
seed = integer(0, (1 << 63) - 1)


# -- multiplier lists -----------------------------------------------------------------------------
MAX_REPEAT = 4096


def split_mults(values, *, option: str = "--mult") -> list[str]:
    """Expand ``--mult`` values: each is ``NAME[,NAME...]``, ``NAME*K`` repeats a name ``K``
    times (``1 <= K <= 4096``). Names are not parsed here. Raises :class:`UsageError`."""
    if isinstance(values, str):
        values = [values]
    names: list[str] = []
    for value in values or ():
        for item in str(value).split(","):
            item = item.strip()
            name, star, count = item.rpartition("*") if "*" in item else (item, "", "")
            name = name.strip()
            if star:
                count = count.strip()
                if not count.isdigit() or not 1 <= int(count[:6]) <= MAX_REPEAT \
                        or len(count) > 6:
                    raise UsageError(f"bad repetition {_short(item)!r} in {option}: write "
                                     f"NAME*K with K in 1..{MAX_REPEAT}")
                if not name:
                    raise UsageError(f"missing name before '*' in {option} {_short(item)!r}")
                names.extend([name] * int(count))
            elif not name:
                raise UsageError(f"empty multiplier name in {option} {_short(value)!r}")
            else:
                names.append(name)
    return names


def add_mult(p, *, default=None, required: bool = False, help: str | None = None):
    """``--mult LIST [LIST ...]`` (repeatable); read the names with :func:`split_mults`."""
    p.add_argument("--mult", action="extend", nargs="+", metavar="LIST", default=None,
                   required=required,
                   help=help or "multiplier name(s): NAME[,NAME...], NAME*K repeats"
                   + (f" (default: {default})" if default else ""))


def add_width(p, default: int = 8):
    from hw.mult import MAX_WIDTH, MIN_WIDTH
    p.add_argument("--width", type=integer(MIN_WIDTH, MAX_WIDTH), default=default, metavar="N",
                   help=f"operand width in bits, {MIN_WIDTH}..{MAX_WIDTH} (default {default})")


def add_signedness(p, *, allow_both: bool = False):
    """``--signed`` (default) / ``--unsigned`` / ``--signedness``; read with
    :func:`signedness_values`."""
    choices = ("signed", "unsigned", "both") if allow_both else ("signed", "unsigned")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--signed", dest="signedness", action="store_const", const="signed",
                       help="two's-complement operands (default)")
    group.add_argument("--unsigned", dest="signedness", action="store_const",
                       const="unsigned", help="unsigned operands")
    group.add_argument("--signedness", dest="signedness", choices=choices,
                       help=f"{' | '.join(choices)} (default signed)")
    p.set_defaults(signedness=None)


def signedness_values(args, default: str = "signed") -> tuple[bool, ...]:
    """``(True,)``, ``(False,)`` or ``(True, False)`` for the parsed signedness options."""
    value = getattr(args, "signedness", None) or default
    return {"signed": (True,), "unsigned": (False,), "both": (True, False)}[value]


def _device(text: str) -> FpgaDevice:
    try:
        return find_device(text)
    except ToolkitError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_device(p, *flags, default: str | None = None, help: str | None = None):
    """``--device NAME`` (also ``--board``): parsed to a :class:`hw.devices.FpgaDevice`."""
    flags = flags or ("--device",)
    p.add_argument(*flags, dest="device", type=_device, metavar="NAME",
                   default=None if default is None else find_device(default),
                   required=default is None,
                   help=help or f"FPGA: {device_names()}"
                   + (f" (default {default})" if default else ""))


def add_accumulator(p, *, defaults: bool = True):
    """``--acc-width A`` and ``--overflow wrap|saturate`` (defaults 32 and wrap, or ``None``
    when the command fills them in itself)."""
    p.add_argument("--acc-width", type=integer(1, 64), default=32 if defaults else None,
                   metavar="A", help="accumulator width in bits (default 32)")
    p.add_argument("--overflow", choices=("wrap", "saturate"),
                   default="wrap" if defaults else None,
                   help="accumulator overflow rule (default wrap)")


# -- outputs, jobs, caches ------------------------------------------------------------------------
def output_path(text: str) -> str:
    """An ``argparse`` type for an output file or folder where no stream is offered: refuses
    an empty path and ``-`` (which means standard output elsewhere; ``./-`` names a file)."""
    t = str(text)
    if not t.strip():
        raise argparse.ArgumentTypeError("an empty path")
    if t == "-":
        raise argparse.ArgumentTypeError("'-' (standard output) is not offered here; give a "
                                         "path (./- for a file or folder named -)")
    return t


def add_out(p, *, default=None, metavar: str = "PATH", help: str | None = None,
            flags=("-o", "--out")):
    p.add_argument(*flags, dest="out", type=output_path, default=default, metavar=metavar,
                   help=help or "output path (see conventions below)")


def add_force(p):
    p.add_argument("--force", action="store_true",
                   help="replace existing outputs of the same names that axmtoolkit did not "
                        "write (nothing else is touched)")


def add_json(p, *, file: bool = True):
    if file:
        p.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                       help="results as JSON: on stdout, or written to PATH")
    else:
        p.add_argument("--json", action="store_const", const="-", default=None,
                       help="print the results as JSON")


def add_seed(p, default: int = 0, help: str | None = None):
    p.add_argument("--seed", type=seed, default=default, metavar="S",
                   help=help or f"random seed, 0..2^63-1 (default {default})")


def add_jobs(p, default: int = 1):
    p.add_argument("-j", "--jobs", type=integer(1, 256), default=default, metavar="N",
                   help=f"parallel jobs, 1..256 (default {default})")


def add_timeout(p, default: float):
    p.add_argument("--timeout", type=number(0, 7 * 86400, lo_open=True), default=default,
                   metavar="SECONDS", help=f"limit per tool run in seconds (default {default:g})")


def add_cache(p):
    p.add_argument("--cache-dir", metavar="DIR",
                   help="cache root for this run (same as AXM_CACHE_DIR; default "
                        "~/.cache/axmtoolkit)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")


def apply_cache(args) -> bool:
    """Apply ``--cache-dir`` (sets ``AXM_CACHE_DIR`` for this process); return whether the cache
    is enabled. Raises :class:`UsageError` when the folder is not a folder."""
    folder = getattr(args, "cache_dir", None)
    if folder:
        if os.path.lexists(folder) and not os.path.isdir(folder):
            fail(f"--cache-dir {folder}: exists and is not a folder")
        above = os.path.dirname(os.path.abspath(folder))
        while not os.path.lexists(above):              # the folders it would have to create
            above = os.path.dirname(above)
        if not os.path.isdir(above):
            fail(f"--cache-dir {folder}: {above} is not a folder")
        os.environ["AXM_CACHE_DIR"] = os.path.abspath(folder)
    return not getattr(args, "no_cache", False)


# -- progress -------------------------------------------------------------------------------------
def progress_enabled() -> bool:
    """Progress bars only on a terminal; ``AXM_PROGRESS=0`` or ``1`` forces."""
    env = os.environ.get("AXM_PROGRESS", "").strip()
    if env in ("0", "1"):
        return env == "1"
    return sys.stderr.isatty()


def progress(iterable=None, **kwargs):
    """A tqdm bar that follows :func:`progress_enabled` (``disable=`` may still be given)."""
    from tqdm import tqdm
    kwargs.setdefault("leave", False)
    kwargs.setdefault("mininterval", 0.5)
    kwargs["disable"] = kwargs.get("disable", False) or not progress_enabled()
    return tqdm(iterable, **kwargs)


# -- running a command ----------------------------------------------------------------------------
class _Terminated(KeyboardInterrupt):
    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum, frame):
    raise _Terminated(signum)


#: Longest message shown: a 100 000-character argument quoted in an error stays readable.
MAX_MESSAGE = 600


def _clip(text: str) -> str:
    """``text``, or its start and end around ``[... N characters ...]`` when it is longer than
    :data:`MAX_MESSAGE` (the end often says what is wrong: "File name too long")."""
    if len(text) <= MAX_MESSAGE:
        return text
    head, tail = MAX_MESSAGE * 2 // 3, MAX_MESSAGE // 4
    return f"{text[:head]} [... {len(text) - head - tail} characters ...] {text[-tail:]}"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return _clip(text) or type(exc).__name__


#: Exceptions that mean "this input cannot be processed": reported like ToolkitError.
INPUT_ERRORS = (ToolkitError, ValueError, TypeError, OverflowError, LookupError, OSError,
                MemoryError, RecursionError)


def run_main(prog: str, body, argv=None) -> int:
    """Run ``body(argv) -> int`` as a command: see the module docstring for what it guarantees.
    Returns the exit status."""
    handlers = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError):     # not in the main thread
            handlers[sig] = signal.signal(sig, _raise_terminated)
    debug = os.environ.get("AXM_DEBUG", "").strip() not in ("", "0")
    message = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                status = body(argv)
            except SystemExit as exc:       # argparse: --help (0) or a usage error (2)
                status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None
                                                                     else 2)
            except BrokenPipeError:         # e.g. piped into head: not an error
                with contextlib.suppress(OSError):
                    sys.stdout = open(os.devnull, "w")
                status = 0
            except _Terminated as exc:
                message, status = f"terminated (signal {exc.signum})", 128 + exc.signum
            except KeyboardInterrupt:
                message, status = "interrupted", 130
            except INPUT_ERRORS as exc:
                if debug:
                    raise
                message, status = f"error: {_one_line(exc)}", 2
            except Exception as exc:  # a bug: still one line, but say so
                if debug:
                    raise
                message = (f"internal error: {type(exc).__name__}: {_one_line(exc)} "
                           "(AXM_DEBUG=1 shows the traceback; please report it)")
                status = 2
            recorded = list(caught)
    finally:
        for sig, handler in handlers.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, handler)
    # Amaranth warns about elaboratables it never saw elaborated when they are garbage
    # collected, i.e. after this returns (at exit): that is expected of a refused or partial
    # run, and noise on stderr otherwise.
    warnings.filterwarnings("ignore", message=r".* created but never used")
    status = 0 if status is None else status
    if message is not None:
        print(f"{prog}: {message}", file=sys.stderr)
    if status != 0:
        warnings.simplefilter("ignore")      # nothing more on stderr after the one line
        unused = sys.modules.get("amaranth._unused")
        if unused is not None:               # as Amaranth itself does after a crash
            unused.MustUse._MustUse__silence = True
        return status
    shown = set()
    for w in recorded:
        if issubclass(w.category, (RuntimeWarning, DeprecationWarning, PendingDeprecationWarning)):
            continue                       # numerics handled by the code; library churn
        text = f"{prog}: warning: {_one_line(w.message)}"
        if text not in shown and "created but never used" not in text:
            shown.add(text)
            print(text, file=sys.stderr)
    return status
