"""One worker of a batch: the model loaded once, then one file after another (locally or in a Ray actor).

:meth:`FileWorker.process` turns a :class:`~.jobs.Job` into a :class:`~.jobs.FileResult` and
never raises for a bad file: a failure is a result with its one-line reason, and its output is
absent (the sink writes under a temporary name and renames when complete). Ctrl-C
(KeyboardInterrupt) is raised after the current file's partial output was removed, so a rerun can
trust every output that exists.

Segments (:mod:`.segments`): when a job continues the file this worker processed last, the
last file's engine is reused, state and all (:func:`~streamdehaze.api.build_pipeline` takes an
Engine as its model). When it continues a file processed elsewhere or earlier (another Ray
worker, a previous run, a restarted worker), a fresh engine is warmed up on the previous file's
last frames (not written anywhere) so the smoothing starts where that file ended.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable

from ..errors import StreamDehazeError
from .jobs import FileResult, Job, RunSettings
from .prefetch import PrefetchFileSource

log = logging.getLogger(__name__)

RESIDUAL = 0.05  # warm-up length: until the fresh state's weight in the moving averages is below this
MAX_WARMUP = 120


def warmup_frames(settings: RunSettings) -> int:
    """Frames of the previous file to run before a continuing segment on a fresh engine (0: nothing to warm)."""
    temporal, speed = settings.temporal, settings.speed
    interval = getattr(speed, "keyframe_interval", 1) if speed is not None else 1
    n = interval if interval > 1 else 0
    if temporal is not None and temporal.on:
        s = temporal.strength
        if settings.model == "dcp" and temporal.mode in ("motion", "ema", "flow"):
            s = max(s, temporal.airlight)  # the dark channel prior's airlight has its own average
        n = max(n, math.ceil(math.log(RESIDUAL) / math.log(s)) if 0 < s < 1 else 1)
    return min(n, MAX_WARMUP)


class _DiscardPartial:
    """A sink whose interrupted output is removed instead of kept (a batch keeps complete files only)."""

    def __init__(self, sink) -> None:
        self._sink = sink

    def __getattr__(self, name: str):
        return getattr(self._sink, name)

    def open(self, info) -> None:
        self._sink.open(info)

    def write(self, frame) -> None:
        self._sink.write(frame)

    def close(self, status: str = "done") -> None:
        self._sink.close("failed" if status == "interrupted" else status)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _reason(err: BaseException) -> str:
    """One line for the manifest: a StreamDehazeError's own message, else the type and first line."""
    if isinstance(err, StreamDehazeError):
        return str(err)
    text = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class FileWorker:
    """Holds the model (loaded once) and processes files in the order given.

    ``device``: overrides ``settings.device`` (a Ray actor's own GPU); ``name``: reported in each
    result; ``on_write(input_path, frames_written)``: called after every frame written (progress,
    fault injection in tests).
    """

    def __init__(
        self,
        settings: RunSettings,
        device: str | None = None,
        name: str = "local",
        on_write: Callable[[str, int], None] | None = None,
    ) -> None:
        from ..backends.select import load_dehazer
        from ..devices import resolve_device
        from ..pipeline.speed import SpeedSettings

        self.settings = settings
        self.name = name
        self.on_write = on_write
        self.device = resolve_device(device or settings.device)
        self.model = load_dehazer(
            settings.model,
            settings.weights,
            self.device,
            settings.backend,
            settings.precision,
            flip_average=settings.flip_average,
        )
        self.speed = settings.speed or SpeedSettings()
        self.pix_fmt = "yuv420p" if self.speed.use_device_yuv(self.device) else "rgb24"
        self._engine = None  # the engine of the last file finished, and that file's input
        self._last: str | None = None

    def source(self, job: Job) -> PrefetchFileSource:
        """The job's source, not started (call ``prefetch()`` to decode ahead while another file runs)."""
        depth = max(4, 2 * self.settings.batch)
        return PrefetchFileSource(job.input, start=self.settings.start, pix_fmt=self.pix_fmt, depth=depth)

    def process(
        self,
        job: Job,
        source: PrefetchFileSource | None = None,
        on_frames: Callable[[int, int | None], None] | None = None,
    ) -> FileResult:
        """Dehaze ``job.input`` into ``job.output``; ``on_frames(written, total)`` reports progress."""
        t0 = time.perf_counter()
        _remove(job.temp_output)  # left by a worker that died on this file
        source = source or self.source(job)
        carry = self._engine if job.previous is not None and job.previous == self._last else None
        self._engine, self._last = None, None
        segment, pipe = None, None
        try:
            pipe = self._pipeline(job, source, carry)
            if carry is not None:
                segment = "continued"
            elif job.previous is not None and self._warm_up(pipe.engine, job.previous):
                segment = "warmed up"
            pipe.sink = _DiscardPartial(pipe.sink)
            progress = None if on_frames is None else (lambda snap: on_frames(snap.written, snap.total))
            stats = pipe.run(progress, interval=0.25)
        except KeyboardInterrupt:
            source.close()
            _remove(job.temp_output)
            raise
        except Exception as err:  # a bad file is a result, not the end of the batch
            source.close()
            _remove(job.temp_output)
            log.debug("%s failed", job.input, exc_info=True)
            return FileResult(
                job.input, job.output, "failed", seconds=time.perf_counter() - t0, error=_reason(err), worker=self.name
            )
        self._engine, self._last = pipe.engine, job.input
        return FileResult(
            job.input,
            job.output,
            "done",
            frames=stats.frames_written,
            seconds=time.perf_counter() - t0,
            not_copied=list(getattr(pipe.sink, "not_copied", [])),
            segment=segment,
            worker=self.name,
        )

    def _pipeline(self, job: Job, source: PrefetchFileSource, engine):
        from ..api import build_pipeline

        s = self.settings
        on_write = None
        if self.on_write is not None:
            hook, count = self.on_write, [0]

            def on_write(frame) -> None:
                count[0] += 1
                hook(job.input, count[0])

        return build_pipeline(
            source,
            job.output,
            engine if engine is not None else self.model,
            batch=s.batch,
            precision=s.precision,
            codec=s.codec,
            crf=s.crf,
            preset=s.preset,
            start=s.start,
            duration=s.duration,
            max_frames=s.max_frames,
            on_write=on_write,
            speed=self.speed,
            temporal=s.temporal,
            tracks=s.tracks,
        )

    def _warm_up(self, engine, previous: str) -> bool:
        """Run the last frames of ``previous`` through ``engine`` (output discarded); False when not done."""
        from ..io.sinks import NullSink
        from ..io.sources import FileSource
        from ..pipeline.runner import Pipeline
        from .segments import probe_clip

        n = warmup_frames(self.settings)
        info = probe_clip(previous) if n else None
        if info is None or info.duration is None:
            return False
        start = max(0.0, info.duration - n / (info.frame_rate or 25.0))
        source = FileSource(previous, start=start or None, pix_fmt=self.pix_fmt)
        try:
            Pipeline(source, engine, NullSink(), batch=self.settings.batch).run()
        except Exception as err:  # the file itself may be the corrupt one: start from a fresh state then
            log.info("warm-up on %s failed: %s", previous, _reason(err))
            return False
        return True
