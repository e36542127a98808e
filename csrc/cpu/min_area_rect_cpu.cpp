// CPU kernel of rotated_det::min_area_rect_pair: blocks of sets in a parallel loop, the sets of a
// block in the lanes of min_area::choose_pairs (min_area_rect.h has the algorithm).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "checks.h"
#include "min_area_rect.h"

namespace rotated_det {

namespace {

// Sets per call of min_area::choose_pairs: 64 bytes of floats or doubles (four SSE2 registers:
// the build targets baseline x86-64), so that its lane loops vectorise.
template <typename scalar_t>
constexpr int kLanes = 64 / sizeof(scalar_t);

template <typename scalar_t>
void choose_pairs(const at::Tensor& points, double tol, at::Tensor& out) {
  constexpr int L = kLanes<scalar_t>;
  const int64_t n = points.size(0);
  const int k = static_cast<int>(points.size(1));
  const scalar_t* p = points.data_ptr<scalar_t>();
  int64_t* o = out.data_ptr<int64_t>();
  const auto t = static_cast<scalar_t>(tol);
  const int64_t blocks = (n + L - 1) / L;
  at::parallel_for(0, blocks, 64, [&](int64_t begin, int64_t end) {
    // lane-major coordinates of one block of sets (the last block repeats its last set)
    scalar_t x[min_area::kMaxPoints * L], y[min_area::kMaxPoints * L];
    int64_t bi[L], bj[L];
    for (int64_t b = begin; b < end; ++b) {
      const int64_t first = b * L;
      const int count = static_cast<int>(std::min<int64_t>(L, n - first));
      for (int l = 0; l < L; ++l) {
        const scalar_t* ps = p + (first + std::min(l, count - 1)) * 2 * k;
        for (int m = 0; m < k; ++m) {
          x[m * L + l] = ps[2 * m];
          y[m * L + l] = ps[2 * m + 1];
        }
      }
      min_area::choose_pairs<scalar_t, L>(x, y, k, t, bi, bj);
      for (int l = 0; l < count; ++l) {
        o[2 * (first + l)] = bi[l];
        o[2 * (first + l) + 1] = bj[l];
      }
    }
  });
}

at::Tensor min_area_rect_pair_cpu(const at::Tensor& points, double tol) {
  check_point_sets(points, min_area::kMaxPoints);
  auto pts = points.contiguous();
  auto out = at::empty({pts.size(0), 2}, pts.options().dtype(at::kLong));
  if (pts.size(0) == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(pts.scalar_type(), "min_area_rect_pair_cpu",
                             [&] { choose_pairs<scalar_t>(pts, tol, out); });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(rotated_det, CPU, m) {
  m.impl("min_area_rect_pair", &min_area_rect_pair_cpu);
}

}  // namespace rotated_det
