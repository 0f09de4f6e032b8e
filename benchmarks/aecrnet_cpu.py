"""AECR-Net inference cost per frame: time (median of repeats) and FLOPs, fp32.

    python benchmarks/aecrnet_cpu.py [--ngf 64] [--repeats 3] [--sizes 256x256,1280x720] [--device cpu]

Before timing it checks that the inference-only simplifications (folded FastDeconv) change the
output by at most 1e-5 relative. Prints the machine, the settings and each figure.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from streamdehaze.bench.flops import network_flops
from streamdehaze.devices import device_name, resolve_device
from streamdehaze.nets.aecrnet import AECRNet, count_parameters


def check_fold(ngf: int) -> float:
    torch.manual_seed(0)
    net = AECRNet(ngf=ngf).train()
    with torch.no_grad():
        net(torch.rand(2, 3, 64, 64))  # populate FastDeconv's running statistics
    net.eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        ref = net(x)
        folded = net.fold_for_inference()(x)
    return float((folded - ref).abs().max() / ref.abs().max())


def time_forward(net, h, w, repeats, device) -> list[float]:
    x = torch.rand(1, 3, h, w, device=device)
    times = []
    with torch.inference_mode():
        net(x)  # warm-up
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            net(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ngf", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", default="256x256,1280x720", help="comma-separated WxH")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = resolve_device(args.device)
    rel = check_fold(args.ngf)
    print(f"machine: {platform.node()} {device_name(device)}; torch {torch.__version__}")
    print(
        f"settings: AECR-Net ngf={args.ngf} ({count_parameters(AECRNet(ngf=args.ngf)):,} params), fp32, batch 1, "
        f"folded FastDeconv, median of {args.repeats} after 1 warm-up"
    )
    print(f"folded FastDeconv vs training-form layer: max relative difference {rel:.2e} (limit 1e-5)")
    assert rel <= 1e-5
    net = AECRNet(ngf=args.ngf).eval().fold_for_inference().to(device)
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.lower().split("x"))
        flops = network_flops(net, h, w, device)
        times = time_forward(net, h, w, args.repeats, device)
        med = statistics.median(times)
        print(
            f"{w}x{h}: {med * 1000:9.1f} ms/frame (min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}), "
            f"{flops / 1e9:8.1f} GFLOP/frame, {flops / med / 1e9:6.1f} GFLOP/s"
        )


if __name__ == "__main__":
    main()
