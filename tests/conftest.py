"""Shared fixtures: official-format checkpoints with random weights, markers' skip logic."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from streamdehaze.nets.aecrnet import AECRNet

pytest_plugins = ["conftest_rtsp"]

DATA = Path(os.environ.get("STREAMDEHAZE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def pytest_collection_modifyitems(config, items):
    skip_cuda = pytest.mark.skip(reason="needs a CUDA device")
    skip_data = pytest.mark.skip(reason=f"development data not found at {DATA} (set STREAMDEHAZE_DATA)")
    for item in items:
        if "cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_cuda)
        if "data" in item.keywords and not DATA.is_dir():
            item.add_marker(skip_data)


@pytest.fixture(autouse=True, scope="session")
def _export_cache(tmp_path_factory):
    """ONNX exports (the onnxruntime backend's cache) go to one folder per test session, not the user's cache;
    set in the environment so CLI subprocesses share it."""
    old = os.environ.get("STREAMDEHAZE_CACHE")
    os.environ["STREAMDEHAZE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("STREAMDEHAZE_CACHE", None)
    else:
        os.environ["STREAMDEHAZE_CACHE"] = old


def official_state_dict(ngf: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights of the official shapes, with non-trivial deformable offsets and deconv statistics."""
    torch.manual_seed(seed)
    net = AECRNet(ngf=ngf)
    sd = net.state_dict()
    with torch.no_grad():
        # Offsets of about a pixel, so the deformable sampling is exercised.
        sd["dcn_block.dcn.conv_offset_mask.weight"].normal_(0, 0.02)
        sd["dcn_block.dcn.conv_offset_mask.bias"].uniform_(-1.0, 1.0)
        sd["dcn_block.dcn.bias"].uniform_(-0.1, 0.1)
        q = torch.linalg.qr(torch.randn(27, 27))[0]
        sd["deconv.running_deconv"].copy_(q @ torch.diag(torch.rand(27) * 2 + 0.5) @ q.T)
        sd["deconv.running_mean"].uniform_(0.2, 0.6)
        # Random weights give a near-constant output; spread it across the 8-bit range.
        sd["up3.1.weight"].mul_(30.0)
        sd["up3.1.bias"].fill_(0.5)
    return {k: v.clone() for k, v in sd.items()}


@pytest.fixture
def official_checkpoint(tmp_path) -> tuple[Path, dict[str, torch.Tensor]]:
    """An official-format file ``{'model': {'module.' + key: tensor}, ...}`` and its bare state dict."""
    sd = official_state_dict()
    path = tmp_path / "its_train_ffa_3_19.pk"
    torch.save({"model": {"module." + k: v for k, v in sd.items()}, "step": 100, "max_psnr": 30.0}, path)
    return path, sd
