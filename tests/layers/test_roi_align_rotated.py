"""roi_align_rotated / ROIAlignRotated against a pure-PyTorch bilinear reference."""

import math

import pytest
import torch
from torchvision.ops import roi_align

from rotated_det.layers import ROIAlignRotated, roi_align_rotated
from rotated_det.layers.roi_align_rotated import MAX_OUTPUT_SIDE, MAX_SAMPLING_RATIO


def _bilinear(img, y, x):
    """Samples img [C, H, W] at continuous positions y, x (same shape S) -> [C, *S].

    Pixel centres at integer coordinates; points farther than 1 px outside give 0, points within
    1 px are clamped to the border (Detectron2's rule).
    """
    _, h, w = img.shape
    valid = (y >= -1) & (y <= h) & (x >= -1) & (x <= w)
    y = y.clamp(min=0)
    x = x.clamp(min=0)
    y0 = y.floor().long()
    x0 = x.floor().long()
    top_y = y0 >= h - 1
    top_x = x0 >= w - 1
    y0 = torch.where(top_y, torch.full_like(y0, h - 1), y0)
    x0 = torch.where(top_x, torch.full_like(x0, w - 1), x0)
    y = torch.where(top_y, y0.to(y.dtype), y)
    x = torch.where(top_x, x0.to(x.dtype), x)
    y1 = torch.where(top_y, y0, y0 + 1)
    x1 = torch.where(top_x, x0, x0 + 1)
    ly, lx = y - y0, x - x0
    hy, hx = 1 - ly, 1 - lx
    val = (
        img[:, y0, x0] * (hy * hx)
        + img[:, y0, x1] * (hy * lx)
        + img[:, y1, x0] * (ly * hx)
        + img[:, y1, x1] * (ly * lx)
    )
    return val * valid.to(val.dtype)


def _reference(input, rois, output_size, spatial_scale, sampling_ratio):
    """Rotated RoIAlign by explicit sampling: each bin averages a grid_h x grid_w grid of samples
    at sub-cell centres, in the RoI's frame (w-axis along (cos a, -sin a), h-axis along
    (sin a, cos a)), shifted by -0.5 px ("aligned")."""
    ph, pw = output_size
    n, c = input.shape[:2]
    outs = []
    for roi in rois.tolist():
        b = roi[0]
        if not all(math.isfinite(v) for v in roi) or not 0 <= b < n:
            outs.append(input.new_zeros(c, ph, pw))
            continue
        cx = roi[1] * spatial_scale - 0.5
        cy = roi[2] * spatial_scale - 0.5
        w = max(roi[3] * spatial_scale, 0.0)
        h = max(roi[4] * spatial_scale, 0.0)
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(h / ph)
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(w / pw)
        if gh * gw == 0:
            outs.append(input.new_zeros(c, ph, pw))
            continue
        t = math.radians(roi[5])
        cos, sin = math.cos(t), math.sin(t)
        yy = -h / 2 + (torch.arange(ph * gh, dtype=input.dtype) + 0.5) * (h / (ph * gh))
        xx = -w / 2 + (torch.arange(pw * gw, dtype=input.dtype) + 0.5) * (w / (pw * gw))
        yy, xx = torch.meshgrid(yy, xx, indexing="ij")
        x = xx * cos + yy * sin + cx
        y = yy * cos - xx * sin + cy
        val = _bilinear(input[int(b)], y, x)  # [C, ph*gh, pw*gw]
        outs.append(val.reshape(c, ph, gh, pw, gw).mean(dim=(2, 4)))
    if not outs:
        return input.new_zeros(0, c, ph, pw)
    return torch.stack(outs)


def _rois(k, n, size, gen, dtype=torch.float64, smin=2.0, smax=40.0):
    b = torch.randint(0, n, (k, 1), generator=gen).to(dtype)
    xy = torch.rand(k, 2, generator=gen, dtype=dtype) * size * 1.2 - 0.1 * size
    wh = torch.rand(k, 2, generator=gen, dtype=dtype) * (smax - smin) + smin
    a = torch.rand(k, 1, generator=gen, dtype=dtype) * 720 - 360
    return torch.cat([b, xy, wh, a], 1)


@pytest.mark.parametrize("angle", [0.0, 90.0, 180.0, 270.0, -90.0, 33.0, -147.5])
@pytest.mark.parametrize("sampling_ratio", [2, 0])
def test_matches_reference_at_angles(angle, sampling_ratio):
    gen = torch.Generator().manual_seed(int(angle) + 1000 * sampling_ratio)
    x = torch.randn(2, 3, 20, 24, generator=gen, dtype=torch.float64)
    rois = _rois(12, 2, 40, gen)
    rois[:, 5] = angle
    got = roi_align_rotated(x, rois, (5, 4), 0.5, sampling_ratio)
    ref = _reference(x, rois, (5, 4), 0.5, sampling_ratio)
    assert got.shape == (12, 3, 5, 4)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)


