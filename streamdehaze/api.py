"""Python API for video: ``dehaze_video(src, dst)`` and the :class:`Pipeline` builder behind it."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from .devices import resolve_device
from .errors import InputError
from .frames import Frame
from .pipeline.engine import Engine
from .pipeline.runner import Pipeline, Progress
from .pipeline.speed import SpeedSettings
from .settings import SETTINGS, check_keywords, group_values

if TYPE_CHECKING:  # av is imported where it is used: OpenCV's window needs cv2 loaded before av
    from .io.base import Source


def build_pipeline(
    src: str | os.PathLike | Source,
    dst: str | os.PathLike,
    model: str | nn.Module | Engine = "aecrnet",
    weights: str | os.PathLike | None = None,
    device: str = "auto",
    batch: int = 4,
    precision: str = "fp32",
    *,
    codec: str = "libx264",
    crf: int = 18,
    preset: str = "veryfast",
    start: float | None = None,
    duration: float | None = None,
    max_frames: int | None = None,
    timeout: float = 5.0,
    reconnect_for: float | None = None,
    on_write: Callable[[Frame], None] | None = None,
    speed: SpeedSettings | None = None,
    coeff_hook: Any = None,
    temporal: Any = "default",
    tracks: tuple[str, ...] = ("audio",),
    **settings: Any,
) -> Pipeline:
    """A ready :class:`Pipeline` from ``src`` (file, rtsp://, webcam:N, image folder) to ``dst``.

    ``dst`` is a video file (container from its extension) or, ending in ``/``, a folder of
    numbered PNGs. Audio is copied from ``src`` when it is a file. Nothing is opened yet: the
    source and sink open when the pipeline runs. ``model`` is a registry name or a Dehazer.
    ``settings``: any setting of :data:`streamdehaze.settings.SETTINGS` by its key, the command line's
    option in underscores (``work_size``, ``transfer_fit``, ``guard``, ``keyframe_interval``,
    ``scene_cut``, the tuning switches, ``temporal_strength``, ``flip_average``, ``backend``,
    ``strength``; ``batch`` and ``precision`` are also positional), with the same defaults and
    checks; an unknown keyword or a bad value is :class:`~streamdehaze.errors.InputError`.
    ``speed``: working size, keyframe interval and GPU tuning as one
    :class:`~streamdehaze.pipeline.speed.SpeedSettings` (default: the device's defaults; the speed
    keywords override its fields);
    ``coeff_hook``: called on the affine coefficients of every frame (``hook(low, a, b) -> (a, b)``,
    reset at scene cuts, see :mod:`streamdehaze.pipeline.stages`). ``flip_average``: when ``model``
    is a name, average each result with the network's result on the mirrored frame
    (see :class:`~.nets.dehazer.Dehazer`).
    ``timeout``/``reconnect_for`` (seconds): a live source that delivers nothing for ``timeout``
    reconnects with backoff for up to ``reconnect_for`` (None: for ever; 0: the outage ends the
    run, keeping what was recorded); see :func:`~streamdehaze.io.sources.open_source`.
    ``temporal``: temporal smoothing, a mode (``"ema"``, as ``--temporal``) or a
    :class:`~streamdehaze.pipeline.temporal_engine.TemporalSettings`; ``"default"`` (as ``run``): the default
    mode; None: off; ``temporal_strength`` sets its strength; ``pipeline.temporal`` holds the settings in
    use (None: off).
    ``strength``: the amount of dehazing in [0, 1] (0: the input unchanged, 1: the model's full result).
    Controls while running, from any thread: ``pipeline.engine.control("temporal" | "dehaze" | "strength", value)``.
    ``backend``: what runs the network when ``model`` is a name: ``torch``, ``onnxruntime`` or ``auto``
    (see :mod:`streamdehaze.backends.select`).

    For batches (:mod:`streamdehaze.batch`): ``src`` may be a ready, unopened
    :class:`~streamdehaze.io.base.Source`, and ``model`` the :class:`~.pipeline.engine.Engine` of
    an earlier pipeline, reused with its model, device and state (temporal smoothing, keyframes),
    so the next segment of a recording goes on where the last one ended; ``tracks``: the kinds of
    the source's tracks copied besides the video (``audio``, ``subtitle``, ``data``).
    """
    from .backends.select import load_dehazer
    from .io.base import Source
    from .io.preflight import check_output, check_source
    from .io.sinks import VideoFileSink, open_sink
    from .io.sources import FileSource, open_source
    from .pipeline.engine import _model_device

    options = check_keywords({"batch": batch, "precision": precision, **settings}, where="build_pipeline")
    batch, precision, flip_average, backend, strength = (
        options.get(key, SETTINGS[key].default) for key in ("batch", "precision", "flip_average", "backend", "strength")
    )
    speed = dataclasses.replace(speed or SpeedSettings(), **group_values("speed", options))
    temporal = _temporal(temporal, group_values("temporal", options))
    # the input, the output and the encoder are checked before the model loads (seconds)
    if not isinstance(src, Source):
        check_source(os.fspath(src))
    check_output(os.fspath(dst))
    source = (
        src
        if isinstance(src, Source)
        else open_source(os.fspath(src), start=start, timeout=timeout, reconnect_for=reconnect_for)
    )
    spec = source.spec if isinstance(src, Source) else os.fspath(src)
    audio_from = spec if not source.is_live and Path(spec).is_file() else None
    sink = open_sink(
        os.fspath(dst),
        codec=codec,
        crf=crf,
        preset=preset,
        audio_from=audio_from,
        start=start,
        duration=duration,
        tracks=tracks,
    )
    engine = model if isinstance(model, Engine) else None  # reused as it is (batch segments)
    if engine is not None:
        dehazer, dev = engine.model, engine.device
    elif isinstance(model, nn.Module):
        dehazer, dev = model, _model_device(model)  # a ready model runs where it is
    else:
        dev = resolve_device(device)
        dehazer = load_dehazer(model, weights, dev, backend, precision, flip_average)
    # yuv420p planes end to end only where both ends handle them (file → video file)
    if speed.use_device_yuv(dev) and isinstance(source, FileSource) and isinstance(sink, VideoFileSink):
        source.pix_fmt = "yuv420p"
    from .pipeline.temporal_engine import build_engine

    if engine is None:
        engine = build_engine(
            speed, dehazer, dev, precision, temporal=temporal, coeff_hook=coeff_hook, strength=strength
        )
    pipe = Pipeline(
        source,
        engine,
        sink,
        batch=batch,
        max_frames=max_frames,
        duration=duration,
        on_write=on_write,
    )
    pipe.temporal = engine.temporal
    return pipe


def _temporal(temporal: Any, given: dict[str, Any]) -> Any:
    """The temporal settings of ``build_pipeline(temporal=...)``, with ``given`` (``strength``) applied."""
    from .pipeline.temporal_engine import TemporalSettings

    if temporal is None:
        if given:
            raise InputError("temporal_strength needs temporal smoothing; temporal=None switches it off")
        return None
    if isinstance(temporal, str):  # "default" or a mode, checked as --temporal is
        return TemporalSettings(**given, **({} if temporal == "default" else {"mode": temporal}))
    return dataclasses.replace(temporal, **given) if given else temporal


def dehaze_video(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    model: str | nn.Module = "aecrnet",
    weights: str | os.PathLike | None = None,
    device: str = "auto",
    batch: int = 4,
    precision: str = "fp32",
    *,
    on_progress: Callable[[Progress], None] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Dehaze a video or stream ``src`` into ``dst`` and return a summary dict.

    ``options``: codec, crf, preset, start, duration (seconds), max_frames, timeout, reconnect_for, speed
    (:class:`~streamdehaze.pipeline.speed.SpeedSettings`), coeff_hook, temporal, tracks, and every
    setting of :data:`streamdehaze.settings.SETTINGS` by its key (``work_size``, ``keyframe_interval``,
    ``temporal_strength``, ``flip_average``, ``backend``, ``strength``, ...; see :func:`build_pipeline`);
    an unknown keyword or a bad value is :class:`~streamdehaze.errors.InputError`.
    The summary holds ``status``, ``frames_read``, ``frames_written``, ``dropped``, ``fps``,
    ``wall_s``, ``outages`` and ``gap_s`` (a live source's reconnections and the seconds without
    frames) and per-stage ``stages`` (frames, busy share, capacity fps).
    Errors raise :class:`~streamdehaze.errors.StreamDehazeError` subclasses and leave no output
    file; Ctrl-C writes what was processed and re-raises KeyboardInterrupt.
    """
    pipe = build_pipeline(src, dst, model, weights, device, batch, precision, **options)
    stats = pipe.run(on_progress)
    return {"output": os.fspath(dst), "model": getattr(pipe.engine.model, "name", None), **stats.as_dict()}
