"""Preview wiring: real-time source wrapper, queued engine controls, the preview run and run-while-recording."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from fractions import Fraction

import numpy as np
import pytest
import torch
from children import default_sigint
from media import make_clip, pattern_frame, read_index, read_video

from streamdehaze.api import build_pipeline
from streamdehaze.frames import Frame, StreamInfo
from streamdehaze.io.base import Source
from streamdehaze.pipeline.engine import Engine
from streamdehaze.pipeline.speed import SpeedSettings
from streamdehaze.pipeline.temporal_engine import TemporalSettings
from streamdehaze.preview.hub import PreviewHub
from streamdehaze.preview.session import attach_preview, preview
from streamdehaze.preview.source import PreviewSource

OFF = TemporalSettings("off")


class Invert(torch.nn.Module):
    """A stand-in dehazer with a known output: ``1 - x``; optionally slow."""

    name = "invert"

    def __init__(self, delay: float = 0.0):
        super().__init__()
        self.delay = delay

    def forward(self, x):
        time.sleep(self.delay)
        return 1.0 - x


class FakeSource(Source):
    """``n`` frames at ``rate`` fps (a file unless ``live``), read instantly."""

    def __init__(self, n=10, rate=20, live=False):
        super().__init__()
        self.n, self.rate, self.is_live, self.i, self.spec = n, rate, live, 0, "fake"

    def _open(self):
        return StreamInfo(8, 8, Fraction(1, 1000), frame_rate=Fraction(self.rate), frame_count=self.n)

    def _read(self):
        if self.i >= self.n:
            return None
        self.i += 1
        image = np.full((8, 8, 3), self.i, np.uint8)
        return Frame(image, round((self.i - 1) * 1000 / self.rate), Fraction(1, 1000), self.i - 1)

    def _release(self):
        pass


# -- the source wrapper ------------------------------------------------------------------------


def test_realtime_source_plays_a_file_at_its_frame_rate():
    src = PreviewSource(FakeSource(n=11, rate=20))
    assert src.is_live  # so the pipeline drops frames when it falls behind instead of slowing down
    src.open()
    t0 = time.monotonic()
    frames = list(src)
    elapsed = time.monotonic() - t0
    assert [f.index for f in frames] == list(range(11))
    assert elapsed >= 0.45  # 10 intervals of 50 ms: paced (a lower bound: a busy machine only adds to it)
    f = frames[3]
    assert f.meta["original"] is f.image and f.meta["t_read"] >= t0 + 0.15 - 0.01  # not before it was due
    assert [g.meta["t_read"] for g in frames] == sorted(g.meta["t_read"] for g in frames)


def test_live_sources_and_recordings_are_not_paced(monkeypatch):
    waits = []
    monkeypatch.setattr(PreviewSource, "_pace", lambda self, frame: waits.append(frame.index))
    for src in (PreviewSource(FakeSource(50, 5, live=True)), PreviewSource(FakeSource(50, 5), realtime=False)):
        src.open()
        assert len(list(src)) == 50 and not src.paced
    assert waits == []  # never held back to a clock (a paced file would have waited 10 s)
    assert not PreviewSource(FakeSource(), realtime=False).is_live
    src = PreviewSource(FakeSource(3, 5))  # the preview's file: paced
    src.open()
    assert len(list(src)) == 3 and waits == [0, 1, 2]


def test_paused_file_resumes_where_it_stopped_and_quit_ends_it():
    hub = PreviewHub()
    src = PreviewSource(FakeSource(n=100, rate=50), hub)
    src.open()
    assert src.read().index == 0
    hub.apply("pause")
    got: list = []
    reader = threading.Thread(target=lambda: got.append(src.read()))
    reader.start()
    time.sleep(0.3)
    assert reader.is_alive()  # waiting while paused
    hub.apply("pause")
    reader.join(2)
    assert got[0].index == 1  # nothing skipped
    hub.apply("quit")
    assert src.read() is None


def test_pausing_the_preview_never_pauses_a_recording():
    hub = PreviewHub()
    hub.apply("pause")
    src = PreviewSource(FakeSource(n=5), hub, realtime=False)
    src.open()
    assert [f.index for f in src] == [0, 1, 2, 3, 4]


def test_preview_controls_reach_the_engine_only_between_batches():
    from streamdehaze.pipeline.runner import Pipeline
    from streamdehaze.preview.session import _wire

    hub = PreviewHub()
    engine = Engine(Invert(), "cpu", temporal=TemporalSettings("ema"))
    pipe = Pipeline(FakeSource(n=4), engine, None)
    _wire(pipe, hub)
    assert hub.controls.temporal is True and hub.controls.strength == 1.0
    hub.apply("dehaze")
    hub.apply("temporal")
    hub.apply("strength", 0.25)
    assert engine.dehaze and engine.temporal_on and engine.strength == 1.0  # queued, nothing touched yet
    engine.process(np.zeros((1, 8, 8, 3), np.uint8))  # the inference thread's next batch applies them
    assert not engine.dehaze and not engine.temporal_on and engine.strength == 0.25


# -- the preview run ---------------------------------------------------------------------------


def get_json(url: str, path: str) -> dict:
    base, _, query = url.partition("?")
    with urllib.request.urlopen(f"{base.rstrip('/')}{path}{'?' + query if query else ''}", timeout=60) as r:
        return json.loads(r.read())


def test_preview_plays_a_file_in_real_time_and_serves_stats(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", n_frames=20, fps=25)
    seen: dict = {}

    def on_start(pipe, url):
        seen["hub"], seen["url"] = pipe.sink.hub, url

    def on_progress(p):
        if p.written >= 10 and "stats" not in seen:
            seen["stats"] = get_json(seen["url"], "/stats")

    t0 = time.monotonic()
    stats = preview(
        str(clip), Invert(), window=False, web="127.0.0.1:0", exit_at_end=True, on_start=on_start,
        on_progress=on_progress, temporal=OFF,
    )  # fmt: skip
    elapsed = time.monotonic() - t0
    assert stats.status == "done" and stats.frames_written == 20 and stats.dropped == 0
    assert elapsed > 0.7  # 20 frames at 25 fps: paced, not as fast as possible
    s = seen["stats"]
    assert s["frames"] >= 10 and s["fps"] > 5 and s["model_fps"] > 0 and s["dropped"] == 0
    assert s["latency_ms"] is not None and s["temporal_available"] is False  # smoothing is off
    original, dehazed, index = seen["hub"].latest()
    assert index == 19
    assert read_index(original) == 19 and np.abs(original - pattern_frame(19).astype(int)).mean() < 4  # decoded
    np.testing.assert_array_equal(dehazed, 255 - original)  # dehazed by the model


def test_preview_drops_frames_when_inference_falls_behind_a_live_source():
    seen: dict = {}
    stats = preview(
        "lavfi:testsrc2=size=64x48:rate=30", Invert(delay=0.1), window=False, exit_at_end=True, max_frames=30,
        on_start=lambda pipe, url: seen.update(hub=pipe.sink.hub),
    )  # fmt: skip
    assert stats.frames_read == 30 and stats.dropped > 5
    assert stats.frames_written + stats.dropped == 30
    assert seen["hub"].stats()["dropped"] == stats.dropped


def test_switching_dehazing_off_shows_the_original():
    seen: dict = {}

    def on_progress(p):
        if p.written >= 3 and not seen.get("off"):
            seen["off"] = seen["hub"].apply("dehaze")

    preview(
        "lavfi:testsrc2=size=64x48:rate=30", Invert(), window=False, exit_at_end=True, max_frames=20,
        on_start=lambda pipe, url: seen.update(hub=pipe.sink.hub), on_progress=on_progress, temporal=OFF,
    )  # fmt: skip
    assert seen["off"] == {"dehaze": False}
    original, dehazed, _ = seen["hub"].latest()
    np.testing.assert_array_equal(dehazed, original)


def test_the_temporal_switch_turns_the_smoothing_off_and_on():
    seen: dict = {}

    def on_start(pipe, url):
        seen["hub"], seen["engine"] = pipe.sink.hub, pipe.engine

    def on_progress(p):
        hub, engine = seen["hub"], seen["engine"]
        if p.written >= 2 and "off" not in seen:
            seen["before"] = engine.temporal_on
            seen["off"] = hub.apply("temporal")
        elif "off" in seen and p.written >= seen.setdefault("at", p.written) + 2:
            seen.setdefault("after", engine.temporal_on)  # applied by the inference thread by now

    preview(
        "lavfi:testsrc2=size=64x48:rate=30", Invert(), window=False, exit_at_end=True, max_frames=10,
        on_start=on_start, on_progress=on_progress, temporal=TemporalSettings("ema"),
    )  # fmt: skip
    assert seen["hub"].stats()["temporal_available"] is True
    assert seen["before"] is True and seen["off"] == {"temporal": False} and seen["after"] is False


def test_the_strength_control_changes_the_output_between_batches():
    seen: dict = {"frames": []}

    def on_progress(p):
        hub = seen["hub"]
        latest = hub.latest()
        if latest is not None and (not seen["frames"] or seen["frames"][-1][2] != latest[2]):
            seen["frames"].append(latest)
        if p.written >= 3 and "set" not in seen:
            seen["set"] = hub.apply("strength", 0.0)

    preview(
        "lavfi:testsrc2=size=64x48:rate=30", Invert(), window=False, exit_at_end=True, max_frames=20,
        on_start=lambda pipe, url: seen.update(hub=pipe.sink.hub), on_progress=on_progress, temporal=OFF,
    )  # fmt: skip
    assert seen["set"] == {"strength": 0.0}
    first_original, first_dehazed, _ = seen["frames"][0]
    np.testing.assert_array_equal(first_dehazed, 255 - first_original)  # full strength: the model's output
    original, dehazed, index = seen["hub"].latest()
    assert index == 19 and np.abs(dehazed.astype(int) - original.astype(int)).max() <= 1  # strength 0: the input


def test_a_missing_window_screen_is_a_clear_error(monkeypatch):
    from streamdehaze.errors import InputError

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(InputError, match="--web"):
        preview("lavfi:testsrc2=size=64x48:rate=30", Invert(), window=True, max_frames=5)


# -- previewing a recording --------------------------------------------------------------------


def test_recording_with_a_preview_keeps_every_frame_and_the_output(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", n_frames=12, fps=25)
    hub = PreviewHub()
    # guard off: Invert is no dehazer, and its result must come back exactly
    pipe = build_pipeline(clip, tmp_path / "out.mkv", Invert(), batch=4, speed=SpeedSettings(guard="off"))
    attach_preview(pipe, hub)
    hub.apply("pause")  # pausing or switching the preview changes neither the speed nor the recording
    hub.apply("pause")
    hub.apply("dehaze")
    stats = pipe.run()
    assert stats.frames_written == 12
    assert hub.frames == 12 and hub.finished.is_set()
    original, dehazed, index = hub.latest()
    assert index == 11 and (dehazed == original).all()  # shown without dehazing, as asked
    out = read_video(tmp_path / "out.mkv")
    assert len(out) == 12
    # recorded dehazed (255 - x: ~100 levels from the original); the tolerance covers 4:2:0 at this tiny
    # pattern's sharp edges and PyAV's fast conversion reading back what io/colour.py converted exactly
    assert np.abs(out[-1][2].astype(int) - (255 - original.astype(int))).mean() < 5


def test_quitting_the_preview_ends_a_recording_cleanly(tmp_path):
    hub = PreviewHub()
    pipe = build_pipeline("lavfi:testsrc2=size=64x48:rate=30", tmp_path / "rec.mkv", Invert(), batch=1)
    attach_preview(pipe, hub)

    def on_progress(p):
        if p.written >= 10:
            hub.apply("quit")

    stats = pipe.run(on_progress=on_progress)
    assert stats.status == "done" and 10 <= stats.frames_written < 30
    assert len(read_video(tmp_path / "rec.mkv")) == stats.frames_written


class LockstepLive(Source):
    """A live source of ``n`` noise frames (each JPEG of the preview is larger than the socket buffers)
    that reads frame i only once frame i - 1 was published to ``hub``, and frame 1 only once ``web``
    encoded a picture for its client. So no frame is ever dropped for the source's sake, and every
    frame after the first goes through the pipeline while that client is stuck in its first write.
    A pipeline that waited on the client would stop publishing: the read gives up after ``patience``
    seconds (the recording then fails), a bound on a hang, not a measure of speed."""

    is_live = True

    def __init__(self, n, hub, web, size=(480, 640), patience=120.0):
        super().__init__()
        self.n, self.hub, self.web, self.size, self.patience = n, hub, web, size, patience
        self.i, self.spec = 0, "lockstep"
        self.rng = np.random.default_rng(0)

    def _open(self):
        h, w = self.size
        return StreamInfo(w, h, Fraction(1, 1000), frame_rate=Fraction(30), is_live=True)

    def _ready(self):
        return self.hub.frames >= self.i and self.web.encoded >= 1

    def _read(self):
        if self.i >= self.n:
            return None
        deadline = time.monotonic() + self.patience
        while self.i and not self._ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"frame {self.i - 1} was never published: the pipeline waits on the client")
            time.sleep(0.005)
        image = self.rng.integers(0, 256, (*self.size, 3), dtype=np.uint8)
        self.i += 1
        return Frame(image, round((self.i - 1) * 1000 / 30), Fraction(1, 1000), self.i - 1)

    def _release(self):
        pass


def test_a_client_that_never_reads_does_not_slow_a_live_recording(tmp_path):
    """The pipeline never waits on a preview client: with one stuck in a write for the whole recording
    (and allowed to stay so for an hour), every frame is recorded and published, and the client is
    simply skipped. Counted, not timed: the load on the machine cannot change the outcome."""
    from streamdehaze.io.sinks import open_sink
    from streamdehaze.pipeline.runner import Pipeline
    from streamdehaze.preview.web import WebPreview

    n, hub = 24, PreviewHub()
    with WebPreview(hub, port=0, write_timeout=3600.0) as web:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", web.port))
        stalled.sendall(f"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1:{web.port}\r\n\r\n".encode())
        out = tmp_path / "rec.mkv"
        sink = open_sink(str(out), preset="ultrafast")
        pipe = Pipeline(LockstepLive(n, hub, web), Engine(Invert(), "cpu"), sink, batch=1)
        attach_preview(pipe, hub)
        try:
            stats = pipe.run()
            clients, encoded = web.clients, web.encoded
        finally:
            stalled.close()
    assert stats.status == "done" and stats.frames_written == n and stats.dropped == 0
    assert hub.frames == n and len(read_video(out)) == n  # every frame shown and recorded
    assert clients == 1  # the stuck client was still connected: nothing had to drop it for the run to go on
    assert 1 <= encoded <= 2  # it was handed a picture (the source saw to that) and then skipped:
    # its first write never completed, so no further picture was encoded for it


# -- command line ------------------------------------------------------------------------------


@pytest.fixture
def small_clip(tmp_path):
    return make_clip(tmp_path / "in.mp4", n_frames=10, fps=25)


@pytest.mark.parametrize(
    "args, message",
    [
        (["preview", "IN", "--token", "t"], "--token applies to the web page"),
        (["preview", "IN", "--no-window"], "--no-window without --web"),
        (["preview", "IN"], "no screen"),
        (["preview", "IN", "--web", "host:port"], "--web 'host:port'"),
        (["run", "IN", "-o", "OUT", "--token", "t"], "--token applies to the web page"),
        (["run", "IN", "-o", "OUT", "--preview"], "no screen"),
    ],
)
def test_cli_rejects_meaningless_preview_options(args, message, small_clip, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from streamdehaze.cli import main

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    out = tmp_path / "out.mkv"
    args = [str(small_clip) if a == "IN" else str(out) if a == "OUT" else a for a in args]
    result = CliRunner().invoke(main, [*args, "--model", "dcp"])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not out.exists()


def test_cli_preview_on_the_web_until_the_end(small_clip):
    from click.testing import CliRunner

    from streamdehaze.cli import main

    result = CliRunner().invoke(main, ["preview", str(small_clip), "--model", "dcp", "--web", "0", "--exit-at-end"])
    assert result.exit_code == 0, result.output
    assert "preview page: http://127.0.0.1:" in result.output and "token" not in result.output
    assert "shown 10 frames" in result.output or "dropped" in result.output


def test_cli_run_with_a_web_preview_records_every_frame(small_clip, tmp_path):
    from click.testing import CliRunner

    from streamdehaze.cli import main

    out = tmp_path / "out.mkv"
    args = ["run", str(small_clip), "-o", str(out), "--model", "dcp", "--web", "0.0.0.0:0", "--token", "abc"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "?token=abc" in result.output and "anyone with this URL" in result.output
    assert len(read_video(out)) == 10


def test_ctrl_c_while_a_file_is_paused_stops_at_once(tmp_path):
    import re
    import signal
    import subprocess
    import sys

    clip = make_clip(tmp_path / "in.mp4", n_frames=100, fps=25)
    cmd = [sys.executable, "-c", "from streamdehaze.cli import main; main()", "preview", str(clip)]
    child = subprocess.Popen(
        [*cmd, "--model", "dcp", "--web", "127.0.0.1:0", "--temporal", "off"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=default_sigint,  # as at a terminal, even under `pytest &`
    )  # fmt: skip
    try:
        for line in child.stdout:
            if m := re.search(r"http://127\.0\.0\.1:(\d+)/", line):
                break
        port = m[1]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/control", b'{"action": "pause"}', {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as r:
            assert json.loads(r.read()) == {"paused": True}
        deadline = time.monotonic() + 300  # until the pipeline runs (its figures are in /stats): Ctrl-C mid-run
        while "read" not in get_json(f"http://127.0.0.1:{port}/", "/stats") and time.monotonic() < deadline:
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        # a reader stuck in the pause would outlast the pipeline's join timeout: then the run fails
        # ("threads did not stop", exit 1), it does not exit 130 (the bound below only ends a hang)
        assert child.wait(300) == 130
        output = child.stdout.read()
        assert "did not stop" not in output and "still busy" not in output, output
    finally:
        if child.poll() is None:
            child.kill()


def test_cli_preview_with_flip_average_runs_the_mirrored_network(small_clip):
    from click.testing import CliRunner

    from streamdehaze.cli import main
    from streamdehaze.preview.session import build_preview_pipeline

    for on in (False, True):  # the flag reaches the network the engine runs
        pipe = build_preview_pipeline(str(small_clip), PreviewHub("."), "aecrnet", device="cpu", flip_average=on)
        assert pipe.engine.model.flip_average is on
    args = ["preview", str(small_clip), "-d", "cpu", "--flip-average", "--web", "0", "--exit-at-end"]
    args += ["--max-frames", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "with aecrnet (flip average) on cpu" in result.output
