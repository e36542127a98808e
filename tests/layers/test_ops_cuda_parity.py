"""CUDA kernels against the CPU kernels (run only where a GPU and a CUDA build are present; the
CUDA code is compile-checked on every CI run by dev/build_cuda.sh, and dev/gpu_check.sh runs these
with ROTATED_DET_REQUIRE_CUDA=1, which turns the skip into an error)."""

import os

import pytest
import torch
from cuda_support import has_cuda_kernels

from rotated_det.layers import (
    batched_nms_rotated,
    box_iou_rotated,
    nms_rotated,
    roi_align_rotated,
)
from rotated_det.structures import points_to_rbox, rbox_to_poly

if os.environ.get("ROTATED_DET_REQUIRE_CUDA") == "1" and not has_cuda_kernels():
    raise RuntimeError(
        "ROTATED_DET_REQUIRE_CUDA=1 but the rotated_det ops do not run on CUDA (no GPU visible, "
        "or rotated_det/_C.so built without CUDA kernels: build with FORCE_CUDA=1)"
    )

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not has_cuda_kernels(), reason="needs a GPU and rotated_det built with CUDA kernels"
    ),
]


def _boxes(n, extent, gen):
    return torch.cat(
        [
            torch.rand(n, 2, generator=gen) * extent,
            torch.rand(n, 2, generator=gen) * 90 + 10,
            torch.rand(n, 1, generator=gen) * 360 - 180,
        ],
        1,
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_iou_parity(dtype):
    gen = torch.Generator().manual_seed(0)
    b1, b2 = _boxes(300, 200, gen).to(dtype), _boxes(200, 200, gen).to(dtype)
    b1[0, 0] = float("nan")
    for mode in ("iou", "iof"):
        cpu = box_iou_rotated(b1, b2, mode)
        gpu = box_iou_rotated(b1.cuda(), b2.cuda(), mode).cpu()
        torch.testing.assert_close(gpu, cpu, rtol=0, atol=1e-6)
        cpu_al = box_iou_rotated(b1[:200], b2, mode, aligned=True)
        gpu_al = box_iou_rotated(b1[:200].cuda(), b2.cuda(), mode, aligned=True).cpu()
        torch.testing.assert_close(gpu_al, cpu_al, rtol=0, atol=1e-6)


def test_nms_parity():
    gen = torch.Generator().manual_seed(1)
    boxes = _boxes(3000, 300, gen)
    scores = torch.rand(3000, generator=gen)
    idxs = torch.randint(0, 5, (3000,), generator=gen)
    for thr in (0.1, 0.5, 0.7):
        assert torch.equal(
            nms_rotated(boxes.cuda(), scores.cuda(), thr).cpu(), nms_rotated(boxes, scores, thr)
        )
        assert torch.equal(
            batched_nms_rotated(boxes.cuda(), scores.cuda(), idxs.cuda(), thr).cpu(),
            batched_nms_rotated(boxes, scores, idxs, thr),
        )


@pytest.mark.parametrize("sampling_ratio", [2, 0])
def test_roi_align_parity(sampling_ratio):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 8, 32, 32, generator=gen, dtype=torch.float64)
    boxes = _boxes(50, 128, gen).double()
    boxes[:, 2:4] /= 2
    rois = torch.cat([torch.randint(0, 2, (50, 1), generator=gen).double(), boxes], 1)
    xc = x.cuda().requires_grad_()
    xg = x.clone().requires_grad_()
    out_cpu = roi_align_rotated(xg, rois, 5, 0.25, sampling_ratio)
    out_gpu = roi_align_rotated(xc, rois.cuda(), 5, 0.25, sampling_ratio)
    torch.testing.assert_close(out_gpu.cpu(), out_cpu)
    g = torch.randn_like(out_cpu)
    (gc,) = torch.autograd.grad((out_cpu * g).sum(), xg)
    (gg,) = torch.autograd.grad((out_gpu * g.cuda()).sum(), xc)
    torch.testing.assert_close(gg.cpu(), gc)


# Half precision. The ops widen float16/bfloat16 inputs exactly to float32 (IoU and NMS geometry
# then runs in float64) and round the result once to the input dtype, so CUDA in half precision
# must match the CPU in float32 on the same (already rounded) inputs up to that last rounding:
# one unit in the last place of the half dtype, relative (float16: 2^-10, bfloat16: 2^-7), plus
# 1e-5 absolute for the float32 accumulation order of RoIAlign's sums on the two devices.
HALF = [(torch.float16, 2.0**-10), (torch.bfloat16, 2.0**-7)]


