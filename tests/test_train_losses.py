"""The L1 + CR loss: hand-computed values, gradient checks, the VGG19 encoder and its sources."""

from __future__ import annotations

import pytest
import torch
from test_train_data import one_thread  # noqa: F401 (autouse fixture)
from torch import nn

from streamdehaze.errors import TrainError
from streamdehaze.train.losses import (
    CR_WEIGHTS,
    ContrastiveLoss,
    DehazeLoss,
    VGGFeatures,
    build_encoder,
    colour_loss,
    default_vgg_path,
    shadow_loss,
)


class Scaled(nn.Module):
    """A stand-in encoder with hand-computable features: ``[x, 2·x]``."""

    def forward(self, x):
        return [x, 2 * x]


class TinyPyramid(nn.Module):
    """A small conv/ReLU/max-pool encoder (VGG-like) for full float64 gradient checks."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.c1, self.c2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 6, 3, padding=1)
        with torch.no_grad():
            for c in (self.c1, self.c2):
                c.weight.copy_(torch.randn(c.weight.shape, generator=g))
                c.bias.copy_(torch.randn(c.bias.shape, generator=g) * 0.1)
        self.double().requires_grad_(False)

    def forward(self, x):
        a = torch.relu(self.c1(x))
        return [a, torch.relu(self.c2(nn.functional.max_pool2d(a, 2)))]


def test_cr_matches_hand_computed_values():
    out = torch.tensor([[[[0.5, 1.0]]]]).expand(1, 3, 1, 2)  # every channel [0.5, 1.0]
    pos = torch.tensor([[[[0.25, 1.0]]]]).expand(1, 3, 1, 2)
    neg = torch.tensor([[[[1.0, 0.0]]]]).expand(1, 3, 1, 2)
    cr = ContrastiveLoss(Scaled(), weights=(1.0, 0.5), eps=0.0)
    # layer 1: d_ap = mean(|0.25|, 0) = 0.125, d_an = mean(0.5, 1.0) = 0.75 → 1/6
    # layer 2 (features doubled): both distances double → the same ratio 1/6, weight 0.5
    expected = 1.0 * (0.125 / 0.75) + 0.5 * (0.25 / 1.5)
    assert cr(out, pos, neg).item() == pytest.approx(expected, rel=1e-6)
    assert [t.item() for t in cr.last_terms] == pytest.approx([1 / 6, 1 / 6], rel=1e-6)


def test_cr_extra_negatives_average_the_batch_hazy_images():
    def batch(v0, v1):
        return torch.stack([torch.full((3, 1, 1), v0), torch.full((3, 1, 1), v1)])

    out, pos, neg = batch(0.0, 1.0), batch(0.1, 0.9), batch(0.2, 0.6)
    # d_ap = mean(0.1, 0.1) = 0.1; own hazy: mean(0.2, 0.4) = 0.3;
    # the other image's hazy: mean(|0 - 0.6|, |1 - 0.2|) = 0.7 → d_an = (0.3 + 0.7) / 2 = 0.5
    one = ContrastiveLoss(Scaled(), weights=(1.0, 0.0), eps=0.0)
    two = ContrastiveLoss(Scaled(), weights=(1.0, 0.0), extra_negatives=1, eps=0.0)
    assert one(out, pos, neg).item() == pytest.approx(0.1 / 0.3, rel=1e-6)
    assert two(out, pos, neg).item() == pytest.approx(0.1 / 0.5, rel=1e-6)
    with pytest.raises(TrainError):
        ContrastiveLoss(Scaled(), extra_negatives=2)(out, pos, neg)


def test_dehaze_loss_is_rec_plus_lambda_cr():
    torch.manual_seed(0)
    out, clear, hazy = (torch.rand(2, 3, 4, 4) for _ in range(3))
    cr = ContrastiveLoss(Scaled(), weights=(1.0, 0.5))
    terms = DehazeLoss(cr, cr_weight=0.1)(out, clear, hazy)
    l1 = (out - clear).abs().mean()
    d_ap, d_an = l1, (out - hazy).abs().mean()
    cr_val = 1.0 * d_ap / (d_an + 1e-7) + 0.5 * (2 * d_ap) / (2 * d_an + 1e-7)
    assert terms.l1.item() == pytest.approx(l1.item(), rel=1e-6)
    assert terms.cr.item() == pytest.approx(cr_val.item(), rel=1e-6)
    assert terms.total.item() == pytest.approx((l1 + 0.1 * cr_val).item(), rel=1e-6)
    off = DehazeLoss(cr, cr_weight=0.0)(out, clear, hazy)
    assert off.total.item() == pytest.approx(l1.item()) and off.cr.item() == 0.0
    l2 = DehazeLoss(cr, cr_weight=0.1, rec="l2")(out, clear, hazy)
    assert l2.total.item() == pytest.approx(((out - clear) ** 2).mean().item() + 0.1 * cr_val.item(), rel=1e-6)
    assert l2.l1.item() == pytest.approx(l1.item(), rel=1e-6)  # the logged term stays the L1 distance


def test_cr_gradcheck_float64_full():
    torch.manual_seed(0)
    out = torch.rand(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    pos, neg = torch.rand(2, 3, 4, 4, dtype=torch.float64), torch.rand(2, 3, 4, 4, dtype=torch.float64)
    cr = ContrastiveLoss(TinyPyramid(), weights=(0.5, 1.0), extra_negatives=1)
    assert torch.autograd.gradcheck(lambda o: cr(o, pos, neg), (out,), eps=1e-6, atol=1e-6)
    loss = DehazeLoss(cr, 0.1)
    assert torch.autograd.gradcheck(lambda o: loss(o, pos, neg).total, (out,), eps=1e-6, atol=1e-6)


def test_cr_gradcheck_float64_vgg19():
    enc, _ = build_encoder("random")
    cr = ContrastiveLoss(enc.double())
    torch.manual_seed(0)
    out = torch.rand(1, 3, 16, 16, dtype=torch.float64, requires_grad=True)
    pos, neg = torch.rand(1, 3, 16, 16, dtype=torch.float64), torch.rand(1, 3, 16, 16, dtype=torch.float64)
    # fast mode: a random projection of the Jacobian (the full check takes minutes through VGG19)
    assert torch.autograd.gradcheck(lambda o: cr(o, pos, neg), (out,), eps=1e-6, atol=1e-5, fast_mode=True)


def _torchvision_features(seed=3) -> nn.Sequential:
    """torchvision's VGG19 ``features`` with random weights (built on meta, filled: fast)."""
    from torchvision.models import vgg19

    with torch.device("meta"):
        features = vgg19(weights=None).features
    features = features.to_empty(device="cpu")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in features.parameters():
            p.normal_(0.0, 0.05, generator=g)
    return features.eval()


