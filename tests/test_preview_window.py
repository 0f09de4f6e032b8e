"""Preview core and window: composition, keys, controls, snapshots, pacing, and the real window under Xvfb."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest

from streamdehaze.frames import Frame, StreamInfo
from streamdehaze.io.base import Sink
from streamdehaze.io.stills import read_image
from streamdehaze.preview import hub as hub_module
from streamdehaze.preview.hub import Action, PreviewHub, PreviewSink, compose
from streamdehaze.preview.window import KEYS, draw_overlay, key_action, overlay_lines


def solid(rgb, h=40, w=60) -> np.ndarray:
    return np.full((h, w, 3), rgb, np.uint8)


def frame(i: int, original: np.ndarray, dehazed: np.ndarray) -> Frame:
    return Frame(dehazed, i, Fraction(1, 30), i, {"original": original})


# -- composition -------------------------------------------------------------------------------


def test_side_by_side_is_original_then_dehazed():
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (30, 50, 3), dtype=np.uint8) for _ in range(2))
    out = compose(a, b, "side")
    assert out.shape == (30, 100, 3)
    np.testing.assert_array_equal(out[:, :50], a)
    np.testing.assert_array_equal(out[:, 50:], b)


@pytest.mark.parametrize("divider", [0.0, 0.3, 0.5, 1.0])
def test_split_view_takes_original_left_of_the_divider(divider):
    a, b = solid((200, 0, 0), w=100), solid((0, 0, 200), w=100)
    out = compose(a, b, "split", divider)
    x = round(divider * 100)
    assert out.shape == a.shape
    # away from the 2-pixel divider line: original on the left, dehazed on the right
    np.testing.assert_array_equal(out[:, : max(0, x - 1)], a[:, : max(0, x - 1)])
    np.testing.assert_array_equal(out[:, x + 1 :], b[:, x + 1 :])
    assert (out[:, max(0, x - 1) : min(100, x + 1)] == 255).all()


def test_compose_resizes_a_dehazed_image_of_another_size():
    out = compose(solid((10, 20, 30), 40, 60), solid((90, 80, 70), 20, 30), "side")
    assert out.shape == (40, 120, 3)
    assert (out[:, 60:] == (90, 80, 70)).all()
    with pytest.raises(ValueError):
        compose(solid(0), solid(0), "mosaic")


# -- keys and controls -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, action",
    [
        (ord("q"), Action.QUIT),
        (27, Action.QUIT),
        (ord(" "), Action.PAUSE),
        (ord("s"), Action.SNAPSHOT),
        (ord("d"), Action.DEHAZE),
        (ord("t"), Action.TEMPORAL),
        (ord("v"), Action.VIEW),
        (ord("["), Action.DIVIDER_LEFT),
        (ord("]"), Action.DIVIDER_RIGHT),
        (0xFF51, Action.DIVIDER_LEFT),  # X11 Left, as OpenCV's Qt backend reports it under Xvfb
        (0xFF53, Action.DIVIDER_RIGHT),
        (0x250000, Action.DIVIDER_LEFT),  # Windows Left
        (ord("-"), Action.STRENGTH_DOWN),
        (ord("+"), Action.STRENGTH_UP),
        (ord("="), Action.STRENGTH_UP),
        (-1, None),
        (ord("x"), None),
    ],
)
def test_key_codes_map_to_actions(code, action):
    assert key_action(code) is action


def test_every_action_has_a_key():
    assert set(KEYS.values()) == set(Action) - {Action.STRENGTH}  # setting a value: the page's slider


def test_strength_keys_step_and_clip_and_notify():
    hub, seen = PreviewHub(), []
    hub.on_change(lambda field, value: seen.append((field, value)))
    assert hub.apply(Action.STRENGTH_DOWN) == {"strength": 0.9}
    for _ in range(12):
        hub.apply(Action.STRENGTH_DOWN)
    assert hub.controls.strength == 0.0 and hub.apply(Action.STRENGTH_UP) == {"strength": 0.1}
    assert hub.apply(Action.STRENGTH, 1.7) == {"strength": 1.0}  # clipped
    assert seen[0] == ("strength", 0.9) and seen[-1] == ("strength", 1.0)
    with pytest.raises(ValueError, match="value"):
        hub.apply(Action.STRENGTH)
    assert "strength 1.00" in overlay_lines(hub.stats())[1]


def test_hub_actions_toggle_controls_and_notify_listeners():
    hub, seen = PreviewHub(), []
    hub.on_change(lambda field, value: seen.append((field, value)))
    assert hub.apply("pause") == {"paused": True}
    assert hub.apply(Action.PAUSE) == {"paused": False}
    assert hub.apply("dehaze") == {"dehaze": False}
    assert hub.apply("temporal") == {"temporal": False}
    assert hub.apply("view") == {"view": "split"}
    assert hub.apply("view") == {"view": "side"}
    for _ in range(15):
        hub.apply("divider_left")
    assert hub.controls.divider == 0.0
    hub.apply("divider_right")
    assert hub.controls.divider == pytest.approx(0.05)
    assert seen[:3] == [("paused", True), ("paused", False), ("dehaze", False)]
    assert not hub.quit.is_set()
    hub.apply("quit")
    assert hub.quit.is_set()
    with pytest.raises(ValueError):
        hub.apply("explode")


def test_pause_freezes_the_shown_frame_but_keeps_counting():
    hub = PreviewHub()
    hub.publish(frame(0, solid(1), solid(2)))
    hub.apply("pause")
    hub.publish(frame(1, solid(3), solid(4)))
    original, dehazed, index = hub.latest()
    assert index == 0 and original[0, 0, 0] == 1 and dehazed[0, 0, 0] == 2
    assert hub.stats()["frames"] == 2
    hub.apply("pause")
    hub.publish(frame(2, solid(5), solid(6)))
    assert hub.latest()[2] == 2


def test_snapshot_saves_both_images(tmp_path):
    hub = PreviewHub(snapshot_dir=tmp_path / "shots")
    assert hub.apply("snapshot") == {"snapshot": []}  # nothing shown yet
    rng = np.random.default_rng(1)
    a, b = (rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(2))
    hub.publish(frame(7, a, b))
    paths = hub.apply("snapshot")["snapshot"]
    assert [p.endswith(s) for p, s in zip(paths, ("000007-original.png", "000007-dehazed.png"))] == [True, True]
    np.testing.assert_array_equal(read_image(paths[0]), a)
    np.testing.assert_array_equal(read_image(paths[1]), b)


def test_stats_measure_fps_latency_and_merge_run_figures(monkeypatch):
    clock = [100.0]  # the hub's clock, advanced by hand: figures exact whatever the machine's load
    monkeypatch.setattr(hub_module, "time", SimpleNamespace(monotonic=lambda: clock[0], strftime=time.strftime))
    hub = PreviewHub(stats_fn=lambda: {"dropped": 3, "model_fps": 12.5})
    for i in range(11):
        f = frame(i, solid(0), solid(0))
        f.meta["t_read"] = clock[0] - 0.05  # read 50 ms before it is shown
        hub.publish(f)
        clock[0] += 0.02
    clock[0] -= 0.02  # stats at the last frame's time
    s = hub.stats()
    assert s["frames"] == 11 and s["dropped"] == 3 and s["model_fps"] == 12.5
    assert s["fps"] == pytest.approx(50.0)  # 10 intervals of 20 ms
    assert s["latency_ms"] == pytest.approx(50.0)


# -- overlay -----------------------------------------------------------------------------------


def test_overlay_text_and_drawing():
    stats = {"fps": 24.96, "model_fps": 31.0, "latency_ms": 84.2, "dropped": 7, "dehaze": False, "paused": True}
    lines = overlay_lines(stats)
    assert "25.0 fps" in lines[0] and "model 31.0 fps" in lines[0] and "latency 84 ms" in lines[0]
    assert "dropped 7" in lines[0] and "dehaze off" in lines[1] and "PAUSED" in lines[1]
    image = solid((200, 200, 200), 240, 640)
    draw_overlay(image, lines)
    assert (image[-20:] == 200).all()  # the bottom stays untouched
    top = image[:60, :200]
    assert (top == 255).any() and (top < 100).any()  # white text on a darkened box


# -- sink --------------------------------------------------------------------------------------


class ListSink(Sink):
    def __init__(self):
        self.frames, self.status, self.frames_written = [], None, 0

    def open(self, info):
        self.info = info

    def write(self, f):
        self.frames.append(f.index)
        self.frames_written += 1

    def close(self, status="done"):
        self.status = status


def test_preview_sink_records_every_frame_and_publishes():
    hub, inner = PreviewHub(), ListSink()
    sink = PreviewSink(hub, inner)
    sink.open(StreamInfo(60, 40, Fraction(1, 30)))
    for i in range(5):
        sink.write(frame(i, solid(i), solid(10 + i)))
        if i == 1:
            hub.apply("pause")  # pausing the preview never pauses a recording
    sink.close("interrupted")
    assert inner.frames == [0, 1, 2, 3, 4] and inner.status == "interrupted"
    assert sink.frames_written == 5 and hub.finished.is_set() and hub.latest()[2] == 1


# -- the real window under a virtual screen ----------------------------------------------------

CHILD = r"""
import json, sys, time
from fractions import Fraction
import cv2, numpy as np
from streamdehaze.frames import Frame
from streamdehaze.preview.hub import PreviewHub
from streamdehaze.preview.window import PreviewWindow
hub = PreviewHub(snapshot_dir=sys.argv[1])
hub.on_change(lambda f, v: print(json.dumps({f: v}), flush=True))
win = PreviewWindow(hub, title="sdtest")
win.open()
orig = np.full((200, 200, 3), (220, 30, 30), np.uint8)
deh = np.full((200, 200, 3), (30, 30, 220), np.uint8)
i, deadline = 0, time.monotonic() + 600  # only ends a hang: the test quits with q
while win.tick() and time.monotonic() < deadline:
    hub.publish(Frame(deh, i, Fraction(1, 30), i, {"original": orig}))
    i += 1
    if i == 10:
        print(json.dumps({"rect": list(cv2.getWindowImageRect("sdtest"))}), flush=True)
    time.sleep(0.02)
