/* The kernels of src/cuda/tiled.cuh run on the CPU (tests/cuda_emu/shim.h:
 * a thread per CUDA thread, a block at a time) against references in
 * double, on random shapes: the tiled dense product (rows and outputs
 * across tile edges, K across stage edges, bias or none, an activation),
 * Conv 1-D as tiles (DeepLOB's shapes and others: strides, dilations,
 * pads past the window, channel and position tiles across their edges,
 * more windows than blocks), both in fp32 and on tensor cores in TF32
 * (shim.h's warp matrix operations; their references round the operands
 * as the kernels do, and their distance from the exact sums is bounded
 * apart), Conv 2-D (four channels a thread or one; groups, pads, strides,
 * dilations; against the cpu backend's portable function,
 * model/kernels_shared.h) and the attention heads of one thread per query
 * (queries across warp edges, several heads a block, head widths 1 to 64,
 * an additive mask per head or shared, replacement scores), and the LSTM
 * recurrence in the warp form of src/cuda/lstm_rec.cuh (against ONNX's
 * equations in double, over sizes that leave warps or lanes idle, either
 * direction, given states or none). Every result must lie within 1e-5 of
 * the reference, relative to max(1, |y|), and no output may be left
 * unwritten (the outputs start as NaN). The forms that must give the same
 * bits as another are compared bit for bit: the dense and Conv 1-D forms
 * against the ordered sums, the attention heads of a warp per query row
 * and of 32 / D rows a warp against those of a thread per query, and
 * LayerNorm's two rows a warp against a row a warp (src/cuda/rows.cuh).
 *
 *   c++ -std=c++17 -O1 -ffp-contract=off -Iinclude -Isrc -Itests \
 *     -include tests/cuda_emu/shim.h tests/cuda_emu/tiled_emu.cpp -lpthread
 */
#include <stdio.h>
#include <vector>

#include "cuda/kernels.h"
#include "model/plan_view.h"
/* after plan_view.h (the PE_PLAN_ACT_* names) */
#include "cuda/act.cuh"
#include "cuda/rows.cuh"
#define PE__FOR(i, total) for (I i = i0; i < (total); i += di)
#include "cuda/lstm_rec.cuh"
#include "cuda/tiled.cuh"
/* after tiled.cuh (PE__TK, pe__attn_score_off) */
#include "cuda/sums.cuh"
#include "model/kernels_shared.h"
#include "splitmix.h"

static uint64_t pe_rng = 7;

static float pe_uniform(float lo, float hi) {
  const double u = (double)(pe_splitmix64(&pe_rng) >> 11) * 0x1.0p-53;
  return (float)(lo + (hi - lo) * u);
}

static int pe_below(int n) {
  return (int)(pe_splitmix64(&pe_rng) % (uint64_t)n);
}

static std::vector<float> pe_random(size_t n, float scale) {
  std::vector<float> v(n);
  for (float &x : v) {
    x = pe_uniform(-scale, scale);
  }
  return v;
}

/* The worst difference of y from want, relative to max(1, |want|); NaN
 * (an output not written) counts as infinite, but where want is NaN (an
 * element the kernel must leave alone), y must be NaN and anything else
 * counts as infinite. */
static double pe_worst(const std::vector<float> &y,
                       const std::vector<double> &want) {
  double w = 0.0;
  for (size_t i = 0; i < y.size(); i++) {
    if (want[i] != want[i]) {
      w = y[i] == y[i] ? INFINITY : w;
      continue;
    }
    const double d = fabs((double)y[i] - want[i]) / fmax(1.0, fabs(want[i]));
    w = d > w || d != d ? (d != d ? INFINITY : d) : w;
  }
  return w;
}

static int pe_fails;

static void pe_report(const char *what, double worst) {
  const int bad = !(worst <= 1e-5);
  pe_fails += bad;
  if (bad) {
    printf("FAIL: %s: largest difference %.3g\n", what, worst);
  }
}

/* A TF32 case's difference from the exact sums: within 4e-3 (10 bits of
 * mantissa, sums of up to 256 products of order 1 / sqrt(K)); *worst the
 * largest so far. */
static void pe_report_exact(const char *what, double plain, double *worst) {
  if (!(plain <= 4e-3)) {
    printf("FAIL: %s: %.3g from the exact sums\n", what, plain);
    pe_fails++;
  }
  *worst = plain > *worst ? plain : *worst;
}

/* ---- dense ------------------------------------------------------------ */

struct pe_dense_arg {
  pe_cuda_step_t s;
  int R;
};

static void pe_dense_body(void *a) {
  const pe_dense_arg *d = (const pe_dense_arg *)a;
  pe__k_dense_tiled(d->s, d->R);
}

static void pe_dense_tf32_body(void *a) {
  const pe_dense_arg *d = (const pe_dense_arg *)a;
  pe__k_dense_tf32(d->s, d->R);
}

/* The value the kernel multiplies: v, or v rounded to TF32 in tf32. */
static float pe_as_multiplied(float v, int tf32) {
  return tf32 ? nvcuda::wmma::__float_to_tf32(v) : v;
}

/* A dense step of one window of R rows: x [R][K], w [K][M], bias [M] or
 * NULL. */
static pe_cuda_step_t pe_dense_step(int R, int K, int M, int act,
                                    const float *x, const float *w,
                                    const float *bias) {
  pe_cuda_step_t s;
  memset(&s, 0, sizeof s);
  s.kind = PE_PLAN_DENSE;
  s.act = act;
  s.alpha = 0.01f;
  s.K = K;
  s.M = M;
  s.p[0] = R;
  s.in[0] = x;
  s.in_stride[0] = (int64_t)R * K;
  s.w = w;
  s.bias = bias;
  return s;
}

/* The dense product in fp32 or in TF32 (precision tf32): against the sums
 * in double of the operands as the kernel multiplies them (in TF32 only
 * the float sums differ), which checks its tiles, fragments and edges to
 * 1e-5, and against the sums of the operands as given (*plain: TF32's own
 * difference; the same as the first in fp32). */
