/* The columnar feature core, four ticks at a time with AVX2, for CPUs
 * without AVX-512: the scheme of core_avx512.c (read its comment) on
 * 256-bit registers. A block is four consecutive ticks with distinct
 * symbols (at 500 symbols drawn at random, 99 blocks in 100); their state
 * rows are loaded as 16-byte pairs of fields, one 256-bit unpack gives each
 * field for the four symbols, and the same unpack puts them back. Two
 * blocks fill an output line, written together; large runs write them with
 * streaming stores. */
#include "core/core_impl.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define PE__AVX2 __attribute__((target("avx2")))
/* The block code is specialised per store mode by inlining. */
#define PE__INLINE inline __attribute__((always_inline))

int pe__core_avx2_usable(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
}

/* Stores v to col + i (when col is not NULL) as mode says (PE__CORE_*;
 * ALIGNED and STREAM need col + i 32-byte aligned). */
PE__AVX2 static PE__INLINE void pe__core_put4(double *col, size_t i, __m256d v,
                                              int mode) {
  if (col == NULL) {
    return;
  }
  if (mode == PE__CORE_STREAM) {
    _mm256_stream_pd(col + i, v);
  } else if (mode == PE__CORE_ALIGNED) {
    _mm256_store_pd(col + i, v);
  } else {
    _mm256_storeu_pd(col + i, v);
  }
}

/* Block of ticks i .. i+3 whose symbols are distinct and in range: folds
 * them and leaves their five features in o. */
PE__AVX2 static PE__INLINE void
pe__core_block4(const pe_core_t *core, size_t i, const int32_t *sym,
                const double *price, const double *volume, __m256d o[5]) {
  double *r0 = &core->sym[sym[i]].ema_fast;
  double *r1 = &core->sym[sym[i + 1]].ema_fast;
  double *r2 = &core->sym[sym[i + 2]].ema_fast;
  double *r3 = &core->sym[sym[i + 3]].ema_fast;
  /* f[k] lane j: field k of row j (ema_fast, ema_slow, pv_sum, v_sum, n,
   * mean, m2, unused). */
  __m256d f[8];
#pragma GCC unroll 4
  for (int p = 0; p < 8; p += 2) {
    __m256d a = _mm256_insertf128_pd(
        _mm256_castpd128_pd256(_mm_load_pd(r0 + p)), _mm_load_pd(r2 + p), 1);
    __m256d b = _mm256_insertf128_pd(
        _mm256_castpd128_pd256(_mm_load_pd(r1 + p)), _mm_load_pd(r3 + p), 1);
    f[p] = _mm256_unpacklo_pd(a, b);
    f[p + 1] = _mm256_unpackhi_pd(a, b);
  }
  const __m256d zero = _mm256_setzero_pd(), one = _mm256_set1_pd(1.0);
  const __m256d nan = _mm256_set1_pd(NAN);
  __m256d x = _mm256_loadu_pd(price + i), v = _mm256_loadu_pd(volume + i);
  __m256d first = _mm256_cmp_pd(f[4], zero, _CMP_EQ_OQ);
  __m256d ema_fast =
      _mm256_add_pd(_mm256_mul_pd(_mm256_set1_pd(core->keep_fast), f[0]),
                    _mm256_mul_pd(_mm256_set1_pd(core->alpha_fast), x));
  __m256d ema_slow =
      _mm256_add_pd(_mm256_mul_pd(_mm256_set1_pd(core->keep_slow), f[1]),
                    _mm256_mul_pd(_mm256_set1_pd(core->alpha_slow), x));
  ema_fast = _mm256_blendv_pd(ema_fast, x, first);
  ema_slow = _mm256_blendv_pd(ema_slow, x, first);
  __m256d pv_sum = _mm256_add_pd(f[2], _mm256_mul_pd(x, v));
  __m256d v_sum = _mm256_add_pd(f[3], v);
  __m256d n = _mm256_add_pd(f[4], one);
  __m256d d = _mm256_sub_pd(x, f[5]);
  __m256d mean = _mm256_add_pd(f[5], _mm256_div_pd(d, n));
  __m256d m2 = _mm256_add_pd(f[6], _mm256_mul_pd(d, _mm256_sub_pd(x, mean)));
  /* Lanes whose divisor is 0 are replaced by NaN, as the scalar code does
   * without dividing. */
  __m256d vwap = _mm256_blendv_pd(nan, _mm256_div_pd(pv_sum, v_sum),
                                  _mm256_cmp_pd(v_sum, zero, _CMP_GT_OQ));
  __m256d var = _mm256_blendv_pd(nan, _mm256_div_pd(m2, _mm256_sub_pd(n, one)),
                                 _mm256_cmp_pd(n, one, _CMP_GT_OQ));
  o[0] = ema_fast;
  o[1] = ema_slow;
  o[2] = vwap;
  o[3] = mean;
  o[4] = var;
  f[0] = ema_fast;
  f[1] = ema_slow;
  f[2] = pv_sum;
  f[3] = v_sum;
  f[4] = n;
  f[5] = mean;
  f[6] = m2;
#pragma GCC unroll 4
  for (int p = 0; p < 8; p += 2) {
    __m256d a = _mm256_unpacklo_pd(f[p], f[p + 1]);
    __m256d b = _mm256_unpackhi_pd(f[p], f[p + 1]);
    _mm_store_pd(r0 + p, _mm256_castpd256_pd128(a));
    _mm_store_pd(r2 + p, _mm256_extractf128_pd(a, 1));
    _mm_store_pd(r1 + p, _mm256_castpd256_pd128(b));
    _mm_store_pd(r3 + p, _mm256_extractf128_pd(b, 1));
  }
}

