"""``streamdehaze image``: dehaze still images into a folder (or one image into a file)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..choices import DEFAULT_GUARD, STILLS_TRANSFER_FIT
from ..errors import InputError
from ..io.preflight import IMAGE_EXTENSIONS, check_weights, check_writable_folder
from ..io.stills import expand_inputs, read_image, write_image
from ..work_size import parse_work_size
from .common import console, device_option, model_option, weights_option
from .options import setting_options


def _output_paths(inputs: list[Path], out_dir: Path) -> list[Path]:
    outs = [out_dir / f"{p.stem}.png" for p in inputs]
    seen: dict[Path, Path] = {}
    for src, dst in zip(inputs, outs):
        if dst in seen:
            raise InputError(
                f"{src} and {seen[dst]} would both be written to {dst}; dehaze them into different folders"
            )
        seen[dst] = src
    return outs


def _targets(inputs: list[Path], output: Path) -> tuple[Path, list[Path]]:
    """The folder to write into and each input's output file: ``OUTPUT/<name>.png``, or, for a single
    image and an ``OUTPUT`` with an image extension (not an existing folder), ``OUTPUT`` itself."""
    if output.suffix.lower() in IMAGE_EXTENSIONS and not output.is_dir():
        if len(inputs) != 1:
            raise InputError(
                f"--output {output} names one image file, but there are {len(inputs)} images; give a folder"
            )
        return output.parent, [output]
    return output, _output_paths(inputs, output)


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) where they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


@click.command("image")
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(),
    help="Folder for DIR/<name>.png; for a single image also a file name (out.png, out.jpg, ...).",
)
@model_option
@weights_option
@setting_options("flip_average")
@device_option
@setting_options("backend", "work_size", "transfer_fit", "guard", "strength", transfer_fit=STILLS_TRANSFER_FIT)
def command(
    inputs: tuple[str, ...],
    output: str,
    model: str,
    weights: str | None,
    flip_average: bool,
    device: str,
    backend: str,
    work_size: str,
    transfer_fit: str,
    guard: str,
    strength: float,
) -> None:
    """Dehaze images (files, folders or globs) and write OUTPUT/<input name>.png (one image: OUTPUT may
    also be the file to write, by its extension).

    Stops at the first image that cannot be read (one line says which; the images written before
    it stay); OUTPUT is created only once there is an image to write.

    \b
    Examples:
      streamdehaze image samples/foggy_road.jpg --output out/
      streamdehaze image samples/foggy_road.jpg --output clear_road.png
      streamdehaze image 'photos/*.jpg' --output out/ --model dcp
    """
    paths = expand_inputs(inputs)
    out_dir, outs = _targets(paths, Path(output))
    check_writable_folder(out_dir)  # before the model loads
    check_weights(weights)
    from ..backends.select import describe_backend, load_dehazer
    from ..images import dehaze_image

    dehazer = load_dehazer(model, weights, device, backend, flip_average=flip_average)
    work = parse_work_size(work_size, dehazer.device, dehazer)
    created = [p for p in (out_dir.absolute(), *out_dir.absolute().parents) if not p.exists()]  # deepest first
    written = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console, disable=len(paths) < 2, transient=True) as progress:
            task = progress.add_task(f"dehazing ({model})", total=len(paths))
            for src, dst in zip(paths, outs):
                image = dehaze_image(
                    read_image(src), dehazer, work_size=work, transfer_fit=transfer_fit, strength=strength, guard=guard
                )
                out_dir.mkdir(parents=True, exist_ok=True)  # only once there is an image to write
                write_image(dst, image)
                written += 1
                progress.advance(task)
    except BaseException:
        if not written:  # nothing was written: leave no empty folder behind
            _remove_empty(created)
        raise
    how = work.describe()
    how += "" if work.is_full else f", {transfer_fit} transfer fit"
    how += "" if work.is_full or guard == DEFAULT_GUARD else f", guard {guard}"
    how += ", flip average" if flip_average else ""
    how += "" if strength == 1 else f", strength {strength:g}"
    via = f"on {dehazer.device} via {describe_backend(dehazer)}"
    console.print(f"wrote {len(paths)} image(s) to {output} with {model} {via} ({how})", highlight=False)
