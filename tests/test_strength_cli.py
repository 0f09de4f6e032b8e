"""``--strength`` on ``run``, ``image`` and the Python API: 0 returns the input, 1 today's output."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner
from media import make_clip

from streamdehaze import dehaze_video
from streamdehaze.cli import main
from streamdehaze.io.sources import open_source
from streamdehaze.io.stills import read_image, write_image


def decoded(path) -> np.ndarray:
    with open_source(str(path)) as src:
        return np.stack([f.image for f in src])


def pngs(folder) -> np.ndarray:
    return np.stack([read_image(p) for p in sorted(folder.glob("*.png"))])


def test_run_strength_zero_writes_the_input_and_one_the_dehazed_frames(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", n_frames=6, size=(64, 48))
    outs = {}
    for strength in ("0", "1", None):
        folder = tmp_path / f"s{strength}"
        args = ["run", str(clip), "-o", f"{folder}/", "--model", "dcp", "--max-frames", "6"]
        result = CliRunner().invoke(main, args + (["--strength", strength] if strength else []))
        assert result.exit_code == 0, result.output
        assert ("; strength 0" in result.output) == (strength == "0")  # (the temporal part says "strength 0.8")
        outs[strength] = pngs(folder)
    source = decoded(clip)
    assert np.abs(outs["0"].astype(int) - source).max() <= 1
    assert np.array_equal(outs["1"], outs[None])  # the default is full strength
    assert np.abs(outs["1"].astype(int) - source).mean() > 5
    bad = CliRunner().invoke(main, ["run", str(clip), "-o", f"{tmp_path}/x/", "--strength", "1.5"])
    assert bad.exit_code == 2 and "--strength" in bad.output and not (tmp_path / "x").exists()


def test_image_and_api_strength(tmp_path):
    rng = np.random.default_rng(0)
    image = (rng.integers(0, 256, (40, 52, 3)) * 0.6 + 0.4 * 220).astype(np.uint8)
    write_image(tmp_path / "hazy.png", image)
    for strength, expect_input in (("0", True), ("1", False)):
        out_dir = tmp_path / f"out{strength}"
        args = ["image", str(tmp_path / "hazy.png"), "-o", str(out_dir), "--model", "dcp", "--strength", strength]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        close = np.abs(read_image(out_dir / "hazy.png").astype(int) - image).max() <= 1
        assert close == expect_input
    clip = make_clip(tmp_path / "in.mp4", n_frames=4, size=(64, 48))
    summary = dehaze_video(clip, f"{tmp_path}/api/", model="dcp", strength=0.0)
    assert summary["frames_written"] == 4
    assert np.abs(pngs(tmp_path / "api").astype(int) - decoded(clip)).max() <= 1
