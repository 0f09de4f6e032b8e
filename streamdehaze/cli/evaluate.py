"""``streamdehaze eval``: PSNR/SSIM of a model on hazy/clear image folders."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..choices import DEFAULT_TRANSFER_FIT
from ..errors import DataError, InputError
from ..io.preflight import check_weights
from ..io.stills import read_image
from ..pairs import find_pairs
from ..work_size import parse_work_size

if TYPE_CHECKING:  # torch and numpy load when the command runs, after its inputs were checked
    import numpy as np
from .common import console, device_option, flip_average_option, model_option, weights_option
from .speed import transfer_fit_option, work_size_option


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
    transfer_fit: str = DEFAULT_TRANSFER_FIT,
) -> list[dict]:
    from ..images import dehaze_image

    rows = []
    task = progress.add_task(f"{pairs[0][0].parent}", total=len(pairs))
    for hazy_path, clear_path in pairs:
        hazy = read_image(hazy_path)
        clear = _match_size(read_image(clear_path), hazy.shape, clear_path.name)
        p, s = _scores(dehaze_image(hazy, dehazer, work_size=work_size, transfer_fit=transfer_fit), clear)
        row = {"image": hazy_path.name, "psnr": p, "ssim": s}
        if baseline:
            row["input_psnr"], row["input_ssim"] = _scores(hazy, clear)
        rows.append(row)
        progress.advance(task)
    return rows


def _summary(rows: list[dict]) -> dict:
    out = {"n": len(rows)}
    for key in rows[0]:
        if key != "image":
            out[key] = statistics.fmean(r[key] for r in rows)
    return out


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
    return table


@click.command("eval")
@click.option("--hazy", multiple=True, required=True, type=click.Path(), help="Folder of hazy images (repeatable).")
@click.option("--clear", multiple=True, required=True, type=click.Path(), help="Matching folder of clear images.")
@model_option
@weights_option
@flip_average_option
@device_option
@click.option("--baseline/--no-baseline", default=True, show_default=True, help="Also score the hazy input itself.")
@click.option("--per-image/--mean-only", default=False, show_default=True, help="Show a row per image.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: n, psnr, ssim (and per-set figures).")
@work_size_option(default="model")
@transfer_fit_option
def command(
    hazy, clear, model, weights, flip_average, device, baseline, per_image, as_json, work_size, transfer_fit
) -> None:
    """PSNR (dB) and SSIM (Gaussian window 11, sigma 1.5) of dehazed images against clear ones.

    Hazy and clear files pair by name: the same name, or the part before the first '_'
    (1400_3.png -> 1400.png). Give --hazy/--clear several times for several sets.

    \b
    Example:
      streamdehaze eval --hazy sots/dev/hazy --clear sots/dev/clear --model dcp
    """
    if len(hazy) != len(clear):
        raise InputError(f"got {len(hazy)} --hazy folder(s) but {len(clear)} --clear folder(s); give them in pairs")
    sets = [find_pairs(h, c) for h, c in zip(hazy, clear)]
    check_weights(weights)
    import torch

    from ..nets.registry import load_model

    dehazer = load_model(model, weights=weights, device=device, flip_average=flip_average)
    work = parse_work_size(work_size, dehazer.device, dehazer)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with torch.inference_mode(), Progress(*columns, console=console, transient=True, disable=as_json) as progress:
        results = [evaluate_set(pairs, dehazer, progress, baseline, work, transfer_fit) for pairs in sets]
    all_rows = [r for rows in results for r in rows]
    if as_json:
        out = _summary(all_rows) | {"model": model, "work_size": work.describe(), "flip_average": flip_average}
        out["transfer_fit"] = None if work.is_full else transfer_fit
        out["sets"] = {h: _summary(r) for h, r in zip(hazy, results)}
        click.echo(json.dumps(out))
        return
    for h, rows in zip(hazy, results):
        at = "" if work.is_full else f" (working size: {work.describe()}, {transfer_fit} transfer fit)"
        at += ", flip average" if flip_average else ""
        console.print(_table(f"{model} on {h}{at}", rows, per_image))
    if len(results) > 1:
        s = _summary(all_rows)
        console.print(f"[bold]all sets[/]: n={s['n']}  PSNR {s['psnr']:.2f} dB  SSIM {s['ssim']:.4f}")
