"""The batch manifest: ``OUT_DIR/streamdehaze-manifest.jsonl``, one JSON object per line and file.

Each line holds ``input``, ``output``, ``status`` (done | skipped | failed), ``frames``,
``seconds``, ``error``, ``not_copied``, ``segment``, ``worker`` (see
:class:`~.jobs.FileResult`) and ``run``, the time the batch started (ISO 8601), which tells the
runs apart: the file is appended to, never rewritten, so a rerun adds its own lines after the
earlier ones. Each line is written and flushed to disk as soon as its file is finished, by the
process that drives the batch (with Ray, the driver, not the workers), so an interrupted batch
leaves a manifest that lists exactly the files that were finished.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import EncodeError
from .jobs import FileResult

MANIFEST_NAME = "streamdehaze-manifest.jsonl"


class Manifest:
    """Appends :class:`~.jobs.FileResult` lines to ``folder/streamdehaze-manifest.jsonl``."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.path = Path(folder) / MANIFEST_NAME
        self.run = datetime.now(timezone.utc).isoformat(timespec="seconds")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise EncodeError(f"cannot create the output folder {self.path.parent}: {err.strerror or err}") from None

    def add(self, result: FileResult) -> None:
        """Append one line and flush it to disk."""
        line = json.dumps({**result.to_dict(), "run": self.run}, ensure_ascii=False) + "\n"
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:
            raise EncodeError(f"cannot write the manifest {self.path}: {err.strerror or err}") from None


def read_manifest(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The manifest's lines as dicts, oldest first; a torn last line (power loss) is left out."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def latest(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The state of every input after all the runs so far: its last line, where a ``skipped`` line
    (the output existed) does not hide the line of the run that made it."""
    out: dict[str, dict[str, Any]] = {}
    for e in entries:
        if not (e.get("status") == "skipped" and e["input"] in out):
            out[e["input"]] = e
    return out
