"""The guided transfer's settings: working size, keyframe reuse, scene cuts and the shape of the fit.

Dehazing is a per-pixel affine map of the input whose coefficients vary smoothly in space and time
(DESIGN.md), so the network need not see every pixel of every frame. For a batch of full-resolution
frames ``x`` ``(B, 3, H, W)`` float in [0, 1], in stream order, the engine does::

    x ──downscale──► low (B, 3, h, w) ──state pass──► scene-cut flags ──► keyframe plan (host, interval K)
    low[keyframes] ──network──► y_low ──fit(low, y_low)──► (a, b) per keyframe       (stateless core)
    (a, b) per frame: its own keyframe's, or the last keyframe's reused (also across batches)
    (a, b) ──guard rails (ops/guard.py)──► (a, b)                                       (stateless core)
    ──► coefficient smoothing / a caller's hook, frame by frame, reset at scene cuts
    ──► strength ──► apply: bilinear upsampling of a, b, then a · x + b at full resolution

(:mod:`.core` is the stateless part, :mod:`.stages` the stateful one, :mod:`.engine` runs them.)
Without smoothing or a hook, at full resolution with interval 1, :attr:`GuidedTransfer.active` is
False and the engine calls the network directly (bit-identical to the plain model). Still images
take the stateless path :func:`~streamdehaze.ops.transfer_fit.transfer`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..choices import DEFAULT_GUARD, check_guard
from ..errors import InputError
from ..ops.transfer_fit import (  # noqa: F401 - re-exported: the transfer's presets live with the fit
    DEFAULT_TRANSFER_FIT,
    TRANSFER_FITS,
    TransferFit,
    check_transfer_fit,
    default_radius,
    fit_coefficients,
)
from ..work_size import FULL, WorkSize, parse_work_size
from .frame_state import DEFAULT_SCENE_CUT, check_scene_cut


@dataclass
class GuidedTransfer:
    """Where the network runs and how its result is carried to full resolution (settings, no state).

    Args:
        work_size: where the network runs (:class:`WorkSize`; :func:`parse_work_size` for text).
        keyframe_interval: run the network every K frames and reuse its coefficients between.
        scene_cut: the state pass's threshold (:mod:`.frame_state`): a cut forces a keyframe and
            resets every temporal state.
        radius: box radius of the affine fit at the working size; None = :func:`default_radius` of ``fit``.
        eps: regularisation of the fit (larger = smoother ``a`` in flat regions).
        shared_gain: one gain ``a`` for the three channels (offsets per channel), the form the
            scattering model gives dehazing; None = ``fit``'s. Alone, with the shipped AECR-Net, it
            added 0.08/0.12 dB on the SOTS dev splits, and more flicker under ``--temporal ema``.
        fit: a :data:`TRANSFER_FITS` name, the preset for ``radius`` and ``shared_gain``.
        guard: the guard rails after the fit, a :data:`~streamdehaze.choices.GUARDS` name
            (:mod:`streamdehaze.ops.guard`; ``on``: no shadow pushed into black, no sky into white, a
            frame's colour balance moved at most 3 levels).
    """

    work_size: WorkSize | str | float | None = FULL
    keyframe_interval: int = 1
    scene_cut: float = DEFAULT_SCENE_CUT
    radius: int | None = None
    eps: float = 1e-4
    shared_gain: bool | None = None
    fit: str = DEFAULT_TRANSFER_FIT
    guard: str = DEFAULT_GUARD

    def __post_init__(self) -> None:
        self.work_size = parse_work_size(self.work_size)
        check_transfer_fit(self.fit)
        check_guard(self.guard)
        check_scene_cut(self.scene_cut)
        if self.keyframe_interval < 1:
            raise InputError(f"--keyframe-interval {self.keyframe_interval}: expected a whole number >= 1")
        if self.shared_gain is None:
            self.shared_gain = TRANSFER_FITS[self.fit].shared_gain

    @property
    def active(self) -> bool:
        """Whether the coefficient path runs for every batch (a working size below full, or keyframes)."""
        return not self.work_size.is_full or self.keyframe_interval > 1

    def size_for(self, height: int, width: int) -> tuple[int, int]:
        return self.work_size.size_for(height, width)

    def describe(self, height: int | None = None, width: int | None = None) -> str:
        text = f"working size {self.work_size.describe(height, width)}"
        if self.fit != DEFAULT_TRANSFER_FIT and not self.work_size.is_full:
            text += f", {self.fit} transfer fit"
        if self.keyframe_interval > 1:
            text += f", keyframe every {self.keyframe_interval} frames (scene cut > {self.scene_cut:g})"
        return text
