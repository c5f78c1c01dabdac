/* Kernels of the attention family: MatMul of two runtime tensors,
 * LayerNormalization and the fused self-attention block, in portable C and
 * AVX2/FMA and AVX-512 versions (__attribute__((target)), reached only
 * through the kernel table chosen at load, as in kernels_avx2.c).
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
                    float *y, const pe__kernels_t *kn) {
  const int64_t M = s->p[0], N = s->p[2], nb = s->p[3];
  const int r = (int)s->rank;
  int64_t idx[PE__MAX_RANK] = {0}, off[2] = {0, 0};
  for (int64_t q = 0; q < nb; q++) {
    float *yq = y + q * M * N;
    kn->matmul(s, a + off[0], b + off[1], yq);
    pe__index_next(r - 1, s->dims, idx, 2, s->st, off);
  }
}

/* One product of a MatMul step (p[0..2] = M, K, N), portable. */
void pe__matmul_generic(const pe__step_t *s, const float *a, const float *b,
                        float *y) {
  pe__mm_generic(a, b, y, s->p[0], s->p[1], s->p[2]);
}

/* One window of LayerNormalization: p[0] rows of p[1] floats. */
void pe__layernorm_generic(const pe__step_t *s, const float *x, float *y,
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

/* ---- the fused attention block -------------------------------------------
 * Per window: qkv = x [Wq Wk Wv] + b (one dense call, [L][3E]); per head,
 * K transposed into kt [D][L] (so the scores of one query are a vector
 * over the keys), then for each query i: the scores, scaled and masked,
 * their softmax, and the context row as a sum of V rows weighted by it;
 * last the output projection. Queries go four at a time, so that each
 * load of K or V serves four rows. Scratch: qkv, kt, four rows of scores,
 * the context [L][E], a dummy context row. */
/* Floats from one score row to the next: L rounded up to 16, so that a
 * kernel may store whole vectors of 8 or 16 lanes past L. */
static int64_t pe__attn_sc_stride(int64_t L) { return (L + 15) & ~(int64_t)15; }

/* A head's scratch for attn_head: q transposed [D][ss], the scores
 * transposed [L][ss] (ss = L rounded up to 16), the context transposed
 * [D][ss]. */
static int64_t pe__attn_head_scratch(int64_t L, int64_t D) {
  const int64_t ss = pe__attn_sc_stride(L);
  return 2 * D * ss + L * ss;
}

int64_t pe__attention_scratch(const pe__step_t *s) {
  const pe__attn_t *at = &s->ext.attn;
  return 4 * at->L * at->E + at->D * at->L + 4 * pe__attn_sc_stride(at->L) +
         at->D + 64 + pe__attn_head_scratch(at->L, at->D);
}

/* One query row of one head: the scores against the L keys (kt [D][L]),
 * scaled, masked (mrow added, rrow's non-NaN entries replacing), their
 * softmax in sc, and the context c[0..D) = sum_j p_j v[j * vs + d]. The
 * portable version sums in double. */
static void pe__attn_row_generic(const float *q, const float *kt,
                                 const float *v, int64_t vs, int64_t L,
                                 int64_t D, float scale, const float *mrow,
                                 const float *rrow, float *sc, float *c) {
  float mx = -INFINITY;
  for (int64_t j = 0; j < L; j++) {
    double acc = 0.0;
    for (int64_t d = 0; d < D; d++) {
      acc += (double)q[d] * (double)kt[d * L + j];
    }
    float x = (float)acc * scale;
    if (mrow != NULL) {
      x += mrow[j];
    }
    if (rrow != NULL && rrow[j] == rrow[j]) {
      x = rrow[j];
    }
    sc[j] = x;
    mx = x > mx ? x : mx;
  }
  double sum = 0.0;
  for (int64_t j = 0; j < L; j++) {
    sc[j] = expf(sc[j] - mx);
    sum += sc[j];
  }
  for (int64_t d = 0; d < D; d++) {
    double acc = 0.0;
    for (int64_t j = 0; j < L; j++) {
      acc += (double)sc[j] * (double)v[j * vs + d];
    }
    c[d] = (float)(acc / sum);
  }
}

/* Four query rows of one head (pe__attention_one pads the last block by
 * repeating a row into a dummy context): their q rows, mask and
 * replacement rows (or NULL), score rows and context outputs. */
void pe__attn_blk_generic(const pe__attn_blk_t *b) {
  for (int r = 0; r < 4; r++) {
    pe__attn_row_generic(b->q[r], b->kt, b->v, b->vs, b->L, b->D, b->scale,
                         b->m[r], b->r[r], b->sc[r], b->c[r]);
  }
}

/* One window through the block. */
static void pe__attention_one(const pe__step_t *s, const float *x, float *y,
                              float *scratch, const pe__kernels_t *kn) {
  const pe__attn_t *at = &s->ext.attn;
  const int64_t L = at->L, E = at->E, H = at->H, D = at->D, E3 = 3 * E;
  float *qkv = scratch, *kt = qkv + L * E3, *sc = kt + D * L;
  const int64_t ss = pe__attn_sc_stride(L);
  float *ctx = sc + 4 * ss, *dummy = ctx + L * E;
  float *hs = dummy + D + 64;
  pe__attn_blk_t b;
  b.kt = kt;
  b.vs = E3;
  b.L = L;
  b.D = D;
  b.scale = at->scale;
  kn->dense(&s->d, x, qkv, L, PE__ACT_NONE, 0.0f);
  for (int64_t h = 0; h < H; h++) {
    if (kn->attn_head != NULL && s->ext.mask == NULL && s->ext.repl == NULL) {
      const pe__attn_head_t a = {.q = qkv + h * D,
                                 .k = qkv + E + h * D,
                                 .v = qkv + 2 * E + h * D,
                                 .vs = E3,
                                 .L = L,
                                 .D = D,
                                 .scale = at->scale,
                                 .scratch = hs,
                                 .c = ctx + h * D,
                                 .cs = E};
      kn->attn_head(&a);
      continue;
    }
    for (int64_t j = 0; j < L; j++) {
      const float *kr = qkv + j * E3 + E + h * D;
      for (int64_t d = 0; d < D; d++) {
        kt[d * L + j] = kr[d];
      }
    }
    const int64_t mo = h * at->mask_h * L * L;
    b.v = qkv + 2 * E + h * D;
    for (int64_t i0 = 0; i0 < L; i0 += 4) {
      for (int r = 0; r < 4; r++) {
        const int64_t i = i0 + r < L ? i0 + r : L - 1;
        b.q[r] = qkv + i * E3 + h * D;
        b.m[r] = s->ext.mask ? s->ext.mask + mo + i * L : NULL;
        b.r[r] = s->ext.repl ? s->ext.repl + mo + i * L : NULL;
        b.sc[r] = sc + r * ss;
        b.c[r] = i0 + r < L ? ctx + i * E + h * D : dummy;
      }
      kn->attn_blk(&b);
    }
  }
  if (at->has_out) {
    kn->dense(&s->d2, ctx, y, L, PE__ACT_NONE, 0.0f);
  } else {
    memcpy(y, ctx, (size_t)(L * E) * sizeof(float));
  }
}

/* n windows, x and y `xs`, `ys` floats apart. */
void pe__attention_run(const pe__step_t *s, const float *x, float *y, int64_t n,
                       int64_t xs, int64_t ys, float *scratch,
                       const pe__kernels_t *kn) {
  for (int64_t b = 0; b < n; b++) {
    pe__attention_one(s, x + b * xs, y + b * ys, scratch, kn);
  }
}

/* ---- AVX2/FMA, AVX-512 ----------------------------------------------------
 */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define PE__AVX2 __attribute__((target("avx2,fma")))
#define PE__AVX512 __attribute__((target("avx512f,avx512dq,avx2,fma")))

#include "model/kernels_exp512.h"

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

/* LayerNorm rows with 8-lane sums (mean, then the centred squares); rows
 * whose length is a multiple of 8 (every Transformer's) with plain loads
 * and stores, which AMD runs much faster than masked ones. */
PE__AVX2 static inline __m256 pe__ln_ld(const float *p, int64_t rem,
                                        int whole) {
  return whole ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, pe__am8(rem));
}

