"""Live preview core: the hub between the pipeline and the preview outputs (window, web page).

The pipeline's sink thread hands every dehazed frame to :meth:`PreviewHub.publish` (a few
microseconds: it keeps a reference to the newest frame and counts it); the window and the web
server read the newest frame from the hub at their own pace, so a slow viewer never slows the
pipeline. User controls (pause, snapshot, toggles, view, strength) are :class:`Action` values
applied with :meth:`PreviewHub.apply`, whichever output they came from; listeners pass the ones
that concern the engine on as queued engine controls (:mod:`.session`).

Also here: :func:`compose` (the side-by-side / split view) and :class:`PreviewSink` (a sink that
publishes, optionally after writing to a recording sink). :mod:`.session` wires a
pipeline to the hub; :mod:`.window` and :mod:`.web` are the outputs.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..frames import Frame, StreamInfo
from ..io.base import Sink
from ..io.stills import write_image

VIEWS = ("side", "split")


class Action(str, Enum):
    """What a key press or a button asks for."""

    QUIT = "quit"
    PAUSE = "pause"
    SNAPSHOT = "snapshot"
    DEHAZE = "dehaze"
    TEMPORAL = "temporal"
    VIEW = "view"
    DIVIDER_LEFT = "divider_left"
    DIVIDER_RIGHT = "divider_right"
    STRENGTH_DOWN = "strength_down"
    STRENGTH_UP = "strength_up"
    STRENGTH = "strength"  # set to a value (the page's slider)


STRENGTH_STEP = 0.1  # per key press


@dataclasses.dataclass
class Controls:
    """The user's settings: ``divider`` is the split position as a fraction of the width (0..1);
    ``strength`` the amount of dehazing (0..1)."""

    paused: bool = False
    dehaze: bool = True
    temporal: bool = True
    view: str = "side"
    divider: float = 0.5
    strength: float = 1.0


def compose(original: np.ndarray, dehazed: np.ndarray, view: str = "side", divider: float = 0.5) -> np.ndarray:
    """The picture to show: ``(H, W, 3)`` uint8 RGB inputs → ``(H, 2W, 3)`` ("side") or ``(H, W, 3)`` ("split").

    "side": original left, dehazed right. "split": original left of ``divider`` (fraction of the
    width), dehazed right of it, with a 2-pixel white divider line. ``dehazed`` is resized to the
    original's size if they differ.
    """
    if dehazed.shape != original.shape:
        dehazed = cv2.resize(dehazed, (original.shape[1], original.shape[0]), interpolation=cv2.INTER_AREA)
    if view == "side":
        return np.hstack([original, dehazed])
    if view != "split":
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    w = original.shape[1]
    x = int(round(min(max(divider, 0.0), 1.0) * w))
    out = dehazed.copy()
    out[:, :x] = original[:, :x]
    out[:, max(0, x - 1) : min(w, x + 1)] = 255
    return out


class FpsMeter:
    """Frames per second over the last ``window`` seconds of events."""

    def __init__(self, window: float = 2.0) -> None:
        self.window = window
        self._times: deque[float] = deque()

    def tick(self, now: float) -> None:
        self._times.append(now)
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()

    def rate(self, now: float) -> float:
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        span = max(now - self._times[0], self._times[-1] - self._times[0])
        return (len(self._times) - 1) / span if span > 0 else 0.0


class PreviewHub:
    """Newest frame, controls and statistics, shared by the pipeline thread and the viewers.

    ``stats_fn`` adds run-wide figures (``dropped``, ``model_fps``, ...) to :meth:`stats`;
    ``snapshot_dir`` is where :attr:`Action.SNAPSHOT` saves both images. Listeners registered
    with :meth:`on_change` are called with ``(field, value)`` when a control changes.
    """

    def __init__(self, snapshot_dir: str | os.PathLike = ".", stats_fn: Callable[[], dict] | None = None) -> None:
        self.controls = Controls()
        self.snapshot_dir = Path(snapshot_dir)
        self.stats_fn = stats_fn
        self.info: StreamInfo | None = None
        self.quit = threading.Event()
        self.interrupted = False  # Ctrl-C (set from a signal handler, so a plain flag)
        self.finished = threading.Event()
        self.frames = 0
        self.snapshots: list[Path] = []
        self.version = 0  # bumps on a new frame or a change of the picture's layout
        # True: the dehazing switch only changes what is shown (the pipeline keeps dehazing, e.g. recording)
        self.dehaze_in_display = False
        self._cond = threading.Condition()
        self._latest: tuple[np.ndarray, np.ndarray, int] | None = None
        self._fps = FpsMeter()
        self._latency: float | None = None
        self._listeners: list[Callable[[str, Any], None]] = []

    # -- pipeline side ----------------------------------------------------------------------
    def publish(self, frame: Frame) -> None:
        """Take the newest dehazed ``frame`` (its ``meta['original']`` is the input image)."""
        now = time.monotonic()
        t_read = frame.meta.get("t_read")
        with self._cond:
            self.frames += 1
            self._fps.tick(now)
            if t_read is not None:  # smoothed so the overlay stays readable
                lat = now - t_read
                self._latency = lat if self._latency is None else 0.9 * self._latency + 0.1 * lat
            if not self.controls.paused:
                original = frame.meta.get("original", frame.image)
                dehazed = original if self.dehaze_in_display and not self.controls.dehaze else frame.image
                self._latest = (original, dehazed, frame.index)
                self.version += 1
                self._cond.notify_all()

    def end(self) -> None:
        with self._cond:
            self.finished.set()
            self._cond.notify_all()

    # -- viewer side ------------------------------------------------------------------------
    def latest(self) -> tuple[np.ndarray, np.ndarray, int] | None:
        """``(original, dehazed, frame index)`` of the newest frame shown, or None before the first."""
        with self._cond:
            return self._latest

    def wait(self, after: int, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for :attr:`version` to pass ``after``; returns the version."""
        with self._cond:
            self._cond.wait_for(lambda: self.version != after, timeout)
            return self.version

    def picture(self, max_width: int | None = None) -> tuple[int, np.ndarray | None]:
        """``(version, picture)``: the newest frame composed in the current view (RGB), None before the first.

        With ``max_width``, both images are scaled down first so that the picture is at most that wide.
        """
        with self._cond:
            version, latest, view, divider = self.version, self._latest, self.controls.view, self.controls.divider
        if latest is None:
            return version, None
        original, dehazed = latest[0], latest[1]
        h, w = original.shape[:2]
        wide = 2 * w if view == "side" else w
        if max_width is not None and wide > max_width:
            size = (max(1, w * max_width // wide), max(1, h * max_width // wide))
            # INTER_AREA avoids aliasing but is slow for ratios that are not whole numbers
            interp = cv2.INTER_AREA if 2 * max_width <= wide else cv2.INTER_LINEAR
            original, dehazed = (cv2.resize(im, size, interpolation=interp) for im in (original, dehazed))
        return version, compose(original, dehazed, view, divider)

    def on_change(self, listener: Callable[[str, Any], None]) -> None:
        self._listeners.append(listener)

    def apply(self, action: Action | str, value: float | None = None) -> dict[str, Any]:
        """Carry out ``action``; returns what changed (``{"snapshot": [paths]}`` for snapshots).

        ``value``: the new strength for :attr:`Action.STRENGTH` (clipped to [0, 1]; ValueError when missing).
        """
        action = Action(action)
        if action is Action.STRENGTH and value is None:
            raise ValueError("the strength action needs a value in [0, 1]")
        c = self.controls
        if action is Action.QUIT:
            self.quit.set()
            with self._cond:
                self._cond.notify_all()
            return {"quit": True}
        if action is Action.SNAPSHOT:
            return {"snapshot": [str(p) for p in self.snapshot()]}
        with self._cond:
            if action is Action.PAUSE:
                field, value = "paused", not c.paused
            elif action is Action.DEHAZE:
                field, value = "dehaze", not c.dehaze
            elif action is Action.TEMPORAL:
                field, value = "temporal", not c.temporal
            elif action is Action.VIEW:
                field, value = "view", VIEWS[(VIEWS.index(c.view) + 1) % len(VIEWS)]
            elif action in (Action.STRENGTH, Action.STRENGTH_DOWN, Action.STRENGTH_UP):
                step = {Action.STRENGTH_DOWN: -STRENGTH_STEP, Action.STRENGTH_UP: STRENGTH_STEP}.get(action)
                target = c.strength + step if step is not None else float(value)
                field, value = "strength", round(min(1.0, max(0.0, target)), 4)
            else:
                step = -0.05 if action is Action.DIVIDER_LEFT else 0.05
                field, value = "divider", round(min(1.0, max(0.0, c.divider + step)), 4)
            setattr(c, field, value)
            self.version += 1
            self._cond.notify_all()
        for listener in self._listeners:
            listener(field, value)
        return {field: value}

    def set_divider(self, fraction: float) -> None:
        """Move the split view's divider to ``fraction`` of the width (mouse drags)."""
        with self._cond:
            self.controls.divider = min(1.0, max(0.0, float(fraction)))
            self.version += 1
            self._cond.notify_all()

    def snapshot(self) -> list[Path]:
        """Save the shown frame's original and dehazed images as PNGs; returns their paths (none before a frame)."""
        latest = self.latest()
        if latest is None:
            return []
        original, dehazed, index = latest
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        paths = [self.snapshot_dir / f"snapshot-{stamp}-{index:06d}-{kind}.png" for kind in ("original", "dehazed")]
        for path, image in zip(paths, (original, dehazed)):
            write_image(path, image)
        self.snapshots.extend(paths)
        return paths

    def stats(self) -> dict[str, Any]:
        """Figures for the overlay and ``/stats``: frames, fps (end to end), latency_ms, controls, plus ``stats_fn``."""
        now = time.monotonic()
        with self._cond:
            out: dict[str, Any] = {
                "frames": self.frames,
                "fps": round(self._fps.rate(now), 2),
                "latency_ms": None if self._latency is None else round(self._latency * 1000, 1),
                **dataclasses.asdict(self.controls),
                "finished": self.finished.is_set(),
            }
        if self.info is not None:
            out["size"] = [self.info.width, self.info.height]
        if self.stats_fn is not None:
            out.update(self.stats_fn())
        return out


class PreviewSink(Sink):
    """Publishes each frame to ``hub`` after writing it to ``inner`` (a recording sink) if given."""

    def __init__(self, hub: PreviewHub, inner: Sink | None = None) -> None:
        self.hub, self.inner = hub, inner
        self.path = inner.path if inner is not None else "preview"
        self.frames_written = 0

    def open(self, info: StreamInfo) -> None:
        if self.inner is not None:
            self.inner.open(info)
        self.hub.info = info

    def write(self, frame: Frame) -> None:
        if self.inner is not None:
            self.inner.write(frame)
        self.frames_written += 1
        self.hub.publish(frame)

    def close(self, status: str = "done") -> None:
        try:
            if self.inner is not None:
                self.inner.close(status)
                self.frames_written = self.inner.frames_written
        finally:
            self.hub.end()
