"""YUV 4:2:0 ↔ RGB on any device, so the GPU path never converts colour on the CPU.

Layout: PyAV's ``VideoFrame.to_ndarray()`` of a ``yuv420p`` frame, one ``(H * 3 // 2, W)`` uint8
array holding the Y plane (H×W), then U and V (each H/2×W/2), row after row; H and W even. Batched:
``(B, H * 3 // 2, W)``. Frames in this layout carry ``meta['pix_fmt'] = 'yuv420p'`` (plus
``meta['yuv_matrix']`` and ``meta['yuv_range']``, see :func:`yuv_meta`); everything else in the
pipeline is ``(H, W, 3)`` RGB.

Conversions use the frame's matrix (BT.601 where it names none, as swscale does; BT.709, BT.2020,
FCC, SMPTE 240M) and range (limited, "tv", 16–235/240, unless the frame says full or its pixel
format is ``yuvj420p``), the same both ways, so the encoder gets the matrix it is told; chroma is
upsampled by repetition (nearest, as swscale's unscaled yuv420p → rgb24 path) and downsampled by
2×2 averaging. The arithmetic is exact (float32) where swscale uses 15-bit tables, so results
differ from PyAV's by about one level on average.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..frames import Colour

# (Kr, Kb) luma weights per matrix
MATRICES = {
    "bt601": (0.299, 0.114),
    "bt709": (0.2126, 0.0722),
    "bt2020": (0.2627, 0.0593),
    "fcc": (0.30, 0.11),
    "smpte240m": (0.212, 0.087),
}
YUV_FORMATS = ("yuv420p", "yuvj420p")  # decoded formats whose planes pass through unconverted


def yuv_meta(pix_fmt: str, colorspace: int | None, color_range: int | None = None) -> dict[str, str]:
    """``Frame.meta`` entries for a decoded frame of ``pix_fmt``, FFmpeg ``colorspace`` and ``color_range``."""
    colour = Colour(matrix=int(2 if colorspace is None else colorspace), range=int(color_range or 0), pix_fmt=pix_fmt)
    return {"pix_fmt": "yuv420p", "yuv_matrix": colour.matrix_name, "yuv_range": "pc" if colour.full_range else "tv"}


def is_yuv(meta: dict) -> bool:
    return meta.get("pix_fmt") == "yuv420p"


def planes_shape(height: int, width: int) -> tuple[int, int]:
    """Shape of one frame's packed planes; raises InputError for odd sizes."""
    if height % 2 or width % 2:
        raise InputError(f"yuv420p needs even frame sizes, got {width}x{height}")
    return height * 3 // 2, width


def frame_size(image_shape: tuple[int, ...], meta: dict) -> tuple[int, int]:
    """``(height, width)`` of a frame's picture, whether its image is RGB or packed yuv420p."""
    if is_yuv(meta):
        return image_shape[0] * 2 // 3, image_shape[1]
    return image_shape[0], image_shape[1]


def _coefficients(matrix: str) -> tuple[float, float, float]:
    if matrix not in MATRICES:
        raise InputError(f"unknown YUV matrix {matrix!r}; expected one of {', '.join(MATRICES)}")
    kr, kb = MATRICES[matrix]
    return kr, 1.0 - kr - kb, kb


def _scales(full_range: bool) -> tuple[float, float, float]:
    """(luma offset, luma scale, chroma scale) in 8-bit levels."""
    return (0.0, 255.0, 255.0) if full_range else (16.0, 219.0, 224.0)


def split_planes(planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(B, 3H/2, W)`` packed → Y ``(B, H, W)``, U and V ``(B, H/2, W/2)`` (views, same dtype)."""
    b, rows, w = planes.shape
    h = rows * 2 // 3
    planes_shape(h, w)
    flat = planes.reshape(b, -1)
    n = h * w
    y = flat[:, :n].reshape(b, h, w)
    u = flat[:, n : n + n // 4].reshape(b, h // 2, w // 2)
    v = flat[:, n + n // 4 :].reshape(b, h // 2, w // 2)
    return y, u, v


def yuv420p_to_rgb(planes: torch.Tensor, matrix: str = "bt601", full_range: bool = False) -> torch.Tensor:
    """Packed ``(B, 3H/2, W)`` uint8 yuv420p → ``(B, 3, H, W)`` float32 RGB in [0, 1], on ``planes``' device."""
    if planes.dtype != torch.uint8 or planes.ndim != 3:
        raise InputError(f"expected (B, 3H/2, W) uint8 yuv420p planes, got {tuple(planes.shape)} {planes.dtype}")
    kr, kg, kb = _coefficients(matrix)
    off, ys, cs = _scales(full_range)
    y, u, v = split_planes(planes)
    luma = (y.float() - off) / ys  # (B, H, W)
    chroma = (torch.stack([u, v], 1).float() - 128.0) / cs  # (B, 2, H/2, W/2)
    chroma = F.interpolate(chroma, scale_factor=2, mode="nearest")
    pb, pr = chroma[:, 0], chroma[:, 1]
    r = luma + 2.0 * (1.0 - kr) * pr
    b = luma + 2.0 * (1.0 - kb) * pb
    g = (luma - kr * r - kb * b) / kg
    return torch.stack([r, g, b], 1).clamp_(0.0, 1.0)


def rgb_to_yuv420p(x: torch.Tensor, matrix: str = "bt601", full_range: bool = False) -> torch.Tensor:
    """``(B, 3, H, W)`` float RGB in [0, 1] → packed ``(B, 3H/2, W)`` uint8 yuv420p, on ``x``'s device.

    Luma per pixel, chroma from the 2×2 average of each block; rounded half up and clipped.
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise InputError(f"expected a (B, 3, H, W) RGB tensor, got shape {tuple(x.shape)}")
    b_, _, h, w = x.shape
    planes_shape(h, w)
    kr, kg, kb = _coefficients(matrix)
    off, ys, cs = _scales(full_range)
    x = x.float().clamp(0.0, 1.0)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    luma = kr * r + kg * g + kb * b
    # chroma is linear in RGB: average first (4× fewer pixels), then convert
    small = F.avg_pool2d(x, 2)
    luma_s = kr * small[:, 0] + kg * small[:, 1] + kb * small[:, 2]
    pb = (small[:, 2] - luma_s) / (2.0 * (1.0 - kb))
    pr = (small[:, 0] - luma_s) / (2.0 * (1.0 - kr))

    def levels(t: torch.Tensor, scale: float, offset: float) -> torch.Tensor:
        return (t * scale + offset).add_(0.5).floor_().clamp_(0, 255).to(torch.uint8).reshape(b_, -1)

    packed = torch.cat([levels(luma, ys, off), levels(pb, cs, 128.0), levels(pr, cs, 128.0)], 1)
    return packed.reshape(b_, h * 3 // 2, w)


def planes_to_rgb_image(image: np.ndarray, meta: dict) -> np.ndarray:
    """Host helper for consumers that need RGB: one frame's packed planes → ``(H, W, 3)`` uint8 RGB."""
    t = torch.from_numpy(np.ascontiguousarray(image))[None]
    rgb = yuv420p_to_rgb(t, meta.get("yuv_matrix", "bt601"), meta.get("yuv_range") == "pc")
    return rgb.mul_(255.0).add_(0.5).floor_().to(torch.uint8)[0].permute(1, 2, 0).contiguous().numpy()
