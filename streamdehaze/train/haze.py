"""Synthetic haze from clear images: the scattering model with depth priors for road/outdoor scenes.

``I = J·t + A·(1 − t)`` with ``t = exp(−β·d)``. The relative depth ``d`` in [``d_min``, 1] comes
from priors that suit road and outdoor pictures:

* a **ground plane** rising to a horizon: below the horizon row, distance grows as
  ``r0 / (r + r0)`` (perspective: ``r`` is the height below the horizon as a fraction of the
  ground's extent); above it, the scene is far;
* **sky**: bright, flat regions in the upper part of the picture are at depth 1;
* a **smooth random field** (a coarse random grid, bicubic-upsampled) that perturbs the plane
  or, for scenes without a visible ground, is the depth itself;

and the result is filtered with a guided filter steered by the clear image, so depth
discontinuities follow the image's edges (objects get their own haze level, not a blur).

Documented ranges (:class:`HazeRanges`): β ∈ [0.5, 2.5] per unit of relative depth (the farthest
point keeps ``exp(−β)`` ∈ [0.08, 0.61] of its radiance); nearest depth ``d_min`` ∈ [0.05, 0.3];
airlight grey level ∈ [0.7, 1.0] (as RESIDE) tinted per channel by a factor in [0.95, 1.05];
horizon at 30–60 % of the image height; the hazy image is quantised to 8 bits like a real photo.

Real fog differs from these clean renderings (issue 16: a model fitted to them crushed the near
road of a real foggy drive to black). Closer to it: the density is patchy (β times a smooth random
factor of ±0–60 %, :attr:`HazeRanges.patchy`), much of a drive sees light haze (``light=True``:
β ∈ [0.03, 0.5]), and a camera adds sensor noise and compression *after* the haze
(:func:`degrade`: Gaussian read noise, signal-dependent shot noise, JPEG at quality 35–95).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..ops.guided import box_filter, guided_filter, rgb_to_gray


@dataclass(frozen=True)
class HazeRanges:
    beta: tuple[float, float] = (0.5, 2.5)
    d_min: tuple[float, float] = (0.05, 0.3)
    airlight: tuple[float, float] = (0.7, 1.0)
    tint: float = 0.05
    horizon: tuple[float, float] = (0.3, 0.6)
    ground_r0: tuple[float, float] = (0.05, 0.2)
    p_ground: float = 0.6  # chance of the ground-plane prior (else the random field alone)
    field_mix: tuple[float, float] = (0.1, 0.4)  # share of the random field on top of the plane
    field_cells: tuple[int, int] = (2, 6)
    sky_luma: float = 0.75
    sky_std: float = 0.04
    patchy: tuple[float, float] = (0.0, 0.6)  # amplitude of a smooth random factor on β (patchy fog)
    light_beta: tuple[float, float] = (0.03, 0.5)  # β of a light-haze sample (``light=True``)


DEFAULT_RANGES = HazeRanges()


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def random_field(h: int, w: int, g: torch.Generator, cells: tuple[int, int] = (2, 6)) -> torch.Tensor:
    """A smooth random ``(1, 1, h, w)`` field in [0, 1]: a coarse grid upsampled bicubically."""
    n = int(torch.randint(cells[0], cells[1] + 1, (), generator=g))
    ny, nx = max(2, round(n * h / max(h, w))), max(2, round(n * w / max(h, w)))
    coarse = torch.rand(1, 1, ny, nx, generator=g)
    field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)
    lo, hi = field.amin(), field.amax()
    return (field - lo) / (hi - lo).clamp_min(1e-6)


def ground_plane(h: int, w: int, top: int, full_h: int, horizon: float, r0: float) -> torch.Tensor:
    """Relative depth ``(1, 1, h, w)`` of a ground plane seen from above it.

    ``top``/``full_h`` place the ``h`` rows inside the full picture (crops keep the geometry);
    ``horizon`` is the horizon row as a fraction of ``full_h``. Depth 1 at and above the horizon,
    ``r0 / (1 + r0)`` at the picture's bottom row.
    """
    y_h = horizon * full_h
    rows = torch.arange(top, top + h, dtype=torch.float32) + 0.5
    r = (rows - y_h) / max(full_h - y_h, 1.0)
    depth = torch.where(r > 0, r0 / (r.clamp_min(1e-6) + r0), torch.ones_like(r))
    return depth.view(1, 1, h, 1).expand(1, 1, h, w).clone()


def sky_mask(gray: torch.Tensor, top: int, full_h: int, ranges: HazeRanges = DEFAULT_RANGES) -> torch.Tensor:
    """Bright, flat pixels in the upper half of the picture, ``(1, 1, h, w)`` bool."""
    h = gray.shape[-2]
    r = max(1, min(gray.shape[-2:]) // 32)
    mean = box_filter(gray, r)
    std = (box_filter(gray * gray, r) - mean * mean).clamp_min(0).sqrt()
    upper = (torch.arange(top, top + h, dtype=torch.float32) < 0.5 * full_h).view(1, 1, h, 1)
    return (mean > ranges.sky_luma) & (std < ranges.sky_std) & upper


def depth_prior(
    clear: torch.Tensor,
    g: torch.Generator,
    top: int = 0,
    full_h: int | None = None,
    ranges: HazeRanges = DEFAULT_RANGES,
) -> torch.Tensor:
    """Relative depth ``(1, 1, h, w)`` in [0, 1] for a clear ``(1, 3, h, w)`` image in [0, 1]."""
    _, _, h, w = clear.shape
    full_h = full_h or h
    field = random_field(h, w, g, ranges.field_cells)
    if float(torch.rand((), generator=g)) < ranges.p_ground:
        plane = ground_plane(h, w, top, full_h, _uniform(g, *ranges.horizon), _uniform(g, *ranges.ground_r0))
        a = _uniform(g, *ranges.field_mix)
        depth = (1 - a) * plane + a * field
    else:
        depth = field
    gray = rgb_to_gray(clear)
    depth = torch.where(sky_mask(gray, top, full_h, ranges), torch.ones_like(depth), depth)
    # Edge-aware: depth discontinuities snap to the image's edges.
    depth = guided_filter(gray, depth, radius=max(2, min(h, w) // 16), eps=1e-3)
    return depth.clamp(0.0, 1.0)


def scatter(clear: torch.Tensor, depth: torch.Tensor, beta: float, airlight: torch.Tensor) -> torch.Tensor:
    """The scattering model: ``(B, 3, h, w)`` clear, ``(B, 1, h, w)`` depth, ``(3,)`` airlight → hazy in [0, 1]."""
    t = torch.exp(-beta * depth)
    return (clear * t + airlight.view(1, 3, 1, 1) * (1 - t)).clamp(0.0, 1.0)


def quantise(img: torch.Tensor) -> torch.Tensor:
    """Round to 8-bit levels, as a photo (or a dataset's PNG) stores a hazy image."""
    return torch.round(img * 255) / 255


def random_haze(
    clear: torch.Tensor,
    g: torch.Generator,
    top: int = 0,
    full_h: int | None = None,
    ranges: HazeRanges = DEFAULT_RANGES,
    light: bool = False,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Hazy version ``(1, 3, h, w)`` of a clear ``(1, 3, h, w)`` image in [0, 1], 8-bit quantised.

    ``light``: β from :attr:`HazeRanges.light_beta` (thin haze) instead of :attr:`HazeRanges.beta`.
    All randomness comes from ``g``; returns the image and the drawn parameters (``beta`` is the
    density before the patchy factor, whose amplitude is ``patchy``).
    """
    depth = depth_prior(clear, g, top, full_h, ranges)
    d_min = _uniform(g, *ranges.d_min)
    depth = d_min + (1 - d_min) * depth
    patchy = _uniform(g, *ranges.patchy)
    if patchy > 0:  # non-uniform density: optical depth β·d times a smooth factor in [1 - p, 1 + p]
        depth = depth * (1 + patchy * (2 * random_field(*depth.shape[-2:], g, ranges.field_cells) - 1))
    beta = _uniform(g, *(ranges.light_beta if light else ranges.beta))
    grey = _uniform(g, *ranges.airlight)
    tint = 1 + ranges.tint * (2 * torch.rand(3, generator=g) - 1)
    airlight = (grey * tint).clamp(max=1.0)
    hazy = quantise(scatter(clear, depth, beta, airlight))
    params = {"beta": beta, "d_min": d_min, "airlight": grey, "t_min": math.exp(-beta), "patchy": patchy}
    return hazy, params


@dataclass(frozen=True)
class CameraRanges:
    """What a camera adds after the haze: read noise, shot noise, then JPEG (as H.264 does: blocks, ringing)."""

    read_noise: tuple[float, float] = (0.0, 0.012)  # std in [0, 1] units
    shot_noise: tuple[float, float] = (0.0, 0.02)  # std at level 1; scales with sqrt(level)
    jpeg_quality: tuple[int, int] = (35, 95)


DEFAULT_CAMERA = CameraRanges()


def degrade(img: torch.Tensor, g: torch.Generator, ranges: CameraRanges = DEFAULT_CAMERA) -> torch.Tensor:
    """``(1, 3, h, w)`` in [0, 1] → the same seen through a camera: noise, 8 bits, a JPEG round trip."""
    import cv2
    import numpy as np

    read, shot = _uniform(g, *ranges.read_noise), _uniform(g, *ranges.shot_noise)
    std = (read**2 + shot**2 * img.clamp_min(0)).sqrt()
    noisy = (img + std * torch.randn(img.shape, generator=g)).clamp(0.0, 1.0)
    quality = int(torch.randint(ranges.jpeg_quality[0], ranges.jpeg_quality[1] + 1, (), generator=g))
    rgb = (noisy[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    back = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1] if ok else rgb
    return torch.from_numpy(np.ascontiguousarray(back)).permute(2, 0, 1)[None].float().div_(255.0)


# Re-hazing a stored pair: the scattering model fitted to (hazy, clear), rendered at a new density.
REHAZE_EXPONENT = (0.5, 1.7)  # t → t^s: s < 1 thins the haze, s > 1 thickens it (β·s)
LIGHT_EXPONENT = (0.03, 0.4)  # a light-haze sample: a tenth to a third of the pair's optical depth
REHAZE_MAX_RESIDUAL = 1.0 / 255  # mean fit error above which a pair is not scattering-model haze
_AIRLIGHT_GRID = torch.linspace(0.5, 1.0, 26)


def fit_scattering(hazy: torch.Tensor, clear: torch.Tensor) -> tuple[float, torch.Tensor, float]:
    """Grey airlight ``A``, transmission ``t (1, 1, h, w)`` and mean fit error of ``hazy ≈ clear·t + A(1−t)``.

    Inputs ``(1, 3, h, w)`` in [0, 1]. For each candidate ``A`` the per-pixel least-squares ``t``
    over the three channels is closed-form; the ``A`` with the smallest mean error wins.
    RESIDE SOTS fits to about 0.05 levels indoors and 0.3 outdoors (JPEG); real haze fits to 2–15.
    """
    a = _AIRLIGHT_GRID.view(-1, 1, 1, 1)  # (G, 1, 1, 1) against (1, 3, h, w)
    dj, dh = clear - a, hazy - a
    t = ((dh * dj).sum(1, keepdim=True) / (dj * dj).sum(1, keepdim=True).clamp_min(1e-6)).clamp(0.02, 1.0)
    err = (dj * t + a - hazy).abs().mean(dim=(1, 2, 3))
    best = int(err.argmin())
    return float(_AIRLIGHT_GRID[best]), t[best : best + 1], float(err[best])


def rehaze(
    hazy: torch.Tensor,
    clear: torch.Tensor,
    g: torch.Generator,
    exponent: tuple[float, float] = REHAZE_EXPONENT,
    recolour: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The pair with its haze at a random new density, 8-bit quantised; unchanged where the model does not fit.

    ``recolour``: chance that the scene's colours change too (:func:`recolour_scene`) before the
    haze is rendered over it: new rooms for the same depth map. Returns ``(hazy, clear)``.
    """
    airlight, t, err = fit_scattering(hazy, clear)
    if err > REHAZE_MAX_RESIDUAL:
        return hazy, clear
    s = _uniform(g, *exponent)
    if recolour and float(torch.rand((), generator=g)) < recolour:
        clear = recolour_scene(clear, g)
    # t = exp(−d) for a depth d = −ln t; the new density is β = s, so the new transmission is t^s
    return quantise(scatter(clear, -t.log(), s, torch.full((3,), airlight))), clear


RECOLOUR_GAMMA = (0.8, 1.25)  # log-uniform tone curve x → x^γ
RECOLOUR_GAIN = (0.85, 1.15)  # per-channel white balance


def recolour_scene(clear: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """The clear image under a random tone curve and white balance, 8-bit quantised."""
    gamma = math.exp(_uniform(g, *(math.log(v) for v in RECOLOUR_GAMMA)))
    gains = torch.tensor([_uniform(g, *RECOLOUR_GAIN) for _ in range(3)]).view(1, 3, 1, 1)
    return quantise((clear.clamp_min(0) ** gamma * gains).clamp(0.0, 1.0))
