"""Dark channel prior: its parts against naive references, a synthetic hazy scene, and the SOTS dev splits."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from streamdehaze.metrics import psnr, ssim
from streamdehaze.nets.dcp import DarkChannelPrior, dark_channel
from streamdehaze.nets.registry import load_model
from streamdehaze.ops.color import to_tensor

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
AIRLIGHT = torch.tensor([0.85, 0.9, 0.95])


def naive_dark(x: np.ndarray, patch: int) -> np.ndarray:
    """Min over channels and the clipped window [i - patch//2, i + patch - 1 - patch//2]."""
    m = x.min(axis=1)
    out = np.empty_like(m)
    lo, hi = patch // 2, patch - 1 - patch // 2
    for i in range(m.shape[1]):
        for j in range(m.shape[2]):
            out[:, i, j] = m[:, max(0, i - lo) : i + hi + 1, max(0, j - lo) : j + hi + 1].min(axis=(1, 2))
    return out[:, None]


@pytest.mark.parametrize("patch", [1, 2, 3, 4, 15, 16, 31])
def test_dark_channel_matches_naive(patch):
    x = torch.rand(2, 3, 13, 17, generator=torch.Generator().manual_seed(patch))
    got = dark_channel(x, patch)
    assert got.shape == (2, 1, 13, 17)
    np.testing.assert_array_equal(got.numpy(), naive_dark(x.numpy(), patch))


def hazy_scene(h: int = 96, w: int = 128, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scattering model ``I = J·t + A·(1 − t)`` over saturated colour blocks (dark channel ≈ 0).

    Returns J, t and I; the top 16 rows are "sky" (t = 0.02), below t grows from 0.3 to 0.9.
    """
    g = torch.Generator().manual_seed(seed)
    blocks = torch.rand(1, 3, h // 8, w // 8, generator=g) * 0.8 + 0.1
    blocks = blocks.scatter(1, torch.randint(0, 3, (1, 1, h // 8, w // 8), generator=g), 0.02)
    clear = F.interpolate(blocks, size=(h, w), mode="nearest")
    clear = (clear + 0.03 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)
    t = (0.3 + 0.6 * torch.linspace(0, 1, h)).view(1, 1, h, 1).repeat(1, 1, 1, w)
    t[..., :16, :] = 0.02
    hazy = clear * t + AIRLIGHT.view(1, 3, 1, 1) * (1 - t)
    return clear, t, hazy


@pytest.mark.parametrize("device", DEVICES)
def test_dcp_recovers_synthetic_haze(device):
    clear, t, hazy = hazy_scene()
    dcp = DarkChannelPrior().to(device)
    airlight, t_est = dcp.estimate(hazy.to(device))
    assert airlight.shape == (1, 3) and t_est.shape == (1, 1, 96, 128)
    assert (airlight.cpu() - AIRLIGHT).abs().max() < 0.03
    ground = (..., slice(24, None), slice(None))  # below the sky band
    assert (t_est.cpu() - t)[ground].abs().mean() < 0.06
    out = dcp(hazy.to(device)).cpu()
    assert out.min() >= 0 and out.max() <= 1
    gain = psnr(out[ground], clear[ground]) - psnr(hazy[ground], clear[ground])
    assert gain.item() > 10.0
    assert ssim(out[ground], clear[ground]).item() > ssim(hazy[ground], clear[ground]).item() + 0.15


def test_forward_is_estimate_then_recover_and_batch_independent():
    dcp = DarkChannelPrior()
    a = hazy_scene(seed=1)[2]
    b = hazy_scene(seed=2)[2].flip(-1)
    batch = torch.cat([a, b])
    out = dcp(batch)
    assert torch.equal(out, dcp.recover(batch, *dcp.estimate(batch)))
    assert torch.allclose(out[1:], dcp(b), atol=1e-6)
    # a different airlight changes the recovery: recover really uses its argument
    airlight, t = dcp.estimate(batch)
    assert (dcp.recover(batch, airlight * 0.8, t) - out).abs().max() > 0.05


def test_t0_bounds_the_recovery():
    dcp = DarkChannelPrior(t0=0.5)
    x = torch.full((1, 3, 4, 4), 0.7)
    airlight = torch.tensor([[0.9, 0.9, 0.9]])
    out = dcp.recover(x, airlight, torch.zeros(1, 1, 4, 4))
    assert torch.allclose(out, torch.full_like(x, (0.7 - 0.9) / 0.5 + 0.9))


def test_half_input_tiny_and_dark_frames():
    dcp = DarkChannelPrior()
    x = torch.rand(1, 3, 7, 9, dtype=torch.float16)  # smaller than the 15-pixel patch
    out = dcp(x)
    assert out.dtype == torch.float16 and out.shape == x.shape and torch.isfinite(out).all()
    black = dcp(torch.zeros(2, 3, 20, 20))
    assert torch.equal(black, torch.zeros(2, 3, 20, 20))


def test_guide_radius_scales_with_size_unless_given():
    assert DarkChannelPrior().guide_radius(400, 600) == 60
    assert DarkChannelPrior().guide_radius(720, 1280) == 128
    assert DarkChannelPrior(radius=7).guide_radius(720, 1280) == 7
    with pytest.raises(ValueError):
        DarkChannelPrior(airlight="median")


def test_registry_builds_dcp():
    model = load_model("dcp", device="cpu")
    assert model.device == torch.device("cpu") and model.name == "dcp"
    clear, _, hazy = hazy_scene()
    assert torch.allclose(model(hazy), DarkChannelPrior()(hazy))


# SOTS dev splits: thresholds a standard DCP meets (21.6 / 16.8 dB; hazy inputs 12.1 / 16.1 dB).
DATA = Path(os.environ.get("STREAMDEHAZE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.mark.data
@pytest.mark.parametrize("split,min_psnr,min_ssim", [("sots-indoor/dev", 21.0, 0.84), ("sots-outdoor/dev", 16.5, 0.84)])
def test_dcp_on_sots_dev(split, min_psnr, min_ssim):
    root = DATA / split
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    clear = {p.stem: p for p in (root / "clear").iterdir()}
    hazy_paths = [p for p in sorted((root / "hazy").iterdir()) if p.name.split("_")[0] in clear]
    assert len(hazy_paths) >= 50
    dcp = DarkChannelPrior()
    scores = []
    with torch.no_grad():
        for p in hazy_paths:
            x = to_tensor(_read_rgb(p))
            y = to_tensor(_read_rgb(clear[p.name.split("_")[0]]))
            out = dcp(x)
            scores.append((psnr(out, y).item(), ssim(out, y).item()))
    mean_psnr, mean_ssim = np.mean(scores, axis=0)
    assert mean_psnr >= min_psnr, f"{split}: DCP {mean_psnr:.2f} dB < {min_psnr}"
    assert mean_ssim >= min_ssim, f"{split}: DCP SSIM {mean_ssim:.4f} < {min_ssim}"
