"""Box filter, guided filter (He et al., 2010/2013) and the local affine fit behind "guided transfer".

All functions are batched over ``(B, C, H, W)`` tensors and run on the tensor's device. Box filters
use cumulative sums, so their cost does not depend on the radius; half precision inputs are
filtered in float32 (cumulative sums in fp16 lose too many digits) and cast back.

Guided transfer (working resolution → full resolution): with ``low_in`` a downscaled frame and
``low_out`` the model's output for it, ``a, b = fit_affine(low_in, low_out, r, eps)`` fits
``out_c ≈ a_c · in_c + b_c`` in every window, and ``apply_affine(a, b, full_in)`` upsamples the
coefficients and applies them to the full-resolution frame (the "fast guided filter").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .cpu_kernels import affine_fits, box_sums, use_cpu_kernels, window_counts

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _box_sum_1d(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Sum over the window ``[i - radius, i + radius]`` along ``dim``, clipped at the borders.

    From the inclusive cumulative sum ``c``: ``c[min(i + r, n - 1)] - c[i - r - 1]`` (no second term
    when ``i - r - 1 < 0``), written with slices into one output (gathering by index is ~3× slower on CPU).
    """
    n = x.shape[dim]
    r = min(radius, n - 1)
    c = x.cumsum(dim)
    last = c.narrow(dim, n - 1, 1)
    # i <= r: the window starts at 0; its end i + r is inside for the first `inner` of them
    head, inner = min(r + 1, n), min(r + 1, n - r)
    mid = max(0, n - 2 * r - 1)  # i > r with the end inside; the `tail` after them end at n - 1
    tail = n - head - mid
    # Training through the fit (--fit-loss) needs autograd, which out= writes do not support. The joined
    # slices below are bit-identical but about 1.2x slower without grad (box_filter of 4x12x160x213,
    # radius 3, 2 CPU threads: 7.3 vs 6.1 ms), so inference keeps the out= path.
    if c.requires_grad:
        shape = list(c.shape)
        shape[dim] = head - inner
        parts = [c.narrow(dim, r, inner), last.expand(shape)]
        if mid:
            parts.append(c.narrow(dim, 2 * r + 1, mid) - c.narrow(dim, 0, mid))
        if tail:
            parts.append(last - c.narrow(dim, mid, tail))
        return torch.cat(parts, dim)
    out = torch.empty_like(c)
    out.narrow(dim, 0, inner).copy_(c.narrow(dim, r, inner))
    if head > inner:
        rest = out.narrow(dim, inner, head - inner)
        rest.copy_(last.expand_as(rest))
    # i > r: subtract c[i - r - 1]; the end is inside for `mid` of them, clipped to n - 1 after
    if mid:
        torch.sub(c.narrow(dim, 2 * r + 1, mid), c.narrow(dim, 0, mid), out=out.narrow(dim, r + 1, mid))
    if tail:
        torch.sub(last, c.narrow(dim, mid, tail), out=out.narrow(dim, head + mid, tail))
    return out


