/* AVX-512 versions of the dense and Conv1d kernels: 16 lanes and 32
 * registers let a block of 4 rows x 64 columns (dense) or 8 output channels
 * x 32 time steps (Conv1d) stay in registers. Same packed weights as the
 * AVX2 kernels, and the same order of summation (bias, then k in order, one
 * FMA chain per output), so they give the same bits. Also the GRU cell and
 * the fused LSTM (whose bits differ from the AVX2 one's: other activations).
 * Chosen at load when the CPU reports AVX512F and AVX512DQ
 * (pe__kernels_avx512_usable). */
#include <stdint.h>
#include <string.h>

#include "model/model_impl.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define PE__AVX512 __attribute__((target("avx512f,avx512dq,avx2,fma")))

#include "model/kernels_exp512.h"
#include "model/kernels_lanes512.h"

int pe__kernels_avx512_usable(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx2") &&
         __builtin_cpu_supports("fma");
}

/* Relu or LeakyRelu on 16 lanes; other activations pass through. */
PE__AVX512 static inline __m512 pe__act16(__m512 v, int act, __m512 alpha) {
  if (act == PE__ACT_RELU) {
    return _mm512_max_ps(v, _mm512_setzero_ps());
  }
  if (act == PE__ACT_LEAKY) {
    __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
    return _mm512_mask_mul_ps(v, neg, v, alpha);
  }
  return v;
}

/* exp on 16 lanes: the same Cephes reduction and polynomial as the AVX2
 * version, scaled by 2^n with scalef. */
PE__AVX512 static inline __m512 pe__exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)),
                    _mm512_set1_ps(88.3f));
  /* round to nearest by adding and removing 1.5 * 2^23 (|x log2 e| < 2^7):
   * no intrinsic macro, which warns under -O0 -Wconversion */
  const __m512 magic = _mm512_set1_ps(12582912.0f);
  __m512 fx = _mm512_sub_ps(
      _mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                    magic),
      magic);
  __m512 r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r),
                      _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(y, fx);
}

/* 1 / d for d >= 1: the 14-bit estimate and one Newton step. */
PE__AVX512 static inline __m512 pe__recip16(__m512 d) {
  __m512 r = _mm512_rcp14_ps(d);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
}

PE__AVX512 static inline __m512 pe__sigmoid16(__m512 x) {
  __m512 one = _mm512_set1_ps(1.0f);
  return pe__recip16(
      _mm512_add_ps(one, pe__exp16(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

/* tanh(x) on 16 lanes: for |x| < 0.625 Cephes' odd polynomial x + x^3
 * P(x^2) (relative error about 1e-7); above, 1 - 2 / (exp(2x) + 1). */
PE__AVX512 static inline __m512 pe__tanh16(__m512 x) {
  __m512 z = _mm512_mul_ps(x, x);
  __m512 p = _mm512_set1_ps(-5.70498872745e-3f);
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(2.06390887954e-2f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-5.37397155531e-2f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(1.33314422036e-1f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-3.33332819422e-1f));
  __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, z), x, x);
  /* on |x|, the sign put back: 2 / (exp(2|x|) + 1) <= 0.44 keeps its
   * relative precision */
  __m512 sign = _mm512_and_ps(x, _mm512_set1_ps(-0.0f));
  __m512 c = _mm512_min_ps(_mm512_andnot_ps(sign, x), _mm512_set1_ps(10.0f));
  __m512 one = _mm512_set1_ps(1.0f);
  __m512 e = pe__exp16(_mm512_add_ps(c, c));
  __m512 big = _mm512_or_ps(
      sign, _mm512_fnmadd_ps(_mm512_set1_ps(2.0f),
                             pe__recip16(_mm512_add_ps(e, one)), one));
  /* NaN takes the polynomial, which keeps it */
  __mmask16 is_small =
      _mm512_cmp_ps_mask(z, _mm512_set1_ps(0.390625f), _CMP_NGE_UQ);
  return _mm512_mask_blend_ps(is_small, big, small);
}

/* erf on 16 lanes: pe__erf8 of kernels_avx2.c with 16 lanes, the same
 * polynomials in the same order, 1 / |x| by pe__recip16. *erfc_out, when
 * given, receives erfc(|x|) (valid where |x| >= 1). */
PE__AVX512 static inline __m512 pe__erf16(__m512 x, __m512 *erfc_out) {
  const __m512 one = _mm512_set1_ps(1.0f);
  __m512 sign = _mm512_and_ps(x, _mm512_set1_ps(-0.0f));
  __m512 a = _mm512_andnot_ps(sign, x);
  __m512 z = _mm512_mul_ps(a, a);
  __m512 p = _mm512_set1_ps(7.898107287473977e-05f);
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-8.024326525628567e-04f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(5.190050695091486e-03f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-2.6854807510972023e-02f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(1.1283612251281738e-01f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-3.761262893676758e-01f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(1.128379225730896f));
  __m512 small = _mm512_mul_ps(a, p);
  __m512 ac = _mm512_min_ps(_mm512_max_ps(a, one), _mm512_set1_ps(9.5f));
  /* 1 / ac by rcp14 and a Newton step (about 28 bits): a 512-bit division
   * costs 16 cycles of throughput on Intel's cores */
  __m512 t = pe__recip16(ac);
  __m512 r = _mm512_set1_ps(7.704917341470718e-02f);
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(-4.2415738105773926e-01f));
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(9.951067566871643e-01f));
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(-1.254515528678894f));
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(8.136741518974304e-01f));
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(-6.683843582868576e-02f));
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(-2.7700820565223694e-01f));
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(1.278832642128691e-04f));
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(5.641431212425232e-01f));
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(2.1290354652592214e-06f));
  __m512 erfc = _mm512_mul_ps(
      pe__exp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(ac, ac))), r);
  if (erfc_out != NULL) {
    *erfc_out = erfc;
  }
  /* a < 1, or NaN: the polynomial, which keeps NaN */
  __mmask16 is_small = _mm512_cmp_ps_mask(a, one, _CMP_NGE_UQ);
  return _mm512_or_ps(
      sign, _mm512_mask_blend_ps(is_small, _mm512_sub_ps(one, erfc), small));
}

