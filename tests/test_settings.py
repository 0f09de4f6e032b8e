"""The settings tree (streamdehaze/settings.py) and what derives from it: the commands' options, the
``bench --compare`` keys and the API keywords."""

from __future__ import annotations

import dataclasses

import click
import numpy as np
import pytest
from click.testing import CliRunner
from media import make_clip

from streamdehaze.api import build_pipeline, dehaze_video
from streamdehaze.cli import main
from streamdehaze.cli.options import setting_options
from streamdehaze.errors import InputError
from streamdehaze.images import dehaze_image
from streamdehaze.pipeline.speed import SpeedSettings
from streamdehaze.pipeline.temporal_engine import TemporalSettings
from streamdehaze.settings import COMPARE_KEYS, SETTINGS, TREE, Setting, fields_of, parse_overrides

SPEED = {
    "work_size", "transfer_fit", "guard", "keyframe_interval", "scene_cut", "channels_last", "cudnn_benchmark",
    "compile", "cuda_graphs", "device_yuv",
}  # fmt: skip
RUN = {"batch", "precision", "backend", "flip_average"}
TEMPORAL = {"temporal", "temporal_strength"}
STILLS = {"work_size", "transfer_fit", "guard"}
# which command takes which settings, and the defaults it changes (what users know; pinned here on purpose)
COMMANDS = {
    "run": (SPEED | RUN | TEMPORAL | {"strength"}, {}),
    "preview": (STILLS | RUN | TEMPORAL | {"strength"}, {"batch": 1}),
    "bench": (SPEED | RUN | TEMPORAL, {"temporal": "off"}),
    "image": (STILLS | {"backend", "flip_average", "strength"}, {"transfer_fit": "wide"}),
    "eval": (STILLS | {"backend", "flip_average"}, {"work_size": "model", "transfer_fit": "wide"}),
}


def command(name: str) -> click.Command:
    return main.get_command(click.Context(main), name)


def test_the_tree_holds_every_setting_once_and_every_group_field_is_described():
    assert set(SETTINGS) == SPEED | RUN | TEMPORAL | {"strength"}
    for group in TREE.values():
        assert [f.name for f in dataclasses.fields(group)] == [f.name for f, _ in fields_of(group)]
    assert set(COMPARE_KEYS) == {k.replace("_", "-") for k in SPEED | RUN | TEMPORAL}
    # the engine's classes are the tree's groups, not copies
    assert {f.name for f in dataclasses.fields(SpeedSettings)} == {f.name for f, _ in fields_of(TREE["speed"])}
    assert {f.name for f in dataclasses.fields(TemporalSettings)} - {"airlight"} == {"mode", "strength"}
    assert SpeedSettings() == SpeedSettings(**{f.name: s.default for f, s in fields_of(TREE["speed"])})


@pytest.mark.parametrize("name", COMMANDS)
def test_every_setting_a_command_takes_is_in_its_help_with_its_default(name):
    keys, changed = COMMANDS[name]
    cmd = command(name)
    ctx = click.Context(cmd)
    params = {p.name: p for p in cmd.params}
    assert keys <= set(params), f"{name} lacks {keys - set(params)}"
    assert not (set(params) & set(SETTINGS)) - keys, f"{name} takes settings it should not"
    help_text = CliRunner().invoke(main, [name, "--help"], terminal_width=2000).output
    for key in keys:
        s, param = SETTINGS[key], params[key]
        default = changed.get(key, s.default)
        names, text = param.get_help_record(ctx)
        assert s.flag in names and s.flag in help_text, (name, key)
        assert param.default == default, (name, key)
        assert s.help in text  # the tree's text, not a copy
        if s.kind == "flag":
            assert default is False
        elif s.kind == "switch":
            assert "[default:" in text  # its help says what None means
        else:
            shown = f"[default: {default}" if default != "" else "[default:"
            assert shown in text and shown in help_text, (name, key, text)


def test_a_command_default_says_why_it_differs():
    for name, why in (("run", "Video defaults to local"), ("image", "Stills default to wide")):
        _, text = next(p for p in command(name).params if p.name == "transfer_fit").get_help_record(
            click.Context(command(name))
        )
        assert why in text
    with pytest.raises(ValueError, match="does not take"):
        setting_options("strength", guard="off")


def good_and_bad(s: Setting) -> tuple[str, object, str]:
    """``(text, value it parses to, a bad text)`` for ``s``'s kind."""
    if s.kind == "choice":
        return s.choices[-1], s.choices[-1], "nonsense"
    if s.kind in ("switch", "flag"):
        return "on", True, "maybe"
    if s.kind == "int":
        return "3", 3, str(int(s.low) - 1)
    if s.kind == "float":
        return "0.5", 0.5, "1.5" if s.high is not None else "-1"
    return "360", "360", "huge"  # work size


