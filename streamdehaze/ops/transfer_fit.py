"""The guided transfer's affine fit: ``y ≈ a · x + b`` per pixel at the working size, and its presets.

Shared by the engine (:mod:`streamdehaze.pipeline.transfer`) and the trainer (``--fit-loss``), so
both see the same fit.
"""

from __future__ import annotations

import torch

from ..choices import (  # noqa: F401 - re-exported: the presets live in choices (no torch for --help)
    DEFAULT_TRANSFER_FIT,
    TRANSFER_FITS,
    TransferFit,
    check_transfer_fit,
)
from .guided import fit_affine

Tensor = torch.Tensor


def default_radius(height: int, width: int, fit: str = DEFAULT_TRANSFER_FIT) -> int:
    """Box radius of the affine fit at the working size: the short side / the fit's divisor, at least 1.

    ``local`` (1/60) was chosen on SOTS dev at 1/2 working size (``benchmarks/work_size_quality.py
    --radius``): radius 4 at a 230-pixel short side lost 0.32/−0.14 dB (indoor/outdoor) against
    0.66/0.54 dB at radius 1. A wider window scores higher on still images but flickers more in
    video: with the shipped AECR-Net at short side 160, 1/20 (radius 8) gave 24.99/25.50 dB on the
    dev splits against 24.80/25.18, and with DCP (``benchmarks/temporal_quality.py --model dcp
    --work-size auto``) it left the default ``ema`` smoothing at 0.885× the frame-by-frame flicker,
    above that mode's 0.8× bar (0.779× at 1/60 when the bar was set).
    """
    return max(1, round(min(height, width) / TRANSFER_FITS[fit].divisor))


def fit_coefficients(
    low: Tensor, y: Tensor, radius: int | None = None, eps: float = 1e-4, shared_gain: bool = False
) -> tuple[Tensor, Tensor]:
    """The transfer's ``(a, b)`` ``(B, 3, h, w)`` for ``y ≈ a · low + b``: :func:`fit_affine` on data
    centred per frame and channel (float32 variances of values near 0.8 lose digits to cancellation;
    centred ones near 0 do not), then ``b`` moved back. ``radius`` None: :func:`default_radius`.

    Differentiable: ``train fit --fit-loss`` puts it behind the network, so training sees the
    result that inference delivers.
    """
    r = radius if radius is not None else default_radius(*low.shape[-2:])
    mx, my = low.mean((2, 3), keepdim=True), y.mean((2, 3), keepdim=True)
    a, b = fit_affine(low - mx, y - my, r, eps, shared_gain)
    return a, b + my - a * mx
