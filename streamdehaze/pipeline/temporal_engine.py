"""Temporal smoothing settings, and the engine builder that ``run``, ``preview``, ``bench`` and the API use.

:class:`TemporalSettings` is ``--temporal``/``--temporal-strength``; :func:`build_engine` makes an
:class:`~.engine.Engine` from :class:`~.speed.SpeedSettings`, a model and these settings. The engine's
stateful stages (:mod:`.stages`) do the smoothing: on the transfer's coefficients where the engine
carries the network's result through them (a working size below full, or keyframe reuse), on the
full-resolution output otherwise (:class:`~.temporal_filter.TemporalFilter`), plus the optical-flow
and pixel filters, and the dark channel prior's airlight (:mod:`.temporal_dcp`). Smoothing is
switched off and on while running with ``engine.control("temporal", on)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..settings import TemporalGroup
from .engine import Engine
from .temporal import MODES, TemporalConfig


@dataclass
class TemporalSettings(TemporalGroup):
    """``--temporal`` (``mode``: off, motion, ema, flow or pixel) and ``--temporal-strength`` (``strength`` in [0, 1)):
    fields, defaults and checks from :class:`~streamdehaze.settings.TemporalGroup`."""

    airlight: float = 0.9  # EMA weight of the dark channel prior's airlight (0 = not smoothed)

    def config(self) -> TemporalConfig:
        return TemporalConfig(mode=self.mode, strength=self.strength).check()

    @property
    def on(self) -> bool:
        return self.mode != "off" and self.strength > 0

    def describe(self) -> str:
        if not self.on:
            return "temporal smoothing off"
        what = {
            "motion": "colour map averaged along the motion",
            "ema": "coefficient EMA",
            "flow": "colour map along the motion + output along the flow",
            "pixel": "pixel blending",
        }
        return f"temporal smoothing {self.mode} ({what[self.mode]}, strength {self.strength:g})"


def build_engine(
    speed: Any,
    model: Any,
    device: torch.device | str,
    precision: str = "fp32",
    depth: int = 2,
    temporal: TemporalSettings | None = None,
    coeff_hook: Any = None,
    strength: float = 1.0,
) -> Engine:
    """The engine for ``speed`` (a :class:`~.speed.SpeedSettings`), ``model`` and ``temporal`` (None: off).

    Build it once and feed it several streams with :meth:`~.engine.Engine.reset` between them.
    A caller's own ``coeff_hook`` excludes ``temporal``; ``strength``: the amount of dehazing in [0, 1].
    """
    if temporal is not None:
        temporal.config()  # validates the settings even when off
    if coeff_hook is not None and temporal is not None and temporal.on:
        raise ValueError("give either a coeff_hook or temporal settings, not both")
    return speed.build_engine(
        model, device, precision, depth, coeff_hook=coeff_hook, temporal=temporal, strength=strength
    )


__all__ = ["MODES", "TemporalSettings", "build_engine"]
