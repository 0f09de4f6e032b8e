"""Temporal smoothing inside the engine: settings, the switchable per-stream stage, and an Engine with it.

:class:`TemporalStage` is one stream's smoothing state, plugged into the engine at two points:

- as the :class:`~.transfer.GuidedTransfer` coefficient hook (``step(low_in, a, b)``/``reset()``),
  when the engine already carries the network's result through affine coefficients (working
  size below full, or keyframe reuse): the coefficients are smoothed where they are made;
- as a post filter on the full-resolution output (``post(x, y)``, called by :class:`TemporalEngine`):
  the motion-compensated filter of ``flow`` mode, pixel blending, or, when the engine calls the
  network directly at full resolution, the whole :class:`~.temporal.TemporalFilter` (coefficients
  fitted on the output, residual correction) so the model's own output is kept where nothing moves.

``enabled`` switches it off and on while running (the preview's ``t`` key); switching on starts
from a clean state. For the dark channel prior the global airlight is smoothed too
(:func:`~.temporal_dcp.with_smoothed_airlight`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from .engine import Engine
from .temporal import DEFAULT_MODE, MODES, CoefficientSmoother, TemporalConfig, TemporalFilter
from .temporal_dcp import with_smoothed_airlight


@dataclass
class TemporalSettings:
    """``--temporal`` (``mode``: off, ema, flow or pixel) and ``--temporal-strength`` (``strength`` in [0, 1))."""

    mode: str = DEFAULT_MODE
    strength: float = 0.8
    airlight: float = 0.9  # EMA weight of the dark channel prior's airlight (0 = not smoothed)

    def config(self) -> TemporalConfig:
        return TemporalConfig(mode=self.mode, strength=self.strength).check()

    @property
    def on(self) -> bool:
        return self.mode != "off" and self.strength > 0

    def describe(self) -> str:
        if not self.on:
            return "temporal smoothing off"
        what = {"ema": "coefficient EMA", "flow": "coefficient EMA + motion-compensated", "pixel": "pixel blending"}
        return f"temporal smoothing {self.mode} ({what[self.mode]}, strength {self.strength:g})"


class TemporalStage:
    """One stream's temporal smoothing; frames in order. ``coefficients``: smooth ``(a, b)`` in the transfer hook.

    With ``coefficients`` True, :meth:`step` smooths the transfer's ``(a, b)`` and :meth:`post` only
    runs the pixel-level filters (flow / pixel modes); with it False, :meth:`post` runs the full
    :class:`TemporalFilter` on the model's output. :attr:`busy_s` accumulates the time spent.
    """

    def __init__(self, settings: TemporalSettings, coefficients: bool) -> None:
        self.settings = settings
        self.coefficients = coefficients and settings.mode in ("ema", "flow")
        cfg = settings.config()
        self._smoother = CoefficientSmoother(cfg) if self.coefficients else None
        post_mode = ("off" if settings.mode == "ema" else settings.mode) if self.coefficients else settings.mode
        self._filter = TemporalFilter(TemporalConfig(**{**cfg.__dict__, "mode": post_mode}))
        self._post_only_flow = self.coefficients and post_mode == "flow"
        self._enabled = settings.on
        self.busy_s = 0.0
        self.frames = 0

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        if value and not self._enabled:
            self.reset()  # stale state from before the pause must not be blended in
        self._enabled = bool(value) and self.settings.on

    def reset(self) -> None:
        if self._smoother is not None:
            self._smoother.reset()
        self._filter.reset()

    def step(self, low_in: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Coefficient hook: one frame's ``low_in`` ``(1, 3, h, w)``, ``a, b`` ``(1, 3, h, w)`` → smoothed."""
        if not self._enabled or self._smoother is None:
            return a, b
        t0 = time.perf_counter()
        out = self._smoother.step(low_in, a, b)
        self.busy_s += time.perf_counter() - t0
        return out

    def post(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Post filter: inputs ``x`` and outputs ``y`` ``(B, 3, H, W)`` in [0, 1] → smoothed ``y`` (same dtype)."""
        self.frames += x.shape[0]
        if not self._enabled or not self._filter.active:
            return y
        t0 = time.perf_counter()
        if self._post_only_flow:
            out = torch.cat([self._filter.flow.step(x[i : i + 1], y[i : i + 1]) for i in range(x.shape[0])])
            out = out.to(y.dtype)
        else:
            out = self._filter(x, y)
        self.busy_s += time.perf_counter() - t0
        return out


class TemporalEngine(Engine):
    """An :class:`Engine` whose output goes through a :class:`TemporalStage` (``stage.post``) in stream order.

    On CUDA the stage runs on the compute stream like the model; the ``flow`` mode's optical flow
    is computed on the CPU from a small gray frame (one device sync per frame).
    """

    def __init__(self, *args, temporal: TemporalStage | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.temporal = temporal

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        y = super().infer(x)
        if self.temporal is None:
            return y
        with torch.inference_mode():
            return self.temporal.post(x, y)


def build_engine(
    speed,
    model: nn.Module,
    device: torch.device | str,
    precision: str = "fp32",
    depth: int = 2,
    temporal: TemporalSettings | None = None,
    coeff_hook=None,
) -> Engine:
    """``speed.build_engine(...)`` (a :class:`~.speed.SpeedSettings`) with temporal smoothing; a plain one when off.

    The stage is reachable as ``engine.temporal``. A caller's own ``coeff_hook`` excludes ``temporal``.
    """
    if temporal is None or not temporal.on:
        return speed.build_engine(model, device, precision, depth, coeff_hook=coeff_hook)
    if coeff_hook is not None:
        raise ValueError("give either a coeff_hook or temporal settings, not both")
    device = torch.device(device)
    transfer = speed.transfer(device, model=model)  # before wrapping: auto may defer to the model
    if temporal.mode in ("ema", "flow"):
        model = with_smoothed_airlight(model, temporal.airlight, temporal.config().cut_threshold)
    stage = TemporalStage(temporal, coefficients=transfer.active)
    if stage.coefficients:
        transfer.coeff_hook = stage
    return TemporalEngine(model, device, precision, depth, transfer, speed.engine_options(), temporal=stage)


__all__ = ["MODES", "TemporalSettings", "TemporalStage", "TemporalEngine", "build_engine"]