/* GELU, 0.5 x (1 + erf(x / sqrt 2)), on 16 lanes, as pe__gelu8: for
 * x / sqrt 2 <= -1 the factor is erfc(|x| / sqrt 2) itself. */
PE__AVX512 static inline __m512 pe__gelu16(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  __m512 u = _mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f));
  __m512 erfc;
  __m512 e = pe__erf16(u, &erfc);
  __mmask16 tail = _mm512_cmp_ps_mask(u, _mm512_set1_ps(-1.0f), _CMP_LE_OQ);
  __m512 f = _mm512_mask_blend_ps(tail, _mm512_add_ps(one, e), erfc);
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), f);
}

/* Activations in place over n floats, as pe__act_avx2 with 16 lanes: one
 * loop per activation, four independent vectors an iteration, the tail
 * masked; those without a vector form go to the portable pe__act_apply. */
PE__AVX512 void pe__act_avx512(float *y, int64_t n, int act, float alpha) {
  const __m512 va = _mm512_set1_ps(alpha);
#define PE__ACT_LOOP(F)                                                        \
  do {                                                                         \
    int64_t i = 0;                                                             \
    for (; i + 64 <= n; i += 64) {                                             \
      __m512 v0 = _mm512_loadu_ps(y + i), v1 = _mm512_loadu_ps(y + i + 16);    \
      __m512 v2 = _mm512_loadu_ps(y + i + 32);                                 \
      __m512 v3 = _mm512_loadu_ps(y + i + 48);                                 \
      _mm512_storeu_ps(y + i, F(v0));                                          \
      _mm512_storeu_ps(y + i + 16, F(v1));                                     \
      _mm512_storeu_ps(y + i + 32, F(v2));                                     \
      _mm512_storeu_ps(y + i + 48, F(v3));                                     \
    }                                                                          \
    for (; i < n; i += 16) {                                                   \
      __mmask16 m = pe__m16(n - i);                                            \
      _mm512_mask_storeu_ps(y + i, m, F(_mm512_maskz_loadu_ps(m, y + i)));     \
    }                                                                          \
  } while (0)
#define PE__ERF(v) pe__erf16(v, NULL)
#define PE__SIMPLE(v) pe__act16(v, act, va)
  switch (act) {
  case PE__ACT_SIGMOID:
    PE__ACT_LOOP(pe__sigmoid16);
    break;
  case PE__ACT_TANH:
    PE__ACT_LOOP(pe__tanh16);
    break;
  case PE__ACT_EXP:
    PE__ACT_LOOP(pe__exp16);
    break;
  case PE__ACT_ERF:
    PE__ACT_LOOP(PE__ERF);
    break;
  case PE__ACT_GELU:
    PE__ACT_LOOP(pe__gelu16);
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

/* The fused LSTM's activations. pe__lstm_pack scales the gate rows so
 * that the sums arrive in base 2: t = -x log2(e) for the sigmoid gates,
 * t = 2x log2(e) for the tanh gate, and the cell state is kept as
 * c' = 2 log2(e) c. 2^t = 2^floor(t) (scalef) times a degree-5 minimax
 * polynomial of t - floor(t) (vreduceps, Estrin's scheme; relative error
 * 9e-8); 1 / d as rcp14 and one Newton step. t is capped at 127 for the
 * scale, where every result has long since saturated, so that 2^t stays
 * finite. */
PE__AVX512 static inline __m512 pe__exp2poly16(__m512 f) {
  __m512 f2 = _mm512_mul_ps(f, f);
  __m512 p01 = _mm512_fmadd_ps(_mm512_set1_ps(6.93153083e-1f), f,
                               _mm512_set1_ps(9.9999994e-1f));
  __m512 p23 = _mm512_fmadd_ps(_mm512_set1_ps(5.58263175e-2f), f,
                               _mm512_set1_ps(2.40153566e-1f));
  __m512 p45 = _mm512_fmadd_ps(_mm512_set1_ps(1.87757646e-3f), f,
                               _mm512_set1_ps(8.9893369e-3f));
  return _mm512_fmadd_ps(_mm512_fmadd_ps(p45, f2, p23), f2, p01);
}

/* s / (1 + 2^t), as d = q (1 + 2^t) with q = 1 / s, r ~ 1 / d refined.
 * Only the scale 2^floor(t) needs t capped, beside the polynomial. */
#define PE__LSTM_FRAC(t, q)                                                    \
  __m512 d = _mm512_fmadd_ps(                                                  \
      pe__exp2poly16(                                                          \
          _mm512_reduce_ps(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)),     \
      _mm512_scalef_ps(q, _mm512_min_ps(t, _mm512_set1_ps(127.0f))), q);       \
  __m512 r = _mm512_rcp14_ps(d)

/* sigmoid(x) from t = -x log2(e) */
PE__AVX512 static inline __m512 pe__lstm_sig16(__m512 t) {
  const __m512 one = _mm512_set1_ps(1.0f);
  PE__LSTM_FRAC(t, one);
  return _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d, r, one), r);
}

/* s tanh(x) from t = 2x log2(e): s - 2s / (1 + 2^t), with q = 1 / (2s).
 * Absolute error a few 1e-8 times s, near 0 too. */
