"""The OpenCV preview window: original and dehazed side by side (or split), statistics overlay, keys.

OpenCV's GUI must be driven from one thread; :meth:`PreviewWindow.tick` is meant to be called
often (e.g. as the pipeline's ``on_progress`` callback, every 20 ms) from the main thread. It
shows the newest frame of a :class:`~streamdehaze.preview.hub.PreviewHub`, refreshes the overlay
and turns key presses into actions with :func:`key_action`, a pure function of the key code.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import cv2
import numpy as np

from ..errors import InputError, StreamDehazeError
from .hub import Action, PreviewHub

# Key code (as returned by cv2.waitKeyEx) -> action. Arrow keys differ between GUI backends.
KEYS: dict[int, Action] = {
    ord("q"): Action.QUIT,
    ord("Q"): Action.QUIT,
    27: Action.QUIT,  # Esc
    ord(" "): Action.PAUSE,
    ord("p"): Action.PAUSE,
    ord("s"): Action.SNAPSHOT,
    ord("d"): Action.DEHAZE,
    ord("t"): Action.TEMPORAL,
    ord("v"): Action.VIEW,
    ord("["): Action.DIVIDER_LEFT,
    ord("]"): Action.DIVIDER_RIGHT,
    ord("-"): Action.STRENGTH_DOWN,
    ord("+"): Action.STRENGTH_UP,
    ord("="): Action.STRENGTH_UP,  # "+" without shift on most layouts
    0x250000: Action.DIVIDER_LEFT,  # Windows / Qt left arrow
    0x270000: Action.DIVIDER_RIGHT,  # Windows / Qt right arrow
    0xFF51: Action.DIVIDER_LEFT,  # X11 keysym Left (GTK)
    0xFF53: Action.DIVIDER_RIGHT,  # X11 keysym Right (GTK)
    0x1000012: Action.DIVIDER_LEFT,  # Qt::Key_Left
    0x1000014: Action.DIVIDER_RIGHT,  # Qt::Key_Right
}
HELP = "q quit  space pause  s snapshot  d dehaze  t temporal  - + strength  v view  [ ] divider"


def key_action(code: int) -> Action | None:
    """The action for a key code from ``cv2.waitKey``/``waitKeyEx`` (-1: no key → None)."""
    return KEYS.get(code)


def _fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def overlay_lines(stats: dict[str, Any]) -> list[str]:
    """The overlay's text for ``PreviewHub.stats()``: rates, latency, drops, then the controls."""
    on = {True: "on", False: "off"}
    first = (
        f"{_fmt(stats.get('fps'))} fps   model {_fmt(stats.get('model_fps'))} fps   "
        f"latency {_fmt(stats.get('latency_ms'), ' ms', 0)}   dropped {stats.get('dropped', 0)}"
    )
    temporal = on[stats.get("temporal", False)] if stats.get("temporal_available", True) else "n/a"
    strength = f"{stats.get('strength', 1.0):.2f}" if stats.get("strength_available", True) else "n/a"
    second = (
        f"dehaze {on[stats.get('dehaze', True)]}   temporal {temporal}   strength {strength}   "
        f"view {stats.get('view', 'side')}"
    )
    if stats.get("paused"):
        second += "   PAUSED"
    return [first, second, HELP]


