"""GPU engine tuning, each switch measurable on and off (``streamdehaze bench``).

:class:`EngineOptions` holds the switches; :func:`model_runner` turns a model into the function the
engine calls, ``(B, 3, h, w)`` float in [0, 1] → ``(B, 3, h, w)`` float in [0, 1]:

* **channels-last** (default on, every device): weights and inputs in NHWC, the layout tensor-core
  convolutions want (cuDNN otherwise transposes around every conv); oneDNN on CPU is ~15 % faster
  with it for AECR-Net, with bit-identical results.
* **precision** fp16/bf16: autocast. torchvision registers an autocast rule for
  ``deform_conv2d`` on CUDA that runs it in float32 (its sampling positions would lose sub-pixel
  precision in fp16: at x = 270 fp16 steps are 0.25 px); the other layers run in half precision.
  On CPU the network's own deformable conv (:mod:`streamdehaze.nets.deform`) samples in float32
  the same way; an op without a kernel for the chosen precision gets a clear error from the engine.
* **cuDNN autotuning** (``torch.backends.cudnn.benchmark``, default on CUDA): frame sizes are
  fixed for a stream, so the first batch's search pays off.
* **torch.compile** (off by default: minutes of compilation per shape) and **CUDA graphs** (off
  by default) for fixed shapes: one graph per input shape, captured after a few eager warm-up
  calls; later calls copy the input into the graph's buffer and replay it.
* **device YUV** (default on CUDA for file → video file): frames travel as yuv420p planes; the
  GPU converts them to RGB and back (:mod:`streamdehaze.ops.yuv`), so the CPU converts no colour.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch import nn

PRECISION_DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclasses.dataclass
class EngineOptions:
    """Switches; None means "the device's default" (channels-last: on; the others: on for CUDA only)."""

    channels_last: bool | None = None
    cudnn_benchmark: bool | None = None
    compile: bool = False
    cuda_graphs: bool = False
    device_yuv: bool | None = None

    def resolved(self, device: torch.device | str) -> EngineOptions:
        """A copy with every None replaced by the default for ``device``; CUDA-only switches off elsewhere."""
        cuda = torch.device(device).type == "cuda"

        def pick(value: bool | None) -> bool:
            return cuda if value is None else bool(value)

        return EngineOptions(
            channels_last=True if self.channels_last is None else bool(self.channels_last),
            cudnn_benchmark=pick(self.cudnn_benchmark) and cuda,
            compile=self.compile,
            cuda_graphs=self.cuda_graphs and cuda,
            device_yuv=pick(self.device_yuv),
        )

    def describe(self) -> str:
        on = [name.replace("_", "-") for name, value in dataclasses.asdict(self).items() if value]
        return ", ".join(on) if on else "no tuning"


def autocast_context(device: torch.device, precision: str, cache: bool = True):
    """Autocast for fp16/bf16 (``cache=False`` while CUDA graphs capture); fp32 → none."""
    dtype = PRECISION_DTYPES[precision]
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=cache)


def set_memory_format(model: nn.Module, channels_last: bool) -> nn.Module:
    """Put 4-d weights in channels-last (or back to contiguous) in place; returns ``model``."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return model.to(memory_format=fmt)


class GraphedModel:
    """Replays one CUDA graph per input shape; shapes beyond ``max_graphs`` run eagerly.

    ``fn``: the eager model call (autocast inside it, with the cache off). The returned tensor is a
    copy, so the next replay cannot overwrite what the caller still reads.
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], warmup: int = 3, max_graphs: int = 8) -> None:
        self.fn = fn
        self.warmup = warmup
        self.max_graphs = max_graphs
        self._graphs: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.cuda.CUDAGraph]] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.dtype, x.stride(), x.device)
        entry = self._graphs.get(key)
        if entry is None:
            if len(self._graphs) >= self.max_graphs:
                return self.fn(x)
            entry = self._graphs[key] = self._capture(x)
        static_in, static_out, graph = entry
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()

    def _capture(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.cuda.CUDAGraph]:
        static_in = x.clone()
        current = torch.cuda.current_stream(x.device)
        side = torch.cuda.Stream(x.device)
        side.wait_stream(current)
        with torch.cuda.stream(side):  # warm-up: cuDNN autotuning and lazy inits happen outside the capture
            for _ in range(self.warmup):
                self.fn(static_in)
        current.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            static_out = self.fn(static_in)
        current.wait_stream(side)
        return static_in, static_out, graph


def model_runner(
    model: nn.Module, device: torch.device, precision: str, options: EngineOptions
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function the engine calls for the network, with ``options`` (already resolved) applied.

    Changes ``model`` in place (memory format) and sets ``torch.backends.cudnn.benchmark`` on CUDA.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = bool(options.cudnn_benchmark)
    set_memory_format(model, bool(options.channels_last))
    net: Callable[[torch.Tensor], torch.Tensor] = model
    if options.compile:
        mode = "reduce-overhead" if options.cuda_graphs else None  # reduce-overhead = compile's own CUDA graphs
        net = torch.compile(model, dynamic=False, mode=mode)
    graphs = options.cuda_graphs and not options.compile and device.type == "cuda"
    memory_format = torch.channels_last if options.channels_last else torch.contiguous_format

    def run(x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=memory_format)
        with autocast_context(device, precision, cache=not graphs):
            return net(x)

    return GraphedModel(run) if graphs else run
