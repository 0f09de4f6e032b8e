"""``streamdehaze eval-video INPUT OUTPUT``: temporal flicker of a processed video against its input."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..choices import FLOW_PRESETS
from ..errors import InputError
from ..io.preflight import check_source
from .common import console, echo_json

if TYPE_CHECKING:  # OpenCV and PyAV load when the command runs, after its inputs were checked
    from ..flicker import FlickerReport
    from ..io.base import Source


def _count_rest(source: Source) -> int:
    return sum(1 for _ in source)


def measure(input_spec: str, output_spec: str, max_size: int | None, preset: str, progress=None) -> FlickerReport:
    """Flicker of ``output_spec`` along ``input_spec``'s motion; both read in lockstep with the project's sources.

    Frames are downscaled so their longer side is at most ``max_size`` (None: as decoded). Raises
    :class:`InputError` when the two have different frame counts or sizes.
    """
    from ..flicker import FlickerMeter, resize_max
    from ..io.sources import open_source

    meter = FlickerMeter(preset)
    src_in, src_out = open_source(input_spec), open_source(output_spec)
    try:
        info_in = src_in.open()
        info_out = src_out.open()
        n_in, n_out = info_in.frame_count, info_out.frame_count
        if n_in and n_out and n_in != n_out:
            raise InputError(f"{input_spec} has {n_in} frames but {output_spec} has {n_out}; expected the same number")
        task = progress.add_task("flicker", total=n_in or n_out) if progress is not None else None
        n = 0
        while True:
            a, b = src_in.read(), src_out.read()
            if a is None or b is None:
                if a is not None or b is not None:
                    longer = src_in if a is not None else src_out
                    total = n + 1 + _count_rest(longer)
                    counts = (total, n) if a is not None else (n, total)
                    raise InputError(
                        f"{input_spec} has {counts[0]} frames but {output_spec} has {counts[1]}; "
                        "expected the same number (compare a video with its own dehazed output)"
                    )
                break
            meter.add(resize_max(a.image, max_size), resize_max(b.image, max_size))
            n += 1
            if task is not None:
                progress.advance(task)
    finally:
        src_in.close()
        src_out.close()
    return meter.result()


def _table(report: FlickerReport, input_spec: str, output_spec: str) -> Table:
    table = Table(title=f"temporal flicker (warping error, 0–255) over {report.frames} frames")
    table.add_column("video")
    table.add_column("flicker", justify="right")
    table.add_row(f"output  {output_spec}", f"{report.output:.3f}")
    table.add_row(f"input   {input_spec}", f"{report.input:.3f}")
    ratio = "n/a" if math.isnan(report.ratio) else f"{report.ratio:.2f}×"
    table.add_row("[bold]output / input[/]", f"[bold]{ratio}[/]")
    table.caption = f"{report.valid_fraction:.0%} of pixels pass the flow consistency check"
    return table


@click.command("eval-video")
@click.argument("input_spec", metavar="INPUT")
@click.argument("output_spec", metavar="OUTPUT")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: output, input, ratio, frames, ...")
@click.option(
    "--max-size",
    type=click.IntRange(min=16),
    default=None,
    help="Downscale frames so the longer side is at most this many pixels (faster; figures depend on size).",
)
@click.option(
    "--flow", "preset", type=click.Choice(FLOW_PRESETS), default="medium", show_default=True, help="DIS preset."
)
@click.option("--per-frame", is_flag=True, help="With --json: also list each frame pair's errors.")
def command(input_spec: str, output_spec: str, as_json: bool, max_size: int | None, preset: str, per_frame: bool):
    """Temporal flicker of OUTPUT (a processed video) judged along the motion of INPUT.

    Optical flow (OpenCV DIS) on INPUT warps each frame onto the next; occlusions are masked by
    forward-backward consistency; the flicker is the mean absolute difference on the remaining
    pixels (0-255), for OUTPUT and for INPUT itself, and their ratio. Dehazing raises contrast, so
    the ratio is above 1 even for a stable output. Videos, image folders or globs; same frame
    count and size.

    \b
    Example:
      streamdehaze eval-video drive.mp4 drive_dehazed.mp4 --max-size 960
    """
    check_source(input_spec)
    check_source(output_spec)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=as_json) as progress:
        report = measure(input_spec, output_spec, max_size, preset, progress)
    if as_json:
        d = report.to_dict(per_pair=per_frame)
        echo_json(d | {"input_path": input_spec, "output_path": output_spec, "max_size": max_size})
        return
    console.print(_table(report, input_spec, output_spec))
