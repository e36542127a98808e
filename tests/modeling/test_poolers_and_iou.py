import torch

from rotated_det.layers import pairwise_iou_rotated, roi_align_rotated
from rotated_det.modeling.poolers import ROIPooler, assign_boxes_to_levels
from rotated_det.modeling.rotated_iou import pairwise_iou_rotated_sparse
from rotated_det.structures import RotatedBoxes


def test_level_assignment_hand_worked():
    boxes = RotatedBoxes(
        torch.tensor(
            [
                [50.0, 50, 224, 224, 0],  # canonical size -> level 4
                [50.0, 50, 112, 112, 30],  # half -> level 3
                [50.0, 50, 448, 112, 0],  # sqrt(area) 224 -> level 4
                [50.0, 50, 8, 8, 0],  # tiny -> clamped to level 2
                [50.0, 50, 2000, 2000, 0],  # huge -> clamped to level 5
            ]
        )
    )
    levels = assign_boxes_to_levels([boxes], 2, 5, 224, 4)
    assert levels.tolist() == [2, 1, 2, 0, 3]


def test_pooler_uses_the_assigned_level():
    torch.manual_seed(0)
    feats = [torch.randn(2, 4, 64 // 2**i, 64 // 2**i) for i in range(4)]  # strides 4..32
    pooler = ROIPooler(7, scales=[1 / 4, 1 / 8, 1 / 16, 1 / 32], sampling_ratio=2)
    b0 = RotatedBoxes(torch.tensor([[100.0, 100, 112, 112, 30]]))  # level 3 (stride 8)
    b1 = RotatedBoxes(torch.tensor([[120.0, 90, 30, 20, -45], [60.0, 60, 230, 220, 10]]))
    out = pooler(feats, [b0, b1])
    assert out.shape == (3, 4, 7, 7)
    rois = torch.tensor([[0, 100.0, 100, 112, 112, 30]])
    torch.testing.assert_close(out[0:1], roi_align_rotated(feats[1], rois, (7, 7), 1 / 8, 2))
    rois = torch.tensor([[1, 120.0, 90, 30, 20, -45]])
    torch.testing.assert_close(out[1:2], roi_align_rotated(feats[0], rois, (7, 7), 1 / 4, 2))
    rois = torch.tensor([[1, 60.0, 60, 230, 220, 10]])
    torch.testing.assert_close(out[2:3], roi_align_rotated(feats[2], rois, (7, 7), 1 / 16, 2))


def test_sparse_iou_equals_dense():
    g = torch.Generator().manual_seed(0)
    gt = torch.cat(
        [
            torch.rand(7, 2, generator=g) * 300,
            torch.rand(7, 2, generator=g) * 80 + 5,
            torch.rand(7, 1, generator=g) * 360 - 180,
        ],
        dim=1,
    )
    anchors = torch.cat(
        [
            torch.rand(3000, 2, generator=g) * 300,
            torch.rand(3000, 2, generator=g) * 60 + 4,
            torch.rand(3000, 1, generator=g) * 180 - 90,
        ],
        dim=1,
    )
    sparse = pairwise_iou_rotated_sparse(gt, anchors)
    dense = pairwise_iou_rotated(gt, anchors)
    torch.testing.assert_close(sparse, dense)
    assert (dense > 0).any()
    assert pairwise_iou_rotated_sparse(gt[:0], anchors).shape == (0, 3000)
