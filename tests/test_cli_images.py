"""`image`, `eval` and `models` commands through click's runner."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from streamdehaze.cli import main
from streamdehaze.images import dehaze_image
from streamdehaze.io.stills import read_image, write_image


def _hazy_clear(rng, h=40, w=52):
    clear = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    hazy = (clear * 0.6 + 0.4 * 220).astype(np.uint8)
    return hazy, clear


@pytest.fixture
def pair_dirs(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "hazy").mkdir()
    (tmp_path / "clear").mkdir()
    for scene in ("1400", "1401"):
        hazy, clear = _hazy_clear(rng)
        write_image(tmp_path / "clear" / f"{scene}.png", clear)
        for level in (1, 2):
            write_image(
                tmp_path / "hazy" / f"{scene}_{level}.png", (hazy.astype(int) + level).clip(0, 255).astype(np.uint8)
            )
    return tmp_path / "hazy", tmp_path / "clear"


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) / 255 - b.astype(np.float64) / 255) ** 2)
    return 10 * np.log10(1 / mse)


def test_eval_json_matches_hand_computed_psnr(pair_dirs):
    hazy_dir, clear_dir = pair_dirs
    result = CliRunner().invoke(
        main, ["eval", "--hazy", str(hazy_dir), "--clear", str(clear_dir), "--model", "dcp", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    dehazed, inputs = [], []
    for h in sorted(hazy_dir.iterdir()):
        clear = read_image(clear_dir / f"{h.stem.split('_')[0]}.png")
        dehazed.append(_psnr(dehaze_image(read_image(h), "dcp"), clear))
        inputs.append(_psnr(read_image(h), clear))
    assert out["n"] == 4
    assert out["psnr"] == pytest.approx(np.mean(dehazed), abs=1e-3)
    assert out["input_psnr"] == pytest.approx(np.mean(inputs), abs=1e-3)
    assert 0 < out["ssim"] <= 1


def test_eval_table_and_unpaired_error(pair_dirs, tmp_path):
    hazy_dir, clear_dir = pair_dirs
    result = CliRunner().invoke(
        main, ["eval", "--hazy", str(hazy_dir), "--clear", str(clear_dir), "-m", "dcp", "--per-image"]
    )
    assert result.exit_code == 0 and "1400_1.png" in result.output and "mean of 4" in result.output
    write_image(hazy_dir / "1999_1.png", np.zeros((8, 8, 3), np.uint8))
    result = CliRunner().invoke(main, ["eval", "--hazy", str(hazy_dir), "--clear", str(clear_dir), "-m", "dcp"])
    assert result.exit_code != 0 and "no clear partner" in result.output and "1999_1.png" in result.output


def test_image_command_writes_pngs_for_folder_and_glob(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        write_image(src / f"f{i}.jpg", rng.integers(0, 256, (30, 44, 3), dtype=np.uint8))
    result = CliRunner().invoke(main, ["image", str(src), "-o", str(tmp_path / "out"), "-m", "dcp"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f0.png", "f1.png", "f2.png"]
    assert read_image(tmp_path / "out" / "f1.png").shape == (30, 44, 3)
    result = CliRunner().invoke(main, ["image", str(src / "f*.jpg"), "-o", str(tmp_path / "out2"), "-m", "dcp"])
    assert result.exit_code == 0 and len(list((tmp_path / "out2").iterdir())) == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["image", "{tmp}/missing.png", "-o", "{tmp}/o", "-m", "dcp"], "no such file"),
        (["image", "{tmp}/bad.png", "-o", "{tmp}/o", "-m", "dcp"], "not an image or corrupt"),
        (["image", "{tmp}/ok.png", "-o", "{tmp}/o", "--weights", "{tmp}/bad.png"], "not a readable PyTorch checkpoint"),
        (["image", "{tmp}/ok.png", "-o", "{tmp}/o", "--device", "cuda:7"], "--device cuda:7"),
        (["eval", "--hazy", "{tmp}/none", "--clear", "{tmp}", "-m", "dcp"], "hazy folder not found"),
    ],
)
def test_errors_are_one_clear_line(tmp_path, args, message):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    write_image(tmp_path / "ok.png", np.zeros((8, 8, 3), np.uint8))
    result = CliRunner().invoke(main, [a.format(tmp=tmp_path) for a in args])
    assert result.exit_code != 0
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.output
    assert not (tmp_path / "o").exists()  # no output folder, not even an empty one


def test_image_output_may_name_the_file_for_a_single_image(tmp_path):
    write_image(tmp_path / "a.png", np.full((12, 16, 3), 120, np.uint8))
    write_image(tmp_path / "b.png", np.full((12, 16, 3), 90, np.uint8))
    out = tmp_path / "new" / "clear.jpg"
    result = CliRunner().invoke(main, ["image", str(tmp_path / "a.png"), "-o", str(out), "-m", "dcp"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and read_image(out).shape == (12, 16, 3) and files(out.parent) == ["clear.jpg"]
    assert f"to {out}" in result.output.replace("\n", "")  # (the console wraps long lines)
    # several images and a file name: one line, nothing written
    result = CliRunner().invoke(
        main, ["image", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(tmp_path / "x.png")]
    )
    assert result.exit_code != 0 and "names one image file, but there are 2 images" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "x.png").exists()
    # an existing folder whose name looks like an image stays a folder
    (tmp_path / "odd.png").mkdir()
    result = CliRunner().invoke(main, ["image", str(tmp_path / "a.png"), "-o", str(tmp_path / "odd.png"), "-m", "dcp"])
    assert result.exit_code == 0 and files(tmp_path / "odd.png") == ["a.png"]


def test_image_makes_no_folder_when_no_image_could_be_written_and_keeps_what_was(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    write_image(tmp_path / "a_ok.png", np.full((8, 8, 3), 90, np.uint8))
    out = tmp_path / "new" / "deeper"
    result = CliRunner().invoke(main, ["image", str(tmp_path / "bad.png"), "-o", str(out), "-m", "dcp"])
    assert result.exit_code != 0 and "not an image or corrupt" in result.output
    assert not (tmp_path / "new").exists()  # neither folder it would have made is left behind
    # a later failure keeps the images already written (complete files) and says which input failed
    result = CliRunner().invoke(
        main, ["image", str(tmp_path / "a_ok.png"), str(tmp_path / "bad.png"), "-o", str(out), "-m", "dcp"]
    )
    assert result.exit_code != 0 and "bad.png" in result.output
    assert files(out) == ["a_ok.png"]


def files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_models_lists_registry():
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0
    assert "aecrnet" in result.output and "dcp" in result.output and "none needed" in result.output


def _reject(constant: str):
    raise AssertionError(f"{constant} in the JSON output: not strict JSON")


def test_eval_counts_clear_input_returned_unchanged_and_averages_the_rest(tmp_path):
    """Clear input given as its own reference: a frame the guard rails leave alone comes back identical
    (PSNR inf); eval says how many did and averages the others instead of printing only inf."""
    rng = np.random.default_rng(3)
    clear = rng.integers(60, 256, (48, 64, 3), dtype=np.uint8)
    y, x = np.mgrid[0:48, 0:64]
    clear[(y // 8 + x // 8) % 2 == 0, 0] = 0  # no red in half of the 8 x 8 squares: clear to the dark channel prior
    hazy_looking = (clear * 0.5 + 110).astype(np.uint8)  # no dark pixel anywhere: dehazed
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "a.png", clear)
    write_image(tmp_path / "in" / "b.png", hazy_looking)
    args = ["eval", "--hazy", str(tmp_path / "in"), "--clear", str(tmp_path / "in"), "-m", "dcp", "--work-size", "0.5"]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output, parse_constant=_reject)  # strict JSON: no Infinity for other parsers
    changed = dehaze_image(hazy_looking, "dcp", work_size=0.5)
    assert out["identical"] == 1 and out["psnr"] is None  # the mean over a set with an identical image: inf
    assert out["psnr_of_the_rest"] == pytest.approx(_psnr(changed, hazy_looking), abs=1e-3)
    assert 10 < out["psnr_of_the_rest"] < 40  # the hazy-looking image was dehazed
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0 and "1 of 2 identical to the clear image" in table.output, table.output
