"""Choosing the torch device from a user string; the host allocator's setting for CPU inference."""

from __future__ import annotations

import ctypes
import sys

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


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_allocator_tuned: bool | None = None


def keep_freed_memory() -> bool:
    """On glibc, keep freed memory for the next allocation instead of returning it to the system.

    The engine's CPU path makes and frees the same few-megabyte tensors for every batch; by default
    glibc gives such blocks back and maps them afresh, and every first touch of a page is then a page
    fault (several milliseconds per batch at 720p). Blocks up to 32 MiB stay on the heap and up to
    512 MiB of freed memory is kept. Once per process; False where this is not glibc.
    """
    global _allocator_tuned
    if _allocator_tuned is None:
        _allocator_tuned = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL("libc.so.6")
                _allocator_tuned = bool(
                    libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20) and libc.mallopt(_M_TRIM_THRESHOLD, 512 << 20)
                )
            except (OSError, AttributeError):  # musl or another libc: nothing to set
                pass
    return _allocator_tuned
