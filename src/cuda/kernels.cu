/* The CUDA kernels of the `cuda` backend: one per step kind, each the
 * plan's portable kernel (src/model/kernels.c) with one thread per output
 * element (PE__CONV_T consecutive outputs for a convolution; for an LSTM
 * one block per window and one thread per gate row, for a GRU one thread
 * per hidden unit; dense layers over many rows as a tiled product; a warp
 * per row of a LayerNorm; the heads of an attention block one thread per
 * query where a head's keys and values fit shared memory, else a warp per
 * query, its projections dense steps), computing what that kernel
 * computes but for the order of its sums: a dense or Conv 1-D output in
 * runs of 32 products in float, those in double, rounded to float once,
 * in every form alike (sums.cuh: a window's scores do not depend on the
 * batch it rides in); Conv 2-D about 16 products at a time in float,
 * those in double; the attention heads in float. Each moves a result by
 * about 1e-7 of its terms' size. Float arithmetic elsewhere with explicit
 * roundings (__fmul_rn, __fadd_rn), so that no fused multiply-add changes
 * it. Transcendental functions (exp, tanh, erf) are CUDA's float ones
 * (within 2 ulp), so those results may differ from the CPU's libm by an
 * ulp or two. Index arithmetic is 32-bit wherever a launch's indices fit
 * (pe__fits32). Nothing here allocates. */
#include <cooperative_groups.h>
#include <cuda_runtime.h>
#include <math.h>
#include <mma.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cuda/kernels.h"
#include "model/kernels_shared.h"
#include "model/plan_view.h"
/* after plan_view.h (the PE_PLAN_ACT_* names) and kernels.h (the stamp
 * slots) */
#include "cuda/act.cuh"
#include "cuda/lstm_rec.cuh"
#include "cuda/persist_proto.cuh"
#include "cuda/rows.cuh"
static_assert(PE__RED_MUL == PE_PLAN_OP_MUL && PE__RED_MIN == PE_PLAN_OP_MIN &&
                  PE__RED_MAX == PE_PLAN_OP_MAX,
              "rows.cuh numbers the reductions' ops as plan_view.h does");

#define PE__THREADS 256

/* Allocations through the functions below, per thread: a run compares the
 * count of its own thread before and after, which another thread (or
 * another model opened meanwhile) does not move. */
static thread_local unsigned long long pe__n_alloc;

__device__ static float pe__sig(float x) {
  return __fdiv_rn(1.0f, __fadd_rn(1.0f, pe__expf(-x)));
}

__device__ static float pe__binop(int op, float a, float b) {
  switch (op) {
  case PE_PLAN_OP_ADD:
    return __fadd_rn(a, b);
  case PE_PLAN_OP_SUB:
    return __fsub_rn(a, b);
  case PE_PLAN_OP_MUL:
    return __fmul_rn(a, b);
  case PE_PLAN_OP_DIV:
    return __fdiv_rn(a, b);
  default:
    return b == 2.0f ? __fmul_rn(a, a) : powf(a, b);
  }
}

/* The element loop of a step: from i0 by di (the thread's place in the
 * grid, or in the resident block of the persistent kernel). */
#define PE__FOR(i, total) for (I i = i0; i < (total); i += di)

/* the tiled dense product, the attention heads of a thread per query and
 * Conv 2-D (after PE__FOR, which they use) */
#include "cuda/tiled.cuh"
/* the dense, Conv 1-D and attention forms whose sums keep the tiled ones'
 * order (after tiled.cuh, whose PE__TK and pe__attn_score_off they use) */
#include "cuda/sums.cuh"

template <typename I>
__device__ __forceinline__ static void pe__d_copy(const pe_cuda_step_t &s,
                                                  I total, I i0, I di) {
  const I ys = (I)s.numel;
  PE__FOR(i, total) {
    I b = i / ys, e = i % ys;
    s.out[0][i] = pe__act(s.in[0][b * (I)s.in_stride[0] + e], s.act, s.alpha);
  }
}

template <typename I>
__device__ __forceinline__ static void pe__d_binary(const pe_cuda_step_t &s,
                                                    I total, I i0, I di) {
  const I n = (I)s.p[0];
  PE__FOR(i, total) {
    I b = i / n, e = i % n;
    const float *a = s.in[0] + b * (I)s.in_stride[0];
    const float *c = s.in[1] + b * (I)s.in_stride[1];
    I oa = e, ob = e;
    if ((I)s.p[1] == 2) {
      ob = 0;
    } else if ((I)s.p[1] == 3) {
      oa = 0;
    } else if ((I)s.p[1] != 1) {
      oa = ob = 0;
      I rest = e;
      for (int d = s.rank - 1; d >= 0; d--) {
        I id = rest % (I)s.dims[d];
        rest /= (I)s.dims[d];
        oa += id * (I)s.st[0][d];
        ob += id * (I)s.st[1][d];
      }
    }
    s.out[0][i] = pe__act(pe__binop(s.binop, a[oa], c[ob]), s.act, s.alpha);
  }
}

template <typename I>
__device__ __forceinline__ static void pe__d_softmax(const pe_cuda_step_t &s,
                                                     I total, I i0, I di) {
  const I outer = (I)s.p[0], L = (I)s.p[1], inner = (I)s.p[2];
  PE__FOR(i, total) {
    I in_ = i % inner, o = (i / inner) % outer, b = i / (inner * outer);
    const float *x = s.in[0] + b * (I)s.in_stride[0] + o * L * inner + in_;
    float *y = s.out[0] + b * (I)s.numel + o * L * inner + in_;
    float mx = x[0];
    for (I l = 1; l < L; l++) {
      mx = x[l * inner] > mx ? x[l * inner] : mx;
    }
    float sum = 0.0f;
    for (I l = 0; l < L; l++) {
      float e = pe__expf(__fsub_rn(x[l * inner], mx));
      sum = __fadd_rn(sum, e);
      if (!s.act) {
        y[l * inner] = e;
      }
    }
    if (s.act) {
      float ls = (float)log((double)sum);
      for (I l = 0; l < L; l++) {
        y[l * inner] = __fsub_rn(__fsub_rn(x[l * inner], mx), ls);
      }
    } else {
      float inv = __fdiv_rn(1.0f, sum);
      for (I l = 0; l < L; l++) {
        y[l * inner] = __fmul_rn(y[l * inner], inv);
      }
    }
  }
}

template <typename I>
__device__ __forceinline__ static void pe__d_strided(const pe_cuda_step_t &s,
                                                     I total, I i0, I di) {
  const I n = (I)s.p[1];
  PE__FOR(i, total) {
    I b = i / n, e = i % n, off = (I)s.p[0];
    for (int d = s.rank - 1; d >= 0; d--) {
      off += (e % (I)s.dims[d]) * (I)s.st[0][d];
      e /= (I)s.dims[d];
    }
    s.out[0][i] = s.in[0][b * (I)s.in_stride[0] + off];
  }
}

template <typename I>
__device__ __forceinline__ static void pe__d_gather(const pe_cuda_step_t &s,
                                                    I total, I i0, I di) {
  const I dim = (I)s.p[1], inner = (I)s.p[2], ni = (I)s.n_idx;
  PE__FOR(i, total) {
    I b = i / (I)s.numel, e = i % (I)s.numel;
    I j = e % inner, k = (e / inner) % ni, q = e / (inner * ni);
    s.out[0][i] =
        s.in[0][b * (I)s.in_stride[0] + (q * dim + (I)s.idx[k]) * inner + j];
  }
}

template <typename I>
__device__ __forceinline__ static void pe__d_concat(const pe_cuda_step_t &s,
                                                    I total, I i0, I di) {
  I per_q = 0;
  for (int k = 0; k < s.n_in; k++) {
    per_q += (I)s.st[k][0];
  }
  PE__FOR(i, total) {
    I b = i / (I)s.numel, e = i % (I)s.numel;
    I q = e / per_q, r = e % per_q;
    int k = 0;
    while (r >= (I)s.st[k][0]) {
      r -= (I)s.st[k][0];
      k++;
    }
    s.out[0][i] = s.in[k][b * (I)s.in_stride[k] + q * (I)s.st[k][0] + r];
  }
}

template <typename I>
__device__ __forceinline__ static void pe__d_affine(const pe_cuda_step_t &s,
                                                    I total, I i0, I di) {
  PE__FOR(i, total) {
    I b = i / (I)s.numel, e = i % (I)s.numel;
    I c = (e / (I)s.p[2]) % (I)s.p[1];
    float v = __fmul_rn(s.in[0][b * (I)s.in_stride[0] + e], s.w[c]);
    s.out[0][i] = pe__act(__fadd_rn(v, s.bias[c]), s.act, s.alpha);
  }
}

