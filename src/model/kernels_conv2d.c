/* 2-D convolution and pooling over one window [C, H, W] (parameters in
 * model_impl.h).
 *
 * Conv2d, generic: a direct loop summing in double, the reference the
 * vector paths are tested against. Conv2d, vector: im2col + GEMM through
 * the dense kernel of the instruction set. The output [cout][OH * OW] is
 * the dense layer y = x w^T with the weights [cout][K + 1] (a bias column
 * appended by pe__conv2d_pack) as the rows x and the image patches as the
 * packed w: patches of one block of PE__C2_COLS output positions are
 * written straight into the panel layout of pe__dense_pack
 * ([K + 1][16] per 16 positions, the last row all ones for the bias), so
 * the packing is the im2col and the patches of a block stay in L2. The
 * dense kernel fuses Relu and LeakyRelu; other activations run after.
 *
 * Hot path: nothing here allocates; the patches use the context's
 * scratch (pe__conv2d_scratch). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "model/kernels_shared.h"
#include "model/model_impl.h"
#include "pe/error.h"

/* Output positions per im2col block: 16 panels. */
#define PE__C2_COLS 256

void pe__conv2d_generic(const pe__step_t *s, const float *x, float *y,
                        float *scratch) {
  (void)scratch;
  const int64_t cin = s->p[0], cout = s->p[1], group = s->p[2];
  const int64_t kh = s->p[3], kw = s->p[4];
  const int64_t H = s->p[11], W = s->p[12], OH = s->p[13], OW = s->p[14];
  const int64_t cin_g = cin / group, cout_g = cout / group;
  for (int64_t co = 0; co < cout; co++) {
    const int64_t g = co / cout_g;
    const float *w = s->w + co * cin_g * kh * kw;
    float *yc = y + co * OH * OW;
    for (int64_t oh = 0; oh < OH; oh++) {
      for (int64_t ow = 0; ow < OW; ow++) {
        const double acc = pe_ks_conv2d_at(s->p, x + g * cin_g * H * W, w,
                                           (double)s->bias[co], oh, ow);
        yc[oh * OW + ow] = (float)acc;
      }
    }
    pe__act_apply(yc, OH * OW, s->act, s->alpha);
  }
}

/* Writes n values to patch row k of the panel layout (pe__im2col) at
 * positions q, q + 1, ...: src[0], src[stride], ... or zeros (src NULL),
 * in runs that end at the 16-position panel boundaries. Runs of zeros
 * store 16 floats whatever their length: past the run they land in row
 * k + 1 of the same panel (k is never the last row, the ones), which is
 * written after row k. Fixed sizes keep the copies inline: short runs of
 * a few floats are most of the calls for small images. */
static void pe__put_run(float *col, int64_t K1, int64_t k, int64_t q,
                        const float *src, int64_t stride, int64_t n) {
  while (n > 0) {
    const int64_t lane = q & 15, c = 16 - lane < n ? 16 - lane : n;
    float *d = col + ((q >> 4) * K1 + k) * 16 + lane;
    if (src == NULL) {
      memset(d, 0, 16 * sizeof(float));
    } else if (c == 16 && stride == 1) {
      memcpy(d, src, 16 * sizeof(float));
      src += 16;
    } else {
      for (int64_t t = 0; t < c; t++) {
        d[t] = src[t * stride];
      }
      src += c * stride;
    }
    q += c;
    n -= c;
  }
}

/* Values of a run of n positions with a zero prefix of z0 and a zero
 * suffix past z0 + len: zeros, base[at], base[at + stride]..., zeros
 * (at is formed only when some value is read). */
static void pe__put_padded(float *col, int64_t K1, int64_t k, int64_t q,
                           int64_t n, int64_t z0, const float *base, int64_t at,
                           int64_t stride, int64_t len) {
  z0 = z0 < 0 ? 0 : (z0 > n ? n : z0);
  len = len < 0 ? 0 : (len > n - z0 ? n - z0 : len);
  pe__put_run(col, K1, k, q, NULL, 0, z0);
  pe__put_run(col, K1, k, q + z0, len > 0 ? base + at : NULL, stride, len);
  pe__put_run(col, K1, k, q + z0 + len, NULL, 0, n - z0 - len);
}