def test_matches_reference_random_float32():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 16, 16, generator=gen)
    rois = _rois(40, 2, 64, gen, dtype=torch.float32)
    for sr in (1, 3, 0, -1):
        got = roi_align_rotated(x, rois, 7, 0.25, sr)
        ref = _reference(x.double(), rois.double(), (7, 7), 0.25, sr)
        torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-5)


def test_axis_aligned_equals_torchvision_and_rotations_permute_bins():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(1, 4, 30, 30, generator=gen, dtype=torch.float64)
    cx, cy, w, h = 13.3, 15.1, 17.0, 9.0
    r0 = torch.tensor([[0, cx, cy, w, h, 0.0]], dtype=torch.float64)
    out0 = roi_align_rotated(x, r0, (3, 4), 1.0, 2)
    tv = roi_align(
        x,
        torch.tensor([[0, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]], dtype=torch.float64),
        (3, 4),
        1.0,
        2,
        aligned=True,
    )
    torch.testing.assert_close(out0, tv, rtol=1e-12, atol=1e-12)
    # 180 degrees visits the same samples in reverse order along both axes
    r180 = r0.clone()
    r180[0, 5] = 180.0
    torch.testing.assert_close(
        roi_align_rotated(x, r180, (3, 4), 1.0, 2), out0.flip(-1, -2), rtol=1e-12, atol=1e-12
    )
    # 90 degrees: the RoI's w-axis points up the image (0, -1), its h-axis right (1, 0); it is
    # the axis-aligned RoI with sides swapped, read with bins transposed and flipped.
    r90 = torch.tensor([[0, cx, cy, w, h, 90.0]], dtype=torch.float64)
    swapped = torch.tensor([[0, cx, cy, h, w, 0.0]], dtype=torch.float64)
    out_sw = roi_align_rotated(x, swapped, (4, 3), 1.0, 2)  # [1, C, pw, ph]
    expected90 = out_sw.transpose(-1, -2).flip(-1)
    torch.testing.assert_close(
        roi_align_rotated(x, r90, (3, 4), 1.0, 2), expected90, rtol=1e-12, atol=1e-12
    )
    r270 = r90.clone()
    r270[0, 5] = 270.0
    torch.testing.assert_close(
        roi_align_rotated(x, r270, (3, 4), 1.0, 2),
        expected90.flip(-1, -2),
        rtol=1e-12,
        atol=1e-12,
    )


def test_degenerate_sizes_match_reference():
    # Negative sides count as 0: the RoI shrinks to its centre line (or point).
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(1, 2, 10, 10, generator=gen, dtype=torch.float64)
    rois = torch.tensor(
        [
            [0, 9.0, 9.0, -6.0, 8.0, 30.0],
            [0, 9.0, 9.0, 6.0, 0.0, -60.0],
            [0, 9.0, 9.0, 0.0, 0.0, 10.0],
        ],
        dtype=torch.float64,
    )
    for sr in (2, 0):
        got = roi_align_rotated(x, rois, 3, 0.5, sr)
        torch.testing.assert_close(got, _reference(x, rois, (3, 3), 0.5, sr))
    flat = rois.clone()
    flat[0, 3] = 0.0
    torch.testing.assert_close(
        roi_align_rotated(x, rois[:1], 3, 0.5, 2), roi_align_rotated(x, flat[:1], 3, 0.5, 2)
    )


def test_gradcheck_float64():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 2, 7, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    rois = _rois(5, 2, 16, gen, smin=1.0, smax=12.0)
    rois[0] = torch.tensor([1, 14.0, 13.0, 12.0, 8.0, 30.0])  # partly outside the map
    for sr in (2, 0):
        assert torch.autograd.gradcheck(
            lambda t, sr=sr: roi_align_rotated(t, rois, (3, 2), 0.5, sr),
            (x,),
            eps=1e-6,
            atol=1e-8,
        )


def test_backward_matches_reference_autograd():
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(2, 4, 12, 12, generator=gen, dtype=torch.float64, requires_grad=True)
    rois = _rois(20, 2, 24, gen)
    g = torch.randn(20, 4, 3, 3, generator=gen, dtype=torch.float64)
    (grad,) = torch.autograd.grad((roi_align_rotated(x, rois, 3, 0.5, 0) * g).sum(), x)
    (ref,) = torch.autograd.grad((_reference(x, rois, (3, 3), 0.5, 0) * g).sum(), x)
    torch.testing.assert_close(grad, ref, rtol=1e-10, atol=1e-10)


