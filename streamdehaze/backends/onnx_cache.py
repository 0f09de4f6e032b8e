"""Exported ONNX files kept between runs, so only the first ``--backend onnxruntime`` run of a weight file exports.

Files live in :func:`cache_dir` (``$STREAMDEHAZE_CACHE/onnx``, else ``$XDG_CACHE_HOME/streamdehaze/onnx``,
else ``~/.cache/streamdehaze/onnx``), named by the model, a hash of the weights as loaded, the opset,
the precision and the streamdehaze version (a new version may change the network code). A file is
written under a temporary name and renamed when complete. Where the folder cannot be written the
export is kept in memory for this run.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from torch import nn

from .onnx_export import DEFAULT_OPSET, card_metadata, export_network

Log = Callable[[str], None]


def stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """Where exported files are kept (not created here)."""
    root = os.environ.get("STREAMDEHAZE_CACHE")
    if root:
        return Path(root).expanduser() / "onnx"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "streamdehaze" / "onnx"


def cache_name(model: str, state_sha256: str, opset: int, half: bool) -> str:
    from .._version import __version__

    return f"{model}-{state_sha256[:20]}-opset{opset}-{'fp16' if half else 'fp32'}-v{__version__}.onnx"


def cached_export(
    dehazer: nn.Module, opset: int = DEFAULT_OPSET, half: bool = False, log: Log = stderr_log
) -> Path | bytes:
    """The ONNX file of ``dehazer``'s network (a :class:`~streamdehaze.nets.dehazer.Dehazer`), exported on
    first use: its path in the cache, or the model's bytes when the cache cannot be written."""
    meta = card_metadata(dehazer)
    path = cache_dir() / cache_name(meta["model"], meta["state_sha256"], opset, half)
    if path.is_file():
        return path
    what = f"{meta['model']} ({meta['weights']}, {'fp16' if half else 'fp32'}, opset {opset})"
    kw = {"opset": opset, "half": half, "multiple": int(getattr(dehazer, "multiple", 4) or 1), "metadata": meta}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        writable = os.access(path.parent, os.W_OK)
    except OSError:
        writable = False
    if writable:
        log(f"exporting {what} to ONNX for onnxruntime, once: later runs reuse {path}")
        export_network(dehazer.net, path, **kw)
        return path
    log(f"exporting {what} to ONNX for onnxruntime ({path.parent} is not writable: not cached)")
    with tempfile.TemporaryDirectory(prefix="streamdehaze-onnx-") as tmp:
        return export_network(dehazer.net, Path(tmp) / "model.onnx", **kw).path.read_bytes()
