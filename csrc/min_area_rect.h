// The discrete part of the minimum-area rotated rectangle of a point set, shared by the CPU and
// the CUDA kernels of rotated_det::min_area_rect_pair: which pair of points (i, j) gives the
// direction of the rectangle's side. The rectangle itself is computed from that pair in Python
// (rotated_det/structures/rotated_box_conversions.py), where autograd differentiates it.
//
// The same candidates, formulas and tie rule as the vectorised torch formulation in that module
// (`_min_area_pair` up to kAllPairsMaxK points, `_hull_pair` above), so that both choose the same
// pair except where candidate areas are within rounding of the tie tolerance:
//   * up to kAllPairsMaxK points, every pair (i, j), i < j, in the order (0, 1), (0, 2), ...;
//   * above, for each point i the point j at the counter-clockwise-most ray of its view of the
//     others (rotating calipers' hull edges, without building the hull), in coordinates relative
//     to the points' mean;
//   * the area of the rectangle along d = p_j - p_i enclosing all points is
//     (extent along d) * (extent across d) / |d|^2 with both extents scaled by |d|; NaN (d = 0, or
//     NaN input) never wins;
//   * the winner is the first candidate pair, in the order (min(i, j), max(i, j)), whose area is
//     within a relative `tol` of the minimum; (0, 1) when no candidate has a finite area.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "rotated_geometry.h"

