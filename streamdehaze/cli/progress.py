"""Rich output for streaming commands: a live progress bar and per-stage summary tables."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:  # the runner imports torch; the commands import this module for --help
    from ..pipeline.runner import PipelineStats
    from ..pipeline.runner import Progress as Snapshot

STAGES = ("decode", "inference", "encode")


class _Frames(ProgressColumn):
    """``written/total frames`` (or ``written frames`` when the length is unknown)."""

    def render(self, task: Task) -> Text:
        done = int(task.completed)
        return Text(f"{done}/{int(task.total)} frames" if task.total else f"{done} frames", style="green")


class _Eta(ProgressColumn):
    """Time left at the current rate; blank while the length is unknown."""

    def render(self, task: Task) -> Text:
        fps, left = task.fields.get("fps", 0.0), (task.total or 0) - task.completed
        if not task.total or fps <= 0:
            return Text("")
        s = int(left / fps)
        return Text(f"ETA {s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}", style="cyan")


class PipelineProgress:
    """Context manager showing a pipeline's progress; pass :meth:`update` as ``on_progress``.

    Shows frames written (of the total when known), fps, the ETA when the length is known and,
    for live sources, the number of dropped frames.
    """

    def __init__(self, console: Console, description: str, live: bool = False) -> None:
        self.live = live
        columns: list[ProgressColumn] = [
            TextColumn("{task.description}"),
            BarColumn(),
            _Frames(),
            TextColumn("{task.fields[fps]:.1f} fps"),
            TimeElapsedColumn(),
            _Eta(),
        ]
        if live:
            columns.append(TextColumn("[yellow]{task.fields[dropped]} dropped"))
        self._progress = Progress(*columns, console=console, transient=True, disable=not console.is_terminal)
        self._task = self._progress.add_task(description, total=None, fps=0.0, dropped=0)

    def __enter__(self) -> PipelineProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.stop()

    def update(self, snap: Snapshot) -> None:
        self._progress.update(self._task, completed=snap.written, total=snap.total, fps=snap.fps, dropped=snap.dropped)


def stage_table(stats: PipelineStats, title: str | None = None) -> Table:
    """Frames, capacity fps (frames per busy second) and busy share of decode, inference and encode."""
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column("stage")
    table.add_column("frames", justify="right")
    table.add_column("fps alone", justify="right")
    table.add_column("busy", justify="right")
    for name in STAGES:
        st = stats.stages.get(name)
        if st is not None:
            table.add_row(name, str(st.frames), f"{st.capacity_fps:.1f}", f"{100 * st.busy_share:.0f}%")
    return table


def summary_line(stats: PipelineStats, output: str) -> str:
    """One line: outcome, frames written, where, time, fps, drops."""
    verb = {"done": "done", "interrupted": "interrupted", "failed": "failed"}.get(stats.status, stats.status)
    line = f"{verb}: wrote {stats.frames_written} frames to {output} in {stats.wall_s:.1f} s ({stats.fps:.1f} fps)"
    if stats.dropped:
        line += f", dropped {stats.dropped} frames (inference fell behind the live source)"
    return line + outages_text(stats)


def outages_text(stats: PipelineStats) -> str:
    """``, 2 source outages (7.3 s without frames)`` for a run whose live source reconnected; else empty."""
    if not stats.outages:
        return ""
    return f", {stats.outages} source outage{'s' if stats.outages > 1 else ''} ({stats.gap_s:.1f} s without frames)"


def print_summary(console: Console, stats: PipelineStats, output: str) -> None:
    console.print(stage_table(stats))
    style = "green" if stats.status == "done" else "yellow"
    console.print(Text(summary_line(stats, output), style=style))


def key_value_table(rows: Iterable[tuple[str, Any]], title: str | None = None) -> Table:
    """A two-column table (for settings and environment)."""
    table = Table(title=title, title_justify="left", show_header=False, show_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, str(value))
    return table
