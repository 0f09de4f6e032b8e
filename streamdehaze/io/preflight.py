"""Checks of inputs and outputs that need no decoder, no encoder and no torch.

The commands call these first, so a missing input, an output folder that cannot be written or a
missing weight file is reported in a fraction of a second, before the model loads or a frame is
decoded (``streamdehaze run missing.mp4 -o x.mp4``). :func:`source_kind` is also how
:func:`~streamdehaze.io.sources.open_source` picks a source, so both agree on what a spec means.

Messages follow errors.py: what was received, what was expected, how to fix it.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from ..errors import EncodeError, InputError, ModelError, SourceError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Output extension -> FFmpeg muxer (the video sink's containers).
VIDEO_FORMATS = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
    ".ts": "mpegts",
}
NULL_NAMES = ("null", os.devnull)
SOURCE_KINDS = ("rtsp", "live", "images", "still", "file")


def source_kind(spec: str) -> str:
    """What ``spec`` names: ``rtsp`` (rtsp:// URL), ``live`` (webcam:N, /dev/videoN, lavfi:GRAPH),
    ``images`` (a folder or a glob: an image sequence), ``still`` (one image file) or ``file``
    (a video file, or any other URL PyAV reads)."""
    spec = str(spec)
    if not spec.strip():
        raise InputError("empty input: expected a video file, rtsp://URL, webcam:N, lavfi:GRAPH or an image folder")
    lower = spec.lower()
    if lower.startswith(("rtsp://", "rtsps://")):
        return "rtsp"
    if lower.startswith(("webcam:", "lavfi:")) or re.fullmatch(r"/dev/video\d+", spec):
        return "live"
    if os.path.isdir(spec) or glob.has_magic(spec):
        return "images"
    if os.path.splitext(lower)[1] in IMAGE_EXTENSIONS:
        return "still"
    return "file"


def _has_images(spec: str) -> bool:
    if os.path.isdir(spec):
        return any(os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS for n in os.listdir(spec))
    return any(os.path.isfile(p) for p in glob.iglob(spec))


def check_source(spec: str) -> str:
    """Raise now for an input that cannot work: a file that does not exist, a folder or glob without
    images. Returns :func:`source_kind`. Live sources and URLs are only checked when opened."""
    kind = source_kind(spec)
    spec = str(spec)
    if kind in ("file", "still") and "://" not in spec and not os.path.exists(spec):
        what = "an image file" if kind == "still" else "an existing video file"
        raise SourceError(f"input not found: {spec} (expected {what}; check the path)")
    if kind == "images" and not _has_images(spec):
        expected = f"a folder or glob of {', '.join(IMAGE_EXTENSIONS)} files"
        raise InputError(f"no images found at {spec} (expected {expected})")
    return kind


def check_writable_folder(folder: str | os.PathLike, output: str | os.PathLike | None = None) -> None:
    """Raise :class:`EncodeError` unless ``folder`` exists as a writable folder or can be created
    (its deepest existing parent is a writable folder). Creates nothing. ``output``: the path
    named in the message (default: ``folder``)."""
    shown = output if output is not None else folder
    path = Path(os.path.abspath(folder))
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise EncodeError(f"cannot write {shown}: {existing} is a file, not a folder; choose another output path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise EncodeError(
            f"cannot write {shown}: no permission to write in {existing}; choose a folder you can write to"
        )


def output_kind(path: str) -> str:
    """``null``, ``images`` (a folder ``DIR/``, an existing folder or an image pattern) or ``video``."""
    path = str(path)
    if path in NULL_NAMES:
        return "null"
    ext = os.path.splitext(path)[1].lower()
    if os.path.isdir(path) or path.endswith(("/", os.sep)) or ext in IMAGE_EXTENSIONS:
        return "images"
    return "video"


def check_output(path: str) -> str:
    """Raise now for an output that cannot be written: an unknown extension, a folder that cannot
    be created or written. Returns :func:`output_kind`. (Codecs are checked by ``open_sink``.)"""
    path = str(path)
    kind = output_kind(path)
    if kind == "null":
        return kind
    if kind == "video":
        ext = os.path.splitext(path)[1].lower()
        if ext not in VIDEO_FORMATS:
            raise EncodeError(
                f"unknown output extension {ext or '(none)'!r} in {path}; use one of "
                f"{', '.join(VIDEO_FORMATS)}, a folder ending in / for PNG frames, or 'null'"
            )
    folder = path if os.path.isdir(path) or path.endswith(("/", os.sep)) else os.path.dirname(path) or "."
    check_writable_folder(folder, path)
    return kind


def check_weights(weights: str | os.PathLike | None) -> None:
    """A ``--weights`` file that does not exist, reported before torch loads (as :mod:`..weights` would)."""
    if weights is not None and not Path(weights).is_file():
        raise ModelError(f"weight file not found: {weights} (pass an existing .pt/.pth/.pk file with --weights)")
