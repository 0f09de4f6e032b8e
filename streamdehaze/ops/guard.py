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

Levels: ``floor`` = 8/255, the luminance at which issue 16 counts a shadow as crushed. Clear SOTS
images hold few pixels that dark (0.37 % of outdoor pixels have a channel at or below 2/255 at a
160 px short side; indoors 6.1 %, mostly black furniture). With the shipped model at its working
size, floors of 6, 8 and 12 levels left 6.6 %, 0.14 % and 0 % of the foggy drive's pixels at
luminance <= 8 (from 8.6 % without the guard) and gave 24.79 / 25.27 dB on sots-indoor/outdoor dev
at 8 (24.80 / 25.18 without), 24.61 / 25.30 at 12.
``ceiling`` = 1 − 3/255 keeps skies from being pushed into flat white.

Haze-free regions: :func:`haze_free_strength` scales the dehazing down where the input's dark
channel (the darkest channel over a patch) is below 25/255, the level under which He et al. found
90% of haze-free outdoor dark-channel pixels; full dehazing from there up. Clear input comes back
nearly unchanged: the clear images of ``sots-indoor/dev`` / ``sots-outdoor/dev`` given as input
scored 31.27 / 28.88 dB against themselves with it, 29.98 / 28.23 without (shipped file, ``eval``'s
defaults); the hazy SOTS dev images and the foggy drive scored the same to the last digit, the
real pairs within 0.002 levels of colour shift (their dark channel is above the level almost
everywhere). 0.05 gave 30.76 / 28.51, 0.2 33.11 / 29.92 (and −0.06 dB on ``sots-outdoor/dev``),
0.3 cost 0.3 dB on both dev splits; the level is the prior's, not one of these. What the rail
cannot hold is a clear blue sky or a sunlit wall (bright in every channel, so "hazy" to the prior).

Clear frames: :func:`clear_frame_strength` scales the whole frame's dehazing by its haze floor over
the same 25/255. The floor is the level that the darkest tenth of the dark channel reaches in each
tile of a 4 × 4 grid, taken at the median tile. Haze lies in front of nearly everything in a frame
and lifts the floor everywhere; a clear frame keeps dark pixels in most tiles, so its bright regions
are left alone too. At the shipped model's working size the floors are: clear ``sots-outdoor/train``
median 20.7/255 (10% below 9.0), clear ``sots-indoor/train`` median 1.4; hazy ``sots-indoor/train``
at least 31.5, the real pairs 99.1, the foggy drive 73.0, so no hazy image of the data is touched.
With the bottom 30% of each hazy image made dark (a dashboard) they stay at least 26.3 / 39.1 / 72.3.
A floor over the whole frame (its darkest tenth, full dehazing from 12.5/255), tried first, did
better on clear input (``sots-outdoor/dev`` 32.11 dB) but a dashboard over a quarter of a foggy frame
put the floor of hazy images at 2–10/255, which would have stopped the dehazing of such footage.
Measured (``eval``'s defaults, shipped file): clear ``sots-outdoor/train`` images 30.13 → 33.73 dB,
``sots-indoor/train/hazy`` 27.49 → 27.49; then once on the dev splits: clear input at 30.37 dB
outdoors (28.88 without) and ``inf`` indoors, where 2 of the 5 images come back identical (the
others 55.2 / 56.6 / 33.9 dB; 31.27 without); the hazy SOTS dev images (24.64 / 25.78), the
foggy drive and the real pairs score the same to the last digit.

Colour: :func:`limit_tint` keeps a frame's mean blue−red and green−magenta balance within 3 levels
(8-bit) of a grey dehazing's: the same per-pixel brightness, with the input's own colours scaled
by the gain, as removing grey airlight does. A dehazing legitimately makes a scene's colours
stronger by its gain ``1/t``; a tint on top of that is the network's own (issue 16: the shipped
model turned the white haze of the real pairs blue, +22.6 levels of blue−red). The correction is a
per-frame offset per channel with zero mean, so brightness and local contrast stay as the network
made them. Limiting the balance against the input's instead (at most 3 levels of shift, whatever
the gain) cost 0.9 dB on ``sots-indoor/dev`` (24.15 against 25.02 dB with the shipped file),
where restoring the scenes' colours moves the balance by more than that; against the grey
dehazing it cost 0.2 dB there and took the real pairs' tint from +22.6 to +4.9 levels.
"""

from __future__ import annotations

import torch

from .guided import box_filter, dark_channel, min_filter

Tensor = torch.Tensor

FLOOR = 8 / 255
CEILING = 1 - 3 / 255
COLOUR_TOLERANCE = 3 / 255
HAZE_FREE_DARK = 25 / 255  # He et al.: 90% of haze-free outdoor dark-channel pixels lie below it
FLOOR_SHARE = 0.1  # a tile's haze floor: the level its darkest tenth of dark-channel pixels reach
FLOOR_TILES = 4  # a frame's haze floor: the upper median of its tiles' floors in a 4 x 4 grid


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
    bounds the coefficients come back unchanged up to rounding (``s`` = 1).
    """
    s = guard_strength(x, a, b, floor, ceiling)  # no host check of "nothing binds": the core never syncs
    if radius > 0:
        # erosion: the neighbours of a limited pixel are limited too; then the box filter (each output
        # at most the pixel's own s, since every eroded value in its window is) removes the seams
        s = min_filter(s, 2 * radius + 1)
        s = box_filter(s, radius)
    return 1 + s * (a - 1), s * b


def _balance(z: Tensor) -> tuple[Tensor, Tensor]:
    """Mean blue−red and green−magenta of ``(B, 3, h, w)`` per frame, ``(B,)`` each."""
    r, g, b = z.mean((2, 3)).unbind(1)
    return b - r, g - (r + b) / 2


