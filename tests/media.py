"""Test media made on the fly with PyAV: test-pattern clips (optionally VFR, with AAC audio, with
rotation metadata), damaged copies, and readers that give back frames, timestamps and packets.

Every frame carries its index as 8 black/white blocks along its bottom edge, which survive H.264
compression even at 64x48, so tests can check order and drops with :func:`read_index`.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# Durations (ms) cycled through for variable frame rate clips: irregular on purpose.
VFR_STEPS_MS = (40, 20, 60, 33, 47, 100, 25)
INDEX_BITS = 8


def pattern_frame(index: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """Frame ``index`` of the test pattern: ``(H, W, 3) uint8`` RGB.

    Smooth colour gradients that drift with ``index`` over the top, ``INDEX_BITS`` blocks at the
    bottom encoding ``index`` in binary (most significant bit first; white = 1, dark grey = 0).
    Nothing in it is darker than 20 levels in every channel, as in hazy footage: a frame with black
    in it would be clear to the guard rails, which then leave it as it is (``ops.guard``).
    """
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[..., 0] = 128 + 100 * np.sin((x + 3 * index) / max(w, 1) * 2 * np.pi)
    img[..., 1] = 40 + 170 * y / max(h - 1, 1)
    img[..., 2] = (64 + 5 * index) % 200 + 20
    bar = max(h // 6, 2)
    block = w // INDEX_BITS
    for bit in range(INDEX_BITS):
        on = (index >> (INDEX_BITS - 1 - bit)) & 1
        img[h - bar :, bit * block : (bit + 1) * block] = 255 if on else 40
    return np.clip(img, 0, 255).astype(np.uint8)


def read_index(image: np.ndarray) -> int:
    """The index encoded by :func:`pattern_frame` in a (possibly compressed) ``(H, W, 3)`` frame."""
    h, w = image.shape[:2]
    bar = max(h // 6, 2)
    block = w // INDEX_BITS
    value = 0
    for bit in range(INDEX_BITS):
        # Centre of each block only: compression blurs the block borders.
        cell = image[h - bar + bar // 4 : h - bar // 4, bit * block + block // 4 : (bit + 1) * block - block // 4]
        value = (value << 1) | int(cell.mean() > 127)
    return value


def vfr_pts_ms(n_frames: int) -> list[int]:
    """Presentation times in milliseconds of a VFR clip's frames (first frame at 0)."""
    pts, t = [], 0
    for i in range(n_frames):
        pts.append(t)
        t += VFR_STEPS_MS[i % len(VFR_STEPS_MS)]
    return pts


def _add_audio(out: av.container.OutputContainer, seconds: float, rate: int = 16000):
    stream = out.add_stream("aac", rate=rate, layout="mono")
    frames = []
    n = int(seconds * rate) + 1024
    t = np.arange(n) / rate
    tone = (0.3 * np.sin(2 * np.pi * (220 + 200 * t) * t)).astype(np.float32)  # chirp: packets all differ
    for k, start in enumerate(range(0, n - 1023, 1024)):
        frame = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = k * 1024
        frame.time_base = Fraction(1, rate)
        frames.append(frame)
    return stream, frames


