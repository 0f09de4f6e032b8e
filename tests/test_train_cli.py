"""``streamdehaze train`` (fit by default, config files, bad inputs) and ``streamdehaze train export``."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from test_train_data import make_pairs, one_thread  # noqa: F401 (autouse fixture)

from streamdehaze.cli import main
from streamdehaze.nets.aecrnet import AECRNet
from streamdehaze.nets.registry import load_model, read_card
from streamdehaze.train.checkpoint import read_checkpoint
from streamdehaze.weights import read_weights, sha256

TINY = ["--ngf", "4", "--crop", "16", "--batch-size", "2", "--cr-weight", "0", "--workers", "0", "--log-every", "1"]


def run(*args):
    return CliRunner().invoke(main, ["train", *map(str, args)], catch_exceptions=False)


@pytest.fixture
def pairs(tmp_path):
    return make_pairs(tmp_path / "pairs", n=3, h=24, w=28)


@pytest.fixture
def no_vgg(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))


def test_help_lists_fit_and_export():
    res = run("--help")
    assert res.exit_code == 0 and "fit" in res.output and "export" in res.output and "default" in res.output
    for opt in ("--data", "--steps", "--lr", "--resume", "--config"):  # `train --help` shows what `train` takes
        assert opt in res.output, opt
    res = run("fit", "--help")
    assert res.exit_code == 0
    for opt in ("--data", "--config", "--resume", "--cr-encoder", "--vgg-weights", "--clip-grad", "--val"):
        assert opt in res.output


def test_fit_is_the_default_and_prints_the_config(tmp_path, pairs):
    res = run("--data", pairs, "--out", tmp_path / "run", "--steps", 2, *TINY)
    assert res.exit_code == 0, res.output
    assert "training configuration" in res.output and "batch_size" in res.output
    assert "step 2: wrote" in res.output
    ckpt = read_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["step"] == 2 and ckpt["config"]["ngf"] == 4
    assert json.loads((tmp_path / "run" / "config.json").read_text())["steps"] == 2


@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_config_file_with_option_override(tmp_path, pairs, fmt):
    settings = {"data": [str(pairs)], "ngf": 4, "crop": 16, "batch_size": 2, "steps": 5, "cr_weight": 0.0,
                "workers": 0, "out": str(tmp_path / "run"), "betas": [0.8, 0.99]}  # fmt: skip
    path = tmp_path / f"train.{fmt}"
    if fmt == "json":
        path.write_text(json.dumps(settings))
    else:
        lines = [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
        path.write_text("\n".join(lines) + "\n")
    res = run("fit", "--config", path, "--steps", 2, "-q")
    assert res.exit_code == 0, res.output
    cfg = read_checkpoint(tmp_path / "run" / "last.pt")["config"]
    assert cfg["steps"] == 2 and cfg["ngf"] == 4 and cfg["betas"] == [0.8, 0.99]


def _error(res):
    assert res.exit_code != 0
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) >= 1 and lines[-1].startswith("error:"), res.output
    return lines[-1]


def test_bad_inputs_fail_before_training(tmp_path, pairs, no_vgg):
    out = tmp_path / "run"
    (tmp_path / "empty" / "hazy").mkdir(parents=True)
    (tmp_path / "empty" / "clear").mkdir()
    assert "no images" in _error(run("--data", tmp_path / "empty", "--out", out, *TINY))
    (pairs / "hazy" / "0000_0.8_0.2.png").rename(pairs / "hazy" / "9999_1.png")
    assert "no clear partner" in _error(run("--data", pairs, "--out", out, *TINY))
    (pairs / "hazy" / "9999_1.png").rename(pairs / "hazy" / "0000_0.8_0.2.png")
    msg = _error(run("--data", pairs, "--out", out, *TINY[:-6], "--workers", "0"))  # CR on, no VGG file
    assert "VGG19" in msg and "--cr-encoder random" in msg and "--vgg-weights" in msg
    msg = _error(run("--data", pairs, "--out", out, "--cr-weight", "0.1", "--vgg-weights", tmp_path / "v.pth"))
    assert "does not exist" in msg
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 100)
    assert "not a readable checkpoint" in _error(run("--resume", bad, "--out", out))
    assert "--teacher" in _error(run("--data", pairs, "--out", out, *TINY, "--teacher", tmp_path / "none.pt"))
    assert "--teacher" in _error(run("--data", pairs, "--out", out, *TINY, "--teacher", bad))
    assert "expected a probability" in _error(run("--data", pairs, "--out", out, *TINY, "--rehaze", "1.5"))
    assert "set rehaze too" in _error(run("--data", pairs, "--out", out, *TINY, "--recolour", "0.5"))
    for option, value, choices in (("--augment", "spin", "'dihedral', 'mirror'"), ("--rec-loss", "l3", "'l1', 'l2'")):
        res = run("--data", pairs, "--out", out, *TINY, option, value)  # click's usage error: exit code 2
        assert res.exit_code == 2 and f"'{value}' is not one of {choices}" in res.output, res.output
    spin = _toml(tmp_path, 'augment = "spin"')
    assert "expected one of dihedral, mirror" in _error(run("--data", pairs, "--out", out, "--config", spin))
    assert "unknown config key" in _error(run("--config", _toml(tmp_path, "stepz = 3")))
    assert "not a valid TOML" in _error(run("--config", _toml(tmp_path, "steps = ")))
    assert not out.exists()


def _toml(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text + "\n")
    return p


def test_stop_resume_and_changed_settings(tmp_path, pairs):
    out = tmp_path / "run"
    assert run("--data", f"{pairs}@2", "--out", out, "--steps", 4, "--stop-after", 2, "-q", *TINY).exit_code == 0
    assert read_checkpoint(out / "last.pt")["step"] == 2
    assert "lr = 0.5 differs" in _error(run("--resume", out, "--lr", "0.5"))
    res = run("--resume", out, "--log-every", 2, "-q")
    assert res.exit_code == 0, res.output
    ckpt = read_checkpoint(out / "last.pt")
    assert ckpt["step"] == 4 and ckpt["config"]["log_every"] == 2


def test_export_writes_weights_and_card(tmp_path, pairs):
    out = tmp_path / "run"
    args = ["--data", f"{pairs}@2", "--out", out, "--steps", 2, "--val", pairs, "--val-every", 2, "-q", *TINY]
    assert run(*args).exit_code == 0
    target = tmp_path / "models" / "tiny.pt"
    target.parent.mkdir()
    res = run("export", out / "best.pt", "--output", target, "--metric", "sots_indoor_psnr=21.5", "--metric", "x=y")
    assert res.exit_code == 0, res.output
    card = (tmp_path / "models" / "tiny.md").read_text()
    assert f"sha256: {sha256(target)}" in card and read_card(target)["sha256"] == sha256(target)
    for text in ("ngf 4", "`../pairs`", "2 of 2", "hardware", "wall time", "CR encoder", "L1 only", "21.5", "PSNR"):
        assert text in card, text
    assert str(tmp_path) not in card  # paths relative to the card's folder (no repository here)
    wf = read_weights(target)
    assert wf.ngf == 4 and wf.meta["steps"] == 2 and wf.meta["metrics"]["sots_indoor_psnr"] == 21.5
    # the exported file is the checkpoint's network
    net = AECRNet(ngf=4)
    net.load_state_dict(read_checkpoint(out / "best.pt")["model"])
    x = torch.rand(1, 3, 16, 20)
    with torch.no_grad():
        ref = net.eval()(x).clamp(0, 1)
    torch.testing.assert_close(load_model("aecrnet", weights=target, device="cpu")(x), ref, atol=1e-5, rtol=1e-4)
    half = tmp_path / "models" / "half.pt"
    assert run("export", out, "--output", half, "--half").exit_code == 0
    assert read_weights(half).state_dict["up3.1.weight"].dtype == torch.float16
    assert "float16" in half.with_suffix(".md").read_text()
    assert "expected NAME=VALUE" in _error(run("export", out, "--output", half, "--metric", "oops"))
    assert "not a training checkpoint" in _error(run("export", target, "--output", tmp_path / "models" / "t2.pt"))


def test_init_work_side_and_model_working_size(tmp_path, pairs):
    """--init starts from given weights, --work-side trains at a working size, and the exported
    file carries that size so --work-size auto/model run the network there."""
    from streamdehaze.work_size import FULL, parse_work_size

    start = AECRNet(ngf=4)
    torch.nn.init.constant_(start.up3[1].bias, 0.25)
    init = tmp_path / "init.pt"
    torch.save(start.state_dict(), init)
    out = tmp_path / "run"
    args = ["--data", pairs, "--out", out, "--steps", 1, "--lr", "1e-12", "--init", init, "-q", *TINY]
    assert "does not fit" in _error(run(*args, "--ngf", 8))  # the last --ngf wins
    assert "expected crop (16) <= LO <= HI" in _error(run(*args, "--work-side", "12:20"))
    assert "--val-work-size 'tiny'" in _error(run(*args, "--val-work-size", "tiny"))
    assert run(*args, "--work-side", "16:32").exit_code == 0
    got = read_checkpoint(out / "last.pt")["model"]["up3.1.bias"]
    torch.testing.assert_close(got, torch.full_like(got, 0.25))  # lr ~0: still the initial weights
    target = tmp_path / "m.pt"
    assert run("export", out, "--output", target).exit_code == 0
    assert read_weights(target).meta["work_side"] == 24  # middle of 16:32
    assert "short side 24 px" in target.with_suffix(".md").read_text()
    model = load_model("aecrnet", weights=target, device="cpu")
    for text in ("auto", "model"):
        work = parse_work_size(text, "cpu", model)
        assert (work.mode, work.value, work.default) == ("short", 24, "model")
    assert parse_work_size("auto", "cpu", load_model("dcp", device="cpu")).value == 360  # no size of its own
    assert parse_work_size("model", "cpu", load_model("dcp", device="cpu")) == FULL


def test_export_averages_checkpoints(tmp_path, pairs):
    """--average: the weight file holds the mean of the checkpoints' weights, and the card names them."""
    out = tmp_path / "run"
    base = ["--data", pairs, "-q", "--seed", "3", "--lr", "1e-2", *TINY]
    assert run(*base, "--out", tmp_path / "short", "--steps", 1).exit_code == 0
    first = tmp_path / "first.pt"
    (tmp_path / "short" / "last.pt").rename(first)
    assert run(*base, "--out", out, "--steps", 2).exit_code == 0  # a different point of training
    a, b = read_checkpoint(first)["model"], read_checkpoint(out / "last.pt")["model"]
    assert not torch.equal(a["up3.1.weight"], b["up3.1.weight"])
    target = tmp_path / "avg.pt"
    assert run("export", out, "--average", first, "--output", target).exit_code == 0
    state = read_weights(target).state_dict
    for key in ("up3.1.weight", "block.conv1.weight", "deconv.running_deconv"):
        torch.testing.assert_close(state[key], (a[key] + b[key]) / 2)
    card = target.with_suffix(".md").read_text()
    assert "weight average" in card and "`first.pt` (step 1)" in card and "(step 2)" in card
    wide = tmp_path / "wide"
    assert run("--data", pairs, "--out", wide, "-q", *TINY, "--steps", 1, "--ngf", 8).exit_code == 0
    assert "not the same network" in _error(run("export", out, "--average", wide / "last.pt", "--output", target))


def test_card_paths_are_relative_to_the_repository(tmp_path):
    from streamdehaze.train.export import _data_text, relative_path, repository_root

    repo = tmp_path / "work" / "main"
    (repo / "models").mkdir(parents=True)
    (repo / ".git").write_text("gitdir: elsewhere\n")  # a worktree's .git is a file
    assert repository_root(repo / "models" / "x.pt") == repo and repository_root(tmp_path / "x.pt") is None
    data = tmp_path / "work" / "shared" / "data"
    specs = [f"{data}/sots-indoor/train@6", f"synth:{data}/clear", "relative/given@2"]
    assert _data_text(specs[:2], repo) == "in `../shared/data`: `sots-indoor/train@6`; `synth:clear`"
    assert "`relative/given@2`" in _data_text(specs, repo) and str(tmp_path) not in _data_text(specs, repo)
    assert relative_path(f"{data}/sots-indoor/dev", repo) == "../shared/data/sots-indoor/dev"
