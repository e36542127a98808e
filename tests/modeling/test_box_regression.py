import math

import pytest
import torch

from rotated_det.modeling import Box2BoxTransform, Box2BoxTransformRotated, MidpointOffsetCoder
from rotated_det.structures import canonical_rbox, rbox_corner_distance


def _wrap(a):
    return torch.remainder(a + 180.0, 360.0) - 180.0


def test_rotated_deltas_hand_worked():
    coder = Box2BoxTransformRotated(weights=(10, 10, 5, 5, 1))
    src = torch.tensor([[10.0, 20, 4, 8, 30]])
    tgt = torch.tensor([[12.0, 16, 8, 2, 200]])
    deltas = coder.get_deltas(src, tgt)
    # dx = 10 * 2 / 4, dy = 10 * -4 / 8, dw = 5 log 2, dh = 5 log(1/4), da = radians(170)
    expected = torch.tensor([[5.0, -5.0, 5 * math.log(2), 5 * math.log(0.25), math.radians(170)]])
    torch.testing.assert_close(deltas, expected)
    decoded = coder.apply_deltas(deltas, src)
    torch.testing.assert_close(decoded, torch.tensor([[12.0, 16, 8, 2, -160]]))


def test_rotated_delta_takes_short_way_across_the_wrap():
    coder = Box2BoxTransformRotated()
    src = torch.tensor([[0.0, 0, 10, 10, 170]])
    tgt = torch.tensor([[0.0, 0, 10, 10, -170]])
    deltas = coder.get_deltas(src, tgt)
    torch.testing.assert_close(deltas[0, 4], torch.tensor(math.radians(20)))
    torch.testing.assert_close(coder.apply_deltas(deltas, src), tgt)


@pytest.mark.parametrize("weights", [(1, 1, 1, 1, 1), (10, 10, 5, 5, 1), (10, 10, 5, 5, 10)])
def test_rotated_encode_decode_identity(weights):
    g = torch.Generator().manual_seed(0)
    n = 500
    src = torch.cat(
        [
            torch.rand(n, 2, generator=g) * 500,
            torch.rand(n, 2, generator=g) * 90 + 10,
            torch.rand(n, 1, generator=g) * 360 - 180,
        ],
        dim=1,
    )
    tgt = torch.cat(
        [
            src[:, :2] + torch.randn(n, 2, generator=g) * 20,
            torch.rand(n, 2, generator=g) * 90 + 10,
            torch.rand(n, 1, generator=g) * 720 - 360,
        ],
        dim=1,
    )  # angles beyond +-180 too
    coder = Box2BoxTransformRotated(weights=weights)
    out = coder.apply_deltas(coder.get_deltas(src, tgt), src)
    torch.testing.assert_close(out[:, :4], tgt[:, :4], atol=1e-3, rtol=1e-4)
    diff = _wrap(out[:, 4] - tgt[:, 4])
    assert diff.abs().max() < 1e-3
    assert (out[:, 4] >= -180).all() and (out[:, 4] < 180).all()


def test_rotated_class_specific_deltas_decode_per_block():
    coder = Box2BoxTransformRotated()
    src = torch.tensor([[0.0, 0, 10, 10, 0]])
    deltas = torch.tensor([[0.0, 0, 0, 0, 0, 1.0, 0, 0, 0, 0]])
    out = coder.apply_deltas(deltas, src)
    torch.testing.assert_close(out, torch.tensor([[0.0, 0, 10, 10, 0, 10, 0, 10, 10, 0]]))


def test_rotated_angle_version_normalises_targets():
    coder = Box2BoxTransformRotated(angle_version="le90")
    src = torch.tensor([[0.0, 0, 20, 6, -90]])
    tall = torch.tensor([[0.0, 0, 6, 20, 0]])  # same rectangle as src, le90 form = src
    torch.testing.assert_close(coder.get_deltas(src, tall), torch.zeros(1, 5))
    out = coder.apply_deltas(torch.tensor([[0.0, 0, 0, 0, math.radians(-5)]]), src)
    torch.testing.assert_close(out, torch.tensor([[0.0, 0, 20, 6, 85]]))  # -95 -> le90: 85