@pytest.mark.parametrize("key", list(COMPARE_KEYS))
def test_every_compare_key_parses_to_its_setting_and_rejects_a_bad_value_in_one_line(key):
    s = COMPARE_KEYS[key]
    text, value, bad = good_and_bad(s)
    assert parse_overrides(f"{key}={text}") == {s.key: value}
    assert parse_overrides(f" {key.replace('-', '_')} = {text} ") == {s.key: value}
    for spec in (f"{key}={bad}", f"{key}=two,words"):
        with pytest.raises(InputError) as err:
            parse_overrides(spec)
        message = str(err.value)
        assert "\n" not in message and message.startswith(f"--compare {spec!r}: {key}="), message
        assert s.flag in message or "KEY one of" in message


def test_compare_overrides_reach_the_bench_settings_and_its_help_lists_them():
    from streamdehaze.bench.measure import BenchSettings, bench_variants

    specs = tuple(f"{key}={good_and_bad(s)[0]}" for key, s in COMPARE_KEYS.items())
    variants = bench_variants(BenchSettings(compare=specs))
    for (label, variant), s in zip(variants[1:], COMPARE_KEYS.values()):
        assert getattr(variant, s.key) == good_and_bad(s)[1], label
    text = CliRunner().invoke(main, ["bench", "--help"], terminal_width=2000).output
    assert "keys: " + ", ".join(COMPARE_KEYS) + "." in text
    with pytest.raises(InputError, match="KEY one of work-size"):
        parse_overrides("strength=0.5")  # not a --compare key


@pytest.mark.parametrize("key", list(SETTINGS))
def test_the_api_checks_every_setting_keyword_as_the_command_line_does(key, tmp_path):
    s = SETTINGS[key]
    bad = {"choice": "nonsense", "switch": "yes", "flag": 1, "int": 0, "float": -1.0, "text": "huge"}[s.kind]
    with pytest.raises(InputError, match=s.flag) as err:
        build_pipeline(tmp_path / "missing.mp4", tmp_path / "out.mp4", **{key: bad})
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out.mp4").exists()


def test_the_api_rejects_unknown_keywords_and_applies_the_settings(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", n_frames=4)
    with pytest.raises(InputError, match="unknown keyword 'keyframes'.*keyframe_interval"):
        dehaze_video(clip, tmp_path / "out.mp4", model="dcp", keyframes=2)
    with pytest.raises(InputError, match="--temporal 'smooth'"):
        build_pipeline(clip, tmp_path / "out.mp4", model="dcp", temporal="smooth")
    with pytest.raises(InputError, match="temporal_strength"):
        build_pipeline(clip, tmp_path / "out.mp4", model="dcp", temporal=None, temporal_strength=0.5)
    pipe = build_pipeline(
        clip, tmp_path / "out.mp4", model="dcp", speed=SpeedSettings(work_size="0.5", guard="off"),
        keyframe_interval=2, scene_cut=0.2, temporal="flow", temporal_strength=0.5, strength=0.7,
    )  # fmt: skip
    transfer = pipe.engine.transfer
    assert (transfer.keyframe_interval, transfer.scene_cut, transfer.guard) == (2, 0.2, "off")
    assert transfer.work_size.value == 0.5
    assert (pipe.temporal.mode, pipe.temporal.strength) == ("flow", 0.5)
    assert build_pipeline(clip, tmp_path / "o.mp4", model="dcp", temporal_strength=0.3).temporal.strength == 0.3
    image = np.full((16, 24, 3), 128, np.uint8)
    with pytest.raises(InputError, match="dehaze_image: unknown keyword 'keyframe_interval'"):
        dehaze_image(image, "dcp", keyframe_interval=2)
    with pytest.raises(InputError, match="--guard 'strong'"):
        dehaze_image(image, "dcp", guard="strong")
    assert dehaze_image(image, "dcp", strength=0).shape == image.shape


@pytest.mark.parametrize("group", list(TREE))
def test_building_a_group_checks_its_fields(group):
    cls = {"speed": SpeedSettings, "temporal": TemporalSettings}.get(group, TREE[group])
    for f, s in fields_of(cls):
        with pytest.raises(InputError, match=s.flag):
            cls(
                **{f.name: {"choice": "x", "switch": "on", "flag": None, "int": -5, "float": -5.0, "text": "x"}[s.kind]}
            )
