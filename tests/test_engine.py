"""Batched inference engine: uint8 in, uint8 out, equal to running the model directly."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from streamdehaze.errors import InputError, ModelError
from streamdehaze.frames import Frame
from streamdehaze.nets.aecrnet import AECRNet
from streamdehaze.nets.dehazer import Dehazer
from streamdehaze.nets.registry import load_model
from streamdehaze.ops.color import to_tensor, to_uint8
from streamdehaze.pipeline.engine import Engine

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def images(n: int, h: int = 20, w: int = 28, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def frames(imgs: np.ndarray, start: int = 0) -> list[Frame]:
    return [Frame(im, 1001 * (start + i), Fraction(1, 30000), start + i, {"k": start + i}) for i, im in enumerate(imgs)]


def reference(model: torch.nn.Module, imgs: np.ndarray) -> np.ndarray:
    """The model run directly on CPU in fp32: the engine must give the same bytes."""
    with torch.inference_mode():
        return to_uint8(model.cpu()(to_tensor(imgs))).numpy()


def assert_same(out: np.ndarray, ref: np.ndarray, device: str) -> None:
    """Bit-exact on CPU; on CUDA (cuDNN algorithms, TF32) a few levels apart at most, rarely."""
    diff = np.abs(out.astype(int) - ref.astype(int))
    if device == "cpu":
        assert diff.max() == 0
    else:
        assert diff.mean() < 0.5 and diff.max() <= 8


def small_aecrnet(seed: int = 0) -> Dehazer:
    torch.manual_seed(seed)
    net = AECRNet(ngf=4).eval()
    with torch.no_grad():  # spread the near-constant random output over the 8-bit range
        net.up3[1].weight.mul_(30.0)
        net.up3[1].bias.fill_(0.5)
    return Dehazer(net.fold_for_inference(), "aecrnet", 4).eval()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["dcp", "aecrnet"])
def test_engine_matches_direct_model_call(device, name):
    model = load_model("dcp", device="cpu") if name == "dcp" else small_aecrnet()
    imgs = images(5)
    ref = reference(model, imgs)
    engine = Engine(model.to(device), torch.device(device))
    out = engine.process(imgs)
    assert out.dtype == np.uint8 and out.shape == imgs.shape
    assert_same(out, ref, device)
    assert engine.frames == 5 and engine.busy_s > 0


@pytest.mark.parametrize("device", DEVICES)
def test_batches_come_back_in_order_with_timestamps(device):
    model = small_aecrnet().to(device)
    engine = Engine(model, torch.device(device), depth=2)
    imgs = images(11, seed=1)
    done = []
    for start in range(0, 11, 3):  # 3, 3, 3, 2: the last batch is partial
        done += engine.submit(frames(imgs[start : start + 3], start))
        assert engine.pending <= 2
    done += engine.drain()
    out = [f for batch in done for f in batch]
    assert [f.index for f in out] == list(range(11))
    assert [f.pts for f in out] == [1001 * i for i in range(11)] and out[4].meta == {"k": 4}
    assert engine.pending == 0
    assert_same(np.stack([f.image for f in out]), reference(small_aecrnet(), imgs), device)


def test_cpu_bf16_autocast_runs_close_to_fp32():
    model = load_model("dcp", device="cpu")
    imgs = images(2)
    out = Engine(model, torch.device("cpu"), precision="bf16").process(imgs)
    ref = reference(model, imgs)
    assert np.abs(out.astype(int) - ref.astype(int)).mean() < 8  # bf16 keeps 8 bits of mantissa


def test_cpu_bf16_runs_aecrnet_close_to_fp32():
    # the CPU deformable conv samples in float32 under bf16 autocast (torchvision's kernel had no bf16)
    model = small_aecrnet()
    imgs = images(2, 40, 56)
    out = Engine(model, torch.device("cpu"), precision="bf16").process(imgs)
    assert np.abs(out.astype(int) - reference(model, imgs).astype(int)).mean() < 2


def test_cpu_bf16_unsupported_op_gives_a_model_error(monkeypatch):
    def no_bf16(*args, **kwargs):
        raise RuntimeError("\"deform_conv2d\" not implemented for 'BFloat16'")

    monkeypatch.setattr("streamdehaze.nets.aecrnet.deform_conv2d_sampled", no_bf16)
    with pytest.raises(ModelError, match="use --precision fp32"):
        Engine(small_aecrnet(), torch.device("cpu"), precision="bf16").process(images(1))


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_low_precision_close_to_fp32(precision):
    model = small_aecrnet()
    imgs = images(4, 64, 96)
    ref = reference(model, imgs)
    out = Engine(model.cuda(), torch.device("cuda"), precision=precision).process(imgs)
    assert np.abs(out.astype(int) - ref.astype(int)).mean() < 4


@pytest.mark.cuda
def test_cuda_engine_keeps_two_batches_in_flight_and_handles_a_size_change():
    engine = Engine(load_model("dcp", device="cuda"), torch.device("cuda"), depth=3)
    assert engine.submit(frames(images(2))) == [] and engine.submit(frames(images(2), 2)) == []
    assert engine.pending == 2  # nothing waited for yet
    big = images(2, 40, 40, seed=3)
    engine.submit(frames(big, 4))
    out = engine.submit(frames(images(1), 6)) + engine.drain()
    assert [f.index for b in out for f in b] == list(range(7))
    assert_same(out[2][0].image, reference(load_model("dcp", device="cpu"), big)[0], "cuda")


def test_precision_errors_are_clear():
    with pytest.raises(InputError, match="fp16 needs a CUDA device"):
        Engine(load_model("dcp", device="cpu"), torch.device("cpu"), precision="fp16")
    with pytest.raises(InputError, match="fp32, fp16, bf16"):
        Engine(load_model("dcp", device="cpu"), torch.device("cpu"), precision="int8")
