"""``streamdehaze bench``: model-only, decode-only, encode-only and end-to-end throughput."""

from __future__ import annotations

import json
import re

import click
from rich.table import Table

from ..errors import InputError
from ..pipeline.bench import BenchSettings, run_bench
from .common import console, console_err, device_option, model_option, weights_option
from .progress import key_value_table

ENV_KEYS = ("device_name", "device", "torch_version", "cuda_version", "cudnn_version", "torch_threads", "av_version")


def parse_resolution(value: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", value)
    if not m or int(m.group(1)) < 8 or int(m.group(2)) < 8:
        raise InputError(f"--resolution {value!r}: expected WIDTHxHEIGHT with both >= 8, e.g. 1280x720")
    w, h = int(m.group(1)), int(m.group(2))
    if w % 2 or h % 2:
        raise InputError(f"--resolution {value}: H.264 (yuv420p) needs even sizes; try {w + w % 2}x{h + h % 2}")
    return w, h


def results_table(r: dict) -> Table:
    table = Table(title="throughput (frames per second)", title_justify="left", show_edge=False)
    table.add_column("measurement")
    table.add_column("fps", justify="right")
    table.add_column("what is timed")
    rows = [
        ("decode only", r["decode_fps"], "file → RGB frames (the pipeline's source)"),
        ("model only", r["model_fps"], "model on a device-resident float batch"),
        ("engine", r["engine_fps"], "uint8 frames → device → model → uint8 frames"),
        ("encode only", r["encode_fps"], f"RGB frames → {r['settings']['codec']} file, flush included"),
        ("end to end", r["end_to_end_fps"], "file → decode → engine → encode → file"),
    ]
    for name, fps, what in rows:
        table.add_row(name, f"{fps:.2f}", what)
    return table


def stages_table(stages: dict) -> Table:
    table = Table(title="end-to-end run, per stage", title_justify="left", show_edge=False)
    for col in ("stage", "frames", "fps alone", "busy"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for name, st in stages.items():
        table.add_row(name, str(st["frames"]), f"{st['capacity_fps']:.2f}", f"{100 * st['busy_share']:.0f}%")
    return table


@click.command("bench")
@model_option
@weights_option
@device_option
@click.option("--random-weights", is_flag=True, help="Time AECR-Net with random weights (no weight file needed).")
@click.option("--ngf", type=click.IntRange(min=1), default=64, show_default=True, help="Width for --random-weights.")
@click.option("--resolution", "-r", default="1280x720", show_default=True, help="Frame size WIDTHxHEIGHT.")
@click.option("--batch", "-b", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp32", show_default=True)
@click.option("--frames", "-n", type=click.IntRange(min=1), default=100, show_default=True, help="Frames timed.")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="Frames before timing.")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True, help="Rounds; medians reported.")
@click.option("--codec", default="libx264", show_default=True)
@click.option("--crf", type=click.IntRange(0, 63), default=18, show_default=True)
@click.option("--preset", default="veryfast", show_default=True)
@click.option("--input", "input_", type=click.Path(dir_okay=False), default=None, help="Time this file, not a clip.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object and nothing else on stdout.")
def command(model, weights, device, random_weights, ngf, resolution, batch, precision, frames, warmup, repeat,
            codec, crf, preset, input_, as_json) -> None:  # fmt: skip
    """Measure model-only, decode-only, encode-only and end-to-end frames per second.

    Uses a generated H.264 clip of --resolution (or --input FILE) through the real pipeline with a
    real encoder, all in one run, and prints the device, versions and settings with the results.

    \b
    Examples:
      streamdehaze bench --model dcp --resolution 1280x720 --frames 100
      streamdehaze bench --random-weights --ngf 16 --batch 2 --frames 20 --json
      streamdehaze bench --weights models/aecrnet.pt --device cuda --precision fp16 -r 1920x1080
    """
    width, height = parse_resolution(resolution)
    if random_weights and weights:
        raise InputError("--random-weights and --weights exclude each other; pick one")
    s = BenchSettings(
        model=model, weights=weights, random_weights=random_weights, ngf=ngf, width=width, height=height,
        batch=batch, precision=precision, device=device, frames=frames, warmup=warmup, codec=codec, crf=crf,
        preset=preset, input=input_, repeat=repeat,
    )  # fmt: skip
    result = run_bench(s, log=lambda msg: console_err.print(f"[dim]{msg}[/]", highlight=False))
    if as_json:
        click.echo(json.dumps(result, default=str))
        return
    console.print(key_value_table([(k, result[k]) for k in ENV_KEYS], title="machine"))
    settings = result["settings"]
    shown = ("model", "resolution", "batch", "precision", "frames", "warmup", "repeat", "codec", "preset", "crf")
    rows = [(k, settings[k]) for k in shown] + [("weights", f"random (ngf {ngf})" if random_weights else weights)]
    console.print(key_value_table(rows, title="settings"))
    console.print(results_table(result))
    console.print(stages_table(result["stages"]))
    console.print(
        f"end-to-end / slowest single stage: {result['end_to_end_over_slowest']:.2f}; "
        f"end-to-end / model-only: {result['end_to_end_over_model']:.2f}  "
        f"({result['device_name']}, torch {result['torch_version']}, CUDA {result['cuda_version']})",
        highlight=False,
    )
