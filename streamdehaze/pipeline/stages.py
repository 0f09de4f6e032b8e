"""The engine's stateful stages: everything after the stateless core that remembers earlier frames.

For one batch of frames ``x`` ``(B, 3, H, W)`` float in [0, 1], in stream order, in three steps
(:class:`Stages`; :mod:`.engine` runs them, on CUDA with the host step of batch k taken while the
device already prepares batch k + 1):

1. :meth:`Stages.prepare` (device): the working-size frames ``low``, the **state pass**
   (:mod:`.frame_state`: each frame's signature and scene-cut flag, computed once for every
   consumer; with ``--temporal motion`` each frame's motion at the working size, :mod:`.temporal_motion`,
   on the device), and non-blocking copies of what the host must see (the flags, the flow's gray frames).
2. :meth:`Stages.decide` (host, outside the compute section): the keyframe plan
   (:mod:`.keyframes`), the optical flow (:class:`~.temporal_flow.FlowEstimator`), their uploads.
3. :meth:`Stages.finish` (device), in this order::

       keyframes ──core──► (a, b)  [DCP: core.airlight ─► airlight smoothing ─► core.coefficients_with]
       ─► keyframe reuse (bank) ─► coefficient smoothing (motion / ema) or a caller's hook, reset at cuts
       ─► strength ─► apply: upsample (a, b), a · x + b  (CPU: into uint8 frames, :meth:`Stages.finish_uint8`)
       (full resolution, K = 1: core.plain [or its DCP split] instead of the transfer)
       ─► pixel filters: flow / pixel / the full-resolution residual ema ─► strength (x + S (y − x))

The stateless calls (``core.*``) may replay CUDA graphs or compiled code; nothing here runs inside
them. Controls (dehaze, temporal, strength) change only between batches (:meth:`Stages.apply`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..ops.cpu_kernels import apply_affine_uint8, blend_uint8, shrink_uint8, use_cpu_kernels
from ..ops.guided import apply_affine
from ..ops.transfer_fit import blend, downscale, downscale_uint8, strengthen
from .core import Core
from .frame_state import FrameState, StatePass
from .host import Download, upload
from .keyframes import CoefficientBank, KeyframeScheduler, Plan, bank_indices, device_index, keyframe_indices
from .temporal import CoefficientSmoother, TemporalConfig, fit_shape
from .temporal_dcp import AirlightSmoother
from .temporal_filter import TemporalFilter
from .temporal_flow import FlowSmoother, flow_gray, gray_uint8
from .temporal_motion import Motion, MotionEstimator
from .transfer import GuidedTransfer

Tensor = torch.Tensor


@dataclass
class Prepared:
    """One batch between the steps: what the device prepared, then what the host decided."""

    n: int
    coefficients: bool  # the batch takes the transfer's coefficient path
    low: Tensor | None  # (B, 3, h, w) float32 at the working size (coefficient path)
    state: FrameState | None
    cuts: Download | None  # the scene-cut flags, for the host
    grays: Download | None  # (B, h, w) uint8 gray frames for the optical flow, for the host
    plan: Plan | None = None
    keys: Tensor | None = None  # device index of the keyframes (None: every frame, or none)
    nkeys: int = 0
    index: Tensor | None = None  # device index into the coefficient bank, per frame
    resets: np.ndarray | None = None  # host copy of the flags, for a caller's hook
    flows: list[Tensor | None] = field(default_factory=list)
    motion: Motion | None = None  # the working-size motion, for motion-compensated smoothing
    small: Tensor | None = None  # (B, 3, h, w) the uint8 frames shrunk to the flow's size (flow's uint8 step)

    def ready(self) -> bool:
        """Whether the host step would run without waiting (the small copies have landed)."""
        return all(d is None or d.ready() for d in (self.cuts, self.grays))


def _hook_parts(hook: Any) -> tuple[Callable | None, Callable | None]:
    """``(step, reset)`` of a caller's coefficient hook: a callable or an object with ``step`` (and ``reset``)."""
    if hook is None:
        return None, None
    step = hook.step if hasattr(hook, "step") else hook
    reset = getattr(hook, "reset", None) or getattr(getattr(hook, "__self__", None), "reset", None)
    return step, reset if callable(reset) else None


