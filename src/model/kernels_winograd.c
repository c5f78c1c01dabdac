/* Conv1d with 4 taps by Winograd's minimal filtering, F(5, 4): five
 * outputs of a 4-tap correlation from the element-wise product of two
 * 8-point transforms (Lavin and Gray, "Fast Algorithms for Convolutional
 * Neural Networks", 2015; interpolation points 0, 1, -1, 2, -2, 1/2, -1/2
 * and infinity, the set of their F(6, 3)). Over cin input and cout output
 * channels that is 8 products of a [cout x cin] matrix by the transformed
 * input instead of 20, 0.4 of the multiply-adds of the direct kernel; the
 * transforms are O(cin + cout) per output position.
 *
 * The convolution is taken as rows: a dilation d over a window of H * d
 * floats is H rows of d columns, each tap one row further (the (4, 1)
 * convolutions of a 2-D model run this way over their flattened H * W
 * axis, ops_conv2d.c). Rows of at least 8 columns only. A tile is five
 * output rows; its positions are its d columns, and the positions of all
 * tiles are taken one after another, a chunk of 32 (AVX-512) or 48 (AVX2)
 * at a time, so that vectors stay full whatever d is
 * (kernels_winograd.inc): the input transform of a chunk (8 rows of
 * positions per input channel), then per block of 8 output channels the
 * 8 products of its [8 x cin] matrices by them (register blocks of 8
 * output channels x 32 positions, or 4 x 24) and at once their output
 * transform with the bias and LeakyRelu, each reading what the one before
 * wrote while it is still in L1 (the chunk's transformed input is 32 KB at
 * 32 input channels, a block's products 8 KB).
 *
 * Rounding: the transforms add float roundings of their own (the largest
 * factors are 21/4 in B^T and 16 in A^T): on random data with cin = 32,
 * weights scaled by 1 / sqrt(4 cin) and outputs of order 1, the largest
 * error is about 1.6e-6 against 3e-7 for the direct sum (2e-6 at
 * cin = 64, 3e-6 at 128); F(6, 4), a ninth point, would be about 7e-6.
 * The generic table keeps the direct kernel: it is the reference the
 * vector tables are compared with.
 *
 * The 1-D form (AVX-512 only): 3, 4 or 5 taps at dilation 1, F(6, 3),
 * F(5, 4) or F(4, 5) over the same 8 points (so the same B^T; G is each
 * tap count's polynomial at the points, scaled alike). Its positions are
 * single floats, too few a row for vectors of positions, so the output
 * channels go in the lanes instead: the window is turned into rows of
 * input channels, the input transform takes each tile's 8 rows as
 * vectors of channels, and the products are [cout x cin] matrices by
 * broadcast tiles, 32 output channels x 8 tiles a register block. */
#include <stdlib.h>
#include <string.h>

#include "model/model_impl.h"
#include "pe/error.h"

#define PE__WG_A 8 /* points of the transforms */
#define PE__WG_M 5 /* output rows per tile */

/* Shape of an eligible step: rows of d columns, 4 taps a row apart, pads
 * of whole rows (a 'same' (4, 1) convolution: rows of zeros above and
 * below). */
static int pe__wg_fits(const pe__step_t *s) {
  const int64_t cin = s->p[0], cout = s->p[1], d = s->p[5], win = s->p[8];
  const int64_t pl = s->p[6], pr = s->p[7];
  return s->kind == PE__K_CONV1D && s->p[2] == 1 && s->p[3] == 4 &&
         s->p[4] == 1 && d >= 8 && pl >= 0 && pr >= 0 && pl % d == 0 &&
         pr % d == 0 && win % d == 0 && (win + pl + pr) / d >= 3 + PE__WG_M &&
         cin >= 8 && cout >= 8 && s->p[9] == win + pl + pr - 3 * d &&
         s->w != NULL && s->bias != NULL;
}

