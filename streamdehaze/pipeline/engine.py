"""Batched inference: uint8 frames in, uint8 frames out; a stateless core and stateful stages on the device.

Structure (one stream, frames in order)::

    uint8 ──► float RGB ──► [stages.prepare: working size, state pass]  ──► host: keyframe plan, optical flow
          ──► [core: network (+ fit)]  ──►  [stages.finish: keyframe reuse, smoothing, airlight, pixel
          filters, strength, apply]  ──► uint8 / yuv420p

The core (:mod:`.core`) is a pure function of its batch, safe to compile and to capture as CUDA
graphs (fixed shapes: batches padded to buckets); the stateful stages (:mod:`.stages`) run after and
between its calls, never inside them, fed by one per-frame state pass (:mod:`.frame_state`).

Frames travel to the device as uint8 (4x fewer bytes than float) and are converted there. On CUDA
each batch goes through three streams ordered by events::

    upload stream:   pinned host -> device uint8          (record ``uploaded``)
    compute stream:  wait uploaded; uint8 -> float, prepare ... finish, -> uint8   (record ``computed``)
    download stream: wait computed; device -> pinned host (record ``downloaded``)

with ``depth`` (>= 2) batches in flight, each in its own :class:`~.slots.Slot` of pinned and device
buffers, so the upload of batch k+1 and the download of batch k-1 overlap the compute of batch k.
The compute section never waits for the host (no ``.cpu()``, ``.item()`` or pageable copies; with
``sync_check`` any sync there raises). Where the host must decide from the device's results (the
keyframe plan with ``--keyframe-interval`` > 1, the optical flow of ``--temporal flow``, a hook's
resets), a batch's phase 1 (prepare) is launched when it arrives and its host step and phase 2 one
batch later, so the device prepares batch k while the host decides batch k - 1. On CPU the same
steps run synchronously, and an RGB batch on the coefficient path never becomes full-size float:
the working-size frames are shrunk from the uint8 frames and the apply writes uint8 frames
(:meth:`.stages.Stages.takes_uint8`).

Controls from other threads (the preview: dehaze on/off, smoothing on/off, strength) go through
:meth:`Engine.control` and are applied between batches by the thread that calls :meth:`submit`.
One engine serves several streams in turn: :meth:`drain`, then :meth:`reset`.

Frames may be RGB ``(H, W, 3)`` or packed yuv420p planes (``meta['pix_fmt'] == 'yuv420p'``, see
:mod:`streamdehaze.ops.yuv`): yuv frames are converted to RGB and back on the device and come back
as yuv420p.
"""

from __future__ import annotations

import dataclasses
import time
from fractions import Fraction
from typing import Any

import numpy as np
import torch
from torch import nn

from ..devices import keep_freed_memory
from ..frames import Frame
from ..ops.color import to_tensor, to_uint8
from ..ops.transfer_fit import check_strength
from ..ops.yuv import is_yuv, rgb_to_yuv420p, yuv420p_to_rgb
from .controls import ControlQueue
from .core import Core, Wrapper
from .slots import Slot, no_host_sync
from .stages import Prepared, Stages
from .transfer import GuidedTransfer
from .tuning import PRECISION_DTYPES as PRECISIONS  # noqa: F401 - the names callers used
from .tuning import EngineOptions, autocast_for

_LAUNCH = object()  # marks an infer() from the engine's own launch: controls and shape already handled


def _with_images(frames: list[Frame], images: np.ndarray) -> list[Frame]:
    """New frames carrying ``images[i]`` and the timestamps/metadata of ``frames[i]``."""
    return [dataclasses.replace(f, image=images[i]) for i, f in enumerate(frames)]


