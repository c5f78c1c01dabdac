/* AVX2/FMA versions of the kernels that carry the FLOPs: dense layers,
 * Conv1d, the fused LSTM and the GRU cell. Compiled with
 * __attribute__((target)) so the file builds for any x86-64 and is only
 * called when the CPU reports AVX2 and FMA
 * (pe__kernels_avx2_usable, checked once at load). On other architectures
 * the entry points fall back to nothing and are never called.
 *
 * Hot path: no allocation; Conv1d uses the context's scratch for a padded
 * copy of its input, the LSTM for h and c. */
#include <string.h>

#include "model/model_impl.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define PE__AVX2 __attribute__((target("avx2,fma")))

/* 1 when the CPU has AVX2 and FMA. */
int pe__kernels_avx2_usable(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* Lane mask of the first w (0..8) lanes. */
PE__AVX2 static inline __m256i pe__mask(int64_t w) {
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)w), iota);
}

/* Relu or LeakyRelu on 8 lanes; other activations pass through. */
PE__AVX2 static inline __m256 pe__act8(__m256 v, int act, __m256 alpha) {
  if (act == PE__ACT_RELU) {
    return _mm256_max_ps(v, _mm256_setzero_ps());
  }
  if (act == PE__ACT_LEAKY) {
    __m256 neg = _mm256_mul_ps(v, alpha);
    __m256 m = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ);
    return _mm256_blendv_ps(neg, v, m);
  }
  return v;
}

/* Stores w (0..16) floats of (a, b) to y, with the fused activation. */
PE__AVX2 static inline void pe__store16(float *y, __m256 a, __m256 b, int64_t w,
                                        int act, __m256 alpha) {
  a = pe__act8(a, act, alpha);
  b = pe__act8(b, act, alpha);
  if (w >= 16) {
    _mm256_storeu_ps(y, a);
    _mm256_storeu_ps(y + 8, b);
  } else if (w > 8) {
    _mm256_storeu_ps(y, a);
    _mm256_maskstore_ps(y + 8, pe__mask(w - 8), b);
  } else {
    _mm256_maskstore_ps(y, pe__mask(w), a);
  }
}

/* y[0..w) = (add ? y + (a, b) : (a, b)), with the activation. */
PE__AVX2 static inline void pe__acc16(float *y, __m256 a, __m256 b, int64_t w,
                                      int add, int act, __m256 alpha) {
  if (add) {
    __m256i m0 = pe__mask(w), m1 = pe__mask(w - 8);
    a = _mm256_add_ps(_mm256_maskload_ps(y, m0), a);
    b = _mm256_add_ps(_mm256_maskload_ps(y + 8, m1), b);
  }
  pe__store16(y, a, b, w, act, alpha);
}

/* Sum of the 8 lanes. */
PE__AVX2 static inline float pe__hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

/* exp(x) for 8 floats: Cephes' expf (range reduction by ln 2, degree-6
 * polynomial), within 2 ulp of libm over the clamped range. */
PE__AVX2 static inline __m256 pe__exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)),
                    _mm256_set1_ps(88.3f));
  /* round to nearest by adding and removing 1.5 * 2^23 (|x log2 e| < 2^7) */
  const __m256 magic = _mm256_set1_ps(12582912.0f);
  __m256 fx = _mm256_sub_ps(
      _mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                    magic),
      magic);
  __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r),
                      _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  __m256i e = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

/* 1 / d for d >= 1: the 12-bit estimate and one Newton step (about 23
 * bits), several times cheaper than a division. */
PE__AVX2 static inline __m256 pe__recip8(__m256 d) {
  __m256 r = _mm256_rcp_ps(d);
  return _mm256_mul_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(2.0f)));
}

PE__AVX2 static inline __m256 pe__sigmoid8(__m256 x) {
  __m256 one = _mm256_set1_ps(1.0f);
  return pe__recip8(
      _mm256_add_ps(one, pe__exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

/* tanh(x): for |x| < 0.625 Cephes' odd polynomial x + x^3 P(x^2)
 * (relative error about 1e-7, so that tiny arguments keep their digits);
 * above, 1 - 2 / (exp(2x) + 1), absolute error a few 1e-8. */
PE__AVX2 static inline __m256 pe__tanh8(__m256 x) {
  __m256 z = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(-5.70498872745e-3f);
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.06390887954e-2f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-5.37397155531e-2f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(1.33314422036e-1f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-3.33332819422e-1f));
  __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), x, x);
  /* on |x|, the sign put back: 2 / (exp(2|x|) + 1) <= 0.44 keeps its
   * relative precision */
  __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f));
  __m256 c = _mm256_min_ps(_mm256_andnot_ps(sign, x), _mm256_set1_ps(10.0f));
  __m256 one = _mm256_set1_ps(1.0f);
  __m256 e = pe__exp8(_mm256_add_ps(c, c));
  __m256 big = _mm256_or_ps(
      sign, _mm256_fnmadd_ps(_mm256_set1_ps(2.0f),
                             pe__recip8(_mm256_add_ps(e, one)), one));
  /* NaN takes the polynomial, which keeps it */
  __m256 is_small = _mm256_cmp_ps(z, _mm256_set1_ps(0.390625f), _CMP_NGE_UQ);
  return _mm256_blendv_ps(big, small, is_small);
}

