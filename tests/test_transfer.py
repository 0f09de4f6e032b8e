"""Working size, guided transfer and keyframe reuse (pipeline/transfer.py, keyframes.py), and the engine using them."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from streamdehaze.errors import InputError
from streamdehaze.frames import Frame
from streamdehaze.ops.color import to_tensor
from streamdehaze.ops.transfer_fit import transfer
from streamdehaze.pipeline.engine import Engine
from streamdehaze.pipeline.keyframes import KeyframeScheduler
from streamdehaze.pipeline.transfer import GuidedTransfer, default_radius
from streamdehaze.work_size import FULL, WorkSize, default_work_size, parse_work_size

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def textured(n: int, h: int = 48, w: int = 64, seed: int = 0) -> torch.Tensor:
    """``(n, 3, h, w)`` in [0.1, 0.9]: smooth colour fields plus fine texture (a fit needs variance)."""
    g = torch.Generator().manual_seed(seed)
    coarse = F.interpolate(torch.rand(n, 3, h // 8, w // 8, generator=g), size=(h, w), mode="bilinear")
    return (0.1 + 0.6 * coarse + 0.2 * torch.rand(n, 3, h, w, generator=g)).clamp(0, 1)


def stream(model, t: GuidedTransfer, **kwargs) -> Engine:
    """An engine over float batches (``.infer``): the transfer's stateful path, frames in stream order."""
    return Engine(model, "cpu", transfer=t, **kwargs)


class AffineModel(torch.nn.Module):
    """``y = gain · x + (1 − gain) · 0.3``, with a new gain per call; records what it saw.

    The gain is the same for the three channels (as in dehazing; ``GuidedTransfer(shared_gain=True)``
    transfers it exactly), or one per channel with ``per_channel`` (needs the default per-channel fit).
    """

    def __init__(self, per_channel: bool = False) -> None:
        super().__init__()
        self.calls: list[tuple[int, ...]] = []
        self.per_channel = per_channel

    def gain(self, call: int) -> torch.Tensor:
        base = [0.9, 1.1, 1.3] if self.per_channel else [1.3, 1.3, 1.3]
        return torch.tensor(base).view(1, 3, 1, 1) - 0.1 * call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gain(len(self.calls)).to(x.device)
        self.calls.append(tuple(x.shape))
        return g * x + (1 - g) * 0.3


# ---------------------------------------------------------------- working size


@pytest.mark.parametrize(
    "text, mode, value",
    [("full", "full", 0), ("540", "short", 540), ("0.5", "scale", 0.5), ("1/3", "scale", 1 / 3), ("25%", "scale", 0.25),
     ("1", "full", 0), (None, "full", 0), (0.5, "scale", 0.5)],
)  # fmt: skip
def test_parse_work_size(text, mode, value):
    ws = parse_work_size(text)
    assert ws.mode == mode and ws.value == pytest.approx(value)


@pytest.mark.parametrize("text", ["abc", "4", "1.5", "-0.5", "0", "540.5", ""])
def test_bad_work_size_is_one_clear_error(text):
    with pytest.raises(InputError, match="--work-size") as err:
        parse_work_size(text)
    assert "\n" not in str(err.value) and "short side" in str(err.value)


def test_auto_work_size_fits_the_device():
    cpu = parse_work_size("auto", "cpu")
    assert (cpu.mode, cpu.value, cpu.default) == ("short", 360, "device")
    assert cpu.size_for(720, 1280) == (360, 640) and cpu.size_for(240, 320) == (240, 320)
    gpu = default_work_size("cuda")
    assert gpu.size_for(1080, 1920) == (1080, 1920) and gpu.size_for(2160, 3840) == (1080, 1920)
    assert "default" in cpu.describe() and "640x360" in cpu.describe(720, 1280)


def test_size_for_rounds_and_keeps_a_minimum():
    assert WorkSize("scale", 1 / 3).size_for(720, 1280) == (240, 427)
    assert WorkSize("short", 360).size_for(1280, 720) == (640, 360)  # portrait: the short side is the width
    assert WorkSize("scale", 0.01).size_for(100, 200) == (8, 8)
    assert FULL.size_for(33, 17) == (33, 17)


