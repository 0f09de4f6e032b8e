"""Where the inference stage's time goes, per frame, on the sample clip (issue 22's profile).

Each step of the shipped model's default video path is timed alone on the same batch of decoded
frames, in a worker thread as the pipeline runs it, medians over ``--repeat`` rounds: decode
(file → RGB uint8, the source's colour conversion), uint8 → float and the float downscale to the
working size (the generic path) or the downscale straight from the uint8 frames (the CPU's path),
the network, the transfer's fit (with the guard), the temporal smoothing (``ema``; ``motion``: the
flow estimate and the smoothing step; ``flow``: its finer flow and the output filter's uint8 step),
upsample + apply at full resolution, float → uint8 (or the CPU's apply straight into uint8 frames),
and the encoder's RGB → YUV conversion plus libx264. The engine's own time for the same batch is the
last rows: float tensors in and out (``Engine.infer``), and uint8 frames in and out as the pipeline
runs it, without smoothing, with the default (``motion``) and with ``flow``.

    python benchmarks/profile_cpu.py
    python benchmarks/profile_cpu.py --backend torch --batch 4 --repeat 7
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from processes import machine, print_json_or_machine

ROOT = Path(__file__).resolve().parents[1]


def median_seconds(fn, repeat: int) -> float:
    from streamdehaze.bench.timing import in_worker

    @in_worker
    def rounds() -> list[float]:
        fn()  # warm-up
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return times

    return statistics.median(rounds())


def main() -> None:
    from streamdehaze.backends.select import describe_backend, load_dehazer
    from streamdehaze.io.sinks import open_sink
    from streamdehaze.io.sources import open_source
    from streamdehaze.ops.color import to_tensor, to_uint8
    from streamdehaze.ops.cpu_kernels import apply_affine_uint8, shrink_uint8
    from streamdehaze.ops.guided import apply_affine
    from streamdehaze.ops.transfer_fit import default_radius, downscale, downscale_uint8, guarded_fit
    from streamdehaze.pipeline.speed import SpeedSettings
    from streamdehaze.pipeline.temporal import CoefficientSmoother, TemporalConfig, fit_shape
    from streamdehaze.pipeline.temporal_engine import TemporalSettings
    from streamdehaze.pipeline.temporal_flow import FlowSmoother, gray_uint8
    from streamdehaze.pipeline.temporal_motion import MotionEstimator

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default=str(ROOT / "samples" / "foggy_drive.mp4"))
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    dehazer = load_dehazer("aecrnet", device="cpu", backend=args.backend)
    speed = SpeedSettings()
    t = speed.transfer("cpu", dehazer)
    with open_source(args.clip) as src:
        info = src.info
        frames = [f for _, f in zip(range(args.batch), src)]
    images = [f.image for f in frames]
    n = len(images)

    def decode() -> None:
        with open_source(args.clip) as s:
            for _, _f in zip(range(n), s):
                pass

    x8 = torch.from_numpy(__import__("numpy").stack(images))
    x = to_tensor(x8)
    size = t.size_for(*x.shape[-2:])
    low = downscale(x, size)
    y = dehazer(low)
    r = default_radius(*low.shape[-2:], t.fit)
    a, b = guarded_fit(low, y, r, t.eps, t.shared_gain, t.guard)
    smoother = CoefficientSmoother(TemporalConfig())
    out = apply_affine(a, b, x)
    out8 = to_uint8(out).numpy()

    def smooth() -> None:
        for i in range(n):
            smoother.step(low[i : i + 1], a[i : i + 1], b[i : i + 1])

    estimator = MotionEstimator()
    estimator(low)  # a past for the timed calls
    motion = estimator(low)
    along = CoefficientSmoother(TemporalConfig(mode="motion"))
    along.step(low[:1], a[:1], b[:1], None, motion.at(0))

    def smooth_along() -> None:
        for i in range(n):
            along.step(low[i : i + 1], a[i : i + 1], b[i : i + 1], None, motion.at(i))

    # flow's output filter: the flow of each frame to the one before (a first call gives the first frame a past)
    flow_filter = FlowSmoother(TemporalConfig(mode="flow"))
    small = shrink_uint8(x8, fit_shape(*x8.shape[1:3], flow_filter.config.flow_size))
    flow_filter.estimator.flows(gray_uint8(small).numpy())
    flows = [torch.from_numpy(f).permute(2, 0, 1)[None] for f in flow_filter.estimator.flows(gray_uint8(small).numpy())]
    outs8 = torch.from_numpy(out8)
    flow_filter.step_uint8(x8[-1], outs8[-1], None, None, small[-1:])  # a past of the same size

    def flow_step() -> None:
        for i in range(n):
            flow_filter.step_uint8(x8[i], outs8[i], None, flows[i], small[i : i + 1])

    def encode() -> None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            sink = open_sink(str(Path(tmp) / "o.mp4"))
            sink.open(info)
            for f, img in zip(frames, out8):
                sink.write(dataclasses.replace(f, image=img))
            sink.close()

    engine = speed.build_engine(dehazer, torch.device("cpu"), temporal=None)
    engine_motion = speed.build_engine(dehazer, torch.device("cpu"), temporal=TemporalSettings(mode="motion"))
    engine_flow = speed.build_engine(dehazer, torch.device("cpu"), temporal=TemporalSettings(mode="flow"))
    steps = {
        "decode (file -> RGB)": decode,
        "uint8 -> float": lambda: to_tensor(x8),
        "downscale (float)": lambda: downscale(x, size),
        "downscale from uint8 (CPU path)": lambda: downscale_uint8(x8, size),
        "network": lambda: dehazer(low),
        "fit + guard": lambda: guarded_fit(low, y, r, t.eps, t.shared_gain, t.guard),
        "smoothing (ema)": smooth,
        "motion estimate (motion)": lambda: estimator(low),
        "smoothing step (motion)": smooth_along,
        "finer flow (flow: shrink + DIS)": lambda: flow_filter.estimator.flows(
            gray_uint8(shrink_uint8(x8, small.shape[-2:])).numpy()
        ),
        "output filter, uint8 step (flow)": flow_step,
        "upsample + apply (float)": lambda: apply_affine(a, b, x),
        "float -> uint8": lambda: to_uint8(out),
        "apply into uint8 (ops/cpu_kernels)": lambda: apply_affine_uint8(a, b, x8),
        "encode (RGB -> YUV, x264)": encode,
        "engine, float in and out (infer)": lambda: engine.infer(x),
        "engine, uint8 frames in and out": lambda: engine._forward(x8),
        "engine, uint8, --temporal motion": lambda: engine_motion._forward(x8),
        "engine, uint8, --temporal flow": lambda: engine_flow._forward(x8),
    }
    per_frame = {name: median_seconds(fn, args.repeat) / n * 1000 for name, fn in steps.items()}
    result = {
        "machine": machine(),
        "clip": args.clip,
        "frame": f"{x.shape[-1]}x{x.shape[-2]}",
        "working size": f"{size[1]}x{size[0]}",
        "backend": describe_backend(dehazer),
        "batch": n,
        "threads": torch.get_num_threads(),
        "ms_per_frame": {k: round(v, 2) for k, v in per_frame.items()},
    }
    result["load_average_at_end"] = [round(x, 1) for x in os.getloadavg()]
    if print_json_or_machine(result, args.json):
        return
    print(f"{args.clip}: {result['frame']}, working size {result['working size']}, {result['backend']}, ", end="")
    print(f"batch {n}, torch threads {result['threads']}, medians of {args.repeat}")
    for name, ms in per_frame.items():
        print(f"  {name:34s} {ms:8.2f} ms/frame")


if __name__ == "__main__":
    sys.exit(main())