PE__AVX512 static inline __m512 pe__lstm_tanh16(__m512 t, float s) {
  const __m512 q = _mm512_set1_ps(0.5f / s);
  PE__LSTM_FRAC(t, q);
  return _mm512_fnmadd_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)),
                          _mm512_set1_ps(s));
}
#undef PE__LSTM_FRAC
#define PE__K2 2.88539008177792681f /* 2 log2(e) */

/* One block's cell: gates i, o, f (sigmoid) and c (tanh) from the scaled
 * sums; c' updated in place; returns h. */
PE__AVX512 static inline __m512 pe__lstm_cell16(const __m512 g[4], __m512 *c) {
  __m512 ig = pe__lstm_sig16(g[0]);
  __m512 fg = pe__lstm_sig16(g[2]);
  __m512 cg = pe__lstm_tanh16(g[3], PE__K2);
  __m512 og = pe__lstm_sig16(g[1]);
  *c = _mm512_fmadd_ps(fg, *c, _mm512_mul_ps(ig, cg));
  return _mm512_mul_ps(og, pe__lstm_tanh16(*c, 1.0f));
}

/* The input projection of every time step of one window, before the
 * recurrence (which then loads 4 vectors a block and step instead of the
 * bias, W and x_t): xp[t][jb][g][16] = bias + sum over k of x_t[k] W[k]
 * (k in order), per block of 16 units, 6 time steps at a time so that
 * each W vector loaded serves 6 FMAs (the 24 sums, 6 broadcasts and a W
 * vector take 31 of the 32 registers). */
#define PE__XT 6
PE__AVX512 static void pe__lstm_xproj(const float *lw, int64_t seq, int64_t in,
                                      int64_t H, const float *x, int64_t xst,
                                      int64_t xsk, float *xp) {
  const int64_t HB = (H + 15) / 16;
  for (int64_t jb = 0; jb < HB; jb++) {
    const float *wx = PE__LSTM_W(lw, in, H, jb),
                *bb = PE__LSTM_B(lw, in, H, jb);
    for (int64_t t0 = 0; t0 < seq; t0 += PE__XT) {
      const int64_t nt = seq - t0 < PE__XT ? seq - t0 : PE__XT;
      __m512 acc[PE__XT][4];
      _Pragma("GCC unroll 8") for (int u = 0; u < PE__XT; u++) {
        _Pragma("GCC unroll 4") for (int g = 0; g < 4; g++) {
          acc[u][g] = _mm512_load_ps(bb + 16 * g);
        }
      }
      for (int64_t k = 0; k < in; k++) {
        __m512 v[PE__XT];
        _Pragma("GCC unroll 8") for (int u = 0; u < PE__XT; u++) {
          /* rows past the sequence read row t0 again; never stored */
          v[u] = _mm512_set1_ps(x[(t0 + (u < nt ? u : 0)) * xst + k * xsk]);
        }
        _Pragma("GCC unroll 4") for (int g = 0; g < 4; g++) {
          __m512 w = _mm512_load_ps(wx + k * 64 + 16 * g);
          _Pragma("GCC unroll 8") for (int u = 0; u < PE__XT; u++) {
            acc[u][g] = _mm512_fmadd_ps(v[u], w, acc[u][g]);
          }
        }
      }
      _Pragma("GCC unroll 8") for (int u = 0; u < PE__XT; u++) {
        _Pragma("GCC unroll 4") for (int g = 0; g < 4; g++) {
          if (u < nt) {
            _mm512_store_ps(xp + ((t0 + u) * HB + jb) * 64 + 16 * g, acc[u][g]);
          }
        }
      }
    }
  }
}
#undef PE__XT

/* The scratch of the fused kernels, 64-byte aligned: xp [seq][HB][64],
 * then h [2][HB][16] (two buffers) and c' [HB][16] (PE__LSTM_SCRATCH). */
#define PE__ALIGN64(p) ((float *)(((uintptr_t)(p) + 63) & ~(uintptr_t)63))

/* Initial state and final outputs of the fused kernels, c' = c 2 log2(e). */
PE__AVX512 static inline void pe__lstm_init16(int64_t H, const float *h0,
                                              const float *c0, float *h,
                                              float *c) {
  const int64_t HB = (H + 15) / 16;
  for (int64_t jb = 0; jb < HB; jb++) {
    __mmask16 m = pe__m16(H - jb * 16);
    _mm512_store_ps(h + jb * 16, h0 ? _mm512_maskz_loadu_ps(m, h0 + jb * 16)
                                    : _mm512_setzero_ps());
    _mm512_store_ps(c + jb * 16,
                    c0 ? _mm512_mul_ps(_mm512_maskz_loadu_ps(m, c0 + jb * 16),
                                       _mm512_set1_ps(PE__K2))
                       : _mm512_setzero_ps());
  }
}

PE__AVX512 static inline void pe__lstm_out16(int64_t H, const float *h,
                                             const float *c, float *hn,
                                             float *cn) {
  for (int64_t jb = 0; jb < (H + 15) / 16; jb++) {
    __mmask16 m = pe__m16(H - jb * 16);
    if (hn != NULL) {
      _mm512_mask_storeu_ps(hn + jb * 16, m, _mm512_load_ps(h + jb * 16));
    }
    if (cn != NULL) {
      _mm512_mask_storeu_ps(cn + jb * 16, m,
                            _mm512_mul_ps(_mm512_load_ps(c + jb * 16),
                                          _mm512_set1_ps(1.0f / PE__K2)));
    }
  }
}

