"""Run statistics: per-stage counters, the whole run's summary and progress snapshots."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..frames import StreamInfo


@dataclass
class StageStats:
    """What one stage did: items handled, seconds spent working (``busy_s``), its thread's lifetime."""

    name: str
    frames: int = 0
    busy_s: float = 0.0
    wall_s: float = 0.0

    @property
    def busy_share(self) -> float:
        """Fraction of the stage's lifetime spent working rather than waiting on a queue."""
        return self.busy_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def capacity_fps(self) -> float:
        """Frames per busy second: what this stage could sustain alone."""
        return self.frames / self.busy_s if self.busy_s > 0 else 0.0

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "name": self.name,
            "frames": self.frames,
            "busy_s": round(self.busy_s, 4),
            "wall_s": round(self.wall_s, 4),
            "busy_share": round(self.busy_share, 4),
            "capacity_fps": round(self.capacity_fps, 3),
        }


@dataclass
class Progress:
    """A snapshot for progress displays (taken in the calling thread)."""

    read: int
    written: int
    dropped: int
    total: int | None
    elapsed_s: float

    @property
    def fps(self) -> float:
        return self.written / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class PipelineStats:
    """What a run did. ``status`` is done, interrupted or failed; ``stages`` maps decode/inference/encode.

    ``outages``: times a live source stalled or dropped and reconnected (or gave up);
    ``gap_s``: seconds without frames over those outages.
    """

    status: str = "running"
    frames_read: int = 0
    frames_written: int = 0
    dropped: int = 0
    batches: int = 0
    wall_s: float = 0.0
    outages: int = 0
    gap_s: float = 0.0
    stages: dict[str, StageStats] = field(default_factory=dict)
    info: StreamInfo | None = None

    @property
    def fps(self) -> float:
        return self.frames_written / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "frames_read": self.frames_read,
            "frames_written": self.frames_written,
            "dropped": self.dropped,
            "batches": self.batches,
            "outages": self.outages,
            "gap_s": round(self.gap_s, 3),
            "wall_s": round(self.wall_s, 4),
            "fps": round(self.fps, 3),
            "stages": {k: s.as_dict() for k, s in self.stages.items()},
        }
