/* The sums of the cuda backend's dense, Conv 1-D and attention steps in
 * one order whatever the kernel's form, so that a window's scores do not
 * depend on the batch it rides in, on the batch size that picks a form,
 * or on the mode (graph or persistent) that runs it.
 *
 * Dense and Conv 1-D: the terms of an output's sum (k for a dense step,
 * ci * k + tap within the group for Conv 1-D) in runs of PE__TK
 * consecutive terms; each run's products summed in float by fused
 * multiply-adds from +0, in order; the runs' sums added in double, in
 * order, from 0; then the bias in double; rounded to float once, then the
 * activation. That is the order of the tiled products (tiled.cuh, fp32),
 * which stage PE__TK terms at a time; a term outside a convolution's
 * window or past the last run adds a product of zero, which leaves a run's
 * sum as it is (a run's sum starts at +0 and so is never -0), so the forms
 * here may skip it.
 *
 * Attention heads: the order of the heads of a thread per query
 * (tiled.cuh, pe__k_attn_q): each score's dot product in float by fused
 * multiply-adds, column after column; the exponentials, their sum and the
 * weighted sum of V in float, key after key (the warp form's row:
 * rows.cuh, pe__attn_row).
 *
 * Included by kernels.cu (after PE__FOR, rows.cuh and tiled.cuh, whose
 * PE__TK, pe__attn_row and pe__attn_score_off it uses), and by
 * tests/cuda_emu, which runs every form here against the tiled ones and
 * requires the same bits. */
#ifndef PE_CUDA_SUMS_CUH
#define PE_CUDA_SUMS_CUH

/* The sum of run k0 .. k0 + PE__TK - 1 (clipped to K) of x[k] w[k ws]. */
template <typename I>
__device__ __forceinline__ static float pe__run(const float *__restrict__ x,
                                                const float *__restrict__ w,
                                                I ws, I k0, I K) {
  const I k1 = k0 + PE__TK < K ? k0 + PE__TK : K;
  float part = 0.0f;
#pragma unroll 8
  for (I k = k0; k < k1; k++) {
    part = fmaf(x[k], w[k * ws], part);
  }
  return part;
}

/* The runs of x[k] w[k ws] (k < K) by the g lanes of a group (a power of
 * two, 2 to 32, aligned within the warp; sub this lane's place in it):
 * lane sub takes runs sub, sub + g, ...; each round's sums go to every
 * lane of the group, which adds them to its total in the runs' order.
 * Every lane of the warp calls it alike (the shuffles take whole warps);
 * one with valid 0 reads nothing and adds its group's sums all the same. */
template <typename I>
__device__ __forceinline__ static double
pe__runs_group(const float *x, const float *w, I ws, I K, int g, int sub,
               int valid) {
  const I runs = (K + PE__TK - 1) / PE__TK;
  double acc = 0.0;
  for (I r0 = 0; r0 < runs; r0 += g) {
    const I r = r0 + sub;
    const float part =
        valid && r < runs ? pe__run<I>(x, w, ws, r * PE__TK, K) : 0.0f;
    const int nr = runs - r0 < (I)g ? (int)(runs - r0) : g;
    for (int t = 0; t < nr; t++) {
      acc += (double)__shfl_sync(0xffffffffu, part, t, g);
    }
  }
  return acc;
}

/* Output i of a dense step: its row's input, its weights (w2 [M][K] when
 * the step has it and w2 is asked for, else w [K][M]) and their stride. */
template <typename I>
__device__ __forceinline__ static void
pe__dense_at(const pe_cuda_step_t &s, I i, int use_w2, const float **x,
             const float **w, I *ws, I *m) {
  const I rows = (I)s.p[0], K = (I)s.K, M = (I)s.M;
  *m = i % M;
  const I q = i / M, r = q % rows, b = q / rows;
  *x = s.in[0] + b * (I)s.in_stride[0] + r * K;
  if (use_w2) {
    *w = s.w2 + *m * K;
    *ws = 1;
  } else {
    *w = s.w + *m;
    *ws = M;
  }
}

