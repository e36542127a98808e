// CUDA kernel of rotated_det::box_iou_rotated: one thread per pair (or per aligned pair), the same
// geometry as the CPU kernel (rotated_geometry.h), computed in float64 and rounded to the input
// dtype.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "checks.h"
#include "rotated_geometry.h"

namespace rotated_det {

using geom::RBox;

namespace {

constexpr int kThreads = 256;

template <typename scalar_t>
__global__ void prepare_kernel(const scalar_t* boxes, int64_t n, RBox<double>* out) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = geom::make_rbox<double>(boxes + 5 * i);
}

template <typename scalar_t>
__global__ void pairwise_kernel(const RBox<double>* a, const RBox<double>* b, int64_t n, int64_t m,
                                int mode, scalar_t* out) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= n * m) return;
  const int64_t i = idx / m, j = idx - i * m;
  out[idx] = static_cast<scalar_t>(geom::overlap(a[i], b[j], mode));
}

template <typename scalar_t>
__global__ void aligned_kernel(const scalar_t* b1, const scalar_t* b2, int64_t n, int mode,
                               scalar_t* out) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const auto a = geom::make_rbox<double>(b1 + 5 * i);
  const auto b = geom::make_rbox<double>(b2 + 5 * i);
  out[i] = static_cast<scalar_t>(geom::overlap(a, b, mode));
}

inline unsigned int blocks_for(int64_t n) {
  return static_cast<unsigned int>((n + kThreads - 1) / kThreads);
}

at::Tensor box_iou_rotated_cuda(const at::Tensor& boxes1, const at::Tensor& boxes2, int64_t mode,
                                bool is_aligned) {
  check_boxes(boxes1, "boxes1");
  check_boxes(boxes2, "boxes2");
  TORCH_CHECK(boxes1.scalar_type() == boxes2.scalar_type(),
              "boxes1 and boxes2 must have the same dtype");
  TORCH_CHECK(boxes1.device() == boxes2.device(), "boxes1 and boxes2 must be on the same device");
  TORCH_CHECK(mode == 0 || mode == 1, "mode must be 0 (iou) or 1 (iof), got ", mode);
  const c10::cuda::CUDAGuard guard(boxes1.device());
  auto stream = at::cuda::getCurrentCUDAStream();
  auto b1 = boxes1.contiguous();
  auto b2 = boxes2.contiguous();
  const int64_t n = b1.size(0), m = b2.size(0);
  if (is_aligned) {
    TORCH_CHECK(n == m, "aligned IoU needs as many boxes in boxes1 as in boxes2");
    auto out = at::zeros({n}, b1.options());
    if (n == 0) return out;
    AT_DISPATCH_FLOATING_TYPES(b1.scalar_type(), "box_iou_rotated_cuda", [&] {
      aligned_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(
          b1.data_ptr<scalar_t>(), b2.data_ptr<scalar_t>(), n, static_cast<int>(mode),
          out.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
    return out;
  }
  auto out = at::zeros({n, m}, b1.options());
  if (out.numel() == 0) return out;
  // RBox<double> arrays stored in byte tensors.
  auto ra =
      at::empty({n * static_cast<int64_t>(sizeof(RBox<double>))}, b1.options().dtype(at::kByte));
  auto rb =
      at::empty({m * static_cast<int64_t>(sizeof(RBox<double>))}, b1.options().dtype(at::kByte));
  auto* pa = reinterpret_cast<RBox<double>*>(ra.data_ptr<uint8_t>());
  auto* pb = reinterpret_cast<RBox<double>*>(rb.data_ptr<uint8_t>());
  AT_DISPATCH_FLOATING_TYPES(b1.scalar_type(), "box_iou_rotated_cuda", [&] {
    prepare_kernel<scalar_t>
        <<<blocks_for(n), kThreads, 0, stream>>>(b1.data_ptr<scalar_t>(), n, pa);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    prepare_kernel<scalar_t>
        <<<blocks_for(m), kThreads, 0, stream>>>(b2.data_ptr<scalar_t>(), m, pb);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    pairwise_kernel<scalar_t><<<blocks_for(n * m), kThreads, 0, stream>>>(
        pa, pb, n, m, static_cast<int>(mode), out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(rotated_det, CUDA, m) {
  m.impl("box_iou_rotated", &box_iou_rotated_cuda);
}

}  // namespace rotated_det
