"""Quality of the working-size transfer: PSNR on the SOTS dev splits at full resolution and at
1/2, 1/3, 1/4 working size (network at the lower resolution, guided transfer back to full size).

For every image: the model at full resolution, then at each scale; the loss of a scale is
``PSNR(full) − PSNR(scale)`` against the clear image (the done-criterion: ≤ 0.5 dB at 1/2), and
``fidelity`` is the PSNR of the transferred result against the full-resolution output itself.

Usage:
  python benchmarks/work_size_quality.py [DATA_DIR] [--model aecrnet|dcp] [--weights PATH]
      [--scales 1/2,1/3,1/4] [--radius R,...] [--eps E,...] [--gain shared,channel] [--limit N] [--device cpu] [--json]

DATA_DIR defaults to $STREAMDEHAZE_DATA or ../shared/data beside the repository. The model defaults
to AECR-Net with the shipped weights (models/aecrnet.pt) when they exist, else the dark channel
prior (say so when quoting the figures). Several --radius/--eps/--gain values give a grid (tuning).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from streamdehaze.devices import device_name, resolve_device
from streamdehaze.io.stills import read_image
from streamdehaze.metrics import psnr
from streamdehaze.nets.registry import find_shipped, load_model
from streamdehaze.ops.color import to_tensor
from streamdehaze.ops.transfer_fit import transfer
from streamdehaze.pairs import find_pairs
from streamdehaze.work_size import parse_work_size

SPLITS = ("sots-indoor/dev", "sots-outdoor/dev")


def default_data_dir() -> Path:
    env = os.environ.get("STREAMDEHAZE_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def centre_crop(clear: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """SOTS's clear images can be larger than the hazy ones (a border): crop the centre."""
    dh, dw = clear.shape[-2] - like.shape[-2], clear.shape[-1] - like.shape[-1]
    return clear[..., dh // 2 : dh // 2 + like.shape[-2], dw // 2 : dw // 2 + like.shape[-1]]


@torch.inference_mode()
def evaluate_split(split: Path, model, device, settings: list[tuple[str, int | None, float, str]], limit: int | None):
    """Per setting ``(scale, radius, eps, gain)``: mean PSNR, mean loss against full resolution, mean fidelity."""
    pairs = find_pairs(split / "hazy", split / "clear")[:limit]
    rows: dict[str, list[tuple[float, float, float]]] = {}
    full_scores = []
    for hazy_path, clear_path in pairs:
        hazy = to_tensor(read_image(hazy_path), device)
        clear = centre_crop(to_tensor(read_image(clear_path), device), hazy)
        full = model(hazy).clamp(0, 1)
        p_full = float(psnr(full, clear)[0])
        full_scores.append(p_full)
        for scale, radius, eps, gain in settings:
            size = parse_work_size(scale).size_for(*hazy.shape[-2:])
            out = transfer(model, hazy, size, radius=radius, eps=eps, shared_gain=gain == "shared")
            p = float(psnr(out, clear)[0])
            rows.setdefault(f"{scale} r={radius or 'auto'} eps={eps:g} {gain}", []).append(
                (p, p_full - p, float(psnr(out, full)[0]))
            )
    summary = {"n": len(pairs), "full_psnr": statistics.fmean(full_scores)}
    for key, values in rows.items():
        summary[key] = {
            "psnr": statistics.fmean(v[0] for v in values),
            "loss_db": statistics.fmean(v[1] for v in values),
            "fidelity_db": statistics.fmean(v[2] for v in values),
        }
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", nargs="?", type=Path, default=default_data_dir())
    ap.add_argument("--model", choices=("aecrnet", "dcp"), default=None)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--scales", default="1/2,1/3,1/4")
    ap.add_argument("--radius", default="auto", help="box radius at the working size (comma list; auto = default)")
    ap.add_argument("--eps", default="1e-4", help="regularisation of the fit (comma list)")
    ap.add_argument("--gain", default="channel", help="channel (per channel, the default) or shared (comma list)")
    ap.add_argument("--limit", type=int, default=None, help="first N pairs of each split")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    model_name = args.model or ("aecrnet" if args.weights or find_shipped("aecrnet.pt") else "dcp")
    device = resolve_device(args.device)
    model = load_model(model_name, weights=args.weights, device=device)
    radii = [None if r.strip() == "auto" else int(r) for r in args.radius.split(",")]
    gains = [g.strip() for g in args.gain.split(",")]
    if not set(gains) <= {"shared", "channel"}:
        ap.error(f"--gain {args.gain}: expected shared and/or channel")
    settings = [
        (s.strip(), r, float(e), g)
        for s in args.scales.split(",")
        for r in radii
        for e in args.eps.split(",")
        for g in gains
    ]
    t0 = time.perf_counter()
    result = {
        "model": model_name,
        "weights": model.info.get("weights"),
        "device": device_name(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "splits": {},
    }
    for split in SPLITS:
        if not (args.data / split).is_dir():
            print(f"missing {args.data / split}; pass DATA_DIR or set STREAMDEHAZE_DATA", file=sys.stderr)
            return 2
        print(f"{split} ...", file=sys.stderr)
        result["splits"][split] = evaluate_split(args.data / split, model, device, settings, args.limit)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"model {model_name} ({result['weights'] or 'no weights'}) on {result['device']}, {result['seconds']} s")
    for split, summary in result["splits"].items():
        print(f"\n{split}: {summary['n']} pairs, full resolution {summary['full_psnr']:.2f} dB")
        print(f"  {'working size':<28} {'PSNR':>7} {'loss':>7} {'vs full':>8}")
        for key, v in summary.items():
            if isinstance(v, dict):
                print(f"  {key:<28} {v['psnr']:7.2f} {v['loss_db']:7.2f} {v['fidelity_db']:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
