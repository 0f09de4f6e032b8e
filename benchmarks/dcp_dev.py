"""Dark channel prior on the SOTS dev splits: mean PSNR / SSIM of DCP and of the hazy input, and
DCP time per 1280×720 frame.

Usage: python benchmarks/dcp_dev.py [DATA_DIR] [--device cpu] [--airlight mean|max] [--threads N] [--time-only]
DATA_DIR defaults to $STREAMDEHAZE_DATA or ../shared/data beside the repository.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from streamdehaze.io.stills import read_image
from streamdehaze.metrics import psnr, ssim
from streamdehaze.nets.dcp import DarkChannelPrior
from streamdehaze.ops.color import to_tensor
from streamdehaze.pairs import find_pairs

SPLITS = ("sots-indoor/dev", "sots-outdoor/dev")


def default_data_dir() -> Path:
    env = os.environ.get("STREAMDEHAZE_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


@torch.no_grad()
def evaluate(split_dir: Path, model: torch.nn.Module, device: str = "cpu") -> dict[str, float]:
    """Mean PSNR / SSIM of the model's output and of the hazy input over a split's pairs."""
    sums = {"dcp_psnr": 0.0, "dcp_ssim": 0.0, "hazy_psnr": 0.0, "hazy_ssim": 0.0}
    ps = find_pairs(split_dir / "hazy", split_dir / "clear")
    for hazy_path, clear_path in ps:
        hazy = to_tensor(read_image(hazy_path), device)
        clear = to_tensor(read_image(clear_path), device)
        out = model(hazy)
        sums["dcp_psnr"] += psnr(out, clear).item()
        sums["dcp_ssim"] += ssim(out, clear).item()
        sums["hazy_psnr"] += psnr(hazy, clear).item()
        sums["hazy_ssim"] += ssim(hazy, clear).item()
    return {k: v / len(ps) for k, v in sums.items()} | {"pairs": len(ps)}


@torch.no_grad()
def time_per_frame(model: torch.nn.Module, device: str, repeats: int = 10) -> float:
    """Median seconds per 1280×720 frame (batch 1), after one warm-up run."""
    x = torch.rand(1, 3, 720, 1280, device=device)
    model(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", type=Path, default=default_data_dir())
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--airlight", default="mean", choices=("max", "mean"))
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--time-only", action="store_true", help="skip the data sets, only time a 1280x720 frame")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = DarkChannelPrior(airlight=args.airlight).to(args.device)
    print(
        f"machine: {cpu_name()}, torch threads {torch.get_num_threads()}, "
        f"device {args.device}; DCP patch 15, omega 0.95, t0 0.1, eps 1e-3, airlight {args.airlight}"
    )
    for split in () if args.time_only else SPLITS:
        r = evaluate(args.data / split, model, args.device)
        print(
            f"{split}: {r['pairs']} pairs  DCP {r['dcp_psnr']:.2f} dB / SSIM {r['dcp_ssim']:.4f}   "
            f"hazy {r['hazy_psnr']:.2f} dB / SSIM {r['hazy_ssim']:.4f}"
        )
    print(f"DCP time per 1280x720 frame: {time_per_frame(model, args.device) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
