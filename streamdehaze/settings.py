"""The processing settings in one typed tree: each described once, everything else derived.

Four groups (dataclasses): :class:`SpeedGroup` (working size, transfer fit, guard rails, keyframes,
scene cut, the engine's tuning switches), :class:`TemporalGroup` (``--temporal``,
``--temporal-strength``), :class:`RunGroup` (batch, precision, backend, flip average) and
:class:`DehazeGroup` (``--strength``); :data:`TREE` names them. Each field carries one
:class:`Setting`: its key, type, default, choices or range, help text and whether it is a
``bench --compare`` key. From it come

* the command line's options (:mod:`streamdehaze.cli.options`: names, defaults, help, choices;
  a command may override a default, as stills do for ``--transfer-fit``),
* the ``bench --compare`` keys and their parsers (:data:`COMPARE_KEYS`, :func:`parse_overrides`),
* the Python API's keywords and their checks (:func:`check_keywords`, used by
  :func:`~streamdehaze.api.build_pipeline`, :func:`~streamdehaze.api.dehaze_video` and
  :func:`~streamdehaze.images.dehaze_image`), and the checks the groups run when built.

The engine's classes extend the groups (:class:`~.pipeline.speed.SpeedSettings`,
:class:`~.pipeline.temporal_engine.TemporalSettings`). A setting's key is its API keyword, the
command's parameter and, with dashes, its option (``--work-size``) and ``--compare`` key; the
field of its group is usually the same name (the temporal group's are ``mode`` and ``strength``).

This module imports no torch, numpy or OpenCV: the command line builds its options from it.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .backends import BACKENDS
from .choices import (
    DEFAULT_GUARD,
    DEFAULT_SCENE_CUT,
    DEFAULT_TEMPORAL_MODE,
    DEFAULT_TRANSFER_FIT,
    GUARDS,
    STILLS_TRANSFER_FIT,
    TEMPORAL_MODES,
    TRANSFER_FITS,
)
from .errors import InputError
from .work_size import WorkSize, parse_work_size

PRECISIONS = ("fp32", "fp16", "bf16")
_ON, _OFF = ("on", "true", "yes", "1"), ("off", "false", "no", "0")


@dataclass(frozen=True)
class Setting:
    """One setting. ``kind``: ``choice`` (one of ``choices``), ``int``/``float`` (within ``low``..``high``,
    ends excluded where ``*_open``), ``text`` (checked by ``check_text``), ``switch`` (on, off or None:
    the device's default; ``--x/--no-x``) or ``flag`` (off unless given). ``compare``: a
    ``bench --compare`` key; ``notes``: a sentence of help
    per default (a command that changes the default says why); ``short``: a one-letter alias."""

    key: str
    default: Any
    help: str
    kind: str
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    check_text: Callable[[Any], Any] | None = None
    compare: bool = True
    notes: Mapping[Any, str] = field(default_factory=dict)
    short: str | None = None

    @property
    def flag(self) -> str:
        """``--work-size``: the option's name."""
        return "--" + self.key.replace("_", "-")

    @property
    def compare_key(self) -> str:
        """``work-size``: the ``bench --compare`` key."""
        return self.key.replace("_", "-")

    def expected(self) -> str:
        """What a value must be, for error messages."""
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind in ("switch", "flag"):
            return "on or off" + (" (or None: the device's default)" if self.kind == "switch" else "")
        what = "a whole number" if self.kind == "int" else "a number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{what} in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '>='} {self.low:g}"
        return what

    def check(self, value: Any) -> Any:
        """``value`` if it is valid for this setting, else :class:`InputError` (``--flag VALUE: expected ...``)."""
        if self.kind == "text":
            return self.check_text(value) if self.check_text else value
        ok = {
            "choice": lambda v: isinstance(v, str) and v in self.choices,
            "switch": lambda v: v is None or isinstance(v, bool),
            "flag": lambda v: isinstance(v, bool),
            "int": lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and self._in_range(v),
            "float": lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool) and self._in_range(v),
        }[self.kind]
        if not ok(value):
            raise InputError(f"{self.flag} {value!r}: expected {self.expected()}")
        return {"int": int, "float": float}.get(self.kind, lambda v: v)(value)

    def _in_range(self, v: float) -> bool:
        low_ok = self.low is None or (v > self.low if self.low_open else v >= self.low)
        return low_ok and (self.high is None or (v < self.high if self.high_open else v <= self.high))

    def parse(self, text: str) -> Any:
        """The value of ``text`` (``bench --compare``'s ``KEY=TEXT``), checked."""
        text = text.strip()
        if self.kind in ("switch", "flag"):
            if text.lower() not in _ON + _OFF:
                raise InputError(f"{self.flag} {text!r}: expected on or off")
            return self.check(text.lower() in _ON)
        if self.kind in ("int", "float"):
            try:
                number = int(text) if self.kind == "int" else float(text)
            except ValueError:
                raise InputError(f"{self.flag} {text!r}: expected {self.expected()}") from None
            return self.check(number)
        return self.check(text.lower() if self.kind == "choice" else text)


