"""Temporal smoothing of full-resolution model outputs: ``filter(x, y) -> y'``, batch by batch in order.

Used where the network's output is not carried by affine coefficients (the engine at full
resolution with keyframe interval 1), and for the ``pixel`` mode. The modes of :mod:`.temporal`:

- ``ema``: ``(a, b)`` are fitted between the downscaled ``x`` and ``y``, smoothed by a
  :class:`~.temporal.CoefficientSmoother`, and ``y' = y + (a_s − a) · x + (b_s − b)`` (differences
  upsampled), so the model's own detail is kept and only the change the smoothing made is added.
- ``flow``: ``ema``, then the motion-compensated filter :class:`~.temporal_flow.FlowSmoother`.
- ``pixel``: ``y' = w · y'_{t−1} + (1 − w) · y`` (reset at cuts); drags moving objects into trails.
- ``off``: ``y`` unchanged.

In the engine the scene-cut flags come from its state pass and the flows from the host half of
the flow filter (:meth:`TemporalFilter.step`); standalone, :meth:`TemporalFilter.__call__` makes
both itself (its own :class:`~.frame_state.StatePass` with ``cut_threshold``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..ops.guided import fit_affine
from .frame_state import StatePass
from .temporal import CoefficientSmoother, TemporalConfig, downscale, fit_shape
from .temporal_flow import FlowSmoother


def _residual_apply(x: torch.Tensor, y: torch.Tensor, da: torch.Tensor, db: torch.Tensor) -> torch.Tensor:
    """``y + da · x + db`` with ``da, db`` upsampled bilinearly to ``x``'s size, clamped to [0, 1], float32."""
    delta = torch.cat([da, db], 1)
    if delta.shape[-2:] != x.shape[-2:]:
        delta = F.interpolate(delta, size=x.shape[-2:], mode="bilinear", align_corners=False)
    c = da.shape[1]
    return torch.addcmul(y.float() + delta[:, c:], delta[:, :c], x.float()).clamp_(0.0, 1.0)


class TemporalFilter:
    """``x``: the input frames ``(B, 3, H, W)`` in [0, 1]; ``y``: the model's outputs, same shape;
    returns ``(B, 3, H, W)`` in [0, 1] in ``y``'s dtype (see the module docstring for the modes)."""

    def __init__(self, config: TemporalConfig | None = None) -> None:
        self.config = (config or TemporalConfig()).check()
        self.state = StatePass(self.config.cut_threshold)  # standalone use only
        self.coefficients = CoefficientSmoother(self.config)
        self.flow = FlowSmoother(self.config) if self.config.mode == "flow" else None
        self._pixel: torch.Tensor | None = None

    @property
    def active(self) -> bool:
        return self.config.mode != "off" and self.config.strength > 0

    def reset(self) -> None:
        """Forget the past (call before an unrelated stream)."""
        self.state.reset()
        self.coefficients.reset()
        if self.flow is not None:
            self.flow.reset()
        self._pixel = None

    @property
    def cuts(self) -> int:
        """Scene cuts its own state pass detected (standalone use; a host sync on GPU)."""
        return self.state.cuts

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Standalone: scene cuts and flows made here (a host sync per batch for the flow)."""
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"temporal filter: input {tuple(x.shape)} and output {tuple(y.shape)} must match")
        if not self.active:
            return y
        cut = self.state(x).cut
        flows = self.flow.host_flows(x) if self.flow is not None else [None] * x.shape[0]
        out = [self.step(x[i : i + 1], y[i : i + 1], cut[i], flows[i]) for i in range(x.shape[0])]
        return torch.cat(out).to(y.dtype)

    def step(
        self, x: torch.Tensor, y: torch.Tensor, cut: torch.Tensor | None, flow: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One frame ``(1, 3, H, W)`` input and output, its scene-cut flag (0-d bool tensor) and, in
        ``flow`` mode, its flow ``(1, 2, h, w)`` (None: no previous frame) → smoothed ``(1, 3, H, W)`` float32."""
        c, y = self.config, y.float()
        if c.mode == "pixel":
            return self._blend(y, cut)
        # one full-resolution downscale; the smaller sizes are taken from it
        flow_size = fit_shape(*x.shape[-2:], c.flow_size)
        size = fit_shape(*x.shape[-2:], c.fit_size)
        mid = flow_size if self.flow is not None and min(flow_size) >= min(size) else size
        x_mid, y_mid = downscale(x.float(), mid), downscale(y, mid)
        low_in, low_out = downscale(x_mid, size), downscale(y_mid, size)
        a, b = fit_affine(low_in, low_out, max(1, min(c.radius, math.ceil(min(size) / 4))), c.eps)
        a_s, b_s = self.coefficients.step(low_in, a, b, cut)
        out = _residual_apply(x, y, a_s - a, b_s - b)
        if self.flow is not None:
            out = self.flow.step(x, out, cut, flow, (x_mid, y_mid) if mid == flow_size else None)
        return out

    def _blend(self, y: torch.Tensor, cut: torch.Tensor | None) -> torch.Tensor:
        if self._pixel is None or self._pixel.shape != y.shape:
            self._pixel = y
        else:
            w = self.config.strength if cut is None else torch.where(cut, 0.0, self.config.strength)
            self._pixel = torch.lerp(y, self._pixel, w)
        return self._pixel
