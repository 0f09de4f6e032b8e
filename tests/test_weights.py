"""Weight files: both formats load; wrong files fail with a ModelError that says why."""

from __future__ import annotations

import pytest
import torch

from streamdehaze.errors import ModelError
from streamdehaze.nets.aecrnet import AECRNet
from streamdehaze.nets.registry import load_model
from streamdehaze.weights import read_weights, save_weights, sha256


def test_official_formats_load_identically(tmp_path, official_checkpoint):
    path, sd = official_checkpoint
    bare = tmp_path / "bare.pth"
    torch.save(sd, bare)
    x = torch.rand(1, 3, 16, 20)
    with torch.no_grad():
        outs = [load_model("aecrnet", weights=p, device="cpu")(x) for p in (path, bare)]
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    wf = read_weights(path)
    assert wf.official and wf.ngf == 64 and "down1.1.weight" in wf.state_dict


def test_own_format_roundtrip_with_metadata(tmp_path):
    net = AECRNet(ngf=8)
    digest = save_weights(tmp_path / "m.pt", net, "aecrnet", meta={"steps": 5}, half=True)
    assert digest == sha256(tmp_path / "m.pt")
    wf = read_weights(tmp_path / "m.pt")
    assert (wf.arch, wf.ngf, wf.meta["steps"], wf.official) == ("aecrnet", 8, 5, False)
    model = load_model("aecrnet", weights=tmp_path / "m.pt", device="cpu")
    assert model.info["ngf"] == 8 and model.info["steps"] == 5
    assert not list(tmp_path.glob("*.part"))


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        read_weights(tmp_path / "nope.pk")


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "junk.pk").write_bytes(b"this is not a checkpoint")
    with pytest.raises(ModelError, match="not a readable PyTorch checkpoint"):
        read_weights(tmp_path / "junk.pk")


def test_truncated_checkpoint(tmp_path, official_checkpoint):
    path, _ = official_checkpoint
    data = path.read_bytes()
    (tmp_path / "cut.pk").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="not a readable"):
        load_model("aecrnet", weights=tmp_path / "cut.pk", device="cpu")


def test_missing_and_unexpected_keys_are_named(tmp_path, official_checkpoint):
    _, sd = official_checkpoint
    sd = dict(sd)
    del sd["mix1.w"]
    sd["extra.weight"] = torch.zeros(1)
    torch.save({"model": sd}, tmp_path / "bad.pk")
    with pytest.raises(ModelError, match=r"missing keys \['mix1.w'\].*unexpected keys \['extra.weight'\]"):
        load_model("aecrnet", weights=tmp_path / "bad.pk", device="cpu")


def test_shape_mismatch_is_named(tmp_path, official_checkpoint):
    _, sd = official_checkpoint
    sd = dict(sd)
    sd["block.conv1.weight"] = torch.zeros(256, 256, 5, 5)
    torch.save({"model": sd}, tmp_path / "bad.pk")
    with pytest.raises(
        ModelError, match=r"block.conv1.weight has shape \(256, 256, 5, 5\), expected \(256, 256, 3, 3\)"
    ):
        load_model("aecrnet", weights=tmp_path / "bad.pk", device="cpu")


def test_non_dict_and_empty(tmp_path):
    torch.save(torch.zeros(3), tmp_path / "t.pt")
    with pytest.raises(ModelError, match="expected a dict"):
        read_weights(tmp_path / "t.pt")
    torch.save({"model": {}}, tmp_path / "e.pt")
    with pytest.raises(ModelError, match="no state dict"):
        read_weights(tmp_path / "e.pt")


def test_missing_default_weights_says_where_it_looked(monkeypatch, tmp_path):
    import streamdehaze.nets.registry as registry

    monkeypatch.setattr(registry, "find_shipped", lambda name: None)
    with pytest.raises(ModelError, match="aecrnet.pt not found in .*--weights PATH.*--model dcp"):
        load_model("aecrnet", device="cpu")


def test_dcp_takes_no_weights(tmp_path):
    with pytest.raises(ModelError, match="takes no weights"):
        load_model("dcp", weights=tmp_path / "x.pt")


def test_a_training_checkpoint_runs_at_the_working_size_it_trained_at(tmp_path):
    """``--weights runs/x/last.pt`` (a checkpoint, not an exported file): ``--work-size auto``/``model``
    take the trained short side, as the exported file would, not the full resolution."""
    from streamdehaze.work_size import model_work_side

    net = AECRNet(ngf=8)
    ckpt = {"format": "streamdehaze-train", "model": net.state_dict(), "config": {"work_side": [160, 176]}}
    torch.save(ckpt, tmp_path / "last.pt")
    assert read_weights(tmp_path / "last.pt").meta["work_side"] == 168
    assert model_work_side(load_model("aecrnet", weights=tmp_path / "last.pt", device="cpu")) == 168
    ckpt["config"]["work_side"] = [0, 0]  # trained at native size: no working size
    torch.save(ckpt, tmp_path / "native.pt")
    assert "work_side" not in read_weights(tmp_path / "native.pt").meta
