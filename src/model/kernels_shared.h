/* Per-element pieces of the portable kernels that the `cuda` backend's
 * kernels (src/cuda/kernels.cu) run too, compiled there as device code, so
 * that both compute the same thing the same way: the source index of Pad
 * and the taps of a 2-D or 3-D pooling window; and one output of the
 * direct 2-D convolution (its sum in double in the order input channel,
 * kernel row, kernel column), the reference the cuda backend's Conv 2-D
 * (four channels a thread) is checked against (tests/cuda_emu).
 *
 * Parameters are the plan's (p[] of a CONV2D step, model_impl.h). Hot
 * path: no allocation. */
#ifndef PE_MODEL_KERNELS_SHARED_H
#define PE_MODEL_KERNELS_SHARED_H

#include <math.h>
#include <stdint.h>

#include "model/plan_view.h"

#ifdef __CUDACC__
#define PE_KS_FN static __host__ __device__ __forceinline__
#else
#define PE_KS_FN static inline
#endif

/* Source index along an axis of size n for output position i (already
 * less the pad before), or -1 for a constant-padded position; mode a
 * pe_plan_pad_t. */
PE_KS_FN int64_t pe_ks_pad_src(int64_t i, int64_t n, int mode) {
  if (i >= 0 && i < n) {
    return i;
  }
  if (mode == PE_PLAN_PAD_CONSTANT) {
    return -1;
  }
  if (mode == PE_PLAN_PAD_EDGE || n == 1) {
    return i < 0 ? 0 : n - 1;
  }
  const int64_t period = 2 * (n - 1);
  i = i < 0 ? -i : i;
  i %= period;
  return i < n ? i : period - i;
}

/* acc plus the taps of output (oh, ow) of a 2-D convolution with
 * parameters p: x the group's first input channel ([cin/group][H][W]), w
 * the output channel's weights ([cin/group][kh][kw]). */
PE_KS_FN double pe_ks_conv2d_at(const int64_t *p, const float *x,
                                const float *w, double acc, int64_t oh,
                                int64_t ow) {
  const int64_t cin_g = p[0] / p[2], kh = p[3], kw = p[4], sh = p[5];
  const int64_t sw = p[6], dh = p[7], dw = p[8], pt = p[9], pl = p[10];
  const int64_t H = p[11], W = p[12];
  for (int64_t ci = 0; ci < cin_g; ci++) {
    const float *xc = x + ci * H * W;
    for (int64_t i = 0; i < kh; i++) {
      const int64_t ih = oh * sh + i * dh - pt;
      if (ih < 0 || ih >= H) {
        continue;
      }
      for (int64_t j = 0; j < kw; j++) {
        const int64_t iw = ow * sw + j * dw - pl;
        if (iw >= 0 && iw < W) {
          acc += (double)w[(ci * kh + i) * kw + j] * (double)xc[ih * W + iw];
        }
      }
    }
  }
  return acc;
}

/* Taps i in [0, k) of a window starting at padded position o0 (o0 = out
 * * stride - pad) whose position o0 + i dil lies in [0, lim): [*lo, *hi). */
PE_KS_FN void pe_ks_tap_range(int64_t o0, int64_t dil, int64_t k, int64_t lim,
                              int64_t *lo, int64_t *hi) {
  /* dilation 1, the common case, without a division */
  *lo = o0 >= 0 ? 0 : dil == 1 ? -o0 : (-o0 + dil - 1) / dil;
  *hi = lim - 1 - o0 < 0 ? 0 : dil == 1 ? lim - o0 : (lim - 1 - o0) / dil + 1;
  *hi = *hi > k ? k : *hi;
  *lo = *lo > *hi ? *hi : *lo;
}

/* The maximum (is_max) or the sum of the taps [q0, q1) x [i0, i1) x
 * [j0, j1) of a pooling window: tap (q, i, j) at x[at + (q dd H + i dh) W
 * + j dw] (at itself may lie in the padding, so it stays an index). */
PE_KS_FN float pe_ks_pool_taps(const float *x, int64_t at, const int64_t *q,
                               const int64_t *i, const int64_t *j, int64_t dd,
                               int64_t dh, int64_t dw, int64_t H, int64_t W,
                               int is_max) {
  float acc = is_max ? -INFINITY : 0.0f;
  /* two loops, not a choice per tap: the maximum branch-free */
  for (int64_t a = q[0]; a < q[1] && is_max; a++) {
    for (int64_t b = i[0]; b < i[1]; b++) {
      for (int64_t c = j[0]; c < j[1]; c++) {
        const float v = x[at + (a * dd * H + b * dh) * W + c * dw];
        acc = v > acc ? v : acc;
      }
    }
  }
  for (int64_t a = q[0]; a < q[1] && !is_max; a++) {
    for (int64_t b = i[0]; b < i[1]; b++) {
      for (int64_t c = j[0]; c < j[1]; c++) {
        acc += x[at + (a * dd * H + b * dh) * W + c * dw];
      }
    }
  }
  return acc;
}

#endif
