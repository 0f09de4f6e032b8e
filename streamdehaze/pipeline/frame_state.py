"""The per-frame state pass: each frame's signature and scene-cut flag, computed once on the device.

Every stateful stage of the engine (keyframe reuse, coefficient smoothing, the airlight smoother,
the flow and pixel filters, a caller's coefficient hook) takes its scene-cut decision from the
:class:`FrameState` of its batch: one decision per frame, one threshold, so all parts of the state
reset on the same frames.

**The decision.** A frame is a scene cut when the mean absolute difference between its signature
(the 16×16 gray thumbnail of the frame at the working size, :func:`~streamdehaze.ops.signature.signature`)
and the previous frame's exceeds ``threshold`` (``--scene-cut``, default :data:`DEFAULT_SCENE_CUT`);
the first frame after a reset counts as a cut (it has no past). Consecutive frames of a drive differ
by less than 0.01; unrelated images by 0.14 (median), more than 0.05 for 95 % of pairs.

The flags stay on the device (``torch.where`` consumes them); what the host must decide from them
(the keyframe plan) reads a :class:`~.host.Download` of them one batch later.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..choices import DEFAULT_SCENE_CUT, check_scene_cut  # noqa: F401 - re-exported
from ..ops.signature import signature, signature_change

Tensor = torch.Tensor


@dataclass
class FrameState:
    """One batch's per-frame state: ``signature`` ``(B, 1, 16, 16)`` float32, ``cut`` ``(B,)`` bool, on the device.

    ``fresh``: the batch's first frame follows a reset (its cut flag means "no past", not a detected cut).
    """

    signature: Tensor
    cut: Tensor
    fresh: bool

    def cut_at(self, i: int) -> Tensor:
        """Frame ``i``'s flag as a 0-d bool tensor (a view: no copy, no host sync)."""
        return self.cut[i]


class StatePass:
    """Streaming: frames in order. State: the previous frame's signature and a device counter of cuts."""

    def __init__(self, threshold: float = DEFAULT_SCENE_CUT) -> None:
        self.threshold = check_scene_cut(threshold)
        self._prev: Tensor | None = None
        self._cuts: Tensor | None = None

    def reset(self) -> None:
        """The next frame starts a new stream (its flag is set)."""
        self._prev = None

    def __call__(self, frames: Tensor) -> FrameState:
        """``frames`` ``(B, 3, h, w)`` in [0, 1], consecutive, at the working size → their :class:`FrameState`."""
        sig = signature(frames)
        fresh = self._prev is None
        prev = torch.cat([sig[:1] if fresh else self._prev, sig[:-1]])
        cut = signature_change(sig, prev) > self.threshold
        if fresh:  # (not `cut[0] = True`: a Python value written into a CUDA tensor is a blocking copy)
            cut = torch.cat([torch.ones_like(cut[:1]), cut[1:]])
        counted = cut[1:] if fresh else cut
        self._cuts = counted.sum() if self._cuts is None else self._cuts + counted.sum()
        self._prev = sig[-1:]
        return FrameState(sig, cut, fresh)

    @property
    def cuts(self) -> int:
        """Scene cuts detected so far (first frames not counted). Reads the device counter: a host sync."""
        return 0 if self._cuts is None else int(self._cuts)
