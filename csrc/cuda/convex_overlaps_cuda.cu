// CUDA kernel of rotated_det::convex_overlaps: one thread per point set or polygon prepares it (its
// hull, area, bounding box; convex_overlaps.h), then one thread per pair computes the IoU, in
// float64 as the CPU kernel.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "checks.h"
#include "convex_overlaps.h"

namespace rotated_det {

namespace {

using convex::Point;
using convex::Prepared;

constexpr int kThreads = 128;

inline unsigned int blocks_for(int64_t n) {
  return static_cast<unsigned int>((n + kThreads - 1) / kThreads);
}

template <typename scalar_t>
__global__ void prepare_kernel(const scalar_t* in, int64_t n, int k, bool hull,
                               Prepared<double>* info, Point<double>* verts) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  info[i] = convex::prepare<double>(in + i * 2 * k, k, hull, verts + i * (k + 1));
}

template <typename scalar_t>
__global__ void pairs_kernel(const Prepared<double>* a, const Point<double>* av, int a_stride,
                             const Prepared<double>* b, const Point<double>* bv, int b_stride,
                             int64_t n, int64_t g, bool aligned, scalar_t* out) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= (aligned ? n : n * g)) return;
  const int64_t i = aligned ? idx : idx / g;
  const int64_t j = aligned ? idx : idx - i * g;
  out[idx] =
      static_cast<scalar_t>(convex::pair_iou(a[i], av + i * a_stride, b[j], bv + j * b_stride));
}

// Byte tensors holding `count` objects of type T.
template <typename T>
at::Tensor buffer(int64_t count, const at::Tensor& like) {
  return at::empty({count * static_cast<int64_t>(sizeof(T))}, like.options().dtype(at::kByte));
}

at::Tensor convex_overlaps_cuda(const at::Tensor& points, const at::Tensor& polygons,
                                bool is_aligned) {
  check_convex_overlaps_args(points, polygons, is_aligned, convex::kMaxPoints,
                             convex::kMaxVertices);
  TORCH_CHECK(points.device() == polygons.device(), "points and polygons must be on one device");
  const c10::cuda::CUDAGuard guard(points.device());
  auto stream = at::cuda::getCurrentCUDAStream();
  auto p = points.contiguous();
  auto q = polygons.contiguous();
  const int64_t n = p.size(0), g = q.size(0);
  const int k = static_cast<int>(p.size(1)), m = static_cast<int>(q.size(1));
  auto out = is_aligned ? at::zeros({n}, p.options()) : at::zeros({n, g}, p.options());
  if (out.numel() == 0) return out;
  auto a_info = buffer<Prepared<double>>(n, p);
  auto a_verts = buffer<Point<double>>(n * (k + 1), p);
  auto b_info = buffer<Prepared<double>>(g, p);
  auto b_verts = buffer<Point<double>>(g * (m + 1), p);
  auto* ai = reinterpret_cast<Prepared<double>*>(a_info.data_ptr<uint8_t>());
  auto* av = reinterpret_cast<Point<double>*>(a_verts.data_ptr<uint8_t>());
  auto* bi = reinterpret_cast<Prepared<double>*>(b_info.data_ptr<uint8_t>());
  auto* bv = reinterpret_cast<Point<double>*>(b_verts.data_ptr<uint8_t>());
  const int64_t pairs = is_aligned ? n : n * g;
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "convex_overlaps_cuda", [&] {
    prepare_kernel<scalar_t>
        <<<blocks_for(n), kThreads, 0, stream>>>(p.data_ptr<scalar_t>(), n, k, true, ai, av);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    prepare_kernel<scalar_t>
        <<<blocks_for(g), kThreads, 0, stream>>>(q.data_ptr<scalar_t>(), g, m, false, bi, bv);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    pairs_kernel<scalar_t><<<blocks_for(pairs), kThreads, 0, stream>>>(
        ai, av, k + 1, bi, bv, m + 1, n, g, is_aligned, out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(rotated_det, CUDA, m) {
  m.impl("convex_overlaps", &convex_overlaps_cuda);
}

}  // namespace rotated_det
