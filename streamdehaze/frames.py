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


# FFmpeg's AVColorSpace numbers → the YUV matrix a conversion uses (swscale's choice: BT.601 for
# everything it has no matrix for, unspecified included).
_MATRIX_OF = {1: "bt709", 4: "fcc", 5: "bt601", 6: "bt601", 7: "smpte240m", 9: "bt2020", 10: "bt2020"}
_MATRIX_NAMES = {0: "rgb", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020nc"}
_PRIMARIES_NAMES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020", 12: "p3"}
_TRANSFER_NAMES = {1: "bt709", 6: "smpte170m", 8: "linear", 13: "srgb", 14: "bt2020-10", 16: "pq", 18: "hlg"}
UNSPECIFIED = 2  # AVCOL_SPC/PRI/TRC_UNSPECIFIED; AVCOL_RANGE_UNSPECIFIED is 0


@dataclass(frozen=True)
class Colour:
    """A video's colour description, in FFmpeg's numbers, carried from the decoder to the encoder.

    ``matrix`` (AVColorSpace: 1 BT.709, 5/6 BT.601, 9 BT.2020, 2 unspecified), ``primaries``
    (AVColorPrimaries), ``transfer`` (AVColorTransferCharacteristic), ``range`` (AVColorRange:
    0 unspecified, 1 limited/tv, 2 full/pc). ``pix_fmt`` and ``bit_depth`` describe the decoded
    frames (``yuv420p10le``: 10). Unspecified values stay unspecified on output; conversions then
    do what FFmpeg does for untagged video (BT.601, limited range unless the format is ``yuvj*``).
    """

    matrix: int = UNSPECIFIED
    primaries: int = UNSPECIFIED
    transfer: int = UNSPECIFIED
    range: int = 0
    pix_fmt: str = ""
    bit_depth: int = 8

    @property
    def matrix_name(self) -> str:
        """The YUV matrix for conversions: bt601, bt709, bt2020, fcc or smpte240m."""
        return _MATRIX_OF.get(self.matrix, "bt601")

    @property
    def full_range(self) -> bool:
        """Whether YUV levels span 0-255 (full, "pc") rather than 16-235/240 (limited, "tv")."""
        return self.range == 2 or (self.range == 0 and self.pix_fmt.startswith("yuvj"))

    @property
    def output_range(self) -> int:
        """The range tag to write: full when the levels are full (even if only the format said so)."""
        return 2 if self.full_range else self.range

    def describe(self) -> str:
        """Short text, e.g. ``bt709/bt709/bt709 tv`` (matrix/primaries/transfer range); unknowns as ``?``."""

        def name(table: dict[int, str], value: int) -> str:
            return "?" if value == UNSPECIFIED else table.get(value, str(value))

        rng = {1: "tv", 2: "pc"}.get(self.output_range, "tv?")
        parts = (name(_MATRIX_NAMES, self.matrix), name(_PRIMARIES_NAMES, self.primaries))
        return f"{parts[0]}/{parts[1]}/{name(_TRANSFER_NAMES, self.transfer)} {rng}"


@dataclass
class StreamInfo:
    """What a source knows about its video before the first frame.

    ``frame_count`` and ``duration`` are ``None`` when unknown (live sources, some containers).
    ``rotation`` is the display rotation in degrees from the container metadata. ``colour``: the
    source's colour description (None for sources without one, e.g. images: untagged RGB).
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
    colour: Colour | None = None


@dataclass
class FrameBatch:
    """Frames grouped for one model call; all frames share one size."""

    frames: list[Frame]

    def __len__(self) -> int:
        return len(self.frames)

    def stack(self) -> np.ndarray:
        """``(B, H, W, 3) uint8``."""
        return np.stack([f.image for f in self.frames])
