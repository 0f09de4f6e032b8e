"""``streamdehaze train``: train AECR-Net (``fit``, the default) and ``export`` a checkpoint as a weight file."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from ..errors import TrainError
from .common import console


class _DefaultFit(click.Group):
    """A group whose default subcommand is ``fit``: ``train --data X`` means ``train fit --data X``.

    Its help shows ``fit``'s options (what ``train OPTIONS`` accepts), then the subcommands.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["fit", *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "[fit] [OPTIONS]")
        formatter.write_usage(ctx.command_path, "export CHECKPOINT --output FILE [OPTIONS]", prefix="   or: ")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        fit = self.commands["fit"]
        records = [r for p in fit.get_params(ctx) if (r := p.get_help_record(ctx)) is not None]
        with formatter.section("Training options (train = train fit)"):
            formatter.write_dl(records)
        self.format_commands(ctx, formatter)


@click.group(cls=_DefaultFit, name="train", no_args_is_help=True)
def command() -> None:
    """Train AECR-Net with L1 + contrastive regularisation, or export a trained checkpoint.

    \b
    `streamdehaze train [fit] OPTIONS` trains (fit is the default subcommand);
    `streamdehaze train export CKPT --output models/NAME.pt` writes a weight file and its card.

    \b
    Examples:
      streamdehaze train --data data/sots-indoor/train --val data/sots-indoor/dev --out runs/its
      streamdehaze train --config train.toml --resume runs/its/last.pt
      torchrun --nproc-per-node 4 -m streamdehaze.train --data data/pairs --batch-size 8
      streamdehaze train export runs/its/best.pt --output models/aecrnet.pt --half
    """


