"""What a web preview costs a recording: fps of ``run`` without a preview and with ``--web``.

    python benchmarks/preview_overhead.py [--frames 200] [--size 640x360] [--model aecrnet] [--ngf 8]
                                          [--repeats 3] [--device auto] [--batch 4] [--work-size auto]

Modes, interleaved ``--repeats`` times (medians reported): ``off`` (no preview), ``idle`` (server
up, nobody watching), ``watching`` (curl, in its own process, reading the MJPEG stream like a
browser), ``stalled`` (one client that connects and never reads). Besides fps it reports this
process's CPU time per frame and the CPU time of the preview's own threads (JPEG encoder, HTTP
server and clients) as a share of one core: on a shared machine fps varies by tens of percent
from run to run, the preview threads' CPU time does not.

The input is a generated H.264 clip, the output an H.264 file, as with ``streamdehaze run IN -o OUT
[--web PORT]``. ``--model aecrnet`` uses random weights of width ``--ngf`` (the cost, not the
picture, matters here); ``--model identity`` skips dehazing, so the preview's share of an
I/O-bound run shows (its worst case).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import torch

from streamdehaze.api import build_pipeline
from streamdehaze.devices import device_name, resolve_device
from streamdehaze.nets.aecrnet import AECRNet
from streamdehaze.nets.dehazer import Dehazer
from streamdehaze.nets.registry import load_model
from streamdehaze.pipeline.speed import SpeedSettings
from streamdehaze.preview.hub import PreviewHub
from streamdehaze.preview.session import PreviewOutputs, attach_preview

MODES = ("off", "idle", "watching", "stalled")


class Identity(torch.nn.Module):
    """No dehazing: decoding and encoding alone set the pace (the preview's worst case, relatively)."""

    name = "identity"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def make_input(path: Path, frames: int, size: str) -> Path:
    """An H.264 clip of FFmpeg's testsrc2 pattern (25 fps)."""
    w, h = (int(v) for v in size.split("x"))
    with av.open(f"testsrc2=size={w}x{h}:rate=25", format="lavfi") as src, av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "crf": "18"}
        for i, frame in enumerate(src.decode(video=0)):
            if i >= frames:
                break
            out.mux(stream.encode(frame.reformat(format="yuv420p")))
        out.mux(stream.encode(None))
    return path


