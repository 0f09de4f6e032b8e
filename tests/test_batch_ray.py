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


class FakeRay:
    """What :func:`actor_plan` reads from Ray: the cluster's resources and nodes."""

    def __init__(self, resources: dict, nodes: list[dict]) -> None:
        self._resources, self._nodes = resources, nodes

    def cluster_resources(self) -> dict:
        return self._resources

    def nodes(self) -> list[dict]:
        return self._nodes


def test_one_gpu_worker_per_gpu_and_fractional_cpus():
    from streamdehaze.batch.cluster import ACTOR_CPUS, actor_plan

    node = {"Alive": True, "Resources": {"CPU": 16.0, "GPU": 2.0}}
    count, options, device, threads = actor_plan(FakeRay({"CPU": 32.0, "GPU": 4.0}, [node, node]), None)
    assert (count, device, threads) == (4, "cuda", None)
    assert options["num_gpus"] == 1 and 0 < options["num_cpus"] == ACTOR_CPUS < 1
    cpu_nodes = [{"Alive": True, "Resources": {"CPU": 8.0}}] * 3 + [{"Alive": False, "Resources": {"CPU": 8.0}}]
    count, options, device, threads = actor_plan(FakeRay({"CPU": 32.0}, cpu_nodes), None)
    assert (count, device, threads) == (3, "cpu", 8) and "num_gpus" not in options
    assert 0 < options["num_cpus"] < 1 and options["scheduling_strategy"] == "SPREAD"
    count, _, _, threads = actor_plan(FakeRay({"CPU": 32.0}, cpu_nodes), 6)
    assert (count, threads) == (6, 4)  # two per node share its cores


def test_ctrl_c_on_the_driver_stops_the_workers_and_leaves_no_partial_output(ray_cluster, tmp_path):
    from streamdehaze.batch.cluster import run_ray
    from streamdehaze.batch.jobs import BatchObserver

    class CtrlC(BatchObserver):
        def file_finished(self, job, result):
            raise KeyboardInterrupt

    src, out = clip_folder(tmp_path / "in", frames=(30,) * 4, broken=False), tmp_path / "out"
    settings = RunSettings(model="dcp", batch=2)
    jobs = plan_batch(str(src), str(out), settings)
    with pytest.raises(KeyboardInterrupt):
        run_ray(jobs, settings, str(out), "local", workers=2, observer=CtrlC())
    lines = manifest(out)
    assert [e["status"] for e in lines] == ["done"]  # the one that finished, written before the interrupt
    assert hidden(out) == []
    for output in out.glob("*.mp4"):  # whatever else exists is complete (a worker may have renamed it just before)
        assert len(read_video(output)) == 30
    assert Path(lines[0]["output"]).exists()
