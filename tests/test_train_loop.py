"""The training loop: overfitting a tiny set, exact resume (also after Ctrl-C), validation, bad checkpoints."""

from __future__ import annotations

import csv
import hashlib
import os
import signal

import numpy as np
import pytest
import torch
from test_train_data import make_pairs, one_thread  # noqa: F401 (autouse fixture)

from streamdehaze.errors import TrainError
from streamdehaze.train import TrainConfig, train
from streamdehaze.train.checkpoint import read_checkpoint
from streamdehaze.train.loop import Cosine


def tiny(tmp_path, name="run", **kw) -> TrainConfig:
    base = dict(
        data=[f"{tmp_path / 'pairs'}@4"], out=str(tmp_path / name), ngf=4, crop=16, batch_size=4, steps=6,
        lr=2e-3, cr_weight=0.0, workers=0, log_every=1, ckpt_every=100,
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture
def pairs(tmp_path):
    return make_pairs(tmp_path / "pairs", n=3, h=24, w=28)


def _weights(path):
    return read_checkpoint(path)["model"]


def _assert_same(a, b, tol=1e-6):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].double(), b[k].double(), rtol=0, atol=tol), k


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_overfit_drives_l1_down(tmp_path):
    root = tmp_path / "pairs"
    rng = np.random.default_rng(0)
    import cv2

    for i in range(2):  # smooth images with a uniform haze: learnable in a few steps
        clear = cv2.resize(rng.random((4, 4, 3)).astype(np.float32), (24, 24), interpolation=cv2.INTER_CUBIC)
        clear = clear.clip(0, 1)
        for sub, img in (("clear", clear), ("hazy", clear * 0.5 + 0.45)):
            (root / sub).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / sub / f"{i}.png"), (img * 255).round().astype(np.uint8))
    cfg = tiny(tmp_path, batch_size=4, data=[f"{root}@2"], steps=20, lr=5e-3, log_every=5)
    result = train(cfg, progress=False)
    rows = _rows(tmp_path / "run" / "log.csv")
    first, last = float(rows[0]["l1"]), float(rows[-1]["l1"])
    assert result.step == 20 and len(rows) == 4
    assert last < 0.5 * first, (first, last)


