// CPU kernels of rotated_det::ri_roi_align_rotated_forward / _backward (ReDet's rotation-invariant
// RoIAlign): the rotated RoIAlign of roi_sampling_cpu.h followed by the alignment of each field's
// orientation channels to the RoI's angle (geom::orientation_shift).
//
// Forward: parallel over RoIs; each RoI is pooled into a [bins, C] buffer, which is written out
// with its orientation channels shifted and interpolated. Backward: the transpose of the shift is
// applied to the output gradient (parallel over RoIs), then the bin gradients are scattered as in
// roi_align_rotated's backward (parallel over channel blocks, deterministic).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "ri_roi_align_rotated.h"
#include "roi_sampling_cpu.h"
#include "rotated_geometry.h"

namespace rotated_det {

namespace {

// out [C, bins] (one RoI of the output) from the pooled bins acc [bins, C]:
// out[f * n + o, b] = (1 - frac) * acc[b, f * n + (o + first) % n]
//                     + frac * acc[b, f * n + (o + first + 1) % n],
// computed as a0 + frac * (a1 - a0), which is exactly a0 when frac = 0 or n = 1.
template <typename T>
void write_aligned_orientations(const T* acc, const geom::OrientationShift<T>& shift,
                                int64_t channels, int64_t bins, int n, T* out) {
  const T frac = shift.frac;
  for (int64_t field = 0; field < channels; field += n) {
    for (int o = 0; o < n; ++o) {
      const int j0 = (o + shift.first) % n;
      const int j1 = (j0 + 1) % n;
      const T* a0 = acc + field + j0;
      const T* a1 = acc + field + j1;
      T* dst = out + (field + o) * bins;
      for (int64_t b = 0; b < bins; ++b) {
        dst[b] = a0[b * channels] + frac * (a1[b * channels] - a0[b * channels]);
      }
    }
  }
}

// The transpose of write_aligned_orientations: bin_grad [bins, C] from grad [C, bins],
// bin_grad[b, f * n + j] = (1 - frac) * grad[f * n + (j - first) % n, b]
//                          + frac * grad[f * n + (j - first - 1) % n, b] (as a lerp too).
template <typename T>
void aligned_orientations_backward(const T* grad, const geom::OrientationShift<T>& shift,
                                   int64_t channels, int64_t bins, int n, T* bin_grad) {
  const T frac = shift.frac;
  for (int64_t field = 0; field < channels; field += n) {
    for (int j = 0; j < n; ++j) {
      const int o0 = (j - shift.first + n) % n;
      const int o1 = (o0 - 1 + n) % n;
      const T* g0 = grad + (field + o0) * bins;
      const T* g1 = grad + (field + o1) * bins;
      T* dst = bin_grad + field + j;
      for (int64_t b = 0; b < bins; ++b) dst[b * channels] = g0[b] + frac * (g1[b] - g0[b]);
    }
  }
}

at::Tensor ri_roi_align_rotated_forward_cpu(const at::Tensor& input, const at::Tensor& rois,
                                            double spatial_scale, int64_t pooled_height,
                                            int64_t pooled_width, int64_t sampling_ratio,
                                            int64_t num_orientations, bool clockwise) {
  check_ri_roi_align_args(input, rois, pooled_height, pooled_width, num_orientations);
  const int64_t batch = input.size(0), channels = input.size(1);
  const int height = static_cast<int>(input.size(2)), width = static_cast<int>(input.size(3));
  const int64_t num_rois = rois.size(0);
  const int ph_n = static_cast<int>(pooled_height), pw_n = static_cast<int>(pooled_width);
  const int n = static_cast<int>(num_orientations);
  auto output = at::zeros({num_rois, channels, pooled_height, pooled_width}, input.options());
  if (num_rois == 0 || channels == 0 || input.numel() == 0) return output;
  auto nhwc = input.permute({0, 2, 3, 1}).contiguous();  // [N, H, W, C]
  auto rois_c = counter_clockwise_rois(rois, clockwise);
  const int64_t bins = static_cast<int64_t>(ph_n) * pw_n;

  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "ri_roi_align_rotated_forward_cpu", [&] {
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
        const auto shift = geom::orientation_shift<scalar_t>(r[6 * k + 5], n);
        write_aligned_orientations(acc.data(), shift, channels, bins, n, out + k * channels * bins);
      }
    });
  });
  return output;
}

