"""``python -m sim.dse``: design-space exploration of per-layer approximate multipliers, array
shape, dataflow, accumulator width and output correction for a network (docs/dse.md).

Options override the config file (``--config``), which overrides the defaults."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hw.cli import (CONVENTIONS, Parser, UsageError, add_cache, add_force, add_jobs, add_json,
                    add_mult, add_out, add_seed, apply_cache, integer, number, run_main,
                    split_mults)

__all__ = ["main", "build_parser"]

PROG = "python -m sim.dse"


def _list(kind):
    """An argparse type: a comma-separated list of ``kind`` values."""
    def parse(text):
        items = [t.strip() for t in str(text).split(",")]
        if not items or any(not t for t in items):
            raise argparse.ArgumentTypeError(f"{str(text)[:40]!r}: empty item in the list")
        return [kind(t) for t in items]
    parse.__name__ = getattr(kind, "__name__", "list")
    return parse


def build_parser() -> Parser:
    from .carbon import CI_FAB, NODES
    from .explore import OBJECTIVES
    from .search import ALGORITHMS

    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0], epilog=CONVENTIONS)
    p.add_argument("--config", metavar="FILE", help="TOML design space and settings "
                   "(docs/dse.md); options given here override it")
    p.add_argument("--model", metavar="NAME", help="network: digits-cnn, digits-mlp (default) or a torch-trained digits network "
                        "(digits-resnet20, digits-resnet18, digits-mobilenetv2; torch extra)")
    p.add_argument("--dataset", metavar="SPEC", help="digits (default), mnist:DIR, cifar10:DIR")
    p.add_argument("--images", type=integer(1, 10 ** 7), metavar="N",
                   help="validation images for the bit-exact accuracy (default: all)")
    add_mult(p, help="multiplier candidates of every layer: NAME[,NAME...] (default exact, "
                     "truncated4, truncated6, drum4, bam2_6)")
    p.add_argument("--layer", action="append", metavar="LAYER:LIST", default=None,
                   help="candidates of one layer (replace --mult there); repeatable")
    p.add_argument("--rows", type=_list(integer(1, 64)), metavar="LIST",
                   help="array rows to consider, e.g. 8,16 (default 16)")
    p.add_argument("--cols", type=_list(integer(1, 64)), metavar="LIST",
                   help="array columns (default: square arrays, cols = rows)")
    p.add_argument("--dataflow", type=_list(str), metavar="LIST", help="ws, os or ws,os")
    p.add_argument("--acc-width", type=_list(integer(16, 62)), metavar="LIST",
                   help="accumulator widths, 16..62 (default 32)")
    p.add_argument("--correction", type=_list(str), metavar="LIST",
                   help="output correction of the approximate arrays to consider: none, bias, "
                        "cv, e.g. none,bias,cv (default none; ws only; labels NAME+MODE; "
                        "docs/correction.md)")
    p.add_argument("--objectives", type=_list(str), metavar="LIST",
                   help=f"from {', '.join(OBJECTIVES)} (default drop,area)")
    p.add_argument("--algorithm", choices=ALGORITHMS,
                   help="auto (default: exhaustive up to 4096 points, else nsga2)")
    p.add_argument("--screen", choices=("predictor", "exact"),
                   help="accuracy during the search: the analytical predictor (default) or "
                        "bit-exact inference (every reported point is bit-exact either way)")
    p.add_argument("--population", type=integer(4, 10000), metavar="N",
                   help="NSGA-II population (default 40)")
    p.add_argument("--generations", type=integer(1, 100000), metavar="N",
                   help="NSGA-II generations (default 25)")
    p.add_argument("--max-drop", type=number(0, 100), metavar="PP",
                   help="constraint: accuracy drop at most PP percentage points")
    p.add_argument("--drop-bound", choices=("estimate", "upper"),
                   help="apply --max-drop to the estimate (default) or its 95 %% upper bound")
    p.add_argument("--max-arrays", type=integer(1, 64), metavar="B",
                   help="constraint: at most B arrays (distinct multipliers) in the bank")
    p.add_argument("--report-max", type=integer(1, 10000), metavar="N",
                   help="at most N screened front points evaluated bit-exact (default 32)")
    p.add_argument("--area", metavar="SOURCE",
                   help="pe (default: Yosys gate proxy of one PE, cached), mult (the "
                        "multiplier alone) or table:FILE (gate_area of a hw.cost sweep CSV)")
    p.add_argument("--energy", action="store_true",
                   help="also report energy per inference (sim.perf; Yosys, cached)")
    p.add_argument("--node", type=integer(), metavar="NM",
                   help=f"technology node for carbon: {', '.join(map(str, NODES))} "
                        "(default 28; 45 is a proxy)")
    p.add_argument("--ci-fab", metavar="G_PER_KWH",
                   help=f"fab carbon intensity, g CO2e/kWh or {', '.join(CI_FAB)} "
                        "(default taiwan, 583)")
    add_jobs(p, default=2)
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="an existing Dask scheduler (tcp://HOST:PORT) instead of a "
                        "LocalCluster of -j workers")
    add_seed(p)
    p.set_defaults(seed=None)
    add_out(p, default=None, metavar="DIR",
            help="output folder: front.csv, front.json, points.csv, front.png")
    add_force(p)
    add_json(p)
    p.add_argument("--no-plot", action="store_true", help="do not draw front.png")
    add_cache(p)
    return p


def _settings(args, cfg: dict) -> dict:
    from .api import DEFAULTS
    search = cfg.get("search", {})
    space = cfg.get("space", {})
    known_search = {"algorithm", "objectives", "screen", "population", "generations",
                    "max_drop", "drop_bound", "max_arrays", "report_max", "area", "seed",
                    "energy"}
    extra = set(search) - known_search
    if extra:
        raise UsageError(f"config [search]: unknown key(s) {', '.join(sorted(extra))}")
    extra = set(space) - {"mult", "rows", "cols", "dataflow", "acc_width", "correction",
                          "layers"}
    if extra:
        raise UsageError(f"config [space]: unknown key(s) {', '.join(sorted(extra))}")

    def pick(name, flag, section=None):
        if flag is not None:
            return flag
        src = cfg if section is None else section
        return src.get(name, DEFAULTS.get(name))

    s = {k: pick(k, getattr(args, k), None) for k in ("model", "dataset", "images")}
    s.update({k: pick(k, getattr(args, k), search)
              for k in ("algorithm", "objectives", "screen", "population", "generations",
                        "max_drop", "drop_bound", "max_arrays", "report_max", "area")})
    s["seed"] = args.seed if args.seed is not None else search.get("seed", 0)
    s["mult"] = split_mults(args.mult) if args.mult else space.get("mult", DEFAULTS["mult"])
    for k in ("rows", "cols", "dataflow", "acc_width", "correction"):
        s[k] = getattr(args, k) if getattr(args, k) is not None else space.get(k, DEFAULTS[k])
    if not isinstance(space.get("layers", {}), dict):
        raise UsageError("config [space.layers] must be a table of LAYER = [NAMES]")
    layers = dict(space.get("layers", {}))
    for item in args.layer or ():
        layer, sep, names = item.partition(":")
        if not sep or not layer.strip() or not names.strip():
            raise UsageError(f"--layer {item[:40]!r}: write LAYER:NAME[,NAME...]")
        layers[layer.strip()] = split_mults(names, option="--layer")
    s["layers"] = layers
    s["energy"] = args.energy or bool(search.get("energy", False))
    for k in ("mult", "rows", "cols", "dataflow", "acc_width", "correction", "objectives"):
        v = s[k]
        if isinstance(v, (str, int)) and not isinstance(v, bool):
            s[k] = [v]
    _check_types(s)
    return s


_INTS = {"images": (1, 10 ** 7), "population": (4, 10000), "generations": (1, 100000),
         "max_arrays": (1, 64), "report_max": (1, 10000), "seed": (0, (1 << 63) - 1)}


def _check_types(s: dict) -> None:
    """Values from a config file get the checks the options get."""
    import math

    for k, (lo, hi) in _INTS.items():
        v = s.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)
                              or not lo <= v <= hi):
            raise UsageError(f"{k} must be an integer in {lo}..{hi}, not {v!r}")
    v = s.get("max_drop")
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                          or not math.isfinite(v) or not 0 <= v <= 100):
        raise UsageError(f"max_drop must be a number in 0..100 (pp), not {v!r}")
    for k in ("model", "dataset", "area", "algorithm", "screen", "drop_bound"):
        if s.get(k) is not None and not isinstance(s[k], str):
            raise UsageError(f"{k} must be a string, not {s[k]!r}")
    for k in ("mult", "objectives", "dataflow", "correction"):
        if not all(isinstance(x, str) for x in s[k]):
            raise UsageError(f"{k} must be a list of names, not {s[k]!r}")
    for k in ("rows", "cols", "acc_width"):
        if s[k] is not None and not all(isinstance(x, int) and not isinstance(x, bool)
                                        for x in ([s[k]] if isinstance(s[k], int) else s[k])):
            raise UsageError(f"{k} must be a list of integers, not {s[k]!r}")
    for layer, names in s["layers"].items():
        if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
            raise UsageError(f"[space.layers] {layer} must be a list of names, not {names!r}")


def _main(argv) -> int:
    from hw.cache import Cache
    from hw.outputs import check_file, check_folder, write_files

    from . import report
    from .api import explore
    from .carbon import carbon_model
    from .errors import DseError
    from .parallel import make_executor
    from .space import Space, load_config

    args = build_parser().parse_args(argv)
    cache_on = apply_cache(args)
    if args.out is not None:
        check_folder(args.out, force=args.force, label=f"--out {args.out}")
    if args.json not in (None, "-"):
        check_file(args.json, force=args.force, label=f"--json {args.json}")
    cfg = load_config(args.config) if args.config else {}
    s = _settings(args, cfg)
    carbon_cfg = dict(cfg.get("carbon", {}))
    node = args.node if args.node is not None else carbon_cfg.pop("node", 28)
    carbon_cfg.pop("node", None)
    ci = args.ci_fab if args.ci_fab is not None else carbon_cfg.pop("ci_fab", "taiwan")
    carbon_cfg.pop("ci_fab", None)
    if isinstance(ci, str):
        try:
            ci = float(ci) if ci.strip().replace(".", "", 1).isdigit() else ci
        except ValueError:
            pass
    carbon = carbon_model(node, ci_fab=ci, **carbon_cfg)

    from .accuracy import network_layers
    layers = network_layers(s["model"])
    unknown = [l for l in s["layers"] if l not in layers]
    if unknown:
        raise DseError(f"unknown layer {unknown[0]!r} in the space; {s['model']} has GEMM "
                       f"layers {', '.join(layers)}")
    space = Space(layers, tuple(tuple(s["layers"].get(l, s["mult"])) for l in layers),
                  rows=tuple(s["rows"]), cols=None if s["cols"] is None else tuple(s["cols"]),
                  dataflows=tuple(s["dataflow"]), acc_widths=tuple(s["acc_width"]),
                  corrections=tuple(s["correction"]))
    settings = {"model": s["model"], "dataset": s["dataset"], "images": s["images"],
                "seed": 0, "overflow": "wrap"}
    executor = make_executor(args.jobs, args.scheduler)
    with executor:
        result = explore(space, settings=settings, objectives=tuple(s["objectives"]),
                         algorithm=s["algorithm"], screen=s["screen"],
                         population=int(s["population"]), generations=int(s["generations"]),
                         seed=int(s["seed"]), max_drop=s["max_drop"],
                         drop_bound=s["drop_bound"], max_arrays=s["max_arrays"],
                         report_max=int(s["report_max"]), area=s["area"], carbon=carbon,
                         energy=s["energy"], executor=executor,
                         cache=Cache(cache_root_now(), enabled=cache_on),
                         hw_cache=Cache(enabled=cache_on))
    outputs = {}
    if args.out is not None:
        out = Path(args.out)
        outputs[out / "front.csv"] = report.front_csv(result)
        outputs[out / "points.csv"] = report.points_csv(result)
        outputs[out / "front.json"] = report.json_text(result)
        if not args.no_plot:
            outputs[out / "front.png"] = report.plot_bytes(result)
    if args.json not in (None, "-"):
        outputs[Path(args.json)] = report.json_text(result)
    if args.json == "-":
        print(report.json_text(result), end="")
    else:
        print(report.text_summary(result), end="")
    if outputs:
        for path in write_files(outputs, force=args.force):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def cache_root_now():
    from hw.cache import cache_root
    return cache_root()


def main(argv=None) -> int:
    """``python -m sim.dse``; returns the exit status."""
    return run_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
