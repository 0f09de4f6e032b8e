"""Pipeline threading: frames in == frames out, order, backpressure, errors, interrupts.

Uses in-test fake sources and sinks (the source/sink contract of ``streamdehaze.io``) and a model
whose output is known exactly (the negative image), so every frame can be checked.
"""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from streamdehaze.errors import DecodeError, EncodeError, ModelError
from streamdehaze.frames import Frame, StreamInfo
from streamdehaze.pipeline.runner import Pipeline
from streamdehaze.pipeline.stage import END, BoundedQueue, Empty, Full

TB = Fraction(1, 90000)


def pipeline_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("streamdehaze-")]


class Negative(nn.Module):
    """``(B, 3, H, W)`` in [0, 1] → ``1 - x``; records batch sizes; optional delay and failure."""

    def __init__(self, delay: float = 0.0, fail_at: int | None = None) -> None:
        super().__init__()
        self.sizes: list[int] = []
        self.delay, self.fail_at = delay, fail_at

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fail_at is not None and len(self.sizes) == self.fail_at:
            raise ModelError("model exploded")
        self.sizes.append(x.shape[0])
        time.sleep(self.delay)
        return 1.0 - x


def make_image(i: int, h: int = 8, w: int = 12) -> np.ndarray:
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


class FakeSource:
    """``n`` random frames, pts 3003*i; optionally live, paced, or failing at frame ``fail_at``."""

    def __init__(self, n: int, live: bool = False, interval: float = 0.0, fail_at: int | None = None) -> None:
        self.n, self.is_live, self.interval, self.fail_at = n, live, interval, fail_at
        self.i = 0
        self.closed = False

    def open(self) -> StreamInfo:
        return StreamInfo(12, 8, TB, Fraction(30000, 1001), None if self.is_live else self.n, is_live=self.is_live)

    def read(self) -> Frame | None:
        if self.i == self.fail_at:
            raise DecodeError("corrupt packet at frame 3")
        if self.i >= self.n:
            return None
        time.sleep(self.interval)
        f = Frame(make_image(self.i), 3003 * self.i, TB, self.i, {"src": "fake"})
        self.i += 1
        return f

    def close(self) -> None:
        self.closed = True


class FakeSink:
    def __init__(self, delay: float = 0.0, fail_at: int | None = None) -> None:
        self.frames: list[Frame] = []
        self.delay, self.fail_at = delay, fail_at
        self.status: str | None = None
        self.info: StreamInfo | None = None

    @property
    def frames_written(self) -> int:
        return len(self.frames)

    def open(self, info: StreamInfo) -> None:
        self.info = info

    def write(self, frame: Frame) -> None:
        if len(self.frames) == self.fail_at:
            raise EncodeError("disk full")
        time.sleep(self.delay)
        self.frames.append(frame)

    def close(self, status: str = "done") -> None:
        self.status = status


def check_negatives(frames: list[Frame]) -> None:
    for f in frames:
        np.testing.assert_array_equal(f.image, 255 - make_image(f.index))
        assert f.pts == 3003 * f.index and f.time_base == TB and f.meta == {"src": "fake"}


def test_file_frames_in_equal_frames_out_in_order_with_partial_last_batch():
    model, sink = Negative(), FakeSink()
    source = FakeSource(23)
    stats = Pipeline(source, model, sink, batch=4, queue_size=3).run()
    assert [f.index for f in sink.frames] == list(range(23))
    check_negatives(sink.frames)
    assert model.sizes == [4, 4, 4, 4, 4, 3]  # files wait for full batches; the last partial one runs
    assert stats.status == "done" and sink.status == "done" and source.closed
    assert stats.frames_read == stats.frames_written == 23 and stats.dropped == 0 and stats.batches == 6
    assert set(stats.stages) == {"decode", "inference", "encode"}
    assert stats.stages["inference"].frames == 23
    assert not pipeline_threads()


def test_file_source_blocks_on_slow_sink_and_never_drops():
    sink = FakeSink(delay=0.01)
    stats = Pipeline(FakeSource(20), Negative(), sink, batch=2, queue_size=2).run()
    assert [f.index for f in sink.frames] == list(range(20))
    assert stats.dropped == 0


@pytest.mark.parametrize(
    "source, model, sink, err",
    [
        (FakeSource(20, fail_at=3), Negative(), FakeSink(), DecodeError),
        (FakeSource(20), Negative(fail_at=2), FakeSink(), ModelError),
        (FakeSource(20), Negative(), FakeSink(fail_at=5), EncodeError),
    ],
    ids=["source", "engine", "sink"],
)
def test_stage_error_reraises_with_its_type_and_stops_every_thread(source, model, sink, err):
    pipe = Pipeline(source, model, sink, batch=2, queue_size=2)
    with pytest.raises(err):
        pipe.run()
    assert sink.status == "failed" and source.closed and pipe.stats.status == "failed"
    assert not pipeline_threads()


def test_lost_live_source_keeps_the_recording_then_raises():
    sink = FakeSink()
    pipe = Pipeline(FakeSource(30, live=True, interval=0.005, fail_at=10), Negative(), sink, batch=2)
    with pytest.raises(DecodeError):
        pipe.run()
    assert sink.status == "interrupted"  # finalised and kept, not deleted
    assert len(sink.frames) + pipe.stats.dropped == 10  # what was read before the loss was written
    check_negatives(sink.frames)
    assert not pipeline_threads()