/* erf on 8 lanes, from a = |x|, the sign put back: below 1, a P(a^2)
 * (relative error under 1e-7); from 1, 1 - erfc(a) with erfc(a) =
 * exp(-a^2) R(1 / a) (relative error about 4e-7 of erfc), a clamped to 9.5
 * where erfc has long underflowed. Both fitted to erf and to erfc(a)
 * exp(a^2) in 30-digit arithmetic. *erfc_out, when given, receives erfc(a)
 * (valid where a >= 1). NaN stays NaN. */
PE__AVX2 static inline __m256 pe__erf8(__m256 x, __m256 *erfc_out) {
  const __m256 one = _mm256_set1_ps(1.0f);
  __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f));
  __m256 a = _mm256_andnot_ps(sign, x);
  __m256 z = _mm256_mul_ps(a, a);
  __m256 p = _mm256_set1_ps(7.898107287473977e-05f);
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-8.024326525628567e-04f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(5.190050695091486e-03f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-2.6854807510972023e-02f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(1.1283612251281738e-01f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-3.761262893676758e-01f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(1.128379225730896f));
  __m256 small = _mm256_mul_ps(a, p);
  __m256 ac = _mm256_min_ps(_mm256_max_ps(a, one), _mm256_set1_ps(9.5f));
  __m256 t = _mm256_div_ps(one, ac);
  __m256 r = _mm256_set1_ps(7.704917341470718e-02f);
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(-4.2415738105773926e-01f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(9.951067566871643e-01f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(-1.254515528678894f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(8.136741518974304e-01f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(-6.683843582868576e-02f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(-2.7700820565223694e-01f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(1.278832642128691e-04f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(5.641431212425232e-01f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(2.1290354652592214e-06f));
  __m256 erfc = _mm256_mul_ps(
      pe__exp8(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(ac, ac))), r);
  if (erfc_out != NULL) {
    *erfc_out = erfc;
  }
  __m256 is_small = _mm256_cmp_ps(a, one, _CMP_NGE_UQ);
  return _mm256_or_ps(
      sign, _mm256_blendv_ps(_mm256_sub_ps(one, erfc), small, is_small));
}

/* GELU, 0.5 x (1 + erf(x / sqrt 2)), on 8 lanes; for x / sqrt 2 <= -1 the
 * factor is erfc(|x| / sqrt 2) itself, so the tail keeps its relative
 * precision. */
PE__AVX2 static inline __m256 pe__gelu8(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  __m256 u = _mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f));
  __m256 erfc;
  __m256 e = pe__erf8(u, &erfc);
  __m256 tail = _mm256_cmp_ps(u, _mm256_set1_ps(-1.0f), _CMP_LE_OQ);
  __m256 f = _mm256_blendv_ps(_mm256_add_ps(one, e), erfc, tail);
  return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), f);
}

/* 2^f for f in [-0.5, 0.5]: a degree-5 polynomial, relative error about
 * 2e-7. */
PE__AVX2 static inline __m256 pe__exp2_frac(__m256 f) {
  __m256 p = _mm256_set1_ps(1.32764725e-3f);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.67552699e-3f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.55071905e-2f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.40220979e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.93147004e-1f));
  return _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.00000012f));
}

/* The fused LSTM's activations on the scaled sums of pe__lstm_pack (see
 * kernels_avx512.c): 2^t = 2^n 2^f with n = round(t), f = t - n in
 * [-0.5, 0.5], a degree-5 minimax polynomial (relative error 1.2e-7) and
 * 2^n built in the exponent bits; t clamped to [-126, 126], where every
 * result has saturated. 1 / d by rcp and one Newton step. */
PE__AVX2 static inline __m256 pe__lstm_inv8(__m256 t) { /* 1 / (1 + 2^t) */
  const __m256 magic = _mm256_set1_ps(12582912.0f);     /* 1.5 * 2^23 */
  const __m256 one = _mm256_set1_ps(1.0f);
  t = _mm256_min_ps(_mm256_max_ps(t, _mm256_set1_ps(-126.0f)),
                    _mm256_set1_ps(126.0f));
  __m256 u = _mm256_add_ps(t, magic);
  __m256 f = _mm256_sub_ps(t, _mm256_sub_ps(u, magic));
  __m256 p = pe__exp2_frac(f);
  /* the low bits of u hold n: shifted into the exponent field, plus the bias */
  __m256i e = _mm256_add_epi32(_mm256_slli_epi32(_mm256_castps_si256(u), 23),
                               _mm256_set1_epi32(127 << 23));
  __m256 d = _mm256_fmadd_ps(p, _mm256_castsi256_ps(e), one);
  __m256 r = _mm256_rcp_ps(d);
  return _mm256_fmadd_ps(r, _mm256_fnmadd_ps(d, r, one), r);
}

/* s tanh(x) from t = 2x log2(e): s - 2s / (1 + 2^t) */
PE__AVX2 static inline __m256 pe__lstm_tanh8(__m256 t, float s) {
  return _mm256_fnmadd_ps(_mm256_set1_ps(2.0f * s), pe__lstm_inv8(t),
                          _mm256_set1_ps(s));
}

#define PE__K2 2.88539008177792681f /* 2 log2(e) */

