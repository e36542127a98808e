"""CUDA kernels against the CPU kernels (run only where a GPU and a CUDA build are present; the
CUDA code is compile-checked on every CI run by dev/build_cuda.sh)."""

import pytest
import torch

from rotated_det.layers import (
    batched_nms_rotated,
    box_iou_rotated,
    nms_rotated,
    pairwise_iou_rotated,
    roi_align_rotated,
)


def _has_cuda_kernels():
    if not torch.cuda.is_available():
        return False
    try:
        pairwise_iou_rotated(torch.zeros(1, 5, device="cuda"), torch.zeros(1, 5, device="cuda"))
    except (RuntimeError, NotImplementedError):
        return False
    return True


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not _has_cuda_kernels(), reason="needs a GPU and rotated_det built with CUDA kernels"
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
