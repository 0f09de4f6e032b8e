"""``run DIR_OR_GLOB -o OUT/``: the batch options of ``run``, its progress display and its summary.

The work is done by :mod:`streamdehaze.batch`; this module parses, shows and exits.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..batch.discover import is_batch_source
from ..batch.jobs import BatchObserver, FileResult, Job, RunSettings
from ..batch.manifest import MANIFEST_NAME
from ..errors import InputError, StreamDehazeError

MAX_ROWS = 40  # larger batches list only the files with something to say


@dataclass
class BatchOptions:
    recursive: bool = False
    overwrite: bool = False
    container: str | None = None
    segments: bool = True
    ray: str | None = None
    ray_workers: int | None = None

    def applies_to(self, source: str) -> bool:
        """Whether ``source`` is a batch (a folder or glob of videos); otherwise the batch-only options are refused."""
        if is_batch_source(source, self.recursive):
            return True
        given = [name for name, on in (("--recursive", self.recursive), ("--ray", self.ray)) if on]
        if given:
            raise InputError(f"{' and '.join(given)} apply to a folder or glob of videos; {source} is not one")
        return False


def batch_options(f: Callable) -> Callable:
    """Adds the batch options (folders and globs of videos) to ``run``."""
    options = [
        click.option("--recursive", "-r", is_flag=True, help="Folder or glob source: include subfolders."),
        click.option(
            "--overwrite", is_flag=True, help="Folder or glob source: redo files whose output exists (default: skip)."
        ),
        click.option(
            "--container",
            default=None,
            help="Folder or glob source: write every output as this container (mp4, mkv, ...) [default: the input's].",
        ),
        click.option(
            "--segments/--no-segments",
            default=True,
            show_default=True,
            help="Folder or glob source: carry the smoothing state from a file into the next segment of the same "
            "recording (same camera, timestamps that continue).",
        ),
        click.option(
            "--ray",
            "ray",
            default=None,
            metavar="ADDRESS",
            help="Folder or glob source: spread the files over a Ray cluster: local (start one here), auto, "
            "HOST:6379 or ray://HOST:10001. Needs pip install 'streamdehaze[cluster]'.",
        ),
        click.option(
            "--ray-workers",
            type=click.IntRange(min=1),
            default=None,
            help="With --ray: number of workers [default: one per GPU, or one per node without GPUs].",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def pop_batch(kwargs: dict[str, Any]) -> BatchOptions:
    """Take the batch options out of a command's keyword arguments."""
    return BatchOptions(**{name: kwargs.pop(name) for name in BatchOptions.__dataclass_fields__})


