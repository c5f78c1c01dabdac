/* The kernels of the cuda backend that stage their operands in shared
 * memory (a block's tiles, a head's keys and values) or compute several
 * outputs a thread: the tiled dense product, the attention heads of one
 * thread per query, Conv 2-D, and the dense product and Conv 1-D on
 * tensor cores (precision tf32). Included by kernels.cu, and, with a few
 * definitions in place of CUDA's, compiled as C++ by tests/cuda_emu (a
 * thread per CUDA thread, so that their indexing, barriers and sums are
 * checked where no GPU is at hand). No header of CUDA's: pe_cuda_step_t
 * (kernels.h), pe__act and pe__expf (act.cuh) and PE__FOR come from the
 * includer. */
#ifndef PE_CUDA_TILED_CUH
#define PE_CUDA_TILED_CUH

/* A kernel's dynamic shared memory, as an array of T named name. */
#ifndef PE__DYN_SHARED
#define PE__DYN_SHARED(T, name) extern __shared__ T name[]
#endif

/* Products over many rows as tiles: a 64 x 64 tile of C = A B, A of 64
 * rows by K, B of K by 64 columns. The operands are staged through shared
 * memory 32 k at a time: ga(r, k) and gb(k, c) give them, zero outside
 * the product; gc(r, c, sum) adds the bias and the activation and stores
 * what lies inside the output. Two forms: in fp32 (pe__fp32_tile) and on
 * tensor cores in TF32 (pe__tf32_tile); two users of each, the dense
 * product over a tile's rows and Conv 1-D without groups (one window's
 * [cout][wout] as the weights by the window's taps). */
#define PE__TR 64
#define PE__TM 64
#define PE__TK 32

/* fp32: a block of 256 threads, each 4 rows x 4 columns from one 16-byte
 * read of each operand per k (A staged transposed, k major), the products
 * summed in float over the 32 k of a stage and the stages' sums in
 * double. */
