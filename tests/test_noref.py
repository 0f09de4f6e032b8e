"""No-reference figures (streamdehaze.noref) on constructed images with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamdehaze.noref import (
    NoRefFigures,
    colour_balance,
    colour_cast,
    dark_share,
    edge_figures,
    luma,
    mean_figures,
    newly_saturated,
    no_reference_figures,
    visible_edges,
)


def _grey(values: np.ndarray) -> np.ndarray:
    """``(H, W)`` levels -> ``(H, W, 3) uint8`` grey (its BT.709 luma equals the level exactly)."""
    return np.repeat(np.asarray(values, np.uint8)[..., None], 3, axis=2)


def _gain(image: np.ndarray) -> np.ndarray:
    """out = 128 + 2·(in - 128), exact in integers; the caller keeps ``image`` within [64, 191]."""
    assert image.min() >= 64 and image.max() <= 191
    return (128 + 2 * (image.astype(np.int64) - 128)).astype(np.uint8)


def _blocks(h: int = 64, w: int = 80) -> np.ndarray:
    """Flat blocks with strong steps (Weber contrast >= 30% before and after a gain of 2)."""
    img = np.full((h, w), 90, np.uint8)
    img[10:30, 12:50] = 170
    img[36:58, 30:70] = 130
    img[40:50, 5:20] = 180
    return _grey(img)


def test_gain_about_mid_grey_doubles_rbar_and_keeps_the_edges():
    inp = _blocks()
    edges = edge_figures(inp, _gain(inp))
    # Luma, Sobel and squared magnitudes are exact integers, so the gain doubles every gradient
    # exactly and the same pixels are edges: e is exactly 0 and each ratio exactly 2; the only
    # error is float rounding in sqrt/log/exp, far below 1e-9.
    assert edges.edges_in == edges.edges_out > 200
    assert edges.e == 0.0
    assert edges.rbar == pytest.approx(2.0, abs=1e-9)


def test_gain_makes_a_faint_step_visible_and_e_counts_it():
    img = np.full((40, 60), 100, np.uint8)
    img[:, 20:] = 150  # strong step: 33% contrast, an edge line in both images
    img[:, 40:] = 156  # faint step: 6/156 = 3.8% before, 12/184 = 6.5% after the gain
    inp = _grey(img)
    mask_in, _ = visible_edges(inp)
    mask_out, _ = visible_edges(_gain(inp))
    rows = 40 - 4  # rows at least 2 pixels from the border
    assert mask_in.sum() == rows and mask_in[2:-2, 19].all()
    assert mask_out.sum() == 2 * rows and mask_out[2:-2, 39].all()
    edges = edge_figures(inp, _gain(inp))
    assert edges.e == pytest.approx(1.0)  # one new edge line per existing one
    assert edges.rbar == pytest.approx(2.0, abs=1e-9)


@pytest.mark.parametrize("dark, bright, visible", [(100, 105, False), (95, 100, True), (100, 106, True)])
def test_visibility_threshold_is_five_percent_weber_contrast(dark, bright, visible):
    img = np.full((20, 30), dark, np.uint8)
    img[:, 15:] = bright  # contrast (bright - dark) / bright: 4.8%, exactly 5%, 5.7%
    mask, grad = visible_edges(_grey(img))
    assert mask.sum() == (20 - 4 if visible else 0)
    # one column per step (a two-pixel ridge counts once); magnitude in levels per pixel
    assert grad[10, 14] == pytest.approx((bright - dark) / 2)


def test_diagonal_and_horizontal_edges_are_found():
    y, x = np.mgrid[0:48, 0:48]
    mask, _ = visible_edges(_grey(np.where(x + y < 48, 80, 160)))
    # a 4-connected staircase on the two diagonals either side of the step, not a band
    assert sorted({int(px + py) for py, px in np.argwhere(mask)}) == [47, 48]
    assert mask.sum() <= 2 * (48 - 4)
    mask, _ = visible_edges(_grey(np.where(y < 24, 80, 160)))
    assert mask.sum() == 48 - 4 and mask[23, 2:-2].all()


def test_identity_gives_neutral_figures():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    f = no_reference_figures(img, img)
    assert (f.e, f.rbar, f.sigma, f.dark_diff, f.cast_br, f.cast_gm) == (0.0, pytest.approx(1.0), 0.0, 0.0, 0.0, 0.0)


def test_flat_input_gives_undefined_e_and_flat_output_undefined_rbar():
    flat = np.full((16, 16, 3), 120, np.uint8)
    edges = edge_figures(flat, _blocks(16, 16))
    assert math.isnan(edges.e) and edges.edges_out > 0 and edges.rbar > 0
    edges = edge_figures(_blocks(16, 16), flat)
    assert edges.e == -1.0 and math.isnan(edges.rbar)


def test_clip_to_black_and_white_shows_in_sigma_exactly():
    rng = np.random.default_rng(2)
    inp = rng.integers(20, 200, (40, 50, 3), dtype=np.uint8)
    inp[30:32] = 0  # already black in the input: not counted
    out = inp.copy()
    out[:4] = 0  # 200 of 2000 pixels newly pure black
    out[4:5] = 255  # 50 newly pure white
    out[5:10, :, 0] = 0  # one channel at 0 is not pure black
    out[30:32] = 255  # saturated before and after: not counted
    assert newly_saturated(inp, out) == pytest.approx(100 * 250 / 2000)
    assert no_reference_figures(inp, out).sigma == pytest.approx(12.5)


def test_dark_share_uses_bt709_luma_at_most_8():
    img = np.zeros((10, 10, 3), np.uint8)
    img[:] = (9, 9, 9)  # luma 9: not dark
    img[0] = (8, 8, 8)  # luma 8: dark (10 px)
    img[1] = (37, 0, 0)  # luma 7.87: dark (10 px)
    img[2] = (38, 0, 0)  # luma 8.08: not dark
    img[3] = (0, 0, 110)  # luma 7.94: dark (10 px)
    img[4, :5] = (0, 11, 0)  # luma 7.87: dark (5 px)
    assert luma(img)[1, 0] == pytest.approx(0.2126 * 37)
    assert dark_share(img) == pytest.approx(35.0)
    inp = np.full_like(img, 60)
    inp[0, :5] = 0  # 5% dark in the input
    f = no_reference_figures(inp, img)
    assert (f.dark_out, f.dark_in, f.dark_diff) == (pytest.approx(35.0), pytest.approx(5.0), pytest.approx(30.0))


def test_colour_cast_is_the_shift_of_blue_red_and_green_magenta():
    inp = np.zeros((10, 20, 3), np.uint8)
    inp[:] = (100, 100, 100)
    inp[:, :10] = (120, 80, 100)  # mean R 110, G 90, B 100
    assert colour_balance(inp) == pytest.approx((-10.0, -15.0))
    out = inp.copy()
    out[..., 2] += 14  # bluer by 14 levels: blue-red +14, green-magenta -7
    assert colour_cast(inp, out) == pytest.approx((14.0, -7.0))
    out = inp.copy()
    out[:, :10, 1] += 10  # half the image greener by 10: green-magenta +5 on the mean
    assert colour_cast(inp, out) == pytest.approx((0.0, 5.0))


def test_mean_figures_skip_undefined_values():
    def fig(e, cast):
        return NoRefFigures(e, 1.5, 0.1, 2.0, 1.0, 1.0, cast, 0.0, 10, 12)

    mean = mean_figures([fig(0.2, 4.0), fig(math.nan, -2.0), fig(0.4, 1.0)])
    assert mean["n"] == 3 and mean["e"] == pytest.approx(0.3) and mean["rbar"] == pytest.approx(1.5)
    assert mean["cast_br"] == pytest.approx(1.0) and mean["cast_br_abs"] == pytest.approx(7 / 3)
    assert mean_figures([fig(math.nan, 0.0)])["e"] is None


def test_mismatched_images_are_rejected():
    with pytest.raises(ValueError, match="differ in shape"):
        no_reference_figures(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        dark_share(np.zeros((8, 8, 3), np.float32))
