"""Options and output helpers shared by the commands (the processing settings' options: :mod:`.options`)."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

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
device_option = click.option(
    "--device",
    "-d",
    default="auto",
    show_default=True,
    help="auto (CUDA if available, else CPU), cpu, cuda or cuda:N.",
)
reconnect_for_option = click.option(
    "--reconnect-for",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Live sources: after a stall (no frame for --timeout) or a lost connection, keep reconnecting "
    "with backoff for up to SECONDS, then stop with an error (the recording stays playable). "
    "Default: for ever; 0: stop at the first outage.",
)


class _ConsoleLog(logging.Handler):
    """Warnings of the ``streamdehaze`` loggers (e.g. a live source's outages) as yellow console lines."""

    def emit(self, record: logging.LogRecord) -> None:
        console.print(f"[yellow]{escape(record.getMessage())}[/]", highlight=False, soft_wrap=True)


def log_to_console() -> None:
    """Show the package's warnings on the console (once per process)."""
    logger = logging.getLogger("streamdehaze")
    if not any(isinstance(h, _ConsoleLog) for h in logger.handlers):
        logger.addHandler(_ConsoleLog(logging.WARNING))


def strict_json(value: Any) -> Any:
    """``value`` with every non-finite float (a PSNR of inf for identical images, a ratio of nan) as None:
    strict JSON has no Infinity or NaN, and parsers other than Python's reject them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def echo_json(value: Any, **kwargs: Any) -> None:
    """Print ``value`` as one line of strict JSON (:func:`strict_json`); ``kwargs`` go to ``json.dumps``."""
    click.echo(json.dumps(strict_json(value), allow_nan=False, **kwargs))
