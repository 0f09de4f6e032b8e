"""Folders of files: discovery, resume, the manifest, segments, the local runner and the Ray runner.

``streamdehaze run DIR_OR_GLOB --output OUT_DIR/`` lands here (``cli/batch.py``):

- :mod:`.discover`: which files a folder or glob means, and each one's output path;
- :mod:`.segments`: which file continues which (one recording split into segments);
- :mod:`.runner`: planning, the skip rule (an existing output is complete) and the local runner;
- :mod:`.worker`: one model, one file after another (used locally and inside each Ray actor);
- :mod:`.prefetch`: the next file decoded ahead while the current one finishes;
- :mod:`.manifest`: ``OUT_DIR/streamdehaze-manifest.jsonl``, a line per file as it finishes;
- :mod:`.cluster`: the same over a Ray cluster (``--ray ADDRESS``; optional extra ``cluster``).

Torch and Ray are imported inside the functions that need them, not by importing these modules.
"""

from __future__ import annotations

from .discover import VIDEO_EXTENSIONS, is_batch_source, plan_jobs
from .jobs import BatchObserver, FileResult, Job, RunSettings
from .manifest import MANIFEST_NAME, Manifest, read_manifest

__all__ = [
    "VIDEO_EXTENSIONS",
    "MANIFEST_NAME",
    "BatchObserver",
    "FileResult",
    "Job",
    "Manifest",
    "RunSettings",
    "is_batch_source",
    "plan_jobs",
    "read_manifest",
]