def setting(key: str, default: Any, help: str, kind: str, **spec: Any) -> Any:
    """A group's field described by a :class:`Setting` (``key``: see :class:`Setting`)."""
    meta = Setting(key, default, help, kind, **spec)
    return field(default=default, metadata={"setting": meta})


def _work_size(value: Any) -> Any:
    if not isinstance(value, (str, int, float, WorkSize)) and value is not None or isinstance(value, bool):
        raise InputError(f"--work-size {value!r}: expected full, auto, model, a short side (540) or a scale (0.5)")
    parse_work_size(value, "cpu")  # the syntax (InputError: one line); auto and model resolve later
    return value


class Group:
    """Base of the groups: building one checks every field against its :class:`Setting`."""

    def __post_init__(self) -> None:
        for f, s in fields_of(type(self)):
            setattr(self, f.name, s.check(getattr(self, f.name)))


def fields_of(group: type) -> Iterator[tuple[dataclasses.Field, Setting]]:
    """``(field, setting)`` of every field of ``group`` (a class or instance) that the tree describes."""
    for f in dataclasses.fields(group):
        if "setting" in f.metadata:
            yield f, f.metadata["setting"]


WORK_SIZE_HELP = (
    "Resolution the network runs at; the result is carried to full resolution by guided transfer. "
    "auto (the size the model's weights were trained for, e.g. the shipped AECR-Net's; otherwise "
    "CPU: short side 360, GPU: full up to 1080p, short side 1080 above), model (the weights' size, "
    "else full), full, a short side in pixels (540) or a scale (0.5, 1/3)."
)


@dataclass
class SpeedGroup(Group):
    """How the engine carries the network's result and how fast: ``run``, ``preview``, ``bench``,
    ``image``, ``eval`` (the last three: working size, transfer fit and guard only)."""

    work_size: str | float | WorkSize | None = setting(
        "work_size", "auto", WORK_SIZE_HELP, "text", check_text=_work_size
    )
    transfer_fit: str = setting(
        "transfer_fit", DEFAULT_TRANSFER_FIT,
        "Shape of the fit that carries the working-size result to full resolution: "
        + "; ".join(f"{name}: {fit.summary}" for name, fit in TRANSFER_FITS.items()) + ".",
        "choice", choices=tuple(TRANSFER_FITS),
        notes={
            DEFAULT_TRANSFER_FIT: "Video defaults to local (least flicker).",
            STILLS_TRANSFER_FIT: "Stills default to wide (sharper; flicker does not matter in one picture).",
        },
    )  # fmt: skip
    guard: str = setting(
        "guard", DEFAULT_GUARD,
        "Guard rails on the fitted result: " + "; ".join(f"{name}: {text}" for name, text in GUARDS.items()) + ".",
        "choice", choices=tuple(GUARDS),
    )  # fmt: skip
    keyframe_interval: int = setting(
        "keyframe_interval", 1,
        "Run the network every K frames; in between, the colour map is carried along the motion "
        "(--temporal motion) or reused. Scene cuts force a keyframe. 2 makes a CPU run about a quarter "
        "cheaper, with single frames up to 0.8 dB off on fast pans (docs/performance.md).",
        "int", low=1,
    )  # fmt: skip
    scene_cut: float = setting(
        "scene_cut", DEFAULT_SCENE_CUT,
        "Change of the frame's 16x16 gray thumbnail since the previous frame (mean abs, 0-1) that counts "
        "as a scene cut: it forces a keyframe and resets every temporal smoothing state.",
        "float", low=0, low_open=True,
    )  # fmt: skip
    channels_last: bool | None = setting("channels_last", None, "NHWC weights and inputs [default: on].", "switch")
    cudnn_benchmark: bool | None = setting(
        "cudnn_benchmark", None, "cuDNN autotuning [default: on with CUDA].", "switch"
    )
    compile: bool = setting("compile", False, "torch.compile the network (slow first batch).", "flag")
    cuda_graphs: bool = setting("cuda_graphs", False, "Replay CUDA graphs for fixed shapes (CUDA only).", "flag")
    device_yuv: bool | None = setting(
        "device_yuv", None,
        "Decode/encode yuv420p and convert colour on the device [default: on with CUDA, file to video file].",
        "switch",
    )  # fmt: skip


