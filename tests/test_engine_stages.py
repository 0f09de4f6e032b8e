"""The engine's structure: a stateless core (graph replay, bucketed shapes) before stateful stages fed by one
state pass, queued controls, the strength control, and one engine over several streams."""

from __future__ import annotations

import threading
from fractions import Fraction

import numpy as np
import pytest
import torch
from test_engine import small_aecrnet

from streamdehaze.errors import InputError
from streamdehaze.frames import Frame
from streamdehaze.images import dehaze_image
from streamdehaze.nets.dcp import DarkChannelPrior
from streamdehaze.nets.dehazer import Dehazer
from streamdehaze.ops import cpu_kernels
from streamdehaze.pipeline import frame_state, keyframes, stages, temporal, temporal_dcp, temporal_filter, temporal_flow
from streamdehaze.pipeline.engine import Engine
from streamdehaze.pipeline.speed import SpeedSettings
from streamdehaze.pipeline.temporal_engine import TemporalSettings, build_engine
from streamdehaze.pipeline.tuning import bucket
from streamdehaze.synthetic import moving_object_clip

BATCHES = (4, 4, 3, 4, 2, 3)  # 20 frames in batches of changing size (a partial one reuses a bucket)


def changing_clip() -> np.ndarray:
    """20 frames ``(20, 64, 96, 3)`` uint8: a moving object, then a scene cut (another scene, mirrored) at frame 12."""
    a = moving_object_clip(n_frames=12, size=(96, 64), speed=(3.0, 1.0), seed=1).hazy
    b = moving_object_clip(n_frames=8, size=(96, 64), speed=(-2.0, 0.0), seed=5, airlight=(0.7, 0.75, 0.9)).hazy
    return np.concatenate([a, b[:, ::-1, ::-1].copy()])


def run(engine: Engine, clip: np.ndarray, batches=BATCHES) -> np.ndarray:
    out, start = [], 0
    for n in batches:
        frames = [Frame(im, start + i, Fraction(1, 25), start + i) for i, im in enumerate(clip[start : start + n])]
        out += [f.image for b in engine.submit(frames) for f in b]
        start += n
    out += [f.image for b in engine.drain() for f in b]
    return np.stack(out)


class FakeGraph:
    """A CUDA graph stand-in on the CPU: one capture per input signature, replays write the result into the
    capture's static output buffers (as a graph replay does) and return those; :attr:`inside` marks a replay."""

    inside = False

    def __init__(self, fn) -> None:
        self.fn, self.captures, self.replays, self.shapes = fn, 0, 0, []
        self._static: dict = {}

    def __call__(self, *xs):
        key = tuple(tuple(x.shape) for x in xs)
        FakeGraph.inside = True
        try:
            out = self.fn(*xs)
        finally:
            FakeGraph.inside = False
        outs = (out,) if isinstance(out, torch.Tensor) else out
        if key not in self._static:
            self.captures += 1
            self.shapes.append(key)
            self._static[key] = tuple(o.clone() for o in outs)
        else:
            self.replays += 1
            for buffer, o in zip(self._static[key], outs):
                buffer.copy_(o)  # the next replay overwrites what the last one returned
        static = self._static[key]
        return static[0] if isinstance(out, torch.Tensor) else static


@pytest.fixture
def fake_graph(monkeypatch):
    """FakeGraph, with every stateful stage made to fail if it runs inside a replay."""
    made: list[FakeGraph] = []

    def factory(fn):
        made.append(FakeGraph(fn))
        return made[-1]

    def guard(cls, name):
        original = getattr(cls, name)

        def checked(self, *args, **kwargs):
            assert not FakeGraph.inside, f"{cls.__name__}.{name} ran inside the graphed core"
            checked.calls += 1
            return original(self, *args, **kwargs)

        checked.calls = 0
        monkeypatch.setattr(cls, name, checked)
        return checked

    stateful = [
        (frame_state.StatePass, "__call__"),
        (keyframes.KeyframeScheduler, "plan"),
        (keyframes.CoefficientBank, "per_frame"),
        (temporal.CoefficientSmoother, "step"),
        (temporal_dcp.AirlightSmoother, "smooth"),
        (temporal_flow.FlowSmoother, "step"),
        (temporal_flow.FlowEstimator, "flows"),
        (temporal_filter.TemporalFilter, "step"),
        (stages.Stages, "_smooth"),
    ]
    factory.guards = {f"{cls.__name__}.{name}": guard(cls, name) for cls, name in stateful}
    factory.made = made
    return factory


