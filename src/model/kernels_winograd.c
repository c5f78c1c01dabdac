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
 * vector tables are compared with. */
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

/* Output channels of a block of the packed transformed weights: the
 * AVX-512 products take blocks of 8, the AVX2 ones 4 of them. */
#define PE__WG_CO 8

int pe__conv1d_wg_pack(pe__step_t *s) {
  if (s->wg != NULL || !pe__wg_fits(s)) {
    return PE_OK;
  }
  const int64_t cin = s->p[0], cout = s->p[1];
  const int64_t coutp = (cout + PE__WG_CO - 1) / PE__WG_CO * PE__WG_CO;
  pe__step_t *g = calloc(1, sizeof *g);
  if (g == NULL) {
    return PE_ENOMEM;
  }
  /* only its weights are used: U[a] as blocks of PE__WG_CO output
   * channels, channel co at g->w + ((a * coutp + co - co % PE__WG_CO) * cin
   * + ci * PE__WG_CO + co % PE__WG_CO); zeros past cout */
  g->kind = PE__K_CONV1D;
  g->p[0] = cin;
  g->p[1] = coutp;
  g->w = calloc((size_t)(PE__WG_A * coutp * cin), sizeof(float));
  if (g->w == NULL) {
    free(g);
    return PE_ENOMEM;
  }
  /* U = G w per (co, ci): the rows of G for points 0, 1, -1, 2, -2, 1/2,
   * -1/2, infinity, scaled to the rows of B^T (kernels_winograd.inc) */
  for (int64_t co = 0; co < cout; co++) {
    for (int64_t ci = 0; ci < cin; ci++) {
      const float *w = s->w + (co * cin + ci) * 4;
      const double w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
      const double u[PE__WG_A] = {
          w0,
          -2.0 * (w0 + w1 + w2 + w3) / 9.0,
          -2.0 * (w0 - w1 + w2 - w3) / 9.0,
          (w0 + 2.0 * w1 + 4.0 * w2 + 8.0 * w3) / 360.0,
          (w0 - 2.0 * w1 + 4.0 * w2 - 8.0 * w3) / 360.0,
          (32.0 * w0 + 16.0 * w1 + 8.0 * w2 + 4.0 * w3) / 45.0,
          (32.0 * w0 - 16.0 * w1 + 8.0 * w2 - 4.0 * w3) / 45.0,
          w3,
      };
      for (int x = 0; x < PE__WG_A; x++) {
        g->w[(x * coutp + co - co % PE__WG_CO) * cin + ci * PE__WG_CO +
             co % PE__WG_CO] = (float)u[x];
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
  return PE__WG_A * (s->p[0] + PE__WG_CO) * PE__WG_LR;
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
#define PE__WT_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define PE__WT_FNMA(a, b, c) _mm256_fnmadd_ps(a, b, c)
#define PE__WT_SET1(f) _mm256_set1_ps(f)
#define PE__WT_ZERO _mm256_setzero_ps()
#define PE__WT_LEAKY(v, a)                                                     \
  _mm256_blendv_ps(_mm256_mul_ps(v, a), v,                                     \
                   _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ))
#define PE__WT_SEGS_T pe__wg_segs8_t
#define PE__WT_SEGS pe__wg_segs8
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
#define PE__WT_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define PE__WT_FNMA(a, b, c) _mm512_fnmadd_ps(a, b, c)
#define PE__WT_SET1(f) _mm512_set1_ps(f)
#define PE__WT_ZERO _mm512_setzero_ps()
#define PE__WT_LEAKY(v, a)                                                     \
  _mm512_mask_mul_ps(                                                          \
      v, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ), v, a)
#define PE__WT_SEGS_T pe__wg_segs16_t
#define PE__WT_SEGS pe__wg_segs16
#define PE__WT_IN pe__wg_in16
#define PE__WT_MM pe__wg_mm16
#define PE__WT_OUT pe__wg_out16
#define PE__WT_RUN pe__wg_run16
#include "model/kernels_winograd.inc"

void pe__conv1d_wg(const pe__step_t *s, const pe__kernels_t *kn, const float *x,
                   float *y, float *scratch) {
  if (kn->level >= 2) {
    pe__wg_run16(s, x, y, scratch);
  } else {
    pe__wg_run8(s, x, y, scratch);
  }
  /* LeakyRelu ran in the output transform, the others here */
  if (s->act != PE__ACT_NONE && s->act != PE__ACT_LEAKY) {
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
