"""Loading and saving weight files.

Two formats load:

* **official** AECR-Net checkpoints as published (``.pk``/``.pth``): ``{'model': state_dict, ...}``
  or a bare state dict, keys with or without DataParallel's ``module.`` prefix;
* **ours**: ``{'format': 'streamdehaze', 'arch': 'aecrnet', 'ngf': 64, 'state_dict': ...,
  'meta': {...}}`` as written by :func:`save_weights` (training data, steps, metrics, encoder).

Loading never half-succeeds: a file that does not fit the network raises :class:`ModelError`
naming the missing/unexpected keys or the first mismatched shape.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ModelError

FORMAT = "streamdehaze"


@dataclass
class WeightFile:
    """A loaded weight file: the state dict (prefix stripped) and what is known about it."""

    path: Path
    state_dict: dict[str, torch.Tensor]
    arch: str = "aecrnet"
    ngf: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    official: bool = False


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _strip_prefix(sd: dict[str, Any], prefix: str = "module.") -> dict[str, Any]:
    if sd and all(k.startswith(prefix) for k in sd):
        return {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


def trained_work_side(work_side: tuple[int, int] | list[int]) -> int | None:
    """The short side weights trained at a working size of ``(lo, hi)`` px run at: the middle of the
    range, rounded to a multiple of 8; None for training at native size (``hi`` 0)."""
    lo, hi = work_side
    return 8 * round((lo + hi) / 16) if hi else None


def read_weights(path: str | os.PathLike) -> WeightFile:
    """Read a checkpoint in either format; raises :class:`ModelError` with the reason."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weight file not found: {path} (pass an existing .pt/.pth/.pk file with --weights)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for non-checkpoints
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path} is not a readable PyTorch checkpoint ({reason[:160]})") from None
    if not isinstance(obj, dict):
        raise ModelError(f"{path}: expected a dict (state dict or checkpoint), got {type(obj).__name__}")
    if obj.get("format") == FORMAT:
        sd, meta = obj.get("state_dict"), dict(obj.get("meta") or {})
        arch, ngf, official = str(obj.get("arch", "aecrnet")), obj.get("ngf"), False
    else:
        sd = obj.get("model", obj.get("state_dict", obj))
        meta, arch, ngf, official = {}, "aecrnet", None, True
        config = obj.get("config")
        if isinstance(config, dict) and (side := trained_work_side(config.get("work_side") or (0, 0))):
            # a training checkpoint of ours: it runs at the working size it trained at, as its export would
            meta["work_side"] = side
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ModelError(f"{path}: no state dict of tensors found (keys: {sorted(obj)[:8]})")
    sd = _strip_prefix(sd)
    if ngf is None and "down1.1.weight" in sd:
        ngf = int(sd["down1.1.weight"].shape[0])
    return WeightFile(path=path, state_dict=sd, arch=arch, ngf=ngf, meta=meta, official=official)


def apply_state_dict(net: nn.Module, sd: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Copy ``sd`` into ``net`` only if every key and shape matches; else :class:`ModelError`."""
    own = net.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        raise ModelError(f"{source} does not fit {type(net).__name__}: " + "; ".join(parts))
    for key, tensor in own.items():
        if sd[key].shape != tensor.shape:
            raise ModelError(
                f"{source} does not fit {type(net).__name__}: {key} has shape {tuple(sd[key].shape)}, "
                f"expected {tuple(tensor.shape)} (wrong network width?)"
            )
    net.load_state_dict(sd, strict=True)


def save_weights(
    path: str | os.PathLike, net: nn.Module, arch: str, meta: dict[str, Any] | None = None, half: bool = False
) -> str:
    """Write ``net`` in our format (atomically) and return the file's sha256."""
    sd = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    if half:
        sd = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
    obj = {"format": FORMAT, "arch": arch, "ngf": getattr(net, "ngf", None), "state_dict": sd, "meta": meta or {}}
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return sha256(path)