def test_angle_version_wraps_the_angle_delta_with_period_180():
    coder = Box2BoxTransformRotated(angle_version="le90")
    src = torch.tensor([[0.0, 0, 20, 6, -89], [0.0, 0, 6, 20, 0]])  # 2nd: tall -> (20, 6, -90)
    tgt = torch.tensor([[0.0, 0, 20, 6, 89], [0.0, 0, 20, 6, 88]])
    d = coder.get_deltas(src, tgt)
    # 89 vs -89 is a 2-degree turn the other way (the box is symmetric under 180 degrees)
    torch.testing.assert_close(d[:, 4], torch.tensor([math.radians(-2), math.radians(-2)]))
    torch.testing.assert_close(d[:, :4], torch.zeros(2, 4))
    out = coder.apply_deltas(d, src)
    torch.testing.assert_close(canonical_rbox(out), canonical_rbox(tgt), atol=1e-4, rtol=0)
    # Detectron2's semantics (no angle version) keep the 360-degree period
    d2 = Box2BoxTransformRotated().get_deltas(src[:1], tgt[:1])
    torch.testing.assert_close(d2[0, 4], torch.tensor(math.radians(178)))


@pytest.mark.parametrize("edge_swap", [False, True])
@pytest.mark.parametrize("version", ["le90", "le135", "oc"])
def test_angle_version_encode_decode_is_identity_on_rectangles(version, edge_swap):
    g = torch.Generator().manual_seed(3)
    n = 300
    src = torch.cat(
        [
            torch.rand(n, 2, generator=g) * 300,
            torch.rand(n, 2, generator=g) * 60 + 5,
            torch.rand(n, 1, generator=g) * 360 - 180,
        ],
        dim=1,
    ).double()
    tgt = torch.cat(
        [
            src[:, :2] + torch.randn(n, 2, generator=g).double() * 10,
            torch.rand(n, 2, generator=g).double() * 60 + 5,
            torch.rand(n, 1, generator=g).double() * 720 - 360,
        ],
        dim=1,
    )
    coder = Box2BoxTransformRotated(
        weights=(10, 10, 5, 5, 1), angle_version=version, edge_swap=edge_swap
    )
    d = coder.get_deltas(src, tgt)
    if edge_swap:
        assert d[:, 4].abs().max() <= math.pi / 4 + 1e-9
        # the bound is reached: the swap really happened for some pairs
        assert d[:, 4].abs().max() > math.pi / 4 * 0.9
    else:  # the convention's own range: [-90, 90), or [-45, 135) for le135
        low = -math.pi / 4 if version == "le135" else -math.pi / 2
        assert d[:, 4].min() >= low - 1e-9 and d[:, 4].max() < low + math.pi + 1e-9
        if version != "oc":  # (oc angles span 90 degrees: their deltas stay inside)
            assert d[:, 4].min() < low + 0.1 and d[:, 4].max() > low + math.pi - 0.1
    out = coder.apply_deltas(d, src).double()
    assert rbox_corner_distance(out, tgt).max() < 1e-2  # the same rectangles (pixels)


def test_le135_angle_delta_is_continuous_through_upright_for_angle_0_sources():
    """S2A-Net's square anchors (angle 0) against a 40 x 10 box turned from 80 to 100 degrees:
    the le135 delta is the box's angle itself (MMRotate's ``norm_angle``), 80, 81, ..., 100
    degrees, where a [-90, 90) wrap would jump from +89 to -90 at the upright box. In le90
    (range [-90, 90)) the 91-100 degree boxes are written at -89..-80 and so are their
    deltas."""
    angles = torch.arange(80.0, 101.0)
    src = torch.tensor([[0.0, 0.0, 32.0, 32.0, 0.0]]).expand(len(angles), 5)
    tgt = torch.stack(
        [
            torch.zeros_like(angles),
            torch.zeros_like(angles),
            40 + 0 * angles,
            10 + 0 * angles,
            angles,
        ],
        dim=1,
    )
    le135 = Box2BoxTransformRotated(weights=(1, 1, 1, 1, 1 / math.pi), angle_version="le135")
    d = le135.get_deltas(src, tgt)
    torch.testing.assert_close(d[:, 4], angles / 180.0)  # radians / pi
    torch.testing.assert_close(d[:, 2:4], torch.log(torch.tensor([40 / 32, 10 / 32])).expand(21, 2))
    out = le135.apply_deltas(d, src)
    assert rbox_corner_distance(out, tgt).max() < 1e-3
    le90 = Box2BoxTransformRotated(weights=(1, 1, 1, 1, 1 / math.pi), angle_version="le90")
    expected = torch.where(angles < 90, angles, angles - 180) / 180.0
    torch.testing.assert_close(le90.get_deltas(src, tgt)[:, 4], expected)


