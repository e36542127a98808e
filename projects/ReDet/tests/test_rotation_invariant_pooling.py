"""ReDet's chain of equivariance and invariance: ReResNet + ReFPN features of an image turned by a
quarter turn, pooled by RiRoIAlign over the RoI turned with it, equal the features of the image
pooled over the RoI (rotation-invariant RoI features); plain rotated RoIAlign does not give that."""

import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("e2cnn", reason="ReDet needs the redet extra: pip install -e '.[redet]'")

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:  # `projects` is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))

from projects.ReDet.re_fpn import ReFPN  # noqa: E402
from projects.ReDet.re_resnet import ReResNet  # noqa: E402
from rotated_det.layers import ri_roi_align_rotated, roi_align_rotated  # noqa: E402
from rotated_det.modeling import LastLevelMaxPool  # noqa: E402


def turned_rois(rois: torch.Tensor, size: int, k: int) -> torch.Tensor:
    """The RoIs ``[R, 6]`` (batch, cx, cy, w, h, angle) of a ``size`` x ``size`` map after ``k``
    quarter turns counter-clockwise on screen (``torch.rot90(x, k, dims=(2, 3))``): pixel ``i``
    covers ``[i, i + 1)``, so the point (x, y) goes to (y, size - x) and angles grow by 90."""
    out = rois.clone()
    for _ in range(k):
        x, y = out[:, 1].clone(), out[:, 2].clone()
        out[:, 1], out[:, 2], out[:, 5] = y, size - x, out[:, 5] + 90.0
    return out


def test_riroialign_of_equivariant_features_is_rotation_invariant():
    """Measured (one thread, float32): relative difference 2e-6 with RiRoIAlign, 1.0 with
    rotated RoIAlign (the orientation channels not aligned)."""
    torch.manual_seed(0)
    backbone = ReFPN(
        ReResNet(18, norm="GN"), ["res2", "res3", "res4", "res5"], 64, LastLevelMaxPool()
    ).eval()
    image = torch.randn(1, 3, 65, 65)  # odd sizes at every stride: exact quarter turns
    # RoIs in P2's pixels (spatial_scale 1): P2 of the turned image is the turned P2
    rois = torch.tensor(
        [
            [0, 7.3, 9.1, 8.0, 3.5, 20.0],
            [0, 8.5, 8.5, 6.0, 6.0, -37.0],
            [0, 5.0, 11.2, 9.0, 4.0, 100.0],
        ]
    )
    with torch.no_grad():
        p2 = backbone(image)["p2"]
        size = p2.shape[-1]
        assert p2.shape[-2:] == (17, 17)
        pooled = ri_roi_align_rotated(p2, rois, 7, 1.0, 2, num_orientations=8)
        plain = roi_align_rotated(p2, rois, 7, 1.0, 2)
        for k in (1, 2, 3):
            p2_turned = backbone(torch.rot90(image, k, dims=(2, 3)))["p2"]
            rois_turned = turned_rois(rois, size, k)
            again = ri_roi_align_rotated(p2_turned, rois_turned, 7, 1.0, 2, num_orientations=8)
            error = float((again - pooled).abs().max() / pooled.abs().max())
            assert error < 1e-4, (k, error)
            plain_again = roi_align_rotated(p2_turned, rois_turned, 7, 1.0, 2)
            assert float((plain_again - plain).abs().max() / plain.abs().max()) > 0.1, k