def test_fit_loss_scores_the_transferred_output(tmp_path, pairs):
    from streamdehaze.pipeline.transfer import fit_coefficients
    from streamdehaze.train.export import export_checkpoint

    for fit in (False, True):
        train(tiny(tmp_path, name=f"fit{fit:d}", fit_loss=fit, steps=3, log_every=1), progress=False)
    raw, fitted = (_rows(tmp_path / f"fit{i}" / "log.csv") for i in (0, 1))
    # the same weights and batch at step 1, another loss: the one of the output after the fit (a random
    # tiny network gives a nearly flat output, which the fit keeps nearly as it is: a small difference)
    assert float(raw[0]["l1"]) != pytest.approx(float(fitted[0]["l1"]), rel=1e-6)
    weights, card, _ = export_checkpoint(tmp_path / "fit1" / "last.pt", tmp_path / "fit1.pt")
    assert torch.load(weights, weights_only=True)["meta"]["loss"]["fit"] is True and "--fit-loss" in card.read_text()
    # the fit trains the network through it: gradients reach the weights
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    a, b = fit_coefficients(x.detach(), x * 0.8 + 0.1)
    (a * x.detach() + b).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def through_fit(hazy: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """What the working-size transfer's fit makes of a network's output ``out`` for ``hazy``."""
    from streamdehaze.ops.transfer_fit import fit_coefficients

    a, b = fit_coefficients(hazy, out)
    return a * hazy + b


def test_teacher_outputs_are_the_targets(tmp_path, pairs):
    """``--teacher``: the loss is taken against what the teacher makes of the batch (at inference), not
    against the clear images, and the card says so."""
    import copy

    from streamdehaze.nets.registry import load_model
    from streamdehaze.train.export import export_checkpoint
    from streamdehaze.train.loop import Trainer

    train(tiny(tmp_path, name="wide", ngf=6, steps=2), progress=False)
    teacher_file, _, _ = export_checkpoint(tmp_path / "wide" / "last.pt", tmp_path / "teacher.pt")
    trainer = Trainer(tiny(tmp_path, name="narrow", teacher=str(teacher_file)), progress=False)
    hazy = torch.rand(4, 3, 16, 16)
    batch = {"hazy": hazy, "clear": torch.zeros_like(hazy)}  # the clear images must not count
    with torch.no_grad():
        expected = (copy.deepcopy(trainer.net)(hazy) - load_model("aecrnet", teacher_file, "cpu")(hazy)).abs().mean()
    loss, l1, *_ = trainer.train_step(batch)
    assert float(l1) == pytest.approx(float(expected), rel=1e-5)
    assert float(l1) != pytest.approx(float(trainer.net(hazy).detach().abs().mean()), rel=1e-2)
    # with --fit-loss both sides go through the transfer's fit: the student's output and the teacher's
    fitted = Trainer(tiny(tmp_path, name="narrow_fit", teacher=str(teacher_file), fit_loss=True), progress=False)
    with torch.no_grad():
        student, teacher = copy.deepcopy(fitted.net)(hazy), load_model("aecrnet", teacher_file, "cpu")(hazy)
        expected = (through_fit(hazy, student) - through_fit(hazy, teacher)).abs().mean()
    _, l1, *_ = fitted.train_step(batch)
    assert float(l1) == pytest.approx(float(expected), rel=1e-5)
    train(tiny(tmp_path, name="student_fit", teacher=str(teacher_file), fit_loss=True, steps=1), progress=False)
    _, card, _ = export_checkpoint(tmp_path / "student_fit" / "last.pt", tmp_path / "student_fit.pt")
    assert "`teacher.pt`'s outputs on the same inputs through the same fit" in card.read_text()
    train(tiny(tmp_path, name="student", teacher=str(teacher_file), steps=2), progress=False)
    teacher_digest = hashlib.sha256(teacher_file.read_bytes()).hexdigest()
    teacher_file.write_bytes(b"replaced after training")  # the card names the teacher the run learnt from
    _, card, _ = export_checkpoint(tmp_path / "student" / "last.pt", tmp_path / "models" / "student.pt")
    text = card.read_text()
    assert "`teacher.pt`'s outputs on the same inputs" in text
    # the teacher's checksum and a link to its card (its own figures), relative to the student's card
    assert f"sha256 `{teacher_digest[:16]}…`" in text and "its card: [teacher.md](../teacher.md)" in text


@pytest.mark.parametrize("cr", [0.0, 0.1])
def test_resume_is_exact(tmp_path, pairs, cr):
    kw = dict(cr_weight=cr, cr_encoder="random", accum=2, steps=6)
    full = train(tiny(tmp_path, "full", **kw), progress=False)
    part = train(tiny(tmp_path, "part", **kw), progress=False, stop_after=4)  # 3 steps per epoch: mid-epoch
    assert part.step == 4 and not part.interrupted
    assert read_checkpoint(part.last)["step"] == 4
    resumed = train(tiny(tmp_path, "part", **kw), resume=part.last, progress=False)
    assert resumed.step == 6
    _assert_same(_weights(full.last), _weights(resumed.last))
    ref, got = read_checkpoint(full.last), read_checkpoint(resumed.last)
    for group_ref, group_got in zip(
        ref["optimizer"]["state"].values(), got["optimizer"]["state"].values(), strict=True
    ):
        torch.testing.assert_close(group_ref["exp_avg_sq"], group_got["exp_avg_sq"], rtol=0, atol=1e-12)
    assert [r["step"] for r in _rows(tmp_path / "part" / "log.csv")] == [str(i) for i in range(1, 7)]
    assert got["encoder"]["kind"] == ("random" if cr else "none")


def test_ctrl_c_checkpoints_and_resumes_exactly(tmp_path, pairs):
    # 3 samples, batch 2 + a repeat factor: the stop falls mid-epoch, so the sampler must skip correctly
    kw = dict(data=[f"{pairs}@3"], batch_size=2, steps=7)
    full = train(tiny(tmp_path, "full", **kw), progress=False)

    def interrupt(trainer):
        if trainer.step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does

    before = signal.getsignal(signal.SIGINT)
    part = train(tiny(tmp_path, "part", **kw), progress=False, on_step=interrupt)
    assert signal.getsignal(signal.SIGINT) is before
    assert part.interrupted and part.step == 3 and read_checkpoint(part.last)["step"] == 3
    resumed = train(tiny(tmp_path, "part", **kw), resume=tmp_path / "part", progress=False)
    assert resumed.step == 7 and not resumed.interrupted
    _assert_same(_weights(full.last), _weights(resumed.last))


def test_validation_keeps_the_best_checkpoint(tmp_path, pairs):
    cfg = tiny(tmp_path, val=str(pairs), val_every=2, steps=4, ckpt_every=2)
    result = train(cfg, progress=False)
    ckpt = read_checkpoint(result.best)
    assert ckpt["best"]["step"] in (2, 4) and ckpt["best"]["psnr"] == pytest.approx(result.best_psnr)
    assert 0 < result.best_psnr < 100
    vals = [r for r in _rows(tmp_path / "run" / "log.csv") if r["val_psnr"]]
    assert [r["step"] for r in vals] == ["2", "4"] and all(0 < float(r["val_ssim"]) <= 1 for r in vals)
    assert ckpt["config"]["val"] == str(pairs) and ckpt["hardware"].startswith("1×")


def test_bad_checkpoints_fail_before_training(tmp_path, pairs):
    cfg = tiny(tmp_path)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(os.urandom(256))
    with pytest.raises(TrainError, match="not a readable checkpoint"):
        train(cfg, resume=corrupt, progress=False)
    good = train(tiny(tmp_path, "a", steps=2), progress=False).last
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(TrainError, match="corrupt or truncated"):
        train(cfg, resume=truncated, progress=False)
    foreign = tmp_path / "weights.pt"
    torch.save({"model": {}}, foreign)
    with pytest.raises(TrainError, match="not a training checkpoint"):
        train(cfg, resume=foreign, progress=False)
    with pytest.raises(TrainError, match="not found"):
        train(cfg, resume=tmp_path / "missing.pt", progress=False)
    with pytest.raises(TrainError, match="lr = 0.5 differs"):
        train(tiny(tmp_path, "a", steps=2, lr=0.5), resume=good, progress=False)
    assert not (tmp_path / "run").exists()  # nothing was started


def test_cosine_schedule():
    c = Cosine(100, warmup=10)
    assert c(0) == pytest.approx(0.1) and c(9) == pytest.approx(1.0)
    assert c(10) == pytest.approx(1.0) and c(55) == pytest.approx(0.5) and c(100) == pytest.approx(0.0)
    assert Cosine(4)(2) == pytest.approx(0.5)


def test_config_checks():
    with pytest.raises(TrainError, match="no training data"):
        TrainConfig().validate()
    with pytest.raises(TrainError, match="multiple of 4"):
        TrainConfig(data=["x"], crop=30).validate()
    with pytest.raises(TrainError, match="not divisible"):
        TrainConfig(data=["x"], batch_size=3, accum=2).validate()
    with pytest.raises(TrainError, match="drop one"):
        TrainConfig(data=["x"], cr_encoder="random", vgg_weights="v.pth").validate()
    with pytest.raises(TrainError, match="unknown config key"):
        TrainConfig.from_dict({"data": ["x"], "bach_size": 2})
    with pytest.raises(TrainError, match="expected an integer"):
        TrainConfig.from_dict({"steps": 1.5})


@pytest.mark.data
def test_short_run_on_real_pairs(tmp_path):
    from conftest import DATA

    cfg = TrainConfig(
        data=[str(DATA / "sots-indoor" / "train"), f"synth:{DATA / 'sots-outdoor' / 'dev' / 'clear'}@0.1"],
        val=str(DATA / "sots-indoor" / "dev"), val_limit=2, val_crop=96, val_every=2, out=str(tmp_path / "run"),
        ngf=8, crop=64, batch_size=2, steps=2, cr_encoder="random", workers=0,
    )  # fmt: skip
    result = train(cfg, progress=False)
    assert result.step == 2 and 5 < result.best_psnr < 40
