/* Kernels of the attention family: MatMul of two runtime tensors,
 * LayerNormalization and the fused self-attention block, in portable C and
 * AVX2/FMA and AVX-512 versions (__attribute__((target)), called only at the
 * level chosen at load, as in kernels_avx2.c).
 *
 * Hot path: nothing here allocates; the attention step works in the
 * context's scratch (pe__attention_scratch floats). */
#include <math.h>
#include <string.h>

#include "model/model_impl.h"

/* ---- portable ------------------------------------------------------------ */

/* One product y[M][N] = a[M][K] b[K][N], double accumulation. */
static void pe__mm_generic(const float *a, const float *b, float *y, int64_t M,
                           int64_t K, int64_t N) {
  for (int64_t i = 0; i < M; i++) {
    for (int64_t j = 0; j < N; j++) {
      double acc = 0.0;
      for (int64_t k = 0; k < K; k++) {
        acc += (double)a[i * K + k] * (double)b[k * N + j];
      }
      y[i * N + j] = (float)acc;
    }
  }
}

/* One window of a batched MatMul: p[0..2] = M, K, N, p[3] the number of
 * products, dims/st[0]/st[1] the broadcast batch axes and the operands'
 * strides along them. */
void pe__matmul_run(const pe__step_t *s, const float *a, const float *b,
                    float *y, int avx2) {
  const int64_t M = s->p[0], K = s->p[1], N = s->p[2], nb = s->p[3];
  const int r = (int)s->rank;
  int64_t idx[PE__MAX_RANK] = {0}, off[2] = {0, 0};
  for (int64_t q = 0; q < nb; q++) {
    float *yq = y + q * M * N;
    if (avx2 >= 2) {
      pe__matmul_avx512(s, a + off[0], b + off[1], yq);
    } else if (avx2) {
      pe__matmul_avx2(s, a + off[0], b + off[1], yq);
    } else {
      pe__mm_generic(a + off[0], b + off[1], yq, M, K, N);
    }
    pe__index_next(r - 1, s->dims, idx, 2, s->st, off);
  }
}

/* One window of LayerNormalization: p[0] rows of p[1] floats. */
static void pe__layernorm_generic(const pe__step_t *s, const float *x, float *y,
                                  float *mean, float *inv) {
  const int64_t rows = s->p[0], len = s->p[1];
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * len;
    float *yr = y + r * len;
    double sum = 0.0, sq = 0.0;
    for (int64_t i = 0; i < len; i++) {
      sum += xr[i];
    }
    double mu = len ? sum / (double)len : 0.0;
    for (int64_t i = 0; i < len; i++) {
      double dv = xr[i] - mu;
      sq += dv * dv;
    }
    float m = (float)mu;
    float is =
        (float)(1.0 / sqrt(sq / (double)(len ? len : 1) + (double)s->ext.f[0]));
    for (int64_t i = 0; i < len; i++) {
      float v = (xr[i] - m) * is * s->w[i];
      yr[i] = s->bias ? v + s->bias[i] : v;
    }
    if (mean != NULL) {
      mean[r] = m;
    }
    if (inv != NULL) {
      inv[r] = is;
    }
  }
}

void pe__layernorm_run(const pe__step_t *s, const float *x, float *y,
                       float *mean, float *inv, int avx2) {
  if (avx2 >= 2) {
    pe__layernorm_avx512(s, x, y, mean, inv);
  } else if (avx2) {
    pe__layernorm_avx2(s, x, y, mean, inv);
  } else {
    pe__layernorm_generic(s, x, y, mean, inv);
  }
}

/* ---- the fused attention block -------------------------------------------
 * Per window: qkv = x [Wq Wk Wv] + b (one dense call, [L][3E]); per head,
 * K transposed into kt [D][L] (so the scores of one query are a vector
 * over the keys), then for each query i: the scores, scaled and masked,
 * their softmax, and the context row as a sum of V rows weighted by it;
 * last the output projection. Scratch: qkv, kt, one row of scores, the
 * context [L][E]. */