def dcp() -> Dehazer:
    return Dehazer(DarkChannelPrior(), "dcp")


CASES = [  # (model, work size, keyframe interval, temporal mode)
    ("dcp", "0.5", 1, "ema"),  # the airlight smoother between the prior's two stateless halves
    ("dcp", "0.5", 3, "flow"),  # keyframes, coefficient smoothing, the flow filter
    ("dcp", "full", 1, "pixel"),
    ("aecrnet", "0.5", 2, "ema"),
    ("aecrnet", "full", 1, "flow"),  # the full-resolution residual filter
    ("aecrnet", "0.5", 1, "motion"),  # the default: flow at half the working size, the colour map along it
    ("dcp", "0.5", 2, "motion"),
]


@pytest.mark.parametrize("name, work, k, mode", CASES)
def test_graph_replay_with_state_equals_eager_over_20_changing_frames(fake_graph, name, work, k, mode):
    clip = changing_clip()
    speed = SpeedSettings(work_size=work, keyframe_interval=k)

    def engine(graph=None):
        model = dcp() if name == "dcp" else small_aecrnet()
        e = build_engine(speed, model, "cpu", temporal=TemporalSettings(mode))
        if graph is not None:  # the same engine with its core behind the stand-in graphs
            e = Engine(model, "cpu", transfer=e.transfer, temporal=e.temporal, graph=graph)
        return e

    eager = run(engine(), clip)
    before = {stage: guard.calls for stage, guard in fake_graph.guards.items()}
    graphed_engine = engine(fake_graph)
    graphed = run(graphed_engine, clip)
    diff = np.abs(graphed.astype(int) - eager.astype(int))
    assert diff.max() <= (0 if name == "dcp" else 1), diff.max()  # aecrnet: padded batches, other CPU kernels
    assert sum(g.replays for g in fake_graph.made) > 0  # the graphs were replayed, not only captured
    calls = {stage: guard.calls - before[stage] for stage, guard in fake_graph.guards.items()}
    assert calls["StatePass.__call__"] == len(BATCHES)  # one state pass per batch, for every consumer
    assert graphed_engine.keyframe_stats()["scene_cuts"] == 1  # the cut at frame 12, decided once
    if mode in ("ema", "flow") and work != "full":
        assert calls["CoefficientSmoother.step"] == 20
    if name == "dcp" and mode == "ema":
        assert calls["AirlightSmoother.smooth"] == len(BATCHES)


def test_new_shapes_reuse_buckets(fake_graph):
    assert [bucket(n) for n in (1, 2, 3, 4, 5, 8, 9)] == [1, 2, 4, 4, 8, 8, 16]
    engine = Engine(dcp(), "cpu", graph=fake_graph)
    clip = changing_clip()
    run(engine, clip, batches=(4, 4, 3, 2, 1, 3, 3))  # 3 → bucket 4, then 2 and 1: new buckets
    plain = fake_graph.made[0]  # the core's full-resolution call
    assert [s[0][0] for s in plain.shapes] == [4, 2, 1]
    assert (plain.captures, plain.replays) == (3, 4)
    k3 = Engine(
        dcp(), "cpu", transfer=SpeedSettings(work_size="0.5", keyframe_interval=3).transfer("cpu"), graph=fake_graph
    )
    run(k3, clip)  # keyframes per batch: 1 or 2 (with the cut): buckets 1 and 2 only
    coefficients = fake_graph.made[-4]  # plain, coefficients, airlight, plain_with, coefficients_with
    assert {s[0][0] for s in coefficients.shapes} <= {1, 2} and coefficients.replays > 0


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["pixel", "flow"])
def test_compiled_core_with_pixel_and_flow_filters_matches_eager(mode):
    """torch.compile of the stateless core; the pixel/flow filters keep outputs across calls (they must be copies)."""
    from streamdehaze.pipeline.tuning import EngineOptions

    clip = changing_clip()[:10]
    settings = TemporalSettings(mode)
    eager = run(Engine(small_aecrnet(), "cpu", temporal=settings), clip, batches=(4, 4, 2))
    compiled = Engine(small_aecrnet(), "cpu", temporal=settings, options=EngineOptions(compile=True))
    assert np.abs(run(compiled, clip, batches=(4, 4, 2)).astype(int) - eager.astype(int)).max() <= 1


