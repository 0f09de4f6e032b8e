"""Temporal smoothing: ghosting on a synthetic clip with a known clear sequence, flicker on the real foggy drive.

Both run the real engine (``pipeline.temporal_engine.build_engine``, what ``streamdehaze run`` uses)
with each ``--temporal`` mode, against frame-by-frame processing (mode ``off``) at the same
working size.

1. Ghosting: a textured object moving over a static textured background, hazed with the
   scattering model (``streamdehaze.synthetic``). Per mode: mean PSNR against the clear frames,
   the worst per-frame PSNR loss against ``off`` over the whole frame and over the moving object's
   region alone (criterion: at most 0.2 dB), and the clip's flicker.
2. Flicker: the 62-frame foggy drive (``DATA/foggy-drive``, 1920×1080 JPEG, numeric order),
   downscaled to ``--size`` (default 960×540). Per mode: the warping error of the output, its
   ratio to the input's and to frame-by-frame processing (criterion: at most 0.8×), and the
   engine's cost per frame. ``--decompose`` (with a working size) also splits each mode's flicker
   into the transfer map's own change and the input's change carried by its gain
   (``streamdehaze.flicker.affine_flicker_parts``), to compare ``--transfer-fit local`` and ``wide``;
   only for ``off`` and ``ema``, whose output is the transfer's affine map.

Usage: python benchmarks/temporal_quality.py [--data DIR] [--model dcp|aecrnet --weights W] [--size 960x540]
       [--work-size full] [--transfer-fit local|wide] [--keyframe-interval K] [--decompose] [--modes off,ema,flow,pixel]
       [--strength 0.8] [--threads N] [--skip-ghost] [--skip-drive] [--json FILE]
DATA defaults to $STREAMDEHAZE_DATA or ../shared/data beside the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from streamdehaze.flicker import affine_flicker_parts, flicker_many
from streamdehaze.io.images import list_images, read_image
from streamdehaze.metrics import psnr_per_frame
from streamdehaze.nets.registry import load_model
from streamdehaze.pipeline.speed import SpeedSettings
from streamdehaze.pipeline.temporal_engine import TemporalSettings, build_engine
from streamdehaze.pipeline.transfer import DEFAULT_TRANSFER_FIT, TRANSFER_FITS
from streamdehaze.synthetic import moving_object_clip


def default_data_dir() -> Path:
    env = os.environ.get("STREAMDEHAZE_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


AFFINE_MODES = ("off", "ema")  # their output is the transfer's a·x + b; flow and pixel blend pixels after it


def run_mode(model, frames: np.ndarray, mode: str, args, coefficients: list | None = None) -> tuple:
    """Frames ``(N, H, W, 3)`` uint8 through a fresh engine with ``--temporal mode`` → (outputs, seconds per frame).

    ``coefficients``: a list that receives each frame's applied transfer ``(a, b)`` (not timed then).
    """
    speed = SpeedSettings(
        work_size=args.work_size, transfer_fit=args.transfer_fit, keyframe_interval=args.keyframe_interval
    )
    engine = build_engine(speed, model, "cpu", temporal=TemporalSettings(mode, args.strength))
    t0, outs = time.perf_counter(), []
    for i in range(0, len(frames), args.batch):
        outs.append(engine.process(frames[i : i + args.batch]))
        if coefficients is not None:
            a, b = engine.last_coefficients
            coefficients += [(a[j : j + 1], b[j : j + 1]) for j in range(a.shape[0])]
    return np.concatenate(outs), (time.perf_counter() - t0) / len(frames)


def ghosting(model, args) -> dict:
    w, h = args.ghost_size
    clip = moving_object_clip(n_frames=args.ghost_frames, size=(w, h), speed=(w / 80, h / 270))
    outs, cost = {}, {}
    for mode in args.modes:
        outs[mode], cost[mode] = run_mode(model, clip.hazy, mode, args)
    flick = flicker_many(list(clip.hazy), {m: list(o) for m, o in outs.items()})
    base_full = psnr_per_frame(outs["off"], clip.clear)
    base_obj = psnr_per_frame(outs["off"], clip.clear, clip.masks)
    rows = {}
    for mode, out in outs.items():
        full, obj = psnr_per_frame(out, clip.clear), psnr_per_frame(out, clip.clear, clip.masks)
        rows[mode] = {
            "psnr": float(full.mean()),
            "psnr_object": float(obj.mean()),
            "worst_loss_db": float((base_full - full).max()),
            "worst_loss_object_db": float((base_obj - obj).max()),
            "flicker": flick[mode].output,
            "s_per_frame": cost[mode],
        }
    print(f"\nghosting: synthetic clip {w}x{h}, {args.ghost_frames} frames, object moving {w / 80:.1f} px/frame")
    print(f"{'mode':6} {'PSNR':>7} {'object':>7} {'worst loss':>11} {'object loss':>12} {'flicker':>8}")
    for mode, r in rows.items():
        print(
            f"{mode:6} {r['psnr']:7.2f} {r['psnr_object']:7.2f} {r['worst_loss_db']:8.3f} dB "
            f"{r['worst_loss_object_db']:9.3f} dB {r['flicker']:8.3f}"
        )
    return rows


def drive(model, args) -> dict:
    folder = args.data / "foggy-drive"
    paths = list_images(str(folder))
    if not paths:
        raise SystemExit(f"no frames in {folder}: pass --data or set STREAMDEHAZE_DATA, or use --skip-drive")
    w, h = args.size
    frames = np.stack([cv2.resize(read_image(p), (w, h), interpolation=cv2.INTER_AREA) for p in paths])
    outs, cost, coefficients = {}, {}, {}
    for mode in args.modes:
        coefficients[mode] = [] if args.decompose else None
        outs[mode], cost[mode] = run_mode(model, frames, mode, args, coefficients[mode])
    flick = flicker_many(list(frames), {m: list(o) for m, o in outs.items()})
    base = flick["off"].output
    rows = {}
    print(f"\nflicker: {folder} ({len(paths)} frames, downscaled to {w}x{h}), input flicker {flick['off'].input:.3f}")
    print(f"{'mode':6} {'flicker':>8} {'× input':>8} {'× frame-by-frame':>17} {'engine s/frame':>15}")
    for mode in args.modes:
        r = flick[mode]
        rows[mode] = {"flicker": r.output, "vs_input": r.ratio, "vs_off": r.output / base, "s_per_frame": cost[mode]}
        print(f"{mode:6} {r.output:8.3f} {r.ratio:7.2f}× {r.output / base:16.3f}× {cost[mode]:15.3f}")
    if args.decompose:
        print(f"\nflicker parts, transfer fit {args.transfer_fit}: the map's own change, the input's change x gain")
        print(f"{'mode':6} {'flicker':>8} {'map change':>11} {'input x gain':>13} {'mean |a|':>9}")
        for mode in [m for m in args.modes if m in AFFINE_MODES]:
            parts = affine_flicker_parts(list(frames), list(outs[mode]), coefficients[mode])
            rows[mode]["parts"] = vars(parts)
            print(
                f"{mode:6} {parts.flicker:8.3f} {parts.map_change:11.3f} {parts.input_change:13.3f} {parts.gain:9.2f}"
            )
    return {"input_flicker": flick["off"].input, "frames": len(paths), "size": [w, h], "modes": rows}


def parse_size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=default_data_dir())
    p.add_argument("--model", default="dcp", choices=["dcp", "aecrnet"])
    p.add_argument("--weights", default=None)
    p.add_argument("--size", type=parse_size, default=(960, 540), help="drive frames are downscaled to WxH")
    p.add_argument("--ghost-size", type=parse_size, default=(480, 270))
    p.add_argument("--ghost-frames", type=int, default=24)
    p.add_argument("--work-size", default="full", help="engine working size (full, auto, 360, 0.5, ...)")
    p.add_argument("--transfer-fit", default=DEFAULT_TRANSFER_FIT, choices=list(TRANSFER_FITS), help="transfer fit")
    p.add_argument("--keyframe-interval", type=int, default=1, help="run the network every K frames")
    p.add_argument("--decompose", action="store_true", help="split the drive's flicker (needs a working size)")
    p.add_argument("--modes", default="off,ema,flow,pixel")
    p.add_argument("--strength", type=float, default=0.8)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--skip-ghost", action="store_true")
    p.add_argument("--skip-drive", action="store_true")
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = p.parse_args()
    args.modes = ["off"] + [m for m in args.modes.split(",") if m and m != "off"]
    if args.decompose and args.work_size == "full":
        p.error("--decompose needs a working size, e.g. --work-size 160 (at full size there is no transfer)")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, weights=args.weights, device="cpu")
    print(
        f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), OpenCV {cv2.__version__}"
    )
    print(
        f"model {args.model}, work size {args.work_size}, transfer fit {args.transfer_fit}, "
        f"keyframe interval {args.keyframe_interval}, "
        f"temporal strength {args.strength}, batch {args.batch}"
    )
    result = {"model": args.model, "work_size": args.work_size, "transfer_fit": args.transfer_fit}
    result["keyframe_interval"] = args.keyframe_interval
    result["strength"] = args.strength
    with torch.inference_mode():
        if not args.skip_ghost:
            result["ghosting"] = ghosting(model, args)
        if not args.skip_drive:
            result["drive"] = drive(model, args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
