"""The guided transfer, stateless: downscale, the affine fit ``y ≈ a · x + b`` at the working size,
its presets, the strength control and the whole one-image path.

Shared by the engine (:mod:`streamdehaze.pipeline.core` and :mod:`~streamdehaze.pipeline.stages`),
still images (:func:`streamdehaze.images.dehaze_image`) and the trainer (``--fit-loss``, validation),
so all of them see the same fit. Nothing here keeps state between calls.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..choices import (  # noqa: F401 - re-exported: the presets live in choices (no torch for --help)
    DEFAULT_GUARD,
    DEFAULT_TRANSFER_FIT,
    STILLS_TRANSFER_FIT,
    TRANSFER_FITS,
    TransferFit,
    check_transfer_fit,
)
from ..errors import InputError
from .guard import guard as guard_rails
from .guided import apply_affine, fit_affine_gains

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
    return _centred_fits(low, y, radius, eps, (shared_gain,))[0]


def _centred_fits(
    low: Tensor, y: Tensor, radius: int | None, eps: float, gains: tuple[bool, ...]
) -> list[tuple[Tensor, Tensor]]:
    """:func:`fit_coefficients` once per entry of ``gains`` (its ``shared_gain``), from one pass of statistics."""
    r = radius if radius is not None else default_radius(*low.shape[-2:])
    mx, my = low.mean((2, 3), keepdim=True), y.mean((2, 3), keepdim=True)
    return [(a, b + my - a * mx) for a, b in fit_affine_gains(low - mx, y - my, r, eps, gains)]


def guarded_fit(
    low: Tensor, y: Tensor, radius: int, eps: float, shared_gain: bool, guard: str = DEFAULT_GUARD
) -> tuple[Tensor, Tensor]:
    """:func:`fit_coefficients` then the guard rails of ``guard`` (:func:`streamdehaze.ops.guard.guard`).

    With ``guard`` ``on`` and a gain per channel, the tint is measured on a shared-gain fit of the
    same result (:func:`~streamdehaze.ops.guard.limit_tint`'s ``reference``), from the same window statistics.
    """
    if guard == "on" and not shared_gain:
        (a, b), reference = _centred_fits(low, y, radius, eps, (False, True))
        return guard_rails(low, a, b, guard, reference=reference)
    a, b = fit_coefficients(low, y, radius, eps, shared_gain)
    return guard_rails(low, a, b, guard)


def downscale(x: Tensor, size: tuple[int, int]) -> Tensor:
    """``(B, 3, H, W)`` → ``(B, 3, h, w)`` float32, antialiased bilinear (``x`` as float32 when already that size)."""
    x = x.float()
    if tuple(size) == tuple(x.shape[-2:]):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)


def downscale_uint8(images: Tensor, size: tuple[int, int]) -> Tensor:
    """uint8 ``(B, H, W, 3)`` frames → ``(B, 3, h, w)`` float32 in [0, 1] at ``size``, as :func:`downscale` shrinks
    their float version (antialiased bilinear), but read as 8-bit: on the CPU torch's uint8 kernel takes
    0.7 ms per 720p frame, the float frames' conversion and shrink 9.3. Its results are rounded to 8 bits
    (within one level of the float shrink's, 0.26 on average at 1280×720 → 284×160)."""
    x = images.permute(0, 3, 1, 2)  # a channels-last view, as the uint8 kernel wants it
    if tuple(size) != tuple(x.shape[-2:]):
        x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return x.float().div_(255.0)


def check_strength(strength: float) -> float:
    if not 0.0 <= float(strength) <= 1.0:
        raise InputError(f"--strength {strength}: expected a number in [0, 1] (0 = the input, 1 = full dehazing)")
    return float(strength)


def strengthen(a: Tensor, b: Tensor, strength: float) -> tuple[Tensor, Tensor]:
    """The map ``y = a · x + b`` with ``strength`` S of its effect: ``a' = 1 + S (a − 1)``, ``b' = S b``.

    S = 1 returns ``a, b`` themselves (bit-identical); S = 0 gives the identity map.
    """
    if strength == 1.0:
        return a, b
    return torch.lerp(torch.ones_like(a), a, strength), b * strength


def blend(x: Tensor, y: Tensor, strength: float) -> Tensor:
    """``x + S (y − x)``: the same control for an output ``y`` that is not held as coefficients.

    ``x``, ``y`` ``(B, 3, H, W)`` in [0, 1]; returns ``y``'s dtype. S = 1 returns ``y`` itself.
    """
    if strength == 1.0:
        return y
    return torch.lerp(x.to(y.dtype), y, strength)


def transfer(
    run_model: Callable[[Tensor], Tensor],
    x: Tensor,
    size: tuple[int, int],
    fit: str = DEFAULT_TRANSFER_FIT,
    radius: int | None = None,
    eps: float = 1e-4,
    strength: float = 1.0,
    shared_gain: bool | None = None,
    guard: str = DEFAULT_GUARD,
) -> Tensor:
    """One batch of unrelated images ``x`` ``(B, 3, H, W)`` in [0, 1] dehazed through the working size ``size``.

    ``run_model``: ``(B, 3, h, w)`` → ``(B, 3, h, w)`` in [0, 1]. At full size (``size`` = ``(H, W)``)
    the network's own output, else downscale → network → fit ``(a, b)`` → apply to ``x``
    (float32 out). ``strength``: see :func:`strengthen`; ``radius``/``shared_gain`` None: ``fit``'s;
    ``guard``: the guard rails after the fit (a :data:`~streamdehaze.choices.GUARDS` name,
    :func:`streamdehaze.ops.guard.guard`). No keyframes, no smoothing: the engine's stateful stages add
    those for streams.
    """
    if tuple(size) == tuple(x.shape[-2:]):
        return blend(x, run_model(x), strength)
    with torch.autocast(x.device.type, enabled=False):
        low = downscale(x, size)
        y = run_model(low).float()
        r = radius if radius is not None else default_radius(*low.shape[-2:], fit)
        gain = TRANSFER_FITS[fit].shared_gain if shared_gain is None else shared_gain
        a, b = guarded_fit(low, y, r, eps, gain, guard)
        return apply_affine(*strengthen(a, b, strength), x.float())
