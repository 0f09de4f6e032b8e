"""``streamdehaze run DIR -o OUT/``: folders and globs, resume, the manifest, failures, tracks, Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from children import communicate_or_dump, default_sigint, faulthandler_env
from click.testing import CliRunner
from media import make_clip, make_clip_with_track, make_images, read_index, read_video, track_packets

from streamdehaze.batch import MANIFEST_NAME, is_batch_source, plan_jobs, read_manifest
from streamdehaze.batch.manifest import latest
from streamdehaze.cli import main

CLI = [sys.executable, "-c", "from streamdehaze.cli import entry; entry()"]  # what the streamdehaze script runs
FAST = ["--model", "dcp", "--batch", "4"]


def clip_folder(folder: Path, frames=(6, 7, 8, 9), broken: bool = True) -> Path:
    """``folder`` with ``clip_i.mp4`` of ``frames[i]`` frames (showing indices 10*i, 10*i + 1, ...) and a
    corrupt ``broken.mp4``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(frames):
        make_clip(folder / f"clip_{i}.mp4", n_frames=n, first=10 * i)
    if broken:
        (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(3000))
    return folder


def manifest(out: Path) -> list[dict]:
    return read_manifest(out / MANIFEST_NAME)


def hidden(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob(".*"))


def check_outputs(src: Path, out: Path, frames=(6, 7, 8, 9)) -> None:
    """Every clip has an output with its frames, in order, and nothing else (no temporaries) is left."""
    for i, n in enumerate(frames):
        decoded = read_video(out / f"clip_{i}.mp4")
        assert [read_index(img) for _, _, img in decoded] == list(range(10 * i, 10 * i + n))
    assert hidden(out) == []


def test_a_folder_gives_one_output_per_clip_a_manifest_and_a_failure_exit(tmp_path):
    src, out = clip_folder(tmp_path / "in"), tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(src), "-o", str(out), *FAST])
    assert result.exit_code == 1, result.output
    assert "1 of 5 files failed" in result.output and "broken.mp4" in result.output
    check_outputs(src, out)
    assert sorted(p.name for p in out.iterdir()) == sorted([f"clip_{i}.mp4" for i in range(4)] + [MANIFEST_NAME])
    lines = manifest(out)
    assert [(Path(e["input"]).name, e["status"]) for e in lines] == [
        ("broken.mp4", "failed"),
        *((f"clip_{i}.mp4", "done") for i in range(4)),
    ]
    assert [e["frames"] for e in lines[1:]] == [6, 7, 8, 9]
    failed = lines[0]
    assert failed["error"] and "broken.mp4" in failed["error"] and failed["frames"] is None
    assert all(set(e) >= {"input", "output", "status", "frames", "seconds", "error"} for e in lines)
    assert all(e["output"] == str(out / Path(e["input"]).name) for e in lines)


def test_a_rerun_skips_the_finished_files_and_retries_the_failed_one(tmp_path):
    src, out = clip_folder(tmp_path / "in"), tmp_path / "out"
    CliRunner().invoke(main, ["run", str(src), "-o", str(out), *FAST])
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("clip_*.mp4")}
    make_clip(src / "broken.mp4", n_frames=5, first=100)  # the user replaced the corrupt file
    result = CliRunner().invoke(main, ["run", str(src), "-o", str(out), *FAST])
    assert result.exit_code == 0, result.output
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("clip_*.mp4")} == before  # not redone
    run2 = manifest(out)[5:]
    assert sorted((Path(e["input"]).name, e["status"]) for e in run2) == [
        ("broken.mp4", "done"),
        *((f"clip_{i}.mp4", "skipped") for i in range(4)),
    ]
    assert len({e["run"] for e in manifest(out)}) <= 2 and all(e["run"] == run2[0]["run"] for e in run2)
    assert [read_index(img) for _, _, img in read_video(out / "broken.mp4")] == list(range(100, 105))
    assert {k: v["status"] for k, v in latest(manifest(out)).items()} == {
        str(p.resolve()): "done" for p in src.iterdir()
    }
    # --overwrite redoes what exists
    result = CliRunner().invoke(main, ["run", str(src), "-o", str(out), "--overwrite", *FAST])
    assert result.exit_code == 0, result.output
    assert [e["status"] for e in manifest(out)[10:]] == ["done"] * 5
    check_outputs(src, out)


