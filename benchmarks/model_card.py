"""The figures of a model card: ``streamdehaze eval`` of a weight file on the dev splits and the
real pairs, next to the hazy input and the dark channel prior, as a markdown table.

Usage: python benchmarks/model_card.py [--weights models/aecrnet.pt] [--data DIR]
       [--work-size model,model+flip,model+local,model+off,full]

Suffixes of a working size: ``+flip`` evaluates it with ``--flip-average``, ``+wide`` / ``+local``
with that ``--transfer-fit``, ``+range`` / ``+off`` with that ``--guard`` (several: ``model+flip+local``).

Each row is one ``streamdehaze eval --json`` call (printed, so it can be rerun by hand).
DATA_DIR defaults to $STREAMDEHAZE_DATA or ../shared/data beside the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

# real-pairs has no dev split: the shipped model trains on it, so its figures are train-split ones
SETS = ("sots-indoor/dev", "sots-outdoor/dev", "real-pairs")


def default_data_dir() -> Path:
    env = os.environ.get("STREAMDEHAZE_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def run_eval(data: Path, model: str, weights: str | None, work_size: str) -> tuple[dict, float, str]:
    work_size, *suffixes = work_size.split("+")
    unknown = set(suffixes) - {"flip", "wide", "local", "range", "off"}
    if unknown:
        raise SystemExit(f"--work-size: unknown suffix +{unknown.pop()} (expected +flip, +wide, +local, +range, +off)")
    cmd = ["streamdehaze", "eval", "--model", model, "--work-size", work_size, "--json"]
    if "flip" in suffixes:
        cmd.append("--flip-average")
    cmd += [arg for fit in ("wide", "local") if fit in suffixes for arg in ("--transfer-fit", fit)]
    cmd += [arg for guard in ("range", "off") if guard in suffixes for arg in ("--guard", guard)]
    if weights:
        cmd += ["--weights", weights]
    for name in SETS:
        cmd += ["--hazy", str(data / name / "hazy"), "--clear", str(data / name / "clear")]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1]), time.perf_counter() - t0, " ".join(cmd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="weight file (default: the shipped aecrnet.pt)")
    ap.add_argument("--data", type=Path, default=default_data_dir())
    ap.add_argument(
        "--work-size",
        default="model,model+flip,model+local,model+range,model+off,full",
        help="comma-separated --work-size values for AECR-Net with suffixes (see the module's help)",
    )
    args = ap.parse_args()

    rows = []  # (label, {set: (psnr, ssim)})
    baseline = None
    runs = [("aecrnet", ws) for ws in args.work_size.split(",")] + [("dcp", "full")]
    for model, ws in runs:
        result, seconds, cmd = run_eval(args.data, model, args.weights if model == "aecrnet" else None, ws)
        print(f"# {cmd}  ({seconds:.0f} s)", file=sys.stderr)
        per_set = {}
        for name, stats in zip(SETS, result["sets"].values()):
            per_set[name] = (stats["psnr"], stats["ssim"])
        if baseline is None:
            baseline = {n: (s["input_psnr"], s["input_ssim"]) for n, s in zip(SETS, result["sets"].values())}
        flags = ", `--flip-average`" if result.get("flip_average") else ""
        flags += f", `--transfer-fit {result['transfer_fit']}`" if result.get("transfer_fit") else ""
        flags += f", `--guard {result['guard']}`" if result.get("guard") not in (None, "on") else ""
        rows.append((f"`{model}`, work size {result['work_size']}{flags}", per_set))
    rows.insert(0, ("hazy input", baseline))

    print(f"machine: {platform.node()} ({os.cpu_count()} CPUs), python {platform.python_version()}")
    print()
    print("| PSNR dB / SSIM | " + " | ".join(f"`{name}`" for name in SETS) + " |")
    print("|---|" + "---|" * len(SETS))
    counts = {name: s["n"] for name, s in zip(SETS, result["sets"].values())}
    print("| pairs | " + " | ".join(str(counts[name]) for name in SETS) + " |")
    for label, per_set in rows:
        cells = [f"{per_set[name][0]:.2f} / {per_set[name][1]:.3f}" for name in SETS]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
