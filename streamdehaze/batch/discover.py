"""Which files a folder or glob source means, and where each one's output goes.

A source is a batch when it is a folder or a glob (``clips/``, ``'card/**/*.MP4'``) that names
video files; a folder or glob of images stays an image sequence (one video), as before. Folders
are listed with their subfolders under ``--recursive``; in a glob, ``**`` matches subfolders
under ``--recursive``. Files sort naturally (``clip_2`` before ``clip_10``), hidden files and
anything inside the output folder are left out.

Outputs keep the inputs' paths relative to the source root (the folder, or a glob's leading part
without wildcards) under the output folder, and their extension when FFmpeg can write that
container (``.ts``, ``.mts`` and others it cannot write become ``.mkv``, which holds any audio),
unless a container is given.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from ..errors import InputError
from ..io.stills import IMAGE_EXTENSIONS, natural_key
from .jobs import Job

VIDEO_EXTENSIONS = (
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts",
    ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".mxf",
)  # fmt: skip
FALLBACK_EXTENSION = ".mkv"
# Containers the sink cannot write yet although FFmpeg can: open_sink checks codecs against the
# muxer's list, and the MPEG-TS muxer lists none of H.264, HEVC or AAC, so every .ts output fails.
UNWRITABLE = (".ts",)


def _is_video(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def _is_image(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def _candidates(spec: str, recursive: bool) -> list[str]:
    """Files named by a folder or glob ``spec`` (any kind, hidden ones left out), unsorted."""
    if os.path.isdir(spec):
        if not recursive:
            names = (os.path.join(spec, n) for n in os.listdir(spec))
            return [p for p in names if os.path.isfile(p) and not os.path.basename(p).startswith(".")]
        out = []
        for folder, dirs, files in os.walk(spec):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            out.extend(os.path.join(folder, f) for f in files if not f.startswith("."))
        return out
    matches = glob.glob(spec, recursive=recursive)
    return [p for p in matches if os.path.isfile(p) and not os.path.basename(p).startswith(".")]


def is_batch_source(spec: str, recursive: bool = False) -> bool:
    """True when ``spec`` is a folder or glob that means a batch of video files (see the module docstring).

    A folder or glob with videos, or with neither videos nor images (its error then comes from
    :func:`plan_jobs`), is a batch; one with images only is an image sequence.
    """
    spec = str(spec)
    if "://" in spec or spec.lower().startswith(("webcam:", "lavfi:")):
        return False
    if not (os.path.isdir(spec) or (glob.has_magic(spec) and not os.path.exists(spec))):
        return False
    files = _candidates(spec, recursive)
    return any(_is_video(p) for p in files) or not any(_is_image(p) for p in files)


def source_root(spec: str) -> Path:
    """Where a source's relative paths start: the folder itself, or a glob's part before its first wildcard."""
    if os.path.isdir(spec):
        return Path(spec).resolve()
    parts = Path(spec).parts
    fixed = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed).resolve() if fixed else Path.cwd()


def find_videos(spec: str, recursive: bool = False, exclude: Path | None = None) -> list[Path]:
    """The video files of a folder or glob, absolute, naturally sorted; ``exclude``: a folder to leave out."""
    exclude = exclude.resolve() if exclude is not None else None
    found = []
    for p in _candidates(spec, recursive):
        path = Path(p).resolve()
        if _is_video(p) and not (exclude is not None and path.is_relative_to(exclude)):
            found.append(path)
    return sorted(set(found), key=natural_key)


def output_path(rel: Path, out_dir: Path, container: str | None = None) -> Path:
    """Where the output of input ``rel`` (relative to the source root) goes; ``container``: an extension to force."""
    from ..io.preflight import VIDEO_FORMATS

    ext = rel.suffix
    writable = [e for e in VIDEO_FORMATS if e not in UNWRITABLE]
    if container:
        ext = "." + container.lower().lstrip(".")
        if ext not in writable:
            raise InputError(f"--container {container!r}: expected one of {', '.join(e[1:] for e in writable)}")
    elif ext.lower() not in writable:
        ext = FALLBACK_EXTENSION
    return out_dir / rel.with_suffix(ext)


def plan_jobs(spec: str, output: str, recursive: bool = False, container: str | None = None) -> list[Job]:
    """One :class:`Job` per video file of ``spec``, with its output under the folder ``output``.

    Raises InputError when nothing is found, when ``output`` is not a folder, when an output would
    replace its input, or when two inputs would write the same output.
    """
    from ..io.preflight import VIDEO_FORMATS

    out_dir, root = Path(output).resolve(), source_root(spec)
    if out_dir == root:
        raise InputError(f"--output {output} is the source folder: outputs would replace their inputs; choose another")
    inside = out_dir.is_relative_to(root)  # an output folder within the source is not read back as input
    files = find_videos(spec, recursive, exclude=out_dir if inside else None)
    if not files:  # the source's mistake first: an empty folder is not fixed by another --output
        hint = "" if recursive else "; add --recursive to look in subfolders"
        raise InputError(f"no video files in {spec} (looked for {', '.join(VIDEO_EXTENSIONS)}){hint}")
    if out_dir.is_file() or (not str(output).endswith(("/", os.sep)) and out_dir.suffix.lower() in VIDEO_FORMATS):
        raise InputError(
            f"--output {output}: a folder source writes one file per input, so --output must be a folder (e.g. out/)"
        )
    jobs, owners = [], {}
    for path in files:
        rel = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
        out = output_path(rel, out_dir, container)
        if out == path:
            raise InputError(f"--output {output} is the source folder: {out} would replace its input; choose another")
        if out in owners:
            raise InputError(f"{owners[out]} and {path} would both write {out}; use --container or rename one")
        owners[out] = path
        jobs.append(Job(input=str(path), output=str(out), rel=str(rel)))
    return jobs
