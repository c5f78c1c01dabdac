/* Lane masks and a 16 x 16 transposition on 16 lanes for the AVX-512
 * kernels (kernels_avx512.c, kernels_winograd.c): included inside their
 * x86-64 sections, after <immintrin.h> and their PE__AVX512 target
 * attribute. */
#ifndef PE_MODEL_KERNELS_LANES512_H
#define PE_MODEL_KERNELS_LANES512_H

/* Lane mask of the first w lanes (clamped to 0..16). */
PE__AVX512 static inline __mmask16 pe__m16(int64_t w) {
  unsigned v = w >= 16 ? 0xffffu : w <= 0 ? 0u : (1u << w) - 1u;
  return (__mmask16)v;
}

/* 16 x 16 floats transposed in registers, lane j of r[i] to lane i of
 * r[j]: pairs of floats, of doubles, then 128-bit lanes twice. */
PE__AVX512 static inline void pe__tr16(__m512 r[16]) {
  __m512 a[16], b[16];
  _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) {
    a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {
    const __m512d a0 = _mm512_castps_pd(a[4 * i]);
    const __m512d a1 = _mm512_castps_pd(a[4 * i + 1]);
    const __m512d a2 = _mm512_castps_pd(a[4 * i + 2]);
    const __m512d a3 = _mm512_castps_pd(a[4 * i + 3]);
    b[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
    b[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
    b[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
    b[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
  }
  /* b[4 i + c], 128-bit lane l: rows 4 i .. 4 i + 3 of column 4 l + c */
  _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++) {
    const __m512 e = _mm512_shuffle_f32x4(b[c], b[4 + c], 0x88);
    const __m512 f = _mm512_shuffle_f32x4(b[c], b[4 + c], 0xdd);
    const __m512 g = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0x88);
    const __m512 h = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0xdd);
    r[c] = _mm512_shuffle_f32x4(e, g, 0x88);
    r[4 + c] = _mm512_shuffle_f32x4(f, h, 0x88);
    r[8 + c] = _mm512_shuffle_f32x4(e, g, 0xdd);
    r[12 + c] = _mm512_shuffle_f32x4(f, h, 0xdd);
  }
}

#endif
