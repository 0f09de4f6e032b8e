"""Temporal smoothing on synthetic clips with a known clear sequence and on the real foggy drive, in one table.

Every clip runs through the real engine (``pipeline.temporal_engine.build_engine``, what
``streamdehaze run`` uses) with each ``--temporal`` mode, against frame-by-frame processing (mode
``off``) at the same working size.

Clips (never tune on one of them):
- ``pan-N``, ``zoom-N``, ``object-N``: clear stills of ``sots-outdoor/dev/clear`` (two per motion)
  filmed by a virtual camera (``streamdehaze.synthetic.camera_clip``): a pan across the still, a zoom
  into it, a pasted object crossing a still view; haze from a depth that moves with the scene, a
  drifting density, a slightly blue airlight, then sensor noise and an H.264 round trip (CRF 23).
- ``drive``: the 62-frame real foggy drive (``DATA/foggy-drive``, 1920×1080 JPEG), downscaled to ``--size``.

Per clip and mode: the output's flicker (warping error, ``streamdehaze.flicker``), its ratio to the
input's and to ``off``; on the synthetic clips the mean PSNR against the clear frames and the worst
per-frame PSNR loss against ``off`` (ghosting), over the frame and over the moving object alone;
the engine's time per frame. On the synthetic clips the row ``clear`` gives the flicker of the clear
frames themselves along the same flow: what a perfect dehazer would score. It is not 0: the measure
resamples each frame along an estimated flow, and on a textured scene that moves (a pan) the
resampling and the flow's error alone give most of it. With ``--keyframe-interval K`` > 1 the reference is ``off@1``,
frame-by-frame processing with the network on every frame (``off`` then reuses the map between
keyframes). ``--decompose`` also splits the flicker of the modes whose output is the transfer's
affine map (off, motion, ema) into the map's own change and the input's change carried by its gain
(``streamdehaze.flicker.affine_flicker_parts``).

Usage: python benchmarks/temporal_quality.py [--data DIR] [--model aecrnet|dcp --weights W] [--size 960x540]
       [--clip-size 640x360] [--clip-frames 30] [--work-size auto] [--transfer-fit local|wide]
       [--keyframe-interval K] [--decompose] [--modes off,motion,ema,flow] [--strength 0.8] [--threads N]
       [--clips pan,zoom,object,drive] [--json FILE]
DATA defaults to $STREAMDEHAZE_DATA or ../shared/data beside the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import dataclass
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
from streamdehaze.synthetic import camera_clip


def default_data_dir() -> Path:
    env = os.environ.get("STREAMDEHAZE_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


AFFINE_MODES = ("off", "motion", "ema")  # their output is the transfer's a·x + b; flow and pixel blend pixels after it


EVERY_FRAME = "off@1"  # the reference with --keyframe-interval > 1: `off` with the network on every frame
CLEAR = "clear"  # the row of the clear frames themselves: a perfect dehazer's flicker (synthetic clips)


def run_mode(model, frames: np.ndarray, mode: str, args, coefficients: list | None = None) -> tuple:
    """Frames ``(N, H, W, 3)`` uint8 through a fresh engine with ``--temporal mode`` → (outputs, seconds per frame).

    ``coefficients``: a list that receives each frame's applied transfer ``(a, b)`` (not timed then).
    Mode :data:`EVERY_FRAME` is ``off`` at keyframe interval 1, whatever ``--keyframe-interval`` says.
    """
    interval = 1 if mode == EVERY_FRAME else args.keyframe_interval
    mode = "off" if mode == EVERY_FRAME else mode
    speed = SpeedSettings(work_size=args.work_size, transfer_fit=args.transfer_fit, keyframe_interval=interval)
    engine = build_engine(speed, model, "cpu", temporal=TemporalSettings(mode, args.strength))
    t0, outs = time.perf_counter(), []
    for i in range(0, len(frames), args.batch):
        outs.append(engine.process(frames[i : i + args.batch]))
        if coefficients is not None:
            a, b = engine.last_coefficients
            coefficients += [(a[j : j + 1], b[j : j + 1]) for j in range(a.shape[0])]
    return np.concatenate(outs), (time.perf_counter() - t0) / len(frames)


@dataclass
class Clip:
    name: str
    frames: np.ndarray  # (N, H, W, 3) uint8 hazy
    clear: np.ndarray | None = None
    masks: np.ndarray | None = None  # the moving object, where there is one


def synthetic_clips(args) -> list[Clip]:
    paths = list_images(str(args.data / "sots-outdoor" / "dev" / "clear"))
    if len(paths) < 8:
        raise SystemExit(f"too few clear stills in {args.data}/sots-outdoor/dev/clear: pass --data")
    stills = [read_image(p) for p in paths[:: max(1, len(paths) // 8)][:8]]
    clips = []
    for k, motion in enumerate(("pan", "zoom", "object")):  # the same stills whichever clips are chosen
        if motion not in args.clips:
            continue
        for n in range(2):
            scene, pasted = stills[2 * k + n], stills[-1 - (2 * k + n)]
            clip = camera_clip(scene, motion, args.clip_frames, args.clip_size, pasted=pasted, seed=10 * k + n)
            clips.append(Clip(f"{motion}-{n + 1}", clip.hazy, clip.clear, clip.masks if clip.masks.any() else None))
    return clips


def drive_clip(args) -> Clip:
    folder = args.data / "foggy-drive"
    paths = list_images(str(folder))
    if not paths:
        raise SystemExit(f"no frames in {folder}: pass --data or set STREAMDEHAZE_DATA, or leave out drive")
    w, h = args.size
    return Clip("drive", np.stack([cv2.resize(read_image(p), (w, h), interpolation=cv2.INTER_AREA) for p in paths]))


def measure(model, clip: Clip, args) -> dict:
    """Every mode on one clip → ``{mode: figures}``; ratios and losses against ``off`` at interval 1."""
    outs, cost, coefficients = {}, {}, {}
    for mode in args.modes:
        coefficients[mode] = [] if args.decompose and mode in AFFINE_MODES else None
        outs[mode], cost[mode] = run_mode(model, clip.frames, mode, args, coefficients[mode])
    seqs = {m: list(o) for m, o in outs.items()}
    if clip.clear is not None:  # the clear frames: what a perfect dehazer would output
        seqs[CLEAR] = list(clip.clear)
    flick = flicker_many(list(clip.frames), seqs)
    ref = args.modes[0]  # off, or off@1 when the network skips frames: the frame-by-frame output
    rows = {}
    for mode in args.modes:
        r = flick[mode]
        row = {"flicker": r.output, "vs_input": r.ratio, "vs_off": r.output / flick[ref].output}
        row["s_per_frame"] = cost[mode]
        if clip.clear is not None:
            full, base = psnr_per_frame(outs[mode], clip.clear), psnr_per_frame(outs[ref], clip.clear)
            row["psnr"], row["worst_loss_db"] = float(full.mean()), float((base - full).max())
        if clip.masks is not None:
            obj = psnr_per_frame(outs[mode], clip.clear, clip.masks)
            row["worst_loss_object_db"] = float((psnr_per_frame(outs[ref], clip.clear, clip.masks) - obj).max())
        if coefficients[mode] is not None:
            row["parts"] = vars(affine_flicker_parts(list(clip.frames), list(outs[mode]), coefficients[mode]))
        rows[mode] = row
    out = {
        "frames": len(clip.frames),
        "size": list(clip.frames.shape[2:0:-1]),
        "input_flicker": flick[ref].input,
        "modes": rows,
    }
    if CLEAR in flick:
        r = flick[CLEAR]
        out[CLEAR] = {"flicker": r.output, "vs_input": r.ratio, "vs_off": r.output / flick[ref].output}
    return out


def print_table(results: dict) -> None:
    print(
        f"\n{'clip':9} {'mode':7} {'flicker':>8} {'× input':>8} {'× off':>7} {'PSNR':>7} {'worst loss':>11} "
        f"{'object loss':>12} {'ms/frame':>9}"
    )
    for name, res in results.items():
        for mode, r in [*res["modes"].items(), *([(CLEAR, res[CLEAR])] if CLEAR in res else [])]:
            if mode == CLEAR:
                print(f"{name:9} {mode:7} {r['flicker']:8.3f} {r['vs_input']:7.2f}× {r['vs_off']:6.3f}×")
                continue
            psnr = f"{r['psnr']:7.2f}" if "psnr" in r else f"{'-':>7}"
            loss = f"{r['worst_loss_db']:8.3f} dB" if "worst_loss_db" in r else f"{'-':>11}"
            obj = f"{r['worst_loss_object_db']:9.3f} dB" if "worst_loss_object_db" in r else f"{'-':>12}"
            print(
                f"{name:9} {mode:7} {r['flicker']:8.3f} {r['vs_input']:7.2f}× {r['vs_off']:6.3f}× {psnr} {loss} "
                f"{obj} {1000 * r['s_per_frame']:9.1f}"
            )
    parts = [(n, m, r["parts"]) for n, res in results.items() for m, r in res["modes"].items() if "parts" in r]
    if parts:
        print("\nflicker parts: the map's own change, the input's change x gain")
        print(f"{'clip':9} {'mode':7} {'flicker':>8} {'map change':>11} {'input x gain':>13} {'mean |a|':>9}")
        for name, mode, p in parts:
            print(
                f"{name:9} {mode:7} {p['flicker']:8.3f} {p['map_change']:11.3f} {p['input_change']:13.3f} "
                f"{p['gain']:9.2f}"
            )


def parse_size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=default_data_dir())
    p.add_argument("--model", default="aecrnet", choices=["dcp", "aecrnet"])
    p.add_argument("--weights", default=None)
    p.add_argument("--size", type=parse_size, default=(960, 540), help="drive frames are downscaled to WxH")
    p.add_argument("--clip-size", type=parse_size, default=(640, 360), help="size of the synthetic clips")
    p.add_argument("--clip-frames", type=int, default=30)
    p.add_argument("--clips", default="pan,zoom,object,drive", help="which clips (pan, zoom, object, drive)")
    p.add_argument("--work-size", default="auto", help="engine working size (auto, full, 360, 0.5, ...)")
    p.add_argument("--transfer-fit", default=DEFAULT_TRANSFER_FIT, choices=list(TRANSFER_FITS), help="transfer fit")
    p.add_argument("--keyframe-interval", type=int, default=1, help="run the network every K frames")
    p.add_argument("--decompose", action="store_true", help="split the flicker of the affine modes")
    p.add_argument("--modes", default="off,motion,ema,flow")
    p.add_argument("--strength", type=float, default=0.8)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = p.parse_args()
    args.modes = ["off"] + [m for m in args.modes.split(",") if m and m != "off"]
    if args.keyframe_interval > 1:  # skipped frames are judged against the network on every frame
        args.modes.insert(0, EVERY_FRAME)
    args.clips = [c for c in args.clips.split(",") if c]
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
        f"keyframe interval {args.keyframe_interval}, temporal strength {args.strength}, batch {args.batch}; "
        f"synthetic clips {args.clip_size[0]}x{args.clip_size[1]}, {args.clip_frames} frames"
    )
    if args.keyframe_interval > 1:
        print(f"'x off' and the losses are against {EVERY_FRAME}: off with the network on every frame")
    clips = synthetic_clips(args) + ([drive_clip(args)] if "drive" in args.clips else [])
    results = {}
    with torch.inference_mode():
        for clip in clips:
            results[clip.name] = measure(model, clip, args)
            print(f"  {clip.name}: done", flush=True)
    print_table(results)
    if args.json:
        settings = {
            k: getattr(args, k) for k in ("model", "work_size", "transfer_fit", "keyframe_interval", "strength")
        }
        args.json.write_text(json.dumps({**settings, "clips": results}, indent=1))


if __name__ == "__main__":
    main()
