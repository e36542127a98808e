// CPU kernels of rotated_det::nms_rotated and rotated_det::batched_nms_rotated.
//
// Greedy NMS by decreasing score (stable order; NaN scores rank last). A kept box suppresses a
// later box when their IoU, rounded to the input dtype, is > iou_threshold -- the same value
// box_iou_rotated returns. Most candidate pairs are rejected without polygon clipping by exact
// upper bounds on the intersection (overlap of the bounding boxes in the image frame, then in the
// frame of the kept box, and the smaller area), computed in float64 and used with a margin far
// above their rounding error, so the result is the same as testing every pair.
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

// A box in score order with the numbers the rejection tests read.
struct NmsBox {
  RBox<double> b;
  double x0, x1, y0, y1;  // axis-aligned bounding box (NaN for invalid boxes)
  int64_t label;
};

// Rejection margin on the IoU scale; the bounds below are exact up to ~1e-15 relative.
constexpr double kMargin = 1e-9;
// Inflation of bounding boxes, far above their rounding error.
constexpr double kInflate = 1.0 + 1e-12;

// Whether kept box k suppresses box j. Exact: the cheap tests only skip pairs whose IoU is
// provably below the threshold, the others get the same IoU as box_iou_rotated(k, j).
template <typename scalar_t>
inline bool suppresses(const NmsBox& k, const NmsBox& j, double t, scalar_t t_cast) {
  if (k.label != j.label) return false;
  // 1. Bounding boxes in the image frame (NaN boxes fail here).
  const double ox = std::min(k.x1, j.x1) - std::max(k.x0, j.x0);
  const double oy = std::min(k.y1, j.y1) - std::max(k.y0, j.y0);
  if (!(ox > 0.0 && oy > 0.0)) return false;
  const double ak = k.b.area, aj = j.b.area;
  const double tm = t - kMargin;
  // IoU <= ub / (ak + aj - ub) for any upper bound ub of the intersection.
  double ub = std::min(ox * oy, std::min(ak, aj));
  if (ub < tm * (ak + aj - ub)) return false;
  // 2. Bounding box of j in the frame of k, against k itself.
  const double dx = j.b.cx - k.b.cx, dy = j.b.cy - k.b.cy;
  const double px = dx * k.b.c - dy * k.b.s;
  const double py = dx * k.b.s + dy * k.b.c;
  const double cr = std::fabs(j.b.c * k.b.c + j.b.s * k.b.s);
  const double sr = std::fabs(j.b.s * k.b.c - j.b.c * k.b.s);
  const double ex = (j.b.hw * cr + j.b.hh * sr) * kInflate;
  const double ey = (j.b.hw * sr + j.b.hh * cr) * kInflate;
  const double fx = std::min(k.b.hw, px + ex) - std::max(-k.b.hw, px - ex);
  const double fy = std::min(k.b.hh, py + ey) - std::max(-k.b.hh, py - ey);
  if (!(fx > 0.0 && fy > 0.0)) return false;
  ub = std::min(ub, fx * fy);
  if (ub < tm * (ak + aj - ub)) return false;
  // 3. The exact IoU, rounded to the input dtype as box_iou_rotated returns it.
  return static_cast<scalar_t>(geom::overlap(k.b, j.b, 0)) > t_cast;
}

// float(v) rounded towards -inf / +inf (NaN stays NaN; out-of-range values become +-inf).
inline float round_down(double v) {
  const float f = static_cast<float>(v);
  return static_cast<double>(f) > v ? std::nextafter(f, -std::numeric_limits<float>::infinity())
                                    : f;
}
inline float round_up(double v) {
  const float f = static_cast<float>(v);
  return static_cast<double>(f) < v ? std::nextafter(f, std::numeric_limits<float>::infinity()) : f;
}

