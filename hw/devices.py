"""The FPGAs the toolkit targets, with the one set of names every command accepts.

``--device`` (``hw.cost``) and ``--board`` (``boards.*``) take any of these names,
case-insensitively: a device's key, its part number or an alias, and a board's name stands for
the device on it (``icebreaker`` = iCE40UP5K-SG48, ``ulx3s`` = LFE5U-85F-CABGA381).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ToolkitError

__all__ = ["FpgaDevice", "DEVICES", "find_device", "device_names"]


@dataclass(frozen=True)
class FpgaDevice:
    key: str             # canonical name
    part: str            # part number and package
    family: str          # "ice40" or "ecp5" (Yosys synth_<family>, nextpnr-<family>)
    lut4: int            # LUT4s on the device (datasheet)
    board: str           # the board of boards/ that carries it
    aliases: tuple = ()

    def names(self) -> tuple:
        return (self.key, self.part.lower(), self.board, *self.aliases)


DEVICES = {
    "ice40up5k": FpgaDevice("ice40up5k", "iCE40UP5K-SG48", "ice40", 5280, "icebreaker",
                            ("up5k", "ice40", "ice40-up5k")),
    "ecp5-85f": FpgaDevice("ecp5-85f", "LFE5U-85F-CABGA381", "ecp5", 83640, "ulx3s",
                           ("85f", "ecp5", "lfe5u-85f", "ecp5-85k", "ulx3s-85f")),
}


def device_names() -> str:
    """``ice40up5k (up5k, icebreaker), ecp5-85f (85f, ulx3s)`` for help texts and errors."""
    return ", ".join(f"{d.key} ({', '.join((d.aliases[0], d.board))})" for d in DEVICES.values())


def find_device(name) -> FpgaDevice:
    """The device called ``name`` (any name of :meth:`FpgaDevice.names`); :class:`ToolkitError`
    listing the known names otherwise."""
    key = str(name).strip().lower()
    for device in DEVICES.values():
        if key in device.names():
            return device
    raise ToolkitError(f"unknown device {str(name)[:60]!r}; known: {device_names()}")