class BatchDisplay(BatchObserver):
    """One live display for the files and the frames of a batch; keeps the results for the summary."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.results: list[FileResult] = []
        self.jobs: dict[str, Job] = {}
        self._done_frames = 0
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self._files = self._progress.add_task("files", total=None, unit="files")
        self._frames = self._progress.add_task("frames", total=None, unit="frames")

    def __enter__(self) -> BatchDisplay:
        self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.stop()

    def begin(self, jobs: list[Job], todo: int, total_frames: int | None) -> None:
        self.jobs = {j.input: j for j in jobs}
        self._progress.update(self._files, total=todo)
        self._progress.update(self._frames, total=total_frames)

    def file_started(self, job: Job) -> None:
        self._progress.update(self._files, description=f"files ({job.rel})")

    def frames(self, job: Job, written: int, total: int | None) -> None:
        self._progress.update(self._frames, completed=self._done_frames + written)

    def file_finished(self, job: Job, result: FileResult) -> None:
        self.results.append(result)
        if result.status == "skipped":
            return
        self._done_frames += result.frames or 0
        self._progress.update(self._frames, completed=self._done_frames)
        self._progress.advance(self._files)

    def note(self, text: str) -> None:
        self._progress.console.print(text, highlight=False, soft_wrap=True)


def _note(result: FileResult) -> str:
    parts = []
    if result.error:
        parts.append(result.error)
    if result.segment:
        parts.append(f"segment {result.segment}")
    if result.not_copied:
        parts.append("not copied: " + "; ".join(result.not_copied))
    return "; ".join(parts)


def summary_table(results: list[FileResult], jobs: dict[str, Job]) -> Table:
    """A row per file (or, for large batches, per file with an error or a note)."""
    rows = results if len(results) <= MAX_ROWS else [r for r in results if _note(r) and r.status != "skipped"]
    table = Table(show_edge=False)
    for name, justify in (("file", "left"), ("status", "left"), ("frames", "right"), ("time", "right")):
        table.add_column(name, justify=justify)
    table.add_column("fps", justify="right")
    table.add_column("note", overflow="fold")
    style = {"done": "green", "skipped": "dim", "failed": "red"}
    for r in rows:
        job = jobs.get(r.input)
        fps = f"{r.frames / r.seconds:.1f}" if r.frames and r.seconds > 0 else ""
        frames = "" if r.frames is None else str(r.frames)
        seconds = f"{r.seconds:.1f} s" if r.status != "skipped" else ""
        table.add_row(job.rel if job else r.input, Text(r.status, style[r.status]), frames, seconds, fps, _note(r))
    return table


def print_summary(console: Console, display: BatchDisplay, output: str, interrupted: bool = False) -> None:
    order = {name: i for i, name in enumerate(display.jobs)}
    results = sorted(display.results, key=lambda r: order.get(r.input, len(order)))
    if results:
        console.print(summary_table(results, display.jobs))
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
    frames = sum(r.frames or 0 for r in results if r.status == "done")
    seconds = sum(r.seconds for r in results if r.status != "skipped")
    line = ", ".join(f"{n} {s}" for s, n in counts.items()) + f": {frames} frames written in {seconds:.1f} s"
    if interrupted:
        left = len(display.jobs) - len(results)
        line = f"interrupted with {left} file{'s' if left != 1 else ''} to go; " + line
    line += f"; manifest {os.path.join(output, MANIFEST_NAME)}"
    console.print(Text(line, style="yellow" if interrupted or counts["failed"] else "green"), soft_wrap=True)


def run_folder(
    source: str, output: str, jobs: list[Job], settings: RunSettings, options: BatchOptions, console: Console
) -> None:
    """The batch path of ``run`` for the ``jobs`` planned from ``source`` (:func:`~..batch.discover.plan_jobs`):
    probe, run here or on Ray, summarise; non-zero exit when a file failed."""
    from ..batch.runner import probe_jobs, run_local

    jobs = probe_jobs(jobs, settings)
    linked = sum(j.previous is not None for j in jobs)
    where = f"Ray ({options.ray})" if options.ray else "this machine"
    text = f"batch: {len(jobs)} video file{'s' if len(jobs) != 1 else ''} in {source} → {output}, on {where}"
    if linked:
        text += f"; {linked} continue the recording of the file before (segments)"
    console.print(text, highlight=False, soft_wrap=True)
    display = BatchDisplay(console)
    try:
        with display:
            if options.ray:
                from ..batch.cluster import run_ray

                run_ray(
                    jobs,
                    settings,
                    output,
                    options.ray,
                    overwrite=options.overwrite,
                    workers=options.ray_workers,
                    observer=display,
                )
            else:
                run_local(jobs, settings, output, overwrite=options.overwrite, observer=display)
    except KeyboardInterrupt:
        print_summary(console, display, output, interrupted=True)
        raise
    print_summary(console, display, output)
    failed = [r for r in display.results if r.status == "failed"]
    if failed:
        raise StreamDehazeError(
            f"{len(failed)} of {len(jobs)} files failed (first: {failed[0].input}: {failed[0].error}); "
            "fix or remove them and run the same command again: finished files are skipped"
        )
