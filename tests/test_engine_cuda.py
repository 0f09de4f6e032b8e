"""The engine on a GPU: graph replay with state, compile with the pixel/flow filters, no host sync in the
compute section, bucketed shapes, and the one-batch-late host decisions against the CPU path.

All ``-m cuda``: skipped (with the reason) where no GPU is present. The same invariants are tested on
the CPU with the eager path and a counting stand-in for graph replay (``test_engine_stages.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_engine import small_aecrnet
from test_engine_stages import changing_clip, dcp, run

from streamdehaze.ops import cpu_kernels
from streamdehaze.pipeline.engine import Engine
from streamdehaze.pipeline.speed import SpeedSettings
from streamdehaze.pipeline.temporal_engine import TemporalSettings
from streamdehaze.pipeline.tuning import EngineOptions

pytestmark = pytest.mark.cuda

CASES = [  # (model, work size, keyframe interval, temporal mode)
    ("dcp", "0.5", 1, "ema"),
    ("dcp", "0.5", 3, "flow"),  # host decisions: keyframe plan and optical flow, one batch late
    ("aecrnet", "0.5", 2, "ema"),
    ("aecrnet", "full", 1, "pixel"),
    ("aecrnet", "0.5", 1, "motion"),  # the default: the working-size flow (lk_flow on the device)
    ("dcp", "0.5", 2, "motion"),
]


def engine(name: str, work: str, k: int, mode: str, device: str = "cuda", **options) -> Engine:
    model = (dcp() if name == "dcp" else small_aecrnet()).to(device)
    transfer = SpeedSettings(work_size=work, keyframe_interval=k).transfer(device)
    return Engine(model, device, transfer=transfer, temporal=TemporalSettings(mode), options=EngineOptions(**options))


def close(a: np.ndarray, b: np.ndarray, mean: float = 0.5, worst: int = 8) -> bool:
    diff = np.abs(a.astype(int) - b.astype(int))
    return diff.mean() < mean and diff.max() <= worst


@pytest.mark.parametrize("name, work, k, mode", CASES)
def test_graph_replay_with_state_equals_eager_over_20_changing_frames(monkeypatch, name, work, k, mode):
    clip = changing_clip()
    eager = run(engine(name, work, k, mode), clip)
    graphed_engine = engine(name, work, k, mode, cuda_graphs=True)
    graphed = run(graphed_engine, clip)
    assert close(graphed, eager)
    graphs = graphed_engine.core.graphs
    assert sum(g.captures for g in graphs) > 0 and sum(g.replays for g in graphs) > 0
    # the CPU's result, with the device code (the CPU's OpenCV kernels and DIS flow are other algorithms)
    monkeypatch.setattr(cpu_kernels, "CPU_KERNELS", False)
    assert close(eager, run(engine(name, work, k, mode, device="cpu"), clip), mean=1.0)


@pytest.mark.parametrize("mode", ["pixel", "flow"])
def test_compile_with_the_pixel_and_flow_filters(mode):
    """reduce-overhead compilation reuses its output buffers: the filters must hold copies."""
    clip = changing_clip()[:12]
    eager = run(engine("aecrnet", "full", 1, mode), clip, (4, 4, 4))
    compiled = run(engine("aecrnet", "full", 1, mode, compile=True, cuda_graphs=True), clip, (4, 4, 4))
    assert close(compiled, eager)


@pytest.mark.parametrize("graphs", [False, True])
@pytest.mark.parametrize("name, work, k, mode", CASES)
def test_no_host_sync_in_the_compute_section(name, work, k, mode, graphs):
    clip = changing_clip()
    e = engine(name, work, k, mode, cuda_graphs=graphs)
    run(e, clip[:12], (4, 4, 4))  # warm-up: captures, cuDNN autotuning, cached constants
    e.sync_check = True  # torch.cuda.set_sync_debug_mode("error") around each compute section
    out = run(e, clip[12:], (4, 4))
    assert out.shape == (8, *clip.shape[1:])


def test_new_shapes_reuse_buckets_on_cuda():
    e = engine("dcp", "full", 1, "off", cuda_graphs=True)
    run(e, changing_clip(), (4, 4, 3, 2, 1, 3, 3))
    plain = e.core.graphs[0]
    assert (plain.captures, plain.replays) == (3, 4)  # buckets 4, 2, 1; the batches of 3 replay bucket 4


def test_yuv_frames_through_the_delayed_path_match_rgb():
    from fractions import Fraction

    from streamdehaze.frames import Frame
    from streamdehaze.ops.color import to_tensor
    from streamdehaze.ops.yuv import planes_to_rgb_image, rgb_to_yuv420p, yuv_meta

    clip = changing_clip()[:8]
    planes = rgb_to_yuv420p(to_tensor(clip)).numpy()
    meta = yuv_meta("yuv420p", None)
    e = engine("dcp", "0.5", 3, "flow")
    frames = [Frame(planes[i], i, Fraction(1, 25), i, dict(meta)) for i in range(8)]
    out = [f for b in e.submit(frames[:4]) + e.submit(frames[4:]) + e.drain() for f in b]
    assert [f.index for f in out] == list(range(8))
    rgb = np.stack([planes_to_rgb_image(f.image, f.meta) for f in out])
    ref = run(engine("dcp", "0.5", 3, "flow"), np.stack([planes_to_rgb_image(p, meta) for p in planes]), (4, 4))
    assert close(rgb, ref, mean=2.0, worst=24)  # chroma subsampled twice


def test_controls_and_reset_between_streams_on_cuda():
    clip = changing_clip()
    e = engine("dcp", "0.5", 3, "flow")
    first = run(e, clip)
    e.control("strength", 0.0)
    assert close(run(e, clip[:4], (4,)), clip[:4], mean=0.1, worst=1)
    e.control("strength", 1.0)
    e.reset()
    assert close(run(e, clip), first, mean=0.01, worst=1)  # a fresh stream: the same result as the first
    assert torch.cuda.get_sync_debug_mode() == 0