/* The points of the transforms but infinity, and the scale of each
 * point's row of G: the Lagrange denominators that the rows of B^T
 * (kernels_winograd.inc) leave out. B^T depends on the points alone, so
 * these are the same whatever the number of taps. */
static const double pe__wg_pt[PE__WG_A - 1] = {0.0,  1.0, -1.0, 2.0,
                                               -2.0, 0.5, -0.5};
static const double pe__wg_gs[PE__WG_A] = {
    1.0,         -2.0 / 9.0,  -2.0 / 9.0,  1.0 / 360.0,
    1.0 / 360.0, 32.0 / 45.0, 32.0 / 45.0, 1.0};

/* U = G w for one (output, input) channel pair of k taps w: at each
 * point p the polynomial w[0] + w[1] p + ... + w[k-1] p^(k-1), scaled;
 * at infinity its leading coefficient. */
static void pe__wg_g(const float *w, int64_t k, double u[PE__WG_A]) {
  for (int a = 0; a < PE__WG_A - 1; a++) {
    double g = 0.0, pw = 1.0;
    for (int64_t j = 0; j < k; j++, pw *= pe__wg_pt[a]) {
      g += (double)w[j] * pw;
    }
    u[a] = g * pe__wg_gs[a];
  }
  u[PE__WG_A - 1] = w[k - 1];
}

/* Output channels of a block of the packed transformed weights: the
 * AVX-512 products take blocks of 8, the AVX2 ones 4 of them. */
#define PE__WG_CO 8

/* The 1-D form: taps 3, 4 or 5 at dilation 1 and stride 1, any pads, at
 * least two tiles of output, channels from 8 in and a multiple of 16 out
 * (the output channels go in the lanes). */
static int pe__w1_fits(const pe__step_t *s) {
  const int64_t cin = s->p[0], cout = s->p[1], k = s->p[3];
  const int64_t pl = s->p[6], pr = s->p[7], win = s->p[8], wout = s->p[9];
  return s->kind == PE__K_CONV1D && s->p[2] == 1 && k >= 3 && k <= 5 &&
         s->p[4] == 1 && s->p[5] == 1 && pl >= 0 && pr >= 0 &&
         wout == win + pl + pr - (k - 1) && wout >= 2 * (PE__WG_A + 1 - k) &&
         cin >= 8 && cout >= 16 && cout % 16 == 0 && s->w != NULL &&
         s->bias != NULL;
}

/* The 1-D form's step: p[2] outputs a tile (m), p[3] taps, p[4]
 * PE__WG_1D. */
#define PE__WG_1D 1

/* The 1-D form's run: tile q of m outputs reads the inputs from m q - pl
 * on; the output channels of a block go in the lanes of PE__W1_CB / 16
 * vectors, the tiles of a register block (PE__W1_QB) are broadcast. */
#define PE__W1_CB 32
#define PE__W1_QB 8

static int64_t pe__w1_tiles(const pe__step_t *s) {
  return (s->p[9] + s->wg->p[2] - 1) / s->wg->p[2];
}

/* Input rows its tiles read: tile q reads rows m q .. m q + 7 of the
 * window with pl rows of zeros above it. */
static int64_t pe__w1_rows(const pe__step_t *s) {
  return s->wg->p[2] * pe__w1_tiles(s) + PE__WG_A;
}

/* Floats of its scratch: the window as rows of channels (zeros above and
 * below), V[a][q][ci], the products of one block of output channels
 * M[q][a][c], and its outputs as rows of channels. */
static int64_t pe__w1_scratch(const pe__step_t *s) {
  const int64_t t = pe__w1_tiles(s);
  return pe__w1_rows(s) * s->p[0] + PE__WG_A * t * s->p[0] +
         t * PE__WG_A * PE__W1_CB + s->wg->p[2] * t * PE__W1_CB;
}