def limit_tint(
    x: Tensor, a: Tensor, b: Tensor, tolerance: float = COLOUR_TOLERANCE, reference: tuple[Tensor, Tensor] | None = None
) -> tuple[Tensor, Tensor]:
    """``(a, b)`` whose output keeps each frame's colour balance within ``tolerance`` of a grey dehazing's.

    ``x``, ``a``, ``b``: ``(B, 3, h, w)`` float at the working size. The grey dehazing has, per pixel,
    the channels' mean gain and offset (``mean_c a``, ``mean_c b``): the same brightness, and the
    input's own colours scaled by the gain, as removing grey airlight does. Only the tint beyond
    that is removed, by offsets ``(c_r, c_g, c_b)`` with ``c_r + c_g + c_b = 0``.

    ``reference``: the same result fitted with one gain for the three channels, to measure the tint
    on when ``(a, b)`` has a gain per channel: a local per-channel fit spreads the network's colours
    over the gains, and their channel mean is no grey dehazing. With the shipped file and the
    ``local`` fit, the rail cost 1.4 / 0.0 dB on ``sots-indoor/dev`` / ``sots-outdoor/dev`` measured
    on the per-channel fit itself, 0.8 / 0.07 dB on the shared-gain reference (``wide``: 0.2 / 0.0).
    """
    ra, rb = reference if reference is not None else (a, b)
    grey = ra.mean(1, keepdim=True) * x + rb.mean(1, keepdim=True)
    (br_y, gm_y), (br_g, gm_g) = _balance(ra * x + rb), _balance(grey)
    e1, e2 = br_y - br_g, gm_y - gm_g
    e1, e2 = e1 - e1.clamp(-tolerance, tolerance), e2 - e2.clamp(-tolerance, tolerance)
    # solve c_b − c_r = −e1, c_g − (c_r + c_b)/2 = −e2, c_r + c_g + c_b = 0
    c = torch.stack([e2 / 3 + e1 / 2, -2 * e2 / 3, e2 / 3 - e1 / 2], 1)
    return a, b + c.view(-1, 3, 1, 1).to(b.dtype)


def haze_free_strength(x: Tensor, radius: int) -> Tensor:
    """Per-pixel strength in [0, 1] from the input's dark channel, ``(B, 1, h, w)``: 0 where a patch holds
    a pixel with a channel at 0 (no haze in front of it), 1 from :data:`HAZE_FREE_DARK` up, box-smoothed,
    times the frame's own strength (:func:`clear_frame_strength`).

    The dark channel prior (He, Sun and Tang, CVPR 2009): in haze-free outdoor images most patches hold
    a pixel that is dark in some channel; haze lifts it by the airlight's share ``A(1 − t)``.
    """
    dark = dark_channel(x, 2 * radius + 1)
    local = box_filter((dark / HAZE_FREE_DARK).clamp(0.0, 1.0), radius)
    return local * clear_frame_strength(dark).to(local.dtype)


def clear_frame_strength(dark: Tensor, tiles: int = FLOOR_TILES) -> Tensor:
    """Per-frame strength ``(B, 1, 1, 1)`` in [0, 1]: the frame's haze floor over :data:`HAZE_FREE_DARK`.

    The floor: in each tile of a ``tiles`` × ``tiles`` grid, the level that the darkest tenth
    (:data:`FLOOR_SHARE`) of the dark channel ``dark`` reaches; the frame's floor is the upper median of
    the tiles' (the 9th darkest of 16 on the default 4 × 4 grid).
    Haze lies in front of nearly everything and lifts the floor everywhere; a clear frame keeps dark
    pixels (shadows, foliage, tyres) in most of its tiles, so its bright regions (a blue sky, a sunlit
    wall) are left alone too. The median ignores a dark region in a foggy frame (a dashboard, a
    tunnel's mouth) unless it reaches into half the tiles.
    """
    b, _, h, w = dark.shape
    n = max(1, min(tiles, h, w))
    grid = dark[..., : h // n * n, : w // n * n].float().reshape(b, n, h // n, n, w // n)
    grid = grid.permute(0, 1, 3, 2, 4).reshape(b, n * n, -1)
    floors = grid.kthvalue(max(1, int(grid.shape[-1] * FLOOR_SHARE)), dim=-1).values
    floor = floors.kthvalue(n * n // 2 + 1, dim=1).values
    return (floor / HAZE_FREE_DARK).clamp(0.0, 1.0).view(-1, 1, 1, 1)


def guard(
    x: Tensor,
    a: Tensor,
    b: Tensor,
    mode: str = "on",
    radius: int | None = None,
    reference: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """The guard rails of ``mode`` (:data:`~streamdehaze.choices.GUARDS`): ``on``, the colour balance
    (:func:`limit_tint`), then haze-free regions left alone (:func:`haze_free_strength`, a 1/40-of-the-short-side
    patch), then shadows and highlights (:func:`guard_coefficients`); ``range``, the last two;
    ``off``, ``(a, b)`` unchanged.

    ``radius`` None: 1/80 of the working short side (2 at the shipped model's 160), at least 1.
    ``reference``: see :func:`limit_tint`.
    """
    if mode == "off":
        return a, b
    if mode == "on":
        a, b = limit_tint(x, a, b, reference=reference)
    s = haze_free_strength(x, max(1, round(min(x.shape[-2:]) / 40)))  # haze-free regions stay as they are
    a, b = 1 + s * (a - 1), s * b
    radius = max(1, round(min(x.shape[-2:]) / 80)) if radius is None else radius
    return guard_coefficients(x, a, b, radius)
