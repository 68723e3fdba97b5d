"""Seeded link-fault injection for protocol tests (model transport and RTL simulation).

:class:`FaultInjector` corrupts whole frames (one ``write`` of the host, one response of the
device) with a given probability, picking one fault kind per corrupted frame:

* ``flip``      one random bit of a random byte inverted
* ``drop``      one random byte removed
* ``dup``       one random byte sent twice
* ``truncate``  the frame cut after a random prefix (the receiver must time out)
* ``crc``       one bit of the CRC field inverted
* ``garbage``   1..16 random bytes inserted before the frame (the frame itself is intact)

Every decision comes from one ``numpy`` generator, so a seed reproduces a run exactly.
``log`` records ``(direction, kind)`` for each fault.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FAULT_KINDS", "FaultInjector"]

FAULT_KINDS = ("flip", "drop", "dup", "truncate", "crc", "garbage")


class FaultInjector:
    def __init__(self, seed: int = 0, *, rate: float = 0.25, kinds=FAULT_KINDS,
                 directions=("to_device", "to_host")):
        unknown = set(kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; choose from "
                             f"{', '.join(FAULT_KINDS)}")
        if not 0 <= rate <= 1:
            raise ValueError(f"fault rate must be in 0..1, not {rate}")
        self.rng = np.random.default_rng(seed)
        self.rate = rate
        self.kinds = tuple(kinds)
        self.directions = tuple(directions)
        self.log: list[tuple[str, str]] = []
        self.enabled = True

    def to_device(self, frame: bytes) -> bytes:
        return self._maybe("to_device", frame)

    def to_host(self, frame: bytes) -> bytes:
        return self._maybe("to_host", frame)

    def _maybe(self, direction: str, frame: bytes) -> bytes:
        frame = bytes(frame)
        if (not self.enabled or direction not in self.directions or not frame
                or self.rng.random() >= self.rate):
            return frame
        kind = self.kinds[int(self.rng.integers(len(self.kinds)))]
        self.log.append((direction, kind))
        return self.corrupt(frame, kind)

    def corrupt(self, frame: bytes, kind: str) -> bytes:
        """Apply one fault of ``kind`` to ``frame`` (deterministic given the generator)."""
        data = bytearray(frame)
        rng = self.rng
        n = len(data)
        if kind == "flip":
            data[int(rng.integers(n))] ^= 1 << int(rng.integers(8))
        elif kind == "drop":
            del data[int(rng.integers(n))]
        elif kind == "dup":
            i = int(rng.integers(n))
            data.insert(i, data[i])
        elif kind == "truncate":
            del data[int(rng.integers(1, n)) if n > 1 else 0:]
        elif kind == "crc":
            data[n - 1 - int(rng.integers(min(2, n)))] ^= 1 << int(rng.integers(8))
        elif kind == "garbage":
            junk = rng.integers(0, 256, int(rng.integers(1, 17)), dtype=np.uint8).tobytes()
            data = bytearray(junk) + data
        else:
            raise ValueError(f"unknown fault kind {kind!r}")
        return bytes(data)