print(json.dumps({"quit": hub.quit.is_set(), "snapshots": [str(p) for p in hub.snapshots]}), flush=True)
win.close()
"""


@pytest.fixture
def xvfb():
    """A virtual screen ``:N`` (1024x768x24) for one test."""
    if not (shutil.which("Xvfb") and shutil.which("xdotool")):
        pytest.skip("needs Xvfb and xdotool (Debian packages xvfb, xdotool)")
    proc = subprocess.Popen(  # -noreset: else the server resets whenever its last client (an xdotool probe)
        # disconnects, and a window opening during the reset fails ("could not load the Qt platform plugin")
        ["Xvfb", "-displayfd", "1", "-screen", "0", "1024x768x24", "-nolisten", "tcp", "-noreset"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        display = f":{proc.stdout.readline().decode().strip()}"
        yield display
    finally:
        proc.terminate()
        proc.wait(5)


def _lines(stream) -> queue.Queue:
    q: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [q.put(json.loads(line)) for line in stream if line.startswith("{")]).start()
    return q


GRAB = r"""
import sys, av
with av.open(sys.argv[1], format="x11grab", options={"video_size": "1024x768"}) as c:
    sys.stdout.buffer.write(next(c.decode(video=0)).to_ndarray(format="rgb24").tobytes())
