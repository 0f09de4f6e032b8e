"""uint8 images ↔ float tensors, on any device.

Frames travel as ``(H, W, 3)`` / ``(B, H, W, 3)`` uint8 RGB; models take ``(B, 3, H, W)`` float in
[0, 1]. The uint8 data is moved to the device *before* conversion (4× fewer bytes to copy).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError

ImageLike = np.ndarray | torch.Tensor


def _as_uint8_tensor(images: ImageLike) -> torch.Tensor:
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise InputError(f"expected uint8 images, got a numpy array of dtype {images.dtype}; convert with .astype")
        return torch.from_numpy(np.ascontiguousarray(images))
    if isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8:
            raise InputError(
                f"expected uint8 images, got a tensor of dtype {images.dtype}; convert with .to(torch.uint8)"
            )
        return images
    raise InputError(f"expected a numpy array or torch tensor of uint8 images, got {type(images).__name__}")


def to_tensor(
    images: ImageLike,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    non_blocking: bool = False,
) -> torch.Tensor:
    """uint8 RGB ``(B, H, W, 3)`` or ``(H, W, 3)`` (numpy or torch) → ``(B, 3, H, W)`` ``dtype`` in [0, 1].

    A single image gets a batch dimension of 1. ``device`` None keeps the input's device (CPU for numpy).
    """
    t = _as_uint8_tensor(images)
    if t.ndim == 3:
        t = t.unsqueeze(0)
    if t.ndim != 4 or t.shape[-1] != 3:
        raise InputError(f"expected images of shape (B, H, W, 3) or (H, W, 3), got {tuple(t.shape)}")
    if device is not None:
        t = t.to(device, non_blocking=non_blocking)
    return t.permute(0, 3, 1, 2).to(dtype).div_(255.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` float in [0, 1] → contiguous ``(B, H, W, 3)`` uint8 on the same device.

    Rounds half up (``floor(x * 255 + 0.5)``) after clamping to [0, 1]; NaN becomes 0.
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise InputError(f"expected a (B, 3, H, W) tensor, got shape {tuple(x.shape)}")
    y = torch.nan_to_num(x.float(), nan=0.0).clamp_(0.0, 1.0).mul_(255.0).add_(0.5).floor_()
    return y.to(torch.uint8).permute(0, 2, 3, 1).contiguous()
