"""The compiled ops as torch.ops.rotated_det.*: registration, torch.jit.trace, torch.export."""

import subprocess

import torch

import rotated_det.layers as L
from rotated_det.layers.ops_library import library_path

OPS = [
    "box_iou_rotated",
    "nms_rotated",
    "batched_nms_rotated",
    "roi_align_rotated_forward",
    "roi_align_rotated_backward",
]


def _inputs(seed=0):
    gen = torch.Generator().manual_seed(seed)
    boxes = torch.cat(
        [
            torch.rand(30, 2, generator=gen) * 40,
            torch.rand(30, 2, generator=gen) * 20 + 4,
            torch.rand(30, 1, generator=gen) * 360 - 180,
        ],
        1,
    )
    scores = torch.rand(30, generator=gen)
    feat = torch.randn(2, 3, 16, 16, generator=gen)
    rois = torch.cat([torch.randint(0, 2, (30, 1), generator=gen).float(), boxes], 1)
    return boxes, scores, feat, rois


class _Head(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = L.ROIAlignRotated((3, 3), 0.5, 2)

    def forward(self, boxes, scores, feat, rois):
        iou = L.pairwise_iou_rotated(boxes, boxes)
        iof = L.box_iou_rotated(boxes, boxes, mode="iof", aligned=True)
        pooled = self.pool(feat, rois)
        return iou.sum(1) + iof + pooled.mean(dim=(1, 2, 3))


def test_ops_are_registered_and_library_has_no_python_bindings():
    for name in OPS:
        assert hasattr(torch.ops.rotated_det, name), name
    # Loadable from C++: the library must not need libtorch_python / a Python module init.
    path = library_path()
    ldd = subprocess.run(["ldd", path], capture_output=True, text=True, check=True).stdout
    assert "libtorch_python" not in ldd
    syms = subprocess.run(["nm", "-D", path], capture_output=True, text=True, check=True).stdout
    assert "PyInit" not in syms


def test_jit_trace():
    boxes, scores, feat, rois = _inputs(0)
    model = _Head().eval()
    traced = torch.jit.trace(model, (boxes, scores, feat, rois))
    graph = str(traced.inlined_graph)
    assert "rotated_det::box_iou_rotated" in graph
    assert "rotated_det::roi_align_rotated_forward" in graph
    new = _inputs(1)
    torch.testing.assert_close(traced(*new), model(*new))

    def nms_fn(boxes, scores):
        return L.nms_rotated(boxes, scores, 0.3)

    traced_nms = torch.jit.trace(nms_fn, (boxes, scores))
    assert "rotated_det::nms_rotated" in str(traced_nms.graph)
    assert torch.equal(traced_nms(new[0], new[1]), nms_fn(new[0], new[1]))


def test_torch_export():
    boxes, scores, feat, rois = _inputs(0)
    model = _Head().eval()
    ep = torch.export.export(model, (boxes, scores, feat, rois))
    new = _inputs(1)
    torch.testing.assert_close(ep.module()(*new), model(*new))

    class _Nms(torch.nn.Module):
        def forward(self, boxes, scores, idxs):
            keep = L.batched_nms_rotated(boxes, scores, idxs, 0.3)
            return boxes[keep], keep

    idxs = (scores * 3).long()
    ep_nms = torch.export.export(_Nms(), (boxes, scores, idxs))
    out_boxes, keep = ep_nms.module()(boxes, scores, idxs)
    assert torch.equal(keep, L.batched_nms_rotated(boxes, scores, idxs, 0.3))
    assert torch.equal(out_boxes, boxes[keep])


def test_export_training_graph_has_backward_op():
    _, _, feat, rois = _inputs(2)
    feat = feat.double().requires_grad_()
    rois = rois.double()
    out = L.roi_align_rotated(feat, rois, 2, 0.5, 0)
    (grad,) = torch.autograd.grad(out.sum(), feat)
    direct = torch.ops.rotated_det.roi_align_rotated_backward(
        torch.ones_like(out), rois, 0.5, 2, 2, 2, 3, 16, 16, 0
    )
    torch.testing.assert_close(grad, direct)


def test_half_precision_fronts_trace_and_export():
    """The float16/bfloat16 handling of the Python fronts (widen, call the op, round back) is
    plain tensor code: it traces and exports, and the graphs give the eager results."""
    boxes, scores, feat, rois = _inputs(3)
    feat = feat.bfloat16()
    model = _Head().eval()
    ref = model(boxes, scores, feat, rois)
    traced = torch.jit.trace(model, (boxes, scores, feat, rois))
    assert "rotated_det::roi_align_rotated_forward" in str(traced.inlined_graph)
    ep = torch.export.export(model, (boxes, scores, feat, rois))
    new = _inputs(4)
    new = (new[0], new[1], new[2].bfloat16(), new[3])
    for f in (traced, ep.module()):
        assert torch.equal(f(boxes, scores, feat, rois), ref)
        assert torch.equal(f(*new), model(*new))

    class _Nms(torch.nn.Module):
        def forward(self, boxes, scores, idxs):
            return L.batched_nms_rotated(boxes, scores, idxs, 0.3)

    idxs = (scores * 3).long()
    half_scores = scores.bfloat16()
    ep_nms = torch.export.export(_Nms(), (boxes, half_scores, idxs))
    assert torch.equal(
        ep_nms.module()(boxes, half_scores, idxs),
        L.batched_nms_rotated(boxes, half_scores.float(), idxs, 0.3),
    )
