"""A frame's signature: the tiny colour thumbnail scene cuts are judged by."""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def signature(low: Tensor) -> Tensor:
    """``(B, 3, h, w)`` → ``(B, 48)`` float: a 4×4 colour thumbnail, what scene cuts are judged by."""
    return F.adaptive_avg_pool2d(low.float(), (4, 4)).flatten(1)
