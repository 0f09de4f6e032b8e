"""The pipeline: decode thread → bounded queue → batcher + engine → bounded queue → sink thread.

:class:`Pipeline` owns every thread. Sources, the engine and sinks are plain objects; the pipeline
opens and closes them and runs their loops in :class:`~.stage.Worker` threads:

* **decode** reads frames from the source. Files block when the queue is full (never drop);
  live sources drop the oldest queued frame instead, counted in :attr:`PipelineStats.dropped`.
* **inference** groups frames into batches of ``batch`` (for live sources it waits at most
  ``max_wait`` seconds for a batch to fill, so latency stays bounded; the final partial batch is
  processed) and runs them through the :class:`~.engine.Engine`.
* **encode** writes frames to the sink in order.

An exception in any stage stops all stages; :meth:`Pipeline.run` joins the threads (bounded),
closes the sink with ``"failed"`` (no output file remains) and re-raises the exception with its
original type. A live source reconnects by itself after a stall or disconnect (its outages
and their total gap end up in :attr:`PipelineStats.outages`/``gap_s``); one that fails (lost for
good: its reconnection budget spent) ends the recording instead: what was read is processed and
written, the sink is closed with ``"interrupted"`` (the recording stays playable) and then the
source's error is raised. Ctrl-C (KeyboardInterrupt in the calling
thread) stops reading, writes what was already processed, closes the sink with ``"interrupted"``
(a playable file) and re-raises KeyboardInterrupt; :attr:`Pipeline.stats` then says how many
frames were written.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from torch import nn

from ..frames import Frame, StreamInfo
from .engine import Engine
from .stage import END, POLL_S, BoundedQueue, Empty, Stopped, Worker, get_until, put_until
from .stats import PipelineStats, Progress, StageStats

__all__ = ["Pipeline", "PipelineStats", "Progress", "StageStats"]

log = logging.getLogger(__name__)


class Pipeline:
    """Dehaze ``source`` into ``sink`` with ``model`` (a Dehazer or a ready :class:`Engine`).

    Args:
        batch: frames per model call. ``precision``/``device``/``depth``: see :class:`Engine`.
        queue_size: frames each queue holds (default ``max(4, 2 * batch)``); with the engine's
            ``depth`` batches in flight this bounds the frames in memory.
        max_frames: stop after this many frames. ``duration``: stop after this many seconds of
            video (from the first frame's timestamp).
        max_wait: live sources only: seconds a partial batch may wait for more frames (default 0.05).
        join_timeout: seconds to wait for each thread at shutdown.
        on_write: called in the encode thread after each frame is written (benchmarks use it).
    """

    def __init__(
        self,
        source: Any,
        model: nn.Module | Engine,
        sink: Any,
        *,
        batch: int = 4,
        precision: str = "fp32",
        device: Any = None,
        depth: int = 2,
        queue_size: int | None = None,
        max_frames: int | None = None,
        duration: float | None = None,
        max_wait: float | None = None,
        join_timeout: float = 10.0,
        on_write: Callable[[Frame], None] | None = None,
    ) -> None:
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.source, self.sink = source, sink
        self.engine = model if isinstance(model, Engine) else Engine(model, device, precision, depth)
        self.batch = batch
        self.queue_size = queue_size or max(4, 2 * batch)
        self.max_frames = max_frames
        self.duration = duration
        self.max_wait = 0.05 if max_wait is None else max_wait
        self.join_timeout = join_timeout
        self.on_write = on_write
        self.stats = PipelineStats()
        self.live = bool(getattr(source, "is_live", False))
        self._stop = threading.Event()  # hard stop: error or second Ctrl-C
        self._finish = threading.Event()  # graceful stop: Ctrl-C, write what was processed
        self._done = threading.Event()
        self._workers: list[Worker] = []
        self._source_error: Exception | None = None  # a live source's failure, raised after the drain
        self._q_in = BoundedQueue(self.queue_size, drop_oldest=self.live)
        self._q_out = BoundedQueue(self.queue_size)
        self._t0 = 0.0

    # ------------------------------------------------------------------ running

    def run(self, on_progress: Callable[[Progress], None] | None = None, interval: float = 0.1) -> PipelineStats:
        """Process the whole stream; returns the statistics (also kept in :attr:`stats`).

        Re-raises the first stage error with its type; re-raises KeyboardInterrupt after an
        interrupted run was written.
        """
        if self._workers:
            raise RuntimeError("a Pipeline runs once; build a new one")
        info = self.open()
        interrupted, failure = False, None
        try:
            self._start()
            self._wait(on_progress, interval)
        except KeyboardInterrupt:
            interrupted = True
            self._finish.set()  # stop reading; frames already processed still get written
            try:
                self._wait(on_progress, interval)
            except KeyboardInterrupt:  # a second Ctrl-C: stop at once, keep what the sink has
                self._stop.set()
            except BaseException as err:
                failure = err
                self._stop.set()
        except BaseException as err:  # e.g. a failing progress callback
            failure = err
            self._stop.set()
        self._shutdown(info, interrupted, failure)
        if interrupted:
            raise KeyboardInterrupt
        return self.stats

    def open(self) -> StreamInfo:
        """Open the source, then the sink; returns the stream's info. :meth:`run` calls it if needed."""
        if self.stats.info is not None:
            return self.stats.info
        info = self.source.open()
        try:
            self.sink.open(info)
        except BaseException:
            self._close_source()
            raise
        self.stats.info = info
        return info

    def abort(self) -> None:
        """Close an opened pipeline that will not run (the sink removes its partial output)."""
        if self.stats.info is not None and not self._workers:
            self.stats.status = "failed"
            try:
                self.sink.close("failed")
            finally:
                self._close_source()

    def _start(self) -> None:
        self._t0 = time.perf_counter()
        for name, loop in (("decode", self._decode_loop), ("inference", self._infer_loop), ("encode", self._sink_loop)):
            worker = Worker(name, loop, self._on_error)
            self._workers.append(worker)
            self.stats.stages[name] = worker.stats
        # The stages are started by a helper thread, which Ctrl-C (a KeyboardInterrupt in the main
        # thread) does not interrupt: one landing between two starts left a stage that never started,
        # and an interrupted run waited for ever for it to finish (seen in the batch Ctrl-C test).
        starter = threading.Thread(target=lambda: [w.start() for w in self._workers], name="start stages")
        starter.start()
        starter.join()

    def _on_error(self, err: BaseException) -> None:
        self._stop.set()
        self._done.set()

    def _wait(self, on_progress: Callable[[Progress], None] | None, interval: float) -> None:
        while not self._done.wait(interval):
            if on_progress is not None:
                on_progress(self.progress())
        if on_progress is not None:
            on_progress(self.progress())

    def _shutdown(self, info: StreamInfo, interrupted: bool, failure: BaseException | None) -> None:
        """Join every thread (bounded), close the sink with the right status, close the source.

        Raises the first stage error (or ``failure`` from the calling thread) once everything is closed.
        """
        self._done.set()
        self._workers[-1].join(self.join_timeout)  # the sink finishes last on a normal or interrupted run
        self._stop.set()  # after which no stage has work left
        if self.live:  # a live read may be waiting out an outage (reconnecting): closing cuts it short
            self._close_source()
        stuck = [w.name for w in self._workers if not w.join(self.join_timeout)]
        error = failure or next((w.error for w in self._workers if w.error is not None), None)
        status = "failed" if error is not None or stuck else ("interrupted" if interrupted else "done")
        if status == "done" and self._source_error is not None:
            error, status = self._source_error, "interrupted"  # keep the live recording, then raise
        self._finalise_stats(status)
        try:
            self._close_sink(status)
        finally:
            if "decode" in stuck:
                log.warning("decode thread still busy after %.0f s; the source is left open", self.join_timeout)
            else:
                self._close_source()
        if error is not None:
            raise error
        if stuck:
            raise RuntimeError(f"pipeline threads did not stop within {self.join_timeout} s: {', '.join(stuck)}")

    def _close_sink(self, status: str) -> None:
        try:
            self.sink.close(status)
        except BaseException:
            if status != "failed":
                self.stats.status = "failed"
                try:  # let the sink remove its partial output after a failed finalise
                    self.sink.close("failed")
                except Exception:
                    pass
            raise
        self.stats.frames_written = int(getattr(self.sink, "frames_written", self.stats.frames_written))

    def _close_source(self) -> None:
        try:
            self.source.close()
        except Exception as err:  # closing is best effort; the run's own outcome matters more
            log.warning("closing the source failed: %s", err)

    def _finalise_stats(self, status: str) -> None:
        s = self.stats
        s.status = status
        s.wall_s = time.perf_counter() - self._t0
        s.frames_read = s.stages["decode"].frames
        s.frames_written = s.stages["encode"].frames
        s.dropped = self._q_in.dropped
        outages = list(getattr(self.source, "outages", None) or [])
        s.outages, s.gap_s = len(outages), sum(o.gap_s for o in outages)
        decode = s.stages["decode"]  # time spent waiting out outages is not decoding work
        decode.busy_s = max(0.0, decode.busy_s - s.gap_s)
        inf = s.stages["inference"]
        inf.frames, inf.busy_s = self.engine.frames, self.engine.busy_s
        for st in s.stages.values():  # shares of the whole run, comparable between stages
            st.wall_s = s.wall_s

    def progress(self) -> Progress:
        s = self.stats.stages
        return Progress(
            read=s["decode"].frames,
            written=s["encode"].frames,
            dropped=self._q_in.dropped,
            total=self.expected_frames(),
            elapsed_s=time.perf_counter() - self._t0,
        )

    def expected_frames(self) -> int | None:
        """Frames this run will write if nothing goes wrong; None when unknown (live, unknown length)."""
        info = self.stats.info
        bounds = [self.max_frames] if self.max_frames is not None else []
        if info is not None and not info.is_live:
            if info.frame_count:
                bounds.append(info.frame_count)
            if self.duration is not None and info.frame_rate:
                bounds.append(math.ceil(self.duration * info.frame_rate))
        return min(bounds) if bounds else None

    # ------------------------------------------------------------------ stage loops (worker threads)

    def _decode_loop(self) -> None:
        st = self.stats.stages["decode"]
        t_first: float | None = None
        rate = self.stats.info.frame_rate if self.stats.info else None
        while not (self._finish.is_set() or self._stop.is_set()):
            if self.max_frames is not None and st.frames >= self.max_frames:
                break
            t0 = time.perf_counter()
            try:
                frame = self.source.read()
            except Exception as err:
                if not self.live:
                    raise
                # A lost live source ends the recording: what was read is still processed and
                # written (the file stays playable), then the run raises this error.
                self._source_error = err
                break
            finally:
                st.busy_s += time.perf_counter() - t0
            if frame is None:
                break
            if self.duration is not None:
                t = frame.time if frame.time is not None else (frame.index / rate if rate else None)
                t_first = t if t_first is None else t_first
                if t is not None and t - t_first >= self.duration - 1e-9:
                    break
            st.frames += 1
            put_until(self._q_in, frame, self._stop)
        if not self._finish.is_set():
            put_until(self._q_in, END, self._stop)

    def _infer_loop(self) -> None:
        batch: list[Frame] = []
        deadline = 0.0
        while not self._finish.is_set():
            if self._stop.is_set():
                raise Stopped
            wait = POLL_S
            if batch and self.live:  # bounded latency: don't wait for a full batch on a live stream
                wait = deadline - time.monotonic()
                if wait <= 0:
                    self._run_batch(batch)
                    batch, wait = [], POLL_S
            try:
                item = self._q_in.get(timeout=min(wait, POLL_S))
            except Empty:
                self._emit(self.engine.poll())
                continue
            if item is END:
                if batch:
                    self._run_batch(batch)  # the final partial batch
                break
            if batch and item.image.shape != batch[0].image.shape:
                self._run_batch(batch)  # a batch holds one frame size
                batch = []
            batch.append(item)
            if len(batch) == 1:
                deadline = time.monotonic() + self.max_wait
            if len(batch) >= self.batch:
                self._run_batch(batch)
                batch = []
        self._emit(self.engine.drain())
        put_until(self._q_out, END, self._stop)

    def _run_batch(self, batch: list[Frame]) -> None:
        self.stats.batches += 1
        self._emit(self.engine.submit(batch))

    def _emit(self, batches: list[list[Frame]]) -> None:
        for out in batches:
            for frame in out:
                put_until(self._q_out, frame, self._stop)

    def _sink_loop(self) -> None:
        st = self.stats.stages["encode"]
        try:
            while True:
                item = get_until(self._q_out, self._stop)
                if item is END:
                    return
                t0 = time.perf_counter()
                self.sink.write(item)
                st.busy_s += time.perf_counter() - t0
                st.frames += 1
                if self.on_write is not None:
                    self.on_write(item)
        finally:
            self._done.set()