PE__AVX2 void pe__layernorm_avx2(const pe__step_t *s, const float *x, float *y,
                                 float *mean, float *inv) {
  const int64_t rows = s->p[0], len = s->p[1];
  const int whole = len % 8 == 0;
  const float *const w = s->w, *const bias = s->bias;
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * len;
    float *yr = y + r * len;
    __m256 acc = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= len; i += 16) {
      acc = _mm256_add_ps(acc, _mm256_loadu_ps(xr + i));
      acc1 = _mm256_add_ps(acc1, _mm256_loadu_ps(xr + i + 8));
    }
    for (; i < len; i += 8) {
      acc = _mm256_add_ps(acc, pe__ln_ld(xr + i, len - i, whole));
    }
    float mu =
        pe__lanes_sum8(_mm256_add_ps(acc, acc1)) / (float)(len ? len : 1);
    __m256 vm = _mm256_set1_ps(mu);
    acc = acc1 = _mm256_setzero_ps();
    for (i = 0; i + 16 <= len; i += 16) {
      __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(xr + i), vm);
      __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(xr + i + 8), vm);
      acc = _mm256_fmadd_ps(d0, d0, acc);
      acc1 = _mm256_fmadd_ps(d1, d1, acc1);
    }
    for (; i < len; i += 8) {
      __m256i m = pe__am8(len - i);
      __m256 d = _mm256_sub_ps(pe__ln_ld(xr + i, len - i, whole), vm);
      d = _mm256_and_ps(d, _mm256_castsi256_ps(m));
      acc = _mm256_fmadd_ps(d, d, acc);
    }
    float var =
        pe__lanes_sum8(_mm256_add_ps(acc, acc1)) / (float)(len ? len : 1);
    float is = 1.0f / sqrtf(var + s->ext.f[0]);
    __m256 vi = _mm256_set1_ps(is);
    for (i = 0; i < len; i += 8) {
      const int64_t rem = len - i;
      __m256 v =
          _mm256_mul_ps(_mm256_sub_ps(pe__ln_ld(xr + i, rem, whole), vm), vi);
      v = _mm256_mul_ps(v, pe__ln_ld(w + i, rem, whole));
      if (bias) {
        v = _mm256_add_ps(v, pe__ln_ld(bias + i, rem, whole));
      }
      if (whole) {
        _mm256_storeu_ps(yr + i, v);
      } else {
        _mm256_maskstore_ps(yr + i, pe__am8(rem), v);
      }
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

/* pe__attn_blk_generic with 8 lanes: the scores of the four rows 16 keys
 * at a time (eight sums, each K load serving four rows), the softmax per
 * row (pe__exp_sum_avx2), the context with each V row loaded once for the
 * four. Loads and stores are plain where a whole vector lies inside the
 * row (AMD's masked stores cost tens of cycles): a score row's vector
 * past L is stored whole, its lanes past L -infinity, which the rows'
 * stride (pe__attention_one) leaves room for. */
PE__AVX2 void pe__attn_blk_avx2(const pe__attn_blk_t *b) {
  const int64_t L = b->L, D = b->D, vs = b->vs;
  const float *const kt = b->kt, *const v = b->v;
  const float *q[4], *mk[4], *rp[4];
  float *sc[4], *c[4];
  _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {
    q[r] = b->q[r], mk[r] = b->m[r], rp[r] = b->r[r];
    sc[r] = b->sc[r], c[r] = b->c[r];
  }
  const int masked = mk[0] != NULL, replaced = rp[0] != NULL;
  const __m256 vsc = _mm256_set1_ps(b->scale), ninf = _mm256_set1_ps(-INFINITY);
  __m256 vmax[4] = {ninf, ninf, ninf, ninf};
  for (int64_t j0 = 0; j0 < L; j0 += 16) {
    const int whole = j0 + 16 <= L;
    const __m256i m[2] = {pe__am8(L - j0), pe__am8(L - j0 - 8)};
    __m256 a[4][2];
    _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {
      a[r][0] = a[r][1] = _mm256_setzero_ps();
    }
    for (int64_t d = 0; d < D; d++) {
      const float *kr = kt + d * L + j0;
      const __m256 k0 =
          whole ? _mm256_loadu_ps(kr) : _mm256_maskload_ps(kr, m[0]);
      const __m256 k1 =
          whole ? _mm256_loadu_ps(kr + 8) : _mm256_maskload_ps(kr + 8, m[1]);
      _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {
        const __m256 qd = _mm256_broadcast_ss(q[r] + d);
        a[r][0] = _mm256_fmadd_ps(qd, k0, a[r][0]);
        a[r][1] = _mm256_fmadd_ps(qd, k1, a[r][1]);
      }
    }
    _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {
      _Pragma("GCC unroll 2") for (int k = 0; k < 2; k++) {
        const int64_t j = j0 + 8 * k;
        __m256 x = _mm256_mul_ps(a[r][k], vsc);
        if (masked) {
          x = _mm256_add_ps(x, _mm256_maskload_ps(mk[r] + j, m[k]));
        }
        if (replaced) {
          __m256 rv = _mm256_maskload_ps(rp[r] + j, m[k]);
          x = _mm256_blendv_ps(x, rv, _mm256_cmp_ps(rv, rv, _CMP_ORD_Q));
        }
        if (!whole) {
          x = _mm256_blendv_ps(ninf, x, _mm256_castsi256_ps(m[k]));
        }
        _mm256_storeu_ps(sc[r] + j, x);
        vmax[r] = _mm256_max_ps(vmax[r], x);
      }
    }
  }
  __m256 inv[4];
  _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {
    float t[8], mx = -INFINITY;
    _mm256_storeu_ps(t, vmax[r]);
    for (int k = 0; k < 8; k++) {
      mx = t[k] > mx ? t[k] : mx;
    }
    inv[r] = _mm256_set1_ps(1.0f / pe__exp_sum_avx2(sc[r], L, mx));
  }
  for (int64_t d = 0; d < D; d += 8) {
    const int whole = d + 8 <= D;
    const __m256i m = pe__am8(D - d);
    /* even and odd keys in two chains: 8 sums in flight, not 4 */
    __m256 acc[4], acc1[4];
    _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {
      acc[r] = acc1[r] = _mm256_setzero_ps();
    }
    int64_t j = 0;
    for (; j + 2 <= L; j += 2) {
      const float *v0p = v + j * vs + d, *v1p = v0p + vs;
      const __m256 v0 =
          whole ? _mm256_loadu_ps(v0p) : _mm256_maskload_ps(v0p, m);
      const __m256 v1 =
          whole ? _mm256_loadu_ps(v1p) : _mm256_maskload_ps(v1p, m);
      _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {
        acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(sc[r] + j), v0, acc[r]);
        acc1[r] =
            _mm256_fmadd_ps(_mm256_broadcast_ss(sc[r] + j + 1), v1, acc1[r]);
      }
    }
    if (j < L) {
      const __m256 vv = _mm256_maskload_ps(v + j * vs + d, m);
      _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {
        acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(sc[r] + j), vv, acc[r]);
      }
    }
    _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {
      const __m256 o = _mm256_mul_ps(_mm256_add_ps(acc[r], acc1[r]), inv[r]);
      if (whole) {
        _mm256_storeu_ps(c[r] + d, o);
      } else {
        _mm256_maskstore_ps(c[r] + d, m, o);
      }
    }
  }
}

