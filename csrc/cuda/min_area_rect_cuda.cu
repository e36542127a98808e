// CUDA kernel of rotated_det::min_area_rect_pair: one thread per point set, the same algorithm as
// the CPU kernel (min_area_rect.h).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "checks.h"
#include "min_area_rect.h"

namespace rotated_det {

namespace {

constexpr int kThreads = 128;

template <typename scalar_t>
__global__ void choose_pairs_kernel(const scalar_t* points, int64_t n, int k, scalar_t tol,
                                    int64_t* out) {
  const int64_t s = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (s >= n) return;
  scalar_t x[min_area::kMaxPoints], y[min_area::kMaxPoints];
  const scalar_t* ps = points + s * 2 * k;
  for (int m = 0; m < k; ++m) {
    x[m] = ps[2 * m];
    y[m] = ps[2 * m + 1];
  }
  min_area::choose_pairs<scalar_t, 1>(x, y, k, tol, out + 2 * s, out + 2 * s + 1);
}

at::Tensor min_area_rect_pair_cuda(const at::Tensor& points, double tol) {
  check_point_sets(points, min_area::kMaxPoints);
  const c10::cuda::CUDAGuard guard(points.device());
  auto pts = points.contiguous();
  const int64_t n = pts.size(0);
  auto out = at::empty({n, 2}, pts.options().dtype(at::kLong));
  if (n == 0) return out;
  const auto blocks = static_cast<unsigned int>((n + kThreads - 1) / kThreads);
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(pts.scalar_type(), "min_area_rect_pair_cuda", [&] {
    choose_pairs_kernel<scalar_t><<<blocks, kThreads, 0, stream>>>(
        pts.data_ptr<scalar_t>(), n, static_cast<int>(pts.size(1)), static_cast<scalar_t>(tol),
        out.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(rotated_det, CUDA, m) {
  m.impl("min_area_rect_pair", &min_area_rect_pair_cuda);
}

}  // namespace rotated_det
