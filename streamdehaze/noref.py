"""No-reference figures of a dehazed image against its own input (no clear image needed).

Every function takes ``(H, W, 3) uint8`` RGB images; the input and its dehazed output have the
same shape. Pure numpy, no I/O.

Edge figures follow Hautière, Tarel, Aubert and Dumont, "Blind contrast enhancement assessment
by gradient ratioing at visible edges", Image Analysis & Stereology 27(2), 2008:

- ``e = (n_r - n_o) / n_o``: the rate of newly visible edges, ``n_o`` and ``n_r`` the numbers
  of visible-edge pixels of the input and of the output;
- ``rbar = exp(mean(log r_i))``: the geometric mean, over the output's visible-edge pixels, of
  the gradient ratio ``r_i = |∇out| / |∇in|`` (Sobel magnitudes of the grey images);
- ``sigma``: the % of all pixels that are pure black or pure white in the output but not in the
  input.

**Visible edge** (a deterministic stand-in for the paper's Köhler segmentation with its 5%
visibility threshold). On the grey image ``Y = 0.2126 R + 0.7152 G + 0.0722 B`` (BT.709 luma of
the 8-bit values, 0-255), a pixel P at least 2 pixels from the border is a visible edge when

1. its Sobel gradient magnitude is non-zero and a local maximum along the gradient's direction,
   quantised to 0°, 45°, 90° or 135° (larger than the neighbour behind, at least as large as
   the neighbour ahead, so a two-pixel ridge counts once), and
2. the Weber contrast across it, ``|Y(P + 2d) - Y(P - 2d)| / max(Y(P + 2d), Y(P - 2d))`` with
   ``d`` that direction's unit step (the two sides of its steepest edge within its 5×5
   neighbourhood), is at least 5%.

The Köhler contrast of the best threshold between two levels is about half their relative
difference and the paper calls an edge visible at ``2·C >= 5%``, so (2) is the same threshold.
In the ratio ``r_i``, an input gradient under 0.5 level per pixel (flat within 8-bit
quantisation) counts as 0.5, so an edge appearing from a flat region gives a finite ratio.

Luma is computed exactly in integers (×10000) so that equal structures give equal edges: a gain
about mid-grey, ``out = 128 + 2·(in - 128)``, gives ``rbar == 2`` to rounding.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

VISIBILITY = 0.05  # Weber contrast an edge needs to be visible (CIE's 5%, as in the paper)
REACH = 2  # the two sides of an edge are sampled this many pixels away (a 5×5 neighbourhood)
DARK_LEVEL = 8  # luma at or below this counts as crushed shadow
MIN_GRADIENT = 0.5  # floor of the input's gradient in r_i (levels per pixel)

_LUMA = (2126, 7152, 722)  # BT.709 weights ×10000
_SCALE = 10000
_SOBEL_NORM = 8  # a unit step per pixel gives an unnormalised Sobel response of 8
# (dy, dx) unit steps of the quantised gradient directions 0°, 45°, 90°, 135° (y points down)
_STEPS = ((0, 1), (1, 1), (1, 0), (1, -1))


def _check(image: np.ndarray, name: str = "image") -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{name}: expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")


def _check_pair(inp: np.ndarray, out: np.ndarray) -> None:
    _check(inp, "input")
    _check(out, "output")
    if inp.shape != out.shape:
        raise ValueError(f"input {inp.shape} and output {out.shape} differ in shape")


def luma_x10000(image: np.ndarray) -> np.ndarray:
    """BT.709 luma of an ``(H, W, 3) uint8`` RGB image ×10000: ``(H, W) int64`` in ``[0, 2550000]``."""
    _check(image)
    rgb = image.astype(np.int64)
    return _LUMA[0] * rgb[..., 0] + _LUMA[1] * rgb[..., 1] + _LUMA[2] * rgb[..., 2]


def luma(image: np.ndarray) -> np.ndarray:
    """BT.709 luma ``0.2126 R + 0.7152 G + 0.0722 B`` of the 8-bit values: ``(H, W) float64`` in ``[0, 255]``."""
    return luma_x10000(image) / _SCALE


def _sobel(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unnormalised Sobel derivatives of ``(H, W)`` int64, edge-replicated: ``(gx, gy)`` int64."""
    p = np.pad(y, 1, mode="edge")
    h, w = y.shape
    row = p[:, 2:] - p[:, :-2]  # (H+2, W) horizontal differences
    gx = row[:-2] + 2 * row[1:-1] + row[2:]
    col = p[2:, :] - p[:-2, :]  # (H, W+2) vertical differences
    gy = col[:, :-2] + 2 * col[:, 1:-1] + col[:, 2:]
    return gx[:h, :w], gy[:h, :w]