# option name -> click option; None defaults mean "not given" (the config file or TrainConfig decides)
_OPTIONS = [
    click.option(
        "--data",
        multiple=True,
        help="Training source, repeatable: DIR (DIR/hazy + DIR/clear), DIR@W "
        "(weight W: repeat factor per epoch), synth:PATH[@W] (clear images or a video, hazed on the fly), "
        "clear:PATH[@W] (haze-free images or a video, trained on as clear → clear).",
    ),
    click.option("--val", help="Paired folder (hazy/ + clear/) for periodic PSNR/SSIM; best.pt keeps the best."),
    click.option("--out", "-o", help="Run folder for last.pt, best.pt, log.csv, config.json [runs/aecrnet]."),
    click.option("--ngf", type=int, help="Network width (64 = the paper's AECR-Net) [64]."),
    click.option("--crop", type=int, help="Training crop size, a multiple of 4 [256]."),
    click.option(
        "--work-side",
        callback=lambda ctx, param, v: None if v is None else _side_range(v),
        help="Train for --work-size inference: scale each image so its short side is uniform in "
        "LO:HI pixels (or exactly N) before cropping [native size].",
    ),
    click.option(
        "--rehaze",
        type=float,
        help="Chance that a pair's haze is re-rendered at a new density (scattering model fitted to "
        "the pair; real haze that does not fit is left as it is) [0].",
    ),
    click.option(
        "--recolour",
        type=float,
        help="Chance that a re-hazed pair's scene first gets a random tone curve and white balance "
        "(new scene colours under the same haze; needs --rehaze) [0].",
    ),
    click.option(
        "--light",
        type=float,
        help="Chance that a synthetic or re-hazed sample gets light haze (a tenth to a third of its density) [0].",
    ),
    click.option(
        "--identity",
        type=float,
        help="Chance that a sample is clear → clear, so haze-free input comes back unchanged [0].",
    ),
    click.option(
        "--camera",
        type=float,
        help="Chance that the hazy input gets sensor noise and JPEG compression after the haze, as a camera adds [0].",
    ),
    click.option(
        "--augment",
        type=click.Choice(["dihedral", "mirror"]),
        help="Flips and rotations of the crops: dihedral (all 8) or mirror (left-right only, "
        "images stay upright) [dihedral].",
    ),
    click.option(
        "--init",
        type=click.Path(dir_okay=False),
        help="Start from these weights (weight file or checkpoint of the same width) [random].",
    ),
    click.option(
        "--teacher",
        type=click.Path(dir_okay=False),
        help="Distil: train towards these weights' outputs on the same inputs instead of the clear images "
        "(e.g. a narrower --ngf that does what the shipped network does, at less cost) [off].",
    ),
    click.option(
        "--batch-size",
        "-b",
        type=int,
        help="Crops per step and process (global batch = this × torchrun processes) [4].",
    ),
    click.option("--accum", type=int, help="Split each batch into this many micro-batches [1]."),
    click.option("--steps", type=int, help="Optimiser steps of the schedule [100000]."),
    click.option("--lr", type=float, help="Adam learning rate, cosine-decayed to 0 [1e-4]."),
    click.option("--warmup", type=int, help="Linear warm-up steps [0]."),
    click.option("--clip-grad", type=float, help="Clip the gradient norm to this (0 = off) [0]."),
    click.option(
        "--rec-loss",
        type=click.Choice(["l1", "l2"]),
        help="Reconstruction term: l1 (the paper's) or l2 (mean squared error, what PSNR measures) [l1].",
    ),
    click.option(
        "--fit-loss/--no-fit-loss",
        default=None,
        help="Compute the losses on the network's output after the working-size transfer's affine fit "
        "(what --work-size inference delivers), not on the raw output; with --teacher the teacher's output "
        "goes through the fit too [off].",
    ),
    click.option(
        "--shadow-loss",
        "shadow_weight",
        type=float,
        help="Weight of a log-domain L1 that weighs errors in dark regions by their relative size "
        "(against crushed shadows) [0].",
    ),
    click.option(
        "--colour-loss",
        "colour_weight",
        type=float,
        help="Weight of the per-channel mean error (brightness and grey balance, against tints) [0].",
    ),
    click.option("--cr-weight", type=float, help="λ of REC + λ·CR; 0 trains with REC only (no VGG) [0.1]."),
    click.option(
        "--cr-encoder",
        type=click.Choice(["imagenet", "random"]),
        help="VGG19 for CR: imagenet weights (torch hub cache or --vgg-weights) or a fixed random one.",
    ),
    click.option("--vgg-weights", type=click.Path(dir_okay=False), help="torchvision's vgg19-dcbb9e9d.pth."),
    click.option("--cr-negatives", type=int, help="Extra CR negatives: other hazy images of the batch [0]."),
    click.option("--amp/--no-amp", default=None, help="Mixed precision on CUDA [on]."),
    click.option("--seed", type=int, help="Seed of weights, data order and augmentation [0]."),
    click.option("--device", "-d", help="auto, cpu, cuda or cuda:N (under torchrun: cuda = one GPU per rank)."),
    click.option("--workers", type=int, help="Data loader processes [2]."),
    click.option(
        "--threads",
        type=int,
        help="Torch CPU threads per process (0 = default; 1 is often fastest on a busy machine) [0].",
    ),
    click.option("--log-every", type=int, help="Steps between log lines [10]."),
    click.option("--ckpt-every", type=int, help="Steps between checkpoints (last.pt) [1000]."),
    click.option("--val-every", type=int, help="Steps between validations [1000]."),
    click.option("--val-limit", type=int, help="Validate on at most this many pairs [50]."),
    click.option("--val-crop", type=int, help="Centre-crop validation images to this size (0 = full) [0]."),
    click.option(
        "--val-work-size",
        help="Validate through the guided transfer at this --work-size (e.g. 1/4, 128) [full].",
    ),
]


def _side_range(text: str) -> list[int]:
    lo, _, hi = text.partition(":")
    try:
        return [int(lo), int(hi or lo)]
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected LO:HI or N (short sides in pixels, e.g. 112:256)") from None


def _with_options(f):
    for opt in reversed(_OPTIONS):
        f = opt(f)
    return f


