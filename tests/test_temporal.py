"""Temporal smoothing: EMA of the affine coefficients, scene-cut reset, streaming, no ghosting, flicker reduction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamdehaze.errors import InputError
from streamdehaze.flicker import flicker
from streamdehaze.metrics import psnr_per_frame
from streamdehaze.nets.dcp import DarkChannelPrior
from streamdehaze.nets.dehazer import Dehazer
from streamdehaze.pipeline.frame_state import StatePass
from streamdehaze.pipeline.temporal import CoefficientSmoother, TemporalConfig
from streamdehaze.pipeline.temporal_dcp import AirlightSmoother
from streamdehaze.pipeline.temporal_filter import TemporalFilter
from streamdehaze.pipeline.temporal_flow import warp_backward
from streamdehaze.synthetic import moving_object_clip

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def scene(seed: int, h: int = 24, w: int = 32) -> torch.Tensor:
    """A random smooth ``(1, 3, h, w)`` frame in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, h // 4, w // 4, generator=g)
    return torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)


def test_ema_of_coefficients_follows_the_recurrence():
    sm = CoefficientSmoother(TemporalConfig(mode="ema", strength=0.75, motion=None))
    x = scene(0)
    values = [1.0, 2.0, 0.0, 4.0]
    state = None
    for v in values:
        a, b = torch.full((1, 3, 24, 32), v), torch.full((1, 3, 24, 32), -v)
        a_s, b_s = sm.step(x, a, b)
        state = v if state is None else 0.75 * state + 0.25 * v
        assert torch.allclose(a_s, torch.full_like(a, state)) and torch.allclose(b_s, torch.full_like(b, -state))


def test_motion_lowers_the_weight_of_the_past_where_the_input_changed():
    sm = CoefficientSmoother(TemporalConfig(strength=0.8, motion=0.015, motion_radius=1))
    x0 = 0.2 + 0.5 * scene(0)
    assert sm.weight(x0) is None  # no past yet
    x1 = x0.clone()
    x1[..., :, 26:] += 0.2  # the right part changes, the left stays (too little for a scene cut)
    w = sm.weight(x1)
    assert torch.allclose(w[..., :, :24], torch.tensor(0.8))
    assert float(w[..., :, 27:].max()) < 0.01


def test_scene_cut_resets_the_state():
    cfg = TemporalConfig(mode="ema", strength=0.9, motion=None)
    sm = CoefficientSmoother(cfg)
    a_old, b_old = torch.ones(1, 3, 24, 32), torch.zeros(1, 3, 24, 32)
    no, yes = torch.tensor(False), torch.tensor(True)
    for _ in range(4):
        sm.step(scene(0), a_old, b_old, no)
    a_new, b_new = torch.full_like(a_old, 3.0), torch.full_like(b_old, 0.5)
    same_a, _ = sm.step(scene(0), a_new, b_new, no)  # same scene: the past dominates
    assert float(same_a.mean()) == pytest.approx(0.9 + 0.1 * 3.0)
    cut_a, cut_b = sm.step(1.0 - scene(7), a_new, b_new, yes)  # the caller's cut flag: state reset
    assert torch.equal(cut_a, a_new) and torch.equal(cut_b, b_new)


def test_state_pass_flags_the_first_frame_and_cuts_once_per_stream():
    sp = StatePass(0.05)
    frames = torch.cat([scene(0), scene(0) * 0.98, 1.0 - scene(0), 1.0 - scene(0)])
    s1 = sp(frames[:2])
    assert s1.fresh and s1.cut.tolist() == [True, False]  # first frame: no past
    assert s1.signature.shape == (2, 1, 16, 16)
    s2 = sp(frames[2:])  # the previous frame carries over from the last batch
    assert not s2.fresh and s2.cut.tolist() == [True, False]
    assert sp.cuts == 1  # first frames are not counted
    sp.reset()
    assert sp(frames[3:]).cut.tolist() == [True]


