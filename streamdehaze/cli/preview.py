"""``streamdehaze preview``: watch a camera, stream or file dehazed next to the original, live."""

from __future__ import annotations

from typing import Any

import click

from ..errors import InputError
from ..io.preflight import check_source, check_weights, check_writable_folder
from .common import console, device_option, log_to_console, model_option, reconnect_for_option, weights_option
from .options import pop_settings, pop_speed, pop_temporal, setting_options
from .progress import PipelineProgress, outages_text

web_option = click.option(
    "--web",
    metavar="[HOST:]PORT",
    default=None,
    help="Serve a preview page on http://HOST:PORT/ (HOST defaults to 127.0.0.1). On any other address "
    "every request needs the access token (see --token).",
)
token_option = click.option(
    "--token",
    default=None,
    help="Access token for the page (?token=...); required on non-loopback addresses, generated and "
    "printed when not given.",
)


def print_web_url(url: str, token_required: bool) -> None:
    console.print(f"preview page: [bold]{url}[/]", highlight=False, soft_wrap=True)
    if token_required:
        console.print("[yellow]anyone with this URL (it holds the access token) can watch and control[/]")


@click.command("preview")
@click.argument("source")
@model_option
@weights_option
@setting_options("flip_average")
@device_option
@setting_options("backend")
@web_option
@token_option
@click.option(
    "--window/--no-window",
    default=None,
    help="Open a window (default: yes, unless --web is given: --web alone runs without a screen).",
)
@setting_options("batch", "precision", batch=1)
@click.option(
    "--snapshots",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Folder where snapshots (original and dehazed PNGs) are saved.",
)
@click.option("--timeout", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="Seconds to wait for a live source to open or deliver a frame; a longer stall is an "
              "outage (the source reconnects, see --reconnect-for).")  # fmt: skip
@reconnect_for_option
@click.option("--max-frames", type=click.IntRange(min=1), default=None, help="Stop after this many frames.")
@click.option("--exit-at-end", is_flag=True, help="Exit when the stream ends instead of keeping the last frame shown.")
@setting_options("work_size", "transfer_fit", "guard", "temporal", "strength")
def command(
    source: str,
    model: str,
    weights: str | None,
    device: str,
    web: str | None,
    token: str | None,
    window: bool | None,
    snapshots: str,
    timeout: float,
    reconnect_for: float | None,
    max_frames: int | None,
    exit_at_end: bool,
    **options: Any,
) -> None:
    """Preview SOURCE (webcam:N, rtsp://URL, video file, lavfi:GRAPH) dehazed next to the original.

    Files play at their own frame rate, live sources at theirs; when dehazing cannot keep up,
    frames are dropped (counted in the overlay and on the page).

    \b
    Window keys: q/Esc quit, space pause, s snapshot (both images), d dehazing on/off,
    t temporal smoothing on/off, - + strength, v side by side / split view, [ ] (or arrows, or drag)
    move the split. The page has the same buttons and a strength slider.

    \b
    Examples:
      streamdehaze preview webcam:0 --model dcp
      streamdehaze preview rtsp://camera/stream --web 8080             # page on http://127.0.0.1:8080/
      streamdehaze preview rtsp://camera/stream --web 0.0.0.0:8080     # reachable from the network, with a token
    """
    if token is not None and web is None:
        raise InputError("--token applies to the web page; add --web [HOST:]PORT")
    show_window = web is None if window is None else window
    if not show_window and web is None:
        raise InputError("--no-window without --web shows nothing; add --web [HOST:]PORT")
    check_source(source)  # before torch loads or a frame is decoded
    check_weights(weights)
    check_writable_folder(snapshots)
    run = pop_settings(options, "run", "strength")
    flip_average = run["flip_average"]
    speed = pop_speed(options)
    import cv2  # noqa: F401 - before PyAV, or an OpenCV window hangs: see preview/window.check_display

    from ..backends.select import describe_backend
    from ..preview.session import preview

    def on_start(pipe: Any, url: str | None) -> None:
        info = pipe.stats.info
        console.print(
            f"previewing {source} ({info.width}x{info.height}{', live' if pipe.source.inner.is_live else ''}) "
            f"with {getattr(pipe.engine.model, 'name', model)}{' (flip average)' if flip_average else ''} "
            f"on {pipe.engine.device} via {describe_backend(pipe.engine.model)}",
            highlight=False,
            soft_wrap=True,
        )
        if url is not None:
            print_web_url(url, "token=" in url)
        if show_window:
            console.print(
                "keys: q quit, space pause, s snapshot, d dehazing, t temporal, - + strength, v view, [ ] split"
            )

    log_to_console()  # a live source's outages, one line each
    with PipelineProgress(console, "preview", live=True) as progress_bar:
        stats = preview(
            source,
            model,
            weights,
            device,
            window=show_window,
            web=web,
            token=token,
            batch=run["batch"],
            precision=run["precision"],
            snapshot_dir=snapshots,
            timeout=timeout,
            reconnect_for=reconnect_for,
            max_frames=max_frames,
            exit_at_end=exit_at_end,
            flip_average=flip_average,
            backend=run["backend"],
            on_start=on_start,
            on_progress=progress_bar.update,
            speed=speed,
            temporal=pop_temporal(options),
            strength=run["strength"],
        )
    line = f"shown {stats.frames_written} frames in {stats.wall_s:.1f} s ({stats.fps:.1f} fps)"
    if stats.dropped:
        line += f", dropped {stats.dropped} (dehazing fell behind the source)"
    console.print(line + outages_text(stats), highlight=False)


class RecordingPreview:
    """``run --preview/--web``: preview outputs on a built, unopened recording pipeline (none when not asked).

    Use as a context manager around the run (it opens the window / starts the server) and pass
    ``wrap(callback)`` as ``on_progress`` with ``interval``. Without a window and with nobody on
    the page, the recording pays a few microseconds per frame: JPEGs are encoded only for a
    connected client, and never more than 30 a second.
    """

    def __init__(self, pipe: Any, window: bool, web: str | None, token: str | None, snapshot_dir: str = ".") -> None:
        from ..preview.hub import PreviewHub
        from ..preview.session import PreviewOutputs, attach_preview

        if token is not None and web is None:
            raise InputError("--token applies to the web page; add --web [HOST:]PORT")
        self.outputs = None
        self.interval = 0.02 if window else 0.1
        if window or web is not None:
            hub = PreviewHub(snapshot_dir)
            attach_preview(pipe, hub)
            self.outputs = PreviewOutputs(hub, window=window, web=web, token=token)

    def __enter__(self) -> RecordingPreview:
        if self.outputs is not None:
            url = self.outputs.start()
            if url is not None:
                print_web_url(url, "token=" in url)
        return self

    def wrap(self, callback: Any) -> Any:
        if self.outputs is None:
            return callback

        def tick(progress: Any) -> None:
            self.outputs.tick()
            callback(progress)

        return tick

    def __exit__(self, *exc: Any) -> None:
        if self.outputs is not None:
            self.outputs.close()
