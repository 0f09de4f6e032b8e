"""Box filter, guided filter and the affine fit/transfer against naive references and known maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from streamdehaze.ops.guided import apply_affine, box_filter, fit_affine, guided_filter, rgb_to_gray

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def naive_box(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over the clipped (2r+1)² window, pixel by pixel."""
    out = np.empty_like(x)
    h, w = x.shape[-2:]
    for i in range(h):
        for j in range(w):
            win = x[..., max(0, i - r) : i + r + 1, max(0, j - r) : j + r + 1]
            out[..., i, j] = win.mean(axis=(-2, -1))
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("radius", [0, 1, 3, 6, 40])
def test_box_filter_matches_naive(device, radius):
    x = torch.rand(2, 3, 11, 14, dtype=torch.float64, generator=torch.Generator().manual_seed(radius))
    got = box_filter(x.to(device), radius).cpu()
    np.testing.assert_allclose(got.numpy(), naive_box(x.numpy(), radius), rtol=0, atol=1e-12)


def test_box_sums_every_length_and_radius():
    # all branches of the slice arithmetic: windows inside, clipped at one or both ends, radius >= length
    for n in range(1, 10):
        x = torch.rand(1, 2, n, n + 3, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
        for r in range(12):
            np.testing.assert_allclose(box_filter(x, r).numpy(), naive_box(x.numpy(), r), atol=1e-12)


def test_box_filter_float32_large_image_accuracy():
    # cumulative sums over a 720p frame must not lose the window means
    x = torch.rand(1, 1, 720, 1280, generator=torch.Generator().manual_seed(0))
    got = box_filter(x, 20)
    ref = F.avg_pool2d(x.double(), 41, stride=1)  # interior windows only
    assert (got[..., 20:-20, 20:-20].double() - ref).abs().max() < 1e-5


def test_box_filter_half_keeps_dtype_and_constant():
    x = torch.full((1, 2, 9, 9), 0.3, dtype=torch.float16)
    y = box_filter(x, 4)
    assert y.dtype == torch.float16 and y.shape == x.shape
    assert torch.allclose(y.float(), torch.full_like(y.float(), 0.3), atol=1e-3)


def test_box_filter_rejects_negative_radius():
    with pytest.raises(ValueError):
        box_filter(torch.zeros(1, 1, 4, 4), -1)


@pytest.mark.parametrize("device", DEVICES)
def test_guided_filter_self_guided_with_tiny_eps_returns_src(device):
    x = torch.rand(2, 1, 24, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).to(device)
    q = guided_filter(x, x, radius=3, eps=1e-10)
    assert (q - x).abs().max() < 1e-6
    # with a large eps the same filter is a strong smoother, so the check above can fail
    assert (guided_filter(x, x, radius=3, eps=1.0) - x).abs().max() > 0.1


def test_guided_filter_constant_src_stays_constant():
    g = torch.Generator().manual_seed(2)
    guide = torch.rand(1, 1, 20, 25, generator=g)
    src = torch.full((1, 3, 20, 25), 0.42)
    q = guided_filter(guide, src, radius=4, eps=1e-3)
    assert q.shape == src.shape
    assert (q - 0.42).abs().max() < 1e-6


def test_guided_filter_denoises_and_keeps_edges():
    # a clean step edge as guide, the same step plus noise as src
    clean = torch.zeros(1, 1, 40, 40)
    clean[..., 20:] = 1.0  # columns 20 and beyond
    noisy = clean + 0.1 * torch.randn(1, 1, 40, 40, generator=torch.Generator().manual_seed(3))
    q = guided_filter(clean, noisy, radius=4, eps=1e-2)
    assert F.mse_loss(q, clean) < F.mse_loss(noisy, clean) / 5
    box = box_filter(noisy, 4)  # a plain blur would smear the edge
    assert (q[..., 19:21] - clean[..., 19:21]).abs().mean() < 0.05
    assert (box[..., 19:21] - clean[..., 19:21]).abs().mean() > 0.3


def test_gray_guide_broadcasts_over_channels():
    g = torch.Generator().manual_seed(4)
    guide, src = torch.rand(2, 1, 16, 18, generator=g), torch.rand(2, 3, 16, 18, generator=g)
    q = guided_filter(guide, src, radius=2, eps=1e-2)
    for c in range(3):
        assert torch.allclose(q[:, c : c + 1], guided_filter(guide, src[:, c : c + 1], 2, 1e-2), atol=1e-6)


def test_rgb_to_gray_weights():
    x = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]).view(3, 3, 1, 1)
    assert torch.allclose(rgb_to_gray(x).flatten(), torch.tensor([0.299, 0.587, 0.114]))