@pytest.mark.parametrize("mode", ["ema", "flow", "pixel"])
def test_filter_resets_at_a_cut_and_passes_the_first_frame(mode):
    f = TemporalFilter(TemporalConfig(mode=mode, strength=0.9))
    x0, x1 = scene(0, 48, 64), 1.0 - scene(3, 48, 64)
    y0, y1 = x0 * 0.5 + 0.2, x1 * 0.8
    assert torch.allclose(f(x0, y0), y0, atol=1e-6)
    f(x0, (y0 + 0.1).clamp(0, 1))
    assert torch.allclose(f(x1, y1), y1, atol=1e-6)
    assert f.cuts == 1


@pytest.mark.parametrize("mode", ["ema", "flow", "pixel"])
def test_streaming_output_never_depends_on_later_frames(mode):
    g = torch.Generator().manual_seed(1)
    x = torch.stack([scene(0, 48, 64)[0] * (0.9 + 0.02 * i) for i in range(6)])
    y = (x * 1.3 - 0.1 + 0.03 * torch.rand(6, 1, 1, 1, generator=g)).clamp(0, 1)
    ref = TemporalFilter(TemporalConfig(mode=mode))(x, y)
    later = y.clone()
    later[3:] = torch.rand(later[3:].shape, generator=g)  # change the future
    f = TemporalFilter(TemporalConfig(mode=mode))
    got = torch.cat([f(x[:2], later[:2]), f(x[2:5], later[2:5]), f(x[5:], later[5:])])  # other batching
    assert torch.allclose(got[:3], ref[:3], atol=1e-6)
    assert not torch.allclose(got[3:], ref[3:], atol=1e-3)


def test_off_mode_and_zero_strength_return_the_output_unchanged():
    x, y = scene(0), scene(1)
    assert TemporalFilter(TemporalConfig(mode="off"))(x, y) is y
    f = TemporalFilter(TemporalConfig(mode="ema", strength=0.0))
    f(x, y)
    assert f(x, y * 0.5) is not None and torch.equal(f(x, y * 0.5), y * 0.5)


def test_config_rejects_bad_settings():
    with pytest.raises(InputError, match="expected one of"):
        TemporalConfig(mode="median").check()
    with pytest.raises(InputError, match=r"\[0, 1\)"):
        TemporalConfig(strength=1.0).check()
    with pytest.raises(InputError):
        TemporalConfig(gate=0).check()


def test_warp_backward_moves_content_along_the_flow():
    img = scene(2, 32, 40)
    flow = torch.zeros(1, 2, 16, 20)
    flow[:, 0] = 1.5  # low-resolution flow: 1.5 px at half size = 3 px at full size
    warped, inside = warp_backward(img, flow)
    assert torch.allclose(warped[..., :, :-3], img[..., :, 3:], atol=1e-5)
    assert inside[..., :, :-3].min() == 1 and inside[..., :, -2:].max() == 0


def run_modes(clip, modes, model=None, work_size="full"):
    """The engine (``run``'s) with each temporal mode; uint8 outputs per mode (``off`` = frame by frame)."""
    from streamdehaze.pipeline.speed import SpeedSettings
    from streamdehaze.pipeline.temporal_engine import TemporalSettings, build_engine

    model = model or Dehazer(DarkChannelPrior(), "dcp")
    outs = {}
    for mode in ["off", *modes]:
        engine = build_engine(SpeedSettings(work_size=work_size), model, "cpu", temporal=TemporalSettings(mode))
        outs[mode] = np.concatenate([engine.process(clip.hazy[i : i + 4]) for i in range(0, len(clip.hazy), 4)])
    return outs


@pytest.mark.parametrize("work_size", ["full", "0.5"])  # post filter / coefficients in the guided transfer
def test_no_ghosting_on_a_moving_object(work_size):
    clip = moving_object_clip(n_frames=10, size=(128, 96), speed=(5.0, 1.0))
    outs = run_modes(clip, ["ema", "flow", "pixel"], work_size=work_size)
    full_off, obj_off = psnr_per_frame(outs["off"], clip.clear), psnr_per_frame(outs["off"], clip.clear, clip.masks)
    for mode in ("ema", "flow"):
        drop_full = full_off - psnr_per_frame(outs[mode], clip.clear)
        drop_obj = obj_off - psnr_per_frame(outs[mode], clip.clear, clip.masks)
        assert drop_full.max() <= 0.2, (mode, drop_full)
        assert drop_obj.max() <= 0.2, (mode, drop_obj)
    # the check has teeth: plain pixel blending drags the object into a trail
    assert (obj_off - psnr_per_frame(outs["pixel"], clip.clear, clip.masks)).max() > 0.8


