// CUDA kernels of rotated_det::roi_align_rotated_forward / _backward: one thread per output
// element, the sampling of rotated_geometry.h (the same as the CPU kernels) on the NCHW map. The
// backward pass adds into the input gradient with atomicAdd.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "checks.h"
#include "rotated_geometry.h"

namespace rotated_det {

namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void roi_align_rotated_forward_kernel(const T* input, const T* rois, int64_t total,
                                                 T spatial_scale, int batch, int channels,
                                                 int height, int width, int pooled_height,
                                                 int pooled_width, int sampling_ratio, T* out) {
  const int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (index >= total) return;
  const int pw = static_cast<int>(index % pooled_width);
  const int ph = static_cast<int>((index / pooled_width) % pooled_height);
  const int64_t c = (index / pooled_width / pooled_height) % channels;
  const int64_t k = index / pooled_width / pooled_height / channels;
  const auto g = geom::make_roi_geometry<T>(rois + 6 * k, spatial_scale, pooled_height,
                                            pooled_width, sampling_ratio, batch);
  if (!g.valid) {
    out[index] = T(0);
    return;
  }
  const T* plane = input + (g.batch * static_cast<int64_t>(channels) + c) * height * width;
  int64_t idx[4];
  T wt[4];
  T sum = T(0);
  for (int iy = 0; iy < g.grid_h; ++iy) {
    for (int ix = 0; ix < g.grid_w; ++ix) {
      T y, x;
      geom::roi_sample_point(g, ph, pw, iy, ix, &y, &x);
      if (!geom::bilinear_taps(y, x, height, width, idx, wt)) continue;
      sum += wt[0] * plane[idx[0]] + wt[1] * plane[idx[1]] + wt[2] * plane[idx[2]] +
             wt[3] * plane[idx[3]];
    }
  }
  out[index] = sum / g.count;
}

template <typename T>
__global__ void roi_align_rotated_backward_kernel(const T* grad, const T* rois, int64_t total,
                                                  T spatial_scale, int batch, int channels,
                                                  int height, int width, int pooled_height,
                                                  int pooled_width, int sampling_ratio,
                                                  T* grad_input) {
  const int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (index >= total) return;
  const int pw = static_cast<int>(index % pooled_width);
  const int ph = static_cast<int>((index / pooled_width) % pooled_height);
  const int64_t c = (index / pooled_width / pooled_height) % channels;
  const int64_t k = index / pooled_width / pooled_height / channels;
  const auto g = geom::make_roi_geometry<T>(rois + 6 * k, spatial_scale, pooled_height,
                                            pooled_width, sampling_ratio, batch);
  if (!g.valid) return;
  T* plane = grad_input + (g.batch * static_cast<int64_t>(channels) + c) * height * width;
  const T gv = grad[index] / g.count;
  int64_t idx[4];
  T wt[4];
  for (int iy = 0; iy < g.grid_h; ++iy) {
    for (int ix = 0; ix < g.grid_w; ++ix) {
      T y, x;
      geom::roi_sample_point(g, ph, pw, iy, ix, &y, &x);
      if (!geom::bilinear_taps(y, x, height, width, idx, wt)) continue;
      for (int q = 0; q < 4; ++q) atomicAdd(plane + idx[q], wt[q] * gv);
    }
  }
}

inline unsigned int blocks_for(int64_t n) {
  return static_cast<unsigned int>((n + kThreads - 1) / kThreads);
}

at::Tensor roi_align_rotated_forward_cuda(const at::Tensor& input, const at::Tensor& rois,
                                          double spatial_scale, int64_t pooled_height,
                                          int64_t pooled_width, int64_t sampling_ratio) {
  TORCH_CHECK(input.dim() == 4, "input must have shape [N, C, H, W], got ", input.sizes());
  check_rois(rois);
  TORCH_CHECK(input.scalar_type() == at::kFloat || input.scalar_type() == at::kDouble,
              "input must be float32 or float64, got ", input.scalar_type());
  TORCH_CHECK(rois.scalar_type() == input.scalar_type(), "rois must have the dtype of input");
  TORCH_CHECK(pooled_height > 0 && pooled_width > 0, "output size must be positive");
  const c10::cuda::CUDAGuard guard(input.device());
  auto in = input.contiguous();
  auto r = rois.contiguous();
  auto out = at::zeros({r.size(0), in.size(1), pooled_height, pooled_width}, in.options());
  const int64_t total = out.numel();
  if (total == 0 || in.numel() == 0) return out;
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(in.scalar_type(), "roi_align_rotated_forward_cuda", [&] {
    roi_align_rotated_forward_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream>>>(
        in.data_ptr<scalar_t>(), r.data_ptr<scalar_t>(), total,
        static_cast<scalar_t>(spatial_scale), static_cast<int>(in.size(0)),
        static_cast<int>(in.size(1)), static_cast<int>(in.size(2)), static_cast<int>(in.size(3)),
        static_cast<int>(pooled_height), static_cast<int>(pooled_width),
        static_cast<int>(sampling_ratio), out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor roi_align_rotated_backward_cuda(const at::Tensor& grad, const at::Tensor& rois,
                                           double spatial_scale, int64_t pooled_height,
                                           int64_t pooled_width, int64_t batch_size,
                                           int64_t channels, int64_t height, int64_t width,
                                           int64_t sampling_ratio) {
  check_rois(rois);
  TORCH_CHECK(grad.dim() == 4 && grad.size(0) == rois.size(0) && grad.size(1) == channels &&
                  grad.size(2) == pooled_height && grad.size(3) == pooled_width,
              "grad must have shape [K, C, pooled_height, pooled_width], got ", grad.sizes());
  TORCH_CHECK(grad.scalar_type() == rois.scalar_type(), "rois must have the dtype of grad");
  const c10::cuda::CUDAGuard guard(grad.device());
  auto g = grad.contiguous();
  auto r = rois.contiguous();
  auto grad_input = at::zeros({batch_size, channels, height, width}, g.options());
  const int64_t total = g.numel();
  if (total == 0 || grad_input.numel() == 0) return grad_input;
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "roi_align_rotated_backward_cuda", [&] {
    roi_align_rotated_backward_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream>>>(
        g.data_ptr<scalar_t>(), r.data_ptr<scalar_t>(), total, static_cast<scalar_t>(spatial_scale),
        static_cast<int>(batch_size), static_cast<int>(channels), static_cast<int>(height),
        static_cast<int>(width), static_cast<int>(pooled_height), static_cast<int>(pooled_width),
        static_cast<int>(sampling_ratio), grad_input.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_input;
}

}  // namespace

TORCH_LIBRARY_IMPL(rotated_det, CUDA, m) {
  m.impl("roi_align_rotated_forward", &roi_align_rotated_forward_cuda);
  m.impl("roi_align_rotated_backward", &roi_align_rotated_backward_cuda);
}

}  // namespace rotated_det
