"""The CPU deformable convolution (bilinear sampling) equals torchvision's kernel, values and gradients."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import deform_conv2d

from streamdehaze.nets.aecrnet import DeformConv
from streamdehaze.nets.deform import deform_conv2d_sampled


def _inputs(b=2, c=5, o=6, h=7, w=9, spread=2.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, h, w, generator=g, dtype=torch.float64)
    # offsets large enough that many taps land between pixels and some fall outside the image
    offset = torch.randn(b, 18, h, w, generator=g, dtype=torch.float64) * spread
    mask = torch.rand(b, 9, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(o, c, 3, 3, generator=g, dtype=torch.float64)
    bias = torch.randn(o, generator=g, dtype=torch.float64)
    return [t.requires_grad_() for t in (x, offset, mask, weight, bias)]


@pytest.mark.parametrize("shape", [(2, 5, 6, 7, 9), (1, 3, 3, 2, 11), (3, 8, 4, 12, 5)])
def test_sampled_deform_conv_equals_torchvision_with_gradients(shape):
    b, c, o, h, w = shape
    x, offset, mask, weight, bias = inputs = _inputs(b, c, o, h, w)
    ref = deform_conv2d(x, offset, weight, bias, padding=(1, 1), mask=mask)
    out = deform_conv2d_sampled(x, offset, weight, bias, mask)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    grad_out = torch.randn_like(ref)
    for g_ref, g_out in zip(torch.autograd.grad(ref, inputs, grad_out), torch.autograd.grad(out, inputs, grad_out)):
        torch.testing.assert_close(g_out, g_ref, rtol=0, atol=1e-11)


def test_integer_offsets_shift_the_image():
    # dy = 1 on every tap of a 1×1-centred kernel: output row r is input row r + 1, zero past the edge
    x = torch.arange(20.0).view(1, 1, 4, 5)
    weight = torch.zeros(1, 1, 3, 3)
    weight[0, 0, 1, 1] = 1
    offset = torch.zeros(1, 18, 4, 5)
    offset[:, 0::2] = 1
    out = deform_conv2d_sampled(x, offset, weight, None, torch.ones(1, 9, 4, 5))
    assert torch.equal(out[0, 0, :3], x[0, 0, 1:]) and torch.equal(out[0, 0, 3], torch.zeros(5))


def test_deform_conv_module_uses_the_sampled_form_on_cpu_with_the_same_result():
    torch.manual_seed(0)
    layer = DeformConv(6, 4).double()
    with torch.no_grad():
        layer.conv_offset_mask.weight.normal_(0, 0.5)  # non-zero offsets and masks
    x = torch.rand(2, 6, 10, 8, dtype=torch.float64)
    o1, o2, m = torch.chunk(layer.conv_offset_mask(x), 3, dim=1)
    ref = deform_conv2d(x, torch.cat((o1, o2), 1), layer.weight, layer.bias, padding=(1, 1), mask=torch.sigmoid(m))
    torch.testing.assert_close(layer(x), ref, rtol=0, atol=1e-12)


def test_low_precision_input_samples_in_float32():
    # a 400 px wide map: bf16 sampling positions there are 1-2 px apart (a relative error of ~0.5
    # for this texture); computed in float32 only the bf16 rounding of values and weights remains
    x, offset, mask, weight, bias = (t.detach() for t in _inputs(1, 4, 4, 8, 400, spread=0.3))
    ref = deform_conv2d_sampled(*(t.float() for t in (x, offset, weight, bias, mask)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        args = (t.bfloat16() for t in (x, offset, weight, bias, mask))
        out = deform_conv2d_sampled(*args)
    assert out.dtype == torch.float32
    assert (out - ref).abs().max() < 0.02 * ref.abs().max()


def test_mismatched_offset_shape_is_a_clear_error():
    x, offset, mask, weight, bias = (t.detach() for t in _inputs())
    with pytest.raises(ValueError, match="do not fit 3×3 taps"):
        deform_conv2d_sampled(x, offset[:, :16], weight, bias, mask)
