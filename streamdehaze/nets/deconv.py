"""FastDeconv: network deconvolution (Ye et al., ICLR 2020) as AECR-Net's input layer.

In training mode the layer whitens its im2col patches with the inverse square root of their
covariance (Newton–Schulz iterations) and tracks running statistics; in eval mode it uses the
running statistics, which makes it a plain affine function of the input patches, so
:func:`fold_fastdeconv` replaces it by an ``nn.Conv2d`` once for inference.

Buffers and parameters keep the official names (``weight``, ``bias``, ``running_mean``,
``running_deconv``) so official checkpoints load unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def isqrt_newton_schulz(a: torch.Tensor, n_iter: int) -> torch.Tensor:
    """Inverse square root of a symmetric positive definite ``(D, D)`` matrix.

    Coupled Newton–Schulz iterations on ``a / ||a||_F``; differentiable.
    """
    dim = a.shape[0]
    norm = a.norm()
    y = a / norm
    eye = torch.eye(dim, dtype=a.dtype, device=a.device)
    z = torch.eye(dim, dtype=a.dtype, device=a.device)
    for _ in range(n_iter):
        t = 0.5 * (3.0 * eye - z @ y)
        y = y @ t
        z = t @ z
    return z / torch.sqrt(norm)


class FastDeconv(nn.Module):
    """Deconvolution layer for ``groups == 1`` (the configuration AECR-Net uses).

    Input ``(B, C_in, H, W)``, output ``(B, C_out, H', W')`` as ``nn.Conv2d`` with the same
    kernel, stride and padding.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        eps: float = 1e-5,
        n_iter: int = 5,
        momentum: float = 0.1,
        block: int = 64,
        sampling_stride: int = 3,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.eps, self.n_iter, self.momentum = eps, n_iter, momentum
        if block > in_channels:
            block = in_channels
        elif in_channels % block:
            block = math.gcd(block, in_channels)
        self.block = block
        self.num_features = kernel_size**2 * block
        self.sampling_stride = sampling_stride * stride
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size, **factory))
        self.bias = nn.Parameter(torch.empty(out_channels, **factory))
        self.register_buffer("running_mean", torch.zeros(self.num_features, **factory))
        self.register_buffer("running_deconv", torch.eye(self.num_features, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Same initialisation as nn.Conv2d.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        fan_in = self.in_channels * self.kernel_size**2
        bound = 1 / math.sqrt(fan_in)
        nn.init.uniform_(self.bias, -bound, bound)

    def _patch_statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``(D,)`` and whitening matrix ``(D, D)`` of the subsampled im2col patches."""
        c = x.shape[1]
        cols = F.unfold(x, self.kernel_size, 1, self.padding, self.sampling_stride)
        cols = cols.transpose(1, 2).reshape(-1, self.num_features, c // self.block)
        cols = cols.transpose(1, 2).reshape(-1, self.num_features)
        mean = cols.mean(0)
        cols = cols - mean.unsqueeze(0)
        eye = torch.eye(self.num_features, dtype=x.dtype, device=x.device)
        cov = torch.addmm(eye, cols.t(), cols, beta=self.eps, alpha=1.0 / cols.shape[0])
        return mean, isqrt_newton_schulz(cov, self.n_iter)

    def effective_conv(
        self,
        mean: torch.Tensor,
        deconv: torch.Tensor,
        weight: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight and bias of the plain convolution equal to whitening followed by this conv.

        ``weight``/``bias`` default to the layer's own (passed explicitly to fold in float64).
        """
        weight = self.weight if weight is None else weight
        bias = self.bias if bias is None else bias
        c = self.in_channels
        nf = self.num_features
        w = weight.reshape(-1, nf, c // self.block).transpose(1, 2).reshape(-1, nf) @ deconv
        b = bias - (w @ mean.unsqueeze(1)).reshape(self.out_channels, -1).sum(1)
        w = w.reshape(-1, c // self.block, nf).transpose(1, 2).reshape(weight.shape)
        return w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            mean, deconv = self._patch_statistics(x)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_deconv.lerp_(deconv.detach(), self.momentum)
        else:
            mean, deconv = self.running_mean, self.running_deconv
        w, b = self.effective_conv(mean, deconv)
        return F.conv2d(x, w, b, self.stride, self.padding)


def fold_fastdeconv(layer: FastDeconv) -> nn.Conv2d:
    """A plain ``nn.Conv2d`` equal to ``layer`` in eval mode (running statistics)."""
    conv = nn.Conv2d(
        layer.in_channels,
        layer.out_channels,
        layer.kernel_size,
        layer.stride,
        layer.padding,
        device=layer.weight.device,
        dtype=layer.weight.dtype,
    )
    with torch.no_grad():
        # Compute in float64: the folded weights are then as exact as the dtype allows.
        f64 = [t.double() for t in (layer.running_mean, layer.running_deconv, layer.weight, layer.bias)]
        w, b = layer.effective_conv(*f64)
        conv.weight.copy_(w)
        conv.bias.copy_(b)
    return conv.eval()
