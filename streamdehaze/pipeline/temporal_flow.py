"""Motion-compensated recursive temporal filter (``--temporal flow``). Streaming: only past frames.

The previous OUTPUT is warped onto the current frame along the optical flow of the INPUT (OpenCV
DIS on a downscaled gray frame) and blended with the current output where the correspondence is
trustworthy: the weight of the past is ``strength · 2^(−(d / gate)²)``, with ``d`` the box-averaged
difference between the current input and the previous input warped the same way (occlusions,
flow errors and new content give a large ``d``: the current output passes through), 0 where the
flow points outside the frame, 0 at a scene cut. The warped past is first limited, per pixel and
channel, to the range of the current output's 3×3 neighbourhood (the history clamp of temporal
anti-aliasing in real-time rendering): noise within that range is still averaged, but a level the
current frame has left (haze that thins, a warp a pixel off across an edge) cannot linger as a trail
(on the synthetic clips of ``benchmarks/temporal_quality.py`` the worst per-frame loss fell from
1.25 to 0.36 dB). Unlike coefficient smoothing, this also averages out the noise and compression
flicker that any dehazer amplifies by ``1/t``; its cost is one finer flow per frame on the CPU and a
few passes over the full-resolution frame (on the CPU in 8 bits: :meth:`FlowSmoother.step_uint8`).

The filter has a host half and a device half. :class:`FlowEstimator` (host, stateful: the previous
gray frame) turns the gray frames of a batch, made on the device by :func:`flow_gray` and copied to
the host without blocking, into flows; :meth:`FlowSmoother.step` (device) warps and blends with
them. The engine runs the host half between its two device phases (:mod:`.engine`), so the compute
stream never waits for OpenCV; standalone, :meth:`FlowSmoother.__call__` runs both in turn.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..ops.cpu_kernels import shrink_uint8
from ..ops.flow import GridCache
from ..ops.guided import box_filter, fit_affine, rgb_to_gray
from .temporal import TemporalConfig, downscale, fit_shape


def flow_gray(x: torch.Tensor, flow_size: int) -> torch.Tensor:
    """``(B, 3, H, W)`` in [0, 1] → ``(B, h, w)`` uint8 gray at short side ``flow_size``, on ``x``'s device."""
    return gray_uint8(downscale(x.float(), fit_shape(*x.shape[-2:], flow_size)))


def gray_uint8(low: torch.Tensor) -> torch.Tensor:
    """``(B, 3, h, w)`` in [0, 1] → ``(B, h, w)`` uint8 gray, what :class:`FlowEstimator` takes."""
    return rgb_to_gray(low)[:, 0].mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


class FlowEstimator:
    """The host half: OpenCV DIS flow of each gray frame to the previous one. State: the previous frame."""

    def __init__(self) -> None:
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self._prev: np.ndarray | None = None

    def reset(self) -> None:
        self._prev = None

    def flows(self, grays: np.ndarray) -> list[np.ndarray | None]:
        """``(B, h, w)`` uint8 consecutive frames → per frame ``(h, w, 2)`` float32 (None: no previous frame).

        ``flow[p]`` is where pixel ``p`` of frame t sits in frame t−1 (``calc(t, t−1)``).
        """
        out: list[np.ndarray | None] = []
        for gray in grays:
            prev, self._prev = self._prev, np.ascontiguousarray(gray).copy()
            out.append(None if prev is None or prev.shape != gray.shape else self._dis.calc(self._prev, prev, None))
        return out