@pytest.mark.parametrize("dtype,ulp", HALF)
def test_iou_half_parity(dtype, ulp):
    gen = torch.Generator().manual_seed(3)
    b1, b2 = _boxes(300, 200, gen).to(dtype), _boxes(200, 200, gen).to(dtype)
    for mode in ("iou", "iof"):
        cpu = box_iou_rotated(b1.float(), b2.float(), mode)
        gpu = box_iou_rotated(b1.cuda(), b2.cuda(), mode)
        assert gpu.dtype == dtype
        torch.testing.assert_close(gpu.cpu().float(), cpu, rtol=0, atol=ulp)
        gpu_al = box_iou_rotated(b1[:200].cuda(), b2.cuda(), mode, aligned=True)
        cpu_al = box_iou_rotated(b1[:200].float(), b2.float(), mode, aligned=True)
        torch.testing.assert_close(gpu_al.cpu().float(), cpu_al, rtol=0, atol=ulp)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_nms_half_parity(dtype):
    gen = torch.Generator().manual_seed(4)
    boxes = _boxes(200, 100, gen).to(dtype)
    # distinct scores, exact in both half dtypes (k / 256 with k < 256): no tie to break
    scores = ((torch.randperm(200, generator=gen) + 1).float() / 256).to(dtype)
    idxs = torch.randint(0, 3, (200,), generator=gen)
    for thr in (0.1, 0.5):
        keep_cpu = nms_rotated(boxes.float(), scores.float(), thr)
        assert torch.equal(nms_rotated(boxes.cuda(), scores.cuda(), thr).cpu(), keep_cpu)
        assert torch.equal(
            batched_nms_rotated(boxes.cuda(), scores.cuda(), idxs.cuda(), thr).cpu(),
            batched_nms_rotated(boxes.float(), scores.float(), idxs, thr),
        )


@pytest.mark.parametrize("dtype,ulp", HALF)
@pytest.mark.parametrize("sampling_ratio", [2, 0])
def test_roi_align_half_parity(dtype, ulp, sampling_ratio):
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 8, 32, 32, generator=gen).to(dtype)
    boxes = _boxes(50, 128, gen)
    boxes[:, 2:4] /= 2
    rois = torch.cat([torch.randint(0, 2, (50, 1), generator=gen).float(), boxes], 1)
    x_cpu = x.float().requires_grad_()
    x_gpu = x.cuda().requires_grad_()
    out_cpu = roi_align_rotated(x_cpu, rois, 5, 0.25, sampling_ratio)
    out_gpu = roi_align_rotated(x_gpu, rois.cuda(), 5, 0.25, sampling_ratio)
    assert out_gpu.dtype == dtype
    torch.testing.assert_close(out_gpu.cpu().float(), out_cpu, rtol=ulp, atol=1e-5)
    g = torch.randn(out_cpu.shape, generator=gen).to(dtype)
    (grad_cpu,) = torch.autograd.grad((out_cpu * g.float()).sum(), x_cpu)
    (grad_gpu,) = torch.autograd.grad((out_gpu * g.cuda()).sum(), x_gpu)
    assert grad_gpu.dtype == dtype
    torch.testing.assert_close(grad_gpu.cpu().float(), grad_cpu, rtol=ulp, atol=1e-5)


@pytest.mark.parametrize("k", [4, 9, 64])
def test_min_area_rect_parity(k):
    """The CUDA side choice equals the CPU one, or (nvcc may fuse a multiply-add) picks a
    rectangle of the same area within the tie tolerance; the rectangles enclose the points."""
    gen = torch.Generator().manual_seed(k)
    pts = torch.rand(5000, k, 2, generator=gen) * 1000
    pts[:500] = torch.randint(0, 4, (500, k, 2), generator=gen).float()  # exact ties
    op = torch.ops.rotated_det.min_area_rect_pair
    cpu, gpu = op(pts, 1e-5), op(pts.cuda(), 1e-5).cpu()
    assert (cpu != gpu).any(1)[500:].float().mean().item() <= 0.002
    rect_cpu, rect_gpu = points_to_rbox(pts), points_to_rbox(pts.cuda()).cpu()
    area_cpu = rect_cpu[:, 2].double() * rect_cpu[:, 3]
    area_gpu = rect_gpu[:, 2].double() * rect_gpu[:, 3]
    torch.testing.assert_close(area_gpu, area_cpu, rtol=3e-5, atol=1e-3)


def test_convex_overlaps_parity():
    """Hull clipping in float64 on both devices: pairwise and aligned IoU within 1e-6."""
    gen = torch.Generator().manual_seed(11)
    boxes = _boxes(400, 300, gen)
    pts = boxes[:, None, :2] + (torch.rand(400, 9, 2, generator=gen) - 0.5) * 80
    pts[:20] = pts[:20, :1]  # identical points: no area
    polys = rbox_to_poly(boxes[::7]).view(-1, 4, 2)
    op = torch.ops.rotated_det.convex_overlaps
    cpu = op(pts, polys, False)
    torch.testing.assert_close(op(pts.cuda(), polys.cuda(), False).cpu(), cpu, rtol=0, atol=1e-6)
    aligned = rbox_to_poly(boxes).view(-1, 4, 2)
    torch.testing.assert_close(
        op(pts.cuda(), aligned.cuda(), True).cpu(), op(pts, aligned, True), rtol=0, atol=1e-6
    )
    assert (cpu > 0).float().mean() > 0.005