at::Tensor ri_roi_align_rotated_backward_cpu(const at::Tensor& grad, const at::Tensor& rois,
                                             double spatial_scale, int64_t pooled_height,
                                             int64_t pooled_width, int64_t batch_size,
                                             int64_t channels, int64_t height, int64_t width,
                                             int64_t sampling_ratio, int64_t num_orientations,
                                             bool clockwise) {
  check_rois(rois);
  TORCH_CHECK(grad.dim() == 4 && grad.size(0) == rois.size(0) && grad.size(1) == channels &&
                  grad.size(2) == pooled_height && grad.size(3) == pooled_width,
              "grad must have shape [K, C, pooled_height, pooled_width] = [", rois.size(0), ", ",
              channels, ", ", pooled_height, ", ", pooled_width, "], got ", grad.sizes());
  TORCH_CHECK(grad.scalar_type() == rois.scalar_type(), "rois must have the dtype of grad (",
              grad.scalar_type(), "), got ", rois.scalar_type());
  TORCH_CHECK(grad.scalar_type() == at::kFloat || grad.scalar_type() == at::kDouble,
              "grad must be float32 or float64, got ", grad.scalar_type());
  TORCH_CHECK(num_orientations > 0 && channels % num_orientations == 0,
              "num_orientations must be positive and divide channels (", channels, "), got ",
              num_orientations);
  auto grad_nhwc = at::zeros({batch_size, height, width, channels}, grad.options());
  const int64_t num_rois = rois.size(0);
  if (num_rois == 0 || channels == 0 || grad_nhwc.numel() == 0) {
    return grad_nhwc.permute({0, 3, 1, 2}).contiguous();
  }
  const int ph_n = static_cast<int>(pooled_height), pw_n = static_cast<int>(pooled_width);
  const int n = static_cast<int>(num_orientations);
  const int64_t bins = static_cast<int64_t>(ph_n) * pw_n;
  auto grad_c = grad.contiguous();
  auto rois_c = counter_clockwise_rois(rois, clockwise);
  auto bin_grad = at::empty({num_rois, bins, channels}, grad.options());

  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "ri_roi_align_rotated_backward_cpu", [&] {
    const scalar_t* gp = grad_c.data_ptr<scalar_t>();
    const scalar_t* r = rois_c.data_ptr<scalar_t>();
    scalar_t* bg = bin_grad.data_ptr<scalar_t>();
    const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, channels * bins));
    at::parallel_for(0, num_rois, grain, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) {
        const auto shift = geom::orientation_shift<scalar_t>(r[6 * k + 5], n);
        aligned_orientations_backward(gp + k * channels * bins, shift, channels, bins, n,
                                      bg + k * bins * channels);
      }
    });
    cpu::scatter_bin_gradients(bg, r, num_rois, static_cast<scalar_t>(spatial_scale), ph_n, pw_n,
                               static_cast<int>(batch_size), static_cast<int>(height),
                               static_cast<int>(width), channels, static_cast<int>(sampling_ratio),
                               grad_nhwc.data_ptr<scalar_t>());
  });
  return grad_nhwc.permute({0, 3, 1, 2}).contiguous();
}

}  // namespace

TORCH_LIBRARY_IMPL(rotated_det, CPU, m) {
  m.impl("ri_roi_align_rotated_forward", &ri_roi_align_rotated_forward_cpu);
  m.impl("ri_roi_align_rotated_backward", &ri_roi_align_rotated_backward_cpu);
}

}  // namespace rotated_det