static double pe_dense_case(int tf32, int R, int K, int M, int bias, int act,
                            double *plain) {
  std::vector<float> x = pe_random((size_t)R * K, 1.0f);
  std::vector<float> w = pe_random((size_t)K * M, 1.0f / sqrtf((float)K));
  std::vector<float> b = pe_random((size_t)M, 0.5f);
  std::vector<float> y((size_t)R * M, NAN);
  pe_dense_arg d;
  d.s = pe_dense_step(R, K, M, act, x.data(), w.data(), bias ? b.data() : NULL);
  d.s.tf32 = tf32;
  d.s.out[0] = y.data();
  d.R = R;
  pe_emu_launch((unsigned)((R + PE__TR - 1) / PE__TR),
                (unsigned)((M + PE__TM - 1) / PE__TM), tf32 ? 128 : 256,
                tf32 ? pe_dense_tf32_body : pe_dense_body, &d);
  std::vector<double> want((size_t)R * M), exact((size_t)R * M);
  for (int r = 0; r < R; r++) {
    for (int m = 0; m < M; m++) {
      double acc = 0.0, acc_x = 0.0;
      for (int k = 0; k < K; k++) {
        const float xv = x[(size_t)r * K + k], wv = w[(size_t)k * M + m];
        acc += (double)pe_as_multiplied(xv, tf32) *
               (double)pe_as_multiplied(wv, tf32);
        acc_x += (double)xv * (double)wv;
      }
      acc += bias ? (double)b[m] : 0.0;
      acc_x += bias ? (double)b[m] : 0.0;
      want[(size_t)r * M + m] = (double)pe__act((float)acc, act, 0.01f);
      exact[(size_t)r * M + m] = (double)pe__act((float)acc_x, act, 0.01f);
    }
  }
  *plain = pe_worst(y, exact);
  return pe_worst(y, want);
}

/* Conv 1-D without groups as tiles over n windows, in fp32 or in TF32:
 * against the sums in double of the operands as the kernel multiplies
 * them (rounded to TF32 in tf32; 1e-5), and of the operands as given
 * (*plain). */
struct pe_conv_arg {
  pe_cuda_step_t s;
  int n;
};

static void pe_conv1d_tf32_body(void *a) {
  const pe_conv_arg *d = (const pe_conv_arg *)a;
  pe__k_conv1d_tf32(d->s, d->n);
}

static void pe_conv1d_tiled_body(void *a) {
  const pe_conv_arg *d = (const pe_conv_arg *)a;
  pe__k_conv1d_tiled(d->s, d->n);
}

/* A Conv 1-D step over n windows of cin x win with random inputs,
 * weights and bias (held here), a leaky ReLU after; wout 0 where the
 * shape has no output. */
struct pe_conv1d_data {
  int wout;
  std::vector<float> x, w, b;
  pe_cuda_step_t s;
};

static void pe_conv1d_make(pe_conv1d_data *c, int n, int cin, int cout,
                           int group, int k, int st, int dil, int pl, int pr,
                           int win) {
  const int cin_g = cin / group;
  c->wout = (win + pl + pr - dil * (k - 1) - 1) / st + 1;
  c->wout = c->wout > 0 ? c->wout : 0;
  c->x = pe_random((size_t)n * cin * win, 1.0f);
  c->w = pe_random((size_t)cout * cin_g * k, 1.0f / sqrtf((float)(cin_g * k)));
  c->b = pe_random((size_t)cout, 0.5f);
  memset(&c->s, 0, sizeof c->s);
  c->s.kind = PE_PLAN_CONV1D;
  c->s.act = PE_PLAN_ACT_LEAKY;
  c->s.alpha = 0.01f;
  const int64_t p[10] = {cin, cout, group, k, st, dil, pl, pr, win, c->wout};
  memcpy(c->s.p, p, sizeof p);
  c->s.in[0] = c->x.data();
  c->s.in_stride[0] = (int64_t)cin * win;
  c->s.w = c->w.data();
  c->s.bias = c->b.data();
  c->s.numel = (int64_t)cout * c->wout;
}

static double pe_conv1d_case(int tf32, int n, int cin, int cout, int k, int st,
                             int dil, int pl, int pr, int win, double *plain) {
  pe_conv1d_data c;
  pe_conv1d_make(&c, n, cin, cout, 1, k, st, dil, pl, pr, win);
  const int wout = c.wout;
  if (wout < 1) {
    *plain = 0.0;
    return 0.0;
  }
  const std::vector<float> &x = c.x, &w = c.w, &b = c.b;
  std::vector<float> y((size_t)n * cout * wout, NAN);
  pe_conv_arg d;
  memset(&d, 0, sizeof d);
  d.s = c.s;
  d.s.tf32 = tf32;
  d.s.out[0] = y.data();
  d.n = n;
  /* fewer blocks along z than windows: the kernel's loop over them */
  pe_emu_launch((unsigned)((wout + PE__TM - 1) / PE__TM),
                (unsigned)((cout + PE__TR - 1) / PE__TR), tf32 ? 128 : 256,
                tf32 ? pe_conv1d_tf32_body : pe_conv1d_tiled_body, &d,
                (unsigned)(n > 1 ? n - 1 : 1));
  std::vector<double> want(y.size()), exact(y.size());
  for (int bb = 0; bb < n; bb++) {
    for (int co = 0; co < cout; co++) {
      for (int o = 0; o < wout; o++) {
        double acc = b[co], acc_x = b[co];
        for (int ci = 0; ci < cin; ci++) {
          for (int t = 0; t < k; t++) {
            const int src = o * st + t * dil - pl;
            if (src < 0 || src >= win) {
              continue;
            }
            const float xv = x[((size_t)bb * cin + ci) * win + src];
            const float wv = w[((size_t)co * cin + ci) * k + t];
            acc += (double)pe_as_multiplied(xv, tf32) *
                   (double)pe_as_multiplied(wv, tf32);
            acc_x += (double)xv * (double)wv;
          }
        }
        const size_t i = ((size_t)bb * cout + co) * wout + o;
        want[i] = (double)pe__act((float)acc, PE_PLAN_ACT_LEAKY, 0.01f);
        exact[i] = (double)pe__act((float)acc_x, PE_PLAN_ACT_LEAKY, 0.01f);
      }
    }
  }
  *plain = pe_worst(y, exact);
  return pe_worst(y, want);
}

