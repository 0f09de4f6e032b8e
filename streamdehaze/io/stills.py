"""Still images: expanding user paths, reading and writing with clear errors."""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import EncodeError, InputError, StreamDehazeError
from .preflight import IMAGE_EXTENSIONS

if TYPE_CHECKING:  # cv2 and numpy load on first use: expand_inputs runs before them (fast errors)
    import numpy as np


def natural_key(path: str | os.PathLike) -> list:
    """Sort key that orders ``frame_2`` before ``frame_10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(path))]


def expand_inputs(items: list[str] | tuple[str, ...]) -> list[Path]:
    """Files, folders (their images) and globs → image paths, naturally sorted within each item."""
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = [q for q in p.iterdir() if q.suffix.lower() in IMAGE_EXTENSIONS]
            if not found:
                raise InputError(f"{item}: folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        elif p.is_file():
            found = [p]
        elif glob.has_magic(item):
            found = [Path(q) for q in glob.glob(item) if Path(q).suffix.lower() in IMAGE_EXTENSIONS]
            if not found:
                raise InputError(f"{item}: pattern matches no image files")
        else:
            raise InputError(f"{item}: no such file or folder")
        out.extend(sorted(found, key=natural_key))
    return out


def read_image(path: str | os.PathLike, error: type[StreamDehazeError] = InputError) -> np.ndarray:
    """``(H, W, 3) uint8`` RGB; grey and alpha images are converted; errors are one line of ``error``."""
    import cv2
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such image file")
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise error(f"cannot read image {path}: not an image or corrupt (expected PNG, JPEG, BMP, TIFF or WebP)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write ``(H, W, 3) uint8`` RGB; the file appears complete or not at all."""
    import cv2

    path = Path(path)
    ok, buf = cv2.imencode(path.suffix or ".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InputError(f"{path}: cannot encode an image with this extension")
    tmp = path.with_name(f".{path.name}.part")
    try:
        buf.tofile(str(tmp))
        os.replace(tmp, path)
    except OSError as err:  # a full disk, a folder that went away: one line, no partial file
        tmp.unlink(missing_ok=True)
        raise EncodeError(f"cannot write {path}: {err.strerror or err}") from None
