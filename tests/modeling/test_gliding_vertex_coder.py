"""GlidingVertexCoder: hand-worked glides and obliquity, encode -> decode round trips, the
obliquity threshold, and decoding of non-rectangular glides."""

import math

import pytest
import torch

from rotated_det.modeling import GlidingVertexCoder
from rotated_det.modeling.box_coders import gliding_vertex_targets
from rotated_det.structures import (
    normalize_rbox_angles,
    pairwise_iou_rotated,
    points_in_rotated_boxes,
    rbox_to_hbox,
)

# The rectangle with corners (0, 10), (20, 0), (26, 12), (6, 22): sides (20, -10) and (6, 12).
HAND_BOX = (13.0, 11.0, math.sqrt(500.0), math.sqrt(180.0), math.degrees(math.atan2(10, 20)))


def test_hand_worked_glides_and_obliquity():
    hbox, glides, obliquity = gliding_vertex_targets(torch.tensor([HAND_BOX], dtype=torch.float64))
    torch.testing.assert_close(hbox, torch.tensor([[0.0, 0.0, 26.0, 22.0]]), atol=1e-5, rtol=0)
    # top vertex (20, 0), right (26, 12), bottom (6, 22), left (0, 10)
    expected = torch.tensor([[20 / 26, 12 / 22, (26 - 6) / 26, (22 - 10) / 22]])
    torch.testing.assert_close(glides, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(obliquity, torch.tensor([300 / (26 * 22)]), atol=1e-6, rtol=0)


def test_hand_worked_deltas_against_a_proposal():
    coder = GlidingVertexCoder(weights=(10.0, 10.0, 5.0, 5.0))
    proposal = torch.tensor([[0.0, 0.0, 20.0, 20.0]])  # centre (10, 10), 20 x 20
    deltas = coder.get_deltas(proposal, torch.tensor([HAND_BOX]))
    # bounding box (0, 0, 26, 22): centre (13, 11)
    box = [10 * 3 / 20, 10 * 1 / 20, 5 * math.log(26 / 20), 5 * math.log(22 / 20)]
    expected = torch.tensor([box + [20 / 26, 12 / 22, 20 / 26, 12 / 22, 300 / 572]])
    torch.testing.assert_close(deltas, expected, atol=1e-5, rtol=0)
    decoded = coder.apply_deltas(deltas, proposal)
    torch.testing.assert_close(decoded, torch.tensor([HAND_BOX]), atol=1e-4, rtol=0)


@pytest.mark.parametrize("angle", [0.0, -90.0, 90.0, 180.0])
def test_axis_aligned_boxes_have_zero_glides_and_obliquity_one(angle):
    _, glides, obliquity = gliding_vertex_targets(torch.tensor([[50.0, 40.0, 30.0, 12.0, angle]]))
    assert torch.equal(glides, torch.zeros(1, 4))
    assert obliquity.item() == 1.0


def _random_boxes(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(n, 2, generator=g) * 200
    w = 10 + torch.rand(n, generator=g) * 90
    h = w * (0.1 + 0.8 * torch.rand(n, generator=g))  # never square: le90 is unambiguous
    angle = torch.rand(n, generator=g) * 180 - 90
    return normalize_rbox_angles(torch.cat([centre, w[:, None], h[:, None], angle[:, None]], 1))


def test_encode_decode_round_trip():
    """Oblique boxes come back as themselves; the others (obliquity above the threshold) as
    their bounding box."""
    coder = GlidingVertexCoder(obliquity_threshold=0.8)
    boxes = _random_boxes(500, seed=0)
    g = torch.Generator().manual_seed(1)
    hbox = rbox_to_hbox(boxes)
    size = (hbox[:, 2:] - hbox[:, :2]).repeat(1, 2)
    proposals = hbox + torch.randn(500, 4, generator=g).clamp(-2, 2) * 0.1 * size
    deltas = coder.get_deltas(proposals, boxes)
    decoded = coder.apply_deltas(deltas, proposals)
    oblique = deltas[:, 8] <= 0.8
    assert 100 < int(oblique.sum()) < 490  # both cases are exercised
    torch.testing.assert_close(decoded[oblique], boxes[oblique], atol=2e-3, rtol=1e-4)
    hbox = rbox_to_hbox(boxes[~oblique])
    expected = torch.stack(
        [
            0.5 * (hbox[:, 0] + hbox[:, 2]),
            0.5 * (hbox[:, 1] + hbox[:, 3]),
            hbox[:, 2] - hbox[:, 0],
            hbox[:, 3] - hbox[:, 1],
            torch.zeros(len(hbox)),
        ],
        dim=1,
    )
    torch.testing.assert_close(
        decoded[~oblique], normalize_rbox_angles(expected), atol=2e-3, rtol=1e-4
    )


def test_threshold_one_keeps_every_rectangle():
    """With threshold 1 nothing is replaced by its bounding box: every box round-trips
    (axis-aligned ones through a degenerate quadrilateral: the bounding box itself)."""
    coder = GlidingVertexCoder(obliquity_threshold=1.0)
    boxes = torch.cat([_random_boxes(50, seed=2), torch.tensor([[30.0, 30.0, 40.0, 10.0, 0.0]])])
    proposals = rbox_to_hbox(boxes)
    decoded = coder.apply_deltas(coder.get_deltas(proposals, boxes), proposals)
    iou = pairwise_iou_rotated(decoded, boxes).diagonal()
    assert (iou > 0.999).all(), iou.min()


def test_unequal_glides_decode_to_the_smallest_rectangle_around_the_vertices():
    """A quadrilateral that is no rectangle (glides (0.3, 0.6, 0.1, 0.2)): the decoded box holds
    its four vertices and is no larger than the minimum over a fine sweep of orientations."""
    coder = GlidingVertexCoder(weights=(1.0, 1.0, 1.0, 1.0))
    proposal = torch.tensor([[10.0, 20.0, 110.0, 70.0]])
    deltas = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.3, 0.6, 0.1, 0.2, 0.5]])
    box = coder.apply_deltas(deltas, proposal)
    vertices = torch.tensor([[40.0, 20.0], [110.0, 50.0], [100.0, 70.0], [10.0, 60.0]])
    slightly_larger = box * torch.tensor([1.0, 1.0, 1.0001, 1.0001, 1.0])
    assert points_in_rotated_boxes(vertices, slightly_larger.expand(4, 5), aligned=True).all()
    a = torch.deg2rad(torch.arange(18000, dtype=torch.float64) / 100)  # every 0.01 degree
    u = torch.stack([torch.cos(a), -torch.sin(a)], 1)
    v = torch.stack([torch.sin(a), torch.cos(a)], 1)
    pu, pv = vertices.double() @ u.T, vertices.double() @ v.T  # [4, 18000]
    extent_u = pu.max(0).values - pu.min(0).values
    extent_v = pv.max(0).values - pv.min(0).values
    best = float((extent_u * extent_v).min())
    area = float(box[0, 2] * box[0, 3])
    assert best * (1 - 1e-5) <= area <= best * (1 + 1e-4)  # float32 box vs float64 sweep


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="obliquity_threshold"):
        GlidingVertexCoder(obliquity_threshold=0.0)
    with pytest.raises(ValueError, match="angle_version"):
        GlidingVertexCoder(angle_version="le45")
    with pytest.raises(ValueError, match=r"deltas must be \[N, 9\]"):
        GlidingVertexCoder().apply_deltas(torch.zeros(2, 5), torch.zeros(2, 4))