/* The input projection of every time step of one window, before the
 * recurrence: xp[t][jb][64] = bias + sum over k of x_t[k] W[k] (k in
 * order), per block of 16 units and gate (two vectors), 6 time steps at a
 * time so that each W vector loaded serves 6 FMAs (12 sums, 2 weights and
 * a broadcast: 15 of the 16 registers). A gate's W of one block is in x 64
 * bytes, read from L1 for every group of steps. */
#define PE__XT 6
PE__AVX2 static void pe__lstm_xproj8(const float *lw, int64_t seq, int64_t in,
                                     int64_t H, const float *x, int64_t xst,
                                     int64_t xsk, float *xp) {
  const int64_t HB = (H + 15) / 16;
  for (int64_t jb = 0; jb < HB; jb++) {
    for (int64_t g = 0; g < 4; g++) {
      const float *wx = PE__LSTM_W(lw, in, H, jb) + 16 * g,
                  *bb = PE__LSTM_B(lw, in, H, jb) + 16 * g;
      for (int64_t t0 = 0; t0 < seq; t0 += PE__XT) {
        const int64_t nt = seq - t0 < PE__XT ? seq - t0 : PE__XT;
        const float *xr[PE__XT];
        __m256 acc[PE__XT][2];
        _Pragma("GCC unroll 8") for (int u = 0; u < PE__XT; u++) {
          /* rows past the sequence read row t0 again; never stored */
          xr[u] = x + (t0 + (u < nt ? u : 0)) * xst;
          acc[u][0] = _mm256_loadu_ps(bb);
          acc[u][1] = _mm256_loadu_ps(bb + 8);
        }
        for (int64_t k = 0; k < in; k++) {
          __m256 w0 = _mm256_loadu_ps(wx + k * 64);
          __m256 w1 = _mm256_loadu_ps(wx + k * 64 + 8);
          _Pragma("GCC unroll 8") for (int u = 0; u < PE__XT; u++) {
            __m256 v = _mm256_broadcast_ss(xr[u] + k * xsk);
            acc[u][0] = _mm256_fmadd_ps(v, w0, acc[u][0]);
            acc[u][1] = _mm256_fmadd_ps(v, w1, acc[u][1]);
          }
        }
        _Pragma("GCC unroll 8") for (int u = 0; u < PE__XT; u++) {
          if (u < nt) {
            float *o = xp + ((t0 + u) * HB + jb) * 64 + 16 * g;
            _mm256_storeu_ps(o, acc[u][0]);
            _mm256_storeu_ps(o + 8, acc[u][1]);
          }
        }
      }
    }
  }
}
#undef PE__XT

/* The fused LSTM (see model_impl.h) on 8 lanes: the input projection of
 * all steps first (pe__lstm_xproj8); then per step and block of 16 hidden
 * units the 8 gate vectors xp + R h, one FMA chain each (k in order, the
 * sums of the AVX-512 kernel), and the cell on each half (on the scaled
 * sums, c' = 2 log2(e) c in scratch); h goes to a second buffer (the other
 * blocks still read the old one). Scratch as the AVX-512 kernel's: xp
 * [seq][HB][64], h [2][HB][16], c' [HB][16]. */
PE__AVX2 void pe__lstm_seq_avx2(const float *lw, int64_t seq, int64_t in,
                                int64_t H, const float *x, int64_t xst,
                                int64_t xsk, const float *h0, const float *c0,
                                float *y, float *hn, float *cn,
                                float *scratch) {
  const int64_t HB = (H + 15) / 16;
  float *xp = scratch;
  float *hb[2] = {xp + seq * HB * 64, xp + seq * HB * 64 + HB * 16};
  float *cs = hb[1] + HB * 16;
  for (int64_t j = 0; j < HB * 16; j++) {
    hb[0][j] = h0 != NULL && j < H ? h0[j] : 0.0f;
    cs[j] = c0 != NULL && j < H ? c0[j] * PE__K2 : 0.0f;
  }
  pe__lstm_xproj8(lw, seq, in, H, x, xst, xsk, xp);
  for (int64_t t = 0; t < seq; t++) {
    const float *h = hb[t & 1];
    float *ho = hb[(t & 1) ^ 1];
    /* the blocks in turn forward and backward: a step starts with the R of
     * the block the last one ended with, still in L1 (R is 16 KB a block;
     * each block reads the old h only, so the order changes no bits) */
    for (int64_t b = 0; b < HB; b++) {
      const int64_t jb = t & 1 ? HB - 1 - b : b;
      const float *wr = PE__LSTM_R(lw, in, H, jb),
                  *xt = xp + (t * HB + jb) * 64;
      __m256 a[8];
      _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) {
        a[i] = _mm256_loadu_ps(xt + 8 * i);
      }
      for (int64_t k = 0; k < H; k++) {
        __m256 v = _mm256_broadcast_ss(h + k);
        _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) {
          a[i] = _mm256_fmadd_ps(v, _mm256_loadu_ps(wr + k * 64 + 8 * i), a[i]);
        }
      }
      /* a[2 g + half]: gates i, o, f, c of units jb * 16 + 8 half */
      _Pragma("GCC unroll 2") for (int half = 0; half < 2; half++) {
        const int64_t j0 = jb * 16 + 8 * half;
        __m256 ig = pe__lstm_inv8(a[0 + half]);
        __m256 fg = pe__lstm_inv8(a[4 + half]);
        __m256 cg = pe__lstm_tanh8(a[6 + half], PE__K2);
        __m256 og = pe__lstm_inv8(a[2 + half]);
        __m256 c = _mm256_fmadd_ps(fg, _mm256_loadu_ps(cs + j0),
                                   _mm256_mul_ps(ig, cg));
        _mm256_storeu_ps(cs + j0, c);
        __m256 hv = _mm256_mul_ps(og, pe__lstm_tanh8(c, 1.0f));
        _mm256_storeu_ps(ho + j0, hv);
        if (y != NULL && j0 < H) {
          _mm256_maskstore_ps(y + t * H + j0, pe__mask(H - j0), hv);
        }
      }
    }
  }
  const float *h = hb[seq & 1];
  for (int64_t j = 0; j < H; j++) {
    if (hn != NULL) {
      hn[j] = h[j];
    }
    if (cn != NULL) {
      cn[j] = cs[j] * (1.0f / PE__K2);
    }
  }
}
#undef PE__K2

