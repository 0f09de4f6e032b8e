"""Command line: ``streamdehaze COMMAND``. Thin click commands over the Python API.

User mistakes (any :class:`StreamDehazeError`) print one red line and exit non-zero; ``--debug``
shows the traceback. Ctrl-C exits 130.
"""

from __future__ import annotations

import importlib
import sys

import click
from rich.markup import escape

from .._version import __version__
from ..errors import StreamDehazeError
from .common import console_err

# command name -> module in streamdehaze.cli defining a click command called ``command``
COMMANDS = {
    "image": "image",
    "eval": "evaluate",
    "models": "models",
    "train": "train",
    "run": "run",
    "bench": "bench",
    "eval-video": "eval_video",
    "preview": "preview",
    "export": "export",
}


class _Group(click.Group):
    """Loads each command's module only when needed (keeps ``--help`` fast)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        return importlib.import_module(f"{__name__}.{COMMANDS[name]}").command

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except StreamDehazeError as err:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            # escaped: messages hold brackets (pip install 'streamdehaze[onnx]') that rich would read as markup
            console_err.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            console_err.print("[yellow]interrupted[/]")
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="streamdehaze")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Dehaze videos, live streams and images with AECR-Net (or the dark channel prior).

    \b
    Examples:
      streamdehaze run dashcam.mp4 --output dashcam_dehazed.mp4 --model dcp
      streamdehaze preview rtsp://camera/stream --web 8080
      streamdehaze bench --resolution 1920x1080 --precision fp16 --json
      streamdehaze image photo.jpg --output out/
      streamdehaze eval --hazy data/hazy --clear data/clear
      streamdehaze models
      streamdehaze export --format onnx -o aecrnet.onnx
    """
    ctx.ensure_object(dict)["debug"] = debug
