"""streamdehaze: dehaze video files, RTSP streams and webcams with AECR-Net.

The public API is imported lazily (PEP 562): ``import streamdehaze`` and ``streamdehaze --help``
load no torch; ``from streamdehaze import dehaze_video`` imports what it needs on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# public name -> module (relative to this package) that defines it
_LAZY = {
    "dehaze_video": ".api",
    "StreamDehazeError": ".errors",
    "load_model": ".nets.registry",
    "Pipeline": ".pipeline.runner",
}

__all__ = ["__version__", "StreamDehazeError", "load_model", "dehaze_video", "Pipeline"]

if TYPE_CHECKING:  # for type checkers and IDEs; never executed
    from .api import dehaze_video
    from .errors import StreamDehazeError
    from .nets.registry import load_model
    from .pipeline.runner import Pipeline


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
