"""L1 + λ·CR: AECR-Net's loss with contrastive regularisation (Wu et al., CVPR 2021).

``CR = Σᵢ wᵢ · L1(φᵢ(out), φᵢ(clear)) / L1(φᵢ(out), φᵢ(hazy))``, φᵢ the VGG19 features after
relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1, w = 1/32, 1/16, 1/8, 1/4, 1, and each L1 a mean
over the whole (micro-)batch, as in the official code. Like the official code, the encoder sees
the images as they are (RGB in [0, 1], no ImageNet normalisation) and the positive and negative
features are constants (no gradient). With ``extra_negatives = k`` the denominator is the mean
distance to the image's own hazy input and to the hazy inputs of the next ``k`` images of the
batch (cyclically).

The encoder's ImageNet weights are never downloaded: they come from torchvision's cache
(``torch.hub.get_dir()/checkpoints/vgg19-dcbb9e9d.pth``) or a path; a random encoder must be
asked for explicitly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import TrainError

VGG19_FILE = "vgg19-dcbb9e9d.pth"
RELU_CUTS = (2, 7, 12, 21, 30)  # features[:2] ends at relu1_1, [:7] relu2_1, ... [:30] relu5_1
CR_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
RANDOM_ENCODER_SEED = 19


class VGGFeatures(nn.Module):
    """Frozen VGG19 slices: ``(B, 3, H, W)`` → the 5 feature maps after relu1_1 … relu5_1.

    H and W should be at least 16 (four max-pools precede relu5_1).
    """

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        starts = (0, *RELU_CUTS[:-1])
        self.slices = nn.ModuleList(nn.Sequential(*features[a:b]) for a, b in zip(starts, RELU_CUTS, strict=True))
        for m in self.modules():
            if isinstance(m, nn.ReLU):
                m.inplace = False  # the features are kept; in-place ReLUs would overwrite them
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGFeatures:  # always frozen, whatever the parent does
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for s in self.slices:
            x = s(x)
            feats.append(x)
        return feats


def _vgg19_features() -> nn.Sequential:
    """torchvision's VGG19 ``features[:30]`` with uninitialised weights (built on the meta device: fast)."""
    from torchvision.models import vgg19

    with torch.device("meta"):
        features = vgg19(weights=None).features[:30]
    return features.to_empty(device="cpu")


def default_vgg_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _tensor_fingerprint(module: nn.Module) -> str:
    h = hashlib.sha256()
    for t in module.state_dict().values():
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _load_imagenet(features: nn.Sequential, path: Path) -> None:
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainError(f"VGG19 weights {path} are not a readable PyTorch file ({str(exc)[:120]})") from None
    sd = sd.get("state_dict", sd) if isinstance(sd, dict) else sd
    if not isinstance(sd, dict):
        raise TrainError(f"VGG19 weights {path}: expected a state dict, got {type(sd).__name__}")
    wanted = {k: sd.get(f"features.{k}", sd.get(k)) for k in features.state_dict()}
    missing = [k for k, v in wanted.items() if v is None]
    if missing:
        raise TrainError(f"{path} is not torchvision's VGG19 ({VGG19_FILE}): no features.{missing[0]} in it")
    try:
        features.load_state_dict(wanted)
    except RuntimeError:
        raise TrainError(f"{path} is not torchvision's VGG19 ({VGG19_FILE}): tensor shapes differ") from None


def _init_random(features: nn.Sequential, seed: int) -> None:
    """torchvision's VGG initialisation (Kaiming normal, fan-out; zero bias) from a private generator."""
    g = torch.Generator().manual_seed(seed)
    for m in features:
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=g)
            nn.init.zeros_(m.bias)