/* One GRU step (linear_before_reset = 1) of one window: g the input
 * projection (z, r, h blocks, biases in), r = R h, rb the R bias of h. */
PE__AVX2 void pe__gru_cell_avx2(const float *g, const float *r, const float *rb,
                                float *h, int64_t H) {
  const __m256 one = _mm256_set1_ps(1.0f);
  for (int64_t j = 0; j < H; j += 8) {
    __m256i m = pe__mask(H - j);
#define PE__LD(p) _mm256_maskload_ps((p) + j, m)
    __m256 z = pe__sigmoid8(_mm256_add_ps(PE__LD(g), PE__LD(r)));
    __m256 rr = pe__sigmoid8(_mm256_add_ps(PE__LD(g + H), PE__LD(r + H)));
    __m256 hh = pe__tanh8(_mm256_add_ps(
        PE__LD(g + 2 * H),
        _mm256_mul_ps(rr, _mm256_add_ps(PE__LD(r + 2 * H), PE__LD(rb)))));
    __m256 hn = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(one, z), hh),
                              _mm256_mul_ps(z, PE__LD(h)));
#undef PE__LD
    _mm256_maskstore_ps(h + j, m, hn);
  }
}

/* Activations in place over n floats; those without a vector form go to
 * the portable pe__act_apply. */
PE__AVX2 void pe__act_avx2(float *y, int64_t n, int act, float alpha) {
  const __m256 va = _mm256_set1_ps(alpha);
  /* One loop per activation, four independent vectors an iteration: the
   * long polynomials (erf, exp) are latency chains, and one vector at a
   * time leaves the FMA units idle most of each chain. The tail is masked;
   * every lane goes through the same arithmetic either way. */
#define PE__ACT_LOOP(F)                                                        \
  do {                                                                         \
    int64_t i = 0;                                                             \
    for (; i + 32 <= n; i += 32) {                                             \
      __m256 v0 = _mm256_loadu_ps(y + i), v1 = _mm256_loadu_ps(y + i + 8);     \
      __m256 v2 = _mm256_loadu_ps(y + i + 16);                                 \
      __m256 v3 = _mm256_loadu_ps(y + i + 24);                                 \
      _mm256_storeu_ps(y + i, F(v0));                                          \
      _mm256_storeu_ps(y + i + 8, F(v1));                                      \
      _mm256_storeu_ps(y + i + 16, F(v2));                                     \
      _mm256_storeu_ps(y + i + 24, F(v3));                                     \
    }                                                                          \
    for (; i < n; i += 8) {                                                    \
      __m256i m = pe__mask(n - i);                                             \
      _mm256_maskstore_ps(y + i, m, F(_mm256_maskload_ps(y + i, m)));          \
    }                                                                          \
  } while (0)
#define PE__ERF(v) pe__erf8(v, NULL)
#define PE__SIMPLE(v) pe__act8(v, act, va)
  switch (act) {
  case PE__ACT_SIGMOID:
    PE__ACT_LOOP(pe__sigmoid8);
    break;
  case PE__ACT_TANH:
    PE__ACT_LOOP(pe__tanh8);
    break;
  case PE__ACT_EXP:
    PE__ACT_LOOP(pe__exp8);
    break;
  case PE__ACT_ERF:
    PE__ACT_LOOP(PE__ERF);
    break;
  case PE__ACT_GELU:
    PE__ACT_LOOP(pe__gelu8);
    break;
  case PE__ACT_RELU:
  case PE__ACT_LEAKY:
    PE__ACT_LOOP(PE__SIMPLE);
    break;
  default:
    pe__act_apply(y, n, act, alpha);
    break;
  }
#undef PE__SIMPLE
#undef PE__ERF
#undef PE__ACT_LOOP
}

/* exp(x) for x <= 0 (a softmax row less its maximum), 14 operations to
 * pe__exp8's 19: n = round(x log2 e), f = x log2 e - n with log2 e in two
 * parts (each product by one FMA, so f keeps its digits), 2^f by the
 * degree-5 minimax polynomial of pe__lstm_inv8 (relative error 1.2e-7),
 * 2^n in the exponent bits. x is raised to -87 (the result about 1.6e-38,
 * as pe__exp8 gives); NaN stays NaN. */