def box_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a ``(2r+1) × (2r+1)`` window of ``(B, C, H, W)`` → ``(B, C, H, W)``, same dtype.

    Windows are clipped at the borders and normalised by the number of pixels they contain (as in
    He et al.'s reference code), so a constant image stays constant. ``radius`` 0 returns ``x``.
    """
    if radius < 0:
        raise ValueError(f"box filter radius must be >= 0, got {radius}")
    if radius == 0:
        return x
    orig = x.dtype
    work = x.float() if orig in _LOW_PRECISION else x
    h, w = work.shape[-2:]
    if use_cpu_kernels(work) and work.dtype in (torch.float32, torch.float64):
        s = box_sums(work, radius)
    else:
        s = _box_sum_1d(_box_sum_1d(work, radius, -2), radius, -1)
    ch = window_counts(h, radius, work.device, work.dtype)
    cw = window_counts(w, radius, work.device, work.dtype)
    return (s / (ch[:, None] * cw[None, :])).to(orig)


def fit_affine(
    low_in: torch.Tensor, low_out: torch.Tensor, radius: int, eps: float, shared_gain: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Local affine fit ``out ≈ a · in + b`` per channel, coefficients box-averaged.

    ``low_in``: ``(B, Ci, h, w)`` with ``Ci`` 1 (one guide for every output channel) or ``C``;
    ``low_out``: ``(B, C, h, w)``. Returns ``(a, b)``, each ``(B, C, h, w)`` (float32 for half inputs):
    ``a = cov(in, out) / (var(in) + eps)``, ``b = mean(out) − a · mean(in)`` in every
    ``(2r+1)²`` window, then both averaged over the windows covering each pixel. ``eps`` bounds
    how steep ``a`` gets in flat regions (larger = smoother).

    ``shared_gain``: one ``a`` for all channels (covariances and variances summed over them), a
    ``b`` per channel: the scattering model's form, ``J = I / t + A (1 − 1/t)``, fitted with half
    the unknowns (``low_in`` must then have ``C`` channels).
    """
    return fit_affine_gains(low_in, low_out, radius, eps, (shared_gain,))[0]


def fit_affine_gains(
    low_in: torch.Tensor, low_out: torch.Tensor, radius: int, eps: float, gains: tuple[bool, ...]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """:func:`fit_affine` once per entry of ``gains`` (its ``shared_gain``), from one pass of the
    window statistics (the guard's tint rail wants both fits of the same data).

    CPU tensors without gradients go through OpenCV (:func:`~.cpu_kernels.affine_fits`: the same
    results to the last bit).
    """
    if low_in.shape[-2:] != low_out.shape[-2:] or low_in.shape[0] != low_out.shape[0]:
        raise ValueError(f"fit_affine: in {tuple(low_in.shape)} and out {tuple(low_out.shape)} differ in B, H or W")
    if low_in.shape[1] not in (1, low_out.shape[1]):
        raise ValueError(f"fit_affine: in has {low_in.shape[1]} channels; expected 1 or {low_out.shape[1]}")
    x = low_in.float() if low_in.dtype in _LOW_PRECISION else low_in
    y = low_out.to(x.dtype)
    if x.dtype == torch.float32 and use_cpu_kernels(x) and use_cpu_kernels(y):
        return affine_fits(x, y, radius, eps, gains)
    return _fit_affine_torch(x, y, radius, eps, gains)


def _fit_affine_torch(
    x: torch.Tensor, y: torch.Tensor, radius: int, eps: float, gains: tuple[bool, ...]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """:func:`fit_affine_gains` in torch ops (any device, differentiable)."""
    ci, c = x.shape[1], y.shape[1]
    # one batched box filter for all four statistics
    stats = box_filter(torch.cat([x, y, x * x, x * y], 1), radius)
    mean_x, mean_y, mean_xx, mean_xy = torch.split(stats, [ci, c, ci, c], 1)
    var_x = (mean_xx - mean_x * mean_x).clamp_(min=0.0)  # cancellation can make it slightly negative
    cov_xy = mean_xy - mean_x * mean_y
    fits = []
    for shared_gain in gains:
        var, cov = var_x, cov_xy
        if shared_gain:
            if ci != c:
                raise ValueError(f"fit_affine: a shared gain needs {c} input channels, got {ci}")
            var, cov = var_x.sum(1, keepdim=True), cov_xy.sum(1, keepdim=True)
        a = (cov / (var + eps)).expand(-1, c, -1, -1)
        b = mean_y - a * mean_x
        ab = box_filter(torch.cat([a, b], 1), radius)
        fits.append((ab[:, :c], ab[:, c:]))
    return fits


def apply_affine(a: torch.Tensor, b: torch.Tensor, full_in: torch.Tensor) -> torch.Tensor:
    """``a · full_in + b`` with ``a, b`` ``(B, C, h, w)`` upsampled bilinearly to ``full_in``'s size.

    ``full_in``: ``(B, Ci, H, W)`` with ``Ci`` 1 or ``C`` (as given to :func:`fit_affine`).
    Upsampling uses ``align_corners=False`` (pixel centres), so ``h, w == H, W`` applies the
    coefficients as they are. Returns ``(B, C, H, W)`` in ``full_in``'s dtype, clamped to [0, 1].
    """
    size = full_in.shape[-2:]
    if a.shape[-2:] != size:
        ab = F.interpolate(torch.cat([a, b], 1), size=size, mode="bilinear", align_corners=False)
        a, b = ab[:, : a.shape[1]], ab[:, a.shape[1] :]
    out = torch.addcmul(b, a, full_in.to(a.dtype))
    return out.clamp_(0.0, 1.0).to(full_in.dtype)


def guided_filter(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """Edge-preserving smoothing of ``src`` ``(B, C, H, W)`` guided by ``guide`` ``(B, 1 or C, H, W)``.

    He et al.'s guided filter with a gray (one-channel) or per-channel guide: ``q = mean(a) · I +
    mean(b)``. Output ``(B, C, H, W)`` in ``src``'s dtype, not clamped (a refined transmission may
    slightly over/undershoot; the caller clamps where needed).
    """
    a, b = fit_affine(guide, src, radius, eps)
    q = torch.addcmul(b, a, guide.to(a.dtype))
    return q.to(src.dtype)


def rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB → ``(B, 1, H, W)`` luma (ITU-R BT.601 weights), same range and dtype.

    Three scaled planes added: Python scalars travel as kernel arguments (no host-to-device copy on
    CUDA), and on the CPU this is ~7× faster than a weighted sum over channels of channels-last frames.
    """
    return (x[:, 0:1] * 0.299 + x[:, 1:2] * 0.587) + x[:, 2:3] * 0.114


def min_filter_1d(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Sliding minimum over ``size`` samples along ``dim`` (window ``[i − size//2, i + size − 1 − size//2]``).

    Windows are clipped at the borders (padding with +inf). Built by doubling: min of width 2w from
    two shifted mins of width w, so about log2(size) elementwise passes; on CPU this is ~20× faster
    than ``max_pool2d`` with a 15-wide kernel and gives identical results.
    """
    lo, hi = size // 2, size - 1 - size // 2
    pad = (lo, hi) if dim in (-1, x.ndim - 1) else (0, 0, lo, hi)
    m = F.pad(x, pad, value=float("inf"))
    width = 1
    while width < size:
        step = min(width, size - width)  # the last step may overlap: min is idempotent
        n = m.shape[dim] - step
        m = torch.minimum(m.narrow(dim, 0, n), m.narrow(dim, step, n))
        width += step
    return m


def min_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    """Sliding minimum over ``size × size`` windows of ``(B, C, H, W)`` (separable: rows, then columns)."""
    return min_filter_1d(min_filter_1d(x, size, -1), size, -2)


def dark_channel(x: torch.Tensor, patch: int) -> torch.Tensor:
    """``(B, C, H, W)`` → ``(B, 1, H, W)``: min over channels, then min over a ``patch × patch`` window.

    Border windows are clipped to the image; an even patch reaches one pixel further right/down.
    The square min filter is separable: a row pass then a column pass.
    """
    m = x.amin(1, keepdim=True)
    if patch <= 1:
        return m
    return min_filter(m, patch)
