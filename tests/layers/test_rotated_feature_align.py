"""rotated_feature_align (R3Det's feature reconstruction) against hand-worked values and a
straightforward gather formulation; gradients; tracing and torch.export."""

import warnings

import pytest
import torch

from rotated_det.layers import rotated_feature_align
from rotated_det.layers.rotated_feature_align import rotated_feature_align_points
from rotated_det.structures import rbox_to_poly


def _bilinear_gather(flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor, height: int, width: int):
    """``flat`` ``[N, C, H * W]`` sampled at ``x``, ``y`` ``[N, L]`` -> ``[N, C, L]``: RoIAlign's
    bilinear rule (0 outside ``[-1, size]``, clamped to the border within it), with the four
    neighbours gathered explicitly."""
    valid = (y >= -1) & (y <= height) & (x >= -1) & (x <= width)
    x = x.clamp(0, width - 1)
    y = y.clamp(0, height - 1)
    x0 = x.floor().long().clamp(max=width - 2) if width > 1 else x.floor().long()
    y0 = y.floor().long().clamp(max=height - 2) if height > 1 else y.floor().long()
    x1 = (x0 + 1).clamp(max=width - 1)
    y1 = (y0 + 1).clamp(max=height - 1)
    lx, ly = x - x0, y - y0
    c = flat.shape[1]

    def take(yy, xx):
        idx = (yy * width + xx)[:, None, :].expand(-1, c, -1)
        return flat.gather(2, idx)

    out = (
        take(y0, x0) * ((1 - ly) * (1 - lx))[:, None]
        + take(y0, x1) * ((1 - ly) * lx)[:, None]
        + take(y1, x0) * (ly * (1 - lx))[:, None]
        + take(y1, x1) * (ly * lx)[:, None]
    )
    return out * valid[:, None].to(out.dtype)


