"""Contact sheets: rows of small images side by side (input | output | ...) with captions.

People judge dehazing by looking; ``streamdehaze eval --no-reference --sheet FILE.jpg`` writes
one. :class:`RowSampler` keeps an evenly spread subset of rows of a sequence of unknown length
in bounded memory; :func:`contact_sheet` draws them; :func:`write_sheet` writes the file
atomically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError

TILE_WIDTH = 320  # pixels per tile
HEADER_HEIGHT = 22  # column titles
LINE_HEIGHT = 14  # one caption line
CAPTION_LINES = 2
CAPTION_HEIGHT = CAPTION_LINES * LINE_HEIGHT + 6
JPEG_QUALITY = 75
SHEET_EXTENSIONS = (".jpg", ".jpeg", ".png")

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.38


def thumbnail(image: np.ndarray, width: int = TILE_WIDTH) -> np.ndarray:
    """``(H, W, 3) uint8`` -> ``(round(H·width/W), width, 3) uint8`` (area averaging when shrinking)."""
    h, w = image.shape[:2]
    height = max(1, round(h * width / w))
    interp = cv2.INTER_AREA if width < w else cv2.INTER_NEAREST
    return cv2.resize(image, (width, height), interpolation=interp)


@dataclass
class SheetRow:
    """One row: ``tiles`` (each ``(h, TILE_WIDTH, 3) uint8`` RGB, same ``h``) and up to
    ``CAPTION_LINES`` caption lines under each tile (ASCII)."""

    tiles: list[np.ndarray]
    captions: list[list[str]]


class RowSampler:
    """Keeps ``rows`` evenly spread items of a sequence whose length is not known in advance.

    Items are offered in order with their 0-based position. Those at multiples of a stride are
    kept; when more than ``4 · rows`` are held, every other one is dropped and the stride
    doubles, so memory stays bounded. The latest item is always held too. :meth:`selected`
    returns, for ``rows`` evenly spaced target positions from the first to the last, the held
    item nearest to each (so within a quarter of the spacing of its target).
    """

    def __init__(self, rows: int) -> None:
        if rows < 1:
            raise ValueError(f"rows must be >= 1, got {rows}")
        self.rows = rows
        self.stride = 1
        self._kept: list[tuple[int, SheetRow]] = []
        self._last: tuple[int, SheetRow] | None = None

    def offer(self, position: int, row: SheetRow) -> None:
        self._last = (position, row)
        if position % self.stride:
            return
        self._kept.append((position, row))
        if len(self._kept) > 4 * self.rows:
            self.stride *= 2
            self._kept = [(p, r) for p, r in self._kept if p % self.stride == 0]

    def positions(self) -> list[int]:
        """Positions of the rows :meth:`selected` returns."""
        kept = list(self._kept)
        if self._last is not None and (not kept or kept[-1][0] != self._last[0]):
            kept.append(self._last)
        self._candidates = kept
        if len(kept) <= self.rows:
            return [p for p, _ in kept]
        held = np.array([p for p, _ in kept])
        targets = np.linspace(held[0], held[-1], self.rows)
        return sorted({int(held[np.argmin(np.abs(held - t))]) for t in targets})

    def selected(self) -> list[SheetRow]:
        """Up to ``rows`` rows, evenly spread over the positions offered, first and last included."""
        wanted = set(self.positions())
        return [r for p, r in self._candidates if p in wanted]


def _fit_text(text: str, width: int) -> str:
    while text and cv2.getTextSize(text, _FONT, _FONT_SCALE, 1)[0][0] > width:
        text = text[:-2] + "~" if len(text) > 2 else ""
    return text


def _put(canvas: np.ndarray, text: str, x: int, baseline: int, width: int) -> None:
    cv2.putText(canvas, _fit_text(text, width), (x, baseline), _FONT, _FONT_SCALE, (235, 235, 235), 1, cv2.LINE_AA)


def sheet_size(heights: list[int], columns: int) -> tuple[int, int]:
    """``(height, width)`` of a sheet of rows with these tile heights and ``columns`` tiles per row."""
    return HEADER_HEIGHT + sum(h + CAPTION_HEIGHT for h in heights), columns * TILE_WIDTH


def contact_sheet(rows: list[SheetRow], titles: list[str]) -> np.ndarray:
    """Draw ``rows`` under a header of column ``titles``: ``(H, len(titles)·TILE_WIDTH, 3) uint8`` RGB.

    Each row is its tiles side by side with their captions below on a dark strip; see
    :func:`sheet_size` for the exact size.
    """
    height, width = sheet_size([r.tiles[0].shape[0] for r in rows], len(titles))
    canvas = np.full((height, width, 3), 24, np.uint8)
    pad = 4
    for c, title in enumerate(titles):
        _put(canvas, title, c * TILE_WIDTH + pad, HEADER_HEIGHT - 7, TILE_WIDTH - 2 * pad)
    y = HEADER_HEIGHT
    for row in rows:
        h = row.tiles[0].shape[0]
        for c, (tile, lines) in enumerate(zip(row.tiles, row.captions)):
            canvas[y : y + h, c * TILE_WIDTH : (c + 1) * TILE_WIDTH] = tile
            for k, line in enumerate(lines[:CAPTION_LINES]):
                _put(canvas, line, c * TILE_WIDTH + pad, y + h + (k + 1) * LINE_HEIGHT, TILE_WIDTH - 2 * pad)
        y += h + CAPTION_HEIGHT
    return canvas


def check_sheet_path(path: str | os.PathLike) -> Path:
    """The sheet's path, after checking its extension (InputError otherwise)."""
    path = Path(path)
    if path.suffix.lower() not in SHEET_EXTENSIONS:
        raise InputError(f"--sheet {path}: expected a .jpg (or .png) file name, e.g. --sheet sheet.jpg")
    return path


def write_sheet(path: str | os.PathLike, image: np.ndarray, quality: int = JPEG_QUALITY) -> Path:
    """Write an ``(H, W, 3) uint8`` RGB sheet as JPEG (``quality``) or PNG; complete or absent."""
    path = check_sheet_path(path)
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_OPTIMIZE, 1]
    params = jpeg if path.suffix.lower() != ".png" else []
    ok, buf = cv2.imencode(path.suffix, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise InputError(f"--sheet {path}: cannot encode the sheet")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    buf.tofile(str(tmp))
    os.replace(tmp, path)
    return path
