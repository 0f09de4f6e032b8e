"""Start-up: ``--help`` and argument mistakes are answered without loading torch (a second, not five).

Each check runs the command line in a fresh interpreter and lists which heavy modules it imported
(no wall-clock assertion: the import is what costs the seconds; docs/performance.md has the times).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from media import make_clip, pattern_frame

from streamdehaze.io.stills import write_image

HEAVY = ("torch", "av", "cv2", "numpy")  # 3 s, 0.1 s, 0.7 s and 0.3 s to import on a 2-core machine

PROBE = """
import json, sys
from streamdehaze.cli import main
try:
    main(sys.argv[1:], prog_name="streamdehaze")
    code = 0
except SystemExit as e:
    code = e.code
heavy = [m for m in {heavy!r} if m in sys.modules]
print("\\n" + json.dumps({{"code": code, "heavy": heavy}}))
"""


def cli(*args: str) -> tuple[int, list[str], str, str]:
    """``(exit code, heavy modules imported, stdout without the probe's line, stderr)`` of one command line."""
    env = {**os.environ, "COLUMNS": "120"}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    out, _, last = proc.stdout.rstrip().rpartition("\n")
    probe = json.loads(last)
    return probe["code"], probe["heavy"], out, proc.stderr


def test_importing_the_package_loads_no_torch_and_the_api_still_resolves():
    code = (
        "import sys, streamdehaze\n"
        "assert 'torch' not in sys.modules, 'import streamdehaze loaded torch'\n"
        "from streamdehaze import dehaze_video, load_model, Pipeline, StreamDehazeError\n"
        "from streamdehaze.pipeline.runner import Pipeline as P\n"
        "assert Pipeline is P and callable(dehaze_video) and callable(load_model)\n"
        "assert {'dehaze_video', 'load_model', 'Pipeline'} <= set(dir(streamdehaze))\n"
        "try:\n    streamdehaze.no_such_name\nexcept AttributeError:\n    pass\nelse:\n    raise SystemExit(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


COMMANDS = [
    "",
    "run",
    "image",
    "eval",
    "eval-video",
    "preview",
    "bench",
    "models",
    "train",
    "train fit",
    "train export",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command_loads_no_heavy_module(command):
    code, heavy, out, err = cli(*command.split(), "--help")
    assert code == 0, err
    assert "Usage:" in out
    assert heavy == [], f"`streamdehaze {command} --help` imported {heavy}"


def test_run_help_names_every_kind_of_source():
    _, _, out, _ = cli("run", "--help")
    for kind in ("rtsp://", "webcam:", "/dev/video", "lavfi:", "image folder"):
        assert kind in out, kind


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    make_clip(d / "clip.mp4", n_frames=3)
    write_image(d / "still.png", pattern_frame(0))
    (d / "a_file").write_text("not a folder\n")
    (d / "hazy").mkdir()
    return d


# (arguments, text the one error line must hold); {d}: the inputs folder, {o}: a fresh output folder
EARLY_ERRORS = [
    (["run", "{d}/missing.mp4", "-o", "{o}/x.mp4"], "input not found: "),
    (["run", "{d}/clip.mp4", "-o", "{d}/a_file/x.mp4"], "is a file, not a folder"),
    (["run", "{d}/clip.mp4", "-o", "{o}/x.xyz"], "unknown output extension"),
    (["run", "{d}/clip.mp4", "-o", "{o}/x.mp4", "--weights", "{d}/missing.pt"], "weight file not found"),
    (["run", "{d}/clip.mp4", "-o", "{o}/x.mp4", "--work-size", "huge"], "--work-size 'huge'"),
    (["run", "{d}/clip.mp4", "-o", "{o}/x.mp4", "--start", "soon"], "--start 'soon'"),
    (["run", "{d}/clip.mp4", "-o", "{o}/x.mp4", "--token", "t"], "--token applies to the web page"),
    (["run", "{d}/still.png", "-o", "{o}/x.mp4"], "streamdehaze image"),
    (["run", "{d}/hazy", "-o", "{o}/x.mp4"], "no video files in"),  # an empty folder is a batch
    (["image", "{d}/missing.png", "-o", "{o}/out"], "no such file"),
    (["image", "{d}/still.png", "-o", "{d}/a_file/out"], "is a file, not a folder"),
    (["eval", "--hazy", "{d}/missing", "--clear", "{d}/hazy"], "hazy folder not found"),
    (["eval-video", "{d}/missing.mp4", "{d}/clip.mp4"], "input not found: "),
    (["preview", "{d}/missing.mp4", "--web", "0"], "input not found: "),
    (["preview", "{d}/clip.mp4", "--web", "0", "--snapshots", "{d}/a_file/snaps"], "is a file, not a folder"),
    (["bench", "--input", "{d}/missing.mp4"], "input not found: "),
    (["bench", "--compare", "frobnicate=1"], "KEY one of"),
    (["bench", "--weights", "{d}/missing.pt"], "weight file not found"),
]


@pytest.mark.parametrize("args, message", EARLY_ERRORS, ids=[" ".join(a[:2]) + f" [{m}]" for a, m in EARLY_ERRORS])
def test_mistakes_are_one_line_before_torch_loads(args, message, inputs, tmp_path):
    out_dir = tmp_path / "out"
    code, heavy, out, err = cli(*(a.format(d=inputs, o=out_dir) for a in args))
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert "torch" not in heavy, f"the error came after torch loaded: {heavy}"
    assert not out_dir.exists()  # nothing written, no folder made


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: permissions cannot be tested")
def test_an_output_folder_without_write_permission_is_reported_before_torch_loads(inputs, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, heavy, _, err = cli("run", inputs / "clip.mp4", "-o", locked / "x.mp4")
    finally:
        locked.chmod(0o700)
    assert code != 0 and "no permission to write" in err and "torch" not in heavy