/* ---- Conv 2-D --------------------------------------------------------- */

static double pe_conv2d_case(int n, int cin, int cout, int group, int kh,
                             int kw, int sh, int sw, int dh, int dw, int pt,
                             int pl, int H, int W, int act) {
  const int OH = (H + 2 * pt - dh * (kh - 1) - 1) / sh + 1;
  const int OW = (W + 2 * pl - dw * (kw - 1) - 1) / sw + 1;
  if (OH < 1 || OW < 1) {
    return 0.0;
  }
  const int cin_g = cin / group;
  std::vector<float> x = pe_random((size_t)n * cin * H * W, 1.0f);
  std::vector<float> w = pe_random((size_t)cout * cin_g * kh * kw,
                                   1.0f / sqrtf((float)(cin_g * kh * kw)));
  std::vector<float> b = pe_random((size_t)cout, 0.5f);
  std::vector<float> y((size_t)n * cout * OH * OW, NAN);
  pe_cuda_step_t s;
  memset(&s, 0, sizeof s);
  s.kind = PE_PLAN_CONV2D;
  s.act = act;
  s.alpha = 0.01f;
  const int64_t p[15] = {cin, cout, group, kh, kw, sh, sw, dh,
                         dw,  pt,   pl,    H,  W,  OH, OW};
  memcpy(s.p, p, sizeof p);
  s.in[0] = x.data();
  s.in_stride[0] = (int64_t)cin * H * W;
  s.w = w.data();
  s.bias = b.data();
  s.out[0] = y.data();
  s.numel = (int64_t)cout * OH * OW;
  const int64_t total = (int64_t)n * (s.numel / pe__conv2d_cb(&s));
  pe__d_conv2d<int64_t>(s, total, 0, 1);
  std::vector<double> want(y.size());
  const int cout_g = cout / group;
  for (int bi = 0; bi < n; bi++) {
    for (int co = 0; co < cout; co++) {
      const float *xg =
          x.data() + ((size_t)bi * cin + (size_t)(co / cout_g) * cin_g) * H * W;
      for (int oh = 0; oh < OH; oh++) {
        for (int ow = 0; ow < OW; ow++) {
          const double acc =
              pe_ks_conv2d_at(s.p, xg, w.data() + (size_t)co * cin_g * kh * kw,
                              (double)b[co], oh, ow);
          want[(((size_t)bi * cout + co) * OH + oh) * OW + ow] =
              (double)pe__act((float)acc, act, 0.01f);
        }
      }
    }
  }
  return pe_worst(y, want);
}

/* ---- attention heads --------------------------------------------------- */

/* ---- one order of sums whatever the form (src/cuda/sums.cuh) ---------- */

/* The sum of a[q] b[q] over q < Q as sums.cuh defines it: runs of PE__TK
 * terms, each summed in float by fused multiply-adds from +0, the runs'
 * sums in double, then the bias; rounded to float, then the activation. */
static float pe_ordered(const std::vector<float> &a,
                        const std::vector<float> &b, double bias, int act) {
  double acc = 0.0;
  for (size_t q0 = 0; q0 < a.size(); q0 += PE__TK) {
    float part = 0.0f;
    for (size_t q = q0; q < a.size() && q < q0 + PE__TK; q++) {
      part = fmaf(a[q], b[q], part);
    }
    acc += (double)part;
  }
  return pe__act((float)(acc + bias), act, 0.01f);
}

/* Outputs of y whose bits differ from want's (those of `from`), printed
 * as a failure of `what` where there are any. */
static int pe_same_bits(const char *what, const std::vector<float> &y,
                        const std::vector<float> &want, const char *from) {
  size_t differ = 0;
  for (size_t i = 0; i < y.size(); i++) {
    differ += memcmp(&y[i], &want[i], sizeof(float)) != 0;
  }
  if (differ != 0) {
    printf("FAIL: %s: %zu of %zu outputs differ from %s\n", what, differ,
           y.size(), from);
    pe_fails++;
  }
  return differ != 0;
}

struct pe_form_arg {
  pe_cuda_step_t s;
  int total, g, R;
};

static void pe_form_dense(void *a) {
  const pe_form_arg *d = (const pe_form_arg *)a;
  pe__d_dense<int>(d->s, d->total, (int)threadIdx.x, (int)blockDim.x);
}

static void pe_form_dense_warp(void *a) {
  const pe_form_arg *d = (const pe_form_arg *)a;
  pe__d_dense_warp<int>(d->s, d->total, (int)threadIdx.x, (int)blockDim.x);
}

static void pe_form_dense_split(void *a) {
  const pe_form_arg *d = (const pe_form_arg *)a;
  pe__d_dense_split<int>(d->s, d->total, d->g, (int)threadIdx.x);
}

static void pe_form_dense_tiled(void *a) {
  const pe_form_arg *d = (const pe_form_arg *)a;
  pe__k_dense_tiled(d->s, d->R);
}

template <int T> static void pe_form_conv1d(void *a) {
  const pe_form_arg *d = (const pe_form_arg *)a;
  pe__d_conv1d<int, T>(d->s, d->total, (int)threadIdx.x, (int)blockDim.x);
}

static void pe_form_conv1d_tiled(void *a) {
  const pe_form_arg *d = (const pe_form_arg *)a;
  pe__k_conv1d_tiled(d->s, d->total);
}

/* A dense step of R rows through every form (the thread, the warp with w2,
 * the split at each width that fits a block, with w2 and with w, and the
 * tiled product): each output's bits must be the ordered sum's. With
 * cancel set (K > 64), the first run's sum of each output is 2^60 w and
 * the second's -2^60 w, the terms before k = 64 otherwise zero: in
 * double, the sum of the rest survives only where those two meet first,
 * so that the order in which the runs' sums meet tells. Returns the forms
 * that differ. */
