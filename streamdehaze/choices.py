"""Option values known without torch: the transfer fits, the temporal modes, the bench figures.

The settings tree (:mod:`.settings`), and through it the command line's options, is built from
these at import time, so this module imports nothing heavy: ``streamdehaze --help`` and the
argument checks load no torch (DESIGN.md). The modules that use them (:mod:`.ops.transfer_fit`,
:mod:`.pipeline.temporal`, :mod:`.bench.measure`) import them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError


@dataclass(frozen=True)
class TransferFit:
    """How the affine fit that carries the network's result to full resolution is shaped."""

    divisor: int  # box radius = working short side / divisor (at least 1)
    shared_gain: bool  # one gain for R, G, B (offsets per channel) instead of one per channel
    summary: str


# ``--transfer-fit``. On the foggy drive (``benchmarks/temporal_quality.py --model aecrnet
# --work-size 160 --decompose``) the wide fit's own frame-to-frame change is the smaller one; it
# flickers more in total because it carries the input's frame-to-frame noise at a larger gain
# (mean |a| 1.4 against 0.85), which smoothing the coefficients cannot remove. docs/performance.md.
TRANSFER_FITS = {
    "local": TransferFit(60, False, "a gain per channel over 1/60 of the working short side (least flicker in video)"),
    "wide": TransferFit(
        20,
        True,
        "one gain for RGB over 1/20 (sharper stills: +0.25/+0.40 dB on SOTS indoor/outdoor dev; "
        "17% more flicker in video)",
    ),
}
DEFAULT_TRANSFER_FIT = "local"  # video: run, preview, bench
# Stills (image, eval, dehaze_image): the sharper fit. Its extra flicker does not exist in a single picture.
STILLS_TRANSFER_FIT = "wide"


def check_transfer_fit(name: str) -> str:
    if name not in TRANSFER_FITS:
        raise InputError(f"--transfer-fit {name!r}: expected one of {', '.join(TRANSFER_FITS)}")
    return name


# ``--guard`` (see :mod:`.ops.guard`): the rails applied to the transfer's coefficients after the fit
GUARDS = {
    "on": "no pixel pushed into black or white that the input did not have, haze-free regions (dark channel "
    "below 25/255) left alone, clear frames too (a frame is dehazed in proportion to its haze floor: the "
    "level the darkest tenth of its dark channel reaches in the median tile of a 4 x 4 grid, fully from "
    "25/255), and no tint: a frame's colour balance within 3 levels of what "
    "removing grey haze at the same gain gives",
    "range": "the black and white and the haze-free rails (the colour balance as the network made it)",
    "off": "the network's result as fitted",
}
DEFAULT_GUARD = "on"


def check_guard(name: str) -> str:
    if name not in GUARDS:
        raise InputError(f"--guard {name!r}: expected one of {', '.join(GUARDS)}")
    return name


# ``--scene-cut``: the change of a frame's 16×16 gray thumbnail since the previous frame (mean absolute
# difference, 0–1) that counts as a new scene (see :mod:`.pipeline.frame_state`)
DEFAULT_SCENE_CUT = 0.05


def check_scene_cut(threshold: float) -> float:
    if not threshold > 0:
        raise InputError(f"--scene-cut {threshold}: expected a threshold > 0 (e.g. {DEFAULT_SCENE_CUT})")
    return float(threshold)


# ``--temporal`` (see :mod:`.pipeline.temporal`)
TEMPORAL_MODES = ("off", "motion", "ema", "flow", "pixel")
DEFAULT_TEMPORAL_MODE = "motion"

# ``eval-video --flow``: OpenCV's DIS optical flow presets (see :mod:`.flicker`)
FLOW_PRESETS = ("ultrafast", "fast", "medium")

# ``bench --measure``: the figures ``streamdehaze bench`` can take (see :mod:`.bench.measure`)
MEASUREMENTS = ("decode", "model", "engine", "encode", "end_to_end")