def test_recursive_folders_and_globs_keep_relative_paths(tmp_path):
    src = tmp_path / "card"
    (src / "day2" / "deep").mkdir(parents=True)
    make_clip(src / "a.mp4", n_frames=3)
    make_clip(src / "day2" / "b.mov", n_frames=3)
    make_clip(src / "day2" / "deep" / "c.mkv", n_frames=3)
    make_images(src / "stills", 2)  # images in a batch folder are not videos: left alone
    jobs = plan_jobs(str(src), str(tmp_path / "o"))
    assert [j.rel for j in jobs] == ["a.mp4"]
    jobs = plan_jobs(str(src), str(tmp_path / "o"), recursive=True)
    assert [j.rel for j in jobs] == ["a.mp4", "day2/b.mov", "day2/deep/c.mkv"]
    assert [Path(j.output).relative_to(tmp_path / "o").as_posix() for j in jobs] == [j.rel for j in jobs]
    jobs = plan_jobs(str(src / "**" / "*.m*"), str(tmp_path / "o"), recursive=True, container="mkv")
    assert [Path(j.output).relative_to(tmp_path / "o").as_posix() for j in jobs] == [
        "a.mkv",
        "day2/b.mkv",
        "day2/deep/c.mkv",
    ]
    out = src / "clear"  # an output folder inside the source is not read back as input
    result = CliRunner().invoke(main, ["run", str(src), "-o", str(out), "-r", *FAST])
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.m*")) == [
        "a.mp4",
        "day2/b.mov",
        "day2/deep/c.mkv",
    ]
    assert len(manifest(out)) == 3
    result = CliRunner().invoke(main, ["run", str(src), "-o", str(out), "-r", *FAST])
    assert [e["status"] for e in manifest(out)[3:]] == ["skipped"] * 3


def test_what_is_a_batch_and_what_is_not(tmp_path):
    images = tmp_path / "frames"
    make_images(images, 3)
    assert not is_batch_source(str(images))  # an image folder is still one video
    assert not is_batch_source(str(images / "*.png"))
    assert not is_batch_source("rtsp://camera/stream") and not is_batch_source("clip.mp4")
    videos = clip_folder(tmp_path / "videos", frames=(3,), broken=False)
    assert is_batch_source(str(videos)) and is_batch_source(str(videos / "*.mp4"))
    nested = tmp_path / "nested"
    (nested / "sub").mkdir(parents=True)
    make_clip(nested / "sub" / "x.mp4", n_frames=3)
    runner = CliRunner()
    result = runner.invoke(main, ["run", str(nested), "-o", str(tmp_path / "o"), *FAST])
    assert result.exit_code == 2 and "add --recursive" in result.output
    result = runner.invoke(main, ["run", str(videos), "-o", str(tmp_path / "o.mp4"), *FAST])
    assert result.exit_code == 2 and "--output must be a folder" in result.output
    result = runner.invoke(main, ["run", str(videos), "-o", str(videos), *FAST])
    assert result.exit_code == 2 and "outputs would replace their inputs" in result.output
    result = runner.invoke(main, ["run", str(videos / "clip_0.mp4"), "-o", str(tmp_path / "x.mp4"), "--ray", "local"])
    assert result.exit_code == 2 and "--ray apply to a folder or glob" in result.output
    result = runner.invoke(main, ["run", str(videos), "-o", str(tmp_path / "o"), "--preview", *FAST])
    assert result.exit_code == 2 and "batch of files" in result.output
    assert not (tmp_path / "x.mp4").exists()


def test_subtitle_and_data_tracks_are_copied_or_reported(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name, kind in (("srt.mkv", "subrip"), ("tx3g.mp4", "mov_text"), ("gps.ts", "klv")):
        make_clip_with_track(src / name, kind, n_frames=6)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(src), "-o", str(out), *FAST])
    assert result.exit_code == 0, result.output
    assert track_packets(out / "srt.mkv", "subtitle") == track_packets(src / "srt.mkv", "subtitle") != []
    assert track_packets(out / "tx3g.mp4", "subtitle") == track_packets(src / "tx3g.mp4", "subtitle") != []
    notes = {Path(e["input"]).name: e["not_copied"] for e in manifest(out)}
    assert notes["srt.mkv"] == notes["tx3g.mp4"] == []
    # .ts is written as .mkv, which cannot hold KLV data: the manifest and the summary say so
    assert len(notes["gps.ts"]) == 1 and notes["gps.ts"][0].startswith("data track 1")
    assert "not copied: data track 1" in result.output.replace("\n", " ").replace("│", "")
    assert [read_index(img) for _, _, img in read_video(out / "gps.mkv")] == list(range(6))
    # into .mov: the KLV data and the mov_text subtitles fit, the SubRip subtitles do not
    out = tmp_path / "mov"
    result = CliRunner().invoke(main, ["run", str(src), "-o", str(out), "--container", "mov", *FAST])
    assert result.exit_code == 0, result.output
    assert track_packets(out / "gps.mov", "data") == track_packets(src / "gps.ts", "data") != []
    assert track_packets(out / "tx3g.mov", "subtitle") == track_packets(src / "tx3g.mp4", "subtitle")
    notes = {Path(e["input"]).name: e["not_copied"] for e in manifest(out)}
    assert notes["gps.ts"] == notes["tx3g.mp4"] == []
    assert len(notes["srt.mkv"]) == 1 and "subtitle track 1 (srt)" in notes["srt.mkv"][0]


