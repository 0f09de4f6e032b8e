"""``streamdehaze export``: write the network as ONNX (for onnxruntime, TensorRT, DeepStream, edge devices)."""

from __future__ import annotations

from pathlib import Path

import click

from ..backends import DEFAULT_OPSET, MIN_OPSET
from ..errors import InputError
from .common import console, model_option, weights_option


def _load(model: str, weights: str | None, random_weights: bool, ngf: int):
    """The torch :class:`~streamdehaze.nets.dehazer.Dehazer` to export, on the CPU."""
    from ..nets.dehazer import Dehazer
    from ..nets.registry import MODELS, build_network, load_model

    if random_weights:
        import torch

        torch.manual_seed(0)
        net = build_network(model, ngf=ngf).eval()
        return Dehazer(net, model, MODELS[model].multiple, {"weights": "random", "ngf": ngf}).eval()
    return load_model(model, weights=weights, device="cpu")


@click.command("export")
@click.option("--format", "format_", type=click.Choice(["onnx"]), default="onnx", show_default=True)
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="File to write (FILE.onnx).")
@model_option
@weights_option
@click.option("--random-weights", is_flag=True, help="Export AECR-Net with random weights of width --ngf.")
@click.option("--ngf", type=click.IntRange(min=8), default=64, show_default=True, help="Width for --random-weights.")
@click.option(
    "--opset",
    type=int,
    default=DEFAULT_OPSET,
    show_default=True,
    help=f"ONNX opset, >= {MIN_OPSET} (the deformable convolution becomes DeformConv, new in opset {MIN_OPSET}).",
)
@click.option(
    "--half",
    is_flag=True,
    help="float16 weights and input, for GPU targets (TensorRT, onnxruntime's CUDA provider); "
    "the deformable convolution stays float32.",
)
@click.option(
    "--check/--no-check",
    default=True,
    show_default=True,
    help="Run the file in onnxruntime (when installed) on a small random input and compare with torch.",
)
def command(format_, output, model, weights, random_weights, ngf, opset, half, check) -> None:
    """Export the network (only: padding, the guided transfer and smoothing stay in the pipeline) as ONNX.

    The file takes 'input' (N, 3, H, W) RGB in [0, 1], H and W multiples of 4, with N, H and W dynamic,
    and gives 'output' of the same shape (tanh in [-1, 1]: clamp it to [0, 1]). The model card
    (name, sha256 of the weights, ngf, working size) is in the file's metadata.

    \b
    Examples:
      streamdehaze export -o aecrnet.onnx
      streamdehaze export -o aecrnet_fp16.onnx --half
      streamdehaze run dashcam.mp4 -o clear.mp4 --weights aecrnet.onnx
      trtexec --onnx=aecrnet.onnx --saveEngine=aecrnet.plan \\
        --minShapes=input:1x3x64x64 --optShapes=input:4x3x160x284 --maxShapes=input:8x3x1080x1920
    """
    from ..backends.extra import RUNTIME, missing
    from ..backends.onnx_export import card_metadata, check_opset, export_network

    check_opset(opset)
    path = Path(output)
    if path.suffix.lower() != ".onnx":
        raise InputError(f"--output {output}: expected a file name ending in .onnx")
    if not path.parent.is_dir():
        raise InputError(f"--output {output}: folder {path.parent} does not exist; create it first")
    if model != "aecrnet":
        raise InputError(f"--model {model} has no network to export; export aecrnet")
    if random_weights and weights:
        raise InputError("--random-weights and --weights exclude each other; pick one")
    dehazer = _load(model, weights, random_weights, ngf)
    meta = card_metadata(dehazer)
    result = export_network(dehazer.net, path, opset=opset, half=half, multiple=dehazer.multiple, metadata=meta)
    size_mb = path.stat().st_size / 1e6
    console.print(
        f"wrote {path} ({size_mb:.1f} MB, opset {opset}, {result.precision}, {len(result.op_types)} op types "
        f"incl. DeformConv) in {result.seconds:.1f} s",
        highlight=False,
        soft_wrap=True,
    )
    sha = meta["weights_sha256"][:16] or "none (not a file)"
    console.print(
        f"  {meta['model']}, ngf {meta['ngf'] or '?'}, weights {meta['weights']} (sha256 {sha}), "
        f"working size: {meta['working_size']}",
        highlight=False,
        soft_wrap=True,
    )
    if check and not missing(RUNTIME):
        from ..backends.onnxruntime_runner import max_difference

        diff = max_difference(path, dehazer.net)
        console.print(f"  onnxruntime (CPU) vs torch on a random 2x3x64x96 input: max |diff| {diff:.1e}")