/* Any H: per time step and block of 16 hidden units, the 4 gate vectors
 * xp + R h (two FMA chains each, over the even and the odd k, added at the
 * end: the chains are what a step waits on), then the cell; h goes to the
 * second buffer (the other blocks still read the old one). */
PE__AVX512 static void pe__lstm_seq_any(const float *lw, int64_t seq,
                                        int64_t in, int64_t H, const float *x,
                                        int64_t xst, int64_t xsk,
                                        const float *h0, const float *c0,
                                        float *y, float *hn, float *cn,
                                        float *scratch) {
  const int64_t HB = (H + 15) / 16;
  float *xp = PE__ALIGN64(scratch);
  float *hb[2] = {xp + seq * HB * 64, xp + seq * HB * 64 + HB * 16};
  float *cs = hb[1] + HB * 16;
  pe__lstm_xproj(lw, seq, in, H, x, xst, xsk, xp);
  pe__lstm_init16(H, h0, c0, hb[0], cs);
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
      /* two chains a gate (even and odd k), half as long */
      __m512 a[4], e[4];
      _Pragma("GCC unroll 4") for (int g = 0; g < 4; g++) {
        a[g] = _mm512_load_ps(xt + 16 * g);
        e[g] = _mm512_setzero_ps();
      }
      int64_t k = 0;
      for (; k + 2 <= H; k += 2) {
        __m512 v = _mm512_set1_ps(h[k]), u = _mm512_set1_ps(h[k + 1]);
        _Pragma("GCC unroll 4") for (int g = 0; g < 4; g++) {
          a[g] = _mm512_fmadd_ps(v, _mm512_load_ps(wr + k * 64 + 16 * g), a[g]);
          e[g] = _mm512_fmadd_ps(u, _mm512_load_ps(wr + k * 64 + 64 + 16 * g),
                                 e[g]);
        }
      }
      if (k < H) {
        __m512 v = _mm512_set1_ps(h[k]);
        _Pragma("GCC unroll 4") for (int g = 0; g < 4; g++) {
          a[g] = _mm512_fmadd_ps(v, _mm512_load_ps(wr + k * 64 + 16 * g), a[g]);
        }
      }
      _Pragma("GCC unroll 4") for (int g = 0; g < 4; g++) {
        a[g] = _mm512_add_ps(a[g], e[g]);
      }
      __m512 c = _mm512_load_ps(cs + jb * 16);
      __m512 hv = pe__lstm_cell16(a, &c);
      _mm512_store_ps(cs + jb * 16, c);
      _mm512_store_ps(ho + jb * 16, hv);
      if (y != NULL) {
        _mm512_mask_storeu_ps(y + t * H + jb * 16, pe__m16(H - jb * 16), hv);
      }
    }
  }
  pe__lstm_out16(H, hb[seq & 1], cs, hn, cn);
}

/* 16 < H <= 32, the shipped pattern model's case: xp + R h (one FMA chain
 * per gate vector, k in order) with both blocks in registers, so that each h[k]
 * is broadcast once a step, and c' kept in registers. At batch 1 a step is
 * bound by the L1 loads of R (4H x H floats, a 64-byte vector per FMA) and by
 * the latency of the cell; nothing else loads inside the loop but xp and h. */
PE__AVX512 static void pe__lstm_seq_2b(const float *lw, int64_t seq, int64_t in,
                                       int64_t H, const float *x, int64_t xst,
                                       int64_t xsk, const float *h0,
                                       const float *c0, float *y, float *hn,
                                       float *cn, float *scratch) {
  float *xp = PE__ALIGN64(scratch);
  float *hb[2] = {xp + seq * 128, xp + seq * 128 + 32};
  float *cs = hb[1] + 32;
  pe__lstm_xproj(lw, seq, in, H, x, xst, xsk, xp);
  pe__lstm_init16(H, h0, c0, hb[0], cs);
  const float *r0 = PE__LSTM_R(lw, in, H, 0), *r1 = PE__LSTM_R(lw, in, H, 1);
  const __mmask16 m1 = pe__m16(H - 16);
  __m512 c[2] = {_mm512_load_ps(cs), _mm512_load_ps(cs + 16)};
  for (int64_t t = 0; t < seq; t++) {
    const float *h = hb[t & 1], *xt = xp + t * 128;
    float *ho = hb[(t & 1) ^ 1];
    __m512 a0[4], a1[4];
    _Pragma("GCC unroll 4") for (int g = 0; g < 4; g++) {
      a0[g] = _mm512_load_ps(xt + 16 * g);
      a1[g] = _mm512_load_ps(xt + 64 + 16 * g);
    }
    for (int64_t k = 0; k < H; k++) {
      __m512 v = _mm512_set1_ps(h[k]);
      _Pragma("GCC unroll 4") for (int g = 0; g < 4; g++) {
        a0[g] = _mm512_fmadd_ps(v, _mm512_load_ps(r0 + k * 64 + 16 * g), a0[g]);
        a1[g] = _mm512_fmadd_ps(v, _mm512_load_ps(r1 + k * 64 + 16 * g), a1[g]);
      }
    }
    __m512 hA = pe__lstm_cell16(a0, &c[0]);
    __m512 hB = pe__lstm_cell16(a1, &c[1]);
    _mm512_store_ps(ho, hA);
    _mm512_store_ps(ho + 16, hB);
    if (y != NULL) {
      _mm512_storeu_ps(y + t * H, hA);
      _mm512_mask_storeu_ps(y + t * H + 16, m1, hB);
    }
  }
  _mm512_store_ps(cs, c[0]);
  _mm512_store_ps(cs + 16, c[1]);
  pe__lstm_out16(H, hb[seq & 1], cs, hn, cn);
}

