"""Sinks: ``open_sink(path)`` picks VideoFileSink (H.264 by default), ImageSink or NullSink.

VideoFileSink encodes frames with their own pts in the source's time base (so variable frame
rate stays variable and in sync with audio), copies the audio of ``audio_from`` packet for
packet, keeps the rotation metadata and the colour description (``info.colour``: RGB frames are
converted with the source's matrix and range, and the stream is tagged with its matrix, primaries,
transfer and range), and writes to a temporary name that ``close`` renames to the final one
("done"/"interrupted") or deletes ("failed"). Output is 8-bit, also for deeper input.

Odd frame sizes: 4:2:0 pixel formats (yuv420p, the default) need even width and height, so an
odd-sized frame is padded by one pixel on the right/bottom (edge pixels repeated); the padding
is reported in ``VideoFileSink.padding``.
"""

from __future__ import annotations

import io
import os
from fractions import Fraction

import av
import numpy as np

from streamdehaze.errors import EncodeError
from streamdehaze.frames import Frame, StreamInfo
from streamdehaze.io.audio import AudioCopier, audio_codecs
from streamdehaze.io.base import Sink, av_reason, check_status
from streamdehaze.io.colour import YuvEncoder, tag_frame, tag_stream
from streamdehaze.io.images import IMAGE_EXTENSIONS, ImageSink
from streamdehaze.io.preflight import NULL_NAMES, VIDEO_FORMATS
from streamdehaze.ops.yuv import frame_size, is_yuv

__all__ = ["Sink", "VideoFileSink", "ImageSink", "NullSink", "open_sink", "VIDEO_FORMATS"]


