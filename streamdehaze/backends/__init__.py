"""Backends that run the network: torch (the default on CUDA) and ONNX Runtime, behind one interface.

Both give a :class:`~streamdehaze.nets.dehazer.Dehazer` whose ``net`` maps ``(B, 3, h, w)`` float
RGB in [0, 1] (h, w multiples of the model's ``multiple``) to the network's raw output of the same
shape, so the engine, the guided transfer, smoothing and batching are the same for both.
:func:`.select.load_dehazer` picks and loads one: the torch runner is the network itself
(:func:`~streamdehaze.nets.registry.load_model`), the onnxruntime runner
:class:`.onnxruntime_runner.OrtNetwork` in its place. :mod:`.onnx_export` writes the ONNX file and
:mod:`.onnx_cache` keeps exported files between runs. This module imports no torch.
"""

from __future__ import annotations

from ..errors import InputError

BACKENDS = ("auto", "torch", "onnxruntime")
MIN_OPSET = 19  # ONNX DeformConv exists from opset 19
DEFAULT_OPSET = 19  # the oldest with DeformConv: what TensorRT 10.1 and onnxruntime 1.25 take
INSTALL_HINT = "pip install 'streamdehaze[onnx]'"


def check_backend(name: str) -> str:
    """``name`` if it is one of :data:`BACKENDS`, else :class:`InputError` (``bench --compare backend=...``)."""
    name = str(name).strip().lower()
    if name not in BACKENDS:
        raise InputError(f"backend {name!r}: expected one of {', '.join(BACKENDS)}")
    return name
