"""Training checkpoints: everything needed to continue exactly, written atomically.

A checkpoint is a dict (``torch.save``, loadable with ``weights_only=True``)::

    format 'streamdehaze-train', version, step, epoch, images_seen, elapsed_s,
    model (state dict, buffers included), optimizer, scheduler, scaler,
    rng {torch, cuda, numpy, python}, config (TrainConfig as a dict),
    encoder (which CR encoder: kind, file + sha256 or seed + fingerprint), best {psnr, ssim, step},
    hardware, world_size, torch

Reading validates all of it up front, so a corrupt or foreign file fails before training starts.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import TrainError

FORMAT = "streamdehaze-train"
VERSION = 1
REQUIRED = ("step", "model", "optimizer", "scheduler", "rng", "config", "encoder")


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run folder → its ``last.pt``."""
    p = Path(path)
    if p.is_dir():
        p = p / "last.pt"
    if not p.is_file():
        raise TrainError(
            f"checkpoint not found: {p} (pass a .pt file written by 'streamdehaze train' or its run folder)"
        )
    return p


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and check a training checkpoint; :class:`TrainError` with the reason otherwise."""
    p = resolve_checkpoint(path)
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated/corrupt files raise many different types
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
        reason = next((ln for ln in lines if "Unpickler error" in ln), lines[0])
        raise TrainError(f"{p} is not a readable checkpoint (corrupt or truncated? {reason[:120]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise TrainError(
            f"{p} is not a training checkpoint of 'streamdehaze train' (for weight files use --weights elsewhere)"
        )
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise TrainError(f"{p}: incomplete training checkpoint, missing {', '.join(missing)}")
    if int(ckpt.get("version", 0)) > VERSION:
        raise TrainError(f"{p}: checkpoint version {ckpt['version']} is newer than this streamdehaze ({VERSION})")
    ckpt["path"] = str(p)
    return ckpt


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plus format/version) to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)
    os.replace(tmp, path)


def rng_state() -> dict[str, Any]:
    """All global RNG states (torch, CUDA, numpy, Python) in ``weights_only``-loadable types."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "gauss": [has_gauss, gauss]},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    keys = np_state["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, np_state["pos"], int(np_state["gauss"][0]), float(np_state["gauss"][1])))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
