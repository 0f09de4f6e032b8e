"""Validation during training: mean PSNR/SSIM of the network's (clamped) output on held-out pairs."""

from __future__ import annotations

import torch
from torch import nn

from ..nets.dehazer import Dehazer
from ..ops.transfer_fit import STILLS_TRANSFER_FIT, transfer
from ..work_size import parse_work_size


@torch.no_grad()
def validate(
    net: nn.Module,
    pairs: list[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    work_size: str = "full",
) -> tuple[float, float]:
    """Mean PSNR (dB) and SSIM over ``pairs`` of ``(1, 3, H, W)`` float in [0, 1].

    The network runs in eval mode (FastDeconv on its running statistics, as at inference), on
    reflect-padded inputs cropped back (:class:`Dehazer`); ``net``'s train/eval mode is restored afterwards. With a
    ``work_size`` other than full, it runs through the guided transfer's stateless path
    (:func:`~streamdehaze.ops.transfer_fit.transfer`) with the stills fit, as ``eval --work-size`` does.
    """
    from ..metrics import psnr, ssim  # imported here: training without validation does not need it

    run = Dehazer(net, "training", multiple=4)  # pads, crops back and clamps as at inference
    work = parse_work_size(work_size, device)
    was_training = net.training
    net.eval()
    p_sum = s_sum = 0.0
    try:
        for hazy, clear in pairs:
            x = hazy.to(device)
            out = transfer(run, x, work.size_for(*x.shape[-2:]), STILLS_TRANSFER_FIT).clamp(0.0, 1.0)
            y = clear.to(device)
            p_sum += float(psnr(out, y).clamp(max=100.0).sum())
            s_sum += float(ssim(out, y).sum())
    finally:
        net.train(was_training)
    n = max(1, len(pairs))
    return p_sum / n, s_sum / n
