"""The commands' processing options, derived from the settings tree (:mod:`streamdehaze.settings`).

``@setting_options("speed", "temporal", strength=...)`` adds the options of whole groups or single
settings to a command (names, help, choices, ranges and defaults from the tree; a keyword changes
that command's default, e.g. stills' ``transfer_fit="wide"``), and :func:`pop_speed`,
:func:`pop_temporal` and :func:`pop_settings` take their values back out of the command's keyword
arguments. Nothing here loads torch: options are checked before it loads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ..pipeline.speed import SpeedSettings  # torch-free
from ..settings import SETTINGS, Setting, group_values, keys

if TYPE_CHECKING:
    from ..pipeline.temporal_engine import TemporalSettings


def _checked(s: Setting) -> Callable:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        return s.check(value)  # InputError: one line, before any file is touched

    return callback


def click_option(s: Setting, default: Any = None, changed: bool = False) -> Callable:
    """The click option of ``s`` (``default``, when ``changed``, replaces the tree's for this command)."""
    default = default if changed else s.default
    names = [s.flag] + ([s.short] if s.short else [])
    text = " ".join(filter(None, (s.help, s.notes.get(default))))
    if s.kind == "switch":
        return click.option(f"{s.flag}/--no-{s.flag[2:]}", s.key, default=default, help=text)
    if s.kind == "flag":
        return click.option(*names, s.key, is_flag=True, default=default, help=text)
    kind: Any = None
    callback = None
    if s.kind == "choice":
        kind = click.Choice(list(s.choices))
    elif s.kind == "int":
        kind = click.IntRange(s.low, s.high, min_open=s.low_open, max_open=s.high_open)
    elif s.kind == "float":
        kind = click.FloatRange(s.low, s.high, min_open=s.low_open, max_open=s.high_open)
    else:
        callback = _checked(s)
    return click.option(*names, s.key, type=kind, default=default, show_default=True, help=text, callback=callback)


def setting_options(*names: str, **defaults: Any) -> Callable:
    """Decorator adding the options of ``names`` (groups of :data:`~streamdehaze.settings.TREE` or
    setting keys), in that order; ``defaults``: this command's own defaults by key."""
    chosen = keys(*names)
    unknown = set(defaults) - set(chosen)
    if unknown:
        raise ValueError(f"defaults for options the command does not take: {sorted(unknown)}")

    def decorate(f: Callable) -> Callable:
        for key in reversed(chosen):
            f = click_option(SETTINGS[key], defaults.get(key), key in defaults)(f)
        return f

    return decorate


def pop_settings(kwargs: dict[str, Any], *names: str) -> dict[str, Any]:
    """Take the values of ``names`` (groups or keys, see :func:`setting_options`) out of ``kwargs``
    (those the command has), by setting key."""
    return {key: kwargs.pop(key) for key in keys(*names) if key in kwargs}


def pop_speed(kwargs: dict[str, Any], **fixed: Any) -> SpeedSettings:
    """Take the speed options out of a command's keyword arguments (``fixed``: values set by the command)."""
    return SpeedSettings(**group_values("speed", {**pop_settings(kwargs, "speed"), **fixed}))


def pop_temporal(kwargs: dict[str, Any]) -> TemporalSettings:
    """Take the temporal options out of a command's keyword arguments."""
    from ..pipeline.temporal_engine import TemporalSettings

    return TemporalSettings(**group_values("temporal", pop_settings(kwargs, "temporal")))
