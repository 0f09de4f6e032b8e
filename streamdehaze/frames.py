"""Frames as they travel through the pipeline.

Timestamps are integers in the source's time base, never float seconds, so variable frame
rate input is written back exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np


@dataclass
class Frame:
    """One video frame.

    ``image`` is ``(H, W, 3) uint8`` RGB. ``pts`` is in units of ``time_base`` (``None`` when
    the source gave none and none could be derived). ``index`` counts frames from the source's
    start (0-based, not reset by reconnects).
    """

    image: np.ndarray
    pts: int | None
    time_base: Fraction
    index: int
    meta: dict = field(default_factory=dict)

    @property
    def time(self) -> float | None:
        """Presentation time in seconds, for display only."""
        return None if self.pts is None else float(self.pts * self.time_base)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass
class StreamInfo:
    """What a source knows about its video before the first frame.

    ``frame_count`` and ``duration`` are ``None`` when unknown (live sources, some containers).
    ``rotation`` is the display rotation in degrees from the container metadata.
    """

    width: int
    height: int
    time_base: Fraction
    frame_rate: Fraction | None = None
    frame_count: int | None = None
    duration: float | None = None
    is_live: bool = False
    rotation: int = 0
    description: str = ""


@dataclass
class FrameBatch:
    """Frames grouped for one model call; all frames share one size."""

    frames: list[Frame]

    def __len__(self) -> int:
        return len(self.frames)

    def stack(self) -> np.ndarray:
        """``(B, H, W, 3) uint8``."""
        return np.stack([f.image for f in self.frames])
