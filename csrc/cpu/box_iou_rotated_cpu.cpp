// CPU kernel of rotated_det::box_iou_rotated. Geometry is computed in float64 whatever the input
// dtype, then rounded to it. Pairs whose bounding circles are disjoint are skipped (IoU 0), which
// for typical detection workloads leaves only a few percent of the pairs for polygon clipping.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <limits>
#include <vector>

#include "checks.h"
#include "rotated_geometry.h"

namespace rotated_det {

using geom::RBox;

namespace {

template <typename scalar_t>
std::vector<RBox<double>> prepare(const at::Tensor& boxes) {
  const int64_t n = boxes.size(0);
  std::vector<RBox<double>> out(n);
  const scalar_t* p = boxes.data_ptr<scalar_t>();
  at::parallel_for(0, n, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = geom::make_rbox<double>(p + 5 * i);
  });
  return out;
}

template <typename scalar_t>
void pairwise(const at::Tensor& boxes1, const at::Tensor& boxes2, int mode, at::Tensor& out) {
  const auto a = prepare<scalar_t>(boxes1);
  const auto b = prepare<scalar_t>(boxes2);
  const int64_t n = a.size(), m = b.size();
  // Struct-of-arrays copy of what the rejection test reads; invalid boxes get a NaN centre, which
  // the test rejects.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> bx(m), by(m), br(m);
  for (int64_t j = 0; j < m; ++j) {
    bx[j] = b[j].valid ? b[j].cx : nan;
    by[j] = b[j].cy;
    br[j] = b[j].radius;
  }
  scalar_t* o = out.data_ptr<scalar_t>();
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(m, 1));
  at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const RBox<double>& bi = a[i];
      if (!bi.valid) continue;
      scalar_t* row = o + i * m;
      const double x = bi.cx, y = bi.cy, r = bi.radius;
      for (int64_t j = 0; j < m; ++j) {
        const double dx = bx[j] - x, dy = by[j] - y, rs = br[j] + r;
        if (!(dx * dx + dy * dy <= rs * rs)) continue;
        row[j] = static_cast<scalar_t>(geom::overlap(bi, b[j], mode));
      }
    }
  });
}

template <typename scalar_t>
void aligned(const at::Tensor& boxes1, const at::Tensor& boxes2, int mode, at::Tensor& out) {
  const scalar_t* p1 = boxes1.data_ptr<scalar_t>();
  const scalar_t* p2 = boxes2.data_ptr<scalar_t>();
  scalar_t* o = out.data_ptr<scalar_t>();
  at::parallel_for(0, boxes1.size(0), 2048, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const auto a = geom::make_rbox<double>(p1 + 5 * i);
      const auto b = geom::make_rbox<double>(p2 + 5 * i);
      o[i] = static_cast<scalar_t>(geom::overlap(a, b, mode));
    }
  });
}

at::Tensor box_iou_rotated_cpu(const at::Tensor& boxes1, const at::Tensor& boxes2, int64_t mode,
                               bool is_aligned) {
  check_boxes(boxes1, "boxes1");
  check_boxes(boxes2, "boxes2");
  TORCH_CHECK(boxes1.scalar_type() == boxes2.scalar_type(),
              "boxes1 and boxes2 must have the same dtype, got ", boxes1.scalar_type(), " and ",
              boxes2.scalar_type());
  TORCH_CHECK(mode == 0 || mode == 1, "mode must be 0 (iou) or 1 (iof), got ", mode);
  auto b1 = boxes1.contiguous();
  auto b2 = boxes2.contiguous();
  at::Tensor out;
  if (is_aligned) {
    TORCH_CHECK(b1.size(0) == b2.size(0), "aligned IoU needs as many boxes in boxes1 as in boxes2",
                ", got ", b1.size(0), " and ", b2.size(0));
    out = at::zeros({b1.size(0)}, b1.options());
    if (b1.size(0) == 0) return out;
    AT_DISPATCH_FLOATING_TYPES(b1.scalar_type(), "box_iou_rotated_cpu",
                               [&] { aligned<scalar_t>(b1, b2, static_cast<int>(mode), out); });
  } else {
    out = at::zeros({b1.size(0), b2.size(0)}, b1.options());
    if (out.numel() == 0) return out;
    AT_DISPATCH_FLOATING_TYPES(b1.scalar_type(), "box_iou_rotated_cpu",
                               [&] { pairwise<scalar_t>(b1, b2, static_cast<int>(mode), out); });
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(rotated_det, CPU, m) {
  m.impl("box_iou_rotated", &box_iou_rotated_cpu);
}

}  // namespace rotated_det
