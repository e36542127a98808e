// Sampling loops shared by the CPU RoIAlign kernels (roi_align_rotated, ri_roi_align_rotated).
//
// Both kernels work on a channels-last copy of the feature map so that each bilinear tap is one
// contiguous run over the channels (vectorised by the compiler). The forward pass pools one RoI at
// a time into a [bins, C] buffer; the backward pass scatters [bins, C] bin gradients back, in
// parallel over channel blocks, so that no two threads ever add into the same gradient element
// (deterministic, no atomics).
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "rotated_geometry.h"

namespace rotated_det {
namespace cpu {

// The channel loops, the hot spots of both passes. On x86-64 with GCC/Clang they are compiled
// for AVX2 as well as for the baseline, and the best version is picked when the library loads.
#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#define RD_MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define RD_MULTIVERSION
#endif

// acc[c] += w0 * p0[c] + w1 * p1[c] + w2 * p2[c] + w3 * p3[c]
template <typename T>
RD_MULTIVERSION void accumulate_taps(T* __restrict acc, const T* __restrict p0,
                                     const T* __restrict p1, const T* __restrict p2,
                                     const T* __restrict p3, T w0, T w1, T w2, T w3, int64_t n) {
  for (int64_t c = 0; c < n; ++c) acc[c] += w0 * p0[c] + w1 * p1[c] + w2 * p2[c] + w3 * p3[c];
}

// dst[c] += w * src[c]
template <typename T>
RD_MULTIVERSION void axpy(T* __restrict dst, const T* __restrict src, T w, int64_t n) {
  for (int64_t c = 0; c < n; ++c) dst[c] += w * src[c];
}

// RoI indices ordered by (batch index, centre y): consecutive RoIs then read nearby rows of the
// feature map, which keeps them in cache (about 1.7x faster on a 2 x 256 x 100 x 100 map).
template <typename T>
std::vector<int64_t> locality_order(const T* rois, int64_t num_rois) {
  std::vector<int64_t> order(num_rois);
  std::vector<double> key(num_rois);
  for (int64_t k = 0; k < num_rois; ++k) {
    order[k] = k;
    const double b = static_cast<double>(rois[6 * k]), y = static_cast<double>(rois[6 * k + 2]);
    // non-finite keys would break the ordering; such RoIs produce nothing anyway
    key[k] = (std::isfinite(b) && std::isfinite(y)) ? b * 1e12 + y : 0.0;
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return key[a] < key[b]; });
  return order;
}

// Visits every bilinear tap of every sample of every bin of one RoI:
// fn(bin_index, offsets_of_the_4_pixels_in_the_image, their_weights, 1 / samples_per_bin).
template <typename T, typename Fn>
void for_each_tap(const geom::RoiGeometry<T>& g, int pooled_height, int pooled_width, int height,
                  int width, Fn fn) {
  int64_t idx[4];
  T wt[4];
  const T inv = T(1) / g.count;
  for (int ph = 0; ph < pooled_height; ++ph) {
    for (int pw = 0; pw < pooled_width; ++pw) {
      const int bin = ph * pooled_width + pw;
      for (int iy = 0; iy < g.grid_h; ++iy) {
        for (int ix = 0; ix < g.grid_w; ++ix) {
          T y, x;
          geom::roi_sample_point(g, ph, pw, iy, ix, &y, &x);
          if (!geom::bilinear_taps(y, x, height, width, idx, wt)) continue;
          fn(bin, idx, wt, inv);
        }
      }
    }
  }
}

// acc [pooled_height * pooled_width, channels] = the bin averages of one valid RoI over the
// channels-last image img [height, width, channels].
template <typename T>
void pool_roi_bins(const geom::RoiGeometry<T>& g, const T* img, int pooled_height, int pooled_width,
                   int height, int width, int64_t channels, T* acc) {
  std::fill(acc, acc + static_cast<int64_t>(pooled_height) * pooled_width * channels, T(0));
  for_each_tap(g, pooled_height, pooled_width, height, width,
               [&](int bin, const int64_t* idx, const T* wt, T inv) {
                 accumulate_taps(acc + bin * channels, img + idx[0] * channels,
                                 img + idx[1] * channels, img + idx[2] * channels,
                                 img + idx[3] * channels, wt[0] * inv, wt[1] * inv, wt[2] * inv,
                                 wt[3] * inv, channels);
               });
}

// The transpose of pool_roi_bins over all RoIs: adds the bin gradients
// bin_grad [num_rois, pooled_height * pooled_width, channels] into
// grad_nhwc [batch_size, height, width, channels]. Parallel over channel blocks.
template <typename T>
void scatter_bin_gradients(const T* bin_grad, const T* rois, int64_t num_rois, T spatial_scale,
                           int pooled_height, int pooled_width, int batch_size, int height,
                           int width, int64_t channels, int sampling_ratio, T* grad_nhwc) {
  const int64_t bins = static_cast<int64_t>(pooled_height) * pooled_width;
  const std::vector<int64_t> order = locality_order(rois, num_rois);
  // Each task owns the channels [c0, c1) of the whole gradient.
  const int64_t grain = std::max<int64_t>(16, channels / (2 * at::get_num_threads()));
  at::parallel_for(0, channels, grain, [&](int64_t c0, int64_t c1) {
    for (int64_t q = 0; q < num_rois; ++q) {
      const int64_t k = order[q];
      const auto g = geom::make_roi_geometry<T>(rois + 6 * k, spatial_scale, pooled_height,
                                                pooled_width, sampling_ratio, batch_size);
      if (!g.valid) continue;
      T* img = grad_nhwc + g.batch * static_cast<int64_t>(height) * width * channels;
      const T* gk = bin_grad + k * bins * channels;
      for_each_tap(g, pooled_height, pooled_width, height, width,
                   [&](int bin, const int64_t* idx, const T* wt, T inv) {
                     const T* gb = gk + bin * channels;
                     for (int t = 0; t < 4; ++t) {
                       axpy(img + idx[t] * channels + c0, gb + c0, wt[t] * inv, c1 - c0);
                     }
                   });
    }
  });
}

}  // namespace cpu
}  // namespace rotated_det
