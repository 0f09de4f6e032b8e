"""The motion of each frame at the working size, for motion-compensated coefficient smoothing.

``--temporal motion`` (the default) smooths the transfer's coefficients ``(a, b)`` along the
scene's motion: frame ``t``'s past is frame ``t − 1``'s smoothed ``(a, b)`` *warped along the
optical flow of the low-resolution input*, so a camera pan, a zoom or a moving car does not make
the past useless (the plain EMA, ``--temporal ema``, compares the same pixel over time and gives
up wherever anything moves, i.e. almost everywhere in a dashcam clip).

:class:`MotionEstimator` is a stateful part of the engine's per-frame state pass: for a batch of
working-size frames, in order, it returns a :class:`Motion` with, per frame, the sampling grid
that carries frame ``t − 1`` onto frame ``t`` and the trust in it: 1 where the forward and
backward flows agree (Sundaram et al., 2010) and the flow points inside the frame, times
``2^(−(d / gate)²)`` with ``d`` the box-averaged difference between the current gray input and
the previous one warped the same way (occlusions, new content and flow failures give a large
``d``). The smoother (:class:`~.temporal.CoefficientSmoother`) blends with ``strength`` times that
trust, 0 at a scene cut.

The flow is computed on the gray input at half the working size (short side at least
:data:`FLOW_SIDE` pixels), and the smoother works at that size too, adding its upsampled
correction to the full-detail coefficients: the coefficients vary smoothly, and on the clips of
``benchmarks/temporal_quality.py`` the flow at the full working size (short side 160 instead of 80)
changed the flicker by −0.02 to +0.03, and the flow estimate took 3.8 instead of 1.8 ms per frame
on the CPU. On CUDA the flow is :func:`~streamdehaze.ops.flow.lk_flow`
(tensor ops: it stays on the device, the compute stream never waits for the host); on the CPU,
where the host is the device, OpenCV's DIS (ultrafast preset), which is about 10× cheaper there
and more accurate.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..ops.cpu_kernels import use_cpu_kernels
from ..ops.flow import GridCache, consistency, inside, lk_flow, sampling_grid, warp
from ..ops.guided import box_filter, rgb_to_gray
from ..ops.transfer_fit import downscale
from .temporal import fit_shape

Tensor = torch.Tensor

FLOW_SIDE = 80  # the least short side the flow is computed at: half the working size, at least this
GATE = 0.02  # warped gray difference (0–1, box radius 1) at which the trust in the past halves


@dataclass
class Motion:
    """One batch's motion at the flow's size ``(h, w)`` (half the working size, see :data:`FLOW_SIDE`):
    ``grid`` ``(B, h, w, 2)`` samples frame t − 1 at frame t's pixels (``grid_sample`` units,
    ``align_corners=True``); ``trust`` ``(B, 1, h, w)`` in [0, 1] (0 for a frame with no past)."""

    grid: Tensor
    trust: Tensor
    flow: Tensor  # (B, 2, h, w): where each pixel of frame t sits in frame t − 1, in pixels at (h, w)

    def at(self, i: int) -> tuple[Tensor, Tensor]:
        """Frame ``i``'s ``(grid, trust)``."""
        return self.grid[i : i + 1], self.trust[i : i + 1]


class MotionEstimator:
    """Frames in order. State: the previous frame's gray input at the flow size (on the device).

    ``method``: ``auto`` (DIS for CPU tensors, :func:`~streamdehaze.ops.flow.lk_flow` elsewhere),
    ``dis`` or ``lk``.
    """

    def __init__(self, gate: float = GATE, method: str = "auto") -> None:
        if method not in ("auto", "dis", "lk"):
            raise ValueError(f"flow method {method!r}: expected auto, dis or lk")
        self.gate, self.method = gate, method
        self._prev: Tensor | None = None
        self._dis = None
        self._grids = GridCache()

    def reset(self) -> None:
        self._prev = None

    def __call__(self, low: Tensor) -> Motion:
        """``low`` ``(B, 3, h, w)`` in [0, 1], the working-size frames of one batch → their :class:`Motion`."""
        h, w = low.shape[-2:]
        # gray first (both steps are linear): one plane to shrink instead of three; contiguous planes
        # throughout, as torch's CPU kernels are several times slower on channels-last or strided ones
        gray = downscale(rgb_to_gray(low.float()).contiguous(), fit_shape(h, w, max(FLOW_SIDE, min(h, w) // 2)))
        fresh = self._prev is None or self._prev.shape[-2:] != gray.shape[-2:]
        prev = torch.cat([gray[:1] if fresh else self._prev, gray[:-1]])
        self._prev = gray[-1:]
        back, fwd = self._flows(gray, prev)
        grid = sampling_grid(back, self._grids(*gray.shape[-2:], gray.device))
        d = box_filter((gray - warp(prev, back, grid)).abs(), 1)
        trust = consistency(back, fwd, grid=grid) * inside(grid) * torch.exp2(-((d / self.gate) ** 2))
        if fresh:  # the first frame has no past (its "previous" was itself)
            trust[:1] = 0
        return Motion(grid, trust, back)

    def _flows(self, gray: Tensor, prev: Tensor) -> tuple[Tensor, Tensor]:
        """Backward (t into t − 1) and forward (t − 1 into t) flows ``(B, 2, h, w)`` in pixels."""
        dis = self.method == "dis" or (self.method == "auto" and use_cpu_kernels(gray))
        if not dis:
            both = lk_flow(torch.cat([gray, prev]), torch.cat([prev, gray]), grids=self._grids)
            return both[: gray.shape[0]], both[gray.shape[0] :]
        if self._dis is None:
            self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        cur8, prev8 = (_gray_uint8(t) for t in (gray, prev))
        back = np.stack([self._dis.calc(c, p, None) for c, p in zip(cur8, prev8)])
        fwd = np.stack([self._dis.calc(p, c, None) for c, p in zip(cur8, prev8)])
        return tuple(torch.from_numpy(f).permute(0, 3, 1, 2).contiguous() for f in (back, fwd))


def _gray_uint8(gray: Tensor) -> np.ndarray:
    """``(B, 1, h, w)`` float in [0, 1] on the CPU → ``(B, h, w)`` uint8."""
    return gray[:, 0].mul(255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()
