"""A file source that opens and decodes ahead in its own thread, so the next file of a batch is ready.

While one file is processed, the runner calls :meth:`PrefetchFileSource.prefetch` on the next one:
its container is opened and its first frames decoded into a bounded queue, overlapping the
current file's last batches, encoder flush and trailer. Later reads continue from the queue
while the thread keeps decoding (the same bounded read-ahead the pipeline's decode thread has).
Errors (a corrupt file) are kept and raised by ``open``/``read`` in the caller's thread, with
their type.
"""

from __future__ import annotations

import queue
import threading

from ..frames import Frame, StreamInfo
from ..io.sources import FileSource

POLL_S = 0.1
_END = object()


class PrefetchFileSource(FileSource):
    """A :class:`~streamdehaze.io.sources.FileSource` whose decoding runs ahead in a thread (``depth`` frames).

    ``prefetch()`` begins opening and decoding; ``open()`` calls it when not called yet and waits
    for the first frame. ``pix_fmt`` must be set before ``prefetch()``.
    """

    def __init__(self, path: str, *, depth: int = 8, **kwargs) -> None:
        super().__init__(path, **kwargs)
        self.depth = max(1, depth)
        self._queue: queue.Queue = queue.Queue(maxsize=self.depth)
        self._opened = threading.Event()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._info: StreamInfo | None = None
        self._error: BaseException | None = None

    def prefetch(self) -> PrefetchFileSource:
        """Begin opening and decoding in the background (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"prefetch {self.path}", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._info = FileSource._open(self)
        except BaseException as err:  # kept for open() in the caller's thread
            self._error = err
            return
        finally:
            self._opened.set()
        try:
            while not self._halt.is_set():
                frame = FileSource._read(self)
                self._put(_END if frame is None else frame)
                if frame is None:
                    return
        except BaseException as err:
            self._put(err)

    def _put(self, item) -> None:
        while not self._halt.is_set():
            try:
                self._queue.put(item, timeout=POLL_S)
                return
            except queue.Full:
                continue

    # -- the Source interface (called under the base class's lock) ---------------------------
    def _open(self) -> StreamInfo:
        self.prefetch()
        while not self._opened.wait(POLL_S):
            pass
        if self._error is not None:
            raise self._error
        return self._info

    def _read(self) -> Frame | None:
        while True:
            try:
                item = self._queue.get(timeout=POLL_S)
            except queue.Empty:
                if self._closing.is_set() or self._thread is None or not self._thread.is_alive():
                    if self._closing.is_set() or self._queue.empty():
                        return None
                continue
            if item is _END:
                self._queue.put(_END)  # later reads see the end too
                return None
            if isinstance(item, BaseException):
                raise item
            return item

    def _release(self) -> None:
        self._halt.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10.0)
        if thread is None or not thread.is_alive():
            FileSource._release(self)