# ---------------------------------------------------------------- strength


class Gain(torch.nn.Module):
    """``y = 1.3 · x − 0.1``, clamped: a dehazer whose map is known."""

    def forward(self, x):
        return (1.3 * x - 0.1).clamp(0, 1)


STRENGTH_CASES = [
    ("dcp", "0.5", "ema"),
    ("dcp", "full", "ema"),
    ("aecrnet", "0.5", "flow"),
    ("aecrnet", "full", "pixel"),
    ("aecrnet", "0.5", "motion"),
]


@pytest.mark.parametrize("name, work, mode", STRENGTH_CASES)
def test_strength_zero_returns_the_input_and_one_the_full_result(name, work, mode):
    clip = changing_clip()[:8]

    def out(strength):
        model = dcp() if name == "dcp" else small_aecrnet()
        speed = SpeedSettings(work_size=work)
        return run(build_engine(speed, model, "cpu", temporal=TemporalSettings(mode), strength=strength), clip, (4, 4))

    full, default = out(1.0), run(
        build_engine(SpeedSettings(work_size=work), dcp() if name == "dcp" else small_aecrnet(), "cpu",
                     temporal=TemporalSettings(mode)), clip, (4, 4))  # fmt: skip
    assert np.array_equal(full, default)  # strength 1 is today's output, bit for bit
    assert np.abs(out(0.0).astype(int) - clip.astype(int)).max() <= 1
    assert np.abs(full.astype(int) - clip.astype(int)).mean() > 5  # and the full result really differs


@pytest.mark.parametrize("work", ["0.5", "full"])
def test_half_strength_is_half_the_map(work):
    x = changing_clip()[:4]
    engine = build_engine(SpeedSettings(work_size=work), Gain(), "cpu", temporal=None, strength=0.5)
    got = engine.process(x).astype(float)
    y = build_engine(SpeedSettings(work_size=work), Gain(), "cpu", temporal=None).process(x).astype(float)
    inside = (y > 2) & (y < 253)  # where the full map is not clipped, x + S (y − x) exactly
    assert np.abs(got - (x + 0.5 * (y - x)))[inside].max() <= 1.01


def test_dehaze_image_strength_and_bad_values():
    image = changing_clip()[0]
    model = small_aecrnet()
    assert np.abs(dehaze_image(image, model, work_size="0.5", strength=0.0).astype(int) - image).max() <= 1
    assert np.array_equal(
        dehaze_image(image, model, work_size="0.5", strength=1.0), dehaze_image(image, model, work_size="0.5")
    )
    with pytest.raises(InputError, match="--strength 1.5"):
        dehaze_image(image, model, strength=1.5)
    with pytest.raises(InputError, match="--strength"):
        Engine(model, "cpu", strength=-0.1)


# ---------------------------------------------------------------- controls and streams


