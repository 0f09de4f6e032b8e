"""``--flip-average``: the network also runs on the mirrored frame and the two results are averaged."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from streamdehaze.cli import main
from streamdehaze.io.stills import read_image, write_image
from streamdehaze.nets.dehazer import Dehazer
from streamdehaze.nets.registry import load_model


def _lopsided_net() -> nn.Module:
    """A small conv net whose kernels are not mirror-symmetric: its result on a mirrored frame differs."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 5, padding=2), nn.Sigmoid())
    return net.eval()


@torch.inference_mode()
def test_flip_average_is_the_mean_of_both_results_and_mirror_equivariant():
    net = _lopsided_net()
    plain, both = Dehazer(net, "t"), Dehazer(net, "t", flip_average=True)
    x = torch.rand(3, 3, 24, 32)
    mirrored = plain(x.flip(-1)).flip(-1)
    assert (plain(x) - mirrored).abs().max() > 1e-2  # the network alone is not symmetric
    torch.testing.assert_close(both(x), (plain(x) + mirrored) / 2)
    torch.testing.assert_close(both(x.flip(-1)), both(x).flip(-1))  # a mirrored frame gives the mirrored result
    torch.testing.assert_close(both(x[1:2]), both(x)[1:2])  # each frame independent of its batch


@torch.inference_mode()
def test_flip_average_pads_to_the_network_multiple():
    both = Dehazer(_lopsided_net(), "t", multiple=4, flip_average=True)
    x = torch.rand(2, 3, 21, 30)
    y = both(x)
    assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1


def test_load_model_and_the_commands_take_the_switch(tmp_path):
    assert load_model("aecrnet", device="cpu", flip_average=True).flip_average
    rng = np.random.default_rng(1)
    clear = rng.integers(0, 256, (36, 52, 3), dtype=np.uint8)
    (tmp_path / "hazy").mkdir()
    (tmp_path / "clear").mkdir()
    write_image(tmp_path / "clear" / "1.png", clear)
    write_image(tmp_path / "hazy" / "1_1.png", (clear * 0.6 + 90).astype(np.uint8))
    args = ["eval", "--hazy", str(tmp_path / "hazy"), "--clear", str(tmp_path / "clear"), "--json", "-d", "cpu"]
    runs = [CliRunner().invoke(main, args + flag) for flag in ([], ["--flip-average"])]
    assert all(r.exit_code == 0 for r in runs), [r.output for r in runs]
    off, on = (json.loads(r.output) for r in runs)
    assert (off["flip_average"], on["flip_average"]) == (False, True)
    assert on["psnr"] != pytest.approx(off["psnr"], abs=1e-6)  # the averaged result is another image

    outs = []
    for name, img in (("a", clear), ("b", clear[:, ::-1])):
        write_image(tmp_path / f"{name}.png", img)
        r = CliRunner().invoke(
            main, ["image", str(tmp_path / f"{name}.png"), "-o", str(tmp_path / "o"), "--flip-average"]
        )
        assert r.exit_code == 0 and "flip average" in r.output, r.output
        outs.append(read_image(tmp_path / "o" / f"{name}.png").astype(int))
    assert np.abs(outs[0] - outs[1][:, ::-1]).max() <= 1  # mirrored in, mirrored out, through the whole path
