"""RTSP source: PyAV over TCP with bounded opens and reads, and reconnection with backoff.

Timing contract (``timeout`` = T seconds):

- ``open()`` connects and waits for the first frame; it raises :class:`SourceError` at once when
  the server refuses the connection and :class:`SourceTimeout` when nothing arrives within T.
- An outage is a stall (no frame for T seconds: a stopped server or network) or a disconnect
  (the end of the stream, a connection error). ``read()`` then reconnects, waiting ``backoff``,
  ``2*backoff``, ... (at most 5 s) before each try (each bounded by T), until a frame arrives;
  it raises :class:`SourceError` once the outage has lasted ``reconnect_for`` seconds (None:
  never gives up) or ``reconnect_attempts`` tries failed (None: no limit). With
  ``reconnect_for=0`` a stall raises :class:`SourceTimeout` at once. ``close()`` from another
  thread cuts the waiting short. Outages are logged and listed in ``outages`` (see
  :mod:`streamdehaze.io.reconnect`).

Timestamps are derived in a fixed 1/90000 time base by :class:`LiveClock`: they start at 0,
follow the server's clock within a connection and stay monotonic across reconnects (the gap of
an outage shows as a gap in time). Frame indices keep counting across reconnects.
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
from streamdehaze.io.colour import RgbConverter, colour_of
from streamdehaze.io.reconnect import Reconnecting, Reconnector

# FFmpeg errors that mean "nothing arrived in time" (socket timeout or PyAV's interrupt callback).
_STALL_ERRORS = (av.error.TimeoutError, av.error.ExitError)


class RtspSource(Reconnecting, Source):
    """Live RTSP camera or server (``rtsp://host:port/path``), decoded to rgb24 frames."""

    is_live = True

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        reconnect_for: float | None = None,
        reconnect_attempts: int | None = None,
        backoff: float = 0.5,
        threads: bool = True,
    ) -> None:
        super().__init__()
        self._url = url
        # Messages and repr show the URL without its password.
        self.spec = self.url = re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", url)
        self.timeout = float(timeout)
        self.threads = threads
        self.reconnects = 0
        self.reconnector = Reconnector(
            self.url, self._closing, reconnect_for=reconnect_for, attempts=reconnect_attempts, backoff=backoff
        )
        self._container = None
        self._packets = None
        self._ready: deque = deque()
        self._clock = LiveClock()
        self._to_rgb = RgbConverter()
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
        """Reconnect with backoff until it works (returns), the source closes (returns) or the
        reconnector's budget is spent (SourceError)."""
        policy = self.reconnector
        while policy.wait():
            try:
                self._connect()
                self.reconnects += 1
                return
            except SourceError as err:
                policy.failed(str(err))

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
            colour=colour_of(first),
        )

    def _next_frame(self, first: bool = False):
        """The next decoded av.VideoFrame, reconnecting as needed; None once closing."""
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
                self._lost("stalled", stall=True, first=first)
                continue
            except av.FFmpegError as err:
                self._lost(av_reason(err), first=first)
                continue
            if packet is None:  # end of stream on a live source = the server went away
                self._lost("the server ended the stream", first=first)
                continue
            try:
                self._ready.extend(packet.decode())
            except av.FFmpegError:
                pass  # a damaged packet (e.g. missing reference after a reconnect): skip it
            if not self._ready and time.monotonic() > deadline:
                self._lost("stalled", stall=True, first=first)
        return self._ready.popleft()

    def _lost(self, reason: str, stall: bool = False, first: bool = False) -> None:
        """Drop the connection and start (or continue) an outage; raise when it ends the stream."""
        self._disconnect(reason)
        if first:  # open(): no reconnecting before the first frame
            if stall:
                raise SourceTimeout(f"{self.url} sent no frame within {self.timeout:g} s; check the server")
            raise SourceError(f"{self.url}: connection failed before the first frame ({reason})")
        if stall:
            reason = f"no frame for {self.timeout:g} s"
        if not self.reconnector.enabled:
            if stall:
                raise SourceTimeout(
                    f"no frame from {self.url} for {self.timeout:g} s (stalled stream); "
                    "check the network or raise the timeout"
                )
            raise SourceError(f"lost {self.url} ({reason}); check the camera or server")
        self.reconnector.lost(reason)

    def _read(self) -> Frame | None:
        frame = self._next_frame()
        if frame is None:
            return None
        self.reconnector.frame()
        pts = self._clock.stamp(frame.pts, frame.time_base)
        out = Frame(
            image=self._to_rgb(frame),
            pts=pts,
            time_base=LIVE_TIME_BASE,
            index=self._index,
            meta={"reconnects": self.reconnects, "source_pts": frame.pts},
        )
        self._index += 1
        return out

    def _release(self) -> None:
        self._disconnect("closed")
