"""AECR-Net (Wu et al., CVPR 2021), state-dict compatible with the official checkpoints.

Layout of the official ``Dehaze`` network: FastDeconv input layer, three downsampling convs,
one weight-shared feature-attention block applied six times, one weight-shared deformable conv
block applied twice, two adaptive mixups (learned sigmoid gates), two transposed convs and a
7×7 output conv with tanh. Input ``(B, 3, H, W)`` RGB in [0, 1] with H, W multiples of 4; the
raw output is tanh in [-1, 1] and callers clamp it to [0, 1] (see :mod:`streamdehaze.nets.infer`).
"""

from __future__ import annotations

import torch
from torch import nn

from .deconv import FastDeconv, fold_fastdeconv
from .deform import deform_conv2d_sampled


def _conv(cin: int, cout: int, k: int, **kw) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=True, **kw)


class CALayer(nn.Module):
    """Channel attention: ``x * sigmoid(MLP(avgpool(x)))``."""

    def __init__(self, ch: int, **kw) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.ca = nn.Sequential(
            nn.Conv2d(ch, ch // 8, 1, **kw), nn.ReLU(inplace=True), nn.Conv2d(ch // 8, ch, 1, **kw), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.ca(self.avg_pool(x))


class PALayer(nn.Module):
    """Pixel attention: ``x * sigmoid(conv(relu(conv(x))))`` with one map for all channels."""

    def __init__(self, ch: int, **kw) -> None:
        super().__init__()
        self.pa = nn.Sequential(
            nn.Conv2d(ch, ch // 8, 1, **kw), nn.ReLU(inplace=True), nn.Conv2d(ch // 8, 1, 1, **kw), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.pa(x)


class DehazeBlock(nn.Module):
    """FFA-style residual block with channel and pixel attention."""

    def __init__(self, dim: int, kernel_size: int = 3, **kw) -> None:
        super().__init__()
        self.conv1 = _conv(dim, dim, kernel_size, **kw)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = _conv(dim, dim, kernel_size, **kw)
        self.calayer = CALayer(dim, **kw)
        self.palayer = PALayer(dim, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.act1(self.conv1(x)) + x
        res = self.palayer(self.calayer(self.conv2(res)))
        return res + x


def uses_sampled_deform(x: torch.Tensor) -> bool:
    """Whether :class:`DeformConv` computes with :mod:`.deform` (CPU) rather than torchvision's kernel.

    Never while ``torch.export`` traces (the ONNX export): torchvision's op becomes ONNX ``DeformConv``,
    the sampling form would become ``GridSample`` and a graph that TensorRT and others run slowly.
    """
    return x.device.type == "cpu" and not torch.compiler.is_exporting()


class DeformConv(nn.Module):
    """Modulated deformable 3×3 conv (DCNv2): ``torchvision.ops.deform_conv2d`` on CUDA and in exports,
    the equal bilinear-sampling form (:mod:`.deform`, several times faster there) on the CPU.

    ``conv_offset_mask`` predicts 27 channels: chunks 0 and 1 concatenated are the 18 offsets,
    sigmoid of chunk 2 the 9 modulation masks (DCNv2's layout). It starts at zero, so a fresh
    layer samples the regular grid with mask 0.5, as in DCNv2.
    """

    def __init__(self, cin: int, cout: int, **kw) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cout, cin, 3, 3, **kw))
        self.bias = nn.Parameter(torch.empty(cout, **kw))
        self.conv_offset_mask = nn.Conv2d(cin, 27, 3, padding=1, **kw)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / (self.weight.shape[1] * 9) ** 0.5
        nn.init.uniform_(self.weight, -stdv, stdv)
        nn.init.zeros_(self.bias)
        nn.init.zeros_(self.conv_offset_mask.weight)
        nn.init.zeros_(self.conv_offset_mask.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o1, o2, mask = torch.chunk(self.conv_offset_mask(x), 3, dim=1)
        offset = torch.cat((o1, o2), dim=1)
        if uses_sampled_deform(x):
            return deform_conv2d_sampled(x, offset, self.weight, self.bias, torch.sigmoid(mask))
        # imported here: torchvision.ops loads torch._dynamo (about 2 s of every CPU run's start-up)
        from torchvision.ops import deform_conv2d

        return deform_conv2d(x, offset, self.weight, self.bias, padding=(1, 1), mask=torch.sigmoid(mask))


class DCNBlock(nn.Module):
    def __init__(self, cin: int, cout: int, **kw) -> None:
        super().__init__()
        self.dcn = DeformConv(cin, cout, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dcn(x)


class Mix(nn.Module):
    """Adaptive mixup: ``a * sigmoid(w) + b * (1 - sigmoid(w))``."""

    def __init__(self, m: float, **kw) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.full((1,), m, **kw))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        f = torch.sigmoid(self.w)
        return a * f + b * (1 - f)


class AECRNet(nn.Module):
    """AECR-Net. ``ngf=64`` is the paper's network (2,614,229 parameters).

    ``forward``: ``(B, 3, H, W)`` float RGB in [0, 1], H and W multiples of 4 →
    ``(B, 3, H, W)`` tanh output in [-1, 1] (unclamped, as in the official code).
    """

    def __init__(
        self,
        ngf: int = 64,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.ngf = ngf
        self.deconv: nn.Module = FastDeconv(3, 3, kernel_size=3, stride=1, padding=1, **kw)
        self.down1 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7, **kw), nn.ReLU(True))
        self.down2 = nn.Sequential(nn.Conv2d(ngf, ngf * 2, 3, stride=2, padding=1, **kw), nn.ReLU(True))
        self.down3 = nn.Sequential(nn.Conv2d(ngf * 2, ngf * 4, 3, stride=2, padding=1, **kw), nn.ReLU(True))
        self.block = DehazeBlock(ngf * 4, 3, **kw)
        self.dcn_block = DCNBlock(ngf * 4, ngf * 4, **kw)
        self.mix1 = Mix(-1.0, **kw)
        self.mix2 = Mix(-0.6, **kw)
        self.up1 = nn.Sequential(
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 3, stride=2, padding=1, output_padding=1, **kw), nn.ReLU(True)
        )
        self.up2 = nn.Sequential(
            nn.ConvTranspose2d(ngf * 2, ngf, 3, stride=2, padding=1, output_padding=1, **kw), nn.ReLU(True)
        )
        self.up3 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7, **kw), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = self.down1(self.deconv(x))
        d2 = self.down2(d1)
        d3 = self.down3(d2)
        y = d3
        for _ in range(6):
            y = self.block(y)
        y = self.dcn_block(self.dcn_block(y))
        y = self.up1(self.mix1(d3, y))
        y = self.up2(self.mix2(d2, y))
        return self.up3(y)

    def fold_for_inference(self) -> AECRNet:
        """Replace FastDeconv by the equal plain conv (eval mode only); returns ``self``."""
        if isinstance(self.deconv, FastDeconv):
            self.deconv = fold_fastdeconv(self.deconv)
        return self.eval()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
