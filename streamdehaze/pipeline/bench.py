"""Throughput measurements behind ``streamdehaze bench``.

Four figures from one run, each counting ``frames`` frames after ``warmup`` frames:

* ``model_fps``: the model alone on a device-resident ``(B, 3, H, W)`` float batch (CUDA events on GPU);
* ``decode_fps``: the file source alone (demux, decode, RGB frames), the pipeline's decode stage;
* ``encode_fps``: the sink alone (RGB frames → H.264 file, including the final flush);
* ``end_to_end_fps``: the real :class:`~.runner.Pipeline`, file → model → encoded file.

Plus ``engine_fps``: host uint8 frames through the :class:`~.engine.Engine` (transfers and colour
conversion included). The input clip is generated (a textured, hazy scene panning slowly, H.264)
unless a file is given.
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import torch

from ..devices import device_name, resolve_device
from ..frames import Frame, StreamInfo
from ..ops.color import to_tensor
from .engine import Engine, autocast_for
from .runner import Pipeline, PipelineStats


@dataclass
class BenchSettings:
    model: str = "aecrnet"
    weights: str | None = None
    random_weights: bool = False  # aecrnet with random weights of width ngf (timing only)
    ngf: int = 64
    width: int = 1280
    height: int = 720
    batch: int = 4
    precision: str = "fp32"
    device: str = "auto"
    frames: int = 100
    warmup: int = 10
    codec: str = "libx264"
    crf: int = 18
    preset: str = "veryfast"
    input: str | None = None
    repeat: int = 1


def environment(device: torch.device) -> dict[str, Any]:
    """Device name and library versions, printed with every result."""
    return {
        "device": str(device),
        "device_name": device_name(device),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "torch_threads": torch.get_num_threads(),
        "av_version": av.__version__,
        "ffmpeg_version": ".".join(map(str, av.library_versions.get("libavcodec", ()))) or None,
        "python_version": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
    }


def build_model(s: BenchSettings, device: torch.device) -> torch.nn.Module:
    from ..nets.registry import MODELS, build_network, load_model

    if s.random_weights:
        from ..nets.dehazer import Dehazer

        torch.manual_seed(0)
        net = build_network(s.model, ngf=s.ngf).eval()
        if hasattr(net, "fold_for_inference"):
            net.fold_for_inference()
        return Dehazer(net.to(device), s.model, MODELS[s.model].multiple, {"weights": "random"}).eval()
    return load_model(s.model, weights=s.weights, device=device)


def synthetic_frames(width: int, height: int, seed: int = 0) -> Iterator[np.ndarray]:
    """Endless ``(H, W, 3) uint8`` frames: a textured scene under height-graded haze, panning 3 px/frame."""
    rng = np.random.default_rng(seed)
    pad = 256
    coarse = rng.random(((height + pad) // 16 + 2, (width + pad) // 16 + 2, 3), dtype=np.float32)
    scene = cv2.resize(coarse, (width + pad, height + pad), interpolation=cv2.INTER_CUBIC)
    scene += 0.08 * rng.standard_normal(scene.shape, dtype=np.float32)  # fine texture for the encoder
    haze = np.linspace(0.7, 0.2, height + pad, dtype=np.float32)[:, None, None]
    scene = np.clip(255 * ((1 - haze) * scene + haze * 0.8), 0, 255).astype(np.uint8)
    i = 0
    while True:
        x, y = (3 * i) % pad, (i // 2) % pad
        yield np.ascontiguousarray(scene[y : y + height, x : x + width])
        i += 1


def make_clip(path: Path, width: int, height: int, n: int, fps: int = 30) -> Path:
    """Write ``n`` :func:`synthetic_frames` as H.264 (yuv420p, crf 23, 2 s GOP) to ``path``."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {"preset": "veryfast", "crf": "23"}
        stream.codec_context.gop_size = 2 * fps
        for _, img in zip(range(n), synthetic_frames(width, height)):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_model(model: torch.nn.Module, s: BenchSettings, device: torch.device, images: np.ndarray) -> float:
    """Frames per second of the model alone on a device-resident batch of ``images[:batch]``."""
    x = to_tensor(np.resize(images, (s.batch, *images.shape[1:])), device)
    steps, warm = -(-s.frames // s.batch), -(-s.warmup // s.batch)
    with torch.inference_mode(), autocast_for(device, s.precision):
        for _ in range(warm):
            model(x)
        _sync(device)
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(steps):
                model(x)
            end.record()
            end.synchronize()
            seconds = start.elapsed_time(end) / 1000.0
        else:
            t0 = time.perf_counter()
            for _ in range(steps):
                model(x)
            seconds = time.perf_counter() - t0
    return steps * s.batch / seconds


def time_engine(model: torch.nn.Module, s: BenchSettings, device: torch.device, images: np.ndarray) -> float:
    """Frames per second through the Engine: host uint8 in, host uint8 out, ``depth`` batches in flight."""
    engine = Engine(model, device, s.precision)
    batch = [Frame(images[i % len(images)], i, Fraction(1, 30), i) for i in range(s.batch)]
    steps, warm = -(-s.frames // s.batch), -(-s.warmup // s.batch)
    for _ in range(warm):
        engine.submit(batch)
    engine.drain()
    t0 = time.perf_counter()
    for _ in range(steps):
        engine.submit(batch)
    engine.drain()
    return steps * s.batch / (time.perf_counter() - t0)


def time_decode(path: str, s: BenchSettings) -> tuple[float, StreamInfo, list[np.ndarray]]:
    """Decode-only fps, the stream's info and up to 30 decoded frames (for the other measurements)."""
    from ..io.sources import open_source

    source = open_source(path)
    info = source.open()
    kept: list[np.ndarray] = []
    try:
        for _ in range(s.warmup):
            if (f := source.read()) is not None and len(kept) < 30:
                kept.append(f.image)
        t0, n = time.perf_counter(), 0
        while n < s.frames and (f := source.read()) is not None:
            n += 1
            if len(kept) < 30:
                kept.append(f.image)
        seconds = time.perf_counter() - t0
    finally:
        source.close()
    if not kept:
        raise ValueError(f"{path}: no frames decoded")
    return (n / seconds if n else 0.0), info, kept


def _sink(path: Path, s: BenchSettings):
    from ..io.sinks import open_sink

    return open_sink(str(path), codec=s.codec, crf=s.crf, preset=s.preset)


def time_encode(images: list[np.ndarray], info: StreamInfo, s: BenchSettings, tmp: Path) -> float:
    """Encode-only fps: ``images`` cycled through the sink; the clock stops after the final flush."""
    tb = Fraction(1, 30)
    sink = _sink(tmp / "encode_only.mp4", s)
    sink.open(StreamInfo(info.width, info.height, tb, Fraction(30), is_live=False))
    frames = (Frame(images[i % len(images)], i, tb, i) for i in range(s.warmup + s.frames))
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


def time_end_to_end(path: str, model: torch.nn.Module, s: BenchSettings, tmp: Path) -> tuple[float, PipelineStats]:
    """End-to-end fps of the real pipeline over the frames after the warm-up (final flush included)."""
    from ..io.sources import open_source

    marks: dict[str, float] = {}
    count = [0]

    def on_write(_: Frame) -> None:
        count[0] += 1
        if count[0] == s.warmup:
            marks["t0"] = time.perf_counter()

    pipe = Pipeline(
        open_source(path),
        model,
        _sink(tmp / "end_to_end.mp4", s),
        batch=s.batch,
        precision=s.precision,
        max_frames=s.warmup + s.frames,
        on_write=on_write,
    )
    t_start = time.perf_counter()
    stats = pipe.run()
    seconds = time.perf_counter() - marks.get("t0", t_start)
    return (stats.frames_written - min(s.warmup, stats.frames_written)) / seconds, stats


def run_bench(s: BenchSettings, log: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
    """All figures (medians over ``repeat`` rounds), ratios, per-stage figures, environment and settings."""
    device = resolve_device(s.device)
    model = build_model(s, device)
    env = environment(device)
    with tempfile.TemporaryDirectory(prefix="streamdehaze-bench-") as tmp_name:
        tmp = Path(tmp_name)
        path = s.input
        if path is None:
            log(f"generating a {s.width}x{s.height} H.264 clip of {s.warmup + s.frames} frames")
            path = str(make_clip(tmp / "input.mp4", s.width, s.height, s.warmup + s.frames))
        runs: dict[str, list[float]] = {k: [] for k in ("decode", "model", "engine", "encode", "end_to_end")}
        stats = None
        for r in range(s.repeat):
            log(f"round {r + 1}/{s.repeat}: decode-only")
            fps, info, images = time_decode(path, s)
            runs["decode"].append(fps)
            batch = np.stack(images[: s.batch])
            log(f"round {r + 1}/{s.repeat}: model-only")
            runs["model"].append(time_model(model, s, device, batch))
            runs["engine"].append(time_engine(model, s, device, batch))
            log(f"round {r + 1}/{s.repeat}: encode-only")
            runs["encode"].append(time_encode(images, info, s, tmp))
            log(f"round {r + 1}/{s.repeat}: end-to-end")
            fps, stats = time_end_to_end(path, model, s, tmp)
            runs["end_to_end"].append(fps)
    med = {k: statistics.median(v) for k, v in runs.items()}
    slowest = min(med["decode"], med["model"], med["encode"])
    settings = asdict(s) | {"width": info.width, "height": info.height, "resolution": f"{info.width}x{info.height}"}
    return {
        "model_fps": med["model"],
        "engine_fps": med["engine"],
        "decode_fps": med["decode"],
        "encode_fps": med["encode"],
        "end_to_end_fps": med["end_to_end"],
        "end_to_end_over_slowest": med["end_to_end"] / slowest if slowest else None,
        "end_to_end_over_model": med["end_to_end"] / med["model"] if med["model"] else None,
        "rounds": runs,
        "stages": stats.as_dict()["stages"] if stats else {},
        **env,
        "settings": settings,
    }
