"""The inference wrapper every model is used through.

A :class:`Dehazer` maps ``(B, 3, H, W)`` float RGB in [0, 1] of any H, W to the dehazed
``(B, 3, H, W)`` float in [0, 1]. It pads to the network's multiple (reflection), crops back and
clamps. In eval mode each frame's output is independent of the other frames in its batch.

``flip_average``: also run the network on the mirrored frames (in the same batch) and average the
two results, mirrored back: a self-ensemble that costs twice the network time. A network's errors
on a scene and on its mirror image are partly independent, so their mean is closer to the truth.

Networks with a global estimate (the dark channel prior's airlight: ``net.global_airlight(x)``
and ``net.dehaze(x, airlight)``) are also reachable in two halves, :meth:`Dehazer.airlight` and
:meth:`Dehazer.dehaze_with`, so that the engine can smooth the estimate over a stream between them
(:attr:`Dehazer.has_airlight`). Both halves are stateless.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..ops.padding import crop_to, pad_to_multiple


class Dehazer(nn.Module):
    def __init__(
        self,
        net: nn.Module,
        name: str,
        multiple: int = 1,
        info: dict[str, Any] | None = None,
        flip_average: bool = False,
    ) -> None:
        super().__init__()
        self.net = net
        self.name = name
        self.multiple = multiple
        self.info = dict(info or {})
        self.flip_average = flip_average

    def with_flip_average(self, on: bool) -> Dehazer:
        """This network with flip averaging on or off (the same weights, not a copy)."""
        return self if on == self.flip_average else Dehazer(self.net, self.name, self.multiple, self.info, on)

    @property
    def device(self) -> torch.device:
        for t in self.net.parameters():
            return t.device
        for t in self.net.buffers():
            return t.device
        return torch.device("cpu")

    @property
    def has_airlight(self) -> bool:
        """Whether the network exposes a global airlight (:meth:`airlight`, :meth:`dehaze_with`)."""
        return hasattr(self.net, "global_airlight") and hasattr(self.net, "dehaze")

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        return pad_to_multiple(x, self.multiple) if self.multiple > 1 else (x, x.shape[-2:])

    def _run(self, fn, xp: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """``fn(xp, *args)``, or with flip averaging the mean of it and of its mirrored call, mirrored back."""
        if not self.flip_average:
            return fn(xp, *args)
        both = fn(torch.cat([xp, xp.flip(-1)]), *(torch.cat([a, a]) for a in args))
        return (both[: len(xp)] + both[len(xp) :].flip(-1)) * 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` float in [0, 1] → ``(B, 3, H, W)`` float in [0, 1]."""
        xp, size = self._pad(x)
        return crop_to(self._run(self.net, xp), size).clamp(0.0, 1.0)

    def airlight(self, x: torch.Tensor) -> torch.Tensor:
        """The network's global airlight ``(B, 3)`` float32 for ``x`` ``(B, 3, H, W)`` in [0, 1]."""
        return self.net.global_airlight(self._pad(x)[0])

    def dehaze_with(self, x: torch.Tensor, airlight: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [0, 1] dehazed with a given ``airlight`` ``(B, 3)`` → ``(B, 3, H, W)`` in [0, 1]."""
        xp, size = self._pad(x)
        return crop_to(self._run(self.net.dehaze, xp, airlight), size).clamp(0.0, 1.0)
