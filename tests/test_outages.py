"""Live recordings that survive an outage: a webcam that stops delivering (a fake device behind
OpenCV's VideoCapture interface, read by the real WebcamSource) and a real GStreamer RTSP server
stopped with SIGSTOP, through ``streamdehaze run``; a budget (``--reconnect-for``) that runs out
ends the run with one clear error and a playable file. No wall-clock assertions beyond generous
bounds: the stalls are driven by frame counts, not by timing the run."""

from __future__ import annotations

import threading
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from media import pattern_frame, read_index, read_video

from streamdehaze.cli import main
from streamdehaze.errors import SourceError
from streamdehaze.frames import Frame, StreamInfo
from streamdehaze.io.base import LIVE_TIME_BASE
from streamdehaze.io.sources import RtspSource, WebcamSource, open_source
from streamdehaze.pipeline.runner import Pipeline

CAMERA = "webcam:93"  # no such device: WebcamSource falls back to (our fake) OpenCV


class FakeCamera:
    """A camera behind ``cv2.VideoCapture``: pattern frames at ``fps`` (index in the picture), and
    after ``stall_after`` frames it hangs: reads block (as a stuck USB camera's do) and a reopened
    capture delivers nothing, until :meth:`resume` (called by itself after ``stall_for`` seconds
    from the first blocked read, or by the test)."""

    def __init__(self, fps: float = 25.0, stall_after: int | None = None, stall_for: float | None = None) -> None:
        self.fps, self.stall_after, self.stall_for = fps, stall_after, stall_for
        self.delivered = 0
        self.opened = 0
        self.running = threading.Event()
        self.running.set()
        self._lock = threading.Lock()

    def capture(self, index: int) -> FakeCapture:
        self.opened += 1
        return FakeCapture(self)

    def resume(self) -> None:
        self.running.set()

    def next_frame(self, released: threading.Event) -> np.ndarray | None:
        time.sleep(1 / self.fps)
        with self._lock:
            if self.stall_after is not None and self.delivered == self.stall_after:
                self.running.clear()  # the stall starts now (once)
                self.stall_after = None
                if self.stall_for is not None:
                    threading.Timer(self.stall_for, self.resume).start()
        while not self.running.wait(0.01):
            if released.is_set():
                return None
        with self._lock:
            i, self.delivered = self.delivered, self.delivered + 1
        return np.ascontiguousarray(pattern_frame(i % 256, (64, 48))[..., ::-1])  # BGR, as OpenCV gives


class FakeCapture:
    def __init__(self, camera: FakeCamera) -> None:
        self.camera = camera
        self.released = threading.Event()

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return not self.released.is_set()

    def get(self, prop: int) -> float:
        return self.camera.fps if prop == cv2.CAP_PROP_FPS else 0.0

    def read(self):
        image = None if self.released.is_set() else self.camera.next_frame(self.released)
        return (image is not None), image

    def release(self) -> None:
        self.released.set()


@pytest.fixture
def camera(monkeypatch):
    made: list[FakeCamera] = []

    def make(**kwargs) -> FakeCamera:
        cam = FakeCamera(**kwargs)
        monkeypatch.setattr(cv2, "VideoCapture", cam.capture)
        made.append(cam)
        return cam

    yield make
    for cam in made:
        cam.resume()  # unblock reads left waiting in helper threads


def check_playable(path: Path, frames_written: int) -> list[float]:
    """One decodable video holding every written frame, timestamps strictly increasing; its times (s)."""
    frames = read_video(path)
    assert len(frames) == frames_written > 0
    times = [float(pts * tb) for pts, tb, _ in frames]
    assert all(b > a for a, b in zip(times, times[1:])), times
    return times


def wrote(output: str) -> int:
    import re

    m = re.search(r"wrote (\d+) frames", output)
    assert m, output
    return int(m.group(1))