static int pe_dense_forms(int R, int K, int M, int bias, int act, int cancel) {
  std::vector<float> x = pe_random((size_t)R * K, 1.0f);
  std::vector<float> w = pe_random((size_t)K * M, 1.0f / sqrtf((float)K));
  for (int r = 0; cancel && r < R; r++) {
    for (int k = 0; k < 64; k++) {
      x[(size_t)r * K + k] = k == 0 ? 0x1p60f : k == 32 ? -0x1p60f : 0.0f;
    }
    for (int m = 0; m < M; m++) {
      w[(size_t)32 * M + m] = w[m];
    }
  }
  std::vector<float> w2((size_t)M * K), b = pe_random((size_t)M, 0.5f);
  for (int k = 0; k < K; k++) {
    for (int m = 0; m < M; m++) {
      w2[(size_t)m * K + k] = w[(size_t)k * M + m];
    }
  }
  std::vector<float> want((size_t)R * M), ta((size_t)K), tb((size_t)K);
  for (int r = 0; r < R; r++) {
    for (int m = 0; m < M; m++) {
      for (int k = 0; k < K; k++) {
        ta[k] = x[(size_t)r * K + k];
        tb[k] = w[(size_t)k * M + m];
      }
      want[(size_t)r * M + m] =
          pe_ordered(ta, tb, bias ? (double)b[m] : 0.0, act);
    }
  }
  pe_form_arg d;
  memset(&d, 0, sizeof d);
  d.s = pe_dense_step(R, K, M, act, x.data(), w.data(), bias ? b.data() : NULL);
  d.total = R * M;
  d.R = R;
  char what[160];
  int bad = 0;
  std::vector<float> y;
  /* (form, width): 0 thread, 1 warp, 2 tiled, 3.. split by 2^(form - 2)
   * lanes, with w2 and then with w */
  for (int form = 0; form < 3 + 2 * 5; form++) {
    const int g = form >= 3 ? 2 << ((form - 3) % 5) : 0;
    const int with_w2 = form == 1 || (form >= 3 && form < 8);
    if (g != 0 && (int64_t)d.total * g > 1024) {
      continue;
    }
    y.assign((size_t)R * M, NAN);
    d.s.out[0] = y.data();
    d.s.w2 = with_w2 ? w2.data() : NULL;
    d.g = g;
    if (form == 0) {
      pe_emu_launch(1, 1, 96, pe_form_dense, &d);
    } else if (form == 1) {
      pe_emu_launch(1, 1, 128, pe_form_dense_warp, &d);
    } else if (form == 2) {
      pe_emu_launch((unsigned)((R + PE__TR - 1) / PE__TR),
                    (unsigned)((M + PE__TM - 1) / PE__TM), 256,
                    pe_form_dense_tiled, &d);
    } else {
      pe_emu_launch(1, 1, (unsigned)((d.total * g + 31) / 32 * 32),
                    pe_form_dense_split, &d);
    }
    snprintf(what, sizeof what,
             "dense %s%s g %d, R %d K %d M %d bias %d cancel %d",
             form == 0   ? "thread"
             : form == 1 ? "warp"
             : form == 2 ? "tiled"
                         : "split",
             with_w2 ? " (w2)" : "", g, R, K, M, bias, cancel);
    bad += pe_same_bits(what, y, want, "the ordered sums");
  }
  return bad;
}

/* A Conv 1-D step over n windows through the thread forms of 4 outputs
 * and of 1, and the tiled product where it has no groups: each output's
 * bits must be the ordered sum's (terms ci k + tap of its group, zero
 * outside the window). Returns the forms that differ. */
static int pe_conv1d_forms(int n, int cin, int cout, int group, int k, int st,
                           int dil, int pl, int pr, int win) {
  pe_conv1d_data c;
  pe_conv1d_make(&c, n, cin, cout, group, k, st, dil, pl, pr, win);
  const int wout = c.wout, cin_g = cin / group, cout_g = cout / group;
  if (wout < 1) {
    return 0;
  }
  const std::vector<float> &x = c.x, &w = c.w, &b = c.b;
  std::vector<float> want((size_t)n * cout * wout);
  std::vector<float> ta((size_t)cin_g * k), tb((size_t)cin_g * k);
  for (int bb = 0; bb < n; bb++) {
    for (int co = 0; co < cout; co++) {
      for (int o = 0; o < wout; o++) {
        for (int q = 0; q < cin_g * k; q++) {
          const int ci = (co / cout_g) * cin_g + q / k;
          const int src = o * st + (q % k) * dil - pl;
          ta[q] = w[(size_t)co * cin_g * k + q];
          tb[q] = src >= 0 && src < win ? x[((size_t)bb * cin + ci) * win + src]
                                        : 0.0f;
        }
        want[((size_t)bb * cout + co) * wout + o] =
            pe_ordered(ta, tb, (double)b[co], PE_PLAN_ACT_LEAKY);
      }
    }
  }
  pe_form_arg d;
  memset(&d, 0, sizeof d);
  d.s = c.s;
  char what[160];
  int bad = 0;
  std::vector<float> y;
  /* form 2: the tiles of 64 channels by 64 positions */
  for (int form = 0; form < (group == 1 ? 3 : 2); form++) {
    y.assign((size_t)n * cout * wout, NAN);
    d.s.out[0] = y.data();
    if (form == 2) {
      d.total = n;
      pe_emu_launch((unsigned)((wout + PE__TM - 1) / PE__TM),
                    (unsigned)((cout + PE__TR - 1) / PE__TR), 256,
                    pe_form_conv1d_tiled, &d, (unsigned)n);
    } else {
      const int T = form == 0 ? 4 : 1;
      d.total = n * cout * ((wout + T - 1) / T);
      pe_emu_launch(1, 1, 160,
                    form == 0 ? pe_form_conv1d<4> : pe_form_conv1d<1>, &d);
    }
    snprintf(what, sizeof what,
             "conv1d %s, cin %d cout %d group %d k %d stride %d dil %d pads "
             "%d,%d win %d",
             form == 0   ? "thread of 4"
             : form == 1 ? "thread of 1"
                         : "tiled",
             cin, cout, group, k, st, dil, pl, pr, win);
    bad += pe_same_bits(what, y, want, "the ordered sums");
  }
  return bad;
}

