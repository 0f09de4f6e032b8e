"""The input's own noise, averaged along the motion before dehazing multiplies it.

Dehazing raises contrast: ``out = a · in + b`` with a gain ``a`` of about ``1/t``. Sensor noise and
compression change every frame, and the gain carries that change into the output, whatever the
coefficients do (:func:`streamdehaze.flicker.affine_flicker_parts` measures it). So
``--temporal motion`` also filters the *input* frames before the transfer's apply: a recursive
filter along the motion of the working-size flow (:mod:`.temporal_motion`),
``in'_t = lerp(in_t, warp(in'_{t−1}), w)``, with per pixel

    w = strength · 2^(−(gain · d / gate)²) · 2^(−(gain · drift / drift_gate)²)

``d``: the gray difference between the frame and the warped past, judged at the size it will have
in the output (``gain`` = the map's ``|a|``, at least 1): a difference of the size of noise is
averaged; anything larger (an edge the flow missed, a moving object, new content) passes
untouched, so the filter does not smear detail or trail objects. ``drift``: how far the local
mean of the frame (at the working size) has moved from the filtered past's, warped: where the
light or the fog changes, however slowly, the frame passes, so the filter never lags behind it.
``w = 0`` at a scene cut and with no past; the dehazing strength scales ``w`` (0: untouched).

On the CPU (uint8 frames, :meth:`NoiseFilter.filter_uint8`) it runs as OpenCV passes over the
frame: upsample the flow and the two low-resolution gates, remap the previous result, difference,
look-up of the weight, blend. Elsewhere (:meth:`NoiseFilter.filter`) the same steps are tensor
ops on the device; the two paths agree within a level.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..ops.flow import warp
from ..ops.guided import box_filter, rgb_to_gray
from .temporal_motion import Motion

Tensor = torch.Tensor

STRENGTH = 0.6  # weight of the warped past where the frames agree: noise std × ~0.5
GATE = 8.0 / 255  # output-sized gray difference at which that weight halves: ~2× a camera's noise amplified
DRIFT_GATE = 1.5 / 255  # output-sized change of the local mean at which it halves


def _full_flow(flow: Tensor, height: int, width: int) -> Tensor:
    """``(B, 2, h, w)`` flow in pixels at ``(h, w)`` → ``(B, 2, H, W)`` in pixels at the frames' size."""
    h, w = flow.shape[-2:]
    if (h, w) == (height, width):
        return flow.float()
    up = F.interpolate(flow.float(), size=(height, width), mode="bilinear", align_corners=False)
    return torch.cat([up[:, :1] * (width / w), up[:, 1:] * (height / h)], 1)


