"""Temporal flicker of a video: the flow-warped difference of consecutive frames (the "warping error").

For each pair of consecutive frames ``t − 1, t`` the optical flow is computed on the INPUT video
(OpenCV's DIS on grayscale), so the output is judged along the motion of the real scene, whatever
it did itself. Output frame ``t − 1`` is warped to ``t`` along the backward flow, occluded pixels
are masked by forward–backward consistency (Sundaram et al., 2010), and the error of the pair is
the mean absolute difference over the valid pixels and the three channels, on the 0–255 scale.
A video's flicker is the mean over its pairs. The input warped by the same flow gives the
input's own figure: the residual of the flow, noise, compression. Dehazing raises contrast, so
even a stable output scores above the input; the ratio output / input is the comparable number.

For a dehazer that is an affine map ``out_t = a_t · in_t + b_t`` (the guided transfer),
:func:`affine_flicker_parts` splits each pair's change in two: the map's own change, applied to the
same pixels (``|a_t · warp(in_{t−1}) + b_t − warp(out_{t−1})|``: what a stable dehazer removes),
and the input's change carried by the gain (``|a_t · (in_t − warp(in_{t−1}))|``: noise and
compression times the contrast gain, which no map of the current pixels removes).

:class:`FlickerMeter` takes ``(input, output)`` frames one pair at a time (video-length streams);
:func:`flicker` runs it over two sequences.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np
import torch

from .choices import FLOW_PRESETS
from .errors import InputError
from .ops.guided import apply_affine

PRESETS = {name: getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{name.upper()}") for name in FLOW_PRESETS}


@dataclass
class FlickerReport:
    """Warping errors (0–255 scale) of a video pair; ``ratio`` = output / input (nan when both are 0)."""

    output: float
    input: float
    ratio: float
    frames: int
    valid_fraction: float  # mean fraction of pixels kept by the consistency mask
    per_pair_output: list[float] = field(default_factory=list)
    per_pair_input: list[float] = field(default_factory=list)

    def to_dict(self, per_pair: bool = False) -> dict:
        d = asdict(self)
        if not per_pair:
            d.pop("per_pair_output")
            d.pop("per_pair_input")
        return d


def to_gray(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3) uint8`` RGB → ``(H, W) uint8`` luma."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def consistency_mask(
    back: np.ndarray, fwd: np.ndarray, alpha: float = 0.01, beta: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sampling maps and validity of warping frame ``t − 1`` onto frame ``t``.

    ``back``: ``(H, W, 2)`` flow of frame ``t`` into ``t − 1`` (pixel ``p`` of ``t`` sits at
    ``p + back[p]`` in ``t − 1``); ``fwd``: the flow of ``t − 1`` into ``t``. A pixel is valid when
    it lands inside frame ``t − 1`` and the round trip returns:
    ``|back + fwd(p + back)|² < alpha (|back|² + |fwd(p + back)|²) + beta``.
    Returns ``(map_x, map_y, valid)``: float32 maps for ``cv2.remap`` and an ``(H, W)`` bool mask.
    """
    h, w = back.shape[:2]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x, map_y = gx + back[..., 0], gy + back[..., 1]
    fwd_at = cv2.remap(fwd, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    loop = back + fwd_at
    lhs = (loop * loop).sum(-1)
    rhs = alpha * ((back * back).sum(-1) + (fwd_at * fwd_at).sum(-1)) + beta
    inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    return map_x, map_y, inside & (lhs < rhs)


def warp_error(prev: np.ndarray, cur: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, valid: np.ndarray) -> float:
    """Mean ``|cur − warp(prev)|`` over the ``valid`` pixels and all channels, 0–255 scale (0 when none valid)."""
    warped = cv2.remap(prev, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    n = int(valid.sum())
    if n == 0:
        return 0.0
    diff = np.abs(cur.astype(np.float32) - warped.astype(np.float32))
    return float(diff[valid].mean())


class FlickerMeter:
    """Streaming warping error: call :meth:`add` with each ``(input, output)`` frame pair, in order.

    Frames are ``(H, W, 3) uint8`` RGB; input and output of one pair must have the same size.
    ``preset``: DIS preset (``ultrafast`` | ``fast`` | ``medium``).
    """

    def __init__(self, preset: str = "medium") -> None:
        if preset not in PRESETS:
            raise InputError(f"flow preset {preset!r}: expected one of {', '.join(PRESETS)}")
        self._dis = cv2.DISOpticalFlow_create(PRESETS[preset])
        self._prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # input, output, input gray
        self.frames = 0
        self.per_pair_output: list[float] = []
        self.per_pair_input: list[float] = []
        self._valid: list[float] = []

    def add(self, inp: np.ndarray, out: np.ndarray) -> tuple[float, float] | None:
        """Add frame ``t``; returns ``(output error, input error)`` of the pair ``(t − 1, t)``, None for the first."""
        _check_frame(inp, "input", self.frames)
        _check_frame(out, "output", self.frames)
        if inp.shape != out.shape:
            raise InputError(
                f"frame {self.frames}: input is {inp.shape[1]}x{inp.shape[0]} but output is "
                f"{out.shape[1]}x{out.shape[0]}; compare videos of the same size (use --max-size)"
            )
        gray = to_gray(inp)
        prev, self._prev = self._prev, (inp, out, gray)
        self.frames += 1
        if prev is None:
            return None
        if prev[0].shape != inp.shape:
            raise InputError(f"frame {self.frames - 1} changes size from {prev[0].shape} to {inp.shape}")
        map_x, map_y, valid = self.maps(prev[2], gray)
        e_out = warp_error(prev[1], out, map_x, map_y, valid)
        e_in = warp_error(prev[0], inp, map_x, map_y, valid)
        self.per_pair_output.append(e_out)
        self.per_pair_input.append(e_in)
        self._valid.append(float(valid.mean()))
        return e_out, e_in

    def maps(self, prev_gray: np.ndarray, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Backward and forward DIS flow between two gray frames → :func:`consistency_mask`'s maps and mask."""
        back = self._dis.calc(gray, prev_gray, None)
        fwd = self._dis.calc(prev_gray, gray, None)
        return consistency_mask(back, fwd)

    def result(self) -> FlickerReport:
        """The report so far (needs at least two frames)."""
        return _report(self.per_pair_output, self.per_pair_input, self._valid, self.frames)


def _report(per_out: list[float], per_in: list[float], valid: list[float], frames: int) -> FlickerReport:
    if frames < 2:
        raise InputError(f"flicker needs at least 2 frames, got {frames}")
    e_out, e_in = float(np.mean(per_out)), float(np.mean(per_in))
    ratio = e_out / e_in if e_in > 0 else (math.nan if e_out == 0 else math.inf)
    return FlickerReport(e_out, e_in, ratio, frames, float(np.mean(valid)), list(per_out), list(per_in))


def _check_frame(image: np.ndarray, name: str, index: int) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise InputError(f"{name} frame {index}: expected an (H, W, 3) uint8 RGB array, got {got}")


def flicker(inputs: Iterable[np.ndarray], outputs: Iterable[np.ndarray], preset: str = "medium") -> FlickerReport:
    """Warping error of ``outputs`` along the flow of ``inputs`` (equal-length sequences of uint8 RGB frames)."""
    meter = FlickerMeter(preset)
    it_in, it_out = iter(inputs), iter(outputs)
    n = 0
    while True:
        a, b = next(it_in, None), next(it_out, None)
        if a is None or b is None:
            if a is not None or b is not None:
                rest = sum(1 for _ in (it_in if a is not None else it_out)) + 1
                longer, shorter = ("inputs", "outputs") if a is not None else ("outputs", "inputs")
                raise InputError(
                    f"{longer} have {n + rest} frames but {shorter} have {n}; expected the same number of frames"
                )
            break
        meter.add(a, b)
        n += 1
    return meter.result()


def flicker_many(
    inputs: list[np.ndarray], outputs: dict[str, list[np.ndarray]], preset: str = "medium"
) -> dict[str, FlickerReport]:
    """:func:`flicker` of several output sequences of the same inputs, computing the flow once per pair."""
    n = len(inputs)
    for name, seq in outputs.items():
        if len(seq) != n:
            raise InputError(f"output {name!r} has {len(seq)} frames but the input has {n}")
        for t, frame in enumerate(seq):
            _check_frame(frame, name, t)
            if frame.shape != inputs[t].shape:
                raise InputError(f"output {name!r} frame {t} is {frame.shape}, the input {inputs[t].shape}")
    flow = FlickerMeter(preset)
    per_out: dict[str, list[float]] = {name: [] for name in outputs}
    per_in, valid = [], []
    for t in range(1, n):
        maps = flow.maps(to_gray(inputs[t - 1]), to_gray(inputs[t]))
        per_in.append(warp_error(inputs[t - 1], inputs[t], *maps))
        valid.append(float(maps[2].mean()))
        for name, seq in outputs.items():
            per_out[name].append(warp_error(seq[t - 1], seq[t], *maps))
    return {name: _report(per_out[name], per_in, valid, n) for name in outputs}


def resize_max(image: np.ndarray, max_size: int | None) -> np.ndarray:
    """Downscale ``(H, W, 3)`` so its longer side is at most ``max_size`` (area filter); unchanged otherwise."""
    if not max_size:
        return image
    h, w = image.shape[:2]
    if max(h, w) <= max_size:
        return image
    s = max_size / max(h, w)
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


@dataclass
class AffineFlickerParts:
    """:func:`affine_flicker_parts`' means over the pairs (0–255 scale); ``gain``: mean ``|a|`` on the valid pixels."""

    flicker: float
    map_change: float
    input_change: float
    gain: float


def affine_flicker_parts(
    inputs: list[np.ndarray],
    outputs: list[np.ndarray],
    coefficients: list[tuple[torch.Tensor, torch.Tensor]],
    preset: str = "medium",
) -> AffineFlickerParts:
    """Split the flicker of ``outputs`` into the map's own change and the input's change times the gain.

    ``coefficients[t]``: the ``(a, b)`` ``(1, C, h, w)`` that made ``outputs[t]`` from ``inputs[t]``
    (in [0, 1] units; upsampled bilinearly as :func:`~.ops.guided.apply_affine` does). The two parts
    are measured on the same flow and mask as :func:`flicker`; by the triangle inequality the
    flicker is at most their sum.
    """
    n = len(inputs)
    if not (len(outputs) == len(coefficients) == n) or n < 2:
        raise InputError(
            f"need as many outputs and coefficients as inputs (>= 2): {n}, {len(outputs)}, {len(coefficients)}"
        )
    meter = FlickerMeter(preset)
    total, own, carried, gain = [], [], [], []
    for t in range(1, n):
        map_x, map_y, valid = meter.maps(to_gray(inputs[t - 1]), to_gray(inputs[t]))
        if not valid.any():
            continue
        prev_in = cv2.remap(inputs[t - 1], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        prev_out = cv2.remap(outputs[t - 1], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        a, b = (c.detach().float().cpu() for c in coefficients[t])
        x = torch.from_numpy(prev_in).permute(2, 0, 1)[None].float() / 255.0
        mapped = apply_affine(a, b, x)[0].permute(1, 2, 0).numpy() * 255.0  # this frame's map on the last pixels
        full_a = torch.nn.functional.interpolate(a, size=valid.shape, mode="bilinear", align_corners=False)
        cur, prev_out = outputs[t].astype(np.float32), prev_out.astype(np.float32)
        total.append(float(np.abs(cur - prev_out)[valid].mean()))
        own.append(float(np.abs(mapped - prev_out)[valid].mean()))
        carried.append(float(np.abs(cur - mapped)[valid].mean()))
        gain.append(float(full_a.abs().mean(1)[0].numpy()[valid].mean()))
    return AffineFlickerParts(*(float(np.mean(v)) if v else 0.0 for v in (total, own, carried, gain)))
