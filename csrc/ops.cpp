// Operator schemas of the rotated_det library. Kernels are registered per backend in csrc/cpu and
// csrc/cuda. There are no Python bindings: the library is loaded with torch.ops.load_library (from
// Python) or dlopen/torch::jit (from C++), and the ops are reached as torch.ops.rotated_det.<name>.
#include <torch/library.h>

TORCH_LIBRARY(rotated_det, m) {
  // boxes1 [N, 5], boxes2 [M, 5] (cx, cy, w, h, angle_deg) -> [N, M], or [N] when aligned.
  // mode 0: IoU, 1: IoF (intersection over the area of the box from boxes1).
  m.def("box_iou_rotated(Tensor boxes1, Tensor boxes2, int mode=0, bool aligned=False) -> Tensor");
  // dets [N, 5], scores [N] -> int64 indices of the kept boxes, by decreasing score.
  m.def("nms_rotated(Tensor dets, Tensor scores, float iou_threshold) -> Tensor");
  // As nms_rotated, but boxes only suppress boxes with the same idxs value (category).
  m.def(
      "batched_nms_rotated(Tensor dets, Tensor scores, Tensor idxs, float iou_threshold) "
      "-> Tensor");
  // input [N, C, H, W], rois [K, 6] (batch_idx, cx, cy, w, h, angle_deg) -> [K, C, ph, pw].
  m.def(
      "roi_align_rotated_forward(Tensor input, Tensor rois, float spatial_scale, "
      "int pooled_height, int pooled_width, int sampling_ratio) -> Tensor");
  // grad [K, C, ph, pw] -> gradient of the input [batch_size, channels, height, width].
  m.def(
      "roi_align_rotated_backward(Tensor grad, Tensor rois, float spatial_scale, "
      "int pooled_height, int pooled_width, int batch_size, int channels, int height, int width, "
      "int sampling_ratio) -> Tensor");
  // Rotation-invariant RoIAlign (ReDet): input [N, C, H, W] with C = fields * num_orientations
  // (orientation the fast axis), rois [K, 6] -> [K, C, ph, pw], each field's orientation channels
  // shifted by the RoI's angle (clockwise: angles are clockwise-positive, MMCV's flag).
  m.def(
      "ri_roi_align_rotated_forward(Tensor input, Tensor rois, float spatial_scale, "
      "int pooled_height, int pooled_width, int sampling_ratio, int num_orientations, "
      "bool clockwise) -> Tensor");
  // grad [K, C, ph, pw] -> gradient of the input [batch_size, channels, height, width].
  m.def(
      "ri_roi_align_rotated_backward(Tensor grad, Tensor rois, float spatial_scale, "
      "int pooled_height, int pooled_width, int batch_size, int channels, int height, int width, "
      "int sampling_ratio, int num_orientations, bool clockwise) -> Tensor");
  // points [N, K, 2] (2 <= K <= 64) -> int64 [N, 2]: the pair (i, j), i < j, of points whose
  // direction is a side of each set's minimum-area enclosing rectangle; ties within a relative
  // tol of the smallest area go to the first pair in the order (0, 1), (0, 2), ... (see
  // min_area_rect.h). Not differentiable (a discrete choice).
  m.def("min_area_rect_pair(Tensor points, float tol) -> Tensor");
  // points [N, K, 2] (1 <= K <= 64), polygons [G, M, 2] (convex, vertices in order, either
  // orientation, 1 <= M <= 64) -> [N, G] IoU of each point set's convex hull with each polygon,
  // or [N] of aligned pairs. Non-finite sets or polygons and hulls without area give 0.
  // Computed in float64, returned in the input dtype. Not differentiable.
  m.def("convex_overlaps(Tensor points, Tensor polygons, bool aligned=False) -> Tensor");
}