@command.command("fit")
@click.option(
    "--config",
    "-c",
    "config_file",
    type=click.Path(dir_okay=False),
    help="JSON or TOML file of settings (keys as the options, e.g. batch_size = 8); options override it.",
)
@_with_options
@click.option("--resume", type=click.Path(), help="Continue a run exactly from its checkpoint (file or run folder).")
@click.option("--stop-after", type=int, help="Stop after this many steps of this session (checkpoint written).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or config table.")
def fit(config_file: str | None, resume: str | None, stop_after: int | None, quiet: bool, **options: Any) -> None:
    """Train AECR-Net (the default subcommand). Ctrl-C writes last.pt; --resume continues exactly."""
    from ..train import TrainConfig, load_config_file
    from ..train.checkpoint import read_checkpoint
    from ..train.config import check_resume_compatible
    from ..train.loop import train

    explicit = dict(load_config_file(config_file)) if config_file else {}
    explicit = {k.replace("-", "_"): v for k, v in explicit.items()}
    explicit.update({k: (list(v) if k == "data" else v) for k, v in options.items() if v not in (None, ())})
    if resume:
        saved = TrainConfig.from_dict(read_checkpoint(resume)["config"])
        typed = TrainConfig.from_dict(explicit).to_dict()  # type-checks the given values
        cfg = check_resume_compatible(saved, {k: typed[k] for k in explicit})
    else:
        cfg = TrainConfig.from_dict(explicit)
    cfg.validate()
    if not quiet and _is_main():
        _print_config(cfg, resume)
    result = train(cfg, resume=resume, progress=not quiet, stop_after=stop_after)
    if not _is_main():
        return
    if result.interrupted:
        console.print(f"[yellow]stopped at step {result.step}[/]; continue with --resume {result.last}")
        raise KeyboardInterrupt
    best = f", best {result.best_psnr:.2f} dB ({result.best})" if result.best_psnr is not None else ""
    console.print(f"step {result.step}: wrote {result.last}{best}; {result.images_per_s:.2f} images/s")


def _is_main() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def _print_config(cfg: Any, resume: str | None) -> None:
    table = Table(title="training configuration" + (f" (resuming {resume})" if resume else ""), show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in cfg.to_dict().items():
        table.add_row(key, ", ".join(map(str, value)) if isinstance(value, list) else str(value))
    console.print(table)


@command.command("export")
@click.argument("checkpoint", type=click.Path())
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="Weight file to write (.pt).")
@click.option("--half", is_flag=True, help="Store float16 weights (half the size; loaded as float32).")
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    metavar="NAME=VALUE",
    help="A measured figure for the card, repeatable (e.g. sots_indoor_psnr=24.1).",
)
@click.option("--notes", default="", help="Free text (markdown) appended to the card.")
@click.option(
    "--work-side",
    type=click.IntRange(min=8),
    help="Short side --work-size auto runs these weights at [the middle of the trained --work-side range].",
)
@click.option(
    "--average",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Another checkpoint of the same network to average with CHECKPOINT, repeatable "
    "(e.g. the last few of a run: steadier than any one of them).",
)
def export(checkpoint: str, output: str, half: bool, metrics: tuple[str, ...], notes: str, work_side, average) -> None:
    """Write a training checkpoint as a weight file (our format) plus its card NAME.md."""
    from ..train.export import export_checkpoint

    parsed: dict[str, float | str] = {}
    for item in metrics:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise TrainError(f"--metric {item!r}: expected NAME=VALUE, e.g. sots_indoor_psnr=24.1")
        try:
            parsed[name] = float(value)
        except ValueError:
            parsed[name] = value
    weights, card, digest = export_checkpoint(
        checkpoint, output, half=half, metrics=parsed, notes=notes, work_side=work_side, average=average
    )
    console.print(f"wrote {weights} and {card} (sha256 {digest})", highlight=False, soft_wrap=True)
