"""RTSP source: PyAV over TCP with bounded opens and reads, and reconnection with backoff.

Timing contract (``timeout`` = T seconds):

- ``open()`` connects and waits for the first frame; it raises :class:`SourceError` at once when
  the server refuses the connection and :class:`SourceTimeout` when nothing arrives within T.
- ``read()`` raises :class:`SourceTimeout` when no frame arrives for T seconds (a stalled
  server or network); the connection is dropped and the next ``read()`` reconnects.
- The end of the stream or a connection error counts as a disconnect: ``read()`` reconnects,
  waiting ``backoff``, ``2*backoff``, ... before each of ``reconnect_attempts`` tries (each try
  bounded by T), and raises :class:`SourceError` when all fail. ``close()`` from another thread
  cuts the waiting short.

Timestamps are derived in a fixed 1/90000 time base by :class:`LiveClock`: they start at 0,
follow the server's clock within a connection and stay monotonic across reconnects. Frame
indices keep counting across reconnects.
"""

from __future__ import annotations

import re
import time
from collections import deque
from fractions import Fraction

import av

from streamdehaze.errors import SourceError, SourceTimeout
from streamdehaze.frames import Frame, StreamInfo
from streamdehaze.io.base import LIVE_TIME_BASE, LiveClock, Source, av_reason

# FFmpeg errors that mean "nothing arrived in time" (socket timeout or PyAV's interrupt callback).
_STALL_ERRORS = (av.error.TimeoutError, av.error.ExitError)


class RtspSource(Source):
    """Live RTSP camera or server (``rtsp://host:port/path``), decoded to rgb24 frames."""

    is_live = True

    def __init__(
        self, url: str, *, timeout: float = 5.0, reconnect_attempts: int = 5, backoff: float = 0.5, threads: bool = True
    ) -> None:
        super().__init__()
        self._url = url
        # Messages and repr show the URL without its password.
        self.spec = self.url = re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", url)
        self.timeout = float(timeout)
        self.reconnect_attempts = int(reconnect_attempts)
        self.backoff = float(backoff)
        self.threads = threads
        self.reconnects = 0
        self._container = None
        self._packets = None
        self._ready: deque = deque()
        self._clock = LiveClock()
        self._index = 0
        self._last_error = ""

    # -- connection -------------------------------------------------------------------------
    def _connect(self) -> None:
        """Open the URL (bounded by ``timeout``) and set up decoding; raises SourceError/SourceTimeout."""
        # The socket timeout and PyAV's read deadline each fire after T/2 without data; FFmpeg's
        # RTSP demuxer gets one retry, so a stall surfaces after about T in total (measured).
        half = self.timeout / 2
        options = {
            "rtsp_transport": "tcp",
            "timeout": str(int(half * 1_000_000)),  # microseconds; 'stimeout' is ignored by FFmpeg 8
            "analyzeduration": "500000",  # probe 0.5 s instead of 5 s: faster (re)connects
        }
        try:
            container = av.open(self._url, options=options, timeout=(self.timeout, half))
        except _STALL_ERRORS:
            raise SourceTimeout(f"{self.url} did not answer within {self.timeout:g} s; check the server") from None
        except av.FFmpegError as err:
            raise SourceError(f"cannot open {self.url}: {av_reason(err)} ({self._hint(err)})") from None
        if not container.streams.video:
            container.close()
            raise SourceError(f"{self.url} has no video stream; expected an RTSP video stream")
        stream = container.streams.video[0]
        # Frame threading delays every frame by one per thread: slices only, for latency.
        stream.thread_type = "SLICE" if self.threads else "NONE"
        self._container = container
        self._packets = container.demux(stream)
        self._clock.new_connection()

    @staticmethod
    def _hint(err: BaseException) -> str:
        if isinstance(err, ConnectionRefusedError | av.error.ConnectionRefusedError):
            return "is the server running? check host and port"
        if "404" in str(err) or isinstance(err, av.error.HTTPNotFoundError):
            return "wrong stream path?"
        if "401" in str(err):
            return "credentials needed: rtsp://user:password@host/path"
        return "check the URL and that the server is reachable"

    def _disconnect(self, reason: str) -> None:
        self._last_error = reason
        container, self._container, self._packets = self._container, None, None
        self._ready.clear()
        if container is not None:
            container.close()

    def _reconnect(self) -> None:
        """Try ``reconnect_attempts`` times with exponential backoff; SourceError when all fail."""
        delay, waited = self.backoff, 0.0
        for _ in range(self.reconnect_attempts):
            if self._closing.wait(delay):
                return
            waited += delay
            try:
                self._connect()
                self.reconnects += 1
                return
            except SourceError as err:
                self._last_error = str(err)
            delay *= 2
        raise SourceError(
            f"lost {self.url}: {self.reconnect_attempts} reconnect attempts over {waited:.1f} s failed "
            f"(last: {self._last_error}); check the camera or server"
        )

    # -- Source interface -------------------------------------------------------------------
    def _open(self) -> StreamInfo:
        self._connect()
        first = self._next_frame(first=True)
        self._ready.appendleft(first)
        stream = self._container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        return StreamInfo(
            width=first.width,
            height=first.height,
            time_base=LIVE_TIME_BASE,
            frame_rate=Fraction(rate) if rate else None,
            is_live=True,
            rotation=int(first.rotation or 0) % 360,
            description=f"{self.url}: {stream.codec_context.name} {first.width}x{first.height} (live)",
        )

    def _next_frame(self, first: bool = False):
        """The next decoded av.VideoFrame, reconnecting as needed; bounded by ``timeout`` per connection."""
        deadline = time.monotonic() + self.timeout
        while not self._ready:
            if self._closing.is_set():
                return None
            if self._container is None:
                self._reconnect()
                deadline = time.monotonic() + self.timeout
                continue
            try:
                packet = next(self._packets, None)
            except _STALL_ERRORS:
                packet = None
                self._stall()
            except av.FFmpegError as err:
                self._disconnect(av_reason(err))
                if first:
                    raise SourceError(
                        f"{self.url}: connection failed before the first frame ({self._last_error})"
                    ) from None
                continue
            if packet is None:  # end of stream on a live source = the server went away
                self._disconnect("the server ended the stream")
                if first:
                    raise SourceError(f"{self.url} ended the stream before sending a frame")
                continue
            try:
                self._ready.extend(packet.decode())
            except av.FFmpegError:
                pass  # a damaged packet (e.g. missing reference after a reconnect): skip it
            if not self._ready and time.monotonic() > deadline:
                self._stall()
        return self._ready.popleft()

    def _stall(self) -> None:
        self._disconnect("stalled")
        raise SourceTimeout(
            f"no frame from {self.url} for {self.timeout:g} s (stalled stream); check the network or raise the timeout"
        )

    def _read(self) -> Frame | None:
        frame = self._next_frame()
        if frame is None:
            return None
        pts = self._clock.stamp(frame.pts, frame.time_base)
        out = Frame(
            image=frame.to_ndarray(format="rgb24"),
            pts=pts,
            time_base=LIVE_TIME_BASE,
            index=self._index,
            meta={"reconnects": self.reconnects, "source_pts": frame.pts},
        )
        self._index += 1
        return out

    def _release(self) -> None:
        self._disconnect("closed")
