"""The dark channel prior (He, Sun & Tang, CVPR 2009 / TPAMI 2011) as a batched torch module.

Haze model: ``I = J · t + A · (1 − t)``. In haze-free outdoor patches some colour channel is
close to zero (the dark channel), so ``t ≈ 1 − ω · dark(I / A)``. The transmission is refined
with a guided filter on the gray input and the scene recovered as ``J = (I − A) / max(t, t0) + A``.

The prior exposes its global estimate so a stateful stage can smooth it between two stateless
halves: :meth:`DarkChannelPrior.global_airlight` (``(B, 3)``, one colour per frame) and
:meth:`DarkChannelPrior.dehaze` (the transmission for a given airlight and the recovery); the
forward pass is the one after the other. (:meth:`~DarkChannelPrior.estimate` and
:meth:`~DarkChannelPrior.recover` are the same steps split after the transmission.) No weights, no
state; runs on the input's device.
"""

from __future__ import annotations

import torch
from torch import nn

from ..ops.guided import dark_channel, guided_filter, rgb_to_gray

_LOW_PRECISION = (torch.float16, torch.bfloat16)


class DarkChannelPrior(nn.Module):
    """Dark-channel-prior dehazing: ``(B, 3, H, W)`` float in [0, 1] → ``(B, 3, H, W)`` float in [0, 1].

    Args:
        patch: side of the dark-channel min filter (pixels).
        omega: fraction of haze removed (keeps a little for depth perception).
        t0: lower bound of the transmission in the recovery.
        radius: guided-filter radius; ``None`` scales 60 px per 600 px of the longer image side.
        eps: guided-filter regularisation (on a gray guide in [0, 1]).
        top: fraction of brightest dark-channel pixels that the airlight is taken from.
        airlight: ``'mean'`` (the mean of those input pixels; 21.6 / 16.8 dB on the SOTS indoor /
            outdoor dev splits) or ``'max'`` (He et al.'s most intense one; 21.6 / 16.3 dB).
    """

    def __init__(
        self,
        patch: int = 15,
        omega: float = 0.95,
        t0: float = 0.1,
        radius: int | None = None,
        eps: float = 1e-3,
        top: float = 0.001,
        airlight: str = "mean",
    ) -> None:
        super().__init__()
        if airlight not in ("max", "mean"):
            raise ValueError(f"airlight must be 'max' or 'mean', got {airlight!r}")
        self.patch, self.omega, self.t0 = patch, omega, t0
        self.radius, self.eps, self.top, self.airlight_mode = radius, eps, top, airlight
        # no parameters: an empty buffer lets .to(device) and Dehazer.device report where we run
        self.register_buffer("_anchor", torch.empty(0), persistent=False)

    def guide_radius(self, height: int, width: int) -> int:
        """The guided-filter radius used for an ``height × width`` image."""
        if self.radius is not None:
            return self.radius
        return max(1, round(60 * max(height, width) / 600))

    def airlight(self, x: torch.Tensor, dark: torch.Tensor) -> torch.Tensor:
        """Airlight ``(B, 3)`` from ``x`` ``(B, 3, H, W)`` and its dark channel ``(B, 1, H, W)``."""
        b, c = x.shape[:2]
        flat_dark = dark.reshape(b, -1)
        k = max(1, int(flat_dark.shape[1] * self.top))
        idx = flat_dark.topk(k, dim=1).indices  # (B, k)
        pix = x.reshape(b, c, -1).gather(2, idx.unsqueeze(1).expand(b, c, k))  # (B, 3, k)
        if self.airlight_mode == "mean":
            return pix.mean(2)
        best = pix.sum(1).argmax(1)  # most intense candidate
        return pix.gather(2, best.view(b, 1, 1).expand(b, c, 1)).squeeze(2)

    def estimate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(B, 3, H, W)`` in [0, 1] → airlight ``(B, 3)`` and refined transmission ``(B, 1, H, W)`` in [0, 1].

        Float32 outputs for half inputs. The transmission is not yet bounded below by ``t0``.
        """
        x = x.float() if x.dtype in _LOW_PRECISION else x
        a = self.airlight(x, dark_channel(x, self.patch))
        return a, self.transmission(x, a)

    def transmission(self, x: torch.Tensor, airlight: torch.Tensor) -> torch.Tensor:
        """Refined transmission ``(B, 1, H, W)`` in [0, 1] of ``x`` ``(B, 3, H, W)`` for a given airlight ``(B, 3)``."""
        x = x.float() if x.dtype in _LOW_PRECISION else x
        a = airlight.to(x.dtype).clamp_min(1e-6).view(*airlight.shape, 1, 1)
        raw = 1.0 - self.omega * dark_channel(x / a, self.patch)
        r = self.guide_radius(*x.shape[-2:])
        return guided_filter(rgb_to_gray(x), raw, r, self.eps).clamp_(0.0, 1.0)

    def recover(self, x: torch.Tensor, airlight: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Scene radiance ``J = (x − A) / max(t, t0) + A``, clamped: ``(B, 3, H, W)`` in [0, 1], ``x``'s dtype."""
        work = x.float() if x.dtype in _LOW_PRECISION else x
        a = airlight.to(work.dtype).view(*airlight.shape, 1, 1)
        j = (work - a) / t.to(work.dtype).clamp_min(self.t0) + a
        return j.clamp_(0.0, 1.0).to(x.dtype)

    def global_airlight(self, x: torch.Tensor) -> torch.Tensor:
        """The airlight ``(B, 3)`` float32 of ``x`` ``(B, 3, H, W)`` in [0, 1] (its dark channel's brightest pixels)."""
        work = x.float() if x.dtype in _LOW_PRECISION else x
        return self.airlight(work, dark_channel(work, self.patch))

    def dehaze(self, x: torch.Tensor, airlight: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, 3, H, W)`` in [0, 1] dehazed for a given ``airlight`` ``(B, 3)``: transmission, then recovery."""
        work = x.float() if x.dtype in _LOW_PRECISION else x
        return self.recover(x, airlight, self.transmission(work, airlight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` float in [0, 1] → dehazed ``(B, 3, H, W)`` float in [0, 1]."""
        return self.dehaze(x, self.global_airlight(x))
