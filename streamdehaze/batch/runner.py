"""Planning a batch and running it on this machine.

:func:`plan_batch` finds the files, probes them (frame counts for the progress display, the
segment rule of :mod:`.segments`) and links consecutive segments. :func:`split_done` applies the
resume rule: an output that exists is complete (the sink renames a temporary file only when it
is), so its input is skipped unless ``overwrite``. :func:`run_local` processes the rest with one
:class:`~.worker.FileWorker` (the model loaded once), decoding the next file ahead while the
current one finishes, and appends each result to the manifest as soon as it is known.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from .discover import plan_jobs
from .jobs import BatchObserver, FileResult, Job, RunSettings
from .manifest import Manifest
from .segments import link_segments, probe_clip

PROBE_THREADS = 8  # probing is file I/O: a few threads hide a network filesystem's latency


def plan_batch(
    source: str, output: str, settings: RunSettings, recursive: bool = False, container: str | None = None
) -> list[Job]:
    """The jobs of a folder or glob ``source``, in order, with frame counts and segment links."""
    return probe_jobs(plan_jobs(source, output, recursive, container), settings)


def probe_jobs(jobs: list[Job], settings: RunSettings) -> list[Job]:
    """``jobs`` (from :func:`~.discover.plan_jobs`) with their frame counts and segment links."""
    with ThreadPoolExecutor(min(PROBE_THREADS, len(jobs))) as pool:
        infos = dict(zip((j.input for j in jobs), pool.map(probe_clip, (j.input for j in jobs))))
    for job in jobs:
        info = infos[job.input]
        job.frames = info.frames if info is not None else None
    if settings.segments and settings.whole_files:
        link_segments(jobs, infos)
    return jobs


def split_done(jobs: list[Job], overwrite: bool = False) -> tuple[list[Job], list[FileResult]]:
    """``(to do, skipped)``: jobs whose output exists are skipped unless ``overwrite``."""
    todo, skipped = [], []
    for job in jobs:
        if not overwrite and os.path.isfile(job.output):
            skipped.append(FileResult(job.input, job.output, "skipped", error=None))
        else:
            todo.append(job)
    return todo, skipped


def begin_batch(
    jobs: list[Job], output: str, overwrite: bool, observer: BatchObserver
) -> tuple[Manifest, list[Job], list[FileResult]]:
    """The start both runners share: ``(manifest, jobs to do, results so far)``, the skipped files
    already in the manifest and told to ``observer``."""
    manifest = Manifest(output)
    todo, skipped = split_done(jobs, overwrite)
    observer.begin(jobs, len(todo), total_frames(todo))
    by_input = {j.input: j for j in jobs}
    for result in skipped:
        manifest.add(result)
        observer.file_finished(by_input[result.input], result)
    return manifest, todo, list(skipped)


def total_frames(jobs: list[Job]) -> int | None:
    counts = [j.frames for j in jobs]
    return None if any(c is None for c in counts) else sum(counts)


def run_local(
    jobs: list[Job],
    settings: RunSettings,
    output: str,
    *,
    overwrite: bool = False,
    observer: BatchObserver | None = None,
    on_write=None,
) -> list[FileResult]:
    """Process ``jobs`` here, in order; returns every file's result (skipped ones first).

    Raises KeyboardInterrupt after Ctrl-C with the finished files and their manifest lines in
    place and no partial output of the interrupted one.
    """
    observer = observer or BatchObserver()
    manifest, todo, results = begin_batch(jobs, output, overwrite, observer)
    if not todo:
        return results
    from .worker import FileWorker

    worker = FileWorker(settings, on_write=on_write)
    smoothing = settings.temporal.describe() if settings.temporal is not None else "temporal smoothing off"
    observer.note(f"{getattr(worker.model, 'name', settings.model)} on {worker.device}; {smoothing}")
    ahead = {}
    try:
        for i, job in enumerate(todo):
            source = ahead.pop(job.input, None) or worker.source(job)
            if i + 1 < len(todo):  # the next file opens and decodes while this one runs
                nxt = todo[i + 1]
                ahead[nxt.input] = worker.source(nxt).prefetch()
            observer.file_started(job)
            result = worker.process(job, source, on_frames=lambda w, t, job=job: observer.frames(job, w, t))
            manifest.add(result)
            observer.file_finished(job, result)
            results.append(result)
    finally:
        for source in ahead.values():
            source.close()
    return results
