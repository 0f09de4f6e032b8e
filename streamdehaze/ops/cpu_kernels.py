"""OpenCV kernels for CPU tensors, where they beat torch's: the transfer's apply straight into 8-bit
frames, the box sums, the affine fit at the working size, the flow filter's shrink and the strength's
blend after it. They read the
tensors on the host, so they run only for CPU tensors (:func:`use_cpu_kernels`); CUDA keeps the torch
code, which never waits on the host.
``CPU_KERNELS = False`` turns them off (the engine's host-read check turns them off to check the
device code on the CPU).

The apply: upsample ``(a, b)`` and compute ``a · x + b``, from the decoded uint8 frames to the uint8
frames the encoder takes.

The generic path (:func:`~.guided.apply_affine` between :func:`~.color.to_tensor` and
:func:`~.color.to_uint8`) converts the whole frame to float, upsamples six float planes with torch,
and converts back: at 1280×720 on 2 cores it cost 33.5 ms per frame, this path 9.9 ms
(``python benchmarks/profile_cpu.py --repeat 7``, docs/performance.md). OpenCV's bilinear resize
samples at pixel centres as ``align_corners=False`` does; results match the generic path within one
level.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

Tensor = torch.Tensor

CPU_KERNELS = True


def use_cpu_kernels(x: Tensor) -> bool:
    """Whether the OpenCV kernels serve ``x``: a CPU tensor that needs no gradient."""
    return CPU_KERNELS and x.device.type == "cpu" and not x.requires_grad


def box_sums(x: Tensor, radius: int) -> Tensor:
    """Sums over ``(2r+1) × (2r+1)`` windows clipped at the borders of float ``(..., H, W)``, plane by plane
    (OpenCV's box filter with a zero border). Timed once on a batch of 4×3 planes of 160×284, radius 3,
    with the machine loaded: 0.36 against 11.2 ms per frame for torch's cumulative sums."""
    planes = x.reshape(-1, *x.shape[-2:]).contiguous().numpy()
    out = np.empty_like(planes)
    size = (2 * radius + 1, 2 * radius + 1)
    for plane, dst in zip(planes, out):
        cv2.boxFilter(plane, -1, size, dst=dst, normalize=False, borderType=cv2.BORDER_CONSTANT)
    return torch.from_numpy(out).view(x.shape)


def affine_fits(x: Tensor, y: Tensor, radius: int, eps: float, gains: tuple[bool, ...]) -> list[tuple[Tensor, Tensor]]:
    """:func:`~.guided.fit_affine` of float ``x`` ``(B, Ci, h, w)`` and ``y`` ``(B, C, h, w)`` with OpenCV,
    plane by plane, once per entry of ``gains`` (False: a gain per channel; True: a shared gain), from
    one pass of the window statistics.

    The same operations in the same order as the torch code (box sums divided by the window counts,
    then the float32 arithmetic of the fit), so the results are the same to the last bit. A frame's planes
    (45k pixels at the working size) are where torch's per-op overhead dominates: the default guard's
    two fits took 9.3 ms per frame in torch (from one pass of statistics), 3.1 ms here (one thread,
    batch 4 at 160×284, medians; ``fit + guard`` of ``benchmarks/profile_cpu.py``: 20.2 → 11.8 ms).
    """
    n, ci, h, w = x.shape
    c = y.shape[1]
    if any(gains) and ci != c:
        raise ValueError(f"fit_affine: a shared gain needs {c} input channels, got {ci}")
    xs, ys = x.float().contiguous().numpy(), y.float().contiguous().numpy()
    counts = (window_counts(h, radius)[:, None] * window_counts(w, radius)[None, :]).numpy()
    size = (2 * radius + 1, 2 * radius + 1)

    def mean(plane: np.ndarray) -> np.ndarray:
        sums = cv2.boxFilter(plane, -1, size, normalize=False, borderType=cv2.BORDER_CONSTANT)
        return np.divide(sums, counts, out=sums)

    eps32 = np.float32(eps)
    out = [(np.empty((n, c, h, w), np.float32), np.empty((n, c, h, w), np.float32)) for _ in gains]
    for i in range(n):
        mean_x = [mean(xs[i, k]) for k in range(ci)]
        mean_xx = [mean(xs[i, k] * xs[i, k]) for k in range(ci)]
        mean_y = [mean(ys[i, j]) for j in range(c)]
        guide = [j if ci == c else 0 for j in range(c)]
        var = [np.maximum(mean_xx[k] - mean_x[k] * mean_x[k], 0) for k in guide]
        cov = [mean(xs[i, k] * ys[i, j]) - mean_x[k] * mean_y[j] for j, k in enumerate(guide)]
        for shared, (a_out, b_out) in zip(gains, out):
            if shared:
                gain = _channel_sum(cov) / (_channel_sum(var) + eps32)
                a_box = mean(gain)
                for j in range(c):
                    a_out[i, j] = a_box
                    b_out[i, j] = mean(mean_y[j] - gain * mean_x[j])
            else:
                for j, k in enumerate(guide):
                    gain = cov[j] / (var[j] + eps32)
                    a_out[i, j] = mean(gain)
                    b_out[i, j] = mean(mean_y[j] - gain * mean_x[k])
    return [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in out]


def window_counts(
    n: int, radius: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> Tensor:
    """How many samples each window of length ``2 * radius + 1`` clipped to ``[0, n)`` holds, shape ``(n,)``."""
    idx = torch.arange(n, device=device)
    return ((idx + radius + 1).clamp(max=n) - (idx - radius).clamp(min=0)).to(dtype)


def _channel_sum(planes: list[np.ndarray]) -> np.ndarray:
    """Sum of the planes in channel order, as torch's ``sum(1)`` adds three channels."""
    total = planes[0].copy()
    for plane in planes[1:]:
        total += plane
    return total


def shrink_uint8(images: Tensor, size: tuple[int, int]) -> Tensor:
    """uint8 ``(B, H, W, 3)`` frames → ``(B, 3, h, w)`` float in [0, 1] over the windows of torch's adaptive
    average pooling (``F.interpolate(mode="area")``: rows ``⌊i·H/h⌋`` to ``⌈(i+1)·H/h⌉``), from the frames'
    integral images. The flow filter's weights follow how its small frames were made: OpenCV's
    ``INTER_AREA`` (fractional windows) moved a pan's flicker by 0.09× of ``off`` (docs/performance.md)."""
    h, w = size
    height, width = images.shape[1:3]
    rows, cols = _pooling_windows(height, h), _pooling_windows(width, w)
    count = ((rows[1] - rows[0])[:, None] * (cols[1] - cols[0])[None, :]).astype(np.float32)[..., None] * 255.0
    out = np.empty((images.shape[0], h, w, 3), np.float32)
    for k, image in enumerate(images.numpy()):
        s = cv2.integral(image)  # (H + 1, W + 1, 3) int32 sums: exact
        band = np.take(s, rows[1], axis=0) - np.take(s, rows[0], axis=0)  # whole rows first, then columns
        np.divide(np.take(band, cols[1], axis=1) - np.take(band, cols[0], axis=1), count, out=out[k])
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _pooling_windows(length: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end of the ``n`` adaptive-pooling windows over ``length`` samples."""
    i = np.arange(n)
    return (i * length) // n, -((-(i + 1) * length) // n)


def apply_affine_uint8(a: Tensor, b: Tensor, images: Tensor) -> Tensor:
    """``round(255 · clamp(a · x + b, 0, 1))`` for uint8 ``images`` ``(B, H, W, 3)`` on the CPU (``x`` = images / 255).

    ``a``, ``b``: ``(B, 3, h, w)`` or ``(B, 1, h, w)`` float coefficients (any size; upsampled
    bilinearly). Returns a new ``(B, H, W, 3)`` uint8 tensor.
    """
    n, height, width, _ = images.shape
    gains = a.float().permute(0, 2, 3, 1).contiguous().numpy()
    offsets = (b.float() * 255.0).permute(0, 2, 3, 1).contiguous().numpy()
    frames = images.numpy()
    out = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        gain, offset = _full_size(gains[i], width, height), _full_size(offsets[i], width, height)
        y = cv2.add(cv2.multiply(frames[i], gain, dtype=cv2.CV_32F), offset)
        out[i] = cv2.convertScaleAbs(cv2.max(y, 0.0))  # rounds and saturates at 255; the max keeps it from |y|
    return torch.from_numpy(out)


def blend_uint8(images: Tensor, y: Tensor, strength: float) -> Tensor:
    """:func:`~.transfer_fit.blend` for uint8 frames ``(B, H, W, 3)`` on the CPU: ``round(x + S · (y − x))``
    in one pass (S = 1 returns ``y`` itself)."""
    if strength == 1.0:
        return y
    rows = images.shape[0] * images.shape[1]
    x2, y2 = (np.ascontiguousarray(t.numpy()).reshape(rows, -1) for t in (images, y))
    return torch.from_numpy(cv2.addWeighted(x2, 1.0 - strength, y2, strength, 0.0).reshape(tuple(images.shape)))


def _full_size(plane: np.ndarray, width: int, height: int) -> np.ndarray:
    """``(h, w, C)`` float32 → ``(height, width, 3)`` (a shared gain, ``C`` = 1, broadcast to the three channels)."""
    if plane.shape[:2] != (height, width):
        plane = cv2.resize(plane, (width, height), interpolation=cv2.INTER_LINEAR)
    if plane.ndim == 2 or plane.shape[-1] == 1:
        plane = cv2.merge([plane.reshape(height, width)] * 3)
    return plane