/* Ticks i .. i+3 into o, as a block when their ids are distinct, else one
 * at a time; 0, or 1 when an id is out of range (nothing folded then). */
PE__AVX2 static PE__INLINE int pe__core_quad(pe_core_t *core, size_t i,
                                             const int32_t *sym,
                                             const double *price,
                                             const double *volume,
                                             __m128i limit, __m256d o[5]) {
  __m128i s = _mm_loadu_si128((const __m128i *)(const void *)(sym + i));
  __m128i in_range = _mm_cmpeq_epi32(_mm_max_epu32(s, limit), limit);
  if (_mm_movemask_ps(_mm_castsi128_ps(in_range)) != 0xf) {
    return 1;
  }
  /* Rotations by one and two lanes pair every two of the four ids. */
  __m128i same = _mm_or_si128(
      _mm_cmpeq_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(0, 3, 2, 1))),
      _mm_cmpeq_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2))));
  if (_mm_movemask_epi8(same) == 0) {
    pe__core_block4(core, i, sym, price, volume, o);
    return 0;
  }
  double b[5][4];
  for (int j = 0; j < 4; j++) {
    double r[5];
    size_t t = i + (size_t)j;
    pe__core_step(core, &core->sym[sym[t]], price[t], volume[t], r);
    for (int k = 0; k < 5; k++) {
      b[k][j] = r[k];
    }
  }
  for (int k = 0; k < 5; k++) {
    o[k] = _mm256_loadu_pd(b[k]);
  }
  return 0;
}

/* Writes the features of ticks i .. i+3 (q[0]) and, when q1 is not NULL,
 * of i+4 .. i+7, each column's two halves of a line one after the other:
 * a streaming store that leaves half a line pending a while costs more
 * than it saves. */
PE__AVX2 static PE__INLINE void
pe__core_put_quads(const pe_core_columns_t *out, size_t i, const __m256d q0[5],
                   const __m256d *q1, int mode) {
  double *cols[5] = {out->ema_fast, out->ema_slow, out->vwap, out->mean,
                     out->var};
#pragma GCC unroll 5
  for (int k = 0; k < 5; k++) {
    pe__core_put4(cols[k], i, q0[k], mode);
    if (q1 != NULL) {
      pe__core_put4(cols[k], i + 4, q1[k], mode);
    }
  }
}

/* Ticks from .. n-1, eight at a time as two blocks of four (the last few
 * one at a time), with the given store mode; returns as
 * pe__core_run_generic. */
PE__AVX2 static PE__INLINE size_t pe__core_blocks4(pe_core_t *core, size_t from,
                                                   size_t n, const int32_t *sym,
                                                   const double *price,
                                                   const double *volume,
                                                   const pe_core_columns_t *out,
                                                   int mode) {
  const __m128i limit = _mm_set1_epi32((int)(core->n_symbols - 1));
  size_t i = from;
  for (; i + 8 <= n; i += 8) {
    __m256d q0[5], q1[5];
    if (pe__core_quad(core, i, sym, price, volume, limit, q0) != 0) {
      return pe__core_run_generic(core, i, i + 4, sym, price, volume, out);
    }
    if (pe__core_quad(core, i + 4, sym, price, volume, limit, q1) != 0) {
      pe__core_put_quads(out, i, q0, NULL, mode);
      return pe__core_run_generic(core, i + 4, i + 8, sym, price, volume, out);
    }
    pe__core_put_quads(out, i, q0, q1, mode);
  }
  return pe__core_run_generic(core, i, n, sym, price, volume, out);
}

PE__AVX2 size_t pe__core_blocks_avx2(pe_core_t *core, size_t from, size_t n,
                                     const int32_t *sym, const double *price,
                                     const double *volume,
                                     const pe_core_columns_t *out, int mode) {
  if (mode == PE__CORE_STREAM) {
    size_t done = pe__core_blocks4(core, from, n, sym, price, volume, out,
                                   PE__CORE_STREAM);
    _mm_sfence(); /* streaming stores are weakly ordered: publish them */
    return done;
  }
  return mode == PE__CORE_ALIGNED
             ? pe__core_blocks4(core, from, n, sym, price, volume, out,
                                PE__CORE_ALIGNED)
             : pe__core_blocks4(core, from, n, sym, price, volume, out,
                                PE__CORE_UNALIGNED);
}

#else

int pe__core_avx2_usable(void) { return 0; }

size_t pe__core_blocks_avx2(pe_core_t *core, size_t from, size_t n,
                            const int32_t *sym, const double *price,
                            const double *volume, const pe_core_columns_t *out,
                            int mode) {
  (void)mode;
  return pe__core_run_generic(core, from, n, sym, price, volume, out);
}

#endif
