"""Guard rails for the guided transfer: no pixel pushed into black or white that the input did not have.

A dehazer's result at the working size is the affine map ``y = a · x + b`` per pixel. Where its haze
estimate exceeds the haze a region really holds (the near road of a foggy drive: real fog thins
towards the camera, SOTS haze does not), ``y`` falls below black and the region's texture is lost
(issue 16 measured 65 → 5 mean luminance on the sample's road). The guard scales the dehazing down
locally, in the same form as ``--strength`` (``a' = 1 + s·(a − 1)``, ``b' = s·b``, so
``y' = x + s·(y − x)``), with the largest ``s`` in [0, 1] that keeps every channel of ``y'`` at
least ``min(x, floor)`` and at most ``max(x, ceiling)``. ``s`` is shared by the three channels (no
hue change), eroded and box-smoothed over a small window, so full-resolution pixels near a
limited one are limited too and no seam shows where the guard starts.

Levels: ``floor`` = 6/255. Clear SOTS images hold few such pixels (0.37 % of outdoor pixels have
a channel at or below 2/255 at a 160 px short side) and indoor ones more (6.1 %, mostly black
furniture), so outputs are kept above the level a clear photograph's shadows keep their texture.
``ceiling`` = 1 − 3/255 keeps skies from being pushed into flat white.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .guided import box_filter

Tensor = torch.Tensor

FLOOR = 6 / 255
CEILING = 1 - 3 / 255


def guard_strength(x: Tensor, a: Tensor, b: Tensor, floor: float = FLOOR, ceiling: float = CEILING) -> Tensor:
    """Per-pixel largest ``s`` in [0, 1] keeping ``x + s·(a·x + b − x)`` within the bounds, ``(B, 1, h, w)``.

    ``x``, ``a``, ``b``: ``(B, 3, h, w)`` float at the working size, ``x`` in [0, 1].
    """
    y = a * x + b
    lo = torch.minimum(x, torch.full_like(x, floor))
    hi = torch.maximum(x, torch.full_like(x, ceiling))
    tiny = 1e-6
    # below the floor: x − s(x − y) >= lo  →  s <= (x − lo) / (x − y), with x − y > 0 there
    s_lo = torch.where(y < lo, (x - lo) / (x - y).clamp_min(tiny), torch.ones_like(x))
    s_hi = torch.where(y > hi, (hi - x) / (y - x).clamp_min(tiny), torch.ones_like(x))
    return torch.minimum(s_lo, s_hi).amin(1, keepdim=True).clamp_(0.0, 1.0)


def guard_coefficients(
    x: Tensor, a: Tensor, b: Tensor, radius: int = 2, floor: float = FLOOR, ceiling: float = CEILING
) -> tuple[Tensor, Tensor]:
    """``(a, b)`` with the dehazing scaled down where it would crush shadows or highlights.

    ``x``, ``a``, ``b``: ``(B, 3, h, w)`` float at the working size. ``radius``: the window (working-size
    pixels) the per-pixel strength is eroded and then smoothed over. Where nothing is out of
    bounds the coefficients come back unchanged (``s`` = 1 exactly).
    """
    s = guard_strength(x, a, b, floor, ceiling)
    if s.device.type == "cpu" and bool((s == 1).all()):  # nothing binds (a host check costs nothing on the CPU)
        return a, b
    if radius > 0:
        # erosion: the neighbours of a limited pixel are limited too; then the box filter (each output
        # at most the pixel's own s, since every eroded value in its window is) removes the seams
        s = -F.max_pool2d(-s, 2 * radius + 1, stride=1, padding=radius)
        s = box_filter(s, radius)
    return 1 + s * (a - 1), s * b
