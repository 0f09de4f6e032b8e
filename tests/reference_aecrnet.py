"""An independent functional reference of the official AECR-Net forward pass (eval mode).

Written from the official code's structure with plain ``F.conv2d`` calls on a state dict; the
deformable convolution is computed by explicit bilinear sampling (``grid_sample``), not by
``torchvision.ops.deform_conv2d``, and FastDeconv by explicit im2col whitening, so a mistake
in the package's modules cannot hide in both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fastdeconv_eval(x, sd, p="deconv."):
    """Whiten 3×3 zero-padded patches with the running statistics, then apply the conv."""
    b, c, h, w = x.shape
    patches = F.unfold(x, 3, padding=1)  # (B, C*9, H*W), rows ordered (c, ki, kj)
    white = sd[p + "running_deconv"] @ (patches - sd[p + "running_mean"][None, :, None])
    weight = sd[p + "weight"].reshape(sd[p + "weight"].shape[0], -1)
    return (weight @ white + sd[p + "bias"][None, :, None]).reshape(b, -1, h, w)


def deform_conv_reference(x, offset, mask, weight, bias):
    """DCNv2 3×3, stride 1, pad 1: offset (B, 18, H, W) as (dy, dx) per kernel position."""
    b, c, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij")
    out = bias[None, :, None, None].expand(b, -1, h, w).clone()
    for k in range(9):
        i, j = divmod(k, 3)
        py = ys[None] + (i - 1) + offset[:, 2 * k]
        px = xs[None] + (j - 1) + offset[:, 2 * k + 1]
        grid = torch.stack((2 * px / (w - 1) - 1, 2 * py / (h - 1) - 1), dim=-1)  # (B, H, W, 2) as (x, y)
        sampled = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        out = out + torch.einsum("oc,bchw->bohw", weight[:, :, i, j], sampled * mask[:, k : k + 1])
    return out


def _conv(x, sd, name, **kw):
    return F.conv2d(x, sd[name + ".weight"], sd[name + ".bias"], **kw)


def _block(x, sd):
    res = F.relu(_conv(x, sd, "block.conv1", padding=1)) + x
    res = _conv(res, sd, "block.conv2", padding=1)
    ca = torch.sigmoid(
        _conv(F.relu(_conv(res.mean((2, 3), keepdim=True), sd, "block.calayer.ca.0")), sd, "block.calayer.ca.2")
    )
    res = res * ca
    pa = torch.sigmoid(_conv(F.relu(_conv(res, sd, "block.palayer.pa.0")), sd, "block.palayer.pa.2"))
    return res * pa + x


def _dcn(x, sd):
    om = _conv(x, sd, "dcn_block.dcn.conv_offset_mask", padding=1)
    offset = torch.cat((om[:, :9], om[:, 9:18]), dim=1)
    return deform_conv_reference(
        x, offset, torch.sigmoid(om[:, 18:]), sd["dcn_block.dcn.weight"], sd["dcn_block.dcn.bias"]
    )


def _mix(a, b, w):
    f = torch.sigmoid(w)
    return a * f + b * (1 - f)


def aecrnet_reference(x: torch.Tensor, sd: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(B, 3, H, W)`` in [0, 1], H, W multiples of 4 → raw tanh output, from an official state dict."""
    d1 = F.relu(_conv(F.pad(fastdeconv_eval(x, sd), (3, 3, 3, 3), mode="reflect"), sd, "down1.1"))
    d2 = F.relu(_conv(d1, sd, "down2.0", stride=2, padding=1))
    d3 = F.relu(_conv(d2, sd, "down3.0", stride=2, padding=1))
    y = d3
    for _ in range(6):
        y = _block(y, sd)
    y = _dcn(_dcn(y, sd), sd)
    y = _mix(d3, y, sd["mix1.w"])
    y = F.relu(F.conv_transpose2d(y, sd["up1.0.weight"], sd["up1.0.bias"], stride=2, padding=1, output_padding=1))
    y = _mix(d2, y, sd["mix2.w"])
    y = F.relu(F.conv_transpose2d(y, sd["up2.0.weight"], sd["up2.0.bias"], stride=2, padding=1, output_padding=1))
    return torch.tanh(_conv(F.pad(y, (3, 3, 3, 3), mode="reflect"), sd, "up3.1"))
