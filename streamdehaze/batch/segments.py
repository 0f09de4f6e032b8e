"""Segments of one recording: which file continues which, so the smoothing state can go on across them.

Dashcams and many recorders split a drive into 1-3 minute files. Processed one by one, each file
starts the temporal smoothing afresh, and the output jumps at every boundary. Here, file B
**continues** file A when all of these hold:

1. B comes right after A in the sorted file list, in the same folder;
2. same camera: the same video codec, frame size and pixel format, frame rates within 1 %, and
   the same ``make``/``model`` tags where both files have one;
3. timestamps continue, by either clock:
   - the stream clock: B's first timestamp (its stream's start time) equals A's end (A's start
     time plus its duration) within 1.5 frame intervals (0.1 s at least), as written by
     recorders and segmenters that keep one clock across files (``ffmpeg -f segment``, MPEG-TS
     cameras); a file that starts at 0 never continues this way;
   - the wall clock: both carry a ``creation_time`` tag and B's equals A's plus A's duration
     within ``WALL_TOLERANCE_S`` (the tag has a resolution of one second; most dashcams).

A chain of such files is processed as one stream: the engine of A is reused for B, so there is
no jump at the boundary (see :mod:`.worker`, which also rebuilds the state from A's last frames
when B runs elsewhere or after A was skipped).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

import av

from .jobs import Job

WALL_TOLERANCE_S = 2.0
CAMERA_TAGS = ("make", "model", "com.apple.quicktime.make", "com.apple.quicktime.model")


@dataclass
class ClipInfo:
    """What :func:`continues` compares: the first video stream's format and timing, in seconds."""

    path: str
    codec: str
    width: int
    height: int
    pix_fmt: str | None
    frame_rate: float | None
    start: float  # the stream's first timestamp
    duration: float | None
    frames: int | None
    creation: datetime | None
    camera: dict[str, str]

    @property
    def end(self) -> float | None:
        return None if self.duration is None else self.start + self.duration


def _creation_time(tags: dict[str, str]) -> datetime | None:
    text = tags.get("creation_time")
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


def probe_clip(path: str) -> ClipInfo | None:
    """The :class:`ClipInfo` of ``path``; None when it cannot be read (the file's own run will say why)."""
    try:
        with av.open(path, metadata_errors="replace") as c:
            if not c.streams.video:
                return None
            s = c.streams.video[0]
            tb = Fraction(s.time_base) if s.time_base else Fraction(1, 1_000_000)
            rate = s.average_rate or s.guessed_rate
            start = float(s.start_time * tb) if s.start_time is not None else 0.0
            duration = float(s.duration * tb) if s.duration else (c.duration / 1_000_000 if c.duration else None)
            if duration is not None and not s.duration and c.format.name.startswith("matroska"):
                duration -= start  # Matroska gives the time the file ends (see FileSource._expected_end)
            tags = {**c.metadata, **s.metadata}
            ctx = s.codec_context
            return ClipInfo(
                path=path,
                codec=ctx.name,
                width=ctx.width,
                height=ctx.height,
                pix_fmt=ctx.pix_fmt,
                frame_rate=float(rate) if rate else None,
                start=start,
                duration=duration,
                frames=s.frames or None,
                creation=_creation_time(tags),
                camera={k: tags[k] for k in CAMERA_TAGS if tags.get(k)},
            )
    except (av.FFmpegError, OSError, ValueError):
        return None


def same_camera(a: ClipInfo, b: ClipInfo) -> bool:
    """Rule 2 of the module docstring."""
    if (a.codec, a.width, a.height, a.pix_fmt) != (b.codec, b.width, b.height, b.pix_fmt):
        return False
    if a.frame_rate and b.frame_rate and abs(a.frame_rate - b.frame_rate) > 0.01 * a.frame_rate:
        return False
    return all(a.camera[k] == b.camera[k] for k in a.camera.keys() & b.camera.keys())


def continues(a: ClipInfo, b: ClipInfo) -> bool:
    """Whether ``b`` is the next segment of the recording ``a`` belongs to (rules 2 and 3; rule 1 is the caller's)."""
    if not same_camera(a, b) or a.duration is None:
        return False
    step = 1.0 / a.frame_rate if a.frame_rate else 0.04
    if b.start > 0 and abs(b.start - a.end) <= max(1.5 * step, 0.1):
        return True
    if a.creation is not None and b.creation is not None:
        try:
            gap = (b.creation - a.creation).total_seconds() - a.duration
        except TypeError:  # one tag with a time zone, one without: not the same camera's clock
            return False
        return abs(gap) <= WALL_TOLERANCE_S
    return False


def link_segments(jobs: list[Job], infos: dict[str, ClipInfo | None]) -> int:
    """Set ``job.previous`` for each job that continues the job before it (rule 1 plus :func:`continues`).

    ``infos``: input path → :func:`probe_clip`'s result. Returns how many jobs continue another.
    """
    linked = 0
    for prev, job in zip(jobs, jobs[1:]):
        a, b = infos.get(prev.input), infos.get(job.input)
        same_folder = os.path.dirname(prev.input) == os.path.dirname(job.input)
        if a is not None and b is not None and same_folder and continues(a, b):
            job.previous = prev.input
            linked += 1
    return linked
