"""Flicker metric (flow-warped temporal difference) on sequences with known flicker, and eval-video."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from streamdehaze.cli import main
from streamdehaze.errors import InputError
from streamdehaze.flicker import FlickerMeter, affine_flicker_parts, consistency_mask, resize_max
from streamdehaze.metrics import flicker, flicker_many


def texture(h: int = 48, w: int = 64, seed: int = 0, blur: float = 2.0) -> np.ndarray:
    """Smooth random colour texture, uint8 RGB in [40, 200] (room for brightness offsets)."""
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.random((h, w, 3), dtype=np.float32), (0, 0), blur)
    t = (t - t.min()) / (t.max() - t.min())
    return (40 + 160 * t).round().astype(np.uint8)


def panning(n: int, step: int = 2, h: int = 48, w: int = 64) -> list[np.ndarray]:
    """``n`` crops of a larger texture, moving right by ``step`` pixels per frame (content moves left)."""
    big = texture(h + 8, w + step * n + 8, seed=1)
    return [np.ascontiguousarray(big[4 : 4 + h, 4 + step * i : 4 + step * i + w]) for i in range(n)]


def offset(frames: list[np.ndarray], deltas: list[int]) -> list[np.ndarray]:
    return [(f.astype(np.int16) + d).astype(np.uint8) for f, d in zip(frames, deltas, strict=True)]


def test_constant_sequence_has_no_flicker():
    frames = [texture()] * 5
    r = flicker(frames, frames)
    assert r.output == 0.0 and r.input == 0.0 and r.frames == 5
    assert len(r.per_pair_output) == 4 and r.valid_fraction == 1.0
    flat = [np.full((32, 40, 3), 90, np.uint8)] * 3
    assert flicker(flat, flat).output == 0.0


def test_brightness_jitter_on_static_scene_gives_mean_step():
    base = texture()
    deltas = [0, 5, -3, 8, 8, 2, -6]
    r = flicker([base] * len(deltas), offset([base] * len(deltas), deltas))
    expected = np.abs(np.diff(deltas)).mean()  # (5 + 8 + 11 + 0 + 6 + 8) / 6
    assert r.output == pytest.approx(expected, abs=1e-4)
    assert r.per_pair_output == pytest.approx([5, 8, 11, 0, 6, 8], abs=1e-4)
    assert r.input == 0.0 and r.ratio == float("inf")


def test_moving_scene_is_warped_along_the_input_flow():
    frames = panning(6)
    still = flicker(frames, frames)
    # the input warped along its own flow matches itself closely; a wrong warp direction would give ~10+
    assert still.input < 0.6 and still.output == pytest.approx(still.input)
    assert still.ratio == pytest.approx(1.0) and still.valid_fraction > 0.8
    # brightness jitter on top of the motion is measured as such
    deltas = [0, 6, 0, 6, 0, 6]
    jittered = flicker(frames, offset(frames, deltas))
    assert jittered.output == pytest.approx(6.0, abs=0.6)
    assert jittered.ratio > 8
    # a frozen output (the first frame repeated) does not follow the motion: large error
    frozen = flicker(frames, [frames[0]] * len(frames))
    assert frozen.output > 10 * still.output + 3


def test_flicker_many_matches_one_at_a_time():
    frames = panning(4)
    outs = {"same": frames, "jitter": offset(frames, [0, 4, 0, 4])}
    many = flicker_many(frames, outs)
    for name, seq in outs.items():
        one = flicker(frames, seq)
        assert many[name].output == pytest.approx(one.output) and many[name].input == pytest.approx(one.input)
    with pytest.raises(InputError, match="3 frames"):
        flicker_many(frames, {"short": frames[:3]})


def test_consistency_mask_rejects_disagreeing_flows_and_outside_points():
    h, w = 10, 12
    back = np.zeros((h, w, 2), np.float32)
    back[..., 0] = 2.0  # pixel p of frame t came from p + (2, 0) in frame t-1
    agree = -back
    _, _, valid = consistency_mask(back, agree)
    assert valid[:, : w - 2].all() and not valid[:, w - 2 :].any()  # the last 2 columns land outside
    _, _, valid = consistency_mask(back, back)  # the round trip moves 4 px: occluded everywhere
    assert not valid.any()


def test_meter_streams_and_checks_its_inputs():
    frames = panning(3)
    meter = FlickerMeter("fast")
    assert meter.add(frames[0], frames[0]) is None
    e_out, e_in = meter.add(frames[1], frames[1])
    assert e_out == pytest.approx(e_in)
    with pytest.raises(InputError, match="same size"):
        meter.add(frames[2], frames[2][:, :-2].copy())
    with pytest.raises(InputError, match="uint8"):
        meter.add(frames[2].astype(np.float32), frames[2])
    with pytest.raises(InputError, match="at least 2"):
        FlickerMeter().result()
    with pytest.raises(InputError, match="5 frames but outputs have 4"):
        flicker(panning(5), panning(4))


def test_resize_max_keeps_aspect():
    img = np.zeros((540, 960, 3), np.uint8)
    assert resize_max(img, 480).shape == (270, 480, 3)
    assert resize_max(img, None) is img and resize_max(img, 2000) is img


def _write_folder(folder, frames):
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"f_{i}.png"), f[..., ::-1])
    return str(folder)


def test_eval_video_cli_json_and_table(tmp_path):
    frames = panning(5)
    deltas = [0, 6, 0, 6, 0]
    inp = _write_folder(tmp_path / "in", frames)
    out = _write_folder(tmp_path / "out", offset(frames, deltas))
    res = CliRunner().invoke(main, ["eval-video", inp, out, "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["frames"] == 5 and d["output"] == pytest.approx(6.0, abs=0.6) and d["ratio"] > 8
    assert d["input"] == pytest.approx(flicker(frames, frames).input, abs=1e-6)
    res = CliRunner().invoke(main, ["eval-video", inp, out, "--max-size", "32"])
    assert res.exit_code == 0, res.output
    assert "output / input" in res.output


def test_eval_video_cli_rejects_different_frame_counts(tmp_path):
    from media import make_clip

    a = make_clip(tmp_path / "a.mp4", n_frames=6)
    b = make_clip(tmp_path / "b.mkv", n_frames=4)  # mkv announces no frame count: found while reading
    res = CliRunner().invoke(main, ["eval-video", str(a), str(b)])
    assert res.exit_code != 0
    assert "6 frames" in res.output and "has 4" in res.output
    assert len(res.output.strip().splitlines()) == 1
    res = CliRunner().invoke(main, ["eval-video", str(a), str(a), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["ratio"] == pytest.approx(1.0)


def _affine(frames: list[np.ndarray], gains: list[float], offsets: list[float]):
    """Outputs ``gain · frame + offset`` (0–255 offsets) and the ``(a, b)`` coefficients that made them."""
    outs, coefficients = [], []
    for f, g, o in zip(frames, gains, offsets, strict=True):
        outs.append(np.clip(g * f.astype(np.float32) + o, 0, 255).round().astype(np.uint8))
        a, b = torch.full((1, 3, 4, 4), g), torch.full((1, 3, 4, 4), o / 255.0)
        coefficients.append((a, b))
    return outs, coefficients


def test_affine_flicker_parts_separate_the_maps_change_from_the_inputs_change():
    frames = panning(6)
    noisy = [
        np.clip(f + np.random.default_rng(i).normal(0, 3, f.shape), 0, 255).astype(np.uint8)
        for i, f in enumerate(frames)
    ]
    # a stable map: every bit of flicker is the input's own change times the gain
    outs, coefficients = _affine(noisy, [1.5] * 6, [-40.0] * 6)
    stable = affine_flicker_parts(noisy, outs, coefficients)
    assert stable.map_change < 0.6 and stable.gain == pytest.approx(1.5)
    assert stable.input_change == pytest.approx(stable.flicker, abs=0.6)
    assert stable.flicker == pytest.approx(flicker(noisy, outs).output, abs=1e-4)
    assert stable.input_change == pytest.approx(1.5 * flicker(noisy, noisy).input, rel=0.1)
    # a map whose offset jumps by 6 levels on a static noiseless scene: all of it is the map's change
    still = [texture()] * 6
    outs, coefficients = _affine(still, [1.2] * 6, [0, 6, 0, 6, 0, 6])
    jumpy = affine_flicker_parts(still, outs, coefficients)
    assert jumpy.map_change == pytest.approx(6.0, abs=0.1) and jumpy.input_change < 0.6
    with pytest.raises(InputError, match="coefficients"):
        affine_flicker_parts(still, outs, coefficients[:-1])
