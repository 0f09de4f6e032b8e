"""The ONNX Runtime backend: an exported network run by an ``onnxruntime.InferenceSession``.

:class:`OrtNetwork` has the torch network's call contract (``(B, 3, h, w)`` float in [0, 1], h and w
multiples of 4 → the raw ``(B, 3, h, w)`` output, float32, on the input's device), so it sits inside a
:class:`~streamdehaze.nets.dehazer.Dehazer` (padding, flip average, clamping) and the engine and guided
transfer treat it like the torch network. Providers: the CPU's here; on ``cuda`` devices the CUDA
provider, after TensorRT's where installed (``onnxruntime-gpu``), with IO binding on the tensors'
device memory. ``intra_op`` threads follow ``torch.get_num_threads()``, so ``--threads``-style limits
and benchmarks treat both backends alike; threads do not spin while idle (the pipeline's decode and
encode threads share the cores).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InputError, ModelError
from ..nets.dehazer import Dehazer
from .extra import RUNTIME, require

_ORT_DTYPES = {"tensor(float)": torch.float32, "tensor(float16)": torch.float16}


def providers_for(device: torch.device, available: list[str], half: bool = False) -> list[Any]:
    """Execution providers for ``device``, best first; :class:`ModelError` when onnxruntime cannot use it."""
    if device.type == "cpu":
        return ["CPUExecutionProvider"]
    if device.type != "cuda":
        raise ModelError(f"the onnxruntime backend runs on cpu or cuda, not {device}; use --backend torch")
    if "CUDAExecutionProvider" not in available:
        raise ModelError(
            f"this onnxruntime has no CUDA provider (it has {', '.join(available)}); install onnxruntime-gpu "
            "in place of onnxruntime, or use --device cpu or --backend torch"
        )
    from .onnx_cache import cache_dir

    index = device.index or 0
    providers: list[Any] = []
    if "TensorrtExecutionProvider" in available:  # engines are built on first use and kept beside the ONNX files
        trt_cache = cache_dir().parent / "tensorrt"
        trt_cache.mkdir(parents=True, exist_ok=True)
        trt = {"device_id": index, "trt_engine_cache_enable": True, "trt_engine_cache_path": str(trt_cache)}
        providers.append(("TensorrtExecutionProvider", {**trt, "trt_fp16_enable": half}))
    providers.append(("CUDAExecutionProvider", {"device_id": index}))
    return [*providers, "CPUExecutionProvider"]


class OrtNetwork(nn.Module):
    """An ONNX network in onnxruntime: ``(B, 3, h, w)`` float → ``(B, 3, h, w)`` float32 output on ``x``'s device.

    ``model``: a file path or the model's bytes. The module has no parameters; an empty buffer on
    ``device`` tells :attr:`Dehazer.device` where it runs.
    """

    def __init__(
        self, model: str | os.PathLike | bytes, device: torch.device | str = "cpu", half: bool = False
    ) -> None:
        super().__init__()
        (ort,) = require(RUNTIME, "--backend onnxruntime")
        self.run_device = torch.device(device)
        providers = providers_for(self.run_device, ort.get_available_providers(), half)
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, torch.get_num_threads())
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: no warnings on the terminal per run
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        what = "the exported model" if isinstance(model, bytes) else str(model)
        try:
            source = model if isinstance(model, bytes) else os.fspath(model)
            session = ort.InferenceSession(source, options, providers=providers)
        except Exception as err:  # onnxruntime raises its own types for unreadable or unsupported files
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ModelError(f"onnxruntime cannot load {what}: {reason[:200]}") from None
        self.session = session
        first = session.get_inputs()[0]
        if len(session.get_inputs()) != 1 or len(first.shape) != 4 or first.shape[1] not in (3, "3"):
            shapes = [(i.name, i.shape) for i in session.get_inputs()]
            raise ModelError(f"{what}: expected one (N, 3, H, W) input, got {shapes}")
        if first.type not in _ORT_DTYPES:
            raise ModelError(f"{what}: input {first.name} is {first.type}; expected float or float16")
        self.input_name, self.output_name = first.name, session.get_outputs()[0].name
        self.input_dtype = _ORT_DTYPES[first.type]
        self.metadata = dict(session.get_modelmeta().custom_metadata_map)
        self.register_buffer("_anchor", torch.empty(0, device=self.run_device), persistent=False)

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    # torch.compile must not trace into onnxruntime: the engine disables compilation of this forward
    # when it compiles (pipeline/core.py); a decorator here would import torch._dynamo (1.3 s of start-up)
    compile_opaque = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            raise ModelError("the onnxruntime backend cannot run inside a CUDA graph; drop --cuda-graphs")
        out_device = x.device
        x = x.detach().to(self.run_device, self.input_dtype).contiguous()
        y = self._run_cuda(x) if self.run_device.type == "cuda" else self._run_cpu(x)
        return y.to(out_device, torch.float32)

    def _run_cpu(self, x: torch.Tensor) -> torch.Tensor:
        (y,) = self.session.run([self.output_name], {self.input_name: x.numpy()})
        return torch.from_numpy(y)

    def _run_cuda(self, x: torch.Tensor) -> torch.Tensor:
        """IO binding on device memory: no host round trip. onnxruntime runs on its own stream, so the
        input is made ready first, and the run returns only when the output is written."""
        y = torch.empty_like(x)  # the networks map (B, 3, h, w) to the same shape
        np_dtype = np.float16 if self.input_dtype is torch.float16 else np.float32
        index = x.device.index or 0
        binding = self.session.io_binding()
        binding.bind_input(self.input_name, "cuda", index, np_dtype, tuple(x.shape), x.data_ptr())
        binding.bind_output(self.output_name, "cuda", index, np_dtype, tuple(y.shape), y.data_ptr())
        torch.cuda.current_stream(x.device).synchronize()
        self.session.run_with_iobinding(binding)
        return y


def check_precision(precision: str, device: torch.device) -> bool:
    """Whether the backend runs float16 for ``precision`` on ``device``; :class:`InputError` for what it cannot run."""
    if precision == "bf16":
        raise InputError(
            "--precision bf16 with --backend onnxruntime: it runs fp32, or fp16 on CUDA; use --backend torch"
        )
    if precision == "fp16" and device.type != "cuda":
        raise InputError("--precision fp16 needs a CUDA device; on CPU use --precision fp32")
    return precision == "fp16"


def load_onnx_dehazer(
    model: str | os.PathLike | bytes,
    device: torch.device,
    *,
    name: str = "aecrnet",
    multiple: int = 4,
    info: dict[str, Any] | None = None,
    flip_average: bool = False,
    half: bool = False,
) -> Dehazer:
    """A :class:`Dehazer` over an ONNX file (or its bytes) run by onnxruntime on ``device``.

    ``info``: what is known of the weights (working size, ngf, ...), merged over the file's own
    metadata (``model``, ``weights_sha256``, ``work_side``, ``ngf``).
    """
    net = OrtNetwork(model, device, half)
    meta = net.metadata
    if meta.get("model") and meta["model"] != name:
        raise ModelError(f"{model} holds a {meta['model']!r} network, not {name!r}; pass --model {meta['model']}")
    merged: dict[str, Any] = {k: meta[k] for k in ("weights_sha256", "ngf", "opset", "precision") if meta.get(k)}
    if meta.get("work_side"):
        merged["work_side"] = int(meta["work_side"])
    merged.update(info or {})
    onnx_path = "in memory" if isinstance(model, bytes) else str(Path(model))
    merged.update(backend="onnxruntime", onnx=onnx_path, providers=net.providers)
    merged.setdefault("weights", onnx_path)
    return Dehazer(net, name, multiple, merged, flip_average).eval()


def max_difference(
    onnx_model: str | os.PathLike | bytes, net: nn.Module, shape: tuple[int, ...] = (2, 3, 64, 96)
) -> float:
    """Largest ``|onnxruntime - torch|`` of the raw outputs on one random ``shape`` input, on the CPU
    (``net``: the torch network the file was exported from; a float16 file is compared with float32 torch)."""
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    ort_net = OrtNetwork(onnx_model, "cpu")
    ref_net = getattr(net, "net", net).eval()
    with torch.inference_mode():
        ref = ref_net(x.to(next(ref_net.parameters()).device)).cpu().float()
        return float((ort_net(x) - ref).abs().max())