def connect(port: int, mode: str) -> list:
    """The client of ``mode``; "watching" is curl in its own process, like a browser elsewhere."""
    if mode == "stalled":
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(f"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        return [s]
    if mode == "watching":
        url = f"http://127.0.0.1:{port}/stream.mjpg"
        return [subprocess.Popen(["curl", "-s", "-o", "/dev/null", url])]
    return []


def thread_cpu_s(native_id: int) -> float:
    """CPU seconds (user + system) of one thread of this process, from /proc."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def preview_threads_cpu_s() -> float:
    """CPU seconds used so far by the preview's own threads (JPEG encoder, HTTP server and clients)."""
    names = ("streamdehaze-preview", "process_request_thread")
    return sum(thread_cpu_s(t.native_id) for t in threading.enumerate() if t.name.startswith(names) or
               names[1] in t.name)  # fmt: skip


def run_once(src: Path, dst: Path, model: torch.nn.Module, args: argparse.Namespace, mode: str) -> tuple:
    """``(fps, CPU ms per frame, preview threads' share of one core)`` of one recording.

    CPU time per frame is this process's (all threads); the preview's share is the CPU time of
    its own threads over the run's wall time.
    """
    speed = SpeedSettings(work_size=args.work_size)
    pipe = build_pipeline(src, dst, model, device=str(args.device), batch=args.batch, speed=speed)
    outputs, clients = None, []
    if mode != "off":
        hub = PreviewHub()
        attach_preview(pipe, hub)
        outputs = PreviewOutputs(hub, web="127.0.0.1:0")
        outputs.start()
        clients = connect(outputs.web.port, mode)
        while mode in ("watching", "stalled") and outputs.web.clients < 1:
            time.sleep(0.01)
    try:
        cpu, own = time.process_time(), preview_threads_cpu_s()
        stats = pipe.run()
        cpu, own = time.process_time() - cpu, preview_threads_cpu_s() - own
        return stats.fps, 1000 * cpu / max(1, stats.frames_written), own / stats.wall_s
    finally:
        if outputs is not None:
            outputs.close()
        for c in clients:
            c.kill() if isinstance(c, subprocess.Popen) else c.close()
        gc.collect()  # frees the last run's decoder/encoder (and their threads) before the next


def component_costs(size: str, repeats: int = 50) -> tuple[float, float]:
    """``(µs per hub.publish, ms per JPEG of the side-by-side picture)``, medians."""
    import numpy as np

    from streamdehaze.frames import Frame
    from streamdehaze.preview.web import WebPreview

    w, h = (int(v) for v in size.split("x"))
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 3)  # camera-like detail
    hub = PreviewHub()
    publish, encode = [], []
    web = WebPreview(hub, port=0)
    for i in range(repeats):
        frame = Frame(image, i, Fraction(1, 25), i, {"original": image, "t_read": time.monotonic()})
        t0 = time.perf_counter()
        hub.publish(frame)
        publish.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _, picture = hub.picture(web.max_width)  # as the server does
        cv2.imencode(".jpg", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, web.quality])
        encode.append(time.perf_counter() - t0)
    return 1e6 * statistics.median(publish), 1e3 * statistics.median(encode)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--model", choices=["aecrnet", "dcp", "identity"], default="aecrnet")
    ap.add_argument("--ngf", type=int, default=8)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--work-size", default="auto", help="as run's --work-size (full: no guided transfer)")
    args = ap.parse_args()
    device = args.device = resolve_device(args.device)
    if args.model == "aecrnet":
        torch.manual_seed(0)
        model = Dehazer(AECRNet(ngf=args.ngf).eval().to(device), "aecrnet", 4)
    elif args.model == "dcp":
        model = load_model("dcp", device=device)
    else:
        model = Identity()
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    print(
        f"device: {device_name(device)}; model {args.model} (ngf {args.ngf}), batch {args.batch}, "
        f"work size {args.work_size}"
    )
    print(f"input: {args.frames} frames {args.size} H.264 -> output H.264 (libx264 veryfast)")
    with tempfile.TemporaryDirectory() as tmp:
        src = make_input(Path(tmp) / "in.mp4", args.frames, args.size)
        run_once(src, Path(tmp) / "warm.mp4", model, args, "off")  # warm-up
        runs: dict[str, list[tuple[float, float, float]]] = {m: [] for m in MODES}
        for _ in range(args.repeats):
            for mode in MODES:
                runs[mode].append(run_once(src, Path(tmp) / f"{mode}.mp4", model, args, mode))
    publish_us, jpeg_ms = component_costs(args.size)
    print(
        f"preview work: {publish_us:.1f} µs per frame to publish; {jpeg_ms:.2f} ms per JPEG of the side-by-side "
        f"picture, only while a client waits for one, at most 30 a second"
    )
    base_fps = statistics.median(r[0] for r in runs["off"])
    base_cpu = statistics.median(r[1] for r in runs["off"])
    for mode in MODES:
        fps, cpu, own = (statistics.median(r[k] for r in runs[mode]) for k in range(3))
        each = ", ".join(f"{r[0]:.1f}" for r in runs[mode])
        print(
            f"{mode:>9}: {fps:6.1f} fps ({100 * (fps / base_fps - 1):+5.1f}%; runs {each}); "
            f"CPU {cpu:5.2f} ms/frame ({100 * (cpu / base_cpu - 1):+5.1f}%); "
            f"preview threads {100 * own:4.1f}% of a core"
        )


if __name__ == "__main__":
    main()
