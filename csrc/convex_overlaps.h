// The per-set and per-polygon preparation and the per-pair IoU of rotated_det::convex_overlaps,
// shared by its CPU and CUDA kernels (convex_polygon.h has the geometry).
#pragma once

#include <cstdint>

#include "convex_polygon.h"

namespace rotated_det {
namespace convex {

// A point set's hull or a polygon, prepared once: vertices (hull: positive orientation; polygon:
// as given), area, bounding box; `valid` is false when a coordinate is not finite.
template <typename T>
struct Prepared {
  int n;
  T area, x0, y0, x1, y1;
  bool valid;
};

// Prepares k points or vertices `in` (interleaved x, y) into `verts` (room for k + 1): their
// convex hull when `hull`, else the polygon as given.
template <typename T, typename In>
RD_HOST_DEVICE Prepared<T> prepare(const In* in, int k, bool hull, Point<T>* verts) {
  Prepared<T> r{0, T(0), T(0), T(0), T(0), T(0), true};
  Point<T> pts[kMaxPoints > kMaxVertices ? kMaxPoints : kMaxVertices];
  for (int i = 0; i < k; ++i) {
    pts[i] = {static_cast<T>(in[2 * i]), static_cast<T>(in[2 * i + 1])};
    r.valid = r.valid && geom::is_finite(pts[i].x) && geom::is_finite(pts[i].y);
  }
  if (!r.valid) return r;
  if (hull) {
    Point<T> scratch[kMaxPoints];
    r.n = convex_hull(pts, k, scratch, verts);
  } else {
    r.n = k;
    for (int i = 0; i < k; ++i) verts[i] = pts[i];
  }
  r.area = geom::polygon_area(verts, r.n);
  r.x0 = r.x1 = verts[0].x;
  r.y0 = r.y1 = verts[0].y;
  for (int i = 1; i < r.n; ++i) {
    r.x0 = fmin(r.x0, verts[i].x);
    r.x1 = fmax(r.x1, verts[i].x);
    r.y0 = fmin(r.y0, verts[i].y);
    r.y1 = fmax(r.y1, verts[i].y);
  }
  return r;
}

// True when the bounding boxes of a and b overlap (touching counts) and both are valid.
template <typename T>
RD_HOST_DEVICE bool may_overlap(const Prepared<T>& a, const Prepared<T>& b) {
  return a.valid && b.valid && a.x0 <= b.x1 && b.x0 <= a.x1 && a.y0 <= b.y1 && b.y0 <= a.y1;
}

// IoU of a prepared hull (vertices `hv`) with a prepared polygon (vertices `pv`), computed with
// coordinates relative to the polygon's first vertex (precision for large coordinates).
template <typename T>
RD_HOST_DEVICE T pair_iou(const Prepared<T>& h, const Point<T>* hv, const Prepared<T>& p,
                          const Point<T>* pv) {
  if (!may_overlap(h, p)) return T(0);
  const Point<T> o = pv[0];
  Point<T> hr[kMaxPoints + 1], pr[kMaxVertices + 1];
  for (int i = 0; i < h.n; ++i) hr[i] = {hv[i].x - o.x, hv[i].y - o.y};
  for (int i = 0; i < p.n; ++i) pr[i] = {pv[i].x - o.x, pv[i].y - o.y};
  return hull_polygon_iou(hr, h.n, h.area, pr, p.n, p.area);
}

}  // namespace convex
}  // namespace rotated_det
