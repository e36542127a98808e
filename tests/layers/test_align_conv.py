"""AlignConv (S2A-Net's alignment convolution): offsets from the anchor geometry, equality with a
plain convolution for kernel-sized axis-aligned anchors, a turned kernel for turned anchors, and a
bilinear-sampling reference for arbitrary anchors."""

import math

import pytest
import torch
from torch.nn import functional as F

from rotated_det.layers import AlignConv, align_conv_offsets


def grid_anchors(n, height, width, stride, w, h, angle):
    """[n, H * W, 5]: one (w, h, angle) anchor centred on each location (row-major)."""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64),
        torch.arange(width, dtype=torch.float64),
        indexing="ij",
    )
    centres = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1) * stride
    sizes = torch.tensor([[w, h, angle]], dtype=torch.float64).expand(height * width, 3)
    return torch.cat([centres, sizes], dim=1).expand(n, -1, -1).contiguous()


def reference_align_conv(x, weight, anchors, stride):
    """Each output: sum over taps of weight * bilinear sample (zero outside) at the tap's point on
    its anchor, written point by point."""
    n, c, height, width = x.shape
    k = weight.shape[-1]
    r = (k - 1) // 2
    out = torch.zeros(n, weight.shape[0], height, width, dtype=x.dtype)

    def sample(img, py, px):
        y0, x0 = math.floor(py), math.floor(px)
        val = torch.zeros(c, dtype=x.dtype)
        for yy, xx in ((y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)):
            if 0 <= yy < height and 0 <= xx < width:
                val += (1 - abs(py - yy)) * (1 - abs(px - xx)) * img[:, yy, xx]
        return val

    for b in range(n):
        for i in range(height):
            for j in range(width):
                cx, cy, w, h, a = anchors[b, i * width + j].tolist()
                cos, sin = math.cos(math.radians(a)), math.sin(math.radians(a))
                acc = torch.zeros(weight.shape[0], dtype=x.dtype)
                for ky in range(-r, r + 1):
                    for kx in range(-r, r + 1):
                        u, v = kx * w / k, ky * h / k
                        px = (cx + u * cos + v * sin) / stride
                        py = (cy - u * sin + v * cos) / stride
                        acc += weight[:, :, ky + r, kx + r] @ sample(x[b], py, px)
                out[b, :, i, j] = acc
    return out


def test_offsets_of_the_worked_example():
    """The module docstring's example: anchor (16, 8, 48, 24, 0), stride 8, location (1, 2)."""
    anchors = torch.zeros(1, 3 * 4, 5)
    anchors[0, :, 2:4] = 24.0  # the other locations: kernel-sized squares at the origin
    anchors[0, 1 * 4 + 2] = torch.tensor([16.0, 8.0, 48.0, 24.0, 0.0])
    off = align_conv_offsets(anchors, 3, 4, 8.0, 3)
    assert off.shape == (1, 18, 3, 4)
    taps = off[0, :, 1, 2].view(3, 3, 2)  # [ky + 1, kx + 1, (dy, dx)]
    # sampled at rows (0, 1, 2) and columns (0, 2, 4) instead of rows 0-2 and columns 1-3
    expected_dx = torch.tensor([-1.0, 0.0, 1.0]).expand(3, 3)
    torch.testing.assert_close(taps[..., 0], torch.zeros(3, 3))
    torch.testing.assert_close(taps[..., 1], expected_dx)
    # a 90-degree square of side 16 at (8, 8), stride 8, location (1, 1): tap spacing 16/3/8;
    # the right-hand tap (ky, kx) = (0, 1) is read above the centre, at row 1 - 2/3, column 1:
    # offset (dy, dx) = (-2/3, -1) from its plain tap (1, 2)
    anchors[0, 1 * 4 + 1] = torch.tensor([8.0, 8.0, 16.0, 16.0, 90.0])
    off = align_conv_offsets(anchors, 3, 4, 8.0, 3)
    dy, dx = off[0, 2 * 5, 1, 1], off[0, 2 * 5 + 1, 1, 1]
    assert dy.item() == pytest.approx(-2 / 3, abs=1e-6)
    assert dx.item() == pytest.approx(-1.0, abs=1e-6)


