"""Image quality metrics on batches: PSNR and SSIM (Wang et al., 2004).

Inputs are ``(B, C, H, W)`` float tensors in ``[0, data_range]`` on any device; results are
``(B,)`` float32 tensors, one value per image. uint8 images convert with
:func:`streamdehaze.ops.color.to_tensor` (re-exported here).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .ops.color import to_tensor

__all__ = ["psnr", "ssim", "gaussian_window", "to_tensor"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(
            f"expected two (B, C, H, W) tensors of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    x = x.float() if x.dtype in _LOW_PRECISION else x
    return x, y.to(x.dtype)


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image: ``10 · log10(range² / MSE)``, ``(B,)``; ``inf`` where equal.

    The MSE is taken over all channels and pixels of each image.
    """
    x, y = _check_pair(x, y)
    mse = (x - y).pow(2).flatten(1).mean(1)
    return (10.0 * torch.log10(data_range**2 / mse)).float()


def gaussian_window(size: int = 11, sigma: float = 1.5, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalised 1-D Gaussian ``(size,)`` centred on the middle sample."""
    r = torch.arange(size, device=device, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype)


def _filter_valid(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filter of ``(B, C, H, W)`` per channel → ``(B, C, H−k+1, W−k+1)``."""
    c, k = x.shape[1], g.numel()
    x = F.conv2d(x, g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    window: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Structural similarity per image, ``(B,)``.

    Local statistics under an 11-tap Gaussian window (σ 1.5), computed per channel over the
    'valid' region only (no padding: the map is ``(H−10) × (W−10)``, as in Wang et al.'s MATLAB
    code), then averaged over channels and pixels. ``C1 = (k1·L)²``, ``C2 = (k2·L)²``.
    Images smaller than the window raise ``ValueError``.
    """
    x, y = _check_pair(x, y)
    if min(x.shape[-2:]) < window:
        raise ValueError(f"ssim needs images of at least {window}×{window} pixels, got {tuple(x.shape[-2:])}")
    g = gaussian_window(window, sigma, x.device, x.dtype)
    c = x.shape[1]
    stats = _filter_valid(torch.cat([x, y, x * x, y * y, x * y], 1), g)
    mx, my, mxx, myy, mxy = torch.split(stats, c, 1)
    vx, vy, cxy = mxx - mx * mx, myy - my * my, mxy - mx * my
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    smap = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return smap.flatten(1).mean(1).float()


def psnr_from_mse(mse: float, data_range: float = 1.0) -> float:
    """PSNR in dB of a scalar MSE (for averaging MSEs over a data set before converting)."""
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def psnr_in_region(x: torch.Tensor, y: torch.Tensor, masks: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR ``(B,)`` of ``(B, 3, H, W)`` images over the pixels where ``masks`` ``(B, H, W)`` bool is set."""
    m = masks[:, None].expand_as(x)
    return torch.tensor([psnr_from_mse(float(((x[i] - y[i])[m[i]] ** 2).mean()), data_range) for i in range(len(x))])


def psnr_per_frame(out: np.ndarray, clear: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
    """Per-frame PSNR ``(N,)`` of ``(N, H, W, 3)`` uint8 sequences, optionally over ``masks`` ``(N, H, W)``."""
    o, c = to_tensor(out), to_tensor(clear)
    return (psnr(o, c) if masks is None else psnr_in_region(o, c, torch.from_numpy(masks))).numpy()


# Temporal metrics (flicker: flow-warped difference of consecutive outputs) go below this line.

from .flicker import FlickerMeter, FlickerReport, flicker, flicker_many  # noqa: E402

__all__ += ["FlickerMeter", "FlickerReport", "flicker", "flicker_many"]