template <typename I>
__device__ __forceinline__ static void pe__d_pool1d(const pe_cuda_step_t &s,
                                                    I total, I i0, I di) {
  const I C = (I)s.p[0], win = (I)s.p[1], wout = (I)s.p[2], k = (I)s.p[3];
  const I stride = (I)s.p[4], pl = (I)s.p[5], dil = (I)s.p[6];
  const int cip = (I)s.p[7] != 0, is_max = (I)s.p[8] != 0;
  PE__FOR(i, total) {
    I t = i % wout, c = (i / wout) % C, b = i / (wout * C);
    const float *x = s.in[0] + b * (I)s.in_stride[0] + c * win;
    float acc = is_max ? -INFINITY : 0.0f;
    I cnt = 0, cnt_pad = 0;
    for (I kk = 0; kk < k; kk++) {
      I pos = t * stride + kk * dil - pl;
      if (pos >= 0 && pos < win) {
        float v = x[pos];
        acc = is_max ? (v > acc ? v : acc) : __fadd_rn(acc, v);
        cnt++;
      }
      if (pos < win + (I)s.p[9]) {
        cnt_pad++;
      }
    }
    if (!is_max) {
      acc = __fdiv_rn(acc, (float)(cip ? cnt_pad : (cnt ? cnt : 1)));
    }
    s.out[0][i] = acc;
  }
}

template <typename I>
__device__ __forceinline__ static void
pe__d_reduce_mean(const pe_cuda_step_t &s, I total, I i0, I di) {
  const I outer = (I)s.p[0], R = (I)s.p[1], inner = (I)s.p[2];
  PE__FOR(i, total) {
    I j = i % inner, o = (i / inner) % outer, b = i / (inner * outer);
    const float *x = s.in[0] + b * (I)s.in_stride[0];
    float acc = 0.0f;
    for (I r = 0; r < R; r++) {
      acc = __fadd_rn(acc, x[(o * R + r) * inner + j]);
    }
    s.out[0][i] = __fdiv_rn(acc, (float)R);
  }
}

/* Reduce over any axes (ReduceSum/Mean/Max/Min/Prod): one thread per
 * output element, the reduced elements taken in the input's order as the
 * CPU's kernel takes them. Resolved at load: p[2] kept axes of sizes
 * st[1] and input strides st[2], p[3] reduced axes of sizes st[3] and
 * input strides st[4]; binop the op, -1 the mean over p[1] elements. */
template <typename I>
__device__ __forceinline__ static void pe__d_reduce(const pe_cuda_step_t &s,
                                                    I total, I i0, I di) {
  const int op = s.binop, nk = (int)s.p[2], nr = (int)s.p[3];
  const I R = (I)s.p[1];
  PE__FOR(i, total) {
    I b = i / (I)s.numel, e = i % (I)s.numel, base = 0;
    for (int d = nk - 1; d >= 0; d--) {
      base += (e % (I)s.st[1][d]) * (I)s.st[2][d];
      e /= (I)s.st[1][d];
    }
    const float *x = s.in[0] + b * (I)s.in_stride[0] + base;
    float acc = pe__red_init(op);
    for (I r = 0; r < R; r++) {
      I rest = r, off = 0;
      for (int d = nr - 1; d >= 0; d--) {
        off += (rest % (I)s.st[3][d]) * (I)s.st[4][d];
        rest /= (I)s.st[3][d];
      }
      acc = pe__red_step(op, acc, x[off]);
    }
    s.out[0][i] = op < 0 ? __fdiv_rn(acc, (float)R) : acc;
  }
}

/* LSTM (gates i, o, f, c) or GRU (z, r, h), ONNX's equations: one block per
 * window, thread j owns hidden unit j; h (and r * h) live in shared memory,
 * c in a register. w is W^T [in][G*H], w2 R^T [H][G*H]. */
