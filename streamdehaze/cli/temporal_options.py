"""``--temporal`` and ``--temporal-strength``, shared by ``run``, ``preview`` and ``bench``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ..choices import DEFAULT_TEMPORAL_MODE as DEFAULT_MODE
from ..choices import TEMPORAL_MODES as MODES

if TYPE_CHECKING:
    from ..pipeline.temporal_engine import TemporalSettings

TEMPORAL_HELP = (
    "Temporal smoothing against flicker (only past frames are used): off; ema: moving average of the "
    "dehazing's per-pixel colour map (and of the dark channel prior's airlight), applied to the current "
    "frame so moving objects leave no trails; flow: ema plus averaging along the optical flow where the "
    "motion is reliable (also calms amplified noise); pixel: plain blending of output frames (trails)."
)


def temporal_options(default: str = DEFAULT_MODE) -> Callable:
    """Decorator adding ``--temporal`` (default ``default``) and ``--temporal-strength`` to a command."""

    def decorate(f: Callable) -> Callable:
        f = click.option(
            "--temporal-strength",
            type=click.FloatRange(0.0, 1.0, max_open=True),
            default=0.8,
            show_default=True,
            help="Weight of the past in the moving averages (0 = off; 0.8 averages about 5 frames).",
        )(f)
        return click.option(
            "--temporal", type=click.Choice(MODES), default=default, show_default=True, help=TEMPORAL_HELP
        )(f)

    return decorate


def pop_temporal(kwargs: dict[str, Any]) -> TemporalSettings:
    """Take the temporal options out of a command's keyword arguments."""
    from ..pipeline.temporal_engine import TemporalSettings

    return TemporalSettings(kwargs.pop("temporal"), kwargs.pop("temporal_strength"))
