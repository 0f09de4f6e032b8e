"""CPU colour conversion: PyAV's implicit conversions vs the explicit ones of ``io/colour.py``.

    python benchmarks/colour_cpu.py [--size 1280x720] [--rounds 40] [--matrix bt709]

Times, per frame, YUV→RGB (what the decode thread does) and RGB→YUV (what the encode thread
does) both ways, in interleaved rounds, and prints medians, ratios, the round-trip error on flat
colour patches (decode + encode, read back exactly) and the machine. The implicit conversions are
what the sources and sink did before: they follow whatever tags a frame carries (none, for an rgb24
frame made from an array: BT.601) and swscale's fast tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from media import COLOUR_PATCHES, colour_patches_image, patch_centres  # noqa: E402

from streamdehaze.frames import Colour  # noqa: E402
from streamdehaze.io.colour import RgbConverter, YuvEncoder  # noqa: E402
from streamdehaze.ops.yuv import rgb_to_yuv420p, yuv420p_to_rgb  # noqa: E402

AV_MATRIX = {"bt709": 1, "bt601": 6, "bt2020": 9}


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def exact_planes(rgb: np.ndarray, matrix: str, full: bool) -> np.ndarray:
    return rgb_to_yuv420p(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255, matrix, full)[0].numpy()


def exact_rgb(planes: np.ndarray, matrix: str, full: bool) -> np.ndarray:
    rgb = yuv420p_to_rgb(torch.from_numpy(planes)[None], matrix, full)
    return rgb.mul(255).add(0.5).floor().byte()[0].permute(1, 2, 0).numpy()


def round_trip_error(matrix: str, full: bool, explicit: bool) -> int:
    """Max level error on the flat patches after decode (YUV→RGB) and encode (RGB→YUV), read back exactly."""
    colour = Colour(matrix=AV_MATRIX[matrix], range=2 if full else 1)
    frame = av.VideoFrame.from_ndarray(exact_planes(colour_patches_image(), matrix, full), format="yuv420p")
    frame.colorspace, frame.color_range = colour.matrix, colour.range
    if explicit:
        rgb = RgbConverter()(frame, colour)
        planes = YuvEncoder(colour, "yuv420p")(rgb).to_ndarray()
    else:  # the implicit path: the frame's tags on the way in, an untagged rgb24 frame on the way out
        rgb = frame.to_ndarray(format="rgb24")
        planes = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray()
    return int(np.abs(patch_centres(exact_rgb(planes, matrix, full)) - np.array(COLOUR_PATCHES)).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--matrix", default="bt709", choices=sorted(AV_MATRIX))
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    colour = Colour(matrix=AV_MATRIX[args.matrix], primaries=1, transfer=1, range=1)
    yuv = av.VideoFrame.from_ndarray(exact_planes(image, args.matrix, False), format="yuv420p")
    yuv.colorspace, yuv.color_range = colour.matrix, colour.range
    to_rgb, to_yuv = RgbConverter(), YuvEncoder(colour, "yuv420p")
    encoder_sws = VideoReformatter()  # the encoder keeps one, as PyAV's codec context does
    cases = {
        "decode implicit (to_ndarray rgb24)": lambda: yuv.to_ndarray(format="rgb24"),
        "decode explicit (RgbConverter)": lambda: to_rgb(yuv, colour),
        "encode implicit (rgb24 -> yuv420p)": lambda: encoder_sws.reformat(
            av.VideoFrame.from_ndarray(image, "rgb24"), format="yuv420p"
        ),
        "encode explicit (YuvEncoder)": lambda: to_yuv(image),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for fn in cases.values():  # warm-up: swscale contexts, caches
        fn()
    for _ in range(args.rounds):
        for name, fn in cases.items():
            times[name].append(timed(fn))
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    print(f"settings: {w}x{h}, {args.matrix} limited range, {args.rounds} interleaved rounds, PyAV {av.__version__}")
    for name, ms in med.items():
        print(f"  {name:38s} median {ms:7.2f} ms/frame")
    names = list(med)
    ratios = med[names[1]] / med[names[0]], med[names[3]] / med[names[2]]
    print(f"  explicit/implicit: decode {ratios[0]:.1f}x, encode {ratios[1]:.1f}x")
    for matrix in ("bt709", "bt601"):
        for full in (False, True):
            errs = {e: round_trip_error(matrix, full, e) for e in (False, True)}
            print(
                f"  round trip on flat patches, {matrix} {'full' if full else 'limited'}: "
                f"implicit {errs[False]} levels, explicit {errs[True]} levels (max)"
            )


if __name__ == "__main__":
    main()