__device__ __forceinline__ static void
pe__d_rnn(const pe_cuda_step_t &s, int64_t b, int shared_w, float *sh) {
  const int lstm = s.kind == PE_PLAN_LSTM;
  const int64_t seq = s.p[0], in = s.p[1], H = s.p[2], lbr = s.p[3] != 0;
  /* one direction of dirs: time reversed or not, its slot of Y and of
   * the states */
  const int64_t rev = s.p[5] != 0, dirs = s.p[6] > 1 ? s.p[6] : 1;
  const int64_t dir = s.p[7];
  const int64_t GH = (lstm ? 4 : 3) * H;
  const int64_t j = threadIdx.x;
  const int act = j < H;
  float *h = sh, *rh = sh + H;
  const float *x = s.in[0] + b * s.in_stride[0];
  const float *W = s.w, *R = s.w2;
  if (shared_w) {
    /* the weights in shared memory: read (in + H) * G times per step */
    float *ws = sh + 2 * H;
#pragma unroll 4
    for (int64_t k = j; k < (in + H) * GH; k += blockDim.x) {
      ws[k] = k < in * GH ? s.w[k] : s.w2[k - in * GH];
    }
    W = ws;
    R = ws + in * GH;
  }
  float c = 0.0f;
  if (act) {
    h[j] = s.in[1] ? s.in[1][b * s.in_stride[1] + dir * H + j] : 0.0f;
    c = s.in[2] ? s.in[2][b * s.in_stride[2] + dir * H + j] : 0.0f;
  }
  __syncthreads();
  for (int64_t it = 0; it < seq; it++) {
    const int64_t t = rev ? seq - 1 - it : it;
    const float *xt = x + t * in;
    float g[4] = {0.0f, 0.0f, 0.0f, 0.0f}, r[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    const int G = lstm ? 4 : 3;
    if (act) {
      /* W x + bias and R h, each gate's sum in double in the order of the
       * CPU's dense kernel (the gates side by side) */
      double ga[4], ra[4] = {0.0, 0.0, 0.0, 0.0};
#pragma unroll
      for (int q = 0; q < 4; q++) {
        ga[q] = q < G ? (double)s.bias[q * H + j] : 0.0;
      }
#pragma unroll 4
      for (int k = 0; k < (int)in; k++) {
        const double xv = xt[k];
        const float *wk = W + k * GH + j;
#pragma unroll
        for (int q = 0; q < 4; q++) {
          if (q < G) {
            ga[q] += xv * (double)wk[q * H];
          }
        }
      }
      /* GRU without linear_before_reset takes R_h times r * h below */
      const int Gr = !lstm && !lbr ? 2 : G;
#pragma unroll 8
      for (int k = 0; k < (int)H; k++) {
        const double hv = h[k];
        const float *rk = R + k * GH + j;
#pragma unroll
        for (int q = 0; q < 4; q++) {
          if (q < Gr) {
            ra[q] += hv * (double)rk[q * H];
          }
        }
      }
#pragma unroll
      for (int q = 0; q < 4; q++) {
        g[q] = (float)ga[q];
        r[q] = (float)ra[q];
      }
    }
    float hn = 0.0f;
    if (lstm) {
      if (act) {
        float ig = pe__sig(__fadd_rn(g[0], r[0]));
        float og = pe__sig(__fadd_rn(g[1], r[1]));
        float fg = pe__sig(__fadd_rn(g[2], r[2]));
        float cg = pe__tanhf(__fadd_rn(g[3], r[3]));
        c = __fadd_rn(__fmul_rn(fg, c), __fmul_rn(ig, cg));
        hn = __fmul_rn(og, pe__tanhf(c));
      }
    } else if (lbr) {
      if (act) {
        float z = pe__sig(__fadd_rn(g[0], r[0]));
        float rg = pe__sig(__fadd_rn(g[1], r[1]));
        float nn = pe__tanhf(
            __fadd_rn(g[2], __fmul_rn(rg, __fadd_rn(r[2], s.bias2[j]))));
        hn = __fadd_rn(__fmul_rn(__fsub_rn(1.0f, z), nn), __fmul_rn(z, h[j]));
      }
    } else {
      float z = 0.0f;
      if (act) {
        z = pe__sig(__fadd_rn(g[0], r[0]));
        float rg = pe__sig(__fadd_rn(g[1], r[1]));
        rh[j] = __fmul_rn(rg, h[j]);
      }
      __syncthreads();
      if (act) {
        double rr = 0.0;
        for (int64_t k = 0; k < H; k++) {
          rr += (double)rh[k] * (double)R[k * GH + 2 * H + j];
        }
        float nn = pe__tanhf(__fadd_rn(g[2], (float)rr));
        hn = __fadd_rn(__fmul_rn(__fsub_rn(1.0f, z), nn), __fmul_rn(z, h[j]));
      }
    }
    __syncthreads();
    if (act) {
      h[j] = hn;
      if (s.out[0]) {
        s.out[0][b * s.out_stride[0] + (t * dirs + dir) * H + j] = hn;
      }
    }
    __syncthreads();
  }
  if (act) {
    if (s.out[1]) {
      s.out[1][b * s.out_stride[1] + dir * H + j] = h[j];
    }
    if (s.out[2]) {
      s.out[2][b * s.out_stride[2] + dir * H + j] = c;
    }
  }
}

/* ---- The kinds of the importer's extended ops --------------------------- */

/* Index e of an element of shape dims[0..rank) (the last axis fastest) as
 * the offset sum idx_d * st[k][d] into operand k. */
template <typename I>
__device__ __forceinline__ static I pe__offset(const pe_cuda_step_t &s, int k,
                                               I e) {
  I off = 0;
  for (int d = s.rank - 1; d >= 0; d--) {
    off += (e % (I)s.dims[d]) * (I)s.st[k][d];
    e /= (I)s.dims[d];
  }
  return off;
}

/* int64 or bool runtime values to float32 (p[0] per window, p[1] the
 * element type); the source read at its own element size. */
template <typename I>
__device__ __forceinline__ static void pe__d_cast(const pe_cuda_step_t &s,
                                                  I total, I i0, I di) {
  const char *src = (const char *)s.in[0];
  PE__FOR(i, total) {
    if (s.p[1] == PE_PLAN_DT_BOOL) {
      s.out[0][i] = src[i] ? 1.0f : 0.0f;
    } else {
      long long v;
      memcpy(&v, src + (int64_t)i * 8, 8);
      s.out[0][i] = (float)v;
    }
  }
}

/* Rows of a constant (in[0]: outer p[0], axis p[1], inner p[2]) picked by
 * p[3] runtime int64 indices per window (in[1]); a negative index counts
 * from the end, one out of range gives zeros. */
template <typename I>
__device__ __forceinline__ static void pe__d_gather_rt(const pe_cuda_step_t &s,
                                                       I total, I i0, I di) {
  const I dim = (I)s.p[1], inner = (I)s.p[2], ni = (I)s.p[3];
  const char *idx = (const char *)s.in[1];
  PE__FOR(i, total) {
    I b = i / (I)s.numel, e = i % (I)s.numel;
    I j = e % inner, k = (e / inner) % ni, q = e / (inner * ni);
    long long v;
    memcpy(&v, idx + ((int64_t)b * ni + k) * 8, 8);
    v = v < 0 ? v + dim : v;
    s.out[0][i] =
        v < 0 || v >= dim ? 0.0f : s.in[0][(q * dim + (I)v) * inner + j];
  }
}

/* Max or average pooling over [C][H][W] (or [C][D][H][W]: rank 3, the
 * depth axis in dims[]), one thread per output, the taps in the CPU's
 * order. */
template <typename I>
__device__ __forceinline__ static void pe__d_pool2d(const pe_cuda_step_t &s,
                                                    I total, I i0, I di) {
  const I C = (I)s.p[0], H = (I)s.p[1], W = (I)s.p[2], OH = (I)s.p[3];
  const I OW = (I)s.p[4], kh = (I)s.p[5], kw = (I)s.p[6], sh = (I)s.p[7];
  const I sw = (I)s.p[8], pt = (I)s.p[9], pl = (I)s.p[10], dh = (I)s.p[11];
  const I dw = (I)s.p[12], pb = (I)s.p[15], pr = (I)s.p[16];
  const int cip = s.p[13] != 0, is_max = s.p[14] != 0, three = s.rank == 3;
  const I D = three ? (I)s.dims[0] : 1, OD = three ? (I)s.dims[1] : 1;
  const I kd = three ? (I)s.dims[2] : 1, sd = three ? (I)s.dims[3] : 1;
  const I dd = three ? (I)s.dims[4] : 1, pf = three ? (I)s.dims[5] : 0;
  const I pk = three ? (I)s.dims[6] : 0;
  PE__FOR(i, total) {
    I ow = i % OW, r = i / OW, oh = r % OH;
    r /= OH;
    const I od = r % OD;
    r /= OD;
    const I c = r % C, b = r / C;
    const I d0 = od * sd - pf, h0 = oh * sh - pt, w0 = ow * sw - pl;
    int64_t q[2], qp[2], a[2], ap[2], j[2], jp[2];
    pe_ks_tap_range(d0, dd, kd, D, &q[0], &q[1]);
    pe_ks_tap_range(d0 + pf, dd, kd, D + pf + pk, &qp[0], &qp[1]);
    pe_ks_tap_range(h0, dh, kh, H, &a[0], &a[1]);
    pe_ks_tap_range(h0 + pt, dh, kh, H + pt + pb, &ap[0], &ap[1]);
    pe_ks_tap_range(w0, dw, kw, W, &j[0], &j[1]);
    pe_ks_tap_range(w0 + pl, dw, kw, W + pl + pr, &jp[0], &jp[1]);
    const int64_t cnt =
        cip ? (qp[1] - qp[0]) * (ap[1] - ap[0]) * (jp[1] - jp[0])
            : (q[1] - q[0]) * (a[1] - a[0]) * (j[1] - j[0]);
    const float acc = pe_ks_pool_taps(s.in[0] + b * (I)s.in_stride[0],
                                      ((c * D + d0) * H + h0) * W + w0, q, a, j,
                                      dd, dh, dw, H, W, is_max);
    s.out[0][i] = is_max ? acc : __fdiv_rn(acc, (float)(cnt > 0 ? cnt : 1));
  }
}

/* Element-wise ops with parameters (binop the pe_plan_ew_t, f[0..1]). */
__device__ static float pe__ew(int op, float x, float f0, float f1) {
  switch (op) {
  case PE_PLAN_EW_CLIP: {
    float v = x < f0 ? f0 : x;
    return v > f1 ? f1 : v;
  }
  case PE_PLAN_EW_ELU:
    return x >= 0.0f ? x : __fmul_rn(f0, __fsub_rn(pe__expf(x), 1.0f));
  case PE_PLAN_EW_SELU:
    return x > 0.0f ? __fmul_rn(f1, x)
                    : __fmul_rn(f1, __fsub_rn(__fmul_rn(f0, pe__expf(x)), f0));
  case PE_PLAN_EW_SOFTPLUS:
    return x > 0.0f ? __fadd_rn(x, log1pf(pe__expf(-x))) : log1pf(pe__expf(x));
  case PE_PLAN_EW_HARDSIGMOID:
  case PE_PLAN_EW_HARDSWISH: {
    float v = __fadd_rn(__fmul_rn(f0, x), f1);
    v = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
    return op == PE_PLAN_EW_HARDSWISH ? __fmul_rn(x, v) : v;
  }
  default:
    return x;
  }
}

template <typename I>
__device__ __forceinline__ static void pe__d_elemwise(const pe_cuda_step_t &s,
                                                      I total, I i0, I di) {
  PE__FOR(i, total) {
    I b = i / (I)s.numel, e = i % (I)s.numel;
    s.out[0][i] =
        pe__ew(s.binop, s.in[0][b * (I)s.in_stride[0] + e], s.f[0], s.f[1]);
  }
}

/* Pad: dims the output shape, st[0] the input's, st[1] the pads before
 * each axis; binop the mode, f[0] the constant. */
template <typename I>
__device__ __forceinline__ static void pe__d_pad(const pe_cuda_step_t &s,
                                                 I total, I i0, I di) {
  PE__FOR(i, total) {
    I b = i / (I)s.numel, e = i % (I)s.numel, off = 0, ist = 1;
    int fill = 0;
    for (int d = s.rank - 1; d >= 0; d--) {
      const I src = (I)pe_ks_pad_src(e % (I)s.dims[d] - (I)s.st[1][d],
                                     (I)s.st[0][d], s.binop);
      e /= (I)s.dims[d];
      fill |= src < 0;
      off += src * ist;
      ist *= (I)s.st[0][d];
    }
    s.out[0][i] = fill ? s.f[0] : s.in[0][b * (I)s.in_stride[0] + off];
  }
}

/* Where: y = c ? a : b over dims, the condition in[2] (strides st[0]),
 * a in[0] (st[1]), b in[1] (st[2]). */
template <typename I>
__device__ __forceinline__ static void pe__d_where(const pe_cuda_step_t &s,
                                                   I total, I i0, I di) {
  PE__FOR(i, total) {
    I b = i / (I)s.numel, e = i % (I)s.numel;
    const float cv = s.in[2][b * (I)s.in_stride[2] + pe__offset<I>(s, 0, e)];
    s.out[0][i] = cv != 0.0f
                      ? s.in[0][b * (I)s.in_stride[0] + pe__offset<I>(s, 1, e)]
                      : s.in[1][b * (I)s.in_stride[1] + pe__offset<I>(s, 2, e)];
  }
}

/* MatMul of two runtime operands: p[0..3] = M, K, N and the products per
 * window; dims[0..rank) the broadcast batch axes, st[0], st[1] the
 * operands' strides along them. One thread per output, the sum in double
 * in the CPU's order. */
template <typename I>
__device__ __forceinline__ static void pe__d_matmul(const pe_cuda_step_t &s,
                                                    I total, I i0, I di) {
  const I M = (I)s.p[0], K = (I)s.p[1], N = (I)s.p[2];
  PE__FOR(i, total) {
    I b = i / (I)s.numel, e = i % (I)s.numel;
    const I j = e % N, r = (e / N) % M, q = e / (M * N);
    const float *a =
        s.in[0] + b * (I)s.in_stride[0] + pe__offset<I>(s, 0, q) + r * K;
    const float *c =
        s.in[1] + b * (I)s.in_stride[1] + pe__offset<I>(s, 1, q) + j;
    double acc = 0.0;
    for (I k = 0; k < K; k++) {
      acc += (double)a[k] * (double)c[k * N];
    }
    s.out[0][i] = (float)acc;
  }
}

/* LayerNormalization, one warp per row (p[0] rows of p[1] per window):
 * pe__ln_row (rows.cuh) with the scale w, the bias (or none), eps f[0];
 * out[1] the means and out[2] the inverse deviations when wanted. With
 * in[1] set (a residual add folded in, cuda.c), the input is in[0] +
 * in[1]. i0 and di count threads. */
template <typename I>
__device__ __forceinline__ static void pe__d_layernorm(const pe_cuda_step_t &s,
                                                       I total, I i0, I di) {
  const I rows = (I)s.p[0], len = (I)s.p[1];
  const int lane = (int)(threadIdx.x & 31);
  for (I i = i0 >> 5; i < total; i += di >> 5) {
    const I r = i % rows, b = i / rows;
    const float *x = s.in[0] + b * (I)s.in_stride[0] + r * len;
    const float *x2 =
        s.in[1] != NULL ? s.in[1] + b * (I)s.in_stride[1] + r * len : NULL;
    pe__ln_row(x, x2, s.out[0] + b * (I)s.numel + r * len, (int)len, lane, s.w,
               s.bias, s.f[0],
               s.out[1] ? s.out[1] + b * (I)s.out_stride[1] + r : NULL,
               s.out[2] ? s.out[2] + b * (I)s.out_stride[2] + r : NULL);
  }
}

/* Launches pe__k_attn_q over n windows when the step's heads fit it; 1
 * when it did (*e the launch's error), 0 when the heads need the general
 * kernel. */
static int pe__attn_q_launch(const pe_cuda_step_t *s, uint32_t n,
                             cudaStream_t st, int *e) {
  int tq = 0, heads = 0;
  if (!pe__attn_q_fits(s, &tq, &heads)) {
    return 0;
  }
  const int64_t units = (int64_t)n * s->p[2];
  const int64_t blocks = (units + heads - 1) / heads;
  if (blocks > 0x7fffffff) {
    return 0;
  }
  const size_t shmem = (size_t)heads * 2 * s->p[0] * s->p[3] * sizeof(float);
  const unsigned nt = (unsigned)(tq * heads);
  const int64_t D = s->p[3];
  if (D <= 8) {
    pe__k_attn_q<8><<<(unsigned)blocks, nt, shmem, st>>>(*s, units, tq, heads);
  } else if (D <= 16) {
    pe__k_attn_q<16><<<(unsigned)blocks, nt, shmem, st>>>(*s, units, tq, heads);
  } else if (D <= 32) {
    pe__k_attn_q<32><<<(unsigned)blocks, nt, shmem, st>>>(*s, units, tq, heads);
  } else {
    pe__k_attn_q<64><<<(unsigned)blocks, nt, shmem, st>>>(*s, units, tq, heads);
  }
  *e = (int)cudaPeekAtLastError();
  return 1;
}

extern "C" int pe_cuda_kind_supported(int kind) {
  switch (kind) {
  case PE_PLAN_COPY:
  case PE_PLAN_CONV1D:
  case PE_PLAN_DENSE:
  case PE_PLAN_UNARY:
  case PE_PLAN_BINARY:
  case PE_PLAN_SOFTMAX:
  case PE_PLAN_STRIDED:
  case PE_PLAN_GATHER:
  case PE_PLAN_CONCAT:
  case PE_PLAN_AFFINE:
  case PE_PLAN_POOL1D:
  case PE_PLAN_REDUCE_MEAN:
  case PE_PLAN_REDUCE:
  case PE_PLAN_LSTM:
  case PE_PLAN_GRU:
  case PE_PLAN_MATMUL:
  case PE_PLAN_CAST:
  case PE_PLAN_GATHER_RT:
  case PE_PLAN_CONV2D:
  case PE_PLAN_POOL2D:
  case PE_PLAN_ELEMWISE:
  case PE_PLAN_PAD:
  case PE_PLAN_WHERE:
  case PE_PLAN_LAYERNORM:
  case PE_PLAN_ATTENTION:
    return 1;
  default:
    return 0;
  }
}

/* Outputs computed together by one thread of a convolution: several in
 * the launched kernels (each weight read once for them), one in the
 * persistent kernel (a batch of one window has few outputs to share out). */
#define PE__CONV_T 4

/* Units of the element-wise kernels over n windows: one per output
 * element, per CT outputs of a convolution's row, or per row of a
 * LayerNorm or of an attention block's heads (a warp each). */
__host__ __device__ static int64_t pe__total(const pe_cuda_step_t *s,
                                             uint32_t n, int ct) {
  if (s->kind == PE_PLAN_CONV1D) {
    return (int64_t)n * s->p[1] * ((s->p[9] + ct - 1) / ct);
  }
  if (s->kind == PE_PLAN_LAYERNORM) {
    return (int64_t)n * s->p[0];
  }
  if (s->kind == PE_PLAN_ATTENTION) {
    return (int64_t)n * s->p[2] * s->p[0];
  }
  if (s->kind == PE_PLAN_CONV2D) {
    return (int64_t)n * (s->numel / pe__conv2d_cb(s));
  }
  return s->kind == PE_PLAN_SOFTMAX ? (int64_t)n * s->p[0] * s->p[2]
                                    : (int64_t)n * s->numel;
}

/* Whether step s runs one warp (32 threads) per unit of pe__total. */
__host__ __device__ static int pe__warp_step(const pe_cuda_step_t *s) {
  return (s->kind == PE_PLAN_DENSE && s->dense_warp) ||
         s->kind == PE_PLAN_LAYERNORM || s->kind == PE_PLAN_ATTENTION;
}

/* Whether every index of step s over n windows fits an int: elements and
 * offsets below 2^30 (2^26 outputs for the warp kernel, 32 threads each),
 * so that an index plus a grid's stride cannot overflow. */
__device__ static int pe__fits32(const pe_cuda_step_t *s, uint32_t n) {
  const int64_t lim = (int64_t)1 << (pe__warp_step(s) ? 26 : 30);
  int64_t most = s->numel;
  for (int k = 0; k < s->n_in && k < PE_CUDA_MAX_IN; k++) {
    most = s->in_stride[k] > most ? s->in_stride[k] : most;
  }
  for (int k = 0; k < 3; k++) {
    most = s->out_stride[k] > most ? s->out_stride[k] : most;
  }
  return (int64_t)n * most < lim && s->p[0] < lim && s->K < lim;
}

/* Shared memory of an LSTM/GRU step: h and r * h, plus the weights when
 * they fit (*shared_w). */
__host__ __device__ static size_t pe__rnn_shmem(const pe_cuda_step_t *s,
                                                int *shared_w) {
  const int64_t H = s->p[2], in = s->p[1];
  const int64_t GH = (s->kind == PE_PLAN_LSTM ? 4 : 3) * H;
  size_t shmem = (size_t)(2 * H) * sizeof(float);
  size_t with_w = shmem + (size_t)((in + H) * GH) * sizeof(float);
  *shared_w = with_w <= 48 * 1024;
  return *shared_w ? with_w : shmem;
}

/* Step s over n windows by the threads i0, i0 + di, ... of the caller's
 * (all of a grid, or the resident block), indices of type I, CT outputs
 * per thread in a convolution. */
template <typename I, int CT>
__device__ __forceinline__ static void
pe__d_step_i(const pe_cuda_step_t &s, int kind, uint32_t n, I i0, I di) {
  const I total = (I)pe__total(&s, n, CT);
  switch (kind) {
  case PE_PLAN_COPY:
  case PE_PLAN_UNARY:
    pe__d_copy<I>(s, total, i0, di);
    break;
  case PE_PLAN_CONV1D:
    pe__d_conv1d<I, CT>(s, total, i0, di);
    break;
  case PE_PLAN_DENSE:
    if (s.dense_warp) {
      pe__d_dense_warp<I>(s, total, i0, di);
    } else {
      pe__d_dense<I>(s, total, i0, di);
    }
    break;
  case PE_PLAN_BINARY:
    pe__d_binary<I>(s, total, i0, di);
    break;
  case PE_PLAN_SOFTMAX:
    pe__d_softmax<I>(s, total, i0, di);
    break;
  case PE_PLAN_STRIDED:
    pe__d_strided<I>(s, total, i0, di);
    break;
  case PE_PLAN_GATHER:
    pe__d_gather<I>(s, total, i0, di);
    break;
  case PE_PLAN_CONCAT:
    pe__d_concat<I>(s, total, i0, di);
    break;
  case PE_PLAN_AFFINE:
    pe__d_affine<I>(s, total, i0, di);
    break;
  case PE_PLAN_POOL1D:
    pe__d_pool1d<I>(s, total, i0, di);
    break;
  case PE_PLAN_REDUCE_MEAN:
    pe__d_reduce_mean<I>(s, total, i0, di);
    break;
  case PE_PLAN_REDUCE:
    pe__d_reduce<I>(s, total, i0, di);
    break;
  case PE_PLAN_MATMUL:
    pe__d_matmul<I>(s, total, i0, di);
    break;
  case PE_PLAN_CAST:
    pe__d_cast<I>(s, total, i0, di);
    break;
  case PE_PLAN_GATHER_RT:
    pe__d_gather_rt<I>(s, total, i0, di);
    break;
  case PE_PLAN_CONV2D:
    pe__d_conv2d<I>(s, total, i0, di);
    break;
  case PE_PLAN_POOL2D:
    pe__d_pool2d<I>(s, total, i0, di);
    break;
  case PE_PLAN_ELEMWISE:
    pe__d_elemwise<I>(s, total, i0, di);
    break;
  case PE_PLAN_PAD:
    pe__d_pad<I>(s, total, i0, di);
    break;
  case PE_PLAN_WHERE:
    pe__d_where<I>(s, total, i0, di);
    break;
  case PE_PLAN_LAYERNORM:
    pe__d_layernorm<I>(s, total, i0, di);
    break;
  case PE_PLAN_ATTENTION:
    pe__d_attention<I>(s, total, i0, di);
    break;
  default:
    break;
  }
}

/* The same with 32-bit indices wherever the step's fit. */
template <int CT>
__device__ __forceinline__ static void pe__d_step(const pe_cuda_step_t &s,
                                                  int kind, uint32_t n,
                                                  int64_t i0, int64_t di) {
  if (pe__fits32(&s, n)) {
    pe__d_step_i<int, CT>(s, kind, n, (int)i0, (int)di);
  } else {
    pe__d_step_i<int64_t, CT>(s, kind, n, i0, di);
  }
}

/* One kernel per kind (KIND a constant: the other kinds' code left out,
 * and with it their registers). */
template <int KIND>
__global__ static void pe__k_step(const pe_cuda_step_t s, uint32_t n) {
  pe__d_step<PE__CONV_T>(s, KIND, n,
                         (int64_t)blockIdx.x * blockDim.x + threadIdx.x,
                         (int64_t)gridDim.x * blockDim.x);
}

/* Whether an LSTM step runs gate-parallel in a block of nt threads: every
 * row of its 4H gate rows gets at least one thread. */
__host__ __device__ static int pe__lstm_wide(const pe_cuda_step_t *s, int nt) {
  return s->kind == PE_PLAN_LSTM && 4 * s->p[2] <= nt;
}

/* Shared memory of the gate-parallel LSTM: two partial sums (W x and
 * R h) per gate row and slice of the inputs, then h. */
__host__ __device__ static size_t pe__lstm_wide_shmem(const pe_cuda_step_t *s,
                                                      int nt) {
  const int64_t GH = 4 * s->p[2];
  return (size_t)(2 * (nt / GH) * GH) * sizeof(double) +
         (size_t)s->p[2] * sizeof(float);
}

/* LSTM over window b by the whole block, gate-parallel: each of the 4H
 * gate rows is split into P = nt / 4H slices of its inputs (x_t, then
 * h_{t-1}); thread (slice, row) sums its slice of W x and of R h in
 * double, then thread j < H adds the bias and the slices of its four
 * gates, rounds W x + bias and R h to float once each as the CPU's kernel
 * does, and updates c and h. Two barriers per time step. */
__device__ __forceinline__ static void pe__d_lstm_wide(const pe_cuda_step_t &s,
                                                       int b, float *sh) {
  const int seq = (int)s.p[0], in = (int)s.p[1], H = (int)s.p[2];
  const int rev = s.p[5] != 0, dirs = s.p[6] > 1 ? (int)s.p[6] : 1;
  const int dir = (int)s.p[7];
  const int GH = 4 * H, K = in + H, nt = (int)blockDim.x;
  const int tid = (int)threadIdx.x, P = nt / GH;
  const int row = tid % GH, part = tid / GH;
  const int kc = (K + P - 1) / P, ka = part * kc;
  const int kb = ka + kc < K ? ka + kc : K;
  const int kx = kb < in ? kb : in, kh = ka > in ? ka : in;
  double *px = (double *)sh, *ph = px + P * GH;
  float *h = (float *)(ph + P * GH);
  const float *__restrict__ x = s.in[0] + (int64_t)b * s.in_stride[0];
  const float *__restrict__ W = s.w + row;
  const float *__restrict__ R = s.w2 + row;
  const int act = tid < H;
  float c = 0.0f;
  double bias[4] = {0.0, 0.0, 0.0, 0.0};
  if (act) {
    h[tid] =
        s.in[1] ? s.in[1][(int64_t)b * s.in_stride[1] + dir * H + tid] : 0.0f;
    c = s.in[2] ? s.in[2][(int64_t)b * s.in_stride[2] + dir * H + tid] : 0.0f;
#pragma unroll
    for (int q = 0; q < 4; q++) {
      bias[q] = s.bias[q * H + tid];
    }
  }
  __syncthreads();
  for (int it = 0; it < seq; it++) {
    const int t = rev ? seq - 1 - it : it;
    if (part < P) {
      const float *xt = x + t * in;
      double ax = 0.0, ah = 0.0;
#pragma unroll 4
      for (int k = ka; k < kx; k++) {
        ax += (double)xt[k] * (double)__ldg(W + k * GH);
      }
#pragma unroll 4
      for (int k = kh; k < kb; k++) {
        ah += (double)h[k - in] * (double)__ldg(R + (k - in) * GH);
      }
      px[part * GH + row] = ax;
      ph[part * GH + row] = ah;
    }
    __syncthreads();
    if (act) {
      float g[4];
#pragma unroll
      for (int q = 0; q < 4; q++) {
        double gx = bias[q], gh = 0.0;
        for (int pp = 0; pp < P; pp++) {
          gx += px[pp * GH + q * H + tid];
          gh += ph[pp * GH + q * H + tid];
        }
        g[q] = __fadd_rn((float)gx, (float)gh);
      }
      const float ig = pe__sig(g[0]), og = pe__sig(g[1]), fg = pe__sig(g[2]);
      const float cg = pe__tanhf(g[3]);
      c = __fadd_rn(__fmul_rn(fg, c), __fmul_rn(ig, cg));
      const float hn = __fmul_rn(og, pe__tanhf(c));
      h[tid] = hn;
      if (s.out[0]) {
        s.out[0][(int64_t)b * s.out_stride[0] + (t * dirs + dir) * H + tid] =
            hn;
      }
    }
    __syncthreads();
  }
  if (act) {
    if (s.out[1]) {
      s.out[1][(int64_t)b * s.out_stride[1] + dir * H + tid] = h[tid];
    }
    if (s.out[2]) {
      s.out[2][(int64_t)b * s.out_stride[2] + dir * H + tid] = c;
    }
  }
}

__global__ static void pe__k_rnn(const pe_cuda_step_t s, int shared_w) {
  extern __shared__ float sh[];
  pe__d_rnn(s, blockIdx.x, shared_w, sh);
}

__global__ static void pe__k_lstm_wide(const pe_cuda_step_t s) {
  extern __shared__ float sh[];
  pe__d_lstm_wide(s, (int)blockIdx.x, sh);
}

/* Whether a step is an LSTM's recurrence in the warp form (its input
 * projection a dense step before it). */
__host__ __device__ static int pe__lstm_rec(const pe_cuda_step_t *s) {
  return s->kind == PE_PLAN_LSTM && s->p[8] != 0;
}

__global__ static void __launch_bounds__(PE_CUDA_PERSIST_THREADS)
    pe__k_lstm_rec(const pe_cuda_step_t s) {
  extern __shared__ float4 shv[];
  pe__d_lstm_rec(s, (int)blockIdx.x, (float *)shv);
}

extern "C" int pe_cuda_step_launch(const pe_cuda_step_t *s, uint32_t n,
                                   void *stream) {
  cudaStream_t st = (cudaStream_t)stream;
  if (pe__lstm_rec(s)) {
    /* one block per window, of the threads R was packed for */
    pe__k_lstm_rec<<<n, PE_CUDA_PERSIST_THREADS, pe__lstm_rec_shmem(s), st>>>(
        *s);
    return (int)cudaPeekAtLastError();
  }
  if (pe__lstm_wide(s, PE_CUDA_PERSIST_THREADS)) {
    /* one block per window, of the persistent kernel's threads: the same
     * slices of each gate row's sums, so the same bits, in both modes */
    const int threads = PE_CUDA_PERSIST_THREADS;
    pe__k_lstm_wide<<<n, threads, pe__lstm_wide_shmem(s, threads), st>>>(*s);
    return (int)cudaPeekAtLastError();
  }
  if (s->kind == PE_PLAN_LSTM || s->kind == PE_PLAN_GRU) {
    unsigned threads = (unsigned)((s->p[2] + 31) / 32 * 32);
    int shared_w = 0;
    size_t shmem = pe__rnn_shmem(s, &shared_w);
    pe__k_rnn<<<n, threads, shmem, st>>>(*s, shared_w);
    return (int)cudaPeekAtLastError();
  }
  if (!pe_cuda_kind_supported(s->kind)) {
    return (int)cudaErrorInvalidValue;
  }
  int64_t total = pe__total(s, n, PE__CONV_T);
  if (total <= 0) {
    return 0;
  }
  int ea = 0;
  if (s->kind == PE_PLAN_ATTENTION && pe__attn_q_launch(s, n, st, &ea)) {
    return ea;
  }
  /* Conv 1-D without groups as tiles of a product (tiled.cuh): on tensor
   * cores in tf32, and in fp32 where a tile's k reach at least 16 */
  if (s->kind == PE_PLAN_CONV1D && s->p[2] == 1 &&
      (s->tf32 || s->p[0] * s->p[3] >= 16)) {
    /* tiles of 64 output channels by 64 positions in both precisions
     * (fp32 tiles of 16 channels by 256 positions, which waste no work on
     * a 16-channel convolution, ran DeepLOB slower: docs/models.md) */
    dim3 grid((unsigned)((s->p[9] + PE__TM - 1) / PE__TM),
              (unsigned)((s->p[1] + PE__TR - 1) / PE__TR),
              n < 65535u ? n : 65535u);
    if (s->tf32) {
      pe__k_conv1d_tf32<<<grid, 128, 0, st>>>(*s, (int)n);
    } else {
      pe__k_conv1d_tiled<<<grid, 256, 0, st>>>(*s, (int)n);
    }
    return (int)cudaPeekAtLastError();
  }
  const int64_t rows = (int64_t)n * s->p[0];
  if (s->kind == PE_PLAN_DENSE && (rows >= PE__TR || s->tf32) &&
      s->in_stride[0] == s->p[0] * s->K && rows < ((int64_t)1 << 30)) {
    dim3 grid((unsigned)((rows + PE__TR - 1) / PE__TR),
              (unsigned)((s->M + PE__TM - 1) / PE__TM));
    if (s->tf32) {
      pe__k_dense_tf32<<<grid, 128, 0, st>>>(*s, (int)rows);
    } else {
      pe__k_dense_tiled<<<grid, 256, 0, st>>>(*s, (int)rows);
    }
    return (int)cudaPeekAtLastError();
  }
  int64_t threads = pe__warp_step(s) ? total * 32 : total;
  int64_t blocks64 = (threads + PE__THREADS - 1) / PE__THREADS;
  unsigned blocks = (unsigned)(blocks64 > 65535 * 16 ? 65535 * 16 : blocks64);
  switch (s->kind) {
#define PE__LAUNCH(k)                                                          \
  case k:                                                                      \
    pe__k_step<k><<<blocks, PE__THREADS, 0, st>>>(*s, n);                      \
    break
    PE__LAUNCH(PE_PLAN_COPY);
    PE__LAUNCH(PE_PLAN_UNARY);
    PE__LAUNCH(PE_PLAN_CONV1D);
    PE__LAUNCH(PE_PLAN_DENSE);
    PE__LAUNCH(PE_PLAN_BINARY);
    PE__LAUNCH(PE_PLAN_SOFTMAX);
    PE__LAUNCH(PE_PLAN_STRIDED);
    PE__LAUNCH(PE_PLAN_GATHER);
    PE__LAUNCH(PE_PLAN_CONCAT);
    PE__LAUNCH(PE_PLAN_AFFINE);
    PE__LAUNCH(PE_PLAN_POOL1D);
    PE__LAUNCH(PE_PLAN_REDUCE_MEAN);
    PE__LAUNCH(PE_PLAN_REDUCE);
    PE__LAUNCH(PE_PLAN_MATMUL);
    PE__LAUNCH(PE_PLAN_CAST);
    PE__LAUNCH(PE_PLAN_GATHER_RT);
    PE__LAUNCH(PE_PLAN_CONV2D);
    PE__LAUNCH(PE_PLAN_POOL2D);
    PE__LAUNCH(PE_PLAN_ELEMWISE);
    PE__LAUNCH(PE_PLAN_PAD);
    PE__LAUNCH(PE_PLAN_WHERE);
    PE__LAUNCH(PE_PLAN_LAYERNORM);
    PE__LAUNCH(PE_PLAN_ATTENTION);
#undef PE__LAUNCH
  default:
    return (int)cudaErrorInvalidValue;
  }
  return (int)cudaPeekAtLastError();
}

/* ---- The persistent kernel ----------------------------------------------
 * One resident block. Thread 0 polls the control block (mapped pinned host
 * memory) for a new request number while the next threads poll the first
 * window's tagged words; the block then reads the rest of the request's
 * windows, runs every step (a barrier between steps), writes the scores'
 * tagged words into mapped host memory (no fence: each carries its
 * request) and publishes the request number as done. It leaves when asked
 * to stop or after idle_ns without a request, clearing `running` on its
 * way out. On chip, the steps, the windows, every activation, the scores
 * and the weights that fit live in the block's shared memory. Every step
 * runs the kernels' own forms (pe__p_general), whose sums keep one order
 * whatever the form (sums.cuh): a window's scores are those of graph
 * mode, whatever the batch. */

static_assert(sizeof(pe__proto_ctrl_t) == sizeof(pe_cuda_ctrl_t) &&
                  offsetof(pe__proto_ctrl_t, stop) ==
                      offsetof(pe_cuda_ctrl_t, stop) &&
                  offsetof(pe__proto_ctrl_t, done) ==
                      offsetof(pe_cuda_ctrl_t, done) &&
                  offsetof(pe__proto_ctrl_t, running) ==
                      offsetof(pe_cuda_ctrl_t, running),
              "persist_proto.cuh's control block is kernels.h's");

/* n floats rounded up to a multiple of 4. */
__device__ static int64_t pe__round4(int64_t n) { return (n + 3) / 4 * 4; }

/* Bytes of n steps at the start of the kernel's shared memory. */
__host__ __device__ static size_t pe__steps_bytes(int n) {
  return ((size_t)n * sizeof(pe_cuda_step_t) + 15) / 16 * 16;
}

/* A step's pointer moved on chip: the arena, the input and the output of
 * the device, and the weights copied (s_w), into their places in shared
 * memory; other weights stay. */
__device__ static float *pe__reloc(const float *p, const pe_cuda_persist_t &a,
                                   float *s_arena, float *s_in, float *s_out,
                                   float *s_w) {
  if (p == NULL) {
    return NULL;
  }
  for (int j = 0; j < a.n_wcopy; j++) {
    const pe_cuda_wcopy_t &c = a.wcopy[j];
    if (p >= c.src && p < c.src + c.floats) {
      return s_w + c.off + (p - c.src);
    }
  }
  if (p >= a.arena && p < a.arena + a.arena_floats) {
    return s_arena + (p - a.arena);
  }
  if (p == a.d_in) {
    return s_in;
  }
  if (p == a.d_out) {
    return s_out;
  }
  return (float *)p;
}

/* The stamp of a moment (slot) of request seq, by the kernel's stamping
 * thread (`stamper`: one thread, where STAMP, a.stamps set); step k's
 * slot. */
#define PE__STAMP(seq, slot)                                                   \
  do {                                                                         \
    if (stamper) {                                                             \
      pe__proto_stamp((unsigned long long *)a.stamps, (seq), (slot));          \
    }                                                                          \
  } while (0)
#define PE__STEP_SLOT(k)                                                       \
  (PE_CUDA_STAMP_STEP0 +                                                       \
   ((k) < PE_CUDA_STAMP_STEPS ? (k) : PE_CUDA_STAMP_STEPS - 1))

/* A step in none of the fast forms, by threads t of T (the resident
 * block's, or all of a cluster's), over n windows; an LSTM or GRU takes
 * windows b0, b0 + db, ... each by the whole block, scratch its shared
 * memory. The caller's barrier follows. */
__device__ __forceinline__ static void pe__p_general(const pe_cuda_step_t &s,
                                                     uint32_t n, int b0, int db,
                                                     int t, int T,
                                                     float *scratch) {
  const int kind = s.kind;
  if (pe__lstm_rec(&s)) {
    for (int b = b0; b < (int)n; b += db) {
      pe__d_lstm_rec(s, b, scratch);
    }
  } else if (pe__lstm_wide(&s, (int)blockDim.x)) {
    for (int b = b0; b < (int)n; b += db) {
      pe__d_lstm_wide(s, b, scratch);
    }
  } else if (kind == PE_PLAN_LSTM || kind == PE_PLAN_GRU) {
    int shared_w = 0;
    pe__rnn_shmem(&s, &shared_w);
    for (int b = b0; b < (int)n; b += db) {
      pe__d_rnn(s, b, shared_w, scratch);
      __syncthreads();
    }
  } else if (kind == PE_PLAN_DENSE &&
             pe__split_width(pe__total(&s, n, 1), s.K, T) != 0) {
    const int64_t total = pe__total(&s, n, 1);
    const int g = pe__split_width(total, s.K, T);
    if (pe__fits32(&s, n)) {
      pe__d_dense_split<int>(s, (int)total, g, t);
    } else {
      pe__d_dense_split<int64_t>(s, total, g, t);
    }
  } else {
    pe__d_step<1>(s, kind, n, t, T);
  }
}

template <bool STAMP>
__global__ static void __launch_bounds__(PE_CUDA_PERSIST_THREADS, 1)
    pe__k_persist(const pe_cuda_persist_t a) {
  extern __shared__ float4 shv[];
  unsigned char *shb = (unsigned char *)shv;
  __shared__ uint32_t cmd_n;
  pe__proto_ctrl_t *ctrl = (pe__proto_ctrl_t *)a.ctrl;
  const int tid = (int)threadIdx.x, nt = (int)blockDim.x;
  const int stamper = STAMP && tid == 0;
  const pe_cuda_step_t *steps = a.steps;
  float *x_in = a.d_in;
  const float *x_out = a.d_out;
  float *scratch = (float *)shb;
  if (a.on_chip) {
    /* the steps into shared memory, once per launch */
    pe_cuda_step_t *ss = (pe_cuda_step_t *)shb;
    const int words = (int)(a.n_steps * sizeof(pe_cuda_step_t) / 8);
    const int2 *src = (const int2 *)a.steps;
    int2 *dst = (int2 *)shb;
    for (int i = tid; i < words; i += nt) {
      dst[i] = src[i];
    }
    float *s_arena = (float *)(shb + pe__steps_bytes(a.n_steps));
    /* each region from a 16-byte boundary (the windows are read 16 bytes
     * at a time) */
    float *s_in = s_arena + pe__round4(a.arena_floats);
    float *s_out = s_in + pe__round4(a.max_n * a.in_numel);
    float *s_w = s_out + pe__round4(a.max_n * a.out_numel);
    scratch = s_w + a.w_floats;
    /* the weights that fit, once per launch: a request then reads none
     * from device memory (whose copies in L1 the system fence of each
     * request may drop) */
    for (int j = 0; j < a.n_wcopy; j++) {
      const pe_cuda_wcopy_t c = a.wcopy[j];
      const int n4 = (int)(c.floats / 4);
      const float4 *src4 = (const float4 *)c.src;
      float4 *dst4 = (float4 *)(s_w + c.off);
      for (int i = tid; i < n4; i += nt) {
        dst4[i] = src4[i];
      }
      for (int i = 4 * n4 + tid; i < (int)c.floats; i += nt) {
        s_w[c.off + i] = c.src[i];
      }
    }
    __syncthreads();
    for (int k = tid; k < a.n_steps; k += nt) {
      pe_cuda_step_t &d = ss[k];
      for (int q = 0; q < PE_CUDA_MAX_IN; q++) {
        d.in[q] = pe__reloc(d.in[q], a, s_arena, s_in, s_out, s_w);
      }
      for (int q = 0; q < 3; q++) {
        d.out[q] = pe__reloc(d.out[q], a, s_arena, s_in, s_out, s_w);
      }
      d.w = pe__reloc(d.w, a, s_arena, s_in, s_out, s_w);
      d.w2 = pe__reloc(d.w2, a, s_arena, s_in, s_out, s_w);
      d.bias = pe__reloc(d.bias, a, s_arena, s_in, s_out, s_w);
      d.bias2 = pe__reloc(d.bias2, a, s_arena, s_in, s_out, s_w);
    }
    steps = ss;
    x_in = s_in;
    x_out = s_out;
    __syncthreads();
  }
  uint32_t last = a.last;
  /* window 0's words, polled 16 bytes by each thread from 1 on, as many
   * as there are such threads; the rest of the batch read once the
   * request is in */
  const int w0 = (int)a.in_numel;
  const int polled = w0 < 2 * (nt - 1) ? w0 : 2 * (nt - 1);
  const unsigned long long *h_in = (const unsigned long long *)a.h_in;
  for (;;) {
    const uint32_t expect = pe__proto_next(last);
    if (!pe__proto_wait(ctrl, h_in, polled, expect, a.idle_ns, x_in, &cmd_n,
                        tid)) {
      break;
    }
    last = expect;
    PE__STAMP(last, PE_CUDA_STAMP_SEEN);
    const uint32_t n = cmd_n <= a.max_n ? cmd_n : a.max_n;
    const int n_in = (int)(n * a.in_numel), n_out = (int)(n * a.out_numel);
    pe__proto_read(h_in, polled, n_in, expect, x_in, tid, nt);
    PE__STAMP(last, PE_CUDA_STAMP_WINDOW);
    for (int k = 0; k < a.n_steps; k++) {
      pe__p_general(steps[k], n, 0, 1, tid, nt, scratch);
      __syncthreads();
      PE__STAMP(last, PE__STEP_SLOT(k));
    }
    /* each score with the request's seq in one 8-byte store: the host
     * takes a score once it carries the seq, whatever order the stores
     * arrive in, so no fence waits for them */
    for (int i = tid; i < n_out; i += nt) {
      pe__st_tagged((unsigned long long *)a.h_out + i, last, x_out[i]);
    }
    PE__STAMP(last, PE_CUDA_STAMP_SCORES);
    if (tid == 0) {
      /* for the host's restart logic only (answers carry their seq) */
      pe__proto_done(ctrl, last);
      PE__STAMP(last, PE_CUDA_STAMP_DONE);
    }
  }
  if (tid == 0) {
    pe__proto_leave(ctrl);
  }
}

/* ---- The persistent kernel over a cluster ---------------------------------
 * For plans of many FLOPs a window: a thread-block cluster of a.blocks
 * blocks, one per SM (each asks for over half an SM's shared memory), the
 * activations, the input and the output in device memory, where L2 keeps
 * them. Block 0 waits for a request and reads its windows as the single
 * block does and tells the others through its shared memory; then each
 * step's outputs are shared out over all the cluster's threads (the
 * general kernel's element loops, thread rank * nt + tid of blocks * nt;
 * the windows of an LSTM or GRU a block each), with a cluster barrier
 * between steps (its release and acquire, at cluster scope, make a step's
 * writes visible to every block of the next). The blocks store the
 * scores' tagged words side by side. The steps are copied into each
 * block's shared memory once per launch; the recurrent steps' scratch
 * follows them. */
template <bool STAMP>
__global__ static void __launch_bounds__(PE_CUDA_PERSIST_THREADS, 1)
    pe__k_persist_cl(const pe_cuda_persist_t a) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
  cg::cluster_group cl = cg::this_cluster();
  extern __shared__ float4 shv[];
  unsigned char *shb = (unsigned char *)shv;
  /* block 0's: the request's windows, and 1 to go on (0 to leave) */
  __shared__ uint32_t cmd_n;
  __shared__ int go;
  const int tid = (int)threadIdx.x, nt = (int)blockDim.x;
  const int rank = (int)cl.block_rank(), nb = (int)cl.num_blocks();
  const int gt = rank * nt + tid, gn = nb * nt;
  pe_cuda_step_t *steps = (pe_cuda_step_t *)shb;
  float *scratch = (float *)(shb + pe__steps_bytes(a.n_steps));
  {
    const int words = (int)(a.n_steps * sizeof(pe_cuda_step_t) / 8);
    const int2 *src = (const int2 *)a.steps;
    int2 *dst = (int2 *)shb;
    for (int i = tid; i < words; i += nt) {
      dst[i] = src[i];
    }
  }
  __syncthreads();
  pe__proto_ctrl_t *ctrl = (pe__proto_ctrl_t *)a.ctrl;
  const unsigned long long *h_in = (const unsigned long long *)a.h_in;
  const int w0 = (int)a.in_numel;
  const int polled = w0 < 2 * (nt - 1) ? w0 : 2 * (nt - 1);
  const int *go0 = cl.map_shared_rank(&go, 0);
  const uint32_t *n0 = cl.map_shared_rank(&cmd_n, 0);
  const int stamper = STAMP && rank == 0 && tid == 0;
  uint32_t last = a.last;
  for (;;) {
    const uint32_t expect = pe__proto_next(last);
    if (rank == 0) {
      const int ok = pe__proto_wait(ctrl, h_in, polled, expect, a.idle_ns,
                                    a.d_in, &cmd_n, tid);
      if (ok) {
        PE__STAMP(expect, PE_CUDA_STAMP_SEEN);
        const uint32_t n = cmd_n <= a.max_n ? cmd_n : a.max_n;
        pe__proto_read(h_in, polled, (int)(n * a.in_numel), expect, a.d_in, tid,
                       nt);
      }
      if (tid == 0) {
        go = ok;
      }
    }
    /* block 0's go and cmd_n are read before this block arrives at the
     * next barrier, and block 0 writes them again only after it */
    cl.sync();
    if (!*go0) {
      break;
    }
    const uint32_t n = *n0 <= a.max_n ? *n0 : a.max_n;
    last = expect;
    PE__STAMP(last, PE_CUDA_STAMP_WINDOW);
    for (int k = 0; k < a.n_steps; k++) {
      pe__p_general(steps[k], n, rank, nb, gt, gn, scratch);
      cl.sync();
      PE__STAMP(last, PE__STEP_SLOT(k));
    }
    const int n_out = (int)(n * a.out_numel);
    for (int i = gt; i < n_out; i += gn) {
      pe__st_tagged((unsigned long long *)a.h_out + i, last, a.d_out[i]);
    }
    if (rank == 0 && tid == 0) {
      PE__STAMP(last, PE_CUDA_STAMP_SCORES);
      pe__proto_done(ctrl, last);
      PE__STAMP(last, PE_CUDA_STAMP_DONE);
    }
  }
  /* no block leaves while another may still read its shared memory */
  cl.sync();
  if (rank == 0 && tid == 0) {
    pe__proto_leave(ctrl);
  }
#endif
}