int64_t pe__attention_scratch(const pe__step_t *s) {
  const pe__attn_t *at = &s->ext.attn;
  return 4 * at->L * at->E + at->D * at->L + at->L + 64;
}

/* sc[j] = sum_d q[d] kt[d][j] over L keys. */
static void pe__scores_generic(const float *q, const float *kt, int64_t D,
                               int64_t L, float *sc) {
  for (int64_t j = 0; j < L; j++) {
    double acc = 0.0;
    for (int64_t d = 0; d < D; d++) {
      acc += (double)q[d] * (double)kt[d * L + j];
    }
    sc[j] = (float)acc;
  }
}

/* c[d] = inv * sum_j p[j] v[j * vs + d] over L keys, D wide. */
static void pe__ctx_generic(const float *p, const float *v, int64_t vs,
                            int64_t L, int64_t D, float inv, float *c) {
  for (int64_t d = 0; d < D; d++) {
    double acc = 0.0;
    for (int64_t j = 0; j < L; j++) {
      acc += (double)p[j] * (double)v[j * vs + d];
    }
    c[d] = (float)acc * inv;
  }
}

static void pe__scores_avx2(const float *q, const float *kt, int64_t D,
                            int64_t L, float *sc);
static void pe__scores_avx512(const float *q, const float *kt, int64_t D,
                              int64_t L, float *sc);
static void pe__ctx_avx2(const float *p, const float *v, int64_t vs, int64_t L,
                         int64_t D, float inv, float *c);
static void pe__ctx_avx512(const float *p, const float *v, int64_t vs,
                           int64_t L, int64_t D, float inv, float *c);

/* One window through the block. */
static void pe__attention_one(const pe__step_t *s, const float *x, float *y,
                              float *scratch, int avx2) {
  const pe__attn_t *at = &s->ext.attn;
  const int64_t L = at->L, E = at->E, H = at->H, D = at->D, E3 = 3 * E;
  float *qkv = scratch, *kt = qkv + L * E3, *sc = kt + D * L;
  float *ctx = sc + L;
  pe__dense_run(&s->d, x, qkv, L, PE__ACT_NONE, 0, avx2);
  const float *rep = s->ext.repl; /* NaN: keep the score */
  for (int64_t h = 0; h < H; h++) {
    for (int64_t j = 0; j < L; j++) {
      const float *kr = qkv + j * E3 + E + h * D;
      for (int64_t d = 0; d < D; d++) {
        kt[d * L + j] = kr[d];
      }
    }
    const float *mh = s->ext.mask ? s->ext.mask + h * at->mask_h * L * L : NULL;
    const float *rh = rep ? rep + h * at->mask_h * L * L : NULL;
    for (int64_t i = 0; i < L; i++) {
      const float *q = qkv + i * E3 + h * D;
      if (avx2 >= 2) {
        pe__scores_avx512(q, kt, D, L, sc);
      } else if (avx2) {
        pe__scores_avx2(q, kt, D, L, sc);
      } else {
        pe__scores_generic(q, kt, D, L, sc);
      }
      float mx = -INFINITY;
      for (int64_t j = 0; j < L; j++) {
        float v = sc[j] * at->scale;
        if (mh != NULL) {
          v += mh[i * L + j];
        }
        if (rh != NULL && rh[i * L + j] == rh[i * L + j]) {
          v = rh[i * L + j];
        }
        sc[j] = v;
        mx = v > mx ? v : mx;
      }
      for (int64_t j = 0; j < L; j++) {
        sc[j] -= mx;
      }
      pe__act_run(sc, L, PE__ACT_EXP, 0, avx2);
      float sum = 0.0f;
      for (int64_t j = 0; j < L; j++) {
        sum += sc[j];
      }
      const float *v = qkv + 2 * E + h * D;
      float *c = ctx + i * E + h * D;
      if (avx2 >= 2) {
        pe__ctx_avx512(sc, v, E3, L, D, 1.0f / sum, c);
      } else if (avx2) {
        pe__ctx_avx2(sc, v, E3, L, D, 1.0f / sum, c);
      } else {
        pe__ctx_generic(sc, v, E3, L, D, 1.0f / sum, c);
      }
    }
  }
  if (at->has_out) {
    pe__dense_run(&s->d2, ctx, y, L, PE__ACT_NONE, 0, avx2);
  } else {
    memcpy(y, ctx, (size_t)(L * E) * sizeof(float));
  }
}

