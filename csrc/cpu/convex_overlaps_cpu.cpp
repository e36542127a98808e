// CPU kernel of rotated_det::convex_overlaps: hulls and polygons prepared once (in float64), then
// the pairs in a parallel loop; pairs whose bounding boxes are disjoint are skipped (IoU 0).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "checks.h"
#include "convex_overlaps.h"

namespace rotated_det {

namespace {

using convex::Point;
using convex::Prepared;

struct PreparedSets {
  std::vector<Prepared<double>> info;
  std::vector<Point<double>> verts;  // [count, stride]
  int stride;
};

template <typename scalar_t>
PreparedSets prepare_all(const at::Tensor& t, bool hull) {
  const int64_t n = t.size(0);
  const int k = static_cast<int>(t.size(1));
  PreparedSets out{std::vector<Prepared<double>>(n), std::vector<Point<double>>(n * (k + 1)),
                   k + 1};
  const scalar_t* p = t.data_ptr<scalar_t>();
  at::parallel_for(0, n, 256, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      out.info[i] = convex::prepare<double>(p + i * 2 * k, k, hull, &out.verts[i * out.stride]);
    }
  });
  return out;
}

template <typename scalar_t>
void overlaps(const at::Tensor& points, const at::Tensor& polygons, bool is_aligned,
              at::Tensor& out) {
  const PreparedSets a = prepare_all<scalar_t>(points, true);
  const PreparedSets b = prepare_all<scalar_t>(polygons, false);
  const int64_t n = points.size(0), g = polygons.size(0);
  scalar_t* o = out.data_ptr<scalar_t>();
  auto iou = [&](int64_t i, int64_t j) {
    return static_cast<scalar_t>(
        convex::pair_iou(a.info[i], &a.verts[i * a.stride], b.info[j], &b.verts[j * b.stride]));
  };
  if (is_aligned) {
    at::parallel_for(0, n, 256, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) o[i] = iou(i, i);
    });
    return;
  }
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(g, 1));
  at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      for (int64_t j = 0; j < g; ++j) o[i * g + j] = iou(i, j);
    }
  });
}

at::Tensor convex_overlaps_cpu(const at::Tensor& points, const at::Tensor& polygons,
                               bool is_aligned) {
  check_convex_overlaps_args(points, polygons, is_aligned, convex::kMaxPoints,
                             convex::kMaxVertices);
  auto p = points.contiguous();
  auto q = polygons.contiguous();
  auto out = is_aligned ? at::zeros({p.size(0)}, p.options())
                        : at::zeros({p.size(0), q.size(0)}, p.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "convex_overlaps_cpu",
                             [&] { overlaps<scalar_t>(p, q, is_aligned, out); });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(rotated_det, CPU, m) {
  m.impl("convex_overlaps", &convex_overlaps_cpu);
}

}  // namespace rotated_det
