"""Validation during training: mean PSNR/SSIM of the network's (clamped) output on held-out pairs."""

from __future__ import annotations

import torch
from torch import nn

from ..ops.padding import crop_to, pad_to_multiple


@torch.no_grad()
def validate(
    net: nn.Module, pairs: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device
) -> tuple[float, float]:
    """Mean PSNR (dB) and SSIM over ``pairs`` of ``(1, 3, H, W)`` float in [0, 1].

    The network runs in eval mode (FastDeconv on its running statistics, as at inference), on
    reflect-padded inputs cropped back; ``net``'s train/eval mode is restored afterwards.
    """
    from ..metrics import psnr, ssim  # imported here: training without validation does not need it

    was_training = net.training
    net.eval()
    p_sum = s_sum = 0.0
    try:
        for hazy, clear in pairs:
            x, size = pad_to_multiple(hazy.to(device), 4)
            out = crop_to(net(x), size).float().clamp(0.0, 1.0)
            y = clear.to(device)
            p_sum += float(psnr(out, y).clamp(max=100.0).sum())
            s_sum += float(ssim(out, y).sum())
    finally:
        net.train(was_training)
    n = max(1, len(pairs))
    return p_sum / n, s_sum / n
