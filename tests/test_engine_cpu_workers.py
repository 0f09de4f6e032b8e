"""On the CPU the core (network + fit) of later batches runs in worker threads while a batch is finished
(``Engine(cpu_workers=N)``, what ``run`` uses with onnxruntime): the same frames to the bit, in order,
with their timestamps, N batches later; controls and a new frame size still apply between batches;
the networks of two batches really run at once; a failure in a worker reaches the caller."""

from __future__ import annotations

import threading
from fractions import Fraction

import numpy as np
import pytest
import torch
from test_engine import small_aecrnet
from test_engine_stages import changing_clip, run

from streamdehaze.errors import ModelError
from streamdehaze.frames import Frame
from streamdehaze.nets.dehazer import Dehazer
from streamdehaze.pipeline.speed import SpeedSettings
from streamdehaze.pipeline.temporal_engine import TemporalSettings, build_engine

CASES = [  # (working size, keyframe interval, temporal mode): the first three run ahead, the last two cannot
    ("0.5", 1, "motion"),  # the default
    ("0.5", 1, "flow"),  # the flow's uint8 step after the map
    ("0.5", 1, None),
    ("0.5", 2, "motion"),  # keyframes: the plan depends on the batches before
    ("full", 1, "pixel"),  # the float path
]


def engine_for(work: str, k: int, mode: str | None, workers: int, model=None):
    temporal = TemporalSettings(mode) if mode else None
    model = model if model is not None else small_aecrnet()
    return build_engine(
        SpeedSettings(work_size=work, keyframe_interval=k), model, "cpu", temporal=temporal, cpu_workers=workers
    )


def record_core_threads(engine) -> list[str]:
    """The names of the threads that call the engine's core, in call order."""
    names, core_call = [], engine.core.coefficients

    def recorded(low):
        names.append(threading.current_thread().name)
        return core_call(low)

    engine.core.coefficients = recorded
    return names


@pytest.mark.parametrize("work, k, mode", CASES)
def test_workers_give_the_same_frames_as_one_thread(work, k, mode):
    clip = changing_clip()  # 20 frames in batches of 4, 4, 3, 4, 2, 3 with a scene cut at frame 12
    alone = run(engine_for(work, k, mode, 0), clip)
    engine = engine_for(work, k, mode, 2)
    threads = record_core_threads(engine)
    ahead = run(engine, clip)
    assert np.array_equal(ahead, alone)
    in_workers = [name for name in threads if name.startswith("streamdehaze-core")]
    if (work, k) == ("0.5", 1) and mode != "pixel":
        assert len(in_workers) == len(threads) == 6  # every batch's core ran in a worker
    else:
        assert not in_workers


def frames_of(clip: np.ndarray, start: int, n: int) -> list[Frame]:
    return [Frame(clip[i], i * 40, Fraction(1, 25), i) for i in range(start, start + n)]


def test_batches_come_back_in_order_two_batches_later_and_drain_returns_the_rest():
    clip = changing_clip()
    engine = engine_for("0.5", 1, "motion", 2)
    returned = []
    for b, start in enumerate(range(0, 20, 4)):
        out = engine.submit(frames_of(clip, start, 4))
        assert len(out) == (0 if b < 2 else 1)  # each submit returns the batch two before it
        returned += out
        assert engine.pending == min(b + 1, 2)
    returned += engine.drain()
    assert engine.pending == 0
    frames = [f for batch in returned for f in batch]
    assert [f.index for f in frames] == list(range(20))
    assert [f.pts for f in frames] == [i * 40 for i in range(20)]
    assert all(f.time_base == Fraction(1, 25) for f in frames)


def test_controls_and_a_new_size_apply_between_batches_as_without_workers():
    clip = changing_clip()
    other = np.ascontiguousarray(clip[:8, :48, :80])  # a new frame size starts the state over

    def feed(engine) -> np.ndarray:
        out = []
        for b, start in enumerate(range(0, 20, 4)):
            if b == 2:
                engine.control("strength", 0.5)  # the batches prepared before keep strength 1
            if b == 4:
                engine.control("temporal", False)
            out += engine.submit(frames_of(clip, start, 4))
        out += engine.submit(frames_of(other, 0, 4)) + engine.submit(frames_of(other, 4, 4)) + engine.drain()
        return [f.image for batch in out for f in batch]

    alone, ahead = feed(engine_for("0.5", 1, "motion", 0)), feed(engine_for("0.5", 1, "motion", 2))
    assert len(ahead) == len(alone) == 28
    for i, (a, b) in enumerate(zip(ahead, alone)):
        assert np.array_equal(a, b), i


class Meeting(torch.nn.Module):
    """A network whose first two calls return only once both have started: it proves two calls at once."""

    def __init__(self) -> None:
        super().__init__()
        self.barrier = threading.Barrier(2, timeout=60)
        self.calls = 0
        self.lock = threading.Lock()

    def forward(self, x):
        with self.lock:
            self.calls += 1
            first_two = self.calls <= 2
        if first_two:
            self.barrier.wait()  # BrokenBarrierError after 60 s if the other call never comes
        return (1.2 * x - 0.05).clamp(0, 1)


def test_the_networks_of_two_batches_run_at_once():
    clip = changing_clip()
    engine = engine_for("0.5", 1, "motion", 2, model=Dehazer(Meeting(), "meeting"))
    out = run(engine, clip, (4, 4, 4, 4, 4))
    assert out.shape == clip.shape


class Failing(torch.nn.Module):
    def forward(self, x):
        raise ModelError("the network failed")


def test_a_failure_in_a_worker_reaches_the_caller():
    clip = changing_clip()
    engine = engine_for("0.5", 1, None, 2, model=Dehazer(Failing(), "failing"))
    with pytest.raises(ModelError, match="the network failed"):
        run(engine, clip, (4, 4, 4))