@pytest.mark.parametrize("device", DEVICES)
def test_fit_apply_affine_recovers_global_map(device):
    gen = torch.Generator().manual_seed(5)
    low_in = torch.rand(2, 3, 24, 32, dtype=torch.float64, generator=gen).to(device)
    gain = torch.tensor([[0.5, 0.7, 0.9], [0.6, 0.8, 0.4]], dtype=torch.float64, device=device).view(2, 3, 1, 1)
    bias = torch.tensor([[0.1, 0.05, 0.0], [0.2, 0.1, 0.3]], dtype=torch.float64, device=device).view(2, 3, 1, 1)
    a, b = fit_affine(low_in, gain * low_in + bias, radius=3, eps=1e-12)
    assert a.shape == b.shape == (2, 3, 24, 32)
    assert (a - gain).abs().max() < 1e-6 and (b - bias).abs().max() < 1e-6
    full_in = torch.rand(2, 3, 96, 128, dtype=torch.float64, generator=gen).to(device)
    out = apply_affine(a, b, full_in)
    assert out.shape == full_in.shape
    assert (out - (gain * full_in + bias)).abs().max() < 1e-6


def smooth_field(h: int, w: int, lo: float, hi: float, phase: float) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    f = 0.5 + 0.5 * torch.sin(2 * math.pi * (0.7 * xx + 0.4 * yy) + phase)
    return (lo + (hi - lo) * f).view(1, 1, h, w)


