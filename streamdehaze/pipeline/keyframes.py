"""Keyframe reuse, a stateful stage: which frames run the network, and whose coefficients the others take.

:class:`KeyframeScheduler` decides on the host, frame by frame in stream order, from the scene-cut
flags of the state pass (:mod:`.frame_state`): a frame is a keyframe when it is the first after a
reset, a scene cut, or ``interval`` frames after the last keyframe. On CUDA the flags reach the host
one batch late (the engine plans batch k while the device works on batch k + 1), so the compute
stream never waits for this decision. :class:`CoefficientBank` then gives every frame of a batch
the ``(a, b)`` of its latest keyframe, carried over from earlier batches where needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..errors import InputError
from .host import upload

Tensor = torch.Tensor
Plan = list  # per frame: "first", "cut", "interval" (a keyframe) or None (reuses the last keyframe's map)


@dataclass
class KeyframeScheduler:
    """The host's keyframe plan; counts ``frames`` and ``keyframes`` (scene cuts: the state pass counts them)."""

    interval: int = 1
    keyframes: int = 0
    frames: int = 0
    _since: int = field(default=0, repr=False)
    _started: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if self.interval < 1:
            raise InputError(f"--keyframe-interval {self.interval}: expected a whole number >= 1")

    def reset(self) -> None:
        self._since, self._started = 0, False

    def plan(self, cuts: Sequence[bool]) -> Plan:
        """For each frame's scene-cut flag: ``"first"``, ``"cut"``, ``"interval"`` or None (reuse)."""
        out: Plan = []
        for cut in cuts:
            reason = None
            if not self._started:
                reason = "first"
            elif cut:
                reason = "cut"
            elif self._since >= self.interval:
                reason = "interval"
            if reason is not None:
                self._started, self._since = True, 0
                self.keyframes += 1
            self._since += 1
            self.frames += 1
            out.append(reason)
        return out

    def every_frame(self, n: int) -> Plan:
        """The plan at interval 1, where every frame is a keyframe (no flags needed on the host)."""
        self._started, self._since = True, 1
        self.keyframes += n
        self.frames += n
        return ["interval"] * n


def keyframe_indices(plan: Plan) -> list[int]:
    return [i for i, reason in enumerate(plan) if reason is not None]


def bank_indices(plan: Plan, carried: bool) -> list[int] | None:
    """Row of ``[carried keyframe, this batch's keyframes...]`` each frame takes; None when every frame is a keyframe.

    Frames before the batch's first keyframe use the carried one (row 0), the others their latest keyframe.
    """
    if all(reason is not None for reason in plan):
        return None
    index, seen = [], 0
    for reason in plan:
        seen += reason is not None
        index.append(int(carried) + seen - 1 if seen else 0)
    return index


class CoefficientBank:
    """The last keyframe's ``(a, b)`` ``(1, 3, h, w)``, carried across batches."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._a: Tensor | None = None
        self._b: Tensor | None = None

    @property
    def carried(self) -> bool:
        return self._a is not None

    def per_frame(self, a_k: Tensor | None, b_k: Tensor | None, index: Tensor | None) -> tuple[Tensor, Tensor]:
        """Each frame's ``(a, b)`` ``(B, 3, h, w)`` from this batch's keyframes' ``(k, 3, h, w)`` (None: none).

        ``index``: :func:`bank_indices` on the device (None: every frame is a keyframe, ``a_k`` is returned).
        """
        bank_a = [] if self._a is None else [self._a]
        bank_b = [] if self._b is None else [self._b]
        if a_k is not None:
            bank_a.append(a_k)
            bank_b.append(b_k)
            self._a, self._b = a_k[-1:], b_k[-1:]
        if index is None:
            return a_k, b_k
        return torch.cat(bank_a).index_select(0, index), torch.cat(bank_b).index_select(0, index)


def device_index(index: list[int] | None, device: torch.device) -> Tensor | None:
    return None if index is None else upload(index, device, torch.long)