/* n windows, x and y `xs`, `ys` floats apart. */
void pe__attention_run(const pe__step_t *s, const float *x, float *y, int64_t n,
                       int64_t xs, int64_t ys, float *scratch, int avx2) {
  for (int64_t b = 0; b < n; b++) {
    pe__attention_one(s, x + b * xs, y + b * ys, scratch, avx2);
  }
}

/* ---- AVX2/FMA, AVX-512 ----------------------------------------------------
 */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define PE__AVX2 __attribute__((target("avx2,fma")))
#define PE__AVX512 __attribute__((target("avx512f,avx512dq,avx2,fma")))

/* Lane mask of the first w (0..8) lanes. */
PE__AVX2 static inline __m256i pe__am8(int64_t w) {
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)w), iota);
}

PE__AVX512 static inline __mmask16 pe__am16(int64_t w) {
  unsigned v = w >= 16 ? 0xffffu : w <= 0 ? 0u : (1u << w) - 1u;
  return (__mmask16)v;
}

/* y[M][N] = a[M][K] b[K][N]: per row, 16 columns (two vectors) at a time,
 * the sum over k in FMA order. */
PE__AVX2 void pe__matmul_avx2(const pe__step_t *s, const float *a,
                              const float *b, float *y) {
  const int64_t M = s->p[0], K = s->p[1], N = s->p[2];
  for (int64_t i = 0; i < M; i++) {
    const float *ar = a + i * K;
    float *yr = y + i * N;
    for (int64_t j = 0; j < N; j += 16) {
      int64_t w = N - j < 16 ? N - j : 16;
      __m256i m0 = pe__am8(w), m1 = pe__am8(w - 8);
      __m256 c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps();
      for (int64_t k = 0; k < K; k++) {
        __m256 av = _mm256_broadcast_ss(ar + k);
        const float *br = b + k * N + j;
        __m256 b0 = w >= 8 ? _mm256_loadu_ps(br) : _mm256_maskload_ps(br, m0);
        c0 = _mm256_fmadd_ps(av, b0, c0);
        if (w > 8) {
          __m256 b1 = w == 16 ? _mm256_loadu_ps(br + 8)
                              : _mm256_maskload_ps(br + 8, m1);
          c1 = _mm256_fmadd_ps(av, b1, c1);
        }
      }
      _mm256_maskstore_ps(yr + j, m0, c0);
      if (w > 8) {
        _mm256_maskstore_ps(yr + j + 8, m1, c1);
      }
    }
  }
}

/* As pe__matmul_avx2, 32 columns (two 16-lane vectors) at a time. */
PE__AVX512 void pe__matmul_avx512(const pe__step_t *s, const float *a,
                                  const float *b, float *y) {
  const int64_t M = s->p[0], K = s->p[1], N = s->p[2];
  for (int64_t i = 0; i < M; i++) {
    const float *ar = a + i * K;
    float *yr = y + i * N;
    for (int64_t j = 0; j < N; j += 32) {
      int64_t w = N - j < 32 ? N - j : 32;
      __mmask16 m0 = pe__am16(w), m1 = pe__am16(w - 16);
      __m512 c0 = _mm512_setzero_ps(), c1 = _mm512_setzero_ps();
      for (int64_t k = 0; k < K; k++) {
        __m512 av = _mm512_set1_ps(ar[k]);
        const float *br = b + k * N + j;
        c0 = _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m0, br), c0);
        if (w > 16) {
          c1 = _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m1, br + 16), c1);
        }
      }
      _mm512_mask_storeu_ps(yr + j, m0, c0);
      if (w > 16) {
        _mm512_mask_storeu_ps(yr + j + 16, m1, c1);
      }
    }
  }
}

