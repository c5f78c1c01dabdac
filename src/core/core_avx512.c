/* The columnar feature core, eight ticks at a time with AVX-512.
 *
 * A block is eight consecutive ticks. When their symbols all differ
 * (vpconflictd says so; with 500 symbols drawn at random, 19 blocks in 20),
 * the eight state rows are loaded, transposed so that each register holds
 * one field of the eight symbols, updated with the same operations as
 * pe__core_step (IEEE division and products are correctly rounded, so a lane
 * gives the scalar bits), transposed back and stored. The three divisions
 * of a tick then cost a third of a vector division each, where the scalar
 * divider would take one at a time. A block that repeats a symbol, or holds
 * an id out of range, goes through pe__core_step one tick at a time.
 *
 * The outputs of a block are five whole 64-byte lines. For large runs they
 * are stored with streaming stores, which write the line without reading it
 * first: a third less memory traffic for this loop, which is bound by it. */
#include "core/core_impl.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define PE__AVX512 __attribute__((target("avx512f,avx512cd,avx512vl")))
/* The block code is specialised per store mode by inlining. */
#define PE__INLINE inline __attribute__((always_inline))

int pe__core_avx512_usable(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512cd") &&
         __builtin_cpu_supports("avx512vl");
}

/* Lanes (0,1,8,9,4,5,12,13) and (2,3,10,11,6,7,14,15) of a:b: the second
 * step of a 4 x 4 transpose within each 256-bit half. */
#define PE__LO _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0)
#define PE__HI _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2)

/* f[0..3] from q[0..3], where q[j] holds fields 0-3 (or 4-7) of the rows j
 * (low half) and j + 4 (high half): f[k] lane j is field k of row j. */
PE__AVX512 static inline void pe__core_tr4(const __m512d q[4], __m512d f[4]) {
  __m512d t0 = _mm512_unpacklo_pd(q[0], q[1]);
  __m512d t1 = _mm512_unpackhi_pd(q[0], q[1]);
  __m512d t2 = _mm512_unpacklo_pd(q[2], q[3]);
  __m512d t3 = _mm512_unpackhi_pd(q[2], q[3]);
  f[0] = _mm512_permutex2var_pd(t0, PE__LO, t2);
  f[1] = _mm512_permutex2var_pd(t1, PE__LO, t3);
  f[2] = _mm512_permutex2var_pd(t0, PE__HI, t2);
  f[3] = _mm512_permutex2var_pd(t1, PE__HI, t3);
}

/* The inverse of pe__core_tr4. */
PE__AVX512 static inline void pe__core_untr4(const __m512d f[4], __m512d q[4]) {
  __m512d t0 = _mm512_permutex2var_pd(f[0], PE__LO, f[2]);
  __m512d t2 = _mm512_permutex2var_pd(f[0], PE__HI, f[2]);
  __m512d t1 = _mm512_permutex2var_pd(f[1], PE__LO, f[3]);
  __m512d t3 = _mm512_permutex2var_pd(f[1], PE__HI, f[3]);
  q[0] = _mm512_unpacklo_pd(t0, t1);
  q[1] = _mm512_unpackhi_pd(t0, t1);
  q[2] = _mm512_unpacklo_pd(t2, t3);
  q[3] = _mm512_unpackhi_pd(t2, t3);
}

/* Stores v to col + i (when col is not NULL) as mode says. */
PE__AVX512 static PE__INLINE void pe__core_put8(double *col, size_t i,
                                                __m512d v, int mode) {
  if (col == NULL) {
    return;
  }
  if (mode == PE__CORE_STREAM) {
    _mm512_stream_pd(col + i, v);
  } else if (mode == PE__CORE_ALIGNED) {
    _mm512_store_pd(col + i, v);
  } else {
    _mm512_storeu_pd(col + i, v);
  }
}

/* Block of ticks i .. i+7 whose symbols are distinct and in range, stored
 * as mode says (PE__CORE_*; ALIGNED and STREAM need col + i 64-byte
 * aligned). */