extern "C" int pe_cuda_persist_check(const pe_cuda_step_t *steps, int n_steps,
                                     size_t *scratch) {
  *scratch = 0;
  for (int k = 0; k < n_steps; k++) {
    const pe_cuda_step_t *s = &steps[k];
    if (s->kind == PE_PLAN_LSTM || s->kind == PE_PLAN_GRU) {
      if (s->p[2] > PE_CUDA_PERSIST_THREADS) {
        return k;
      }
      int w = 0;
      size_t b = pe__lstm_rec(s) ? pe__lstm_rec_shmem(s)
                 : pe__lstm_wide(s, PE_CUDA_PERSIST_THREADS)
                     ? pe__lstm_wide_shmem(s, PE_CUDA_PERSIST_THREADS)
                     : pe__rnn_shmem(s, &w);
      *scratch = b > *scratch ? b : *scratch;
    } else if (!pe_cuda_kind_supported(s->kind)) {
      return k;
    }
  }
  return -1;
}

extern "C" size_t pe_cuda_persist_shmem(int n_steps, int64_t floats,
                                        size_t scratch) {
  /* 3 regions of floats, each rounded up to 4 */
  return pe__steps_bytes(n_steps) + (size_t)(floats + 9) * sizeof(float) +
         scratch;
}

