// Geometry of rotated rectangles shared by the CPU and the CUDA kernels.
//
// Box convention (cx, cy, w, h, angle): pixels, angle in degrees, counter-clockwise positive as
// seen on screen (image y axis points down). The box's w-axis points along (cos a, -sin a) in image
// coordinates and its h-axis along (sin a, cos a).
//
// Everything here is a header-only, host/device inline function so that both kernels compute
// bit-for-bit the same formulas. Numerically, the intersection of two boxes is computed in the
// local frame of the second box (centred on it, axes along its sides): the first box's corners are
// expressed relative to that centre, so large absolute coordinates (1e5 px) lose no precision,
// and the clipping planes become x = +-w/2 and y = +-h/2, which the clipped vertices meet exactly.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define RD_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define RD_HOST_DEVICE inline
#endif

namespace rotated_det {
namespace geom {

template <typename T>
struct Point {
  T x, y;
};

// A rotated box prepared for geometry: centre, half sizes, cos/sin of the angle, area and the
// radius of its bounding circle. `valid` is false for boxes with a non-finite value or a
// non-positive side; such boxes have zero area and intersect nothing.
template <typename T>
struct RBox {
  T cx, cy, hw, hh, c, s, area, radius;
  bool valid;
};

template <typename T>
RD_HOST_DEVICE bool is_finite(T v) {
  // v - v is 0 for finite v and NaN for inf/NaN; avoids std::isfinite on the device.
  return (v - v) == (v - v);
}

// sin and cos of an angle in degrees. Multiples of 90 degrees give exact 0 and +-1, so axis-aligned
// boxes are handled exactly. The angle is first reduced to a quadrant plus a remainder of at most
// 45 degrees, which also keeps the argument of sin/cos small for angles far outside [-180, 180].
template <typename T>
RD_HOST_DEVICE void sincos_deg(T deg, T* s, T* c) {
  if (!is_finite(deg)) {
    *s = deg - deg;
    *c = deg - deg;
    return;
  }
  const T r = fmod(deg, T(360));  // (-360, 360)
  const T q = round(r / T(90));   // -4 .. 4
  const T rem = (r - q * T(90)) * T(0.017453292519943295769236907684886);
  const T sr = sin(rem);
  const T cr = cos(rem);
  const int quadrant = ((static_cast<int>(q) % 4) + 4) % 4;
  switch (quadrant) {
    case 0:
      *s = sr;
      *c = cr;
      break;
    case 1:
      *s = cr;
      *c = -sr;
      break;
    case 2:
      *s = -sr;
      *c = -cr;
      break;
    default:
      *s = -cr;
      *c = sr;
      break;
  }
}

// Builds an RBox from the 5 numbers (cx, cy, w, h, angle_deg), reading them as type T.
template <typename T, typename In>
RD_HOST_DEVICE RBox<T> make_rbox(const In* b) {
  RBox<T> r;
  r.cx = static_cast<T>(b[0]);
  r.cy = static_cast<T>(b[1]);
  const T w = static_cast<T>(b[2]);
  const T h = static_cast<T>(b[3]);
  const T a = static_cast<T>(b[4]);
  r.valid = is_finite(r.cx) && is_finite(r.cy) && is_finite(w) && is_finite(h) && is_finite(a) &&
            w > T(0) && h > T(0);
  if (!r.valid) {
    r.cx = r.cy = r.hw = r.hh = r.area = r.radius = r.s = T(0);
    r.c = T(1);
    return r;
  }
  r.hw = w * T(0.5);
  r.hh = h * T(0.5);
  sincos_deg(a, &r.s, &r.c);
  r.area = w * h;
  r.radius = sqrt(r.hw * r.hw + r.hh * r.hh);
  return r;
}

// The 4 corners of a box, in order around the box: centre +- w/2 * (cos a, -sin a) +- h/2 * (sin a,
// cos a).
template <typename T>
RD_HOST_DEVICE void box_corners(const RBox<T>& b, Point<T>* pts) {
  const T ux = b.hw * b.c, uy = -b.hw * b.s;
  const T vx = b.hh * b.s, vy = b.hh * b.c;
  pts[0] = {b.cx + ux + vx, b.cy + uy + vy};
  pts[1] = {b.cx - ux + vx, b.cy - uy + vy};
  pts[2] = {b.cx - ux - vx, b.cy - uy - vy};
  pts[3] = {b.cx + ux - vx, b.cy + uy - vy};
}

// Twice the signed area (shoelace) of a polygon with n vertices in order.
template <typename T>
RD_HOST_DEVICE T twice_signed_area(const Point<T>* p, int n) {
  T twice = T(0);
  for (int i = 0; i < n; ++i) {
    const Point<T>& a = p[i];
    const Point<T>& b = p[(i + 1 == n) ? 0 : i + 1];
    twice += a.x * b.y - a.y * b.x;
  }
  return twice;
}

// Area of a simple polygon with n vertices in order (either orientation).
template <typename T>
RD_HOST_DEVICE T polygon_area(const Point<T>* p, int n) {
  return fabs(twice_signed_area(p, n)) * T(0.5);
}

// One Sutherland-Hodgman step: keeps the part of the convex polygon `in` (n vertices) where
// sign * coordinate[axis] <= limit. Writes at most n + 1 vertices to `out` and returns their
// number. Crossing points get the clipping coordinate exactly (sign * limit).
template <typename T>
RD_HOST_DEVICE int clip_half_plane(const Point<T>* in, int n, Point<T>* out, bool axis_y, T sign,
                                   T limit) {
  int m = 0;
  for (int i = 0; i < n; ++i) {
    const Point<T>& p = in[i];
    const Point<T>& q = in[(i + 1 == n) ? 0 : i + 1];
    const T dp = sign * (axis_y ? p.y : p.x) - limit;  // <= 0: inside
    const T dq = sign * (axis_y ? q.y : q.x) - limit;
    const bool p_in = dp <= T(0);
    const bool q_in = dq <= T(0);
    if (p_in) out[m++] = p;
    if (p_in != q_in) {
      const T t = dp / (dp - dq);  // in [0, 1]; dp != dq here
      Point<T> r;
      if (axis_y) {
        r.x = p.x + t * (q.x - p.x);
        r.y = sign * limit;
      } else {
        r.x = sign * limit;
        r.y = p.y + t * (q.y - p.y);
      }
      out[m++] = r;
    }
  }
  return m;
}

// Area of the intersection of two valid boxes. The first box is clipped against the 4 sides of the
// second, in the second box's frame (see the note at the top of the file).
template <typename T>
RD_HOST_DEVICE T intersection_area(const RBox<T>& a, const RBox<T>& b) {
  const T dx = a.cx - b.cx, dy = a.cy - b.cy;
  // Centre of a in b's frame: projections on b's w-axis (c, -s) and h-axis (s, c).
  const T px = dx * b.c - dy * b.s;
  const T py = dx * b.s + dy * b.c;
  // a's axes in b's frame are those of the relative angle (a.angle - b.angle).
  const T cr = a.c * b.c + a.s * b.s;
  const T sr = a.s * b.c - a.c * b.s;
  const T ux = a.hw * cr, uy = -a.hw * sr;
  const T vx = a.hh * sr, vy = a.hh * cr;
  Point<T> p0[8], p1[8];
  p0[0] = {px + ux + vx, py + uy + vy};
  p0[1] = {px - ux + vx, py - uy + vy};
  p0[2] = {px - ux - vx, py - uy - vy};
  p0[3] = {px + ux - vx, py + uy - vy};
  int n = clip_half_plane(p0, 4, p1, false, T(1), b.hw);
  if (n < 3) return T(0);
  n = clip_half_plane(p1, n, p0, false, T(-1), b.hw);
  if (n < 3) return T(0);
  n = clip_half_plane(p0, n, p1, true, T(1), b.hh);
  if (n < 3) return T(0);
  n = clip_half_plane(p1, n, p0, true, T(-1), b.hh);
  if (n < 3) return T(0);
  return polygon_area(p0, n);
}

// True when the bounding circles of a and b are disjoint (then the boxes cannot overlap). Written
// so that NaN distances count as disjoint.
template <typename T>
RD_HOST_DEVICE bool circles_disjoint(const RBox<T>& a, const RBox<T>& b) {
  const T dx = a.cx - b.cx, dy = a.cy - b.cy;
  const T rs = a.radius + b.radius;
  return !(dx * dx + dy * dy <= rs * rs);
}

// mode 0: intersection over union; mode 1: intersection over the area of `a` (IoF).
// Invalid boxes (non-finite values, non-positive sides) give 0.
template <typename T>
RD_HOST_DEVICE T overlap(const RBox<T>& a, const RBox<T>& b, int mode) {
  if (!a.valid || !b.valid || circles_disjoint(a, b)) return T(0);
  T inter = intersection_area(a, b);
  const T smaller = a.area < b.area ? a.area : b.area;
  if (inter > smaller) inter = smaller;  // rounding can exceed it by an ulp
  if (mode == 1) return inter / a.area;
  const T uni = a.area + b.area - inter;
  return uni > T(0) ? inter / uni : T(0);
}

// ------------------------------------------------------------------------------------------------
// RoIAlignRotated sampling (Detectron2 semantics, "aligned" half-pixel convention).

// Bilinear taps of the feature map (height x width) at continuous position (y, x), where pixel
// centres sit at integer coordinates. Returns false (and no taps) when the point lies outside
// [-1, height] x [-1, width] or is NaN; positions in [-1, 0) are clamped to 0 and positions past
// the last pixel centre use the last row/column only.
template <typename T>
RD_HOST_DEVICE bool bilinear_taps(T y, T x, int height, int width, int64_t* idx, T* wt) {
  if (!(y >= T(-1) && y <= T(height) && x >= T(-1) && x <= T(width))) return false;
  if (y < T(0)) y = T(0);
  if (x < T(0)) x = T(0);
  int y0 = static_cast<int>(y);
  int x0 = static_cast<int>(x);
  int y1, x1;
  if (y0 >= height - 1) {
    y0 = y1 = height - 1;
    y = static_cast<T>(y0);
  } else {
    y1 = y0 + 1;
  }
  if (x0 >= width - 1) {
    x0 = x1 = width - 1;
    x = static_cast<T>(x0);
  } else {
    x1 = x0 + 1;
  }
  const T ly = y - static_cast<T>(y0), lx = x - static_cast<T>(x0);
  const T hy = T(1) - ly, hx = T(1) - lx;
  idx[0] = static_cast<int64_t>(y0) * width + x0;
  idx[1] = static_cast<int64_t>(y0) * width + x1;
  idx[2] = static_cast<int64_t>(y1) * width + x0;
  idx[3] = static_cast<int64_t>(y1) * width + x1;
  wt[0] = hy * hx;
  wt[1] = hy * lx;
  wt[2] = ly * hx;
  wt[3] = ly * lx;
  return true;
}

// Per-RoI sampling parameters. A RoI row is (batch_idx, cx, cy, w, h, angle_deg) in input-image
// pixels; spatial_scale maps them to the feature map. RoIs with a non-finite value or a batch index
// outside [0, batch_size) are marked invalid (their output is 0 and they receive no gradient).
// Negative sizes are clamped to 0 (the RoI degenerates to its centre line or point).
constexpr int kMaxAdaptiveGrid = 256;

template <typename T>
struct RoiGeometry {
  int batch;
  T cx, cy;            // centre in feature-map coordinates, pixel centres at integers
  T c, s;              // cos/sin of the angle
  T start_w, start_h;  // -w/2, -h/2 in feature-map units
  T bin_w, bin_h;      // bin size
  int grid_w, grid_h;  // samples per bin along each side
  T count;             // samples per bin (>= 1), the divisor of the average
  bool valid;
};

template <typename T>
RD_HOST_DEVICE RoiGeometry<T> make_roi_geometry(const T* roi, T spatial_scale, int pooled_height,
                                                int pooled_width, int sampling_ratio,
                                                int batch_size) {
  RoiGeometry<T> g;
  g.valid = false;
  g.batch = 0;
  g.cx = g.cy = g.start_w = g.start_h = g.bin_w = g.bin_h = T(0);
  g.c = T(1);
  g.s = T(0);
  g.grid_w = g.grid_h = 0;
  g.count = T(1);
  for (int i = 0; i < 6; ++i) {
    if (!is_finite(roi[i])) return g;
  }
  if (!(roi[0] >= T(0) && roi[0] < T(batch_size))) return g;
  g.batch = static_cast<int>(roi[0]);
  g.cx = roi[1] * spatial_scale - T(0.5);
  g.cy = roi[2] * spatial_scale - T(0.5);
  T w = roi[3] * spatial_scale;
  T h = roi[4] * spatial_scale;
  if (!is_finite(w) || !is_finite(h) || !is_finite(g.cx) || !is_finite(g.cy)) return g;
  w = w > T(0) ? w : T(0);
  h = h > T(0) ? h : T(0);
  sincos_deg(roi[5], &g.s, &g.c);
  g.bin_w = w / T(pooled_width);
  g.bin_h = h / T(pooled_height);
  g.start_w = -w * T(0.5);
  g.start_h = -h * T(0.5);
  // Adaptive grids are capped at kMaxAdaptiveGrid samples per bin side, so that absurd RoIs
  // (a bin wider than that many feature-map pixels) cannot overflow or run for hours.
  const T gw = ceil(w / T(pooled_width)), gh = ceil(h / T(pooled_height));
  g.grid_w = sampling_ratio > 0
                 ? sampling_ratio
                 : static_cast<int>(gw < T(kMaxAdaptiveGrid) ? gw : T(kMaxAdaptiveGrid));
  g.grid_h = sampling_ratio > 0
                 ? sampling_ratio
                 : static_cast<int>(gh < T(kMaxAdaptiveGrid) ? gh : T(kMaxAdaptiveGrid));
  const int n = g.grid_w * g.grid_h;
  g.count = T(n > 1 ? n : 1);
  g.valid = true;
  return g;
}

// Position (y, x) on the feature map of sample (iy, ix) of bin (ph, pw): a point of the RoI's
// local frame (xx along w, yy along h, origin at the centre) rotated into the image frame.
template <typename T>
RD_HOST_DEVICE void roi_sample_point(const RoiGeometry<T>& g, int ph, int pw, int iy, int ix, T* y,
                                     T* x) {
  const T yy = g.start_h + T(ph) * g.bin_h + (T(iy) + T(0.5)) * g.bin_h / T(g.grid_h);
  const T xx = g.start_w + T(pw) * g.bin_w + (T(ix) + T(0.5)) * g.bin_w / T(g.grid_w);
  *x = xx * g.c + yy * g.s + g.cx;
  *y = yy * g.c - xx * g.s + g.cy;
}

// ------------------------------------------------------------------------------------------------
// Rotation-invariant RoIAlign (ReDet): alignment of the orientation channels to the RoI's angle.
//
// The features hold num_fields regular fields of the cyclic group C_n (n = num_orientations
// channels per field, orientation the fast axis; e2cnn's layout). Rotating the image by
// 360/n degrees counter-clockwise on screen moves the features with the image and rolls each
// field's channels forward by one (channel j -> j + 1 mod n). Aligning a RoI at angle a (degrees,
// counter-clockwise on screen) therefore reads orientation o of the output at the continuous
// orientation position t + o, t = a * n / 360, interpolating linearly between the two
// neighbouring channels:
//   out[o] = (1 - frac) * in[(o + first) mod n] + frac * in[(o + first + 1) mod n],
// first = floor(t) mod n, frac = t - floor(t). The output then no longer changes when the image
// and the RoI rotate together.
template <typename T>
struct OrientationShift {
  int first;  // in [0, n)
  T frac;     // in [0, 1)
};

template <typename T>
RD_HOST_DEVICE OrientationShift<T> orientation_shift(T angle_ccw_deg, int num_orientations) {
  OrientationShift<T> s;
  s.first = 0;
  s.frac = T(0);
  if (!is_finite(angle_ccw_deg)) return s;
  const T n = T(num_orientations);
  // Reducing the angle first keeps t exact for angles far outside [-360, 360].
  T t = fmod(angle_ccw_deg, T(360)) * n / T(360);  // [-n, n] after rounding
  if (t < T(0)) t += n;
  if (t >= n) t -= n;  // a tiny negative t rounds up to n; now t is in [0, n)
  const T first = floor(t);
  s.first = static_cast<int>(first);
  s.frac = t - first;
  return s;
}

}  // namespace geom
}  // namespace rotated_det