def open_sink(
    path: str,
    *,
    codec: str = "libx264",
    crf: int = 18,
    preset: str = "veryfast",
    audio_from: str | None = None,
    start: float | None = None,
    duration: float | None = None,
    tracks: tuple[str, ...] = ("audio",),
) -> Sink:
    """The Sink for ``path`` (not opened yet), validated before any work is done.

    ``path``: a video file (extension in ``VIDEO_FORMATS``), a folder (``DIR/`` or an existing
    folder: numbered PNGs), an image pattern (``DIR/f_%04d.jpg``) or ``null`` (discard).
    ``audio_from``: file whose audio streams are copied; ``start``/``duration`` (seconds) the
    window of it to copy (the source's own seek); ``tracks``: the kinds of its tracks to copy
    (``audio``, ``subtitle``, ``data``; see :class:`~streamdehaze.io.audio.AudioCopier`). Raises
    EncodeError for an unknown extension or codec, a codec the container cannot hold, or audio the
    container cannot hold.
    """
    path = str(path)
    if path in NULL_NAMES:
        return NullSink()
    ext = os.path.splitext(path)[1].lower()
    if os.path.isdir(path) or path.endswith(("/", os.sep)) or ext in IMAGE_EXTENSIONS:
        return ImageSink(path)
    if ext not in VIDEO_FORMATS:
        raise EncodeError(
            f"unknown output extension {ext or '(none)'!r} in {path}; use one of "
            f"{', '.join(VIDEO_FORMATS)}, a folder ending in / for PNG frames, or 'null'"
        )
    fmt = VIDEO_FORMATS[ext]
    try:
        enc = av.codec.Codec(codec, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        raise EncodeError(f"unknown video encoder {codec!r}; try libx264, libx265, libvpx-vp9, mpeg4 or ffv1") from None
    if enc.type != "video":
        raise EncodeError(f"{codec!r} is a {enc.type} encoder; expected a video encoder such as libx264")
    supported = _supported_codecs(fmt)
    if enc.name not in supported and not (supported & {enc.name, getattr(enc, "id_name", "")}):
        raise EncodeError(f"{ext} files cannot hold {codec} video; use .mkv or another codec (e.g. libx264 for .mp4)")
    if audio_from:
        for name in audio_codecs(str(audio_from)):
            if name not in supported:
                raise EncodeError(
                    f"{ext} files cannot hold the {name} audio of {audio_from}; use .mkv (holds any audio)"
                )
    for value, what in ((start, "start"), (duration, "duration")):
        if value is not None and value < 0:
            raise EncodeError(f"{what} must be >= 0 seconds, got {value}")
    return VideoFileSink(
        path,
        fmt=fmt,
        codec=codec,
        crf=crf,
        preset=preset,
        audio_from=audio_from,
        start=start,
        duration=duration,
        tracks=tracks,
    )


def _supported_codecs(fmt: str) -> set[str]:
    with av.open(io.BytesIO(), "w", format=fmt) as probe:
        return set(probe.supported_codecs)


class NullSink(Sink):
    """Discards frames (benchmarks, dry runs); only counts them."""

    path = "null"

    def __init__(self) -> None:
        self.frames_written = 0

    def open(self, info: StreamInfo) -> None:
        pass

    def write(self, frame: Frame) -> None:
        self.frames_written += 1

    def close(self, status: str = "done") -> None:
        check_status(status)


class VideoFileSink(Sink):
    """Encodes frames to a video file with PyAV (see the module docstring for the guarantees)."""

    def __init__(
        self,
        path: str,
        *,
        fmt: str,
        codec: str = "libx264",
        crf: int = 18,
        preset: str = "veryfast",
        audio_from: str | None = None,
        start: float | None = None,
        duration: float | None = None,
        tracks: tuple[str, ...] = ("audio",),
    ) -> None:
        self.path = path
        self.fmt = fmt
        self.codec = codec
        self.crf = crf
        self.preset = preset
        self.start = start or 0.0
        self.audio = AudioCopier(str(audio_from), start, duration, tracks) if audio_from else None
        folder, name = os.path.split(os.path.abspath(path))
        self.tmp_path = os.path.join(folder, f".{name}.part")
        self.frames_written = 0
        self.padding = (0, 0)
        self._out = None
        self._stream = None
        self._time_base: Fraction | None = None
        self._last_pts: int | None = None
        self._last_time = 0.0
        self._step = 1
        self._closed = False
        self._encode_rgb: YuvEncoder | None = None

    # -- opening ----------------------------------------------------------------------------
    def open(self, info: StreamInfo) -> None:
        folder = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(folder, exist_ok=True)
            # Live recordings as fragmented MP4: the file stays playable even if the process dies.
            options = {"movflags": "frag_keyframe+empty_moov+default_base_moof"} if info.is_live else {}
            if self.fmt not in ("mp4", "mov"):
                options = {}
            self._out = av.open(self.tmp_path, "w", format=self.fmt, options=options)
        except (OSError, av.FFmpegError) as err:
            raise EncodeError(f"cannot write {self.path}: {av_reason(err)}") from None
        self._time_base = Fraction(info.time_base)
        rate = info.frame_rate or Fraction(25)
        # Keep our own time base: the mp4 muxer may change the stream's once writing starts.
        self._step = max(1, round(1 / (rate * self._time_base)))
        stream = self._stream = self._out.add_stream(self.codec, rate=rate)
        stream.codec_context.time_base = self._time_base
        stream.time_base = self._time_base
        formats = [f.name for f in (stream.codec.video_formats or [])]
        stream.pix_fmt = "yuv420p" if "yuv420p" in formats or not formats else formats[0]
        self._encode_rgb = YuvEncoder(info.colour, stream.pix_fmt)
        tag_stream(stream.codec_context, info.colour, rgb=self._encode_rgb.rgb)
        self._set_size(info.width, info.height)
        stream.codec_context.options = self._codec_options()
        if info.rotation:
            stream.set_display_rotation(info.rotation)
        if self.audio is not None:
            self.audio.attach(self._out)

    def _codec_options(self) -> dict[str, str]:
        if self.codec in ("libx264", "libx265"):
            return {"crf": str(self.crf), "preset": self.preset}
        if self.codec.startswith("libvpx"):
            return {"crf": str(self.crf), "b": "0"}
        return {}

    def _set_size(self, width: int, height: int) -> None:
        pix = self._stream.pix_fmt or ""
        pad_w = width % 2 if ("420" in pix or "422" in pix or "nv1" in pix) else 0
        pad_h = height % 2 if ("420" in pix or "nv12" in pix) else 0
        self.padding = (pad_w, pad_h)
        self._stream.width, self._stream.height = width + pad_w, height + pad_h
        self._size = (width, height)

    @property
    def not_copied(self) -> list[str]:
        """Subtitle/data tracks of ``audio_from`` this container cannot hold (left out, see ``tracks``)."""
        return list(self.audio.not_copied) if self.audio is not None else []

    # -- writing ----------------------------------------------------------------------------
    def write(self, frame: Frame) -> None:
        if self._out is None:
            raise EncodeError(f"{self.path}: write() before open() or after close()")
        yuv = is_yuv(frame.meta)  # packed yuv420p planes (device colour conversion): no CPU conversion
        h, w = frame_size(frame.image.shape, frame.meta)
        if (w, h) != self._size:
            if self.frames_written:
                raise EncodeError(f"frame {frame.index} is {w}x{h} but {self.path} is {self._size[0]}x{self._size[1]}")
            self._set_size(w, h)
        image = frame.image
        if self.padding != (0, 0):
            image = np.pad(image, ((0, self.padding[1]), (0, self.padding[0]), (0, 0)), mode="edge")
        pts = self._pts(frame)
        if yuv:  # planes already in the source's matrix and range (the engine converts back with them)
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="yuv420p")
            tag_frame(vf, self._encode_rgb.colour)
        else:
            vf = self._encode_rgb(np.ascontiguousarray(image))
        vf.pts, vf.time_base = pts, self._time_base
        self._last_time = float(pts * self._time_base) + self.start
        try:
            if self.audio is not None:
                self.audio.mux_until(self._out, self._last_time)
            self._out.mux(self._stream.encode(vf))
        except av.FFmpegError as err:
            raise EncodeError(f"encoding frame {frame.index} into {self.path} failed: {av_reason(err)}") from None
        self.frames_written += 1

    def _pts(self, frame: Frame) -> int:
        """The frame's pts in our time base, shifted by -start, made strictly increasing."""
        if frame.pts is None:
            pts = 0 if self._last_pts is None else self._last_pts + self._step
        else:
            pts = frame.pts
            if frame.time_base != self._time_base:
                pts = round(frame.pts * frame.time_base / self._time_base)
            pts -= round(self.start / self._time_base)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # duplicate timestamps would make the muxer fail
        self._last_pts = pts
        return pts

    # -- closing ----------------------------------------------------------------------------
    def close(self, status: str = "done") -> None:
        """Finalise ("done"/"interrupted": flush, trailer, rename) or discard ("failed")."""
        check_status(status)
        if self._closed:
            return
        self._closed = True
        out, self._out = self._out, None
        if out is None:
            self._cleanup()
            return
        if status == "failed" or self.frames_written == 0:
            self._abandon(out)
            if status == "done":
                raise EncodeError(f"no frame was written to {self.path}; nothing saved")
            return
        try:
            out.mux(self._stream.encode(None))
            if self.audio is not None:
                # Interrupted: no audio past the last frame (its length: one frame step).
                end = None if status == "done" else self._last_time + float(self._step * self._time_base)
                self.audio.mux_until(out, end)
            out.close()
        except (av.FFmpegError, EncodeError) as err:
            self._abandon(out)
            raise EncodeError(f"finalising {self.path} failed: {av_reason(err)}") from None
        finally:
            if self.audio is not None:
                self.audio.close()
        os.replace(self.tmp_path, self.path)

    def _abandon(self, out) -> None:
        try:
            out.close()
        except Exception:  # noqa: BLE001 - the file is deleted anyway
            pass
        self._cleanup()

    def _cleanup(self) -> None:
        if self.audio is not None:
            self.audio.close()
        try:
            os.remove(self.tmp_path)
        except FileNotFoundError:
            pass
