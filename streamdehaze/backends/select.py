"""Choosing and loading a backend: ``--backend auto|torch|onnxruntime``.

Both backends give a :class:`~streamdehaze.nets.dehazer.Dehazer` (``(B, 3, H, W)`` float in [0, 1] →
the same, any H and W), so everything around the network is the same for both.

``auto`` picks onnxruntime for AECR-Net in fp32 on the CPU when the ``onnx`` extra is installed: there
it ran the shipped model 1.82x as fast as torch (``bench --backend torch --compare backend=onnxruntime``,
see docs/performance.md). Everywhere else (CUDA, where no measurement was taken; the dark channel prior,
which has no network to export; bf16; no extra) it picks torch. A torch weight file given to the
onnxruntime backend is exported to ONNX on first use and cached (:mod:`.onnx_cache`); an ``.onnx``
file is run as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..devices import resolve_device
from ..errors import InputError, ModelError
from ..nets.dehazer import Dehazer
from ..nets.registry import MODELS, load_model
from . import check_backend
from .extra import RUNTIME, onnx_available, require
from .onnx_cache import Log, cached_export, stderr_log
from .onnx_export import DEFAULT_OPSET
from .onnxruntime_runner import check_precision, load_onnx_dehazer

CPU_DEFAULT = "onnxruntime"  # the faster backend on the CPU by the measurement above
ONNX_MODELS = ("aecrnet",)  # models with a network to export


def is_onnx_file(weights: str | os.PathLike | None) -> bool:
    return weights is not None and os.fspath(weights).lower().endswith(".onnx")


def resolve_backend(
    backend: str, model: str, weights: str | os.PathLike | None, device: torch.device, precision: str = "fp32"
) -> str:
    """``torch`` or ``onnxruntime`` for ``backend`` (``auto`` decided as the module says)."""
    backend = check_backend(backend)
    if backend != "auto":
        return backend
    if is_onnx_file(weights):
        return "onnxruntime"
    if device.type == "cpu" and model in ONNX_MODELS and precision == "fp32" and onnx_available():
        return CPU_DEFAULT
    return "torch"


def load_dehazer(
    model: str = "aecrnet",
    weights: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    backend: str = "auto",
    precision: str = "fp32",
    flip_average: bool = False,
    *,
    opset: int = DEFAULT_OPSET,
    log: Log = stderr_log,
) -> Dehazer:
    """A ready :class:`Dehazer` for ``model`` on ``device`` with ``backend``; ``info['backend']`` says which.

    ``weights``: a torch weight file (default: the shipped one) or, for onnxruntime, an ``.onnx`` file.
    ``precision``: what the engine will run (onnxruntime: fp32, or fp16 on CUDA from a ``--half`` export).
    """
    dev = resolve_device(device)
    chosen = resolve_backend(backend, model, weights, dev, precision)
    if chosen == "torch":
        if is_onnx_file(weights):
            raise ModelError(f"{weights} is an ONNX model; run it with --backend onnxruntime (or auto)")
        dehazer = load_model(model, weights=weights, device=dev, flip_average=flip_average)
        dehazer.info["backend"] = "torch"
        return dehazer
    if model not in ONNX_MODELS:
        raise ModelError(f"--backend onnxruntime runs {', '.join(ONNX_MODELS)}; {model} runs with --backend torch")
    half = check_precision(precision, dev)
    if not is_onnx_file(weights):
        torch_model = load_model(model, weights=weights, device="cpu")  # exported from the CPU, then run on dev
        try:
            return to_onnxruntime(torch_model, dev, precision, flip_average, opset=opset, log=log)
        except ModelError as err:
            if backend != "auto":
                raise
            log(f"onnxruntime backend not available ({err}); running torch")  # auto was only a speed choice
            return load_dehazer(model, weights, dev, "torch", precision, flip_average)
    require(RUNTIME, "--backend onnxruntime")
    path = Path(weights)
    if not path.is_file():
        raise ModelError(f"ONNX file not found: {path} (pass a file written by 'streamdehaze export' with --weights)")
    multiple = MODELS[model].multiple
    dehazer = load_onnx_dehazer(path, dev, name=model, multiple=multiple, flip_average=flip_average, half=half)
    if half and dehazer.net.input_dtype != torch.float16:
        raise InputError(f"--precision fp16: {path} is a float32 model; export one with 'streamdehaze export --half'")
    return dehazer


def to_onnxruntime(
    dehazer: Dehazer,
    device: str | torch.device,
    precision: str = "fp32",
    flip_average: bool | None = None,
    *,
    opset: int = DEFAULT_OPSET,
    log: Log = stderr_log,
) -> Dehazer:
    """The same network as the torch ``dehazer``, run by onnxruntime on ``device`` (exported once, cached)."""
    dev = resolve_device(device)
    half = check_precision(precision, dev)
    require(RUNTIME, "--backend onnxruntime")  # the exporter's packages load only for an export (0.7 s)
    source = cached_export(dehazer, opset, half, log)
    info = {k: v for k, v in dehazer.info.items() if k != "backend"}
    flip = dehazer.flip_average if flip_average is None else flip_average
    return load_onnx_dehazer(
        source, dev, name=dehazer.name, multiple=dehazer.multiple, info=info, flip_average=flip, half=half
    )


def describe_backend(model: object) -> str:
    """``"torch"`` or ``"onnxruntime (CPU)"`` (its first execution provider) for a loaded model or a wrapper
    with its ``info``."""
    info = getattr(model, "info", None) or {}
    if info.get("backend") != "onnxruntime":
        return "torch"
    providers = info.get("providers") or []
    return f"onnxruntime ({providers[0].replace('ExecutionProvider', '')})" if providers else "onnxruntime"
