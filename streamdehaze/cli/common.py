"""Options and output helpers shared by the commands."""

from __future__ import annotations

import click
from rich.console import Console

from ..backends import BACKENDS

console = Console()
console_err = Console(stderr=True)

model_option = click.option(
    "--model",
    "-m",
    type=click.Choice(["aecrnet", "dcp"]),
    default="aecrnet",
    show_default=True,
    help="aecrnet: the shipped AECR-Net weights (or --weights); dcp: dark channel prior, needs no weights.",
)
weights_option = click.option(
    "--weights",
    "-w",
    type=click.Path(dir_okay=False),
    default=None,
    help="Weight file to use instead of the shipped one (official AECR-Net .pk/.pth or ours; "
    "an .onnx file from 'streamdehaze export' runs with onnxruntime).",
)
flip_average_option = click.option(
    "--flip-average",
    is_flag=True,
    help="Also run the network on the mirrored frame and average the two results "
    "(a little more accurate, twice the network time).",
)
device_option = click.option(
    "--device",
    "-d",
    default="auto",
    show_default=True,
    help="auto (CUDA if available, else CPU), cpu, cuda or cuda:N.",
)
backend_option = click.option(
    "--backend",
    type=click.Choice(list(BACKENDS)),
    default="auto",
    show_default=True,
    help="What runs the network. auto: onnxruntime on the CPU (faster there) when installed, else torch; "
    "onnxruntime exports the weights to ONNX once (cached) or runs --weights FILE.onnx; "
    "install it with: pip install 'streamdehaze[onnx]'.",
)
