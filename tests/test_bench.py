"""``streamdehaze bench``: one JSON object with every figure, the machine and the settings."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from media import make_clip

from streamdehaze.bench import measure
from streamdehaze.cli import main
from streamdehaze.nets.dehazer import Dehazer

REPO = Path(__file__).resolve().parents[1]
FIGURES = ("model_fps", "engine_fps", "decode_fps", "encode_fps", "end_to_end_fps")


def bench(*args: str) -> dict:
    result = CliRunner().invoke(main, ["bench", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # the whole of stdout is one JSON object


def test_bench_json_has_every_figure_machine_and_settings():
    r = bench("--model", "dcp", "--resolution", "64x48", "--frames", "6", "--warmup", "2", "--batch", "2")
    for key in FIGURES:
        assert r[key] > 0, key
    assert r["end_to_end_over_model"] == pytest.approx(r["end_to_end_fps"] / r["model_fps"])
    slowest = min(r["decode_fps"], r["engine_fps"], r["encode_fps"])  # the engine is the inference stage alone
    assert r["end_to_end_over_slowest"] == pytest.approx(r["end_to_end_fps"] / slowest)
    for key in ("device_name", "torch_version", "cuda_version", "av_version"):
        assert key in r
    s = r["settings"]
    assert (s["model"], s["resolution"], s["batch"], s["precision"], s["frames"], s["warmup"]) == (
        "dcp", "64x48", 2, "fp32", 6, 2
    )  # fmt: skip
    # the timed end-to-end run (after a warm-up run) went through all three stages
    assert set(r["stages"]) == {"decode", "inference", "encode"}
    assert all(st["frames"] == 6 for st in r["stages"].values())


def test_bench_random_weights_aecrnet_and_input_file(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", n_frames=6, size=(48, 32))
    r = bench("--random-weights", "--ngf", "4", "--input", str(clip), "--frames", "4", "--warmup", "1")
    assert r["settings"]["resolution"] == "48x32" and r["settings"]["random_weights"] is True
    assert r["settings"]["model"] == "aecrnet" and r["end_to_end_fps"] > 0
    assert r["stages"]["encode"]["frames"] == 4


def test_bench_flip_average_runs_the_network_twice_per_frame():
    common = ("--random-weights", "--ngf", "4", "-r", "64x48", "--frames", "2", "--warmup", "0", "--peak")
    common += ("--measure", "model")
    off, on = bench(*common), bench(*common, "--flip-average")
    assert (off["settings"]["flip_average"], on["settings"]["flip_average"]) == (False, True)
    assert on["network_gflops_per_call"] == pytest.approx(2 * off["network_gflops_per_call"], rel=0.01)
    both = bench(*common, "--compare", "flip-average=on")["variants"]  # the same rounds, the same weights
    assert [v["label"] for v in both] == ["base", "flip-average=on"]
    assert both[1]["network_gflops_per_call"] == pytest.approx(2 * both[0]["network_gflops_per_call"], rel=0.01)


def test_bench_human_output_names_the_machine_and_every_result():
    result = CliRunner().invoke(main, ["bench", "--model", "dcp", "-r", "32x24", "--frames", "2", "--warmup", "0"])
    assert result.exit_code == 0, result.output
    for text in ("device_name", "torch_version", "cuda_version", "model only", "end to end", "encode only", "32x24"):
        assert text in result.stdout, text


class Sleepy(torch.nn.Module):
    """A network with a known least cost: each call sleeps ``delay`` seconds (then returns its input)."""

    def __init__(self, delay: float):
        super().__init__()
        self.delay = delay

    def forward(self, x):
        time.sleep(self.delay)
        return x


def test_end_to_end_never_exceeds_the_slowest_stage_of_its_own_run(monkeypatch):
    delay, batch = 0.05, 2  # no figure that runs the network can beat batch / delay = 40 fps
    monkeypatch.setattr(measure, "build_model", lambda s, device: Dehazer(Sleepy(delay), "sleepy"))
    s = measure.BenchSettings(model="dcp", width=64, height=48, frames=8, warmup=2, batch=batch, work_size="full")
    r = measure.run_bench(s)
    stages = r["stages"]
    assert set(stages) == {"decode", "inference", "encode"}
    assert all(st["frames"] == 8 for st in stages.values())  # the timed run's frames, warm-up excluded
    for key in ("model_fps", "engine_fps", "end_to_end_fps"):
        assert r[key] <= batch / delay, key  # sleep never returns early: a bound no load can break
    assert stages["inference"]["capacity_fps"] <= batch / delay
    # the check is computed from that run's own stages, and holds by construction
    slowest = min(stages.values(), key=lambda st: st["capacity_fps"])
    assert r["slowest_stage"] == slowest["name"]
    assert r["slowest_stage_fps"] == pytest.approx(slowest["capacity_fps"], abs=1e-3)
    assert r["end_to_end_over_slowest_stage"] == pytest.approx(r["end_to_end_fps"] / r["slowest_stage_fps"])
    assert r["end_to_end_over_slowest_stage"] <= 1.0


def test_bench_states_the_work_each_figure_measures():
    """Working size, transfer and smoothing are named for the figures that run the network, and the
    weights row names the file timed (the shipped one when --weights is not given)."""
    args = ["-r", "64x48", "--frames", "2", "--warmup", "0", "--batch", "2", "--work-size", "1/2"]
    r = bench(*args, "--temporal", "ema", "--measure", "model,end_to_end")
    network = r["work"]["network"]
    assert "32x24" in network and "ema" in network and "batch 2" in network, network
    assert r["weights"].endswith("aecrnet.pt") and (REPO / "models" / "aecrnet.pt").samefile(r["weights"])
    assert "64x48" in r["work"]["model"] and "float" in r["work"]["model"]
    result = CliRunner().invoke(main, ["bench", *args, "--measure", "model"])
    assert result.exit_code == 0, result.output
    assert re.search(r"weights\s+│\s+\S*aecrnet\.pt", result.stdout), result.stdout
    assert "32x24" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--resolution", "720p"], "expected WIDTHxHEIGHT"),
        (["--resolution", "65x48"], "even sizes"),
        (["--random-weights", "--weights", "x.pt"], "exclude each other"),
        (["--model", "aecrnet", "--weights", "missing.pt"], "missing.pt"),
    ],
)
def test_bench_bad_options_are_one_line(args, message):
    result = CliRunner().invoke(main, ["bench", *args])
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_clip_length():
    """Peak RSS of 300 vs 3000 frames (320x240, dcp) within 15 %: see benchmarks/memory.py."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "memory.py"), "--frames", "300", "3000", "--json"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr
    peaks = {int(k): v["peak_rss_mb"] for k, v in json.loads(proc.stdout)["runs"].items()}
    assert peaks[3000] <= 1.15 * peaks[300], peaks
