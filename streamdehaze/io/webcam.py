"""Webcams (``webcam:N``, ``/dev/videoN``) and FFmpeg's lavfi generators as live sources.

A webcam is opened with PyAV's v4l2 demuxer first and OpenCV's ``VideoCapture`` second; when
neither works the error names both attempts. ``lavfi:GRAPH`` (e.g.
``lavfi:testsrc2=size=320x240:rate=30``) opens an FFmpeg generator paced to real time (a
``realtime`` filter is appended unless the graph has one): a camera without a camera, for tests
and demos. It ends when the graph ends (e.g. ``testsrc2=...:duration=2``).

Frames get :class:`LiveClock` timestamps (1/90000, from 0, monotonic, with the gap of an outage).
A camera that delivers nothing for ``timeout`` seconds, fails a read or stops (a device's end of
stream) is reopened with backoff, as RTSP is (:mod:`streamdehaze.io.reconnect`: for up to
``reconnect_for`` seconds, None = for ever); with ``reconnect_for=0`` ``read`` raises
:class:`SourceTimeout` after ``timeout`` seconds without a frame. A lavfi graph that ends, ends
the stream.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from fractions import Fraction

import av
import numpy as np

from streamdehaze.errors import InputError, SourceError, SourceTimeout
from streamdehaze.frames import Frame, StreamInfo
from streamdehaze.io.base import LIVE_TIME_BASE, LiveClock, Source, av_reason
from streamdehaze.io.colour import RgbConverter, colour_of
from streamdehaze.io.reconnect import Reconnecting, Reconnector


def parse_webcam_spec(spec: str) -> tuple[str, int | None, str]:
    """``(kind, device_number, target)``: kind 'v4l2' (target /dev/videoN) or 'lavfi' (target the graph)."""
    if spec.lower().startswith("lavfi:"):
        graph = spec[len("lavfi:") :]
        if not graph:
            raise InputError("lavfi: needs a filter graph, e.g. lavfi:testsrc2=size=320x240:rate=30")
        if "realtime" not in graph:
            graph += ",realtime"
        return "lavfi", None, graph
    m = re.fullmatch(r"(?:webcam:(\d+)|/dev/video(\d+))", spec.strip(), flags=re.IGNORECASE)
    if not m:
        raise InputError(f"bad webcam spec {spec!r}: expected webcam:N or /dev/videoN (N = 0, 1, ...)")
    n = int(m[1] or m[2])
    return "v4l2", n, f"/dev/video{n}"


class WebcamSource(Reconnecting, Source):
    """A local camera or a lavfi test generator, read as a live source."""

    is_live = True

    def __init__(
        self,
        spec: str,
        *,
        timeout: float = 5.0,
        reconnect_for: float | None = None,
        reconnect_attempts: int | None = None,
        backoff: float = 0.5,
        threads: bool = True,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.kind, self.device, self.target = parse_webcam_spec(spec)
        self.timeout = float(timeout)
        self.threads = threads
        self.backend = ""
        self.reconnects = 0
        self.reconnector = Reconnector(
            spec, self._closing, reconnect_for=reconnect_for, attempts=reconnect_attempts, backoff=backoff
        )
        self._container = None
        self._frames = None
        self._capture = None
        self._pool: ThreadPoolExecutor | None = None
        self._reading = None  # the OpenCV read in flight (a Future), if any
        self._first = None
        self._colour = None
        self._clock = LiveClock()
        self._to_rgb = RgbConverter()
        self._index = 0

    # -- opening ----------------------------------------------------------------------------
    def _open(self) -> StreamInfo:
        self._connect()
        first = self._first = self._grab()
        if first is None:
            raise SourceError(f"{self.spec} opened but gave no frame")
        image, _, _ = first
        rate = None
        if self._container is not None:
            stream = self._container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
        elif self._capture is not None:
            rate = self._capture.get(5) or None  # cv2.CAP_PROP_FPS
        return StreamInfo(
            width=image.shape[1],
            height=image.shape[0],
            time_base=LIVE_TIME_BASE,
            frame_rate=Fraction(rate).limit_denominator(1001) if rate else None,
            is_live=True,
            description=f"{self.spec} via {self.backend} {image.shape[1]}x{image.shape[0]} (live)",
            colour=self._colour,
        )

    def _connect(self) -> None:
        """Open the generator or the device (PyAV v4l2 first, OpenCV second); clear errors when neither works."""
        if self.kind == "lavfi":
            try:
                self._open_av("lavfi")
            except av.FFmpegError as err:
                raise InputError(f"bad lavfi graph {self.target!r}: {av_reason(err)}") from None
        else:
            tried = []
            try:
                self._open_av("v4l2")
            except (av.FFmpegError, OSError) as err:
                tried.append(f"PyAV v4l2 {self.target}: {av_reason(err)}")
                if not self._open_cv():
                    tried.append(f"OpenCV VideoCapture({self.device}): did not open")
                    raise SourceError(
                        f"no webcam {self.spec}: tried {'; '.join(tried)} "
                        "(list cameras with `ls /dev/video*`; use lavfi:testsrc2 for a test source)"
                    ) from None

    def _open_av(self, fmt: str) -> None:
        if fmt == "v4l2" and not os.path.exists(self.target):
            raise FileNotFoundError(f"{self.target} does not exist")
        container = av.open(self.target, format=fmt, timeout=(self.timeout, self.timeout))
        stream = container.streams.video[0]
        stream.thread_type = "SLICE" if self.threads else "NONE"
        self._container = container
        self._frames = container.decode(stream)
        self.backend = f"PyAV {fmt}"

    def _open_cv(self) -> bool:
        import cv2

        # OpenCV logs its own warnings for a missing device; our SourceError says it in one line.
        previous = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        try:
            capture = cv2.VideoCapture(self.device)
        finally:
            cv2.utils.logging.setLogLevel(previous)
        if not capture.isOpened():
            capture.release()
            return False
        self._capture = capture
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webcam-cv")
        self.backend = "OpenCV"
        return True

    # -- reading ----------------------------------------------------------------------------
    def _grab(self) -> tuple[np.ndarray, int | None, Fraction | None] | None:
        """Next ``(rgb image, pts, time_base)``; None at the end; SourceTimeout after ``timeout``."""
        if self._container is not None:
            try:
                frame = next(self._frames, None)
            except av.error.TimeoutError:
                raise self._timeout() from None
            except av.FFmpegError as err:
                raise SourceError(f"{self.spec}: read failed ({av_reason(err)})") from None
            if frame is None:
                return None
            if self._colour is None:
                self._colour = colour_of(frame)
            return self._to_rgb(frame), frame.pts, frame.time_base
        # OpenCV blocks without a timeout of its own: read in a helper thread and wait bounded.
        self._reading = self._pool.submit(self._capture.read)
        try:
            ok, bgr = self._reading.result(timeout=self.timeout)
        except FutureTimeout:
            raise self._timeout() from None
        self._reading = None
        if not ok:
            return None
        return np.ascontiguousarray(bgr[..., ::-1]), None, None

    def _timeout(self) -> SourceTimeout:
        return SourceTimeout(f"no frame from {self.spec} for {self.timeout:g} s; is the camera in use or unplugged?")

    def _read(self) -> Frame | None:
        while not self._closing.is_set():
            if self._first is None and self._container is None and self._capture is None:
                if not self._reconnect():
                    return None
            try:
                grabbed = self._first if self._first is not None else self._grab()
            except SourceError as err:
                self._lost(str(err), stall=isinstance(err, SourceTimeout), error=err)
                continue
            self._first = None
            if grabbed is None:
                if self.kind == "lavfi":
                    return None  # a generator's graph ended: the end of the stream
                self._lost("the camera stopped delivering frames", error=None)
                continue
            self.reconnector.frame()
            image, pts, time_base = grabbed
            out = Frame(
                image=image,
                pts=self._clock.stamp(pts, time_base),
                time_base=LIVE_TIME_BASE,
                index=self._index,
                meta={"backend": self.backend, "reconnects": self.reconnects},
            )
            self._index += 1
            return out
        return None

    def _lost(self, reason: str, stall: bool = False, error: SourceError | None = None) -> None:
        """Release the device and start (or continue) an outage; raise when outages end the stream."""
        self._release()
        if not self.reconnector.enabled:
            raise error or SourceError(f"lost {self.spec} ({reason}); check the camera")
        self.reconnector.lost(f"no frame for {self.timeout:g} s" if stall else reason)

    def _reconnect(self) -> bool:
        """Reopen the device with backoff until a frame comes (True), the source closes (False) or
        the reconnector's budget is spent (SourceError)."""
        policy = self.reconnector
        while policy.wait():
            try:
                self._connect()
                self._first = self._grab()
                if self._first is None:
                    raise SourceError(f"{self.spec} reopened but gave no frame")
                self.reconnects += 1
                self._clock.new_connection()
                return True
            except (SourceError, InputError) as err:
                self._release()
                policy.failed(str(err))
        return False

    def _release(self) -> None:
        container, self._container, self._frames = self._container, None, None
        if container is not None:
            container.close()
        capture, self._capture = self._capture, None
        reading, self._reading = self._reading, None
        if capture is not None:
            if reading is not None and not reading.done():
                # a read still blocked in the driver: release the device once it returns, not under it
                reading.add_done_callback(lambda _, c=capture: c.release())
            else:
                capture.release()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)
