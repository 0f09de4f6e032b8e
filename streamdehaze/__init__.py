"""streamdehaze: dehaze video files, RTSP streams and webcams with AECR-Net."""

from __future__ import annotations

from ._version import __version__  # noqa: E402
from .api import dehaze_video  # noqa: E402
from .errors import StreamDehazeError  # noqa: E402
from .nets.registry import load_model  # noqa: E402
from .pipeline.runner import Pipeline  # noqa: E402

__all__ = ["__version__", "StreamDehazeError", "load_model", "dehaze_video", "Pipeline"]