extern "C" int pe_cuda_shmem_limit(size_t *bytes) {
  int dev = 0, v = 0;
  cudaError_t e = cudaGetDevice(&dev);
  e = e != cudaSuccess ? e
                       : cudaDeviceGetAttribute(
                             &v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  /* less the persistent kernel's own (static) shared memory, which a
   * launch counts against the same limit */
  size_t st = 0;
  cudaFuncAttributes fa[2];
  if (e == cudaSuccess &&
      (e = cudaFuncGetAttributes(&fa[0], pe__k_persist<false>)) ==
          cudaSuccess &&
      (e = cudaFuncGetAttributes(&fa[1], pe__k_persist<true>)) == cudaSuccess) {
    st = fa[0].sharedSizeBytes > fa[1].sharedSizeBytes ? fa[0].sharedSizeBytes
                                                       : fa[1].sharedSizeBytes;
  }
  *bytes = e == cudaSuccess && (size_t)v > st ? (size_t)v - st : 48 * 1024;
  return (int)e;
}

/* The launch of the cluster kernel for `blocks` blocks of shmem bytes. */
static cudaLaunchConfig_t pe__cluster_config(int blocks, size_t shmem,
                                             cudaStream_t stream,
                                             cudaLaunchAttribute *at) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3((unsigned)blocks, 1, 1);
  cfg.blockDim = dim3(PE_CUDA_PERSIST_THREADS, 1, 1);
  cfg.dynamicSmemBytes = shmem;
  cfg.stream = stream;
  *at = cudaLaunchAttribute{};
  at->id = cudaLaunchAttributeClusterDimension;
  at->val.clusterDim.x = (unsigned)blocks;
  at->val.clusterDim.y = 1;
  at->val.clusterDim.z = 1;
  cfg.attrs = at;
  cfg.numAttrs = 1;
  return cfg;
}