def make_clip(
    path: str | os.PathLike,
    n_frames: int = 10,
    size: tuple[int, int] = (64, 48),
    fps: int = 25,
    vfr: bool = False,
    audio: bool = False,
    rotation: int = 0,
    codec: str = "libx264",
    gop: int | None = None,
    first: int = 0,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write a test clip of ``n_frames`` :func:`pattern_frame` frames and return its path.

    ``vfr``: irregular frame durations from ``VFR_STEPS_MS`` in a 1/1000 time base (see
    :func:`vfr_pts_ms`); otherwise constant ``fps``. ``audio``: adds an AAC mono track (a chirp)
    covering the video. ``rotation``: display-matrix rotation in degrees. ``gop``: keyframe
    interval in frames (default: ``fps``). The container follows the extension (.mp4, .mkv, ...).
    ``first``: index and pts of the first frame (a later segment of one recording; constant rate
    only); ``metadata``: container tags (e.g. ``creation_time``).
    """
    path = Path(path)
    time_base = Fraction(1, 1000) if vfr else Fraction(1, fps)
    pts = vfr_pts_ms(n_frames) if vfr else list(range(first, first + n_frames))
    with av.open(str(path), "w") as out:
        out.metadata.update(metadata or {})
        video = out.add_stream(codec, rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = time_base
        video.time_base = time_base
        video.codec_context.gop_size = gop or fps
        if codec == "libx264":
            video.codec_context.options = {"preset": "ultrafast", "crf": "18"}
        if rotation:
            video.set_display_rotation(rotation)
        seconds = float((pts[-1] + (VFR_STEPS_MS[0] if vfr else 1)) * time_base) if n_frames else 0.0
        audio_stream, audio_frames = _add_audio(out, seconds) if audio else (None, [])
        pending = list(audio_frames)
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(pattern_frame(first + i, size), format="rgb24")
            frame.pts, frame.time_base = pts[i], time_base
            out.mux(video.encode(frame))
            while pending and pending[0].pts / pending[0].sample_rate <= float(pts[i] * time_base):
                out.mux(audio_stream.encode(pending.pop(0)))
        out.mux(video.encode(None))
        for frame in pending:
            out.mux(audio_stream.encode(frame))
        if audio_stream is not None:
            out.mux(audio_stream.encode(None))
    return path


def make_clip_with_track(path: str | os.PathLike, kind: str, n_frames: int = 10, size=(64, 48), fps: int = 25) -> Path:
    """A clip of :func:`pattern_frame` frames plus a text track, as dashcams store GPS: ``kind`` ``subrip``
    (a subtitle track, .mkv), ``mov_text`` (a subtitle track, .mp4/.mov) or ``klv`` (a data track, .ts).

    Every 5th frame gets a packet ``GPS <i> 52.1N 4.3E`` (payloads: :func:`track_packets`).
    """
    path = Path(path)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = video.time_base = Fraction(1, fps)
        video.codec_context.options = {"preset": "ultrafast", "crf": "18"}
        track = out.add_data_stream(kind) if kind == "klv" else out.add_mux_stream(kind)
        track.time_base = Fraction(1, 1000)
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(pattern_frame(i, size), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(video.encode(frame))
            if i % 5 == 0:
                text = f"GPS {i} 52.1N 4.3E".encode()
                if kind == "mov_text":
                    text = len(text).to_bytes(2, "big") + text  # tx3g: a 16-bit length, then the text
                packet = av.Packet(text)
                packet.stream, packet.time_base = track, Fraction(1, 1000)
                packet.pts = packet.dts = round(i * 1000 / fps)
                packet.duration = round(1000 / fps)  # within the video: mkv takes its duration from all tracks
                out.mux(packet)
        out.mux(video.encode(None))
    return path


def track_packets(path: str | os.PathLike, kind: str) -> list[bytes]:
    """Payloads of the packets of ``path``'s first ``kind`` (``subtitle`` or ``data``) stream, in demux order.

    Empty tx3g samples (``00 00``), which the mp4/mov muxer writes into the gaps between subtitles, are left out.
    """
    with av.open(str(path)) as inp:
        streams = [s for s in inp.streams if s.type == kind]
        if not streams:
            return []
        return [bytes(p) for p in inp.demux(streams[0]) if p.size and bytes(p) != b"\x00\x00"]


def make_images(folder: str | os.PathLike, n: int, size=(64, 48), name: str = "frame_{}.png") -> list[Path]:
    """Write ``n`` pattern frames as images ``name.format(i)`` (unpadded numbers) into ``folder``."""
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / name.format(i)
        cv2.imwrite(str(p), cv2.cvtColor(pattern_frame(i, size), cv2.COLOR_RGB2BGR))
        paths.append(p)
    return paths


def truncate(src: str | os.PathLike, dst: str | os.PathLike, keep: float = 0.6) -> Path:
    """Copy the first ``keep`` fraction of ``src``'s bytes to ``dst`` (a download cut short)."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * keep)])
    return Path(dst)


def corrupt(src: str | os.PathLike, dst: str | os.PathLike, start: float = 0.0, length: int = 4096) -> Path:
    """Copy ``src`` to ``dst`` with ``length`` bytes from fraction ``start`` replaced by noise."""
    data = bytearray(Path(src).read_bytes())
    at = int(len(data) * start)
    noise = np.random.default_rng(0).integers(0, 256, size=min(length, len(data) - at), dtype=np.uint8)
    data[at : at + len(noise)] = noise.tobytes()
    Path(dst).write_bytes(bytes(data))
    return Path(dst)


def read_video(path: str | os.PathLike) -> list[tuple[int | None, Fraction, np.ndarray]]:
    """All decoded video frames of ``path`` as ``(pts, time_base, (H, W, 3) uint8 RGB)``."""
    with av.open(str(path)) as inp:
        return [(f.pts, f.time_base, f.to_ndarray(format="rgb24")) for f in inp.decode(video=0)]


def video_times(path: str | os.PathLike) -> list[float]:
    """Presentation times in seconds of all decoded video frames of ``path``."""
    return [float(pts * tb) for pts, tb, _ in read_video(path)]


def audio_packets(path: str | os.PathLike) -> list[bytes]:
    """Payloads of all audio packets of ``path``'s first audio stream, in demux order."""
    with av.open(str(path)) as inp:
        if not inp.streams.audio:
            return []
        return [bytes(p) for p in inp.demux(inp.streams.audio[0]) if p.size]


def probe(path: str | os.PathLike) -> dict:
    """A few facts about ``path``: stream types, video size, frame count, rotation of the first frame."""
    with av.open(str(path)) as inp:
        kinds = [s.type for s in inp.streams]
        first = next(inp.decode(video=0), None) if inp.streams.video else None
        return {
            "streams": kinds,
            "size": None if first is None else (first.width, first.height),
            "rotation": 0 if first is None else int(first.rotation) % 360,
        }


# Flat colour patches (RGB) side by side in :func:`make_colour_clip`: saturated, mid and near-black/white.
COLOUR_PATCHES = ((199, 58, 39), (40, 160, 220), (230, 220, 60), (60, 60, 60), (20, 200, 40), (240, 240, 240))
# FFmpeg's numbers for the tags: (matrix AVColorSpace, primaries, transfer)
COLOUR_TAGS = {"bt709": (1, 1, 1), "bt601": (6, 6, 6), "bt2020": (9, 9, 18)}  # bt2020: HLG, as HDR phones record


def colour_patches_image(size: tuple[int, int] = (192, 64)) -> np.ndarray:
    """``(H, W, 3) uint8`` RGB: :data:`COLOUR_PATCHES` as vertical stripes of equal width."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    n = len(COLOUR_PATCHES)
    for i, c in enumerate(COLOUR_PATCHES):
        img[:, i * w // n : (i + 1) * w // n] = c
    return img


def patch_centres(image: np.ndarray) -> np.ndarray:
    """``(len(COLOUR_PATCHES), 3)`` int: the mean colour of the middle of each stripe of an ``(H, W, 3)`` image."""
    h, w = image.shape[:2]
    n = len(COLOUR_PATCHES)
    out = []
    for i in range(n):
        x0, x1 = i * w // n, (i + 1) * w // n
        q = (x1 - x0) // 4
        out.append(image[h // 4 : 3 * h // 4, x0 + q : x1 - q].reshape(-1, 3).mean(0))
    return np.rint(np.array(out)).astype(int)


def make_colour_clip(
    path: str | os.PathLike,
    matrix: str = "bt709",
    full_range: bool = False,
    n_frames: int = 3,
    size: tuple[int, int] = (192, 64),
    pix_fmt: str = "yuv420p",
) -> Path:
    """A lossless H.264 clip of :func:`colour_patches_image`, converted to YUV with ``matrix`` and
    range exactly (float arithmetic, not swscale's tables) and tagged with them: what a camera writes.

    ``pix_fmt="yuv420p10le"`` writes 10-bit video (the 8-bit levels shifted left by 2).
    """
    import torch

    from streamdehaze.ops.yuv import rgb_to_yuv420p

    rgb = torch.from_numpy(colour_patches_image(size)).permute(2, 0, 1)[None].float() / 255
    planes = rgb_to_yuv420p(rgb, matrix, full_range)[0].numpy()
    path = Path(path)
    cs, primaries, trc = COLOUR_TAGS[matrix]
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height = size
        video.pix_fmt = pix_fmt
        cc = video.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc = cs, primaries, trc
        cc.color_range = 2 if full_range else 1
        cc.options = {"preset": "ultrafast", "qp": "0"}  # lossless: the file holds exactly these levels
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            if pix_fmt != "yuv420p":
                frame = av.VideoFrame.from_ndarray(planes.astype(np.uint16) << 2, format=pix_fmt)
            frame.colorspace, frame.color_primaries, frame.color_trc = cs, primaries, trc
            frame.color_range = 2 if full_range else 1
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return path


def colour_tags(path: str | os.PathLike) -> dict[str, int]:
    """The first video stream's colour tags as FFmpeg numbers (what a player reads)."""
    with av.open(str(path)) as inp:
        cc = inp.streams.video[0].codec_context
        return {
            "matrix": cc.colorspace,
            "primaries": cc.color_primaries,
            "transfer": cc.color_trc,
            "range": cc.color_range,
        }


def read_rgb_as_tagged(path: str | os.PathLike, matrix: str, full_range: bool) -> list[np.ndarray]:
    """Every frame's planes of ``path`` converted to ``(H, W, 3) uint8`` RGB exactly (float arithmetic)
    with ``matrix`` and range: what a player that trusts those tags shows."""
    import torch

    from streamdehaze.ops.yuv import yuv420p_to_rgb

    out = []
    with av.open(str(path)) as inp:
        for f in inp.decode(video=0):
            assert f.format.name in ("yuv420p", "yuvj420p"), f.format.name  # our output is 8-bit 4:2:0
            planes = f.to_ndarray()
            rgb = yuv420p_to_rgb(torch.from_numpy(planes)[None], matrix, full_range)
            out.append(rgb.mul(255).add(0.5).floor().byte()[0].permute(1, 2, 0).numpy())
    return out
