// Argument checks shared by the CPU and CUDA entry points (host code only).
#pragma once

#include <ATen/ATen.h>

namespace rotated_det {

inline void check_boxes(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.dim() == 2 && t.size(1) == 5, name,
              " must have shape [N, 5] (cx, cy, w, h, angle_deg), got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, name,
              " must be float32 or float64, got ", t.scalar_type());
}

inline void check_rois(const at::Tensor& rois) {
  TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 6,
              "rois must have shape [K, 6] (batch_idx, cx, cy, w, h, angle_deg), got ",
              rois.sizes());
}

inline void check_nms_args(const at::Tensor& dets, const at::Tensor& scores, double thr) {
  check_boxes(dets, "dets");
  TORCH_CHECK(scores.dim() == 1 && scores.size(0) == dets.size(0),
              "scores must have shape [N] with N = dets.size(0) = ", dets.size(0), ", got ",
              scores.sizes());
  TORCH_CHECK(scores.scalar_type() == dets.scalar_type(), "scores must have the dtype of dets (",
              dets.scalar_type(), "), got ", scores.scalar_type());
  TORCH_CHECK(thr >= 0.0 && thr <= 1.0, "iou_threshold must be in [0, 1], got ", thr);
}

inline void check_point_sets(const at::Tensor& points, int64_t max_points) {
  TORCH_CHECK(points.dim() == 3 && points.size(2) == 2 && points.size(1) >= 2 &&
                  points.size(1) <= max_points,
              "points must have shape [N, K, 2] with 2 <= K <= ", max_points, ", got ",
              points.sizes());
  TORCH_CHECK(points.scalar_type() == at::kFloat || points.scalar_type() == at::kDouble,
              "points must be float32 or float64, got ", points.scalar_type());
}

inline void check_convex_overlaps_args(const at::Tensor& points, const at::Tensor& polygons,
                                       bool aligned, int64_t max_points, int64_t max_vertices) {
  TORCH_CHECK(points.dim() == 3 && points.size(2) == 2 && points.size(1) >= 1 &&
                  points.size(1) <= max_points,
              "points must have shape [N, K, 2] with 1 <= K <= ", max_points, ", got ",
              points.sizes());
  TORCH_CHECK(polygons.dim() == 3 && polygons.size(2) == 2 && polygons.size(1) >= 1 &&
                  polygons.size(1) <= max_vertices,
              "polygons must have shape [G, M, 2] with 1 <= M <= ", max_vertices, ", got ",
              polygons.sizes());
  TORCH_CHECK(points.scalar_type() == at::kFloat || points.scalar_type() == at::kDouble,
              "points must be float32 or float64, got ", points.scalar_type());
  TORCH_CHECK(polygons.scalar_type() == points.scalar_type(),
              "polygons must have the dtype of points (", points.scalar_type(), "), got ",
              polygons.scalar_type());
  TORCH_CHECK(!aligned || points.size(0) == polygons.size(0),
              "aligned overlaps need as many point sets as polygons, got ", points.size(0), " and ",
              polygons.size(0));
}

}  // namespace rotated_det
