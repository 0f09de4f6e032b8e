"""A frame's signature: the small gray thumbnail that scene cuts are judged by.

The engine computes it once per frame in its state pass (:mod:`streamdehaze.pipeline.frame_state`)
and every stateful stage takes its scene-cut decision from there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .guided import rgb_to_gray

Tensor = torch.Tensor
THUMB = 16  # side of the gray thumbnail


def signature(x: Tensor) -> Tensor:
    """``(B, 3, H, W)`` in [0, 1] (any resolution) → ``(B, 1, 16, 16)`` float32 gray thumbnail (area average)."""
    return F.adaptive_avg_pool2d(rgb_to_gray(x.float()), THUMB)


def signature_change(sig: Tensor, prev: Tensor) -> Tensor:
    """Mean absolute difference ``(B,)`` in [0, 1] between two batches of signatures ``(B, 1, 16, 16)``."""
    return (sig - prev).abs().mean((1, 2, 3))
