"""The training configuration: one dataclass, loadable from JSON/TOML, checked before training.

Precedence (CLI): built-in defaults < config file < options given on the command line. The
resolved configuration is printed at start, saved beside the checkpoints (``config.json``) and
stored in every checkpoint, so ``--resume`` continues with exactly the same settings.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import TrainError

CR_ENCODERS = ("imagenet", "random")
AUGMENTS = ("dihedral", "mirror")
REC_LOSSES = ("l1", "l2")

# Keys that may differ when resuming: they change where/how often things are written, not the
# optimisation itself (everything else would make "resume" a different run).
RUNTIME_KEYS = frozenset(
    "out device workers threads log_every ckpt_every val_every val_limit val_work_size amp".split()
)


@dataclass
class TrainConfig:
    """Everything a training run depends on. Batch sizes are per process (see ``accum``)."""

    # "DIR[@W]" pairs (DIR/hazy + DIR/clear), "synth:PATH[@W]" (hazed on the fly), "clear:PATH[@W]" (clear → clear)
    data: list[str] = field(default_factory=list)
    val: str | None = None  # paired folder for periodic PSNR/SSIM (DIR/hazy + DIR/clear)
    out: str = "runs/aecrnet"  # checkpoints (last.pt, best.pt), log.csv, config.json
    ngf: int = 64  # network width (64 = the paper's network)
    crop: int = 256  # square training crops, a multiple of 4
    # Train at a working size (see ``--work-size``): each image is first scaled down so its short
    # side is uniform in [lo, hi] pixels, then cropped. (0, 0) = native size.
    work_side: tuple[int, int] = (0, 0)
    # Chance that a paired sample's haze is re-rendered at a new density (scattering model fitted
    # to the pair, t → t^s); pairs the model does not fit, such as real haze, stay as they are.
    rehaze: float = 0.0
    recolour: float = 0.0  # chance that a re-hazed pair's scene colours change first (tone curve, white balance)
    light: float = 0.0  # chance that a synthetic or re-hazed sample gets light haze (haze.LIGHT_EXPONENT / light_beta)
    identity: float = 0.0  # chance that a sample is clear → clear: haze-free input must come back unchanged
    camera: float = 0.0  # chance that the input gets sensor noise and JPEG compression after the haze
    # Geometric augmentation: "dihedral" = the 8 flips/90° rotations; "mirror" = left-right flips
    # only, so images stay upright (floor below, far wall above), as every test image and video is.
    augment: str = "dihedral"
    init: str | None = None  # start from these weights (weight file or checkpoint) instead of random ones
    # Distillation: the targets are these weights' outputs on the same inputs (what that model gives at
    # inference), not the clear images; a narrower network (--ngf) learns to do what a wider one does.
    teacher: str | None = None
    batch_size: int = 4  # images per optimiser step and process
    accum: int = 1  # micro-batches the batch is split into (FastDeconv statistics per micro-batch)
    steps: int = 100_000  # optimiser steps of the whole schedule
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    warmup: int = 0  # linear warm-up steps before the cosine decay
    clip_grad: float = 0.0  # max global gradient norm; 0 = no clipping
    rec_loss: str = "l1"  # reconstruction term: l1 (the paper's) | l2 (mean squared error, what PSNR measures)
    # Loss on what inference delivers: the network's output through the working-size transfer's
    # affine fit (pipeline/transfer.fit_coefficients at the default radius), not the raw output.
    fit_loss: bool = False
    # Terms against what real fog showed (issue 16): a log-domain L1 that weighs errors in dark regions
    # by their relative size (crushed shadows), and the per-channel mean error (grey balance, tint).
    shadow_weight: float = 0.0
    colour_weight: float = 0.0
    cr_weight: float = 0.1  # λ of REC + λ·CR; 0 = REC only (no VGG needed)
    cr_encoder: str = "imagenet"  # imagenet (torchvision cache or vgg_weights) | random (fixed seeded VGG19)
    vgg_weights: str | None = None  # torchvision's vgg19-dcbb9e9d.pth, if not in torch.hub's cache
    cr_negatives: int = 0  # extra negatives per image: other hazy images of the (micro-)batch
    amp: bool = True  # mixed precision on CUDA (ignored on CPU)
    seed: int = 0
    device: str = "auto"
    workers: int = 2  # data loader processes
    threads: int = 0  # torch CPU threads per process (0 = torch's default)
    log_every: int = 10
    ckpt_every: int = 1000
    val_every: int = 1000
    val_limit: int = 50  # at most this many validation pairs
    val_crop: int = 0  # centre-crop validation images to this size (0 = full images)
    val_work_size: str = "full"  # validate through the guided transfer at this --work-size

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        d["work_side"] = list(self.work_side)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from a (file or checkpoint) dict; unknown keys and wrong types raise :class:`TrainError`."""
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            name = key.replace("-", "_")
            if name not in known:
                raise TrainError(f"unknown config key {key!r}; expected some of: {', '.join(sorted(known))}")
            kwargs[name] = _coerce(name, value, cls.__dataclass_fields__[name].default)
        return cls(**kwargs)

    def validate(self) -> TrainConfig:
        """Check values that would only fail later (or silently); returns ``self``."""
        if not self.data:
            raise TrainError(
                "no training data: pass --data DIR (a folder with hazy/ and clear/) or set data in --config"
            )
        _check(self.crop >= 16 and self.crop % 4 == 0, f"crop {self.crop}: expected a multiple of 4, at least 16")
        _check(self.batch_size >= 1 and self.accum >= 1, "batch_size and accum must be at least 1")
        _check(
            self.batch_size % self.accum == 0,
            f"batch_size {self.batch_size} is not divisible by accum {self.accum}; pick a batch that splits evenly",
        )
        micro = self.batch_size // self.accum
        _check(self.ngf >= 2 and self.ngf % 2 == 0, f"ngf {self.ngf}: expected an even width of at least 2 (paper: 64)")
        lo, hi = self.work_side
        _check(
            (lo, hi) == (0, 0) or self.crop <= lo <= hi,
            f"work_side {lo}:{hi}: expected crop ({self.crop}) <= LO <= HI, or 0 for native size",
        )
        _check(0 <= self.rehaze <= 1, f"rehaze {self.rehaze}: expected a probability in [0, 1]")
        _check(0 <= self.recolour <= 1, f"recolour {self.recolour}: expected a probability in [0, 1]")
        _check(not self.recolour or self.rehaze, "recolour acts on re-hazed pairs only: set rehaze too")
        for name in ("light", "identity", "camera"):
            _check(0 <= getattr(self, name) <= 1, f"{name} {getattr(self, name)}: expected a probability in [0, 1]")
        _check(min(self.shadow_weight, self.colour_weight) >= 0, "shadow_weight and colour_weight must be >= 0")
        _check(self.augment in AUGMENTS, f"augment {self.augment!r}: expected one of {', '.join(AUGMENTS)}")
        _check(self.steps >= 1, f"steps {self.steps}: expected at least 1")
        _check(self.lr > 0 and all(0 <= b < 1 for b in self.betas), f"lr {self.lr} / betas {self.betas} out of range")
        _check(self.rec_loss in REC_LOSSES, f"rec_loss {self.rec_loss!r}: expected one of {', '.join(REC_LOSSES)}")
        _check(self.cr_weight >= 0, f"cr_weight {self.cr_weight}: expected >= 0")
        _check(self.cr_encoder in CR_ENCODERS, f"cr_encoder {self.cr_encoder!r}: expected one of {CR_ENCODERS}")
        _check(
            self.cr_encoder != "random" or not self.vgg_weights,
            "--vgg-weights was given with --cr-encoder random; drop one of them",
        )
        _check(
            0 <= self.cr_negatives < micro or self.cr_negatives == 0,
            f"cr_negatives {self.cr_negatives}: needs at most {micro - 1} (other images of a micro-batch of {micro})",
        )
        from ..errors import InputError
        from ..work_size import parse_work_size

        try:  # a typo here would otherwise surface at the first validation, steps into the run
            parse_work_size(self.val_work_size)
        except InputError as exc:
            raise TrainError(str(exc).replace("--work-size", "--val-work-size", 1)) from None
        for name in ("log_every", "ckpt_every", "val_every", "val_limit"):
            _check(getattr(self, name) >= 1, f"{name} {getattr(self, name)}: expected at least 1")
        _check(
            min(self.workers, self.threads, self.warmup) >= 0 and self.clip_grad >= 0,
            "workers, threads, warmup and clip_grad must be >= 0",
        )
        return self


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise TrainError(message)


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Light type check for config-file values (a TOML/JSON typo should fail here, not at step 900)."""
    if name == "data":
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TrainError(f"config data: expected a list of folder specs, got {value!r}")
        return list(value)
    if name in ("betas", "work_side"):
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise TrainError(f"config {name}: expected two numbers, got {value!r}")
        kind = float if name == "betas" else int
        return (kind(value[0]), kind(value[1]))
    if value is None or default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise TrainError(f"config {name}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int | float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TrainError(f"config {name}: expected a number, got {value!r}")
        if isinstance(default, int) and float(value) != int(value):
            raise TrainError(f"config {name}: expected an integer, got {value!r}")
        return type(default)(value)
    if isinstance(default, str) and not isinstance(value, str):
        raise TrainError(f"config {name}: expected a string, got {value!r}")
    return value


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON (``.json``) or TOML (any other extension) config file into a dict."""
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import tomllib

            data = tomllib.loads(text)
    except (ValueError, ImportError) as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise TrainError(f"{path}: not a valid {'JSON' if path.suffix == '.json' else 'TOML'} file ({exc})") from None
    if not isinstance(data, dict):
        raise TrainError(f"{path}: expected a table of settings, got {type(data).__name__}")
    return data


def check_resume_compatible(saved: TrainConfig, requested: dict[str, Any]) -> TrainConfig:
    """The checkpoint's config with the runtime keys of ``requested`` applied.

    ``requested`` holds only keys the user set explicitly; any that would change the optimisation
    raises :class:`TrainError` (an exact resume must not silently become another run).
    """
    merged = saved.to_dict()
    for key, value in requested.items():
        if key in RUNTIME_KEYS:
            merged[key] = value
        elif _norm(value) != _norm(merged.get(key)):
            raise TrainError(
                f"--resume continues the checkpoint's run, but {key} = {value!r} differs from its {merged.get(key)!r}; "
                f"drop the option (only {', '.join(sorted(RUNTIME_KEYS))} may change) or start a new run"
            )
    return TrainConfig.from_dict(merged)


def _norm(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v
