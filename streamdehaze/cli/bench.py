"""``streamdehaze bench``: model-only, decode-only, encode-only and end-to-end throughput."""

from __future__ import annotations

import re

import click
from rich.table import Table

from ..choices import MEASUREMENTS
from ..errors import InputError
from ..io.preflight import check_source, check_weights
from ..settings import COMPARE_KEYS, parse_overrides
from .common import console, console_err, device_option, echo_json, model_option, weights_option
from .options import pop_settings, pop_speed, setting_options
from .progress import key_value_table

ENV_KEYS = ("device_name", "device", "torch_version", "cuda_version", "cudnn_version", "torch_threads", "av_version")
ENV_KEYS += ("onnxruntime_version",)


def parse_resolution(value: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", value)
    if not m or int(m.group(1)) < 8 or int(m.group(2)) < 8:
        raise InputError(f"--resolution {value!r}: expected WIDTHxHEIGHT with both >= 8, e.g. 1280x720")
    w, h = int(m.group(1)), int(m.group(2))
    if w % 2 or h % 2:
        raise InputError(f"--resolution {value}: H.264 (yuv420p) needs even sizes; try {w + w % 2}x{h + h % 2}")
    return w, h


def results_table(r: dict) -> Table:
    """One row per figure with what it timed (sizes, transfer, smoothing: ``r['work']``)."""
    table = Table(title="throughput (frames per second)", title_justify="left", show_edge=False)
    table.add_column("measurement")
    table.add_column("fps", justify="right")
    table.add_column("what is timed", overflow="fold")
    rows = [
        ("decode only", "decode"),
        ("model only", "model"),
        ("engine", "engine"),
        ("encode only", "encode"),
        ("end to end", "end_to_end"),
    ]
    for name, key in rows:
        fps = r[f"{key}_fps"]
        table.add_row(name, "-" if fps is None else f"{fps:.2f}", r["work"][key])
    table.caption = f"dehazing: {r['work']['network']}"
    table.caption_justify = "left"
    return table


def consistency_lines(r: dict) -> list[str]:
    """End to end against its slowest stage: of the same run (at most 1 by construction), and of
    the stages measured alone (above 1 only when the machine's load changed between measurements)."""
    lines = []
    if r["end_to_end_over_slowest_stage"] is not None:
        lines.append(
            f"end to end / slowest stage of the same run ({r['slowest_stage']}, "
            f"{r['slowest_stage_fps']:.2f} fps alone): {r['end_to_end_over_slowest_stage']:.2f}"
        )
    ratio = r["end_to_end_over_slowest"]
    if ratio is not None and ratio > 1.05:
        lines.append(
            f"[yellow]end to end ran {ratio:.2f}x faster than the slowest stage measured alone: the machine's "
            "load changed between the measurements; compare medians of --repeat 3 or more[/]"
        )
    return lines


def _fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def variants_table(variants: list[dict]) -> Table:
    title = "variants (medians; speed-up against the first row: of the medians, and the median of per-round ratios)"
    table = Table(title=title, title_justify="left", show_edge=False)
    columns = ("variant", "network at", "K", "model fps", "engine fps", "e2e fps", "speed-up", "per round", "keys")
    widest = max(len(v["label"]) for v in variants)
    for col in columns:
        table.add_column(col, justify="right", min_width=min(len(col), 6))
    table.columns[0].justify, table.columns[0].min_width = "left", widest  # labels are what to re-run
    for v in variants:
        keys = v.get("keyframes") or v.get("model_keyframes") or {}
        kind = "end_to_end" if v["end_to_end_speedup"] else "model"  # end to end when measured
        speedup, per_round = v[f"{kind}_speedup"], v[f"{kind}_speedup_median_of_rounds"]
        table.add_row(
            v["label"], v["network_size"], str(v["keyframe_interval"]), _fmt(v["model_fps"], 3),
            _fmt(v["engine_fps"], 3), _fmt(v["end_to_end_fps"], 3), _fmt(speedup, 2, "×"), _fmt(per_round, 2, "×"),
            f"{keys['keyframes']}/{keys['frames']}" if keys.get("frames") else "-",
        )  # fmt: skip
    return table


def parse_measure(value: str) -> tuple[str, ...]:
    names = tuple(m.strip().replace("-", "_") for m in value.split(",") if m.strip())
    bad = [m for m in names if m not in MEASUREMENTS]
    if bad or not names:
        raise InputError(f"--measure {value!r}: expected a comma-separated subset of {', '.join(MEASUREMENTS)}")
    return names


def stages_table(stages: dict) -> Table:
    table = Table(title="end-to-end run, per stage (fps alone: frames per busy second)", title_justify="left",
                  show_edge=False)  # fmt: skip
    for col in ("stage", "frames", "fps alone", "busy"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for name, st in stages.items():
        table.add_row(name, str(st["frames"]), f"{st['capacity_fps']:.2f}", f"{100 * st['busy_share']:.0f}%")
    return table


@click.command("bench")
@model_option
@weights_option
@setting_options("flip_average")
@device_option
@setting_options("backend")
@click.option("--random-weights", is_flag=True, help="Time AECR-Net with random weights (no weight file needed).")
@click.option("--ngf", type=click.IntRange(min=1), default=64, show_default=True, help="Width for --random-weights.")
@click.option("--resolution", "-r", default="1280x720", show_default=True, help="Frame size WIDTHxHEIGHT.")
@setting_options("batch", "precision")
@click.option("--frames", "-n", type=click.IntRange(min=1), default=100, show_default=True, help="Frames timed.")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="Frames before timing.")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True, help="Rounds; medians reported.")
@click.option("--codec", default="libx264", show_default=True)
@click.option("--crf", type=click.IntRange(0, 63), default=18, show_default=True)
@click.option("--preset", default="veryfast", show_default=True)
@click.option("--input", "input_", type=click.Path(dir_okay=False), default=None, help="Time this file, not a clip.")
@setting_options("speed")
@click.option(
    "--compare",
    multiple=True,
    metavar="KEY=VALUE,...",
    help="Also measure a variant of the settings in the same rounds (repeatable), e.g. "
    f"'work-size=full' or 'keyframe-interval=4'; keys: {', '.join(COMPARE_KEYS)}.",
)
@click.option(
    "--measure",
    default=",".join(MEASUREMENTS),
    show_default=True,
    help="Comma-separated figures to take (skip the slow ones).",
)
@click.option("--peak", is_flag=True, help="Also count network FLOPs and measure the matmul peak (share reached).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object and nothing else on stdout.")
@setting_options("temporal", temporal="off")
def command(model, weights, device, random_weights, ngf, resolution, frames, warmup, repeat, codec, crf, preset,
            input_, compare, measure, peak, as_json, **options) -> None:  # fmt: skip
    """Measure model-only, decode-only, encode-only and end-to-end frames per second.

    Uses a generated H.264 clip of --resolution (or --input FILE) through the real pipeline with a
    real encoder, all in one run, and prints the device, versions and settings with the results.

    \b
    Examples:
      streamdehaze bench --model dcp --resolution 1280x720 --frames 100
      streamdehaze bench --random-weights --work-size 360 --compare work-size=full --frames 2 --repeat 3
      streamdehaze bench --random-weights --input samples/foggy_drive.mp4 --compare keyframe-interval=4
      streamdehaze bench --random-weights --ngf 16 --batch 2 --frames 20 --json
      streamdehaze bench --weights models/aecrnet.pt --device cuda --precision fp16 -r 1920x1080
      streamdehaze bench --input samples/foggy_drive.mp4 --backend torch --compare backend=onnxruntime
    """
    width, height = parse_resolution(resolution)
    if random_weights and weights:
        raise InputError("--random-weights and --weights exclude each other; pick one")
    for spec in compare:
        parse_overrides(spec)  # a bad spec fails before any work
    if input_ is not None:
        check_source(input_)
    check_weights(weights)
    speed = vars(pop_speed(options))  # checks --transfer-fit and the rest before torch loads
    from ..bench.measure import BenchSettings, run_bench

    s = BenchSettings(
        model=model, weights=weights, random_weights=random_weights, ngf=ngf, width=width, height=height,
        device=device, frames=frames, warmup=warmup, codec=codec, crf=crf, preset=preset, input=input_,
        repeat=repeat, compare=tuple(compare), measure=parse_measure(measure), peak=peak,
        **pop_settings(options, "run", "temporal"), **speed,
    )  # fmt: skip
    result = run_bench(s, log=lambda msg: console_err.print(f"[dim]{msg}[/]", highlight=False))
    if as_json:
        echo_json(result, default=str)
        return
    console.print(key_value_table([(k, result[k]) for k in ENV_KEYS], title="machine"))
    settings = result["settings"]
    shown = ("model", "flip_average", "resolution", "batch", "precision", "frames", "warmup", "repeat", "codec")
    shown += ("preset", "crf")
    rows = [(k, settings[k]) for k in shown] + [("weights", result["weights"])]
    rows.append(("working size", result["work_size"]))
    rows.append(("backend", result["backend"]))
    rows.append(("temporal", f"{settings['temporal']} (strength {settings['temporal_strength']:g})"))
    console.print(key_value_table(rows, title="settings"))
    console.print(results_table(result))
    if len(result["variants"]) > 1:
        console.print(variants_table(result["variants"]))
    if result["stages"]:
        console.print(stages_table(result["stages"]))
    if result.get("precision_error"):
        e = result["precision_error"]
        text = f"max |diff| {e['max_abs_levels']} levels, mean {e['mean_abs_levels']:.3f}"
        console.print(f"{e['precision']} vs fp32 on the clip's frames: {text}")
    if result.get("matmul_peak_tflops"):
        console.print(
            f"network {result['network_gflops_per_call']:.1f} GFLOP per call; model {result['model_tflops']:.3f} "
            f"TFLOP/s = {100 * result['peak_fraction']:.1f}% of the measured matmul peak "
            f"{result['matmul_peak_tflops']:.2f} TFLOP/s ({s.precision})"
        )
    for line in consistency_lines(result):
        console.print(line, highlight=False)
    console.print(
        f"end-to-end / slowest single stage: {_fmt(result['end_to_end_over_slowest'])}; "
        f"end-to-end / model-only: {_fmt(result['end_to_end_over_model'])}  "
        f"({result['device_name']}, torch {result['torch_version']}, CUDA {result['cuda_version']})",
        highlight=False,
    )
