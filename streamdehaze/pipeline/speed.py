"""The speed settings' engine: :class:`SpeedSettings` builds what the settings tree's speed group describes.

:class:`SpeedSettings` (the fields: :class:`~streamdehaze.settings.SpeedGroup`: working size, transfer
fit, guard, keyframe reuse, the GPU tuning switches) is what ``run``, ``bench``, ``image``, ``eval``
and the Python API accept; :meth:`SpeedSettings.build_engine` turns it into an
:class:`~.engine.Engine` with a :class:`~.transfer.GuidedTransfer` and :class:`~.tuning.EngineOptions`.
``bench --compare`` specs are read by :func:`streamdehaze.settings.parse_overrides`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..settings import SpeedGroup
from ..work_size import WorkSize, parse_work_size

if TYPE_CHECKING:  # the settings and --compare parsing load no torch (the CLI checks options first)
    import torch
    from torch import nn

    from .engine import Engine
    from .transfer import GuidedTransfer
    from .tuning import EngineOptions


@dataclass
class SpeedSettings(SpeedGroup):
    """``work_size``: ``auto`` (the model's or the device's default), ``full``, a short side (``540``) or a scale
    (``0.5``); ``keyframe_interval``: run the network every K frames; ``scene_cut``: the change of
    the frame's thumbnail since the previous frame that counts as a scene cut (it forces a keyframe and
    resets every temporal state, :mod:`.frame_state`); ``transfer_fit``: the shape of the guided transfer's fit
    (:data:`~.transfer.TRANSFER_FITS`); ``guard``: the rails after the fit (:data:`~..choices.GUARDS`); the
    rest: :class:`~.tuning.EngineOptions` (None = device default). Fields, defaults and checks:
    :class:`~streamdehaze.settings.SpeedGroup`; a bad value is :class:`~streamdehaze.errors.InputError`."""

    def resolved_work_size(self, device: torch.device | str, model: object = None) -> WorkSize:
        """``model``: the network (or :class:`~..nets.dehazer.Dehazer`) ``auto`` may defer to."""
        return parse_work_size(self.work_size if self.work_size is not None else "full", device, model)

    def engine_options(self) -> EngineOptions:
        from .tuning import EngineOptions

        return EngineOptions(self.channels_last, self.cudnn_benchmark, self.compile, self.cuda_graphs, self.device_yuv)

    def transfer(self, device: torch.device | str, model: object = None) -> GuidedTransfer:
        from .transfer import GuidedTransfer

        work = self.resolved_work_size(device, model)
        return GuidedTransfer(work, self.keyframe_interval, self.scene_cut, fit=self.transfer_fit, guard=self.guard)

    def build_engine(
        self,
        model: nn.Module,
        device: torch.device | str,
        precision: str = "fp32",
        depth: int = 2,
        coeff_hook: object = None,
        temporal: object = None,
        strength: float = 1.0,
    ) -> Engine:
        """The :class:`~.engine.Engine` these settings describe (``temporal``: a
        :class:`~.temporal_engine.TemporalSettings` or None; see :func:`.temporal_engine.build_engine`)."""
        import torch

        from .engine import Engine

        device = torch.device(device)
        return Engine(
            model,
            device,
            precision,
            depth,
            self.transfer(device, model),
            self.engine_options(),
            temporal=temporal,
            coeff_hook=coeff_hook,
            strength=strength,
        )

    def use_device_yuv(self, device: torch.device | str) -> bool:
        """Whether frames should travel as yuv420p planes (the sink/source must support it too)."""
        return bool(self.engine_options().resolved(device).device_yuv)

    def describe(
        self,
        device: torch.device | str,
        height: int | None = None,
        width: int | None = None,
        yuv: bool | None = None,
        model: object = None,
    ) -> str:
        """One line for the start of a run: working size, keyframes, tuning switches in effect
        (``yuv``: whether frames really travel as yuv420p, when the caller knows)."""
        options = self.engine_options().resolved(device)
        if yuv is not None:
            options.device_yuv = yuv
        return f"{self.transfer(device, model=model).describe(height, width)}; {options.describe()}"