PE__AVX512 void pe__lstm_seq_avx512(const float *lw, int64_t seq, int64_t in,
                                    int64_t H, const float *x, int64_t xst,
                                    int64_t xsk, const float *h0,
                                    const float *c0, float *y, float *hn,
                                    float *cn, float *scratch) {
  if (H > 16 && H <= 32) {
    pe__lstm_seq_2b(lw, seq, in, H, x, xst, xsk, h0, c0, y, hn, cn, scratch);
  } else {
    pe__lstm_seq_any(lw, seq, in, H, x, xst, xsk, h0, c0, y, hn, cn, scratch);
  }
}
#undef PE__K2

PE__AVX512 void pe__gru_cell_avx512(const float *g, const float *r,
                                    const float *rb, float *h, int64_t H) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t j = 0; j < H; j += 16) {
    __mmask16 m = pe__m16(H - j);
#define PE__LD(p) _mm512_maskz_loadu_ps(m, (p) + j)
    __m512 z = pe__sigmoid16(_mm512_add_ps(PE__LD(g), PE__LD(r)));
    __m512 rr = pe__sigmoid16(_mm512_add_ps(PE__LD(g + H), PE__LD(r + H)));
    __m512 hh = pe__tanh16(_mm512_add_ps(
        PE__LD(g + 2 * H),
        _mm512_mul_ps(rr, _mm512_add_ps(PE__LD(r + 2 * H), PE__LD(rb)))));
    __m512 hn = _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(one, z), hh),
                              _mm512_mul_ps(z, PE__LD(h)));
#undef PE__LD
    _mm512_mask_storeu_ps(h + j, m, hn);
  }
}

/* The sum over k is cut into PE__NCH(K) chunks of equal length (the last
 * takes the rest): y = ((bias + S0) + S1) + ... where each S is one FMA
 * chain in k order. Blocks of several rows run the chunks one after the
 * other through y; a single row runs them as parallel chains (4x the FMAs
 * in flight, for batch 1). Both orders give the same bits, so a window gets
 * the same result wherever it sits in a batch. */
#define PE__NCH(K) PE__DENSE_NCH(K)

/* MR rows x NP panels of 16 columns over k in [k0, k1). */
#define PE__DENSE_BLOCK(MR, NP)                                                \
  PE__AVX512 static void pe__dense_blk_##MR##x##NP(                            \
      const float *x, int64_t K, int64_t M, const float *wp, const float *bp,  \
      float *y, int64_t wcols, int act, __m512 alpha, int64_t k0, int64_t k1,  \
      int first, int last) {                                                   \
    __m512 c[MR][NP];                                                          \
    _Pragma("GCC unroll 16") for (int p = 0; p < NP; p++) {                    \
      __m512 b = first ? _mm512_loadu_ps(bp + p * 16) : _mm512_setzero_ps();   \
      _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++) { c[r][p] = b; }   \
    }                                                                          \
    for (int64_t k = k0; k < k1; k++) {                                        \
      __m512 w[NP];                                                            \
      _Pragma("GCC unroll 16") for (int p = 0; p < NP; p++) {                  \
        w[p] = _mm512_loadu_ps(wp + (p * K + k) * 16);                         \
      }                                                                        \
      _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++) {                  \
        __m512 a = _mm512_set1_ps(x[r * K + k]);                               \
        _Pragma("GCC unroll 16") for (int p = 0; p < NP; p++) {                \
          c[r][p] = _mm512_fmadd_ps(a, w[p], c[r][p]);                         \
        }                                                                      \
      }                                                                        \
    }                                                                          \
    _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++) {                    \
      _Pragma("GCC unroll 16") for (int p = 0; p < NP; p++) {                  \
        __mmask16 mk = pe__m16(wcols - p * 16);                                \
        float *yp = y + r * M + p * 16;                                        \
        __m512 v = c[r][p];                                                    \
        if (!first) {                                                          \
          v = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, yp), v);                 \
        }                                                                      \
        _mm512_mask_storeu_ps(yp, mk, last ? pe__act16(v, act, alpha) : v);    \
      }                                                                        \
    }                                                                          \
  }

PE__DENSE_BLOCK(4, 4)
PE__DENSE_BLOCK(4, 2)
PE__DENSE_BLOCK(4, 1)
PE__DENSE_BLOCK(8, 2)
PE__DENSE_BLOCK(8, 1)

/* One row, NP panels, the NC chunks as parallel chains. */
#define PE__DENSE_ROW(NC, NP)                                                  \
  PE__AVX512 static void pe__dense_row##NC##_##NP(                             \
      const float *x, int64_t K, const float *wp, const float *bp, float *y,   \
      int64_t wcols, int act, __m512 alpha) {                                  \
    const int64_t len = K / NC;                                                \
    __m512 c[NC][NP];                                                          \
    _Pragma("GCC unroll 16") for (int p = 0; p < NP; p++) {                    \
      c[0][p] = _mm512_loadu_ps(bp + p * 16);                                  \
      _Pragma("GCC unroll 16") for (int q = 1; q < NC; q++) {                  \
        c[q][p] = _mm512_setzero_ps();                                         \
      }                                                                        \
    }                                                                          \
    for (int64_t i = 0; i < len; i++) {                                        \
      _Pragma("GCC unroll 16") for (int q = 0; q < NC; q++) {                  \
        int64_t k = q * len + i;                                               \
        __m512 a = _mm512_set1_ps(x[k]);                                       \
        _Pragma("GCC unroll 16") for (int p = 0; p < NP; p++) {                \
          c[q][p] = _mm512_fmadd_ps(a, _mm512_loadu_ps(wp + (p * K + k) * 16), \
                                    c[q][p]);                                  \
        }                                                                      \
      }                                                                        \
    }                                                                          \
    for (int64_t k = NC * len; k < K; k++) {                                   \
      __m512 a = _mm512_set1_ps(x[k]);                                         \
      _Pragma("GCC unroll 16") for (int p = 0; p < NP; p++) {                  \
        c[NC - 1][p] = _mm512_fmadd_ps(                                        \
            a, _mm512_loadu_ps(wp + (p * K + k) * 16), c[NC - 1][p]);          \
      }                                                                        \
    }                                                                          \
    _Pragma("GCC unroll 16") for (int p = 0; p < NP; p++) {                    \
      __m512 v = c[0][p];                                                      \
      _Pragma("GCC unroll 16") for (int q = 1; q < NC; q++) {                  \
        v = _mm512_add_ps(v, c[q][p]);                                         \
      }                                                                        \
      _mm512_mask_storeu_ps(y + p * 16, pe__m16(wcols - p * 16),               \
                            pe__act16(v, act, alpha));                         \
    }                                                                          \
  }

