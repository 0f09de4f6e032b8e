"""Pairing hazy images with their clear ground truth.

Rules (``../shared/data/README.md`` and RESIDE): a hazy file's partner in the clear folder has the
same name, or, failing that, the part of the hazy name before the first ``_`` with any image
extension (``1400_3.png`` → ``1400.png``, ``0001_0.8_0.2.jpg`` → ``0001.png``).
"""

from __future__ import annotations

from pathlib import Path

from .errors import DataError
from .io.stills import IMAGE_EXTENSIONS, natural_key


def _images(folder: Path, role: str) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{role} folder not found: {folder}")
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS), key=natural_key)
    if not files:
        raise DataError(f"{role} folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def find_pairs(hazy_dir: str | Path, clear_dir: str | Path) -> list[tuple[Path, Path]]:
    """``[(hazy, clear), ...]`` in natural order of the hazy names; every hazy file must pair."""
    hazy = _images(Path(hazy_dir), "hazy")
    clear = _images(Path(clear_dir), "clear")
    by_name = {p.name: p for p in clear}
    by_stem = {p.stem: p for p in clear}
    pairs, unpaired = [], []
    for h in hazy:
        c = by_name.get(h.name) or by_stem.get(h.stem.split("_")[0])
        (pairs.append((h, c)) if c else unpaired.append(h.name))
    if unpaired:
        raise DataError(
            f"{len(unpaired)} hazy image(s) in {hazy_dir} have no clear partner in {clear_dir} "
            f"(e.g. {unpaired[0]}; expected the same name or the part before the first '_')"
        )
    return pairs
