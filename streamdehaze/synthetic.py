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


CAMERA_MOTIONS = ("pan", "zoom", "object")


def camera_clip(
    scene: np.ndarray,
    motion: str,
    n_frames: int = 30,
    size: tuple[int, int] = (640, 360),
    pasted: np.ndarray | None = None,
    airlight: tuple[float, float, float] = (0.80, 0.82, 0.86),
    density: float = 1.2,
    drift: float = 0.15,
    noise: float = 0.01,
    crf: int | None = 23,
    seed: int = 0,
) -> HazyClip:
    """A hazy clip ``size = (W, H)`` over a clear still ``scene`` ``(H0, W0, 3)`` uint8, with its clear sequence.

    ``motion``: ``pan`` (the view slides across the still), ``zoom`` (it narrows to 60 % around the
    centre), ``object`` (a still view, with ``pasted`` (uint8 RGB; default: a patch of ``scene``
    mirrored) moving across it, nearer than the background; its mask is returned). Haze follows
    the scattering model with a depth that grows towards the top of the still plus smooth
    variation, so it moves with the scene; the density goes from ``density · (1 − drift)`` to
    ``density · (1 + drift)`` over the clip (fog thickening); the airlight is slightly blue. After the
    haze: Gaussian sensor noise (``noise``, 0–1 scale, fresh per frame) and, with ``crf``, an H.264
    round trip (libx264 at that CRF, yuv420p), as a camera does.
    """
    if motion not in CAMERA_MOTIONS:
        raise ValueError(f"motion {motion!r}: expected one of {', '.join(CAMERA_MOTIONS)}")
    w, h = size
    rng = np.random.default_rng(seed)
    src = scene.astype(np.float32) / 255.0
    sh, sw = src.shape[:2]
    rows = np.linspace(1.0, 0.0, sh, dtype=np.float32)[:, None]  # 1 at the top (far), 0 at the bottom
    depth = 0.25 + 0.75 * rows + 0.15 * (_texture(rng, sh, sw, blur=min(sh, sw) / 12)[..., 0] - 0.5)
    a = np.asarray(airlight, np.float32)
    view = min(sw / w, sh / h)  # source pixels per output pixel for a view that just fits
    hazy, clear, masks = [], [], []
    for i in range(n_frames):
        f = i / max(n_frames - 1, 1)
        scale = view * {"pan": 0.7, "zoom": 1.0 - 0.4 * f, "object": 0.9}[motion]
        cx = sw / 2 + ((f - 0.5) * (sw - scale * w) if motion == "pan" else 0.0)
        cy = sh / 2
        m = np.float32([[scale, 0, cx - scale * w / 2], [0, scale, cy - scale * h / 2]])  # output → source
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        j = cv2.warpAffine(src, m, (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT)
        d = cv2.warpAffine(depth, m, (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT)
        mask = np.zeros((h, w), bool)
        if motion == "object":
            j, d, mask = _paste(j, d, pasted if pasted is not None else scene[:, ::-1], f)
        beta = density * (1.0 + drift * np.sin(np.pi * (f - 0.5)))
        t = np.exp(-beta * d)[..., None]
        img = j * t + a * (1.0 - t) + rng.normal(0.0, noise, (h, w, 3)).astype(np.float32)
        hazy.append(_to_uint8(img))
        clear.append(_to_uint8(j))
        masks.append(mask)
    frames = np.stack(hazy)
    if crf is not None:
        frames = h264_round_trip(frames, crf)
    return HazyClip(frames, np.stack(clear), np.stack(masks), tuple(float(v) for v in a))


def _paste(j: np.ndarray, d: np.ndarray, obj: np.ndarray, f: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An object a quarter of the frame wide crossing the view at fraction ``f`` of the clip, at depth 0.15."""
    h, w = j.shape[:2]
    ow, oh = w // 4, h // 3
    patch = cv2.resize(obj, (ow, oh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    x = -ow / 2 + f * (w - ow / 2)  # sub-pixel position: the object moves smoothly
    y = h * 0.45
    m = np.float32([[1, 0, x], [0, 1, y]])
    layer = cv2.warpAffine(patch, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = cv2.warpAffine(np.ones((oh, ow), np.float32), m, (w, h), flags=cv2.INTER_LINEAR)
    j = j * (1 - alpha[..., None]) + layer * alpha[..., None]
    d = d * (1 - alpha) + 0.15 * alpha
    return j, d, alpha > 0.5


def h264_round_trip(frames: np.ndarray, crf: int = 23) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 RGB through libx264 (yuv420p, CRF ``crf``) and back: compression as a camera makes it."""
    import io

    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    buf.seek(0)
    with av.open(buf) as inp:
        decoded = [fr.to_ndarray(format="rgb24") for fr in inp.decode(video=0)]
    if len(decoded) != len(frames):
        raise RuntimeError(f"H.264 round trip returned {len(decoded)} of {len(frames)} frames")
    return np.stack(decoded)