"""


def _grab(display: str) -> np.ndarray:
    # In a fresh process: PyAV's x11grab crashes in a process that has loaded OpenCV's own X11 libraries.
    out = subprocess.run([sys.executable, "-c", GRAB, display], capture_output=True, timeout=300, check=True).stdout
    return np.frombuffer(out, np.uint8).reshape(768, 1024, 3)


def _remap(env: dict, wid: str) -> None:
    """Unmap and map the window again, as a window manager would.

    Qt (OpenCV's bundled build) sometimes loses a window's first MapNotify when the machine is busy and no
    window manager runs (as under Xvfb); it then never considers the window exposed and paints nothing
    (1 start in 5 to 30 beside two busy processes). A second map is the next MapNotify it sees.
    """
    subprocess.run(["xdotool", "windowunmap", "--sync", wid, "windowmap", "--sync", wid], env=env, check=True)


def test_window_shows_both_images_and_obeys_keys_under_xvfb(xvfb, tmp_path):
    env = {**os.environ, "DISPLAY": xvfb, "QT_LOGGING_RULES": "*.warning=false"}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        events = _lines(child.stdout)
        x, y, w, h = events.get(timeout=300)["rect"]
        assert w >= 400 and h >= 200
        wid = subprocess.run(["xdotool", "search", "--name", "^sdtest$"], env=env, capture_output=True, text=True)
        wid = wid.stdout.split()[-1]
        # below the overlay: original (red) in the left half, dehazed (blue) in the right half; on a loaded
        # machine the first paint can come late, so grab until it shows (or a minute has passed)
        start = time.monotonic()
        remapped = False
        while True:
            time.sleep(0.3)
            screen = _grab(xvfb)
            left, right = screen[y + h - 30, x + w // 4], screen[y + h - 30, x + 3 * w // 4]
            painted = left[0] > 180 and left[2] < 80 and right[2] > 180 and right[0] < 80
            if painted or time.monotonic() > start + 60:
                break
            if not remapped and time.monotonic() > start + 10:
                _remap(env, wid)
                remapped = True
        assert left[0] > 180 and left[2] < 80, left
        assert right[2] > 180 and right[0] < 80, right
        assert screen[y + 5 : y + 40, x + 5 : x + 200].mean() < 100  # overlay: darkened box with text
        subprocess.run(["xdotool", "windowfocus", "--sync", wid], env=env, check=True)
        for key, expected in (("v", {"view": "split"}), ("space", {"paused": True}), ("bracketleft", None)):
            subprocess.run(["xdotool", "key", key], env=env, check=True)
            if expected:
                assert events.get(timeout=120) == expected
        assert events.get(timeout=120) == {"divider": 0.45}
        subprocess.run(["xdotool", "key", "s"], env=env, check=True)
        time.sleep(0.3)
        subprocess.run(["xdotool", "key", "q"], env=env, check=True)
        final = events.get(timeout=120)
        assert final["quit"] is True and len(final["snapshots"]) == 2
        assert (read_image(final["snapshots"][0]) == (220, 30, 30)).all()
        assert child.wait(120) == 0
    finally:
        if child.poll() is None:
            child.kill()


def test_preview_command_runs_the_pipeline_into_a_window_under_xvfb(xvfb, tmp_path):
    env = {**os.environ, "DISPLAY": xvfb, "QT_LOGGING_RULES": "*.warning=false"}
    cmd = [sys.executable, "-c", "from streamdehaze.cli import main; main()", "preview"]
    cmd += ["lavfi:smptebars=size=160x120:rate=15", "--model", "dcp", "--snapshots", str(tmp_path)]
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, wid = time.monotonic() + 600, ""  # a bound on a hang: start-up is slow on a busy machine
        while not wid and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.2)
            search = ["xdotool", "search", "--name", "^streamdehaze preview$"]
            wid = subprocess.run(search, env=env, capture_output=True, text=True).stdout.strip()
        assert wid, child.communicate(timeout=5)[0] if child.poll() is not None else "no window"
        wid = wid.split()[-1]
        start, pane, remapped = time.monotonic(), np.zeros(1), False
        while pane.std() <= 40 and time.monotonic() < start + 300:  # until frames came through the pipeline
            time.sleep(0.5)
            if not remapped and time.monotonic() > start + 30:  # frames flow within seconds once started
                _remap(env, wid)
                remapped = True
            geometry = subprocess.run(["xdotool", "getwindowgeometry", "--shell", wid], env=env, capture_output=True)
            g = dict(line.split("=") for line in geometry.stdout.decode().split())
            x, y, w, h = (int(g[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))
            pane = _grab(xvfb)[y + h // 2 : y + h, x : x + w].astype(int)
        assert pane.std() > 40  # the colour bars' bottom rows (original and dehazed), not an empty window
        subprocess.run(["xdotool", "windowfocus", "--sync", wid], env=env, check=True)
        subprocess.run(["xdotool", "key", "s"], env=env, check=True)
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("snapshot-*.png"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        shots = sorted(tmp_path.glob("snapshot-*.png"))
        assert [p.name.split("-")[-1] for p in shots] == ["dehazed.png", "original.png"]
        subprocess.run(["xdotool", "key", "q"], env=env, check=True)
        output = child.communicate(timeout=300)[0]
        assert child.returncode == 0, output
        assert "shown" in output
    finally:
        if child.poll() is None:
            child.kill()


@pytest.mark.parametrize("first, ok", [("av", False), ("cv2", True)])
def test_a_window_after_pyav_loaded_first_is_refused_not_hung(first, ok):
    # PyAV and opencv-python bundle the same libxcb extensions; loaded by PyAV first, Qt's window hangs.
    code = (
        f"import {first}, av, cv2\n"
        "from streamdehaze.preview.window import check_display\n"
        "try:\n    check_display()\nexcept Exception as err:\n    print(type(err).__name__, err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "DISPLAY": ":99"}, capture_output=True)
    text = out.stdout.decode()
    assert out.returncode == 0
    assert (text == "") if ok else ("import cv2 before av" in text), text


def test_hub_picture_scales_both_images_down_to_a_width():
    hub = PreviewHub()
    rng = np.random.default_rng(2)
    a, b = (rng.integers(0, 256, (100, 200, 3), dtype=np.uint8) for _ in range(2))
    hub.publish(frame(0, a, b))
    version, full = hub.picture()
    assert version == 1 and full.shape == (100, 400, 3)
    _, small = hub.picture(max_width=200)  # side by side: each image to 100 pixels wide
    assert small.shape == (50, 200, 3)
    np.testing.assert_allclose(small[:, :100], a.reshape(50, 2, 100, 2, 3).mean(axis=(1, 3)), atol=1)
    hub.apply("view")
    assert hub.picture(max_width=100)[1].shape == (50, 100, 3)  # split view: one image wide
