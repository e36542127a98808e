// Convex polygons for the CPU and CUDA kernels of rotated_det::convex_overlaps: the convex hull of
// a point set (Andrew's monotone chain), Sutherland-Hodgman clipping of a convex polygon by
// another, and the IoU of a point set's hull with a convex polygon. Header-only host/device code,
// computed in double by the kernels.
#pragma once

#include <cmath>

#include "rotated_geometry.h"

namespace rotated_det {
namespace convex {

using geom::Point;
using geom::twice_signed_area;

// Largest number of points per set and of vertices per polygon the kernels take (their
// per-thread arrays live on the stack).
constexpr int kMaxPoints = 64;
constexpr int kMaxVertices = 64;
// Vertices of an intersection: at most one per edge of both polygons.
constexpr int kMaxClipped = kMaxPoints + kMaxVertices;

template <typename T>
RD_HOST_DEVICE T cross(const Point<T>& o, const Point<T>& a, const Point<T>& b) {
  return (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x);
}

// Convex hull of the n points `in` (n <= kMaxPoints), written to `hull` (room for n + 1) with a
// positive signed area, collinear and repeated points dropped; returns its vertex count (1 or 2
// for identical or collinear points, 0 for none). `sorted` is scratch room for n points.
template <typename T>
RD_HOST_DEVICE int convex_hull(const Point<T>* in, int n, Point<T>* sorted, Point<T>* hull) {
  for (int i = 0; i < n; ++i) {  // insertion sort by (x, y): n is small
    const Point<T> p = in[i];
    int j = i;
    while (j > 0 && (sorted[j - 1].x > p.x || (sorted[j - 1].x == p.x && sorted[j - 1].y > p.y))) {
      sorted[j] = sorted[j - 1];
      --j;
    }
    sorted[j] = p;
  }
  if (n < 3) {
    for (int i = 0; i < n; ++i) hull[i] = sorted[i];
    return (n == 2 && sorted[0].x == sorted[1].x && sorted[0].y == sorted[1].y) ? 1 : n;
  }
  int h = 0;
  for (int i = 0; i < n; ++i) {  // lower chain
    while (h >= 2 && cross(hull[h - 2], hull[h - 1], sorted[i]) <= T(0)) --h;
    hull[h++] = sorted[i];
  }
  for (int i = n - 2, lower = h + 1; i >= 0; --i) {  // upper chain
    while (h >= lower && cross(hull[h - 2], hull[h - 1], sorted[i]) <= T(0)) --h;
    hull[h++] = sorted[i];
  }
  return h - 1;  // the last point repeats the first
}

// The part of the convex polygon `subject` (n vertices) inside the convex polygon `clip` (m
// vertices in order, either orientation; zero-length edges cut nothing). Uses `a` and `b`
// (kMaxClipped each) as buffers; returns the vertex count and sets *out to the buffer holding
// the result.
template <typename T>
RD_HOST_DEVICE int clip_convex(const Point<T>* subject, int n, const Point<T>* clip, int m,
                               Point<T>* a, Point<T>* b, const Point<T>** out) {
  const T orientation = twice_signed_area(clip, m) < T(0) ? T(-1) : T(1);
  for (int i = 0; i < n; ++i) a[i] = subject[i];
  Point<T>* cur = a;
  Point<T>* next = b;
  for (int e = 0; e < m && n > 0; ++e) {
    const Point<T>& c0 = clip[e];
    const Point<T>& c1 = clip[(e + 1 == m) ? 0 : e + 1];
    if (c0.x == c1.x && c0.y == c1.y) continue;
    int k = 0;
    for (int i = 0; i < n; ++i) {
      const Point<T>& p = cur[i];
      const Point<T>& q = cur[(i + 1 == n) ? 0 : i + 1];
      const T dp = orientation * cross(c0, c1, p);  // >= 0: inside
      const T dq = orientation * cross(c0, c1, q);
      if (dp >= T(0)) next[k++] = p;
      if ((dp >= T(0)) != (dq >= T(0))) {
        const T t = dp / (dp - dq);
        next[k++] = {p.x + t * (q.x - p.x), p.y + t * (q.y - p.y)};
      }
    }
    n = k;
    Point<T>* tmp = cur;
    cur = next;
    next = tmp;
  }
  *out = cur;
  return n;
}

// IoU of a convex hull (h vertices, positive orientation, area `hull_area`) with a convex polygon
// (m vertices, area `poly_area`), both relative to the same origin. 0 when either has no area.
template <typename T>
RD_HOST_DEVICE T hull_polygon_iou(const Point<T>* hull, int h, T hull_area, const Point<T>* poly,
                                  int m, T poly_area) {
  if (h < 3 || !(hull_area > T(0)) || !(poly_area > T(0))) return T(0);
  Point<T> a[kMaxClipped], b[kMaxClipped];
  const Point<T>* inter_poly = nullptr;
  const int k = clip_convex(hull, h, poly, m, a, b, &inter_poly);
  if (k < 3) return T(0);
  T inter = geom::polygon_area(inter_poly, k);
  inter = fmin(inter, fmin(hull_area, poly_area));
  return inter / (hull_area + poly_area - inter);
}

}  // namespace convex
}  // namespace rotated_det
