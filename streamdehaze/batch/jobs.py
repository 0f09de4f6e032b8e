"""What a batch is made of: the settings every file is processed with, one job per file, its result.

Everything here is plain data (picklable, no torch), so the same objects travel to Ray workers
and come back from them. :class:`BatchObserver` is how a runner reports progress to a display.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

STATUSES = ("done", "skipped", "failed")
# Tracks copied from each input besides the video: audio always; subtitles and data (dashcams'
# GPS and speed) where the output container takes them.
DEFAULT_TRACKS = ("audio", "subtitle", "data")


@dataclass
class RunSettings:
    """How every file of a batch is processed: the options of ``streamdehaze run`` for one file.

    ``speed``: a :class:`~streamdehaze.pipeline.speed.SpeedSettings` (None: defaults); ``temporal``:
    a :class:`~streamdehaze.pipeline.temporal_engine.TemporalSettings` or None (off); ``start``,
    ``duration`` (seconds) and ``max_frames`` apply to each file. ``segments``: carry the engine
    (temporal smoothing, keyframes) from a file to the next segment of the same recording
    (:mod:`.segments`); ``tracks``: the kinds of tracks copied besides the video; ``backend``: torch,
    onnxruntime or auto.
    """

    model: str = "aecrnet"
    weights: str | None = None
    device: str = "auto"
    batch: int = 4
    precision: str = "fp32"
    codec: str = "libx264"
    crf: int = 18
    preset: str = "veryfast"
    start: float | None = None
    duration: float | None = None
    max_frames: int | None = None
    speed: Any = None
    temporal: Any = None
    flip_average: bool = False
    segments: bool = True
    tracks: tuple[str, ...] = DEFAULT_TRACKS
    backend: str = "auto"  # what runs the network (streamdehaze.backends.select)

    @property
    def whole_files(self) -> bool:
        """Whether each file is processed from its first frame to its last (segments can only continue then)."""
        return self.start is None and self.duration is None and self.max_frames is None


@dataclass
class Job:
    """One file of a batch: absolute ``input`` and ``output`` paths, ``rel`` (the input relative to the
    source root, for display), ``previous``: the input of the segment this one continues (None: a file of
    its own), ``frames``: its announced frame count (None when unknown or unreadable)."""

    input: str
    output: str
    rel: str
    previous: str | None = None
    frames: int | None = None

    @property
    def temp_output(self) -> str:
        """Where the sink writes before renaming to :attr:`output` (:class:`~streamdehaze.io.sinks.VideoFileSink`)."""
        folder, name = os.path.split(self.output)
        return os.path.join(folder, f".{name}.part")


@dataclass
class FileResult:
    """The outcome of one file, one line of the manifest.

    ``status``: done | skipped | failed; ``frames``: frames written; ``seconds``: wall time of the
    file (for skipped files 0); ``error``: the one-line reason of a failure; ``not_copied``: tracks of
    the input the output container could not hold; ``segment``: how the smoothing state was set up
    for a continuing segment: ``continued`` (carried from the previous file), ``warmed up`` (rebuilt
    from the previous file's last frames) or None (a file of its own); ``worker``: who processed it.
    """

    input: str
    output: str
    status: str
    frames: int | None = None
    seconds: float = 0.0
    error: str | None = None
    not_copied: list[str] = field(default_factory=list)
    segment: str | None = None
    worker: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        return d


class BatchObserver:
    """Receives a batch's progress (the CLI's display implements it; the default does nothing).

    Runners call :meth:`begin` once, then for each file :meth:`file_started`, :meth:`frames` (any
    number of times, from the runner's thread) and :meth:`file_finished`; skipped files only get
    :meth:`file_finished`.
    """

    def begin(self, jobs: list[Job], todo: int, total_frames: int | None) -> None:
        pass

    def file_started(self, job: Job) -> None:
        pass

    def frames(self, job: Job, written: int, total: int | None) -> None:
        pass

    def file_finished(self, job: Job, result: FileResult) -> None:
        pass

    def note(self, text: str) -> None:
        pass