/* pe__attn_blk_avx2 with 16 lanes (32 keys at a time). */
PE__AVX512 void pe__attn_blk_avx512(const pe__attn_blk_t *b) {
  const int64_t L = b->L, D = b->D;
  const __m512 vsc = _mm512_set1_ps(b->scale);
  const __m512 ninf = _mm512_set1_ps(-INFINITY);
  __m512 vmax[4] = {ninf, ninf, ninf, ninf};
  for (int64_t j0 = 0; j0 < L; j0 += 32) {
    const __mmask16 m[2] = {pe__am16(L - j0), pe__am16(L - j0 - 16)};
    __m512 a[4][2];
    _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {
      a[r][0] = a[r][1] = _mm512_setzero_ps();
    }
    for (int64_t d = 0; d < D; d++) {
      const float *kr = b->kt + d * L + j0;
      const __m512 k0 = _mm512_maskz_loadu_ps(m[0], kr);
      const __m512 k1 = _mm512_maskz_loadu_ps(m[1], kr + 16);
      _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {
        const __m512 qd = _mm512_set1_ps(b->q[r][d]);
        a[r][0] = _mm512_fmadd_ps(qd, k0, a[r][0]);
        a[r][1] = _mm512_fmadd_ps(qd, k1, a[r][1]);
      }
    }
    _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {
      _Pragma("GCC unroll 2") for (int k = 0; k < 2; k++) {
        const int64_t j = j0 + 16 * k;
        __m512 x = _mm512_mul_ps(a[r][k], vsc);
        if (b->m[r] != NULL) {
          x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m[k], b->m[r] + j));
        }
        if (b->r[r] != NULL) {
          __m512 rv = _mm512_maskz_loadu_ps(m[k], b->r[r] + j);
          x = _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(rv, rv, _CMP_ORD_Q), rv);
        }
        _mm512_mask_storeu_ps(b->sc[r] + j, m[k], x);
        vmax[r] = _mm512_mask_max_ps(vmax[r], m[k], vmax[r], x);
      }
    }
  }
  __m512 inv[4];
  _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {
    float sum = pe__exp_sum_avx512(b->sc[r], L, _mm512_reduce_max_ps(vmax[r]));
    inv[r] = _mm512_set1_ps(1.0f / sum);
  }
  for (int64_t d = 0; d < D; d += 16) {
    const __mmask16 m = pe__am16(D - d);
    /* even and odd keys in two chains, as pe__attn_blk_avx2 */
    __m512 acc[4], acc1[4];
    _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {
      acc[r] = acc1[r] = _mm512_setzero_ps();
    }
    int64_t j = 0;
    for (; j + 2 <= L; j += 2) {
      const __m512 v0 = _mm512_maskz_loadu_ps(m, b->v + j * b->vs + d);
      const __m512 v1 = _mm512_maskz_loadu_ps(m, b->v + (j + 1) * b->vs + d);
      _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {
        acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(b->sc[r][j]), v0, acc[r]);
        acc1[r] = _mm512_fmadd_ps(_mm512_set1_ps(b->sc[r][j + 1]), v1, acc1[r]);
      }
    }
    if (j < L) {
      const __m512 vv = _mm512_maskz_loadu_ps(m, b->v + j * b->vs + d);
      _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {
        acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(b->sc[r][j]), vv, acc[r]);
      }
    }
    _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {
      _mm512_mask_storeu_ps(
          b->c[r] + d, m,
          _mm512_mul_ps(_mm512_add_ps(acc[r], acc1[r]), inv[r]));
    }
  }
}