/* The packed step of a Winograd form, only its weights used: U = G w of
 * each (output, input) channel pair. Rows form: U[a] as blocks of
 * PE__WG_CO output channels, channel co at w + ((a * coutp + co - co %
 * PE__WG_CO) * cin + ci * PE__WG_CO + co % PE__WG_CO), zeros past cout
 * (p[1] coutp). 1-D form: U[a][ci][co] at w + (a * cin + ci) * cout + co
 * (p[1] cout). */
int pe__conv1d_wg_pack(pe__step_t *s) {
  const int one_d = s->wg == NULL && pe__w1_fits(s);
  if (s->wg != NULL || (!one_d && !pe__wg_fits(s))) {
    return PE_OK;
  }
  const int64_t cin = s->p[0], cout = s->p[1], k = s->p[3];
  const int64_t coutp =
      one_d ? cout : (cout + PE__WG_CO - 1) / PE__WG_CO * PE__WG_CO;
  pe__step_t *g = calloc(1, sizeof *g);
  if (g == NULL) {
    return PE_ENOMEM;
  }
  g->kind = PE__K_CONV1D;
  g->p[0] = cin;
  g->p[1] = coutp;
  if (one_d) {
    g->p[2] = PE__WG_A + 1 - k;
    g->p[3] = k;
    g->p[4] = PE__WG_1D;
  }
  g->w = calloc((size_t)(PE__WG_A * coutp * cin), sizeof(float));
  if (g->w == NULL) {
    free(g);
    return PE_ENOMEM;
  }
  for (int64_t co = 0; co < cout; co++) {
    for (int64_t ci = 0; ci < cin; ci++) {
      double u[PE__WG_A];
      pe__wg_g(s->w + (co * cin + ci) * k, k, u);
      for (int a = 0; a < PE__WG_A; a++) {
        g->w[one_d ? (a * cin + ci) * cout + co
                   : (a * coutp + co - co % PE__WG_CO) * cin + ci * PE__WG_CO +
                         co % PE__WG_CO] = (float)u[a];
      }
    }
  }
  s->wg = g;
  return PE_OK;
}

/* Floats per row of a chunk's transformed input and products: room for
 * the largest chunk (48 positions, AVX2; the AVX-512 form's chunks of 32
 * take rows of 48, PE__WT_LR), an odd number of 64-byte lines, so that
 * the rows of one block spread over the L1 sets. */
#define PE__WG_LR 80

/* Floats of the scratch: the transformed input (8 cin rows), then the
 * products of one block of output channels (8 PE__WG_CO rows), each of at
 * most PE__WG_LR floats. */
int64_t pe__conv1d_wg_scratch(const pe__step_t *s) {
  if (s->wg->p[4] == PE__WG_1D) {
    return pe__w1_scratch(s);
  }
  return PE__WG_A * (s->p[0] + PE__WG_CO) * PE__WG_LR;
}

const char *pe__conv1d_wg_form(const pe__step_t *s, int level) {
  static const char *const names[] = {" winograd F(6,3)", " winograd F(5,4)",
                                      " winograd F(4,5)"};
  if (s->wg == NULL || level < (s->wg->p[4] == PE__WG_1D ? 2 : 1)) {
    return NULL;
  }
  return names[s->p[3] - 3];
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

/* AVX2: 8 lanes, masks as vectors of all-ones lanes, masked loads merged
 * by OR (maskload leaves the other lanes +0.0, all bits clear); products
 * in blocks of 4 output channels x 24 positions */
#define PE__WT_ATTR __attribute__((target("avx2,fma")))
#define PE__WT_V __m256
#define PE__WT_L 8
#define PE__WT_NV 3
#define PE__WT_CO 4
#define PE__WT_NP 48
#define PE__WT_LR PE__WG_LR
#define PE__WT_M __m256i
#define PE__WT_MASK(l0, l1)                                                    \
  _mm256_and_si256(                                                            \
      _mm256_cmpgt_epi32(_mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8),            \
                         _mm256_set1_epi32(l0)),                               \
      _mm256_cmpgt_epi32(_mm256_set1_epi32(l1),                                \
                         _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)))