PE__DENSE_ROW(4, 2)
PE__DENSE_ROW(4, 1)
PE__DENSE_ROW(2, 8)
PE__DENSE_ROW(2, 4)
PE__DENSE_ROW(2, 2)
PE__DENSE_ROW(2, 1)

PE__DENSE_BLOCK(1, 8)
PE__DENSE_BLOCK(1, 4)
PE__DENSE_BLOCK(1, 2)
PE__DENSE_BLOCK(1, 1)

typedef void (*pe__blk_fn)(const float *, int64_t, int64_t, const float *,
                           const float *, float *, int64_t, int, __m512,
                           int64_t, int64_t, int, int);

/* Runs one block through the chunks of K, in order. */
PE__AVX512 static inline void pe__chunks(pe__blk_fn fn, const float *x,
                                         int64_t K, int64_t M, const float *wp,
                                         const float *bp, float *y,
                                         int64_t wcols, int act, __m512 alpha) {
  const int nch = PE__NCH(K);
  const int64_t len = K / nch;
  for (int q = 0; q < nch; q++) {
    int64_t k0 = q * len, k1 = q == nch - 1 ? K : k0 + len;
    fn(x, K, M, wp, bp, y, wcols, act, alpha, k0, k1, q == 0, q == nch - 1);
  }
}

/* Dense layer over `rows` rows (panel layout; dot layout goes to the
 * AVX2 kernel), the activation fused. */
PE__AVX512 void pe__dense_avx512(const pe__dense_t *d, const float *x, float *y,
                                 int64_t rows, int act, float alpha_f) {
  if (d->dot) {
    pe__dense_avx2(d, x, y, rows, act, alpha_f);
    return;
  }
  const int64_t K = d->K, M = d->M, P = (M + 15) / 16;
  int simple =
      act == PE__ACT_NONE || act == PE__ACT_RELU || act == PE__ACT_LEAKY;
  int vact = simple ? act : PE__ACT_NONE;
  const __m512 alpha = _mm512_set1_ps(alpha_f);
  int64_t r = 0;
  if (P <= 2) {
    for (; r + 8 <= rows; r += 8) {
      for (int64_t p = 0; p < P; p += 2) {
        pe__chunks(p + 2 <= P ? pe__dense_blk_8x2 : pe__dense_blk_8x1,
                   x + r * K, K, M, d->wp + p * K * 16, d->bp + p * 16,
                   y + r * M + p * 16, M - p * 16, vact, alpha);
      }
    }
  }
  for (; r + 4 <= rows; r += 4) {
    int64_t p = 0;
    for (; p + 4 <= P; p += 4) {
      pe__chunks(pe__dense_blk_4x4, x + r * K, K, M, d->wp + p * K * 16,
                 d->bp + p * 16, y + r * M + p * 16, M - p * 16, vact, alpha);
    }
    for (; p + 2 <= P; p += 2) {
      pe__chunks(pe__dense_blk_4x2, x + r * K, K, M, d->wp + p * K * 16,
                 d->bp + p * 16, y + r * M + p * 16, M - p * 16, vact, alpha);
    }
    for (; p < P; p++) {
      pe__chunks(pe__dense_blk_4x1, x + r * K, K, M, d->wp + p * K * 16,
                 d->bp + p * 16, y + r * M + p * 16, M - p * 16, vact, alpha);
    }
  }
  for (; r < rows; r++) {
    int64_t p = 0;
    const float *xr = x + r * K;
    float *yr = y + r * M;
#define PE__ROW(fn, np)                                                        \
  for (; p + np <= P; p += np) {                                               \
    fn(xr, K, d->wp + p * K * 16, d->bp + p * 16, yr + p * 16, M - p * 16,     \
       vact, alpha);                                                           \
  }
    if (PE__NCH(K) == 4) {
      PE__ROW(pe__dense_row4_2, 2)
      PE__ROW(pe__dense_row4_1, 1)
    } else if (PE__NCH(K) == 2) {
      PE__ROW(pe__dense_row2_8, 8)
      PE__ROW(pe__dense_row2_4, 4)
      PE__ROW(pe__dense_row2_2, 2)
      PE__ROW(pe__dense_row2_1, 1)
    }
#undef PE__ROW
    for (; p + 8 <= P; p += 8) {
      pe__chunks(pe__dense_blk_1x8, xr, K, M, d->wp + p * K * 16,
                 d->bp + p * 16, yr + p * 16, M - p * 16, vact, alpha);
    }
    for (; p + 4 <= P; p += 4) {
      pe__chunks(pe__dense_blk_1x4, xr, K, M, d->wp + p * K * 16,
                 d->bp + p * 16, yr + p * 16, M - p * 16, vact, alpha);
    }
    for (; p + 2 <= P; p += 2) {
      pe__chunks(pe__dense_blk_1x2, xr, K, M, d->wp + p * K * 16,
                 d->bp + p * 16, yr + p * 16, M - p * 16, vact, alpha);
    }
    for (; p < P; p++) {
      pe__chunks(pe__dense_blk_1x1, xr, K, M, d->wp + p * K * 16,
                 d->bp + p * 16, yr + p * 16, M - p * 16, vact, alpha);
    }
  }
  if (!simple) {
    pe__act_avx512(y, rows * M, act, alpha_f);
  }
}

