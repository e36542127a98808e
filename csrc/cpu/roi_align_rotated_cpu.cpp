// CPU kernels of rotated_det::roi_align_rotated_forward / _backward (Detectron2 semantics), on
// the channels-last sampling loops of roi_sampling_cpu.h: the forward pass is parallel over RoIs,
// the backward pass over channel blocks (deterministic, no atomics).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "checks.h"
#include "roi_sampling_cpu.h"
#include "rotated_geometry.h"

namespace rotated_det {

namespace {

void check_forward_args(const at::Tensor& input, const at::Tensor& rois, int64_t pooled_height,
                        int64_t pooled_width) {
  TORCH_CHECK(input.dim() == 4, "input must have shape [N, C, H, W], got ", input.sizes());
  check_rois(rois);
  TORCH_CHECK(input.scalar_type() == at::kFloat || input.scalar_type() == at::kDouble,
              "input must be float32 or float64, got ", input.scalar_type());
  TORCH_CHECK(rois.scalar_type() == input.scalar_type(), "rois must have the dtype of input (",
              input.scalar_type(), "), got ", rois.scalar_type());
  TORCH_CHECK(pooled_height > 0 && pooled_width > 0, "output size must be positive, got ",
              pooled_height, "x", pooled_width);
}

at::Tensor roi_align_rotated_forward_cpu(const at::Tensor& input, const at::Tensor& rois,
                                         double spatial_scale, int64_t pooled_height,
                                         int64_t pooled_width, int64_t sampling_ratio) {
  check_forward_args(input, rois, pooled_height, pooled_width);
  const int64_t batch = input.size(0), channels = input.size(1);
  const int height = static_cast<int>(input.size(2)), width = static_cast<int>(input.size(3));
  const int64_t num_rois = rois.size(0);
  const int ph_n = static_cast<int>(pooled_height), pw_n = static_cast<int>(pooled_width);
  auto output = at::zeros({num_rois, channels, pooled_height, pooled_width}, input.options());
  if (num_rois == 0 || channels == 0 || input.numel() == 0) return output;
  auto nhwc = input.permute({0, 2, 3, 1}).contiguous();  // [N, H, W, C]
  auto rois_c = rois.contiguous();
  const int64_t bins = static_cast<int64_t>(ph_n) * pw_n;

  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "roi_align_rotated_forward_cpu", [&] {
    const scalar_t* in = nhwc.data_ptr<scalar_t>();
    const scalar_t* r = rois_c.data_ptr<scalar_t>();
    scalar_t* out = output.data_ptr<scalar_t>();
    const std::vector<int64_t> order = cpu::locality_order(r, num_rois);
    // Small jobs run inline: waking the thread pool costs more than they do.
    const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, channels * bins));
    at::parallel_for(0, num_rois, grain, [&](int64_t begin, int64_t end) {
      std::vector<scalar_t> acc(bins * channels);  // [bins, C] of one RoI
      for (int64_t q = begin; q < end; ++q) {
        const int64_t k = order[q];
        const auto g = geom::make_roi_geometry<scalar_t>(
            r + 6 * k, static_cast<scalar_t>(spatial_scale), ph_n, pw_n,
            static_cast<int>(sampling_ratio), static_cast<int>(batch));
        if (!g.valid) continue;
        const scalar_t* img = in + g.batch * static_cast<int64_t>(height) * width * channels;
        cpu::pool_roi_bins(g, img, ph_n, pw_n, height, width, channels, acc.data());
        scalar_t* o = out + k * channels * bins;
        for (int64_t b = 0; b < bins; ++b) {
          for (int64_t c = 0; c < channels; ++c) o[c * bins + b] = acc[b * channels + c];
        }
      }
    });
  });
  return output;
}

at::Tensor roi_align_rotated_backward_cpu(const at::Tensor& grad, const at::Tensor& rois,
                                          double spatial_scale, int64_t pooled_height,
                                          int64_t pooled_width, int64_t batch_size,
                                          int64_t channels, int64_t height, int64_t width,
                                          int64_t sampling_ratio) {
  check_rois(rois);
  TORCH_CHECK(grad.dim() == 4 && grad.size(0) == rois.size(0) && grad.size(1) == channels &&
                  grad.size(2) == pooled_height && grad.size(3) == pooled_width,
              "grad must have shape [K, C, pooled_height, pooled_width] = [", rois.size(0), ", ",
              channels, ", ", pooled_height, ", ", pooled_width, "], got ", grad.sizes());
  TORCH_CHECK(grad.scalar_type() == rois.scalar_type(), "rois must have the dtype of grad (",
              grad.scalar_type(), "), got ", rois.scalar_type());
  TORCH_CHECK(grad.scalar_type() == at::kFloat || grad.scalar_type() == at::kDouble,
              "grad must be float32 or float64, got ", grad.scalar_type());
  auto grad_nhwc = at::zeros({batch_size, height, width, channels}, grad.options());
  const int64_t num_rois = rois.size(0);
  if (num_rois == 0 || channels == 0 || grad_nhwc.numel() == 0) {
    return grad_nhwc.permute({0, 3, 1, 2}).contiguous();
  }
  const int ph_n = static_cast<int>(pooled_height), pw_n = static_cast<int>(pooled_width);
  const int h = static_cast<int>(height), w = static_cast<int>(width);
  auto g_t = grad.permute({0, 2, 3, 1}).contiguous();  // [K, ph, pw, C]
  auto rois_c = rois.contiguous();

  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "roi_align_rotated_backward_cpu", [&] {
    cpu::scatter_bin_gradients(g_t.data_ptr<scalar_t>(), rois_c.data_ptr<scalar_t>(), num_rois,
                               static_cast<scalar_t>(spatial_scale), ph_n, pw_n,
                               static_cast<int>(batch_size), h, w, channels,
                               static_cast<int>(sampling_ratio), grad_nhwc.data_ptr<scalar_t>());
  });
  return grad_nhwc.permute({0, 3, 1, 2}).contiguous();
}

}  // namespace

TORCH_LIBRARY_IMPL(rotated_det, CPU, m) {
  m.impl("roi_align_rotated_forward", &roi_align_rotated_forward_cpu);
  m.impl("roi_align_rotated_backward", &roi_align_rotated_backward_cpu);
}

}  // namespace rotated_det