#define PE__WT_LDM(v, m, p) _mm256_or_ps(v, _mm256_maskload_ps(p, m))
#define PE__WT_STM(p, m, v) _mm256_maskstore_ps(p, m, v)
#define PE__WT_LD(p) _mm256_loadu_ps(p)
#define PE__WT_ST(p, v) _mm256_storeu_ps(p, v)
#define PE__WT_ADD(a, b) _mm256_add_ps(a, b)
#define PE__WT_SUB(a, b) _mm256_sub_ps(a, b)
#define PE__WT_MUL(a, b) _mm256_mul_ps(a, b)
#define PE__WT_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define PE__WT_FNMA(a, b, c) _mm256_fnmadd_ps(a, b, c)
#define PE__WT_SET1(f) _mm256_set1_ps(f)
#define PE__WT_ZERO _mm256_setzero_ps()
#define PE__WT_LEAKY(v, a)                                                     \
  _mm256_blendv_ps(_mm256_mul_ps(v, a), v,                                     \
                   _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ))
#define PE__WT_RELU(v) _mm256_max_ps(v, _mm256_setzero_ps())
#define PE__WT_SEGS_T pe__wg_segs8_t
#define PE__WT_SEGS pe__wg_segs8
#define PE__WT_BT pe__wg_bt8
#define PE__WT_IN pe__wg_in8
#define PE__WT_MM pe__wg_mm8
#define PE__WT_OUT pe__wg_out8
#define PE__WT_RUN pe__wg_run8
#include "model/kernels_winograd.inc"

/* AVX-512: 16 lanes, mask registers; products in blocks of 8 output
 * channels x 32 positions */
#define PE__WT_ATTR __attribute__((target("avx512f,avx2,fma")))
#define PE__WT_V __m512
#define PE__WT_L 16
#define PE__WT_NV 2
#define PE__WT_CO 8
#define PE__WT_NP 32
#define PE__WT_LR 48
#define PE__WT_M __mmask16
#define PE__WT_MASK(l0, l1)                                                    \
  ((__mmask16)(((1u << (l1)) - 1u) & ~((1u << (l0)) - 1u)))
#define PE__WT_LDM(v, m, p) _mm512_mask_loadu_ps(v, m, p)
#define PE__WT_STM(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define PE__WT_LD(p) _mm512_loadu_ps(p)
#define PE__WT_ST(p, v) _mm512_storeu_ps(p, v)
#define PE__WT_ADD(a, b) _mm512_add_ps(a, b)
#define PE__WT_SUB(a, b) _mm512_sub_ps(a, b)
#define PE__WT_MUL(a, b) _mm512_mul_ps(a, b)
#define PE__WT_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define PE__WT_FNMA(a, b, c) _mm512_fnmadd_ps(a, b, c)
#define PE__WT_SET1(f) _mm512_set1_ps(f)
#define PE__WT_ZERO _mm512_setzero_ps()
#define PE__WT_LEAKY(v, a)                                                     \
  _mm512_mask_mul_ps(                                                          \
      v, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ), v, a)
#define PE__WT_RELU(v) _mm512_max_ps(v, _mm512_setzero_ps())
#define PE__WT_SEGS_T pe__wg_segs16_t
#define PE__WT_SEGS pe__wg_segs16
#define PE__WT_BT pe__wg_bt16
#define PE__WT_IN pe__wg_in16
#define PE__WT_MM pe__wg_mm16
#define PE__WT_OUT pe__wg_out16
#define PE__WT_RUN pe__wg_run16
#include "model/kernels_winograd.inc"

/* the AVX-512 table's target (kernels_avx512.c): its lane helpers inline
 * here */
#define PE__AVX512 __attribute__((target("avx512f,avx512dq,avx2,fma")))
#include "model/kernels_lanes512.h"

