"""Reflect-padding to a multiple of N and cropping back."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``(B, C, H, W)`` on the bottom/right by reflection so H and W divide by ``multiple``.

    Returns the padded tensor and the original ``(H, W)`` for :func:`crop_to`. Frames smaller
    than the padding (reflection needs ``pad < size``) are padded by replication instead.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop ``(..., H', W')`` back to ``size = (H, W)`` from the top-left corner."""
    return x[..., : size[0], : size[1]]
