"""A folder through one ``streamdehaze run DIR -o OUT/`` against one ``streamdehaze run`` per file.

Whole processes, start-up included (Python, torch, the model load): that is what a user pays. The
folder holds ``--copies`` copies of ``--clip`` (hard links where possible); each round times the
batch command and then the separate commands one after the other; the figure is the ratio of
the medians over the rounds, batch / separate (below 1: the batch is faster). Extra arguments
after ``--`` go to every command (e.g. ``-- --model dcp``).

    python benchmarks/batch_vs_separate.py
    python benchmarks/batch_vs_separate.py --copies 8 --rounds 3 -- --work-size 160
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from streamdehaze.cli import main; main()"]


def timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(args)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return seconds


def machine() -> dict[str, object]:
    import torch

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_average_at_start": [round(x, 1) for x in os.getloadavg()],
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default=str(ROOT / "samples" / "foggy_drive.mp4"))
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="Print one JSON object instead of text.")
    parser.add_argument("extra", nargs="*", help="Arguments for every run command (after --).")
    args = parser.parse_args()
    info = {"machine": machine(), "clip": args.clip, "copies": args.copies, "rounds": args.rounds}
    info["settings"] = " ".join(args.extra) or "(defaults)"
    batch_s, separate_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for i in range(args.copies):
            target = folder / f"drive_{i:02d}{Path(args.clip).suffix}"
            try:
                os.link(args.clip, target)
            except OSError:
                shutil.copy(args.clip, target)
        for r in range(args.rounds):
            out = Path(tmp) / f"batch_{r}"
            batch_s.append(timed(["run", str(folder), "-o", f"{out}/", *args.extra]))
            files = sorted(folder.iterdir())
            separate_s.append(
                sum(timed(["run", str(f), "-o", str(Path(tmp) / f"sep_{r}" / f.name), *args.extra]) for f in files)
            )
            print(f"round {r + 1}: batch {batch_s[-1]:.1f} s, separate {separate_s[-1]:.1f} s", file=sys.stderr)
    b, s = statistics.median(batch_s), statistics.median(separate_s)
    info.update(batch_s=[round(x, 2) for x in batch_s], separate_s=[round(x, 2) for x in separate_s])
    info.update(batch_median_s=round(b, 2), separate_median_s=round(s, 2), ratio=round(b / s, 3))
    if args.json:
        print(json.dumps(info))
        return
    print(f"machine: {json.dumps(info['machine'])}")
    print(f"clip: {args.clip} x {args.copies}; settings: {info['settings']}; rounds: {args.rounds}")
    print(f"one batch command:     {b:7.1f} s (median)")
    print(f"{args.copies} separate commands: {s:7.1f} s (median of the sums)")
    print(f"ratio batch / separate: {b / s:.3f} (target <= 0.9)")


if __name__ == "__main__":
    main()
