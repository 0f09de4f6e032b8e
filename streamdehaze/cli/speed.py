"""Speed options shared by ``run``, ``bench``, ``image`` and ``eval`` (see ``pipeline/speed.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..choices import DEFAULT_GUARD, DEFAULT_SCENE_CUT, DEFAULT_TRANSFER_FIT, GUARDS, STILLS_TRANSFER_FIT, TRANSFER_FITS
from ..pipeline.speed import SpeedSettings, speed_fields  # torch-free: options are checked before torch loads
from ..work_size import parse_work_size

WORK_SIZE_HELP = (
    "Resolution the network runs at; the result is carried to full resolution by guided transfer. "
    "auto (the size the model's weights were trained for, e.g. the shipped AECR-Net's; otherwise "
    "CPU: short side 360, GPU: full up to 1080p, short side 1080 above), model (the weights' size, "
    "else full), full, a short side in pixels (540) or a scale (0.5, 1/3)."
)


def _check_work_size(ctx: click.Context, param: click.Parameter, value: str) -> str:
    parse_work_size(value, "cpu")  # the syntax, before any file is touched (InputError: one line)
    return value


def work_size_option(default: str = "auto") -> Callable:
    return click.option(
        "--work-size", default=default, show_default=True, help=WORK_SIZE_HELP, callback=_check_work_size
    )


def _transfer_fit_option(default: str, why: str) -> Callable:
    return click.option(
        "--transfer-fit",
        type=click.Choice(list(TRANSFER_FITS)),
        default=default,
        show_default=True,
        help="Shape of the fit that carries the working-size result to full resolution: "
        + "; ".join(f"{name}: {fit.summary}" for name, fit in TRANSFER_FITS.items())
        + f". {why}",
    )


# video commands (run, preview, bench) default to the fit that flickers least; stills to the sharper one
transfer_fit_option = _transfer_fit_option(DEFAULT_TRANSFER_FIT, "Video defaults to local (least flicker).")
stills_transfer_fit_option = _transfer_fit_option(
    STILLS_TRANSFER_FIT, "Stills default to wide (sharper; flicker does not matter in one picture)."
)

guard_option = click.option(
    "--guard",
    type=click.Choice(list(GUARDS)),
    default=DEFAULT_GUARD,
    show_default=True,
    help="Guard rails on the fitted result: " + "; ".join(f"{name}: {text}" for name, text in GUARDS.items()) + ".",
)


_STREAM_OPTIONS = (
    click.option(
        "--keyframe-interval",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Run the network every K frames and reuse its colour map between (scene cuts force a keyframe).",
    ),
    click.option(
        "--scene-cut",
        type=click.FloatRange(min=0, min_open=True),
        default=DEFAULT_SCENE_CUT,
        show_default=True,
        help="Change of the frame's 16x16 gray thumbnail since the previous frame (mean abs, 0-1) that counts "
        "as a scene cut: it forces a keyframe and resets every temporal smoothing state.",
    ),
    click.option("--channels-last/--no-channels-last", default=None, help="NHWC weights and inputs [default: on]."),
    click.option(
        "--cudnn-benchmark/--no-cudnn-benchmark", default=None, help="cuDNN autotuning [default: on with CUDA]."
    ),
    click.option("--compile", "compile_", is_flag=True, help="torch.compile the network (slow first batch)."),
    click.option("--cuda-graphs", is_flag=True, help="Replay CUDA graphs for fixed shapes (CUDA only)."),
    click.option(
        "--device-yuv/--no-device-yuv",
        default=None,
        help="Decode/encode yuv420p and convert colour on the device [default: on with CUDA, file to video file].",
    ),
)


def speed_options(f: Callable) -> Callable:
    """``--work-size``, ``--transfer-fit``, ``--guard``, ``--keyframe-interval``, ``--scene-cut`` and the engine
    tuning switches."""
    for option in reversed((transfer_fit_option, guard_option, *_STREAM_OPTIONS)):
        f = option(f)
    return work_size_option()(f)


def pop_speed(kwargs: dict[str, Any]) -> SpeedSettings:
    """Take the speed options out of a command's keyword arguments."""
    if "compile_" in kwargs:
        kwargs["compile"] = kwargs.pop("compile_")
    return SpeedSettings(**{name: kwargs.pop(name) for name in speed_fields() if name in kwargs})