PE__AVX2 static inline __m256 pe__exp_neg8(__m256 x) {
  const __m256 magic = _mm256_set1_ps(12582912.0f); /* 1.5 * 2^23 */
  x = _mm256_max_ps(_mm256_set1_ps(-87.0f), x);
  __m256 u =
      _mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), magic);
  __m256 f =
      _mm256_fmsub_ps(x, _mm256_set1_ps(1.44269504f), _mm256_sub_ps(u, magic));
  f = _mm256_fmadd_ps(x, _mm256_set1_ps(1.9259629e-8f), f);
  __m256 p = pe__exp2_frac(f);
  __m256i e = _mm256_add_epi32(_mm256_slli_epi32(_mm256_castps_si256(u), 23),
                               _mm256_set1_epi32(127 << 23));
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* y = exp(y - sub) in place over n floats, returning their sum (a
 * softmax row of the fused attention step): one pass, plain loads and
 * stores but for a masked tail (AMD's masked stores are slow), one vector
 * an iteration so that the sum stays in a register (two spilled it). */
PE__AVX2 float pe__exp_sum_avx2(float *y, int64_t n, float sub) {
  const __m256 vs = _mm256_set1_ps(sub);
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 e = pe__exp_neg8(_mm256_sub_ps(_mm256_loadu_ps(y + i), vs));
    _mm256_storeu_ps(y + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  if (i < n) {
    __m256i m = pe__mask(n - i);
    __m256 e = pe__exp_neg8(_mm256_sub_ps(_mm256_maskload_ps(y + i, m), vs));
    e = _mm256_and_ps(e, _mm256_castsi256_ps(m));
    _mm256_maskstore_ps(y + i, m, e);
    acc = _mm256_add_ps(acc, e);
  }
  __m128 h =
      _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

/* Dense layer over `rows` rows with the panel or dot layout of
 * pe__dense_pack; the activation fused. */
PE__AVX2 void pe__dense_avx2(const pe__dense_t *d, const float *x, float *y,
                             int64_t rows, int act, float alpha_f) {
  const int64_t K = d->K, M = d->M;
  const __m256 alpha = _mm256_set1_ps(alpha_f);
  int simple_act =
      act == PE__ACT_NONE || act == PE__ACT_RELU || act == PE__ACT_LEAKY;
  int vact = simple_act ? act : PE__ACT_NONE;
  if (d->dot) {
    for (int64_t r = 0; r < rows; r++) {
      const float *xr = x + r * K;
      for (int64_t m = 0; m < M; m++) {
        const float *w = d->wp + m * K;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        int64_t k = 0;
        for (; k + 16 <= K; k += 16) {
          a0 = _mm256_fmadd_ps(_mm256_loadu_ps(xr + k), _mm256_loadu_ps(w + k),
                               a0);
          a1 = _mm256_fmadd_ps(_mm256_loadu_ps(xr + k + 8),
                               _mm256_loadu_ps(w + k + 8), a1);
        }
        for (; k + 8 <= K; k += 8) {
          a0 = _mm256_fmadd_ps(_mm256_loadu_ps(xr + k), _mm256_loadu_ps(w + k),
                               a0);
        }
        float acc = pe__hsum(_mm256_add_ps(a0, a1));
        for (; k < K; k++) {
          acc += xr[k] * w[k];
        }
        acc += d->bias ? d->bias[m] : 0.0f;
        if (act == PE__ACT_RELU) {
          acc = acc > 0.0f ? acc : 0.0f;
        } else if (act == PE__ACT_LEAKY) {
          acc = acc >= 0.0f ? acc : acc * alpha_f;
        }
        y[r * M + m] = acc;
      }
      if (!simple_act) {
        pe__act_avx2(y + r * M, M, act, alpha_f);
      }
    }
    return;
  }
  const int64_t P = (M + 15) / 16;
  /* k in PE__DENSE_NCH(K) chunks, as in kernels_avx512.c: row blocks run
   * them one after the other through y, a single row as parallel chains;
   * the same additions in the same order either way */
  const int nch = PE__DENSE_NCH(K);
  const int64_t len = K / nch;
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const float *x0 = x + r * K;
    for (int64_t p = 0; p < P; p++) {
      const float *wp = d->wp + p * K * 16;
      int64_t w = M - p * 16;
      float *yp = y + r * M + p * 16;
      for (int q = 0; q < nch; q++) {
        int64_t k0 = q * len, k1 = q == nch - 1 ? K : k0 + len;
        __m256 bl = q ? _mm256_setzero_ps() : _mm256_loadu_ps(d->bp + p * 16);
        __m256 bh =
            q ? _mm256_setzero_ps() : _mm256_loadu_ps(d->bp + p * 16 + 8);
        __m256 c00 = bl, c01 = bh, c10 = bl, c11 = bh;
        __m256 c20 = bl, c21 = bh, c30 = bl, c31 = bh;
        for (int64_t k = k0; k < k1; k++) {
          __m256 b0 = _mm256_loadu_ps(wp + k * 16);
          __m256 b1 = _mm256_loadu_ps(wp + k * 16 + 8);
          __m256 a = _mm256_broadcast_ss(x0 + k);
          c00 = _mm256_fmadd_ps(a, b0, c00);
          c01 = _mm256_fmadd_ps(a, b1, c01);
          a = _mm256_broadcast_ss(x0 + K + k);
          c10 = _mm256_fmadd_ps(a, b0, c10);
          c11 = _mm256_fmadd_ps(a, b1, c11);
          a = _mm256_broadcast_ss(x0 + 2 * K + k);
          c20 = _mm256_fmadd_ps(a, b0, c20);
          c21 = _mm256_fmadd_ps(a, b1, c21);
          a = _mm256_broadcast_ss(x0 + 3 * K + k);
          c30 = _mm256_fmadd_ps(a, b0, c30);
          c31 = _mm256_fmadd_ps(a, b1, c31);
        }
        int last = q == nch - 1;
        pe__acc16(yp, c00, c01, w, q > 0, last ? vact : PE__ACT_NONE, alpha);
        pe__acc16(yp + M, c10, c11, w, q > 0, last ? vact : PE__ACT_NONE,
                  alpha);
        pe__acc16(yp + 2 * M, c20, c21, w, q > 0, last ? vact : PE__ACT_NONE,
                  alpha);
        pe__acc16(yp + 3 * M, c30, c31, w, q > 0, last ? vact : PE__ACT_NONE,
                  alpha);
      }
    }
  }
  for (; r < rows; r++) {
    const float *xr = x + r * K;
    int64_t p = 0;
    if (nch == 1) {
      for (; p + 4 <= P; p += 4) {
        const float *w0 = d->wp + p * K * 16;
        const float *w1 = w0 + K * 16, *w2 = w1 + K * 16, *w3 = w2 + K * 16;
        __m256 c0 = _mm256_loadu_ps(d->bp + p * 16);
        __m256 c1 = _mm256_loadu_ps(d->bp + p * 16 + 8);
        __m256 c2 = _mm256_loadu_ps(d->bp + p * 16 + 16);
        __m256 c3 = _mm256_loadu_ps(d->bp + p * 16 + 24);
        __m256 c4 = _mm256_loadu_ps(d->bp + p * 16 + 32);
        __m256 c5 = _mm256_loadu_ps(d->bp + p * 16 + 40);
        __m256 c6 = _mm256_loadu_ps(d->bp + p * 16 + 48);
        __m256 c7 = _mm256_loadu_ps(d->bp + p * 16 + 56);
        for (int64_t k = 0; k < K; k++) {
          __m256 a = _mm256_broadcast_ss(xr + k);
          c0 = _mm256_fmadd_ps(a, _mm256_loadu_ps(w0 + k * 16), c0);
          c1 = _mm256_fmadd_ps(a, _mm256_loadu_ps(w0 + k * 16 + 8), c1);
          c2 = _mm256_fmadd_ps(a, _mm256_loadu_ps(w1 + k * 16), c2);
          c3 = _mm256_fmadd_ps(a, _mm256_loadu_ps(w1 + k * 16 + 8), c3);
          c4 = _mm256_fmadd_ps(a, _mm256_loadu_ps(w2 + k * 16), c4);
          c5 = _mm256_fmadd_ps(a, _mm256_loadu_ps(w2 + k * 16 + 8), c5);
          c6 = _mm256_fmadd_ps(a, _mm256_loadu_ps(w3 + k * 16), c6);
          c7 = _mm256_fmadd_ps(a, _mm256_loadu_ps(w3 + k * 16 + 8), c7);
        }
        float *yp = y + r * M + p * 16;
        int64_t w = M - p * 16;
        pe__store16(yp, c0, c1, w, vact, alpha);
        pe__store16(yp + 16, c2, c3, w - 16, vact, alpha);
        pe__store16(yp + 32, c4, c5, w - 32, vact, alpha);
        pe__store16(yp + 48, c6, c7, w - 48, vact, alpha);
      }
    }
    for (; nch == 2 && p + 2 <= P; p += 2) {
      /* two panels, the two chunks as parallel chains: 8 registers */
      const float *w0 = d->wp + p * K * 16, *w1 = w0 + K * 16;
      __m256 a0 = _mm256_loadu_ps(d->bp + p * 16),
             a1 = _mm256_loadu_ps(d->bp + p * 16 + 8);
      __m256 a2 = _mm256_loadu_ps(d->bp + p * 16 + 16),
             a3 = _mm256_loadu_ps(d->bp + p * 16 + 24);
      __m256 e0 = _mm256_setzero_ps(), e1 = e0, e2 = e0, e3 = e0;
      for (int64_t i = 0; i < len; i++) {
        __m256 xa = _mm256_broadcast_ss(xr + i),
               xb = _mm256_broadcast_ss(xr + len + i);
        const int64_t ka = i * 16, kb = (len + i) * 16;
        a0 = _mm256_fmadd_ps(xa, _mm256_loadu_ps(w0 + ka), a0);
        a1 = _mm256_fmadd_ps(xa, _mm256_loadu_ps(w0 + ka + 8), a1);
        a2 = _mm256_fmadd_ps(xa, _mm256_loadu_ps(w1 + ka), a2);
        a3 = _mm256_fmadd_ps(xa, _mm256_loadu_ps(w1 + ka + 8), a3);
        e0 = _mm256_fmadd_ps(xb, _mm256_loadu_ps(w0 + kb), e0);
        e1 = _mm256_fmadd_ps(xb, _mm256_loadu_ps(w0 + kb + 8), e1);
        e2 = _mm256_fmadd_ps(xb, _mm256_loadu_ps(w1 + kb), e2);
        e3 = _mm256_fmadd_ps(xb, _mm256_loadu_ps(w1 + kb + 8), e3);
      }
      for (int64_t k = 2 * len; k < K; k++) {
        __m256 xb = _mm256_broadcast_ss(xr + k);
        e0 = _mm256_fmadd_ps(xb, _mm256_loadu_ps(w0 + k * 16), e0);
        e1 = _mm256_fmadd_ps(xb, _mm256_loadu_ps(w0 + k * 16 + 8), e1);
        e2 = _mm256_fmadd_ps(xb, _mm256_loadu_ps(w1 + k * 16), e2);
        e3 = _mm256_fmadd_ps(xb, _mm256_loadu_ps(w1 + k * 16 + 8), e3);
      }
      float *yp = y + r * M + p * 16;
      int64_t w = M - p * 16;
      pe__store16(yp, _mm256_add_ps(a0, e0), _mm256_add_ps(a1, e1), w, vact,
                  alpha);
      pe__store16(yp + 16, _mm256_add_ps(a2, e2), _mm256_add_ps(a3, e3), w - 16,
                  vact, alpha);
    }
    for (; p < P; p++) {
      /* one panel, the chunks as parallel chains (at most 4 x 2 registers) */
      const float *wp = d->wp + p * K * 16;
      __m256 c[4][2];
      c[0][0] = _mm256_loadu_ps(d->bp + p * 16);
      c[0][1] = _mm256_loadu_ps(d->bp + p * 16 + 8);
      c[1][0] = c[1][1] = c[2][0] = c[2][1] = c[3][0] = c[3][1] =
          _mm256_setzero_ps();
      if (nch == 4) {
        for (int64_t i = 0; i < len; i++) {
          _Pragma("GCC unroll 4") for (int q = 0; q < 4; q++) {
            int64_t k = q * len + i;
            __m256 a = _mm256_broadcast_ss(xr + k);
            c[q][0] = _mm256_fmadd_ps(a, _mm256_loadu_ps(wp + k * 16), c[q][0]);
            c[q][1] =
                _mm256_fmadd_ps(a, _mm256_loadu_ps(wp + k * 16 + 8), c[q][1]);
          }
        }
      } else if (nch == 2) {
        for (int64_t i = 0; i < len; i++) {
          _Pragma("GCC unroll 2") for (int q = 0; q < 2; q++) {
            int64_t k = q * len + i;
            __m256 a = _mm256_broadcast_ss(xr + k);
            c[q][0] = _mm256_fmadd_ps(a, _mm256_loadu_ps(wp + k * 16), c[q][0]);
            c[q][1] =
                _mm256_fmadd_ps(a, _mm256_loadu_ps(wp + k * 16 + 8), c[q][1]);
          }
        }
      }
      /* the single chain (nch 1) or the rest of the last chunk */
      for (int64_t k = nch == 1 ? 0 : nch * len; k < K; k++) {
        __m256 a = _mm256_broadcast_ss(xr + k);
        c[nch - 1][0] =
            _mm256_fmadd_ps(a, _mm256_loadu_ps(wp + k * 16), c[nch - 1][0]);
        c[nch - 1][1] =
            _mm256_fmadd_ps(a, _mm256_loadu_ps(wp + k * 16 + 8), c[nch - 1][1]);
      }
      __m256 v0 = c[0][0], v1 = c[0][1];
      for (int q = 1; q < nch; q++) {
        v0 = _mm256_add_ps(v0, c[q][0]);
        v1 = _mm256_add_ps(v1, c[q][1]);
      }
      pe__store16(y + r * M + p * 16, v0, v1, M - p * 16, vact, alpha);
    }
  }
  if (!simple_act) {
    pe__act_avx2(y, rows * M, act, alpha_f);
  }
}

/* y = x * s[c] + t[c] over outer x C x inner, as a multiply then an add
 * (no FMA), so it gives the bits of the Mul and Add it replaces. */
PE__AVX2 void pe__affine_avx2(const pe__step_t *s, const float *x, float *y) {
  const int64_t outer = s->p[0], C = s->p[1], inner = s->p[2];
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t c = 0; c < C; c++) {
      const float *xr = x + (o * C + c) * inner;
      float *yr = y + (o * C + c) * inner;
      const float sc = s->w[c], sh = s->bias[c];
      const __m256 vs = _mm256_set1_ps(sc), vt = _mm256_set1_ps(sh);
      int64_t i = 0;
      for (; i + 8 <= inner; i += 8) {
        _mm256_storeu_ps(
            yr + i,
            _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(xr + i), vs), vt));
      }
      for (; i < inner; i++) {
        float v = xr[i] * sc;
        yr[i] = v + sh;
      }
    }
  }
}

