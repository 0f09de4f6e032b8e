"""The preview's source wrapper: real-time pacing of files, pause, quit, and the original frame for display."""

from __future__ import annotations

import time

from ..frames import Frame, StreamInfo
from ..io.base import Source
from .hub import PreviewHub


class PreviewSource(Source):
    """Wraps a source for previewing; every frame gets ``meta['original']`` and ``meta['t_read']``.

    ``meta['original']`` is the input image (the sink shows it next to the dehazed one) and
    ``meta['t_read']`` the ``time.monotonic()`` of reading (for the latency figure).

    ``realtime=True`` (the preview command): a file plays at its own frame rate (paced by pts)
    and the wrapper reports itself live, so the pipeline drops the oldest queued frames when
    inference falls behind, as with a camera; while ``hub.controls.paused`` a file stops reading
    (and resumes where it was) and a live source keeps reading but discards frames.
    ``realtime=False`` (recording): timing and liveness are the inner source's; pausing the
    preview never pauses the recording. In both modes ``hub.quit`` ends the stream.
    """

    def __init__(self, inner: Source, hub: PreviewHub | None = None, realtime: bool = True, max_late: float = 0.5):
        super().__init__()
        self.inner, self.hub, self.realtime, self.max_late = inner, hub, realtime, max_late
        self.spec = inner.spec
        self.is_live = True if realtime else inner.is_live
        self.paced = realtime and not inner.is_live
        self.late = 0  # times a file fell behind its clock by more than max_late (re-anchored)
        self._anchor: float | None = None  # monotonic time of the stream's t = 0
        self._last_t: float | None = None

    def _open(self) -> StreamInfo:
        return self.inner.open()

    def close(self) -> None:
        super().close()
        self.inner.close()  # at once, even under a running read: it may be waiting out an outage

    @property
    def outages(self) -> list:
        """The inner live source's outages (none for files)."""
        return list(getattr(self.inner, "outages", None) or [])

    def _release(self) -> None:
        self.inner.close()

    def _stopping(self) -> bool:
        hub = self.hub
        return self._closing.is_set() or (hub is not None and (hub.quit.is_set() or hub.interrupted))

    def _paused(self) -> bool:
        return self.realtime and self.hub is not None and self.hub.controls.paused

    def _read(self) -> Frame | None:
        while not self._stopping():
            if self._paused():
                if self.paced:
                    self._anchor = None  # resume on a fresh clock, without a burst of late frames
                    self._closing.wait(0.05)
                elif self.inner.read() is None:
                    return None
                continue
            frame = self.inner.read()
            if frame is None:
                return None
            if self.paced:
                self._pace(frame)
            frame.meta["original"] = frame.image
            frame.meta["t_read"] = time.monotonic()
            return frame
        return None

    def _pace(self, frame: Frame) -> None:
        """Sleep until ``frame`` is due; re-anchor the clock after a pts jump or when far behind."""
        rate = self.info.frame_rate if self.info is not None else None
        t = frame.time if frame.time is not None else frame.index / float(rate or 25)
        now = time.monotonic()
        jumped = self._last_t is not None and not (0 <= t - self._last_t <= 1.0)
        self._last_t = t
        if self._anchor is None or jumped:
            self._anchor = now - t
            return
        delay = self._anchor + t - now
        if delay < -self.max_late:  # decoding itself is slower than real time: stay in step with the clock
            self.late += 1
            self._anchor = now - t
        elif delay > 0:
            self._closing.wait(delay)
