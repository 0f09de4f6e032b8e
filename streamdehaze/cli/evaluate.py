"""``streamdehaze eval``: PSNR/SSIM of a model on hazy/clear image folders."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..choices import DEFAULT_GUARD, STILLS_TRANSFER_FIT
from ..errors import DataError, InputError
from ..io.preflight import check_weights
from ..io.stills import read_image
from ..pairs import find_pairs
from ..work_size import parse_work_size
from .common import console, device_option, echo_json, model_option, weights_option
from .eval_noref import HELP as NO_REFERENCE_HELP
from .eval_noref import run_no_reference
from .options import setting_options

if TYPE_CHECKING:  # torch and numpy load when the command runs, after its inputs were checked
    import numpy as np


def _match_size(clear: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    """SOTS's clear images can carry a border the hazy ones lack: centre-crop when larger."""
    if clear.shape == shape:
        return clear
    dh, dw = clear.shape[0] - shape[0], clear.shape[1] - shape[1]
    if dh < 0 or dw < 0:
        raise DataError(f"{name}: clear image {clear.shape[1]}x{clear.shape[0]} is smaller than the hazy one")
    return clear[dh // 2 : dh // 2 + shape[0], dw // 2 : dw // 2 + shape[1]]


def _scores(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    from ..metrics import psnr, ssim
    from ..ops.color import to_tensor

    x, y = to_tensor(a[None]), to_tensor(b[None])
    return float(psnr(x, y)[0]), float(ssim(x, y)[0])


def evaluate_set(
    pairs: list[tuple[Path, Path]],
    dehazer,
    progress,
    baseline: bool,
    work_size=None,
    transfer_fit: str = STILLS_TRANSFER_FIT,
    guard: str = DEFAULT_GUARD,
) -> list[dict]:
    from ..images import dehaze_image

    rows = []
    task = progress.add_task(f"{pairs[0][0].parent}", total=len(pairs))
    for hazy_path, clear_path in pairs:
        hazy = read_image(hazy_path)
        clear = _match_size(read_image(clear_path), hazy.shape, clear_path.name)
        p, s = _scores(dehaze_image(hazy, dehazer, work_size=work_size, transfer_fit=transfer_fit, guard=guard), clear)
        row = {"image": hazy_path.name, "psnr": p, "ssim": s}
        if baseline:
            row["input_psnr"], row["input_ssim"] = _scores(hazy, clear)
        rows.append(row)
        progress.advance(task)
    return rows


def _summary(rows: list[dict]) -> dict:
    """Means over ``rows``; where a result is identical to its clear image (PSNR inf, e.g. clear input left
    alone), the mean PSNR is inf too, so ``identical`` counts them and ``psnr_of_the_rest`` averages the others."""
    out = {"n": len(rows)}
    for key in rows[0]:
        if key != "image":
            out[key] = statistics.fmean(r[key] for r in rows)
    rest = [r["psnr"] for r in rows if math.isfinite(r["psnr"])]
    if len(rest) < len(rows):
        out["identical"] = len(rows) - len(rest)
        out["psnr_of_the_rest"] = statistics.fmean(rest) if rest else None
    return out


def _identical_note(summary: dict) -> str:
    """A line on results identical to their clear images, or "" when there are none."""
    if "identical" not in summary:
        return ""
    rest = summary["psnr_of_the_rest"]
    others = f"; the other {summary['n'] - summary['identical']}: mean PSNR {rest:.2f} dB" if rest is not None else ""
    return f"{summary['identical']} of {summary['n']} identical to the clear image (PSNR inf){others}"


def _table(title: str, rows: list[dict], per_image: bool) -> Table:
    keys = [k for k in rows[0] if k != "image"]
    table = Table(title=title)
    table.add_column("image")
    for k in keys:
        table.add_column(k.replace("_", " "), justify="right")
    if per_image:
        for r in rows:
            table.add_row(r["image"], *(f"{r[k]:.3f}" if "ssim" in k else f"{r[k]:.2f}" for k in keys))
    mean = _summary(rows)
    table.add_row(
        f"[bold]mean of {len(rows)}[/]",
        *(f"[bold]{mean[k]:.4f}[/]" if "ssim" in k else f"[bold]{mean[k]:.2f}[/]" for k in keys),
    )
    table.caption = _identical_note(mean) or None
    return table


@click.command("eval", epilog=NO_REFERENCE_HELP)
@click.argument("inputs", nargs=-1, metavar="[INPUT]...")
@click.option("--hazy", multiple=True, type=click.Path(), help="Folder of hazy images (repeatable).")
@click.option("--clear", multiple=True, type=click.Path(), help="Matching folder of clear images.")
@click.option(
    "--no-reference",
    "no_reference",
    is_flag=True,
    help="Score INPUT photos, folders, globs or videos without clear images (figures below).",
)
@click.option(
    "--every", type=click.IntRange(min=1), default=1, show_default=True, help="--no-reference: every Nth video frame."
)
@click.option(
    "--max-frames", type=click.IntRange(min=1), default=None, help="--no-reference: at most this many frames per video."
)
@click.option(
    "--sheet",
    type=click.Path(dir_okay=False),
    default=None,
    help="--no-reference: write a contact sheet (input | output [| baseline], captions with the figures).",
)
@click.option(
    "--sheet-rows",
    type=click.IntRange(min=1),
    default=12,
    show_default=True,
    help="--no-reference: rows of the sheet, evenly spread over the images.",
)
@model_option
@weights_option
@setting_options("flip_average")
@device_option
@setting_options("backend")
@click.option(
    "--baseline",
    type=click.Choice(["input", "dcp"]),
    is_flag=False,
    flag_value="input",
    default=None,
    help="With --hazy/--clear: also score the hazy input itself (the default). "
    "With --no-reference: --baseline dcp also scores the dark channel prior.",
)
@click.option("--no-baseline", is_flag=True, help="With --hazy/--clear: do not score the hazy input.")
@click.option("--per-image/--mean-only", default=False, show_default=True, help="Show a row per image.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object: n, psnr, ssim (and per-set figures; identical and psnr_of_the_rest where "
    "results equal their clear images); --no-reference: n, e, rbar, sigma, ...",
)
@setting_options("work_size", "transfer_fit", "guard", work_size="model", transfer_fit=STILLS_TRANSFER_FIT)
def command(
    inputs,
    hazy,
    clear,
    no_reference,
    model,
    weights,
    flip_average,
    device,
    backend,
    baseline,
    no_baseline,
    per_image,
    as_json,
    work_size,
    transfer_fit,
    guard,
    every,
    max_frames,
    sheet,
    sheet_rows,
) -> None:
    """PSNR (dB) and SSIM (Gaussian window 11, sigma 1.5) of dehazed images against clear ones;
    with --no-reference, figures of real footage that has no clear image.

    Hazy and clear files pair by name: the same name, or the part before the first '_'
    (1400_3.png -> 1400.png). Give --hazy/--clear several times for several sets.

    A video's frames are scored as stills (--transfer-fit wide); add --transfer-fit local to score
    what `run` makes of them (its fit can crush a dark region that the stills' fit keeps).

    \b
    Examples:
      streamdehaze eval --hazy sots/dev/hazy --clear sots/dev/clear --model dcp
      streamdehaze eval --no-reference photos/ drive.mp4 --baseline dcp --sheet sheet.jpg
      streamdehaze eval --no-reference drive.mp4 --transfer-fit local
    """
    if no_reference:
        if hazy or clear:
            raise InputError("--no-reference takes INPUT photos, folders or videos, not --hazy/--clear folders")
        run_no_reference(
            inputs,
            model=model,
            weights=weights,
            flip_average=flip_average,
            device=device,
            backend=backend,
            baseline=None if no_baseline else baseline,
            per_image=per_image,
            as_json=as_json,
            work_size=work_size,
            transfer_fit=transfer_fit,
            guard=guard,
            every=every,
            max_frames=max_frames,
            sheet=sheet,
            sheet_rows=sheet_rows,
        )
        return
    if inputs or sheet or every != 1 or max_frames is not None:
        raise InputError(
            "INPUT, --every, --max-frames and --sheet need --no-reference; "
            "without it eval compares --hazy folders with --clear folders"
        )
    if not hazy or not clear:
        raise InputError(
            "eval needs --hazy DIR and --clear DIR (or --no-reference INPUT... for images without clear partners)"
        )
    if baseline == "dcp":
        raise InputError("--baseline dcp needs --no-reference; with --hazy/--clear the baseline is the hazy input")
    baseline = not no_baseline
    if len(hazy) != len(clear):
        raise InputError(f"got {len(hazy)} --hazy folder(s) but {len(clear)} --clear folder(s); give them in pairs")
    sets = [find_pairs(h, c) for h, c in zip(hazy, clear)]
    check_weights(weights)
    import torch

    from ..backends.select import describe_backend, load_dehazer

    dehazer = load_dehazer(model, weights, device, backend, flip_average=flip_average)
    work = parse_work_size(work_size, dehazer.device, dehazer)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with torch.inference_mode(), Progress(*columns, console=console, transient=True, disable=as_json) as progress:
        results = [evaluate_set(pairs, dehazer, progress, baseline, work, transfer_fit, guard) for pairs in sets]
    all_rows = [r for rows in results for r in rows]
    if as_json:
        out = _summary(all_rows) | {"model": model, "work_size": work.describe(), "flip_average": flip_average}
        out["backend"] = describe_backend(dehazer)
        out["transfer_fit"] = None if work.is_full else transfer_fit
        out["guard"] = None if work.is_full else guard
        out["sets"] = {h: _summary(r) for h, r in zip(hazy, results)}
        echo_json(out)
        return
    for h, rows in zip(hazy, results):
        at = "" if work.is_full else f" (working size: {work.describe()}, {transfer_fit} transfer fit, guard {guard})"
        at += ", flip average" if flip_average else ""
        at += f", {describe_backend(dehazer)}"
        console.print(_table(f"{model} on {h}{at}", rows, per_image))
    if len(results) > 1:
        s = _summary(all_rows)
        note = f" ({_identical_note(s)})" if "identical" in s else ""
        console.print(f"[bold]all sets[/]: n={s['n']}  PSNR {s['psnr']:.2f} dB  SSIM {s['ssim']:.4f}{note}")
