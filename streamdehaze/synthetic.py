"""Synthetic hazy clips with a known clear sequence, for temporal checks (ghosting, flicker).

A textured object moves over a static textured background; both are hazed with the scattering
model ``I = J · t + A · (1 − t)``, the background's transmission falling towards the top of the
frame (farther away, like a road), the object nearer (higher transmission). The object's mask is
returned for every frame so its region can be scored on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class HazyClip:
    """``hazy``, ``clear``: ``(N, H, W, 3) uint8`` RGB; ``masks``: ``(N, H, W)`` bool (the moving object)."""

    hazy: np.ndarray
    clear: np.ndarray
    masks: np.ndarray
    airlight: tuple[float, float, float]


def _texture(rng: np.random.Generator, h: int, w: int, blur: float) -> np.ndarray:
    """``(h, w, 3)`` float32 in [0, 1]: smoothed colour noise stretched to the full range."""
    noise = rng.random((h, w, 3), dtype=np.float32)
    tex = cv2.GaussianBlur(noise, (0, 0), blur)
    lo, hi = tex.min(axis=(0, 1)), tex.max(axis=(0, 1))
    return (tex - lo) / np.maximum(hi - lo, 1e-6)


def moving_object_clip(
    n_frames: int = 12,
    size: tuple[int, int] = (128, 96),
    speed: tuple[float, float] = (5.0, 1.0),
    object_size: tuple[int, int] | None = None,
    airlight: tuple[float, float, float] = (0.85, 0.87, 0.9),
    t_far: float = 0.3,
    t_near: float = 0.8,
    t_object: float = 0.75,
    noise: float = 0.0,
    seed: int = 0,
) -> HazyClip:
    """A clip of ``n_frames`` ``size = (W, H)`` frames; the object moves ``speed`` (x, y) pixels per frame.

    Background transmission goes linearly from ``t_far`` (top row) to ``t_near`` (bottom row); the
    object's is ``t_object``. ``noise``: standard deviation (0–1 scale) of Gaussian sensor noise
    added to the hazy frames, fresh every frame. The object starts at the left, a quarter down.
    """
    w, h = size
    ow, oh = object_size or (max(8, w // 4), max(8, h // 3))
    rng = np.random.default_rng(seed)
    background = 0.1 + 0.8 * _texture(rng, h, w, blur=1.2)
    stripes = (np.indices((oh, ow)).sum(0) // 3 % 2).astype(np.float32)[..., None]  # diagonal stripes
    obj = 0.15 + 0.7 * (0.6 * stripes + 0.4 * _texture(rng, oh, ow, blur=0.8))
    obj[..., 0] = 0.3 + 0.6 * obj[..., 0]  # reddish: differs from the background in colour too
    t_bg = np.linspace(t_far, t_near, h, dtype=np.float32)[:, None, None] * np.ones((1, w, 1), np.float32)
    a = np.asarray(airlight, np.float32)
    hazy, clear, masks = [], [], []
    for i in range(n_frames):
        x0, y0 = round(2 + speed[0] * i), round(h // 4 + speed[1] * i)
        j, t = background.copy(), t_bg.copy()
        m = np.zeros((h, w), bool)
        xs, ys = slice(max(0, x0), min(w, x0 + ow)), slice(max(0, y0), min(h, y0 + oh))
        if xs.start < xs.stop and ys.start < ys.stop:
            j[ys, xs] = obj[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
            t[ys, xs] = t_object
            m[ys, xs] = True
        img = j * t + a * (1.0 - t)
        if noise:
            img = img + rng.normal(0.0, noise, img.shape).astype(np.float32)
        hazy.append(_to_uint8(img))
        clear.append(_to_uint8(j))
        masks.append(m)
    return HazyClip(np.stack(hazy), np.stack(clear), np.stack(masks), tuple(float(v) for v in a))


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(x * 255.0 + 0.5), 0, 255).astype(np.uint8)