def test_edge_swap_hand_worked_square_and_rectangle():
    coder = Box2BoxTransformRotated(angle_version="le90", edge_swap=True)
    plain = Box2BoxTransformRotated(angle_version="le90")
    src = torch.tensor([[0.0, 0.0, 10.0, 10.0, 80.0], [0.0, 0.0, 20.0, 10.0, 80.0]])
    # a square at -10 degrees is the same square at 80: no angle to regress
    # a 10 x 20 box at -10 degrees is the 20 x 10 box at 80 (w and h trade places)
    tgt = torch.tensor([[0.0, 0.0, 10.0, 10.0, -10.0], [0.0, 0.0, 10.0, 20.0, -10.0]])
    torch.testing.assert_close(coder.get_deltas(src, tgt), torch.zeros(2, 5))
    # without the swap the square costs a 90-degree turn, and the rectangle (normalised to
    # le90 as 20 x 10 at 80) needs none
    d = plain.get_deltas(src, tgt)
    torch.testing.assert_close(d[0, 4], torch.tensor(-math.pi / 2))
    torch.testing.assert_close(d[1], torch.zeros(5))
    # a target 60 degrees away is read as its twin 30 degrees away the other way, w/h swapped
    d = coder.get_deltas(src[1:], torch.tensor([[0.0, 0.0, 20.0, 10.0, 20.0]]))
    torch.testing.assert_close(
        d[0], torch.tensor([0.0, 0.0, math.log(0.5), math.log(2.0), math.radians(30)])
    )


def test_edge_swap_needs_an_angle_version():
    with pytest.raises(ValueError, match="edge_swap=True needs an angle_version"):
        Box2BoxTransformRotated(edge_swap=True)


def test_four_weights_for_rotated_coder_is_an_error():
    with pytest.raises(ValueError, match=r"5 weights.*got 4.*4-weight tuple is for horizontal"):
        Box2BoxTransformRotated(weights=(10, 10, 5, 5))
    with pytest.raises(ValueError, match="angle_version"):
        Box2BoxTransformRotated(angle_version="le45")


def test_horizontal_coder_roundtrip_and_hand_example():
    coder = Box2BoxTransform(weights=(10, 10, 5, 5))
    src = torch.tensor([[0.0, 0, 10, 20]])
    tgt = torch.tensor([[5.0, 10, 15, 30]])
    d = coder.get_deltas(src, tgt)
    torch.testing.assert_close(d, torch.tensor([[10 * 5 / 10, 10 * 10 / 20, 0.0, 0.0]]))
    torch.testing.assert_close(coder.apply_deltas(d, src), tgt)


def test_midpoint_offset_hand_worked_axis_aligned():
    coder = MidpointOffsetCoder(weights=(1, 1, 1, 1, 1, 1))
    anchors = torch.tensor([[0.0, 0, 40, 40]])
    target = torch.tensor([[20.0, 20, 40, 20, 0]])
    d = coder.get_deltas(anchors, target)
    # top vertex (0, 10): alpha = -20 = -0.5 w; right vertex (40, 10): beta = -10 = -0.5 h
    torch.testing.assert_close(d, torch.tensor([[0.0, 0, 0, math.log(0.5), -0.5, -0.5]]))
    torch.testing.assert_close(coder.apply_deltas(d, anchors), target)


def test_midpoint_offset_hand_worked_diamond():
    coder = MidpointOffsetCoder(weights=(1, 1, 1, 1, 1, 1))
    anchors = torch.tensor([[-10.0, -10, 10, 10]])
    side = 10 * math.sqrt(2)
    target = torch.tensor([[0.0, 0, side, side, 45]])  # corners (+-10, 0), (0, +-10)
    d = coder.get_deltas(anchors, target)
    torch.testing.assert_close(d, torch.zeros(1, 6), atol=1e-5, rtol=0)
    out = coder.apply_deltas(d, anchors)
    torch.testing.assert_close(out, torch.tensor([[0.0, 0, side, side, -45]]))


def test_midpoint_offset_roundtrip_random_rectangles():
    g = torch.Generator().manual_seed(1)
    n = 400
    target = torch.cat(
        [
            torch.rand(n, 2, generator=g) * 200,
            torch.rand(n, 2, generator=g) * 80 + 5,
            torch.rand(n, 1, generator=g) * 360 - 180,
        ],
        dim=1,
    ).double()
    anchors = torch.cat([target[:, :2] - 30, target[:, :2] + 30], dim=1)
    coder = MidpointOffsetCoder()
    out = coder.apply_deltas(coder.get_deltas(anchors, target), anchors).double()
    assert rbox_corner_distance(out, target).max() < 1e-2  # the same rectangles (pixels)


def test_midpoint_offset_weights_count():
    with pytest.raises(ValueError, match="6 weights"):
        MidpointOffsetCoder(weights=(1, 1, 1, 1, 1))