/* The phase rows of a stride st >= 2 (pe__split_fn): a stride of 2 by
 * two-source permutes, 32 floats at a time; larger ones as the AVX2 table
 * gathers them. */
PE__AVX512 static void pe__split_avx512(const float *x, int64_t n, int64_t st,
                                        float *rows, int64_t lr) {
  if (st != 2) {
    pe__split_avx2(x, n, st, rows, lr);
    return;
  }
  const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20,
                                       22, 24, 26, 28, 30);
  const __m512i io = _mm512_add_epi32(ie, _mm512_set1_epi32(1));
  float *even = rows, *odd = rows + lr;
  int64_t j = 0;
  for (; 2 * j + 32 <= n; j += 16) {
    const __m512 a = _mm512_loadu_ps(x + 2 * j);
    const __m512 b = _mm512_loadu_ps(x + 2 * j + 16);
    _mm512_storeu_ps(even + j, _mm512_permutex2var_ps(a, ie, b));
    _mm512_storeu_ps(odd + j, _mm512_permutex2var_ps(a, io, b));
  }
  pe__split2_rest(x, n, j, even, odd, lr);
}

/* The Conv1d kernel (kernels_conv1d.inc): blocks of 8 output channels x
 * 32 time steps. */
#define PE__CV_STORE(yp, v, w, act, alpha)                                     \
  _mm512_mask_storeu_ps(yp, pe__m16(w), pe__act16(v, act, alpha))
#define PE__CV_ACTV(v, act, alpha) pe__act16(v, act, alpha)
#define PE__CV_MUL(a, b) _mm512_mul_ps(a, b)
#define PE__CV_ADD(a, b) _mm512_add_ps(a, b)
#define PE__CV_ATTR PE__AVX512
#define PE__CV_V __m512
#define PE__CV_L 16
#define PE__CV_NV 2
#define PE__CV_MAXCO 8
#define PE__CV_LOAD(p) _mm512_loadu_ps(p)
#define PE__CV_SET1(f) _mm512_set1_ps(f)
#define PE__CV_BCAST(p) _mm512_set1_ps(*(p))
#define PE__CV_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define PE__CV_NAME pe__conv1d_rows_avx512
#define PE__CV_ACT pe__act_avx512
#define PE__CV_SPLIT pe__split_avx512
void pe__conv1d_rows_avx512(const pe__step_t *s, const float *x, float *y,
                            float *scratch);
#include "model/kernels_conv1d.inc"

/* One block of a Conv1d whose taps equal its stride k (w: the packed
 * weights of 16 output channels, pe__conv1d_cl_pack): the sums at 16
 * positions, position q reading x[ci * win + q' k + t], q' = min(q,
 * last), each bias then the (input channel, tap) pairs in order as the
 * direct kernels sum, with the channels in the lanes (one weight vector
 * and 16 broadcast inputs a pair); then a 16 x 16 transposition in
 * registers (pairs of floats, of doubles, then 128-bit lanes twice) to
 * the nc rows of channels, activated, where es is given taken through
 * the affine step after the convolution (x es[c] + et[c], two roundings:
 * plan.c) and stored at y (rows wout apart) under mask m. Inlined with k
 * constant where the caller knows it, so that the 16 inputs of a pair are
 * one base register and immediate offsets. */
PE__AVX512 static inline __attribute__((always_inline)) void
pe__cl_block(const float *x, int64_t win, int64_t cin, int64_t k, int last,
             const float *w, __m512 bias, int vact, __m512 alpha,
             const float *es, const float *et, float *y, int64_t wout,
             int64_t nc, __mmask16 m) {
  __m512 r[16];
  _Pragma("GCC unroll 16") for (int q = 0; q < 16; q++) { r[q] = bias; }
  if (last == 15) {
    for (int64_t ci = 0; ci < cin; ci++) {
      const float *xc = x + ci * win;
      for (int64_t t = 0; t < k; t++, w += 16) {
        const __m512 wv = _mm512_load_ps(w);
        _Pragma("GCC unroll 16") for (int q = 0; q < 16; q++) {
          r[q] = _mm512_fmadd_ps(_mm512_set1_ps(xc[q * k + t]), wv, r[q]);
        }
      }
    }
  } else {
    int64_t off[16];
    _Pragma("GCC unroll 16") for (int q = 0; q < 16; q++) {
      off[q] = (q < last ? q : last) * k;
    }
    for (int64_t ci = 0; ci < cin; ci++) {
      const float *xc = x + ci * win;
      for (int64_t t = 0; t < k; t++, w += 16) {
        const __m512 wv = _mm512_load_ps(w);
        _Pragma("GCC unroll 16") for (int q = 0; q < 16; q++) {
          r[q] = _mm512_fmadd_ps(_mm512_set1_ps(xc[off[q] + t]), wv, r[q]);
        }
      }
    }
  }
  pe__tr16(r);
  _Pragma("GCC unroll 16") for (int c = 0; c < 16; c++) {
    if (c < nc) {
      __m512 v = pe__act16(r[c], vact, alpha);
      if (es != NULL) {
        v = _mm512_add_ps(_mm512_mul_ps(v, _mm512_set1_ps(es[c])),
                          _mm512_set1_ps(et[c]));
      }
      _mm512_mask_storeu_ps(y + c * wout, m, v);
    }
  }
}

