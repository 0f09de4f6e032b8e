"""YUV 4:2:0 ↔ RGB on the device (ops/yuv.py) against FFmpeg's own conversion, and the yuv420p path
through source, engine and sink (what a CUDA run uses; here on CPU)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from av.video.reformatter import Interpolation
from media import pattern_frame

from streamdehaze.errors import InputError
from streamdehaze.frames import Frame, StreamInfo
from streamdehaze.io.sinks import open_sink
from streamdehaze.io.sources import open_source
from streamdehaze.ops.yuv import planes_to_rgb_image, rgb_to_yuv420p, yuv420p_to_rgb, yuv_meta
from streamdehaze.pipeline.engine import Engine
from streamdehaze.pipeline.tuning import EngineOptions

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "foggy_drive.mp4"
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
# swscale with exact rounding and repeated chroma: the same arithmetic as ours
ACCURATE = Interpolation.POINT | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT


def sample_frames(n: int = 2) -> list[av.VideoFrame]:
    with av.open(str(SAMPLE)) as c:
        return [f for _, f in zip(range(n), c.decode(video=0))]


def colourful(w: int = 160, h: int = 120) -> np.ndarray:
    return pattern_frame(7, (w, h))


def encode_yuv(rgb: np.ndarray) -> av.VideoFrame:
    """An rgb24 image converted to yuv420p by FFmpeg (BT.601, limited range)."""
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def levels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int))


@pytest.mark.parametrize("device", DEVICES)
def test_yuv_to_rgb_matches_ffmpeg_on_real_and_colourful_frames(device):
    frames = sample_frames(2) + [encode_yuv(colourful())]
    for f in frames:
        meta = yuv_meta(f.format.name, f.colorspace)
        t = torch.from_numpy(f.to_ndarray())[None].to(device)
        ours = (yuv420p_to_rgb(t, meta["yuv_matrix"]) * 255 + 0.5).floor().byte()[0].permute(1, 2, 0).cpu().numpy()
        accurate = levels(ours, f.reformat(format="rgb24", interpolation=ACCURATE).to_ndarray())
        # (swscale still interpolates chroma horizontally at some edges: a few pixels differ more)
        assert accurate.mean() < 0.1 and (accurate > 1).mean() < 0.05 and accurate.max() <= 8
        default = levels(ours, f.to_ndarray(format="rgb24"))  # what the CPU path gets: 15-bit tables
        assert default.mean() < 1.2 and default.max() <= 3


def test_bt709_and_full_range_follow_ffmpeg():
    f = encode_yuv(colourful())
    planes = torch.from_numpy(f.to_ndarray())[None]
    ref709 = f.reformat(format="rgb24", src_colorspace="itu709", interpolation=ACCURATE).to_ndarray()
    ours709 = (yuv420p_to_rgb(planes, "bt709") * 255).round().byte()[0].permute(1, 2, 0).numpy()
    assert levels(ours709, ref709).mean() < 0.1
    ours601 = (yuv420p_to_rgb(planes, "bt601") * 255).round().byte()[0].permute(1, 2, 0).numpy()
    assert levels(ours601, ref709).mean() > 2  # the matrix matters for this colourful frame
    jpeg = av.VideoFrame.from_ndarray(colourful(), format="rgb24").reformat(format="yuvj420p")
    meta = yuv_meta("yuvj420p", jpeg.colorspace)
    assert meta["yuv_range"] == "pc"
    ours = planes_to_rgb_image(jpeg.to_ndarray(), meta)
    assert levels(ours, jpeg.reformat(format="rgb24", interpolation=ACCURATE).to_ndarray()).mean() < 0.15


@pytest.mark.parametrize("device", DEVICES)
def test_rgb_to_yuv_matches_ffmpeg(device):
    for rgb in (colourful(), sample_frames(1)[0].to_ndarray(format="rgb24")):
        h = rgb.shape[0]
        ref = encode_yuv(rgb).to_ndarray()
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div(255).to(device)
        ours = rgb_to_yuv420p(x)[0].cpu().numpy()
        assert ours.shape == ref.shape and ours.dtype == np.uint8
        assert levels(ours[:h], ref[:h]).max() <= 1  # luma: the same arithmetic
        # chroma: a 2x2 average where swscale filters a little wider; equal on flat areas
        assert levels(ours[h:], ref[h:]).mean() < 0.5


def test_round_trip_and_layout():
    rgb = colourful(64, 48)
    x = torch.from_numpy(np.stack([rgb, rgb[::-1].copy()])).permute(0, 3, 1, 2).float().div(255)
    planes = rgb_to_yuv420p(x)
    assert planes.shape == (2, 72, 64)
    back = (yuv420p_to_rgb(planes) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    assert levels(back[0], rgb).mean() < 3  # 4:2:0 loses chroma detail at the pattern's sharp edges
    assert np.array_equal(back[1], back[1].copy()) and not np.array_equal(back[0], back[1])


def test_odd_sizes_and_bad_inputs_are_clear_errors():
    with pytest.raises(InputError, match="even"):
        rgb_to_yuv420p(torch.rand(1, 3, 7, 8))
    with pytest.raises(InputError, match="uint8"):
        yuv420p_to_rgb(torch.zeros(1, 12, 8))
    with pytest.raises(InputError, match="unknown YUV matrix"):
        yuv420p_to_rgb(torch.zeros(1, 12, 8, dtype=torch.uint8), "bt999")


def test_file_source_delivers_planes_without_conversion():
    rgb_src, yuv_src = open_source(str(SAMPLE)), open_source(str(SAMPLE), pix_fmt="yuv420p")
    rgb_src.open(), yuv_src.open()
    try:
        a, b = rgb_src.read(), yuv_src.read()
    finally:
        rgb_src.close(), yuv_src.close()
    assert b.image.shape == (1080, 1280) and b.meta["pix_fmt"] == "yuv420p" and a.image.shape == (720, 1280, 3)
    assert (b.pts, b.index, b.time_base) == (a.pts, a.index, a.time_base)
    assert np.array_equal(b.image, sample_frames(1)[0].to_ndarray())
    assert levels(planes_to_rgb_image(b.image, b.meta), a.image).mean() < 1.2


def test_sink_encodes_planes_as_they_are(tmp_path):
    """libx264 at crf 0 is lossless in yuv420p: the file decodes to exactly the planes written."""
    planes = [encode_yuv(pattern_frame(i, (64, 48))).to_ndarray() for i in range(3)]
    sink = open_sink(str(tmp_path / "out.mkv"), crf=0, preset="ultrafast")
    sink.open(StreamInfo(64, 48, Fraction(1, 30), Fraction(30)))
    for i, p in enumerate(planes):
        sink.write(Frame(p, i, Fraction(1, 30), i, yuv_meta("yuv420p", None)))
    sink.close("done")
    with av.open(str(tmp_path / "out.mkv")) as c:
        got = [f.to_ndarray() for f in c.decode(video=0)]
    assert len(got) == 3 and all(np.array_equal(g, p) for g, p in zip(got, planes))


class Darken(torch.nn.Module):
    def forward(self, x):
        return 0.8 * x


@pytest.mark.parametrize("device", DEVICES)
def test_engine_converts_yuv_on_the_device_and_returns_yuv(device):
    rgb = np.stack([colourful(64, 48), pattern_frame(3, (64, 48))])
    planes = np.stack([encode_yuv(im).to_ndarray() for im in rgb])
    meta = yuv_meta("yuv420p", None)
    engine = Engine(Darken(), torch.device(device), options=EngineOptions(device_yuv=True))
    frames = [Frame(p, i, Fraction(1, 25), i, dict(meta)) for i, p in enumerate(planes)]
    out = engine.submit(frames) + engine.drain()
    got = np.stack([f.image for batch in out for f in batch])
    assert got.shape == planes.shape and all(f.meta["pix_fmt"] == "yuv420p" for b in out for f in b)
    # the same as converting on the host, darkening, and letting FFmpeg convert back
    host_rgb = np.stack([planes_to_rgb_image(p, meta) for p in planes])
    expected = np.stack([encode_yuv((0.8 * im + 0.5).astype(np.uint8)).to_ndarray() for im in host_rgb])
    assert levels(got, expected).mean() < 0.7 and levels(got[:, :48], expected[:, :48]).max() <= 2


def test_video_through_the_yuv_path_matches_the_rgb_path(tmp_path):
    from streamdehaze.api import build_pipeline
    from streamdehaze.pipeline.speed import SpeedSettings

    outs = {}
    for yuv in (False, True):
        speed = SpeedSettings(work_size="full", device_yuv=yuv)
        pipe = build_pipeline(SAMPLE, tmp_path / f"{yuv}.mkv", Darken(), max_frames=3, speed=speed)
        assert (pipe.source.pix_fmt == "yuv420p") == yuv
        pipe.run()
        with av.open(str(tmp_path / f"{yuv}.mkv")) as c:
            outs[yuv] = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    assert outs[True].shape == outs[False].shape == (3, 720, 1280, 3)
    # two conversions each way, ~1 level apart per swscale conversion, plus the encoder's rounding
    assert levels(outs[True], outs[False]).mean() < 1.5


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("colorspace, color_range", [(1, 1), (1, 2), (9, 1)], ids=["bt709", "bt709-full", "bt2020"])
def test_engine_converts_back_with_the_sources_matrix_and_range(device, colorspace, color_range):
    """An identity model gives back the planes it got: the way back uses the matrix of the way in."""
    meta = yuv_meta("yuv420p", colorspace, color_range)
    assert meta["yuv_matrix"] == ("bt709" if colorspace == 1 else "bt2020")
    assert meta["yuv_range"] == ("pc" if color_range == 2 else "tv")
    rgb = torch.from_numpy(np.stack([colourful(64, 48), pattern_frame(3, (64, 48))])).permute(0, 3, 1, 2)
    planes = rgb_to_yuv420p(rgb.float() / 255, meta["yuv_matrix"], meta["yuv_range"] == "pc").numpy()
    engine = Engine(torch.nn.Identity(), torch.device(device), options=EngineOptions(device_yuv=True))
    frames = [Frame(p, i, Fraction(1, 25), i, dict(meta)) for i, p in enumerate(planes)]
    got = np.stack([f.image for batch in engine.submit(frames) + engine.drain() for f in batch])
    assert levels(got, planes).max() <= 1