/* The transposed heads' moves, portable: q into qt [D][ss] (the columns
 * past L zero), and the context ct [D][ss] out to the context rows. */
static void pe__attn_q_in(const pe__attn_head_t *a, float *qt) {
  const int64_t L = a->L, D = a->D, vs = a->vs, ss = pe__attn_sc_stride(L);
  for (int64_t d = 0; d < D; d++) {
    for (int64_t i = 0; i < L; i++) {
      qt[d * ss + i] = a->q[i * vs + d];
    }
    for (int64_t i = L; i < ss; i++) {
      qt[d * ss + i] = 0.0f;
    }
  }
}

static void pe__attn_ctx_out(const pe__attn_head_t *a, const float *ct) {
  const int64_t L = a->L, D = a->D, ss = pe__attn_sc_stride(L);
  for (int64_t i = 0; i < L; i++) {
    for (int64_t d = 0; d < D; d++) {
      a->c[i * a->cs + d] = ct[d * ss + i];
    }
  }
}

/* pe__attn_head_avx512 with 8 lanes: 16 queries a pass (two vectors),
 * four keys or context columns at a time (16 registers). The pass's
 * scores go to a [L][16] block of st, contiguous, so that one
 * pe__exp_sum_avx2 call takes their exp once the maxima are subtracted;
 * the sums are taken in the context loop. */