/* Conv1d whose taps equal its stride, one window (pe__conv1d_cl_pack): per
 * block of 16 positions, each block of 16 output channels (pe__cl_block).
 * The block's input (k floats per position and channel) is read where it
 * lies, and stays in L1 for every channel block. The same sums as the
 * direct kernels, in the same order. */
PE__AVX512 static void pe__conv1d_cl_avx512(const pe__step_t *s, const float *x,
                                            float *y) {
  const int64_t cin = s->p[0], cout = s->p[1], k = s->p[3];
  const int64_t win = s->p[8], wout = s->p[9];
  const int64_t nb = (cout + 15) / 16, nj = cin * k;
  const int simple = s->act == PE__ACT_NONE || s->act == PE__ACT_RELU ||
                     s->act == PE__ACT_LEAKY;
  const int vact = simple ? s->act : PE__ACT_NONE;
  const __m512 alpha = _mm512_set1_ps(s->alpha);
  for (int64_t p0 = 0; p0 < wout; p0 += 16) {
    const int last = wout - p0 > 16 ? 15 : (int)(wout - p0 - 1);
    const __mmask16 m = pe__m16(last + 1);
    const float *xb = x + p0 * k;
    for (int64_t b = 0; b < nb; b++) {
      const float *w = s->wl + b * nj * 16;
      const __m512 bias = _mm512_load_ps(s->wl + (nb * nj + b) * 16);
      const int64_t nc = cout - b * 16 < 16 ? cout - b * 16 : 16;
      float *yb = y + b * 16 * wout + p0;
      const float *es = s->es != NULL ? s->es + b * 16 : NULL;
      const float *et = s->es != NULL ? s->et + b * 16 : NULL;
#define PE__CL_K(K)                                                            \
  case K:                                                                      \
    pe__cl_block(xb, win, cin, K, last, w, bias, vact, alpha, es, et, yb,      \
                 wout, nc, m);                                                 \
    break;
      switch (k) {
        PE__CL_K(2)
        PE__CL_K(4)
        PE__CL_K(5)
        PE__CL_K(8)
        PE__CL_K(10)
      default:
        pe__cl_block(xb, win, cin, k, last, w, bias, vact, alpha, es, et, yb,
                     wout, nc, m);
        break;
      }
#undef PE__CL_K
    }
  }
  if (!simple) {
    pe__act_avx512(y, cout * wout, s->act, s->alpha);
  }
}

/* The AVX-512 table's Conv1d: the form with the channels in the lanes
 * where the step has it, else the phase rows. */
void pe__conv1d_avx512(const pe__step_t *s, const float *x, float *y,
                       float *scratch) {
  if (s->wl != NULL) {
    pe__conv1d_cl_avx512(s, x, y);
  } else {
    pe__conv1d_rows_avx512(s, x, y, scratch);
  }
}

/* y = exp(y - sub) in place over n floats, returning their sum (a
 * softmax row: the fused attention step). */
PE__AVX512 float pe__exp_sum_avx512(float *y, int64_t n, float sub) {
  const __m512 vs = _mm512_set1_ps(sub);
  __m512 acc = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 m = pe__m16(n - i);
    __m512 e =
        pe__exp_neg16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, y + i), vs));
    _mm512_mask_storeu_ps(y + i, m, e);
    acc = _mm512_mask_add_ps(acc, m, acc, e);
  }
  return _mm512_reduce_add_ps(acc);
}

#else

int pe__kernels_avx512_usable(void) { return 0; }

void pe__lstm_seq_avx512(const float *lw, int64_t seq, int64_t in, int64_t H,
                         const float *x, int64_t xst, int64_t xsk,
                         const float *h0, const float *c0, float *y, float *hn,
                         float *cn, float *scratch) {
  (void)lw, (void)seq, (void)in, (void)H, (void)x, (void)h0, (void)c0;
  (void)xst, (void)xsk;
  (void)y, (void)hn, (void)cn, (void)scratch;
}

void pe__gru_cell_avx512(const float *g, const float *r, const float *rb,
                         float *h, int64_t H) {
  (void)g, (void)r, (void)rb, (void)h, (void)H;
}

void pe__dense_avx512(const pe__dense_t *d, const float *x, float *y,
                      int64_t rows, int act, float alpha) {
  (void)d, (void)x, (void)y, (void)rows, (void)act, (void)alpha;
}

void pe__conv1d_avx512(const pe__step_t *s, const float *x, float *y,
                       float *scratch) {
  (void)s, (void)x, (void)y, (void)scratch;
}

void pe__act_avx512(float *y, int64_t n, int act, float alpha) {
  (void)y, (void)n, (void)act, (void)alpha;
}

float pe__exp_sum_avx512(float *y, int64_t n, float sub) {
  (void)y;
  (void)n;
  return sub;
}
#endif

const pe__kernels_t pe__kernels_avx512 = {
    .name = "avx512+fma",
    .level = 2,
    .dense = pe__dense_avx512,
    .conv1d = pe__conv1d_avx512,
    .conv2d = pe__conv2d_gemm_avx512,
    .act = pe__act_avx512,
    .affine = pe__affine_avx2,
    .gru_cell = pe__gru_cell_avx512,
    .lstm_seq = pe__lstm_seq_avx512,
    .matmul = pe__matmul_avx512,
    .layernorm = pe__layernorm_avx512,
    .attn_blk = pe__attn_blk_avx512,
    .attn_head = pe__attn_head_avx512,
};