def draw_overlay(image: np.ndarray, lines: list[str], scale: float = 0.5) -> np.ndarray:
    """Draw ``lines`` on a darkened box in the top-left corner of ``image`` (any channel order, in place)."""
    font, thick, pad = cv2.FONT_HERSHEY_SIMPLEX, 1, 6
    sizes = [cv2.getTextSize(t, font, scale, thick)[0] for t in lines]
    line_h = max(h for _, h in sizes) + 8
    box_w = min(image.shape[1], max(w for w, _ in sizes) + 2 * pad)
    box_h = min(image.shape[0], line_h * len(lines) + pad)
    roi = image[:box_h, :box_w]
    roi[:] = (roi.astype(np.uint16) * 2 // 5).astype(np.uint8)  # 40% brightness behind the text
    for i, text in enumerate(lines):
        cv2.putText(image, text, (pad, pad + (i + 1) * line_h - 6), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return image


def check_display() -> None:
    """Raise when a window cannot be opened: no screen (Qt would abort the process), or PyAV's X11 libraries.

    The PyAV and opencv-python wheels bundle the same libxcb extension libraries under the same
    names; whichever package loads first provides them. When PyAV came first, OpenCV's Qt window
    runs them against a second libxcb and hangs in ``namedWindow``, so import cv2 before av.
    """
    if not sys.platform.startswith("linux"):
        return
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise InputError(
            "no screen to open a preview window on (DISPLAY is not set); use --web [HOST:]PORT to preview "
            "in a browser, or run under a desktop session / xvfb-run"
        )
    try:
        with open("/proc/self/maps") as maps:
            clash = any("av.libs/libxcb-shape" in line for line in maps)
    except OSError:
        clash = False
    if clash:
        raise StreamDehazeError(
            "cannot open an OpenCV window in this process: PyAV was imported before OpenCV and its bundled "
            "X11 libraries would hang the window; import cv2 before av (the streamdehaze commands do)"
        )


class PreviewWindow:
    """An OpenCV window on ``hub``; call :meth:`tick` regularly from one thread, :meth:`close` at the end.

    ``max_width``/``min_width``: pictures (side by side doubles the width) are scaled into this range.
    Dragging with the left mouse button moves the split view's divider.
    """

    def __init__(
        self, hub: PreviewHub, title: str = "streamdehaze preview", max_width: int = 1600, min_width: int = 640
    ) -> None:
        self.hub, self.title, self.max_width, self.min_width = hub, title, max_width, min_width
        self.is_open = False
        self.shown = 0  # pictures shown
        self._version = -1
        self._refreshed = 0.0
        self._width = 1
        self._shape: tuple[int, ...] | None = None

    def open(self) -> None:
        check_display()
        fonts = "/usr/share/fonts/truetype/dejavu"
        if os.path.isdir(fonts):
            os.environ.setdefault("QT_QPA_FONTDIR", fonts)  # OpenCV's bundled Qt ships no fonts
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
            cv2.setMouseCallback(self.title, self._on_mouse)
        except cv2.error as err:
            raise InputError(f"cannot open a preview window: {str(err).strip().splitlines()[-1]}; use --web") from None
        self.is_open = True

    def render(self) -> np.ndarray | None:
        """The BGR picture to show now (scaled, with the overlay), or None before the first frame."""
        _, picture = self.hub.picture(self.max_width)
        if picture is None:
            return None
        h, w = picture.shape[:2]
        if w < self.min_width:  # small feeds are enlarged so the overlay fits
            size = (self.min_width, max(1, round(h * self.min_width / w)))
            picture = cv2.resize(picture, size, interpolation=cv2.INTER_LINEAR)
        image = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
        self._width = image.shape[1]
        return draw_overlay(image, overlay_lines(self.hub.stats()))

    def tick(self, *_: Any) -> bool:
        """Show the newest frame (overlay refreshed 4 times a second), handle keys; False once quitting."""
        if not self.is_open:
            return False
        now = time.monotonic()
        if self.hub.version != self._version or now - self._refreshed > 0.25:
            self._version = self.hub.version
            image = self.render()
            if image is not None:
                if image.shape != self._shape:  # fit the window to the picture (first frame, view change)
                    self._shape = image.shape
                    cv2.resizeWindow(self.title, image.shape[1], image.shape[0])
                cv2.imshow(self.title, image)
                self.shown += 1
                self._refreshed = now
        action = key_action(cv2.waitKeyEx(1))
        if action is not None:
            self.hub.apply(action)
        elif self.shown and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            self.hub.apply(Action.QUIT)  # the user closed the window
        return not self.hub.quit.is_set()

    def _on_mouse(self, event: int, x: int, y: int, flags: int, _param: Any) -> None:
        dragging = event == cv2.EVENT_MOUSEMOVE and flags & cv2.EVENT_FLAG_LBUTTON
        if self.hub.controls.view == "split" and (event == cv2.EVENT_LBUTTONDOWN or dragging):
            self.hub.set_divider(x / max(1, self._width))

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:
                pass