IMPLEMENTATIONS = ["deform_conv2d", "grid_sample"]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("stride", [8.0, 16.0])
def test_kernel_sized_axis_aligned_anchors_equal_a_plain_conv(stride, implementation):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 7, 9)
    conv = AlignConv(5, 4, 3, implementation=implementation)
    anchors = grid_anchors(2, 7, 9, stride, 3 * stride, 3 * stride, 0.0).float()
    torch.testing.assert_close(
        align_conv_offsets(anchors, 7, 9, stride, 3), torch.zeros(2, 18, 7, 9)
    )
    expected = F.conv2d(x, conv.weight, padding=1)
    torch.testing.assert_close(conv(x, anchors, stride), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("angle, turns", [(90.0, 1), (180.0, 2), (-90.0, -1), (270.0, -1)])
def test_turned_anchors_equal_the_turned_kernel(angle, turns, implementation):
    """An anchor turned by 90 degrees CCW reads the taps of the kernel turned CCW
    (torch.rot90 with k > 0 turns CCW as the image is shown, y down)."""
    torch.manual_seed(1)
    x = torch.randn(1, 3, 6, 6)
    conv = AlignConv(3, 2, 3, implementation=implementation)
    anchors = grid_anchors(1, 6, 6, 8.0, 24.0, 24.0, angle).float()
    expected = F.conv2d(x, torch.rot90(conv.weight, turns, dims=(2, 3)), padding=1)
    torch.testing.assert_close(conv(x, anchors, 8.0), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_arbitrary_anchors_match_bilinear_reference(implementation):
    torch.manual_seed(2)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    conv = AlignConv(3, 2, 3, implementation=implementation).double()
    g = torch.Generator().manual_seed(3)
    anchors = torch.cat(
        [
            torch.rand(2, 30, 2, generator=g, dtype=torch.float64) * 60 - 5,  # some outside
            torch.rand(2, 30, 2, generator=g, dtype=torch.float64) * 50 + 4,
            torch.rand(2, 30, 1, generator=g, dtype=torch.float64) * 360 - 180,
        ],
        dim=2,
    )
    got = conv(x, anchors, 8.0)
    expected = reference_align_conv(x, conv.weight.detach(), anchors, 8.0)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_gradients_reach_features_and_weight(implementation):
    torch.manual_seed(4)
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    conv = AlignConv(2, 3, 3, implementation=implementation).double()
    anchors = grid_anchors(1, 4, 5, 8.0, 30.0, 13.0, 33.0)
    anchors[..., :2] += 2.7  # off-grid samples: bilinear weights strictly between 0 and 1
    weight = conv.weight
    assert torch.autograd.gradcheck(
        lambda inp, w: torch.func.functional_call(conv, {"weight": w}, (inp, anchors, 8.0)),
        (x, weight),
    )
    conv(x, anchors, 8.0).sum().backward()
    assert x.grad is not None and weight.grad is not None and weight.grad.abs().sum() > 0


def test_bad_arguments_name_themselves():
    conv = AlignConv(2, 2)
    x = torch.zeros(1, 2, 4, 4)
    with pytest.raises(ValueError, match=r"anchors must be \[N=1, H \* W, 5\]"):
        conv(x, torch.zeros(1, 16, 4), 8.0)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        AlignConv(2, 2, kernel_size=2)
    with pytest.raises(ValueError, match="implementation must be one of"):
        AlignConv(2, 2, implementation="cuda")


def test_auto_uses_grid_sample_on_the_cpu(monkeypatch):
    calls = []
    import rotated_det.layers.deform_conv as module  # AlignConv runs DeformConv2d

    monkeypatch.setattr(
        module, "deform_conv2d_grid", lambda *a: calls.append(1) or torch.zeros(1, 2, 3, 3)
    )
    AlignConv(2, 2)(torch.zeros(1, 2, 3, 3), torch.ones(1, 9, 5), 8.0)
    assert calls == [1]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_kernel_equals_cpu_formulation():
    """'auto' runs torchvision's CUDA kernel on a GPU and the grid_sample formulation on the
    CPU: same outputs and gradients within float32 rounding."""
    torch.manual_seed(5)
    conv = AlignConv(8, 6)
    x = torch.randn(2, 8, 12, 10, requires_grad=True)
    anchors = grid_anchors(2, 12, 10, 8.0, 40.0, 14.0, 25.0).float()
    anchors[..., :2] += torch.randn(2, 120, 2) * 5
    out = conv(x, anchors, 8.0)
    out.square().sum().backward()
    conv_gpu = AlignConv(8, 6).cuda()
    conv_gpu.weight.data.copy_(conv.weight.data)
    x_gpu = x.detach().cuda().requires_grad_(True)
    out_gpu = conv_gpu(x_gpu, anchors.cuda(), 8.0)
    out_gpu.square().sum().backward()
    torch.testing.assert_close(out_gpu.cpu(), out, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(x_gpu.grad.cpu(), x.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(conv_gpu.weight.grad.cpu(), conv.weight.grad, rtol=1e-4, atol=1e-3)
