"""torchrun + DDP on CPU (gloo): two processes give the weights of one process with the same global batch.

Each rank computes FastDeconv's batch statistics and the CR ratio on its own half of the global
batch. One process reproduces that exactly with ``accum = 2`` (micro-batch ``j`` = the samples
rank ``j`` gets), so the comparison is tight: only the order of the gradient sums differs.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from test_train_data import make_pairs, one_thread  # noqa: F401 (autouse fixture)

from streamdehaze.train import TrainConfig, train
from streamdehaze.train.checkpoint import read_checkpoint

ARGS = dict(ngf=4, crop=16, steps=3, lr=2e-3, cr_weight=0.1, cr_encoder="random", workers=0, seed=7)


def _max_diff(a, b):
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def test_torchrun_two_processes_equal_one_process(tmp_path):
    data = f"{make_pairs(tmp_path / 'pairs', n=4, h=24, w=28)}@2"  # 8 samples: 2 steps per epoch
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "streamdehaze.train", "--data", data, "--out", str(tmp_path / "ddp"), "--batch-size", "2",
           "--device", "cpu", "--quiet"]  # fmt: skip
    for key, value in ARGS.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = read_checkpoint(tmp_path / "ddp" / "last.pt")
    assert ddp["world_size"] == 2 and ddp["step"] == 3 and ddp["hardware"].startswith("2×")

    one = train(TrainConfig(data=[data], out=str(tmp_path / "one"), batch_size=4, accum=2, **ARGS), progress=False)
    diff = _max_diff(ddp["model"], read_checkpoint(one.last)["model"])
    assert diff < 1e-5, diff
    # Control: one process that whitens the whole global batch at once is a different computation.
    plain = train(TrainConfig(data=[data], out=str(tmp_path / "plain"), batch_size=4, **ARGS), progress=False)
    assert _max_diff(ddp["model"], read_checkpoint(plain.last)["model"]) > 100 * max(diff, 1e-7)


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_see_disjoint_shares_of_each_global_batch(tmp_path, world):
    from streamdehaze.train.data import EpochSampler, build_trainset

    ds = build_trainset([f"{make_pairs(tmp_path / 'p', n=3)}@4"], 16)
    shares = []
    for rank in range(world):
        s = EpochSampler(ds, world, rank, seed=1)
        s.set_epoch(2)
        shares.append([i for _, i in s])
    flat = sorted(i for share in shares for i in share)
    assert flat == list(range(len(ds)))  # 12 samples divide evenly: no padding, no overlap
    assert torch.tensor([len(x) for x in shares]).unique().numel() == 1
