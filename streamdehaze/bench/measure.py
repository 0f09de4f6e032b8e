"""Throughput measurements behind ``streamdehaze bench``.

Four figures from one run, each counting ``frames`` frames after ``warmup`` frames:

* ``model_fps``: the model on a device-resident ``(B, 3, H, W)`` float batch (CUDA events on GPU):
  the network at the working size behind the guided transfer to full resolution, with the
  temporal smoothing, as in the pipeline; no host transfers, no uint8 conversion;
* ``decode_fps``: the file source alone (demux, decode, RGB frames), the pipeline's decode stage;
* ``encode_fps``: the sink alone (RGB frames → H.264 file, including the final flush);
* ``end_to_end_fps``: the real :class:`~.runner.Pipeline`, file → model → encoded file.

Plus ``engine_fps``: host uint8 frames through the :class:`~.engine.Engine` (transfers and colour
conversion included): the pipeline's inference stage alone. ``work`` says, per figure, what was
timed (sizes, transfer, smoothing). Each stage alone runs in a worker thread, as in the pipeline
(see :mod:`.timing`). ``stages`` are the end-to-end run's own per-stage figures (frames per busy
second); ``end_to_end_over_slowest_stage`` compares with the slowest of them and is at most 1 by
construction. The input clip is generated (a textured, hazy scene panning slowly, H.264) unless a
file is given.

Speed settings (:class:`~.speed.SpeedSettings`: working size, keyframe interval, GPU tuning) apply to
the model, engine and end-to-end figures. ``compare`` adds variants (``key=value,...`` overrides of the
settings, keys: :data:`~streamdehaze.settings.COMPARE_KEYS`) measured in the same rounds, interleaved, so
their ratios to the base settings (``variants`` in the result, ``*_speedup``, and per round
``*_speedup_rounds``) are fair on a shared machine.
``measure`` picks which figures to take. The timed loops are in :mod:`.timing`.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import platform
import statistics
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import torch

from ..backends.select import describe_backend
from ..choices import MEASUREMENTS
from ..devices import device_name, resolve_device
from ..frames import StreamInfo
from ..nets.dehazer import Dehazer
from ..pipeline.engine import Engine
from ..pipeline.speed import SpeedSettings
from ..settings import SETTINGS, RunGroup, parse_overrides
from .timing import precision_error, time_decode, time_encode, time_end_to_end, time_engine, time_model


@dataclass
class BenchSettings(SpeedSettings, RunGroup):
    """What ``bench`` measures and how: the :class:`SpeedSettings` fields (working size, keyframes,
    tuning switches), the :class:`~streamdehaze.settings.RunGroup` ones (batch, precision, backend,
    flip average), the temporal smoothing flat (``temporal``, ``temporal_strength``: the
    ``--compare`` keys) plus the model, clip and measurement choices."""

    model: str = "aecrnet"
    weights: str | None = None
    random_weights: bool = False  # aecrnet with random weights of width ngf (timing only)
    ngf: int = 64
    width: int = 1280
    height: int = 720
    device: str = "auto"
    frames: int = 100
    warmup: int = 10
    codec: str = "libx264"
    crf: int = 18
    preset: str = "veryfast"
    input: str | None = None
    repeat: int = 1
    compare: tuple[str, ...] = ()
    measure: tuple[str, ...] = MEASUREMENTS
    peak: bool = False  # also count the network's FLOPs and measure the device's matmul peak
    temporal: str = "off"  # temporal smoothing (pipeline.temporal_engine): its cost shows in the engine figures
    temporal_strength: float = SETTINGS["temporal_strength"].default

    def engine(self, model: torch.nn.Module, device: torch.device) -> Engine:
        from ..pipeline.temporal_engine import TemporalSettings, build_engine

        temporal = TemporalSettings(self.temporal, self.temporal_strength)
        return build_engine(self, model, device, self.precision, temporal=temporal)


def bench_variants(s: BenchSettings) -> list[tuple[str, BenchSettings]]:
    """``[("base", s), (spec, s with spec's overrides), ...]`` for every ``--compare`` spec."""
    out = [("base", s)]
    for spec in s.compare:
        out.append((spec, dataclasses.replace(s, **parse_overrides(spec), compare=())))
    return out


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
        "onnxruntime_version": _version("onnxruntime"),
    }


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def build_model(s: BenchSettings, device: torch.device) -> Dehazer:
    from ..backends.select import load_dehazer, resolve_backend, to_onnxruntime
    from ..nets.registry import MODELS, build_network

    if s.random_weights:
        torch.manual_seed(0)
        net = build_network(s.model, ngf=s.ngf).eval()
        if hasattr(net, "fold_for_inference"):
            net.fold_for_inference()
        info = {"weights": "random", "ngf": s.ngf, "backend": "torch"}
        model = Dehazer(net.to(device), s.model, MODELS[s.model].multiple, info, s.flip_average).eval()
        if resolve_backend(s.backend, s.model, None, device, s.precision) == "onnxruntime":
            return to_onnxruntime(model, device, s.precision)
        return model
    return load_dehazer(s.model, s.weights, device, s.backend, s.precision, s.flip_average)


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


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def weights_text(model: Dehazer, s: BenchSettings) -> str:
    """The weights actually timed: a file (the shipped one when none was given), random, or none."""
    if s.random_weights:
        return f"random (ngf {s.ngf})"
    path = (getattr(model, "info", None) or {}).get("weights")
    return str(path) if path else "none needed"


def work_texts(s: BenchSettings, device: torch.device, model: Dehazer, info: StreamInfo, yuv: bool) -> dict[str, str]:
    """What each figure times, in words; ``network``: the dehazing work shared by the model, engine and
    end-to-end figures (network size, transfer, keyframes, smoothing, batch, precision, tuning)."""
    from ..pipeline.temporal_engine import TemporalSettings

    size = f"{info.width}x{info.height}"
    frames = "yuv420p planes" if yuv else "RGB frames"
    network = s.describe(device, info.height, info.width, model=model)  # working size, fit, keyframes, tuning
    temporal = TemporalSettings(s.temporal, s.temporal_strength).describe()
    return {
        "network": f"{getattr(model, 'name', 'model')}, {network}; {temporal}; batch {s.batch}, {s.precision}",
        "decode": f"{size} file → {frames} (the pipeline's source)",
        "model": f"the dehazing below on {size} float frames already on {device} (no uint8, no copies)",
        "engine": f"the same from {size} uint8 {frames} on the host and back (the pipeline's inference stage)",
        "encode": f"{size} {frames} → {s.codec} {s.preset} crf {s.crf} file, flush included",
        "end_to_end": "file → decode → engine → encode → file, three threads",
    }


def _peak_figures(model, s: BenchSettings, device: torch.device, info: StreamInfo, fig: dict) -> dict:
    """Network FLOPs per frame at the working size and the share of the matmul peak they reach."""
    from .flops import matmul_peak_tflops, network_flops

    h, w = s.resolved_work_size(device, model).size_for(info.height, info.width)
    flops = network_flops(model, h, w, device)
    keys = fig.get("model_keyframes") or {}
    calls_per_frame = keys["keyframes"] / keys["frames"] if keys.get("frames") else 1.0
    achieved = flops * calls_per_frame * (fig["model_fps"] or 0.0) / 1e12
    peak = matmul_peak_tflops(device, s.precision)
    return {
        "network_gflops_per_call": flops / 1e9,
        "model_tflops": achieved,
        "matmul_peak_tflops": peak,
        "peak_fraction": achieved / peak if peak else None,
    }


def run_bench(s: BenchSettings, log: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
    """All figures (medians over ``repeat`` rounds) for the base settings and each ``compare``
    variant, ratios, per-stage figures, environment and settings."""
    unknown = set(s.measure) - set(MEASUREMENTS)
    if unknown:
        raise ValueError(f"unknown measurements {sorted(unknown)}; expected some of {MEASUREMENTS}")
    device = resolve_device(s.device)
    model = base_model = build_model(s, device)
    models = {(s.backend, s.precision): base_model}  # one loaded model per backend (and precision), shared
    log(f"speed settings on {device}: {s.describe(device, model=model)}")
    env = environment(device)
    variants = bench_variants(s)
    yuv = s.use_device_yuv(device)
    with tempfile.TemporaryDirectory(prefix="streamdehaze-bench-") as tmp_name:
        tmp = Path(tmp_name)
        path = s.input
        if path is None:
            log(f"generating a {s.width}x{s.height} H.264 clip of {s.warmup + s.frames} frames")
            path = str(make_clip(tmp / "input.mp4", s.width, s.height, s.warmup + s.frames))
        runs = {label: {k: [] for k in MEASUREMENTS} for label, _ in variants}
        extra: dict[str, dict[str, Any]] = {label: {} for label, _ in variants}
        for r in range(s.repeat):
            step = f"round {r + 1}/{s.repeat}"
            log(f"{step}: decode-only")
            fps, info, images = time_decode(path, s, yuv)
            if "decode" in s.measure:
                runs["base"]["decode"].append(fps)
            for label, v in variants:
                name = "" if label == "base" else f" ({label})"
                if (v.backend, v.precision) not in models:
                    models[v.backend, v.precision] = build_model(v, device)
                model = models[v.backend, v.precision].with_flip_average(v.flip_average)  # the same weights
                batch = np.stack([images[i % len(images)] for i in range(v.batch)])
                if "model" in s.measure:
                    log(f"{step}: model-only{name}")
                    fps, counts = time_model(model, v, device, batch)
                    runs[label]["model"].append(fps)
                    extra[label]["model_keyframes"] = counts
                if "engine" in s.measure:
                    log(f"{step}: engine{name}")
                    runs[label]["engine"].append(time_engine(model, v, device, batch))
                if "end_to_end" in s.measure:
                    log(f"{step}: end-to-end{name}")
                    fps, stats, counts = time_end_to_end(path, model, v, tmp, device)
                    runs[label]["end_to_end"].append(fps)
                    extra[label].update(stats=stats, keyframes=counts)
            if "encode" in s.measure:
                log(f"{step}: encode-only")
                runs["base"]["encode"].append(time_encode(images, info, s, tmp, yuv))
        accuracy = precision_error(base_model, s, device, np.stack(images)) if s.precision != "fp32" else None
    results = []
    for label, v in variants:
        model = models[v.backend, v.precision].with_flip_average(v.flip_average)
        fig = {f"{k}_fps": _median(runs[label][k]) for k in ("model", "engine", "end_to_end")}
        fig["model_keyframes"] = extra[label].get("model_keyframes")
        if s.peak and fig["model_fps"]:
            log(f"counting FLOPs{'' if label == 'base' else f' ({label})'}")
            counted = model  # FLOPs are counted on the torch network, the same for every backend
            if describe_backend(model) != "torch":
                counted = build_model(dataclasses.replace(v, backend="torch"), device).with_flip_average(v.flip_average)
            fig.update(_peak_figures(counted, v, device, info, fig))
        overrides = {} if label == "base" else parse_overrides(label)
        work = v.resolved_work_size(device, model)
        results.append({
            "label": label,
            "overrides": overrides,
            "work_size": v.describe(device, info.height, info.width, model=model),
            "network_size": "{1}x{0}".format(*work.size_for(info.height, info.width)),
            "keyframe_interval": v.keyframe_interval,
            "backend": describe_backend(model),
            "keyframes": extra[label].get("keyframes"),
            **fig,
            "rounds": runs[label],
        })  # fmt: skip
    base = results[0]
    for res in results:
        for k in ("model", "engine", "end_to_end"):
            res[f"{k}_speedup"] = _ratio(res[f"{k}_fps"], base[f"{k}_fps"])
            # the same ratio round by round (each round measures every variant back to back, so a
            # shared machine's slow drifts cancel), and its median
            per_round = [a / b for a, b in zip(res["rounds"][k], base["rounds"][k]) if a and b]
            res[f"{k}_speedup_rounds"] = per_round
            res[f"{k}_speedup_median_of_rounds"] = _median(per_round)
    med = {k: _median(runs["base"][k]) for k in MEASUREMENTS}
    # the pipeline's inference stage alone is the engine (the model figure when it was not taken)
    singles = [med[k] for k in ("decode", "engine" if med["engine"] else "model", "encode") if med[k]]
    slowest = min(singles) if len(singles) == 3 else None
    stats = extra["base"].get("stats")
    stages = stats.as_dict()["stages"] if stats else {}
    # the end-to-end run's own stages: same frames, same run, so end to end <= the slowest of them
    slowest_stage = min(stats.stages.values(), key=lambda st: st.capacity_fps) if stats else None
    e2e_runs = runs["base"]["end_to_end"]
    settings = asdict(s) | {"width": info.width, "height": info.height, "resolution": f"{info.width}x{info.height}"}
    return {
        "model_fps": med["model"],
        "engine_fps": med["engine"],
        "decode_fps": med["decode"],
        "encode_fps": med["encode"],
        "end_to_end_fps": med["end_to_end"],
        "end_to_end_over_slowest": _ratio(med["end_to_end"], slowest),
        "end_to_end_over_model": _ratio(med["end_to_end"], med["model"]),
        "slowest_stage": slowest_stage.name if slowest_stage else None,
        "slowest_stage_fps": slowest_stage.capacity_fps if slowest_stage else None,
        # the last round's end-to-end figure against that round's own stages
        "end_to_end_over_slowest_stage": _ratio(e2e_runs[-1], slowest_stage.capacity_fps) if slowest_stage else None,
        "work": work_texts(s, device, base_model, info, yuv),
        "weights": weights_text(base_model, s),
        "work_size": base["work_size"],
        "backend": base["backend"],
        "keyframes": base["keyframes"],
        "precision_error": accuracy,
        "variants": results,
        "rounds": runs["base"],
        "stages": stages,
        **{
            k: base[k]
            for k in ("network_gflops_per_call", "model_tflops", "matmul_peak_tflops", "peak_fraction")
            if k in base
        },
        **env,
        "settings": settings,
    }
