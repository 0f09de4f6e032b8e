"""``streamdehaze eval --no-reference INPUT...``: figures of real footage without clear images."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..errors import InputError
from .common import console, echo_json

if TYPE_CHECKING:  # numpy and OpenCV load when the mode runs, not for `eval --help`
    from ..noref import NoRefFigures

HELP = """\b
No-reference mode (--no-reference INPUT...): photos, folders, globs or videos (every frame, or
--every N, at most --max-frames per video) are dehazed one by one as `image` does, and each
output is compared with its input:
  e      rate of newly visible edges, (n_out - n_in) / n_in, n: visible-edge pixels;
  rbar   geometric mean of |grad out| / |grad in| (Sobel) at the output's visible edges;
  sigma  % of pixels pure black or white (all channels 0 or all 255) in the output, not the input;
  dark   % of pixels with BT.709 luma <= 8 in the output, the input, and the difference (points);
  B-R, G-M  shift of mean(B) - mean(R) and mean(G) - (mean(R) + mean(B))/2, in levels.
A visible edge (after Hautière et al. 2008) is a pixel of the luma image whose Sobel magnitude is
a local maximum along its gradient direction (quantised to 45 degrees) and whose Weber contrast
|Y(P+2d) - Y(P-2d)| / max(Y(P+2d), Y(P-2d)) across it (its 5x5 neighbourhood) is at least 5%."""


def _clean(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def _row_dict(fig: NoRefFigures) -> dict:
    return {k: _clean(v) for k, v in fig.to_dict().items()}


def _fmt(value, digits: int = 2, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _cells(f: dict) -> list[str]:
    return [
        _fmt(f["e"], signed=True),
        _fmt(f["rbar"]),
        _fmt(f["sigma"]),
        _fmt(f["dark_out"], 1),
        _fmt(f["dark_in"], 1),
        _fmt(f["dark_diff"], 1, signed=True),
        _fmt(f["cast_br"], 1, signed=True),
        _fmt(f["cast_gm"], 1, signed=True),
    ]


def _table(title: str, evaluation, per_image: bool) -> Table:
    from ..noref import mean_figures

    caption = (
        "e, rbar: visible edges (see --help); sigma%: newly pure black/white; dark%, in%: luma <= 8 in the "
        "output, the input, +pts: their difference; B-R, G-M: colour shift, output - input, levels"
    )
    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD)
    names = [r.name for r in evaluation.rows] if per_image else []
    table.add_column("image", overflow="fold", min_width=min(28, max(len(n) for n in [*names, "mean aecrnet"])))
    for name in ("e", "rbar", "sigma%", "dark%", "in%", "+pts", "B-R", "G-M"):
        table.add_column(name, justify="right")
    base = evaluation.baseline_model
    if per_image:
        for r in evaluation.rows:
            table.add_row(r.name, *_cells(_row_dict(r.figures)))
            if r.baseline is not None:
                table.add_row(f"  {base}", *_cells(_row_dict(r.baseline)), style="dim")
    mean = mean_figures([r.figures for r in evaluation.rows])
    table.add_row(f"[bold]mean {evaluation.model}[/]", *(f"[bold]{c}[/]" for c in _cells(mean)))
    if base is not None:
        mean = mean_figures([r.baseline for r in evaluation.rows])
        table.add_row(f"[bold]mean {base}[/]", *(f"[bold]{c}[/]" for c in _cells(mean)))
    return table


def run_no_reference(
    inputs: tuple[str, ...],
    *,
    model: str,
    weights: str | None,
    flip_average: bool,
    device: str,
    baseline: str | None,
    per_image: bool,
    backend: str = "auto",
    as_json: bool,
    work_size: str,
    transfer_fit: str,
    guard: str,
    every: int,
    max_frames: int | None,
    sheet: str | None,
    sheet_rows: int,
) -> None:
    """The body of ``eval --no-reference``; see :data:`HELP`."""
    import torch

    from ..backends.select import load_dehazer
    from ..images import dehaze_image
    from ..nets.registry import load_model
    from ..noref import mean_figures
    from ..noref_eval import NoRefEvaluation, count_frames, expand_eval_inputs, iter_images
    from ..sheet import check_sheet_path, contact_sheet, write_sheet
    from ..work_size import parse_work_size

    if not inputs:
        raise InputError("--no-reference needs INPUT: photos, folders, globs or video files to evaluate")
    if baseline not in (None, "dcp"):
        raise InputError(f"--baseline {baseline}: with --no-reference the baseline is a model; give --baseline dcp")
    sheet_path = check_sheet_path(sheet) if sheet else None
    items = expand_eval_inputs(inputs)
    total = count_frames(items, every, max_frames)
    if total == 0:
        raise InputError(f"{' '.join(inputs)}: no frame to evaluate (empty video, or --max-frames 0)")

    dehazer = load_dehazer(model, weights, device, backend, flip_average=flip_average)
    work = parse_work_size(work_size, dehazer.device, dehazer)

    def run_model(image):
        return dehaze_image(image, dehazer, work_size=work, transfer_fit=transfer_fit, guard=guard)

    run_base = None
    if baseline:
        base = load_model(baseline, device=device)
        base_work = parse_work_size(work_size, base.device, base)

        def run_base(image):
            return dehaze_image(image, base, work_size=base_work, transfer_fit=transfer_fit)

    evaluation = NoRefEvaluation(run_model, model, run_base, baseline, sheet_rows if sheet_path else 0)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with torch.inference_mode(), Progress(*columns, console=console, transient=True, disable=as_json) as progress:
        task = progress.add_task(f"no-reference figures ({model})", total=total)
        for name, source, image in iter_images(items, every, max_frames):
            evaluation.add(name, source, image)
            progress.advance(task)
    if not evaluation.rows:
        raise InputError(f"{' '.join(inputs)}: no frame could be read to evaluate")
    if sheet_path is not None:
        titles = ["input", model] + ([baseline] if baseline else [])
        write_sheet(sheet_path, contact_sheet(evaluation.sheet_rows_selected(), titles))

    settings = {
        "model": model,
        "work_size": work.describe(),
        "transfer_fit": None if work.is_full else transfer_fit,
        "guard": None if work.is_full else guard,
        "flip_average": flip_average,
        "every": every,
        "max_frames": max_frames,
    }
    if as_json:
        out = {"mode": "no-reference"} | mean_figures([r.figures for r in evaluation.rows]) | settings
        if baseline:
            out["baseline"] = {"model": baseline} | mean_figures([r.baseline for r in evaluation.rows])
        if per_image:
            out["images"] = [
                {"image": r.source} | _row_dict(r.figures) | ({"baseline": _row_dict(r.baseline)} if r.baseline else {})
                for r in evaluation.rows
            ]
        out["sheet"] = str(sheet_path) if sheet_path else None
        echo_json(out)
        return
    at = "" if work.is_full else f" (working size: {work.describe()}, {transfer_fit} transfer fit, guard {guard})"
    at += ", flip average" if flip_average else ""
    n = len(evaluation.rows)
    console.print(_table(f"no-reference figures of {model} on {n} image(s){at}", evaluation, per_image))
    if sheet_path is not None:
        console.print(f"wrote the contact sheet {sheet_path}")