/* Sum of the 8 lanes, in lane order. */
PE__AVX2 static inline float pe__lanes_sum8(__m256 v) {
  float t[8], sum = 0.0f;
  _mm256_storeu_ps(t, v);
  for (int k = 0; k < 8; k++) {
    sum += t[k];
  }
  return sum;
}

/* LayerNorm rows with 8-lane sums (mean, then the centred squares). */
PE__AVX2 void pe__layernorm_avx2(const pe__step_t *s, const float *x, float *y,
                                 float *mean, float *inv) {
  const int64_t rows = s->p[0], len = s->p[1];
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * len;
    float *yr = y + r * len;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < len; i += 8) {
      __m256i m = pe__am8(len - i);
      acc = _mm256_add_ps(acc, _mm256_maskload_ps(xr + i, m));
    }
    float mu = pe__lanes_sum8(acc) / (float)(len ? len : 1);
    __m256 vm = _mm256_set1_ps(mu);
    acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < len; i += 8) {
      __m256i m = pe__am8(len - i);
      __m256 d = _mm256_sub_ps(_mm256_maskload_ps(xr + i, m), vm);
      d = _mm256_and_ps(d, _mm256_castsi256_ps(m));
      acc = _mm256_fmadd_ps(d, d, acc);
    }
    float var = pe__lanes_sum8(acc) / (float)(len ? len : 1);
    float is = 1.0f / sqrtf(var + s->ext.f[0]);
    __m256 vi = _mm256_set1_ps(is);
    for (int64_t i = 0; i < len; i += 8) {
      __m256i m = pe__am8(len - i);
      __m256 v =
          _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(xr + i, m), vm), vi);
      v = _mm256_mul_ps(v, _mm256_maskload_ps(s->w + i, m));
      if (s->bias) {
        v = _mm256_add_ps(v, _mm256_maskload_ps(s->bias + i, m));
      }
      _mm256_maskstore_ps(yr + i, m, v);
    }
    if (mean != NULL) {
      mean[r] = mu;
    }
    if (inv != NULL) {
      inv[r] = is;
    }
  }
}

/* As pe__layernorm_avx2 with 16 lanes. */
PE__AVX512 void pe__layernorm_avx512(const pe__step_t *s, const float *x,
                                     float *y, float *mean, float *inv) {
  const int64_t rows = s->p[0], len = s->p[1];
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * len;
    float *yr = y + r * len;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < len; i += 16) {
      acc =
          _mm512_add_ps(acc, _mm512_maskz_loadu_ps(pe__am16(len - i), xr + i));
    }
    float mu = _mm512_reduce_add_ps(acc) / (float)(len ? len : 1);
    __m512 vm = _mm512_set1_ps(mu);
    acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < len; i += 16) {
      __mmask16 m = pe__am16(len - i);
      __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, xr + i), vm);
      acc = _mm512_fmadd_ps(d, d, acc);
    }
    float var = _mm512_reduce_add_ps(acc) / (float)(len ? len : 1);
    float is = 1.0f / sqrtf(var + s->ext.f[0]);
    __m512 vi = _mm512_set1_ps(is);
    for (int64_t i = 0; i < len; i += 16) {
      __mmask16 m = pe__am16(len - i);
      __m512 v = _mm512_mul_ps(
          _mm512_sub_ps(_mm512_maskz_loadu_ps(m, xr + i), vm), vi);
      v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, s->w + i));
      if (s->bias) {
        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, s->bias + i));
      }
      _mm512_mask_storeu_ps(yr + i, m, v);
    }
    if (mean != NULL) {
      mean[r] = mu;
    }
    if (inv != NULL) {
      inv[r] = is;
    }
  }
}