struct pe_attn_arg {
  pe_cuda_step_t s;
  int64_t units;
  int tq, heads, rows;
};

template <int DM> static void pe_attn_body(void *a) {
  const pe_attn_arg *d = (const pe_attn_arg *)a;
  pe__k_attn_q<DM>(d->s, d->units, d->tq, d->heads);
}

static void pe_attn_warp_body(void *a) {
  const pe_attn_arg *d = (const pe_attn_arg *)a;
  pe__d_attention<int>(d->s, d->rows, (int)threadIdx.x, (int)blockDim.x);
}

/* LayerNorm rows: a warp a row (pe__ln_row), or a warp two rows at once
 * (pe__ln_rows<2>, the generated kernel's form), over rows of stride rs,
 * y over x where inplace says */
struct pe_ln_arg {
  const float *x, *x2, *w, *bias;
  float *y;
  int rows, len, rs, two;
  float eps;
};

static void pe_ln_body(void *a) {
  const pe_ln_arg *d = (const pe_ln_arg *)a;
  const int lane = (int)threadIdx.x & 31, warp = (int)threadIdx.x / 32;
  const int nw = (int)blockDim.x / 32, step = d->two ? 2 : 1;
  for (int r = warp * step; r < d->rows; r += nw * step) {
    const float *x2 = d->x2 ? d->x2 + r * d->rs : NULL;
    if (d->two && r + 1 < d->rows) {
      pe__ln_rows<2>(d->x + r * d->rs, x2, d->y + r * d->rs, d->rs, d->len,
                     lane, d->w, d->bias, d->eps, NULL, NULL);
    } else {
      pe__ln_row(d->x + r * d->rs, x2, d->y + r * d->rs, d->len, lane, d->w,
                 d->bias, d->eps, NULL, NULL);
    }
  }
}

/* pe__ln_rows<2> against pe__ln_row, bit for bit: rows of len floats (5 of
 * them, so that the last pair is one row), with a residual or not, a bias
 * or not, the output over the input or apart. */
static int pe_ln_case(int len, int res, int bias, int inplace) {
  const int rows = 5, rs = len + 3;
  std::vector<float> x = pe_random((size_t)rows * rs, 2.0f);
  std::vector<float> x2 = pe_random((size_t)rows * rs, 1.0f);
  std::vector<float> w = pe_random((size_t)len, 1.0f);
  std::vector<float> b = pe_random((size_t)len, 0.5f);
  std::vector<float> y[2];
  for (int two = 0; two < 2; two++) {
    std::vector<float> xin = x;
    y[two].assign((size_t)rows * rs, 0.0f);
    pe_ln_arg d = {xin.data(),
                   res ? x2.data() : NULL,
                   w.data(),
                   bias ? b.data() : NULL,
                   inplace ? xin.data() : y[two].data(),
                   rows,
                   len,
                   rs,
                   two,
                   1e-5f};
    pe_emu_launch(1, 1, 64, pe_ln_body, &d);
    if (inplace) {
      y[two] = xin;
    }
  }
  char what[96];
  snprintf(what, sizeof what,
           "LayerNorm two rows a warp, len %d residual %d bias %d in place %d",
           len, res, bias, inplace);
  return pe_same_bits(what, y[1], y[0], "a row a warp");
}

/* pe__attn_rows over every window, head and group of 32 / D query rows,
 * a warp a group */
static void pe_attn_rows_body(void *a) {
  const pe_attn_arg *d = (const pe_attn_arg *)a;
  const pe_cuda_step_t &s = d->s;
  const int L = (int)s.p[0], E = (int)s.p[1], H = (int)s.p[2];
  const int D = (int)s.p[3], rw = 32 / D, nq = (L + rw - 1) / rw;
  const int lane = (int)threadIdx.x & 31;
  for (int u = (int)threadIdx.x / 32; u < d->rows * H * nq;
       u += (int)blockDim.x / 32) {
    const int b = u / (H * nq), h = u / nq % H, i0 = u % nq * rw;
    const float *qkv = s.in[0] + (int64_t)b * s.in_stride[0];
    const int64_t mo = pe__attn_score_off<int64_t>(s, h, i0);
    pe__attn_rows(qkv + i0 * 3 * E + h * D, 3 * E, qkv + E + h * D, 3 * E,
                  qkv + 2 * E + h * D, 3 * E, L, D, s.f[0],
                  s.in[1] ? s.in[1] + mo : NULL, s.in[2] ? s.in[2] + mo : NULL,
                  L - i0 < rw ? L - i0 : rw, lane,
                  s.out[0] + b * s.numel + i0 * E + h * D, E);
  }
}