namespace rotated_det {
namespace min_area {

// Up to this many points every pair is a candidate (the torch formulation's _ALL_PAIRS_MAX_K).
constexpr int kAllPairsMaxK = 8;
// Largest number of points per set the kernels take (their per-set arrays live on the stack).
constexpr int kMaxPoints = 64;

// Integer type as wide as T, so that index selections vectorise with T's comparisons.
template <typename T>
struct SameWidthInt {
  using type = int64_t;
};
template <>
struct SameWidthInt<float> {
  using type = int32_t;
};

// Chooses the pair (i < j) for L point sets at once ("lanes"): the loops over lanes are the
// innermost ones, with no branches, so that the CPU kernel's compiler vectorises them across sets
// (the CUDA kernel runs one set per thread, L = 1).
//   x, y: [k * L] coordinates, point m of lane l at m * L + l; 2 <= k <= kMaxPoints;
//   tol: relative tie tolerance; out_i, out_j: [L] results.
// The projections are written as separate products and sums, as the torch formulation computes
// them (no contraction into fused multiply-adds: none is enabled on the CPU).
template <typename T, int L>
RD_HOST_DEVICE void choose_pairs(const T* x, const T* y, int k, T tol, int64_t* out_i,
                                 int64_t* out_j) {
  using I = typename SameWidthInt<T>::type;
  const T inf = std::numeric_limits<T>::infinity();
  // Candidates c: their area per lane (NaN -> inf) and key min(i, j) * k + max(i, j) per lane.
  // There are at most kAllPairsMaxK (kAllPairsMaxK - 1) / 2 = 28 pairs, or k hull-edge ones.
  static_assert(kAllPairsMaxK * (kAllPairsMaxK - 1) / 2 <= kMaxPoints, "candidate arrays");
  T cand_area[kMaxPoints * L];
  I cand_key[kMaxPoints * L];
  int n_cand = 0;
  // Extents along (dx, dy) and across it of the points relative to (ox, oy), both scaled by |d|,
  // turned into the area (s_ext * q_ext / |d|^2) of candidate c; NaN (d = 0, NaN input) -> inf.
  auto add_candidate = [&](const T* px, const T* py, const T* ox, const T* oy, const T* dx,
                           const T* dy, const I* key) {
    T s_min[L], s_max[L], q_min[L], q_max[L], bad[L];
    for (int l = 0; l < L; ++l) {
      s_min[l] = inf;
      s_max[l] = -inf;
      q_min[l] = inf;
      q_max[l] = -inf;
      bad[l] = 0;
    }
    for (int m = 0; m < k; ++m) {
      for (int l = 0; l < L; ++l) {
        const T rx = px[m * L + l] - ox[l], ry = py[m * L + l] - oy[l];
        const T a = rx * dx[l], b = ry * dy[l];
        const T s = a + b;
        const T c = ry * dx[l], e = rx * dy[l];
        const T q = c - e;
        bad[l] = (s != s || q != q) ? static_cast<T>(1) : bad[l];
        s_min[l] = s < s_min[l] ? s : s_min[l];
        s_max[l] = s > s_max[l] ? s : s_max[l];
        q_min[l] = q < q_min[l] ? q : q_min[l];
        q_max[l] = q > q_max[l] ? q : q_max[l];
      }
    }
    for (int l = 0; l < L; ++l) {
      const T dxx = dx[l] * dx[l], dyy = dy[l] * dy[l];
      const T nn = dxx + dyy;
      const T ext = (s_max[l] - s_min[l]) * (q_max[l] - q_min[l]);
      const T area = ext / nn;  // 0 / 0 = NaN where d = 0
      cand_area[n_cand * L + l] = (bad[l] != 0 || area != area) ? inf : area;
      cand_key[n_cand * L + l] = key[l];
    }
    ++n_cand;
  };
  T ox[L], oy[L], dx[L], dy[L];
  I key[L];
  if (k <= kAllPairsMaxK) {
    for (int i = 0; i < k; ++i) {
      for (int j = i + 1; j < k; ++j) {
        for (int l = 0; l < L; ++l) {
          ox[l] = x[i * L + l];
          oy[l] = y[i * L + l];
          dx[l] = x[j * L + l] - ox[l];
          dy[l] = y[j * L + l] - oy[l];
          key[l] = static_cast<I>(i * k + j);
        }
        add_candidate(x, y, ox, oy, dx, dy, key);
      }
    }
  } else {
    // coordinates relative to the mean of each set
    T cx[kMaxPoints * L], cy[kMaxPoints * L], nrm[kMaxPoints * L];
    T mx[L], my[L];
    for (int l = 0; l < L; ++l) mx[l] = my[l] = 0;
    for (int m = 0; m < k; ++m) {
      for (int l = 0; l < L; ++l) {
        mx[l] += x[m * L + l];
        my[l] += y[m * L + l];
      }
    }
    for (int l = 0; l < L; ++l) {
      mx[l] /= static_cast<T>(k);
      my[l] /= static_cast<T>(k);
      ox[l] = oy[l] = 0;
    }
    for (int m = 0; m < k * L; ++m) {
      const int l = m % L;
      cx[m] = x[m] - mx[l];
      cy[m] = y[m] - my[l];
      const T xx = cx[m] * cx[m], yy = cy[m] * cy[m];
      nrm[m] = xx + yy;
    }
    for (int i = 0; i < k; ++i) {
      // j at the largest pseudo-angle of p_j - p_i from r_i = -p_i (towards the mean): the
      // pseudo-angle 1 - dot / (|dot| + |crs|), negated where crs < 0, increases with the angle
      // atan2(crs, dot) on (-180, 180]; NaN (p_j = p_i, or p_i at the mean) is -inf. The first
      // largest wins.
      T best[L];
      I best_j[L];
      for (int l = 0; l < L; ++l) {
        best[l] = -inf;
        best_j[l] = 0;
      }
      for (int j = 0; j < k; ++j) {
        for (int l = 0; l < L; ++l) {
          const T xi = cx[i * L + l], yi = cy[i * L + l], xj = cx[j * L + l], yj = cy[j * L + l];
          const T xi_xj = xi * xj, yi_yj = yi * yj;
          const T dot = nrm[i * L + l] - (xi_xj + yi_yj);
          const T yi_xj = yi * xj, xi_yj = xi * yj;
          const T crs = yi_xj - xi_yj;
          const T r = dot / (std::fabs(dot) + std::fabs(crs));
          const T sign = crs >= 0 ? static_cast<T>(1) : static_cast<T>(-1);
          const T ang = (static_cast<T>(1) - r) * sign;
          // (an all-ones mask where better, false for NaN: a select on the bool does not
          // vectorise)
          const I better = -static_cast<I>(ang > best[l]);
          best[l] = ang > best[l] ? ang : best[l];
          best_j[l] = (static_cast<I>(j) & better) | (best_j[l] & ~better);
        }
      }
      for (int l = 0; l < L; ++l) {
        const int j = static_cast<int>(best_j[l]);
        dx[l] = cx[j * L + l] - cx[i * L + l];
        dy[l] = cy[j * L + l] - cy[i * L + l];
        key[l] = static_cast<I>(i < j ? i * k + j : j * k + i);
      }
      add_candidate(cx, cy, ox, oy, dx, dy, key);
    }
  }
  // The first candidate (smallest key) within tol of the smallest area; (0, 1) when none is
  // finite.
  T limit[L];
  I best_key[L];
  for (int l = 0; l < L; ++l) {
    limit[l] = inf;
    best_key[l] = static_cast<I>(k * k);
  }
  for (int c = 0; c < n_cand; ++c) {
    for (int l = 0; l < L; ++l) {
      const T a = cand_area[c * L + l];
      limit[l] = a < limit[l] ? a : limit[l];
    }
  }
  for (int l = 0; l < L; ++l) limit[l] = limit[l] * (static_cast<T>(1) + tol);
  for (int c = 0; c < n_cand; ++c) {
    for (int l = 0; l < L; ++l) {
      const T a = cand_area[c * L + l];
      const I ck = cand_key[c * L + l];
      const I take = -static_cast<I>(a <= limit[l] && a != inf && ck < best_key[l]);
      best_key[l] = (ck & take) | (best_key[l] & ~take);
    }
  }
  for (int l = 0; l < L; ++l) {
    const I key = best_key[l] == static_cast<I>(k * k) ? static_cast<I>(1) : best_key[l];
    out_i[l] = key / k;
    out_j[l] = key % k;
  }
}

}  // namespace min_area
}  // namespace rotated_det