/* The phase rows of a stride st >= 2 (pe__split_fn): a stride of 2 by
 * shuffles, 16 floats at a time; larger ones by gathers of 8. */
PE__AVX2 void pe__split_avx2(const float *x, int64_t n, int64_t st, float *rows,
                             int64_t lr) {
  if (st == 2) {
    float *even = rows, *odd = rows + lr;
    int64_t j = 0;
    for (; 2 * j + 16 <= n; j += 8) {
      __m256 a = _mm256_loadu_ps(x + 2 * j), b = _mm256_loadu_ps(x + 2 * j + 8);
      /* a0 a2 b0 b2 | a4 a6 b4 b6, then the 64-bit lanes in order 0 2 1 3 */
      __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
      __m256 o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
      _mm256_storeu_ps(even + j,
                       _mm256_castpd_ps(_mm256_permute4x64_pd(
                           _mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0))));
      _mm256_storeu_ps(odd + j,
                       _mm256_castpd_ps(_mm256_permute4x64_pd(
                           _mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0))));
    }
    pe__split2_rest(x, n, j, even, odd, lr);
    return;
  }
  const __m256i idx = _mm256_mullo_epi32(
      _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)st));
  for (int64_t r = 0; r < st; r++) {
    float *row = rows + r * lr;
    const int64_t cnt = n > r ? (n - r + st - 1) / st : 0;
    int64_t j = 0;
    for (; j + 8 <= cnt; j += 8) {
      _mm256_storeu_ps(row + j, _mm256_i32gather_ps(x + j * st + r, idx, 4));
    }
    for (; j < cnt; j++) {
      row[j] = x[j * st + r];
    }
    memset(row + cnt, 0, (size_t)(lr - cnt) * sizeof(float));
  }
}