static double pe_attn_case(int n, int L, int H, int D, int mask, int mask_h,
                           int repl) {
  const int E = H * D;
  std::vector<float> qkv = pe_random((size_t)n * L * 3 * E, 1.0f);
  const int mh = mask_h ? H : 1;
  std::vector<float> m = pe_random((size_t)mh * L * L, 2.0f);
  std::vector<float> r((size_t)mh * L * L, NAN);
  for (float &v : r) {
    v = pe_below(5) == 0 ? -INFINITY : NAN; /* NaN: keep the score */
  }
  for (int i = 0; i < L; i++) {
    for (int h = 0; h < mh; h++) {
      r[((size_t)h * L + i) * L + (size_t)i] = NAN; /* one key kept a row */
    }
  }
  std::vector<float> y((size_t)n * L * E, NAN);
  pe_attn_arg d;
  memset(&d, 0, sizeof d);
  d.s.kind = PE_PLAN_ATTENTION;
  const int64_t p[5] = {L, E, H, D, mask_h};
  memcpy(d.s.p, p, sizeof p);
  d.s.f[0] = 1.0f / sqrtf((float)D);
  d.s.in[0] = qkv.data();
  d.s.in_stride[0] = (int64_t)L * 3 * E;
  d.s.in[1] = mask ? m.data() : NULL;
  d.s.in[2] = repl ? r.data() : NULL;
  d.s.out[0] = y.data();
  d.s.numel = (int64_t)L * E;
  if (!pe__attn_q_fits(&d.s, &d.tq, &d.heads)) {
    printf("FAIL: attention L %d D %d: does not fit\n", L, D);
    return INFINITY;
  }
  d.units = (int64_t)n * H;
  const unsigned blocks = (unsigned)((d.units + d.heads - 1) / d.heads);
  const unsigned nt = (unsigned)(d.tq * d.heads);
  pe_emu_fn body = D <= 8    ? pe_attn_body<8>
                   : D <= 16 ? pe_attn_body<16>
                   : D <= 32 ? pe_attn_body<32>
                             : pe_attn_body<64>;
  pe_emu_launch(blocks, 1, nt, body, &d);
  /* the warp form (for heads the block cannot stage) over the same rows:
   * the same bits */
  std::vector<float> y_q = y;
  y.assign(y.size(), NAN);
  d.rows = n * H * L;
  pe_emu_launch(1, 1, 192, pe_attn_warp_body, &d);
  char what[96];
  snprintf(what, sizeof what, "attention warp form L %d H %d D %d", L, H, D);
  pe_same_bits(what, y, y_q, "the heads of a thread per query");
  if ((D & (D - 1)) == 0 && D <= 16 && L <= PE__ATTN_PK * D) {
    /* several rows a warp (the generated kernel's form): the same bits */
    y.assign(y.size(), NAN);
    d.rows = n;
    pe_emu_launch(1, 1, 192, pe_attn_rows_body, &d);
    snprintf(what, sizeof what, "attention rows a warp L %d H %d D %d", L, H,
             D);
    pe_same_bits(what, y, y_q, "the heads of a thread per query");
  }
  std::vector<double> want(y.size());
  std::vector<double> sc((size_t)L);
  for (int bi = 0; bi < n; bi++) {
    const float *base = qkv.data() + (size_t)bi * L * 3 * E;
    for (int h = 0; h < H; h++) {
      for (int i = 0; i < L; i++) {
        double mx = -INFINITY;
        const size_t mo = ((size_t)(mask_h ? h : 0) * L + i) * L;
        for (int j = 0; j < L; j++) {
          double dot = 0.0;
          for (int c = 0; c < D; c++) {
            dot += (double)base[(size_t)i * 3 * E + h * D + c] *
                   (double)base[(size_t)j * 3 * E + E + h * D + c];
          }
          double v = dot * (double)d.s.f[0];
          v += mask ? (double)m[mo + j] : 0.0;
          v = repl && r[mo + j] == r[mo + j] ? (double)r[mo + j] : v;
          sc[j] = v;
          mx = v > mx ? v : mx;
        }
        double sum = 0.0;
        for (int j = 0; j < L; j++) {
          sc[j] = exp(sc[j] - mx);
          sum += sc[j];
        }
        for (int c = 0; c < D; c++) {
          double acc = 0.0;
          for (int j = 0; j < L; j++) {
            acc += sc[j] * (double)base[(size_t)j * 3 * E + 2 * E + h * D + c];
          }
          want[((size_t)bi * L + i) * E + h * D + c] = acc / sum;
        }
      }
    }
  }
  return pe_worst(y, want);
}

struct pe_lstm_arg {
  pe_cuda_step_t s;
  int misalign; /* h's buffers one float past a 16-byte boundary */
};

static void pe_lstm_body(void *a) {
  const pe_lstm_arg *d = (const pe_lstm_arg *)a;
  PE__DYN_SHARED(float, sh);
  pe__d_lstm_rec(d->s, (int)blockIdx.x, sh + d->misalign);
}

static double pe_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* The LSTM recurrence in the warp form (a block of 512 threads a window,
 * R packed by pe_cuda_lstm_rec_pack) over n windows of seq steps, given
 * W x_t + bias: against ONNX's equations in double over the same inputs,
 * Y (in slot dir of dirs), Y_h and Y_c. */
