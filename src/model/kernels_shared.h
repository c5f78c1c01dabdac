/* Per-element pieces of the portable kernels that the `cuda` backend's
 * kernels (src/cuda/kernels.cu) run too, compiled there as device code, so
 * that both compute the same thing the same way: the source index of Pad,
 * and one output of the direct 2-D convolution (its sum in double in the
 * order input channel, kernel row, kernel column).
 *
 * Parameters are the plan's (p[] of a CONV2D step, model_impl.h). Hot
 * path: no allocation. */
#ifndef PE_MODEL_KERNELS_SHARED_H
#define PE_MODEL_KERNELS_SHARED_H

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

#endif
