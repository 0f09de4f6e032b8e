"""Temporal smoothing of a dehazed stream without ghosting, with scene-cut reset. Streaming: only past frames.

Dehazing is a local affine map of the input (DESIGN.md): ``out ≈ a · in + b`` per channel, with
``a, b`` smooth in space. A frame-by-frame dehazer flickers because its estimate of the haze (the
airlight, the transmission) jumps between frames, i.e. ``a, b`` jump. Smoothing ``a, b`` over time
and applying them to the CURRENT frame's pixels keeps every edge and moving object where it is
now; blending output pixels over time (``mode='pixel'``) drags moving objects into trails.

A stable dehazer still "flickers" by the measure of :mod:`streamdehaze.flicker`: it multiplies the
input's own frame-to-frame noise and compression changes by its contrast gain ``a ≈ 1/t``. No
map of the current pixels removes that; ``mode='flow'`` adds a motion-compensated recursive filter
(:mod:`.temporal_flow`) that averages the previous output, warped along the input's optical flow,
where the warped input agrees with the current one.

- :class:`CoefficientSmoother`: exponential moving average of ``(a, b)``. With a frame's motion
  (``--temporal motion``, the default; :mod:`.temporal_motion`) the past is warped along the
  optical flow of the working-size input and weighted by the trust in that flow; without it
  (``--temporal ema``) it stays in place and its weight shrinks where the input changed. It drops
  to 0 at a scene cut.
  ``step(low_in, a, b, cut)`` per frame, ``smooth(...)`` for a batch in order, ``reset()``. This is
  the interface for a pipeline that already has ``(a, b)`` (guided transfer from a working resolution).
- :class:`~.temporal_filter.TemporalFilter`: for full-resolution model outputs ``(x, y) -> y'`` in any mode.

The dark channel prior's airlight is smoothed by :mod:`.temporal_dcp`; :mod:`.stages` plugs all this
into the engine (``run``, ``preview``, ``bench``), where the scene-cut flag of every frame comes from
the engine's one state pass (:mod:`.frame_state`); the smoothers here take it as an argument.

The coefficient path is a few tensor ops on the input's device and never synchronises with the
host (a cut is a tensor flag); the flow path computes its flow with OpenCV on the CPU, outside the
engine's compute section. Frames must arrive in order; after an unrelated stream starts, call ``reset()``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..choices import DEFAULT_TEMPORAL_MODE as DEFAULT_MODE
from ..choices import TEMPORAL_MODES as MODES
from ..errors import InputError
from ..ops.flow import resize_planes
from ..ops.guided import box_filter, rgb_to_gray
from .frame_state import DEFAULT_SCENE_CUT


@dataclass
class TemporalConfig:
    """Settings of the temporal smoothing.

    ``mode``: off | motion (coefficients along the motion: the default) | ema (coefficients, per
    pixel) | flow (motion, or ema for full-resolution outputs, then the output along the flow) | pixel.
    ``strength``: weight of the past in the moving averages, in [0, 1) (0 = off; 0.8 averages about
    the last 5 frames). ``motion``: gray input change (0–1, box-averaged over ``motion_radius``) at
    which the coefficients' past weight is halved; ``None`` disables this per-pixel adaptation.
    ``cut_threshold``: the scene-cut threshold of a standalone :class:`~.temporal_filter.TemporalFilter`
    (:mod:`.frame_state`; in the engine, ``--scene-cut`` decides for every stage). ``fit_size``:
    short side of the low-resolution fit of ``(a, b)``;
    ``radius``/``eps``: its guided-filter window radius (low-resolution pixels) and regularisation.
    ``flow_size``: short side the optical flow is computed at; ``gate``: warped-input difference
    (0–1, times the model's contrast gain) at which the flow filter's past weight is halved;
    ``change``: for ``motion``, the least change of the working-size output (0–1, mean over the
    channels) that keeping the past would make at which the past's weight is halved (a larger change
    than that and than twice the network's own jitter there is real, and is followed).
    """

    mode: str = DEFAULT_MODE
    strength: float = 0.8
    motion: float | None = 0.015
    motion_radius: int = 2
    cut_threshold: float = DEFAULT_SCENE_CUT
    fit_size: int = 128
    radius: int = 4
    eps: float = 1e-3
    flow_size: int = 270
    gate: float = 0.015
    change: float = 0.015

    def check(self) -> TemporalConfig:
        if self.mode not in MODES:
            raise InputError(f"--temporal {self.mode!r}: expected one of {', '.join(MODES)}")
        if not 0.0 <= self.strength < 1.0:
            raise InputError(f"--temporal-strength {self.strength}: expected a number in [0, 1), e.g. 0.8")
        if self.motion is not None and self.motion <= 0:
            raise InputError(f"temporal motion scale {self.motion}: expected > 0 (or None to disable)")
        if min(self.cut_threshold, self.eps, self.gate, self.change) <= 0 or min(self.fit_size, self.flow_size) < 8:
            raise InputError(f"temporal settings out of range: {self}")
        if self.radius < 1 or self.motion_radius < 0:
            raise InputError(f"temporal radii out of range: {self}")
        return self


class CoefficientSmoother:
    """Streaming EMA of the affine coefficients ``(a, b)`` of ``out ≈ a · in + b``, motion-adaptive per pixel.

    For frame ``t``: ``a_t ← w · a_{t−1} + (1 − w) · a_t`` (same for ``b``), ``w = strength ·
    2^(−(d / motion)²)`` where ``d`` is the box-averaged absolute change of the gray low-resolution
    input since frame ``t − 1`` (``w = strength`` everywhere when ``motion`` is None), and ``w = 0`` at
    a scene cut (the ``cut`` flag the caller passes: the engine's state pass). The state is the last
    smoothed ``(a, b)`` and the last gray input.
    """

    def __init__(self, config: TemporalConfig | None = None) -> None:
        self.config = (config or TemporalConfig()).check()
        self.reset()

    def reset(self) -> None:
        """Forget the past (a new, unrelated stream follows)."""
        self._a = self._b = self._gray = None
        self._state: torch.Tensor | None = None  # the motion path's, see _step_along

    def weight(self, low_in: torch.Tensor, cut: torch.Tensor | None = None) -> torch.Tensor | None:
        """Per-pixel weight of the past ``(1, 1, h, w)`` float32 for frame ``low_in`` ``(1, 3, h, w)``; None: no past.

        ``cut``: the frame's scene-cut flag (0-d bool tensor; None: not a cut).
        """
        c = self.config
        gray = rgb_to_gray(low_in.float())
        prev, self._gray = self._gray, gray
        if prev is None or prev.shape != gray.shape or c.strength == 0:
            return None
        if c.motion is None:
            w = torch.full_like(gray, c.strength)
        else:
            w = c.strength * torch.exp2(-((box_filter((gray - prev).abs(), c.motion_radius) / c.motion) ** 2))
        return w if cut is None else torch.where(cut, torch.zeros_like(w), w)

    def step(
        self,
        low_in: torch.Tensor,
        a: torch.Tensor,
        b: torch.Tensor,
        cut: torch.Tensor | None = None,
        motion: tuple[torch.Tensor, torch.Tensor] | None = None,
        keyframe: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame: ``low_in`` ``(1, 3, h, w)`` in [0, 1], ``a, b`` ``(1, C, h', w')`` → smoothed ``(a, b)``.

        ``a, b`` may be at another resolution than ``low_in`` (the weight map is resized to them).
        ``motion``: the frame's ``(grid, trust)`` (:mod:`.temporal_motion`): the past is then the previous
        ``(a, b)`` warped along the motion, weighted by ``strength · trust``. At the motion's size, which
        may be smaller than the coefficients' (the flow runs at half the working size): the smoothing
        is computed there and its correction, upsampled, is added to the full-detail ``(a, b)``.
        ``keyframe`` False (with ``motion``): the network did not run on this frame (``--keyframe-interval``);
        ``a, b`` are a stale keyframe's, and the smoothed past carried along the motion is returned instead.
        """
        if low_in.ndim != 4 or low_in.shape[0] != 1 or a.shape != b.shape or a.shape[0] != 1:
            shapes = f"low_in {tuple(low_in.shape)}, a {tuple(a.shape)}, b {tuple(b.shape)}"
            raise ValueError(f"step takes one frame and a, b of one shape: {shapes}")
        if motion is not None:
            return self._step_along(low_in, a, b, cut, *motion, keyframe=keyframe)
        w = self.weight(low_in, cut)
        if w is None or self._a is None or self._a.shape != a.shape:
            self._a, self._b = a.float(), b.float()
            return a, b
        if w.shape[-2:] != a.shape[-2:]:
            w = F.interpolate(w, size=a.shape[-2:], mode="bilinear", align_corners=False)
        self._a = torch.lerp(a.float(), self._a, w)
        self._b = torch.lerp(b.float(), self._b, w)
        return self._a.to(a.dtype), self._b.to(b.dtype)

    def _step_along(
        self,
        low_in: torch.Tensor,
        a: torch.Tensor,
        b: torch.Tensor,
        cut: torch.Tensor | None,
        grid: torch.Tensor,
        trust: torch.Tensor,
        keyframe: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The motion-compensated step (:mod:`.temporal_motion`): ``(a, b) ← lerp((a, b), warp(past), w)``.

        ``w = strength · trust · 2^(−(change / gate)²)``, 0 at a cut. ``change``: how much keeping the
        warped past would change the working-size output (mean over the channels); ``gate``:
        ``config.change`` or twice the network's own jitter here, whichever is larger (the jitter: a
        running mean, carried along the motion, of how much the network's own map changed the output
        from one frame to the next).
        """
        c, size, full = a.shape[1], tuple(grid.shape[1:3]), tuple(a.shape[-2:])
        state = self._state  # (1, 4C + 1, h, w): the smoothed a, b, the previous frame's own a, b, the jitter
        # this frame's state is written in place into a new tensor (no concatenations: on the CPU they cost
        # as much as the warp); the next frame makes a new one
        new = torch.empty((1, 4 * c + 1, *size), device=a.device, dtype=torch.float32)
        new[:, 2 * c : 3 * c].copy_(resize_planes(a.float(), size) if size != full else a)
        new[:, 3 * c : 4 * c].copy_(resize_planes(b.float(), size) if size != full else b)
        cur = new[:, 2 * c : 4 * c]
        if state is None or state.shape != new.shape:
            new[:, : 2 * c].copy_(cur)
            new[:, 4 * c :].zero_()
            self._state = new
            return a, b
        low = low_in.float()
        if low.shape[-2:] != size:
            low = resize_planes(low.contiguous(), size)
        past = F.grid_sample(state, grid, mode="bilinear", padding_mode="border", align_corners=True)
        if not keyframe:  # no new estimate: the past, carried along the motion, is the best guess
            self._state = past
            carried = resize_planes(past[:, : 2 * c].contiguous(), full) if size != full else past
            return carried[:, :c].to(a.dtype), carried[:, c : 2 * c].to(b.dtype)

        def output_change(coefficients: torch.Tensor) -> torch.Tensor:  # |what these would change in the output|
            d = (coefficients[:, :c] - cur[:, :c]) * low + coefficients[:, c : 2 * c] - cur[:, c:]
            return d.abs().mean(1, keepdim=True)

        # the network's own frame-to-frame jitter along the motion, per pixel: a running mean, whose value
        # so far sets this frame's gate (this frame's own change must not widen its gate)
        gate = torch.clamp(2.0 * past[:, 4 * c :], min=self.config.change)
        jitter = torch.lerp(output_change(past[:, 2 * c : 4 * c]), past[:, 4 * c :], 0.8)
        # keeping the past must not change the output by more than the jitter: a real change (the fog
        # thickening, a new object) stands out of it and is followed at once instead of trailed
        w = self.config.strength * trust * torch.exp2(-((output_change(past[:, : 2 * c]) / gate) ** 2))
        if cut is not None:
            w = torch.where(cut, torch.zeros_like(w), w)
        torch.lerp(cur, past[:, : 2 * c], w, out=new[:, : 2 * c])
        new[:, 4 * c :].copy_(jitter)
        self._state = new
        if size == full:
            return new[:, :c].to(a.dtype), new[:, c : 2 * c].to(b.dtype)
        # the smoothing's correction is smooth (the coefficients are box-averaged, the weights follow the
        # motion's scale): made at the flow's size and added to the full-detail coefficients
        correction = resize_planes(new[:, : 2 * c] - cur, full)
        return (a.float() + correction[:, :c]).to(a.dtype), (b.float() + correction[:, c:]).to(b.dtype)

    def smooth(
        self, low_in: torch.Tensor, a: torch.Tensor, b: torch.Tensor, cut: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch ``(B, ...)`` of consecutive frames, smoothed frame by frame in order (``cut``: ``(B,)`` bool)."""
        n = low_in.shape[0]
        pairs = [
            self.step(low_in[i : i + 1], a[i : i + 1], b[i : i + 1], None if cut is None else cut[i]) for i in range(n)
        ]
        return torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])


def fit_shape(height: int, width: int, short_side: int) -> tuple[int, int]:
    """Low-resolution ``(h, w)`` with short side ``short_side`` (never upscaled), keeping the aspect ratio."""
    s = min(1.0, short_side / min(height, width))
    return max(1, round(height * s)), max(1, round(width * s))


def downscale(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area downscale of ``(B, C, H, W)`` to ``size`` (unchanged when already that size)."""
    return x if tuple(x.shape[-2:]) == tuple(size) else F.interpolate(x, size=size, mode="area")
