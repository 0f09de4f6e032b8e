"""Batched inference: uint8 frames in, uint8 frames out, the model in between on the device.

Frames travel to the device as uint8 (4x fewer bytes than float) and are converted there. On CUDA
each batch goes through three streams ordered by events::

    upload stream:   pinned host -> device uint8          (record ``uploaded``)
    compute stream:  wait uploaded; uint8 -> float, model, -> uint8   (record ``computed``)
    download stream: wait computed; device -> pinned host (record ``downloaded``)

with ``depth`` (>= 2) batches in flight, each in its own slot of pinned and device buffers, so the
upload of batch k+1 and the download of batch k-1 overlap the compute of batch k, and the host thread
only waits for a slot's ``downloaded`` event when it needs that slot again. On CPU the same
interface runs each batch synchronously.

Frames may be RGB ``(H, W, 3)`` or packed yuv420p planes (``meta['pix_fmt'] == 'yuv420p'``, see
:mod:`streamdehaze.ops.yuv`): yuv frames are converted to RGB and back on the device and come back
as yuv420p. The network call goes through :func:`.tuning.model_runner` (channels-last, autocast,
optional torch.compile / CUDA graphs) and, when a :class:`.transfer.GuidedTransfer` is given and
active, through its coefficient path (working size, keyframe reuse, the temporal hook).
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import nullcontext

import numpy as np
import torch
from torch import nn

from ..errors import InputError, ModelError
from ..frames import Frame
from ..ops.color import to_tensor, to_uint8
from ..ops.yuv import is_yuv, rgb_to_yuv420p, yuv420p_to_rgb
from .transfer import GuidedTransfer
from .tuning import EngineOptions, model_runner

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def autocast_for(device: torch.device, precision: str):
    """The autocast context for ``precision`` (fp32|fp16|bf16) on ``device``; fp32 → no autocast."""
    if precision not in PRECISIONS:
        raise InputError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return nullcontext()
    if device.type == "cpu" and dtype is torch.float16:
        raise InputError("--precision fp16 needs a CUDA device; on CPU use --precision bf16 or fp32")
    return torch.autocast(device_type=device.type, dtype=dtype)


def _with_images(frames: list[Frame], images: np.ndarray) -> list[Frame]:
    """New frames carrying ``images[i]`` and the timestamps/metadata of ``frames[i]``."""
    return [dataclasses.replace(f, image=images[i]) for i, f in enumerate(frames)]


class _Slot:
    """Pinned host and device buffers plus the events of one in-flight CUDA batch.

    ``frame_shape``: one frame's uint8 image, ``(H, W, 3)`` RGB or ``(3H/2, W)`` yuv420p (same out as in).
    """

    def __init__(self, batch: int, frame_shape: tuple[int, ...], device: torch.device) -> None:
        shape = (batch, *frame_shape)
        self.shape = shape
        self.host_in = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        self.host_out = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        self.dev_in = torch.empty(shape, dtype=torch.uint8, device=device)
        self.dev_out = torch.empty(shape, dtype=torch.uint8, device=device)
        self.uploaded = torch.cuda.Event()
        self.started = torch.cuda.Event(enable_timing=True)
        self.computed = torch.cuda.Event(enable_timing=True)
        self.downloaded = torch.cuda.Event()
        self.frames: list[Frame] | None = None  # the batch in flight, None when the slot is free

    def fits(self, n: int, frame_shape: tuple[int, ...]) -> bool:
        return n <= self.shape[0] and tuple(frame_shape) == self.shape[1:]


class Engine:
    """Runs a Dehazer on batches of frames.

    ``model``: ``(B, 3, H, W)`` float in [0, 1] → same shape, float in [0, 1] (a
    :class:`~streamdehaze.nets.dehazer.Dehazer`). ``precision``: fp32, or fp16/bf16 autocast.
    ``transfer``: working size / keyframes / temporal hook (:mod:`.transfer`); ``options``: GPU tuning
    switches (:class:`.tuning.EngineOptions`, resolved for the device; applied to ``model`` in place).
    Use :meth:`submit` for each batch (returns the batches that finished, oldest first, possibly
    none yet on CUDA), :meth:`poll` when idle, and :meth:`drain` at the end. :attr:`busy_s` is the
    model's compute time (CUDA events on GPU, wall time on CPU).
    """

    def __init__(
        self,
        model: nn.Module,
        device: torch.device | str | None = None,
        precision: str = "fp32",
        depth: int = 2,
        transfer: GuidedTransfer | None = None,
        options: EngineOptions | None = None,
    ) -> None:
        self.model = model.eval()
        self.device = torch.device(device) if device is not None else _model_device(model)
        self.precision = precision
        autocast_for(self.device, precision)  # validates the combination early
        self.cuda = self.device.type == "cuda"
        self.depth = max(2, depth)
        self.busy_s = 0.0
        self.frames = 0
        self._slots: list[_Slot | None] = [None] * self.depth
        self._order: list[int] = []  # slot indices in flight, oldest first
        self._next = 0
        self.transfer = transfer
        self.options = (options or EngineOptions()).resolved(self.device)
        self._run_model = model_runner(self.model, self.device, precision, self.options)
        if self.cuda:
            with torch.cuda.device(self.device):
                self._upload, self._compute, self._download = (torch.cuda.Stream(self.device) for _ in range(3))
                # the model's weights were written on the default stream: order the compute stream after it
                self._compute.wait_stream(torch.cuda.current_stream(self.device))

    @property
    def pending(self) -> int:
        """Batches submitted and not yet returned."""
        return len(self._order)

    def _forward(self, x_uint8: torch.Tensor, meta: dict | None = None) -> torch.Tensor:
        """``(B, H, W, 3)`` (or yuv420p ``(B, 3H/2, W)``) uint8 on the device → the same layout, uint8."""
        meta = meta or {}
        yuv = is_yuv(meta)
        matrix, full_range = meta.get("yuv_matrix", "bt601"), meta.get("yuv_range") == "pc"
        with torch.inference_mode():
            x = yuv420p_to_rgb(x_uint8, matrix, full_range) if yuv else to_tensor(x_uint8)
            y = self.infer(x)
            # back with the same matrix and range: the sink tags the output as the source was tagged
            return rgb_to_yuv420p(y, matrix, full_range) if yuv else to_uint8(y)

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` float in [0, 1] on the device → dehazed, same shape: the network, behind the
        transfer (working size, keyframe reuse, coefficient hook) when that is active. Frames in order."""
        with torch.inference_mode():
            if self.transfer is not None and self.transfer.active:
                return self.transfer.process(self._call_model, x)
            return self._call_model(x)

    def _call_model(self, x: torch.Tensor) -> torch.Tensor:
        """The network (tuned runner, autocast) on ``(B, 3, h, w)`` float; clear errors for precision gaps."""
        with torch.inference_mode():
            try:
                return self._run_model(x)
            except (RuntimeError, NotImplementedError) as err:
                if self.precision != "fp32" and "not implemented for" in str(err):
                    # an op with no kernel for this dtype on this device (e.g. a model's custom layer)
                    raise ModelError(
                        f"{getattr(self.model, 'name', 'the model')} cannot run in {self.precision} on "
                        f"{self.device.type}: {str(err).splitlines()[0]}; use --precision fp32"
                    ) from err
                raise

    def submit(self, frames: list[Frame]) -> list[list[Frame]]:
        """Start one batch (all frames of one size); returns finished batches, oldest first."""
        if not frames:
            return []
        if not self.cuda:
            return [self._run_cpu(frames)]
        done = []
        if self._slots[self._next] is not None and self._slots[self._next].frames is not None:
            done.append(self._collect())  # the ring is full: the oldest batch sits in this slot
        with torch.cuda.device(self.device):  # the calling thread's current device may be another
            self._launch(self._next, frames)
        self._next = (self._next + 1) % self.depth
        return done

    def poll(self) -> list[list[Frame]]:
        """Batches that have finished on the device, without waiting (always empty on CPU)."""
        done = []
        while self._order and self._slots[self._order[0]].downloaded.query():
            done.append(self._collect())
        return done

    def drain(self) -> list[list[Frame]]:
        """Wait for every batch in flight; returns them oldest first."""
        done = []
        while self._order:
            done.append(self._collect())
        return done

    def process(self, images: np.ndarray) -> np.ndarray:
        """Synchronous helper: ``(B, H, W, 3)`` uint8 → ``(B, H, W, 3)`` uint8 dehazed."""
        from fractions import Fraction

        frames = [Frame(img, i, Fraction(1, 1), i) for i, img in enumerate(images)]
        out = self.submit(frames) + self.drain()
        return np.stack([f.image for batch in out for f in batch])

    def _run_cpu(self, frames: list[Frame]) -> list[Frame]:
        t0 = time.perf_counter()
        x = torch.from_numpy(np.stack([f.image for f in frames])).to(self.device)
        y = self._forward(x, frames[0].meta).cpu().numpy()
        self.busy_s += time.perf_counter() - t0
        self.frames += len(frames)
        return _with_images(frames, y)

    def _launch(self, index: int, frames: list[Frame]) -> None:
        n, shape = len(frames), frames[0].image.shape
        slot = self._slots[index]
        if slot is None or not slot.fits(n, shape):
            slot = self._slots[index] = _Slot(max(n, slot.shape[0] if slot else 0), shape, self.device)
        host = slot.host_in.numpy()
        for i, f in enumerate(frames):  # straight into pinned memory, no intermediate stack
            host[i] = f.image
        with torch.cuda.stream(self._upload):
            slot.dev_in[:n].copy_(slot.host_in[:n], non_blocking=True)
            slot.uploaded.record(self._upload)
        self._compute.wait_event(slot.uploaded)
        with torch.cuda.stream(self._compute):
            slot.started.record(self._compute)
            slot.dev_out[:n].copy_(self._forward(slot.dev_in[:n], frames[0].meta))
            slot.computed.record(self._compute)
        self._download.wait_event(slot.computed)
        with torch.cuda.stream(self._download):
            slot.host_out[:n].copy_(slot.dev_out[:n], non_blocking=True)
            slot.downloaded.record(self._download)
        slot.frames = frames
        self._order.append(index)

    def _collect(self) -> list[Frame]:
        """Wait for the oldest batch in flight and return its frames (copied out of pinned memory)."""
        slot = self._slots[self._order.pop(0)]
        slot.downloaded.synchronize()
        frames, slot.frames = slot.frames, None
        out = slot.host_out[: len(frames)].numpy().copy()  # the slot's buffer is reused by the next batch
        self.busy_s += slot.started.elapsed_time(slot.computed) / 1000.0
        self.frames += len(frames)
        return _with_images(frames, out)


def _model_device(model: nn.Module) -> torch.device:
    dev = getattr(model, "device", None)
    if isinstance(dev, torch.device):
        return dev
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")
