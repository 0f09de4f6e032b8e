"""Peak resident memory of the streaming pipeline against clip length.

For each ``--frames`` count, generates an H.264 clip (``streamdehaze.bench.measure.make_clip``),
then dehazes it in a fresh child process and reads that process's peak RSS (``VmHWM`` from
/proc/self/status, which is what ``resource.getrusage`` reports as ``ru_maxrss`` too). Memory is
bounded when the peak does not grow with the length: the queues hold at most
``2 * queue_size + batch * (depth + 1)`` frames whatever the clip's length.

    python benchmarks/memory.py --frames 300 3000 --resolution 320x240 --model identity
    python benchmarks/memory.py --frames 300 3000 --model dcp --json

``identity`` (a model that returns its input) makes decode and encode the bottleneck, so both
queues run full; ``dcp`` makes the model the bottleneck, so the input queue runs full.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def vm_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def child(clip: str, out: str, model_name: str, batch: int) -> None:
    """Runs in a fresh process: dehaze ``clip`` and print peak RSS as JSON."""
    import torch

    from streamdehaze import dehaze_video
    from streamdehaze.nets.dehazer import Dehazer
    from streamdehaze.nets.registry import load_model

    if model_name == "identity":
        model = Dehazer(torch.nn.Identity(), "identity")
    else:
        model = load_model(model_name, device="cpu")
    rss_ready = vm_kb("VmRSS")
    t0 = time.perf_counter()
    summary = dehaze_video(clip, out, model=model, batch=batch)
    print(
        json.dumps(
            {
                "frames_written": summary["frames_written"],
                "seconds": round(time.perf_counter() - t0, 2),
                "rss_ready_mb": round(rss_ready / 1024, 1),
                "peak_rss_mb": round(vm_kb("VmHWM") / 1024, 1),
                "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[300, 3000])
    ap.add_argument("--resolution", default="320x240")
    ap.add_argument("--model", default="identity", help="identity, dcp, or aecrnet (needs shipped weights)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--child", nargs=2, metavar=("CLIP", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.model, args.batch)
        return

    from streamdehaze.bench.measure import make_clip

    width, height = (int(v) for v in args.resolution.lower().split("x"))
    runs = {}
    with tempfile.TemporaryDirectory(prefix="streamdehaze-mem-") as tmp:
        for n in args.frames:
            clip = make_clip(Path(tmp) / f"in_{n}.mp4", width, height, n)
            cmd = [sys.executable, __file__, "--model", args.model, "--batch", str(args.batch)]
            proc = subprocess.run(
                cmd + ["--child", str(clip), str(Path(tmp) / f"out_{n}.mp4")], capture_output=True, text=True
            )
            if proc.returncode:
                sys.exit(f"child failed for {n} frames:\n{proc.stderr}")
            runs[n] = json.loads(proc.stdout.strip().splitlines()[-1])
            clip.unlink()
    frame_mb = width * height * 3 / 2**20
    queue = max(4, 2 * args.batch)
    bound_frames = 2 * queue + args.batch * 3
    result = {
        "machine": platform.node(),
        "resolution": args.resolution,
        "model": args.model,
        "batch": args.batch,
        "frames_in_flight_bound": bound_frames,
        "frames_in_flight_mb": round(bound_frames * frame_mb, 1),
        "runs": runs,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.model} at {args.resolution}, batch {args.batch}, on {platform.node()} ({platform.machine()})")
    print(f"queues and batches hold <= {bound_frames} frames ({result['frames_in_flight_mb']} MB of RGB)")
    for n, r in runs.items():
        print(
            f"{n:>6} frames: peak RSS {r['peak_rss_mb']:7.1f} MB (ready {r['rss_ready_mb']:.1f} MB), "
            f"{r['frames_written']} written in {r['seconds']} s"
        )


if __name__ == "__main__":
    main()