/* The Conv1d kernel (kernels_conv1d.inc): blocks of 4 output channels x
 * 24 time steps (per (channel, tap) pair 3 loads, 4 broadcasts and 12 FMAs,
 * 19 instructions for 12 vectors), or of 2 x 32 (4, 2 and 8: 14 for 8,
 * 1.105 times as many a vector) where 24 fits the row badly. */
#define PE__CV_STORE(yp, v, w, act, alpha)                                     \
  do {                                                                         \
    const __m256 o_ = pe__act8(v, act, alpha);                                 \
    if ((w) >= 8) {                                                            \
      _mm256_storeu_ps(yp, o_);                                                \
    } else if ((w) > 0) {                                                      \
      _mm256_maskstore_ps(yp, pe__mask(w), o_);                                \
    }                                                                          \
  } while (0)
#define PE__CV_ACTV(v, act, alpha) pe__act8(v, act, alpha)
#define PE__CV_MUL(a, b) _mm256_mul_ps(a, b)
#define PE__CV_ADD(a, b) _mm256_add_ps(a, b)
#define PE__CV_ATTR PE__AVX2
#define PE__CV_V __m256
#define PE__CV_L 8
#define PE__CV_NV 3
#define PE__CV_MAXCO 4
#define PE__CV_WIDE_NV 4
#define PE__CV_WIDE_COST 1105
#define PE__CV_LOAD(p) _mm256_loadu_ps(p)
#define PE__CV_SET1(f) _mm256_set1_ps(f)
#define PE__CV_BCAST(p) _mm256_broadcast_ss(p)
#define PE__CV_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define PE__CV_NAME pe__conv1d_avx2
#define PE__CV_ACT pe__act_avx2
#define PE__CV_SPLIT pe__split_avx2
#include "model/kernels_conv1d.inc"

