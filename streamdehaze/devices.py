"""Choosing the torch device from a user string."""

from __future__ import annotations

import torch

from .errors import InputError


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """``auto`` → first CUDA device if one is usable, else CPU; ``cpu``; ``cuda`` / ``cuda:N``."""
    if isinstance(spec, torch.device):
        return spec
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError(f"--device {spec}: no CUDA device is available here; use --device cpu or auto")
        dev = torch.device(spec)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present")
        return dev
    raise InputError(f"--device {spec!r}: expected auto, cpu, cuda or cuda:N")


def device_name(device: torch.device) -> str:
    """Human-readable name of the device (GPU model or CPU)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    n = torch.get_num_threads()
    return f"CPU ({platform.processor() or platform.machine()}, {n} thread{'' if n == 1 else 's'})"
