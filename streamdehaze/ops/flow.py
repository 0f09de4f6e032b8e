"""Dense optical flow at the working size, in torch: runs on the frames' device (no host round trip).

The engine's motion-compensated smoothing (:mod:`streamdehaze.pipeline.temporal_motion`) carries
the previous frame's affine coefficients along the motion of the low-resolution input. At a
working size of ~160×284 the flow is cheap, and computing it with tensor ops keeps it on the GPU
next to the frames (OpenCV's DIS would need a device → host → device copy per batch).

:func:`lk_flow`: pyramidal Lucas–Kanade, inverse-compositional (the structure tensor of the
current frame is computed once per level; each iteration warps the previous frame, box-sums the
residual against the gradients and solves the 2×2 system per pixel), with a Tikhonov term so that
flat windows keep the coarser level's motion instead of amplifying noise. :func:`warp` samples an
image along a flow; :func:`consistency` is the forward–backward check (Sundaram et al., 2010).
All functions take batches: many frame pairs cost one pass of each op.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .guided import box_filter

Tensor = torch.Tensor


def normalised_grid(height: int, width: int, device: torch.device | str) -> Tensor:
    """``(1, H, W, 2)`` float32 pixel centres (x, y) in ``grid_sample``'s ``align_corners=True`` units:
    −1 and 1 are the first and last pixel."""
    ys = torch.linspace(-1.0, 1.0, height, device=device) if height > 1 else torch.zeros(1, device=device)
    xs = torch.linspace(-1.0, 1.0, width, device=device) if width > 1 else torch.zeros(1, device=device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], -1)[None]


class GridCache:
    """:func:`normalised_grid` per size and device, built once (a few sizes kept: a new stream's replace them)."""

    def __init__(self, keep: int = 8) -> None:
        self._cache: dict = {}
        self.keep = keep

    def __call__(self, height: int, width: int, device: torch.device | str) -> Tensor:
        key = (height, width, str(device))
        if key not in self._cache:
            if len(self._cache) >= self.keep:
                self._cache.clear()
            self._cache[key] = normalised_grid(height, width, device)
        return self._cache[key]


def sampling_grid(flow: Tensor, base: Tensor | None = None) -> Tensor:
    """``grid_sample``'s grid ``(N, H, W, 2)`` (``align_corners=True``) for ``flow`` ``(N, 2, H, W)`` in pixels.

    ``base``: :func:`normalised_grid` of the flow's size, when the caller keeps one.
    """
    _, _, height, width = flow.shape
    base = normalised_grid(height, width, flow.device) if base is None else base
    # pixels → grid units; python scalars, so nothing is copied from the host on CUDA
    sx, sy = 2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)
    if flow.requires_grad:
        return base + torch.stack([flow[:, 0] * sx, flow[:, 1] * sy], -1)
    # written in place into the interleaved layout: ~10× faster on the CPU than stacking two planes
    grid = torch.empty((flow.shape[0], height, width, 2), device=flow.device, dtype=flow.dtype)
    torch.mul(flow[:, 0], sx, out=grid[..., 0])
    torch.mul(flow[:, 1], sy, out=grid[..., 1])
    return grid.add_(base)


