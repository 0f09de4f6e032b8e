"""Speed settings in one place: working size, keyframe reuse and the GPU tuning switches.

:class:`SpeedSettings` is what ``run``, ``bench``, ``image``, ``eval`` and the Python API accept;
:meth:`SpeedSettings.build_engine` turns it into an :class:`~.engine.Engine` with a
:class:`~.transfer.GuidedTransfer` and :class:`~.tuning.EngineOptions`. :func:`parse_overrides`
reads ``key=value,...`` specs (``bench --compare``) into field overrides.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..backends import check_backend
from ..choices import DEFAULT_GUARD, DEFAULT_SCENE_CUT, DEFAULT_TRANSFER_FIT, check_guard, check_transfer_fit
from ..errors import InputError
from ..work_size import WorkSize, parse_work_size

if TYPE_CHECKING:  # the settings and --compare parsing load no torch (the CLI checks options first)
    import torch
    from torch import nn

    from .engine import Engine
    from .transfer import GuidedTransfer
    from .tuning import EngineOptions


@dataclass
class SpeedSettings:
    """``work_size``: ``auto`` (the model's or the device's default), ``full``, a short side (``540``) or a scale
    (``0.5``); ``keyframe_interval``: run the network every K frames; ``scene_cut``: the change of
    the frame's thumbnail since the previous frame that counts as a scene cut (it forces a keyframe and
    resets every temporal state, :mod:`.frame_state`); ``transfer_fit``: the shape of the guided transfer's fit
    (:data:`~.transfer.TRANSFER_FITS`); ``guard``: the rails after the fit (:data:`~..choices.GUARDS`); the
    rest: :class:`~.tuning.EngineOptions` (None = device default)."""

    work_size: str | float | WorkSize | None = "auto"
    keyframe_interval: int = 1
    scene_cut: float = DEFAULT_SCENE_CUT
    channels_last: bool | None = None
    cudnn_benchmark: bool | None = None
    compile: bool = False
    cuda_graphs: bool = False
    device_yuv: bool | None = None
    transfer_fit: str = DEFAULT_TRANSFER_FIT
    guard: str = DEFAULT_GUARD

    def __post_init__(self) -> None:
        check_transfer_fit(self.transfer_fit)
        check_guard(self.guard)

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


# bench --compare keys → (field, parser)
def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("on", "true", "yes", "1"):
        return True
    if lowered in ("off", "false", "no", "0"):
        return False
    raise InputError(f"expected on or off, got {text!r}")


OVERRIDE_KEYS: dict[str, tuple[str, Any]] = {
    "work-size": ("work_size", str),
    "transfer-fit": ("transfer_fit", check_transfer_fit),
    "guard": ("guard", check_guard),
    "keyframe-interval": ("keyframe_interval", int),
    "scene-cut": ("scene_cut", float),
    "channels-last": ("channels_last", _bool),
    "cudnn-benchmark": ("cudnn_benchmark", _bool),
    "compile": ("compile", _bool),
    "cuda-graphs": ("cuda_graphs", _bool),
    "device-yuv": ("device_yuv", _bool),
    "precision": ("precision", str),
    "batch": ("batch", int),
    "flip-average": ("flip_average", _bool),
    "temporal": ("temporal", str),
    "temporal-strength": ("temporal_strength", float),
    "backend": ("backend", check_backend),
}


def parse_overrides(spec: str) -> dict[str, Any]:
    """``"work-size=360,keyframe-interval=4"`` → ``{"work_size": "360", "keyframe_interval": 4}``."""
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip().replace("_", "-")
        if not sep or key not in OVERRIDE_KEYS:
            raise InputError(
                f"--compare {spec!r}: expected KEY=VALUE[,KEY=VALUE...] with KEY one of {', '.join(OVERRIDE_KEYS)}"
            )
        name, parse = OVERRIDE_KEYS[key]
        try:
            out[name] = parse(value.strip())
        except (ValueError, InputError) as err:
            raise InputError(f"--compare {spec!r}: {key}={value!r}: {err}") from None
    if not out:
        raise InputError(f"--compare {spec!r}: empty; expected e.g. work-size=360,keyframe-interval=4")
    return out


def speed_fields() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(SpeedSettings))
