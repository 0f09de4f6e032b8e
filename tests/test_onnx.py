"""ONNX export and the onnxruntime backend (issue 21): the graph, parity with torch, the CLI, clear errors.

Exports take 10-20 s each on a 2-core machine, so each network is exported once per module (the
shipped file through the session's export cache, which the CLI tests then reuse).
"""

from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import official_state_dict
from media import make_clip, read_video, video_times

from streamdehaze.backends import INSTALL_HINT
from streamdehaze.backends.extra import missing
from streamdehaze.backends.onnx_cache import cache_dir
from streamdehaze.backends.onnx_export import export_network, op_types
from streamdehaze.backends.select import CPU_DEFAULT, load_dehazer, resolve_backend, to_onnxruntime
from streamdehaze.cli import main
from streamdehaze.errors import InputError, ModelError
from streamdehaze.nets.aecrnet import AECRNet
from streamdehaze.nets.dehazer import Dehazer
from streamdehaze.nets.registry import find_shipped, read_card
from streamdehaze.weights import apply_state_dict

MISSING = missing()
needs_onnx = pytest.mark.skipif(
    bool(MISSING), reason=f"the onnx extra is not installed ({', '.join(MISSING)} missing): {INSTALL_HINT}"
)
CPU = torch.device("cpu")
SHAPES = [(1, 32, 48), (3, 32, 48), (1, 44, 60), (3, 44, 60)]  # two sizes, batch 1 and 3


def _inputs(b: int, h: int, w: int) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(b * h + w))


@pytest.fixture(scope="module")
def random64(tmp_path_factory):
    """AECR-Net at ngf 64 with random weights (non-trivial offsets) and its export (a 64x48 example)."""
    net = AECRNet(ngf=64)
    apply_state_dict(net, official_state_dict(ngf=64))
    net.fold_for_inference()
    path = tmp_path_factory.mktemp("onnx") / "random64.onnx"
    result = export_network(net, path, metadata={"model": "aecrnet", "ngf": "64"})
    return net, result


@pytest.fixture(scope="module")
def shipped():
    """The shipped weights with both backends (the onnxruntime one exported into the session's cache)."""
    torch_model = load_dehazer("aecrnet", device="cpu", backend="torch")
    return torch_model, to_onnxruntime(torch_model, "cpu")


@needs_onnx
def test_random_ngf64_exports_deformconv_and_matches_torch(random64):
    import onnx

    from streamdehaze.backends.onnxruntime_runner import OrtNetwork

    net, result = random64
    model = onnx.load(result.path)
    onnx.checker.check_model(model, full_check=True)
    ops = op_types(model)
    assert "DeformConv" in ops and "GridSample" not in ops, ops
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1] == 3 and all(isinstance(d, str) for d in (dims[0], dims[2], dims[3])), dims  # dynamic N, H, W
    meta = {p.key: p.value for p in model.metadata_props}
    assert (meta["ngf"], meta["opset"], meta["precision"]) == ("64", "19", "fp32")
    ort_net = OrtNetwork(result.path, CPU)
    for b, h, w in SHAPES:
        x = _inputs(b, h, w)
        with torch.inference_mode():
            ref = net(x)  # the CPU inference path: the bilinear-sampling deformable conv
        assert ref.std() > 0.05  # a real signal, not a constant
        assert (ort_net(x) - ref).abs().max() < 1e-4, (b, h, w)


@needs_onnx
def test_shipped_weights_export_with_their_card_and_match_torch(shipped):
    torch_model, ort_model = shipped
    assert ort_model.info["backend"] == "onnxruntime" and ort_model.info["providers"] == ["CPUExecutionProvider"]
    meta = ort_model.net.metadata
    card = read_card(find_shipped("aecrnet.pt"))
    assert meta["weights_sha256"] == card["sha256"] and meta["model"] == "aecrnet"
    assert (meta["ngf"], meta["work_side"]) == ("16", "160")
    assert ort_model.info["work_side"] == torch_model.info["work_side"] == 160  # the same working size
    for b, h, w in [*SHAPES, (2, 37, 50)]:  # the last pads to 40x52 and crops back, in the Dehazer
        x = _inputs(b, h, w)
        with torch.inference_mode():
            assert (ort_model(x) - torch_model(x)).abs().max() < 1e-4, (b, h, w)


