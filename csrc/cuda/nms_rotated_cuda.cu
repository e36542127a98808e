// CUDA kernels of rotated_det::nms_rotated and rotated_det::batched_nms_rotated.
//
// Boxes are sorted by decreasing score (stable, NaN scores last) on the device; a kernel fills a
// bit matrix whose row i marks the later boxes j that box i would suppress (same IoU as
// box_iou_rotated, rounded to the input dtype, > threshold; same category for the batched form);
// the greedy pass over that matrix runs on the host.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <limits>
#include <vector>

#include "checks.h"
#include "rotated_geometry.h"

namespace rotated_det {

namespace {

constexpr int kBits = 64;

template <typename scalar_t>
__global__ void nms_mask_kernel(const scalar_t* boxes, const int64_t* labels, int64_t n,
                                double iou_threshold, unsigned long long* mask) {
  const int64_t row_block = blockIdx.y, col_block = blockIdx.x;
  if (col_block < row_block) return;
  const int64_t row_start = row_block * kBits, col_start = col_block * kBits;
  const int rows = static_cast<int>(min(static_cast<int64_t>(kBits), n - row_start));
  const int cols = static_cast<int>(min(static_cast<int64_t>(kBits), n - col_start));

  __shared__ geom::RBox<double> col_boxes[kBits];
  __shared__ int64_t col_labels[kBits];
  if (threadIdx.x < cols) {
    const int64_t j = col_start + threadIdx.x;
    col_boxes[threadIdx.x] = geom::make_rbox<double>(boxes + 5 * j);
    col_labels[threadIdx.x] = labels != nullptr ? labels[j] : 0;
  }
  __syncthreads();
  if (threadIdx.x >= rows) return;

  const int64_t i = row_start + threadIdx.x;
  const auto bi = geom::make_rbox<double>(boxes + 5 * i);
  const int64_t li = labels != nullptr ? labels[i] : 0;
  const scalar_t thr = static_cast<scalar_t>(iou_threshold);
  unsigned long long bits = 0;
  const int first = (row_block == col_block) ? threadIdx.x + 1 : 0;
  for (int c = first; c < cols; ++c) {
    if (col_labels[c] != li) continue;
    if (static_cast<scalar_t>(geom::overlap(bi, col_boxes[c], 0)) > thr) bits |= 1ULL << c;
  }
  const int64_t col_blocks = (n + kBits - 1) / kBits;
  mask[i * col_blocks + col_block] = bits;
}

at::Tensor nms_impl_cuda(const at::Tensor& dets, const at::Tensor& scores, const at::Tensor* idxs,
                         double iou_threshold) {
  check_nms_args(dets, scores, iou_threshold);
  TORCH_CHECK(dets.device() == scores.device(), "dets and scores must be on the same device");
  const c10::cuda::CUDAGuard guard(dets.device());
  const int64_t n = dets.size(0);
  if (n == 0) return at::empty({0}, dets.options().dtype(at::kLong));
  const double inf = std::numeric_limits<double>::infinity();
  auto order =
      std::get<1>(at::nan_to_num(scores, -inf, inf, -inf).sort(true, 0, /*descending=*/true));
  auto sorted = dets.index_select(0, order).contiguous();
  at::Tensor labels;
  if (idxs != nullptr) labels = idxs->to(at::kLong).index_select(0, order).contiguous();

  const int64_t col_blocks = (n + kBits - 1) / kBits;
  auto mask = at::empty({n * col_blocks}, dets.options().dtype(at::kLong));
  const dim3 grid(static_cast<unsigned int>(col_blocks), static_cast<unsigned int>(col_blocks));
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(sorted.scalar_type(), "nms_rotated_cuda", [&] {
    nms_mask_kernel<scalar_t><<<grid, kBits, 0, stream>>>(
        sorted.data_ptr<scalar_t>(), idxs != nullptr ? labels.data_ptr<int64_t>() : nullptr, n,
        iou_threshold, reinterpret_cast<unsigned long long*>(mask.data_ptr<int64_t>()));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });

  auto mask_cpu = mask.to(at::kCPU);
  const auto* m = reinterpret_cast<const unsigned long long*>(mask_cpu.data_ptr<int64_t>());
  std::vector<unsigned long long> removed(col_blocks, 0);
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < n; ++i) {
    if (removed[i / kBits] & (1ULL << (i % kBits))) continue;
    keep.push_back(i);
    const unsigned long long* row = m + i * col_blocks;
    for (int64_t b = i / kBits; b < col_blocks; ++b) removed[b] |= row[b];
  }
  auto keep_t = at::empty({static_cast<int64_t>(keep.size())}, at::dtype(at::kLong));
  std::copy(keep.begin(), keep.end(), keep_t.data_ptr<int64_t>());
  return order.index_select(0, keep_t.to(order.device()));
}

at::Tensor nms_rotated_cuda(const at::Tensor& dets, const at::Tensor& scores,
                            double iou_threshold) {
  return nms_impl_cuda(dets, scores, nullptr, iou_threshold);
}

at::Tensor batched_nms_rotated_cuda(const at::Tensor& dets, const at::Tensor& scores,
                                    const at::Tensor& idxs, double iou_threshold) {
  TORCH_CHECK(idxs.dim() == 1 && idxs.size(0) == dets.size(0),
              "idxs must have shape [N] with N = dets.size(0)");
  TORCH_CHECK(!at::isFloatingType(idxs.scalar_type()) && idxs.scalar_type() != at::kBool,
              "idxs must be an integer tensor, got ", idxs.scalar_type());
  return nms_impl_cuda(dets, scores, &idxs, iou_threshold);
}

}  // namespace

TORCH_LIBRARY_IMPL(rotated_det, CUDA, m) {
  m.impl("nms_rotated", &nms_rotated_cuda);
  m.impl("batched_nms_rotated", &batched_nms_rotated_cuda);
}

}  // namespace rotated_det