/* The bias, the rounding and the activation of output i (m its column). */
__device__ __forceinline__ static float pe__dense_out(const pe_cuda_step_t &s,
                                                      int64_t m, double acc) {
  return pe__act((float)(acc + (s.bias ? (double)s.bias[m] : 0.0)), s.act,
                 s.alpha);
}

/* Dense, one thread per output. */
template <typename I>
__device__ __forceinline__ static void pe__d_dense(const pe_cuda_step_t &s,
                                                   I total, I i0, I di) {
  const I K = (I)s.K;
  for (I i = i0; i < total; i += di) {
    const float *x, *w;
    I ws, m;
    pe__dense_at<I>(s, i, 0, &x, &w, &ws, &m);
    double acc = 0.0;
    for (I k0 = 0; k0 < K; k0 += PE__TK) {
      acc += (double)pe__run<I>(x, w, ws, k0, K);
    }
    s.out[0][i] = pe__dense_out(s, m, acc);
  }
}

/* Dense with one warp per output (w2: the weights as [M][K]), its lanes
 * on the runs. i0 and di count threads; warps are i0 / 32 on. */
template <typename I>
__device__ __forceinline__ static void pe__d_dense_warp(const pe_cuda_step_t &s,
                                                        I total, I i0, I di) {
  const int lane = (int)(threadIdx.x & 31);
  for (I i = i0 >> 5; i < total; i += di >> 5) {
    const float *x, *w;
    I ws, m;
    pe__dense_at<I>(s, i, 1, &x, &w, &ws, &m);
    const double acc = pe__runs_group<I>(x, w, ws, (I)s.K, 32, lane, 1);
    if (lane == 0) {
      s.out[0][i] = pe__dense_out(s, m, acc);
    }
  }
}

/* Lanes per output of pe__d_dense_split for `total` outputs of K terms
 * over nt threads: the most, up to 32, that fit and find a run each (a
 * group of more than the runs, rounded up to a power of two, would idle);
 * 0 when fewer than 2 would do. */
__device__ static int pe__split_width(int64_t total, int64_t K, int nt) {
  const int64_t runs = (K + PE__TK - 1) / PE__TK;
  int g = 32;
  while (g >= 2 && (total * g > nt || g >= 2 * runs)) {
    g >>= 1;
  }
  return g >= 2 ? g : 0;
}

/* Dense for the resident kernel when its outputs are few: g lanes
 * (pe__split_width) per output, one output per group (total * g <=
 * threads). Every thread of the block calls it (the shuffles take whole
 * warps). */
template <typename I>
__device__ __forceinline__ static void
pe__d_dense_split(const pe_cuda_step_t &s, I total, int g, int tid) {
  const I i = (I)(tid / g);
  const int sub = tid & (g - 1);
  const float *x = NULL, *w = NULL;
  I ws = 0, m = 0;
  if (i < total) {
    pe__dense_at<I>(s, i, s.w2 != NULL, &x, &w, &ws, &m);
  }
  const double acc = pe__runs_group<I>(x, w, ws, (I)s.K, g, sub, i < total);
  if (i < total && sub == 0) {
    s.out[0][i] = pe__dense_out(s, m, acc);
  }
}

/* Conv 1-D: each thread T consecutive outputs (co, t .. t + T - 1) of a
 * window, so that each weight is read once for T products; I the index
 * type (int when every index of the launch fits, else int64_t: 64-bit
 * division is several times dearer). total counts groups of T outputs:
 * n * cout * ceil(wout / T). Only the taps that reach into the window for
 * some of the T outputs run; a run's sum goes to the total as the next
 * run's first term comes. */
