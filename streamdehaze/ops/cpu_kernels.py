"""OpenCV kernels for CPU tensors, where they beat torch's: the transfer's apply straight into 8-bit
frames, and the box sums of the fit. They read the tensors on the host, so they run only for CPU
tensors (:func:`use_cpu_kernels`); CUDA keeps the torch code, which never waits on the host.
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


def _full_size(plane: np.ndarray, width: int, height: int) -> np.ndarray:
    """``(h, w, C)`` float32 → ``(height, width, 3)`` (a shared gain, ``C`` = 1, broadcast to the three channels)."""
    if plane.shape[:2] != (height, width):
        plane = cv2.resize(plane, (width, height), interpolation=cv2.INTER_LINEAR)
    if plane.ndim == 2 or plane.shape[-1] == 1:
        plane = cv2.merge([plane.reshape(height, width)] * 3)
    return plane
