"""A folder through one ``streamdehaze run DIR -o OUT/`` against one ``streamdehaze run`` per file.

Whole processes, start-up included (Python, torch, the model load): that is what a user pays. The
folder holds ``--copies`` copies of ``--clip`` (hard links where possible); each round times the
batch command and then the separate commands one after the other; the figure is the ratio of
the medians over the rounds, batch / separate (below 1: the batch is faster), for wall time and
for CPU time (user + system of the commands: less sensitive to other jobs on a shared machine,
which stretch wall time but not the work done). Extra arguments
after ``--`` go to every command (e.g. ``-- --model dcp``).

    python benchmarks/batch_vs_separate.py
    python benchmarks/batch_vs_separate.py --copies 8 --rounds 3 -- --work-size 160
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from processes import CLI, machine, print_json_or_machine, record, timed

ROOT = Path(__file__).resolve().parents[1]


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
    batch: list[tuple[float, float]] = []
    separate: list[tuple[float, float]] = []
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
            batch.append(timed([*CLI, "run", str(folder), "-o", f"{out}/", *args.extra]))
            files = sorted(folder.iterdir())
            runs = [
                timed([*CLI, "run", str(f), "-o", str(Path(tmp) / f"sep_{r}" / f.name), *args.extra]) for f in files
            ]
            separate.append((sum(w for w, _ in runs), sum(c for _, c in runs)))
            print(f"round {r + 1}: batch {batch[-1]}, separate {separate[-1]} (wall s, CPU s)", file=sys.stderr)
    wall, cpu = record(info, ("batch", "separate"), batch, separate)
    if print_json_or_machine(info, args.json):
        return
    print(f"clip: {args.clip} x {args.copies}; settings: {info['settings']}; rounds: {args.rounds}")
    print(f"one batch command:     {wall[0]:7.1f} s wall, {cpu[0]:7.1f} s CPU (medians)")
    print(f"{args.copies} separate commands: {wall[1]:7.1f} s wall, {cpu[1]:7.1f} s CPU (medians of the sums)")
    print(f"ratio batch / separate: {info['wall_ratio']:.3f} wall, {info['cpu_ratio']:.3f} CPU (target <= 0.9)")


if __name__ == "__main__":
    main()