class JitteryDCP(torch.nn.Module):
    """The dark channel prior with a per-frame random airlight error: a stand-in for an unstable model."""

    def __init__(self, amount: float = 0.04, seed: int = 0) -> None:
        super().__init__()
        self.dcp, self.amount = DarkChannelPrior(), amount
        self.g = torch.Generator().manual_seed(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, t = self.dcp.estimate(x)
        a = a * (1 + self.amount * (2 * torch.rand(a.shape[0], 1, generator=self.g) - 1))
        return self.dcp.recover(x, a, t)


def test_smoothing_removes_model_flicker():
    clip = moving_object_clip(n_frames=10, size=(128, 96), speed=(3.0, 0.0))
    outs = run_modes(clip, ["ema", "flow"], model=Dehazer(JitteryDCP(), "jittery"))
    off = flicker(list(clip.hazy), list(outs["off"])).output
    assert flicker(list(clip.hazy), list(outs["ema"])).output < 0.6 * off
    assert flicker(list(clip.hazy), list(outs["flow"])).output < 0.6 * off


def test_airlight_smoother_and_the_two_halves_of_the_prior():
    sm = AirlightSmoother(strength=0.5)
    airlight = torch.tensor([[0.8, 0.8, 0.8], [0.9, 0.9, 0.9], [0.8, 0.8, 0.8], [0.8, 0.8, 0.8]])
    got = sm.smooth(airlight, torch.tensor([True, False, False, False]))[:, 0]
    assert got.tolist() == pytest.approx([0.8, 0.85, 0.825, 0.8125])
    assert sm.smooth(airlight[1:2], torch.tensor([True]))[0, 0] == pytest.approx(0.9)  # a cut: no past
    dcp = Dehazer(DarkChannelPrior(), "dcp")
    x = torch.stack([scene(0, 48, 64)[0], scene(1, 48, 64)[0]])
    assert dcp.has_airlight and not Dehazer(torch.nn.Identity(), "identity").has_airlight
    with torch.inference_mode():  # stateless halves: together, exactly the prior
        assert torch.equal(dcp.dehaze_with(x, dcp.airlight(x)), dcp(x))
        flipped = dcp.with_flip_average(True)
        assert torch.allclose(flipped.dehaze_with(x, flipped.airlight(x)), flipped(x), atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_filter_runs_on_the_device_in_half_precision(device):
    x = scene(0, 48, 64).to(device).repeat(3, 1, 1, 1)
    y = (x * 1.2).clamp(0, 1)
    for mode in ("ema", "flow"):
        out = TemporalFilter(TemporalConfig(mode=mode))(x.half(), y.half())
        assert out.dtype == torch.float16 and out.device == x.device
        assert torch.allclose(out.float(), y, atol=2e-3)


def test_engine_smooths_in_the_transfer_hook_or_after_the_model():
    from streamdehaze.pipeline.speed import SpeedSettings
    from streamdehaze.pipeline.temporal_engine import TemporalSettings, build_engine
    from streamdehaze.pipeline.temporal_flow import FlowSmoother

    clip = moving_object_clip(n_frames=6, size=(96, 64), speed=(3.0, 0.0))
    model = Dehazer(JitteryDCP(), "jittery")
    plain = build_engine(SpeedSettings(work_size="full"), model, "cpu", temporal=TemporalSettings("off"))
    assert plain.temporal is None and plain.stages.post is None and plain.stages.smoother is None
    off = plain.process(clip.hazy)
    full = build_engine(SpeedSettings(work_size="full"), model, "cpu", temporal=TemporalSettings("flow"))
    assert full.stages.smoother is None and isinstance(full.stages.post, TemporalFilter)  # residual filter after
    low = build_engine(SpeedSettings(work_size="32"), model, "cpu", temporal=TemporalSettings("flow"))
    assert low.stages.smoother is not None and isinstance(low.stages.post, FlowSmoother)  # smooths (a, b)
    f_off = flicker(list(clip.hazy), list(off)).output
    for engine in (full, low):
        out = engine.process(clip.hazy)
        assert out.shape == clip.hazy.shape and out.dtype == np.uint8
        assert flicker(list(clip.hazy), list(out)).output < 0.7 * f_off


def test_flow_applies_the_map_motion_smooths_along_the_motion_then_filters_the_output(monkeypatch):
    """On the coefficient path ``flow`` is ``motion``'s map (not ``ema``'s) followed by the output filter:
    with ``ema``'s map the filter trailed 2.0 dB on a synthetic pan, with ``motion``'s 1.3 (docs)."""
    from streamdehaze.ops import cpu_kernels
    from streamdehaze.pipeline.speed import SpeedSettings
    from streamdehaze.pipeline.temporal_engine import TemporalSettings, build_engine

    # the device code (as on CUDA): on the CPU's uint8 path motion's frames would be shrunk from uint8
    # and flow's from float, and their maps would differ by that rounding
    monkeypatch.setattr(cpu_kernels, "CPU_KERNELS", False)
    clip = moving_object_clip(n_frames=9, size=(96, 64), speed=(3.0, 1.0))
    engines = {  # a model each: the same jitter, frame by frame
        m: build_engine(SpeedSettings(work_size="32"), Dehazer(JitteryDCP(), "j"), "cpu", temporal=TemporalSettings(m))
        for m in ("motion", "ema", "flow")
    }
    maps, outs = {m: [] for m in engines}, {m: [] for m in engines}
    for i in range(0, 9, 3):  # batches of 3: the state carries over between them
        for m, engine in engines.items():
            outs[m].append(engine.process(clip.hazy[i : i + 3]))
            maps[m].append(torch.cat(engine.last_coefficients, 1))
    flow, motion, ema = (torch.cat(maps[m]) for m in ("flow", "motion", "ema"))
    assert torch.equal(flow, motion)
    assert float((flow - ema)[1:].abs().mean()) > 0.01  # the two maps do differ on this clip
    # and the output filter acts after the map: flow's frames are not motion's
    assert not np.array_equal(np.concatenate(outs["flow"])[3:], np.concatenate(outs["motion"])[3:])


def test_temporal_control_switches_off_between_batches_and_restarts_clean():
    from streamdehaze.pipeline.speed import SpeedSettings
    from streamdehaze.pipeline.temporal_engine import TemporalSettings, build_engine

    clip = moving_object_clip(n_frames=12, size=(96, 64), speed=(3.0, 0.0))
    model = Dehazer(JitteryDCP(seed=3), "jittery")

    def run(switch_at: dict[int, bool]) -> np.ndarray:
        model.net.g.manual_seed(3)
        engine = build_engine(SpeedSettings(work_size="full"), model, "cpu", temporal=TemporalSettings("ema", 0.9))
        outs = []
        for i in range(0, 12, 2):
            if i in switch_at:
                engine.control("temporal", switch_at[i])  # queued: no effect until the next batch starts
                assert engine.temporal_on is not switch_at[i]
            outs.append(engine.process(clip.hazy[i : i + 2]))
            assert engine.temporal_on is switch_at.get(i, engine.temporal_on)
        return np.concatenate(outs)

    smoothed, switched = run({}), run({4: False, 8: True})
    model.net.g.manual_seed(3)
    plain = build_engine(SpeedSettings(work_size="full"), model, "cpu", temporal=None).process(clip.hazy)
    assert np.array_equal(switched[:4], smoothed[:4])
    assert np.array_equal(switched[4:8], plain[4:8]) and not np.array_equal(smoothed[4:8], plain[4:8])
    assert np.array_equal(switched[8], plain[8])  # switched on again: no memory of the frames before the pause
    assert not np.array_equal(switched[9], plain[9])


def test_run_command_smooths_by_default(tmp_path):
    from click.testing import CliRunner
    from media import make_clip

    from streamdehaze.cli import main
    from streamdehaze.flicker import flicker_many
    from streamdehaze.io.sources import open_source

    clip = make_clip(tmp_path / "in.mp4", n_frames=8, size=(96, 64))

    def frames(path):
        with open_source(str(path)) as src:
            return [f.image for f in src]

    outs = {}
    for mode in ("off", None):
        out = tmp_path / f"{mode}.mp4"
        args = ["run", str(clip), "-o", str(out), "--model", "dcp"] + (["--temporal", mode] if mode else [])
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, res.output
        assert ("temporal smoothing off" in res.output) == (mode == "off")
        outs[mode or "default"] = frames(out)
    report = flicker_many(frames(clip), outs)
    assert report["default"].output < 0.8 * report["off"].output


def test_bench_measures_temporal_variants():
    from streamdehaze.bench.measure import BenchSettings, bench_variants

    s = BenchSettings(model="dcp", work_size="full", temporal="off", compare=("temporal=flow,temporal-strength=0.5",))
    (_, base), (_, variant) = bench_variants(s)
    model = Dehazer(DarkChannelPrior(), "dcp")
    assert base.engine(model, torch.device("cpu")).temporal is None
    engine = variant.engine(model, torch.device("cpu"))
    assert engine.temporal.mode == "flow" and engine.temporal.strength == 0.5
    with pytest.raises(InputError):
        BenchSettings(model="dcp", temporal="median").engine(model, torch.device("cpu"))


def test_python_api_smooths_by_default_like_run(tmp_path):
    from media import make_clip

    from streamdehaze.api import build_pipeline
    from streamdehaze.pipeline.temporal import DEFAULT_MODE

    clip = make_clip(tmp_path / "in.mp4", 4, size=(64, 48))
    on = build_pipeline(clip, tmp_path / "a.mp4", model="dcp", device="cpu")
    off = build_pipeline(clip, tmp_path / "b.mp4", model="dcp", device="cpu", temporal=None)
    assert on.temporal is not None and on.temporal.mode == DEFAULT_MODE
    assert off.temporal is None


def test_the_shipped_model_smooths_by_default_through_run(tmp_path):
    """``run``'s defaults with the shipped AECR-Net (coefficients at the working size, smoothed along
    the motion) cut the flicker of a panning foggy clip with sensor noise: a default smoothing that
    does nothing fails here."""
    from click.testing import CliRunner

    from streamdehaze.cli import main
    from streamdehaze.flicker import flicker_many
    from streamdehaze.io.sources import open_source
    from streamdehaze.io.stills import read_image, write_image
    from streamdehaze.synthetic import camera_clip

    clip = camera_clip(read_image("samples/foggy_road.jpg"), "pan", n_frames=10, size=(320, 180), density=0.4,
                       noise=0.012, crf=None)  # fmt: skip
    folder = tmp_path / "in"
    folder.mkdir()
    inputs = list(clip.hazy)
    for i, image in enumerate(inputs):
        write_image(folder / f"frame_{i:03d}.png", image)

    outs = {}
    for mode in ("off", None):
        out = tmp_path / f"{mode}.mp4"
        args = ["run", str(folder), "-o", str(out), "--crf", "0"] + (["--temporal", mode] if mode else [])
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, res.output
        with open_source(str(out)) as src:
            outs[mode or "default"] = [f.image for f in src]
    report = flicker_many(inputs, outs)
    # 0.79 measured; a no-op smoothing gives exactly 1
    assert report["default"].output < 0.85 * report["off"].output, (report["default"].output, report["off"].output)


@pytest.mark.parametrize("size", [(360, 640, 270, 480), (37, 53, 11, 17), (64, 64, 64, 64)])
def test_shrink_uint8_takes_the_windows_of_the_float_downscale(size):
    from streamdehaze.ops.cpu_kernels import shrink_uint8
    from streamdehaze.pipeline.temporal import downscale

    height, width, h, w = size
    images = torch.randint(0, 256, (2, height, width, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(h))
    want = downscale(images.permute(0, 3, 1, 2).float() / 255, (h, w))
    torch.testing.assert_close(shrink_uint8(images, (h, w)), want, atol=1e-6, rtol=0)


def test_flow_filter_uint8_step_matches_the_float_step_on_a_pan():
    """The CPU's uint8 step (OpenCV at full resolution) against the float step (torch) on the same frames
    and flows, frame after frame with each its own state: the same output to within two levels (the uint8 step
    keeps its state rounded to 8 bits, so a quarter of a level apart on average), also when they alternate."""
    from streamdehaze.pipeline.temporal_flow import FlowSmoother, flow_gray

    clip = moving_object_clip(n_frames=8, size=(160, 96), speed=(4.0, 1.0))
    model = Dehazer(JitteryDCP(), "jittery")
    exact, fast, mixed = (FlowSmoother(TemporalConfig(mode="flow", flow_size=48)) for _ in range(3))
    changed = 0.0
    for k, image in enumerate(clip.hazy):
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        out8 = (model(x) * 255).round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).contiguous()
        (flow,) = exact.estimator.flows(flow_gray(x, 48).numpy())
        flow = None if flow is None else torch.from_numpy(flow).permute(2, 0, 1)[None]
        want = exact.step(x, out8.permute(2, 0, 1)[None].float() / 255, None, flow)
        got = fast.step_uint8(torch.from_numpy(image), out8, None, flow)
        diff = (got.permute(2, 0, 1)[None].float() - (want * 255).round()).abs()
        assert float(diff.max()) <= 2 and float(diff.mean()) < 0.3
        changed = max(changed, float((got.float() - out8.float()).abs().mean()))
        # the two steps share their state: a stream may switch between them (the strength changes while running)
        if k % 2:
            either = mixed.step(x, out8.permute(2, 0, 1)[None].float() / 255, None, flow)[0].permute(1, 2, 0) * 255
        else:
            either = mixed.step_uint8(torch.from_numpy(image), out8, None, flow).float()
        assert float((either.round() - (want[0].permute(1, 2, 0) * 255).round()).abs().max()) <= 2
    assert changed > 0.5  # the filter did blend: the comparison is not of two unfiltered frames


@pytest.mark.parametrize("uint8", [False, True])
def test_flow_filter_leaves_no_lagging_level_yet_averages_noise(uint8):
    """A still, textured input (zero flow, the past fully trusted) whose output steps from level 100 to 140:
    the previous level must not linger (the warped past is clamped to the current output's 3×3 range; a plain
    blend at strength 0.8 gave 108). Where the new output only adds noise around the old one, the filter still
    pulls it toward the past."""
    from streamdehaze.pipeline.temporal_flow import FlowSmoother, flow_gray

    image = (scene(3, 48, 64)[0].permute(1, 2, 0) * 255).round().to(torch.uint8)
    x = image.permute(2, 0, 1)[None].float() / 255
    noise = torch.randint(-6, 7, (48, 64, 3), generator=torch.Generator().manual_seed(1))
    flat = torch.full((48, 64, 3), 100, dtype=torch.int64)
    frames = [flat, flat + 40, flat + 40 + noise]  # a step of the level, then noise about the new level
    smoother = FlowSmoother(TemporalConfig(mode="flow", flow_size=48, strength=0.8))
    outs = []
    for out in frames:
        out8 = out.clamp(0, 255).to(torch.uint8)
        (flow,) = smoother.estimator.flows(flow_gray(x, 48).numpy())
        flow = None if flow is None else torch.from_numpy(flow).permute(2, 0, 1)[None]
        if uint8:
            got = smoother.step_uint8(image, out8, None, flow).float()
        else:
            got = smoother.step(x, out8.permute(2, 0, 1)[None].float() / 255, None, flow)[0].permute(1, 2, 0) * 255
        outs.append(got)
    assert float((outs[1] - 140).abs().max()) < 0.51  # the step passes whole: no trail of level 100
    spread = lambda t: float((t - 140).abs().mean())  # noqa: E731
    assert spread(outs[2]) < 0.6 * spread(frames[2].float())  # the noise is still averaged with the past
