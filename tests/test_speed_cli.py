"""Speed options through the commands: bench variants, run/image/eval with --work-size and keyframes."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
from click.testing import CliRunner
from media import make_clip, pattern_frame, read_video

from streamdehaze.cli import main
from streamdehaze.errors import InputError
from streamdehaze.io.stills import write_image
from streamdehaze.settings import parse_overrides


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_bench_compares_variants_in_one_run():
    result = invoke(
        "bench", "--model", "dcp", "-r", "64x48", "--frames", "8", "--warmup", "2", "--batch", "2",
        "--work-size", "0.5", "--compare", "work-size=full", "--compare", "keyframe-interval=4", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    base, full, keys = r["variants"]
    assert [v["label"] for v in r["variants"]] == ["base", "work-size=full", "keyframe-interval=4"]
    assert (base["network_size"], full["network_size"], keys["network_size"]) == ("32x24", "64x48", "32x24")
    assert keys["overrides"] == {"keyframe_interval": 4} and keys["keyframe_interval"] == 4
    assert base["end_to_end_fps"] == r["end_to_end_fps"] and base["end_to_end_speedup"] == 1.0
    assert full["end_to_end_speedup"] == pytest.approx(full["end_to_end_fps"] / base["end_to_end_fps"])
    # 8 timed frames through the pipeline (after a warm-up run): every one a keyframe at K=1; frames 0, 4 at K=4
    assert base["keyframes"]["keyframes"] == 8 and keys["keyframes"] == {"frames": 8, "keyframes": 2, "scene_cuts": 0}
    assert "32x24 (scale 0.5)" in r["work_size"]


def test_bench_measure_subset_and_human_output():
    result = invoke(
        "bench", "--model", "dcp", "-r", "32x24", "--frames", "2", "--warmup", "0", "--measure", "model,end-to-end",
        "--compare", "work-size=0.5",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for text in ("variants", "work-size=0.5", "16x12"):
        assert text in result.stdout, text
    assert "speed settings on cpu: working size short side 360, the device's default" in result.output
    r = json.loads(invoke("bench", "-m", "dcp", "-r", "32x24", "-n", "2", "--measure", "model", "--json").stdout)
    assert r["model_fps"] > 0 and r["decode_fps"] is None and r["end_to_end_fps"] is None and r["stages"] == {}


@pytest.mark.parametrize(
    "args, message",
    [
        (["bench", "--compare", "speed=fast"], "--compare"),
        (["bench", "--measure", "everything"], "--measure"),
        (["bench", "--work-size", "huge"], "--work-size"),
        (["run", "x.mp4", "-o", "y.mp4", "--work-size", "2.5"], "--work-size"),
        (["image", "x.png", "-o", "out/", "--work-size", "0"], "--work-size"),
    ],
)
def test_bad_speed_options_are_one_line(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(*args, *(["-m", "dcp"] if args[0] != "bench" else []))
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "y.mp4").exists()


def test_run_with_working_size_and_keyframes_keeps_every_frame(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", n_frames=9, size=(64, 48))
    out = tmp_path / "out.mp4"
    result = invoke("run", str(clip), "-o", str(out), "-m", "dcp", "--work-size", "24", "--keyframe-interval", "3")
    assert result.exit_code == 0, result.output
    assert "working size 32x24 (short side 24)" in result.stdout and "keyframe every 3 frames" in result.stdout
    frames_in, frames_out = read_video(clip), read_video(out)
    assert len(frames_out) == 9 and [f[0] for f in frames_out] == [f[0] for f in frames_in]


def test_run_prints_the_device_default(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", n_frames=2, size=(64, 48))
    result = invoke("run", str(clip), "-o", str(tmp_path / "o.mp4"), "-m", "dcp", "--max-frames", "1")
    assert result.exit_code == 0, result.output
    assert "64x48, full resolution (short side 360, the device's default)" in result.stdout


def hazy_pair(folder, size: tuple[int, int], seed: int = 1) -> str:
    """One hazy/clear pair under ``folder`` (``hazy/1_1.png``, ``clear/1.png``); returns the hazy path."""
    (folder / "hazy").mkdir(), (folder / "clear").mkdir()
    clear = pattern_frame(seed, size)
    write_image(folder / "clear" / "1.png", clear)
    write_image(folder / "hazy" / "1_1.png", (0.6 * clear + 90).astype(np.uint8))
    return str(folder / "hazy" / "1_1.png")


def eval_json(folder, *options: str) -> dict:
    """``eval --json`` of DCP on :func:`hazy_pair`'s folders with ``options``."""
    result = invoke(
        "eval", "--hazy", str(folder / "hazy"), "--clear", str(folder / "clear"), "-m", "dcp", *options, "--json"
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_eval_and_image_at_a_working_size(tmp_path):
    hazy = hazy_pair(tmp_path, (64, 48))
    scores = {ws: eval_json(tmp_path, "--work-size", ws) for ws in ("full", "0.5")}
    assert scores["full"]["work_size"] == "full resolution" and scores["0.5"]["work_size"] == "scale 0.5"
    # (DCP's 15-pixel patches see a different image at 32x24: the scores differ, by how much is not the point)
    assert scores["full"]["psnr"] != scores["0.5"]["psnr"] and scores["full"]["n"] == scores["0.5"]["n"] == 1
    result = invoke("image", hazy, "-o", str(tmp_path / "o"), "-m", "dcp", "--work-size", "0.5")
    assert result.exit_code == 0 and "scale 0.5" in result.stdout
    with av.open(str(tmp_path / "o" / "1_1.png")) as c:
        assert next(c.decode(video=0)).width == 64


def test_run_uses_the_working_size_the_weights_name(tmp_path):
    """Weights exported from a --work-side run carry their size: run's auto uses it, full overrides."""
    import torch

    from streamdehaze.nets.aecrnet import AECRNet
    from streamdehaze.weights import save_weights

    torch.manual_seed(0)
    weights = tmp_path / "w.pt"
    save_weights(weights, AECRNet(ngf=4), "aecrnet", meta={"work_side": 24})
    clip = make_clip(tmp_path / "in.mp4", n_frames=3)
    res = invoke("run", str(clip), "-o", str(tmp_path / "out.mp4"), "--weights", str(weights), "--batch", "1")
    assert res.exit_code == 0, res.output
    assert "32x24 (short side 24, the model's default)" in res.output
    assert len(read_video(tmp_path / "out.mp4")) == 3
    res = invoke("run", str(clip), "-o", str(tmp_path / "full.mp4"), "--weights", str(weights), "--work-size", "full")
    assert res.exit_code == 0 and "64x48, full resolution" in res.output


def test_transfer_fit_reaches_eval_image_and_bench_compare(tmp_path):
    hazy = hazy_pair(tmp_path, (96, 64), seed=2)
    scores = {fit: eval_json(tmp_path, "--work-size", "0.5", "--transfer-fit", fit) for fit in ("local", "wide")}
    assert scores["local"]["transfer_fit"] == "local" and scores["wide"]["transfer_fit"] == "wide"
    assert scores["local"]["psnr"] != scores["wide"]["psnr"]
    result = invoke(
        "image", hazy, "-o", str(tmp_path / "o"), "-m", "dcp", "--work-size", "0.5", "--transfer-fit", "wide"
    )
    assert result.exit_code == 0 and "wide transfer fit" in result.stdout
    assert parse_overrides("transfer-fit=wide") == {"transfer_fit": "wide"}
    with pytest.raises(InputError, match="transfer-fit"):
        parse_overrides("transfer-fit=narrow")