/* floor(a / b) for b > 0. */
static int64_t pe__floordiv(int64_t a, int64_t b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* The patches of group g for output positions [m0, m0 + n) in the panel
 * layout: col[((q / 16) * K1 + k) * 16 + q % 16] for position m0 + q and
 * patch row k (ci, i, j), row K1 - 1 all ones; lanes past n zero. Copies
 * runs: a whole block at once where the rows of the output follow each
 * other in the input (kernel width 1, stride 1, no padding along W: the
 * (k, 1) and 1x1 convolutions), else one output row at a time. */
static void pe__im2col(const pe__step_t *s, const float *x, int64_t g,
                       int64_t m0, int64_t n, float *col) {
  const int64_t cin_g = s->p[0] / s->p[2], kh = s->p[3], kw = s->p[4];
  const int64_t sh = s->p[5], sw = s->p[6], dh = s->p[7], dw = s->p[8];
  const int64_t pt = s->p[9], pl = s->p[10], H = s->p[11], W = s->p[12];
  const int64_t OW = s->p[14];
  const int64_t K1 = cin_g * kh * kw + 1, P = (n + 15) / 16;
  const int linear = kw == 1 && sw == 1 && sh == 1 && OW == W;
  if (n % 16 != 0) {
    memset(col + (P - 1) * K1 * 16, 0, (size_t)(K1 * 16) * sizeof(float));
  }
  int64_t k = 0;
  for (int64_t ci = 0; ci < cin_g; ci++) {
    const float *xc = x + (g * cin_g + ci) * H * W;
    for (int64_t i = 0; i < kh; i++) {
      for (int64_t j = 0; j < kw; j++, k++) {
        const int64_t jo = j * dw - pl;
        if (linear) {
          /* position p reads xc[p + (i dh - pt) W], inside for
           * p in [(pt - i dh) W, (H + pt - i dh) W) */
          const int64_t off = (i * dh - pt) * W, lo = -off - m0;
          const int64_t first = lo > 0 ? lo : 0;
          pe__put_padded(col, K1, k, 0, n, lo, xc, m0 + first + off, 1,
                         H * W - off - m0 - first);
          continue;
        }
        if (OW == 1) {
          /* one output column: position p = oh reads row p sh + i dh - pt
           * at column jo, a run of stride sh W over the rows inside */
          const int64_t io = i * dh - pt;
          const int64_t oh_lo = -pe__floordiv(io, sh);
          const int64_t oh_hi = pe__floordiv(H - 1 - io, sh);
          const int64_t first = oh_lo > m0 ? oh_lo : m0;
          pe__put_padded(col, K1, k, 0, n, oh_lo - m0, xc,
                         (first * sh + io) * W + jo, sh * W,
                         jo < 0 || jo >= W ? 0 : oh_hi + 1 - first);
          continue;
        }
        /* output columns ow read iw = ow sw + j dw - pl, inside for
         * ow in [ow_lo, ow_hi] */
        const int64_t ow_lo = jo >= 0 ? 0 : (-jo + sw - 1) / sw;
        const int64_t ow_hi = pe__floordiv(W - 1 - jo, sw);
        for (int64_t q = 0; q < n;) {
          const int64_t oh = (m0 + q) / OW, ow0 = (m0 + q) % OW;
          const int64_t len = OW - ow0 < n - q ? OW - ow0 : n - q;
          const int64_t ih = oh * sh + i * dh - pt;
          if (ih < 0 || ih >= H) {
            pe__put_run(col, K1, k, q, NULL, 0, len);
          } else {
            const int64_t a = ow_lo > ow0 ? ow_lo : ow0;
            pe__put_padded(col, K1, k, q, len, a - ow0, xc,
                           ih * W + a * sw + jo, sw, ow_hi + 1 - a);
          }
          q += len;
        }
      }
    }
  }
  for (int64_t q = 0; q < n; q++) {
    col[((q >> 4) * K1 + k) * 16 + (q & 15)] = 1.0f;
  }
}

/* Conv2d by blocks of output positions: patches, then one dense call per
 * group into a [cout_g][n] tile, copied to the output rows. */
static void pe__conv2d_gemm(const pe__step_t *s, const float *x, float *y,
                            float *scratch, pe__dense_fn dense,
                            pe__act_fn act) {
  const int64_t cout = s->p[1], group = s->p[2];
  const int64_t cout_g = cout / group, M = s->p[13] * s->p[14];
  const int64_t K1 = (s->p[0] / group) * s->p[3] * s->p[4] + 1;
  const int simple = s->act == PE__ACT_NONE || s->act == PE__ACT_RELU ||
                     s->act == PE__ACT_LEAKY;
  float *col = scratch;
  float *tile = col + K1 * PE__C2_COLS;
  pe__dense_t d = s->d;
  for (int64_t m0 = 0; m0 < M; m0 += PE__C2_COLS) {
    const int64_t n = M - m0 < PE__C2_COLS ? M - m0 : PE__C2_COLS;
    d.M = n;
    d.wp = col;
    for (int64_t g = 0; g < group; g++) {
      pe__im2col(s, x, g, m0, n, col);
      dense(&d, s->w2 + g * cout_g * K1, tile, cout_g,
            simple ? s->act : PE__ACT_NONE, s->alpha);
      for (int64_t c = 0; c < cout_g; c++) {
        memcpy(y + (g * cout_g + c) * M + m0, tile + c * n,
               (size_t)n * sizeof(float));
      }
    }
  }
  if (!simple) {
    act(y, cout * M, s->act, s->alpha);
  }
}

void pe__conv2d_gemm_avx2(const pe__step_t *s, const float *x, float *y,
                          float *scratch) {
  pe__conv2d_gemm(s, x, y, scratch, pe__dense_avx2, pe__act_avx2);
}

void pe__conv2d_gemm_avx512(const pe__step_t *s, const float *x, float *y,
                            float *scratch) {
  pe__conv2d_gemm(s, x, y, scratch, pe__dense_avx512, pe__act_avx512);
}

/* Scratch floats of a Conv2d step with table k: the patches of one block
 * and the output tile (none for the direct loop). */
int64_t pe__conv2d_scratch(const pe__step_t *s, const pe__kernels_t *k) {
  if (k->conv2d == pe__conv2d_generic) {
    return 0;
  }
  const int64_t K1 = (s->p[0] / s->p[2]) * s->p[3] * s->p[4] + 1;
  return K1 * PE__C2_COLS + (s->p[1] / s->p[2]) * PE__C2_COLS + 64;
}

/* The weights of a Conv2d step for the GEMM: [cout][K + 1], the bias as
 * the last column, and the zero bias panels the dense kernels read. At
 * load, after fusion (BatchNorm folded into w and bias). */
int pe__conv2d_pack(pe__step_t *s) {
  const int64_t cout = s->p[1];
  const int64_t K = (s->p[0] / s->p[2]) * s->p[3] * s->p[4];
  free(s->w2);
  free(s->d.bp);
  s->w2 = malloc((size_t)(cout * (K + 1)) * sizeof(float));
  s->d.bp = calloc(PE__C2_COLS, sizeof(float));
  if (s->w2 == NULL || s->d.bp == NULL) {
    return PE_ENOMEM;
  }
  for (int64_t c = 0; c < cout; c++) {
    memcpy(s->w2 + c * (K + 1), s->w + c * K, (size_t)K * sizeof(float));
    s->w2[c * (K + 1) + K] = s->bias[c];
  }
  s->d.K = K + 1;
  s->d.M = PE__C2_COLS;
  s->d.dot = 0;
  s->d.bias = NULL;
  s->d.wp = NULL;
  return PE_OK;
}

/* Max or average pooling of one window [C, H, W]. Average: over the
 * positions inside the input, or (count_include_pad) inside the padded
 * input but not the overhang of ceil_mode. The taps inside are ranges,
 * found once per output position. */
void pe__pool2d(const pe__step_t *s, const float *x, float *y) {
  const int64_t C = s->p[0], H = s->p[1], W = s->p[2], OH = s->p[3];
  const int64_t OW = s->p[4], kh = s->p[5], kw = s->p[6], sh = s->p[7];
  const int64_t sw = s->p[8], pt = s->p[9], pl = s->p[10], dh = s->p[11];
  const int64_t dw = s->p[12], pb = s->p[15], pr = s->p[16];
  const int cip = s->p[13] != 0, is_max = s->p[14] != 0;
  /* 3-D pooling: the depth axis in dims[] (ops_conv2d.c); else one plane */
  const int three = s->rank == 3;
  const int64_t D = three ? s->dims[0] : 1, OD = three ? s->dims[1] : 1;
  const int64_t kd = three ? s->dims[2] : 1, sd = three ? s->dims[3] : 1;
  const int64_t dd = three ? s->dims[4] : 1, pf = three ? s->dims[5] : 0;
  const int64_t pk = three ? s->dims[6] : 0;
  if (!three && is_max && kw == 1 && sh == 1 && sw == 1 && pl == 0 && pr == 0 &&
      OW == W) {
    /* the maximum along H alone with stride 1 (a (k, 1) pool over [C, T,
     * W]): tap i reads output position n at n + (i dh - pt) W. Each output
     * is the maximum of its taps taken in the order of the general loop
     * (v > m ? v : m from -inf, which is what maxps computes with v
     * first); the rows that every tap reaches four positions at a time,
     * the others one at a time */
    int64_t lo_all = 0, hi_all = OH;
    for (int64_t i = 0; i < kh; i++) {
      const int64_t sh_i = i * dh - pt;
      lo_all = -sh_i > lo_all ? -sh_i : lo_all;
      hi_all = H - sh_i < hi_all ? H - sh_i : hi_all;
    }
    hi_all = hi_all > lo_all ? hi_all : lo_all;
    for (int64_t c = 0; c < C; c++) {
      const float *restrict xc = x + c * H * W;
      float *restrict yc = y + c * OH * W;
      int64_t n = lo_all * W;
#ifdef __SSE2__
      for (; n + 4 <= hi_all * W; n += 4) {
        __m128 m = _mm_set1_ps(-INFINITY);
        for (int64_t i = 0; i < kh; i++) {
          m = _mm_max_ps(_mm_loadu_ps(xc + n + (i * dh - pt) * W), m);
        }
        _mm_storeu_ps(yc + n, m);
      }
#endif
      for (int64_t k = 0; k < OH * W; k++) {
        if (k == lo_all * W && k < n) {
          k = n - 1; /* the vector loop's outputs */
          continue;
        }
        const int64_t row = k / W;
        float m = -INFINITY;
        for (int64_t i = 0; i < kh; i++) {
          const int64_t r = row + i * dh - pt;
          if (r >= 0 && r < H) {
            const float v = xc[k + (i * dh - pt) * W];
            m = v > m ? v : m;
          }
        }
        yc[k] = m;
      }
    }
    return;
  }
  for (int64_t od = 0; od < OD; od++) {
    const int64_t d0 = od * sd - pf;
    int64_t q0, q1, qp0, qp1;
    pe_ks_tap_range(d0, dd, kd, D, &q0, &q1);
    pe_ks_tap_range(d0 + pf, dd, kd, D + pf + pk, &qp0, &qp1);
    for (int64_t oh = 0; oh < OH; oh++) {
      const int64_t h0 = oh * sh - pt;
      int64_t i0, i1, ip0, ip1;
      pe_ks_tap_range(h0, dh, kh, H, &i0, &i1);
      pe_ks_tap_range(h0 + pt, dh, kh, H + pt + pb, &ip0, &ip1);
      for (int64_t ow = 0; ow < OW; ow++) {
        const int64_t w0 = ow * sw - pl;
        int64_t j0, j1, jp0, jp1;
        pe_ks_tap_range(w0, dw, kw, W, &j0, &j1);
        pe_ks_tap_range(w0 + pl, dw, kw, W + pl + pr, &jp0, &jp1);
        const int64_t cnt = cip ? (qp1 - qp0) * (ip1 - ip0) * (jp1 - jp0)
                                : (q1 - q0) * (i1 - i0) * (j1 - j0);
        const float div = (float)(cnt > 0 ? cnt : 1);
        const int64_t qr[2] = {q0, q1}, ir[2] = {i0, i1}, jr[2] = {j0, j1};
        for (int64_t c = 0; c < C; c++) {
          const int64_t at = ((c * D + d0) * H + h0) * W + w0;
          const float acc =
              pe_ks_pool_taps(x, at, qr, ir, jr, dd, dh, dw, H, W, is_max);
          y[((c * OD + od) * OH + oh) * OW + ow] = is_max ? acc : acc / div;
        }
      }
    }
  }
}
