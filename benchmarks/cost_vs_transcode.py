"""``streamdehaze run CLIP -o out.mp4`` against a plain re-encode of the same clip, whole processes.

The plain re-encode is what any video tool pays at least: PyAV decodes the clip, converts each
frame to rgb24 and encodes it with libx264 (preset veryfast, crf 18, the same as ``run``'s
defaults), in a fresh Python process. ``run`` is timed the same way, start-up included (Python,
torch, the model load): what a user pays. The two alternate within each round; the figure is the
ratio of the medians (and each round's ratio), wall and CPU time (user + system). Issue 22's
target on a 2-core CPU: at most 3.0. Extra arguments after ``--`` go to ``run``.

``--free-network`` adds a third command to each round: ``run`` with the network replaced by a stand-in
that costs nothing (it returns its input; the model is still loaded, and every other step runs as
usual on the fit it gives). Its ratio is the floor that a cheaper network could approach, and it
tells how cheap a network must be for a given ratio.

    python benchmarks/cost_vs_transcode.py --rounds 3
    python benchmarks/cost_vs_transcode.py --rounds 3 -- --backend torch
    python benchmarks/cost_vs_transcode.py --rounds 5 --free-network
    python benchmarks/cost_vs_transcode.py --rounds 3 --repeat 8

``--repeat N`` times a clip N times as long (the clip's packets remuxed N times in a row, no
re-encoding): start-up weighs less, and the ratio approaches what a long dashcam file costs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import av
from processes import CLI, compare, machine, print_json_or_machine, record, timed

ROOT = Path(__file__).resolve().parents[1]
# the streamdehaze script with a network that costs nothing: Dehazer's call of it returns its input
FREE_NETWORK = [
    sys.executable,
    "-c",
    "from streamdehaze.nets.dehazer import Dehazer\n"
    "Dehazer._run.__name__  # fails loudly if the method it replaces is renamed\n"
    "Dehazer._run = lambda self, net, x, *args: x\n"
    "from streamdehaze.cli import entry; entry()",
]

TRANSCODE = """
import sys, av
src, dst = sys.argv[1], sys.argv[2]
with av.open(src) as inp, av.open(dst, "w") as out:
    vin = inp.streams.video[0]
    vin.thread_type = "AUTO"
    vout = out.add_stream("libx264", rate=vin.average_rate or 25)
    vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
    vout.options = {"preset": "veryfast", "crf": "18"}
    for frame in inp.decode(vin):
        rgb = frame.to_ndarray(format="rgb24")
        for packet in vout.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
            out.mux(packet)
    for packet in vout.encode():
        out.mux(packet)
"""


def repeated(clip: str, times: int, out: Path) -> str:
    """``clip``'s video packets ``times`` times in a row, timestamps shifted, as a new file ``out``."""
    with av.open(clip) as first:
        vin = first.streams.video[0]
        packets = [p for p in first.demux(vin) if p.dts is not None]
        span = max(p.pts + p.duration for p in packets) - min(p.pts for p in packets)
        with av.open(str(out), "w") as dst:
            vout = dst.add_stream_from_template(vin)
            for k in range(times):
                with av.open(clip) as inp:  # demuxed afresh: muxing hands a packet's data over
                    for p in inp.demux(inp.streams.video[0]):
                        if p.dts is not None:
                            p.pts, p.dts, p.stream = p.pts + k * span, p.dts + k * span, vout
                            dst.mux(p)
    return str(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default=str(ROOT / "samples" / "foggy_drive.mp4"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="Print one JSON object instead of text.")
    parser.add_argument(
        "--free-network", action="store_true", help="Also time run with a network that costs nothing (its floor)."
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="Time the clip repeated this many times in a row (less start-up weight)."
    )
    parser.add_argument("extra", nargs="*", help="Arguments for the run command (after --).")
    args = parser.parse_args()
    info = {"machine": machine(), "clip": args.clip, "repeat": args.repeat, "rounds": args.rounds}
    info["settings"] = " ".join(args.extra) or "(defaults)"
    runs: list[tuple[float, float]] = []
    plain: list[tuple[float, float]] = []
    free: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = repeated(args.clip, args.repeat, Path(tmp) / "clip.mp4") if args.repeat > 1 else args.clip
        for r in range(args.rounds):
            plain.append(timed([sys.executable, "-c", TRANSCODE, clip, str(Path(tmp) / f"plain_{r}.mp4")]))
            runs.append(timed([*CLI, "run", clip, "-o", str(Path(tmp) / f"run_{r}.mp4"), *args.extra]))
            if args.free_network:
                out = str(Path(tmp) / f"free_{r}.mp4")
                free.append(timed([*FREE_NETWORK, "run", clip, "-o", out, *args.extra]))
            shown = f", free network {free[-1]}" if free else ""
            print(f"round {r + 1}: run {runs[-1]}, re-encode {plain[-1]}{shown} (wall s, CPU s)", file=sys.stderr)
    if free:
        info["free_network"] = compare(free, plain, 2)
    wall, cpu = record(info, ("run", "reencode"), runs, plain, digits=2)
    if print_json_or_machine(info, args.json):
        return
    times = f" repeated {args.repeat} times" if args.repeat > 1 else ""
    print(f"clip: {args.clip}{times}; run settings: {info['settings']}; rounds: {args.rounds}")
    print(f"streamdehaze run:  {wall[0]:6.2f} s wall, {cpu[0]:6.2f} s CPU (medians)")
    print(f"plain re-encode:   {wall[1]:6.2f} s wall, {cpu[1]:6.2f} s CPU (medians)")
    rounds = ", ".join(f"{x:.2f}" for x in info["round_wall_ratios"])
    print(f"ratio run / re-encode: {info['wall_ratio']:.2f} wall (per round {rounds}), {info['cpu_ratio']:.2f} CPU")
    if free:
        f = info["free_network"]
        rounds = ", ".join(f"{x:.2f}" for x in f["round_wall_ratios"])
        print(
            f"with a network that costs nothing: {f['wall_s'][0]:.2f} s wall, {f['cpu_s'][0]:.2f} s CPU; ratio "
            f"{f['wall_ratio']:.2f} wall (per round {rounds}), {f['cpu_ratio']:.2f} CPU"
        )


if __name__ == "__main__":
    main()
