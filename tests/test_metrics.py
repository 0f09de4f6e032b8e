"""PSNR and SSIM against hand computations and a numpy reference; uint8 ↔ float conversion."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from streamdehaze.errors import InputError
from streamdehaze.metrics import gaussian_window, psnr, psnr_from_mse, ssim
from streamdehaze.ops.color import to_tensor, to_uint8

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def test_psnr_by_hand():
    x = torch.zeros(2, 3, 4, 5)
    y = torch.zeros(2, 3, 4, 5)
    y[0] += 0.1  # MSE 0.01 → 20 dB
    y[1, 0, 0, 0] = 0.6  # MSE 0.36 / 60 = 0.006
    got = psnr(x, y)
    assert got.shape == (2,)
    assert got[0].item() == pytest.approx(20.0, abs=1e-4)
    assert got[1].item() == pytest.approx(10 * math.log10(1 / 0.006), abs=1e-4)
    assert psnr(x * 255, y * 255, data_range=255.0)[0].item() == pytest.approx(20.0, abs=1e-4)
    assert math.isinf(psnr(y, y)[0].item())
    assert psnr_from_mse(0.01) == pytest.approx(20.0) and math.isinf(psnr_from_mse(0.0))


def test_psnr_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        psnr(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))


def ssim_reference(x: np.ndarray, y: np.ndarray, size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Wang et al.'s SSIM, one window position at a time ('valid' region), per image of (B, C, H, W)."""
    r = np.arange(size) - (size - 1) / 2
    g1 = np.exp(-(r**2) / (2 * sigma**2))
    w = np.outer(g1, g1) / np.outer(g1, g1).sum()
    c1, c2 = 0.01**2, 0.03**2
    out = []
    for xb, yb in zip(x, y, strict=True):
        vals = []
        for xc, yc in zip(xb, yb, strict=True):
            for i in range(xc.shape[0] - size + 1):
                for j in range(xc.shape[1] - size + 1):
                    px, py = xc[i : i + size, j : j + size], yc[i : i + size, j : j + size]
                    mx, my = (w * px).sum(), (w * py).sum()
                    vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
                    cxy = (w * (px - mx) * (py - my)).sum()
                    vals.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
        out.append(np.mean(vals))
    return np.array(out)


@pytest.mark.parametrize("device", DEVICES)
def test_ssim_matches_reference(device):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 19, generator=g)
    y = (0.6 * x + 0.4 * torch.rand(2, 3, 16, 19, generator=g)).clamp(0, 1)
    got = ssim(x.to(device), y.to(device)).cpu()
    ref = ssim_reference(x.double().numpy(), y.double().numpy())
    assert got.shape == (2,)
    np.testing.assert_allclose(got.numpy(), ref, atol=2e-5)
    assert 0.2 < ref.min() and ref.max() < 0.95  # a non-trivial pair, not 0 or 1


def test_ssim_identical_is_one_and_decreases_with_noise():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 3, 32, 32, generator=g)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)
    noise = torch.randn(1, 3, 32, 32, generator=g)
    scores = [ssim(x, (x + s * noise).clamp(0, 1)).item() for s in (0.01, 0.05, 0.1, 0.3)]
    assert all(a > b for a, b in zip(scores, scores[1:], strict=False)), scores
    with pytest.raises(ValueError):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_gaussian_window_is_normalised_and_symmetric():
    g = gaussian_window(11, 1.5)
    assert g.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(g, g.flip(0)) and g.argmax().item() == 5


def test_color_roundtrip_every_value():
    values = np.arange(256, dtype=np.uint8)
    img = np.stack([values, values[::-1], np.roll(values, 7)], -1).reshape(16, 16, 3)
    x = to_tensor(img)
    assert x.shape == (1, 3, 16, 16) and x.dtype == torch.float32
    assert x.min().item() == 0.0 and x.max().item() == 1.0
    assert x[0, 0, 0, 1].item() == pytest.approx(1 / 255)
    back = to_uint8(x)
    assert back.shape == (1, 16, 16, 3) and back.dtype == torch.uint8
    np.testing.assert_array_equal(back[0].numpy(), img)
    batch = torch.from_numpy(np.stack([img, img[::-1]]))
    assert torch.equal(to_uint8(to_tensor(batch)), batch)


def test_to_uint8_rounds_half_up_and_clamps():
    x = torch.tensor([-0.2, 0.0, 0.4 / 255, 0.5 / 255, 1.5 / 255, 254.49 / 255, 1.0, 1.7, float("nan")])
    x = x.view(1, 1, 1, 9).expand(1, 3, 1, 9)
    assert to_uint8(x)[0, 0, :, 0].tolist() == [0, 0, 0, 1, 2, 254, 255, 255, 0]


def test_to_tensor_dtype_device_and_errors():
    img = np.full((4, 5, 3), 51, np.uint8)
    x = to_tensor(img, device="cpu", dtype=torch.float16)
    assert x.dtype == torch.float16 and x.shape == (1, 3, 4, 5)
    assert x.float().mean().item() == pytest.approx(0.2, abs=1e-3)
    with pytest.raises(InputError, match="uint8"):
        to_tensor(img.astype(np.float32))
    with pytest.raises(InputError, match="shape"):
        to_tensor(np.zeros((4, 5, 4), np.uint8))
    with pytest.raises(InputError, match=r"\(B, 3, H, W\)"):
        to_uint8(torch.zeros(1, 4, 2, 2))
