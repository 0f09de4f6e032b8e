"""Motion-compensated smoothing (``--temporal motion``, the default): the working-size flow and the
coefficients carried along it (the default through ``run``: test_temporal.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from streamdehaze.ops.flow import consistency, inside, lk_flow, sampling_grid, warp
from streamdehaze.pipeline.temporal import CoefficientSmoother, TemporalConfig
from streamdehaze.pipeline.temporal_motion import MotionEstimator


def texture(h: int = 200, w: int = 320, blur: float = 2.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), blur)
    return (t - t.min()) / (t.max() - t.min())


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image(p + (dx, dy))``, sub-pixel: the content moves by ``(−dx, −dy)``."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, m, image.shape[1::-1], flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)  # fmt: skip


def as_gray(*images: np.ndarray) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.ascontiguousarray(i)) for i in images])[:, None].float()


@pytest.mark.parametrize("dx, dy", [(0.4, 0.0), (2.3, -1.2), (6.0, 3.0)])
def test_lk_flow_recovers_a_known_subpixel_translation(dx, dy):
    img = texture()
    flow = lk_flow(as_gray(shifted(img, dx, dy)), as_gray(img))  # cur(p) = prev(p + d): flow = d
    core = flow[0, :, 16:-16, 16:-16]
    assert abs(core[0].median().item() - dx) < 0.1 and abs(core[1].median().item() - dy) < 0.1
    # and warping prev along it reproduces cur
    cur = as_gray(shifted(img, dx, dy))
    err = (warp(as_gray(img), flow) - cur).abs()[..., 16:-16, 16:-16].mean().item()
    assert err < 0.01 < (as_gray(img) - cur).abs()[..., 16:-16, 16:-16].mean().item()


def test_lk_flow_of_identical_frames_is_zero_and_of_a_batch_is_per_pair():
    a, b = texture(seed=1), texture(seed=2)
    flow = lk_flow(as_gray(a, shifted(b, 1.5, 0)), as_gray(a, b))
    assert flow[0].abs().max().item() < 1e-3
    assert abs(flow[1, 0, 16:-16, 16:-16].median().item() - 1.5) < 0.1


def test_consistency_flags_the_pixels_whose_round_trip_fails():
    n, h, w = 1, 32, 48
    back = torch.full((n, 2, h, w), 2.0)
    fwd = -back.clone()
    assert consistency(back, fwd).min().item() == 1.0
    fwd[..., 10:20, 10:20] = 3.0  # the forward flow disagrees in a block (an occlusion)
    mask = consistency(back, fwd)
    assert mask[0, 0, 12, 12] == 0 and mask[0, 0, 25, 30] == 1
    grid = sampling_grid(back)
    assert inside(grid)[0, 0, 0, 0] == 1 and inside(grid)[0, 0, -1, -1] == 0  # points outside the frame


@pytest.mark.parametrize("method", ["dis", "lk"])
def test_motion_estimator_follows_a_pan_across_batches(method):
    """Both flow methods (DIS on the CPU, lk_flow on a GPU) give the same motion; the first frame after
    a reset has no past (trust 0), later batches continue from the previous one's last frame."""
    img = texture(240, 400)
    frames = [np.dstack([shifted(img, 1.5 * i, 0.5 * i)[20:180, 20:304]] * 3) for i in range(6)]
    low = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()
    est = MotionEstimator(method=method)
    first, second = est(low[:3]), est(low[3:])
    assert first.trust[0].max().item() == 0 and second.trust[0].mean().item() > 0.6
    for motion in (first, second):
        for i in range(1 if motion is first else 0, 3):
            flow = motion.flow[i, :, 8:-8, 8:-8] * 2  # at the flow size, half the frames'
            assert abs(flow[0].median().item() - 1.5) < 0.25 and abs(flow[1].median().item() - 0.5) < 0.25
            assert motion.trust[i, :, 8:-8, 8:-8].mean().item() > 0.6
    est.reset()
    assert est(low[3:4]).trust.max().item() == 0


def test_coefficients_are_carried_along_the_motion_not_left_behind():
    """A coefficient field that moves with the scene plus frame-to-frame jitter: smoothing along the
    motion removes jitter and keeps the field where the scene is; the per-pixel EMA leaves it behind."""
    rng = np.random.default_rng(3)
    field = texture(240, 400, blur=6.0)
    img = texture(240, 400, seed=4)
    lows, a_true, a_jit = [], [], []
    for i in range(12):
        lows.append(np.dstack([shifted(img, 2.0 * i, 0)[40:200, 40:360]] * 3))
        a_true.append(1.0 + shifted(field, 2.0 * i, 0)[40:200, 40:360])
        a_jit.append(a_true[-1] + rng.normal(0, 0.05))  # the network's estimate jitters as a whole
    low = torch.from_numpy(np.stack(lows)).permute(0, 3, 1, 2).float()
    a = torch.from_numpy(np.stack(a_jit))[:, None].float()
    b = torch.zeros_like(a)
    truth = np.stack(a_true)[:, None]
    motion = MotionEstimator()(low)
    config = TemporalConfig(strength=0.8, change=1.0)  # the change gate is tested apart
    mc, ema = CoefficientSmoother(config), CoefficientSmoother(TemporalConfig(strength=0.8, motion=None))
    got_mc = torch.cat([mc.step(low[i : i + 1], a[i : i + 1], b[i : i + 1], None, motion.at(i))[0] for i in range(12)])
    got_ema = torch.cat([ema.step(low[i : i + 1], a[i : i + 1], b[i : i + 1])[0] for i in range(12)])

    def error(x):
        return np.abs(x.numpy()[6:, :, 16:-16, 16:-16] - truth[6:, :, 16:-16, 16:-16]).mean()

    raw = error(a)
    assert error(got_mc) < 0.7 * raw  # jitter averaged out
    assert error(got_ema) > error(got_mc) * 1.5  # the static average trails the moving field


