"""The compiled side choice of the minimum-area rectangle (``rotated_det::min_area_rect_pair``,
csrc/min_area_rect.h) against its torch formulation (``min_area_rect_pair_torch``, which ONNX
export uses in its place), and the swap under ``StandardOpsMode``. ``points_to_rbox`` itself is
tested against cv2, shapely and an all-pairs reference in
tests/structures/test_rotated_box_conversions.py and test_convex_hull_and_min_area_rect.py."""

import importlib.util
import warnings

import numpy as np
import pytest
import torch

import rotated_det.layers  # noqa: F401  (loads the compiled ops)
from rotated_det.export import StandardOpsMode, rotated_det_ops_in_exported_program
from rotated_det.export.onnx_export import DEFAULT_OPSET
from rotated_det.structures import points_to_rbox
from rotated_det.structures.rotated_box_conversions import _TIE_TOL, min_area_rect_pair_torch


def point_sets(k: int, n: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """[n, k, 2]: random sets over 1000 px, then blocks of special sets: integer-grid points
    (many exact ties), collinear points, a set padded by repeating a point, all points equal,
    NaN and infinite coordinates."""
    gen = torch.Generator().manual_seed(seed)
    pts = torch.rand(n, k, 2, generator=gen, dtype=torch.float64) * 1000
    b = n // 10
    pts[:b] = torch.randint(0, 4, (b, k, 2), generator=gen).double()
    t = torch.rand(b, k, 1, generator=gen, dtype=torch.float64)
    pts[b : 2 * b] = torch.cat([200 + 300 * t, 100 - 80 * t], -1)
    pts[2 * b : 3 * b, k // 2 :] = pts[2 * b : 3 * b, k // 2 - 1 : k // 2]
    pts[-1] = 7.5
    pts[-2, 1, 0] = float("nan")
    pts[-3, 0, 1] = float("inf")
    return pts.to(dtype)


def chosen_area(pts: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
    """[N] area (float64) of the rectangle enclosing each set along its chosen pair's direction."""
    p = pts.double()
    rows = torch.arange(len(p))
    o, d = p[rows, pair[:, 0]], p[rows, pair[:, 1]] - p[rows, pair[:, 0]]
    r = p - o[:, None]
    s = r[..., 0] * d[:, None, 0] + r[..., 1] * d[:, None, 1]
    q = r[..., 1] * d[:, None, 0] - r[..., 0] * d[:, None, 1]
    ext = (s.amax(1) - s.amin(1)) * (q.amax(1) - q.amin(1))
    return ext / (d * d).sum(-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [4, 6, 8, 9, 16, 64])
def test_compiled_choice_equals_torch_formulation(k, dtype):
    """Same pair as the torch formulation (all pairs up to 8 points, hull-edge candidates above)
    on random sets, and on ties and degenerate sets a pair with the same area. On this machine
    every pair of the random sets was equal (20,000 sets per case); torch's kernels may round a
    product-sum differently (fused multiply-adds on some CPUs), which decides between candidates
    whose areas are within rounding: the tie tolerance (relative), or the rounding of a zero area
    (collinear sets). A differing pair is allowed only on such a near-tie, and in at most 0.2% of
    the random sets."""
    n = 4000 if k < 64 else 500
    pts = point_sets(k, n, dtype, seed=k)
    tol = _TIE_TOL[dtype]
    ours = torch.ops.rotated_det.min_area_rect_pair(pts, tol)
    ref = min_area_rect_pair_torch(pts, tol)
    assert ours.dtype == torch.int64 and ours.shape == (n, 2)
    assert bool((ours[:, 0] < ours[:, 1]).all()) and bool((ours >= 0).all() & (ours < k).all())
    differ = (ours != ref).any(1)
    assert differ[3 * (n // 10) : -3].float().mean().item() <= 0.002
    p = pts[differ].double()
    a, b = chosen_area(p, ours[differ]), chosen_area(p, ref[differ])
    span = (p.amax(1) - p.amin(1)).amax(-1)  # [D] the sets' extents
    rounding = 64 * torch.finfo(dtype).eps * span * span
    assert bool(((a - b).abs() <= 3 * tol * torch.maximum(a, b) + rounding).all())
    # all points equal, NaN, inf: no finite candidate -> (0, 1)
    assert ours[-3:].tolist() == [[0, 1]] * 3


def test_compiled_choice_hand_examples():
    """A 4 x 2 rectangle with interior points: a side of the rectangle is a pair of corners. The
    first (0, 1) order: for 4 points the pair (0, 1) (a side) wins; with 9 points listed interior
    first, the smallest candidate key among the rectangle's sides wins."""
    rect = [[0.0, 0.0], [4.0, 0.0], [4.0, 2.0], [0.0, 2.0]]
    inner = [[1.0, 1.0], [2.0, 0.5], [3.0, 1.5], [2.5, 1.0], [1.5, 1.2]]
    four = torch.tensor([rect])
    assert torch.ops.rotated_det.min_area_rect_pair(four, 1e-5).tolist() == [[0, 1]]
    nine = torch.tensor([inner + rect])  # corners are points 5..8
    (pair,) = torch.ops.rotated_det.min_area_rect_pair(nine, 1e-5).tolist()
    assert pair == [5, 6]  # the side (0, 0)-(4, 0): the smallest key of the four sides
    assert points_to_rbox(nine)[0].tolist() == pytest.approx([2, 1, 4, 2, 0])


def test_compiled_op_rejects_bad_input():
    op = torch.ops.rotated_det.min_area_rect_pair
    with pytest.raises(RuntimeError, match=r"\[N, K, 2\] with 2 <= K <= 64"):
        op(torch.zeros(3, 65, 2), 1e-5)
    with pytest.raises(RuntimeError, match=r"\[N, K, 2\]"):
        op(torch.zeros(3, 8), 1e-5)
    with pytest.raises(RuntimeError, match="float32 or float64"):
        op(torch.zeros(3, 9, 2, dtype=torch.int32), 1e-5)
    # (with more than 64 points points_to_rbox takes the torch formulation: k = 65 in
    # tests/structures/test_rotated_box_conversions.py against an all-pairs reference)


class Rect(torch.nn.Module):
    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return points_to_rbox(points)


def test_standard_ops_mode_swaps_the_compiled_choice():
    """Under StandardOpsMode points_to_rbox runs (eagerly and in a torch.export program) on the
    torch formulation with the same rectangles; without it the exported program calls the op."""
    pts = point_sets(9, 300, torch.float32, seed=3)[:-3]
    expected = points_to_rbox(pts)
    with StandardOpsMode():
        torch.testing.assert_close(points_to_rbox(pts), expected)
    n = torch.export.Dim("n", min=2)
    plain = torch.export.export(Rect(), (pts[:20],), dynamic_shapes=({0: n},))
    assert rotated_det_ops_in_exported_program(plain) == ["rotated_det::min_area_rect_pair"]
    with StandardOpsMode():
        standard = torch.export.export(Rect(), (pts[:20],), dynamic_shapes=({0: n},))
    assert rotated_det_ops_in_exported_program(standard) == []
    torch.testing.assert_close(standard.module()(pts), expected)
    torch.testing.assert_close(plain.module()(pts), expected)


@pytest.mark.slow  # torch.export + ONNX translation: a few seconds
def test_onnx_file_of_points_to_rbox_equals_eager(tmp_path):
    """points_to_rbox exported to ONNX (StandardOpsMode) runs in ONNX Runtime on another set
    count with eager's rectangles."""
    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnxruntime is not installed (pip install -r dev/requirements.txt)")
    import onnxruntime as ort

    pts = point_sets(9, 400, torch.float32, seed=4)[:-3]
    n = torch.export.Dim("n", min=2)
    with StandardOpsMode():
        program = torch.export.export(Rect(), (pts[:20],), dynamic_shapes=({0: n},))
    path = str(tmp_path / "points_to_rbox.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            program, dynamo=True, opset_version=DEFAULT_OPSET, input_names=["points"]
        ).save(path)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"points": pts.numpy()})
    expected = points_to_rbox(pts).numpy()
    assert got.shape == expected.shape == (len(pts), 5)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)