static double pe_lstm_case(int n, int seq, int H, int rev, int states, int dirs,
                           int dir, int misalign) {
  const int nt = 512, GH = 4 * H;
  int64_t U = 0, KM = 0;
  if (!pe_cuda_lstm_rec_form(H, nt, &U, &KM)) {
    printf("FAIL: lstm H %d: the warp form refused it\n", H);
    return INFINITY;
  }
  std::vector<float> xg = pe_random((size_t)n * seq * GH, 2.0f);
  std::vector<float> R = pe_random((size_t)GH * H, 1.0f / sqrtf((float)H));
  std::vector<float> h0 = pe_random((size_t)n * dirs * H, 1.0f);
  std::vector<float> c0 = pe_random((size_t)n * dirs * H, 1.0f);
  std::vector<float> packed((size_t)nt * KM);
  pe_cuda_lstm_rec_pack(R.data(), H, U, KM, nt, packed.data());
  const size_t ny = (size_t)seq * dirs * H, ns = (size_t)dirs * H;
  std::vector<float> y((size_t)n * ny, NAN), yh((size_t)n * ns, NAN),
      yc((size_t)n * ns, NAN);
  pe_lstm_arg d;
  memset(&d, 0, sizeof d);
  d.misalign = misalign;
  d.s.kind = PE_PLAN_LSTM;
  const int64_t p[11] = {seq, 0, H, 0, 0, rev, dirs, dir, 1, U, KM};
  memcpy(d.s.p, p, sizeof p);
  d.s.in[0] = xg.data();
  d.s.in_stride[0] = (int64_t)seq * GH;
  d.s.in[1] = states ? h0.data() : NULL;
  d.s.in_stride[1] = (int64_t)ns;
  d.s.in[2] = states ? c0.data() : NULL;
  d.s.in_stride[2] = (int64_t)ns;
  d.s.out[0] = y.data();
  d.s.out_stride[0] = (int64_t)ny;
  d.s.out[1] = yh.data();
  d.s.out_stride[1] = (int64_t)ns;
  d.s.out[2] = yc.data();
  d.s.out_stride[2] = (int64_t)ns;
  d.s.w = packed.data();
  if (pe__lstm_rec_shmem(&d.s) + 4 * sizeof(float) > sizeof pe_emu_dyn) {
    printf("FAIL: lstm H %d: its shared memory does not fit\n", H);
    return INFINITY;
  }
  pe_emu_launch((unsigned)n, 1, nt, pe_lstm_body, &d);
  /* the slots of the other direction stay unwritten: NaN in both */
  std::vector<double> want_y(y.size(), NAN), want_h(yh.size(), NAN),
      want_c(yc.size(), NAN);
  std::vector<double> h((size_t)H), c((size_t)H), hn((size_t)H);
  for (int b = 0; b < n; b++) {
    for (int j = 0; j < H; j++) {
      const size_t at = (size_t)b * ns + (size_t)dir * H + j;
      h[j] = states ? h0[at] : 0.0;
      c[j] = states ? c0[at] : 0.0;
    }
    for (int it = 0; it < seq; it++) {
      const int t = rev ? seq - 1 - it : it;
      const float *x = xg.data() + ((size_t)b * seq + t) * GH;
      for (int j = 0; j < H; j++) {
        double g[4];
        for (int q = 0; q < 4; q++) {
          double a = x[q * H + j];
          for (int k = 0; k < H; k++) {
            a += (double)R[((size_t)q * H + j) * H + k] * h[k];
          }
          g[q] = a;
        }
        c[j] = pe_sigmoid(g[2]) * c[j] + pe_sigmoid(g[0]) * tanh(g[3]);
        hn[j] = pe_sigmoid(g[1]) * tanh(c[j]);
      }
      for (int j = 0; j < H; j++) {
        h[j] = hn[j];
        want_y[(size_t)b * ny + ((size_t)t * dirs + dir) * H + j] = h[j];
      }
    }
    for (int j = 0; j < H; j++) {
      want_h[(size_t)b * ns + (size_t)dir * H + j] = h[j];
      want_c[(size_t)b * ns + (size_t)dir * H + j] = c[j];
    }
  }
  return fmax(pe_worst(y, want_y),
              fmax(pe_worst(yh, want_h), pe_worst(yc, want_c)));
}

