"""Whole-process timing shared by the benchmarks that time commands as a user runs them."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

CLI = [sys.executable, "-c", "from streamdehaze.cli import entry; entry()"]  # what the streamdehaze script runs


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the process and its threads) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        shown = " ".join(command)
        sys.exit(f"command failed ({proc.returncode}): {shown}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


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


def compare(first: list[tuple[float, float]], second: list[tuple[float, float]], digits: int = 3) -> dict[str, object]:
    """Medians of (wall, CPU) seconds over rounds for two commands, and first / second for each
    (the ratio of the medians, and each round's wall ratio), rounded to ``digits``."""
    wall = statistics.median(w for w, _ in first), statistics.median(w for w, _ in second)
    cpu = statistics.median(c for _, c in first), statistics.median(c for _, c in second)
    return {
        "wall_s": [round(x, 2) for x in wall],
        "cpu_s": [round(x, 2) for x in cpu],
        "wall_ratio": round(wall[0] / wall[1], digits),
        "cpu_ratio": round(cpu[0] / cpu[1], digits),
        "round_wall_ratios": [round(a[0] / b[0], digits) for a, b in zip(first, second)],
        "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
    }


def record(info: dict, names: tuple[str, str], first: list, second: list, digits: int = 3) -> tuple[list, list]:
    """Store both commands' rounds under ``names`` and their :func:`compare` in ``info``; returns the
    (wall, CPU) medians of each."""
    for name, rounds in zip(names, (first, second)):
        info[name] = [[round(x, 2) for x in t] for t in rounds]
    info.update(compare(first, second, digits))
    return info["wall_s"], info["cpu_s"]


def print_json_or_machine(info: dict, as_json: bool) -> bool:
    """With ``as_json``, print ``info`` as one JSON object and return True (nothing more to print);
    else print the machine line of a text report and return False."""
    if as_json:
        print(json.dumps(info))
        return True
    print(f"machine: {json.dumps(info['machine'])}; load average at the end {info['load_average_at_end']}")
    return False
