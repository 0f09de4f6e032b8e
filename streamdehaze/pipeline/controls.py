"""Live controls of a running engine, queued by any thread and applied by the inference thread between batches.

The preview's window and web page run in other threads than the engine; they never touch the
engine's state. They put ``(name, value)`` requests on a :class:`ControlQueue`; the engine takes
them at the start of its next batch (:meth:`ControlQueue.take`) and applies them there, so a batch
is always processed with one consistent set of settings, and no lock guards the stages.

Controls: ``dehaze`` (bool: off passes the frames through), ``temporal`` (bool: temporal smoothing;
switching it on starts from a clean state), ``strength`` (float in [0, 1], see
:func:`~streamdehaze.ops.transfer_fit.strengthen`).
"""

from __future__ import annotations

import queue
from typing import Any

from ..errors import InputError
from ..ops.transfer_fit import check_strength

CONTROLS = ("dehaze", "temporal", "strength")


def check_control(name: str, value: Any) -> Any:
    """The value to apply, validated (an :class:`InputError` for an unknown name or a bad value)."""
    if name not in CONTROLS:
        raise InputError(f"unknown engine control {name!r}; expected one of {', '.join(CONTROLS)}")
    if name == "strength":
        return check_strength(float(value))
    return bool(value)


class ControlQueue:
    """Thread-safe: :meth:`put` from anywhere; :meth:`take` from the inference thread only."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()

    def put(self, name: str, value: Any) -> None:
        self._queue.put((name, check_control(name, value)))

    def take(self) -> dict[str, Any]:
        """Every request queued so far, the last value per control (empty when none)."""
        out: dict[str, Any] = {}
        while True:
            try:
                name, value = self._queue.get_nowait()
            except queue.Empty:
                return out
            out[name] = value