# -- the webcam source -----------------------------------------------------------------------------
def test_a_webcam_that_stops_delivering_is_reopened_and_frames_continue(camera):
    cam = camera(stall_after=8, stall_for=1.5)
    source = open_source(CAMERA, timeout=0.5)
    assert isinstance(source, WebcamSource)
    source.open()
    try:
        frames = [source.read() for _ in range(20)]
    finally:
        source.close()
    assert source.backend == "OpenCV" and cam.opened >= 2  # the device was opened again
    assert [f.index for f in frames] == list(range(20))
    seen = [read_index(f.image) for f in frames]
    # in camera order, none twice (a read abandoned in the stuck driver may take a frame with it)
    assert seen[:8] == list(range(8)) and all(b > a for a, b in zip(seen, seen[1:]))
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in zip(pts, pts[1:]))
    gaps = np.diff(pts) * float(LIVE_TIME_BASE)
    assert int(np.argmax(gaps)) == 7 and gaps.max() > 1.0  # the stall, between frames 7 and 8, kept as a gap
    assert len(source.outages) == 1 and source.outages[0].ended is not None and source.gap_s > 1.0


def test_a_webcam_stalled_past_the_budget_raises_a_clear_error(camera):
    camera(stall_after=5)  # never comes back by itself
    source = open_source(CAMERA, timeout=0.5, reconnect_for=0.5)
    source.open()
    try:
        with pytest.raises(SourceError, match="gave up reconnecting") as err:
            for _ in range(100):
                source.read()
    finally:
        source.close()
    assert "\n" not in str(err.value) and CAMERA in str(err.value)


# -- the pipeline ----------------------------------------------------------------------------------
class OutageSource:
    """A live source that delivers ``n`` frames, then waits out an outage until it is closed."""

    is_live = True

    def __init__(self, n: int) -> None:
        self.n, self.i = n, 0
        self.closed = threading.Event()
        self.outages: list = []

    def open(self) -> StreamInfo:
        return StreamInfo(12, 8, LIVE_TIME_BASE, Fraction(25), is_live=True)

    def read(self) -> Frame | None:
        if self.i >= self.n:
            from streamdehaze.io.reconnect import Outage

            self.outages = [Outage("stalled", time.monotonic(), time.monotonic())]
            self.closed.wait(30)  # reconnecting, until close() (as RtspSource/WebcamSource do)
            return None
        time.sleep(0.01)
        self.i += 1
        return Frame(np.full((8, 12, 3), self.i, np.uint8), 3600 * self.i, LIVE_TIME_BASE, self.i - 1)

    def close(self) -> None:
        self.closed.set()


class ListSink:
    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.status = None

    @property
    def frames_written(self) -> int:
        return len(self.frames)

    def open(self, info) -> None:
        pass

    def write(self, frame: Frame) -> None:
        self.frames.append(frame)

    def close(self, status: str = "done") -> None:
        self.status = status


def test_ctrl_c_during_an_outage_keeps_the_recording():
    """The decode thread waits in a reconnecting read; stopping must cut it short, not time out as stuck."""
    import torch

    source, sink = OutageSource(6), ListSink()
    pipe = Pipeline(source, torch.nn.Identity(), sink, batch=2, join_timeout=5.0)

    def progress(p):
        if p.written + p.dropped >= 6:  # everything before the outage went through
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipe.run(on_progress=progress, interval=0.01)
    assert sink.status == "interrupted" and pipe.stats.status == "interrupted"
    assert len(sink.frames) + pipe.stats.dropped == 6 and len(sink.frames) > 0
    assert source.closed.is_set() and pipe.stats.outages == 1 and pipe.stats.gap_s > 0


# -- streamdehaze run ------------------------------------------------------------------------------
def run_cli(args: list[str]):
    return CliRunner().invoke(main, ["run", *args, "--model", "dcp", "--temporal", "off", "--batch", "1"])


def test_run_from_a_webcam_goes_on_after_it_stops_delivering(camera, tmp_path):
    camera(stall_after=10, stall_for=2.0)
    out = tmp_path / "cam.mp4"
    result = run_cli([CAMERA, "-o", str(out), "--timeout", "0.5", "--max-frames", "40"])
    assert result.exit_code == 0, result.output
    assert "lost webcam:93" in result.output and "is back after" in result.output  # a line per outage
    assert re_search(r"1 source outage \((\d+\.\d) s without frames\)", result.output) > 1.0  # gap in the summary
    n = wrote(result.output)
    times = check_playable(out, n)
    steps = np.diff(times)
    assert steps.max() > 1.0 and int(np.argmax(steps)) < len(steps) - 1  # the stall, then frames after it