/* The 1-D form (AVX-512). The products of point a for the qn tiles from
 * v (tile j at v + j * cin, input channel ci at + ci) and the cv
 * vectors of output channels from u (a row of cout a channel): M[q][a][c]
 * at mb + q * PE__WG_A * PE__W1_CB + c. Inlined with constant cv and qn,
 * so that the accumulators stay in registers. */
PE__AVX512 static inline __attribute__((always_inline)) void
pe__w1_mm(const float *u, int64_t cout, const float *v, int64_t cin, float *mb,
          int cv, int qn) {
  __m512 acc[2][PE__W1_QB];
  _Pragma("GCC unroll 8") for (int j = 0; j < qn; j++) {
    acc[0][j] = _mm512_setzero_ps();
    acc[1][j] = _mm512_setzero_ps();
  }
  for (int64_t ci = 0; ci < cin; ci++, u += cout, v++) {
    const __m512 w0 = _mm512_loadu_ps(u);
    const __m512 w1 = cv > 1 ? _mm512_loadu_ps(u + 16) : w0;
    _Pragma("GCC unroll 8") for (int j = 0; j < qn; j++) {
      const __m512 b = _mm512_set1_ps(v[j * cin]);
      acc[0][j] = _mm512_fmadd_ps(w0, b, acc[0][j]);
      if (cv > 1) {
        acc[1][j] = _mm512_fmadd_ps(w1, b, acc[1][j]);
      }
    }
  }
  _Pragma("GCC unroll 8") for (int j = 0; j < qn; j++) {
    _mm512_storeu_ps(mb + j * PE__WG_A * PE__W1_CB, acc[0][j]);
    if (cv > 1) {
      _mm512_storeu_ps(mb + j * PE__WG_A * PE__W1_CB + 16, acc[1][j]);
    }
  }
}

PE__AVX512 static void pe__w1_block(const float *u, int64_t cout,
                                    const float *v, int64_t cin, float *mb,
                                    int cv, int qn) {
#define PE__W1_Q(q)                                                            \
  case q:                                                                      \
    if (cv > 1) {                                                              \
      pe__w1_mm(u, cout, v, cin, mb, 2, q);                                    \
    } else {                                                                   \
      pe__w1_mm(u, cout, v, cin, mb, 1, q);                                    \
    }                                                                          \
    break;
  switch (qn) {
    PE__W1_Q(1)
    PE__W1_Q(2)
    PE__W1_Q(3)
    PE__W1_Q(4)
    PE__W1_Q(5)
    PE__W1_Q(6)
    PE__W1_Q(7)
    PE__W1_Q(8)
  default:
    break;
  }
#undef PE__W1_Q
}

/* Output transform of the t tiles of the cv vectors of output channels
 * from co0 (products mb as pe__w1_mm writes them): A^T M, output i of a
 * tile the sum over the points p of p^i M[p] (M[infinity] in the last
 * only), plus the bias; Relu or LeakyRelu, then the affine step after the
 * convolution where it has one (es, et); output r of channel co0 + c at
 * yt[r * PE__W1_CB + c], the last tile's outputs past wout left out. */
