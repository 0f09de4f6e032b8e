"""Engine tuning switches (pipeline/tuning.py), speed settings (pipeline/speed.py, --compare: settings.py), FLOPs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_engine import images, reference, small_aecrnet
from torch.utils.flop_counter import FlopCounterMode
from torchvision.ops import deform_conv2d

from streamdehaze.bench.flops import matmul_peak_tflops, network_flops
from streamdehaze.errors import InputError
from streamdehaze.nets.aecrnet import AECRNet
from streamdehaze.nets.dehazer import Dehazer
from streamdehaze.pipeline.engine import Engine
from streamdehaze.pipeline.speed import SpeedSettings
from streamdehaze.pipeline.tuning import EngineOptions, GraphedModel, model_runner
from streamdehaze.settings import parse_overrides


def test_options_resolve_per_device():
    cpu = EngineOptions(cuda_graphs=True).resolved("cpu")
    assert (cpu.channels_last, cpu.cudnn_benchmark, cpu.cuda_graphs, cpu.device_yuv) == (True, False, False, False)
    gpu = EngineOptions().resolved("cuda")
    assert (gpu.channels_last, gpu.cudnn_benchmark, gpu.cuda_graphs, gpu.device_yuv) == (True, True, False, True)
    off = EngineOptions(channels_last=False, cudnn_benchmark=False, device_yuv=False).resolved("cuda")
    assert not (off.channels_last or off.cudnn_benchmark or off.device_yuv)
    assert off.describe() == "no tuning" and "channels-last" in cpu.describe()


@pytest.mark.parametrize("channels_last", [False, True])
def test_channels_last_engine_gives_the_same_bytes_on_cpu(channels_last):
    model = small_aecrnet()
    imgs = images(3, 24, 32)
    ref = reference(small_aecrnet(), imgs)
    out = Engine(model, "cpu", options=EngineOptions(channels_last=channels_last)).process(imgs)
    assert np.array_equal(out, ref)
    conv = model.net.down1[1].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_speed_settings_build_the_engine_they_describe():
    speed = SpeedSettings(work_size="0.5", keyframe_interval=3, channels_last=False)
    engine = speed.build_engine(small_aecrnet(), "cpu")
    assert engine.transfer.work_size.value == 0.5 and engine.transfer.keyframe_interval == 3
    assert not engine.options.channels_last
    text = speed.describe("cpu", 720, 1280)
    assert "640x360" in text and "every 3 frames" in text and "no tuning" in text
    assert SpeedSettings().describe("cpu", 720, 1280).startswith("working size 640x360 (short side 360")


def test_parse_overrides():
    assert parse_overrides("work-size=360, keyframe-interval=4,channels_last=off") == {
        "work_size": "360", "keyframe_interval": 4, "channels_last": False
    }  # fmt: skip
    for bad in ("work-size", "colour=blue", "keyframe-interval=two", "compile=maybe", ""):
        with pytest.raises(InputError, match="--compare"):
            parse_overrides(bad)


def test_network_flops_counts_convolutions_and_deformable_ones_exactly(monkeypatch):
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    assert network_flops(conv, 20, 30) == 2 * 3 * 9 * 8 * 20 * 30
    net = AECRNet(ngf=4).eval().fold_for_inference()
    model = Dehazer(net, "aecrnet", 4)
    f1, f2 = network_flops(model, 40, 60), network_flops(model, 80, 120)
    assert f2 == pytest.approx(4 * f1)
    # torchvision's kernel (as on CUDA) is invisible to FlopCounterMode: the hook adds the 3x3 conv it computes
    with monkeypatch.context() as m:
        m.setattr("streamdehaze.nets.aecrnet.uses_sampled_deform", lambda x: False)
        m.setattr("streamdehaze.bench.flops.uses_sampled_deform", lambda x: False)
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            model(torch.rand(1, 3, 40, 60))
        dcn = 2 * 16 * 9 * 16 * 10 * 15  # the 16-channel deformable 3x3 conv at 1/4 size (10x15), applied twice
        assert f1 - counter.get_total_flops() == pytest.approx(2 * dcn, rel=1e-3)  # (scaled from a 64x64 count)
        assert network_flops(model, 40, 60) == pytest.approx(f1)  # same total either way
    assert network_flops(Dehazer(AECRNet(64).fold_for_inference(), "aecrnet", 4), 720, 1280) == pytest.approx(
        1.142e12, rel=0.01
    )  # "about 1 TFLOP per 1280x720 frame"


def test_matmul_peak_is_a_positive_rate():
    assert 0 < matmul_peak_tflops("cpu", size=128) < 100


@pytest.mark.cuda
def test_cuda_graphs_replay_equals_eager_per_shape():
    model = small_aecrnet().cuda()
    calls = []

    def fn(x):
        calls.append(x.shape)
        return model(x)

    graphed = GraphedModel(fn, warmup=2, max_graphs=1)
    for shape in ((2, 3, 32, 48), (2, 3, 32, 48), (1, 3, 40, 40)):
        x = torch.rand(shape, device="cuda")
        with torch.inference_mode():
            assert torch.allclose(graphed(x), model(x), atol=1e-5)
    assert len(graphed._graphs) == 1  # the second shape ran eagerly (max_graphs=1)


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_engine_with_graphs_and_channels_last_matches_reference(precision):
    imgs = images(4, 64, 96)
    ref = reference(small_aecrnet(), imgs)
    options = EngineOptions(channels_last=True, cuda_graphs=True)
    engine = Engine(small_aecrnet().cuda(), "cuda", precision=precision, options=options)
    for _ in range(2):  # capture, then replay
        out = engine.process(imgs)
        assert np.abs(out.astype(int) - ref.astype(int)).mean() < (0.5 if precision == "fp32" else 4)


@pytest.mark.cuda
def test_deformable_conv_runs_in_fp32_under_fp16_autocast():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 16, 270, 480, generator=g).cuda()
    offset = (torch.randn(1, 18, 270, 480, generator=g) * 2).cuda()
    weight = (torch.randn(16, 16, 3, 3, generator=g) * 0.1).cuda()
    ref = deform_conv2d(x, offset, weight, padding=(1, 1))
    with torch.autocast("cuda", dtype=torch.float16):
        auto = deform_conv2d(x.half(), offset.half(), weight.half(), padding=(1, 1))
    pure = deform_conv2d(x.half(), offset.half(), weight.half(), padding=(1, 1))  # fp16 sampling positions
    err_auto, err_pure = (auto.float() - ref).abs().max(), (pure.float() - ref).abs().max()
    assert err_auto <= err_pure and err_auto < 0.05


@pytest.mark.cuda
def test_model_runner_sets_cudnn_benchmark_switch():
    model = small_aecrnet().cuda()
    model_runner(model, torch.device("cuda"), "fp32", EngineOptions(cudnn_benchmark=False).resolved("cuda"))
    assert torch.backends.cudnn.benchmark is False
    model_runner(model, torch.device("cuda"), "fp32", EngineOptions().resolved("cuda"))
    assert torch.backends.cudnn.benchmark is True


@pytest.mark.slow
def test_compiled_model_matches_eager_on_cpu():
    imgs = images(2, 24, 32)
    ref = reference(small_aecrnet(), imgs)
    out = Engine(small_aecrnet(), "cpu", options=EngineOptions(compile=True)).process(imgs)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