def _direction(gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Gradient orientation quantised to an index of ``_STEPS``: ``(H, W)`` int in 0..3."""
    angle = np.degrees(np.arctan2(gy, gx)) % 180.0
    return (np.floor((angle + 22.5) / 45.0).astype(np.int64)) % 4


def _shift(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``a[y + dy, x + dx]`` for every pixel, edge-replicated outside: same shape as ``a``."""
    r = max(abs(dy), abs(dx))
    p = np.pad(a, r, mode="edge")
    h, w = a.shape
    return p[r + dy : r + dy + h, r + dx : r + dx + w]


def visible_edges(image: np.ndarray, visibility: float = VISIBILITY) -> tuple[np.ndarray, np.ndarray]:
    """Visible-edge pixels of an ``(H, W, 3) uint8`` RGB image and its gradient magnitude.

    Returns ``(mask, magnitude)``: ``(H, W)`` bool, and ``(H, W)`` float64 Sobel magnitude of the
    luma in levels per pixel (a unit step per pixel gives 1). See the module docstring for the
    definition; ``visibility`` is the Weber contrast threshold (0.05).
    """
    y = luma_x10000(image)
    gx, gy = _sobel(y)
    sq = gx * gx + gy * gy  # exact in int64: |g| < 2**24
    direction = _direction(gx, gy)
    mask = np.zeros(y.shape, bool)
    # Weber contrast >= v  <=>  |b - a| >= v * max(a, b), compared in integers (v as a fraction).
    num, den = (round(visibility * 10000), 10000)
    for k, (dy, dx) in enumerate(_STEPS):
        sel = direction == k
        peak = (sq > _shift(sq, -dy, -dx)) & (sq >= _shift(sq, dy, dx))
        a, b = _shift(y, -REACH * dy, -REACH * dx), _shift(y, REACH * dy, REACH * dx)
        visible = np.abs(b - a) * den >= num * np.maximum(a, b)
        mask |= sel & peak & visible & (sq > 0)
    mask[:REACH] = mask[-REACH:] = False
    mask[:, :REACH] = mask[:, -REACH:] = False
    return mask, np.sqrt(sq) / (_SOBEL_NORM * _SCALE)


@dataclass
class EdgeFigures:
    """``e`` and ``rbar`` of one image pair, with the visible-edge counts they come from.

    ``e`` is NaN when the input has no visible edge; ``rbar`` is NaN when the output has none.
    """

    e: float
    rbar: float
    edges_in: int
    edges_out: int


def edge_figures(inp: np.ndarray, out: np.ndarray) -> EdgeFigures:
    """``e`` (rate of newly visible edges) and ``rbar`` (geometric mean gradient ratio at the
    output's visible edges) of ``out`` against ``inp``, both ``(H, W, 3) uint8`` RGB.

    ``e`` is a ratio (0: as many visible edges as the input, 1: twice as many, may be negative);
    ``rbar`` is > 0 (1: gradients unchanged, 2: doubled).
    """
    _check_pair(inp, out)
    vis_in, grad_in = visible_edges(inp)
    vis_out, grad_out = visible_edges(out)
    n_o, n_r = int(vis_in.sum()), int(vis_out.sum())
    e = (n_r - n_o) / n_o if n_o else math.nan
    if n_r:
        ratio = grad_out[vis_out] / np.maximum(grad_in[vis_out], MIN_GRADIENT)
        rbar = float(np.exp(np.mean(np.log(ratio))))
    else:
        rbar = math.nan
    return EdgeFigures(e=e, rbar=rbar, edges_in=n_o, edges_out=n_r)


def saturated(image: np.ndarray) -> np.ndarray:
    """Pure black (all three channels 0) or pure white (all 255) pixels: ``(H, W)`` bool."""
    _check(image)
    return np.all(image == 0, axis=2) | np.all(image == 255, axis=2)


def newly_saturated(inp: np.ndarray, out: np.ndarray) -> float:
    """``sigma``: % of all pixels (0-100) pure black or white in ``out`` but not in ``inp``."""
    _check_pair(inp, out)
    return 100.0 * float(np.mean(saturated(out) & ~saturated(inp)))


def dark_share(image: np.ndarray, level: int = DARK_LEVEL) -> float:
    """% of pixels (0-100) of an ``(H, W, 3) uint8`` image whose BT.709 luma is at most ``level`` (0-255)."""
    return 100.0 * float(np.mean(luma_x10000(image) <= level * _SCALE))


def colour_balance(image: np.ndarray) -> tuple[float, float]:
    """``(blue-red, green-magenta)`` of an ``(H, W, 3) uint8`` RGB image, in 8-bit levels.

    ``blue-red = mean(B) - mean(R)``; ``green-magenta = mean(G) - (mean(R) + mean(B)) / 2``.
    """
    _check(image)
    r, g, b = (float(image[..., c].mean(dtype=np.float64)) for c in range(3))
    return b - r, g - (r + b) / 2


def colour_cast(inp: np.ndarray, out: np.ndarray) -> tuple[float, float]:
    """Shift of :func:`colour_balance` from ``inp`` to ``out``: ``(blue-red, green-magenta)`` in levels.

    Positive blue-red: the output is bluer (or less red) than the input; positive green-magenta:
    greener.
    """
    _check_pair(inp, out)
    (br_in, gm_in), (br_out, gm_out) = colour_balance(inp), colour_balance(out)
    return br_out - br_in, gm_out - gm_in


@dataclass
class NoRefFigures:
    """All no-reference figures of one dehazed image against its input.

    ``e``, ``rbar``: see :func:`edge_figures`; ``sigma``: % newly pure black or white;
    ``dark_out``/``dark_in``: % of pixels at luma <= 8 in the output / input, ``dark_diff`` their
    difference in points; ``cast_br``/``cast_gm``: colour shift in levels (:func:`colour_cast`);
    ``edges_in``/``edges_out``: visible-edge pixel counts.
    """

    e: float
    rbar: float
    sigma: float
    dark_out: float
    dark_in: float
    dark_diff: float
    cast_br: float
    cast_gm: float
    edges_in: int
    edges_out: int

    def to_dict(self) -> dict:
        return asdict(self)


FIGURE_KEYS = ("e", "rbar", "sigma", "dark_out", "dark_in", "dark_diff", "cast_br", "cast_gm")


def no_reference_figures(inp: np.ndarray, out: np.ndarray) -> NoRefFigures:
    """Every figure of ``out`` (a dehazed image) against ``inp`` (its input), both ``(H, W, 3) uint8`` RGB."""
    _check_pair(inp, out)
    edges = edge_figures(inp, out)
    dark_out, dark_in = dark_share(out), dark_share(inp)
    cast_br, cast_gm = colour_cast(inp, out)
    return NoRefFigures(
        e=edges.e,
        rbar=edges.rbar,
        sigma=newly_saturated(inp, out),
        dark_out=dark_out,
        dark_in=dark_in,
        dark_diff=dark_out - dark_in,
        cast_br=cast_br,
        cast_gm=cast_gm,
        edges_in=edges.edges_in,
        edges_out=edges.edges_out,
    )


def mean_figures(rows: list[NoRefFigures]) -> dict:
    """Mean of each figure over images (NaN values skipped; None where all are NaN), plus
    ``cast_br_abs``/``cast_gm_abs`` (mean absolute shift, so opposite casts do not cancel) and ``n``."""
    out: dict = {"n": len(rows)}
    for key in FIGURE_KEYS:
        values = [getattr(r, key) for r in rows if not math.isnan(getattr(r, key))]
        out[key] = float(np.mean(values)) if values else None
    for key in ("cast_br", "cast_gm"):
        out[f"{key}_abs"] = float(np.mean([abs(getattr(r, key)) for r in rows])) if rows else None
    return out
