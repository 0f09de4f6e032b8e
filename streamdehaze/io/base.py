"""Source and Sink interfaces shared by every input and output, plus small PyAV helpers.

A Source yields :class:`~streamdehaze.frames.Frame` objects (``(H, W, 3) uint8`` RGB with the
source's integer pts and time base); a Sink consumes them. Neither does threading of its own:
the pipeline calls them from its worker threads. ``read`` never blocks forever.
"""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import av

from streamdehaze.errors import SourceError
from streamdehaze.frames import Frame, StreamInfo

# Fixed time base for timestamps a live source derives from the wall clock (RTP's video clock).
LIVE_TIME_BASE = Fraction(1, 90000)


class Source:
    """A video source. Construct cheaply; ``open`` connects, ``read`` pulls, ``close`` releases.

    Subclasses implement ``_open``, ``_read`` and ``_release``; this class serialises them with a
    lock so that ``close()`` from another thread never frees a demuxer under a running ``read``
    (the reader releases it when its bounded read returns, and then reads ``None``).
    """

    is_live: bool = False
    spec: str = ""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.info: StreamInfo | None = None

    def open(self) -> StreamInfo:
        """Open the source and return what is known before the first frame (raises SourceError & co)."""
        with self._lock:
            self._closing.clear()
            try:
                self.info = self._open()
            except BaseException:
                self._release()
                raise
            return self.info

    def read(self) -> Frame | None:
        """The next frame, or ``None`` at the end of the stream (and after ``close``).

        A live source waits out an outage here (reconnecting, each try bounded) until a frame
        comes, its reconnection budget is spent (SourceError) or ``close()`` is called.
        """
        with self._lock:
            if self._closing.is_set():
                return None
            if self.info is None:
                raise SourceError(f"{self.spec}: read() before open()")
            try:
                return self._read()
            finally:
                if self._closing.is_set():
                    self._release()

    def close(self) -> None:
        """Release the source; idempotent, and safe to call from another thread during ``read``."""
        self._closing.set()
        if self._lock.acquire(blocking=False):
            try:
                self._release()
            finally:
                self._lock.release()

    def _open(self) -> StreamInfo:
        raise NotImplementedError

    def _read(self) -> Frame | None:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Source:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self):
        while (frame := self.read()) is not None:
            yield frame

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


class Sink:
    """A frame consumer: ``open(info)``, ``write(frame)`` per frame, then ``close(status)``.

    ``status`` is ``"done"`` or ``"interrupted"`` (finalise and keep what was written) or
    ``"failed"`` (remove everything written). ``frames_written`` counts written frames.
    """

    frames_written: int = 0
    path: str = ""

    def open(self, info: StreamInfo) -> None:
        raise NotImplementedError

    def write(self, frame: Frame) -> None:
        raise NotImplementedError

    def close(self, status: str = "done") -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"


CLOSE_STATUSES = ("done", "interrupted", "failed")


def check_status(status: str) -> None:
    if status not in CLOSE_STATUSES:
        raise ValueError(f"close status must be one of {CLOSE_STATUSES}, got {status!r}")


def av_reason(err: BaseException) -> str:
    """FFmpeg's explanation of ``err`` without the file name PyAV appends (one line)."""
    if isinstance(err, av.FFmpegError) and err.strerror:
        return str(err.strerror)
    return str(err).splitlines()[0] if str(err) else type(err).__name__


class LiveClock:
    """Timestamps for live sources, in ``LIVE_TIME_BASE``, starting at 0 and strictly increasing.

    Within one connection the source's own timestamps (rescaled) give the spacing, anchored to
    the wall clock at the connection's first timestamped frame; frames without a timestamp get
    the wall-clock time. Reconnects re-anchor, so pts stay monotonic across them.
    """

    # Re-anchor when the source clock and the wall clock disagree by more than this (seconds).
    MAX_DRIFT = 2.0

    def __init__(self) -> None:
        self._origin: float | None = None
        self._offset: int | None = None
        self._last: int = -1

    def new_connection(self) -> None:
        self._offset = None

    def stamp(self, pts: int | None, time_base: Fraction | None) -> int:
        now = time.monotonic()
        if self._origin is None:
            self._origin = now
        wall = round((now - self._origin) / LIVE_TIME_BASE)
        if pts is None or time_base is None:
            value = wall
        else:
            src = round(pts * time_base / LIVE_TIME_BASE)
            if self._offset is None or abs(src + self._offset - wall) > self.MAX_DRIFT / LIVE_TIME_BASE:
                self._offset = wall - src
            value = src + self._offset
        self._last = max(value, self._last + 1)
        return self._last