def test_source_open_error_closes_nothing_else():
    class BadOpen(FakeSource):
        def open(self):
            raise DecodeError("not a video")

    sink = FakeSink()
    with pytest.raises(DecodeError):
        Pipeline(BadOpen(3), Negative(), sink).run()
    assert sink.info is None and sink.status is None and not pipeline_threads()


def test_live_source_drops_oldest_and_counts():
    # 60 frames arrive at once; inference takes 20 ms per frame, so the 2-frame queue overflows
    model, sink = Negative(delay=0.02), FakeSink()
    stats = Pipeline(FakeSource(60, live=True), model, sink, batch=1, queue_size=2).run()
    written = [f.index for f in sink.frames]
    assert stats.dropped > 0 and stats.frames_read == 60
    assert stats.frames_written + stats.dropped == 60  # every frame read is either written or counted
    assert written == sorted(written) and written[-1] == 59  # the newest frames are kept
    check_negatives(sink.frames)


def test_live_batcher_does_not_wait_for_a_full_batch():
    # a frame every 30 ms, batch 8, max wait 5 ms: batches go out before they fill
    model, sink = Negative(), FakeSink()
    stats = Pipeline(FakeSource(6, live=True, interval=0.03), model, sink, batch=8, max_wait=0.005).run()
    assert [f.index for f in sink.frames] == list(range(6)) and stats.dropped == 0
    assert max(model.sizes) < 8 and sum(model.sizes) == 6


def test_max_frames_and_duration_stop_early():
    sink = FakeSink()
    assert Pipeline(FakeSource(30), Negative(), sink, batch=4, max_frames=10).run().frames_written == 10
    assert [f.index for f in sink.frames] == list(range(10))
    sink = FakeSink()
    # 30000/1001 fps: 0.5 s holds frames with t < 0.5, i.e. indices 0..14
    Pipeline(FakeSource(30), Negative(), sink, batch=4, duration=0.5).run()
    assert [f.index for f in sink.frames] == list(range(15))


def test_keyboard_interrupt_writes_processed_frames_and_closes_interrupted():
    sink = FakeSink()
    calls = {"n": 0}

    def progress(p):
        if p.written >= 5 and not calls["n"]:
            calls["n"] = 1
            raise KeyboardInterrupt

    pipe = Pipeline(FakeSource(500, interval=0.002), Negative(), sink, batch=2)
    with pytest.raises(KeyboardInterrupt):
        pipe.run(on_progress=progress, interval=0.01)
    n = len(sink.frames)
    assert 5 <= n < 500 and sink.status == "interrupted" and pipe.stats.status == "interrupted"
    assert [f.index for f in sink.frames] == list(range(n))  # a gap-free prefix
    assert pipe.stats.frames_written == n
    check_negatives(sink.frames)
    assert not pipeline_threads()


def test_progress_reports_total_and_counts():
    seen = []
    Pipeline(FakeSource(10, interval=0.005), Negative(), FakeSink(), batch=2).run(seen.append, interval=0.01)
    assert seen[-1].written == 10 and seen[-1].total == 10 and seen[-1].fps > 0


def test_bounded_queue_timeouts_and_drop_policy():
    q = BoundedQueue(2)
    q.put(1, timeout=0.01)
    q.put(2, timeout=0.01)
    with pytest.raises(Full):
        q.put(3, timeout=0.01)
    assert q.get(0.01) == 1 and q.get(0.01) == 2
    with pytest.raises(Empty):
        q.get(timeout=0.01)
    live = BoundedQueue(2, drop_oldest=True)
    for i in range(5):
        live.put(i, timeout=0)
    assert live.dropped == 3 and [live.get(0), live.get(0)] == [3, 4]
    live.put(END, timeout=0)
    live.put(7, timeout=0)
    live.put(8, timeout=0)  # END is never dropped
    assert live.get(0) is END and live.get(0) == 8


def test_ctrl_c_while_the_stages_start_still_ends_the_run(monkeypatch):
    """A real SIGINT that lands while the stages are being started: the run still ends, with what was
    processed written (a stage left unstarted once made an interrupted batch wait for ever)."""
    import os
    import signal

    from streamdehaze.pipeline.stage import Worker

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # even under `pytest &`, which ignores it
    original = Worker.start

    def start(self):
        if self.name == "inference":
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs in the main thread now
        original(self)

    monkeypatch.setattr(Worker, "start", start)
    sink = FakeSink()
    pipe = Pipeline(FakeSource(40, interval=0.002), Negative(), sink, batch=2)
    watchdog = threading.Timer(60, lambda: (pipe._stop.set(), pipe._done.set()))  # bounds a regression's hang
    watchdog.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            pipe.run()
    finally:
        watchdog.cancel()
        signal.signal(signal.SIGINT, previous)
    assert pipe.stats.status == "interrupted" and sink.status == "interrupted"
    assert [f.index for f in sink.frames] == list(range(len(sink.frames)))  # a gap-free prefix
    assert not pipeline_threads()
