"""Threading building blocks of the pipeline: a bounded queue with timeouts, workers, statistics.

Stages themselves are plain objects with no threads; :class:`~streamdehaze.pipeline.runner.Pipeline`
runs each stage's loop in a :class:`Worker`. Nothing here blocks forever: every put and get takes a
timeout, loops re-check a stop event between attempts, and joins are bounded.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .stats import StageStats

#: Poll interval for queue operations: how quickly a blocked stage notices a stop request.
POLL_S = 0.05

END = object()  # end-of-stream marker passed through queues


class Empty(Exception):
    """:meth:`BoundedQueue.get` timed out."""


class Full(Exception):
    """:meth:`BoundedQueue.put` timed out."""


class BoundedQueue:
    """A FIFO of at most ``maxsize`` items.

    ``drop_oldest=False`` (files): :meth:`put` blocks until there is room, up to its timeout.
    ``drop_oldest=True`` (live sources): :meth:`put` never blocks; when full, the oldest item is
    discarded and counted in :attr:`dropped`, so the consumer always sees the newest frames.
    The :data:`END` marker is never dropped.
    """

    def __init__(self, maxsize: int, drop_oldest: bool = False) -> None:
        if maxsize < 1:
            raise ValueError(f"queue size must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self.drop_oldest = drop_oldest
        self.dropped = 0
        self._items: deque[Any] = deque()
        self._cond = threading.Condition()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, item: Any, timeout: float) -> None:
        """Append ``item``; raises :class:`Full` after ``timeout`` seconds without room (blocking mode)."""
        with self._cond:
            if self.drop_oldest:
                while len(self._items) >= self.maxsize and self._drop_one():
                    pass
            elif not self._cond.wait_for(lambda: len(self._items) < self.maxsize, timeout):
                raise Full
            self._items.append(item)
            self._cond.notify_all()

    def _drop_one(self) -> bool:
        """Discard the oldest item that is not :data:`END`; False when there is none."""
        for i, old in enumerate(self._items):
            if old is not END:
                del self._items[i]
                self.dropped += 1
                return True
        return False

    def get(self, timeout: float) -> Any:
        """Pop the oldest item; raises :class:`Empty` after ``timeout`` seconds with nothing to take."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._items) > 0, timeout):
                raise Empty
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def clear(self) -> int:
        """Discard everything queued (not counted as drops); returns how many items went."""
        with self._cond:
            n = len(self._items)
            self._items.clear()
            self._cond.notify_all()
            return n


class Stopped(Exception):
    """Raised inside a stage loop when the pipeline asked it to stop."""


def put_until(q: BoundedQueue, item: Any, stop: threading.Event) -> None:
    """Put ``item``, retrying every :data:`POLL_S` seconds; raises :class:`Stopped` once ``stop`` is set."""
    while True:
        if stop.is_set():
            raise Stopped
        try:
            q.put(item, timeout=POLL_S)
            return
        except Full:
            continue


def get_until(q: BoundedQueue, stop: threading.Event, timeout: float | None = None) -> Any:
    """Get an item, retrying every :data:`POLL_S` seconds; raises :class:`Stopped` once ``stop`` is set.

    With ``timeout`` (seconds), raises :class:`Empty` when nothing came within it.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if stop.is_set():
            raise Stopped
        wait = POLL_S if deadline is None else min(POLL_S, max(0.0, deadline - time.monotonic()))
        try:
            return q.get(timeout=wait)
        except Empty:
            if deadline is not None and time.monotonic() >= deadline:
                raise
            continue


class Worker:
    """Runs ``loop()`` in a daemon thread; records the first exception for the owner to re-raise.

    ``on_error`` is called (in the worker thread) with the exception so the owner can stop the
    other stages at once. :class:`Stopped` is a normal exit, not an error.
    """

    def __init__(self, name: str, loop: Callable[[], None], on_error: Callable[[BaseException], None]) -> None:
        self.name = name
        self.error: BaseException | None = None
        self.stats = StageStats(name)
        self._loop = loop
        self._on_error = on_error
        self._thread = threading.Thread(target=self._run, name=f"streamdehaze-{name}", daemon=True)

    def _run(self) -> None:
        t0 = time.perf_counter()
        try:
            self._loop()
        except Stopped:
            pass
        except BaseException as err:  # forwarded to the caller's thread, which re-raises it
            self.error = err
            self._on_error(err)
        finally:
            self.stats.wall_s = time.perf_counter() - t0

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True when the thread has finished."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def is_alive(self) -> bool:
        return self._thread.is_alive()