def test_controls_from_another_thread_apply_between_batches_only():
    clip = changing_clip()
    engine = Engine(Gain(), "cpu")
    stop = threading.Event()

    def spam():
        i = 0
        while not stop.wait(0.0002):
            engine.control("strength", float(i % 2))
            i += 1

    thread = threading.Thread(target=spam)
    thread.start()
    try:
        batches = [engine.process(clip[i : i + 4]) for i in range(0, 20, 4) for _ in range(3)]
    finally:
        stop.set()
        thread.join()
    y = Engine(Gain(), "cpu").process(clip)
    for n, out in enumerate(batches):
        start = (n // 3) * 4
        as_input = np.abs(out.astype(int) - clip[start : start + 4]).max() <= 1
        as_full = np.array_equal(out, y[start : start + 4])
        assert as_input != as_full, n  # one strength for the whole batch: 0 or 1, never a mixture
    with pytest.raises(InputError, match="unknown engine control"):
        engine.control("colour", 1)


def test_one_engine_serves_several_streams_with_a_reset_between():
    clip = changing_clip()
    speed, settings = SpeedSettings(work_size="0.5", keyframe_interval=2), TemporalSettings("flow")
    engine = build_engine(speed, dcp(), "cpu", temporal=settings)
    run(engine, clip[12:])  # another stream first
    engine.reset()
    again = run(engine, clip[:12], (4, 4, 4))
    fresh = run(build_engine(speed, dcp(), "cpu", temporal=settings), clip[:12], (4, 4, 4))
    assert np.array_equal(again, fresh)


def test_the_scene_cut_threshold_is_one_setting_for_every_stage():
    clip = changing_clip()
    sensitive = build_engine(SpeedSettings(work_size="0.5", scene_cut=1e-4), dcp(), "cpu", temporal=TemporalSettings())
    run(sensitive, clip)
    assert sensitive.keyframe_stats()["scene_cuts"] == 19  # every frame after the first
    assert sensitive.stages.state_pass.threshold == 1e-4 == sensitive.transfer.scene_cut
    with pytest.raises(InputError, match="--scene-cut"):
        SpeedSettings(scene_cut=0).build_engine(dcp(), "cpu")


@pytest.mark.parametrize("name, work, k, mode", CASES)
def test_the_device_steps_never_read_device_values_on_the_host(monkeypatch, name, work, k, mode):
    """The CPU stand-in for CUDA's sync check: in ``prepare``/``finish`` (the compute section) every
    device-to-host read (``.item()``, ``.cpu()``, ``.tolist()``, ``.numpy()``, ``bool()``, ``int()``,
    ``float()``) raises; the host reads only in ``decide``, between them."""
    active = [False]

    def forbid(method):
        original = getattr(torch.Tensor, method)

        def checked(self, *args, **kwargs):
            assert not active[0], f"Tensor.{method} in the compute section"
            return original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, method, checked)

    for method in ("item", "cpu", "tolist", "numpy", "__bool__", "__int__", "__float__"):
        forbid(method)

    def section(method):
        original = getattr(stages.Stages, method)

        def checked(self, *args, **kwargs):
            active[0] = True
            try:
                return original(self, *args, **kwargs)
            finally:
                active[0] = False

        monkeypatch.setattr(stages.Stages, method, checked)

    section("prepare")
    section("finish")
    section("finish_uint8")
    # the OpenCV kernels read CPU tensors on the host by design and never run for CUDA tensors: off, so
    # the check sees the device code
    monkeypatch.setattr(cpu_kernels, "CPU_KERNELS", False)
    model = dcp() if name == "dcp" else small_aecrnet()
    settings = SpeedSettings(work_size=work, keyframe_interval=k)
    out = run(build_engine(settings, model, "cpu", temporal=TemporalSettings(mode)), changing_clip())
    assert out.shape == (20, 64, 96, 3)
    with pytest.raises(AssertionError, match="compute section"):  # the check has teeth
        active[0] = True
        try:
            torch.ones(1).item()
        finally:
            active[0] = False


def test_compile_calls_the_onnxruntime_runner_without_tracing_it():
    """``--compile`` wraps the core; modules marked ``compile_opaque`` (the onnxruntime runner, whose
    module does not import torch._dynamo at start-up) get their forward excluded from tracing."""
    from streamdehaze.backends.onnxruntime_runner import OrtNetwork
    from streamdehaze.pipeline.core import _keep_opaque

    class Opaque(torch.nn.Module):
        compile_opaque = OrtNetwork.compile_opaque

        def forward(self, x):
            return x + 1

    model = torch.nn.Sequential(Opaque(), torch.nn.Identity())
    _keep_opaque(model)
    assert getattr(model[0].forward, "_torchdynamo_disable", False)
    assert not hasattr(model[1].forward, "_torchdynamo_disable")
    torch.testing.assert_close(torch.compile(model)(torch.zeros(2)), torch.ones(2))