def test_vgg_slices_end_at_relu_x_1():
    ref = _torchvision_features()
    enc = VGGFeatures(ref[:30])
    x = torch.rand(1, 3, 32, 32)
    feats = enc(x)
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]
    y, outs = x, []
    for i, layer in enumerate(ref[:30]):
        y = layer(y)
        if i in (1, 6, 11, 20, 29):  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
            outs.append(y.clone())
    for f, o in zip(feats, outs, strict=True):
        torch.testing.assert_close(f, o)
    assert CR_WEIGHTS == (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
    assert not any(p.requires_grad for p in enc.parameters())


def test_random_encoder_is_fixed_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, info_a = build_encoder("random")
    assert torch.equal(before, torch.get_rng_state())
    b, info_b = build_encoder("random")
    assert info_a == info_b and info_a["kind"] == "random"
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(a(x)[4], b(x)[4], rtol=0, atol=0)


def test_imagenet_encoder_from_file(tmp_path, monkeypatch):
    ref = _torchvision_features()
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save({f"features.{k}": v for k, v in ref[:30].state_dict().items()}, path)
    enc, info = build_encoder("imagenet", str(path))
    assert info["kind"] == "imagenet" and len(info["sha256"]) == 64
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(enc(x)[0], torch.relu(ref[0](x)))
    # torchvision's cache is the default place
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    path.rename(default_vgg_path())
    assert build_encoder("imagenet")[1]["file"] == str(default_vgg_path())


def test_imagenet_encoder_missing_or_wrong_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "nohub"))
    with pytest.raises(TrainError, match="--cr-encoder random"):
        build_encoder("imagenet")
    with pytest.raises(TrainError, match="does not exist"):
        build_encoder("imagenet", str(tmp_path / "nope.pth"))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(TrainError, match="not a readable"):
        build_encoder("imagenet", str(bad))
    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, other)
    with pytest.raises(TrainError, match="not torchvision's VGG19"):
        build_encoder("imagenet", str(other))


def test_shadow_loss_weighs_errors_in_dark_regions_by_their_relative_size():
    clear = torch.tensor([0.02, 0.8]).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    dark_err = clear - torch.tensor([0.02, 0.0]).view(1, 1, 1, 2)  # the shadow pushed to black
    bright_err = clear - torch.tensor([0.0, 0.02]).view(1, 1, 1, 2)  # the bright wall dimmed as much
    assert shadow_loss(clear, clear) == 0
    assert float(shadow_loss(dark_err, clear)) > 10 * float(shadow_loss(bright_err, clear))
    # plain L1 sees the two errors alike
    assert float((dark_err - clear).abs().mean()) == pytest.approx(float((bright_err - clear).abs().mean()))


def test_colour_loss_is_the_per_channel_mean_error():
    clear = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    tinted = clear + torch.tensor([0.0, 0.0, 0.06]).view(1, 3, 1, 1)  # blue raised by 0.06
    assert float(colour_loss(tinted, clear)) == pytest.approx(0.02, abs=1e-6)
    noise = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 0.05
    assert float(colour_loss(clear + noise - noise.mean((2, 3), keepdim=True), clear)) < 1e-6  # zero-mean change


def test_dehaze_loss_adds_the_shadow_and_colour_terms():
    out, clear = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    base = DehazeLoss(None, 0.0)(out, clear, clear).total
    both = DehazeLoss(None, 0.0, shadow=0.5, colour=2.0)(out, clear, clear).total
    torch.testing.assert_close(both, base + 0.5 * shadow_loss(out, clear) + 2.0 * colour_loss(out, clear))
