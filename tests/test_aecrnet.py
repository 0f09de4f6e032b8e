"""AECR-Net: structure, official-checkpoint parity, FastDeconv, padding, batches, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import official_state_dict
from reference_aecrnet import aecrnet_reference

from streamdehaze.cli import main
from streamdehaze.io.stills import read_image, write_image
from streamdehaze.nets.aecrnet import AECRNet, count_parameters
from streamdehaze.nets.deconv import FastDeconv, fold_fastdeconv, isqrt_newton_schulz
from streamdehaze.nets.dehazer import Dehazer
from streamdehaze.nets.registry import load_model


def test_parameter_count_matches_paper():
    assert count_parameters(AECRNet()) == 2_614_229
    assert count_parameters(AECRNet(ngf=16)) < 2_614_229 / 10


def test_official_checkpoint_cli_matches_independent_reference(official_checkpoint, tmp_path):
    path, sd = official_checkpoint
    rng = np.random.default_rng(1)
    # A smooth image plus texture, 96×64 (W×H) as in the issue.
    yy, xx = np.mgrid[0:64, 0:96]
    base = np.stack([xx / 96, yy / 64, (xx + yy) / 160], -1) * 180 + 40
    image = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    write_image(tmp_path / "in.png", image)
    result = CliRunner().invoke(
        main,
        ["image", str(tmp_path / "in.png"), "-o", str(tmp_path / "out"), "--weights", str(path), "--device", "cpu"],
    )
    assert result.exit_code == 0, result.output
    ours = read_image(tmp_path / "out" / "in.png").astype(int)
    with torch.no_grad():
        x = torch.from_numpy(image).permute(2, 0, 1)[None].double() / 255
        ref = aecrnet_reference(x, {k: v.double() for k, v in sd.items()}).clamp(0, 1)
    ref8 = np.floor(ref[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(int)
    assert ref8.std() > 5, "reference output is degenerate; the test would prove little"
    assert np.abs(ours - ref8).max() <= 1


def test_module_forward_matches_reference_in_float64():
    sd = {k: v.double() for k, v in official_state_dict(ngf=8, seed=3).items()}
    net = AECRNet(ngf=8, dtype=torch.float64).eval()
    net.load_state_dict(sd)
    x = torch.rand(2, 3, 32, 40, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(net(x), aecrnet_reference(x, sd), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("size", [(33, 47), (30, 30), (5, 7)])
def test_padding_any_size_crops_back(size):
    torch.manual_seed(0)
    dehazer = Dehazer(AECRNet(ngf=8).eval(), "aecrnet", multiple=4)
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        y = dehazer(x)
    assert y.shape == x.shape
    assert y.min() >= 0 and y.max() <= 1
    # The top-left region away from the padded border equals the result on the reflect-padded input.
    xp = torch.nn.functional.pad(
        x, (0, (-size[1]) % 4, 0, (-size[0]) % 4), mode="reflect" if min(size) > 4 else "replicate"
    )
    with torch.no_grad():
        torch.testing.assert_close(y, dehazer.net(xp)[..., : size[0], : size[1]].clamp(0, 1))


def test_batch_independence_in_eval_mode():
    torch.manual_seed(0)
    dehazer = Dehazer(AECRNet(ngf=8).eval(), "aecrnet", multiple=4)
    x = torch.rand(4, 3, 24, 32)
    with torch.no_grad():
        together = dehazer(x)
        alone = torch.cat([dehazer(x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)


def test_fastdeconv_training_statistics():
    torch.manual_seed(0)
    layer = FastDeconv(3, 3, n_iter=40).double().train()
    x = torch.rand(2, 3, 20, 22, dtype=torch.float64)
    layer(x)
    # Reference statistics from the subsampled patches, computed directly.
    cols = torch.nn.functional.unfold(x, 3, padding=1, stride=3).transpose(1, 2).reshape(-1, 27)
    mean = cols.mean(0)
    cov = (cols - mean).T @ (cols - mean) / cols.shape[0] + 1e-5 * torch.eye(27, dtype=x.dtype)
    evals, evecs = torch.linalg.eigh(cov)
    isqrt = evecs @ torch.diag(evals.rsqrt()) @ evecs.T
    torch.testing.assert_close(layer.running_mean, 0.1 * mean)
    torch.testing.assert_close(
        layer.running_deconv, 0.9 * torch.eye(27, dtype=x.dtype) + 0.1 * isqrt, rtol=2e-3, atol=2e-3
    )
    # Whitening: the transformed patches have (close to) identity covariance.
    white = (cols - mean) @ isqrt_newton_schulz(cov, 40)
    torch.testing.assert_close(white.T @ white / cols.shape[0], torch.eye(27, dtype=x.dtype), rtol=0, atol=0.05)


def test_fastdeconv_fold_is_equivalent():
    torch.manual_seed(0)
    layer = FastDeconv(3, 3).train()
    for _ in range(3):
        layer(torch.rand(2, 3, 32, 32))
    layer.eval()
    x = torch.rand(3, 3, 40, 36)
    with torch.no_grad():
        ref = layer(x)
        folded = fold_fastdeconv(layer)(x)
    assert isinstance(fold_fastdeconv(layer), torch.nn.Conv2d)
    assert (folded - ref).abs().max() <= 1e-5 * ref.abs().max()


def test_folded_network_output_unchanged(official_checkpoint):
    path, _ = official_checkpoint
    unfolded = load_model("aecrnet", weights=path, device="cpu", fold=False)
    folded = load_model("aecrnet", weights=path, device="cpu", fold=True)
    assert isinstance(folded.net.deconv, torch.nn.Conv2d)
    x = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        a, b = unfolded.net(x), folded.net(x)
    assert (a - b).abs().max() <= 1e-5 * a.abs().max()


def test_gradient_reaches_every_parameter():
    torch.manual_seed(0)
    net = AECRNet(ngf=8).train()
    out = net(torch.rand(2, 3, 32, 32))
    ((out - 0.5) ** 2).mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing


def test_no_cuda_in_constructor_and_dtype_argument():
    net = AECRNet(ngf=8, device="meta", dtype=torch.float64)
    assert all(p.device.type == "meta" and p.dtype == torch.float64 for p in net.parameters())
