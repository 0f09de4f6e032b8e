"""Colour is carried, not assumed: tagged clips with known flat colour patches go through
``streamdehaze run`` with the model replaced by the identity, on the CPU path (swscale) and the
device path (ops/yuv, here on the CPU), and come back with the same tags and the same colours (read
exactly, as a player that trusts the tags shows them); 10-bit input works and says what it does."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from media import (
    COLOUR_PATCHES,
    COLOUR_TAGS,
    colour_tags,
    make_colour_clip,
    patch_centres,
    read_rgb_as_tagged,
)

from streamdehaze.cli import main
from streamdehaze.frames import Colour
from streamdehaze.io.colour import depth_note
from streamdehaze.nets.dehazer import Dehazer

KNOWN = np.array(COLOUR_PATCHES)


@pytest.fixture
def identity_model(monkeypatch):
    """``--model`` loads the identity: the output pixels are the input's, so only I/O can change them."""
    import streamdehaze.backends.select

    def load_identity(name, weights=None, device="cpu", flip_average=False):
        return Dehazer(torch.nn.Identity(), "identity").eval()

    monkeypatch.setattr(streamdehaze.backends.select, "load_model", load_identity)


def run(clip, out, *extra: str):
    args = ["run", str(clip), "-o", str(out), "--model", "dcp", "-d", "cpu", "--work-size", "full"]
    return CliRunner().invoke(main, [*args, "--temporal", "off", *extra])


def expected_tags(matrix: str, full_range: bool) -> dict[str, int]:
    cs, primaries, trc = COLOUR_TAGS[matrix]
    return {"matrix": cs, "primaries": primaries, "transfer": trc, "range": 2 if full_range else 1}


@pytest.mark.parametrize("path", ["--no-device-yuv", "--device-yuv"], ids=["cpu-swscale", "device-yuv"])
@pytest.mark.parametrize(
    "matrix, full_range", [("bt709", False), ("bt601", False), ("bt709", True)], ids=["bt709", "bt601", "bt709-full"]
)
def test_colours_and_tags_come_back(identity_model, tmp_path, matrix, full_range, path):
    clip = make_colour_clip(tmp_path / "in.mp4", matrix, full_range)
    assert colour_tags(clip) == expected_tags(matrix, full_range)
    out = tmp_path / "out.mp4"
    result = run(clip, out, path)
    assert result.exit_code == 0, result.output
    assert colour_tags(out) == expected_tags(matrix, full_range)  # what a player reads
    frames = read_rgb_as_tagged(out, matrix, full_range)  # what it then shows
    assert len(frames) == 3
    for image in frames:
        error = np.abs(patch_centres(image) - KNOWN)
        assert error.max() <= 2, (patch_centres(image), KNOWN)


def test_a_bt709_clip_no_longer_looks_like_bt601(identity_model, tmp_path):
    """The issue's case: an untagged BT.601 encode of a BT.709 source shows (199, 58, 39) ten levels off."""
    clip = make_colour_clip(tmp_path / "in.mp4", "bt709")
    out = tmp_path / "out.mp4"
    assert run(clip, out, "--no-device-yuv").exit_code == 0
    as_709 = patch_centres(read_rgb_as_tagged(out, "bt709", False)[0])
    as_601 = patch_centres(read_rgb_as_tagged(out, "bt601", False)[0])
    assert np.abs(as_709 - KNOWN).max() <= 2 and np.abs(as_601 - KNOWN).max() > 8  # the matrix matters here


@pytest.mark.parametrize("path", ["--no-device-yuv", "--device-yuv"], ids=["cpu-swscale", "device-yuv"])
def test_10bit_input_is_written_as_8bit_with_its_tags(identity_model, tmp_path, path):
    clip = make_colour_clip(tmp_path / "hdr.mp4", "bt2020", pix_fmt="yuv420p10le")
    out = tmp_path / "out.mp4"
    result = run(clip, out, path)
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if "10-bit" in line]
    assert len(notes) == 1 and "yuv420p10le" in notes[0] and "8-bit" in notes[0], result.output
    assert colour_tags(out) == expected_tags("bt2020", False)  # BT.2020 matrix and primaries, HLG transfer
    frames = read_rgb_as_tagged(out, "bt2020", False)  # asserts 8-bit 4:2:0
    assert len(frames) == 3 and all(np.abs(patch_centres(f) - KNOWN).max() <= 2 for f in frames)
    assert re.search(r"wrote 3 frames", result.output)


def test_colour_description_maps_ffmpeg_numbers():
    assert Colour(matrix=1).matrix_name == "bt709" and Colour(matrix=6).matrix_name == "bt601"
    assert Colour().matrix_name == "bt601"  # untagged: what FFmpeg assumes
    assert Colour(matrix=9).matrix_name == Colour(matrix=10).matrix_name == "bt2020"
    assert Colour(range=2).full_range and Colour(pix_fmt="yuvj420p").full_range and not Colour(range=1).full_range
    assert Colour(pix_fmt="yuvj420p").output_range == 2 and Colour().output_range == 0
    assert Colour(1, 1, 1, 1).describe() == "bt709/bt709/bt709 tv"
    assert depth_note(Colour(bit_depth=8)) is None
    note = depth_note(Colour(9, 9, 16, 1, "yuv420p10le", 10))
    assert "10-bit" in note and "8-bit" in note and "bt2020nc/bt2020/pq tv" in note