PE__AVX512 static void pe__w1_out(const pe__step_t *s, const float *mb,
                                  int64_t co0, int cv, int64_t t, float *yt) {
  const int64_t m = s->wg->p[2], wout = s->p[9];
  const __m512 zero = _mm512_setzero_ps(), av = _mm512_set1_ps(s->alpha);
  for (int c = 0; c < cv; c++) {
    const int64_t co = co0 + 16 * c;
    const __m512 bv = _mm512_loadu_ps(s->bias + co);
    const __m512 esv = s->es != NULL ? _mm512_loadu_ps(s->es + co) : zero;
    const __m512 etv = s->es != NULL ? _mm512_loadu_ps(s->et + co) : zero;
    for (int64_t q = 0; q < t; q++) {
      const float *mq = mb + q * PE__WG_A * PE__W1_CB + 16 * c;
      const __m512 a1 = _mm512_loadu_ps(mq + PE__W1_CB);
      const __m512 a2 = _mm512_loadu_ps(mq + 2 * PE__W1_CB);
      const __m512 a3 = _mm512_loadu_ps(mq + 3 * PE__W1_CB);
      const __m512 a4 = _mm512_loadu_ps(mq + 4 * PE__W1_CB);
      const __m512 a5 = _mm512_loadu_ps(mq + 5 * PE__W1_CB);
      const __m512 a6 = _mm512_loadu_ps(mq + 6 * PE__W1_CB);
      /* the points in pairs p, -p: sums for the even powers, differences
       * for the odd ones */
      const __m512 sp[3] = {_mm512_add_ps(_mm512_add_ps(a1, a2), bv),
                            _mm512_add_ps(a3, a4), _mm512_add_ps(a5, a6)};
      const __m512 dp[3] = {_mm512_add_ps(_mm512_sub_ps(a1, a2), bv),
                            _mm512_sub_ps(a3, a4), _mm512_sub_ps(a5, a6)};
      const int64_t rows = wout - m * q < m ? wout - m * q : m;
      float *yq = yt + m * q * PE__W1_CB + 16 * c;
      float p2 = 1.0f;
      for (int64_t i = 0; i < rows; i++, p2 *= 2.0f) {
        const __m512 *e = i % 2 ? dp : sp;
        __m512 o = _mm512_fmadd_ps(
            _mm512_set1_ps(p2), e[1],
            _mm512_fmadd_ps(_mm512_set1_ps(1.0f / p2), e[2], e[0]));
        if (i == 0) {
          o = _mm512_add_ps(o, _mm512_loadu_ps(mq));
        }
        if (i == m - 1) {
          o = _mm512_add_ps(o, _mm512_loadu_ps(mq + 7 * PE__W1_CB));
        }
        if (s->act == PE__ACT_RELU) {
          o = _mm512_max_ps(o, zero);
        } else if (s->act == PE__ACT_LEAKY) {
          o = _mm512_mask_mul_ps(o, _mm512_cmp_ps_mask(o, zero, _CMP_LT_OQ), o,
                                 av);
        }
        if (s->es != NULL) {
          o = _mm512_add_ps(_mm512_mul_ps(o, esv), etv);
        }
        _mm512_storeu_ps(yq + i * PE__W1_CB, o);
      }
    }
  }
}

/* One window in the 1-D form: the window turned into rows of channels,
 * the input transform of every tile with the input channels in the lanes,
 * then per block of output channels the products of the 8 points, the
 * output transform, and its rows of channels turned back into channels of
 * rows. */
