"""Training output on rank 0: a CSV log and a rich progress bar with the loss terms, images/s and ETA."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

COLUMNS = ("step", "epoch", "lr", "loss", "l1", "cr", "grad_norm", "images_per_s", "elapsed_s", "val_psnr", "val_ssim")


class CsvLog:
    """Appends rows to ``log.csv``. On resume, rows after the checkpoint's step are dropped first
    (they were written after the last checkpoint and will be written again)."""

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        if resume_step is None or not path.is_file():
            self._rewrite([])
        else:
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= resume_step]
            self._rewrite(rows)

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        tmp = self.path.with_name(self.path.name + ".part")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, self.path)

    def write(self, **row: Any) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, COLUMNS, extrasaction="ignore").writerow({k: _fmt(v) for k, v in row.items()})


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


class TrainProgress:
    """A rich progress bar over the steps (no-op when disabled)."""

    def __init__(self, total: int, start: int, enabled: bool, console: Console | None = None) -> None:
        self.enabled = enabled
        self.console = console or Console()
        if not enabled:
            return
        self.bar = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.task = self.bar.add_task("train", total=total, completed=start, stats="")

    def __enter__(self) -> TrainProgress:
        if self.enabled:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.stop()

    def advance(self, stats: str | None = None) -> None:
        if self.enabled:
            kw = {"stats": stats} if stats is not None else {}
            self.bar.update(self.task, advance=1, **kw)

    def print(self, text: str) -> None:
        if self.enabled:
            self.bar.console.print(text, highlight=False)