def test_invalid_rois_give_zero_and_no_gradient():
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor(
        [
            [0, 4.0, 4.0, 4.0, 4.0, 0.0],  # valid
            [2, 4.0, 4.0, 4.0, 4.0, 0.0],  # batch index out of range
            [-1, 4.0, 4.0, 4.0, 4.0, 0.0],
            [0, float("nan"), 4.0, 4.0, 4.0, 0.0],
            [0, 4.0, 4.0, float("inf"), 4.0, 0.0],
            [float("nan"), 4.0, 4.0, 4.0, 4.0, 0.0],
            [0, 1e6, 1e6, 4.0, 4.0, 0.0],  # far outside the map
        ],
        dtype=torch.float64,
    )
    out = roi_align_rotated(x, rois, 2, 1.0, 2)
    assert out[0].abs().sum() > 0
    assert torch.equal(out[1:], torch.zeros_like(out[1:]))
    (grad,) = torch.autograd.grad(out[1:].sum(), x)
    assert torch.equal(grad, torch.zeros_like(grad))


def test_empty_rois_and_module():
    x = torch.randn(1, 3, 8, 8, requires_grad=True)
    m = ROIAlignRotated((2, 3), 0.5, 2)
    assert "output_size=(2, 3)" in repr(m)
    out = m(x, torch.zeros(0, 6))
    assert out.shape == (0, 3, 2, 3)
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    rois = torch.tensor([[0, 5.0, 6.0, 7.0, 3.0, 20.0]])
    torch.testing.assert_close(m(x, rois), roi_align_rotated(x, rois, (2, 3), 0.5, 2))


def test_bad_inputs_raise_value_error():
    x = torch.zeros(1, 2, 4, 4)
    r = torch.zeros(1, 6)
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        roi_align_rotated(torch.zeros(2, 4, 4), r, 2, 1.0, 2)
    with pytest.raises(ValueError, match=r"\[K, 6\]"):
        roi_align_rotated(x, torch.zeros(1, 5), 2, 1.0, 2)
    with pytest.raises(ValueError, match="dtype"):
        roi_align_rotated(x, r.double(), 2, 1.0, 2)
    with pytest.raises(ValueError, match="float32 or float64, got torch.int64"):
        roi_align_rotated(x.long(), r.long(), 2, 1.0, 2)
    with pytest.raises(ValueError, match="output_size"):
        roi_align_rotated(x, r, (0, 2), 1.0, 2)
    # float32 features take rois of their own dtype only; half features take float32 too
    with pytest.raises(ValueError, match="rois must have the dtype of input"):
        roi_align_rotated(x, r.bfloat16(), 2, 1.0, 2)
    with pytest.raises(ValueError, match="accepted with torch.bfloat16 input: torch.float32"):
        roi_align_rotated(x.bfloat16(), r.double(), 2, 1.0, 2)


# (arguments, the message naming the argument, its value and the limit)
OUT_OF_LIMITS = [
    ((7, 1.0, 100000), r"sampling_ratio must be an integer in \[-1, 64\] .*got 100000"),
    ((7, 1.0, -2), r"sampling_ratio must be an integer in \[-1, 64\] .*got -2"),
    ((7, 1.0, 65), r"sampling_ratio must be an integer in \[-1, 64\] .*got 65"),
    ((7, 1.0, 2.5), r"sampling_ratio must be an integer in \[-1, 64\] .*got 2.5"),
    ((7, 1.0, -(2**32) + 2), r"sampling_ratio .*got -4294967294"),  # would wrap to 2 in C++ int
    ((0, 1.0, 2), r"output_size sides must be in \[1, 256\], got 0"),
    (((7, 257), 1.0, 2), r"output_size sides must be in \[1, 256\], got \(7, 257\)"),
    ((7.5, 1.0, 2), r"output_size must be an integer .*in \[1, 256\], got 7.5"),
    (((7, 7, 7), 1.0, 2), r"output_size must be an int or a pair .*got \(7, 7, 7\)"),
    ((7, 16, 2), r"spatial_scale must be a number in \(0, 1\].*not the stride.*got 16"),
    ((7, 0.0, 2), r"spatial_scale must be a number in \(0, 1\].*got 0.0"),
    ((7, -0.25, 2), r"spatial_scale must be a number in \(0, 1\].*got -0.25"),
    ((7, float("nan"), 2), r"spatial_scale must be a number in \(0, 1\].*got nan"),
    ((7, "1/16", 2), r"spatial_scale must be a number in \(0, 1\].*got '1/16'"),
]