int main(void) {
  char what[160];
  int cases = 0;
  static const int dense[][3] = {{1, 1, 1},     {63, 5, 3},      {64, 32, 64},
                                 {130, 33, 65}, {200, 100, 130}, {64, 256, 32},
                                 {97, 64, 96}};
  double tf32_worst = 0.0;
  for (int tf32 = 0; tf32 < 2; tf32++) {
    for (const auto &c : dense) {
      for (int v = 0; v < 2; v++) {
        const int act = v ? PE_PLAN_ACT_GELU : PE_PLAN_ACT_NONE;
        double plain = 0.0;
        snprintf(what, sizeof what, "dense%s R %d K %d M %d bias %d act %d",
                 tf32 ? " tf32" : "", c[0], c[1], c[2], v, act);
        pe_report(what, pe_dense_case(tf32, c[0], c[1], c[2], v, act, &plain));
        if (tf32) {
          pe_report_exact(what, plain, &tf32_worst);
        }
        cases++;
      }
    }
  }
  printf("dense tf32: largest difference from the exact sums %.3g\n",
         tf32_worst);
  /* Conv 1-D as tiles, fp32 and TF32: DeepLOB's shapes (a (4, 1) over
   * rows of 20 columns as dilation 20, the (1, 2) of stride 2 over 40,
   * the inception's k3 and k5 'same', its 1x1) and others: channel and
   * position tiles across their edges, taps and pads past the window */
  static const int conv[][8] = {
      /* cin, cout, k, stride, dilation, pad left, pad right, win */
      {32, 32, 4, 1, 20, 0, 0, 2000}, {1, 32, 2, 2, 1, 0, 0, 4000},
      {64, 64, 3, 1, 1, 1, 1, 82},    {64, 64, 5, 1, 1, 2, 2, 82},
      {32, 64, 1, 1, 1, 0, 0, 82},    {5, 70, 3, 1, 1, 0, 0, 130},
      {3, 7, 7, 2, 3, 5, 4, 40},      {40, 100, 2, 1, 2, 0, 1, 65}};
  double conv_worst = 0.0;
  for (const auto &c : conv) {
    for (int tf32 = 0; tf32 < 2; tf32++) {
      double plain = 0.0;
      snprintf(what, sizeof what,
               "conv1d %s cin %d cout %d k %d stride %d dil %d pads %d,%d win "
               "%d",
               tf32 ? "tf32" : "fp32 tiled", c[0], c[1], c[2], c[3], c[4], c[5],
               c[6], c[7]);
      pe_report(what, pe_conv1d_case(tf32, 3, c[0], c[1], c[2], c[3], c[4],
                                     c[5], c[6], c[7], &plain));
      if (tf32) {
        pe_report_exact(what, plain, &conv_worst);
      }
      cases++;
    }
  }
  printf("conv1d tf32: largest difference from the exact sums %.3g\n",
         conv_worst);
  for (int t = 0; t < 40; t++) {
    const int group = 1 + pe_below(3) % 2 * (1 + pe_below(2));
    const int cin = group * (1 + pe_below(6));
    const int cout =
        group * (pe_below(2) ? 4 * (1 + pe_below(3)) : 1 + pe_below(6));
    const int kh = 1 + pe_below(4), kw = 1 + pe_below(4);
    const int sh = 1 + pe_below(2), sw = 1 + pe_below(2);
    const int dh = 1 + pe_below(2), dw = 1 + pe_below(2);
    const int pt = pe_below(2), pl = pe_below(3);
    const int H = 4 + pe_below(12), W = 1 + pe_below(12);
    snprintf(what, sizeof what,
             "conv2d cin %d cout %d group %d k %dx%d s %d,%d d %d,%d pad "
             "%d,%d in %dx%d",
             cin, cout, group, kh, kw, sh, sw, dh, dw, pt, pl, H, W);
    pe_report(what, pe_conv2d_case(2, cin, cout, group, kh, kw, sh, sw, dh, dw,
                                   pt, pl, H, W, PE_PLAN_ACT_LEAKY));
    cases++;
  }
  /* every dense and Conv 1-D form against the ordered sums, bit for bit:
   * sums of one run or many, runs past a group of 32 lanes, tiles'
   * edges; convolutions with groups, strides, dilations, pads past the
   * window (taps skipped), more taps than a run */
  static const int dforms[][3] = {
      {1, 1, 1},   {3, 5, 7},   {2, 32, 9},   {4, 33, 5},   {5, 64, 3},
      {3, 100, 6}, {2, 300, 4}, {1, 1000, 3}, {1, 1100, 2}, {70, 40, 65}};
  int form_bad = 0;
  for (const auto &c : dforms) {
    /* the cancelling case where there are 3 runs or more */
    for (int v = 0; v < (c[1] > 64 ? 3 : 2); v++) {
      form_bad +=
          pe_dense_forms(c[0], c[1], c[2], v == 1,
                         v == 1 ? PE_PLAN_ACT_GELU : PE_PLAN_ACT_NONE, v == 2);
      cases++;
    }
  }
  static const int cforms[][10] = {
      /* n, cin, cout, group, k, stride, dilation, pad l, pad r, win */
      {2, 1, 32, 1, 2, 2, 1, 0, 0, 40},
      {2, 32, 32, 1, 4, 1, 20, 0, 0, 200},
      {1, 20, 8, 1, 5, 1, 1, 2, 2, 30},
      {2, 6, 6, 6, 3, 1, 1, 1, 1, 17},
      {2, 8, 12, 4, 7, 2, 3, 5, 4, 40},
      {1, 3, 5, 1, 40, 1, 1, 39, 0, 50},
      {1, 64, 64, 1, 3, 1, 1, 1, 1, 82},
      {3, 12, 6, 3, 9, 3, 2, 8, 8, 25},
      /* DeepLOB's (4, 1) convolutions as Conv 1-D over columns: positions
       * for several tiles of 256; channels for several tiles of 16 */
      {1, 16, 16, 1, 4, 1, 16, 0, 0, 600},
      {1, 8, 40, 1, 3, 1, 1, 1, 1, 300}};
  for (const auto &c : cforms) {
    form_bad += pe_conv1d_forms(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
                                c[8], c[9]);
    cases++;
  }
  printf("dense and Conv 1-D forms against the ordered sums: %d differ\n",
         form_bad);
  /* the split's widths: as many lanes as fit, no more than the runs need */
  if (pe__split_width(1, 1000, 512) != 32 || pe__split_width(1, 64, 512) != 2 ||
      pe__split_width(1, 32, 512) != 0 ||
      pe__split_width(100, 1000, 512) != 4 ||
      pe__split_width(600, 1000, 512) != 0) {
    printf("FAIL: the split's widths (32, 2, 0, 4 and 0 lanes expected)\n");
    pe_fails++;
  }
  static const int attn[][3] = {{1, 1, 1},   {7, 2, 3},  {32, 4, 8},
                                {33, 2, 16}, {64, 8, 8}, {20, 1, 64},
                                {40, 3, 13}, {13, 2, 4}, {9, 3, 2}};
  for (const auto &c : attn) {
    for (int v = 0; v < 3; v++) {
      snprintf(what, sizeof what, "attention L %d H %d D %d variant %d", c[0],
               c[1], c[2], v);
      pe_report(what,
                pe_attn_case(3, c[0], c[1], c[2], v >= 1, v == 2, v == 2));
      cases++;
    }
  }
  static const int ln_len[] = {1, 7, 32, 33, 64, 100};
  for (int len : ln_len) {
    for (int v = 0; v < 4; v++) {
      pe_ln_case(len, v & 1, v >= 2, v == 3);
      cases++;
    }
  }
  /* the LSTM recurrence in the warp form: DeepLOB's (H 64 over 82
   * steps), and units that leave warps partly or wholly idle, slices of h
   * not a multiple of 4 (the scalar reads), h's buffers off a 16-byte
   * boundary, a reversed direction into its slot of two, given states */
  static const int lstm[][8] = {
      /* n, seq, H, reverse, states, dirs, dir, misalign */
      {2, 82, 64, 0, 0, 1, 0, 0}, {1, 30, 64, 0, 1, 1, 0, 1},
      {2, 40, 32, 1, 1, 2, 1, 0}, {1, 25, 48, 0, 0, 1, 0, 0},
      {2, 9, 17, 1, 0, 2, 0, 0},  {1, 5, 1, 0, 1, 1, 0, 0},
      {1, 12, 50, 0, 1, 1, 0, 0}};
  for (const auto &c : lstm) {
    snprintf(what, sizeof what,
             "lstm warp form n %d seq %d H %d reverse %d states %d dir %d "
             "of %d misalign %d",
             c[0], c[1], c[2], c[3], c[4], c[6], c[5], c[7]);
    pe_report(what,
              pe_lstm_case(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]));
    cases++;
  }
  int64_t u = 0, km = 0;
  if (pe_cuda_lstm_rec_form(65, 512, &u, &km) ||
      pe_cuda_lstm_rec_form(128, 1024, &u, &km) ||
      !pe_cuda_lstm_rec_form(64, 512, &u, &km) || u != 4 || km != 32) {
    printf("FAIL: the warp form's limits (H 65 in 512 threads and 128 in "
           "1024 refused, 64 in 512 taken as 4 units a warp, 32 of h a "
           "lane)\n");
    pe_fails++;
  }
  printf("%s: %d cases of the tiled dense product and Conv 1-D (fp32 and "
         "tf32), the forms of dense and Conv 1-D, Conv 2-D, the attention "
         "heads (every form), LayerNorm rows (both forms) and the LSTM "
         "recurrence, %d failed\n",
         pe_fails ? "FAIL" : "PASS", cases, pe_fails);
  return pe_fails ? 1 : 0;
}
