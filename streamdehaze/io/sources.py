"""Video sources: ``open_source(spec)`` picks one from the spec; FileSource decodes files with PyAV.

Specs: a file path (or any URL PyAV reads as a file), ``rtsp://...`` (:class:`RtspSource`),
``webcam:N`` or ``/dev/videoN`` (:class:`WebcamSource`), ``lavfi:GRAPH`` (a live FFmpeg test
source such as ``lavfi:testsrc2=size=320x240:rate=30``), an image folder, a glob or a single
image (:class:`ImageSource`).
"""

from __future__ import annotations

import os
import re
from fractions import Fraction

import av

from streamdehaze.errors import DecodeError, InputError, SourceError
from streamdehaze.frames import Frame, StreamInfo
from streamdehaze.io.base import Source, av_reason
from streamdehaze.io.colour import RgbConverter, colour_of
from streamdehaze.io.images import ImageSource
from streamdehaze.io.preflight import source_kind
from streamdehaze.io.rtsp import RtspSource
from streamdehaze.io.webcam import WebcamSource
from streamdehaze.ops.yuv import YUV_FORMATS, yuv_meta

__all__ = ["Source", "FileSource", "RtspSource", "WebcamSource", "ImageSource", "open_source"]


def open_source(
    spec: str,
    *,
    start: float | None = None,
    timeout: float = 5.0,
    reconnect_for: float | None = None,
    reconnect_attempts: int | None = None,
    backoff: float = 0.5,
    threads: bool = True,
    fps: float | None = None,
    pix_fmt: str = "rgb24",
) -> Source:
    """The Source for ``spec`` (not opened yet: call ``open()``).

    ``start`` (seconds) seeks files and image sequences; ``timeout`` (seconds) bounds opening and
    each read of live sources (a longer stall is an outage); live sources reconnect after an outage
    for up to ``reconnect_for`` seconds (None: for ever; 0: an outage ends the stream) or
    ``reconnect_attempts`` tries (None: no limit), waiting ``backoff`` seconds (doubled per
    attempt, at most 5 s) before each (see :mod:`streamdehaze.io.reconnect`); ``threads``
    enables FFmpeg's threaded decoding; ``fps`` is the
    frame rate given to image sequences (default 25); ``pix_fmt="yuv420p"`` makes files deliver
    yuv420p frames as packed planes without colour conversion (see :mod:`streamdehaze.ops.yuv`).
    """
    spec = str(spec)
    kind = source_kind(spec)
    if start is not None and start < 0:
        raise InputError(f"start must be >= 0 seconds, got {start}")
    if timeout <= 0:
        raise InputError(f"timeout must be > 0 seconds, got {timeout}")
    if reconnect_for is not None and reconnect_for < 0:
        raise InputError(f"reconnect_for must be >= 0 seconds (or None: for ever), got {reconnect_for}")
    if kind in ("rtsp", "live"):
        live = RtspSource if kind == "rtsp" else WebcamSource
        return live(
            spec,
            timeout=timeout,
            reconnect_for=reconnect_for,
            reconnect_attempts=reconnect_attempts,
            backoff=backoff,
            threads=threads,
        )
    if kind in ("images", "still"):
        return ImageSource(spec, fps=fps or 25.0, start=start)
    return FileSource(spec, start=start, threads=threads, pix_fmt=pix_fmt)