@needs_onnx
def test_half_export_keeps_the_deformable_conv_in_float32(shipped, tmp_path):
    import onnx

    from streamdehaze.backends.onnxruntime_runner import max_difference

    torch_model, _ = shipped
    result = export_network(torch_model.net, tmp_path / "half.onnx", half=True)
    model = onnx.shape_inference.infer_shapes(onnx.load(result.path))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    types = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    types.update({t.name: t.data_type for t in model.graph.initializer})
    deform = [n for n in model.graph.node if n.op_type == "DeformConv"]
    assert deform and all(types[i] == onnx.TensorProto.FLOAT for n in deform for i in n.input if i)
    assert max_difference(result.path, torch_model.net) < 1e-2  # float16 elsewhere


@needs_onnx
def test_cached_export_is_reused_and_onnx_files_load_directly(shipped):
    torch_model, ort_model = shipped
    said: list[str] = []
    again = load_dehazer("aecrnet", device="cpu", backend="onnxruntime", log=said.append)
    assert said == [] and again.info["onnx"] == ort_model.info["onnx"]  # no second export
    assert str(cache_dir()) in again.info["onnx"]
    direct = load_dehazer("aecrnet", weights=ort_model.info["onnx"], device="cpu")  # auto: an .onnx file
    assert direct.info["backend"] == "onnxruntime" and direct.info["work_side"] == 160
    with pytest.raises(ModelError, match="--backend onnxruntime"):
        load_dehazer("aecrnet", weights=ort_model.info["onnx"], device="cpu", backend="torch")
    with pytest.raises(InputError, match="bf16"):
        load_dehazer("aecrnet", device="cpu", backend="onnxruntime", precision="bf16")
    with pytest.raises(ModelError, match="runs with --backend torch"):
        load_dehazer("dcp", device="cpu", backend="onnxruntime")


def test_auto_backend():
    extra = not MISSING
    assert resolve_backend("auto", "aecrnet", None, CPU) == (CPU_DEFAULT if extra else "torch")
    assert resolve_backend("auto", "dcp", None, CPU) == "torch"  # no network to export
    assert resolve_backend("auto", "aecrnet", None, CPU, "bf16") == "torch"
    assert resolve_backend("auto", "aecrnet", None, torch.device("cuda")) == "torch"  # not measured there
    assert resolve_backend("auto", "aecrnet", "m.onnx", CPU) == "onnxruntime"
    assert resolve_backend("torch", "aecrnet", None, CPU) == "torch"


def test_opset_below_19_is_refused_before_any_work(tmp_path):
    with pytest.raises(InputError, match="opset 19"):
        export_network(AECRNet(ngf=4), tmp_path / "m.onnx", opset=18)
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(main, ["export", "-o", str(out), "--opset", "18"])
    assert result.exit_code == 2 and "needs opset 19" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_missing_extra_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed: importing it raises ImportError
    assert resolve_backend("auto", "aecrnet", None, CPU) == "torch"  # auto falls back
    with pytest.raises(ModelError, match=r"onnxruntime not installed\); install them with: pip install"):
        load_dehazer("aecrnet", device="cpu", backend="onnxruntime")
    img = tmp_path / "in.png"
    cv2.imwrite(str(img), np.full((24, 32, 3), 128, np.uint8))
    result = CliRunner().invoke(main, ["image", str(img), "-o", str(tmp_path / "o"), "--backend", "onnxruntime"])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "pip install 'streamdehaze[onnx]'" in result.output and not (tmp_path / "o").exists()
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    result = CliRunner().invoke(main, ["export", "-o", str(tmp_path / "m.onnx"), "--random-weights", "--ngf", "8"])
    assert result.exit_code == 1 and "onnxscript" in result.output and "pip install" in result.output


