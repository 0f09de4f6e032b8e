"""AECR-Net on the CPU with torchvision's deformable conv vs the bilinear-sampling form.

    python benchmarks/deform_cpu.py [--ngf 16] [--batch 8] [--crop 96] [--size 192x344] [--rounds 5] [--threads 2]

Times one training step (forward, L1 backward, Adam) and one inference forward, both kernels in
interleaved rounds, and prints medians, their ratio, the settings and the machine. Both forms
compute the same function (``tests/test_deform.py``); this shows what the switch is worth.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torchvision.ops import deform_conv2d

import streamdehaze.nets.aecrnet as aecrnet_module
from streamdehaze.nets.aecrnet import AECRNet
from streamdehaze.nets.deform import deform_conv2d_sampled


def torchvision_form(x, offset, weight, bias, mask):
    return deform_conv2d(x, offset, weight, bias, padding=(1, 1), mask=mask)


KERNELS = {"torchvision": torchvision_form, "sampled": deform_conv2d_sampled}


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ngf", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=96)
    ap.add_argument("--size", default="192x344", help="inference frame HxW (the shipped model's working size)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    h, w = (int(v) for v in args.size.split("x"))

    train_net = AECRNet(args.ngf).train()
    opt = torch.optim.Adam(train_net.parameters(), 1e-4)
    xb, yb = torch.rand(args.batch, 3, args.crop, args.crop), torch.rand(args.batch, 3, args.crop, args.crop)
    infer_net = AECRNet(args.ngf).fold_for_inference()
    frame = torch.rand(1, 3, h, w)

    def train_step():
        opt.zero_grad()
        (train_net(xb) - yb).abs().mean().backward()
        opt.step()

    def infer():
        with torch.inference_mode():
            infer_net(frame)

    times = {(k, job): [] for k in KERNELS for job in ("train", "infer")}
    for r in range(args.rounds + 1):  # round 0 warms up
        for name, kernel in KERNELS.items():
            aecrnet_module.deform_conv2d_sampled = kernel
            t_train, t_infer = timed(train_step), timed(infer)
            if r:
                times[(name, "train")].append(t_train)
                times[(name, "infer")].append(t_infer)
    aecrnet_module.deform_conv2d_sampled = deform_conv2d_sampled

    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(
        f"AECR-Net ngf {args.ngf}, fp32; train step: batch {args.batch} × {args.crop}² crops, L1, Adam; "
        f"inference: 1 × {h}×{w}; median of {args.rounds} interleaved rounds"
    )
    for job, label in (("train", "training step"), ("infer", "inference forward")):
        tv, sp = (statistics.median(times[(k, job)]) for k in KERNELS)
        print(f"{label:18s} torchvision {tv * 1e3:8.1f} ms   sampled {sp * 1e3:8.1f} ms   speed-up {tv / sp:.2f}×")


if __name__ == "__main__":
    main()
