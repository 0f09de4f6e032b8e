"""A GStreamer RTSP server on loopback serving a live H.264 test pattern, for the RTSP source tests.

Run with Debian's ``/usr/bin/python3`` (it needs ``gi`` and ``GstRtspServer``; packages in
``.ci/apt-packages.txt``), never inside the project's virtual environment::

    /usr/bin/python3 tests/rtsp_server.py --port 8554 --path /test --size 160x120 --fps 15

Prints ``READY rtsp://127.0.0.1:PORT/PATH`` on stdout once it listens, then serves until killed
(SIGTERM/SIGINT stop it cleanly). Every client gets its own live ``videotestsrc`` pipeline with a
keyframe every ``--gop`` frames, so a client that (re)connects gets a picture within one GOP.
``--check`` only verifies that the imports and elements exist (exit 0) and serves nothing.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

ELEMENTS = ("videotestsrc", "x264enc", "rtph264pay", "videoconvert")


def launch_line(width: int, height: int, fps: int, gop: int, pattern: str) -> str:
    """The per-client pipeline: live test pattern -> low-latency H.264 -> RTP payloader ``pay0``."""
    return (
        f"( videotestsrc is-live=true pattern={pattern} "
        f"! video/x-raw,width={width},height={height},framerate={fps}/1 "
        f"! videoconvert ! video/x-raw,format=I420 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bframes=0 "
        f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--path", default="/test")
    parser.add_argument("--size", default="160x120", help="WxH")
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--gop", type=int, default=0, help="keyframe interval in frames (default: fps/3)")
    parser.add_argument("--pattern", default="smpte")
    parser.add_argument("--check", action="store_true", help="check imports and elements, then exit")
    args = parser.parse_args(argv)

    Gst.init(None)
    missing = [e for e in ELEMENTS if Gst.ElementFactory.find(e) is None]
    if missing:
        print(f"MISSING GStreamer elements: {', '.join(missing)}", file=sys.stderr)
        return 3
    if args.check:
        print("OK")
        return 0

    width, height = (int(v) for v in args.size.lower().split("x"))
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(width, height, args.fps, args.gop or max(1, args.fps // 3), args.pattern))
    factory.set_shared(False)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 4

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY rtsp://{args.host}:{server.get_bound_port()}{args.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
