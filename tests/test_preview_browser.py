"""The preview page in real headless Chromium, fed by the real pipeline (dark channel prior on CPU).

The source is a hazy, static test pattern (SMPTE bars lifted towards white, as haze does), so the
dehazed picture is known: the test runs the same model on the same frame and compares the
screenshot's pixels with it. The server binds 0.0.0.0 and the browser gets the token in the URL,
so the page must pass it on to the stream and the statistics for anything to show.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamdehaze.io.sources import open_source

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]
W, H = 160, 120
HAZY = f"lavfi:smptebars=size={W}x{H}:rate=15,lutrgb=r=100+val*0.6:g=100+val*0.6:b=100+val*0.6"

if not os.path.exists(CHROMIUM):
    pytest.skip("needs headless Chromium (Debian package chromium)", allow_module_level=True)


def chromium(tmp: Path, *args: str) -> str:
    profile = tmp / f"profile-{time.monotonic_ns()}"
    out = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The preview of HAZY served on 0.0.0.0 (random token); yields (url via 127.0.0.1, hub, expected images)."""
    from streamdehaze.nets.registry import load_model
    from streamdehaze.pipeline.engine import Engine
    from streamdehaze.preview.session import preview

    model = load_model("dcp", device="cpu")
    src = open_source(HAZY)
    src.open()
    original = src.read().image
    src.close()
    dehazed = Engine(model, "cpu").process(original[None])[0]
    started, state = threading.Event(), {}

    def on_start(pipe, url):
        state["hub"], state["url"] = pipe.sink.hub, url
        started.set()

    def run():
        try:
            preview(HAZY, model, window=False, web="0.0.0.0:0", exit_at_end=True, on_start=on_start)
        except BaseException as err:  # reported by the fixture
            state["error"] = err
            started.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(60) and "error" not in state, state.get("error")
    hub = state["hub"]
    deadline = time.monotonic() + 30
    while hub.frames < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    port, token = re.search(r":(\d+)/\?token=(\S+)$", state["url"]).groups()
    yield f"http://127.0.0.1:{port}/?token={token}", hub, original, dehazed
    hub.apply("quit")
    thread.join(20)
    assert not thread.is_alive() and "error" not in state


def test_screenshot_shows_the_original_and_the_dehazed_frame(page, tmp_path):
    url, hub, original, dehazed = page
    assert np.abs(dehazed.astype(int) - original).mean() > 30  # the two panes are told apart easily
    shot = tmp_path / "preview.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=480,320", url)
    image = cv2.cvtColor(cv2.imread(str(shot)), cv2.COLOR_BGR2RGB)
    assert image.shape == (320, 480, 3)
    left, right = image[:H, :W].astype(int), image[:H, W : 2 * W].astype(int)
    # the MJPEG picture sits at the top-left corner: original left, dehazed right (JPEG-close)
    assert np.abs(left - original).mean() < 6
    assert np.abs(right - dehazed).mean() < 6
    assert np.abs(right - original).mean() > 25
    assert hub.stats()["frames"] > 0


def numbers(dom: str) -> dict[str, str]:
    return dict(re.findall(r'<b id="(\w+)">([^<]*)</b>', dom))


def test_statistics_on_the_page_change_over_time(page, tmp_path):
    url, hub, *_ = page
    first = numbers(chromium(tmp_path, "--virtual-time-budget=2000", "--dump-dom", url))
    time.sleep(1.0)
    second = numbers(chromium(tmp_path, "--virtual-time-budget=2000", "--dump-dom", url))
    assert int(first["updates"]) >= 2 and int(second["updates"]) >= 2  # the page polls /stats repeatedly
    assert 0 < int(first["frames"]) < int(second["frames"])
    assert float(second["fps"]) > 0 and second["model_fps"] != "-"
    assert int(second["dropped"]) >= 0 and int(second["frames"]) <= hub.frames


def test_the_page_without_its_token_shows_nothing(page, tmp_path):
    url, *_ = page
    dom = chromium(tmp_path, "--virtual-time-budget=1000", "--dump-dom", url.split("?")[0])
    assert "stream.mjpg" not in dom and "missing or wrong" in dom
