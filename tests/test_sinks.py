"""Sinks: file -> file round trips (frames, VFR timestamps, audio bytes, rotation), finalisation
states, validation before work, odd sizes, image folders."""

from __future__ import annotations

import os
from fractions import Fraction

import av
import media
import numpy as np
import pytest

from streamdehaze.errors import EncodeError, InputError
from streamdehaze.frames import Frame, StreamInfo
from streamdehaze.io.sinks import ImageSink, NullSink, VideoFileSink, open_sink
from streamdehaze.io.sources import open_source


def transcode(src_path, out_path, limit=None, status="done", **sink_opts):
    """FileSource -> sink, like the pipeline without a model; returns (info, frames read, sink)."""
    source = open_source(str(src_path), start=sink_opts.get("start"))
    info = source.open()
    sink = open_sink(str(out_path), **sink_opts)
    sink.open(info)
    frames = []
    for frame in source:
        if limit is not None and len(frames) == limit:
            break
        sink.write(frame)
        frames.append(frame)
    source.close()
    sink.close(status)
    return info, frames, sink


def leftovers(folder):
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("ext", ["mp4", "mkv", "mov"])
def test_frames_in_equal_frames_out(tmp_path, ext):
    src = media.make_clip(tmp_path / "in.mp4", 24, size=(64, 48), fps=12)
    _, frames, sink = transcode(src, tmp_path / f"out.{ext}")
    out = media.read_video(tmp_path / f"out.{ext}")
    assert sink.frames_written == len(frames) == len(out) == 24
    assert [media.read_index(img) for _, _, img in out] == list(range(24))
    # crf 18 on a smooth pattern: close to the input frames
    err = np.mean([np.abs(a.image.astype(int) - b.astype(int)).mean() for a, (_, _, b) in zip(frames, out)])
    assert err < 6
    assert leftovers(tmp_path) == sorted(["in.mp4", f"out.{ext}"])  # no temporary file left


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_vfr_pts_and_audio_bytes_kept(tmp_path, ext):
    src = media.make_clip(tmp_path / f"in.{ext}", 30, vfr=True, audio=True)
    out = tmp_path / f"out.{ext}"
    _, frames, _ = transcode(src, out, audio_from=str(src))
    assert media.video_times(out) == pytest.approx([f.time for f in frames], abs=1e-9)
    assert [round(t * 1000) for t in media.video_times(out)] == media.vfr_pts_ms(30)
    packets_in, packets_out = media.audio_packets(src), media.audio_packets(out)
    assert len(packets_in) > 15 and packets_out == packets_in
    assert media.probe(out)["streams"] == ["video", "audio"]


def test_audio_interleaved_with_video(tmp_path):
    src = media.make_clip(tmp_path / "in.mp4", 30, fps=15, audio=True)
    out = tmp_path / "out.mp4"
    transcode(src, out, audio_from=str(src))
    with av.open(str(out)) as c:  # decode order (B-frames): compare dts, which mp4 stores
        times = [(p.stream.type, float(p.dts * p.time_base)) for p in c.demux() if p.dts is not None]
    kinds = [k for k, _ in times]
    first_audio = kinds.index("audio")
    assert first_audio < 5 and "video" in kinds[first_audio:]  # mixed, not all audio after all video
    # Demux order follows time within a small interleaving window.
    assert max(a - b for (_, a), (_, b) in zip(times, times[1:])) < 0.2


def test_start_and_duration_restrict_audio(tmp_path):
    src = media.make_clip(tmp_path / "in.mkv", 40, fps=20, audio=True, gop=5)
    out = tmp_path / "out.mkv"
    source = open_source(str(src), start=0.5)
    info = source.open()
    sink = open_sink(str(out), audio_from=str(src), start=0.5, duration=0.5)
    sink.open(info)
    for frame in source:
        if frame.time >= 1.0:
            break
        sink.write(frame)
    source.close()
    sink.close()
    times = media.video_times(out)
    assert len(times) == 10 and times[0] == pytest.approx(0.0) and times[-1] == pytest.approx(0.45)
    packets_in, packets_out = media.audio_packets(src), media.audio_packets(out)
    assert 0 < len(packets_out) < len(packets_in)
    at = packets_in.index(packets_out[0])
    assert packets_in[at : at + len(packets_out)] == packets_out  # a contiguous, byte-identical slice
    with av.open(str(out)) as c:
        audio_times = [float(p.pts * p.time_base) for p in c.demux(audio=0) if p.dts is not None]
    assert audio_times[0] >= 0 and audio_times[-1] < 0.5


@pytest.mark.parametrize("rotation", [90, 180])
def test_rotation_kept(tmp_path, rotation):
    src = media.make_clip(tmp_path / "in.mp4", 4, rotation=rotation)
    transcode(src, tmp_path / "out.mp4")
    assert media.probe(tmp_path / "out.mp4")["rotation"] == rotation


def test_failed_leaves_nothing(tmp_path):
    src = media.make_clip(tmp_path / "in.mp4", 20, audio=True)
    (tmp_path / "out").mkdir()
    _, _, sink = transcode(src, tmp_path / "out" / "x.mp4", limit=8, status="failed", audio_from=str(src))
    assert sink.frames_written == 8 and leftovers(tmp_path / "out") == []