class FileSource(Source):
    """Decodes the first video stream of a file with PyAV into rgb24 frames, converted with the
    file's own matrix and range (its colour description is ``info.colour``; 10-bit video becomes 8-bit RGB).

    Frames keep the file's integer pts and the stream's time base. ``start`` seeks to the
    keyframe before ``start`` seconds and skips the frames before it. A file that ends before
    its announced frame count or duration raises :class:`DecodeError` saying how many frames
    were read, instead of ending silently short. ``pix_fmt="yuv420p"``: frames decoded as
    yuv420p/yuvj420p with even sizes come as packed planes (``meta['pix_fmt'] == 'yuv420p'``), for
    a device that converts colour itself; other frames are still converted to rgb24.
    """

    is_live = False

    def __init__(self, path: str, *, start: float | None = None, threads: bool = True, pix_fmt: str = "rgb24") -> None:
        super().__init__()
        if pix_fmt not in ("rgb24", "yuv420p"):
            raise ValueError(f"pix_fmt must be rgb24 or yuv420p, got {pix_fmt!r}")
        self.pix_fmt = pix_fmt
        self.spec = self.path = str(path)
        self.start = start
        self.threads = threads
        self._container = None
        self._stream = None
        self._frames = None
        self._pending: list = []
        self._index = 0
        self._decoded = 0
        self._last_time: float | None = None
        self._max_step = 0.0
        self._to_rgb = RgbConverter()

    # -- opening ----------------------------------------------------------------------------
    def _open(self) -> StreamInfo:
        if not os.path.exists(self.path) and "://" not in self.path:
            raise SourceError(f"input not found: {self.path} (expected an existing video file; check the path)")
        if os.path.isdir(self.path):
            raise InputError(f"{self.path} is a folder without images; expected a video file or an image folder")
        try:
            self._container = av.open(self.path, metadata_errors="replace")
        except av.FFmpegError as err:
            raise DecodeError(
                f"cannot read {self.path}: {av_reason(err)} (not a video file, or a truncated/corrupt one)"
            ) from None
        if not self._container.streams.video:
            kinds = ", ".join(s.type for s in self._container.streams) or "none"
            raise SourceError(f"{self.path} has no video stream (streams: {kinds}); expected a video file")
        stream = self._stream = self._container.streams.video[0]
        stream.thread_type = "AUTO" if self.threads else "NONE"
        if self.start:
            self._seek(self.start)
        self._frames = self._decode()
        first = self._next_frame()
        if first is None:
            raise DecodeError(f"{self.path}: no video frame could be decoded (empty, corrupt or start past the end)")
        self._pending.append(first)
        return self._make_info(first)

    def _seek(self, start: float) -> None:
        stream = self._stream
        target = int(start / stream.time_base) + (stream.start_time or 0)
        try:
            self._container.seek(target, stream=stream, backward=True, any_frame=False)
        except av.FFmpegError:
            # Unseekable (e.g. some streams): decode from the start and skip instead.
            self._container.seek(0)

    def _make_info(self, first) -> StreamInfo:
        stream = self._stream
        count = stream.frames or None
        duration = self._expected_end()
        rate = stream.average_rate or stream.guessed_rate
        if duration is not None and self.start:
            duration = max(0.0, duration - self.start)
            count = None if count is None or not rate else max(0, round(duration * rate))
        ctx = stream.codec_context
        return StreamInfo(
            width=first.width,
            height=first.height,
            time_base=Fraction(stream.time_base),
            frame_rate=Fraction(rate) if rate else None,
            frame_count=count,
            duration=duration,
            is_live=False,
            rotation=int(first.rotation or 0) % 360,
            description=f"{os.path.basename(self.path)}: {ctx.name} {first.width}x{first.height}"
            + (f" @ {float(rate):.3g} fps" if rate else ""),
            colour=colour_of(first),
        )

    def _expected_end(self) -> float | None:
        """Announced length of the video stream in seconds (from the stream, its tags or the container)."""
        stream, container = self._stream, self._container
        if stream.duration:
            return float(stream.duration * stream.time_base)
        # Matroska gives the time its track ends, not its length: a later segment of a recording
        # (timestamps that do not start at 0) would otherwise look truncated
        first = (
            float((stream.start_time or 0) * stream.time_base) if container.format.name.startswith("matroska") else 0
        )
        tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
        if tag and (m := re.fullmatch(r"(\d+):(\d+):(\d+(?:\.\d*)?)", tag.strip())):
            return int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]) - first
        if container.duration:
            return container.duration / 1_000_000 - first
        return None

    # -- reading ----------------------------------------------------------------------------
    def _decode(self):
        for packet in self._container.demux(self._stream):
            yield from packet.decode()

    def _next_frame(self):
        """The next decoded frame at or after ``start``; None at the end; DecodeError on bad data."""
        while True:
            try:
                frame = next(self._frames, None)
            except av.FFmpegError as err:
                raise DecodeError(
                    f"{self.path}: decoding failed after {self._index + len(self._pending)} frames "
                    f"({av_reason(err)}); the file is corrupt or truncated"
                ) from None
            if frame is None:
                return None
            self._decoded += 1
            if self.start and frame.time is not None and frame.time < self.start - 1e-6:
                continue
            return frame

    def _read(self) -> Frame | None:
        if self._frames is None:
            return None
        frame = self._pending.pop(0) if self._pending else self._next_frame()
        if frame is None:
            self._check_complete()
            self._frames = None
            return None
        t = frame.time
        if t is not None and self._last_time is not None:
            self._max_step = max(self._max_step, t - self._last_time)
        self._last_time = t if t is not None else self._last_time
        meta = {"key_frame": bool(frame.key_frame)}
        fmt = frame.format.name
        if self.pix_fmt == "yuv420p" and fmt in YUV_FORMATS and not (frame.width % 2 or frame.height % 2):
            image = frame.to_ndarray()  # packed planes: a copy, no colour conversion
            meta.update(yuv_meta(fmt, frame.colorspace, frame.color_range))
        else:
            image = self._to_rgb(frame)  # with the frame's own matrix and range
        out = Frame(
            image=image,
            pts=frame.pts,
            time_base=Fraction(frame.time_base or self._stream.time_base),
            index=self._index,
            meta=meta,
        )
        self._index += 1
        return out

    def _check_complete(self) -> None:
        """Raise DecodeError when the file ended before what its header announced (truncation)."""
        stream, read = self._stream, self._index
        end = self._expected_end()
        start_time = float((stream.start_time or 0) * stream.time_base)
        step = self._max_step or (1 / float(stream.average_rate) if stream.average_rate else 0.04)
        short_time = (
            end is not None and self._last_time is not None and self._last_time + step < start_time + end - 2 * step
        )
        short_count = not self.start and stream.frames and self._decoded < stream.frames
        if (short_count and (end is None or short_time)) or (not stream.frames and short_time):
            expected = f"{stream.frames} frames" if stream.frames else f"{end:.2f} s"
            got = f"{read} frames" + (f" up to {self._last_time:.2f} s" if self._last_time is not None else "")
            raise DecodeError(
                f"{self.path} ended early: read {got} of {expected}; the file is truncated or corrupt "
                "(re-download or re-copy it)"
            )

    def _release(self) -> None:
        container, self._container = self._container, None
        self._frames = None
        self._pending = []
        if container is not None:
            container.close()
