"""Audio pass-through: copy every audio stream of a file into an output container, packet for
packet (no re-encoding), restricted to a time window and interleaved with the video by time.

The same copier also takes subtitle and data tracks (dashcams keep GPS and speed there) when
asked to (``kinds``); those are copied where the output container can hold them and listed in
``not_copied`` where it cannot, while audio that does not fit is an error.
"""

from __future__ import annotations

import io
import os

import av

from streamdehaze.errors import EncodeError, InputError
from streamdehaze.io.base import av_reason


def audio_codecs(path: str) -> list[str]:
    """Codec names of the audio streams of ``path`` ([] for folders, globs and files without audio)."""
    if os.path.isdir(path) or "://" in path:
        return []
    if not os.path.exists(path):
        raise InputError(f"audio source not found: {path} (expected the input video file)")
    try:
        with av.open(path, metadata_errors="replace") as inp:
            return [s.codec_context.name for s in inp.streams.audio]
    except av.FFmpegError:
        return []  # not a media file (e.g. an image): nothing to copy


def _describe(stream) -> str:
    """``subtitle track 2 (mov_text)``: a track for the not-copied list."""
    ctx = getattr(stream, "codec_context", None)
    name = getattr(ctx, "name", None) or stream.metadata.get("handler_name")
    return f"{stream.type} track {stream.index}" + (f" ({name})" if name else "")


def container_takes(fmt: str, stream) -> bool:
    """Whether a ``fmt`` container can hold a copy of ``stream`` (tried on an in-memory file, header included)."""
    try:
        with av.open(io.BytesIO(), "w", format=fmt) as probe:
            probe.add_stream_from_template(stream)
            probe.start_encoding()
        return True
    except (av.FFmpegError, ValueError):
        return False


class AudioCopier:
    """Copies the audio of ``path`` within ``[start, start + duration)`` seconds into an output.

    Timestamps are shifted by ``-start`` (the video is shifted by the same amount), packets
    without a ``dts`` (flush markers) are skipped, payloads are kept byte for byte. ``kinds``: the
    track types to copy (``audio``, ``subtitle``, ``data``); subtitle and data tracks the output
    container cannot hold are left out and described in :attr:`not_copied`.
    """

    def __init__(
        self, path: str, start: float | None = None, duration: float | None = None, kinds: tuple[str, ...] = ("audio",)
    ) -> None:
        self.path = path
        self.kinds = tuple(kinds)
        self.not_copied: list[str] = []
        self.start = start or 0.0
        self.end = None if duration is None else self.start + duration
        self.packets_copied = 0
        self._input = None
        self._packets = None
        self._next = None
        self._map: dict[int, av.stream.Stream] = {}
        self._finished: set[int] = set()

    def attach(self, out: av.container.OutputContainer) -> int:
        """Add one output stream per input stream of the copied kinds; returns how many."""
        if self.kinds == ("audio",) and not audio_codecs(self.path):
            return 0
        self._input = av.open(self.path, metadata_errors="replace")
        streams = []
        for s in self._input.streams:
            if s.type not in self.kinds or s.type == "video":
                continue
            if s.type != "audio" and not container_takes(out.format.name, s):
                self.not_copied.append(f"{_describe(s)}: {out.format.name} files cannot hold it")
                continue
            try:
                self._map[s.index] = out.add_stream_from_template(s)
            except (av.FFmpegError, ValueError) as err:
                raise EncodeError(
                    f"cannot copy {s.codec_context.name} {s.type} into {out.name}: {av_reason(err)}"
                ) from None
            streams.append(s)
        if not streams:
            self.close()
            return 0
        if self.start:
            self._input.seek(int(self.start * 1_000_000), backward=True)  # AV_TIME_BASE units
        self._packets = self._input.demux(*streams)
        self._advance()
        return len(streams)

    @staticmethod
    def _time(packet) -> float:
        ts = packet.pts if packet.pts is not None else packet.dts
        return float(ts * packet.time_base)

    def _advance(self) -> None:
        """Load the next packet to copy into ``self._next`` (None when done)."""
        self._next = None
        for packet in self._packets or ():
            if packet.dts is None:
                continue
            t = self._time(packet)
            if self.start and t < self.start - 1e-9:
                continue
            if self.end is not None and t >= self.end:
                self._finished.add(packet.stream.index)
                if len(self._finished) == len(self._map):
                    break  # every stream is past the window: stop demuxing
                continue
            self._next = packet
            return
        self._packets = None

    def mux_until(self, out: av.container.OutputContainer, until: float | None) -> None:
        """Mux the packets whose time (source seconds) is <= ``until`` (all when None)."""
        while self._next is not None and (until is None or self._time(self._next) <= until):
            packet = self._next
            if self.start:
                shift = round(self.start / packet.time_base)
                packet.pts = None if packet.pts is None else packet.pts - shift
                packet.dts = packet.dts - shift
            if packet.stream.type != "audio" and not packet.duration:
                packet.duration = 1  # the mov muxer drops a last data/subtitle sample that lasts 0 ticks
            packet.stream = self._map[packet.stream.index]
            try:
                out.mux(packet)
            except av.FFmpegError as err:
                raise EncodeError(f"cannot copy audio from {self.path}: {av_reason(err)}") from None
            self.packets_copied += 1
            self._advance()

    def close(self) -> None:
        inp, self._input, self._packets, self._next = self._input, None, None, None
        if inp is not None:
            inp.close()