def test_a_real_change_of_the_coefficients_is_followed_at_once():
    """The fog thins between two frames: keeping the past would change the output by far more than
    the change gate, so the new coefficients pass (no slow fade, no trail)."""
    low = 0.3 + 0.7 * torch.rand(2, 3, 32, 48)  # no black pixels, where a gain changes nothing
    smoother = CoefficientSmoother(TemporalConfig(strength=0.9))
    grid_motion = MotionEstimator()(torch.cat([low[:1], low[:1]]))
    a0, a1 = torch.full((1, 3, 32, 48), 1.2), torch.full((1, 3, 32, 48), 1.6)
    smoother.step(low[:1], a0, torch.zeros_like(a0), None, grid_motion.at(0))
    got, _ = smoother.step(low[:1], a1, torch.zeros_like(a1), None, grid_motion.at(1))
    assert torch.allclose(got, a1, atol=1e-3)  # not a fade from 1.2 (which would be 1.24 at strength 0.9)
    jitter = a1 + 0.005
    got, _ = smoother.step(low[:1], jitter, torch.zeros_like(a1), None, grid_motion.at(1))
    assert (got - a1).abs().max().item() < 0.003  # a small change is averaged with the past


def test_the_gate_widens_where_the_network_jitters_and_stays_tight_where_it_does_not():
    """Jitter of ±0.05 in the gain (far above the 0.015 least gate) is still averaged once it has been
    seen; on a calm map the same step is taken as a real change and followed."""
    low = 0.3 + 0.7 * torch.rand(1, 3, 32, 48)
    motion = MotionEstimator()(torch.cat([low, low]))
    rng = np.random.default_rng(0)

    def run(gains):
        smoother, out = CoefficientSmoother(TemporalConfig(strength=0.8)), []
        for i, g in enumerate(gains):
            a = torch.full((1, 3, 32, 48), float(g))
            out.append(smoother.step(low, a, torch.zeros_like(a), None, motion.at(min(i, 1)))[0].mean().item())
        return np.array(out)

    jittery = 1.3 + rng.normal(0.0, 0.04, 30)
    smoothed = run(jittery)
    # with the least gate alone (0.015 of output, a gain jitter of about 0.02 here) almost nothing would be averaged
    assert np.abs(np.diff(smoothed[10:])).mean() < 0.6 * np.abs(np.diff(jittery[10:])).mean()
    calm = np.r_[np.full(15, 1.3), np.full(5, 1.35)]
    assert abs(run(calm)[15] - 1.35) < 0.005  # the step is followed at once


def test_frames_between_keyframes_take_the_map_carried_along_the_motion():
    """``--keyframe-interval 2``: on the frames the network skips, the smoother returns the past carried
    along the motion, which sits where the scene is; the keyframe's stale map (plain reuse) does not."""
    field = texture(240, 400, blur=6.0)
    img = texture(240, 400, seed=4)
    lows, truth = [], []
    for i in range(8):
        lows.append(np.dstack([shifted(img, 3.0 * i, 0)[40:200, 40:360]] * 3))
        truth.append(1.0 + shifted(field, 3.0 * i, 0)[40:200, 40:360])
    low = torch.from_numpy(np.stack(lows)).permute(0, 3, 1, 2).float()
    true = torch.from_numpy(np.stack(truth))[:, None].float()
    motion = MotionEstimator()(low)
    smoother = CoefficientSmoother(TemporalConfig(strength=0.8))
    carried, stale = [], []
    for i in range(8):
        key = i % 2 == 0
        a = true[i : i + 1] if key else true[i - 1 : i]  # what the keyframe bank hands a skipped frame
        got, _ = smoother.step(low[i : i + 1], a, torch.zeros_like(a), None, motion.at(i), keyframe=key)
        if not key:
            inner = (..., slice(16, -16), slice(16, -16))
            carried.append((got - true[i : i + 1])[inner].abs().mean().item())
            stale.append((a - true[i : i + 1])[inner].abs().mean().item())
    assert np.mean(carried) < 0.5 * np.mean(stale)