def test_interrupted_is_playable_up_to_last_frame(tmp_path):
    src = media.make_clip(tmp_path / "in.mp4", 30, fps=15, audio=True)
    out = tmp_path / "out.mp4"
    _, frames, _ = transcode(src, out, limit=10, status="interrupted", audio_from=str(src))
    decoded = media.read_video(out)
    assert [media.read_index(img) for _, _, img in decoded] == list(range(10))
    with av.open(str(out)) as c:
        last_audio = max(float(p.pts * p.time_base) for p in c.demux(audio=0) if p.dts is not None)
    assert last_audio <= frames[-1].time + 1 / 15 + 1e-6  # no audio past the last frame
    assert leftovers(tmp_path) == ["in.mp4", "out.mp4"]


def test_temp_name_until_close(tmp_path):
    src = media.make_clip(tmp_path / "in.mkv", 30)  # enough frames to pass the encoder's lookahead
    source = open_source(str(src))
    sink = open_sink(str(tmp_path / "out.mkv"))
    sink.open(source.open())
    for frame in source:
        sink.write(frame)
    assert not (tmp_path / "out.mkv").exists() and os.path.exists(sink.tmp_path)
    sink.close()
    sink.close()  # idempotent
    assert (tmp_path / "out.mkv").exists() and not os.path.exists(sink.tmp_path)


def test_done_without_frames_is_an_error(tmp_path):
    sink = open_sink(str(tmp_path / "x.mp4"))
    sink.open(StreamInfo(64, 48, Fraction(1, 25), frame_rate=Fraction(25)))
    with pytest.raises(EncodeError, match="no frame"):
        sink.close("done")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("path", "opts", "match"),
    [
        ("out.xyz", {}, "unknown output extension"),
        ("out", {}, "unknown output extension"),
        ("out.mp4", {"codec": "nosuchcodec"}, "unknown video encoder"),
        ("out.mp4", {"codec": "aac"}, "audio encoder"),
        ("out.webm", {"codec": "libx264"}, "cannot hold libx264"),
    ],
)
def test_validation_before_any_work(tmp_path, path, opts, match):
    with pytest.raises(EncodeError, match=match):
        open_sink(str(tmp_path / path), **opts)
    assert leftovers(tmp_path) == []


def test_audio_the_container_cannot_hold(tmp_path):
    src = media.make_clip(tmp_path / "in.mp4", 3, audio=True)
    with pytest.raises(EncodeError, match="cannot hold the aac audio"):
        open_sink(str(tmp_path / "out.webm"), codec="libvpx-vp9", audio_from=str(src))
    with pytest.raises(InputError, match="audio source not found"):
        open_sink(str(tmp_path / "out.mp4"), audio_from=str(tmp_path / "missing.mp4"))


def test_odd_size_is_padded(tmp_path):
    images = [media.pattern_frame(i, (63, 49)) for i in range(3)]
    sink = open_sink(str(tmp_path / "odd.mkv"))
    sink.open(StreamInfo(63, 49, Fraction(1, 25), frame_rate=Fraction(25)))
    for i, img in enumerate(images):
        sink.write(Frame(image=img, pts=i, time_base=Fraction(1, 25), index=i))
    sink.close()
    assert isinstance(sink, VideoFileSink) and sink.padding == (1, 1)
    out = media.read_video(tmp_path / "odd.mkv")
    assert out[0][2].shape == (50, 64, 3)
    assert [media.read_index(img[:49, :63]) for _, _, img in out] == [0, 1, 2]
    assert np.abs(out[1][2][:49, :63].astype(int) - images[1].astype(int)).mean() < 6
    assert np.abs(out[1][2][49, :63].astype(int) - images[1][48].astype(int)).mean() < 12  # edge repeated
    assert np.abs(out[1][2][:49, 63].astype(int) - images[1][:, 62].astype(int)).mean() < 12


def test_live_source_to_file(tmp_path):
    source = open_source("lavfi:testsrc2=size=64x48:rate=30:duration=0.3", timeout=2.0)
    out = tmp_path / "live.mp4"
    sink = open_sink(str(out))
    sink.open(source.open())
    for frame in source:
        sink.write(frame)
    source.close()
    sink.close("interrupted")
    times = media.video_times(out)
    assert len(times) == 9 and np.allclose(np.diff(times), 1 / 30)


def test_image_sink_round_trip(tmp_path):
    src = media.make_clip(tmp_path / "in.mp4", 12)
    _, frames, sink = transcode(src, f"{tmp_path / 'frames'}/")
    assert isinstance(sink, ImageSink) and sink.frames_written == 12
    assert leftovers(tmp_path / "frames") == [f"{i:06d}.png" for i in range(12)]
    with open_source(str(tmp_path / "frames")) as images:
        back = list(images)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(frames, back, strict=True))  # PNG is lossless


def test_image_sink_pattern_and_failed(tmp_path):
    src = media.make_clip(tmp_path / "in.mp4", 4)
    transcode(src, str(tmp_path / "jpg" / "f_%03d.jpg"))
    assert leftovers(tmp_path / "jpg") == ["f_000.jpg", "f_001.jpg", "f_002.jpg", "f_003.jpg"]
    transcode(src, str(tmp_path / "new" / "deeper") + "/", status="failed")
    assert not (tmp_path / "new").exists()
    with pytest.raises(EncodeError, match="%d"):
        open_sink(str(tmp_path / "x.png"))


def test_null_sink_counts(tmp_path):
    src = media.make_clip(tmp_path / "in.mp4", 6)
    _, _, sink = transcode(src, "null")
    assert isinstance(sink, NullSink) and sink.frames_written == 6