extern "C" int pe_cuda_persist_cluster(int n_steps, size_t scratch, int want,
                                       int *blocks, size_t *shmem) {
  *blocks = 1;
  *shmem = 0;
  int dev = 0, major = 0, per_sm = 0;
  cudaError_t e = cudaGetDevice(&dev);
  e = e != cudaSuccess ? e
                       : cudaDeviceGetAttribute(
                             &major, cudaDevAttrComputeCapabilityMajor, dev);
  e = e != cudaSuccess
          ? e
          : cudaDeviceGetAttribute(
                &per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev);
  if (e != cudaSuccess || major < 9 || want < 2) {
    return (int)e;
  }
  /* over half an SM's shared memory, so that no two blocks share an SM */
  size_t need = pe__steps_bytes(n_steps) + scratch;
  size_t half = (size_t)per_sm / 2;
  size_t b = need > half ? need : half;
  void (*k[2])(const pe_cuda_persist_t) = {pe__k_persist_cl<false>,
                                           pe__k_persist_cl<true>};
  for (int i = 0; i < 2 && e == cudaSuccess; i++) {
    e = cudaFuncSetAttribute(k[i],
                             cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
    e = e != cudaSuccess
            ? e
            : cudaFuncSetAttribute(
                  k[i], cudaFuncAttributeMaxDynamicSharedMemorySize, (int)b);
  }
  cudaLaunchAttribute at;
  cudaLaunchConfig_t cfg = pe__cluster_config(want, b, 0, &at);
  int size = 0, clusters = 0;
  e = e != cudaSuccess
          ? e
          : cudaOccupancyMaxPotentialClusterSize(&size, k[0], &cfg);
  size = size < want ? size : want;
  if (e == cudaSuccess && size >= 2) {
    cfg = pe__cluster_config(size, b, 0, &at);
    e = cudaOccupancyMaxActiveClusters(&clusters, k[0], &cfg);
  }
  if (e != cudaSuccess || size < 2 || clusters < 1) {
    /* one block then; a query the device refused is no failure of the
     * model's */
    cudaGetLastError();
    return 0;
  }
  *blocks = size;
  *shmem = b;
  return 0;
}

extern "C" int pe_cuda_persist_launch(const pe_cuda_persist_t *a, size_t shmem,
                                      void *stream) {
  if (a->blocks > 1) {
    void (*k)(const pe_cuda_persist_t) =
        a->stamps != NULL ? pe__k_persist_cl<true> : pe__k_persist_cl<false>;
    cudaLaunchAttribute at;
    cudaLaunchConfig_t cfg =
        pe__cluster_config(a->blocks, shmem, (cudaStream_t)stream, &at);
    return (int)cudaLaunchKernelEx(&cfg, k, *a);
  }
  void (*k)(const pe_cuda_persist_t) =
      a->stamps != NULL ? pe__k_persist<true> : pe__k_persist<false>;
  cudaError_t e = cudaFuncSetAttribute(
      k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)shmem);
  if (e != cudaSuccess) {
    return (int)e;
  }
  k<<<1, PE_CUDA_PERSIST_THREADS, shmem, (cudaStream_t)stream>>>(*a);
  return (int)cudaPeekAtLastError();
}