PE__AVX512 static PE__INLINE void
pe__core_block(const pe_core_t *core, size_t i, const int32_t *sym,
               const double *price, const double *volume,
               const pe_core_columns_t *out, int mode) {
  double *row[8];
#pragma GCC unroll 8
  for (int j = 0; j < 8; j++) {
    row[j] = &core->sym[sym[i + (size_t)j]].ema_fast;
  }
  __m512d qa[4], qb[4], f[8];
#pragma GCC unroll 4
  for (int j = 0; j < 4; j++) {
    qa[j] = _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_load_pd(row[j])),
                               _mm256_load_pd(row[j + 4]), 1);
    qb[j] =
        _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_load_pd(row[j] + 4)),
                           _mm256_load_pd(row[j + 4] + 4), 1);
  }
  pe__core_tr4(qa, f);
  pe__core_tr4(qb, f + 4);
  /* f: ema_fast, ema_slow, pv_sum, v_sum, n, mean, m2, unused. */
  const __m512d zero = _mm512_setzero_pd(), one = _mm512_set1_pd(1.0);
  const __m512d nan = _mm512_set1_pd(NAN);
  __m512d x = _mm512_loadu_pd(price + i), v = _mm512_loadu_pd(volume + i);
  __mmask8 first = _mm512_cmp_pd_mask(f[4], zero, _CMP_EQ_OQ);
  __m512d ema_fast =
      _mm512_add_pd(_mm512_mul_pd(_mm512_set1_pd(core->keep_fast), f[0]),
                    _mm512_mul_pd(_mm512_set1_pd(core->alpha_fast), x));
  __m512d ema_slow =
      _mm512_add_pd(_mm512_mul_pd(_mm512_set1_pd(core->keep_slow), f[1]),
                    _mm512_mul_pd(_mm512_set1_pd(core->alpha_slow), x));
  ema_fast = _mm512_mask_mov_pd(ema_fast, first, x);
  ema_slow = _mm512_mask_mov_pd(ema_slow, first, x);
  __m512d pv_sum = _mm512_add_pd(f[2], _mm512_mul_pd(x, v));
  __m512d v_sum = _mm512_add_pd(f[3], v);
  __m512d n = _mm512_add_pd(f[4], one);
  __m512d d = _mm512_sub_pd(x, f[5]);
  __m512d mean = _mm512_add_pd(f[5], _mm512_div_pd(d, n));
  __m512d m2 = _mm512_add_pd(f[6], _mm512_mul_pd(d, _mm512_sub_pd(x, mean)));
  __m512d vwap = _mm512_mask_div_pd(
      nan, _mm512_cmp_pd_mask(v_sum, zero, _CMP_GT_OQ), pv_sum, v_sum);
  __m512d var = _mm512_mask_div_pd(nan, _mm512_cmp_pd_mask(n, one, _CMP_GT_OQ),
                                   m2, _mm512_sub_pd(n, one));
  pe__core_put8(out->ema_fast, i, ema_fast, mode);
  pe__core_put8(out->ema_slow, i, ema_slow, mode);
  pe__core_put8(out->vwap, i, vwap, mode);
  pe__core_put8(out->mean, i, mean, mode);
  pe__core_put8(out->var, i, var, mode);
  f[0] = ema_fast;
  f[1] = ema_slow;
  f[2] = pv_sum;
  f[3] = v_sum;
  f[4] = n;
  f[5] = mean;
  f[6] = m2;
  pe__core_untr4(f, qa);
  pe__core_untr4(f + 4, qb);
#pragma GCC unroll 4
  for (int j = 0; j < 4; j++) {
    _mm256_store_pd(row[j], _mm512_castpd512_pd256(qa[j]));
    _mm256_store_pd(row[j + 4], _mm512_extractf64x4_pd(qa[j], 1));
    _mm256_store_pd(row[j] + 4, _mm512_castpd512_pd256(qb[j]));
    _mm256_store_pd(row[j + 4] + 4, _mm512_extractf64x4_pd(qb[j], 1));
  }
}

/* Ticks from .. n-1 in blocks of eight (the last few one at a time), with
 * the given store mode; returns as pe__core_run_generic. */
PE__AVX512 static PE__INLINE size_t
pe__core_blocks(pe_core_t *core, size_t from, size_t n, const int32_t *sym,
                const double *price, const double *volume,
                const pe_core_columns_t *out, int mode) {
  const __m256i limit = _mm256_set1_epi32((int)(core->n_symbols - 1));
  size_t i = from;
  for (; i + 8 <= n; i += 8) {
    __m256i s = _mm256_loadu_si256((const __m256i *)(const void *)(sym + i));
    __m256i c = _mm256_conflict_epi32(s);
    __mmask8 bad = _mm256_cmpgt_epu32_mask(s, limit);
    if (bad == 0 && _mm256_testz_si256(c, c)) {
      pe__core_block(core, i, sym, price, volume, out, mode);
    } else if (bad != 0) {
      return pe__core_run_generic(core, i, i + 8, sym, price, volume, out);
    } else {
      /* One at a time, into a buffer written as the block would be:
       * ordinary stores among streaming ones cost far more. */
      double o[5][8];
      for (int j = 0; j < 8; j++) {
        double f[5];
        size_t t = i + (size_t)j;
        pe__core_step(core, &core->sym[sym[t]], price[t], volume[t], f);
        for (int k = 0; k < 5; k++) {
          o[k][j] = f[k];
        }
      }
      pe__core_put8(out->ema_fast, i, _mm512_loadu_pd(o[0]), mode);
      pe__core_put8(out->ema_slow, i, _mm512_loadu_pd(o[1]), mode);
      pe__core_put8(out->vwap, i, _mm512_loadu_pd(o[2]), mode);
      pe__core_put8(out->mean, i, _mm512_loadu_pd(o[3]), mode);
      pe__core_put8(out->var, i, _mm512_loadu_pd(o[4]), mode);
    }
  }
  return pe__core_run_generic(core, i, n, sym, price, volume, out);
}

PE__AVX512 size_t pe__core_blocks_avx512(pe_core_t *core, size_t from, size_t n,
                                         const int32_t *sym,
                                         const double *price,
                                         const double *volume,
                                         const pe_core_columns_t *out,
                                         int mode) {
  if (mode == PE__CORE_STREAM) {
    size_t done = pe__core_blocks(core, from, n, sym, price, volume, out,
                                  PE__CORE_STREAM);
    _mm_sfence(); /* streaming stores are weakly ordered: publish them */
    return done;
  }
  return mode == PE__CORE_ALIGNED
             ? pe__core_blocks(core, from, n, sym, price, volume, out,
                               PE__CORE_ALIGNED)
             : pe__core_blocks(core, from, n, sym, price, volume, out,
                               PE__CORE_UNALIGNED);
}

#else

int pe__core_avx512_usable(void) { return 0; }

size_t pe__core_blocks_avx512(pe_core_t *core, size_t from, size_t n,
                              const int32_t *sym, const double *price,
                              const double *volume,
                              const pe_core_columns_t *out, int mode) {
  (void)mode;
  return pe__core_run_generic(core, from, n, sym, price, volume, out);
}

#endif
