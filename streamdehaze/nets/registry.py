"""Model names → builders, and the weight files shipped in ``models/``.

``load_model('aecrnet')`` uses the shipped default weights (``models/aecrnet.pt``) unless a path is
given; ``load_model('dcp')`` needs none. Nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..devices import resolve_device
from ..errors import ModelError
from ..weights import WeightFile, apply_state_dict, read_weights
from .dehazer import Dehazer


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    multiple: int
    default_weights: str | None  # file name in models/, None when the model has no weights


MODELS: dict[str, ModelSpec] = {
    "aecrnet": ModelSpec(
        "aecrnet",
        "AECR-Net (Wu et al., CVPR 2021): compact CNN with adaptive mixup and deformable conv",
        4,
        "aecrnet.pt",
    ),
    "dcp": ModelSpec("dcp", "dark channel prior (He et al., 2009): classical, no weights", 1, None),
}


def models_dirs() -> list[Path]:
    """Where shipped weight files are looked for, in order."""
    dirs = []
    if os.environ.get("STREAMDEHAZE_MODELS"):
        dirs.append(Path(os.environ["STREAMDEHAZE_MODELS"]))
    try:  # a built wheel carries models/ as the (namespace) package streamdehaze._models
        spec = importlib.util.find_spec("streamdehaze._models")
    except ModuleNotFoundError:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        dirs += [Path(p) for p in spec.submodule_search_locations]
    dirs.append(Path(__file__).resolve().parents[2] / "models")  # source checkout
    seen, out = set(), []
    for d in dirs:
        if d.resolve() not in seen:
            seen.add(d.resolve())
            out.append(d)
    return out


def find_shipped(filename: str) -> Path | None:
    for d in models_dirs():
        if (d / filename).is_file():
            return d / filename
    return None


def read_card(weights_path: Path) -> dict[str, str]:
    """The card ``<name>.md`` beside a weight file: its text and the sha256 it states."""
    card = weights_path.with_suffix(".md")
    if not card.is_file():
        return {}
    text = card.read_text(encoding="utf-8")
    m = re.search(r"sha256[^0-9a-f]*([0-9a-f]{64})", text)
    return {"path": str(card), "text": text, "sha256": m.group(1) if m else ""}


def build_network(name: str, ngf: int = 64, device: torch.device | None = None, dtype=None) -> nn.Module:
    """A fresh network (random weights / no weights) by registry name."""
    if name == "aecrnet":
        from .aecrnet import AECRNet

        return AECRNet(ngf=ngf, device=device, dtype=dtype)
    if name == "dcp":
        from .dcp import DarkChannelPrior

        return DarkChannelPrior().to(device)
    raise ModelError(f"unknown model {name!r}; expected one of: {', '.join(MODELS)}")


def _weights_for(spec: ModelSpec, weights: str | os.PathLike | None) -> WeightFile:
    if weights is not None:
        return read_weights(weights)
    path = find_shipped(spec.default_weights or "")
    if path is None:
        looked = ", ".join(str(d) for d in models_dirs())
        raise ModelError(
            f"no weights for {spec.name}: {spec.default_weights} not found in {looked}; "
            "pass --weights PATH (an official AECR-Net .pk/.pth or a file from 'streamdehaze train export'), "
            "or use --model dcp, which needs none"
        )
    return read_weights(path)


def load_model(
    name: str = "aecrnet",
    weights: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    fold: bool = True,
    flip_average: bool = False,
) -> Dehazer:
    """A ready-to-run :class:`Dehazer` in eval mode on ``device``.

    ``weights`` overrides the shipped file; ``fold`` replaces FastDeconv by its plain conv;
    ``flip_average``: average each result with the network's result on the mirrored input.
    """
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; expected one of: {', '.join(MODELS)}")
    spec = MODELS[name]
    dev = resolve_device(device)
    if spec.default_weights is None:
        if weights is not None:
            raise ModelError(f"model {name} takes no weights, but --weights {weights} was given")
        return Dehazer(build_network(name, device=dev), name, spec.multiple, flip_average=flip_average).eval()
    wf = _weights_for(spec, weights)
    if wf.arch != name:
        raise ModelError(f"{wf.path} holds a {wf.arch!r} network, not {name!r}; pass --model {wf.arch}")
    net = build_network(name, ngf=wf.ngf or 64)
    state = {k: v.float() if v.is_floating_point() else v for k, v in wf.state_dict.items()}
    apply_state_dict(net, state, source=str(wf.path))
    net.eval()
    if fold and hasattr(net, "fold_for_inference"):
        net.fold_for_inference()
    info = {"weights": str(wf.path), "ngf": wf.ngf, "official": wf.official, **wf.meta}
    return Dehazer(net.to(dev), name, spec.multiple, info, flip_average).eval()
