// Host-side argument checks and RoI preparation shared by the CPU and CUDA entry points of
// rotated_det::ri_roi_align_rotated_forward / _backward (the orientation alignment itself is
// geom::orientation_shift in rotated_geometry.h).
#pragma once

#include <ATen/ATen.h>

#include "checks.h"

namespace rotated_det {

inline void check_ri_roi_align_args(const at::Tensor& input, const at::Tensor& rois,
                                    int64_t pooled_height, int64_t pooled_width,
                                    int64_t num_orientations) {
  TORCH_CHECK(input.dim() == 4, "input must have shape [N, C, H, W], got ", input.sizes());
  check_rois(rois);
  TORCH_CHECK(input.scalar_type() == at::kFloat || input.scalar_type() == at::kDouble,
              "input must be float32 or float64, got ", input.scalar_type());
  TORCH_CHECK(rois.scalar_type() == input.scalar_type(), "rois must have the dtype of input (",
              input.scalar_type(), "), got ", rois.scalar_type());
  TORCH_CHECK(rois.device() == input.device(), "rois must be on the device of input (",
              input.device(), "), got ", rois.device());
  TORCH_CHECK(pooled_height > 0 && pooled_width > 0, "output size must be positive, got ",
              pooled_height, "x", pooled_width);
  TORCH_CHECK(num_orientations > 0 && input.size(1) % num_orientations == 0,
              "num_orientations must be positive and divide the channels of input (", input.size(1),
              "), got ", num_orientations);
}

// The rois as a contiguous tensor whose angles are counter-clockwise on screen: with
// clockwise=true (MMCV's flag, angles clockwise-positive) the angle column is negated.
inline at::Tensor counter_clockwise_rois(const at::Tensor& rois, bool clockwise) {
  if (!clockwise) return rois.contiguous();
  at::Tensor ccw = rois.clone(at::MemoryFormat::Contiguous);
  ccw.select(1, 5).neg_();
  return ccw;
}

}  // namespace rotated_det
