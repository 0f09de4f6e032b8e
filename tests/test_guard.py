"""Guard rails of the transfer's coefficients (ops/guard.py): no shadow pushed into black, no sky into white."""

from __future__ import annotations

import pytest
import torch

from streamdehaze.ops.guard import (
    CEILING,
    COLOUR_TOLERANCE,
    FLOOR,
    HAZE_FREE_DARK,
    clear_frame_strength,
    guard,
    guard_coefficients,
    guard_strength,
    limit_tint,
)


def _apply(x, a, b):
    return a * x + b


def test_coefficients_within_bounds_come_back_unchanged():
    g = torch.Generator().manual_seed(0)
    x = 0.2 + 0.6 * torch.rand(2, 3, 20, 24, generator=g)
    a = 1.2 + 0.1 * torch.rand(2, 3, 20, 24, generator=g)
    b = torch.full_like(x, -0.05)  # a·x + b stays inside [FLOOR, CEILING]
    ga, gb = guard_coefficients(x, a, b)
    assert torch.equal(ga, a) and torch.equal(gb, b)


def test_a_crushed_region_keeps_its_level_and_hue():
    x = torch.full((1, 3, 16, 16), 0.25)
    x[:, 2] = 0.30  # a slightly blue road
    a = torch.full_like(x, 2.0)
    b = torch.full_like(x, -0.49)  # the model's haze estimate exceeds what is there: y = 0.01 (red), 0.11 (blue)
    y = _apply(x, a, b)
    assert float(y.min()) < FLOOR
    ga, gb = guard_coefficients(x, a, b)
    y2 = _apply(x, ga, gb)
    assert float(y2.min()) >= FLOOR - 1e-6  # no channel below the floor
    # one strength for the three channels: every channel moved by the same fraction of its change
    frac = (y2 - x) / (y - x)
    torch.testing.assert_close(frac, frac[:, :1].expand_as(frac))
    s = guard_strength(x, a, b)
    torch.testing.assert_close(s, torch.full_like(s, (0.25 - FLOOR) / (0.25 - 0.01)))


def test_dark_input_is_never_made_darker_and_white_is_bounded():
    x = torch.tensor([0.01, 0.5, 0.995]).view(1, 1, 1, 3).expand(1, 3, 4, 3).contiguous()
    a = torch.full_like(x, 1.5)
    b = torch.full_like(x, -0.1)  # y = -0.085 (below an input already under the floor), 0.65, 1.39
    ga, gb = guard_coefficients(x, a, b, radius=0)
    y2 = _apply(x, ga, gb)
    assert torch.all(y2[..., 0] >= 0.01 - 1e-6)  # never darker than it came
    assert torch.all(y2[..., 2] <= max(0.995, CEILING) + 1e-6)


def test_neighbours_of_a_limited_pixel_are_limited_and_bounds_hold_everywhere():
    g = torch.Generator().manual_seed(3)
    x = 0.05 + 0.9 * torch.rand(1, 3, 32, 40, generator=g)
    a = 1.0 + 2.0 * torch.rand(1, 3, 32, 40, generator=g)
    b = -0.6 * torch.rand(1, 3, 32, 40, generator=g)
    ga, gb = guard_coefficients(x, a, b, radius=2)
    y2 = _apply(x, ga, gb)
    lo = torch.minimum(x, torch.full_like(x, FLOOR))
    hi = torch.maximum(x, torch.full_like(x, CEILING))
    assert torch.all(y2 >= lo - 1e-5) and torch.all(y2 <= hi + 1e-5)
    # the smoothed strength never exceeds a pixel's own
    s_own = guard_strength(x, a, b)
    s_used = ((ga - 1) / (a - 1)).mean(1, keepdim=True)
    assert torch.all(s_used <= s_own + 1e-5)


def test_guard_modes_choose_the_rails():
    """``--guard``: on = colour + range, range = black/white only, off = the fit as it is."""
    g = torch.Generator().manual_seed(7)
    x = 0.05 + 0.5 * torch.rand(1, 3, 16, 20, generator=g)
    a = torch.full_like(x, 1.6)
    b = torch.full_like(x, -0.12)
    b[:, 2] += 0.06  # a blue tint, and the darkest pixels pushed below black
    off = guard(x, a, b, "off")
    assert torch.equal(off[0], a) and torch.equal(off[1], b)
    for mode in ("range", "on"):
        y = _apply(x, *guard(x, a, b, mode))
        assert float(y.amin()) >= -1e-6  # nothing pushed below black
    tint = lambda z: float(z[:, 2].mean() - z[:, 0].mean())  # noqa: E731
    assert tint(_apply(x, *guard(x, a, b, "range"))) - tint(x) > 2 * COLOUR_TOLERANCE  # colour as the network made it
    assert tint(_apply(x, *guard(x, a, b, "on"))) - tint(x) < COLOUR_TOLERANCE + 0.01  # the tint limited


def test_a_grey_dehazing_keeps_its_colours_and_a_tint_is_limited():
    """``limit_tint``: the input's own colours scaled by the gain (removing grey airlight) pass; a tint
    the offsets add beyond that is pulled back to the tolerance."""
    g = torch.Generator().manual_seed(3)
    x = 0.3 + 0.3 * torch.rand(1, 3, 12, 16, generator=g)
    x[:, 2] += 0.1  # a bluish scene under the haze
    a = torch.full_like(x, 1.8)
    b = torch.full_like(x, -0.35)  # grey airlight removed: the blue-red balance grows by 0.08
    br = lambda z: float(z[:, 2].mean() - z[:, 0].mean())  # noqa: E731
    ga, gb = limit_tint(x, a, b)
    assert br(_apply(x, a, b)) - br(x) > 0.05
    torch.testing.assert_close(_apply(x, ga, gb), _apply(x, a, b))  # a grey dehazing is left alone
    tinted = b.clone()
    tinted[:, 2] += 0.08  # the network adds blue on top
    ga, gb = limit_tint(x, a, tinted)
    assert br(_apply(x, ga, gb)) - br(_apply(x, a, b)) == pytest.approx(COLOUR_TOLERANCE, abs=1e-5)
    torch.testing.assert_close(_apply(x, ga, gb).mean(1), _apply(x, a, tinted).mean(1))  # brightness kept


