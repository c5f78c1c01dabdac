/* The rows of a LayerNorm and of an attention head, by warps: shared
 * by the steps' kernels (kernels.cu: pe__d_layernorm, pe__d_reduce; sums.cuh:
 * pe__d_attention) and the kernels generated for a plan at open
 * (src/backends/cuda_gen.c, which compiles this file's text with NVRTC
 * after act.cuh's), so that a row's arithmetic is the same code in every
 * kernel that runs it. No header, no type or name but the compiler's own
 * (no NULL, no INFINITY); every
 * lane of the warp calls each function alike (the shuffles take whole
 * warps). */
#ifndef PE_CUDA_ROWS_CUH
#define PE_CUDA_ROWS_CUH

/* The sums of v[0 .. NR) over a warp, each in every lane: the same
 * butterfly for each, the NR chains interleaved. */
template <int NR>
__device__ __forceinline__ static void pe__warp_sums(double *v) {
  for (int o = 16; o > 0; o >>= 1) {
#pragma unroll
    for (int q = 0; q < NR; q++) {
      v[q] += __shfl_xor_sync(0xffffffffu, v[q], o);
    }
  }
}

/* LayerNormalization of NR rows of len floats by a warp at once (this
 * lane `lane`; row q at x + q rs, x2 + q rs and y + q rs, rs at least
 * len): x, plus x2 where given (a residual add folded in, added in float
 * as each element is read); the mean and the variance summed in double
 * across the lanes, then the CPU's float arithmetic per element with the
 * scale w, the bias (or none) and eps, into y, which may lie exactly over
 * x or x2 (each element is read twice before any is written, then by the
 * lane that writes it just before it does); row 0's mean and inverse
 * deviation into *m_out and *is_out where given. Each row's operations
 * are the same whatever NR, so the same bits: the steps' kernel takes a
 * row a warp (pe__ln_row), the generated kernel two (the rows' dependent
 * chains, the shuffles and the square root, interleaved). */
template <int NR>
__device__ __forceinline__ static void
pe__ln_rows(const float *x, const float *x2, float *y, int rs, int len,
            int lane, const float *w, const float *bias, float eps,
            float *m_out, float *is_out) {
#define PE__LN_X(q, k)                                                         \
  (x2 != 0 ? __fadd_rn(x[(q)*rs + (k)], x2[(q)*rs + (k)]) : x[(q)*rs + (k)])
  double sum[NR], sq[NR], mu[NR];
  float m[NR], is[NR];
#pragma unroll
  for (int q = 0; q < NR; q++) {
    sum[q] = 0.0;
    sq[q] = 0.0;
  }
  for (int k = lane; k < len; k += 32) {
#pragma unroll
    for (int q = 0; q < NR; q++) {
      sum[q] += (double)PE__LN_X(q, k);
    }
  }
  pe__warp_sums<NR>(sum);
#pragma unroll
  for (int q = 0; q < NR; q++) {
    mu[q] = len ? sum[q] / (double)len : 0.0;
  }
  for (int k = lane; k < len; k += 32) {
#pragma unroll
    for (int q = 0; q < NR; q++) {
      const double dv = (double)PE__LN_X(q, k) - mu[q];
      sq[q] = fma(dv, dv, sq[q]);
    }
  }
  pe__warp_sums<NR>(sq);
#pragma unroll
  for (int q = 0; q < NR; q++) {
    m[q] = (float)mu[q];
    is[q] = (float)(1.0 / sqrt(sq[q] / (double)(len ? len : 1) + (double)eps));
  }
  for (int k = lane; k < len; k += 32) {
#pragma unroll
    for (int q = 0; q < NR; q++) {
      const float v =
          __fmul_rn(__fmul_rn(__fsub_rn(PE__LN_X(q, k), m[q]), is[q]), w[k]);
      y[q * rs + k] = bias != 0 ? __fadd_rn(v, bias[k]) : v;
    }
  }
  if (lane == 0 && m_out != 0) {
    *m_out = m[0];
  }
  if (lane == 0 && is_out != 0) {
    *is_out = is[0];
  }
#undef PE__LN_X
}

