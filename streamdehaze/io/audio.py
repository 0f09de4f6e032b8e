"""Audio pass-through: copy every audio stream of a file into an output container, packet for
packet (no re-encoding), restricted to a time window and interleaved with the video by time.
"""

from __future__ import annotations

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


class AudioCopier:
    """Copies the audio of ``path`` within ``[start, start + duration)`` seconds into an output.

    Timestamps are shifted by ``-start`` (the video is shifted by the same amount), packets
    without a ``dts`` (flush markers) are skipped, payloads are kept byte for byte.
    """

    def __init__(self, path: str, start: float | None = None, duration: float | None = None) -> None:
        self.path = path
        self.start = start or 0.0
        self.end = None if duration is None else self.start + duration
        self.packets_copied = 0
        self._input = None
        self._packets = None
        self._next = None
        self._map: dict[int, av.stream.Stream] = {}
        self._finished: set[int] = set()

    def attach(self, out: av.container.OutputContainer) -> int:
        """Add one output stream per input audio stream; returns how many."""
        if not audio_codecs(self.path):
            return 0
        self._input = av.open(self.path, metadata_errors="replace")
        streams = list(self._input.streams.audio)
        for s in streams:
            try:
                self._map[s.index] = out.add_stream_from_template(s)
            except (av.FFmpegError, ValueError) as err:
                raise EncodeError(
                    f"cannot copy {s.codec_context.name} audio into {out.name}: {av_reason(err)}"
                ) from None
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
