"""Sources: files (frames, timestamps, rotation, seeking, damaged inputs), live lavfi/webcam, images."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import av
import cv2
import media
import numpy as np
import pytest

from streamdehaze.errors import DecodeError, InputError, SourceError
from streamdehaze.io.base import LIVE_TIME_BASE
from streamdehaze.io.colour import DECODE_FLAGS
from streamdehaze.io.sources import FileSource, ImageSource, RtspSource, WebcamSource, open_source


def read_all(source):
    info = source.open()
    try:
        return info, list(source)
    finally:
        source.close()


# -- files -------------------------------------------------------------------------------------
@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_file_frames_pts_and_info(tmp_path, ext):
    path = media.make_clip(tmp_path / f"c.{ext}", 20, size=(64, 48), fps=10)
    info, frames = read_all(open_source(str(path)))
    reference = media.read_video(path)
    assert [media.read_index(f.image) for f in frames] == list(range(20))
    assert [f.index for f in frames] == list(range(20))
    assert [(f.pts, f.time_base) for f in frames] == [(p, tb) for p, tb, _ in reference]
    # each frame converted exactly as io/colour.py documents: the file's matrix, exact rounding
    with av.open(str(path)) as c:
        exact = [f.reformat(format="rgb24", interpolation=DECODE_FLAGS).to_ndarray() for f in c.decode(video=0)]
    assert all(np.array_equal(f.image, ref) for f, ref in zip(frames, exact, strict=True))
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image.dtype == np.uint8
    assert (info.width, info.height, info.is_live, info.rotation) == (64, 48, False, 0)
    assert info.frame_rate == 10 and info.duration == pytest.approx(2.0, abs=0.05)
    assert info.frame_count == (20 if ext == "mp4" else None)  # mkv does not store a frame count


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_vfr_timestamps_kept(tmp_path, ext):
    path = media.make_clip(tmp_path / f"v.{ext}", 15, vfr=True)
    _, frames = read_all(FileSource(str(path)))
    assert [round(f.time * 1000) for f in frames] == media.vfr_pts_ms(15)


@pytest.mark.parametrize("rotation", [0, 90, 270])
def test_rotation_from_display_matrix(tmp_path, rotation):
    path = media.make_clip(tmp_path / "r.mp4", 3, rotation=rotation)
    info, frames = read_all(FileSource(str(path)))
    assert info.rotation == rotation
    assert frames[0].image.shape == (48, 64, 3)  # pixels are not rotated; the sink keeps the metadata


def test_start_seeks_and_skips(tmp_path):
    path = media.make_clip(tmp_path / "s.mp4", 30, fps=10, gop=10)
    info, frames = read_all(open_source(str(path), start=1.25))
    assert [media.read_index(f.image) for f in frames] == list(range(13, 30))
    assert frames[0].time == pytest.approx(1.3) and frames[0].index == 0
    assert info.duration == pytest.approx(1.75, abs=0.01) and info.frame_count == 18  # estimate from the rate


def test_threads_off_gives_same_frames(tmp_path):
    path = media.make_clip(tmp_path / "t.mp4", 8)
    _, a = read_all(FileSource(str(path), threads=True))
    _, b = read_all(FileSource(str(path), threads=False))
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))


def test_missing_file(tmp_path):
    with pytest.raises(SourceError, match="not found") as err:
        open_source(str(tmp_path / "nope.mp4")).open()
    assert "\n" not in str(err.value)


def test_text_file_is_not_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    with pytest.raises(DecodeError, match="not a video file"):
        FileSource(str(path)).open()


def test_audio_only_file(tmp_path):
    path = tmp_path / "a.m4a"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(SourceError, match=r"no video stream \(streams: audio\)"):
        FileSource(str(path)).open()


def test_truncated_mp4_fails_at_open(tmp_path):
    path = media.truncate(media.make_clip(tmp_path / "c.mp4", 30), tmp_path / "cut.mp4", 0.6)
    with pytest.raises(DecodeError, match="truncated"):
        FileSource(str(path)).open()


def test_truncated_mkv_reports_frames_read(tmp_path):
    path = media.truncate(media.make_clip(tmp_path / "c.mkv", 30), tmp_path / "cut.mkv", 0.6)
    source = FileSource(str(path))
    source.open()
    frames = []
    with pytest.raises(DecodeError, match=r"ended early: read (\d+) frames") as err:
        while (f := source.read()) is not None:
            frames.append(f)
    assert 0 < len(frames) < 30 and f"read {len(frames)} frames" in str(err.value)
    source.close()


def test_corrupt_mp4_raises_decode_error(tmp_path):
    path = media.corrupt(media.make_clip(tmp_path / "c.mp4", 30), tmp_path / "bad.mp4", start=0.3, length=2000)
    source = FileSource(str(path))
    with pytest.raises(DecodeError, match="corrupt"):
        source.open()
        while source.read() is not None:
            pass
    source.close()


def test_close_is_idempotent_and_read_after_close(tmp_path):
    source = FileSource(str(media.make_clip(tmp_path / "c.mp4", 5)))
    source.open()
    assert source.read() is not None
    source.close()
    source.close()
    assert source.read() is None


# -- factory -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("rtsp://127.0.0.1:1/x", RtspSource),
        ("webcam:0", WebcamSource),
        ("/dev/video3", WebcamSource),
        ("lavfi:testsrc2=size=64x48:rate=5", WebcamSource),
        ("clip.mp4", FileSource),
        ("shots/*.png", ImageSource),
        ("photo.jpg", ImageSource),
    ],
)
def test_open_source_dispatch_does_not_open(spec, kind):
    source = open_source(spec)  # none of these exist: constructing must not touch them
    assert isinstance(source, kind)
    assert source.is_live == (kind in (RtspSource, WebcamSource))


def test_open_source_rejects_bad_options():
    with pytest.raises(InputError):
        open_source("")
    with pytest.raises(InputError):
        open_source("a.mp4", start=-1)
    with pytest.raises(InputError):
        open_source("webcam:x")


# -- live: lavfi test source and webcams -------------------------------------------------------
def test_lavfi_live_source_paced_with_monotonic_pts():
    source = open_source("lavfi:testsrc2=size=64x48:rate=30:duration=0.5", timeout=2.0)
    t0 = time.monotonic()
    info, frames = read_all(source)
    elapsed = time.monotonic() - t0
    assert info.is_live and source.is_live and info.time_base == LIVE_TIME_BASE
    assert (info.width, info.height, info.frame_rate) == (64, 48, 30)
    assert len(frames) == 15 and [f.index for f in frames] == list(range(15))
    steps = np.diff([f.pts for f in frames])
    assert frames[0].pts == 0 and np.all(steps == 3000)  # 1/30 s in 1/90000 from the source clock
    assert elapsed > 0.35  # paced to real time, not decoded as fast as possible
    assert all(f.time_base == Fraction(1, 90000) for f in frames)


def test_close_from_another_thread_stops_live_read():
    source = open_source("lavfi:testsrc2=size=64x48:rate=20", timeout=2.0)
    source.open()
    got = []

    def reader():
        while (f := source.read()) is not None:
            got.append(f)

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.3)
    source.close()
    thread.join(timeout=3)
    assert not thread.is_alive() and len(got) >= 2


def test_missing_webcam_names_what_was_tried():
    with pytest.raises(SourceError) as err:
        WebcamSource("webcam:57").open()
    message = str(err.value)
    assert "/dev/video57" in message and "v4l2" in message and "OpenCV" in message and "\n" not in message


def test_bad_lavfi_graph():
    with pytest.raises(InputError, match="bad lavfi graph"):
        open_source("lavfi:nosuchfilter=1").open()


# -- image sequences ---------------------------------------------------------------------------
def test_image_folder_natural_order_and_pts(tmp_path):
    media.make_images(tmp_path / "seq", 12)  # frame_0.png ... frame_11.png: lexical order would be wrong
    (tmp_path / "seq" / "notes.txt").write_text("ignored")
    info, frames = read_all(open_source(str(tmp_path / "seq"), fps=10))
    assert [media.read_index(f.image) for f in frames] == list(range(12))
    assert [f.pts for f in frames] == list(range(12)) and frames[0].time_base == Fraction(1, 10)
    assert (info.frame_count, info.frame_rate, info.duration) == (12, 10, pytest.approx(1.2))
    expected = cv2.cvtColor(cv2.imread(str(tmp_path / "seq" / "frame_3.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(frames[3].image, expected)


def test_image_glob_and_start(tmp_path):
    media.make_images(tmp_path, 6)
    _, frames = read_all(open_source(str(tmp_path / "frame_*.png"), start=0.4, fps=5))
    assert [media.read_index(f.image) for f in frames] == [2, 3, 4, 5]
    assert [f.pts for f in frames] == [2, 3, 4, 5] and frames[0].index == 0


def test_image_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images found"):
        open_source(str(tmp_path / "empty")).open()
    media.make_images(tmp_path / "mixed", 2)
    media.make_images(tmp_path / "mixed", 1, size=(32, 32), name="frame_9.png")
    with pytest.raises(InputError, match="share one size"):
        read_all(open_source(str(tmp_path / "mixed")))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DecodeError, match="cannot read image"):
        open_source(str(tmp_path / "bad")).open()


def test_rtsp_password_not_in_messages():
    source = open_source("rtsp://bob:s3cret@127.0.0.1:9/cam", timeout=1.0)  # port 9 (discard): refused
    with pytest.raises(SourceError) as err:
        source.open()
    assert "s3cret" not in str(err.value) + repr(source) and "bob:***@" in str(err.value)
