"""Wiring a pipeline to the live preview: the engine's controls, window/web outputs, the preview run.

:func:`preview` is what ``streamdehaze preview`` runs: the source played in real time by
:class:`~.source.PreviewSource` (files at their own frame rate, paced by pts, live sources
at theirs), the real
:class:`~streamdehaze.pipeline.runner.Pipeline` with batch 1 and short queues (frames are dropped,
counted, when inference falls behind), and a :class:`~.preview.PreviewSink` feeding the window
and/or the web page. :func:`attach_preview` adds the same outputs to a recording pipeline
(``run --preview/--web``) without changing its timing.

The preview's switches (dehazing, smoothing, strength) never touch the engine from the viewer's
thread: they queue :meth:`~streamdehaze.pipeline.engine.Engine.control` requests, which the
inference thread applies between two batches.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import cv2  # noqa: F401 - before PyAV (imported below): see preview/window.check_display
from torch import nn

from .hub import PreviewHub, PreviewSink
from .source import PreviewSource


def pipeline_figures(pipe: Any) -> dict[str, Any]:
    """Run-wide figures of a running pipeline for ``/stats`` and the overlay (empty before it starts)."""
    try:
        progress = pipe.progress()
    except (KeyError, AttributeError):  # not started yet
        return {}
    engine = pipe.engine
    busy = getattr(engine, "busy_s", 0.0)
    return {
        "read": progress.read,
        "written": progress.written,
        "dropped": progress.dropped,
        "model_fps": round(engine.frames / busy, 2) if busy > 0 else None,
    }


class PreviewOutputs:
    """The window and/or the web server on ``hub``: ``start()``, then ``tick()`` often from one thread, ``close()``."""

    def __init__(
        self, hub: PreviewHub, *, window: bool = False, web: str | None = None, token: str | None = None
    ) -> None:
        self.hub, self.window_wanted, self.web_address, self.token = hub, window, web, token
        self.window = None
        self.web = None

    def start(self) -> str | None:
        """Open the window and start the server; returns the page's URL (with its token) or None."""
        from .web import WebPreview, parse_address
        from .window import PreviewWindow

        if self.web_address is not None:
            host, port = parse_address(self.web_address)
            self.web = WebPreview(self.hub, host, port, token=self.token)
        if self.window_wanted:
            self.window = PreviewWindow(self.hub)
            self.window.open()
        return self.web.start() if self.web is not None else None

    def tick(self, *_: Any) -> bool:
        """Drive the window (if any); False once the user asked to quit."""
        if self.window is not None:
            self.window.tick()
        return not self.hub.quit.is_set()

    def hold(self) -> None:
        """Keep showing the last frame until the user quits (key, window closed, Stop button, Ctrl-C)."""
        while self.tick():
            if self.window is not None:
                time.sleep(0.02)
            else:
                self.hub.quit.wait(0.2)

    def close(self) -> None:
        if self.window is not None:
            self.window.close()
        if self.web is not None:
            self.web.stop()


def _wire(pipe: Any, hub: PreviewHub, recording: bool = False) -> None:
    """Figures from ``pipe`` into ``hub.stats()``; the preview's switches queue controls on ``pipe.engine``.

    ``recording``: the output follows the command line, so the dehazing switch only changes the
    view, and the temporal switch and the strength are unavailable.
    """
    engine = pipe.engine
    temporal = not recording and getattr(engine, "temporal", None) is not None
    hub.controls.temporal = bool(engine.temporal_on) if temporal else False
    hub.controls.strength = float(getattr(engine, "strength", 1.0))
    hub.dehaze_in_display = recording  # recording: it only changes what is shown
    available = {"temporal_available": temporal, "strength_available": not recording}
    hub.stats_fn = lambda: {**pipeline_figures(pipe), **available}

    def on_change(field: str, value: Any) -> None:
        if recording:
            return
        if field in ("dehaze", "strength") or (field == "temporal" and temporal):
            engine.control(field, value)  # applied by the inference thread before its next batch

    hub.on_change(on_change)


def attach_preview(pipe: Any, hub: PreviewHub) -> None:
    """Make a built, not yet opened recording pipeline also feed ``hub`` (for ``run --preview/--web``).

    The sink becomes a :class:`PreviewSink` writing to the recording sink first; the source is
    wrapped (``realtime=False``) to carry the original image; timing is unchanged and quitting
    the preview ends the recording cleanly (as at the end of the input). The recording follows the
    command line: the preview's dehazing switch only changes the view, its temporal switch is off.
    """
    pipe.source = PreviewSource(pipe.source, hub, realtime=False)
    pipe.sink = PreviewSink(hub, pipe.sink)
    _wire(pipe, hub, recording=True)