class Stages:
    """One stream's stateful stages behind ``core`` (see the module docstring).

    ``temporal``: a :class:`~.temporal_engine.TemporalSettings` (None or off: no smoothing);
    ``coeff_hook``: a caller's ``hook(low_in, a, b) -> (a, b)`` per frame (or an object with
    ``step``/``reset``), instead of the smoothing; ``strength``: see :mod:`.controls`.
    """

    def __init__(
        self, core: Core, transfer: GuidedTransfer, temporal: Any = None, coeff_hook: Any = None, strength: float = 1.0
    ) -> None:
        self.core, self.transfer = core, transfer
        self.settings = temporal if temporal is not None and temporal.on else None
        mode = self.settings.mode if self.settings is not None else "off"
        config = self.settings.config() if self.settings is not None else TemporalConfig()
        self.hook_step, self.hook_reset = _hook_parts(coeff_hook)
        self.smoother = CoefficientSmoother(config) if mode in ("motion", "ema", "flow") and transfer.active else None
        # flow smooths the map along the motion too: with ema's map in place, its output filter trailed up to
        # 2.0 dB on a pan, 1.3 with this one, at the same flicker (docs/performance.md, "Temporal smoothing")
        self.motion = MotionEstimator() if mode in ("motion", "flow") and self.smoother is not None else None
        if self.settings is None:
            self.post: TemporalFilter | FlowSmoother | None = None
        elif self.smoother is not None:
            self.post = FlowSmoother(config) if mode == "flow" else None
        else:
            self.post = TemporalFilter(config)
        strength_a = self.settings.airlight if self.settings is not None and mode in ("motion", "ema", "flow") else 0.0
        self.airlight = AirlightSmoother(strength_a) if strength_a > 0 and core.has_airlight else None
        self.flow = self.post if isinstance(self.post, FlowSmoother) else getattr(self.post, "flow", None)
        self.state_pass = StatePass(transfer.scene_cut)
        self.scheduler = KeyframeScheduler(transfer.keyframe_interval)
        self.bank = CoefficientBank()
        self.uses_state = transfer.keyframe_interval > 1 or coeff_hook is not None or self.settings is not None
        # decisions the host takes from the device's results: keyframe plan, a hook's resets, the flow
        self.host_decisions = transfer.keyframe_interval > 1 or self.hook_reset is not None or self.flow is not None
        self.dehaze, self.temporal, self.strength = True, self.settings is not None, strength
        self.last_coefficients: tuple[Tensor, Tensor] | None = None  # (a, b) applied to the last batch

    # ---------------------------------------------------------------- state and controls

    def reset(self) -> None:
        """A new stream follows: forget every frame seen."""
        self.state_pass.reset()
        self.scheduler.reset()
        self.bank.reset()
        self._reset_temporal()
        self.last_coefficients = None

    def _reset_temporal(self) -> None:
        for stage in (self.smoother, self.motion, self.post, self.airlight):
            if stage is not None:
                stage.reset()

    def apply(self, changes: dict[str, Any]) -> None:
        """Controls taken from the queue (:mod:`.controls`), between two batches."""
        if "strength" in changes:
            self.strength = float(changes["strength"])
        if "temporal" in changes:
            on = bool(changes["temporal"]) and self.settings is not None
            if on and not self.temporal:
                self._reset_temporal()  # stale state from before the pause must not be blended in
            self.temporal = on
        if "dehaze" in changes:
            if changes["dehaze"] and not self.dehaze:
                self.reset()  # the frames passed through meanwhile were not seen
            self.dehaze = bool(changes["dehaze"])

    def stats(self) -> dict[str, int]:
        """Frames on the coefficient path, keyframes among them, scene cuts (reads a device counter)."""
        return {
            "frames": self.scheduler.frames,
            "keyframes": self.scheduler.keyframes,
            "scene_cuts": self.state_pass.cuts,
        }

    # ---------------------------------------------------------------- 1. device: prepare

    def _coefficient_path(self, height: int, width: int) -> bool:
        full = self.transfer.size_for(height, width) == (height, width)
        return (
            not full or self.transfer.keyframe_interval > 1 or self.hook_step is not None or self.smoother is not None
        )

    def takes_uint8(self, images: Tensor) -> bool:
        """Whether a batch of uint8 ``images`` ``(B, H, W, 3)`` goes from them to uint8 frames without the
        full-size float frames: on the CPU, on the coefficient path, when no pixel filter follows but
        ``flow``'s (its uint8 step, :meth:`~.temporal_flow.FlowSmoother.step_uint8`; then the strength's blend)."""
        return (
            use_cpu_kernels(images)
            and images.dtype == torch.uint8
            and images.ndim == 4
            and self._coefficient_path(*images.shape[1:3])
            and self._uint8_post()
        )

    def _uint8_post(self) -> bool:
        """Whether the pixel filter that follows, if any, has a uint8 step (``flow``'s; the strength's blend
        after it has one too)."""
        post = self.post if self.temporal else None
        return post is None or isinstance(post, FlowSmoother)

    def prepare(self, x: Tensor | None, images: Tensor | None = None) -> Prepared:
        """``x`` ``(B, 3, H, W)`` float in [0, 1] → the batch's working-size frames, state and host copies.

        ``x`` None: the batch's uint8 ``images`` ``(B, H, W, 3)`` instead, where :meth:`takes_uint8`
        (the working-size frames are shrunk from them directly: 0.7 ms per 720p frame on the CPU against
        9.3 for the float frames' conversion and shrink; they differ by rounding, under one level in 255).
        """
        n, height, width = images.shape[:3] if x is None else (x.shape[0], *x.shape[-2:])
        coefficients = True if x is None else self._coefficient_path(height, width)
        with torch.autocast((images if x is None else x).device.type, enabled=False):
            size = self.transfer.size_for(height, width)
            if x is None:
                low = downscale_uint8(images, size)
            else:
                low = downscale(x, size) if coefficients else None
            state = self.state_pass(low if low is not None else x) if self.uses_state else None
            wants_cuts = self.transfer.keyframe_interval > 1 or self.hook_reset is not None
            cuts = Download(state.cut) if state is not None and wants_cuts else None
            grays = small = None
            if self.flow is not None and self.temporal:
                flow_size = self.flow.config.flow_size
                if x is not None:
                    grays = Download(flow_gray(x, flow_size))
                else:  # the uint8 path: the shrunk frames serve the flow and the filter's weights
                    small = shrink_uint8(images, fit_shape(height, width, flow_size))
                    grays = Download(gray_uint8(small))
            motion = self.motion(low) if self.motion is not None and self.temporal and coefficients else None
        return Prepared(n, coefficients, low, state, cuts, grays, motion=motion, small=small)

    # ---------------------------------------------------------------- 2. host: decide

    def decide(self, p: Prepared) -> None:
        """The host's part (waits for the batch's small copies; never runs in the compute section)."""
        device = self.core.device
        if p.coefficients:
            k = self.transfer.keyframe_interval
            p.plan = self.scheduler.plan(p.cuts.result()) if k > 1 else self.scheduler.every_frame(p.n)
            keys = keyframe_indices(p.plan)
            p.nkeys = len(keys)
            p.keys = device_index(keys, device) if 0 < len(keys) < p.n else None
            p.index = device_index(bank_indices(p.plan, self.bank.carried), device)
        if self.hook_reset is not None and p.cuts is not None:
            p.resets = p.cuts.result()
        if p.grays is not None and self.temporal:
            flows = self.flow.estimator.flows(p.grays.result())
            have = [f for f in flows if f is not None]
            stacked = upload(np.stack(have), device).permute(0, 3, 1, 2) if have else None
            j = iter(range(len(have)))
            p.flows = [None if f is None else stacked[next(j)][None] for f in flows]

    # ---------------------------------------------------------------- 3. device: finish

    def finish(self, x: Tensor, p: Prepared) -> Tensor:
        """The dehazed batch ``(B, 3, H, W)`` in [0, 1] (float32 on the coefficient path, else the network's dtype)."""
        post = self.post if self.temporal else None
        with torch.autocast(x.device.type, enabled=False):
            y = self._transfer(x, p, post is None) if p.coefficients else self._plain(x, p)
            if post is not None:
                cut = p.state.cut
                flows = p.flows or [None] * p.n
                y = torch.cat([post.step(x[i : i + 1], y[i : i + 1], cut[i], flows[i]) for i in range(p.n)]).to(y.dtype)
            if post is not None or not p.coefficients:
                y = blend(x, y, self.strength)
        return y

    def finish_uint8(self, images: Tensor, p: Prepared) -> Tensor | None:
        """:meth:`finish` straight into uint8 ``(B, H, W, 3)`` from the decoded ``images`` on the CPU,
        where the batch ends with the transfer's apply (:mod:`~streamdehaze.ops.cpu_kernels`); None elsewhere."""
        if not use_cpu_kernels(images) or not p.coefficients or not self._uint8_post():
            return None
        post = self.post if self.temporal else None
        with torch.autocast("cpu", enabled=False):
            # as finish(): with a filter after it, the map runs at full strength and the strength blends after
            y = apply_affine_uint8(*self._coefficients(p, apply_strength=post is None), images)
            if post is None:
                return y
            flows = p.flows or [None] * p.n
            small = [None] * p.n if p.small is None else [p.small[i : i + 1] for i in range(p.n)]
            step = post.step_uint8
            y = torch.stack([step(images[i], y[i], p.state.cut[i], flows[i], small[i]) for i in range(p.n)])
            return blend_uint8(images, y, self.strength)

    def _airlight_on(self) -> bool:
        return self.airlight is not None and self.temporal

    def _plain(self, x: Tensor, p: Prepared) -> Tensor:
        if self._airlight_on():
            return self.core.plain_with(x, self.airlight.smooth(self.core.airlight(x), p.state.cut))
        return self.core.plain(x)

    def _transfer(self, x: Tensor, p: Prepared, apply_strength: bool) -> Tensor:
        return apply_affine(*self._coefficients(p, apply_strength), x.float())

    def _coefficients(self, p: Prepared, apply_strength: bool) -> tuple[Tensor, Tensor]:
        """Each frame's ``(a, b)`` at the working size: keyframes, reuse, smoothing (and the strength)."""
        a_k = b_k = None
        if p.nkeys:
            low_k = p.low if p.keys is None else p.low[p.keys]  # (indexing keeps channels-last, as the fit saw it)
            if self._airlight_on():
                cut_k = p.state.cut if p.keys is None else p.state.cut[p.keys]
                a_k, b_k = self.core.coefficients_with(low_k, self.airlight.smooth(self.core.airlight(low_k), cut_k))
            else:
                a_k, b_k = self.core.coefficients(low_k)
        a, b = self.bank.per_frame(a_k, b_k, p.index)
        a, b = self._smooth(p, a, b)
        self.last_coefficients = (a, b)
        return strengthen(a, b, self.strength) if apply_strength else (a, b)

    def _smooth(self, p: Prepared, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        """Per frame in order: a caller's hook (reset at cuts), or the coefficient EMA when smoothing is on."""
        smoother = self.smoother if self.temporal else None
        if self.hook_step is None and smoother is None:
            return a, b
        out_a, out_b = [], []
        for i in range(p.n):
            low_i, a_i, b_i = p.low[i : i + 1], a[i : i + 1], b[i : i + 1]
            if smoother is not None:
                motion = p.motion.at(i) if p.motion else None
                a_i, b_i = smoother.step(low_i, a_i, b_i, p.state.cut[i], motion, keyframe=p.plan[i] is not None)
            else:
                if p.resets is not None and p.resets[i]:
                    self.hook_reset()
                a_i, b_i = self.hook_step(low_i, a_i, b_i)
            out_a.append(a_i)
            out_b.append(b_i)
        return torch.cat(out_a), torch.cat(out_b)
