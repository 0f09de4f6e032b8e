"""Training data: paired folders, synthetic haze, weighted mixing, deterministic augmentation.

Sources (``--data``, repeatable):

* ``DIR`` or ``DIR@W``: a paired folder, ``DIR/hazy`` + ``DIR/clear`` (or ``gt``/``GT``), paired
  by :func:`streamdehaze.pairs.find_pairs` (same name, or the part of the hazy name before the
  first ``_``: ``1400_3.png`` → ``1400.png``, RESIDE's ``0001_0.8_0.2.jpg`` → ``0001.jpg``);
* ``synth:PATH`` or ``synth:PATH@W``: clear images (a folder) or a video file whose frames
  are hazed on the fly by :mod:`streamdehaze.train.haze`;
* ``clear:PATH`` or ``clear:PATH@W``: haze-free images or a video, trained on as clear → clear
  (only ``--camera``'s noise and compression are added to the input).

Both are read by :mod:`streamdehaze.train.sources`.

Mixing: the weight ``W`` (default 1) is a repeat factor: an epoch visits ``round(W · n)`` items of
a source of ``n`` (``@2``: every image twice; ``@0.5``: a different half each epoch).

Determinism: every random choice for a sample (which item of a source, crop, flip, rotation,
haze) is drawn from a generator seeded by ``(seed, epoch, index)``. The sampler yields
``(epoch, index)`` keys, so a sample is the same whichever process or worker loads it, and a
resumed run sees exactly the samples it would have seen.
"""

from __future__ import annotations

import bisect
import itertools
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..errors import DataError, StreamDehazeError
from ..pairs import find_pairs
from .haze import LIGHT_EXPONENT, REHAZE_EXPONENT, degrade, random_haze, rehaze
from .sources import ClearImages, PairedImages, paired_dirs, parse_source, read_data_image

__all__ = [
    "ClearImages",
    "EpochSampler",
    "PairedImages",
    "TrainSet",
    "build_trainset",
    "load_val_pairs",
    "parse_source",
]


