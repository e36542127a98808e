"""ri_roi_align_rotated / RiRoIAlignRotated (ReDet's rotation-invariant RoIAlign) against a
pure-PyTorch reference, its invariance property, gradients, tracing and export."""

import math

import pytest
import torch
import torch.nn.functional as F
from cuda_support import has_cuda_kernels

from rotated_det.layers import RiRoIAlignRotated, ri_roi_align_rotated, roi_align_rotated


def _bilinear(img, y, x):
    """Samples img [C, H, W] at continuous positions y, x (same shape S) -> [C, *S]. Pixel
    centres at integer coordinates; points farther than 1 px outside give 0, points within 1 px
    are clamped to the border."""
    _, h, w = img.shape
    valid = (y >= -1) & (y <= h) & (x >= -1) & (x <= w)
    y = y.clamp(0, h - 1)
    x = x.clamp(0, w - 1)
    y0 = y.floor().long().clamp(max=max(h - 2, 0))
    x0 = x.floor().long().clamp(max=max(w - 2, 0))
    y1 = (y0 + 1).clamp(max=h - 1)
    x1 = (x0 + 1).clamp(max=w - 1)
    ly, lx = y - y0, x - x0
    val = (
        img[:, y0, x0] * ((1 - ly) * (1 - lx))
        + img[:, y0, x1] * ((1 - ly) * lx)
        + img[:, y1, x0] * (ly * (1 - lx))
        + img[:, y1, x1] * (ly * lx)
    )
    return val * valid.to(val.dtype)


def _reference(features, rois, output_size, spatial_scale, sampling_ratio, n, clockwise=False):
    """Rotated RoIAlign by explicit bilinear sampling (bins average a grid of samples at sub-cell
    centres, RoI frame: w-axis along (cos a, -sin a), h-axis along (sin a, cos a), shifted by
    -0.5 px), then each output orientation o reads the input orientations with the periodic
    "hat" weights max(0, 1 - |j - (o + a * n / 360)|) over the circle of n orientations."""
    ph, pw = output_size
    num, c = features.shape[:2]
    dtype = features.dtype
    outs = []
    for roi in rois.tolist():
        b = roi[0]
        if not all(math.isfinite(v) for v in roi) or not 0 <= b < num:
            outs.append(features.new_zeros(c, ph, pw))
            continue
        angle = -roi[5] if clockwise else roi[5]
        cx = roi[1] * spatial_scale - 0.5
        cy = roi[2] * spatial_scale - 0.5
        w = max(roi[3] * spatial_scale, 0.0)
        h = max(roi[4] * spatial_scale, 0.0)
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(h / ph)
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(w / pw)
        if gh * gw == 0:
            outs.append(features.new_zeros(c, ph, pw))
            continue
        t = math.radians(angle)
        cos, sin = math.cos(t), math.sin(t)
        yy = -h / 2 + (torch.arange(ph * gh, dtype=dtype) + 0.5) * (h / (ph * gh))
        xx = -w / 2 + (torch.arange(pw * gw, dtype=dtype) + 0.5) * (w / (pw * gw))
        yy, xx = torch.meshgrid(yy, xx, indexing="ij")
        x = xx * cos + yy * sin + cx
        y = yy * cos - xx * sin + cy
        v = _bilinear(features[int(b)], y, x).reshape(c, ph, gh, pw, gw).mean(dim=(2, 4))
        position = (torch.arange(n, dtype=dtype) + angle * n / 360.0) % n  # per output o
        d = torch.arange(n, dtype=dtype)[None, :] - position[:, None]  # [o, j]
        weights = sum((1 - (d + m * n).abs()).clamp(min=0) for m in (-1, 0, 1))
        v = v.reshape(c // n, n, ph, pw)
        outs.append(torch.einsum("oj,fjhw->fohw", weights, v).reshape(c, ph, pw))
    if not outs:
        return features.new_zeros(0, c, ph, pw)
    return torch.stack(outs)


def _rois(k, n, size, gen, dtype=torch.float64, smin=2.0, smax=30.0):
    """k random RoIs over images of size x size px (some centres outside), any angle."""
    b = torch.randint(0, n, (k, 1), generator=gen).to(dtype)
    xy = torch.rand(k, 2, generator=gen, dtype=dtype) * size * 1.3 - 0.15 * size
    wh = torch.rand(k, 2, generator=gen, dtype=dtype) * (smax - smin) + smin
    a = torch.rand(k, 1, generator=gen, dtype=dtype) * 720 - 360
    return torch.cat([b, xy, wh, a], 1)


# multiples of 360/8 and of 360/4, and angles between them
ANGLES = [0.0, 45.0, 90.0, -135.0, 360.0, 22.5, 33.7, -101.25, 403.0, -0.001]


@pytest.mark.parametrize("angle", ANGLES)
@pytest.mark.parametrize("n", [8, 4])
def test_matches_reference_at_angles(angle, n):
    gen = torch.Generator().manual_seed(int(angle * 10) % 1000 + n)
    x = torch.randn(2, 2 * n, 14, 16, generator=gen, dtype=torch.float64)
    rois = _rois(10, 2, 32, gen)
    rois[:, 5] = angle
    for sr in (2, 0):
        got = ri_roi_align_rotated(x, rois, (3, 4), 0.5, sr, n)
        ref = _reference(x, rois, (3, 4), 0.5, sr, n)
        assert got.shape == (10, 2 * n, 3, 4)
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)