@pytest.mark.parametrize("shared_gain", [True, False])
def test_the_fit_with_the_tint_rail_keeps_a_grey_dehazing_and_removes_a_tint(shared_gain):
    from streamdehaze.ops.transfer_fit import guarded_fit

    g = torch.Generator().manual_seed(11)
    x = 0.3 + 0.3 * torch.rand(1, 3, 24, 32, generator=g)
    x[:, 0] += 0.1  # a reddish scene under grey haze
    grey = 1.5 * x - 0.2
    br = lambda z: float(z[:, 2].mean() - z[:, 0].mean())  # noqa: E731
    on, rng = (_apply(x, *guarded_fit(x, grey, 2, 1e-4, shared_gain, mode)) for mode in ("on", "range"))
    torch.testing.assert_close(on, rng, atol=1e-4, rtol=0)  # the colours a grey dehazing restores are kept
    tinted = grey.clone()
    tinted[:, 2] += 0.1  # and a tint the network adds on top is pulled back to the tolerance
    y = _apply(x, *guarded_fit(x, tinted, 2, 1e-4, shared_gain, "on"))
    assert br(y) - br(grey) == pytest.approx(COLOUR_TOLERANCE, abs=2e-3)


def test_haze_free_regions_are_left_alone_and_hazy_ones_dehazed():
    """The dark-channel rail: where every patch holds a pixel at 0 in some channel (no haze), the
    dehazing is undone; where haze lifts every channel above 25/255, it stays as the fit made it."""
    g = torch.Generator().manual_seed(4)
    clear = torch.rand(1, 3, 40, 60, generator=g)
    clear[:, 0, ::2, ::2] = 0.0  # a dark pixel in every small patch, as in haze-free outdoor scenes
    hazy = 0.6 * clear + 0.35  # the same scene behind grey haze: dark channel >= 0.35
    a, b = torch.full_like(clear, 1.3), torch.full_like(clear, -0.3)  # inside black and white on the hazy scene
    for x, kept in ((clear, False), (hazy, True)):
        ga, gb = guard(x, a, b, "range", radius=0)
        if kept:
            torch.testing.assert_close((ga, gb), (a, b))
        else:
            torch.testing.assert_close(_apply(x, ga, gb), x, atol=1e-6, rtol=0)


def test_a_clear_frame_is_left_alone_even_where_it_looks_hazy_and_the_same_frame_behind_haze_is_not():
    """The frame's haze floor: a frame with haze-free pixels in most of its tiles comes back as it was,
    its bright sky too (dark channel far above 25/255, dehazed by the per-pixel rail alone); behind
    haze, the same frame is dehazed as the fit made it."""
    g = torch.Generator().manual_seed(5)
    clear = 0.45 + 0.5 * torch.rand(1, 3, 40, 60, generator=g)  # bright: "hazy" to the per-pixel rail
    clear[:, 0, 10::3, ::3] = 0.0  # below a sky of 10 rows, a pixel dark in one channel in every 3 x 3 patch
    hazy = 0.6 * clear + 0.35
    a, b = torch.full_like(clear, 1.3), torch.full_like(clear, -0.3)
    torch.testing.assert_close(_apply(clear, *guard(clear, a, b, "range", radius=0)), clear, atol=1e-6, rtol=0)
    torch.testing.assert_close(guard(hazy, a, b, "range", radius=0), (a, b))


def test_a_dark_region_in_a_foggy_frame_does_not_make_it_clear():
    """A dashboard across the bottom quarter of a foggy frame: haze-free itself, so left alone by the
    per-pixel rail, but the fog above it is dehazed in full (the median tile decides, not the darkest)."""
    g = torch.Generator().manual_seed(6)
    foggy = 0.35 + 0.6 * torch.rand(1, 3, 40, 60, generator=g)
    foggy[..., 30:, :] = 0.02  # the dashboard
    a, b = torch.full_like(foggy, 1.3), torch.full_like(foggy, -0.3)
    ga, gb = guard(foggy, a, b, "range", radius=0)
    torch.testing.assert_close((ga[..., :26, :], gb[..., :26, :]), (a[..., :26, :], b[..., :26, :]))
    torch.testing.assert_close(_apply(foggy, ga, gb)[..., 33:, :], foggy[..., 33:, :], atol=1e-6, rtol=0)


@pytest.mark.parametrize("floor_levels", [0.0, 5.0, 12.5, 25.0, 40.0])
def test_the_frame_strength_follows_the_floor_of_its_median_tile(floor_levels):
    dark = torch.ones(2, 1, 8, 8)  # a 4 x 4 grid of 2 x 2 tiles
    dark[0, 0, ::2, ::2] = floor_levels / 255  # each tile's darkest pixel at the floor
    dark[0, 0, :2, :2] = 0.0  # one tile darker: it does not move the median
    strength = clear_frame_strength(dark).flatten()
    assert strength[0].item() == pytest.approx(min(1.0, floor_levels / 255 / HAZE_FREE_DARK), abs=1e-6)
    assert strength[1].item() == 1.0
