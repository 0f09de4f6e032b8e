"""Image sequences: ImageSource reads a folder, a glob or one image; ImageSink writes numbered files.

Files sort naturally (``frame_2`` before ``frame_10``). A sequence's frames get ``pts`` = their
position in the sequence with time base ``1/fps``.
"""

from __future__ import annotations

import glob
import os
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from streamdehaze.errors import DecodeError, EncodeError, InputError
from streamdehaze.frames import Frame, StreamInfo
from streamdehaze.io import stills
from streamdehaze.io.base import Sink, Source, check_status
from streamdehaze.io.stills import IMAGE_EXTENSIONS, natural_key


def list_images(spec: str) -> list[str]:
    """Image files named by ``spec`` (a folder, a glob or one file), naturally sorted."""
    if os.path.isdir(spec):
        names = [os.path.join(spec, n) for n in os.listdir(spec)]
        paths = [p for p in names if os.path.isfile(p) and os.path.splitext(p)[1].lower() in IMAGE_EXTENSIONS]
    elif glob.has_magic(spec):
        paths = [p for p in glob.glob(spec) if os.path.isfile(p)]
    else:
        paths = [spec] if os.path.isfile(spec) else []
    return sorted(paths, key=natural_key)


def read_image(path: str) -> np.ndarray:
    """``(H, W, 3) uint8`` RGB; DecodeError when a frame of the sequence is not a readable image."""
    return stills.read_image(path, error=DecodeError)


class ImageSource(Source):
    """A folder, glob or single image read as a constant-frame-rate sequence."""

    is_live = False

    def __init__(self, spec: str, *, fps: float = 25.0, start: float | None = None) -> None:
        super().__init__()
        if fps <= 0:
            raise InputError(f"fps must be > 0, got {fps}")
        self.spec = spec
        self.rate = Fraction(fps).limit_denominator(1001)
        self.start = start
        self.paths: list[str] = []
        self._pos = 0
        self._index = 0
        self._size: tuple[int, int] | None = None

    def _open(self) -> StreamInfo:
        self.paths = list_images(self.spec)
        if not self.paths:
            raise InputError(
                f"no images found at {self.spec} (expected a folder or glob of {', '.join(IMAGE_EXTENSIONS)} files)"
            )
        self._pos = min(len(self.paths), round((self.start or 0) * self.rate))
        self._index = 0
        if self._pos >= len(self.paths):
            raise InputError(f"start {self.start} s is past the end of {self.spec} ({len(self.paths)} images)")
        first = read_image(self.paths[self._pos])
        self._size = (first.shape[1], first.shape[0])
        count = len(self.paths) - self._pos
        return StreamInfo(
            width=self._size[0],
            height=self._size[1],
            time_base=1 / self.rate,
            frame_rate=self.rate,
            frame_count=count,
            duration=float(count / self.rate),
            description=f"{self.spec}: {count} images {self._size[0]}x{self._size[1]}",
        )

    def _read(self) -> Frame | None:
        if self._pos >= len(self.paths):
            return None
        path = self.paths[self._pos]
        image = read_image(path)
        if (image.shape[1], image.shape[0]) != self._size:
            w, h = self._size
            raise InputError(
                f"image {path} is {image.shape[1]}x{image.shape[0]} but the sequence is {w}x{h}; "
                "all images of a sequence must share one size"
            )
        frame = Frame(image=image, pts=self._pos, time_base=1 / self.rate, index=self._index, meta={"path": path})
        self._pos += 1
        self._index += 1
        return frame

    def _release(self) -> None:
        self._pos = len(self.paths)


class ImageSink(Sink):
    """Writes frames as numbered images: ``DIR/`` -> ``DIR/000000.png``, ``DIR/000001.png``, ...

    ``pattern`` is a path with a ``%d``-style field (``out/f_%04d.jpg``). Each image is written
    to a temporary name and renamed. ``close("failed")`` removes every image written (and the
    folder when this sink created it).
    """

    def __init__(self, pattern: str) -> None:
        if os.path.isdir(pattern) or pattern.endswith(("/", os.sep)):
            pattern = os.path.join(pattern, "%06d.png")
        self.path = self.pattern = pattern
        self.ext = os.path.splitext(pattern)[1].lower()
        if self.ext not in IMAGE_EXTENSIONS:
            raise EncodeError(f"unknown image extension {self.ext!r} in {pattern}; use one of {IMAGE_EXTENSIONS}")
        try:
            pattern % 0
        except (TypeError, ValueError):
            raise EncodeError(
                f"image output {pattern} needs one %d field for the frame number, e.g. out/%06d.png"
            ) from None
        self.frames_written = 0
        self.written: list[str] = []
        self._created: list[Path] = []
        self._closed = False

    def open(self, info: StreamInfo) -> None:
        folder = Path(os.path.dirname(self.pattern) or ".")
        missing = [p for p in [folder, *folder.parents] if not p.exists()]
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise EncodeError(f"cannot create output folder {folder}: {err.strerror}") from None
        self._created = missing  # deepest first: removed in that order on failure

    def write(self, frame: Frame) -> None:
        path = self.pattern % self.frames_written
        ok, data = cv2.imencode(self.ext, np.ascontiguousarray(frame.image[..., ::-1]))
        if not ok:
            raise EncodeError(f"cannot encode frame {frame.index} as {self.ext}")
        tmp = f"{path}.part"
        try:
            data.tofile(tmp)
            os.replace(tmp, path)
        except OSError as err:
            raise EncodeError(f"cannot write {path}: {err.strerror}") from None
        self.written.append(path)
        self.frames_written += 1

    def close(self, status: str = "done") -> None:
        check_status(status)
        if self._closed:
            return
        self._closed = True
        if status != "failed":
            return
        for path in self.written:
            Path(path).unlink(missing_ok=True)
        for folder in self._created:
            try:
                folder.rmdir()
            except OSError:
                break
