"""Start-up time of the command line: ``--help``, an argument mistake, against plain Python and torch.

Each case runs as a fresh process ``--rounds`` times, the cases interleaved round by round so a
change in the machine's load hits them alike; the medians are printed with the machine, the load
average and the command lines. ``--pythonpath DIR`` times another checkout (e.g. the one before a
change) with the same interpreter.

  python benchmarks/startup.py [--rounds 5] [--pythonpath DIR] [--json]
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

CLI = [sys.executable, "-c", "from streamdehaze.cli import entry; entry()"]  # what the streamdehaze script runs
CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "streamdehaze --help": [*CLI, "--help"],
    "streamdehaze run --help": [*CLI, "run", "--help"],
    "streamdehaze run missing.mp4 -o x.mp4": [*CLI, "run", "missing.mp4", "-o", "x.mp4"],
}


def time_once(cmd: list[str], env: dict[str, str], cwd: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pythonpath", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": args.pythonpath}
    times: dict[str, list[float]] = {name: [] for name in CASES}
    codes: dict[str, int] = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as cwd:  # missing.mp4 is missing there; nothing is written
        for _ in range(args.rounds):
            for name, cmd in CASES.items():
                seconds, codes[name] = time_once(cmd, env, cwd)
                times[name].append(seconds)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "load_average_before_after": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
        "pythonpath": args.pythonpath,
        "rounds": args.rounds,
        "median_s": {name: round(statistics.median(v), 3) for name, v in times.items()},
        "all_s": {name: [round(x, 3) for x in v] for name, v in times.items()},
        "exit_codes": codes,
        "hyperfine": shutil.which("hyperfine"),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['machine']}; load average {result['load_average_before_after']} (before, after); "
          f"PYTHONPATH={args.pythonpath}; median of {args.rounds} interleaved rounds")  # fmt: skip
    for name, median in result["median_s"].items():
        print(f"  {median:7.3f} s  {name}  (exit {codes[name]}; all: {result['all_s'][name]})")


if __name__ == "__main__":
    main()