// Greedy NMS, per category (batched form), in blocks: the first kBlock boxes still alive are
// resolved serially among themselves, then the boxes kept among them suppress all later alive boxes
// in parallel (each later box runs a vectorised float prefilter against all of them, then the exact
// test on the few that pass, stopping at its first suppressor), and the alive list is compacted.
//
// Invariant, at the top of each pass of the `while` loop over one category's `alive` list:
//   (a) `alive` holds, in score order, exactly the boxes of the category not yet decided (every
//       other box is in `keep` or was suppressed), and
//   (b) no box in `alive` is suppressed by any box kept so far.
// By (b), a head box needs testing only against the boxes kept before it in the same block, so the
// serial scan of the head decides each box as the textbook loop does (keep j iff no kept box
// earlier in score order suppresses it). The parallel pass then restores (b) for the rest: every
// remaining box is tested against every box kept in this block, and the prefilter (float copies
// rounded outwards, a lowered threshold, non-finite values forced through) never drops a pair that
// `suppresses` accepts. Each thread writes only the `removed` flags of its own boxes, and the
// compaction keeps the order, which restores (a). The result is therefore that of the O(n^2)
// serial greedy loop, whatever kBlock and the thread count.
template <typename scalar_t>
at::Tensor nms_kernel(const at::Tensor& dets, const at::Tensor& scores, const int64_t* labels,
                      double iou_threshold) {
  constexpr int64_t kBlock = 128;
  const int64_t n = dets.size(0);
  const at::Tensor order_t = score_order(scores);
  const int64_t* order = order_t.data_ptr<int64_t>();
  const scalar_t* p = dets.data_ptr<scalar_t>();

  std::vector<NmsBox> box(n);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  at::parallel_for(0, n, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      NmsBox& e = box[k];
      e.b = geom::make_rbox<double>(p + 5 * order[k]);
      e.label = labels != nullptr ? labels[order[k]] : 0;
      if (!e.b.valid) {
        e.x0 = e.x1 = e.y0 = e.y1 = nan;
        continue;
      }
      const double ex = (std::fabs(e.b.hw * e.b.c) + std::fabs(e.b.hh * e.b.s)) * kInflate;
      const double ey = (std::fabs(e.b.hw * e.b.s) + std::fabs(e.b.hh * e.b.c)) * kInflate;
      e.x0 = e.b.cx - ex;
      e.x1 = e.b.cx + ex;
      e.y0 = e.b.cy - ey;
      e.y1 = e.b.cy + ey;
    }
  });

  const double t = iou_threshold;
  const scalar_t t_cast = static_cast<scalar_t>(iou_threshold);
  // Categories are independent: each one is run on its own (boxes in score order), which
  // skips all cross-category pairs, and the kept positions are merged back in score order.
  std::vector<std::vector<int64_t>> groups;
  if (labels == nullptr) {
    groups.emplace_back(n);
    for (int64_t k = 0; k < n; ++k) groups[0][k] = k;
  } else {
    std::vector<int64_t> by_label(n);
    for (int64_t k = 0; k < n; ++k) by_label[k] = k;
    std::stable_sort(by_label.begin(), by_label.end(),
                     [&](int64_t a, int64_t b) { return box[a].label < box[b].label; });
    for (int64_t k = 0; k < n; ++k) {
      if (k == 0 || box[by_label[k]].label != box[by_label[k - 1]].label) groups.emplace_back();
      groups.back().push_back(by_label[k]);
    }
  }
  std::vector<uint8_t> removed(n, 0);
  std::vector<int64_t> keep, block_kept;
  std::vector<float> kx0(kBlock), kx1(kBlock), ky0(kBlock), ky1(kBlock), karea(kBlock);
  std::vector<int64_t> klabel(kBlock);
  std::vector<uint8_t> kforce(kBlock);
  // Threshold of the float prefilter, lowered far below its rounding error (~1e-6).
  const float tf = static_cast<float>(std::max(0.0, iou_threshold - 1e-4));

  for (std::vector<int64_t>& alive : groups) {
    while (!alive.empty()) {
      const int64_t head = std::min<int64_t>(kBlock, alive.size());
      block_kept.clear();
      for (int64_t a = 0; a < head; ++a) {
        const int64_t j = alive[a];
        bool hit = false;
        for (const int64_t k : block_kept) {
          if (suppresses<scalar_t>(box[k], box[j], t, t_cast)) {
            hit = true;
            break;
          }
        }
        if (hit) continue;
        keep.push_back(j);
        if (box[j].b.valid) block_kept.push_back(j);  // invalid boxes suppress nothing
      }
      const int64_t rest = static_cast<int64_t>(alive.size()) - head;
      if (!block_kept.empty() && rest > 0) {
        // Float copies of the first test's numbers for the kept boxes of this block, rounded
        // outwards, so that the vectorised prefilter below only rejects pairs that the exact test
        // would reject too.
        const int64_t nk = static_cast<int64_t>(block_kept.size());
        for (int64_t m = 0; m < nk; ++m) {
          const NmsBox& k = box[block_kept[m]];
          kx0[m] = round_down(k.x0);
          kx1[m] = round_up(k.x1);
          ky0[m] = round_down(k.y0);
          ky1[m] = round_up(k.y1);
          karea[m] = round_up(k.b.area);
          klabel[m] = k.label;
          // Beyond float range the prefilter cannot decide; send such pairs to the exact test.
          kforce[m] = !(std::isfinite(kx0[m]) && std::isfinite(kx1[m]) && std::isfinite(ky0[m]) &&
                        std::isfinite(ky1[m]) && std::isfinite(karea[m]));
        }
        at::parallel_for(head, head + rest, 1024, [&](int64_t begin, int64_t end) {
          uint8_t pass[kBlock];
          for (int64_t a = begin; a < end; ++a) {
            const int64_t j = alive[a];
            const NmsBox& bj = box[j];
            const float jx0 = round_down(bj.x0), jx1 = round_up(bj.x1);
            const float jy0 = round_down(bj.y0), jy1 = round_up(bj.y1);
            const float ja = round_up(bj.b.area);
            const int64_t jl = bj.label;
            const bool jforce =
                bj.b.valid && !(std::isfinite(jx0) && std::isfinite(jx1) && std::isfinite(jy0) &&
                                std::isfinite(jy1) && std::isfinite(ja));
            int any = 0;
            for (int64_t m = 0; m < nk; ++m) {
              const float ox = std::min(kx1[m], jx1) - std::max(kx0[m], jx0);
              const float oy = std::min(ky1[m], jy1) - std::max(ky0[m], jy0);
              const float ub = std::min(ox * oy, std::min(karea[m], ja)) * 1.0001f;
              const bool near = (ox > 0.f) & (oy > 0.f) & (ub >= tf * (karea[m] + ja - ub));
              const bool ok = (near | (kforce[m] != 0) | jforce) & (klabel[m] == jl);
              pass[m] = ok;
              any |= ok;
            }
            if (!any) continue;
            for (int64_t m = 0; m < nk; ++m) {
              if (pass[m] && suppresses<scalar_t>(box[block_kept[m]], bj, t, t_cast)) {
                removed[j] = 1;
                break;
              }
            }
          }
        });
      }
      int64_t w = 0;
      for (int64_t a = head; a < head + rest; ++a) {
        if (!removed[alive[a]]) alive[w++] = alive[a];
      }
      alive.resize(w);
    }
  }
  std::sort(keep.begin(), keep.end());  // positions in score order
  auto out = at::empty({static_cast<int64_t>(keep.size())}, dets.options().dtype(at::kLong));
  int64_t* o = out.data_ptr<int64_t>();
  for (size_t q = 0; q < keep.size(); ++q) o[q] = order[keep[q]];
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

at::Tensor nms_rotated_cpu(const at::Tensor& dets, const at::Tensor& scores, double iou_threshold) {
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
