"""Host ↔ device copies that never make the compute stream wait for the host.

The engine's compute section (:mod:`.engine`) must not synchronise: no ``.cpu()``, ``.item()``,
``.tolist()`` or copies from pageable memory there. What the host needs from the device (scene-cut
flags for the keyframe plan, gray frames for the optical flow) leaves through a :class:`Download`
(into pinned memory, ``non_blocking``, an event recorded after it) and is read later, outside the
compute section; what the device needs from the host (indices, flows) goes in through
:func:`upload` (pinned memory, ``non_blocking``). On the CPU both are plain tensors.
"""

from __future__ import annotations

import numpy as np
import torch

Tensor = torch.Tensor


class Download:
    """A device tensor on its way to the host: started at construction, read with :meth:`result`."""

    def __init__(self, t: Tensor) -> None:
        self.event: torch.cuda.Event | None = None
        if t.device.type == "cuda":
            self.host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
            self.host.copy_(t, non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record(torch.cuda.current_stream(t.device))
        else:
            self.host = t

    def ready(self) -> bool:
        """True once the copy has landed (never waits)."""
        return self.event is None or self.event.query()

    def result(self) -> np.ndarray:
        """The host copy as a numpy array (waits for the copy on CUDA: call it outside the compute section)."""
        if self.event is not None:
            self.event.synchronize()
        return self.host.numpy()


def upload(data: np.ndarray | list, device: torch.device, dtype: torch.dtype | None = None) -> Tensor:
    """Host data → a tensor on ``device`` without a blocking copy (through pinned memory on CUDA).

    PyTorch's pinned-memory allocator keeps the staging buffer until the copy has run, so the
    caller may drop its reference at once.
    """
    t = torch.as_tensor(data, dtype=dtype)
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)