def test_ctrl_c_leaves_finished_files_and_the_manifest_consistent(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    clip_folder(src, frames=(12,) * 6, broken=False)
    env = faulthandler_env({**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    cmd = [*CLI, "run", str(src), "-o", str(out), *FAST]
    err = tmp_path / "stderr.txt"
    with err.open("w") as err_file:
        proc = subprocess.Popen(
            cmd, env=env, text=True, preexec_fn=default_sigint, stdout=subprocess.PIPE, stderr=err_file
        )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not ((out / MANIFEST_NAME).exists() and manifest(out)):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout = communicate_or_dump(proc, 120, err)  # a hang fails with the child's stacks
    assert proc.returncode == 130, stdout
    assert "interrupted with" in stdout
    lines = manifest(out)
    assert 1 <= len(lines) < 6 and all(e["status"] == "done" for e in lines)
    assert sorted(Path(e["output"]).name for e in lines) == sorted(p.name for p in out.glob("*.mp4"))
    for e in lines:
        assert len(read_video(e["output"])) == 12
    assert hidden(out) == []
    # the rerun finishes the rest
    result = CliRunner().invoke(main, ["run", str(src), "-o", str(out), *FAST])
    assert result.exit_code == 0, result.output
    assert [e["status"] for e in manifest(out)[len(lines) :]].count("skipped") == len(lines)
    check_outputs(src, out, frames=(12,) * 6)


def test_a_relative_source_and_output_work_from_any_folder(tmp_path, monkeypatch):
    src = clip_folder(tmp_path / "in", frames=(3, 4), broken=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["run", "in/*.mp4", "-o", "out/", *FAST])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").glob("*.mp4")) == ["clip_0.mp4", "clip_1.mp4"]
    shutil.rmtree(src)


def test_the_read_ahead_source_gives_what_the_file_source_gives(tmp_path):
    from media import truncate

    from streamdehaze.batch.prefetch import PrefetchFileSource
    from streamdehaze.errors import DecodeError
    from streamdehaze.io.sources import FileSource

    clip = make_clip(tmp_path / "c.mp4", n_frames=30, vfr=True, audio=True)
    with FileSource(str(clip)) as plain:
        expected = [(f.pts, f.time_base, f.image) for f in plain]
    ahead = PrefetchFileSource(str(clip), depth=4).prefetch()
    time.sleep(0.2)  # it reads ahead while nobody asks
    with ahead:
        got = [(f.pts, f.time_base, f.image) for f in ahead]
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    assert all((g[2] == e[2]).all() for g, e in zip(got, expected))
    assert ahead._thread is not None and not ahead._thread.is_alive()
    # errors come out where the pipeline reads them, with their type
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"garbage" * 100)
    with pytest.raises(DecodeError, match="cannot read"):
        PrefetchFileSource(str(broken)).prefetch().open()
    cut = truncate(clip, tmp_path / "cut.mp4", keep=0.6)
    with pytest.raises(DecodeError, match="ended early|corrupt"):
        with PrefetchFileSource(str(cut)) as src:
            list(src)
    # closing while it reads ahead stops the thread
    early = PrefetchFileSource(str(clip), depth=2).prefetch()
    early.open()
    early.close()
    assert not early._thread.is_alive()


@pytest.mark.cuda
def test_a_folder_on_the_gpu(tmp_path):
    src, out = clip_folder(tmp_path / "in", frames=(6, 7), broken=False), tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(src), "-o", str(out), "--device", "cuda", *FAST])
    assert result.exit_code == 0, result.output
    check_outputs(src, out, frames=(6, 7))
