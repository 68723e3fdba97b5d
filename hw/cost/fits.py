""""What fits": the largest square systolic array of one configuration on a device.

Method
------
1. *Sample*: synthesise and pack (``nextpnr --pack-only``, utilisation without placement) the
   ``n x n`` array in the register harness for ``n = 1, 2, 3``. The harness always uses serial
   I/O here (a few pins whatever ``n``), so pin use does not change with the array size.
2. *Estimate*: for every resource nextpnr reports (logic cells, flip-flops, DSPs, ...) fit the
   exact quadratic ``u(n) = a + b n + c n^2`` through the three samples (``c`` ~ per-PE cost,
   ``b`` ~ edge logic such as skew registers and harness flip-flops, ``a`` ~ fixed control);
   the estimate is the largest ``n`` with ``u(n) <= available`` for every resource.
3. *Check*: pack ``n + 1`` and show it exceeds the device (else move up), and place and route
   ``n`` (``confirm=True``; else only pack it); if that fails, move down. (Packing includes
   the full Yosys synthesis; only placement and routing are skipped.) The answer is thus
   backed by a routed design at ``n`` and an over-capacity packing at ``n + 1``.

Every run is cached, so asking again is instant.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from hw.mult import MultiplierSpec

from hw.cache import Cache
from .designs import array
from .errors import DoesNotFit
from .pnr import Device, find_device, place_and_route

__all__ = ["FitResult", "what_fits", "fit_quadratic"]

SAMPLES = (1, 2, 3)


@dataclass
class FitResult:
    multiplier: str
    device: str
    config: dict
    samples: dict                 # n -> {resource: used}
    available: dict               # resource -> available
    model: dict                   # resource -> (a, b, c) of u(n) = a + b n + c n^2
    binding: str                  # resource that limits the estimate
    estimate: int
    side: int                     # largest n that fits (packed, routed if confirmed)
    routed: bool
    fmax_mhz: float | None
    used_at_side: dict            # resource -> used at ``side``
    over_at_next: dict            # resources exceeded at side + 1 (empty when side is the max)
    steps: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def fit_quadratic(points: dict) -> tuple[float, float, float]:
    """Exact ``(a, b, c)`` with ``a + b n + c n^2`` through three ``{n: u}`` points."""
    (n0, u0), (n1, u1), (n2, u2) = sorted(points.items())
    d01 = (u1 - u0) / (n1 - n0)
    d12 = (u2 - u1) / (n2 - n1)
    c = (d12 - d01) / (n2 - n0)
    b = d01 - c * (n0 + n1)
    a = u0 - b * n0 - c * n0 * n0
    return a, b, c


def _estimate(model: dict, available: dict, max_side: int) -> tuple[int, str]:
    best, binding = 0, ""
    for n in range(1, max_side + 1):
        over = [r for r, (a, b, c) in model.items() if a + b * n + c * n * n > available[r]]
        if over:
            binding = over[0]
            break
        best = n
    return best, binding or "array size limit"


def what_fits(spec: MultiplierSpec, device: str | Device, *, dataflow: str = "ws",
              acc_width: int = 32, overflow: str = "wrap", pipeline: bool = False,
              dsp: bool = False, confirm: bool = True, max_side: int = 64,
              cache: Cache | None = None, progress: bool = True,
              timeout: float | None = 3600) -> FitResult:
    """Largest ``n`` such that an ``n x n`` array of ``spec`` fits ``device`` (see the module
    docstring for the method). Raises :class:`DoesNotFit` when not even ``1 x 1`` fits."""
    from hw.cli import progress as progress_bar

    device = device if isinstance(device, Device) else find_device(device)
    cache = Cache() if cache is None else cache
    config = {"dataflow": dataflow, "acc_width": acc_width, "overflow": overflow,
              "pipeline": pipeline, "dsp": dsp}
    steps = []
    route_over = {}                 # n -> resources exceeded when placing and routing n x n
    bar = progress_bar(desc=f"fits {spec.full_name} on {device.name}", unit="run",
                       disable=not progress, total=len(SAMPLES) + 2)

    def design(n):
        return array(spec, n, n, dataflow=dataflow, acc_width=acc_width, overflow=overflow,
                     pipeline=pipeline)

    def pack(n):
        bar.set_postfix_str(f"pack {n}x{n}")
        r = place_and_route(design(n), device, dsp=dsp, pack_only=True, io="serial",
                            cache=cache, timeout=timeout)
        bar.update()
        steps.append({"n": n, "step": "pack", "over": r.over_capacity(),
                      "logic_used": r.logic_used, "cached": r.cached})
        return r

    def route(n):
        bar.set_postfix_str(f"place and route {n}x{n}")
        try:
            r = place_and_route(design(n), device, dsp=dsp, io="serial", cache=cache,
                                timeout=timeout)
        except DoesNotFit as err:
            bar.update()
            steps.append({"n": n, "step": "route", "error": str(err), "over": err.over})
            route_over[n] = err.over
            return None
        bar.update()
        steps.append({"n": n, "step": "route", "fmax_mhz": r.fmax_mhz,
                      "logic_used": r.logic_used, "cached": r.cached})
        return r

    try:
        packs = {n: pack(n) for n in SAMPLES}
        available = {k: v["available"] for k, v in packs[1].utilization.items()
                     if v["available"] > 0}
        samples = {n: {k: v["used"] for k, v in r.utilization.items() if k in available}
                   for n, r in packs.items()}
        model = {k: fit_quadratic({n: samples[n][k] for n in SAMPLES}) for k in available
                 if any(samples[n][k] for n in SAMPLES)}
        estimate, binding = _estimate(model, available, max_side)
        if packs[1].over_capacity() or estimate == 0:
            over = packs[1].over_capacity() or {binding: None}
            raise DoesNotFit(f"not even a 1x1 array of {spec.full_name} fits {device.name} "
                             f"(exceeds {', '.join(over)})")
        n = estimate
        # Move up while n + 1 still packs within the device.
        while n < max_side:
            nxt = packs.get(n + 1) or pack(n + 1)
            packs[n + 1] = nxt
            if nxt.over_capacity():
                break
            n += 1
        # Move down until n routes (confirm) or packs within the device.
        routed = used = None
        while n >= 1:
            if n in packs and packs[n].over_capacity():
                pass                                  # already known not to fit
            elif confirm:
                routed = route(n)
                if routed is not None:
                    used = routed.utilization
                    break
            else:
                p = packs.get(n) or pack(n)
                packs[n] = p
                if not p.over_capacity():
                    used = p.utilization
                    break
            n -= 1
        if n < 1:
            raise DoesNotFit(f"no square array of {spec.full_name} could be "
                             f"{'placed and routed' if confirm else 'packed'} on {device.name}")
    finally:
        bar.close()
    nxt = packs.get(n + 1)
    over_next = nxt.over_capacity() if nxt is not None else route_over.get(n + 1, {})
    return FitResult(
        multiplier=spec.full_name, device=device.name, config=config, samples=samples,
        available=available, model={k: [round(x, 3) for x in v] for k, v in model.items()},
        binding=binding, estimate=estimate, side=n, routed=routed is not None,
        fmax_mhz=routed.fmax_mhz if routed is not None else None,
        used_at_side={k: v["used"] for k, v in used.items() if k in model},
        over_at_next=over_next, steps=steps)