@needs_onnx
def test_image_with_onnxruntime_is_within_one_level_of_torch(shipped, tmp_path):
    src = cv2.resize(cv2.imread("samples/foggy_road.jpg"), (320, 180), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(tmp_path / "road.png"), src)
    outs = {}
    for backend in ("torch", "onnxruntime"):
        args = ["image", str(tmp_path / "road.png"), "-o", str(tmp_path / backend), "-d", "cpu", "--backend", backend]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert f"on cpu via {'onnxruntime (CPU)' if backend == 'onnxruntime' else 'torch'}" in result.output
        outs[backend] = cv2.imread(str(tmp_path / backend / "road.png")).astype(int)
    assert np.abs(outs["torch"] - outs["onnxruntime"]).max() <= 1
    assert np.abs(outs["torch"] - src.astype(int)).mean() > 5  # it dehazed


@needs_onnx
def test_run_with_onnxruntime_keeps_every_frame(shipped, tmp_path):
    clip = make_clip(tmp_path / "in.mp4", n_frames=6, size=(64, 48))
    out = tmp_path / "out.mkv"
    args = ["run", str(clip), "-o", str(out), "-d", "cpu", "--backend", "onnxruntime", "--codec", "ffv1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "onnxruntime (CPU)" in result.output.splitlines()[0]  # the start-up line says which backend runs
    assert len(read_video(out)) == 6 and video_times(out) == pytest.approx(video_times(clip), abs=1e-3)


@needs_onnx
def test_bench_compares_the_backends_in_one_run(shipped):
    args = ["bench", "--backend", "torch", "--compare", "backend=onnxruntime", "-r", "64x48", "-b", "2"]
    result = CliRunner().invoke(main, [*args, "--frames", "2", "--warmup", "0", "--measure", "model", "--json"])
    assert result.exit_code == 0, result.output
    variants = json.loads(result.stdout)["variants"]
    assert [(v["label"], v["backend"]) for v in variants] == [
        ("base", "torch"), ("backend=onnxruntime", "onnxruntime (CPU)")
    ]  # fmt: skip
    assert all(v["model_fps"] > 0 for v in variants) and variants[1]["model_speedup"] > 0


@pytest.mark.cuda
@needs_onnx
def test_cuda_provider_matches_torch_on_the_gpu(shipped):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime has no CUDA provider (install onnxruntime-gpu)")
    gpu = torch.device("cuda")
    torch_model = load_dehazer("aecrnet", device=gpu, backend="torch")
    ort_model = load_dehazer("aecrnet", device=gpu, backend="onnxruntime")
    assert ort_model.device == gpu and "CUDAExecutionProvider" in ort_model.info["providers"]
    x = _inputs(3, 44, 60).to(gpu)
    with torch.inference_mode():
        y = ort_model(x)
        assert y.device == gpu and (y - torch_model(x)).abs().max() < 1e-4
        half = load_dehazer("aecrnet", device=gpu, backend="onnxruntime", precision="fp16")
        assert (half(x) - torch_model(x)).abs().max() < 1e-2


@needs_onnx
def test_both_backends_give_a_dehazer_of_the_same_contract(shipped):
    """The engine sees one interface: a Dehazer that keeps ``(B, 3, H, W)`` for any H, W, on its device."""
    for model in shipped:
        assert isinstance(model, Dehazer) and model.multiple == 4 and model.device == CPU
        with torch.inference_mode():
            y = model(_inputs(2, 30, 41))
        assert y.shape == (2, 3, 30, 41) and y.dtype == torch.float32 and 0 <= y.min() <= y.max() <= 1
