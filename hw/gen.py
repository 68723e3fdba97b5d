"""``python -m hw.gen``: write a systolic array (or a single multiplier) as ONE Verilog file plus a
JSON manifest beside it.

Library use: :func:`generate` returns the file texts and the manifest without touching the disk;
:func:`main` is the command line (``--help`` explains the arguments with examples).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import hw.mult as mult_lib
import hashlib

from hw.cli import (CONVENTIONS, Parser, UsageError, add_force, add_out, add_signedness,
                    add_width, integer, progress, run_main, signedness_values, split_mults)
from hw.errors import ToolkitError
from hw.mac import MAX_ACC_WIDTH, OVERFLOW_MODES
from hw.manifest import array_manifest, dumps, multiplier_manifest
from hw.mult import MultiplierError, extra_verilog_sources, parse
from hw.outputs import check_file, write_files
from hw.systolic import DATAFLOWS, MAX_DIM, SystolicArray, emit_array_verilog
from hw.verilog import emit_verilog

__all__ = ["GenError", "Generated", "parse_mult_list", "generate", "main"]

DEFAULT_OUT = "out"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class GenError(ToolkitError, ValueError):
    """Invalid generator arguments; the message is one user-facing line."""


@dataclass(frozen=True)
class Generated:
    """Result of :func:`generate`: top module name, ``{file name: text}`` and the manifest.

    ``design_verilog`` is the generated part of the Verilog file and ``extra_sources`` the
    imported multiplier sources appended to it (``{file name: text}``), for callers that put
    several designs into one file and must include each imported module only once.
    """

    top: str
    files: dict
    manifest: dict
    design_verilog: str = ""
    extra_sources: dict = field(default_factory=dict)
    #: The multipliers in the manifest's order as names this process can parse again (imported
    #: ones with absolute paths; the manifest holds only their portable names).
    model_names: list = field(default_factory=list)

    @property
    def verilog(self) -> str:
        return self.files[f"{self.top}.v"]


def parse_mult_list(text) -> list[str]:
    """``"exact*2,truncated4"`` -> ``["exact", "exact", "truncated4"]`` (the shared ``--mult``
    grammar, :func:`hw.cli.split_mults`)."""
    try:
        return split_mults(text)
    except UsageError as exc:
        raise GenError(str(exc)) from None


def _int(label: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GenError(f"{label} must be an integer, not {value!r}")
    return value


def _top_name(name, default: str) -> str:
    top = default if name is None else name
    if not _IDENT.fullmatch(top) or len(top) > 120:
        raise GenError(f"top module name {top!r} is not a Verilog identifier "
                       "([A-Za-z_][A-Za-z0-9_]*, at most 120 characters)")
    return top


def default_top_name(dataflow: str, rows: int, cols: int, specs, per: str = "all") -> str:
    """``axm_<dataflow>_<R>x<C>_<multiplier>_<N><s|u>``: the multiplier's identifier
    (:attr:`hw.mult.MultiplierSpec.ident`) for a uniform array, ``mixed_<8 hex digits>`` of
    the per-row/per-column assignment otherwise, so arrays of different multipliers never
    define modules of the same name."""
    distinct = list(dict.fromkeys(specs))
    first = distinct[0]
    if len(distinct) == 1:
        what = first.ident
    else:
        key = "|".join([per, *(s.portable_name for s in specs)])
        what = f"mixed_{hashlib.sha256(key.encode()).hexdigest()[:8]}"
    return f"axm_{dataflow}_{rows}x{cols}_{what}_{first.width}{'s' if first.signed else 'u'}"


def _with_extra_sources(verilog: str, specs) -> tuple[str, dict]:
    extra = extra_verilog_sources(specs)
    text = verilog + "".join(f"\n// ---- {fname} (imported multiplier source) ----\n{body}"
                             for fname, body in extra.items())
    return text, extra


def generate(*, rows=None, cols=None, mult="exact", mult_per=None, width=8, signed=True,
             dataflow="ws", acc_width=32, overflow="wrap", pipeline=False, name=None,
             progress=None, check_outputs=None, energy=False, correction="none",
             corr_frac=None, corr_alpha_bits=None, corr_beta_bits=None,
             corr_sum_bits=None, bank=None, output_buffer=False) -> Generated:
    """Build the design described by the ``python -m hw.gen`` options (``rows=None``: only the
    multiplier). Raises :class:`GenError` / :class:`hw.mult.MultiplierError` on bad input.
    ``progress(stage)`` is called before each slow stage (Verilog, metrics);
    ``check_outputs(top)`` once the top module's name is known, before the slow part.
    ``energy``: add the opt-in manifest field ``energy`` (:func:`hw.manifest.energy_entry`;
    needs Yosys, cached). ``correction``: ``none``, ``bias`` or ``cv`` (:mod:`sim.correction`;
    ``corr_*``: its widths, default from :func:`sim.correction.default_format`). ``bank``:
    multiplier names (a list or ``"a,b,c"``), one whole array each, behind one set of streams
    and a ``select`` input (:mod:`hw.bank`); replaces ``mult``. ``output_buffer``: credit-based
    back-pressure with an output FIFO instead of the global stall (``--output-buffer``)."""
    progress = progress or (lambda stage: None)
    check_outputs = check_outputs or (lambda top: None)
    names = parse_mult_list(mult)
    width = _int("--width", width)
    if rows is None:
        if len(names) != 1:
            raise GenError("a multiplier-only run takes one --mult name (give --rows for an "
                           "array)")
        spec = parse(names[0], width=width, signed=signed)
        top = _top_name(name, f"axm_mult_{spec.ident}_{spec.width}{'s' if spec.signed else 'u'}")
        check_outputs(top)
        design = emit_verilog(spec.circuit(), top)
        verilog, extra = _with_extra_sources(design, [spec])
        arguments = {"mult": spec.portable_name, "width": spec.width, "signed": spec.signed,
                     "name": top}
        command = (f"python -m hw.gen --mult {spec.portable_name} --width {spec.width} "
                   f"--{'signed' if spec.signed else 'unsigned'} --name {top}")
        manifest = multiplier_manifest(spec, top=top, verilog_file=f"{top}.v",
                                       verilog_text=verilog, arguments=arguments,
                                       command=command)
        manifest["extra_sources"] = list(extra)
        return Generated(top, {f"{top}.v": verilog, f"{top}.json": dumps(manifest)}, manifest,
                         design, extra, [spec.name])

    rows = _int("--rows", rows)
    cols = rows if cols is None else _int("--cols", cols)
    for label, value in (("--rows", rows), ("--cols", cols)):
        if not 1 <= value <= MAX_DIM:
            raise GenError(f"{label} must be in 1..{MAX_DIM}, not {value}")
    if dataflow not in DATAFLOWS:
        raise GenError(f"unknown dataflow {dataflow!r}; choose ws or os")
    if overflow not in OVERFLOW_MODES:
        raise GenError(f"unknown overflow mode {overflow!r}; choose wrap or saturate")
    acc_width = _int("--acc-width", acc_width)
    if bank is not None:
        names = parse_mult_list(bank)
    specs = {n: parse(n, width=width, signed=signed) for n in dict.fromkeys(names)}
    canonical = [specs[n].portable_name for n in names]
    product = next(iter(specs.values())).product_width
    if not product <= acc_width <= MAX_ACC_WIDTH:
        raise GenError(f"--acc-width {acc_width} must be in {product}..{MAX_ACC_WIDTH}: the "
                       f"accumulator cannot be narrower than the {product}-bit product")
    if bank is not None:
        if mult_per is not None:
            raise GenError("--bank takes one multiplier per array; --mult-per does not apply")
        corr = dict(mode=correction, frac=corr_frac, alpha_bits=corr_alpha_bits,
                    beta_bits=corr_beta_bits, sum_bits=corr_sum_bits)
        return _generate_bank(names, specs, rows, cols, width, dataflow, acc_width, overflow,
                              pipeline, name, progress, check_outputs, energy, corr,
                              output_buffer)
    if len(names) == 1:
        per = "all"
        grid = specs[names[0]]
    else:
        if mult_per not in ("row", "col"):
            raise GenError(f"--mult lists {len(names)} multipliers: add --mult-per row (one per "
                           "row, top to bottom) or --mult-per col (one per column, left to "
                           "right)")
        count = rows if mult_per == "row" else cols
        if len(names) != count:
            raise GenError(f"--mult lists {len(names)} multipliers but the array has {count} "
                           f"{'rows' if mult_per == 'row' else 'columns'}")
        per = mult_per
        if per == "row":
            grid = [[specs[names[r]]] * cols for r in range(rows)]
        else:
            grid = [[specs[names[c]] for c in range(cols)] for _ in range(rows)]
    from sim.correction import default_format  # an arithmetic oracle (lower layer)
    fmt = default_format(correction, list(specs.values()), rows=rows, dataflow=dataflow,
                         acc_width=acc_width, frac=corr_frac, alpha_bits=corr_alpha_bits,
                         beta_bits=corr_beta_bits, sum_bits=corr_sum_bits)
    default_top = default_top_name(dataflow, rows, cols, [specs[n] for n in names], per)
    top = _top_name(name, default_top + ("" if fmt is None else f"_{fmt.mode}")
                    + ("_ob" if output_buffer else ""))
    check_outputs(top)
    array = SystolicArray(rows, cols, grid, dataflow=dataflow, acc_width=acc_width,
                          overflow=overflow, pipeline=pipeline, correction=fmt,
                          output_buffer=bool(output_buffer))
    progress("Verilog")
    design = emit_array_verilog(array, top)
    verilog, extra = _with_extra_sources(design, array.distinct_specs())
    mult_text = ",".join(canonical) if per != "all" else canonical[0]
    command, arguments = _array_command(
        f"--mult {mult_text}" + (f" --mult-per {per}" if per != "all" else ""),
        {"mult": canonical, "mult_per": per}, rows=rows, cols=cols, width=width,
        signed=array.signed, dataflow=dataflow, acc_width=acc_width, overflow=overflow,
        pipeline=pipeline, fmt=fmt, output_buffer=output_buffer, top=top)
    progress("metrics")
    manifest = array_manifest(array, top=top, verilog_file=f"{top}.v", verilog_text=verilog,
                              arguments=arguments, command=command,
                              assignment={"per": per, "names": canonical if per != "all"
                                          else canonical[:1]})
    manifest["extra_sources"] = list(extra)
    if fmt is not None:
        manifest["array"]["correction"] = correction_entry(fmt, dataflow)
    if energy:
        from hw.manifest import energy_entry
        manifest["energy"] = energy_entry(array)
    model_names = [specs[n].name for n in (names if per != "all" else names[:1])]
    return Generated(top, {f"{top}.v": verilog, f"{top}.json": dumps(manifest)}, manifest,
                     design, extra, model_names)


def _generate_bank(names, specs, rows, cols, width, dataflow, acc_width, overflow, pipeline,
                   name, progress, check_outputs, energy, corr, output_buffer) -> Generated:
    """``hw.gen --bank``: one array per name behind one set of streams (:mod:`hw.bank`).
    ``corr`` (``mode`` and the ``--corr-*`` widths): with a correction every approximate array
    gets it, in one format fitted to all of them (:func:`sim.correction.default_format`); an
    exact array has no error to correct and stays uncorrected."""
    from hw.bank import MAX_BANK, ArrayBank, bank_arrays, select_width

    if not 2 <= len(names) <= MAX_BANK:
        raise GenError(f"--bank lists {len(names)} multipliers; a bank holds 2..{MAX_BANK}")
    if len(set(names)) != len(names):
        raise GenError("--bank lists a multiplier twice; give each array a different one")
    first = specs[names[0]]
    try:
        arrays, fmt = bank_arrays([specs[n] for n in names], rows, cols, dataflow=dataflow,
                                  acc_width=acc_width, overflow=overflow, pipeline=pipeline,
                                  output_buffer=bool(output_buffer),
                                  correction=corr.pop("mode"), **corr)
    except ValueError as exc:       # CorrectionError is one too
        raise GenError(str(exc)) from None
    idents = "_".join(specs[n].ident for n in names)
    if len(idents) > 60:
        key = "|".join(specs[n].portable_name for n in names)
        idents = hashlib.sha256(key.encode()).hexdigest()[:8]
    top = _top_name(name, f"axm_{dataflow}_{rows}x{cols}_bank_{idents}_{first.width}"
                          f"{'s' if first.signed else 'u'}" + (f"_{fmt.mode}" if fmt else "")
                    + ("_ob" if output_buffer else ""))
    check_outputs(top)
    modules = [f"{top}_a{i}" for i in range(len(arrays))]
    progress("Verilog")
    parts = [emit_array_verilog(a, mod) for a, mod in zip(arrays, modules)]
    bank = ArrayBank(arrays, modules=modules)
    face = bank.interface
    design = "".join(parts) + emit_verilog(bank, top)
    verilog, extra = _with_extra_sources(design, [specs[n] for n in names])
    canonical = [specs[n].portable_name for n in names]
    command, arguments = _array_command(
        f"--bank {','.join(canonical)}", {"bank": canonical}, rows=rows, cols=cols,
        width=width, signed=first.signed, dataflow=dataflow, acc_width=acc_width,
        overflow=overflow, pipeline=pipeline, fmt=fmt, output_buffer=output_buffer, top=top)
    progress("metrics")
    per_array = [array_manifest(a, top=mod, verilog_file=f"{top}.v", verilog_text=verilog,
                                arguments=arguments, command=command,
                                assignment={"per": "all", "names": [c]})
                 for a, mod, c in zip(arrays, modules, canonical)]
    for pa, a in zip(per_array, arrays):
        if a.correction is not None:
            pa["array"]["correction"] = correction_entry(a.correction, dataflow)
    manifest = dict(per_array[face])
    manifest["kind"] = "bank"
    manifest["top"] = top
    sel = select_width(len(arrays))
    select_port = {"name": "select", "direction": "input", "width": sel,
                   "meaning": f"which array the streams reach, 0..{len(arrays) - 1} (bank.arrays); "
                              "change it only while no tile of the selected array is in flight; "
                              f"values >= {len(arrays)} accept nothing"}
    ports = list(manifest["ports"])
    ports.insert(2, select_port)
    manifest["ports"] = ports
    manifest["multipliers"] = [m for pa in per_array for m in pa["multipliers"]]
    manifest["bank"] = {
        "count": len(arrays), "select": select_port,
        "routing": "select = i: payload to every array, valid/ready of array i only, results "
                   "from array i; combinational (no added latency): latency, throughput and "
                   "gemm_cycles are those of each array (arrays[i].timing; a corrected array "
                   "has one cycle more latency); unselected arrays keep their "
                   "state, loaded weights included",
        "arrays": [{"index": i, "module": mod, "multiplier": c, "array": pa["array"],
                    "timing": pa["timing"], "multipliers": pa["multipliers"]}
                   for i, (mod, c, pa) in enumerate(zip(modules, canonical, per_array))],
        "array_field": f"array: the interface every array shares (array {face}'s "
                       "multiplier" + ("; arrays without a correction ignore the corr_g / "
                                       "corr_h payload fields" if fmt is not None else "") + ")",
        "correction": None if fmt is None else {
            "mode": fmt.mode, "arrays": [i for i, a in enumerate(arrays)
                                         if a.correction is not None],
            "rule": "every approximate array is corrected, in one format; exact arrays are not"},
    }
    manifest["extra_sources"] = list(extra)
    if energy:
        from hw.manifest import energy_entry
        manifest["energy_per_array"] = [energy_entry(a) for a in arrays]
    model_names = [specs[n].name for n in names]
    return Generated(top, {f"{top}.v": verilog, f"{top}.json": dumps(manifest)}, manifest,
                     design, extra, model_names)


def _array_command(mult_options: str, mult_arguments: dict, *, rows, cols, width, signed,
                   dataflow, acc_width, overflow, pipeline, fmt, output_buffer, top):
    """``(command, arguments)`` of the manifest of an array or bank: the ``hw.gen`` command
    line that emits the same bytes again and the arguments as a dict."""
    arguments = {"rows": rows, "cols": cols, **mult_arguments, "width": width,
                 "signed": signed, "dataflow": dataflow, "acc_width": acc_width,
                 "overflow": overflow, "pipeline": bool(pipeline), "name": top}
    command = (f"python -m hw.gen --rows {rows} --cols {cols} {mult_options}"
               f" --width {width} --{'signed' if signed else 'unsigned'}"
               f" --dataflow {dataflow} --acc-width {acc_width} --overflow {overflow}"
               + (" --pipeline" if pipeline else "") + _correction_options(fmt, dataflow)
               + (" --output-buffer" if output_buffer else "") + f" --name {top}")
    if fmt is not None:
        arguments["correction"] = fmt.mode
    if output_buffer:
        arguments["output_buffer"] = True
    return command, arguments


def _correction_options(fmt, dataflow: str) -> str:
    if fmt is None:
        return ""
    text = f" --correction {fmt.mode}"
    if fmt.mode == "cv":
        text += f" --corr-frac {fmt.frac} --corr-alpha-bits {fmt.alpha_bits}"
    text += f" --corr-beta-bits {fmt.beta_bits}"
    if fmt.mode == "cv" and dataflow == "os":
        text += f" --corr-sum-bits {fmt.sum_bits}"
    return text


def correction_entry(fmt, dataflow: str) -> dict:
    """The manifest field ``array.correction``: widths and how the constants are loaded."""
    where = ("fields corr_g / corr_h of the weights payload, taken from the transfer that "
             "completes the tile (last=1 or row rows-1) and applied from that tile's first "
             "vector on" if dataflow == "ws" else
             "fields corr_g / corr_h of the operands payload, taken with the tile's last step; "
             "a last step is accepted rows + cols (+1 with pipeline) cycles after the previous "
             "one at the earliest")
    entry = dict(fmt.hardware)
    entry.update({
        "definition": "result_c = reduce_A(acc_c + ((g_c * S + h_c) >> F)) (arithmetic shift, "
                      "floor), g_c = -round(2^F alpha_c), h_c = -round(2^F sum_k beta(w_kc)) + "
                      "2^(F-1); bias: result_c = reduce_A(acc_c + h_c), h_c = -round(sum_k "
                      "beta(w_kc)); alpha, beta: least-squares line of the multiplier's error "
                      "over the activation (sim.correction)",
        "sum": ("S: exact sum of the vector's K_t active activation lanes" if dataflow == "ws"
                else f"S: per PE row, the sum of its row operands over the tile's steps, "
                     f"{fmt.sum_bits}-bit two's complement (wraps)") if fmt.mode == "cv"
               else None,
        "constants": where,
        "host": "sim.golden.ArrayModel(correction=...).tile_constants(B tile) computes g, h; "
                "constants that do not fit their widths are refused (CorrectionError)",
        "golden_model": "sim.golden.ArrayModel.tile / tiled_gemm with correction",
    })
    return entry


def _grammar() -> str:
    doc = mult_lib.__doc__ or ""
    start = doc.find("Name grammar")
    end = doc.find("Width ``N``")
    text = doc[start:end if end > start else None].rstrip()
    return text.replace("``", "").replace("::", ":")


EPILOG = """\
{grammar}

  Width N (--width, 4..16) and signedness (--signed/--unsigned) are separate options.

