"""Colour on the CPU path: read a decoded frame's colour description, convert YUV↔RGB with it, tag output.

PyAV's implicit conversions (``to_ndarray(format="rgb24")`` on a frame, the encoder's conversion of
an rgb24 frame) follow whatever tags the frame happens to carry; an rgb24 frame made from an array
carries none, so the encoder used BT.601 limited range and wrote an untagged stream. Here every
conversion names the source's matrix and range explicitly (see :class:`~streamdehaze.frames.Colour`),
and the output stream and frames carry the source's matrix, primaries, transfer and range.

Frames deeper than 8 bits (``yuv420p10le``) are converted to 8-bit RGB like any other; the output
is 8-bit with the source's tags (see :func:`depth_note`).
"""

from __future__ import annotations

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from streamdehaze.frames import UNSPECIFIED, Colour

# swscale's fast YUV→RGB path is off by up to 2 levels on flat colours (coarse tables), 3 after the
# encoder's conversion back; exact rounding with full chroma keeps the round trip within 2 levels
# (chroma repeated as in ops/yuv.py, but at some edges). It costs more: 9.4 instead of 0.7 ms per 1280x720
# frame on 2 busy cores (load 14; benchmarks/colour_cpu.py), on the decode thread, beside inference.
DECODE_FLAGS = Interpolation.POINT | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
# our matrix names → swscale's colorspace names (PyAV's reformatter.Colorspace)
_SWS_MATRIX = {"bt601": "ITU601", "bt709": "ITU709", "bt2020": "BT2020", "fcc": "FCC", "smpte240m": "SMPTE240M"}


def colour_of(frame: av.VideoFrame) -> Colour:
    """The colour description of a decoded frame (its tags, pixel format and bit depth)."""
    fmt = frame.format
    depth = max((c.bits for c in fmt.components), default=8)
    return Colour(
        matrix=int(frame.colorspace),
        primaries=int(frame.color_primaries),
        transfer=int(frame.color_trc),
        range=int(frame.color_range),
        pix_fmt=fmt.name,
        bit_depth=int(depth),
    )


def _sws_range(full: bool) -> str:
    return "JPEG" if full else "MPEG"


class RgbConverter:
    """Decoded frames → ``(H, W, 3) uint8`` RGB with the frame's own matrix and range (one swscale context)."""

    def __init__(self) -> None:
        self._sws = VideoReformatter()

    def __call__(self, frame: av.VideoFrame, colour: Colour | None = None) -> np.ndarray:
        """``colour``: the description to convert with (default: the frame's own tags)."""
        if frame.format.is_rgb:  # RGB/GBR planes: no matrix involved
            return frame.to_ndarray(format="rgb24")
        colour = colour or colour_of(frame)
        rgb = self._sws.reformat(
            frame,
            format="rgb24",
            src_colorspace=_SWS_MATRIX[colour.matrix_name],
            src_color_range=_sws_range(colour.full_range),
            dst_color_range="JPEG",
            interpolation=DECODE_FLAGS,
        )
        return rgb.to_ndarray()


class YuvEncoder:
    """``(H, W, 3) uint8`` RGB → a VideoFrame in ``pix_fmt`` converted with ``colour``'s matrix and range, tagged."""

    def __init__(self, colour: Colour | None, pix_fmt: str) -> None:
        self.colour = colour or Colour()
        self.pix_fmt = pix_fmt or "rgb24"
        self.rgb = av.VideoFormat(self.pix_fmt).is_rgb  # an RGB output format: no matrix involved
        self._sws = VideoReformatter()

    def __call__(self, image: np.ndarray) -> av.VideoFrame:
        rgb = av.VideoFrame.from_ndarray(image, format="rgb24")
        c = self.colour
        if self.rgb:
            frame = rgb if self.pix_fmt == "rgb24" else self._sws.reformat(rgb, format=self.pix_fmt)
            tag_frame(frame, c, rgb=True)
            return frame
        frame = self._sws.reformat(
            rgb,
            format=self.pix_fmt,
            dst_colorspace=_SWS_MATRIX[c.matrix_name],
            src_color_range="JPEG",
            dst_color_range=_sws_range(c.full_range),
        )
        tag_frame(frame, c)
        return frame


def _tags(colour: Colour | None, rgb: bool) -> dict[str, int]:
    c = colour or Colour()
    matrix = c.matrix if c.matrix != 0 else UNSPECIFIED  # 0 = RGB: not a YUV matrix
    return {
        "colorspace": 0 if rgb else matrix,
        "color_primaries": c.primaries,
        "color_trc": c.transfer,
        "color_range": 2 if rgb else c.output_range,
    }


def tag_frame(frame: av.VideoFrame, colour: Colour | None, rgb: bool = False) -> None:
    """Write ``colour``'s matrix, primaries, transfer and range onto ``frame`` (unspecified stay so).

    ``rgb``: the frame holds RGB samples (matrix "rgb", full range); primaries and transfer still apply.
    """
    for name, value in _tags(colour, rgb).items():
        setattr(frame, name, value)


def tag_stream(codec_context, colour: Colour | None, rgb: bool = False) -> None:
    """The same tags on the encoder (a VideoCodecContext), which writes them into the bitstream and container."""
    for name, value in _tags(colour, rgb).items():
        setattr(codec_context, name, value)


def depth_note(colour: Colour | None) -> str | None:
    """One line for input deeper than 8 bits (None otherwise): what happens to it."""
    if colour is None or colour.bit_depth <= 8:
        return None
    return (
        f"{colour.bit_depth}-bit input ({colour.pix_fmt}): dehazed and written as 8-bit video; "
        f"colour tags kept ({colour.describe()})"
    )
