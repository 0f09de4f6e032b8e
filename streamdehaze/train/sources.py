"""Training sources: paired hazy/clear folders, clear images or videos for synthetic haze, haze-free images.

``--data`` specs (``DIR``, ``DIR@W``, ``synth:PATH[@W]``, ``clear:PATH[@W]``) are parsed by
:func:`parse_source`; :class:`PairedImages` and :class:`ClearImages` check their files up front
(clear errors before training starts) and decode lazily, keeping decoded images in a
:class:`DecodeCache`. Mixing and augmentation are :mod:`streamdehaze.train.data`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, InputError
from ..io.stills import IMAGE_EXTENSIONS, natural_key, read_image
from ..pairs import find_pairs

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".ts", ".m4v")
CLEAR_NAMES = ("clear", "gt", "GT")
MAX_BORDER = 40  # clear images up to this many pixels larger are centre-cropped (RESIDE ITS: 640×480 vs 620×460)
# Decoded images kept per source and loader process. Decoding a 620×460 PNG pair costs more CPU
# than the training step's share for it at ngf 16, and the SOTS folders fit in far less.
DECODE_CACHE_BYTES = 2 << 30


class DecodeCache:
    """Decoded ``(H, W, 3) uint8`` arrays by key, kept until ``max_bytes`` are held (then no more)."""

    def __init__(self, max_bytes: int = DECODE_CACHE_BYTES) -> None:
        self.max_bytes, self.bytes, self.items = max_bytes, 0, {}

    def get(self, key, load):
        if key in self.items:
            return self.items[key]
        value = load()
        size = sum(a.nbytes for a in value) if isinstance(value, tuple) else value.nbytes
        if self.bytes + size <= self.max_bytes:
            self.items[key] = value
            self.bytes += size
        return value


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # "pairs" | "synth" | "clear"
    path: Path
    weight: float = 1.0


def parse_source(spec: str) -> SourceSpec:
    """``DIR``, ``DIR@W``, ``synth:PATH[@W]``, ``clear:PATH[@W]`` → :class:`SourceSpec`."""
    kind, rest = "pairs", spec
    for prefix in ("synth", "clear"):
        if spec.startswith(prefix + ":"):
            kind, rest = prefix, spec[len(prefix) + 1 :]
    weight = 1.0
    if "@" in rest:
        rest, w = rest.rsplit("@", 1)
        try:
            weight = float(w)
        except ValueError:
            raise DataError(f"--data {spec}: weight {w!r} is not a number (expected DIR@2 or DIR@0.5)") from None
        if weight <= 0:
            raise DataError(f"--data {spec}: weight must be positive")
    return SourceSpec(kind, Path(rest), weight)


def paired_dirs(root: Path) -> tuple[Path, Path]:
    """``(root/hazy, root/clear|gt|GT)``; :class:`DataError` naming what is missing."""
    if not root.is_dir():
        raise DataError(f"training data folder not found: {root}")
    clear = next((root / n for n in CLEAR_NAMES if (root / n).is_dir()), None)
    if not (root / "hazy").is_dir() or clear is None:
        raise DataError(
            f"{root}: expected sub-folders hazy/ and clear/ (or gt/); use synth:{root} for clear images only"
        )
    return root / "hazy", clear


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image  # header only: cheap (Pillow comes with torchvision)

    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except Exception:
        raise DataError(f"{path}: not a readable image") from None


class PairedImages:
    """Hazy/clear pairs of a folder; sizes checked up front. ``load(i)`` → two ``(H, W, 3) uint8``."""

    def __init__(self, root: Path) -> None:
        self.name = str(root)
        self.cache = DecodeCache()
        self.pairs = find_pairs(*paired_dirs(root))
        for hazy, clear in self.pairs:
            (hh, hw), (ch, cw) = _image_size(hazy), _image_size(clear)
            if not (0 <= ch - hh <= MAX_BORDER and 0 <= cw - hw <= MAX_BORDER):
                raise DataError(f"{hazy.name} is {hw}×{hh} but its clear partner {clear.name} is {cw}×{ch}")

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.cache.get(i, lambda: self._decode(i))

    def _decode(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        hazy, clear = (read_data_image(p) for p in self.pairs[i])
        dy, dx = clear.shape[0] - hazy.shape[0], clear.shape[1] - hazy.shape[1]
        clear = clear[dy // 2 : dy // 2 + hazy.shape[0], dx // 2 : dx // 2 + hazy.shape[1]]
        return hazy, clear


class ClearImages:
    """Clear pictures for synthetic haze: an image folder, or a video (frames kept in memory).

    A video contributes at most ``max_frames`` frames spread evenly, scaled to at most
    ``max_side`` pixels on the long side (enough for training crops, bounded memory).
    ``haze_free``: the pictures are not hazed but trained on as clear → clear (``clear:PATH``), so
    the network learns to leave haze-free scenes like them alone.
    """

    def __init__(self, path: Path, max_frames: int = 500, max_side: int = 960, haze_free: bool = False) -> None:
        self.haze_free = haze_free
        self.name = f"{'clear' if haze_free else 'synth'}:{path}"
        self.cache = DecodeCache()
        self.files: list[Path] = []
        self.frames: list[np.ndarray] = []
        if path.is_dir():
            self.files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS), key=natural_key)
            if not self.files:
                raise DataError(f"{self.name}: folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        elif path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS:
            self.frames = _video_frames(path, max_frames, max_side)
        elif path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
            self.files = [path]
        else:
            raise DataError(f"{self.name}: expected an image folder or a video file ({', '.join(VIDEO_EXTENSIONS)})")

    def __len__(self) -> int:
        return len(self.files) or len(self.frames)

    def load(self, i: int) -> np.ndarray:
        return self.cache.get(i, lambda: read_data_image(self.files[i])) if self.files else self.frames[i]


def _video_frames(path: Path, max_frames: int, max_side: int) -> list[np.ndarray]:
    import av
    import cv2

    kept: list[np.ndarray] = []
    stride = 1  # keep frames 0, stride, 2·stride, ...; double the stride when the list grows too long
    try:
        with av.open(str(path)) as box:
            for i, frame in enumerate(box.decode(video=0)):
                if i % stride:
                    continue
                f = frame.to_ndarray(format="rgb24")
                s = max_side / max(f.shape[:2])
                kept.append(cv2.resize(f, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else f)
                if len(kept) >= 2 * max_frames:
                    kept, stride = kept[::2], stride * 2
    except (av.FFmpegError, OSError) as exc:
        raise DataError(f"synth:{path}: cannot decode the video ({exc})") from None
    if not kept:
        raise DataError(f"synth:{path}: the video holds no frames")
    keep = np.linspace(0, len(kept) - 1, min(max_frames, len(kept))).round().astype(int)
    return [kept[i] for i in sorted(set(keep.tolist()))]


def read_data_image(path: Path) -> np.ndarray:
    """``(H, W, 3) uint8`` RGB; :class:`DataError` (a training-data problem) for an unreadable file."""
    try:
        return read_image(path)
    except InputError as exc:
        raise DataError(str(exc)) from None
