"""The timed measurements of ``streamdehaze bench`` (:mod:`.measure` builds the settings, inputs and
report): the model on a device-resident batch, the engine, decode, encode and the whole pipeline.

Each function warms up on ``s.warmup`` frames, then times ``s.frames`` frames; GPU work is
synchronised (CUDA events for the model alone) before the clock stops.

Every stage measured alone runs in a worker thread of its own, as the pipeline runs its stages
(:func:`in_worker`): like is compared with like. On a busy 2-core CPU torch's OpenMP team in the
main thread spins against the other processes and ran the same network 2-3x slower than a worker
thread did, which is how "model only" once reported 1.6 fps beside an end-to-end 10.7 fps.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from ..frames import Frame, StreamInfo
from ..ops.color import to_tensor, to_uint8
from ..ops.yuv import planes_to_rgb_image, rgb_to_yuv420p, yuv_meta
from ..pipeline.runner import Pipeline, PipelineStats

if TYPE_CHECKING:
    from .measure import BenchSettings


T = TypeVar("T")


def in_worker(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` run in a fresh thread (as a pipeline stage is), its result returned and its error re-raised."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> T:
        out: dict[str, Any] = {}

        def target() -> None:
            try:
                out["result"] = fn(*args, **kwargs)
            except BaseException as err:  # re-raised in the caller with its type
                out["error"] = err

        worker = threading.Thread(target=target, name=f"streamdehaze-bench-{fn.__name__}", daemon=True)
        worker.start()
        worker.join()
        if "error" in out:
            raise out["error"]
        return out["result"]

    return run


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@in_worker
def time_model(
    model: torch.nn.Module, s: BenchSettings, device: torch.device, images: np.ndarray
) -> tuple[float, dict[str, int]]:
    """Frames per second of the model (behind the transfer, if any) on a device-resident batch of
    ``images[:batch]``, and the transfer's keyframe counts over the timed frames."""
    engine = s.engine(model, device)
    x = to_tensor(np.resize(images, (s.batch, *images.shape[1:])), device)
    steps, warm = -(-s.frames // s.batch), -(-s.warmup // s.batch)
    with torch.inference_mode():
        for _ in range(warm):
            engine.infer(x)
        _sync(device)
        before = engine.keyframe_stats()
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(steps):
                engine.infer(x)
            end.record()
            end.synchronize()
            seconds = start.elapsed_time(end) / 1000.0
        else:
            t0 = time.perf_counter()
            for _ in range(steps):
                engine.infer(x)
            seconds = time.perf_counter() - t0
    counts = {k: v - before[k] for k, v in engine.keyframe_stats().items()}
    return steps * s.batch / seconds, counts


def as_input(images: np.ndarray, yuv: bool) -> tuple[np.ndarray, dict]:
    """``(N, H, W, 3)`` RGB → what the source delivers: the same, or packed yuv420p planes and their meta."""
    if not yuv:
        return images, {}
    x = to_tensor(images)
    return rgb_to_yuv420p(x).numpy(), yuv_meta("yuv420p", None)


@in_worker
def time_engine(model: torch.nn.Module, s: BenchSettings, device: torch.device, images: np.ndarray) -> float:
    """Frames per second through the Engine: host uint8 in, host uint8 out, ``depth`` batches in flight."""
    engine = s.engine(model, device)
    data, meta = as_input(images, s.use_device_yuv(device))
    batch = [Frame(data[i % len(data)], i, Fraction(1, 30), i, dict(meta)) for i in range(s.batch)]
    steps, warm = -(-s.frames // s.batch), -(-s.warmup // s.batch)
    for _ in range(warm):
        engine.submit(batch)
    engine.drain()
    t0 = time.perf_counter()
    for _ in range(steps):
        engine.submit(batch)
    engine.drain()
    return steps * s.batch / (time.perf_counter() - t0)


@in_worker
def time_decode(path: str, s: BenchSettings, yuv: bool = False) -> tuple[float, StreamInfo, list[np.ndarray]]:
    """Decode-only fps (RGB frames, or yuv420p planes with ``yuv``), the stream's info and up to 30
    decoded frames as RGB (for the other measurements)."""
    from ..io.sources import open_source

    source = open_source(path, pix_fmt="yuv420p" if yuv else "rgb24")
    info = source.open()
    kept: list[Frame] = []
    try:
        for _ in range(s.warmup):
            if (f := source.read()) is not None and len(kept) < 30:
                kept.append(f)
        t0, n = time.perf_counter(), 0
        while n < s.frames and (f := source.read()) is not None:
            n += 1
            if len(kept) < 30:
                kept.append(f)
        seconds = time.perf_counter() - t0
    finally:
        source.close()
    if not kept:
        raise ValueError(f"{path}: no frames decoded")
    images = [planes_to_rgb_image(f.image, f.meta) if f.meta.get("pix_fmt") == "yuv420p" else f.image for f in kept]
    return (n / seconds if n else 0.0), info, images


def _sink(path: Path, s: BenchSettings):
    from ..io.sinks import open_sink

    return open_sink(str(path), codec=s.codec, crf=s.crf, preset=s.preset)


@in_worker
def time_encode(images: list[np.ndarray], info: StreamInfo, s: BenchSettings, tmp: Path, yuv: bool = False) -> float:
    """Encode-only fps: ``images`` (as yuv420p planes with ``yuv``) cycled through the sink; the
    clock stops after the final flush."""
    tb = Fraction(1, 30)
    sink = _sink(tmp / "encode_only.mp4", s)
    sink.open(StreamInfo(info.width, info.height, tb, Fraction(30), is_live=False))
    data, meta = as_input(np.stack(images), yuv)
    frames = (Frame(data[i % len(data)], i, tb, i, dict(meta)) for i in range(s.warmup + s.frames))
    try:
        for _, f in zip(range(s.warmup), frames):
            sink.write(f)
        t0 = time.perf_counter()
        for f in frames:
            sink.write(f)
        sink.close("done")
    except BaseException:
        sink.close("failed")
        raise
    return s.frames / (time.perf_counter() - t0)


def _pipeline_run(path: str, engine: Any, s: BenchSettings, out: Path, frames: int, device: torch.device):
    """``(seconds, stats)`` of one real pipeline run over the first ``frames`` frames of ``path``.

    ``seconds`` spans the whole run (opening, threads, the encoder's final flush); the stats'
    inference figures are this run's alone (the engine's counters are cumulative)."""
    from ..io.sources import open_source

    pipe = Pipeline(
        open_source(path, pix_fmt="yuv420p" if s.use_device_yuv(device) else "rgb24"),
        engine,
        _sink(out, s),
        batch=s.batch,
        max_frames=frames,
    )
    busy0, frames0 = engine.busy_s, engine.frames
    t0 = time.perf_counter()
    stats = pipe.run()
    seconds = time.perf_counter() - t0
    inference = stats.stages["inference"]
    inference.frames, inference.busy_s = engine.frames - frames0, engine.busy_s - busy0
    return seconds, stats


def time_end_to_end(
    path: str, model: torch.nn.Module, s: BenchSettings, tmp: Path, device: torch.device
) -> tuple[float, PipelineStats, dict[str, int]]:
    """End-to-end fps of the real pipeline, its statistics and the transfer's keyframe counts.

    A first run over ``s.warmup`` frames warms the engine; the timed run then processes ``s.frames``
    frames with the same engine, from opening the file to the encoder's final flush. Its per-stage
    figures (frames per busy second) come from that same run, so the end-to-end rate can never
    exceed the slowest of them: every stage handled the same frames within the run's time.
    """
    engine = s.engine(model, device)
    if s.warmup:
        _pipeline_run(path, engine, s, tmp / "warmup.mp4", s.warmup, device)
        engine.reset()  # forget the warm-up's stream (keyframes, smoothing): the timed run starts anew
    before = engine.keyframe_stats()
    seconds, stats = _pipeline_run(path, engine, s, tmp / "end_to_end.mp4", s.frames, device)
    counts = {k: v - before[k] for k, v in engine.keyframe_stats().items()}
    return stats.frames_written / seconds, stats, counts


def precision_error(model: torch.nn.Module, s: BenchSettings, device: torch.device, images: np.ndarray) -> dict:
    """Max and mean absolute difference (8-bit levels) of ``s.precision`` against fp32 on real frames."""
    x = to_tensor(images[: s.batch], device)
    with torch.inference_mode():
        ref = to_uint8(dataclasses.replace(s, precision="fp32").engine(model, device).infer(x))
        out = to_uint8(s.engine(model, device).infer(x))
    diff = (out.int() - ref.int()).abs()
    return {"precision": s.precision, "max_abs_levels": int(diff.max()), "mean_abs_levels": float(diff.float().mean())}
