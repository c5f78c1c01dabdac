/* exp on 16 lanes for the AVX-512 kernels (kernels_avx512.c,
 * kernels_attention.c): included inside their x86-64 sections, after
 * <immintrin.h> and their PE__AVX512 target attribute. */
#ifndef PE_MODEL_KERNELS_EXP512_H
#define PE_MODEL_KERNELS_EXP512_H

/* exp(x) for x <= 0 as pe__exp_neg8 (kernels_avx2.c), 2^n by scalef:
 * 12 operations to pe__exp16's 17. */
PE__AVX512 static inline __m512 pe__exp_neg16(__m512 x) {
  const __m512 magic = _mm512_set1_ps(12582912.0f); /* 1.5 * 2^23 */
  x = _mm512_max_ps(_mm512_set1_ps(-87.0f), x);
  __m512 n = _mm512_sub_ps(
      _mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), magic),
      magic);
  __m512 f = _mm512_fmsub_ps(x, _mm512_set1_ps(1.44269504f), n);
  f = _mm512_fmadd_ps(x, _mm512_set1_ps(1.9259629e-8f), f);
  __m512 p = _mm512_set1_ps(1.32764725e-3f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.67552699e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.55071905e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.40220979e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.93147004e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.00000012f));
  return _mm512_scalef_ps(p, n);
}

#endif