def test_guided_transfer_of_smooth_map_beats_upsampling():
    # full-resolution truth: a spatially varying affine map of a textured frame
    h, w, scale = 128, 160, 4
    gen = torch.Generator().manual_seed(6)
    full_in = F.interpolate(torch.rand(1, 3, h // 2, w // 2, generator=gen), size=(h, w), mode="bilinear")
    gain = torch.cat([smooth_field(h, w, 0.5, 1.2, p) for p in (0.0, 1.0, 2.0)], 1)
    bias = torch.cat([smooth_field(h, w, -0.1, 0.1, p) for p in (0.5, 1.5, 2.5)], 1)
    full_out = (gain * full_in + bias).clamp(0, 1)
    # the "model" sees and produces the downscaled frame
    low_in = F.interpolate(full_in, scale_factor=1 / scale, mode="area")
    low_out = F.interpolate(full_out, scale_factor=1 / scale, mode="area")
    a, b = fit_affine(low_in, low_out, radius=2, eps=1e-4)
    transferred = apply_affine(a, b, full_in)
    upsampled = F.interpolate(low_out, size=(h, w), mode="bilinear", align_corners=False)
    err_t = (transferred - full_out).abs().mean().item()
    err_u = (upsampled - full_out).abs().mean().item()
    assert err_t < 0.02, err_t
    assert err_t < err_u / 5, (err_t, err_u)


def test_apply_affine_clamps_and_checks_channels():
    a = torch.full((1, 3, 2, 2), 2.0)
    b = torch.full((1, 3, 2, 2), -0.5)
    out = apply_affine(a, b, torch.linspace(0, 1, 3 * 16).view(1, 3, 4, 4))
    assert out.min() == 0.0 and out.max() == 1.0
    with pytest.raises(ValueError):
        fit_affine(torch.rand(1, 2, 8, 8), torch.rand(1, 3, 8, 8), 1, 1e-3)


@pytest.mark.parametrize("device", DEVICES)
def test_shared_gain_fit_recovers_the_scattering_form_and_pools_channel_gains(device):
    gen = torch.Generator().manual_seed(7)
    x = torch.rand(1, 3, 24, 32, dtype=torch.float64, generator=gen).to(device)
    offset = torch.tensor([0.3, 0.25, 0.2], dtype=torch.float64, device=device).view(1, 3, 1, 1)
    a, b = fit_affine(x, 1.6 * x - offset, radius=3, eps=1e-12, shared_gain=True)  # J = I/t + A(1 − 1/t)
    assert (a - 1.6).abs().max() < 1e-6 and (b + offset).abs().max() < 1e-6
    # gains that differ per channel: one gain for all (between them), unlike the per-channel fit
    gains = torch.tensor([0.5, 1.0, 1.5], dtype=torch.float64, device=device).view(1, 3, 1, 1)
    shared, _ = fit_affine(x, gains * x, radius=3, eps=1e-12, shared_gain=True)
    per_channel, _ = fit_affine(x, gains * x, radius=3, eps=1e-12)
    assert (shared - shared[:, :1]).abs().max() < 1e-12 and 0.5 < float(shared.mean()) < 1.5
    assert (per_channel - gains).abs().max() < 1e-6
    with pytest.raises(ValueError, match="shared gain needs 3 input channels"):
        fit_affine(x[:, :1], x, radius=3, eps=1e-4, shared_gain=True)


@pytest.mark.parametrize("radius", [1, 3, 40])
def test_box_filter_and_fit_differentiate_like_the_naive_sums(radius):
    # train fit --fit-loss backpropagates through the fit: same values, and gradients that gradcheck accepts
    x = torch.rand(1, 2, 9, 13, dtype=torch.float64, generator=torch.Generator().manual_seed(radius))
    xg = x.clone().requires_grad_(True)
    np.testing.assert_allclose(box_filter(xg, radius).detach().numpy(), naive_box(x.numpy(), radius), atol=1e-12)
    assert torch.autograd.gradcheck(lambda t: box_filter(t, radius), (xg,))
    y = (0.7 * x + 0.1 * torch.rand_like(x)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: fit_affine(x, t, radius, 1e-3, shared_gain=True), (y,))


@pytest.mark.parametrize("radius", [1, 3, 8])
def test_box_filter_fast_cpu_path_equals_the_differentiable_one(radius):
    """On the CPU without gradients the sums come from OpenCV; with gradients from cumulative sums."""
    x = torch.rand(2, 3, 37, 53, generator=torch.Generator().manual_seed(radius))
    slow = box_filter(x.clone().requires_grad_(), radius)
    assert slow.requires_grad  # the torch path: training's --fit-loss differentiates through it
    torch.testing.assert_close(box_filter(x, radius), slow.detach(), atol=1e-5, rtol=0)  # float32 rounding


@pytest.mark.parametrize("radius", [1, 3, 40])
@pytest.mark.parametrize("guide", [1, 3])
def test_the_opencv_fit_equals_the_torch_fit_and_serves_both_gains_from_one_pass(radius, guide):
    """The OpenCV fit (CPU, no gradients) does the torch code's arithmetic in its order: equal to the last
    bit with the same box sums; both gains of one call equal the fits made one at a time."""
    from streamdehaze.ops.cpu_kernels import affine_fits
    from streamdehaze.ops.guided import _fit_affine_torch, fit_affine_gains

    g = torch.Generator().manual_seed(radius + guide)
    x = torch.rand(2, guide, 31, 45, generator=g) - 0.5
    y = 0.8 * x.expand(-1, 3, -1, -1) + 0.1 * torch.rand(2, 3, 31, 45, generator=g) - 0.05
    gains = (False, True) if guide == 3 else (False,)
    fast, slow = affine_fits(x, y, radius, 1e-4, gains), _fit_affine_torch(x, y, radius, 1e-4, gains)
    for (a, b), (a_ref, b_ref) in zip(fast, slow):
        assert torch.equal(a, a_ref) and torch.equal(b, b_ref)
    for shared, (a, b) in zip(gains, fit_affine_gains(x, y, radius, 1e-4, gains)):
        a_one, b_one = fit_affine(x, y, radius, 1e-4, shared_gain=shared)
        assert torch.equal(a, a_one) and torch.equal(b, b_one)
    if guide == 3:  # the shared gain really is one gain, the per-channel fit not
        (a_own, _), (a_shared, _) = fast
        assert torch.equal(a_shared[:, 0], a_shared[:, 2]) and not torch.equal(a_own[:, 0], a_own[:, 2])