def test_matches_reference_random_float32_and_clockwise():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 24, 16, 16, generator=gen)
    rois = _rois(40, 3, 64, gen, dtype=torch.float32)
    for n, sr, clockwise in [(8, 2, False), (8, 0, True), (4, -1, False), (6, 1, True)]:
        got = ri_roi_align_rotated(x, rois, 7, 0.25, sr, n, clockwise)
        ref = _reference(x.double(), rois.double(), (7, 7), 0.25, sr, n, clockwise)
        torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-5)


def test_reduces_to_roi_align_rotated_and_channel_rolls():
    """n = 1 is roi_align_rotated; at multiples of 360/n the orientation channels are exactly
    those of roi_align_rotated rolled back by angle * n / 360 steps within each field."""
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 16, 12, 12, generator=gen, dtype=torch.float64)
    rois = _rois(12, 2, 24, gen)
    plain = roi_align_rotated(x, rois, 3, 0.5, 2)
    assert torch.equal(ri_roi_align_rotated(x, rois, 3, 0.5, 2, 1), plain)
    for steps in (-3, 1, 2, 7, 10):
        rois[:, 5] = steps * 45.0
        plain = roi_align_rotated(x, rois, 3, 0.5, 2).reshape(12, 2, 8, 3, 3)
        got = ri_roi_align_rotated(x, rois, 3, 0.5, 2, 8).reshape(12, 2, 8, 3, 3)
        assert torch.equal(got, plain.roll(-steps, dims=2))


def test_clockwise_flag_negates_the_angle():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 16, 12, 12, generator=gen, dtype=torch.float64)
    rois = _rois(12, 2, 24, gen)
    mirrored = rois.clone()
    mirrored[:, 5] = -rois[:, 5]
    torch.testing.assert_close(
        ri_roi_align_rotated(x, rois, 3, 0.5, 0, 8, clockwise=True),
        ri_roi_align_rotated(x, mirrored, 3, 0.5, 0, 8),
        rtol=0,
        atol=1e-12,
    )


def test_continuous_in_the_angle_across_orientation_steps():
    """The orientation position moves linearly with the angle: no jump at multiples of 360/n
    (MMCV's riroi_align_rotated jumps there: it interpolates towards the other neighbour)."""
    gen = torch.Generator().manual_seed(6)
    # spatially constant features: only the orientation alignment changes the output
    profile = torch.randn(1, 16, 1, 1, generator=gen, dtype=torch.float64)
    x = profile.expand(1, 16, 20, 20).contiguous()
    rois = torch.tensor([[0, 10.0, 10.0, 4.0, 4.0, 0.0]], dtype=torch.float64).repeat(3, 1)
    for boundary in (45.0, 90.0, -45.0, 0.0):
        rois[:, 5] = torch.tensor([boundary - 1e-6, boundary, boundary + 1e-6])
        out = ri_roi_align_rotated(x, rois, 2, 1.0, 2, 8)
        assert (out[0] - out[1]).abs().max() < 1e-6 and (out[2] - out[1]).abs().max() < 1e-6
    # halfway between two steps: the mean of the two neighbouring orientations
    rois[:, 5] = torch.tensor([45.0, 67.5, 90.0])
    out = ri_roi_align_rotated(x, rois, 2, 1.0, 2, 8)
    torch.testing.assert_close(out[1], (out[0] + out[2]) / 2, rtol=0, atol=1e-12)