def gather_rotated_feature_align(
    features: torch.Tensor, boxes: torch.Tensor, spatial_scale: float, points: int = 5
) -> torch.Tensor:
    """The straightforward formulation (the reference of these tests and the baseline of
    dev/bench_rotated_feature_align.py): per point, gather the four neighbours of every location
    and weight them. The corners come from ``structures.rbox_to_poly`` (their sum does not depend
    on their order)."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    b = boxes.reshape(n, h * w, 5)
    xs = [b[..., 0] * spatial_scale]
    ys = [b[..., 1] * spatial_scale]
    if points == 5:
        corners = rbox_to_poly(b).reshape(n, h * w, 4, 2) * spatial_scale
        xs += list(corners[..., 0].unbind(-1))
        ys += list(corners[..., 1].unbind(-1))
    out = flat
    for x, y in zip(xs, ys):
        out = out + _bilinear_gather(flat, x, y, h, w)
    return out.reshape(n, c, h, w)


def _random_case(n=2, c=3, h=7, w=9, stride=8.0, seed=0, dtype=torch.float64):
    """Boxes around each location, some reaching up to 3 cells beyond the map."""
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, c, h, w, generator=gen, dtype=dtype)
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=dtype), torch.arange(w, dtype=dtype), indexing="ij"
    )
    ctr = torch.stack([xs, ys], -1) * stride
    boxes = torch.cat(
        [
            ctr.expand(n, h, w, 2)
            + (torch.rand(n, h, w, 2, generator=gen, dtype=dtype) - 0.5) * 20,
            torch.rand(n, h, w, 2, generator=gen, dtype=dtype) * 6 * stride + 2,
            torch.rand(n, h, w, 1, generator=gen, dtype=dtype) * 360 - 180,
        ],
        dim=-1,
    )
    return feats, boxes


def test_hand_worked_values():
    # f(y, x) = 10 y + x + x y on a 3 x 4 map: bilinear sampling reproduces such a function
    # exactly inside the map; the x y term tells the box's turning direction apart.
    h, w = 3, 4
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    f = (10 * ys + xs + xs * ys).double()[None, None]
    scale = 0.5  # stride 2
    # every other location: a box of size 0 at the origin, five samples of f(0, 0) = 0
    boxes = torch.zeros(1, h, w, 5, dtype=torch.float64)
    # centre (1.5, 1) in feature pixels, half sides 0.5 (along w) and 0.25 (along h): points
    # (1.5, 1), (2, 1.25), (1, 1.25), (1, 0.75), (2, 0.75); f = 13, 17, 14.75, 9.25, 11 -> 65
    boxes[0, 0, 0] = torch.tensor([3.0, 2.0, 2.0, 1.0, 0.0])
    # the same box turned 45 degrees counter-clockwise on screen: the w axis points right and
    # up, (0.3536, -0.3536), the h axis (0.1768, 0.1768). The linear part sums to 5 f(centre)
    # = 57.5; the x y part to 1.5 + 4 * 1.5 + 4 (u_x u_y + v_x v_y) = 7.5 - 0.375 -> 64.625
    # (turned clockwise it would be 65.375)
    boxes[0, 0, 1] = torch.tensor([3.0, 2.0, 2.0, 1.0, 45.0])
    # centre (-0.5, 2.25): within one pixel outside, clamped to (0, 2): f = 20. Corners at
    # x = 0.5 or -1.5 (outside: 0) and y = 2.75 (clamped to 2: f(2, 0.5) = 21.5) or 1.75
    # (f = 18.875): 20 + 21.5 + 18.875 = 60.375
    boxes[0, 2, 3] = torch.tensor([-1.0, 4.5, 4.0, 2.0, 0.0])
    out = rotated_feature_align(f, boxes, scale)
    expected = f.clone()
    expected[0, 0, 0, 0] += 65.0
    expected[0, 0, 0, 1] += 64.625
    expected[0, 0, 2, 3] += 60.375
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


def test_a_box_centred_on_its_own_location_doubles_the_feature():
    gen = torch.Generator().manual_seed(1)
    h, w, stride = 5, 6, 16.0
    feats = torch.randn(2, 4, h, w, generator=gen)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    boxes = torch.zeros(2, h, w, 5)
    boxes[..., 0], boxes[..., 1] = xs * stride, ys * stride
    boxes[..., 2:4] = 30.0
    out = rotated_feature_align(feats, boxes, 1 / stride, points=1)
    torch.testing.assert_close(out, 2 * feats, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("points", [1, 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_gather_reference(points, seed):
    feats, boxes = _random_case(seed=seed)
    out = rotated_feature_align(feats, boxes, 1 / 8, points)
    ref = gather_rotated_feature_align(feats, boxes, 1 / 8, points)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    # the case exercises both rules: points outside the map, points in its 1-pixel margin
    x, y = rotated_feature_align_points(boxes, 1 / 8, points)
    outside = (x < -1) | (x > 9) | (y < -1) | (y > 7)
    margin = ~outside & ((x < 0) | (x > 8) | (y < 0) | (y > 6))
    assert outside.any() and margin.any()


def test_one_pixel_wide_map():
    feats, boxes = _random_case(h=4, w=1, seed=3)
    torch.testing.assert_close(
        rotated_feature_align(feats, boxes, 1 / 8),
        gather_rotated_feature_align(feats, boxes, 1 / 8),
        rtol=0,
        atol=1e-10,
    )


def test_a_rectangle_described_two_ways_gives_the_same_feature():
    """(w, h, a) and (h, w, a + 90) are the same rectangle: the same five points."""
    feats, boxes = _random_case(seed=4)
    turned = boxes[..., [0, 1, 3, 2, 4]].clone()
    turned[..., 4] += 90.0
    torch.testing.assert_close(
        rotated_feature_align(feats, boxes, 1 / 8),
        rotated_feature_align(feats, turned, 1 / 8),
        rtol=0,
        atol=1e-10,
    )


def test_gradcheck_float64():
    feats, boxes = _random_case(n=1, c=2, h=4, w=5, seed=5)
    feats.requires_grad_(True)
    boxes.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda f, b: rotated_feature_align(f, b, 1 / 8), (feats, boxes), eps=1e-6, atol=1e-6
    )
    # the gradient of the features equals the gather formulation's (scatter-add) one
    feats2 = feats.detach().clone().requires_grad_(True)
    g = torch.randn_like(feats)
    (rotated_feature_align(feats, boxes.detach(), 1 / 8) * g).sum().backward()
    (gather_rotated_feature_align(feats2, boxes.detach(), 1 / 8) * g).sum().backward()
    torch.testing.assert_close(feats.grad, feats2.grad, rtol=0, atol=1e-10)


def test_half_features_are_sampled_in_float32():
    feats, boxes = _random_case(dtype=torch.float32, seed=6)
    out = rotated_feature_align(feats.bfloat16(), boxes, 1 / 8)
    assert out.dtype == torch.bfloat16
    ref = rotated_feature_align(feats.bfloat16().float(), boxes, 1 / 8)
    torch.testing.assert_close(out.float(), ref, rtol=1e-2, atol=5e-2)


def test_bad_inputs_name_the_argument():
    feats, boxes = _random_case(dtype=torch.float32)
    with pytest.raises(ValueError, match=r"boxes must be \[N, H, W, 5\]"):
        rotated_feature_align(feats, boxes[:, :-1], 1 / 8)
    with pytest.raises(ValueError, match=r"points must be 1 or 5, got 4"):
        rotated_feature_align(feats, boxes, 1 / 8, points=4)
    with pytest.raises(ValueError, match=r"features must be \[N, C, H, W\]"):
        rotated_feature_align(feats[0], boxes, 1 / 8)


class _Align(torch.nn.Module):
    def forward(self, feats, boxes):
        return rotated_feature_align(feats, boxes, 1 / 8)


def test_trace_and_export_keep_the_input_size():
    feats, boxes = _random_case(dtype=torch.float32, seed=7)
    other_feats, other_boxes = _random_case(h=11, w=5, dtype=torch.float32, seed=8)
    model = _Align()
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)  # no size frozen into the graph
        traced = torch.jit.trace(model, (feats, boxes))
    program = torch.export.export(
        model,
        (feats, boxes),
        dynamic_shapes=(
            {2: torch.export.Dim("h", min=2), 3: torch.export.Dim("w", min=2)},
            {1: torch.export.Dim("h", min=2), 2: torch.export.Dim("w", min=2)},
        ),
    ).module()
    for f, b in [(feats, boxes), (other_feats, other_boxes)]:
        expected = model(f, b)
        torch.testing.assert_close(traced(f, b), expected, rtol=1e-6, atol=1e-5)
        torch.testing.assert_close(program(f, b), expected, rtol=1e-6, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    """grid_sample's CUDA kernel against its CPU kernel, forward and feature gradient."""
    feats, boxes = _random_case(dtype=torch.float32, seed=9)
    grad = torch.randn_like(feats)
    results = []
    for device in ("cpu", "cuda"):
        f = feats.to(device).requires_grad_(True)
        out = rotated_feature_align(f, boxes.to(device), 1 / 8)
        (out * grad.to(device)).sum().backward()
        results.append((out.detach().cpu(), f.grad.cpu()))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-5, atol=1e-5)
