"""Command line: ``streamdehaze COMMAND``. Thin click commands over the Python API.

User mistakes (any :class:`StreamDehazeError`) print one red line and exit non-zero; ``--debug``
shows the traceback. Ctrl-C exits 130. The ``streamdehaze`` script is :func:`entry`: :func:`main`, then
a quick exit once torch was loaded.
"""

from __future__ import annotations

import atexit
import importlib
import os
import sys
import threading

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


def entry() -> None:
    """The ``streamdehaze`` console script: :func:`main`, then, once torch is loaded, a quick exit.

    Tearing down an interpreter that loaded torch, onnxruntime and OpenCV (their modules, objects and
    native libraries) takes about 0.6 s on a 2-core machine, 6% of the README's main job, and nothing
    is left to do by then: every command has closed its files and joined its threads when it returns.
    So the exit handlers run and the process ends there (``os._exit``) with the command's exit code;
    should a thread that the normal exit would wait for still run, the normal exit is taken instead.
    Tests and callers that import :func:`main` keep the normal exit.
    """
    try:
        main(prog_name="streamdehaze")
        code: int | str | None = 0
    except SystemExit as done:
        code = done.code
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if "torch" not in sys.modules or others:  # --help, a usage error (a quick exit anyway), or work left
        sys.exit(code)
    if not isinstance(code, int):  # sys.exit's rules: None is success, a message is printed and fails
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (e.g. `| head`): nothing more can reach it
            pass
    os._exit(code)
