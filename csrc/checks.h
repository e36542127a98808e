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

}  // namespace rotated_det