def _rotate_quarter_turn(features, rois, n, spatial_scale):
    """The features and RoIs of the image rotated by 90 degrees counter-clockwise on screen,
    for regular C_n fields: torch.rot90 of the map, each field's channels rolled forward by
    n / 4, RoI centres (x, y) -> (y, W - x) with W the image width, angles + 90."""
    num, c, _, w = features.shape
    rotated = torch.rot90(features, 1, dims=(-2, -1))
    rotated = rotated.reshape(num, c // n, n, *rotated.shape[-2:]).roll(n // 4, dims=2)
    new_rois = rois.clone()
    new_rois[:, 1] = rois[:, 2]
    new_rois[:, 2] = w / spatial_scale - rois[:, 1]
    new_rois[:, 5] = rois[:, 5] + 90.0
    return rotated.reshape(num, c, *rotated.shape[-2:]), new_rois


@pytest.mark.parametrize("n", [8, 4])
def test_invariant_to_rotating_features_and_rois_together(n):
    gen = torch.Generator().manual_seed(7 + n)
    x = torch.randn(2, 3 * n, 12, 17, generator=gen, dtype=torch.float64)
    rois = _rois(20, 2, 40, gen)  # any angle, some partly outside the map
    out = ri_roi_align_rotated(x, rois, (4, 3), 0.5, 2, n)
    assert out.abs().sum() > 0
    xr, rr = x, rois
    for _ in range(4):
        xr, rr = _rotate_quarter_turn(xr, rr, n, 0.5)
        torch.testing.assert_close(
            ri_roi_align_rotated(xr, rr, (4, 3), 0.5, 2, n), out, rtol=1e-10, atol=1e-10
        )
    # the plain rotated RoIAlign is not invariant: its channels come out rolled
    plain = roi_align_rotated(x, rois, (4, 3), 0.5, 2)
    x1, r1 = _rotate_quarter_turn(x, rois, n, 0.5)
    assert (roi_align_rotated(x1, r1, (4, 3), 0.5, 2) - plain).abs().max() > 0.1


def test_invariant_on_the_features_of_a_c4_lifting_convolution():
    """Features of a real equivariant layer: a lifting convolution whose orientation o uses the
    filters rotated by o quarter turns (torch.rot90, counter-clockwise on screen). Rotating the
    image by a quarter turn rolls its channels forward by one, the convention the op assumes: the
    RiRoIAlign of the rotated image with the rotated RoIs equals that of the image."""
    gen = torch.Generator().manual_seed(9)
    base = torch.randn(3, 2, 5, 5, generator=gen, dtype=torch.float64)  # 3 fields, RGB-ish 2
    weight = torch.stack([torch.rot90(base, o, dims=(-2, -1)) for o in range(4)], 1)
    weight = weight.reshape(12, 2, 5, 5)  # channel f * 4 + o

    def features(img):
        return F.conv2d(img, weight, padding=2)

    img = torch.randn(1, 2, 24, 20, generator=gen, dtype=torch.float64)
    rois = _rois(15, 1, 20, gen, smin=4.0)
    out = ri_roi_align_rotated(features(img), rois, 3, 1.0, 2, 4)
    img_rot = torch.rot90(img, 1, dims=(-2, -1))
    _, rois_rot = _rotate_quarter_turn(features(img), rois, 4, 1.0)
    # the features of the rotated image are the rotated features (the layer is equivariant)
    feat_rot, _ = _rotate_quarter_turn(features(img), rois, 4, 1.0)
    torch.testing.assert_close(features(img_rot), feat_rot, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        ri_roi_align_rotated(features(img_rot), rois_rot, 3, 1.0, 2, 4), out, rtol=0, atol=1e-10
    )


def test_gradcheck_float64():
    gen = torch.Generator().manual_seed(10)
    x = torch.randn(2, 8, 7, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    rois = _rois(5, 2, 16, gen, smin=1.0, smax=12.0)
    rois[0] = torch.tensor([1, 14.0, 13.0, 12.0, 8.0, 30.0])  # partly outside the map
    rois[1, 5] = 90.0  # an exact orientation step
    for sr, n, cw in [(2, 4, False), (0, 8, True), (1, 2, False)]:
        assert torch.autograd.gradcheck(
            lambda t, sr=sr, n=n, cw=cw: ri_roi_align_rotated(t, rois, (3, 2), 0.5, sr, n, cw),
            (x,),
            eps=1e-6,
            atol=1e-8,
        )


def test_backward_matches_reference_autograd():
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(2, 16, 12, 12, generator=gen, dtype=torch.float64, requires_grad=True)
    rois = _rois(20, 2, 24, gen)
    g = torch.randn(20, 16, 3, 3, generator=gen, dtype=torch.float64)
    for clockwise in (False, True):
        out = ri_roi_align_rotated(x, rois, 3, 0.5, 0, 8, clockwise)
        (grad,) = torch.autograd.grad((out * g).sum(), x)
        ref_out = _reference(x, rois, (3, 3), 0.5, 0, 8, clockwise)
        (ref,) = torch.autograd.grad((ref_out * g).sum(), x)
        torch.testing.assert_close(grad, ref, rtol=1e-10, atol=1e-10)


def test_invalid_rois_give_zero_and_no_gradient():
    x = torch.randn(2, 8, 8, 8, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor(
        [
            [0, 4.0, 4.0, 4.0, 4.0, 30.0],  # valid
            [2, 4.0, 4.0, 4.0, 4.0, 0.0],  # batch index out of range
            [-1, 4.0, 4.0, 4.0, 4.0, 0.0],
            [0, float("nan"), 4.0, 4.0, 4.0, 0.0],
            [0, 4.0, 4.0, float("inf"), 4.0, 0.0],
            [0, 4.0, 4.0, 4.0, 4.0, float("nan")],
            [0, 1e6, 1e6, 4.0, 4.0, 0.0],  # far outside the map
        ],
        dtype=torch.float64,
    )
    out = ri_roi_align_rotated(x, rois, 2, 1.0, 2, 4)
    assert out[0].abs().sum() > 0
    assert torch.equal(out[1:], torch.zeros_like(out[1:]))
    (grad,) = torch.autograd.grad(out[1:].sum(), x)
    assert torch.equal(grad, torch.zeros_like(grad))


def test_empty_rois_and_module():
    x = torch.randn(1, 8, 8, 8, requires_grad=True)
    m = RiRoIAlignRotated((2, 3), 0.5, 2, num_orientations=4)
    assert "num_orientations=4, clockwise=False" in repr(m)
    out = m(x, torch.zeros(0, 6))
    assert out.shape == (0, 8, 2, 3)
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    rois = torch.tensor([[0, 5.0, 6.0, 7.0, 3.0, 20.0]])
    assert torch.equal(m(x, rois), ri_roi_align_rotated(x, rois, (2, 3), 0.5, 2, 4))


def test_bad_inputs_raise_value_error():
    x = torch.zeros(1, 8, 4, 4)
    r = torch.zeros(1, 6)
    with pytest.raises(ValueError, match=r"8 channels are not a multiple of num_orientations=3"):
        ri_roi_align_rotated(x, r, 2, 1.0, 2, 3)
    for bad in (0, -8, 65, 2.5, True, "8"):
        with pytest.raises(ValueError, match=r"num_orientations must be an integer in \[1, 64\]"):
            ri_roi_align_rotated(x, r, 2, 1.0, 2, bad)
        with pytest.raises(ValueError, match="num_orientations"):
            RiRoIAlignRotated(2, 1.0, 2, bad)
    with pytest.raises(ValueError, match="clockwise must be a bool"):
        ri_roi_align_rotated(x, r, 2, 1.0, 2, 4, clockwise=1)
    with pytest.raises(ValueError, match=r"\[K, 6\]"):
        ri_roi_align_rotated(x, torch.zeros(1, 5), 2, 1.0, 2, 4)
    with pytest.raises(ValueError, match="rois must have the dtype of input"):
        ri_roi_align_rotated(x, r.double(), 2, 1.0, 2, 4)
    with pytest.raises(ValueError, match=r"spatial_scale must be a number in \(0, 1\]"):
        RiRoIAlignRotated(7, 16, 2, 8)
    # the compiled op checks its arguments too
    with pytest.raises(RuntimeError, match="num_orientations must be positive and divide"):
        torch.ops.rotated_det.ri_roi_align_rotated_forward(x, r, 1.0, 2, 2, 2, 3, False)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_runs_the_float32_kernel(dtype):
    gen = torch.Generator().manual_seed(12)
    x = torch.randn(2, 16, 12, 12, generator=gen).to(dtype).requires_grad_()
    xr = x.detach().float().requires_grad_()
    rois = _rois(20, 2, 24, gen, dtype=torch.float32)
    out = ri_roi_align_rotated(x, rois, 3, 0.5, 2, 8)
    ref = ri_roi_align_rotated(xr, rois, 3, 0.5, 2, 8)
    assert out.dtype == dtype and torch.equal(out, ref.to(dtype))
    g = torch.randn(ref.shape, generator=gen).to(dtype)
    (grad,) = torch.autograd.grad(out, x, g)
    (grad_ref,) = torch.autograd.grad(ref, xr, g.float())
    assert grad.dtype == dtype and torch.equal(grad, grad_ref.to(dtype))


class _Pool(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = RiRoIAlignRotated((3, 3), 0.5, 2, 8)

    def forward(self, feat, rois):
        return self.pool(feat, rois).flatten(1).sum(1)


def _export_inputs(seed, k=12):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(2, 16, 12, 14, generator=gen), _rois(k, 2, 24, gen, dtype=torch.float32)


def test_jit_trace_and_torch_export_round_trip():
    model = _Pool().eval()
    feat, rois = _export_inputs(0)
    traced = torch.jit.trace(model, (feat, rois))
    assert "rotated_det::ri_roi_align_rotated_forward" in str(traced.inlined_graph)
    program = torch.export.export(model, (feat, rois)).module()
    assert any("ri_roi_align_rotated_forward" in str(node.target) for node in program.graph.nodes)
    new = _export_inputs(1)
    for f in (traced, program):
        torch.testing.assert_close(f(feat, rois), model(feat, rois), rtol=0, atol=0)
        torch.testing.assert_close(f(*new), model(*new), rtol=0, atol=0)


def test_torch_export_with_dynamic_roi_count_and_backward_op():
    model = _Pool().eval()
    feat, rois = _export_inputs(2)
    k = torch.export.Dim("k", min=1)
    program = torch.export.export(model, (feat, rois), dynamic_shapes=({}, {0: k})).module()
    other = _export_inputs(3, k=5)
    torch.testing.assert_close(program(*other), model(*other), rtol=0, atol=0)
    # the autograd formula is the backward op with the forward's arguments
    x = feat.double().requires_grad_()
    out = ri_roi_align_rotated(x, rois.double(), 3, 0.5, 2, 8, True)
    (grad,) = torch.autograd.grad(out.sum(), x)
    direct = torch.ops.rotated_det.ri_roi_align_rotated_backward(
        torch.ones_like(out), rois.double(), 0.5, 3, 3, 2, 16, 12, 14, 2, 8, True
    )
    assert torch.equal(grad, direct)


@pytest.mark.gpu
@pytest.mark.skipif(
    not has_cuda_kernels(), reason="needs a GPU and rotated_det built with CUDA kernels"
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("clockwise", [False, True])
def test_cuda_matches_cpu(dtype, clockwise):
    """The CUDA kernels against the CPU kernels: forward and feature gradient, RoIs on two
    images, some outside the map, angles on and between orientation steps."""
    gen = torch.Generator().manual_seed(13)
    x = torch.randn(2, 32, 40, 36, generator=gen, dtype=dtype)
    rois = _rois(200, 2, 150, gen, dtype=dtype, smax=60.0)
    rois[:50, 5] = torch.arange(50, dtype=dtype) * 45.0 - 1000.0
    rois[0, 0] = 5  # batch index out of range
    g = torch.randn(200, 32, 7, 7, generator=gen, dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for sr in (2, 0):
        results = []
        for device in ("cpu", "cuda"):
            xd = x.to(device).requires_grad_()
            out = ri_roi_align_rotated(xd, rois.to(device), 7, 0.25, sr, 8, clockwise)
            (grad,) = torch.autograd.grad(out, xd, g.to(device))
            results.append((out.detach().cpu(), grad.cpu()))
        torch.testing.assert_close(results[1][0], results[0][0], rtol=tol, atol=tol)
        torch.testing.assert_close(results[1][1], results[0][1], rtol=tol, atol=tol * 10)
