"""``streamdehaze eval --no-reference`` on tiny folders and generated videos, and the contact sheet."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from media import make_clip, make_images, read_video

from streamdehaze.cli import main
from streamdehaze.images import dehaze_image
from streamdehaze.io.stills import read_image, write_image
from streamdehaze.noref import FIGURE_KEYS, mean_figures, no_reference_figures
from streamdehaze.noref_eval import expand_eval_inputs, iter_images
from streamdehaze.sheet import RowSampler, sheet_size

MEAN_KEYS = {"n", *FIGURE_KEYS, "cast_br_abs", "cast_gm_abs"}


def _eval(*args: str):
    return CliRunner().invoke(main, ["eval", "--no-reference", *args])


def _json(*args: str) -> dict:
    result = _eval(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _expected(images: list[np.ndarray]) -> dict:
    return mean_figures([no_reference_figures(im, dehaze_image(im, "dcp")) for im in images])


def _assert_means(out: dict, expected: dict) -> None:
    for key in MEAN_KEYS:
        assert out[key] == pytest.approx(expected[key], abs=1e-9), key


@pytest.fixture
def folder(tmp_path):
    make_images(tmp_path / "imgs", 3)  # 64x48 test patterns
    return tmp_path / "imgs"


def test_folder_json_has_the_figures_of_each_image(folder):
    out = _json(str(folder), "-m", "dcp", "--per-image")
    paths = sorted(folder.iterdir())
    _assert_means(out, _expected([read_image(p) for p in paths]))
    assert out["mode"] == "no-reference" and out["model"] == "dcp" and out["sheet"] is None
    assert [r["image"] for r in out["images"]] == [str(p) for p in paths]
    first = no_reference_figures(read_image(paths[0]), dehaze_image(read_image(paths[0]), "dcp"))
    assert {k: v for k, v in out["images"][0].items() if k != "image"} == pytest.approx(first.to_dict())
    assert "baseline" not in out and "baseline" not in out["images"][0]


def test_video_frames_every_and_max_frames(tmp_path):
    clip = make_clip(tmp_path / "drive.mp4", n_frames=7)
    frames = [image for _, _, image in iter_images(expand_eval_inputs([str(clip)]), 1, None)]  # as eval decodes
    assert len(frames) == len(read_video(clip)) == 7
    out = _json(str(clip), "-m", "dcp", "--every", "3", "--per-image")
    assert out["n"] == 3 and [r["image"] for r in out["images"]] == [f"{clip}#{i}" for i in (0, 3, 6)]
    _assert_means(out, _expected([frames[i] for i in (0, 3, 6)]))
    out = _json(str(clip), "-m", "dcp", "--max-frames", "2")
    assert out["n"] == 2
    _assert_means(out, _expected(frames[:2]))


def test_globs_mix_photos_and_videos(tmp_path, folder):
    make_clip(folder / "clip.mp4", n_frames=2)
    out = _json(str(folder / "*"), "-m", "dcp", "--per-image")
    assert [r["image"].rsplit("/", 1)[-1] for r in out["images"]] == [
        "clip.mp4#0",
        "clip.mp4#1",
        "frame_0.png",
        "frame_1.png",
        "frame_2.png",
    ]


def test_dcp_baseline_is_reported_next_to_the_model(folder):
    out = _json(str(folder), "-m", "dcp", "--baseline", "dcp", "--per-image")
    assert out["baseline"]["model"] == "dcp" and MEAN_KEYS <= set(out["baseline"])
    _assert_means(out["baseline"], _expected([read_image(p) for p in sorted(folder.iterdir())]))
    row = out["images"][1]  # model and baseline are both dcp: the same figures
    assert row["baseline"] == {k: v for k, v in row.items() if k not in ("image", "baseline")}


def test_shipped_model_at_a_tiny_size(folder):
    out = _json(str(folder), "--work-size", "full", "--baseline", "dcp")
    assert out["model"] == "aecrnet" and out["work_size"] == "full resolution" and out["n"] == 3
    assert out["rbar"] > 0 and out["baseline"]["rbar"] > 0
    assert out["rbar"] != pytest.approx(out["baseline"]["rbar"])


def test_table_output(folder):
    result = _eval(str(folder), "-m", "dcp", "--baseline", "dcp", "--per-image")
    assert result.exit_code == 0, result.output
    assert "frame_1.png" in result.output and "mean dcp" in result.output and "rbar" in result.output


@pytest.mark.parametrize("rows, baseline", [(2, True), (12, False)])
def test_sheet_has_a_row_per_image_and_a_column_per_model(tmp_path, folder, rows, baseline):
    make_clip(tmp_path / "wide.mp4", n_frames=4, size=(64, 36))
    sheet = tmp_path / "out" / "sheet.jpg"
    args = [str(folder), str(tmp_path / "wide.mp4"), "-m", "dcp", "--sheet", str(sheet), "--sheet-rows", str(rows)]
    out = _json(*args, *(["--baseline", "dcp"] if baseline else []))
    assert out["sheet"] == str(sheet) and out["n"] == 7
    image = cv2.imread(str(sheet))
    # 3 photos 64x48 -> 320x240 tiles, 4 frames 64x36 -> 320x180; rows evenly spread, first and last kept
    heights = [240, 180] if rows == 2 else [240] * 3 + [180] * 4
    assert image.shape[:2] == sheet_size(heights, 3 if baseline else 2)
    assert sheet.stat().st_size < 200_000
    assert [p.name for p in sheet.parent.iterdir()] == ["sheet.jpg"]


def test_row_sampler_spreads_rows_evenly_in_bounded_memory():
    sampler = RowSampler(4)
    for i in range(1000):
        sampler.offer(i, i)
        assert len(sampler._kept) <= 16
    positions = sampler.positions()
    assert positions[0] == 0 and positions[-1] == 999 and len(positions) == 4
    assert all(abs(p - t) <= 333 / 4 for p, t in zip(positions, (0, 333, 666, 999)))
    assert sampler.selected() == positions


@pytest.mark.parametrize(
    "args, message",
    [
        (["{tmp}/empty"], "folder holds no images"),
        (["{tmp}/missing.png"], "no such file or folder"),
        (["{tmp}/*.gif"], "pattern matches no image or video files"),
        (["{tmp}/ok.png", "{tmp}/bad.png", "--sheet", "{tmp}/s.jpg"], "not an image or corrupt"),
        (["{tmp}/broken.mp4"], "cannot read"),
        (["{tmp}/ok.png", "--sheet", "{tmp}/s.gif"], "expected a .jpg"),
        (["{tmp}/ok.png", "--baseline", "input"], "give --baseline dcp"),
        ([], "needs INPUT"),
        (["{tmp}/ok.png", "--hazy", "{tmp}"], "not --hazy/--clear"),
    ],
)
def test_errors_are_one_clear_line_and_leave_no_sheet(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.png").write_bytes(b"not an image")
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 1000)
    write_image(tmp_path / "ok.png", np.full((16, 16, 3), 128, np.uint8))
    result = _eval(*(a.format(tmp=tmp_path) for a in args), "-m", "dcp")
    assert result.exit_code != 0
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.output
    assert not list(tmp_path.glob("*s.*")) and not list(tmp_path.glob(".s.*"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["eval", "{tmp}/ok.png", "-m", "dcp"], "need --no-reference"),
        (["eval", "--sheet", "{tmp}/s.jpg", "--hazy", "{tmp}", "--clear", "{tmp}"], "need --no-reference"),
        (["eval", "-m", "dcp"], "eval needs --hazy DIR and --clear DIR"),
        (["eval", "--hazy", "{tmp}", "--clear", "{tmp}", "--baseline", "dcp"], "--baseline dcp needs --no-reference"),
    ],
)
def test_reference_mode_rejects_no_reference_options(tmp_path, args, message):
    write_image(tmp_path / "ok.png", np.full((16, 16, 3), 128, np.uint8))
    result = CliRunner().invoke(main, [a.format(tmp=tmp_path) for a in args])
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.output


def test_bad_option_values_exit_non_zero(folder):
    result = _eval(str(folder), "-m", "dcp", "--every", "0")
    assert result.exit_code == 2 and "--every" in result.output
