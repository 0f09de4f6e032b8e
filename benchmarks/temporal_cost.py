"""What a ``--temporal`` mode adds to the engine's time per frame, against ``off``, in one process.

``streamdehaze bench --compare temporal=off`` times whole variants one after the other; on a shared
machine its medians move by several points between runs, more than a smoothing's few milliseconds.
Here the engines of both modes (the shipped model, default speed settings, the CPU) take the same
decoded frames of the sample clip batch after batch in alternating order, and the figure is the
median of the per-round ratios (issue 17's bar for the default ``motion``: at most 1.15).

    python benchmarks/temporal_cost.py
    python benchmarks/temporal_cost.py --mode ema --rounds 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from processes import machine, print_json_or_machine

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    import torch

    from streamdehaze.backends.select import describe_backend, load_dehazer
    from streamdehaze.io.sources import open_source
    from streamdehaze.pipeline.speed import SpeedSettings
    from streamdehaze.pipeline.temporal_engine import TemporalSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default=str(ROOT / "samples" / "foggy_drive.mp4"))
    parser.add_argument("--mode", default="motion", help="The temporal mode timed against off [motion].")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    dehazer = load_dehazer("aecrnet", device="cpu", backend="auto")
    with open_source(args.clip) as src:
        frames = np.stack([f.image for _, f in zip(range(args.frames), src)])
    modes = ("off", args.mode)
    engines = {
        m: SpeedSettings().build_engine(dehazer, torch.device("cpu"), temporal=TemporalSettings(mode=m)) for m in modes
    }
    for engine in engines.values():
        engine.process(frames[: args.batch])  # warm-up; the smoothing's state starts here
    ms: dict[str, list[float]] = {m: [] for m in modes}
    for r in range(args.rounds):
        for m in modes if r % 2 == 0 else modes[::-1]:
            t0 = time.perf_counter()
            for i in range(0, len(frames), args.batch):
                engines[m].process(frames[i : i + args.batch])
            ms[m].append((time.perf_counter() - t0) / len(frames) * 1000)
    ratios = [b / a for a, b in zip(ms["off"], ms[args.mode])]
    result = {
        "machine": machine(),
        "clip": args.clip,
        "frame": f"{frames.shape[2]}x{frames.shape[1]}",
        "backend": describe_backend(dehazer),
        "batch": args.batch,
        "frames": len(frames),
        "rounds": args.rounds,
        "ms_per_frame": {m: round(statistics.median(v), 2) for m, v in ms.items()},
        "ratios": [round(x, 3) for x in ratios],
        "ratio": round(statistics.median(ratios), 3),
    }
    result["load_average_at_end"] = [round(x, 1) for x in os.getloadavg()]
    if print_json_or_machine(result, args.json):
        return
    print(f"{args.clip}: {result['frame']}, {result['backend']}, batch {args.batch}, {len(frames)} frames, ", end="")
    print(f"{args.rounds} rounds alternating the order, default speed settings")
    times = result["ms_per_frame"]
    print(f"engine ms/frame (medians): off {times['off']}, {args.mode} {times[args.mode]}")
    print(f"{args.mode} / off per round: {result['ratios']}; median {result['ratio']}")


if __name__ == "__main__":
    sys.exit(main())