def resize_planes(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of ``(N, C, h, w)`` float32 to ``size`` (``align_corners=False``): OpenCV on the CPU
    (several times faster than torch's kernel there), ``F.interpolate`` elsewhere."""
    if x.device.type != "cpu" or x.dtype != torch.float32:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    import cv2

    n, c = x.shape[:2]
    planes = x.detach().contiguous().view(n * c, *x.shape[-2:]).numpy()
    out = torch.empty((n * c, *size), dtype=x.dtype)
    for src, dst in zip(planes, out.numpy()):
        cv2.resize(src, (size[1], size[0]), dst=dst, interpolation=cv2.INTER_LINEAR)
    return out.view(n, c, *size)


def warp(images: Tensor, flow: Tensor, grid: Tensor | None = None) -> Tensor:
    """Sample ``images`` ``(N, C, H, W)`` at ``p + flow[p]`` (``flow`` ``(N, 2, H, W)``, pixels); borders replicated.

    ``grid``: :func:`sampling_grid` of ``flow`` when the caller already made it.
    """
    g = sampling_grid(flow) if grid is None else grid
    return F.grid_sample(images, g.to(images.dtype), mode="bilinear", padding_mode="border", align_corners=True)


def inside(grid: Tensor) -> Tensor:
    """``(N, 1, H, W)`` float: 1 where the :func:`sampling_grid` ``grid`` points within the frame (to half a
    pixel beyond the outer pixel centres), else 0."""
    height, width = grid.shape[1:3]
    ok = (grid[..., 0].abs() <= 1.0 + 1.0 / max(width - 1, 1)) & (grid[..., 1].abs() <= 1.0 + 1.0 / max(height - 1, 1))
    return ok[:, None].to(grid.dtype)


def consistency(
    back: Tensor, fwd: Tensor, alpha: float = 0.01, beta: float = 0.5, grid: Tensor | None = None
) -> Tensor:
    """Forward–backward agreement ``(N, 1, H, W)`` float in {0, 1}.

    ``back``: flow of frame t into t−1; ``fwd``: of t−1 into t. A pixel passes when the round trip
    returns: ``|back + fwd(p + back)|² < alpha (|back|² + |fwd(p + back)|²) + beta`` (pixels²).
    ``grid``: :func:`sampling_grid` of ``back`` when the caller already made it.
    """
    fwd_at = warp(fwd, back, grid)
    loop = back + fwd_at
    lhs = _squared_norm(loop)
    rhs = alpha * (_squared_norm(back) + _squared_norm(fwd_at)) + beta
    return (lhs < rhs).to(back.dtype)


def _squared_norm(v: Tensor) -> Tensor:
    """``|v|²`` of ``(N, 2, H, W)`` vectors → ``(N, 1, H, W)`` (two products: a 2-channel reduction is slow on CPU)."""
    return v[:, :1] * v[:, :1] + v[:, 1:] * v[:, 1:]


def _gradients(x: Tensor) -> Tensor:
    """Central differences (one-sided at the borders) of ``(N, 1, H, W)`` → ``(N, 2, H, W)`` (d/dx, d/dy)."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return 0.5 * torch.cat([p[..., 1:-1, 2:] - p[..., 1:-1, :-2], p[..., 2:, 1:-1] - p[..., :-2, 1:-1]], 1)


def lk_flow(
    cur: Tensor,
    prev: Tensor,
    levels: int = 4,
    iterations: int = 2,
    radius: int = 2,
    reg: float = 1e-4,
    grids: GridCache | None = None,
) -> Tensor:
    """Flow ``(N, 2, H, W)`` float32 of ``cur`` into ``prev`` (both ``(N, 1, H, W)`` gray in [0, 1]).

    ``flow[p]`` is where pixel ``p`` of ``cur`` sits in ``prev`` (pixels, x then y): ``prev(p + flow[p])
    ≈ cur(p)``. ``levels``: pyramid levels (each half the size; motions up to ~2^levels · radius / 2
    pixels); ``iterations`` per level; ``radius``: the window's box radius; ``reg``: added to the
    structure tensor's diagonal (squared gray units per pixel): windows with less texture than that
    keep the coarser level's estimate. ``grids``: a caller's :class:`GridCache` (the pyramid's base grids
    are then built once per stream instead of once per call).
    """
    grids = grids or GridCache()
    pyramid = [(cur.float(), prev.float())]
    for _ in range(levels - 1):
        c, p = pyramid[-1]
        if min(c.shape[-2:]) < 4 * (2 * radius + 1):
            break
        pyramid.append((F.avg_pool2d(c, 2, ceil_mode=True), F.avg_pool2d(p, 2, ceil_mode=True)))
    flow = None
    for c, p in reversed(pyramid):
        n, _, height, width = c.shape
        if flow is None:
            flow = c.new_zeros((n, 2, height, width))
        else:  # to this level's size and pixel units (python scalars: no host copy on CUDA)
            fx, fy = width / flow.shape[-1], height / flow.shape[-2]
            flow = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
            flow = torch.cat([flow[:, :1] * fx, flow[:, 1:] * fy], 1)
        g = _gradients(c)
        gx, gy = g[:, :1], g[:, 1:]
        s = box_filter(torch.cat([gx * gx, gy * gy, gx * gy], 1), radius)
        sxx, syy, sxy = s[:, :1] + reg, s[:, 1:2] + reg, s[:, 2:]
        inv = torch.cat([syy, sxx, -sxy, -sxy], 1) / (sxx * syy - sxy * sxy)  # G⁻¹ as (a, d, b, c)
        base = grids(height, width, c.device)
        for _ in range(iterations):
            r = c - warp(p, flow, sampling_grid(flow, base))
            b = box_filter(g * r, radius)  # prev(p + flow + δ) ≈ prev(p + flow) + ∇·δ = cur(p): G δ = b
            bx, by = b[:, :1], b[:, 1:]
            flow = flow + torch.cat([inv[:, :1] * bx + inv[:, 2:3] * by, inv[:, 3:] * bx + inv[:, 1:2] * by], 1)
    return flow
