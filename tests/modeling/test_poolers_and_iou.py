import pytest
import torch

from rotated_det.layers import ri_roi_align_rotated, roi_align_rotated
from rotated_det.modeling.poolers import ROIPooler, assign_boxes_to_levels
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


def test_ri_pooler_aligns_orientations_on_the_assigned_level():
    """pooler_type="RiRoIAlignRotated" pools each box with ri_roi_align_rotated at its level."""
    torch.manual_seed(1)
    feats = [torch.randn(2, 16, 64 // 2**i, 64 // 2**i) for i in range(4)]  # 2 fields of C8
    scales = [1 / 4, 1 / 8, 1 / 16, 1 / 32]
    pooler = ROIPooler(7, scales, 2, pooler_type="RiRoIAlignRotated", num_orientations=8)
    b0 = RotatedBoxes(torch.tensor([[100.0, 100, 112, 112, 30]]))  # level 3 (stride 8)
    b1 = RotatedBoxes(torch.tensor([[120.0, 90, 30, 20, -45]]))  # level 2 (stride 4)
    out = pooler(feats, [b0, b1])
    rois = torch.tensor([[0, 100.0, 100, 112, 112, 30]])
    torch.testing.assert_close(out[0:1], ri_roi_align_rotated(feats[1], rois, 7, 1 / 8, 2, 8))
    rois = torch.tensor([[1, 120.0, 90, 30, 20, -45]])
    torch.testing.assert_close(out[1:2], ri_roi_align_rotated(feats[0], rois, 7, 1 / 4, 2, 8))
    assert {p.num_orientations for p in pooler.level_poolers} == {8}
    with pytest.raises(ValueError, match="needs num_orientations"):
        ROIPooler(7, scales, 2, pooler_type="RiRoIAlignRotated")
    with pytest.raises(ValueError, match="num_orientations is for pooler_type='RiRoIAlignRotated'"):
        ROIPooler(7, scales, 2, num_orientations=8)