def _to_float(img: np.ndarray) -> torch.Tensor:
    """``(H, W, 3) uint8`` → ``(1, 3, H, W)`` float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float().div_(255.0)


def _fit_crop(x: torch.Tensor, crop: int) -> torch.Tensor:
    """Upscale float ``(N, 3, H, W)`` whose short side is below ``crop`` (rare: tiny images)."""
    h, w = x.shape[-2:]
    if min(h, w) >= crop:
        return x
    s = crop / min(h, w)
    return F.interpolate(x, size=(max(crop, round(h * s)), max(crop, round(w * s))), mode="bicubic").clamp(0, 1)


def to_short_side(x: torch.Tensor, side: float) -> torch.Tensor:
    """Scale ``(1, 3, H, W)`` (uint8 or float) down so its short side is ``side`` → float in [0, 1].

    Antialiased bilinear, as :func:`~streamdehaze.ops.transfer_fit.downscale` shrinks frames at inference, so the
    network trains on what it will see there. Images already that small are only converted.
    """
    x = x.float().div_(255.0) if x.dtype == torch.uint8 else x
    h, w = x.shape[-2:]
    s = side / min(h, w)
    if s >= 1:
        return x
    size = (max(1, round(h * s)), max(1, round(w * s)))
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)


def dihedral(x: torch.Tensor, flip: bool, rot: int) -> torch.Tensor:
    """One of the 8 flips/90° rotations of ``(..., H, W)``."""
    x = x.flip(-1) if flip else x
    return torch.rot90(x, rot, (-2, -1)) if rot else x


def sample_generator(seed: int, epoch: int, index: int, stream: int = 0) -> torch.Generator:
    """The generator of one sample: a well-mixed function of ``(seed, epoch, index)``.

    ``stream`` > 0 gives an independent generator for an optional step (re-hazing), so switching
    that step on leaves every other draw of the sample as it was.
    """
    state = np.random.SeedSequence([seed, epoch, index] + ([stream] if stream else [])).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class TrainSet(Dataset):
    """Weighted mix of sources.

    ``dataset[(epoch, index)]`` → ``{'hazy', 'clear'}``, each ``(3, crop, crop)`` float in [0, 1].
    """

    def __init__(
        self,
        sources: list[tuple[PairedImages | ClearImages, float]],
        crop: int,
        seed: int = 0,
        work_side: tuple[int, int] = (0, 0),
        rehaze: float = 0.0,
        augment: str = "dihedral",
        recolour: float = 0.0,
        light: float = 0.0,
        identity: float = 0.0,
        camera: float = 0.0,
    ) -> None:
        self.sources = [s for s, _ in sources]
        self.rehaze = rehaze  # chance that a pair's haze is re-rendered at a new density
        self.recolour = recolour  # chance that a re-hazed pair's scene gets new colours first
        self.light = light  # chance that a synthetic or re-hazed sample gets light haze
        self.identity = identity  # chance that a sample is clear → clear (haze-free input stays as it is)
        self.camera = camera  # chance that the input gets sensor noise and JPEG after the haze
        self.rotate = augment == "dihedral"  # "mirror": left-right flips only, images stay upright
        self.counts = [max(1, round(w * len(s))) for s, w in sources]
        self.starts = list(itertools.accumulate(self.counts, initial=0))
        self.crop, self.seed, self.work_side = crop, seed, tuple(work_side)

    def __len__(self) -> int:
        return self.starts[-1]

    @lru_cache(maxsize=64)  # noqa: B019 - few (epoch, source) keys, dataset lives as long as training
    def _order(self, epoch: int, src: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch * 131 + src)
        return torch.randperm(len(self.sources[src]), generator=g)

    def locate(self, epoch: int, index: int) -> tuple[int, int]:
        """``(source, item)`` of a virtual index in an epoch."""
        src = bisect.bisect_right(self.starts, index) - 1
        j = index - self.starts[src]
        n = len(self.sources[src])
        return src, int(self._order(epoch, src)[j % n]) if self.counts[src] != n else j

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = key
        g = sample_generator(self.seed, epoch, index)
        # Each optional step draws from its own stream: switching one on leaves the other draws as they were.
        light = (
            self.light and float(torch.rand((), generator=sample_generator(self.seed, epoch, index, 2))) < self.light
        )
        src, item = self.locate(epoch, index)
        source = self.sources[src]
        if isinstance(source, PairedImages):
            hazy, clear = self._crop(list(source.load(item)), g)[0]
            if self.rehaze:
                gr = sample_generator(self.seed, epoch, index, stream=1)
                if float(torch.rand((), generator=gr)) < self.rehaze:
                    exponent = LIGHT_EXPONENT if light else REHAZE_EXPONENT
                    hazy, clear = rehaze(hazy, clear, gr, exponent=exponent, recolour=self.recolour)
        else:
            (clear,), top, full_h = self._crop([source.load(item)], g)
            hazy = clear if source.haze_free else random_haze(clear, g, top=top, full_h=full_h, light=light)[0]
        if self.identity or self.camera:
            gc = sample_generator(self.seed, epoch, index, stream=3)
            if float(torch.rand((), generator=gc)) < self.identity:
                hazy = clear
            if float(torch.rand((), generator=gc)) < self.camera:
                hazy = degrade(hazy, gc)
        flip, rot = bool(torch.rand((), generator=g) < 0.5), int(torch.randint(0, 4, (), generator=g))
        rot = rot if self.rotate else 0  # drawn either way: the other draws stay as they were
        return {"hazy": dihedral(hazy[0], flip, rot).contiguous(), "clear": dihedral(clear[0], flip, rot).contiguous()}

    def _crop(self, arrays: list[np.ndarray], g: torch.Generator) -> tuple[list[torch.Tensor], int, int]:
        """One random crop of same-size ``(H, W, 3) uint8`` images → ``(1, 3, crop, crop)`` floats, top row, H."""
        c = self.crop
        imgs = [torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None] for a in arrays]
        if self.work_side[1]:
            lo, hi = self.work_side
            side = lo + float(torch.rand((), generator=g)) * (hi - lo)
            imgs = [to_short_side(x, side) for x in imgs]
        if min(imgs[0].shape[-2:]) < c:
            imgs = [_fit_crop(x.float().div_(255.0) if x.dtype == torch.uint8 else x, c) for x in imgs]
        h, w = imgs[0].shape[-2:]
        top = int(torch.randint(0, h - c + 1, (), generator=g))
        left = int(torch.randint(0, w - c + 1, (), generator=g))
        crops = [x[..., top : top + c, left : left + c] for x in imgs]
        crops = [x.float().div_(255.0) if x.dtype == torch.uint8 else x for x in crops]  # convert the crop only
        return crops, top, h


def build_trainset(specs: list[str], crop: int, seed: int = 0, **options: Any) -> TrainSet:
    """Open every source (checks run here, before training); :class:`DataError` on bad folders.

    ``options``: :class:`TrainSet`'s work_side, rehaze, augment, recolour, light, identity and camera.
    """
    sources: list[tuple[PairedImages | ClearImages, float]] = []
    for text in specs:
        spec = parse_source(text)
        haze_free = spec.kind == "clear"
        src = PairedImages(spec.path) if spec.kind == "pairs" else ClearImages(spec.path, haze_free=haze_free)
        try:  # one decode per source: catches unreadable files of an otherwise valid folder early
            src.load(0)
        except StreamDehazeError as exc:
            raise DataError(f"--data {text}: {exc}") from None
        sources.append((src, spec.weight))
    return TrainSet(sources, crop, seed, **options)


class EpochSampler(DistributedSampler):
    """:class:`DistributedSampler` yielding ``(epoch, index)`` keys, able to start mid-epoch.

    Shuffles with ``seed + epoch`` like its parent, so rank ``r`` of ``W`` gets the positions
    ``r, r + W, ...`` of the same permutation; ``skip`` drops this rank's first samples (resume).
    """

    def __init__(self, dataset: TrainSet, num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.skip = 0

    def set_position(self, epoch: int, skip: int) -> None:
        self.set_epoch(epoch)
        self.skip = skip

    def __iter__(self):
        for i in itertools.islice(super().__iter__(), self.skip, None):
            yield (self.epoch, i)

    def __len__(self) -> int:
        return self.num_samples - self.skip


def make_loader(dataset: TrainSet, sampler: EpochSampler, batch_size: int, workers: int, pin: bool) -> DataLoader:
    # Its own generator: worker seeding must not draw from (or depend on) the global torch RNG.
    g = torch.Generator().manual_seed(dataset.seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,  # iterated in this process: persistent workers still follow set_position()
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=pin,
        drop_last=True,
        generator=g,
    )


def load_val_pairs(root: str | Path, limit: int, crop: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Up to ``limit`` validation pairs ``((1, 3, H, W), (1, 3, H, W))`` float in [0, 1], evenly spread."""
    pairs = find_pairs(*paired_dirs(Path(root)))
    keep = np.linspace(0, len(pairs) - 1, min(limit, len(pairs))).round().astype(int)
    out = []
    for i in sorted(set(keep.tolist())):
        hazy, clear = (_to_float(read_data_image(p)) for p in pairs[i])
        h, w = min(hazy.shape[-2], clear.shape[-2]), min(hazy.shape[-1], clear.shape[-1])
        if crop:
            h, w = min(h, crop), min(w, crop)
        hazy, clear = (_centre(x, h, w) for x in (hazy, clear))
        out.append((hazy, clear))
    return out


def _centre(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    dy, dx = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., dy : dy + h, dx : dx + w]