class NoiseFilter:
    """Frames in order; state: the previous filtered frame (uint8 on the CPU path, float elsewhere)."""

    def __init__(self, strength: float = STRENGTH, gate: float = GATE, drift_gate: float = DRIFT_GATE) -> None:
        self.strength, self.gate, self.drift_gate = strength, gate, drift_gate
        self._prev: np.ndarray | Tensor | None = None
        self._prev_low: Tensor | None = None  # (1, 1, h, w) gray of the previous filtered frame, working size
        self._lut = np.exp2(-((np.arange(256, dtype=np.float32) / 255.0 / gate) ** 2)).astype(np.float32)
        self._base: tuple[tuple[int, int], np.ndarray] | None = None

    def reset(self) -> None:
        self._prev = self._prev_low = None

    def _planes(self, gray: Tensor, grid: Tensor, gain: Tensor, amount: float) -> Tensor:
        """``(1, 2, h, w)`` at the working size: the gain, and the weight's scale (``amount · strength``
        times the drift gate) for one frame with gray ``gray`` ``(1, 1, h, w)`` and the motion's ``grid``."""
        past = F.grid_sample(self._prev_low, grid, mode="bilinear", padding_mode="border", align_corners=True)
        g = gain.float()
        drift = box_filter(gray - past, 2).abs() * g
        return torch.cat([g, (amount * self.strength) * torch.exp2(-((drift / self.drift_gate) ** 2))], 1)

    def _has_past(self, frame_shape: tuple, low_shape: tuple, i: int, motion: Motion) -> bool:
        prev, low = self._prev, self._prev_low
        if prev is None or low is None or tuple(prev.shape[-3:]) != frame_shape or tuple(low.shape) != low_shape:
            return False
        return not (i == 0 and motion.fresh)

    # ------------------------------------------------------------------ the CPU's uint8 path

    def filter_uint8(
        self, images: Tensor, low: Tensor, motion: Motion, cut: Tensor, gain: Tensor, amount: float = 1.0
    ) -> Tensor:
        """``images`` ``(B, H, W, 3)`` uint8 CPU tensor → the filtered frames, same layout (a new tensor).

        ``low`` ``(B, 3, h, w)``: the frames at the working size (float in [0, 1]); ``gain`` ``(B, 1, h, w)``:
        the map's gain there; ``amount`` in [0, 1] scales the weights (the dehazing strength: 0 leaves
        the frames as they are).
        """
        frames = images.numpy()
        n, height, width, _ = frames.shape
        gray = rgb_to_gray(low.float())
        h, w = gray.shape[-2:]
        out = np.empty_like(frames)
        flows = motion.flow.float().permute(0, 2, 3, 1).contiguous().numpy()
        cuts = cut.numpy()
        for i in range(n):
            if amount == 0 or cuts[i] or not self._has_past(frames[i].shape, (1, 1, h, w), i, motion):
                out[i] = frames[i]
            else:
                low_planes = self._planes(gray[i : i + 1], motion.grid[i : i + 1], gain[i : i + 1], amount)
                planes = cv2.resize(low_planes[0].permute(1, 2, 0).contiguous().numpy(), (width, height),
                                    interpolation=cv2.INTER_LINEAR)  # fmt: skip
                past = self._warp(self._prev, flows[i], width, height)
                d = cv2.multiply(cv2.cvtColor(cv2.absdiff(frames[i], past), cv2.COLOR_RGB2GRAY), planes[..., 0],
                                 dtype=cv2.CV_8U)  # fmt: skip
                wt = cv2.multiply(cv2.LUT(d, self._lut), planes[..., 1])
                out[i] = cv2.blendLinear(frames[i], past, 1.0 - wt, wt)
            self._prev = out[i]
            small = cv2.resize(out[i], (w, h), interpolation=cv2.INTER_AREA)
            self._prev_low = torch.from_numpy(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)).float().div_(255.0)[None, None]
        return torch.from_numpy(out)

    def _warp(self, prev: np.ndarray, flow: np.ndarray, width: int, height: int) -> np.ndarray:
        """``prev`` ``(H, W, 3)`` sampled at ``p + flow[p]`` (``flow`` ``(h, w, 2)`` pixels at ``(h, w)``)."""
        if self._base is None or self._base[0] != (height, width):
            ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
            self._base = ((height, width), np.dstack([xs, ys]))
        h, w = flow.shape[:2]
        if (h, w) != (height, width):
            flow = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
            flow *= np.float32([width / w, height / h])
        return cv2.remap(prev, cv2.add(flow, self._base[1]), None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    # ------------------------------------------------------------------ tensors (any device)

    def filter(self, x: Tensor, low: Tensor, motion: Motion, cut: Tensor, gain: Tensor, amount: float = 1.0) -> Tensor:
        """``x`` ``(B, 3, H, W)`` float in [0, 1] → filtered, same shape (float32). No host sync."""
        x = x.float()
        gray = rgb_to_gray(low.float())
        h, w = gray.shape[-2:]
        flows = _full_flow(motion.flow, *x.shape[-2:]) if amount > 0 else None
        out = []
        for i in range(x.shape[0]):
            cur = x[i : i + 1]
            if amount == 0 or not self._has_past(tuple(cur.shape[-3:]), (1, 1, h, w), i, motion):
                y = cur
            else:
                planes = F.interpolate(self._planes(gray[i : i + 1], motion.grid[i : i + 1], gain[i : i + 1], amount),
                                       size=x.shape[-2:], mode="bilinear", align_corners=False)  # fmt: skip
                past = warp(self._prev, flows[i : i + 1])
                d = rgb_to_gray((cur - past).abs()) * planes[:, :1]
                wt = planes[:, 1:] * torch.exp2(-((d / self.gate) ** 2))
                y = torch.lerp(cur, past, torch.where(cut[i], torch.zeros_like(wt), wt))
            out.append(y)
            self._prev = y
            self._prev_low = rgb_to_gray(F.interpolate(y, size=(h, w), mode="area"))
        return torch.cat(out)
