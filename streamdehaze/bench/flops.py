"""Arithmetic cost of a network call and the device's measured matmul peak (``bench --peak``).

:func:`network_flops` counts the floating-point operations (multiply-add = 2) of one ``(1, 3, H, W)``
forward pass with :class:`torch.utils.flop_counter.FlopCounterMode`, plus the deformable
convolutions it cannot see when they run as torchvision's kernel (counted as the plain 3×3
convolution they compute; on the CPU their matmul form is counted directly). The count is made
at a small size and scaled by the padded pixel count: every layer of a fully convolutional network
costs a fixed amount per pixel. :func:`matmul_peak_tflops` times large square matmuls.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..nets.aecrnet import uses_sampled_deform
from ..pipeline.tuning import PRECISION_DTYPES

_PROBE = 64  # side of the square the count is made at (a multiple of every network's padding)


def _deform_flops(model: nn.Module, count: list[float]) -> list:
    """Forward hooks adding 2·Cin·k²·Cout·H·W for every module with a ``conv_offset_mask`` (DCNv2)."""
    handles = []
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if hasattr(module, "conv_offset_mask") and isinstance(weight, torch.Tensor) and weight.ndim == 4:
            cout, cin, kh, kw = weight.shape

            def hook(_m, inp, out, per_pixel=2 * cin * kh * kw * cout):
                if not uses_sampled_deform(inp[0]):  # the sampled form's matmul is counted already
                    count[0] += per_pixel * out.shape[0] * out.shape[-2] * out.shape[-1]

            handles.append(module.register_forward_hook(hook))
    return handles


@torch.inference_mode()
def network_flops(model: nn.Module, height: int, width: int, device: torch.device | str = "cpu") -> float:
    """FLOPs of one forward pass of ``model`` on a ``(1, 3, height, width)`` frame."""
    multiple = int(getattr(model, "multiple", 1) or 1)
    extra = [0.0]
    handles = _deform_flops(model, extra)
    try:
        x = torch.rand(1, 3, _PROBE, _PROBE, device=device)
        with FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        for h in handles:
            h.remove()
    per_probe = counter.get_total_flops() + extra[0]
    padded = math.ceil(height / multiple) * multiple * math.ceil(width / multiple) * multiple
    return per_probe * padded / (_PROBE * _PROBE)


@torch.inference_mode()
def matmul_peak_tflops(device: torch.device | str, precision: str = "fp32", size: int | None = None) -> float:
    """Best-of-5 TFLOP/s of an ``n × n`` matmul in ``precision`` (n = 8192 on CUDA, 1024 on CPU)."""
    device = torch.device(device)
    n = size or (8192 if device.type == "cuda" else 1024)
    dtype = PRECISION_DTYPES.get(precision) or torch.float32
    if device.type == "cpu" and dtype is torch.float16:
        dtype = torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(6):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(10):
                a @ b
            end.record()
            end.synchronize()
            seconds = start.elapsed_time(end) / 1000.0 / 10
        else:
            t0 = time.perf_counter()
            a @ b
            seconds = time.perf_counter() - t0
        best = min(best, seconds)
    return 2 * n**3 / best / 1e12