extern "C" int pe_cuda_dense_warp(int64_t K) { return K >= 128; }

extern "C" int pe_cuda_device_count(int *count) {
  *count = 0;
  cudaError_t e = cudaGetDeviceCount(count);
  if (e != cudaSuccess) {
    *count = 0;
    cudaGetLastError(); /* clear it */
  }
  return (int)e;
}

extern "C" int pe_cuda_device_name(int dev, char *buf, size_t cap, int *major,
                                   int *minor) {
  cudaDeviceProp p;
  cudaError_t e = cudaGetDeviceProperties(&p, dev);
  if (e != cudaSuccess) {
    return (int)e;
  }
  snprintf(buf, cap, "%s", p.name);
  *major = p.major;
  *minor = p.minor;
  return 0;
}

extern "C" const char *pe_cuda_strerror(int err) {
  return cudaGetErrorString((cudaError_t)err);
}

extern "C" int pe_cuda_malloc(void **p, size_t bytes) {
  pe__n_alloc++;
  return (int)cudaMalloc(p, bytes);
}

extern "C" int pe_cuda_host_alloc(void **p, size_t bytes) {
  pe__n_alloc++;
  return (int)cudaMallocHost(p, bytes);
}

extern "C" int pe_cuda_host_alloc_mapped(void **p, size_t bytes) {
  pe__n_alloc++;
  return (int)cudaHostAlloc(p, bytes, cudaHostAllocMapped);
}

extern "C" void pe_cuda_free(void *p) {
  if (p != NULL) {
    cudaFree(p);
  }
}

extern "C" void pe_cuda_host_free(void *p) {
  if (p != NULL) {
    cudaFreeHost(p);
  }
}

extern "C" uint64_t pe_cuda_alloc_count(void) { return pe__n_alloc; }
