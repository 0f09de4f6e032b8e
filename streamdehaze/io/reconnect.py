"""Reconnection policy of live sources: backoff, a time budget (``--reconnect-for``), an outage log.

A live source (RTSP, webcam) that stalls or loses its connection calls :meth:`Reconnector.lost`,
then :meth:`Reconnector.wait` before each reconnect attempt and :meth:`Reconnector.frame` for every
frame it delivers. ``wait`` sleeps ``backoff``, ``2 * backoff``, ... (at most ``max_backoff``) and
raises :class:`~streamdehaze.errors.SourceError` once the outage has lasted ``reconnect_for``
seconds (``None``: never) or ``attempts`` tries failed (``None``: no limit). An outage ends at the
first frame after it; each one is logged when it starts and when it ends (logger
``streamdehaze.io.reconnect``) and kept in :attr:`Reconnector.outages`, so a run can report the
total time without frames.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from streamdehaze.errors import SourceError

log = logging.getLogger(__name__)


@dataclass
class Outage:
    """One stretch without frames: ``gap_s`` from the last frame before it to the first after (so far)."""

    reason: str
    last_frame: float  # time.monotonic() of the last frame before the outage
    detected: float  # when the source noticed (a stall is noticed ``timeout`` after the last frame)
    attempts: int = 0
    ended: float | None = None

    @property
    def gap_s(self) -> float:
        return (self.ended if self.ended is not None else time.monotonic()) - self.last_frame


class Reconnector:
    """When and how long a live source ``spec`` keeps reconnecting (see the module docstring).

    ``closing``: the source's close event; waits end early when it is set.
    """

    def __init__(
        self,
        spec: str,
        closing: threading.Event,
        *,
        reconnect_for: float | None = None,
        attempts: int | None = None,
        backoff: float = 0.5,
        max_backoff: float = 5.0,
    ) -> None:
        if reconnect_for is not None and reconnect_for < 0:
            raise ValueError(f"reconnect_for must be >= 0 seconds or None, got {reconnect_for}")
        self.spec = spec
        self.reconnect_for = reconnect_for
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max(backoff, max_backoff)
        self.outages: list[Outage] = []
        self._closing = closing
        self._last_frame: float | None = None
        self._delay = backoff
        self._last_error = ""

    @property
    def enabled(self) -> bool:
        """False when an outage ends the stream at once (``reconnect_for=0`` or ``attempts=0``)."""
        return self.reconnect_for != 0 and self.attempts != 0

    @property
    def current(self) -> Outage | None:
        """The outage in progress, if any."""
        return self.outages[-1] if self.outages and self.outages[-1].ended is None else None

    @property
    def gap_s(self) -> float:
        """Seconds without frames over all outages (the one in progress included)."""
        return sum(o.gap_s for o in self.outages)

    def frame(self) -> None:
        """A frame was delivered: ends the outage in progress (logged with its length)."""
        now = time.monotonic()
        outage = self.current
        if outage is not None:
            outage.ended = now
            log.warning(
                "%s is back after %.1f s without frames (%d reconnect attempt%s); recording goes on",
                self.spec, outage.gap_s, outage.attempts, "" if outage.attempts == 1 else "s",
            )  # fmt: skip
        self._last_frame = now
        self._delay = self.backoff

    def lost(self, reason: str) -> None:
        """The connection stalled or dropped; starts an outage unless one is in progress."""
        self._last_error = reason
        if self.current is not None:
            return
        now = time.monotonic()
        self.outages.append(Outage(reason, self._last_frame if self._last_frame is not None else now, now))
        budget = "indefinitely" if self.reconnect_for is None else f"for up to {self.reconnect_for:g} s"
        if self.enabled:
            log.warning("lost %s (%s); reconnecting %s", self.spec, reason, budget)

    def failed(self, reason: str) -> None:
        """A reconnect attempt failed with ``reason``."""
        self._last_error = reason

    def wait(self) -> bool:
        """Sleep before the next attempt; False when the source is closing.

        Raises SourceError when the budget (time or attempts) is spent.
        """
        outage = self.current
        if outage is None:  # callers call lost() first; be safe
            self.lost("connection lost")
            outage = self.current
        spent = time.monotonic() - outage.detected
        if (self.attempts is not None and outage.attempts >= self.attempts) or (
            self.reconnect_for is not None and spent >= self.reconnect_for
        ):
            raise self.give_up()
        delay = self._delay
        if self.reconnect_for is not None:
            delay = min(delay, self.reconnect_for - spent)
        self._delay = min(self._delay * 2, self.max_backoff)
        if self._closing.wait(max(0.0, delay)):
            return False
        outage.attempts += 1
        return True

    def give_up(self) -> SourceError:
        """The error that ends the stream: what was lost, for how long, what was tried."""
        outage = self.current
        gap = outage.gap_s if outage else 0.0
        tries = outage.attempts if outage else 0
        limit = []
        if self.attempts is not None and tries >= self.attempts:
            limit.append(f"{tries} reconnect attempts")
        if self.reconnect_for is not None:
            limit.append(f"--reconnect-for {self.reconnect_for:g} s")
        return SourceError(
            f"lost {self.spec}: no frame for {gap:.1f} s, gave up reconnecting after {tries} attempt"
            f"{'' if tries == 1 else 's'} ({' / '.join(limit) or 'closed'}; last: {self._last_error}); "
            "check the camera or server, or raise --reconnect-for"
        )


class Reconnecting:
    """The outage figures of a live source that keeps a :class:`Reconnector` as ``reconnector``
    (the pipeline's summary reads ``outages``)."""

    reconnector: Reconnector

    @property
    def outages(self) -> list[Outage]:
        """The outages so far, oldest first."""
        return self.reconnector.outages

    @property
    def gap_s(self) -> float:
        """Seconds without frames over all outages."""
        return self.reconnector.gap_s