PE__AVX2 static inline void pe__attn_pair8(const pe__attn_head_t *a, float *qt,
                                           float *pt, float *ct, int64_t b0,
                                           int nb) {
  const int64_t L = a->L, D = a->D, vs = a->vs, ss = pe__attn_sc_stride(L);
  const __m256 vsc = _mm256_set1_ps(a->scale), zero = _mm256_setzero_ps();
  __m256 vmax[2] = {_mm256_set1_ps(-INFINITY), _mm256_set1_ps(-INFINITY)};
  for (int64_t j = 0; j < L; j += 4) {
    const float *kr[4];
    _Pragma("GCC unroll 4") for (int t = 0; t < 4; t++) {
      kr[t] = a->k + (j + t < L ? j + t : L - 1) * vs;
    }
    __m256 acc[4][2];
    _Pragma("GCC unroll 4") for (int t = 0; t < 4; t++) {
      acc[t][0] = acc[t][1] = zero;
    }
    for (int64_t d = 0; d < D; d++) {
      const __m256 q0 = _mm256_loadu_ps(qt + d * ss + b0);
      const __m256 q1 = nb == 2 ? _mm256_loadu_ps(qt + d * ss + b0 + 8) : q0;
      _Pragma("GCC unroll 4") for (int t = 0; t < 4; t++) {
        const __m256 kv = _mm256_broadcast_ss(kr[t] + d);
        acc[t][0] = _mm256_fmadd_ps(kv, q0, acc[t][0]);
        if (nb == 2) {
          acc[t][1] = _mm256_fmadd_ps(kv, q1, acc[t][1]);
        }
      }
    }
    _Pragma("GCC unroll 4") for (int t = 0; t < 4; t++) {
      if (j + t < L) {
        _Pragma("GCC unroll 2") for (int x = 0; x < 2; x++) {
          const __m256 v = x < nb ? _mm256_mul_ps(acc[t][x], vsc) : zero;
          _mm256_storeu_ps(pt + (j + t) * 16 + 8 * x, v);
          vmax[x] = _mm256_max_ps(vmax[x], v);
        }
      }
    }
  }
  for (int64_t j = 0; j < L; j++) {
    _Pragma("GCC unroll 2") for (int x = 0; x < 2; x++) {
      float *p = pt + j * 16 + 8 * x;
      _mm256_storeu_ps(p, _mm256_sub_ps(_mm256_loadu_ps(p), vmax[x]));
    }
  }
  pe__exp_sum_avx2(pt, L * 16, 0.0f);
  __m256 sum[2] = {zero, zero};
  for (int64_t j = 0; j < L; j++) {
    sum[0] = _mm256_add_ps(sum[0], _mm256_loadu_ps(pt + j * 16));
    sum[1] = _mm256_add_ps(sum[1], _mm256_loadu_ps(pt + j * 16 + 8));
  }
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 inv[2] = {_mm256_div_ps(one, sum[0]),
                         _mm256_div_ps(one, sum[1])};
  for (int64_t d = 0; d < D; d += 4) {
    const float *vc[4];
    _Pragma("GCC unroll 4") for (int t = 0; t < 4; t++) {
      vc[t] = a->v + (d + t < D ? d + t : D - 1);
    }
    __m256 acc[4][2];
    _Pragma("GCC unroll 4") for (int t = 0; t < 4; t++) {
      acc[t][0] = acc[t][1] = zero;
    }
    for (int64_t j = 0; j < L; j++) {
      const __m256 p0 = _mm256_loadu_ps(pt + j * 16);
      const __m256 p1 = _mm256_loadu_ps(pt + j * 16 + 8);
      _Pragma("GCC unroll 4") for (int t = 0; t < 4; t++) {
        const __m256 vv = _mm256_broadcast_ss(vc[t] + j * vs);
        acc[t][0] = _mm256_fmadd_ps(vv, p0, acc[t][0]);
        if (nb == 2) {
          acc[t][1] = _mm256_fmadd_ps(vv, p1, acc[t][1]);
        }
      }
    }
    _Pragma("GCC unroll 4") for (int t = 0; t < 4; t++) {
      if (d + t < D) {
        _Pragma("GCC unroll 2") for (int x = 0; x < nb; x++) {
          _mm256_storeu_ps(ct + (d + t) * ss + b0 + 8 * x,
                           _mm256_mul_ps(acc[t][x], inv[x]));
        }
      }
    }
  }
}