def test_run_from_a_webcam_ends_with_a_clear_error_when_the_budget_runs_out(camera, tmp_path):
    camera(stall_after=10)
    out = tmp_path / "cam.mp4"
    args = [CAMERA, "-o", str(out), "--timeout", "0.5", "--reconnect-for", "1"]
    result = run_cli(args)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: lost webcam:93") and "gave up reconnecting" in lines[0]
    assert "interrupted: wrote" in result.output
    check_playable(out, wrote(result.output))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam.mp4"]  # no temporary left behind


class CountingReads:
    """Patches RtspSource.read to set ``reached`` once ``n`` frames were read (the run's own progress)."""

    def __init__(self, monkeypatch, n: int) -> None:
        self.count, self.n, self.reached = 0, n, threading.Event()
        original = RtspSource.read

        def read(source):
            frame = original(source)
            if frame is not None:
                self.count += 1
                if self.count >= self.n:
                    self.reached.set()
            return frame

        monkeypatch.setattr(RtspSource, "read", read)


def pause_after(server, reads: CountingReads, seconds: float | None) -> threading.Thread:
    """SIGSTOP ``server`` once ``reads`` reached its count; SIGCONT after ``seconds`` (None: at the end)."""

    def run():
        if reads.reached.wait(120):
            server.pause()
            if seconds is not None:
                time.sleep(seconds)
                server.resume()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.rtsp
def test_run_from_rtsp_goes_on_after_a_3s_stall(rtsp_server, monkeypatch, tmp_path):
    reads = CountingReads(monkeypatch, 8)
    pauser = pause_after(rtsp_server, reads, 3.0)
    out = tmp_path / "rec.mp4"
    result = run_cli([rtsp_server.url, "-o", str(out), "--timeout", "1", "--max-frames", "45"])
    pauser.join(30)
    assert result.exit_code == 0, result.output
    assert "lost rtsp://" in result.output and "is back after" in result.output
    assert re_search(r"1 source outage \((\d+\.\d) s without frames\)", result.output) > 1.5
    n = wrote(result.output)
    times = check_playable(out, n)  # one file, every frame, monotonic timestamps
    steps = np.diff(times)
    assert steps.max() > 1.5 and int(np.argmax(steps)) < len(steps) - 1  # the stall, then frames after it


@pytest.mark.rtsp
def test_run_from_rtsp_ends_with_a_clear_error_when_the_budget_runs_out(rtsp_server, monkeypatch, tmp_path):
    reads = CountingReads(monkeypatch, 5)
    pauser = pause_after(rtsp_server, reads, None)  # stopped until the end of the test
    out = tmp_path / "rec.mp4"
    try:
        result = run_cli([rtsp_server.url, "-o", str(out), "--timeout", "1", "--reconnect-for", "1"])
    finally:
        pauser.join(30)
        rtsp_server.resume()
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: lost rtsp://") and "gave up reconnecting" in lines[0]
    assert "interrupted: wrote" in result.output
    check_playable(out, wrote(result.output))  # playable up to the last frame
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.mp4"]


def re_search(pattern: str, text: str) -> float:
    import re

    m = re.search(pattern, " ".join(text.split()))  # the console wraps long lines
    assert m, text
    return float(m.group(1))


# -- streamdehaze preview --------------------------------------------------------------------------
def test_preview_goes_on_after_a_webcam_stall(camera):
    camera(stall_after=10, stall_for=1.5)
    args = ["preview", CAMERA, "--model", "dcp", "--web", "0", "--exit-at-end", "--timeout", "0.5"]
    result = CliRunner().invoke(main, [*args, "--max-frames", "30"])
    assert result.exit_code == 0, result.output
    assert "lost webcam:93" in result.output and "is back after" in result.output
    assert re_search(r"1 source outage \((\d+\.\d) s without frames\)", result.output) > 1.0


def test_preview_reconnect_for_gives_up_with_a_clear_error(camera):
    from streamdehaze.preview.session import preview

    camera(stall_after=10)
    with pytest.raises(SourceError, match="gave up reconnecting"):
        preview(CAMERA, "dcp", device="cpu", window=False, exit_at_end=True, timeout=0.5, reconnect_for=0.5)
