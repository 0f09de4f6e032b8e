"""The working size: the resolution the network runs at (``--work-size``), parsed and resolved.

The guided transfer (:mod:`streamdehaze.ops.transfer_fit`) carries the network's result from this
size to full resolution.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:  # torch is not imported here: --work-size is checked before torch loads
    import torch

# Default working sizes: the short side AECR-Net runs at, per device type. On CPU 360 keeps
# AECR-Net at seconds per 720p frame instead of half a minute; on a GPU frames up to 1080p run at
# full resolution and larger ones at 1080.
DEFAULT_SHORT_SIDE = {"cpu": 360, "cuda": 1080}
MIN_SIDE = 8


@dataclass(frozen=True)
class WorkSize:
    """The resolution the network runs at.

    ``mode``: ``"full"``; ``"short"`` (``value`` is the short side in pixels, a cap: smaller frames
    run at full resolution); ``"scale"`` (``value`` in (0, 1) multiplies both sides).
    ``default``: who chose it when the user did not (``"device"`` or ``"model"``; said when printed).
    """

    mode: str = "full"
    value: float = 0.0
    default: str = ""

    @property
    def is_full(self) -> bool:
        return self.mode == "full"

    def scale_for(self, height: int, width: int) -> float:
        """The factor applied to both sides of a ``height × width`` frame (1.0 = full resolution)."""
        if self.mode == "scale":
            return float(self.value)
        if self.mode == "short" and min(height, width) > self.value:
            return self.value / min(height, width)
        return 1.0

    def size_for(self, height: int, width: int) -> tuple[int, int]:
        """``(h, w)`` the network sees for a ``height × width`` frame (never larger; at least 8 px)."""
        s = self.scale_for(height, width)
        if s >= 1.0:
            return height, width
        return max(min(MIN_SIDE, height), round(height * s)), max(min(MIN_SIDE, width), round(width * s))

    def describe(self, height: int | None = None, width: int | None = None) -> str:
        """``"640x360 (short side 360, default for cpu)"``-style text for the start-up line."""
        what = {"full": "full resolution", "short": f"short side {self.value:g}", "scale": f"scale {self.value:g}"}
        text = what[self.mode] + (f", the {self.default}'s default" if self.default else "")
        if height and width:
            h, w = self.size_for(height, width)
            return f"{w}x{h} ({text})" if (h, w) != (height, width) else f"{w}x{h}, full resolution ({text})"
        return text


FULL = WorkSize()


def model_work_side(model: object) -> int | None:
    """The short side a network was trained to run at (``work_side`` in its weight file's meta,
    written by ``train export``), or None: official weights, random weights and DCP have none."""
    side = (getattr(model, "info", None) or {}).get("work_side")
    return int(side) if side else None


def default_work_size(device: torch.device | str, model: object = None) -> WorkSize:
    """What ``auto`` means: the model's own working size if its weights name one (a network trained
    on frames of that size does best there, on any device), else :data:`DEFAULT_SHORT_SIDE`."""
    side = model_work_side(model)
    if side:
        return WorkSize("short", side, default="model")
    kind = device.type if hasattr(device, "type") else str(device).split(":")[0]
    return WorkSize("short", DEFAULT_SHORT_SIDE.get(kind, DEFAULT_SHORT_SIDE["cuda"]), default="device")


def parse_work_size(
    value: str | float | WorkSize | None, device: torch.device | str = "cpu", model: object = None
) -> WorkSize:
    """``full``, ``auto`` (the model's or else the device's default, see :func:`default_work_size`),
    ``model`` (the model's own working size, else full resolution), a short side in pixels
    (``540``), or a scale in (0, 1] (``0.5``, ``1/2``, ``50%``). ``None``
    means full resolution."""
    if isinstance(value, WorkSize):
        return value
    if value is None:
        return FULL
    text = str(value).strip().lower()
    hint = "expected full, auto, a short side in pixels (e.g. 540) or a scale in (0, 1] (e.g. 0.5 or 1/2)"
    if text in ("full", "none", "off"):
        return FULL
    if text == "auto":
        return default_work_size(device, model)
    if text == "model":  # the model's own working size, else full resolution (eval's default)
        side = model_work_side(model)
        return WorkSize("short", side, default="model") if side else FULL
    try:
        if text.endswith("%"):
            number = Fraction(text[:-1]) / 100
        elif re.fullmatch(r"\d+", text):
            number = Fraction(int(text))
        else:
            number = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise InputError(f"--work-size {value!r}: {hint}") from None
    if number == 1:
        return FULL
    if 0 < number < 1:
        return WorkSize("scale", float(number))
    if number.denominator == 1 and number >= MIN_SIDE:
        return WorkSize("short", int(number))
    raise InputError(f"--work-size {value!r}: {hint}; a short side must be >= {MIN_SIDE}")
