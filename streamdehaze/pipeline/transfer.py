"""Guided transfer, its fit and keyframe reuse: the engine's coefficient path (the working size: .work_size).

Dehazing is a per-pixel affine map of the input whose coefficients vary smoothly in space and time
(DESIGN.md), so the network need not see every pixel of every frame. For a batch of full-resolution
frames ``x`` ``(B, 3, H, W)`` float in [0, 1], in stream order, :meth:`GuidedTransfer.process` does::

    x ──downscale──► low (B, 3, h, w) ──signature──► keyframe plan (interval K, scene cuts)
    low[keyframes] ──model──► y_low ──fit_affine(low, y_low)──► (a, b) per keyframe
    (a, b) per frame: its own keyframe's, or the last keyframe's reused (also across batches)
    ──► coeff_hook(low_i, a_i, b_i) → (a_i, b_i)            ◄── the temporal smoother plugs in here
    ──► apply_affine(a, b, x): bilinear upsampling of a, b, then a · x + b at full resolution

**The coefficient hook.** ``coeff_hook`` is a callable ``hook(low_in, a, b) -> (a, b)`` or an
object with such a ``step`` method; it runs between "fit (a, b)" and "apply (a, b)", once per
frame, in stream order, on the device, with ``low_in`` ``(1, 3, h, w)`` float32 (the downscaled
input of that frame) and ``a``, ``b`` ``(1, 3, h, w)`` float32 (the coefficients about to be
applied: the frame's keyframe's, already reused for non-keyframes). It returns the coefficients to
apply (same shapes). If it has a ``reset()`` method, that is called before the first frame of each
new scene (a detected scene cut, a frame-size change, or :meth:`GuidedTransfer.reset`). With a hook
the coefficient path runs even at full resolution and keyframe interval 1.

Without a hook, at full resolution with interval 1, :attr:`GuidedTransfer.active` is False and the
engine calls the model directly (no fit, bit-identical to the plain model).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..ops.guided import apply_affine
from ..ops.signature import signature
from ..ops.transfer_fit import (  # noqa: F401 - re-exported: the transfer's presets live with the fit
    DEFAULT_TRANSFER_FIT,
    TRANSFER_FITS,
    TransferFit,
    check_transfer_fit,
    default_radius,
    fit_coefficients,
)
from ..work_size import FULL, WorkSize, parse_work_size

Tensor = torch.Tensor
CoeffHook = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]


@dataclass
class KeyframeScheduler:
    """Decides, frame by frame in stream order, which frames run the network.

    A frame is a keyframe when no keyframe was seen yet, when ``interval`` frames have passed since
    the last one, or when its signature differs from the last keyframe's by more than
    ``scene_cut`` (mean absolute difference of the thumbnails, in [0, 1] units).
    """

    interval: int = 1
    scene_cut: float = 0.12
    keyframes: int = 0
    scene_cuts: int = 0
    frames: int = 0
    _since: int = field(default=0, repr=False)
    _last: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.interval < 1:
            raise InputError(f"--keyframe-interval {self.interval}: expected a whole number >= 1")
        if self.scene_cut <= 0:
            raise InputError(f"--scene-cut {self.scene_cut}: expected a threshold > 0 (e.g. 0.12)")

    def reset(self) -> None:
        self._since, self._last = 0, None

    def plan(self, signatures: np.ndarray) -> list[str | None]:
        """For each row of ``signatures`` ``(B, D)``: ``"first"``, ``"interval"``, ``"cut"`` or None (reuse)."""
        out: list[str | None] = []
        for sig in signatures:
            reason = None
            if self._last is None:
                reason = "first"
            elif float(np.abs(sig - self._last).mean()) > self.scene_cut:
                reason = "cut"
            elif self._since >= self.interval:
                reason = "interval"
            if reason is not None:
                self._last, self._since = sig, 0
                self.keyframes += 1
                self.scene_cuts += reason == "cut"
            self._since += 1
            self.frames += 1
            out.append(reason)
        return out


class GuidedTransfer:
    """The coefficient path (see the module docstring). Stateful: feed batches in stream order.

    Args:
        work_size: where the network runs (:class:`WorkSize`; :func:`parse_work_size` for text).
        keyframe_interval: run the network every K frames and reuse its coefficients between.
        scene_cut: threshold of :class:`KeyframeScheduler` (only matters for K > 1).
        radius: box radius of the affine fit at the working size; None = :func:`default_radius` of ``fit``.
        eps: regularisation of the fit (larger = smoother ``a`` in flat regions).
        coeff_hook: the temporal smoother's plug, see the module docstring.
        shared_gain: one gain ``a`` for the three channels (offsets per channel), the form the
            scattering model gives dehazing; None = ``fit``'s. Alone, with the shipped AECR-Net, it
            added 0.08/0.12 dB on the SOTS dev splits, and more flicker under ``--temporal ema``.
        fit: a :data:`TRANSFER_FITS` name, the preset for ``radius`` and ``shared_gain``.
    """

    def __init__(
        self,
        work_size: WorkSize = FULL,
        keyframe_interval: int = 1,
        scene_cut: float = 0.12,
        radius: int | None = None,
        eps: float = 1e-4,
        coeff_hook: CoeffHook | object | None = None,
        shared_gain: bool | None = None,
        fit: str = DEFAULT_TRANSFER_FIT,
    ) -> None:
        self.work_size = parse_work_size(work_size)
        self.scheduler = KeyframeScheduler(keyframe_interval, scene_cut)
        self.fit = check_transfer_fit(fit)
        self.radius = radius
        self.eps = eps
        self.shared_gain = TRANSFER_FITS[fit].shared_gain if shared_gain is None else shared_gain
        self.coeff_hook = coeff_hook
        self.last_coefficients: tuple[Tensor, Tensor] | None = None  # (a, b) applied to the last batch
        self._a: Tensor | None = None  # the last keyframe's coefficients (1, 3, h, w)
        self._b: Tensor | None = None
        self._shape: tuple[int, ...] | None = None

    @property
    def keyframe_interval(self) -> int:
        return self.scheduler.interval

    @property
    def active(self) -> bool:
        """False when the plain model call gives the same result (full size, K = 1, no hook)."""
        return not self.work_size.is_full or self.keyframe_interval > 1 or self.coeff_hook is not None

    def reset(self) -> None:
        """Forget the last keyframe: the next frame runs the network (e.g. after a seek)."""
        self.scheduler.reset()
        self._a = self._b = self._shape = None

    def describe(self, height: int | None = None, width: int | None = None) -> str:
        text = f"working size {self.work_size.describe(height, width)}"
        if self.fit != DEFAULT_TRANSFER_FIT and not self.work_size.is_full:
            text += f", {self.fit} transfer fit"
        if self.keyframe_interval > 1:
            text += f", keyframe every {self.keyframe_interval} frames (scene cut > {self.scheduler.scene_cut:g})"
        return text

    def stats(self) -> dict[str, int]:
        s = self.scheduler
        return {"frames": s.frames, "keyframes": s.keyframes, "scene_cuts": s.scene_cuts}

    def downscale(self, x: Tensor) -> Tensor:
        """``(B, 3, H, W)`` → ``(B, 3, h, w)`` at the working size (antialiased bilinear), float32."""
        h, w = self.work_size.size_for(*x.shape[-2:])
        x = x.float()
        if (h, w) == tuple(x.shape[-2:]):
            return x
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)

    def process(self, run_model: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        """``x`` ``(B, 3, H, W)`` float in [0, 1], frames in stream order → dehazed, same shape, float32.

        ``run_model``: ``(k, 3, h, w)`` float → ``(k, 3, h, w)`` float in [0, 1] (the network, with
        whatever precision/autocast the engine uses); it is called once per batch on the keyframes.
        """
        full = self.work_size.size_for(*x.shape[-2:]) == tuple(x.shape[-2:])
        if full and self.keyframe_interval == 1 and self.coeff_hook is None:
            return run_model(x)  # nothing to transfer or reuse: the plain network
        with torch.autocast(x.device.type, enabled=False):
            low = self.downscale(x)
            if self._shape != tuple(low.shape[1:]):
                self.reset()
                self._shape = tuple(low.shape[1:])
            plan = self.scheduler.plan(signature(low).cpu().numpy())
            a, b = self._coefficients(run_model, low, plan)
            a, b = self._hook(low, a, b, plan)
            self.last_coefficients = (a, b)
            return apply_affine(a, b, x.float())

    def _coefficients(self, run_model, low: Tensor, plan: list[str | None]) -> tuple[Tensor, Tensor]:
        """Per-frame ``(a, b)`` ``(B, 3, h, w)``: fit on the keyframes, the last keyframe's elsewhere."""
        keys = [i for i, reason in enumerate(plan) if reason is not None]
        bank_a = [] if self._a is None else [self._a]
        bank_b = [] if self._b is None else [self._b]
        carried = len(bank_a)  # 1 when a keyframe from an earlier batch is still in use
        if keys:
            low_k = low[keys] if len(keys) < len(plan) else low
            y = run_model(low_k).float()
            a_k, b_k = self._fit(low_k, y)
            bank_a.append(a_k)
            bank_b.append(b_k)
            self._a, self._b = a_k[-1:], b_k[-1:]
        if len(keys) == len(plan):
            return bank_a[-1], bank_b[-1]
        # bank: [the carried-over keyframe (if any), this batch's keyframes in order]; frames before
        # this batch's first keyframe use the carried one (row 0), the others their latest keyframe
        index, seen = [], 0
        for reason in plan:
            seen += reason is not None
            index.append(carried + seen - 1 if seen else 0)
        idx = torch.tensor(index, device=low.device)
        return torch.cat(bank_a).index_select(0, idx), torch.cat(bank_b).index_select(0, idx)

    def _fit(self, low: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        radius = self.radius if self.radius is not None else default_radius(*low.shape[-2:], self.fit)
        return fit_coefficients(low, y, radius, self.eps, self.shared_gain)

    def _hook(self, low: Tensor, a: Tensor, b: Tensor, plan: list[str | None]) -> tuple[Tensor, Tensor]:
        hook = self.coeff_hook
        if hook is None:
            return a, b
        step = hook.step if hasattr(hook, "step") else hook
        reset = getattr(hook, "reset", None) or getattr(getattr(hook, "__self__", None), "reset", None)
        out_a, out_b = [], []
        for i, reason in enumerate(plan):
            if reason in ("first", "cut") and callable(reset):
                reset()
            ai, bi = step(low[i : i + 1], a[i : i + 1], b[i : i + 1])
            out_a.append(ai)
            out_b.append(bi)
        return torch.cat(out_a), torch.cat(out_b)
