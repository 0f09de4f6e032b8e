"""One in-flight CUDA batch of the engine: pinned host and device buffers, events, and its place in the phases.

A batch goes through up to three stages in the engine's ring (:mod:`.engine`): *prepared* (uploaded,
device phase 1 launched: working size, state pass, small copies for the host), *launched* (the
host's decisions taken, device phase 2 launched, the download enqueued) and *collected* (the host
waited for ``downloaded`` and copied the frames out). Batches with no host decision to take are
prepared and launched at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ..frames import Frame
from .stages import Prepared


class Slot:
    """Buffers and events of one in-flight batch. ``frame_shape``: one frame's uint8 image, ``(H, W, 3)``
    RGB or ``(3H/2, W)`` yuv420p (the same shape out as in)."""

    def __init__(self, batch: int, frame_shape: tuple[int, ...], device: torch.device) -> None:
        shape = (batch, *frame_shape)
        self.shape = shape
        self.host_in = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        self.host_out = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        self.dev_in = torch.empty(shape, dtype=torch.uint8, device=device)
        self.dev_out = torch.empty(shape, dtype=torch.uint8, device=device)
        self.uploaded = torch.cuda.Event()
        # device time: phase 1 (started → prepared) and phase 2 (finishing → computed)
        self.started, self.prepared_at = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        self.finishing, self.computed = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        self.downloaded = torch.cuda.Event()
        self.frames: list[Frame] | None = None  # the batch in flight, None when the slot is free
        self.prepared: Prepared | None = None  # set between the phases (a held batch)
        self.launched = False  # phase 2 and the download are enqueued
        self.split = False  # the two phases ran apart (the time of both is counted)

    def fits(self, n: int, frame_shape: tuple[int, ...]) -> bool:
        return n <= self.shape[0] and tuple(frame_shape) == self.shape[1:]

    def busy_s(self) -> float:
        """Device seconds of this batch's compute (after ``downloaded``)."""
        if self.split:
            ms = self.started.elapsed_time(self.prepared_at) + self.finishing.elapsed_time(self.computed)
        else:
            ms = self.started.elapsed_time(self.computed)
        return ms / 1000.0


@contextmanager
def no_host_sync(on: bool) -> Iterator[None]:
    """With ``on``, any host synchronisation inside raises (``torch.cuda.set_sync_debug_mode("error")``)."""
    if not on:
        yield
        return
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)
