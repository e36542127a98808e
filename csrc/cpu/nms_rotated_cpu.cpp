// CPU kernels of rotated_det::nms_rotated and rotated_det::batched_nms_rotated.
//
// Greedy NMS by decreasing score (stable order; NaN scores rank last). A kept box suppresses a later
// box when their IoU, rounded to the input dtype, is > iou_threshold -- the same value
// box_iou_rotated returns. Most candidate pairs are rejected without polygon clipping by exact
// upper bounds on the IoU: the area ratio min/max (IoU <= min(a1, a2) / max(a1, a2)) and the
// overlap of the axis-aligned bounding boxes (intersection <= AABB overlap area). Both are
// computed in float64 and used with a margin far above their rounding error, so the result is the
// same as testing every pair.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "checks.h"
#include "rotated_geometry.h"

namespace rotated_det {

using geom::RBox;

namespace {

// Indices of the boxes by decreasing score, ties by index; NaN scores last.
at::Tensor score_order(const at::Tensor& scores) {
  const double inf = std::numeric_limits<double>::infinity();
  auto clean = at::nan_to_num(scores, -inf, inf, -inf);
  return std::get<1>(clean.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
}

template <typename scalar_t>
at::Tensor nms_kernel(const at::Tensor& dets, const at::Tensor& scores, const int64_t* labels,
                      double iou_threshold) {
  const int64_t n = dets.size(0);
  const at::Tensor order_t = score_order(scores);
  const int64_t* order = order_t.data_ptr<int64_t>();
  const scalar_t* p = dets.data_ptr<scalar_t>();

  // Boxes in score order, with the numbers the rejection tests read stored contiguously.
  std::vector<RBox<double>> box(n);
  std::vector<double> x0(n), x1(n), y0(n), y1(n), area(n);
  std::vector<int64_t> label(n, 0);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  at::parallel_for(0, n, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const RBox<double> b = geom::make_rbox<double>(p + 5 * order[k]);
      box[k] = b;
      if (labels != nullptr) label[k] = labels[order[k]];
      if (!b.valid) {  // NaN bounds: every test below rejects the box.
        x0[k] = x1[k] = y0[k] = y1[k] = area[k] = nan;
        continue;
      }
      // Half extents of the axis-aligned bounding box, inflated far above their rounding error.
      const double ex = (std::fabs(b.hw * b.c) + std::fabs(b.hh * b.s)) * (1.0 + 1e-12);
      const double ey = (std::fabs(b.hw * b.s) + std::fabs(b.hh * b.c)) * (1.0 + 1e-12);
      x0[k] = b.cx - ex;
      x1[k] = b.cx + ex;
      y0[k] = b.cy - ey;
      y1[k] = b.cy + ey;
      area[k] = b.area;
    }
  });

  const double t = iou_threshold;
  const scalar_t t_cast = static_cast<scalar_t>(iou_threshold);
  // Rejection margin on the IoU scale; the bounds are exact up to ~1e-15 relative.
  const double margin = 1e-9;
  std::vector<uint8_t> removed(n, 0);
  std::vector<int64_t> keep;
  keep.reserve(std::min<int64_t>(n, 4096));

  auto suppress_range = [&](int64_t i, int64_t begin, int64_t end) {
    const RBox<double>& bi = box[i];
    const double ax0 = x0[i], ax1 = x1[i], ay0 = y0[i], ay1 = y1[i], ai = area[i];
    const int64_t li = label[i];
    for (int64_t j = begin; j < end; ++j) {
      if (removed[j] || label[j] != li) continue;
      const double ox = std::min(ax1, x1[j]) - std::max(ax0, x0[j]);
      const double oy = std::min(ay1, y1[j]) - std::max(ay0, y0[j]);
      if (!(ox > 0.0 && oy > 0.0)) continue;  // also rejects NaN boxes
      const double aj = area[j];
      const double small = std::min(ai, aj), large = std::max(ai, aj);
      const double ub = std::min(ox * oy, small);  // upper bound of the intersection
      if (ub / (ai + aj - ub) < t - margin) continue;
      if (small / large < t - margin) continue;
      const double iou = geom::overlap(bi, box[j], 0);
      if (static_cast<scalar_t>(iou) > t_cast) removed[j] = 1;
    }
  };

  for (int64_t i = 0; i < n; ++i) {
    if (removed[i]) continue;
    keep.push_back(order[i]);
    if (!box[i].valid) continue;  // boxes with NaN/inf values or empty area suppress nothing
    const int64_t rest = n - i - 1;
    if (rest > 8192) {
      at::parallel_for(i + 1, n, 4096, [&](int64_t begin, int64_t end) {
        suppress_range(i, begin, end);
      });
    } else {
      suppress_range(i, i + 1, n);
    }
  }
  auto out = at::empty({static_cast<int64_t>(keep.size())}, dets.options().dtype(at::kLong));
  std::copy(keep.begin(), keep.end(), out.data_ptr<int64_t>());
  return out;
}

at::Tensor nms_impl(const at::Tensor& dets, const at::Tensor& scores, const at::Tensor* idxs,
                    double iou_threshold) {
  check_nms_args(dets, scores, iou_threshold);
  if (dets.size(0) == 0) return at::empty({0}, dets.options().dtype(at::kLong));
  auto d = dets.contiguous();
  auto s = scores.contiguous();
  at::Tensor labels;
  if (idxs != nullptr) labels = idxs->to(at::kLong).contiguous();
  const int64_t* lp = idxs != nullptr ? labels.data_ptr<int64_t>() : nullptr;
  at::Tensor out;
  AT_DISPATCH_FLOATING_TYPES(d.scalar_type(), "nms_rotated_cpu",
                             [&] { out = nms_kernel<scalar_t>(d, s, lp, iou_threshold); });
  return out;
}

at::Tensor nms_rotated_cpu(const at::Tensor& dets, const at::Tensor& scores,
                           double iou_threshold) {
  return nms_impl(dets, scores, nullptr, iou_threshold);
}

at::Tensor batched_nms_rotated_cpu(const at::Tensor& dets, const at::Tensor& scores,
                                   const at::Tensor& idxs, double iou_threshold) {
  TORCH_CHECK(idxs.dim() == 1 && idxs.size(0) == dets.size(0),
              "idxs must have shape [N] with N = dets.size(0) = ", dets.size(0), ", got ",
              idxs.sizes());
  TORCH_CHECK(!at::isFloatingType(idxs.scalar_type()) && idxs.scalar_type() != at::kBool,
              "idxs must be an integer tensor, got ", idxs.scalar_type());
  return nms_impl(dets, scores, &idxs, iou_threshold);
}

}  // namespace

TORCH_LIBRARY_IMPL(rotated_det, CPU, m) {
  m.impl("nms_rotated", &nms_rotated_cpu);
  m.impl("batched_nms_rotated", &batched_nms_rotated_cpu);
}

}  // namespace rotated_det
