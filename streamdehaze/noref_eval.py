"""Evaluating a dehazer on real images without clear partners (``streamdehaze eval --no-reference``).

Inputs are photos, folders of photos, globs and video files (whose frames are evaluated one by
one, as stills: no temporal smoothing). Each image is dehazed as ``streamdehaze image`` does
(:func:`~streamdehaze.images.dehaze_image`) and scored with
:func:`~streamdehaze.noref.no_reference_figures` against itself; a baseline model (``dcp``) can
be scored alongside, and a contact sheet collected.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError
from .io.stills import IMAGE_EXTENSIONS, expand_inputs, natural_key, read_image
from .noref import NoRefFigures, no_reference_figures
from .sheet import RowSampler, SheetRow, thumbnail

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".ts", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")


@dataclass
class EvalInput:
    """One photo, or one video whose frames are evaluated."""

    path: Path
    is_video: bool = False
    frames: int | None = None  # frames that will be evaluated (videos; None: unknown)


def expand_eval_inputs(items: list[str] | tuple[str, ...]) -> list[EvalInput]:
    """Files, folders (their images), globs (images and videos) -> inputs in natural order.

    A file with an image extension is a photo, any other file a video. Raises
    :class:`InputError` for a missing path or a folder/glob without images or videos.
    """
    out: list[EvalInput] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out += [EvalInput(q) for q in expand_inputs([item])]
        elif p.is_file():
            out.append(EvalInput(p, is_video=p.suffix.lower() not in IMAGE_EXTENSIONS))
        elif glob.has_magic(item):
            found = sorted((Path(q) for q in glob.glob(item) if Path(q).is_file()), key=natural_key)
            found = [q for q in found if q.suffix.lower() in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS]
            if not found:
                raise InputError(f"{item}: pattern matches no image or video files")
            out += [EvalInput(q, is_video=q.suffix.lower() in VIDEO_EXTENSIONS) for q in found]
        else:
            raise InputError(f"{item}: no such file or folder (expected photos, a folder, a glob or a video)")
    return out


def _frames_to_evaluate(total: int | None, every: int, max_frames: int | None) -> int | None:
    if total is None:
        return max_frames
    n = math.ceil(total / every)
    return n if max_frames is None else min(n, max_frames)


def count_frames(inputs: list[EvalInput], every: int = 1, max_frames: int | None = None) -> int | None:
    """Number of images that :func:`iter_images` will yield (None when a video's length is unknown).

    Opens each video to read its announced frame count (and fills ``EvalInput.frames``).
    """
    from .io.sources import FileSource

    total: int | None = 0
    for inp in inputs:
        if inp.is_video:
            src = FileSource(str(inp.path))
            try:
                inp.frames = _frames_to_evaluate(src.open().frame_count, every, max_frames)
            finally:
                src.close()
            total = None if total is None or inp.frames is None else total + inp.frames
        elif total is not None:
            total += 1
    return total


def iter_images(
    inputs: list[EvalInput], every: int = 1, max_frames: int | None = None
) -> Iterator[tuple[str, str, np.ndarray]]:
    """``(short name, full name, (H, W, 3) uint8 RGB)`` for each photo and each evaluated video frame.

    Videos give frames 0, ``every``, 2·``every``, ... (at most ``max_frames`` per video), named
    ``file.mp4#N`` (N: the frame's 0-based index in the file).
    """
    from .io.sources import FileSource

    for inp in inputs:
        if not inp.is_video:
            yield inp.path.name, str(inp.path), read_image(inp.path)
            continue
        src = FileSource(str(inp.path))
        try:
            src.open()
            done = 0
            while max_frames is None or done < max_frames:
                frame = src.read()
                if frame is None:
                    break
                if frame.index % every == 0:
                    done += 1
                    yield f"{inp.path.name}#{frame.index}", f"{inp.path}#{frame.index}", frame.image
        finally:
            src.close()


@dataclass
class NoRefRow:
    """The figures of one image: ``figures`` for the model, ``baseline`` for the baseline model."""

    name: str
    source: str
    figures: NoRefFigures
    baseline: NoRefFigures | None = None


def _captions(name: str, model: str, f: NoRefFigures) -> tuple[list[str], list[str]]:
    lines = [
        f"{model}: e {f.e:+.2f}  rbar {f.rbar:.2f}  sat {f.sigma:.2f}%",
        f"dark {f.dark_out:.1f}% ({f.dark_diff:+.1f})  B-R {f.cast_br:+.1f}  G-M {f.cast_gm:+.1f}",
    ]
    return [name, f"dark (luma<=8) {f.dark_in:.1f}%"], lines


@dataclass
class NoRefEvaluation:
    """Scores images with ``dehaze`` (and ``baseline``): callables ``(H, W, 3) uint8 -> same``.

    ``sheet_rows``: also keep that many evenly spread rows for a contact sheet (0: none).
    """

    dehaze: Callable[[np.ndarray], np.ndarray]
    model: str
    baseline: Callable[[np.ndarray], np.ndarray] | None = None
    baseline_model: str | None = None
    sheet_rows: int = 0
    rows: list[NoRefRow] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sampler = RowSampler(self.sheet_rows) if self.sheet_rows else None

    def add(self, name: str, source: str, image: np.ndarray) -> NoRefRow:
        """Dehaze ``image`` ``(H, W, 3) uint8`` RGB with the model (and the baseline) and score it."""
        out = self.dehaze(image)
        row = NoRefRow(name, source, no_reference_figures(image, out))
        base = self.baseline(image) if self.baseline is not None else None
        if base is not None:
            row.baseline = no_reference_figures(image, base)
        if self.sampler is not None:
            first, second = _captions(name, self.model, row.figures)
            tiles, captions = [thumbnail(image), thumbnail(out)], [first, second]
            if base is not None:
                tiles.append(thumbnail(base))
                captions.append(_captions(name, self.baseline_model or "baseline", row.baseline)[1])
            self.sampler.offer(len(self.rows), SheetRow(tiles, captions))
        self.rows.append(row)
        return row

    def sheet_rows_selected(self) -> list[SheetRow]:
        return self.sampler.selected() if self.sampler is not None else []
