"""Temporal smoothing of the dark channel prior's global airlight (one RGB vector per frame): a stateful stage.

The airlight is the colour of the haze at infinity: one value per scene, yet estimated afresh on
every frame from its brightest dark-channel pixels, so it jumps when a bright object enters or
leaves. :class:`AirlightSmoother` keeps a streaming moving average of it, reset at scene cuts.
In the engine it runs between the two stateless halves of the prior (:meth:`~.core.Core.airlight`,
then :meth:`~.core.Core.plain_with` / :meth:`~.core.Core.coefficients_with`), so the transmission
and the recovery use the smoothed value, and nothing stateful sits inside the network call.
"""

from __future__ import annotations

import torch


class AirlightSmoother:
    """Streaming EMA of a per-frame global vector (the airlight ``(B, 3)``), reset at scene cuts.

    :meth:`smooth`: ``airlight`` ``(B, 3)`` and the frames' scene-cut flags ``cut`` ``(B,)`` bool (the
    engine's state pass) → smoothed ``(B, 3)``, frame by frame in order: ``A_t ← s · A_{t−1} + (1 − s) · A_t``,
    ``s = 0`` at a cut.
    """

    def __init__(self, strength: float = 0.9) -> None:
        if not 0.0 <= strength < 1.0:
            raise ValueError(f"airlight smoothing strength must be in [0, 1), got {strength}")
        self.strength = strength
        self._state: torch.Tensor | None = None

    def reset(self) -> None:
        self._state = None

    def smooth(self, airlight: torch.Tensor, cut: torch.Tensor | None = None) -> torch.Tensor:
        out = []
        for i in range(airlight.shape[0]):
            cur = airlight[i].float()
            if self._state is None or self._state.shape != cur.shape:
                self._state = cur
            else:
                weight = self.strength if cut is None else torch.where(cut[i], 0.0, self.strength)
                self._state = torch.lerp(cur, self._state, weight)
            out.append(self._state)
        return torch.stack(out).to(airlight.dtype)
