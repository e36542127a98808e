// CUDA kernels of rotated_det::ri_roi_align_rotated_forward / _backward (ReDet's rotation-invariant
// RoIAlign): one thread per output element, the sampling of rotated_geometry.h (the same as the CPU
// kernels and roi_align_rotated) on the two input orientation planes that the element
// interpolates between (geom::orientation_shift). The backward pass adds into the input gradient
// with atomicAdd.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ri_roi_align_rotated.h"
#include "rotated_geometry.h"

namespace rotated_det {

namespace {

constexpr int kThreads = 256;

// Where output element `index` of [K, C, ph, pw] reads from: its RoI's geometry, bin and the
// offsets of the two input planes (orientations first and first + 1 of its field).
template <typename T>
struct ElementSource {
  geom::RoiGeometry<T> g;
  int ph, pw;
  int64_t plane0, plane1;  // offsets of the [H, W] planes in the input
  T frac;                  // weight of plane1
};

template <typename T>
__device__ __forceinline__ ElementSource<T> element_source(int64_t index, const T* rois,
                                                           T spatial_scale, int batch, int channels,
                                                           int height, int width, int pooled_height,
                                                           int pooled_width, int sampling_ratio,
                                                           int n) {
  ElementSource<T> e;
  e.pw = static_cast<int>(index % pooled_width);
  e.ph = static_cast<int>((index / pooled_width) % pooled_height);
  const int c = static_cast<int>((index / pooled_width / pooled_height) % channels);
  const int64_t k = index / pooled_width / pooled_height / channels;
  const T* roi = rois + 6 * k;
  e.g = geom::make_roi_geometry<T>(roi, spatial_scale, pooled_height, pooled_width, sampling_ratio,
                                   batch);
  const auto shift = geom::orientation_shift<T>(roi[5], n);
  const int field = c - c % n;
  const int j0 = (c % n + shift.first) % n;
  const int j1 = (j0 + 1) % n;
  const int64_t image = static_cast<int64_t>(e.g.batch) * channels;
  e.plane0 = (image + field + j0) * height * width;
  e.plane1 = (image + field + j1) * height * width;
  e.frac = shift.frac;
  return e;
}

template <typename T>
__global__ void ri_roi_align_rotated_forward_kernel(const T* input, const T* rois, int64_t total,
                                                    T spatial_scale, int batch, int channels,
                                                    int height, int width, int pooled_height,
                                                    int pooled_width, int sampling_ratio, int n,
                                                    T* out) {
  const int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (index >= total) return;
  const auto e = element_source<T>(index, rois, spatial_scale, batch, channels, height, width,
                                   pooled_height, pooled_width, sampling_ratio, n);
  if (!e.g.valid) {
    out[index] = T(0);
    return;
  }
  const T* p0 = input + e.plane0;
  const T* p1 = input + e.plane1;
  const bool both = e.frac != T(0) && e.plane1 != e.plane0;
  int64_t idx[4];
  T wt[4];
  T sum0 = T(0), sum1 = T(0);
  for (int iy = 0; iy < e.g.grid_h; ++iy) {
    for (int ix = 0; ix < e.g.grid_w; ++ix) {
      T y, x;
      geom::roi_sample_point(e.g, e.ph, e.pw, iy, ix, &y, &x);
      if (!geom::bilinear_taps(y, x, height, width, idx, wt)) continue;
      sum0 += wt[0] * p0[idx[0]] + wt[1] * p0[idx[1]] + wt[2] * p0[idx[2]] + wt[3] * p0[idx[3]];
      if (both) {
        sum1 += wt[0] * p1[idx[0]] + wt[1] * p1[idx[1]] + wt[2] * p1[idx[2]] + wt[3] * p1[idx[3]];
      }
    }
  }
  const T v0 = sum0 / e.g.count;
  out[index] = both ? v0 + e.frac * (sum1 / e.g.count - v0) : v0;
}

template <typename T>
__global__ void ri_roi_align_rotated_backward_kernel(const T* grad, const T* rois, int64_t total,
                                                     T spatial_scale, int batch, int channels,
                                                     int height, int width, int pooled_height,
                                                     int pooled_width, int sampling_ratio, int n,
                                                     T* grad_input) {
  const int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (index >= total) return;
  const auto e = element_source<T>(index, rois, spatial_scale, batch, channels, height, width,
                                   pooled_height, pooled_width, sampling_ratio, n);
  if (!e.g.valid) return;
  T* p0 = grad_input + e.plane0;
  T* p1 = grad_input + e.plane1;
  const bool both = e.frac != T(0) && e.plane1 != e.plane0;
  const T gv = grad[index] / e.g.count;
  const T g0 = both ? gv * (T(1) - e.frac) : gv;
  const T g1 = gv * e.frac;
  int64_t idx[4];
  T wt[4];
  for (int iy = 0; iy < e.g.grid_h; ++iy) {
    for (int ix = 0; ix < e.g.grid_w; ++ix) {
      T y, x;
      geom::roi_sample_point(e.g, e.ph, e.pw, iy, ix, &y, &x);
      if (!geom::bilinear_taps(y, x, height, width, idx, wt)) continue;
      for (int q = 0; q < 4; ++q) atomicAdd(p0 + idx[q], wt[q] * g0);
      if (both) {
        for (int q = 0; q < 4; ++q) atomicAdd(p1 + idx[q], wt[q] * g1);
      }
    }
  }
}

inline unsigned int blocks_for(int64_t n) {
  return static_cast<unsigned int>((n + kThreads - 1) / kThreads);
}

at::Tensor ri_roi_align_rotated_forward_cuda(const at::Tensor& input, const at::Tensor& rois,
                                             double spatial_scale, int64_t pooled_height,
                                             int64_t pooled_width, int64_t sampling_ratio,
                                             int64_t num_orientations, bool clockwise) {
  check_ri_roi_align_args(input, rois, pooled_height, pooled_width, num_orientations);
  const c10::cuda::CUDAGuard guard(input.device());
  auto in = input.contiguous();
  auto r = counter_clockwise_rois(rois, clockwise);
  auto out = at::zeros({r.size(0), in.size(1), pooled_height, pooled_width}, in.options());
  const int64_t total = out.numel();
  if (total == 0 || in.numel() == 0) return out;
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(in.scalar_type(), "ri_roi_align_rotated_forward_cuda", [&] {
    ri_roi_align_rotated_forward_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream>>>(
        in.data_ptr<scalar_t>(), r.data_ptr<scalar_t>(), total,
        static_cast<scalar_t>(spatial_scale), static_cast<int>(in.size(0)),
        static_cast<int>(in.size(1)), static_cast<int>(in.size(2)), static_cast<int>(in.size(3)),
        static_cast<int>(pooled_height), static_cast<int>(pooled_width),
        static_cast<int>(sampling_ratio), static_cast<int>(num_orientations),
        out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor ri_roi_align_rotated_backward_cuda(const at::Tensor& grad, const at::Tensor& rois,
                                              double spatial_scale, int64_t pooled_height,
                                              int64_t pooled_width, int64_t batch_size,
                                              int64_t channels, int64_t height, int64_t width,
                                              int64_t sampling_ratio, int64_t num_orientations,
                                              bool clockwise) {
  check_rois(rois);
  TORCH_CHECK(grad.dim() == 4 && grad.size(0) == rois.size(0) && grad.size(1) == channels &&
                  grad.size(2) == pooled_height && grad.size(3) == pooled_width,
              "grad must have shape [K, C, pooled_height, pooled_width], got ", grad.sizes());
  TORCH_CHECK(grad.scalar_type() == rois.scalar_type(), "rois must have the dtype of grad");
  TORCH_CHECK(num_orientations > 0 && channels % num_orientations == 0,
              "num_orientations must be positive and divide channels (", channels, "), got ",
              num_orientations);
  const c10::cuda::CUDAGuard guard(grad.device());
  auto g = grad.contiguous();
  auto r = counter_clockwise_rois(rois, clockwise);
  auto grad_input = at::zeros({batch_size, channels, height, width}, g.options());
  const int64_t total = g.numel();
  if (total == 0 || grad_input.numel() == 0) return grad_input;
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "ri_roi_align_rotated_backward_cuda", [&] {
    ri_roi_align_rotated_backward_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream>>>(
        g.data_ptr<scalar_t>(), r.data_ptr<scalar_t>(), total, static_cast<scalar_t>(spatial_scale),
        static_cast<int>(batch_size), static_cast<int>(channels), static_cast<int>(height),
        static_cast<int>(width), static_cast<int>(pooled_height), static_cast<int>(pooled_width),
        static_cast<int>(sampling_ratio), static_cast<int>(num_orientations),
        grad_input.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_input;
}

}  // namespace

TORCH_LIBRARY_IMPL(rotated_det, CUDA, m) {
  m.impl("ri_roi_align_rotated_forward", &ri_roi_align_rotated_forward_cuda);
  m.impl("ri_roi_align_rotated_backward", &ri_roi_align_rotated_backward_cuda);
}

}  // namespace rotated_det