template <typename GA, typename GB, typename GC>
__device__ __forceinline__ static void
pe__fp32_tile(int K, const GA &ga, const GB &gb, const GC &gc) {
  __shared__ __align__(16) float xs[PE__TK][PE__TR + 4];
  __shared__ __align__(16) float ws[PE__TK][PE__TM + 4];
  const int tid = (int)threadIdx.x;
  const int tx = tid & 15, ty = tid >> 4;
  double acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; i++) {
#pragma unroll
    for (int j = 0; j < 4; j++) {
      acc[i][j] = 0.0;
    }
  }
  for (int k0 = 0; k0 < K; k0 += PE__TK) {
    /* eight of each a thread, consecutive threads on consecutive k (A) or
     * columns (B) */
#pragma unroll
    for (int j = 0; j < 8; j++) {
      const int e = tid + 256 * j;
      xs[e & 31][e >> 5] = ga(e >> 5, k0 + (e & 31));
      ws[e >> 6][e & 63] = gb(k0 + (e >> 6), e & 63);
    }
    __syncthreads();
    float part[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
#pragma unroll
      for (int j = 0; j < 4; j++) {
        part[i][j] = 0.0f;
      }
    }
#pragma unroll 8
    for (int kk = 0; kk < PE__TK; kk++) {
      const float4 xv = *(const float4 *)&xs[kk][ty * 4];
      const float4 wv = *(const float4 *)&ws[kk][tx * 4];
      const float xa[4] = {xv.x, xv.y, xv.z, xv.w};
      const float wa[4] = {wv.x, wv.y, wv.z, wv.w};
#pragma unroll
      for (int i = 0; i < 4; i++) {
#pragma unroll
        for (int j = 0; j < 4; j++) {
          part[i][j] = fmaf(xa[i], wa[j], part[i][j]);
        }
      }
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
#pragma unroll
      for (int j = 0; j < 4; j++) {
        acc[i][j] += (double)part[i][j];
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; i++) {
#pragma unroll
    for (int j = 0; j < 4; j++) {
      gc(ty * 4 + i, tx * 4 + j, acc[i][j]);
    }
  }
}

/* TF32: a block of 4 warps, a warp 32 x 32 of the tile as 2 x 2
 * fragments of 16 x 16 (wmma m16n16k8); the operands rounded to TF32 (10
 * bits of mantissa, to nearest, ties away from zero) as the fragments are
 * loaded, the products summed in float by the tensor cores, the sums
 * through shared memory to gc. */
#define PE__T32_LA (PE__TK + 4) /* floats a staged row of A */
#define PE__T32_LB (PE__TM + 4) /* floats a staged k of B */
#define PE__T32_LC (PE__TM + 4) /* floats a row of the block's sums */
template <typename GA, typename GB, typename GC>
__device__ __forceinline__ static void
pe__tf32_tile(int K, const GA &ga, const GB &gb, const GC &gc) {
  namespace wm = nvcuda::wmma;
  /* fragment pointers on 32-byte boundaries: rows of 36 and 68 floats,
   * offsets of 16 rows and 8 or 16 columns */
  __shared__ __align__(32) float as[PE__TR * PE__T32_LA];
  __shared__ __align__(32) float bs[PE__TK * PE__T32_LB];
  __shared__ __align__(32) float cs[PE__TR * PE__T32_LC];
  const int tid = (int)threadIdx.x, warp = tid >> 5;
  const int wr = (warp >> 1) * 32, wc = (warp & 1) * 32;
  wm::fragment<wm::accumulator, 16, 16, 8, float> acc[2][2];
#pragma unroll
  for (int i = 0; i < 2; i++) {
#pragma unroll
    for (int j = 0; j < 2; j++) {
      wm::fill_fragment(acc[i][j], 0.0f);
    }
  }
  for (int k0 = 0; k0 < K; k0 += PE__TK) {
    /* 16 of each a thread; consecutive threads on consecutive k (A) or
     * columns (B) */
#pragma unroll 4
    for (int j = 0; j < 16; j++) {
      const int e = tid + 128 * j;
      as[(e >> 5) * PE__T32_LA + (e & 31)] = ga(e >> 5, k0 + (e & 31));
      bs[(e >> 6) * PE__T32_LB + (e & 63)] = gb(k0 + (e >> 6), e & 63);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < PE__TK; kk += 8) {
      wm::fragment<wm::matrix_a, 16, 16, 8, wm::precision::tf32, wm::row_major>
          a[2];
      wm::fragment<wm::matrix_b, 16, 16, 8, wm::precision::tf32, wm::row_major>
          b[2];
#pragma unroll
      for (int i = 0; i < 2; i++) {
        wm::load_matrix_sync(a[i], as + (wr + 16 * i) * PE__T32_LA + kk,
                             PE__T32_LA);
        wm::load_matrix_sync(b[i], bs + kk * PE__T32_LB + wc + 16 * i,
                             PE__T32_LB);
#pragma unroll
        for (int t = 0; t < a[i].num_elements; t++) {
          a[i].x[t] = wm::__float_to_tf32(a[i].x[t]);
        }
#pragma unroll
        for (int t = 0; t < b[i].num_elements; t++) {
          b[i].x[t] = wm::__float_to_tf32(b[i].x[t]);
        }
      }
#pragma unroll
      for (int i = 0; i < 2; i++) {
#pragma unroll
        for (int j = 0; j < 2; j++) {
          wm::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
        }
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 2; i++) {
#pragma unroll
    for (int j = 0; j < 2; j++) {
      wm::store_matrix_sync(cs + (wr + 16 * i) * PE__T32_LC + wc + 16 * j,
                            acc[i][j], PE__T32_LC, wm::mem_row_major);
    }
  }
  __syncthreads();
  /* consecutive threads on consecutive columns of a row */
  for (int e = tid; e < PE__TR * PE__TM; e += 128) {
    gc(e >> 6, e & 63, (double)cs[(e >> 6) * PE__T32_LC + (e & 63)]);
  }
  __syncthreads();
}

/* The dense product: the tile of rows r0 .. r0 + 63 (A: their inputs,
 * contiguous: in_stride = rows * K) by outputs m0 .. m0 + 63 (B: the
 * weights [K][M]); the bias added in double. */
struct pe__tl_dense {
  const float *x, *w, *bias;
  float *y;
  int R, K, M, r0, m0, act;
  float alpha;
  __device__ float operator()(int r, int k) const {
    return r0 + r < R && k < K ? x[(int64_t)(r0 + r) * K + k] : 0.0f;
  }
};
struct pe__tl_dense_b {
  const pe__tl_dense *d;
  __device__ float operator()(int k, int c) const {
    const int m = d->m0 + c;
    return k < d->K && m < d->M ? d->w[(int64_t)k * d->M + m] : 0.0f;
  }
};
struct pe__tl_dense_c {
  const pe__tl_dense *d;
  __device__ void operator()(int r, int c, double v) const {
    const int rr = d->r0 + r, m = d->m0 + c;
    if (rr < d->R && m < d->M) {
      d->y[(int64_t)rr * d->M + m] = pe__act(
          (float)(v + (d->bias ? (double)d->bias[m] : 0.0)), d->act, d->alpha);
    }
  }
};

/* Conv 1-D without groups over one window: the tile of output channels
 * co0 .. co0 + 63 (A: the weights [cout][cin k]) by positions p0 .. p0 +
 * 63 (B: row ci k + t, column p the input (p stride + t dilation - pad) of
 * channel ci, zero outside the window); the bias added in double. */
struct pe__tl_conv {
  const float *x, *w, *bias;
  float *y;
  int cin, cout, k, stride, dil, pl, win, wout, co0, p0, act;
  float alpha;
  __device__ float operator()(int r, int q) const {
    return co0 + r < cout && q < cin * k ? w[(int64_t)(co0 + r) * cin * k + q]
                                         : 0.0f;
  }
};
struct pe__tl_conv_b {
  const pe__tl_conv *d;
  __device__ float operator()(int q, int c) const {
    const int p = d->p0 + c;
    if (q >= d->cin * d->k || p >= d->wout) {
      return 0.0f;
    }
    const int ci = q / d->k, src = p * d->stride + (q % d->k) * d->dil - d->pl;
    return src >= 0 && src < d->win ? d->x[(int64_t)ci * d->win + src] : 0.0f;
  }
};
struct pe__tl_conv_c {
  const pe__tl_conv *d;
  __device__ void operator()(int r, int c, double v) const {
    const int co = d->co0 + r, p = d->p0 + c;
    if (co < d->cout && p < d->wout) {
      d->y[(int64_t)co * d->wout + p] =
          pe__act((float)(v + (double)d->bias[co]), d->act, d->alpha);
    }
  }
};

__device__ __forceinline__ static pe__tl_dense
pe__tl_dense_of(const pe_cuda_step_t &s, int R) {
  const pe__tl_dense d = {s.in[0],
                          s.w,
                          s.bias,
                          s.out[0],
                          R,
                          (int)s.K,
                          (int)s.M,
                          (int)blockIdx.x * PE__TR,
                          (int)blockIdx.y * PE__TM,
                          s.act,
                          s.alpha};
  return d;
}

/* window b of a Conv 1-D step, the tile of blockIdx (x: positions, y:
 * output channels) */
__device__ __forceinline__ static pe__tl_conv
pe__tl_conv_of(const pe_cuda_step_t &s, int b) {
  const pe__tl_conv d = {s.in[0] + (int64_t)b * s.in_stride[0],
                         s.w,
                         s.bias,
                         s.out[0] + (int64_t)b * s.numel,
                         (int)s.p[0],
                         (int)s.p[1],
                         (int)s.p[3],
                         (int)s.p[4],
                         (int)s.p[5],
                         (int)s.p[6],
                         (int)s.p[8],
                         (int)s.p[9],
                         (int)blockIdx.y * PE__TR,
                         (int)blockIdx.x * PE__TM,
                         s.act,
                         s.alpha};
  return d;
}

__global__ static void __launch_bounds__(256)
    pe__k_dense_tiled(const pe_cuda_step_t s, int R) {
  const pe__tl_dense d = pe__tl_dense_of(s, R);
  pe__fp32_tile(d.K, d, pe__tl_dense_b{&d}, pe__tl_dense_c{&d});
}

__global__ static void __launch_bounds__(128)
    pe__k_dense_tf32(const pe_cuda_step_t s, int R) {
  const pe__tl_dense d = pe__tl_dense_of(s, R);
  pe__tf32_tile(d.K, d, pe__tl_dense_b{&d}, pe__tl_dense_c{&d});
}

/* Conv 1-D: the windows from blockIdx.z by gridDim.z */
__global__ static void __launch_bounds__(256)
    pe__k_conv1d_tiled(const pe_cuda_step_t s, int n) {
  for (int b = (int)blockIdx.z; b < n; b += (int)gridDim.z) {
    const pe__tl_conv d = pe__tl_conv_of(s, b);
    pe__fp32_tile(d.cin * d.k, d, pe__tl_conv_b{&d}, pe__tl_conv_c{&d});
  }
}

__global__ static void __launch_bounds__(128)
    pe__k_conv1d_tf32(const pe_cuda_step_t s, int n) {
  for (int b = (int)blockIdx.z; b < n; b += (int)gridDim.z) {
    const pe__tl_conv d = pe__tl_conv_of(s, b);
    pe__tf32_tile(d.cin * d.k, d, pe__tl_conv_b{&d}, pe__tl_conv_c{&d});
  }
}

/* Output channels a thread of a Conv 2-D computes together: four where
 * each group's channels come in fours, else one. */
__host__ __device__ static int pe__conv2d_cb(const pe_cuda_step_t *s) {
  return s->p[2] > 0 && (s->p[1] / s->p[2]) % 4 == 0 ? 4 : 1;
}

/* Conv 2-D over [cin][H][W] windows, one thread per output position and
 * pe__conv2d_cb output channels (the taps' inputs read once for all of
 * them): the products of about 16 taps summed in float, those sums in
 * double, rounded to float once (the CPU's portable kernel,
 * kernels_shared.h, sums every product in double). */
template <typename I>
__device__ __forceinline__ static void pe__d_conv2d(const pe_cuda_step_t &s,
                                                    I total, I i0, I di) {
  const I cin = (I)s.p[0], cout = (I)s.p[1], group = (I)s.p[2];
  const I kh = (I)s.p[3], kw = (I)s.p[4], H = (I)s.p[11], W = (I)s.p[12];
  const I sh = (I)s.p[5], sw = (I)s.p[6], dh = (I)s.p[7], dw = (I)s.p[8];
  const I pt = (I)s.p[9], pl = (I)s.p[10];
  const I OH = (I)s.p[13], OW = (I)s.p[14];
  const I cin_g = cin / group, cout_g = cout / group;
  const int cb = pe__conv2d_cb(&s);
  const I khw = kh * kw, cs = cin_g * khw;
  /* input channels whose taps make a float sum */
  const I cpf = khw >= 16 ? 1 : 16 / khw;
  PE__FOR(i, total) {
    I ow = i % OW, r = i / OW, oh = r % OH;
    r /= OH;
    const I co = r % (cout / cb) * cb, b = r / (cout / cb);
    const float *x =
        s.in[0] + b * (I)s.in_stride[0] + (co / cout_g) * cin_g * H * W;
    const float *w = s.w + co * cs;
    double acc[4] = {0.0, 0.0, 0.0, 0.0};
    float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (I ci = 0; ci < cin_g; ci++) {
      const float *xc = x + ci * H * W;
      for (I ti = 0; ti < kh; ti++) {
        const I ih = oh * sh + ti * dh - pt;
        if (ih < 0 || ih >= H) {
          continue;
        }
        for (I tj = 0; tj < kw; tj++) {
          const I iw = ow * sw + tj * dw - pl;
          if (iw < 0 || iw >= W) {
            continue;
          }
          const float xv = xc[ih * W + iw];
          const I wi = (ci * kh + ti) * kw + tj;
#pragma unroll
          for (int q = 0; q < 4; q++) {
            if (q < cb) {
              part[q] = fmaf(xv, w[q * cs + wi], part[q]);
            }
          }
        }
      }
      if ((ci + 1) % cpf == 0 || ci + 1 == cin_g) {
#pragma unroll
        for (int q = 0; q < 4; q++) {
          acc[q] += (double)part[q];
          part[q] = 0.0f;
        }
      }
    }
    float *y = s.out[0] + ((b * cout + co) * OH + oh) * OW + ow;
#pragma unroll
    for (int q = 0; q < 4; q++) {
      if (q < cb) {
        const double bias = s.bias ? (double)s.bias[co + q] : 0.0;
        y[(I)q * OH * OW] = pe__act((float)(acc[q] + bias), s.act, s.alpha);
      }
    }
  }
}

template <typename I>
__device__ __forceinline__ static I pe__attn_score_off(const pe_cuda_step_t &s,
                                                       I h, I i) {
  const I L = (I)s.p[0];
  return (h * (I)s.p[4] * L + i) * L;
}

/* The heads of a self-attention block with one thread per query, for
 * heads of at most PE__AQ_D columns whose keys and values fit the block's
 * shared memory: a block takes P heads (window b, head h), each head's K
 * and V rows staged into shared memory and its L queries one thread each,
 * the query in registers: every score (its dot product in float), their
 * maximum, then the exponentials, their sum and the weighted sum of V in
 * float, key after key, as the plan's CPU kernels order them (two passes,
 * the scores computed again in the second). Masks as pe__d_attention. */
#define PE__AQ_D 64
#define PE__AQ_SHMEM (40 * 1024)
static int pe__attn_q_fits(const pe_cuda_step_t *s, int *tq, int *heads) {
  const int64_t L = s->p[0], D = s->p[3];
  if (D < 1 || D > PE__AQ_D || L < 1 || L > 1024) {
    return 0;
  }
  *tq = (int)((L + 31) / 32 * 32);
  *heads = *tq >= 256 ? 1 : 256 / *tq;
  while (*heads > 1 &&
         (size_t)*heads * 2 * L * D * sizeof(float) > PE__AQ_SHMEM) {
    (*heads)--;
  }
  return (size_t)*heads * 2 * L * D * sizeof(float) <= PE__AQ_SHMEM;
}

/* Score j of a query from its dot product: pe__attn_mask (rows.cuh) with
 * the step's scale. */
__device__ __forceinline__ static float
pe__attn_masked(const pe_cuda_step_t &s, float dot, const float *mrow,
                const float *rrow, int j) {
  return pe__attn_mask(s.f[0], dot, mrow, rrow, j);
}

template <int DM>
__global__ static void pe__k_attn_q(const pe_cuda_step_t s, int64_t units,
                                    int tq, int heads) {
  PE__DYN_SHARED(float, pe__aq_sh);
  const int L = (int)s.p[0], E = (int)s.p[1], H = (int)s.p[2];
  const int D = (int)s.p[3], E3 = 3 * E;
  const int slot = (int)threadIdx.x / tq, i = (int)threadIdx.x % tq;
  const int64_t u = (int64_t)blockIdx.x * heads + slot; /* b * H + h */
  float *ks = pe__aq_sh + (size_t)slot * 2 * L * D, *vs = ks + (size_t)L * D;
  const int64_t b = u / H;
  const int h = (int)(u % H);
  const float *qkv = s.in[0] + b * s.in_stride[0];
  if (slot < heads && u < units) {
    for (int e = i; e < L * D; e += tq) {
      const int j = e / D, d = e % D;
      ks[e] = qkv[(int64_t)j * E3 + E + h * D + d];
      vs[e] = qkv[(int64_t)j * E3 + 2 * E + h * D + d];
    }
  }
  __syncthreads();
  if (slot >= heads || u >= units || i >= L) {
    return;
  }
  float q[DM], acc[DM];
#pragma unroll
  for (int d = 0; d < DM; d++) {
    q[d] = d < D ? qkv[(int64_t)i * E3 + h * D + d] : 0.0f;
    acc[d] = 0.0f;
  }
  const int64_t mo = pe__attn_score_off<int64_t>(s, h, i);
  const float *mrow = s.in[1] ? s.in[1] + mo : NULL;
  const float *rrow = s.in[2] ? s.in[2] + mo : NULL;
  float mx = -INFINITY;
  for (int pass = 0; pass < 2; pass++) {
    float sum = 0.0f;
    for (int j = 0; j < L; j++) {
      const float *kr = ks + (size_t)j * D;
      float dot = 0.0f;
#pragma unroll
      for (int d = 0; d < DM; d++) {
        if (d < D) {
          dot = fmaf(q[d], kr[d], dot);
        }
      }
      const float x = pe__attn_masked(s, dot, mrow, rrow, j);
      if (pass == 0) {
        mx = x > mx ? x : mx;
        continue;
      }
      const float pj = pe__expf(__fsub_rn(x, mx));
      sum = __fadd_rn(sum, pj);
      const float *vr = vs + (size_t)j * D;
#pragma unroll
      for (int d = 0; d < DM; d++) {
        if (d < D) {
          acc[d] = fmaf(pj, vr[d], acc[d]);
        }
      }
    }
    if (pass == 1) {
      float *y = s.out[0] + b * s.numel + (int64_t)i * E + h * D;
#pragma unroll
      for (int d = 0; d < DM; d++) {
        if (d < D) {
          y[d] = __fdiv_rn(acc[d], sum);
        }
      }
    }
  }
}

#endif
