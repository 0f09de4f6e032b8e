"""Dehazing still images through a :class:`Dehazer` (the API behind ``streamdehaze image``/``eval``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .choices import DEFAULT_GUARD
from .nets.dehazer import Dehazer
from .nets.registry import load_model
from .ops.color import to_tensor, to_uint8
from .ops.transfer_fit import STILLS_TRANSFER_FIT, transfer
from .settings import check_keywords
from .work_size import WorkSize, parse_work_size


def dehaze_image(
    image: np.ndarray,
    model: Dehazer | str = "aecrnet",
    weights: str | None = None,
    device: str | torch.device = "auto",
    work_size: str | float | WorkSize | None = None,
    transfer_fit: str = STILLS_TRANSFER_FIT,
    strength: float = 1.0,
    guard: str = DEFAULT_GUARD,
    **other: Any,
) -> np.ndarray:
    """Dehaze one ``(H, W, 3) uint8`` RGB image; returns the same shape and type.

    ``model`` is a loaded :class:`Dehazer` (reuse it across calls) or a registry name.
    ``work_size``: run the network at a lower resolution and carry its result to full resolution
    by guided transfer: ``"auto"`` (the device's default), a short side (``540``), a scale
    (``0.5``); None or ``"full"``: full resolution. ``transfer_fit``: the shape of that transfer's
    fit (``"wide"``, the stills default, or ``"local"``, video's; see
    :data:`~.ops.transfer_fit.TRANSFER_FITS`). ``strength``:
    the amount of dehazing in [0, 1] (0 returns the input; see :func:`~.ops.transfer_fit.strengthen`).
    ``guard``: the guard rails after the fit (:data:`~.choices.GUARDS`). These are the settings tree's
    keywords with its checks (:mod:`.settings`; stills default to ``transfer_fit="wide"`` and full
    resolution); a bad value or any other keyword (the video settings do not apply to one image) is
    :class:`~.errors.InputError`.
    """
    stills = {"work_size": work_size, "transfer_fit": transfer_fit, "strength": strength, "guard": guard}
    strength = check_keywords({**stills, **other}, allowed=stills, where="dehaze_image")["strength"]
    if isinstance(model, str):
        model = load_model(model, weights=weights, device=device)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    work = parse_work_size(work_size, model.device, model)
    with torch.inference_mode():
        x = to_tensor(image[None], device=model.device)
        y = transfer(model, x, work.size_for(*x.shape[-2:]), transfer_fit, strength=strength, guard=guard)
        return to_uint8(y)[0].cpu().numpy()