PE__AVX2 void pe__attn_head_avx2(const pe__attn_head_t *a) {
  const int64_t L = a->L, D = a->D, ss = pe__attn_sc_stride(L);
  float *qt = a->scratch, *pt = qt + D * ss, *ct = pt + L * ss;
  pe__attn_q_in(a, qt);
  for (int64_t b0 = 0; b0 < ss; b0 += 16) {
    pe__attn_pair8(a, qt, pt, ct, b0, b0 + 8 < L ? 2 : 1);
  }
  pe__attn_ctx_out(a, ct);
}

/* One unmasked head with the queries in the lanes: q transposed to qt
 * [D][ss], then per block of 32 queries (two vectors) the scores
 * transposed, st[j] = scale * sum_d k[j][d] qt[d] (the sum over d in order,
 * from zero, as pe__attn_blk_avx512 takes it), eight keys at a time; their
 * maxima over the keys lane by lane, exp and sums (the keys in order); the
 * context transposed, ct[d] = sum_j v[j][d] st[j] (the keys in order) over
 * the sum, eight columns at a time; last ct copied out to the context rows.
 * Every vector op has all 16 lanes at work whatever D is, and there is no
 * sum across lanes. Rows and columns past L and D in a group are computed
 * on the last one again and not stored. */
PE__AVX512 static inline void pe__attn_pair(const pe__attn_head_t *a, float *qt,
                                            float *st, float *ct, int64_t b0,
                                            int nb) {
  const int64_t L = a->L, D = a->D, vs = a->vs, ss = pe__attn_sc_stride(L);
  const __m512 vsc = _mm512_set1_ps(a->scale);
  __m512 vmax[2] = {_mm512_set1_ps(-INFINITY), _mm512_set1_ps(-INFINITY)};
  for (int64_t j = 0; j < L; j += 8) {
    const float *kr[8];
    _Pragma("GCC unroll 8") for (int t = 0; t < 8; t++) {
      kr[t] = a->k + (j + t < L ? j + t : L - 1) * vs;
    }
    __m512 acc[8][2];
    _Pragma("GCC unroll 8") for (int t = 0; t < 8; t++) {
      acc[t][0] = acc[t][1] = _mm512_setzero_ps();
    }
    for (int64_t d = 0; d < D; d++) {
      const __m512 q0 = _mm512_loadu_ps(qt + d * ss + b0);
      const __m512 q1 = nb == 2 ? _mm512_loadu_ps(qt + d * ss + b0 + 16) : q0;
      _Pragma("GCC unroll 8") for (int t = 0; t < 8; t++) {
        const __m512 kv = _mm512_set1_ps(kr[t][d]);
        acc[t][0] = _mm512_fmadd_ps(kv, q0, acc[t][0]);
        if (nb == 2) {
          acc[t][1] = _mm512_fmadd_ps(kv, q1, acc[t][1]);
        }
      }
    }
    _Pragma("GCC unroll 8") for (int t = 0; t < 8; t++) {
      if (j + t < L) {
        _Pragma("GCC unroll 2") for (int x = 0; x < nb; x++) {
          const __m512 v = _mm512_mul_ps(acc[t][x], vsc);
          _mm512_storeu_ps(st + (j + t) * ss + b0 + 16 * x, v);
          vmax[x] = _mm512_max_ps(vmax[x], v);
        }
      }
    }
  }
  __m512 sum[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  for (int64_t j = 0; j < L; j++) {
    _Pragma("GCC unroll 2") for (int x = 0; x < nb; x++) {
      float *p = st + j * ss + b0 + 16 * x;
      const __m512 e =
          pe__exp_neg16(_mm512_sub_ps(_mm512_loadu_ps(p), vmax[x]));
      _mm512_storeu_ps(p, e);
      sum[x] = _mm512_add_ps(sum[x], e);
    }
  }
  __m512 inv[2];
  _Pragma("GCC unroll 2") for (int x = 0; x < 2; x++) {
    inv[x] = _mm512_div_ps(_mm512_set1_ps(1.0f), sum[x]);
  }
  for (int64_t d = 0; d < D; d += 8) {
    const float *vc[8];
    _Pragma("GCC unroll 8") for (int t = 0; t < 8; t++) {
      vc[t] = a->v + (d + t < D ? d + t : D - 1);
    }
    __m512 acc[8][2];
    _Pragma("GCC unroll 8") for (int t = 0; t < 8; t++) {
      acc[t][0] = acc[t][1] = _mm512_setzero_ps();
    }
    for (int64_t j = 0; j < L; j++) {
      const __m512 p0 = _mm512_loadu_ps(st + j * ss + b0);
      const __m512 p1 = nb == 2 ? _mm512_loadu_ps(st + j * ss + b0 + 16) : p0;
      _Pragma("GCC unroll 8") for (int t = 0; t < 8; t++) {
        const __m512 vv = _mm512_set1_ps(vc[t][j * vs]);
        acc[t][0] = _mm512_fmadd_ps(vv, p0, acc[t][0]);
        if (nb == 2) {
          acc[t][1] = _mm512_fmadd_ps(vv, p1, acc[t][1]);
        }
      }
    }
    _Pragma("GCC unroll 8") for (int t = 0; t < 8; t++) {
      if (d + t < D) {
        _Pragma("GCC unroll 2") for (int x = 0; x < nb; x++) {
          _mm512_storeu_ps(ct + (d + t) * ss + b0 + 16 * x,
                           _mm512_mul_ps(acc[t][x], inv[x]));
        }
      }
    }
  }
}

/* Eight 16-float vectors, each two rows of 8 ([row k | row k + 8]),
 * transposed in each half: vector k becomes [column k of rows 0-7 |
 * column k of rows 8-15]. Its own inverse. */
PE__AVX512 static inline void pe__tr8x2(__m512 r[8]) {
  __m512 t[8], u[8];
  _Pragma("GCC unroll 4") for (int k = 0; k < 8; k += 2) {
    t[k] = _mm512_unpacklo_ps(r[k], r[k + 1]);
    t[k + 1] = _mm512_unpackhi_ps(r[k], r[k + 1]);
  }
  _Pragma("GCC unroll 2") for (int k = 0; k < 8; k += 4) {
    u[k] = _mm512_shuffle_ps(t[k], t[k + 2], 0x44);
    u[k + 1] = _mm512_shuffle_ps(t[k], t[k + 2], 0xee);
    u[k + 2] = _mm512_shuffle_ps(t[k + 1], t[k + 3], 0x44);
    u[k + 3] = _mm512_shuffle_ps(t[k + 1], t[k + 3], 0xee);
  }
  const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11,
                                       24, 25, 26, 27);
  const __m512i hi = _mm512_setr_epi32(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14,
                                       15, 28, 29, 30, 31);
  _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
    r[k] = _mm512_permutex2var_ps(u[k], lo, u[k + 4]);
    r[k + 4] = _mm512_permutex2var_ps(u[k], hi, u[k + 4]);
  }
}

