"""``streamdehaze run``: dehaze a video file, RTSP stream, webcam or image folder end to end."""

from __future__ import annotations

import re
import sys

import click

from ..errors import InputError, StreamDehazeError
from ..io.preflight import check_output, check_source, check_weights
from .batch import batch_options, pop_batch
from .common import console, device_option, log_to_console, model_option, reconnect_for_option, weights_option
from .options import pop_settings, pop_speed, pop_temporal, setting_options
from .preview import RecordingPreview, token_option, web_option
from .progress import PipelineProgress, print_summary


def parse_time(value: str | None, option: str) -> float | None:
    """Seconds from ``12.5``, ``MM:SS`` or ``HH:MM:SS(.ms)``; None stays None."""
    if value is None:
        return None
    m = re.fullmatch(r"\s*(?:(?:(\d+):)?(\d+):)?(\d+(?:\.\d*)?)\s*", value)
    if not m:
        raise InputError(f"{option} {value!r}: expected seconds (12.5) or [HH:]MM:SS")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    return hours * 3600 + minutes * 60 + seconds


@click.command("run")
@click.argument("source")
@click.option(
    "--output",
    "-o",
    required=True,
    help="Output video file (container from the extension: .mp4, .mkv, .mov, ...) or DIR/ for numbered PNGs; "
    "for a folder or glob of videos, the folder for their outputs.",
)
@model_option
@weights_option
@setting_options("flip_average")
@device_option
@setting_options("backend", "batch", "precision")
@click.option(
    "--crf", type=click.IntRange(0, 63), default=18, show_default=True, help="Encoder quality (lower=better)."
)
@click.option("--preset", default="veryfast", show_default=True, help="Encoder speed preset (libx264/libx265).")
@click.option("--codec", default="libx264", show_default=True, help="Video encoder by FFmpeg name.")
@click.option("--start", default=None, help="Start at this time: seconds or [HH:]MM:SS (files and image folders).")
@click.option("--duration", default=None, help="Process this much video: seconds or [HH:]MM:SS.")
@click.option("--max-frames", type=click.IntRange(min=1), default=None, help="Stop after this many frames.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds to wait for a live source to open or deliver a frame; a longer stall is an outage "
    "(the source reconnects, see --reconnect-for).",
)
@reconnect_for_option
@click.option("--preview", "show_preview", is_flag=True, help="Show a preview window while recording.")
@web_option
@token_option
@setting_options("speed", "temporal")
@batch_options
@setting_options("strength")
def command(
    source: str,
    output: str,
    model: str,
    weights: str | None,
    device: str,
    crf: int,
    preset: str,
    codec: str,
    start: str | None,
    duration: str | None,
    max_frames: int | None,
    timeout: float,
    reconnect_for: float | None,
    show_preview: bool,
    web: str | None,
    token: str | None,
    **options,
) -> None:
    """Dehaze SOURCE (video file, rtsp://URL, webcam:N, /dev/videoN, lavfi:GRAPH, image folder or glob) into --output.

    lavfi:GRAPH is an FFmpeg test source, live (e.g. lavfi:testsrc2=size=1280x720:rate=30). A single
    still image is an error: dehaze stills with `streamdehaze image`.

    Ctrl-C stops cleanly: the frames processed so far are written as a playable file (exit code 130).
    A live source that stalls or drops reconnects and the recording goes on (see --reconnect-for).
    The output keeps the input's colour description (matrix, primaries, transfer, range); 10-bit
    input is written as 8-bit video.

    A folder or glob of videos is a batch: every file is dehazed into the --output folder (relative
    paths kept), outputs that exist are skipped, OUT/streamdehaze-manifest.jsonl gets a line per
    file, and --ray spreads the files over a Ray cluster.

    \b
    Examples:
      streamdehaze run dashcam.mp4 --output clear.mp4 --weights models/aecrnet.pt
      streamdehaze run rtsp://camera/stream --output rec.mkv --model dcp --batch 1
      streamdehaze run foggy.mov --output frames/ --start 1:30 --duration 10
      streamdehaze run dashcam.mp4 --output clear.mp4 --work-size 540 --keyframe-interval 4
      streamdehaze run lavfi:testsrc2=size=640x360:rate=30 --output test.mkv --max-frames 90 --model dcp
      streamdehaze run card/DCIM/ --output clear/ --recursive
      streamdehaze run 'drives/*.MP4' --output clear/ --ray auto
    """
    t_start, t_duration = parse_time(start, "--start"), parse_time(duration, "--duration")
    if t_duration is not None and t_duration <= 0:
        raise InputError(f"--duration {duration}: expected a positive length")
    if token is not None and web is None:
        raise InputError("--token applies to the web page; add --web [HOST:]PORT")
    batch_opts = pop_batch(options)
    run = pop_settings(options, "run", "strength")
    batch, precision, backend, flip_average, strength = (
        run[k] for k in ("batch", "precision", "backend", "flip_average", "strength")
    )
    is_batch = batch_opts.applies_to(source)  # a folder or glob of videos: one output per file
    if is_batch and (show_preview or web is not None):
        raise InputError("--preview and --web show one stream; a folder or glob source is a batch of files")
    # paths and options first: a mistake is reported before torch loads or a frame is decoded
    if not is_batch:
        if check_source(source) == "still":
            raise InputError(
                f"{source} is a still image; run writes videos and image sequences: use "
                f"`streamdehaze image {source} --output DIR/` (writes DIR/<name>.png)"
            )
        check_output(output)
    else:
        from ..batch.discover import plan_jobs

        jobs = plan_jobs(source, output, batch_opts.recursive, batch_opts.container)  # its mistakes before torch loads
    check_weights(weights)
    # the preview shows RGB frames: keep colour conversion on the host when it is on
    # the preview shows RGB frames: keep colour conversion on the host when it is on
    speed = pop_speed(options, **({"device_yuv": False} if (show_preview or web is not None) else {}))
    temporal = pop_temporal(options)
    if is_batch:
        from ..batch.jobs import RunSettings
        from .batch import run_folder

        settings = RunSettings(
            model, weights, device, batch, precision, codec, crf, preset, t_start, t_duration, max_frames,
            speed, temporal, flip_average, segments=batch_opts.segments, backend=backend,
        )  # fmt: skip
        run_folder(source, output, jobs, settings, batch_opts, console)
        return
    if show_preview:
        import cv2  # noqa: F401 - before PyAV, or an OpenCV window hangs: see preview/window.check_display
    from ..api import build_pipeline
    from ..backends.select import describe_backend
    from ..devices import device_name  # the GPU's model, or the CPU with its intra-op threads

    pipe = build_pipeline(
        source,
        output,
        model,
        weights,
        device,
        batch,
        precision,
        codec=codec,
        crf=crf,
        preset=preset,
        start=t_start,
        duration=t_duration,
        max_frames=max_frames,
        timeout=timeout,
        reconnect_for=reconnect_for,
        speed=speed,
        temporal=temporal,
        flip_average=flip_average,
        backend=backend,
        strength=strength,
    )
    live_preview = RecordingPreview(pipe, show_preview, web, token)
    log_to_console()  # a live source's outages, one line each
    info = pipe.open()
    try:
        name = getattr(pipe.engine.model, "name", model) + (" (flip average)" if flip_average else "")
        detail = f"{info.width}x{info.height}"
        if info.is_live:
            detail += ", live"
        elif info.frame_count:
            detail += f", {info.frame_count} frames"
        backend = describe_backend(pipe.engine.model)
        how = f"on {device_name(pipe.engine.device)} via {backend}, batch {batch}, {precision}"
        console.print(
            f"dehazing {source} ({detail}) with {name} {how} → {output}",
            highlight=False,
            soft_wrap=True,
        )
        yuv_used = getattr(pipe.source, "pix_fmt", None) == "yuv420p"
        settings = speed.describe(pipe.engine.device, info.height, info.width, yuv=yuv_used, model=pipe.engine.model)
        settings += f"; {temporal.describe()}" + ("" if strength == 1 else f"; strength {strength:g}")
        console.print(f"  {settings}", highlight=False, soft_wrap=True)
        from ..io.colour import depth_note  # PyAV: not imported for --help

        if note := depth_note(info.colour):
            console.print(f"  {note}", highlight=False, soft_wrap=True)
        with live_preview, PipelineProgress(console, name, live=pipe.live) as bar:
            pipe.run(on_progress=live_preview.wrap(bar.update), interval=live_preview.interval)
    except BaseException as err:
        if pipe.stats.status == "running":  # stopped before the run started: leave no output behind
            pipe.abort()
        elif isinstance(err, KeyboardInterrupt):  # the run wrote what it had processed
            print_summary(console, pipe.stats, output)
            sys.exit(130)
        elif isinstance(err, StreamDehazeError) and pipe.stats.status == "interrupted":
            print_summary(console, pipe.stats, output)  # a lost live source: what was recorded is kept
        raise
    print_summary(console, pipe.stats, output)