class Engine:
    """Runs a dehazing model on batches of frames of one stream (see the module docstring).

    ``model``: ``(B, 3, H, W)`` float in [0, 1] → same shape, float in [0, 1] (a
    :class:`~streamdehaze.nets.dehazer.Dehazer` or any such callable). ``precision``: fp32, or
    fp16/bf16 autocast. ``transfer``: working size, keyframes, scene cuts, fit (:class:`.transfer.GuidedTransfer`);
    ``options``: GPU tuning switches (:class:`.tuning.EngineOptions`, resolved for the device);
    ``temporal``: smoothing settings (:class:`~.temporal_engine.TemporalSettings`); ``coeff_hook``: a
    caller's per-frame coefficient hook (:mod:`.stages`); ``strength``: the amount of dehazing in
    [0, 1]; ``graph``: a stand-in for the CUDA graph wrapper of the core (tests).
    Use :meth:`submit` for each batch (returns the batches that finished, oldest first, possibly
    none yet on CUDA), :meth:`poll` when idle, and :meth:`drain` at the end. :attr:`busy_s` is the
    compute time (CUDA events on GPU, wall time on CPU).
    """

    def __init__(
        self,
        model: nn.Module | Any,
        device: torch.device | str | None = None,
        precision: str = "fp32",
        depth: int = 2,
        transfer: GuidedTransfer | None = None,
        options: EngineOptions | None = None,
        temporal: Any = None,
        coeff_hook: Any = None,
        strength: float = 1.0,
        graph: Wrapper | None = None,
    ) -> None:
        self.model = model.eval() if isinstance(model, nn.Module) else model
        self.device = torch.device(device) if device is not None else _model_device(model)
        self.precision = precision
        autocast_for(self.device, precision)  # validates the combination early
        self.cuda = self.device.type == "cuda"
        if self.device.type == "cpu":
            keep_freed_memory()  # the per-batch tensors are reused, not mapped afresh (devices.py)
        self.depth = max(2, depth)
        self.busy_s = 0.0
        self.frames = 0
        self.transfer = transfer if transfer is not None else GuidedTransfer()
        self.temporal = temporal if temporal is not None and temporal.on else None  # the settings (read only)
        self.options = (options or EngineOptions()).resolved(self.device)
        t = self.transfer
        self.core = Core(
            self.model, self.device, precision, self.options, t.fit, t.radius, t.eps, t.shared_gain, graph, t.guard
        )
        self.stages = Stages(self.core, t, self.temporal, coeff_hook, check_strength(strength))
        self._controls = ControlQueue()
        self._shape: tuple[int, ...] | None = None  # frame shape of the stream (a new one resets the state)
        self._ready: Prepared | object | None = None  # for infer() inside _forward: phase 1's result, or _LAUNCH
        self.sync_check = False  # CUDA: raise on any host synchronisation inside the compute section
        # one more slot where a batch waits between its phases (held), so `depth` stay launched
        self._slots: list[Slot | None] = [None] * (self.depth + int(self.stages.host_decisions))
        self._order: list[int] = []  # slot indices in flight, oldest first
        self._next = 0
        self._held: int | None = None
        if self.cuda:
            with torch.cuda.device(self.device):
                self._upload, self._compute, self._download = (torch.cuda.Stream(self.device) for _ in range(3))
                # the model's weights were written on the default stream: order the compute stream after it
                self._compute.wait_stream(torch.cuda.current_stream(self.device))

    # ------------------------------------------------------------------ controls and state

    def control(self, name: str, value: Any) -> None:
        """Queue a control (``dehaze``, ``temporal``, ``strength``; :mod:`.controls`) from any thread."""
        self._controls.put(name, value)

    @property
    def dehaze(self) -> bool:
        return self.stages.dehaze

    @property
    def temporal_on(self) -> bool:
        return self.stages.temporal

    @property
    def strength(self) -> float:
        return self.stages.strength

    @property
    def last_coefficients(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(a, b)`` ``(B, 3, h, w)`` applied to the last batch on the coefficient path (before the strength)."""
        return self.stages.last_coefficients

    def keyframe_stats(self) -> dict[str, int]:
        """``frames`` and ``keyframes`` on the coefficient path, ``scene_cuts`` (a host sync on GPU)."""
        return self.stages.stats()

    def reset(self) -> None:
        """Start a new stream (e.g. the next file through the same engine): forget every frame seen."""
        if self._order:
            raise RuntimeError("the engine still holds batches: drain() before reset()")
        self.stages.reset()
        self._shape = None

    def _between_batches(self, frame_shape: tuple[int, ...]) -> None:
        """Apply queued controls; a new frame size starts over (the old state does not fit it)."""
        changes = self._controls.take()
        if changes and self._held is not None:
            self._finish(self._held)  # the held batch keeps the settings it was prepared with
        self.stages.apply(changes)
        if self._shape is not None and tuple(frame_shape) != self._shape:
            if self._held is not None:
                self._finish(self._held)
            self.stages.reset()
        self._shape = tuple(frame_shape)

    # ------------------------------------------------------------------ tensors

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
            if yuv:
                y = self._infer(yuv420p_to_rgb(x_uint8, matrix, full_range), None)
            else:  # the float frames are made only if the batch needs them (the CPU's path does not)
                y = self._infer(None, x_uint8)
            if y.dtype == torch.uint8:  # the CPU's apply went straight to 8-bit frames (or nothing to do)
                return y
            # back with the same matrix and range: the sink tags the output as the source was tagged
            return rgb_to_yuv420p(y, matrix, full_range) if yuv else to_uint8(y)

    def _rgb(self, x_uint8: torch.Tensor, meta: dict) -> torch.Tensor:
        """Phase 1's view of a batch: the same conversion as :meth:`_forward`'s (keep the two in step)."""
        if is_yuv(meta):
            return yuv420p_to_rgb(x_uint8, meta.get("yuv_matrix", "bt601"), meta.get("yuv_range") == "pc")
        return to_tensor(x_uint8)

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` float in [0, 1] on the device → dehazed, same shape; frames in stream order.

        Called directly (benchmarks, tests) it runs every step at once (controls applied first);
        ``dehaze`` off returns ``x``.
        """
        return self._infer(x, None)

    def _infer(self, x: torch.Tensor | None, images: torch.Tensor | None) -> torch.Tensor:
        """:meth:`infer`; with the batch's uint8 ``images`` ``(B, H, W, 3)`` also given, the result may come
        back as uint8 frames of that layout instead (:meth:`Stages.finish_uint8`). ``x`` None: made from
        ``images`` when needed (the CPU's uint8 path takes the working-size frames straight from them)."""
        with torch.inference_mode():
            p, self._ready = self._ready, None
            if p is None:
                self._between_batches((3, *images.shape[1:3]) if x is None else tuple(x.shape[1:]))
                if not self.stages.dehaze:
                    return images if x is None else x
            if not isinstance(p, Prepared):
                if x is None and not self.stages.takes_uint8(images):
                    x = to_tensor(images)
                p = self.stages.prepare(x, images)
                self.stages.decide(p)
            if images is not None and (y := self.stages.finish_uint8(images, p)) is not None:
                return y
            return self.stages.finish(to_tensor(images) if x is None else x, p)

    # ------------------------------------------------------------------ batches of frames

    def submit(self, frames: list[Frame]) -> list[list[Frame]]:
        """Start one batch (all frames of one size); returns finished batches, oldest first."""
        if not frames:
            return []
        if not self.cuda:
            self._between_batches(frames[0].image.shape)
            return [self._run_cpu(frames)]
        done = []
        with torch.cuda.device(self.device):  # the calling thread's current device may be another
            self._between_batches(frames[0].image.shape)
            slot = self._slots[self._next]
            if slot is not None and slot.frames is not None:
                done.append(self._collect())  # the ring is full: the oldest batch sits in this slot
            self._launch(self._next, frames)
        self._next = (self._next + 1) % len(self._slots)
        return done

    def poll(self) -> list[list[Frame]]:
        """Batches that have finished on the device, without waiting (always empty on CPU)."""
        if self._held is not None and self._slots[self._held].prepared.ready():
            with torch.cuda.device(self.device):
                self._finish(self._held)  # its host step would not wait: take it now, latency stays low
        done = []
        while self._order and self._slots[self._order[0]].launched and self._slots[self._order[0]].downloaded.query():
            done.append(self._collect())
        return done

    def drain(self) -> list[list[Frame]]:
        """Wait for every batch in flight; returns them oldest first."""
        done = []
        while self._order:
            with torch.cuda.device(self.device):
                done.append(self._collect())
        return done

    def process(self, images: np.ndarray) -> np.ndarray:
        """Synchronous helper: ``(B, H, W, 3)`` uint8 → ``(B, H, W, 3)`` uint8 dehazed."""
        frames = [Frame(img, i, Fraction(1, 1), i) for i, img in enumerate(images)]
        out = self.submit(frames) + self.drain()
        return np.stack([f.image for batch in out for f in batch])

    def _run_cpu(self, frames: list[Frame]) -> list[Frame]:
        t0 = time.perf_counter()
        images = np.stack([f.image for f in frames])
        if self.stages.dehaze:
            self._ready = _LAUNCH
            images = self._forward(torch.from_numpy(images).to(self.device), frames[0].meta).cpu().numpy()
        self.busy_s += time.perf_counter() - t0
        self.frames += len(frames)
        return _with_images(frames, images)

    def _launch(self, index: int, frames: list[Frame]) -> None:
        """Upload a batch into slot ``index`` and launch its device work (phase 1 only, when the host decides)."""
        n, shape = len(frames), frames[0].image.shape
        slot = self._slots[index]
        if slot is None or not slot.fits(n, shape):
            slot = self._slots[index] = Slot(max(n, slot.shape[0] if slot else 0), shape, self.device)
        host = slot.host_in.numpy()
        for i, f in enumerate(frames):  # straight into pinned memory, no intermediate stack
            host[i] = f.image
        with torch.cuda.stream(self._upload):
            slot.dev_in[:n].copy_(slot.host_in[:n], non_blocking=True)
            slot.uploaded.record(self._upload)
        self._compute.wait_event(slot.uploaded)
        slot.frames, slot.launched, slot.prepared = frames, False, None
        slot.split = self.stages.dehaze and self.stages.host_decisions
        if slot.split:
            with torch.cuda.stream(self._compute), no_host_sync(self.sync_check), torch.inference_mode():
                slot.started.record(self._compute)
                slot.prepared = self.stages.prepare(self._rgb(slot.dev_in[:n], frames[0].meta))
                slot.prepared_at.record(self._compute)
        if self._held is not None:
            self._finish(self._held)  # the batch before this one: the host decides it now
        self._order.append(index)
        if slot.split:
            self._held = index
        else:
            self._finish(index)

    def _finish(self, index: int) -> None:
        """The host step (if any) and the rest of the device work of slot ``index``, then its download."""
        slot = self._slots[index]
        n, meta = len(slot.frames), slot.frames[0].meta
        if self._held == index:
            self._held = None
            with torch.cuda.stream(self._compute):  # its uploads (indices, flows) go on the compute stream
                self.stages.decide(slot.prepared)  # waits for this batch's small copies only
        with torch.cuda.stream(self._compute), no_host_sync(self.sync_check):
            (slot.finishing if slot.split else slot.started).record(self._compute)
            if slot.prepared is None and not self.stages.dehaze:
                slot.dev_out[:n].copy_(slot.dev_in[:n])  # dehazing switched off: the frames as they came
            else:
                self._ready = slot.prepared or _LAUNCH  # _LAUNCH: infer prepares it (no host step to wait for)
                slot.dev_out[:n].copy_(self._forward(slot.dev_in[:n], meta))
            slot.computed.record(self._compute)
        self._download.wait_event(slot.computed)
        with torch.cuda.stream(self._download):
            slot.host_out[:n].copy_(slot.dev_out[:n], non_blocking=True)
            slot.downloaded.record(self._download)
        slot.launched, slot.prepared = True, None

    def _collect(self) -> list[Frame]:
        """Wait for the oldest batch in flight and return its frames (copied out of pinned memory)."""
        index = self._order[0]
        if self._held == index:
            self._finish(index)
        self._order.pop(0)
        slot = self._slots[index]
        slot.downloaded.synchronize()
        frames, slot.frames = slot.frames, None
        out = slot.host_out[: len(frames)].numpy().copy()  # the slot's buffer is reused by the next batch
        self.busy_s += slot.busy_s()
        self.frames += len(frames)
        return _with_images(frames, out)


def _model_device(model: Any) -> torch.device:
    dev = getattr(model, "device", None)
    if isinstance(dev, torch.device):
        return dev
    if isinstance(model, nn.Module):
        for t in list(model.parameters()) + list(model.buffers()):
            return t.device
    return torch.device("cpu")