PE__AVX2 static void pe__scores_avx2(const float *q, const float *kt, int64_t D,
                                     int64_t L, float *sc) {
  for (int64_t j = 0; j < L; j += 8) {
    __m256i m = pe__am8(L - j);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t d = 0; d < D; d++) {
      acc = _mm256_fmadd_ps(_mm256_broadcast_ss(q + d),
                            _mm256_maskload_ps(kt + d * L + j, m), acc);
    }
    _mm256_maskstore_ps(sc + j, m, acc);
  }
}

PE__AVX512 static void pe__scores_avx512(const float *q, const float *kt,
                                         int64_t D, int64_t L, float *sc) {
  for (int64_t j = 0; j < L; j += 16) {
    __mmask16 m = pe__am16(L - j);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t d = 0; d < D; d++) {
      acc = _mm512_fmadd_ps(_mm512_set1_ps(q[d]),
                            _mm512_maskz_loadu_ps(m, kt + d * L + j), acc);
    }
    _mm512_mask_storeu_ps(sc + j, m, acc);
  }
}

PE__AVX2 static void pe__ctx_avx2(const float *p, const float *v, int64_t vs,
                                  int64_t L, int64_t D, float inv, float *c) {
  for (int64_t d = 0; d < D; d += 8) {
    __m256i m = pe__am8(D - d);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t j = 0; j < L; j++) {
      acc = _mm256_fmadd_ps(_mm256_broadcast_ss(p + j),
                            _mm256_maskload_ps(v + j * vs + d, m), acc);
    }
    _mm256_maskstore_ps(c + d, m, _mm256_mul_ps(acc, _mm256_set1_ps(inv)));
  }
}

PE__AVX512 static void pe__ctx_avx512(const float *p, const float *v,
                                      int64_t vs, int64_t L, int64_t D,
                                      float inv, float *c) {
  for (int64_t d = 0; d < D; d += 16) {
    __mmask16 m = pe__am16(D - d);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t j = 0; j < L; j++) {
      acc = _mm512_fmadd_ps(_mm512_set1_ps(p[j]),
                            _mm512_maskz_loadu_ps(m, v + j * vs + d), acc);
    }
    _mm512_mask_storeu_ps(c + d, m, _mm512_mul_ps(acc, _mm512_set1_ps(inv)));
  }
}

#else /* no x86-64 vector kernels: never called (the level is 0) */

void pe__matmul_avx2(const pe__step_t *s, const float *a, const float *b,
                     float *y) {
  pe__mm_generic(a, b, y, s->p[0], s->p[1], s->p[2]);
}
void pe__matmul_avx512(const pe__step_t *s, const float *a, const float *b,
                       float *y) {
  pe__mm_generic(a, b, y, s->p[0], s->p[1], s->p[2]);
}
void pe__layernorm_avx2(const pe__step_t *s, const float *x, float *y,
                        float *mean, float *inv) {
  pe__layernorm_generic(s, x, y, mean, inv);
}
void pe__layernorm_avx512(const pe__step_t *s, const float *x, float *y,
                          float *mean, float *inv) {
  pe__layernorm_generic(s, x, y, mean, inv);
}
static void pe__scores_avx2(const float *q, const float *kt, int64_t D,
                            int64_t L, float *sc) {
  pe__scores_generic(q, kt, D, L, sc);
}
static void pe__scores_avx512(const float *q, const float *kt, int64_t D,
                              int64_t L, float *sc) {
  pe__scores_generic(q, kt, D, L, sc);
}
static void pe__ctx_avx2(const float *p, const float *v, int64_t vs, int64_t L,
                         int64_t D, float inv, float *c) {
  pe__ctx_generic(p, v, vs, L, D, inv, c);
}
static void pe__ctx_avx512(const float *p, const float *v, int64_t vs,
                           int64_t L, int64_t D, float inv, float *c) {
  pe__ctx_generic(p, v, vs, L, D, inv, c);
}
#endif