PE__AVX512 void pe__attn_head_avx512(const pe__attn_head_t *a) {
  const int64_t L = a->L, D = a->D, vs = a->vs, ss = pe__attn_sc_stride(L);
  float *qt = a->scratch, *st = qt + D * ss, *ct = st + L * ss;
  const int wide = D % 8 == 0;
  if (wide) {
    /* 16 rows x 8 columns at a time; rows past L repeat the last (lanes
     * whose scores and context are never stored) */
    for (int64_t d0 = 0; d0 < D; d0 += 8) {
      for (int64_t i = 0; i < ss; i += 16) {
        __m512 r[8];
        _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) {
          const int64_t i0 = i + k < L ? i + k : L - 1;
          const int64_t i1 = i + k + 8 < L ? i + k + 8 : L - 1;
          r[k] = _mm512_insertf32x8(
              _mm512_castps256_ps512(_mm256_loadu_ps(a->q + i0 * vs + d0)),
              _mm256_loadu_ps(a->q + i1 * vs + d0), 1);
        }
        pe__tr8x2(r);
        _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) {
          _mm512_storeu_ps(qt + (d0 + k) * ss + i, r[k]);
        }
      }
    }
  } else {
    pe__attn_q_in(a, qt);
  }
  int64_t b0 = 0;
  for (; b0 + 32 <= ss; b0 += 32) {
    pe__attn_pair(a, qt, st, ct, b0, 2);
  }
  if (b0 < ss) {
    pe__attn_pair(a, qt, st, ct, b0, 1);
  }
  if (wide) {
    for (int64_t d0 = 0; d0 < D; d0 += 8) {
      for (int64_t i = 0; i < ss; i += 16) {
        __m512 r[8];
        _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) {
          r[k] = _mm512_loadu_ps(ct + (d0 + k) * ss + i);
        }
        pe__tr8x2(r);
        _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) {
          if (i + k < L) {
            _mm256_storeu_ps(a->c + (i + k) * a->cs + d0,
                             _mm512_castps512_ps256(r[k]));
          }
          if (i + k + 8 < L) {
            _mm256_storeu_ps(a->c + (i + k + 8) * a->cs + d0,
                             _mm512_extractf32x8_ps(r[k], 1));
          }
        }
      }
    }
  } else {
    pe__attn_ctx_out(a, ct);
  }
}

#else /* no x86-64 vector kernels: the tables hold these, portable */

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
void pe__attn_blk_avx2(const pe__attn_blk_t *b) { pe__attn_blk_generic(b); }
void pe__attn_blk_avx512(const pe__attn_blk_t *b) { pe__attn_blk_generic(b); }
void pe__attn_head_avx2(const pe__attn_head_t *h) { (void)h; }
void pe__attn_head_avx512(const pe__attn_head_t *h) { (void)h; }
#endif