Heterogeneous arrays: give one name per row or per column in --mult, comma-separated, and say
which with --mult-per; NAME*K repeats a name K times.

Examples:
  python -m hw.gen --rows 16 --mult truncated4
      16x16 weight-stationary array, int8 signed, 32-bit wrapping accumulators -> out/
  python -m hw.gen --rows 8 --cols 4 --mult drum4 --dataflow os --acc-width 24 \\
      --overflow saturate --pipeline -o build/os8x4
  python -m hw.gen --rows 4 --mult exact,exact,truncated4,truncated6c --mult-per row
  python -m hw.gen --rows 8 --cols 16 --mult exact*8,bam2_6*8 --mult-per col --unsigned
  python -m hw.gen --rows 16 --mult perforated2 --correction cv
      16x16 ws array whose column outputs are corrected (control variate, docs/correction.md)
  python -m hw.gen --rows 8 --bank exact,truncated4,bam2_6
      three 8x8 ws arrays behind one set of streams; input select (2 bits) picks one
  python -m hw.gen --mult mitchell --width 12 --unsigned -o out/mult
      just the combinational multiplier (ports a, b, p)

Outputs: DIR/TOP.v (one Verilog file: top module TOP plus its PE/row/multiplier modules) and
DIR/TOP.json (manifest: tool versions, arguments, ports with payload bit fields, latency and
throughput in cycles, multiplier descriptions and error metrics). TOP defaults to
axm_<dataflow>_<R>x<C>_<multiplier>_<N><s|u> (mixed_<hash> for per-row/column lists) or
axm_mult_<multiplier>_<N><s|u>; imported multipliers appear by file name and content hash,
never by path. Same arguments -> same bytes. Existing outputs are replaced only when hw.gen
wrote them (or with --force). Bad arguments: one-line error on stderr, exit status 2, nothing
written.
"""


def build_parser() -> Parser:
    p = Parser(prog="python -m hw.gen",
               description="Generate a systolic GEMM array of (approximate) multipliers, or a "
                           "single multiplier, as Verilog plus a JSON manifest.",
               epilog=EPILOG.format(grammar=_grammar()) + "\n" + CONVENTIONS)
    p.add_argument("--rows", type=integer(1, MAX_DIM), metavar="R",
                   help=f"PE rows, 1..{MAX_DIM} (ws: the reduction depth K of one pass). "
                        "Without --rows only the multiplier is written.")
    p.add_argument("--cols", type=integer(1, MAX_DIM), metavar="C",
                   help=f"PE columns, 1..{MAX_DIM} (default: R)")
    p.add_argument("--mult", action="extend", nargs="+", metavar="LIST",
                   help="multiplier name(s), NAME[,NAME...], NAME*K repeats; see the grammar "
                        "below (default: exact)")
    p.add_argument("--bank", metavar="LIST",
                   help="a bank of arrays, one whole array per multiplier (NAME,NAME,...; 2..16), "
                        "behind one set of streams and a select input (hw/bank.py)")
    p.add_argument("--mult-per", choices=("row", "col"),
                   help="with several --mult names: one per row or one per column")
    add_width(p)
    add_signedness(p)
    p.add_argument("--dataflow", choices=DATAFLOWS,
                   help="ws: weight-stationary (TPU-like, default); os: output-stationary")
    p.add_argument("--acc-width", type=integer(1, MAX_ACC_WIDTH), metavar="A",
                   help=f"accumulator width, 2N..{MAX_ACC_WIDTH} (default: 32)")
    p.add_argument("--overflow", choices=OVERFLOW_MODES,
                   help="accumulator overflow rule (default: wrap)")
    p.add_argument("--pipeline", action="store_true", default=None,
                   help="register each product before its adder (+1 cycle latency)")
    p.add_argument("--output-buffer", action="store_true", default=None,
                   help="credit-based back-pressure: results wait in an output FIFO and "
                        "inputs are accepted while their results have room, instead of the "
                        "global stall (no path from results.ready into the array; for Fmax)")
    p.add_argument("--name", metavar="TOP", help="top module name (default: see below)")
    p.add_argument("--correction", choices=("none", "bias", "cv"),
                   help="accuracy recovery at the column outputs: bias (a constant per column) "
                        "or cv (control variate: slope x activation sum + constant); default "
                        "none (see docs/correction.md)")
    p.add_argument("--corr-frac", type=integer(1, 24), metavar="F",
                   help="cv: fraction bits of the slope constants (default 6)")
    p.add_argument("--corr-alpha-bits", type=integer(2, 32), metavar="G",
                   help="cv: signed width of the slope constants (default from the fit)")
    p.add_argument("--corr-beta-bits", type=integer(1, 62), metavar="H",
                   help="signed width of the offset constants (default from the fit)")
    p.add_argument("--corr-sum-bits", type=integer(2, 40), metavar="S",
                   help="cv, os only: width of the per-row activation sums (default N + 12)")
    p.add_argument("--energy", action="store_true", default=None,
                   help="add energy per MAC and pJ per cycle to the manifest (gate-level "
                        "power proxy: needs Yosys, the fpga extra; cached)")
    add_out(p, default=DEFAULT_OUT, metavar="DIR",
            help=f"output folder, created if needed (default: {DEFAULT_OUT}/)")
    add_force(p)
    return p


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    array_only = {"--cols": args.cols, "--mult-per": args.mult_per, "--dataflow": args.dataflow,
                  "--acc-width": args.acc_width, "--overflow": args.overflow,
                  "--pipeline": args.pipeline, "--energy": args.energy,
                  "--output-buffer": args.output_buffer,
                  "--correction": args.correction, "--corr-frac": args.corr_frac,
                  "--corr-alpha-bits": args.corr_alpha_bits,
                  "--corr-beta-bits": args.corr_beta_bits, "--corr-sum-bits": args.corr_sum_bits,
                  "--bank": args.bank}
    (signed,) = signedness_values(args)
    if args.bank is not None and args.mult:
        raise GenError("--bank and --mult: give the multipliers of a bank with --bank only")
    mult = args.mult or ["exact"]
    out = Path(args.out)

    def check_outputs(top):          # before the slow part: refuse in well under a second
        for ext in (".v", ".json"):
            check_file(out / f"{top}{ext}", force=args.force)

    # A progress bar on a terminal (silent otherwise); 64 x 64 takes ~20 s.
    with progress(total=3, desc="hw.gen", bar_format="{desc}: {n}/{total} {elapsed}") as bar:
        def stage(name):
            bar.set_description(f"hw.gen: {name}")
            bar.update(1)

        if args.rows is None:
            given = [opt for opt, v in array_only.items() if v is not None]
            if given:
                raise GenError(f"{', '.join(given)}: array options, but no --rows given")
            result = generate(mult=mult, width=args.width, signed=signed, name=args.name,
                              check_outputs=check_outputs)
        else:
            result = generate(rows=args.rows, cols=args.cols, mult=mult,
                              mult_per=args.mult_per, width=args.width, signed=signed,
                              dataflow=args.dataflow or "ws",
                              acc_width=32 if args.acc_width is None else args.acc_width,
                              overflow=args.overflow or "wrap", pipeline=bool(args.pipeline),
                              name=args.name, progress=stage, check_outputs=check_outputs,
                              energy=bool(args.energy),
                              correction=args.correction or "none", corr_frac=args.corr_frac,
                              corr_alpha_bits=args.corr_alpha_bits,
                              corr_beta_bits=args.corr_beta_bits,
                              corr_sum_bits=args.corr_sum_bits, bank=args.bank,
                              output_buffer=bool(args.output_buffer))
        stage("writing")
        paths = write_files({out / fname: text for fname, text in result.files.items()},
                            force=args.force)
    for path in paths:
        print(path)
    return 0


def main(argv=None) -> int:
    """``python -m hw.gen``; returns the exit status."""
    return run_main("python -m hw.gen", _main, argv)


if __name__ == "__main__":
    sys.exit(main())
