"""``run DIR --ray``: the same batch on a real local Ray cluster (one per test session), a killed worker, no Ray."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from media import make_clip, read_index, read_video
from test_batch import FAST, check_outputs, clip_folder, hidden, manifest

from streamdehaze.batch import RunSettings
from streamdehaze.batch.runner import plan_batch
from streamdehaze.cli import main


@pytest.fixture(scope="session")
def ray_cluster():
    """One local cluster for the session (starting one takes 10-14 s here); 2 CPUs, as on a small node."""
    ray = pytest.importorskip("ray", reason="the cluster extra: pip install 'streamdehaze[cluster]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_local_gives_the_same_outputs_manifest_and_exit(ray_cluster, tmp_path):
    src, out = clip_folder(tmp_path / "in"), tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(src), "-o", str(out), "--ray", "local", *FAST])
    assert result.exit_code == 1, result.output
    assert "1 of 5 files failed" in result.output and "Ray worker" in result.output
    check_outputs(src, out)
    lines = manifest(out)
    assert sorted((Path(e["input"]).name, e["status"]) for e in lines) == [
        ("broken.mp4", "failed"),
        *((f"clip_{i}.mp4", "done") for i in range(4)),
    ]
    assert all(e["worker"] and e["worker"] != "local" and str(os.getpid()) not in e["worker"] for e in lines)
    assert "broken.mp4" in next(e["error"] for e in lines if e["status"] == "failed")
    # the rerun skips the four and retries the fifth (now a good file)
    make_clip(src / "broken.mp4", n_frames=5, first=100)
    result = CliRunner().invoke(main, ["run", str(src), "-o", str(out), "--ray", "local", *FAST])
    assert result.exit_code == 0, result.output
    assert sorted((Path(e["input"]).name, e["status"]) for e in manifest(out)[5:]) == [
        ("broken.mp4", "done"),
        *((f"clip_{i}.mp4", "skipped") for i in range(4)),
    ]
    assert [read_index(img) for _, _, img in read_video(out / "broken.mp4")] == list(range(100, 105))
    assert ray_cluster.is_initialized()  # a session that was running is left running


def kill_once(marker: Path, name: str, at_frame: int):
    """A worker hook that kills its process (as the OOM killer would) at ``at_frame`` of ``name``, once."""

    def hook(path: str, written: int) -> None:
        if Path(path).name == name and written == at_frame and not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)

    return hook


def test_a_worker_killed_mid_file_is_retried_and_leaves_no_partial_output(ray_cluster, tmp_path):
    from streamdehaze.batch.cluster import run_ray

    src, out = clip_folder(tmp_path / "in", frames=(6, 7, 8), broken=False), tmp_path / "out"
    settings = RunSettings(model="dcp", batch=2)
    jobs = plan_batch(str(src), str(out), settings)
    marker = tmp_path / "killed"
    results = run_ray(jobs, settings, str(out), "local", on_write=kill_once(marker, "clip_1.mp4", 3))
    assert marker.exists()  # the worker did die in the middle of clip_1
    assert [r.status for r in results] == ["done"] * 3
    retried = next(r for r in results if Path(r.input).name == "clip_1.mp4")
    assert marker.read_text() not in retried.worker  # finished by the restarted worker
    check_outputs(src, out, frames=(6, 7, 8))
    assert hidden(out) == []  # no .clip_1.mp4.part left behind
    assert [e["status"] for e in manifest(out)] == ["done"] * 3


def test_without_ray_the_option_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    src = clip_folder(tmp_path / "in", frames=(3,), broken=False)
    result = CliRunner().invoke(main, ["run", str(src), "-o", str(tmp_path / "out"), "--ray", "local", *FAST])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("error: --ray needs Ray")
    assert "pip install 'streamdehaze[cluster]'" in result.output and "Traceback" not in result.output
    assert not list((tmp_path / "out").glob("*.mp4"))