#else

int pe__kernels_avx2_usable(void) { return 0; }

void pe__dense_avx2(const pe__dense_t *d, const float *x, float *y,
                    int64_t rows, int act, float alpha) {
  (void)d, (void)x, (void)y, (void)rows, (void)act, (void)alpha;
}

void pe__conv1d_avx2(const pe__step_t *s, const float *x, float *y,
                     float *scratch) {
  (void)s, (void)x, (void)y, (void)scratch;
}

void pe__act_avx2(float *y, int64_t n, int act, float alpha) {
  pe__act_apply(y, n, act, alpha);
}

void pe__split_avx2(const float *x, int64_t n, int64_t st, float *rows,
                    int64_t lr) {
  (void)x, (void)n, (void)st, (void)rows, (void)lr;
}

void pe__affine_avx2(const pe__step_t *s, const float *x, float *y) {
  (void)s, (void)x, (void)y;
}

void pe__lstm_seq_avx2(const float *lw, int64_t seq, int64_t in, int64_t H,
                       const float *x, int64_t xst, int64_t xsk,
                       const float *h0, const float *c0, float *y, float *hn,
                       float *cn, float *scratch) {
  (void)lw, (void)seq, (void)in, (void)H, (void)x, (void)h0, (void)c0;
  (void)xst, (void)xsk;
  (void)y, (void)hn, (void)cn, (void)scratch;
}

void pe__gru_cell_avx2(const float *g, const float *r, const float *rb,
                       float *h, int64_t H) {
  (void)g, (void)r, (void)rb, (void)h, (void)H;
}

float pe__exp_sum_avx2(float *y, int64_t n, float sub) {
  (void)y, (void)n;
  return sub;
}

#endif

const pe__kernels_t pe__kernels_avx2 = {
    .name = "avx2+fma",
    .level = 1,
    .dense = pe__dense_avx2,
    .conv1d = pe__conv1d_avx2,
    .conv2d = pe__conv2d_gemm_avx2,
    .act = pe__act_avx2,
    .affine = pe__affine_avx2,
    .gru_cell = pe__gru_cell_avx2,
    .lstm_seq = pe__lstm_seq_avx2,
    .matmul = pe__matmul_avx2,
    .layernorm = pe__layernorm_avx2,
    .attn_blk = pe__attn_blk_avx2,
    .attn_head = pe__attn_head_avx2,
};