def build_preview_pipeline(
    source: str,
    hub: PreviewHub,
    model: str | nn.Module = "aecrnet",
    weights: str | None = None,
    device: str = "auto",
    *,
    batch: int = 1,
    precision: str = "fp32",
    timeout: float = 5.0,
    reconnect_for: float | None = None,
    max_frames: int | None = None,
    speed: Any = None,
    temporal: Any = None,
    flip_average: bool = False,
    backend: str = "auto",
    strength: float = 1.0,
) -> Any:
    """The preview's :class:`~streamdehaze.pipeline.runner.Pipeline` (not opened): ``source`` in real time → ``hub``.

    The model runs in the engine that ``speed`` (a :class:`~streamdehaze.pipeline.speed.SpeedSettings`),
    ``temporal`` (a :class:`~streamdehaze.pipeline.temporal_engine.TemporalSettings`, default: the
    default mode) and ``strength`` (the starting amount of dehazing, 0-1) describe; the preview's
    switches queue controls on ``pipeline.engine``. Batch 1 and short queues keep latency low.
    ``flip_average``: when ``model`` is a name, average each result with the mirrored frame's;
    ``backend``: what runs it then (:func:`~streamdehaze.backends.select.load_dehazer`).
    ``timeout``/``reconnect_for``: a live source's stall time and reconnection budget (None: for ever).
    """
    import dataclasses

    from ..backends.select import load_dehazer
    from ..devices import resolve_device
    from ..io.sources import open_source
    from ..pipeline.engine import _model_device
    from ..pipeline.runner import Pipeline
    from ..pipeline.speed import SpeedSettings
    from ..pipeline.temporal_engine import TemporalSettings, build_engine

    speed = dataclasses.replace(speed or SpeedSettings(), device_yuv=False)  # the preview shows RGB frames
    temporal = temporal or TemporalSettings()
    if isinstance(model, nn.Module):
        dehazer, dev = model, _model_device(model)
    else:
        dev = resolve_device(device)
        dehazer = load_dehazer(model, weights, dev, backend, precision, flip_average)
    engine = build_engine(speed, dehazer, dev, precision, temporal=temporal, strength=strength)
    src = PreviewSource(open_source(source, timeout=timeout, reconnect_for=reconnect_for), hub, realtime=True)
    pipe = Pipeline(src, engine, PreviewSink(hub), batch=batch, queue_size=max(2, batch), max_frames=max_frames)
    pipe.temporal = engine.temporal
    _wire(pipe, hub)
    return pipe


def preview(
    source: str,
    model: str | nn.Module = "aecrnet",
    weights: str | None = None,
    device: str = "auto",
    *,
    window: bool = True,
    web: str | None = None,
    token: str | None = None,
    batch: int = 1,
    precision: str = "fp32",
    snapshot_dir: str = ".",
    timeout: float = 5.0,
    reconnect_for: float | None = None,
    max_frames: int | None = None,
    speed: Any = None,
    temporal: Any = None,
    exit_at_end: bool = False,
    flip_average: bool = False,
    backend: str = "auto",
    strength: float = 1.0,
    on_start: Callable[[Any, str | None], None] | None = None,
    on_progress: Callable[[Any], None] | None = None,
) -> Any:
    """Preview ``source`` dehazed in a window and/or on a web page (``web`` = ``[HOST:]PORT``).

    ``speed``/``temporal``/``flip_average``/``backend``/``strength``: see :func:`build_preview_pipeline`.
    ``on_start(pipeline, url)`` is called once the source is open and the outputs are up;
    ``on_progress`` gets the pipeline's
    progress snapshots. Unless ``exit_at_end``, the last frame stays on screen after the stream
    ends until the user quits. Returns the pipeline's stats.
    """
    hub = PreviewHub(snapshot_dir)
    pipe = build_preview_pipeline(
        source, hub, model, weights, device, batch=batch, precision=precision, timeout=timeout,
        reconnect_for=reconnect_for, max_frames=max_frames, speed=speed, temporal=temporal, flip_average=flip_average,
        backend=backend, strength=strength,
    )  # fmt: skip
    pipe.open()
    outputs = PreviewOutputs(hub, window=window, web=web, token=token)
    try:
        url = outputs.start()
    except BaseException:
        outputs.close()
        pipe.abort()
        raise
    try:
        if on_start is not None:
            on_start(pipe, url)

        def tick(progress: Any) -> None:
            outputs.tick()
            if on_progress is not None:
                on_progress(progress)

        with _end_stream_on_interrupt(hub):
            stats = pipe.run(on_progress=tick, interval=0.02 if window else 0.1)
            if not exit_at_end:
                outputs.hold()
        return stats
    finally:
        outputs.close()


@contextlib.contextmanager
def _end_stream_on_interrupt(hub: PreviewHub):
    """Ctrl-C also ends the stream at the source, so that it does not wait in a paused read.

    The pipeline handles KeyboardInterrupt by finishing what was read, but a paused file's
    read only returns once the source is told to stop. The handler only sets a flag (taking a
    lock inside a signal handler could deadlock the main thread), then raises as usual.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        hub.interrupted = True
        (previous if callable(previous) else signal.default_int_handler)(signum, frame)

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