/* One row (pe__ln_rows). */
__device__ __forceinline__ static void
pe__ln_row(const float *x, const float *x2, float *y, int len, int lane,
           const float *w, const float *bias, float eps, float *m_out,
           float *is_out) {
  pe__ln_rows<1>(x, x2, y, len, len, lane, w, bias, eps, m_out, is_out);
}

/* The maximum of mx over each group of `width` lanes (a power of two up
 * to 32, the groups aligned), in every lane of the group; a NaN never
 * taken over a number. */
__device__ __forceinline__ static float pe__lanes_max(float mx, int width) {
  for (int o = width / 2; o > 0; o >>= 1) {
    const float y = __shfl_xor_sync(0xffffffffu, mx, o);
    mx = y > mx ? y : mx;
  }
  return mx;
}

/* Score j of a query from its dot product: scaled, the additive mask's
 * entry added, or replaced where the replacement row holds a number. */
__device__ __forceinline__ static float pe__attn_mask(float scale, float dot,
                                                      const float *mrow,
                                                      const float *rrow,
                                                      int j) {
  float x = __fmul_rn(dot, scale);
  if (mrow != 0) {
    x = __fadd_rn(x, mrow[j]);
  }
  if (rrow != 0 && rrow[j] == rrow[j]) {
    x = rrow[j];
  }
  return x;
}

/* The score of key row kr (D columns) for query q: the dot product in
 * float by fused multiply-adds, column after column, then masked. */
__device__ __forceinline__ static float
pe__attn_key(const float *q, const float *kr, int D, float scale,
             const float *mrow, const float *rrow, int j) {
  float dot = 0.0f;
  for (int d = 0; d < D; d++) {
    dot = fmaf(q[d], kr[d], dot);
  }
  return pe__attn_mask(scale, dot, mrow, rrow, j);
}

/* One query row of an attention head by a warp: q its D columns, key j at
 * k + j * ks and its value at v + j * vs (ks, vs: the floats from one key's
 * row, one value's, to the next), L keys, mrow and rrow the additive mask's
 * and the replacement scores' rows or NULL, into out[0 .. D). Lane j
 * scores key j (then j + 32, ...), the warp takes their maximum, then, 32
 * keys at a time (the first 32 scores kept from the first pass, the
 * others computed again), each lane's exponential is broadcast to the
 * warp and lane d adds its share to column d (d + 32, ... in further
 * passes where D > 32), every lane adding the exponentials to the sum
 * alike: the order of the heads of a thread per query (tiled.cuh,
 * pe__k_attn_q), key after key in float. */
__device__ __forceinline__ static void
pe__attn_row(const float *q, const float *k, int ks, const float *v, int vs,
             int L, int D, float scale, const float *mrow, const float *rrow,
             int lane, float *out) {
  /* x0: the score of key lane; mx from minus infinity */
  float mx = __int_as_float((int)0xff800000u), x0 = 0.0f;
  for (int j = lane; j < L; j += 32) {
    const float x = pe__attn_key(q, k + j * ks, D, scale, mrow, rrow, j);
    x0 = j == lane ? x : x0;
    mx = x > mx ? x : mx;
  }
  mx = pe__lanes_max(mx, 32);
  for (int d0 = 0; d0 < D; d0 += 32) {
    const int d = d0 + lane;
    float sum = 0.0f, acc = 0.0f;
    for (int j0 = 0; j0 < L; j0 += 32) {
      const int j = j0 + lane;
      float p = 0.0f;
      if (j < L) {
        const float x =
            j0 == 0 ? x0 : pe__attn_key(q, k + j * ks, D, scale, mrow, rrow, j);
        p = pe__expf(__fsub_rn(x, mx));
      }
      const int jn = L - j0 < 32 ? L - j0 : 32;
      for (int t = 0; t < jn; t++) {
        const float pt = __shfl_sync(0xffffffffu, p, t);
        sum = __fadd_rn(sum, pt);
        if (d < D) {
          acc = fmaf(pt, v[(j0 + t) * vs + d], acc);
        }
      }
    }
    if (d < D) {
      out[d] = __fdiv_rn(acc, sum);
    }
  }
}

