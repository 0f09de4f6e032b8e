"""Export a network to ONNX with torch's dynamo-based exporter: the network only.

The file's ``input`` is ``(N, 3, H, W)`` float RGB in [0, 1] with H and W multiples of the model's
``multiple`` (4 for AECR-Net; N, H and W are dynamic); its ``output`` is the network's raw output of
the same shape (AECR-Net: tanh in [-1, 1]; clamp it to [0, 1]). Padding to the multiple, the guided
transfer, temporal smoothing and batching stay in the pipeline.

The deformable conv becomes ONNX ``DeformConv``, which exists from opset 19 (an opset 18 export
"succeeds" and gives an invalid model, so it is refused); TensorRT >= 10.1 parses it and
onnxruntime >= 1.25 runs it. The CPU inference path's bilinear-sampling form would export as
``GridSample``: :func:`~streamdehaze.nets.aecrnet.uses_sampled_deform` turns it off while exporting,
and the graph is checked for it. ``half``: float16 weights and input for GPU targets, with the
deformable conv kept in float32 (its sampling positions need it, as torchvision's autocast rule does).
"""

from __future__ import annotations

import copy
import hashlib
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import InputError, ModelError
from . import DEFAULT_OPSET, MIN_OPSET
from .extra import EXPORT, require

INPUT, OUTPUT = "input", "output"


@dataclass
class ExportResult:
    path: Path
    opset: int
    precision: str  # fp32 | fp16
    metadata: dict[str, str]
    op_types: set[str] = field(default_factory=set)
    seconds: float = 0.0


def check_opset(opset: int) -> int:
    """``opset`` if DeformConv exists there, else one :class:`InputError` line (before any work)."""
    if int(opset) < MIN_OPSET:
        raise InputError(
            f"--opset {opset}: the deformable convolution exports as ONNX DeformConv, which needs opset "
            f"{MIN_OPSET} or later (opset 18 gives an invalid model); use --opset {MIN_OPSET}"
        )
    return int(opset)


class _Float32(nn.Module):
    """Runs ``inner`` in float32 inside a float16 network (casts in and out)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.float()).to(x.dtype)


def _prepared(net: nn.Module, half: bool) -> nn.Module:
    """A CPU copy in eval mode, FastDeconv folded; float16 but the deformable convs with ``half``."""
    from ..nets.aecrnet import DeformConv

    net = copy.deepcopy(net).cpu().float().eval()
    if hasattr(net, "fold_for_inference"):
        net.fold_for_inference()
    if half:
        net = net.half()
        for parent in list(net.modules()):
            for name, child in parent.named_children():
                if isinstance(child, DeformConv):
                    setattr(parent, name, _Float32(child))
    return net.requires_grad_(False)


def state_sha256(net: nn.Module) -> str:
    """A hash of the network's weights (names, dtypes, shapes, values): the cache key of its export."""
    h = hashlib.sha256()
    for key, t in sorted(net.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def op_types(model) -> set[str]:
    """Every node type in an ONNX ``ModelProto`` (graph and local functions)."""
    nodes = list(model.graph.node) + [n for f in model.functions for n in f.node]
    return {n.op_type for n in nodes}


def _check_graph(net: nn.Module, ops: set[str]) -> None:
    from ..nets.aecrnet import DeformConv

    if "GridSample" in ops:
        raise ModelError("the ONNX graph holds GridSample (the CPU sampling form of the deformable conv); report a bug")
    if any(isinstance(m, DeformConv) for m in net.modules()) and "DeformConv" not in ops:
        raise ModelError("the ONNX graph lost the deformable convolution (no DeformConv node); report a bug")


def export_network(
    net: nn.Module,
    path: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    half: bool = False,
    multiple: int = 4,
    metadata: dict[str, str] | None = None,
) -> ExportResult:
    """Write ``net`` (``(N, 3, H, W)`` float in [0, 1] → same shape) to ``path`` as ONNX; returns what was written.

    Dynamic batch, height and width (multiples of ``multiple``, at least ``2 * multiple``);
    ``metadata`` goes into the model's ``metadata_props``. The file is checked with
    ``onnx.checker`` and written atomically (complete or absent).
    """
    check_opset(opset)
    onnx, _ = require(EXPORT, "exporting to ONNX")
    # torchvision's ops must be registered before the exporter builds its table, or deform_conv2d has
    # no translation to DeformConv (nets/aecrnet.py imports torchvision only when it runs the op)
    import torchvision.ops  # noqa: F401

    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise InputError(f"--opset {opset}: onnx {onnx.__version__} knows opsets up to {newest}; use {MIN_OPSET}")
    t0 = time.perf_counter()
    model = _prepared(net, half)
    dtype = torch.float16 if half else torch.float32
    # batch 2 and sides of 16 multiples: sizes 0/1 would be specialised and lose their dynamic dims
    example = torch.rand(2, 3, 16 * multiple, 12 * multiple, generator=torch.Generator().manual_seed(0)).to(dtype)
    batch, h, w = torch.export.Dim("batch", min=1), torch.export.Dim("h", min=2), torch.export.Dim("w", min=2)
    dims = ({0: batch, 2: multiple * h, 3: multiple * w},)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model, (example,), dynamo=True, opset_version=opset, input_names=[INPUT], output_names=[OUTPUT],
                dynamic_shapes=dims, verbose=False,
            )  # fmt: skip
    except Exception as err:  # the exporter raises many types; one line with the first line of its reason
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ModelError(f"ONNX export failed ({type(err).__name__}: {reason[:200]})") from err
    proto = program.model_proto
    ops = op_types(proto)
    _check_graph(model, ops)
    meta = {**(metadata or {}), "opset": str(opset), "precision": "fp16" if half else "fp32"}
    dtype_name = "float16" if half else "float32"
    meta["input"] = f"{INPUT}: (N, 3, H, W) {dtype_name} RGB in [0, 1], H and W multiples of {multiple}"
    meta["output"] = f"{OUTPUT}: (N, 3, H, W), the network's raw output (AECR-Net: tanh in [-1, 1], clamp to [0, 1])"
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=str(value))
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as err:
        raise ModelError(f"the exported ONNX model is invalid: {str(err).strip().splitlines()[0][:200]}") from err
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        onnx.save(proto, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(path, opset, meta["precision"], meta, ops, time.perf_counter() - t0)


def card_metadata(dehazer: nn.Module) -> dict[str, str]:
    """What the model card says about a loaded :class:`~streamdehaze.nets.dehazer.Dehazer`, as ONNX metadata:
    model name, source weight file and its sha256, ngf, the working size the weights were trained for."""
    from .._version import __version__
    from ..weights import sha256
    from ..work_size import model_work_side

    info = dict(getattr(dehazer, "info", None) or {})
    weights = str(info.get("weights") or "")
    is_file = bool(weights) and Path(weights).is_file()
    side = model_work_side(dehazer)
    net = getattr(dehazer, "net", dehazer)
    return {
        "model": str(getattr(dehazer, "name", type(net).__name__)),
        "weights": Path(weights).name if is_file else (weights or "in memory"),
        "weights_sha256": sha256(weights) if is_file else "",
        "state_sha256": state_sha256(net),
        "ngf": str(info.get("ngf") or getattr(net, "ngf", "") or ""),
        "work_side": str(side or ""),
        "working_size": f"short side {side} px (guided transfer to full resolution)" if side else "not set",
        "producer": f"streamdehaze {__version__}",
    }