template <typename I, int T>
__device__ __forceinline__ static void pe__d_conv1d(const pe_cuda_step_t &s,
                                                    I total, I i0, I di) {
  const I cin = (I)s.p[0], cout = (I)s.p[1], group = (I)s.p[2], k = (I)s.p[3];
  const I stride = (I)s.p[4], dil = (I)s.p[5], pl = (I)s.p[6], win = (I)s.p[8];
  const I wout = (I)s.p[9], cin_g = cin / group, cout_g = cout / group;
  const I xs = (I)s.in_stride[0], ys = (I)s.numel;
  const I tiles = (wout + T - 1) / T;
  for (I i = i0; i < total; i += di) {
    const I t0 = (i % tiles) * T, r = i / tiles, co = r % cout, b = r / cout;
    const float *__restrict__ w = s.w + co * cin_g * k;
    const float *__restrict__ x =
        s.in[0] + b * xs + (co / cout_g) * cin_g * win;
    /* the taps that land inside the window for some output of the tile */
    const I tl = t0 + T - 1 < wout ? t0 + T - 1 : wout - 1;
    const I p0 = t0 * stride - pl, p1 = tl * stride - pl;
    I k0 = 0, k1 = k;
    while (k0 < k && p1 + k0 * dil < 0) {
      k0++;
    }
    while (k1 > k0 && p0 + (k1 - 1) * dil >= win) {
      k1--;
    }
    double acc[T];
    float part[T];
#pragma unroll
    for (int j = 0; j < T; j++) {
      acc[j] = 0.0;
      part[j] = 0.0f;
    }
    I run = 0;
    for (I ci = 0; ci < cin_g; ci++) {
      const float *__restrict__ xr = x + ci * win;
      const float *__restrict__ wr = w + ci * k;
      for (I kk = k0; kk < k1; kk++) {
        const I rn = (ci * k + kk) / PE__TK;
        if (rn != run) {
#pragma unroll
          for (int j = 0; j < T; j++) {
            acc[j] += (double)part[j];
            part[j] = 0.0f;
          }
          run = rn;
        }
        const float wv = wr[kk];
        const I q = p0 + kk * dil;
#pragma unroll
        for (int j = 0; j < T; j++) {
          const I pos = q + j * stride;
          const float xv = pos >= 0 && pos < win ? xr[pos] : 0.0f;
          part[j] = fmaf(wv, xv, part[j]);
        }
      }
    }
    const double bias = s.bias[co];
    float *y = s.out[0] + b * ys + co * wout;
#pragma unroll
    for (int j = 0; j < T; j++) {
      if (t0 + j < wout) {
        y[t0 + j] =
            pe__act((float)(acc[j] + (double)part[j] + bias), s.act, s.alpha);
      }
    }
  }
}

/* The heads of a self-attention block (its projections run as dense
 * steps before and after): in[0] the projected rows [L][3E] (Q, K, V side
 * by side), out[0] the merged heads [L][E]; p[0..4] = L, E, H, D, mask_h,
 * f[0] the scale, in[1] the additive mask and in[2] the replacement
 * scores ([H or 1][L][L], constants) or NULL. One warp per row (window b,
 * head h, query i), pe__attn_row (rows.cuh). For heads pe__k_attn_q
 * cannot stage. i0 and di count threads; warps are i0 / 32 on. */
template <typename I>
__device__ __forceinline__ static void pe__d_attention(const pe_cuda_step_t &s,
                                                       I total, I i0, I di) {
  const I L = (I)s.p[0], E = (I)s.p[1], H = (I)s.p[2], D = (I)s.p[3];
  const I E3 = 3 * E;
  const int lane = (int)(threadIdx.x & 31);
  for (I u = i0 >> 5; u < total; u += di >> 5) {
    const I i = u % L, h = (u / L) % H, b = u / (L * H);
    const float *qkv = s.in[0] + b * (I)s.in_stride[0];
    const I mo = pe__attn_score_off<I>(s, h, i);
    pe__attn_row(qkv + i * E3 + h * D, qkv + E + h * D, (int)E3,
                 qkv + 2 * E + h * D, (int)E3, (int)L, (int)D, s.f[0], s.in[1] ? s.in[1] + mo : NULL,
                 s.in[2] ? s.in[2] + mo : NULL, lane,
                 s.out[0] + b * (I)s.numel + i * E + h * D);
  }
}

#endif
