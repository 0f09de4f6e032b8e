"""``streamdehaze run`` and ``dehaze_video``: real files through the real pipeline, errors, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import av
import pytest
import torch
from children import default_sigint
from click.testing import CliRunner
from media import audio_packets, make_clip, read_index, read_video, truncate, video_times

from streamdehaze import dehaze_video
from streamdehaze.cli import main
from streamdehaze.nets.aecrnet import AECRNet
from streamdehaze.weights import save_weights

CLI = [sys.executable, "-c", "from streamdehaze.cli import entry; entry()"]  # what the streamdehaze script runs


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def files_in(folder: Path) -> set[str]:
    """Every entry, hidden temporaries included."""
    return {p.name for p in folder.iterdir()}


def wrote(output: str) -> int:
    m = re.search(r"wrote (\d+) frames", output)
    assert m, output
    return int(m.group(1))


@pytest.fixture(scope="module")
def vfr_clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("in") / "vfr.mp4", n_frames=10, vfr=True, audio=True)


def test_run_keeps_every_frame_its_timestamp_and_the_audio(vfr_clip, tmp_path):
    out = tmp_path / "out.mp4"
    args = ["run", str(vfr_clip), "-o", str(out), "--model", "dcp", "--batch", "4", "--device", "cpu"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert wrote(result.output) == 10 and "done:" in result.output
    assert re.search(rf"on CPU \([^)]*, {torch.get_num_threads()} threads?\)", result.output)  # and its threads
    for stage in ("decode", "inference", "encode"):
        assert re.search(rf"{stage}\s+\S\s+10\s", result.output), result.output  # per-stage frame counts
    assert video_times(out) == pytest.approx(video_times(vfr_clip), abs=1e-3)
    assert audio_packets(out) == audio_packets(vfr_clip)
    assert files_in(tmp_path) == {"out.mp4"}


def test_run_start_and_duration_select_frames_in_order(tmp_path):
    clip = make_clip(tmp_path / "c25.mp4", n_frames=30, fps=25)
    out = tmp_path / "cut.mp4"
    args = ["run", str(clip), "-o", str(out), "--model", "dcp", "--start", "0.2", "--duration", "0:00.2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    frames = read_video(out)
    assert [read_index(img) for _, _, img in frames] == [5, 6, 7, 8, 9]  # frames at 0.2 s up to 0.4 s
    assert video_times(out) == pytest.approx([0.0, 0.04, 0.08, 0.12, 0.16], abs=1e-3)


def test_run_into_a_folder_writes_numbered_pngs(vfr_clip, tmp_path):
    result = CliRunner().invoke(
        main, ["run", str(vfr_clip), "-o", f"{tmp_path}/frames/", "--model", "dcp", "--max-frames", "4"]
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "frames").glob("*.png"))) == 4 and wrote(result.output) == 4


def test_run_live_source_counts_written_and_dropped(tmp_path):
    out = tmp_path / "live.mp4"
    args = ["run", "lavfi:testsrc2=size=64x48:rate=25", "-o", str(out), "--model", "dcp", "--max-frames", "8"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    m = re.search(r"dropped (\d+) frames", result.output)
    dropped = int(m.group(1)) if m else 0
    n = wrote(result.output)
    assert n + dropped == 8 and len(read_video(out)) == n


def test_run_with_flip_average_says_so_and_changes_the_frames(vfr_clip, tmp_path):
    outs = []
    for flag in ([], ["--flip-average"]):
        out = tmp_path / f"o{len(flag)}.mkv"
        args = ["run", str(vfr_clip), "-o", str(out), "-d", "cpu", "--max-frames", "3", "--codec", "ffv1", *flag]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0 and wrote(result.output) == 3, result.output
        assert ("aecrnet (flip average)" in result.output) == bool(flag)
        outs.append(torch.stack([torch.from_numpy(img).float() for _, _, img in read_video(out)]))
    assert 0 < float((outs[0] - outs[1]).abs().mean()) < 10  # the same dehazing, a slightly different result


def test_dehaze_video_api_returns_a_summary(vfr_clip, tmp_path):
    summary = dehaze_video(vfr_clip, tmp_path / "api.mkv", model="dcp", batch=3, max_frames=7)
    assert summary["status"] == "done" and summary["frames_written"] == 7 and summary["model"] == "dcp"
    assert set(summary["stages"]) == {"decode", "inference", "encode"}
    assert len(read_video(tmp_path / "api.mkv")) == 7


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, vfr_clip) -> dict[str, str]:
    d = tmp_path_factory.mktemp("bad")
    (d / "notes.mp4").write_text("this is not a video\n")
    good = make_clip(d / "good.mp4", n_frames=30)
    return {
        "missing file": str(d / "missing.mp4"),
        "corrupt file": str(truncate(good, d / "truncated.mp4", keep=0.5)),
        "non-video file": str(d / "notes.mp4"),
        "unknown output extension": str(vfr_clip),
        "unreachable rtsp": f"rtsp://127.0.0.1:{closed_port()}/x",
        "missing webcam": "webcam:7",
    }


CASES = [
    "missing file",
    "corrupt file",
    "non-video file",
    "unknown output extension",
    "unreachable rtsp",
    "missing webcam",
]


def run_args(case: str, source: str, out_dir: Path) -> list[str]:
    output = out_dir / ("out.xyz" if case == "unknown output extension" else "out.mp4")
    return ["run", source, "-o", str(output), "--model", "dcp", "--timeout", "2"]


@pytest.mark.parametrize("case", CASES)
def test_run_errors_are_one_line_and_leave_no_output(case, bad_inputs, tmp_path):
    result = CliRunner().invoke(main, run_args(case, bad_inputs[case], tmp_path))
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert files_in(tmp_path) == set()


@pytest.mark.parametrize("case", ["missing file", "corrupt file", "unreachable rtsp", "missing webcam"])
def test_run_errors_in_a_real_process(case, bad_inputs, tmp_path):
    t0 = time.monotonic()
    proc = subprocess.run(CLI + run_args(case, bad_inputs[case], tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert files_in(tmp_path) == set()
    assert time.monotonic() - t0 < 60  # bounded: no hang on a closed port


def test_sigint_writes_a_playable_file_with_every_frame_counted(tmp_path):
    clip = make_clip(tmp_path / "long.mp4", n_frames=1000, size=(128, 96), audio=True)
    torch.manual_seed(0)
    weights = tmp_path / "w.pt"
    save_weights(weights, AECRNet(ngf=8), "aecrnet")  # slow enough for the signal to land mid-run
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen(  # --web: its /stats says when frames were written (no clock, whatever the load)
        CLI + ["run", str(clip), "-o", str(out), "--weights", str(weights), "--batch", "2", "--web", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    printed, m = [], None
    for line in proc.stdout:
        printed.append(line)
        if m := re.search(r"http://127\.0\.0\.1:(\d+)/", line):
            break
    assert m, "".join(printed) + proc.stderr.read()
    deadline = time.monotonic() + 600  # a bound on a hang
    while proc.poll() is None and time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{m[1]}/stats", timeout=60) as r:
            if json.loads(r.read()).get("written", 0) >= 5:  # mid-run: some frames are written
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=600)
    stdout = "".join(printed) + stdout
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted:" in stdout, stdout
    n = wrote(stdout)
    frames = read_video(out)
    assert 0 < n < 1000 and len(frames) == n
    assert [p for p, _, _ in frames] == sorted(p for p, _, _ in frames)
    with av.open(str(out)) as f:
        assert [s.type for s in f.streams] == ["video", "audio"]
    assert not any(name.endswith(".part") for name in os.listdir(tmp_path))