def build_encoder(kind: str, vgg_weights: str | None = None) -> tuple[VGGFeatures, dict[str, Any]]:
    """The CR encoder and a record of it for checkpoints and cards.

    ``kind='imagenet'``: weights from ``vgg_weights`` or torchvision's cache, else :class:`TrainError`;
    ``kind='random'``: a fixed VGG19 seeded with :data:`RANDOM_ENCODER_SEED`.
    """
    features = _vgg19_features()
    if kind == "random":
        _init_random(features, RANDOM_ENCODER_SEED)
        enc = VGGFeatures(features)
        return enc, {"kind": "random", "seed": RANDOM_ENCODER_SEED, "fingerprint": _tensor_fingerprint(enc)}
    if kind != "imagenet":
        raise TrainError(f"--cr-encoder {kind!r}: expected imagenet or random")
    path = Path(vgg_weights) if vgg_weights else default_vgg_path()
    if not path.is_file():
        where = f"--vgg-weights {path} does not exist" if vgg_weights else f"no VGG19 ImageNet weights at {path}"
        raise TrainError(
            f"contrastive loss needs VGG19 features: {where}; pass --vgg-weights PATH (torchvision's {VGG19_FILE}), "
            "or --cr-encoder random for a fixed seeded random VGG19, or --cr-weight 0 for L1 only"
        )
    _load_imagenet(features, path)
    return VGGFeatures(features), {"kind": "imagenet", "file": str(path), "sha256": _file_sha256(path)}


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference over all elements (``nn.L1Loss()``), in float32 at least (AMP features)."""
    if a.dtype in (torch.float16, torch.bfloat16):
        a, b = a.float(), b.float()
    return (a - b).abs().mean()


class ContrastiveLoss(nn.Module):
    """CR: ``out`` pulled towards ``positive`` and pushed from ``negative`` in the encoder's feature space.

    ``forward(out, positive, negative)`` with ``(B, 3, H, W)`` tensors → scalar. The per-layer terms
    of the last call are kept in ``last_terms`` (detached scalars) for logging.
    """

    def __init__(
        self, encoder: nn.Module, weights: tuple[float, ...] = CR_WEIGHTS, extra_negatives: int = 0, eps: float = 1e-7
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.weights = tuple(weights)
        self.extra_negatives = extra_negatives
        self.eps = eps
        self.last_terms: list[torch.Tensor] = []

    def forward(self, out: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        if self.extra_negatives >= out.shape[0] and self.extra_negatives:
            raise TrainError(
                f"{self.extra_negatives} extra negatives need a batch of at least {self.extra_negatives + 1}"
            )
        f_out = self.encoder(out)
        with torch.no_grad():
            both = self.encoder(torch.cat([positive, negative]).to(out.dtype))
        loss = out.new_zeros(())
        terms = []
        for w, fo, fb in zip(self.weights, f_out, both, strict=True):
            fp, fn = fb.chunk(2)
            d_ap = l1(fo, fp)
            d_an = torch.stack([l1(fo, fn.roll(k, 0)) for k in range(self.extra_negatives + 1)]).mean()
            term = d_ap / (d_an + self.eps)
            terms.append(term)
            loss = loss + w * term
        self.last_terms = [t.detach() for t in terms]  # tensors: no device sync per step
        return loss


@dataclass
class LossTerms:
    total: torch.Tensor  # scalar, what is back-propagated
    l1: torch.Tensor  # scalar
    cr: torch.Tensor  # scalar (0 when CR is off)


SHADOW_OFFSET = 0.05  # δ of the log-domain term: errors below ~δ weigh by their relative size


def shadow_loss(out: torch.Tensor, clear: torch.Tensor, offset: float = SHADOW_OFFSET) -> torch.Tensor:
    """Mean ``|log(out + δ) − log(clear + δ)|``: an error of 0.02 weighs 14× more at black than at 0.8.

    L1 treats a near road pushed from 0.25 to 0.02 like a bright wall dimmed by as much; this term
    does not. ``(B, 3, H, W)`` float → scalar.
    """
    return ((out + offset).clamp_min(offset / 4).log() - (clear + offset).log()).abs().mean()


def colour_loss(out: torch.Tensor, clear: torch.Tensor) -> torch.Tensor:
    """Mean over images and channels of ``|mean(out_c) − mean(clear_c)|``: brightness and grey balance."""
    return (out.float().mean((2, 3)) - clear.float().mean((2, 3))).abs().mean()


class DehazeLoss(nn.Module):
    """``REC(out, clear) + λ · CR(out, clear, hazy)`` (+ the shadow and colour terms) on the raw output.

    ``rec``: ``"l1"`` (the paper's) or ``"l2"`` (mean squared error: the quantity PSNR measures,
    for fine-tuning towards it). The logged ``l1`` term is the L1 distance either way.
    ``shadow``/``colour``: weights of :func:`shadow_loss` and :func:`colour_loss` (0 = off).
    """

    def __init__(
        self,
        cr: ContrastiveLoss | None,
        cr_weight: float = 0.1,
        rec: str = "l1",
        shadow: float = 0.0,
        colour: float = 0.0,
    ) -> None:
        super().__init__()
        self.cr = cr if cr_weight > 0 else None
        self.cr_weight = cr_weight
        self.rec = rec
        self.shadow, self.colour = shadow, colour

    def forward(self, out: torch.Tensor, clear: torch.Tensor, hazy: torch.Tensor) -> LossTerms:
        l1 = F.l1_loss(out, clear)
        rec = l1 if self.rec == "l1" else F.mse_loss(out, clear)
        if self.shadow:
            rec = rec + self.shadow * shadow_loss(out, clear)
        if self.colour:
            rec = rec + self.colour * colour_loss(out, clear)
        if self.cr is None:
            return LossTerms(rec, l1.detach(), rec.new_zeros(()))
        cr = self.cr(out, clear, hazy)
        return LossTerms(rec + self.cr_weight * cr, l1.detach(), cr.detach())