def warp_backward(
    images: torch.Tensor, flow: torch.Tensor, grids: GridCache | None = None, inside: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Warp ``images`` ``(1, C, H, W)`` (frame t−1) onto frame t along ``flow`` ``(1, 2, h, w)`` (pixels at h × w).

    ``flow[p]`` is where pixel ``p`` of frame t sits in frame t−1 (OpenCV's ``calc(t, t−1)``); it is
    converted to grid units at low resolution, then upsampled bilinearly when ``(h, w) != (H, W)``
    (a few full-resolution passes in all). Returns the warped ``(1, C, H, W)`` and, with ``inside``,
    a ``(1, 1, H, W)`` float mask: 1 where the source point lies within frame t−1 (else None).
    """
    height, width = images.shape[-2:]
    h, w = flow.shape[-2:]
    # pixels of the h × w flow → normalised units of the H × W frame: (W / w) · 2 / (W − 1)
    # (python scalars: a tensor made from a list here would be a blocking copy on CUDA)
    sx, sy = 2 * width / (w * max(width - 1, 1)), 2 * height / (h * max(height - 1, 1))
    flow = flow.float()
    offset = torch.cat([flow[:, :1] * sx, flow[:, 1:] * sy], 1)
    if (h, w) != (height, width):
        offset = F.interpolate(offset, size=(height, width), mode="bilinear", align_corners=False)
    grid = (grids or GridCache())(height, width, flow.device) + offset.permute(0, 2, 3, 1)
    warped = F.grid_sample(images, grid.to(images.dtype), align_corners=True, padding_mode="border")
    if not inside:
        return warped, None
    return warped, (grid.abs() <= 1.0 + 1e-6).all(-1, keepdim=True).permute(0, 3, 1, 2).to(images.dtype)


def clamp_to_neighbourhood(past: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """``past`` limited to ``[min, max]`` of ``current``'s 3×3 neighbourhood, per pixel and channel (``(B, C, H, W)``;
    at the borders the neighbourhood holds the pixels inside the frame)."""
    high = F.max_pool2d(current, 3, stride=1, padding=1)
    low = -F.max_pool2d(-current, 3, stride=1, padding=1)
    return torch.minimum(torch.maximum(past, low), high)


_NEIGHBOURHOOD = np.ones((3, 3), np.uint8)


def clamp_to_neighbourhood_uint8(past: np.ndarray, current: np.ndarray) -> np.ndarray:
    """:func:`clamp_to_neighbourhood` for interleaved uint8 frames ``(H, W, 3)``."""
    return cv2.min(cv2.max(past, cv2.erode(current, _NEIGHBOURHOOD)), cv2.dilate(current, _NEIGHBOURHOOD))


class FlowSmoother:
    """``smoother(x, y) -> y'``: ``x`` inputs, ``y`` outputs, ``(B, 3, H, W)`` in [0, 1]; frames in order.

    Returns ``(B, 3, H, W)`` float32 in [0, 1]. The flow and the trust weights are computed on the
    gray input downscaled to ``flow_size`` (short side); only the previous output is warped at full
    resolution. State: the previous low-resolution gray input and the previous output (device), and
    :attr:`estimator`'s previous gray frame (host).
    """

    def __init__(self, config: TemporalConfig | None = None) -> None:
        self.config = (config or TemporalConfig(mode="flow")).check()
        self.estimator = FlowEstimator()
        self._grids_low, self._grids_full = GridCache(), GridCache()
        self._base: tuple | None = None  # the uint8 step's pixel grid: (size, x, y)
        self._prev: tuple[torch.Tensor, torch.Tensor] | None = None

    def reset(self) -> None:
        self._prev = None
        self.estimator.reset()

    def host_flows(self, x: torch.Tensor) -> list[torch.Tensor | None]:
        """Both halves in turn, for standalone use: per frame of ``x`` its flow ``(1, 2, h, w)`` on ``x``'s device.

        (Reads the gray frames back to the host: a sync. The engine splits this around its compute section.)
        """
        flows = self.estimator.flows(flow_gray(x, self.config.flow_size).cpu().numpy())
        return [None if f is None else torch.from_numpy(f).to(x.device).permute(2, 0, 1)[None] for f in flows]

    def __call__(self, x: torch.Tensor, y: torch.Tensor, cut: torch.Tensor | None = None) -> torch.Tensor:
        flows = self.host_flows(x)
        return torch.cat(
            [
                self.step(x[i : i + 1], y[i : i + 1], None if cut is None else cut[i], flows[i])
                for i in range(x.shape[0])
            ]
        )

    def weight(self, gray: torch.Tensor, prev: torch.Tensor, flow: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        """Weight of the warped past ``(1, 1, h, w)``: high where the warped previous input matches the current one.

        The input difference is multiplied by ``gain`` ``(1, 1, h, w)``, the model's local contrast gain
        (``|a|`` of ``out ≈ a · in + b``), so it is judged at the size it would have in the output:
        haze hides misalignments in the input that dehazing makes visible again.
        """
        c = self.config
        warped, inside = warp_backward(prev, flow, self._grids_low)
        d = box_filter((gray - warped).abs(), 1) * gain
        return c.strength * torch.exp2(-((d / c.gate) ** 2)) * inside

    def _past_weight(
        self,
        low_in: torch.Tensor,
        low_out: torch.Tensor,
        gray: torch.Tensor,
        prev_gray: torch.Tensor,
        flow: torch.Tensor,
        cut: torch.Tensor | None,
    ) -> torch.Tensor:
        """:meth:`weight` at the flow's size, with the gain of the frame's own map, 0 at a cut (no host read)."""
        a, _ = fit_affine(low_in, low_out, 2, self.config.eps)
        w = self.weight(gray, prev_gray, flow, a.abs().mean(1, keepdim=True).clamp_(min=1.0))
        return w if cut is None else torch.where(cut, torch.zeros_like(w), w)

    def step(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        cut: torch.Tensor | None,
        flow: torch.Tensor | None,
        low: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The device half for one frame: ``(1, 3, H, W)`` input and output → filtered output ``(1, 3, H, W)`` float32.

        ``cut``: the frame's scene-cut flag (0-d bool tensor, None: not a cut); ``flow``: its flow
        ``(1, 2, h, w)`` from :attr:`estimator` (None: no previous frame); ``low``: ``x`` and ``y``
        already downscaled to the flow size, when the caller has them.
        """
        c = self.config
        y = y.float()
        size = fit_shape(*x.shape[-2:], c.flow_size)
        low_in, low_out = low if low is not None else (downscale(x.float(), size), downscale(y, size))
        gray = rgb_to_gray(low_in)
        prev, out = self._prev, y
        if flow is not None and self._follows(gray, y.shape[-2:]):
            if c.strength > 0:
                w = self._past_weight(low_in, low_out, gray, prev[0], flow, cut)
                if w.shape[-2:] != y.shape[-2:]:
                    w = F.interpolate(w, size=y.shape[-2:], mode="bilinear", align_corners=False)
                # the weight already holds the low-resolution "inside" mask: no full-resolution one needed
                warped, _ = warp_backward(self._past_float(y.device), flow, self._grids_full, inside=False)
                out = torch.lerp(y, clamp_to_neighbourhood(warped, y), w)
        self._prev = (gray, out)
        return out

    def _follows(self, gray: torch.Tensor, size: tuple[int, int]) -> bool:
        """Whether the state is of the previous frame of this stream (same sizes)."""
        prev = self._prev
        if prev is None or prev[0].shape != gray.shape:
            return False
        past = prev[1]
        return tuple(past.shape[:2] if past.dtype == torch.uint8 else past.shape[-2:]) == tuple(size)

    def _past_float(self, device: torch.device) -> torch.Tensor:
        """The previous output as ``(1, 3, H, W)`` float in [0, 1] (the uint8 step keeps an ``(H, W, 3)`` frame)."""
        past = self._prev[1]
        if past.dtype == torch.uint8:
            past = past.permute(2, 0, 1)[None].to(device, torch.float32) / 255.0
        return past

    def _past_uint8(self) -> np.ndarray:
        """The previous output as an ``(H, W, 3)`` uint8 frame (the float step keeps ``(1, 3, H, W)`` floats)."""
        past = self._prev[1]
        if past.dtype != torch.uint8:
            past = (past[0].permute(1, 2, 0).float().cpu() * 255.0).round_().clamp_(0, 255).to(torch.uint8)
        return np.ascontiguousarray(past.numpy())

    def step_uint8(
        self,
        image: torch.Tensor,
        out8: torch.Tensor,
        cut: torch.Tensor | None,
        flow: torch.Tensor | None,
        low_in: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """:meth:`step` for one CPU frame on the uint8 path: the decoded ``image`` and its dehazed ``out8``,
        ``(H, W, 3)`` uint8 → the filtered ``(H, W, 3)`` uint8.

        The weights are made at the flow's size as in :meth:`step`, from both frames shrunk with its windows
        (:func:`shrink_uint8`). At full resolution everything stays 8-bit and runs in OpenCV: the flow and
        the weights are upsampled, the previous output (kept as a uint8 frame) is warped, clamped to the
        current output's neighbourhood and blended, each output rounded to 8 bits as the encoder gets it.
        (The clamp also keeps that rounding from holding a level: a value the current frame has left is
        clamped away.) The state serves :meth:`step` too, so the two may follow each other.
        ``low_in``: ``image`` already shrunk to the flow's size (the engine made it for the flow's gray
        frames), ``(1, 3, h, w)``.
        """
        c = self.config
        height, width = image.shape[:2]
        size = fit_shape(height, width, c.flow_size)
        low_in = shrink_uint8(image[None], size) if low_in is None else low_in
        gray = rgb_to_gray(low_in)
        out = out8
        if flow is not None and c.strength > 0 and self._follows(gray, (height, width)):
            w = self._past_weight(low_in, shrink_uint8(out8[None], size), gray, self._prev[0], flow, cut)
            weight = cv2.resize(w[0, 0].numpy(), (width, height), interpolation=cv2.INTER_LINEAR)
            map_x, map_y = self._maps(flow[0].numpy(), height, width)
            warped = cv2.remap(self._past_uint8(), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            current = out8.numpy()
            clamped = clamp_to_neighbourhood_uint8(warped, current)
            rest = np.subtract(1.0, weight, dtype=np.float32)
            out = torch.from_numpy(cv2.blendLinear(clamped, current, weight, rest))
        self._prev = (gray, out)
        return out

    def _maps(self, flow: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``cv2.remap``'s maps at ``height × width`` for a ``(2, h, w)`` flow in the flow's pixels (as
        :func:`warp_backward`: the offsets scaled to full-resolution pixels, upsampled bilinearly)."""
        h, w = flow.shape[-2:]
        key = (height, width)
        if self._base is None or self._base[0] != key:
            gy, gx = np.mgrid[0:height, 0:width].astype(np.float32)
            self._base = (key, gx, gy)
        _, gx, gy = self._base
        fx = cv2.resize(flow[0], (width, height), interpolation=cv2.INTER_LINEAR)
        fy = cv2.resize(flow[1], (width, height), interpolation=cv2.INTER_LINEAR)
        return gx + fx * np.float32(width / w), gy + fy * np.float32(height / h)
