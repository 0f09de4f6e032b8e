"""Export a training checkpoint as a shipped weight file (:func:`streamdehaze.weights.save_weights`) and its card.

The card ``NAME.md`` beside ``NAME.pt`` states the architecture and width, the training data,
steps, hardware, wall time, the loss settings (CR encoder included), validation and given
metrics, and the file's ``sha256: <hex>`` (its first line after the title, where
:func:`streamdehaze.nets.registry.read_card` finds it). Data paths on the card are relative to the
repository that holds the weight file (``../shared/data/...``), or to the card's folder outside a
repository: a machine's absolute path means nothing to the card's readers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelError, TrainError
from ..nets.aecrnet import AECRNet, count_parameters
from ..weights import apply_state_dict, save_weights, sha256, trained_work_side
from .checkpoint import read_checkpoint
from .config import TrainConfig
from .losses import CR_WEIGHTS


def export_meta(ckpt: dict[str, Any], metrics: dict[str, Any], work_side: int | None = None) -> dict[str, Any]:
    """What the weight file records about its training (plain types only).

    ``work_side``: the short side ``--work-size auto`` runs the network at (see
    :func:`streamdehaze.work_size.default_work_size`); None: the middle of the trained range
    (:func:`~streamdehaze.weights.trained_work_side`).
    """
    cfg = TrainConfig.from_dict(ckpt["config"])
    world = int(ckpt.get("world_size", 1))
    return {
        "work_side": work_side or trained_work_side(cfg.work_side),
        "work_side_trained": list(cfg.work_side) if cfg.work_side[1] else None,
        "init": Path(cfg.init).name if cfg.init else None,
        "teacher": Path(cfg.teacher).name if cfg.teacher else None,
        # the checksum the run recorded (older runs: the file's, if it is still there)
        "teacher_sha256": ckpt.get("teacher_sha256")
        or (sha256(cfg.teacher) if cfg.teacher and Path(cfg.teacher).is_file() else None),
        "trained_with": "streamdehaze train",
        "checkpoint": Path(ckpt["path"]).name,
        "steps": int(ckpt["step"]),
        "steps_planned": cfg.steps,
        "data": list(cfg.data),
        "rehaze": cfg.rehaze,
        "recolour": cfg.recolour,
        "light": cfg.light,
        "identity": cfg.identity,
        "camera": cfg.camera,
        "augment": cfg.augment,
        "val": cfg.val,
        "val_work_size": cfg.val_work_size,
        "crop": cfg.crop,
        "global_batch": cfg.batch_size * world,
        "optimizer": {
            "name": "Adam",
            "lr": cfg.lr,
            "betas": list(cfg.betas),
            "schedule": "cosine",
            "warmup": cfg.warmup,
        },
        "loss": {
            "rec": cfg.rec_loss,
            "rec_weight": 1.0,
            "fit": cfg.fit_loss,
            "shadow_weight": cfg.shadow_weight,
            "colour_weight": cfg.colour_weight,
            "cr_weight": cfg.cr_weight,
            "cr_layers": ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"],
            "cr_layer_weights": list(CR_WEIGHTS),
            "cr_negatives": 1 + cfg.cr_negatives,
            "cr_encoder": dict(ckpt["encoder"]),
        },
        "hardware": ckpt.get("hardware", "unknown"),
        "wall_time_s": round(float(ckpt.get("elapsed_s", 0.0)), 1),
        "validation": dict(ckpt.get("best") or {}),
        "metrics": dict(metrics),
        "seed": cfg.seed,
    }


def _duration(seconds: float) -> str:
    h, rem = divmod(int(seconds), 3600)
    return f"{h} h {rem // 60} min" if h else f"{rem // 60} min {rem % 60} s"


def _encoder_text(enc: dict[str, Any], cr_weight: float) -> str:
    if cr_weight <= 0 or enc.get("kind") == "none":
        return "none (L1 only)"
    if enc.get("kind") == "random":
        return f"random VGG19 (fixed seed {enc.get('seed')}, fingerprint {enc.get('fingerprint')}), not ImageNet"
    return (
        f"VGG19 ImageNet weights {Path(str(enc.get('file', ''))).name} (file checksum {str(enc.get('sha256'))[:16]}…)"
    )


def repository_root(path: str | os.PathLike) -> Path | None:
    """The repository (a folder with ``.git``, a folder or a worktree's file) holding ``path``, or None."""
    here = Path(os.path.abspath(path))
    return next((d for d in here.parents if (d / ".git").exists()), None)


def relative_path(path: str, base: Path | None) -> str:
    """An absolute ``path`` relative to ``base`` (POSIX separators); other paths as given."""
    if base is None or not os.path.isabs(path):
        return path
    return Path(os.path.relpath(path, base)).as_posix()


def _data_text(specs: list[str], base: Path | None = None) -> str:
    """The ``--data`` specs relative to ``base`` (see :func:`relative_path`), grouped under the folder they share."""
    paths = [s.split(":", 1)[-1].rsplit("@", 1)[0] for s in specs]
    specs = [s.replace(p, relative_path(p, base), 1) for s, p in zip(specs, paths)]
    paths = [relative_path(p, base) for p in paths]
    try:
        root = os.path.commonpath(paths) if len(paths) > 1 else Path(paths[0]).parent.as_posix()
    except ValueError:  # absolute and relative paths mixed
        root = ""
    if root in ("", ".", "/"):  # no shared folder worth naming
        return "; ".join(f"`{s}`" for s in specs)
    shown = [s.replace(root + "/", "", 1) for s in specs]
    return f"in `{root}`: " + "; ".join(f"`{s}`" for s in shown)


def average_states(states: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """The element-wise mean of model state dicts of one architecture (weights and FastDeconv
    statistics); non-float entries come from the first. :class:`TrainError` on a mismatch."""
    first = states[0]
    for state, name in zip(states[1:], names[1:]):
        if state.keys() != first.keys() or any(state[k].shape != v.shape for k, v in first.items()):
            raise TrainError(f"--average {name}: not the same network as {names[0]} (width or layers differ)")
    return {k: torch.stack([s[k] for s in states]).mean(0) if v.is_floating_point() else v for k, v in first.items()}


def _work_text(meta: dict[str, Any]) -> str:
    if not meta.get("work_side"):
        return "full resolution (trained on native-size crops)"
    trained = meta.get("work_side_trained")
    text = f"short side {meta['work_side']} px (`--work-size auto`; guided transfer to full resolution)"
    if trained:
        text += f"; trained on images scaled to a short side of {trained[0]}–{trained[1]} px"
    return text


def _teacher_text(meta: dict[str, Any], card: str | None) -> str:
    """Which weights a distilled network learnt from: the file, its checksum and its card (its own figures)."""
    known = [f"sha256 `{meta['teacher_sha256'][:16]}…`"] if meta.get("teacher_sha256") else []
    known += [f"its card: [{Path(card).name}]({card})"] if card else []
    more = f"; {', '.join(known)}" if known else ""
    fitted = " through the same fit" if meta.get("loss", {}).get("fit") else ""
    return f"`{meta['teacher']}`'s outputs on the same inputs{fitted} (distilled, `--teacher`{more})"


def card_text(
    name: str,
    digest: str,
    meta: dict[str, Any],
    ngf: int,
    params: int,
    half: bool,
    base: Path | None = None,
    teacher_card: str | None = None,
) -> str:
    """The card's markdown; ``base``: the folder data paths are written relative to (see :func:`relative_path`);
    ``teacher_card``: a link to the teacher's card, relative to this card's folder."""
    loss, val = meta["loss"], meta["validation"]
    rec = {"l1": "L1", "l2": "L2 (MSE)"}[loss.get("rec", "l1")]
    if loss.get("fit"):
        rec += " on the output through the working-size transfer's fit (`--fit-loss`)"
    if loss.get("shadow_weight"):
        rec += f" + {loss['shadow_weight']:g}·shadow (log-domain L1)"
    if loss.get("colour_weight"):
        rec += f" + {loss['colour_weight']:g}·colour (per-channel mean)"
    rows = [
        ("architecture", f"AECR-Net (`aecrnet`), ngf {ngf}, {params:,} parameters"),
        ("weights", f"{'float16' if half else 'float32'} (`{name}.pt`, loaded as float32)"),
        (
            "training data",
            _data_text(meta["data"], base)
            + (f"; haze of {meta['rehaze']:.0%} of the pairs re-rendered (`--rehaze`)" if meta.get("rehaze") else "")
            + (f", {meta['recolour']:.0%} of those recoloured (`--recolour`)" if meta.get("recolour") else "")
            + (f"; {meta['light']:.0%} light haze (`--light`)" if meta.get("light") else "")
            + (f"; {meta['identity']:.0%} clear → clear (`--identity`)" if meta.get("identity") else "")
            + (f"; {meta['camera']:.0%} with camera noise and JPEG (`--camera`)" if meta.get("camera") else ""),
        ),
        ("working size", _work_text(meta)),
        (
            "steps",
            f"{meta['steps']:,} of {meta['steps_planned']:,} (global batch {meta['global_batch']}, "
            f"{meta['crop']}×{meta['crop']} crops, {meta.get('augment', 'dihedral')} flips, seed {meta['seed']})"
            + (f", started from `{meta['init']}`" if meta.get("init") else ""),
        ),
        *([("targets", _teacher_text(meta, teacher_card))] if meta.get("teacher") else []),
        *(
            [("weight average", ", ".join(f"`{a['checkpoint']}` (step {a['step']:,})" for a in meta["averaged"]))]
            if meta.get("averaged")
            else []
        ),
        ("optimiser", f"Adam lr {meta['optimizer']['lr']:g}, betas {tuple(meta['optimizer']['betas'])}, cosine decay"),
        (
            "loss",
            f"{rec} only"
            if loss["cr_weight"] <= 0
            else f"{rec} + {loss['cr_weight']:g}·CR (VGG19 relu1_1…relu5_1, "
            f"layer weights 1/32…1, {loss['cr_negatives']} negative(s) per image)",
        ),
        ("CR encoder", _encoder_text(loss["cr_encoder"], loss["cr_weight"])),
        ("hardware", meta["hardware"].replace("1 threads", "1 thread")),  # as older checkpoints spell it
        ("wall time", _duration(meta["wall_time_s"])),
    ]
    if val.get("psnr") is not None:
        rows.append(
            (
                "validation",
                f"PSNR {val['psnr']:.2f} dB, SSIM {val['ssim']:.4f} at step {val['step']} "
                f"on `{relative_path(meta['val'], base)}`"
                f" (working size {meta.get('val_work_size') or 'full'})",
            )
        )
    rows += [(f"metric: {k}", f"{v:g}" if isinstance(v, float) else str(v)) for k, v in meta["metrics"].items()]
    lines = [f"# {name}", "", f"sha256: {digest}", "",
             f"AECR-Net weights trained with `streamdehaze train`, exported from `{meta['checkpoint']}`.", "",
             "| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]  # fmt: skip
    return "\n".join(lines) + "\n"


def export_checkpoint(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    half: bool = False,
    metrics: dict[str, Any] | None = None,
    notes: str = "",
    work_side: int | None = None,
    average: list[str | os.PathLike] | tuple = (),
) -> tuple[Path, Path, str]:
    """Write ``output`` (weights) and ``output.with_suffix('.md')`` (card); returns both paths and the sha256.

    ``average``: more checkpoints whose weights are averaged with ``checkpoint``'s (e.g. the last
    few of a run); the card and meta name them all, the rest of the meta is ``checkpoint``'s.
    """
    ckpt = read_checkpoint(checkpoint)
    others = [read_checkpoint(p) for p in average]
    output = Path(output)
    if output.suffix != ".pt":
        raise TrainError(f"--output {output}: expected a .pt file name (the card is written beside it as .md)")
    output.parent.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig.from_dict(ckpt["config"])
    net = AECRNet(ngf=cfg.ngf)
    state = ckpt["model"]
    if others:
        everyone = [ckpt, *others]
        state = average_states([c["model"] for c in everyone], [str(c["path"]) for c in everyone])
    try:
        apply_state_dict(net, state, source=ckpt["path"])
    except ModelError as exc:
        raise TrainError(str(exc)) from None
    meta = export_meta(ckpt, metrics or {}, work_side)
    if others:
        meta["averaged"] = [{"checkpoint": Path(c["path"]).name, "step": int(c["step"])} for c in everyone]
    if notes:
        meta["notes"] = notes
    digest = save_weights(output, net.eval(), "aecrnet", meta=meta, half=half)
    base = repository_root(output) or output.parent.absolute()
    teacher = Path(cfg.teacher).with_suffix(".md") if cfg.teacher else None  # the card beside the teacher's weights
    link = Path(os.path.relpath(teacher, output.parent)).as_posix() if teacher and teacher.is_file() else None
    text = card_text(output.stem, digest, meta, cfg.ngf, count_parameters(net), half, base, link)
    if notes:
        text += f"\n{notes.strip()}\n"
    card = output.with_suffix(".md")
    tmp = card.with_name(card.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, card)
    return output, card, digest