# ---------------------------------------------------------------- keyframes


def test_scheduler_interval_carries_across_batches():
    s = KeyframeScheduler(interval=3)
    reasons = s.plan([False] * 4) + s.plan([False] * 4)
    assert reasons == ["first", None, None, "interval", None, None, "interval", None]
    assert (s.keyframes, s.frames) == (3, 8)


def test_scheduler_scene_cut_forces_a_keyframe_and_resets_the_count():
    s = KeyframeScheduler(interval=4)
    reasons = s.plan([True, False, True, False, False, False, False])  # the state pass's flags (first: set)
    assert reasons == ["first", None, "cut", None, None, None, "interval"]
    s.reset()
    assert s.plan([False]) == ["first"]


def test_scheduler_rejects_bad_settings():
    with pytest.raises(InputError, match="keyframe-interval"):
        KeyframeScheduler(interval=0)
    with pytest.raises(InputError, match="scene-cut"):
        GuidedTransfer(keyframe_interval=2, scene_cut=0)


# ---------------------------------------------------------------- transfer


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("device", DEVICES)
def test_global_affine_model_is_transferred_exactly(device, per_channel):
    x = textured(2, 64, 96).to(device)
    model = AffineModel(per_channel)
    t = GuidedTransfer(WorkSize("scale", 0.5), eps=1e-8, shared_gain=not per_channel, guard="off")  # exactness
    out = stream(model, t).infer(x)
    assert model.calls == [(2, 3, 32, 48)]  # the network saw the half-size frames
    expected = (model.gain(0).to(device) * x + (1 - model.gain(0).to(device)) * 0.3).clamp(0, 1)
    assert (out - expected).abs().max() < 2e-3


def test_transfer_of_smoothly_varying_map_beats_upsampling_the_output():
    x = textured(1, 96, 128, seed=3)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 128), indexing="ij")
    gain = (1.2 + 0.6 * torch.sin(3 * xx) * torch.cos(2 * yy))[None, None]  # haze: smooth in space

    def model(t):  # the same spatial map at whatever resolution it is called
        g = F.interpolate(gain, size=t.shape[-2:], mode="bilinear", align_corners=False)
        return (g * t + (1 - g) * 0.6).clamp(0, 1)

    truth = model(x)
    out = transfer(model, x, WorkSize("scale", 0.25).size_for(96, 128))  # the stateless one-image path
    engine = stream(model, GuidedTransfer(WorkSize("scale", 0.25)))  # (the engine feeds the model channels-last)
    assert torch.allclose(out, engine.infer(x), atol=1e-5)
    low = F.interpolate(x, scale_factor=0.25, mode="bilinear", antialias=True)
    naive = F.interpolate(model(low), size=x.shape[-2:], mode="bilinear", align_corners=False)
    err_transfer, err_naive = (out - truth).abs().mean(), (naive - truth).abs().mean()
    assert err_transfer < 0.5 * err_naive and err_transfer < 0.02


def test_full_size_interval_one_without_hook_is_the_plain_model():
    x = textured(3)
    model = AffineModel()
    engine = stream(model, GuidedTransfer(WorkSize("short", 360)))  # 48x64 frames: below the cap, full resolution
    assert torch.equal(engine.infer(x), AffineModel()(x))
    assert model.calls == [(3, 3, 48, 64)] and engine.keyframe_stats()["frames"] == 0  # no fit, no keyframe logic