@pytest.mark.parametrize("args,message", OUT_OF_LIMITS)
def test_arguments_outside_the_limits_raise_at_once(args, message):
    """ROIAlignRotated(7, 1.0, sampling_ratio=100000) used to run for over 10 minutes (ignoring
    Ctrl-C); arguments are now bounded, both in the module and the function."""
    with pytest.raises(ValueError, match=message):
        ROIAlignRotated(*args)
    x, rois = torch.zeros(1, 1, 4, 4), torch.tensor([[0, 2.0, 2.0, 4.0, 4.0, 0.0]])
    with pytest.raises(ValueError, match=message):
        roi_align_rotated(x, rois, *args)


def test_arguments_at_the_limits_are_accepted():
    import numpy as np

    x = torch.randn(1, 2, 6, 6, generator=torch.Generator().manual_seed(9))
    rois = torch.tensor([[0, 3.0, 3.0, 4.0, 2.0, 20.0]])
    out = ROIAlignRotated((1, MAX_OUTPUT_SIDE), 1.0, MAX_SAMPLING_RATIO)(x, rois)
    assert out.shape == (1, 2, 1, 256) and torch.isfinite(out).all()
    for sr in (-1, 0):  # both mean adaptive, as in torchvision (-1) and Detectron2 (0)
        torch.testing.assert_close(
            roi_align_rotated(x, rois, 3, 0.5, sr),
            _reference(x.double(), rois.double(), (3, 3), 0.5, sr).float(),
        )
    m = ROIAlignRotated(np.int64(3), np.float32(0.25), np.int64(2))  # numpy scalars from configs
    assert m.output_size == (3, 3) and m.sampling_ratio == 2 and m.spatial_scale == 0.25


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("sampling_ratio", [2, 0])
def test_half_precision_forward_and_backward(dtype, sampling_ratio):
    """Half features run the float32 kernel on the same values: the output (and the gradient)
    is the float32 one rounded once to the feature dtype, i.e. equal to it within one rounding
    (relative error <= 2**-8 for bfloat16, 2**-11 for float16)."""
    gen = torch.Generator().manual_seed(10 + sampling_ratio)
    x32 = torch.randn(2, 4, 12, 12, generator=gen)
    rois = _rois(20, 2, 24, gen, dtype=torch.float32)
    x = x32.to(dtype).requires_grad_()
    xr = x.detach().float().requires_grad_()  # the same (rounded) values in float32
    out = roi_align_rotated(x, rois, (3, 4), 0.5, sampling_ratio)
    ref = roi_align_rotated(xr, rois, (3, 4), 0.5, sampling_ratio)
    assert out.dtype == dtype
    assert torch.equal(out, ref.to(dtype))
    g = torch.randn(ref.shape, generator=gen).to(dtype)
    (grad,) = torch.autograd.grad(out, x, g)
    (grad_ref,) = torch.autograd.grad(ref, xr, g.float())
    assert grad.dtype == dtype and torch.equal(grad, grad_ref.to(dtype))
    # rois in the half dtype are accepted (their values are what they are)
    rh = rois.to(dtype)
    torch.testing.assert_close(
        roi_align_rotated(x, rh, 3, 0.5, sampling_ratio),
        roi_align_rotated(xr, rh.float(), 3, 0.5, sampling_ratio).to(dtype),
        rtol=0,
        atol=0,
    )
    # against unrounded float32 features: feature rounding (weights sum to <= 1) plus output
    # rounding, each at most eps * max|x|, eps = 2**-8 (bfloat16) or 2**-11 (float16)
    eps = 2.0**-8 if dtype == torch.bfloat16 else 2.0**-11
    full = roi_align_rotated(x32, rois, (3, 4), 0.5, sampling_ratio)
    assert (out.float() - full).abs().max() <= (2 * eps + 1e-6) * x32.abs().max()


def test_backward_under_autocast():
    """A conv under bfloat16 autocast feeds RoIAlignRotated with float32 rois: the forward is in
    bfloat16 and the gradient reaches the conv weights, close to the float32 one."""
    gen = torch.Generator().manual_seed(11)
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * 0.2)
    img = torch.randn(2, 3, 16, 16, generator=gen)
    rois = _rois(30, 2, 32, gen, dtype=torch.float32)
    pool = ROIAlignRotated(5, 0.5, 0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = pool(conv(img), rois)
    assert out.dtype == torch.bfloat16
    (grad,) = torch.autograd.grad(out.float().square().mean(), conv.weight)
    (ref,) = torch.autograd.grad(pool(conv(img), rois).square().mean(), conv.weight)
    assert torch.isfinite(grad).all() and grad.dtype == torch.float32
    # bfloat16 activations: a few parts in a hundred of the largest gradient entry
    torch.testing.assert_close(grad, ref, rtol=0, atol=0.03 * ref.abs().max().item())