PE__AVX512 static void pe__w1_run(const pe__step_t *s, const float *x, float *y,
                                  float *scratch) {
  const int64_t cin = s->p[0], cout = s->p[1], pl = s->p[6], win = s->p[8];
  const int64_t wout = s->p[9], m = s->wg->p[2], t = pe__w1_tiles(s);
  const int64_t rows = pe__w1_rows(s);
  float *xt = scratch, *v = xt + rows * cin, *mb = v + PE__WG_A * t * cin;
  float *yt = mb + t * PE__WG_A * PE__W1_CB;
  /* row r: the window's column r - pl, zeros outside it; blocks of 16
   * rows by 16 channels */
  for (int64_t r0 = 0; r0 < rows; r0 += 16) {
    const __mmask16 cols =
        (__mmask16)(pe__m16(win - (r0 - pl)) & ~pe__m16(pl - r0));
    for (int64_t c0 = 0; c0 < cin; c0 += 16) {
      __m512 b[16];
      for (int i = 0; i < 16; i++) {
        b[i] = c0 + i < cin
                   ? _mm512_maskz_loadu_ps(cols, x + (c0 + i) * win + (r0 - pl))
                   : _mm512_setzero_ps();
      }
      pe__tr16(b);
      const __mmask16 k = pe__m16(cin - c0);
      for (int i = 0; i < 16 && r0 + i < rows; i++) {
        _mm512_mask_storeu_ps(xt + (r0 + i) * cin + c0, k, b[i]);
      }
    }
  }
  /* V[a][q][ci] at v + (a * t + q) * cin + ci; the channels past the last
   * whole vector under a mask */
  for (int64_t q = 0; q < t; q++) {
    const float *xq = xt + m * q * cin;
    for (int64_t c0 = 0; c0 < cin; c0 += 16) {
      const __mmask16 k = pe__m16(cin - c0);
      __m512 d[PE__WG_A];
      for (int j = 0; j < PE__WG_A; j++) {
        d[j] = _mm512_maskz_loadu_ps(k, xq + j * cin + c0);
      }
      float tmp[PE__WG_A * 16];
      pe__wg_bt16(d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], tmp, 16);
      for (int a = 0; a < PE__WG_A; a++) {
        _mm512_mask_storeu_ps(v + (a * t + q) * cin + c0, k,
                              _mm512_loadu_ps(tmp + a * 16));
      }
    }
  }
  for (int64_t co0 = 0; co0 < cout; co0 += PE__W1_CB) {
    const int cv = cout - co0 >= PE__W1_CB ? 2 : 1;
    for (int a = 0; a < PE__WG_A; a++) {
      const float *u = s->wg->w + a * cin * cout + co0;
      const float *va = v + a * t * cin;
      for (int64_t q0 = 0; q0 < t; q0 += PE__W1_QB) {
        const int qn = t - q0 < PE__W1_QB ? (int)(t - q0) : PE__W1_QB;
        pe__w1_block(u, cout, va + q0 * cin, cin,
                     mb + (q0 * PE__WG_A + a) * PE__W1_CB, cv, qn);
      }
    }
    pe__w1_out(s, mb, co0, cv, t, yt);
    /* blocks of 16 rows by 16 channels back */
    for (int c = 0; c < cv; c++) {
      for (int64_t r0 = 0; r0 < wout; r0 += 16) {
        __m512 b[16];
        for (int i = 0; i < 16; i++) {
          b[i] = r0 + i < wout
                     ? _mm512_loadu_ps(yt + (r0 + i) * PE__W1_CB + 16 * c)
                     : _mm512_setzero_ps();
        }
        pe__tr16(b);
        const __mmask16 k = pe__m16(wout - r0);
        for (int i = 0; i < 16; i++) {
          _mm512_mask_storeu_ps(y + (co0 + 16 * c + i) * wout + r0, k, b[i]);
        }
      }
    }
  }
}

void pe__conv1d_wg(const pe__step_t *s, const pe__kernels_t *kn, const float *x,
                   float *y, float *scratch) {
  if (s->wg->p[4] == PE__WG_1D) {
    if (kn->level < 2) {
      kn->conv1d(s, x, y, scratch);
      return;
    }
    pe__w1_run(s, x, y, scratch);
    /* Relu and LeakyRelu ran in the output transform, the others here
     * (no affine step after those: plan.c) */
    if (s->act != PE__ACT_NONE && s->act != PE__ACT_RELU &&
        s->act != PE__ACT_LEAKY) {
      kn->act(y, s->p[1] * s->p[9], s->act, s->alpha);
    }
    return;
  }
  if (kn->level >= 2) {
    pe__wg_run16(s, x, y, scratch);
  } else {
    pe__wg_run8(s, x, y, scratch);
  }
  /* Relu and LeakyRelu ran in the output transform, the others here (no
   * affine step after those: plan.c) */
  if (s->act != PE__ACT_NONE && s->act != PE__ACT_RELU &&
      s->act != PE__ACT_LEAKY) {
    kn->act(y, s->p[1] * s->p[9], s->act, s->alpha);
  }
}
#else
/* Only the vector tables (x86) take the Winograd form. */
void pe__conv1d_wg(const pe__step_t *s, const pe__kernels_t *kn, const float *x,
                   float *y, float *scratch) {
  kn->conv1d(s, x, y, scratch);
}
#endif
