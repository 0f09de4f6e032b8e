"""GPU engine tuning, each switch measurable on and off (``streamdehaze bench``).

:class:`EngineOptions` holds the switches; :func:`model_runner` turns a model into the network call
of the engine's core, ``(B, 3, h, w)`` float in [0, 1] → ``(B, 3, h, w)`` float in [0, 1]:

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
  by default) of the engine's stateless core (:mod:`.core`) for fixed shapes: batches are padded
  to a bucket (:func:`bucket`, powers of two), one graph per bucket, captured after a few eager
  warm-up calls; later calls copy the input into the graph's buffers and replay it
  (:class:`GraphedModel`). Stateful stages never run inside a graph or a compiled region.
* **device YUV** (default on CUDA for file → video file): frames travel as yuv420p planes; the
  GPU converts them to RGB and back (:mod:`streamdehaze.ops.yuv`), so the CPU converts no colour.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from ..errors import InputError

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


def autocast_for(device: torch.device, precision: str):
    """The autocast context for ``precision`` (fp32|fp16|bf16) on ``device``; fp32 → no autocast.

    Raises :class:`~streamdehaze.errors.InputError` for an unknown precision or fp16 on the CPU.
    """
    if precision not in PRECISION_DTYPES:
        raise InputError(f"--precision {precision!r}: expected one of {', '.join(PRECISION_DTYPES)}")
    dtype = PRECISION_DTYPES[precision]
    if dtype is None:
        return nullcontext()
    if torch.device(device).type == "cpu" and dtype is torch.float16:
        raise InputError("--precision fp16 needs a CUDA device; on CPU use --precision bf16 or fp32")
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


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


def bucket(n: int) -> int:
    """The batch size a call of ``n`` frames is padded to: the next power of two (1, 2, 4, 8, ...)."""
    return 1 << max(0, n - 1).bit_length()


def pad_batch(x: torch.Tensor, size: int) -> torch.Tensor:
    """``x`` with its last row repeated up to ``size`` rows (real data: no NaN or extreme values in the padding)."""
    n = x.shape[0]
    return x if n >= size else torch.cat([x, x[-1:].expand(size - n, *x.shape[1:])])


class FixedShapes:
    """``fn(*tensors)`` called on batches padded to their :func:`bucket`, outputs cut back to ``n`` rows.

    So a partial or odd batch reuses the graph (or compiled code) of its bucket instead of making
    its own. Outputs are views of ``fn``'s; the caller copies what it keeps.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, *xs: torch.Tensor) -> Any:
        n = xs[0].shape[0]
        size = bucket(n)
        out = self.fn(*(pad_batch(x, size) for x in xs))
        if size == n:
            return out
        return out[:n] if isinstance(out, torch.Tensor) else tuple(o[:n] for o in out)


class GraphedModel:
    """Replays one CUDA graph per input signature (shapes, dtypes, strides); beyond ``max_graphs`` runs eagerly.

    ``fn``: a pure function of its tensor arguments (autocast inside it, with the cache off),
    returning a tensor or a tuple of tensors. A replay copies the inputs into the graph's static
    buffers and returns the graph's static outputs, which the next replay overwrites: the caller
    copies what it keeps (the engine's :class:`~.core.Core` does). :attr:`captures` and
    :attr:`replays` count what happened.

    ``pool``: a memory pool (``torch.cuda.graph_pool_handle()``) shared by every graph captured here
    (and by other GraphedModels given the same pool), instead of one pool per shape. Safe because
    the graphs replay one at a time on one stream and their outputs are copied right after each
    replay: a graph may overwrite another's freed temporaries or stale outputs, never live data.
    """

    def __init__(self, fn: Callable[..., Any], warmup: int = 3, max_graphs: int = 8, pool: Any = None) -> None:
        self.fn = fn
        self.warmup = warmup
        self.max_graphs = max_graphs
        self.pool = pool
        self.captures = 0
        self.replays = 0
        self._graphs: dict[tuple, tuple[list[torch.Tensor], Any, torch.cuda.CUDAGraph]] = {}

    def __call__(self, *xs: torch.Tensor) -> Any:
        key = tuple((tuple(x.shape), x.dtype, x.stride(), x.device) for x in xs)
        entry = self._graphs.get(key)
        if entry is None:
            if len(self._graphs) >= self.max_graphs:
                return self.fn(*xs)
            entry = self._graphs[key] = self._capture(xs)
            self.captures += 1
        static_in, static_out, graph = entry
        for buffer, x in zip(static_in, xs):
            buffer.copy_(x)
        graph.replay()
        self.replays += 1
        return static_out

    def _capture(self, xs: tuple[torch.Tensor, ...]) -> tuple[list[torch.Tensor], Any, torch.cuda.CUDAGraph]:
        static_in = [x.clone() for x in xs]
        device = xs[0].device
        current = torch.cuda.current_stream(device)
        side = torch.cuda.Stream(device)
        side.wait_stream(current)
        with torch.cuda.stream(side):  # warm-up: cuDNN autotuning and lazy inits happen outside the capture
            for _ in range(self.warmup):
                self.fn(*static_in)
        current.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):
            static_out = self.fn(*static_in)
        current.wait_stream(side)
        return static_in, static_out, graph


def model_runner(
    model: Callable[[torch.Tensor], torch.Tensor], device: torch.device, precision: str, options: EngineOptions
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The network call with ``options`` (already resolved) applied: channels-last input, autocast.

    Changes ``model`` in place (memory format) and sets ``torch.backends.cudnn.benchmark`` on CUDA.
    Compilation and CUDA graphs wrap the engine's whole stateless core, not this call
    (:class:`~.core.Core`); under CUDA graphs the autocast cache is off (cached casts would be
    captured as stale tensors).
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = bool(options.cudnn_benchmark)
    if isinstance(model, nn.Module):
        set_memory_format(model, bool(options.channels_last))
    graphs = options.cuda_graphs and device.type == "cuda"
    memory_format = torch.channels_last if options.channels_last else torch.contiguous_format

    def run(x: torch.Tensor, *args: torch.Tensor, fn: Callable[..., torch.Tensor] = model) -> torch.Tensor:
        x = x.contiguous(memory_format=memory_format)
        with autocast_context(device, precision, cache=not graphs):
            return fn(x, *args)

    return run