def test_keyframes_reuse_coefficients_on_each_new_frame_across_batches():
    frames = textured(1, seed=5) * torch.linspace(0.9, 1.0, 10).view(10, 1, 1, 1)  # one scene, slowly brighter
    model = AffineModel()
    t = stream(model, GuidedTransfer(WorkSize("scale", 0.5), keyframe_interval=4, eps=1e-8))
    out = torch.cat([t.infer(frames[i : i + 3]) for i in range(0, 10, 3)])  # batches 3, 3, 3, 1
    # keyframes 0, 4, 8: calls on the batch with frame 0, then 4, then 8 — one frame each
    assert model.calls == [(1, 3, 24, 32)] * 3
    assert t.keyframe_stats() == {"frames": 10, "keyframes": 3, "scene_cuts": 0}
    for i in range(10):
        g = model.gain(i // 4)  # the keyframe's map, applied to frame i's own pixels
        expected = (g * frames[i : i + 1] + (1 - g) * 0.3).clamp(0, 1)
        assert (out[i : i + 1] - expected).abs().max() < 2e-3, i


def test_a_scene_cut_inside_a_batch_runs_the_network_on_that_frame():
    a, b = textured(3, seed=1) * 0.3, 0.5 + 0.5 * textured(2, seed=2)  # dark scene, then a bright one
    model = AffineModel()
    t = stream(model, GuidedTransfer(WorkSize("scale", 0.5), keyframe_interval=30, eps=1e-8, guard="off"))
    out = t.infer(torch.cat([a, b]))
    assert model.calls == [(2, 3, 24, 32)]  # frames 0 and 3 in one call
    assert t.keyframe_stats()["scene_cuts"] == 1
    g1 = model.gain(0)[:, :, :, :]  # one call: both keyframes share its gain
    assert (out[4:] - (g1 * b[1:] + (1 - g1) * 0.3).clamp(0, 1)).abs().max() < 2e-3


class RecordingHook:
    """A temporal smoother stand-in: records shapes, can replace the coefficients."""

    def __init__(self, replace: bool = False) -> None:
        self.shapes: list[tuple] = []
        self.resets = 0
        self.replace = replace

    def step(self, low_in, a, b):
        self.shapes.append((tuple(low_in.shape), tuple(a.shape), tuple(b.shape)))
        return (torch.zeros_like(a), torch.full_like(b, 0.25)) if self.replace else (a, b)

    def reset(self):
        self.resets += 1


def test_coefficient_hook_runs_per_frame_between_fit_and_apply():
    hook = RecordingHook(replace=True)
    t = stream(AffineModel(), GuidedTransfer(FULL), coeff_hook=hook)  # a hook: the path runs at full size, K = 1
    out = t.infer(textured(1, 16, 24).repeat(3, 1, 1, 1))  # one scene
    assert torch.allclose(out, torch.full_like(out, 0.25))  # what the hook returned was applied
    assert hook.shapes == [((1, 3, 16, 24),) * 3] * 3
    assert hook.resets == 1  # the first frame starts a scene


def test_hook_reset_at_scene_cuts_and_plain_callables_work():
    hook = RecordingHook()
    t = stream(AffineModel(), GuidedTransfer(WorkSize("scale", 0.5), keyframe_interval=8), coeff_hook=hook)
    t.infer(torch.cat([textured(2, seed=1) * 0.2, 0.8 + 0.2 * textured(2, seed=2)]))
    assert hook.resets == 2 and len(hook.shapes) == 4
    seen = []
    t2 = stream(
        AffineModel(),
        GuidedTransfer(WorkSize("scale", 0.5)),
        coeff_hook=lambda low, a, b: (seen.append(low.shape[0]) or a, b),
    )
    t2.infer(textured(2))
    assert seen == [1, 1]


def test_frame_size_change_starts_over():
    model = AffineModel()
    t = stream(model, GuidedTransfer(WorkSize("scale", 0.5), keyframe_interval=10))
    t.infer(textured(1, 32, 32).repeat(2, 1, 1, 1))
    t.infer(textured(1, 48, 64).repeat(2, 1, 1, 1))  # a new size: the old coefficients do not fit
    assert [c[0] for c in model.calls] == [1, 1] and t.keyframe_stats()["keyframes"] == 2


# ---------------------------------------------------------------- engine


def test_engine_with_transfer_keeps_order_timestamps_and_state():
    scene = textured(1, seed=9) * torch.linspace(0.9, 1.0, 7).view(7, 1, 1, 1)  # one scene: no cuts
    imgs = (scene * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    frames = [Frame(im, 100 * i, Fraction(1, 1000), i, {"i": i}) for i, im in enumerate(imgs)]
    model = AffineModel()
    engine = Engine(model, "cpu", transfer=GuidedTransfer(WorkSize("scale", 0.5), keyframe_interval=3))
    out = [f for start in (0, 4) for batch in engine.submit(frames[start : start + 4]) for f in batch]
    assert [f.pts for f in out] == [100 * i for i in range(7)] and out[5].meta == {"i": 5}
    assert len(model.calls) == 2 and engine.keyframe_stats()["keyframes"] == 3  # frames 0, 3, 6
    reference = stream(AffineModel(), GuidedTransfer(WorkSize("scale", 0.5), keyframe_interval=3))
    x = to_tensor(imgs)
    expected = torch.cat([reference.infer(x[:4]), reference.infer(x[4:])])
    got = to_tensor(np.stack([f.image for f in out]))
    # the engine's CPU path shrinks the uint8 frames (within a level of the float shrink infer() makes),
    # and the keyframes' maps carry that to the frames between: up to 2 levels
    assert (got - expected).abs().max() <= 2 / 255 + 1e-6


def test_validation_at_a_working_size_matches_dehaze_image():
    """Training's validation through the guided transfer scores what `eval --work-size` scores."""
    from streamdehaze.images import dehaze_image
    from streamdehaze.metrics import psnr
    from streamdehaze.nets.dehazer import Dehazer
    from streamdehaze.ops.color import to_tensor
    from streamdehaze.train.validate import validate

    net = torch.nn.Sequential(torch.nn.AvgPool2d(5, 1, 2, count_include_pad=False))  # output follows the input
    rng = np.random.default_rng(0)
    hazy8 = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    clear = net(to_tensor(hazy8[None]))  # what the network gives at full resolution
    out8 = dehaze_image(hazy8, Dehazer(net, "aecrnet", 4), work_size="1/2")
    p, _ = validate(net, [(to_tensor(hazy8[None]), clear)], torch.device("cpu"), "1/2")
    assert abs(p - float(psnr(to_tensor(out8[None]), clear)[0])) < 0.05  # 8-bit rounding only
    p_full, _ = validate(net, [(to_tensor(hazy8[None]), clear)], torch.device("cpu"))
    assert p_full > 90 and p < 40  # the working size really changed what was scored


def test_transfer_fit_presets_set_the_radius_and_the_gain_form():
    x = textured(1, 120, 160, seed=5)

    def model(t):  # a map with local structure, so the fit's window and gain form matter
        return (t * (1.4 - 0.5 * t.mean(1, keepdim=True)) - 0.1).clamp(0, 1)

    work = WorkSize("scale", 0.5)  # 60x80: radius 1 for local (1/60), 3 for wide (1/20)
    assert default_radius(60, 80) == 1 and default_radius(60, 80, "wide") == 3
    local, wide = (stream(model, GuidedTransfer(work, fit=f)).infer(x) for f in ("local", "wide"))
    assert torch.equal(local, stream(model, GuidedTransfer(work, radius=1, shared_gain=False)).infer(x))
    assert torch.equal(wide, stream(model, GuidedTransfer(work, radius=3, shared_gain=True)).infer(x))
    assert torch.equal(wide, transfer(model, x, (60, 80), "wide"))  # the stills' path fits the same way
    assert (local - wide).abs().max() > 1e-3
    assert "wide transfer fit" in GuidedTransfer(work, fit="wide").describe(120, 160)
    assert "fit" not in GuidedTransfer(work).describe(120, 160)
    with pytest.raises(InputError, match="--transfer-fit 'narrow'"):
        GuidedTransfer(work, fit="narrow")


@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_the_cpu_apply_into_8_bit_frames_matches_the_float_path(strength, monkeypatch):
    """Frames through the engine on the CPU (the apply straight into uint8, ops/cpu_kernels.py) come out
    as the float path rounds them, within one level, smoothing and strength included."""
    import streamdehaze.pipeline.stages as stages
    from streamdehaze.ops.color import to_uint8
    from streamdehaze.pipeline.temporal_engine import TemporalSettings

    calls = []
    fast_apply = stages.apply_affine_uint8
    monkeypatch.setattr(stages, "apply_affine_uint8", lambda *args: calls.append(1) or fast_apply(*args))
    x = textured(4, 72, 96, seed=5)
    x8 = to_uint8(x)

    def engine() -> Engine:
        e = stream(AffineModel(per_channel=True), GuidedTransfer(WorkSize("scale", 0.5)), temporal=TemporalSettings())
        e.control("strength", strength)
        return e

    fast, generic = engine(), engine()
    out_fast = torch.cat([fast._forward(x8[:2]), fast._forward(x8[2:])])
    out_generic = torch.cat([to_uint8(generic.infer(to_tensor(x8[i : i + 2]))) for i in (0, 2)])
    assert len(calls) == 2 and out_fast.dtype == torch.uint8 and out_fast.shape == x8.shape
    assert int((out_fast.int() - out_generic.int()).abs().max()) <= 1
    assert int((out_fast.int() - x8.int()).abs().max()) > 10  # it did dehaze


@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_flow_on_the_cpu_stays_in_8_bits_at_any_strength(strength, monkeypatch):
    """``--temporal flow`` on the CPU: the filter's uint8 step, then the strength's blend, at any strength
    (the float path took 1.8x the time at strength 0.8 on the sample clip). It matches the float path within
    two levels: the apply, the filter's state and the blend each round to 8 bits."""
    import streamdehaze.pipeline.temporal_flow as temporal_flow
    from streamdehaze.ops.color import to_uint8
    from streamdehaze.pipeline.temporal_engine import TemporalSettings
    from streamdehaze.synthetic import moving_object_clip

    steps = []
    uint8_step = temporal_flow.FlowSmoother.step_uint8
    monkeypatch.setattr(temporal_flow.FlowSmoother, "step_uint8", lambda *a: steps.append(1) or uint8_step(*a))
    x8 = torch.from_numpy(moving_object_clip(n_frames=6, size=(96, 72), speed=(3.0, 1.0)).hazy)

    def engine() -> Engine:
        flow = TemporalSettings("flow")
        e = stream(AffineModel(per_channel=True), GuidedTransfer(WorkSize("scale", 0.5)), temporal=flow)
        e.control("strength", strength)
        return e

    fast, generic = engine(), engine()
    out_fast = torch.cat([fast._forward(x8[i : i + 2]) for i in (0, 2, 4)])
    out_generic = torch.cat([to_uint8(generic.infer(to_tensor(x8[i : i + 2]))) for i in (0, 2, 4)])
    assert len(steps) == 6 and out_fast.dtype == torch.uint8 and out_fast.shape == x8.shape
    assert int((out_fast.int() - out_generic.int()).abs().max()) <= 2
    assert int((out_fast.int() - x8.int()).abs().max()) > 10  # it did dehaze


def test_the_cpu_path_shrinks_the_8_bit_frames_without_float_frames(monkeypatch):
    """On the CPU the working-size frames come straight from the uint8 frames (the full-size float
    conversion and its shrink cost ~14x more there): no full-size float frame is made, and the
    working-size frames match the float shrink within one level."""
    import streamdehaze.pipeline.engine as engine_module
    from streamdehaze.ops.color import to_uint8
    from streamdehaze.ops.transfer_fit import downscale, downscale_uint8

    x8 = to_uint8(textured(2, 90, 160, seed=7))
    exact = downscale(to_tensor(x8), (36, 64))
    low = downscale_uint8(x8, (36, 64))
    assert low.shape == exact.shape and low.dtype == torch.float32
    assert float((low - exact).abs().max()) <= 1.01 / 255 and float((low - exact).abs().mean()) < 0.5 / 255

    made = []
    convert = engine_module.to_tensor

    def counted(t, *args, **kwargs):
        made.append(tuple(t.shape))
        return convert(t, *args, **kwargs)

    monkeypatch.setattr(engine_module, "to_tensor", counted)
    e = stream(AffineModel(per_channel=True), GuidedTransfer(WorkSize("scale", 0.5)))
    out = e._forward(x8)
    assert made == [] and out.shape == x8.shape and out.dtype == torch.uint8
    full = stream(AffineModel(per_channel=True), GuidedTransfer(FULL))  # full size: the float frames are needed
    full._forward(x8)
    assert made == [tuple(x8.shape)]