@dataclass
class TemporalGroup(Group):
    """``--temporal`` (``mode``) and ``--temporal-strength`` (``strength``): ``run``, ``preview``, ``bench``."""

    mode: str = setting(
        "temporal", DEFAULT_TEMPORAL_MODE,
        "Temporal smoothing against flicker (only past frames are used): off; motion: the dehazing's "
        "per-pixel colour map (and the dark channel prior's airlight) averaged along the optical flow of "
        "the small working-size frames and applied to the current frame (no trails; holds under camera "
        "pans and zooms; real changes of the fog are followed at once); ema: the colour map averaged per "
        "pixel where nothing moves; flow: motion plus averaging of the output along a finer optical flow (also "
        "calms the noise dehazing amplifies: 0.5-0.7x the flicker of off; the past is held within each pixel's "
        "neighbourhood range in the current output, so it barely trails; on a CPU it runs at about two thirds "
        "of the speed); pixel: plain blending of output frames (trails).",
        "choice", choices=TEMPORAL_MODES,
    )  # fmt: skip
    strength: float = setting(
        "temporal_strength", 0.8,
        "Weight of the past in the moving averages (0 = off; 0.8 averages about 5 frames).",
        "float", low=0.0, high=1.0, high_open=True,
    )  # fmt: skip


@dataclass
class RunGroup(Group):
    """How the network runs: ``run``, ``preview``, ``bench`` (``image`` and ``eval``: backend and flip average)."""

    batch: int = setting("batch", 4, "Frames per model call.", "int", low=1, short="-b")
    precision: str = setting(
        "precision", "fp32", "Model precision; fp16/bf16 use autocast (fp16 needs CUDA).", "choice", choices=PRECISIONS
    )
    backend: str = setting(
        "backend", "auto",
        "What runs the network. auto: onnxruntime on the CPU (faster there) when installed, else torch; "
        "onnxruntime exports the weights to ONNX once (cached) or runs --weights FILE.onnx; "
        "install it with: pip install 'streamdehaze[onnx]'.",
        "choice", choices=BACKENDS,
    )  # fmt: skip
    flip_average: bool = setting(
        "flip_average", False,
        "Also run the network on the mirrored frame and average the two results "
        "(a little more accurate, twice the network time).",
        "flag",
    )  # fmt: skip


@dataclass
class DehazeGroup(Group):
    """``--strength``: ``run``, ``preview``, ``image``."""

    strength: float = setting(
        "strength", 1.0,
        "Amount of dehazing, 0-1: the dehazing map y = a*x + b is applied as 1 + S*(a - 1) and S*b "
        "(0 returns the input, 1 the model's full result). Costs nothing; in preview, - and + (or the page's "
        "slider) change it live.",
        "float", low=0.0, high=1.0, compare=False,
    )  # fmt: skip


# the tree: group name -> group
TREE: dict[str, type[Group]] = {"speed": SpeedGroup, "run": RunGroup, "temporal": TemporalGroup, "dehaze": DehazeGroup}
# every setting by key, in the tree's order
SETTINGS: dict[str, Setting] = {s.key: s for group in TREE.values() for _, s in fields_of(group)}
GROUP_OF: dict[str, str] = {s.key: name for name, group in TREE.items() for _, s in fields_of(group)}
# bench --compare keys (work-size, ...) -> setting
COMPARE_KEYS: dict[str, Setting] = {s.compare_key: s for s in SETTINGS.values() if s.compare}


def keys(*names: str) -> tuple[str, ...]:
    """Setting keys from group names (``"speed"``) and keys (``"strength"``), in the order given."""
    out: list[str] = []
    for name in names:
        out += [s.key for _, s in fields_of(TREE[name])] if name in TREE else [SETTINGS[name].key]
    return tuple(out)


def parse_overrides(spec: str) -> dict[str, Any]:
    """``bench --compare``'s ``"work-size=360,keyframe-interval=4"`` → ``{"work_size": "360", "keyframe_interval": 4}``
    (values parsed and checked by their :class:`Setting`; a bad spec is one line of :class:`InputError`)."""
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip().replace("_", "-")
        if not sep or key not in COMPARE_KEYS:
            raise InputError(
                f"--compare {spec!r}: expected KEY=VALUE[,KEY=VALUE...] with KEY one of {', '.join(COMPARE_KEYS)}"
            )
        try:
            out[COMPARE_KEYS[key].key] = COMPARE_KEYS[key].parse(value)
        except InputError as err:
            raise InputError(f"--compare {spec!r}: {key}={value.strip()!r}: {err}") from None
    if not out:
        raise InputError(f"--compare {spec!r}: empty; expected e.g. work-size=360,keyframe-interval=4")
    return out


def check_keywords(
    keywords: Mapping[str, Any], allowed: Iterable[str] | None = None, where: str = ""
) -> dict[str, Any]:
    """``keywords`` (setting keys → values, e.g. an API call's) checked: an unknown key, or one not in
    ``allowed`` (default: every setting), and a bad value are :class:`InputError`. ``where``: the
    function named in the message."""
    allowed = tuple(SETTINGS if allowed is None else allowed)
    for key in keywords:
        if key not in allowed:
            raise InputError(f"{where or 'settings'}: unknown keyword {key!r}; expected one of {', '.join(allowed)}")
    return {key: SETTINGS[key].check(value) for key, value in keywords.items()}


def group_values(group: str, keywords: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``group`` (by field name) that ``keywords`` (by setting key) give."""
    return {f.name: keywords[s.key] for f, s in fields_of(TREE[group]) if s.key in keywords}