/* The query rows i0 .. i0 + 32 / D - 1 of an attention head by a warp,
 * for D a power of two up to 16 and L at most PE__ATTN_PK * D keys: lane
 * r * D + c takes row r (q + r * qs; mrow and rrow + r * L; out + r * os;
 * rows of them there, the other lanes' work thrown away), its scores of
 * keys c, c + D, c + 2 D ... (pe__attn_key), the row's maximum over its D
 * lanes, their exponentials, then its column c: the exponentials key
 * after key, each from the lane that holds it, into the sum and the
 * weighted sum of V. The operations of pe__attn_row, in its order, so
 * the same bits, with one shuffle a key for 32 / D rows instead of one. */
#define PE__ATTN_PK 16
__device__ __forceinline__ static void
pe__attn_rows(const float *q, int qs, const float *k, int ks, const float *v,
              int vs, int L, int D, float scale, const float *mrow,
              const float *rrow, int rows, int lane, float *out, int os) {
  const int c = lane % D, base = lane - c, r = lane / D;
  const int rq = r < rows ? r : 0;
  const float *mr = mrow != 0 ? mrow + rq * L : 0;
  const float *rr = rrow != 0 ? rrow + rq * L : 0;
  float x[PE__ATTN_PK];
  float mx = __int_as_float((int)0xff800000u);
#pragma unroll
  for (int m = 0; m < PE__ATTN_PK; m++) {
    const int j = c + m * D;
    x[m] = 0.0f;
    if (j < L) {
      x[m] = pe__attn_key(q + rq * qs, k + j * ks, D, scale, mr, rr, j);
      mx = x[m] > mx ? x[m] : mx;
    }
  }
  mx = pe__lanes_max(mx, D);
#pragma unroll
  for (int m = 0; m < PE__ATTN_PK; m++) {
    x[m] = c + m * D < L ? pe__expf(__fsub_rn(x[m], mx)) : 0.0f;
  }
  float sum = 0.0f, acc = 0.0f;
#pragma unroll
  for (int m = 0; m < PE__ATTN_PK; m++) {
    for (int t = 0; t < D && m * D + t < L; t++) {
      const float pt = __shfl_sync(0xffffffffu, x[m], base + t);
      sum = __fadd_rn(sum, pt);
      acc = fmaf(pt, v[(m * D + t) * vs + c], acc);
    }
  }
  if (r < rows) {
    out[r * os + c] = __fdiv_rn(acc, sum);
  }
}

/* A reduction's arithmetic, op numbered as the plan's binary ops
 * (kernels.cu checks the numbers against plan_view.h): a product (2), the
 * minimum (5) or the maximum (6), a NaN taken over any number and kept;
 * any other op a sum. The start value, then each element in turn, in
 * float. */
#define PE__RED_MUL 2
#define PE__RED_MIN 5
#define PE__RED_MAX 6
__device__ __forceinline__ static float pe__red_init(int op) {
  return op == PE__RED_MUL   ? 1.0f
         : op == PE__RED_MAX ? __int_as_float((int)0xff800000u)
         : op == PE__RED_MIN ? __int_as_float(0x7f800000)
                             : 0.0f;
}

__device__ __forceinline__ static float pe__red_step(int op, float acc,
                                                     float v) {
  return op == PE__RED_MUL   ? __fmul_rn(acc, v)
         : op == PE__RED_MAX ? (v > acc || v != v ? v : acc)
         : op == PE__RED_MIN ? (v < acc || v != v ? v : acc)
                             : __fadd_rn(acc, v);
}

#endif
