"""Temporal smoothing of the dark channel prior's global airlight (one RGB vector per frame).

The airlight is the colour of the haze at infinity: one value per scene, yet estimated afresh on
every frame from its brightest dark-channel pixels, so it jumps when a bright object enters or
leaves. :class:`AirlightSmoother` keeps a streaming moving average of it (reset at scene cuts),
and :func:`with_smoothed_airlight` gives a model that estimates the transmission and recovers the
scene with the smoothed value. The smoother is stateful: one per stream, frames in order.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nets.dcp import DarkChannelPrior, dark_channel
from ..nets.dehazer import Dehazer
from .temporal import SceneCutDetector

_LOW_PRECISION = (torch.float16, torch.bfloat16)


class AirlightSmoother:
    """Streaming EMA of a per-frame global vector (the airlight ``(B, 3)``), reset at scene cuts.

    ``smooth(x, airlight)``: ``x`` ``(B, 3, H, W)`` the frames (for the cut test), ``airlight``
    ``(B, 3)`` → smoothed ``(B, 3)``, frame by frame in order: ``A_t ← s · A_{t−1} + (1 − s) · A_t``.
    """

    def __init__(self, strength: float = 0.9, cut_threshold: float = 0.05) -> None:
        if not 0.0 <= strength < 1.0:
            raise ValueError(f"airlight smoothing strength must be in [0, 1), got {strength}")
        self.strength = strength
        self.cut = SceneCutDetector(cut_threshold)
        self._state: torch.Tensor | None = None

    def reset(self) -> None:
        self._state = None
        self.cut.reset()

    def smooth(self, x: torch.Tensor, airlight: torch.Tensor) -> torch.Tensor:
        out = []
        for i in range(airlight.shape[0]):
            cut = self.cut.step(x[i : i + 1])
            cur = airlight[i].float()
            if self._state is None or self._state.shape != cur.shape:
                self._state = cur
            else:
                self._state = torch.lerp(cur, self._state, torch.where(cut, 0.0, self.strength))
            out.append(self._state)
        return torch.stack(out).to(airlight.dtype)


class SmoothedAirlightDCP(nn.Module):
    """A :class:`DarkChannelPrior` whose airlight is smoothed over the stream: ``(B, 3, H, W)`` → same, in [0, 1]."""

    def __init__(self, dcp: DarkChannelPrior, smoother: AirlightSmoother) -> None:
        super().__init__()
        self.dcp = dcp
        self.smoother = smoother

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        work = x.float() if x.dtype in _LOW_PRECISION else x
        airlight = self.smoother.smooth(work, self.dcp.airlight(work, dark_channel(work, self.dcp.patch)))
        t = self.dcp.transmission(work, airlight)
        return self.dcp.recover(x, airlight, t)


def with_smoothed_airlight(model: Dehazer, strength: float = 0.9, cut_threshold: float = 0.05) -> Dehazer:
    """``model`` itself unless it runs a :class:`DarkChannelPrior`; then a new Dehazer with a smoothed airlight.

    The returned model shares the prior's settings and carries its own :class:`AirlightSmoother`
    (``model.net.smoother``): use one per stream. ``strength`` 0 returns ``model`` unchanged.
    """
    net = getattr(model, "net", None)
    if strength == 0 or not isinstance(net, DarkChannelPrior):
        return model
    wrapped = SmoothedAirlightDCP(net, AirlightSmoother(strength, cut_threshold))
    return Dehazer(wrapped, model.name, model.multiple, {**model.info, "airlight_smoothing": strength})
