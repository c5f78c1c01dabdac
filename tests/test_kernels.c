/* The kernels of every instruction set this CPU has agree with the portable
 * ones (src/model/kernels*.c, kernels_attention.c): Conv1d, Conv2d, dense,
 * LSTM, GRU, every activation, the affine step, MatMul of runtime tensors,
 * LayerNormalization and the fused attention step.
 *
 * Each case builds one plan step of random shape (groups, odd channel
 * counts, strides, dilations, pads, batch sizes, lengths, activations),
 * runs it through pe__step_exec with the generic table and with every
 * vector table the CPU can run (AVX2/FMA, AVX-512), and compares every
 * output element. Outputs start as NaN, so an element a kernel forgets to
 * write fails the comparison.
 *
 * Tolerance: 1e-5 * max(1, |generic|). The generic kernels sum in double
 * and round once; the vector ones sum in float with FMA, in a different
 * order, with polynomial exp/tanh/sigmoid (a few ulp). For the sizes here
 * (at most a few hundred terms of order 1 / sqrt(K) each, outputs of order
 * 1) the rounding error of a float sum is a few 1e-7, and an LSTM or GRU
 * state stays in (-1, 1) with contracting updates, so 1e-5 is two orders
 * above what the arithmetic explains and far below any indexing error. */
#include <stdint.h>
#include <stdlib.h>

#include "model/model_impl.h"
#include "pe/error.h"
#include "pe_test.h"

#define TOL 1e-5

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* Uniform integer in [lo, hi]. */
static int64_t rnd(int64_t lo, int64_t hi) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return lo + (int64_t)(rng_state % (uint64_t)(hi - lo + 1));
}

/* Uniform float in [-a, a]. */
static float rndf(float a) {
  return a * ((float)rnd(0, 1 << 24) / (float)(1 << 23) - 1.0f);
}

static float *rnd_buf(int64_t n, float a) {
  float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
  for (int64_t i = 0; i < n; i++) {
    p[i] = rndf(a);
  }
  return p;
}

/* The vector tables this CPU can run. */
static const pe__kernels_t *tables[2];
static int n_tables;
static int64_t n_cases, n_compared; /* reported: the test did run */

/* A model with tensors 0..7 of the given per-sample sizes, none constant. */
typedef struct mini {
  pe_model_t m;
  pe__tensor_t t[8];
} mini_t;

static void mini_init(mini_t *x, const int64_t *numel, int n) {
  memset(x, 0, sizeof *x);
  for (int i = 0; i < n; i++) {
    x->t[i].numel = numel[i];
    x->t[i].known = 1;
    x->t[i].dtype = PE__DT_F32;
  }
  x->m.g.t = x->t;
  x->m.g.n_t = n;
}

/* Runs steps s[0..ns) (ns > 1: the directions of one recurrent layer,
 * writing the same outputs) over nb samples with table k: tensor i is
 * bufs[i]; the outputs of s[0] are set to NaN first. */
static void run_step(mini_t *mm, const pe__step_t *s, int ns,
                     const pe__kernels_t *k, uint32_t nb, float *const *bufs,
                     int n_bufs) {
  float *ptr[8] = {0};
  for (int i = 0; i < n_bufs; i++) {
    ptr[i] = bufs[i];
  }
  for (int o = 0; o < 3; o++) {
    if (s->out[o] >= 0) {
      int64_t n = (int64_t)nb * mm->t[s->out[o]].numel;
      for (int64_t i = 0; i < n; i++) {
        ptr[s->out[o]][i] = NAN;
      }
    }
  }
  for (int i = 0; i < ns; i++) {
    int64_t sc = pe__step_scratch(&s[i], nb, k) + 16;
    float *scratch = aligned_alloc(64, (size_t)((sc * 4 + 63) / 64 * 64));
    pe__exec_t x = {&mm->m, k, ptr, scratch, nb};
    pe__step_exec(&s[i], &x);
    free(scratch);
  }
}

/* Compares output tensor id of two runs; reports the first difference. */
static int same(const char *what, const char *isa, const float *ref,
                const float *got, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    double a = got[i], b = ref[i];
    if (a == b || (isnan(a) && isnan(b))) {
      continue; /* equal infinities; NaN where the generic kernel too */
    }
    if (!(fabs(a - b) <= TOL * fmax(1.0, fabs(b)))) {
      fprintf(stderr, "%s [%s]: element %lld: %.9g, generic %.9g\n", what, isa,
              (long long)i, a, b);
      pe_test_failures++;
      return 0;
    }
  }
  return 1;
}

/* Runs s[0..ns) with the generic table, then every vector one, on the
 * same inputs; compares outputs (tensors 1, 2, 3 where the steps write
 * them). */
static int agree(mini_t *mm, const pe__step_t *s, int ns, uint32_t nb,
                 float **bufs, int n_bufs, const char *what) {
  float *ref[3] = {0}, *got[3] = {0};
  int64_t n[3] = {0};
  for (int o = 0; o < 3; o++) {
    if (s->out[o] >= 0) {
      n[o] = (int64_t)nb * mm->t[s->out[o]].numel;
    }
  }
  run_step(mm, s, ns, &pe__kernels_generic, nb, bufs, n_bufs);
  for (int o = 0; o < 3; o++) {
    if (s->out[o] >= 0) {
      ref[o] = malloc((size_t)n[o] * sizeof(float));
      memcpy(ref[o], bufs[s->out[o]], (size_t)n[o] * sizeof(float));
      got[o] = bufs[s->out[o]];
    }
  }
  int ok = 1;
  n_cases++;
  for (int t = 0; t < n_tables && ok; t++) {
    run_step(mm, s, ns, tables[t], nb, bufs, n_bufs);
    for (int o = 0; o < 3 && ok; o++) {
      if (s->out[o] >= 0) {
        ok = same(what, tables[t]->name, ref[o], got[o], n[o]);
        n_compared += n[o];
      }
    }
  }
  for (int o = 0; o < 3; o++) {
    free(ref[o]);
  }
  return ok;
}

static int rnd_act(float *alpha) {
  static const int acts[] = {PE__ACT_NONE, PE__ACT_RELU, PE__ACT_LEAKY,
                             PE__ACT_TANH, PE__ACT_SIGMOID};
  *alpha = 0.1f;
  return acts[rnd(0, 4)];
}

/* A step with one input (tensor 0, n_in floats per sample, uniform in
 * [-amp, amp]) and one output (tensor 1, n_out floats): runs agree() on
 * nb samples and frees the step. */
static int agree1(pe__step_t *s, int64_t n_in, int64_t n_out, uint32_t nb,
                  float amp, const char *what) {
  mini_t mm;
  int64_t numel[2] = {n_in, n_out};
  mini_init(&mm, numel, 2);
  s->n_in = 1;
  s->out[0] = 1;
  s->out[1] = s->out[2] = -1;
  float *bufs[2] = {rnd_buf(nb * n_in, amp),
                    malloc((size_t)(nb * n_out) * sizeof(float))};
  int ok = agree(&mm, s, 1, nb, bufs, 2, what);
  free(bufs[0]);
  free(bufs[1]);
  pe__step_free(s);
  return ok;
}

/* A Conv1d step of shape p (cin, cout, group, k, stride, dilation, pads,
 * win, wout): random activation, weights and bias. With ab given, where
 * the activation is one the affine step after a convolution may follow
 * (none, Relu, LeakyRelu), that step applied as it stores (es, et, also
 * in ab[0] and ab[1] for the caller to free; NULL otherwise). */
static void conv1d_random(pe__step_t *s, const int64_t p[10], float *ab[2]) {
  const int64_t per = p[0] / p[2] * p[3];
  memset(s, 0, sizeof *s);
  s->kind = PE__K_CONV1D;
  s->act = rnd_act(&s->alpha);
  memcpy(s->p, p, 10 * sizeof p[0]);
  s->w = rnd_buf(p[1] * per, 1.0f / sqrtf((float)per));
  s->bias = rnd_buf(p[1], 0.5f);
  if (ab != NULL) {
    ab[0] = ab[1] = NULL;
    if (s->act <= PE__ACT_LEAKY) {
      ab[0] = rnd_buf(p[1], 2.0f);
      ab[1] = rnd_buf(p[1], 1.0f);
      s->es = ab[0];
      s->et = ab[1];
    }
  }
}

/* Conv1d: groups (odd output channels per group included), strides,
 * dilations, pads, lengths, batch sizes; in a third of the trials with
 * Relu, LeakyRelu or none, the per-channel affine step after it applied
 * as it stores (es, et: plan.c's pe__conv_redirect). */
static void test_conv1d(void) {
  int bad = 0;
  for (int trial = 0; trial < 2000; trial++) {
    int64_t group = rnd(1, 4), cin_g = rnd(1, 5), cout_g = rnd(1, 5);
    int64_t k = rnd(1, 5), st = rnd(1, 3), dil = rnd(1, 3);
    int64_t pl = rnd(0, 3), pr = rnd(0, 3);
    int64_t span = (k - 1) * dil + 1;
    int64_t win = rnd(span - pl - pr > 1 ? span - pl - pr : 1, 70);
    int64_t wout = (win + pl + pr - span) / st + 1;
    int64_t cin = group * cin_g, cout = group * cout_g;
    uint32_t nb = (uint32_t)rnd(1, 4);
    pe__step_t s;
    const int64_t p[10] = {cin, cout, group, k, st, dil, pl, pr, win, wout};
    float *ab[2] = {NULL, NULL};
    conv1d_random(&s, p, trial % 3 == 0 ? ab : NULL);
    char what[160];
    snprintf(what, sizeof what,
             "conv1d cin %lld cout %lld group %lld k %lld stride %lld dil "
             "%lld pads %lld,%lld win %lld batch %u act %d%s",
             (long long)cin, (long long)cout, (long long)group, (long long)k,
             (long long)st, (long long)dil, (long long)pl, (long long)pr,
             (long long)win, nb, s.act, ab[0] != NULL ? " affine after" : "");
    bad += !agree1(&s, cin * win, cout * wout, nb, 1.0f, what);
    free(ab[0]);
    free(ab[1]);
    if (bad >= 5) {
      break; /* enough to see the pattern */
    }
  }
}

/* Conv1d as a 2-D convolution runs it over the flattened H * W axis
 * (ops_conv2d.c): (4,1) 'same' over [16, 100, 20] is dilation 20 with pads
 * of whole rows; (1,2) stride (1,2) over [16, 100, 40] is stride 2 over
 * 4000; (1,10) over [16, 100, 10] is stride 10 over 1000; a grouped (3,1)
 * with an odd count per group. */
static void test_conv1d_flat(void) {
  static const int64_t cfg[][10] = {
      /* cin, cout, group, k, stride, dil, pl, pr, win, wout */
      {16, 16, 1, 4, 1, 20, 20, 40, 2000, 2000},
      {16, 16, 1, 2, 2, 1, 0, 0, 4000, 2000},
      {6, 9, 3, 3, 1, 7, 7, 7, 77, 77},
      {1, 8, 1, 2, 2, 1, 0, 0, 4000, 2000},
      {16, 16, 1, 10, 10, 1, 0, 0, 1000, 100},
  };
  for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
    const int64_t *f = cfg[c];
    pe__step_t s;
    memset(&s, 0, sizeof s);
    s.kind = PE__K_CONV1D;
    s.act = PE__ACT_LEAKY;
    s.alpha = 0.01f;
    memcpy(s.p, f, sizeof cfg[0]);
    s.w = rnd_buf(f[1] * (f[0] / f[2]) * f[3],
                  1.0f / sqrtf((float)((f[0] / f[2]) * f[3])));
    s.bias = rnd_buf(f[1], 0.5f);
    agree1(&s, f[0] * f[8], f[1] * f[9], 3, 1.0f, "conv1d over H * W");
  }
}

/* A Conv1d step of shape p (cin, cout, group, k, stride, dilation, pads,
 * win, wout) as conv1d_random makes it (ab as there), packed. */
static void conv1d_packed(pe__step_t *s, const int64_t p[10], float *ab[2]) {
  conv1d_random(s, p, ab);
  PE_CHECK(pe__step_pack(s) == PE_OK);
}

/* Packs a Conv1d step of each shape p[c] (cin, cout, group, k, stride,
 * dilation, pads, win, wout) and checks that it has no packed form of the
 * kind asked: its Winograd step (wg) or its weights with the channels in
 * the lanes (wl). */
static void check_unmade(const int64_t (*p)[10], size_t n, int lanes) {
  for (size_t c = 0; c < n; c++) {
    pe__step_t s;
    conv1d_packed(&s, p[c], NULL);
    PE_CHECK(lanes ? s.wl == NULL : s.wg == NULL);
    pe__step_free(&s);
  }
}

/* Conv1d whose taps equal its stride, which the AVX-512 table runs with
 * the output channels in the lanes (pe__conv1d_cl_pack): channel counts
 * past a block of 16 and below it, lengths that end a block of 16
 * positions full or short, inputs longer than the taps reach, each
 * activation, the affine step after it in a third of the trials. The form
 * must have been made; shapes it does not take stay without it. */
static void test_conv1d_lanes(void) {
  int bad = 0;
  for (int trial = 0; trial < 200; trial++) {
    int64_t k = rnd(2, 10), cin = rnd((16 + k - 1) / k, 40), cout = rnd(1, 40);
    int64_t wout = rnd(1, trial < 20 ? 300 : 40),
            win = wout * k + rnd(0, k - 1);
    uint32_t nb = (uint32_t)rnd(1, 3);
    const int64_t p[10] = {cin, cout, 1, k, k, 1, 0, 0, win, wout};
    pe__step_t s;
    float *ab[2] = {NULL, NULL};
    conv1d_packed(&s, p, trial % 3 == 0 ? ab : NULL);
    PE_CHECK(s.wl != NULL);
    char what[160];
    snprintf(what, sizeof what,
             "conv1d channels in lanes cin %lld cout %lld k %lld win %lld "
             "batch %u act %d%s",
             (long long)cin, (long long)cout, (long long)k, (long long)win, nb,
             s.act, ab[0] != NULL ? " affine after" : "");
    bad += !agree1(&s, cin * win, cout * wout, nb, 1.0f, what);
    free(ab[0]);
    free(ab[1]);
    if (bad >= 5) {
      break;
    }
  }
  static const int64_t other[][10] = {
      {4, 16, 1, 2, 2, 1, 0, 0, 400, 200},  /* 8 (channel, tap) pairs */
      {16, 16, 1, 2, 3, 1, 0, 0, 400, 133}, /* stride past the taps */
      {16, 16, 2, 2, 2, 1, 0, 0, 400, 200}, /* groups */
      {16, 16, 1, 2, 2, 1, 1, 1, 400, 201}, /* pads */
  };
  check_unmade(other, sizeof other / sizeof other[0], 1);
}

/* Conv1d with 4 taps a row apart, which the vector tables run in
 * Winograd's F(5, 4) form (kernels_winograd.c) and the generic one
 * directly: rows of 8 to 45 columns (vectors of positions that take the
 * columns of one, two or three tiles), row counts whose tiles of 5 end
 * full or short, pads of whole rows, several chunks of positions, channel
 * counts from 8 up (output channels past a block of 8), each activation,
 * the affine step after it in a third of the trials. The form must have
 * been made, or the comparison says nothing about it. */
static void test_conv1d_winograd(void) {
  int bad = 0;
  for (int trial = 0; trial < 120; trial++) {
    int64_t cin = rnd(8, 40), cout = rnd(8, 40), d = rnd(8, 45);
    int64_t hin = rnd(8, trial < 20 ? 120 : 40), win = hin * d;
    /* rows of zeros above and below ('same' is 1 and 2) in half the
     * trials */
    int64_t pt = trial % 2 ? rnd(0, 2) : 0, pb = trial % 2 ? rnd(0, 2) : 0;
    int64_t wout = win + (pt + pb - 3) * d;
    uint32_t nb = (uint32_t)rnd(1, 3);
    pe__step_t s;
    const int64_t p[10] = {cin, cout, 1, 4, 1, d, pt * d, pb * d, win, wout};
    float *ab[2] = {NULL, NULL};
    conv1d_packed(&s, p, trial % 3 == 0 ? ab : NULL);
    PE_CHECK(s.wg != NULL);
    char what[160];
    snprintf(
        what, sizeof what,
        "conv1d winograd cin %lld cout %lld rows %lld x %lld pads %lld,%lld "
        "rows batch %u act %d%s",
        (long long)cin, (long long)cout, (long long)hin, (long long)d,
        (long long)pt, (long long)pb, nb, s.act,
        ab[0] != NULL ? " affine after" : "");
    bad += !agree1(&s, cin * win, cout * wout, nb, 1.0f, what);
    free(ab[0]);
    free(ab[1]);
    if (bad >= 5) {
      break;
    }
  }
  /* shapes the form does not take stay direct */
  static const int64_t direct[][10] = {
      {16, 16, 1, 4, 1, 20, 10, 50, 2000, 2000}, /* pads not of whole rows */
      {16, 16, 1, 3, 1, 20, 0, 0, 2000, 1960},   /* 3 taps */
      {4, 16, 1, 4, 1, 20, 0, 0, 2000, 1940},    /* 4 channels in */
      {16, 16, 1, 4, 1, 4, 0, 0, 400, 388},      /* rows of 4 */
      {16, 16, 2, 4, 1, 20, 0, 0, 2000, 1940},   /* groups */
      {16, 16, 1, 4, 1, 20, 0, 0, 140, 80},      /* 7 rows: no whole tile */
  };
  check_unmade(direct, sizeof direct / sizeof direct[0], 0);
}

/* Conv1d with 3, 4 or 5 taps at dilation 1, which the AVX-512 table runs
 * in Winograd's F(6, 3), F(5, 4) or F(4, 5) with the output channels in
 * the lanes (kernels_winograd.c) and the others directly: output lengths
 * whose last tile ends full or short, pads inside and past the taps,
 * 16 to 80 output channels (a block of two vectors, or one), input
 * channel counts from 8, each activation, the affine step after it in a
 * third of the trials. The form must have been made. */
static void test_conv1d_winograd_1d(void) {
  int bad = 0;
  for (int trial = 0; trial < 150; trial++) {
    int64_t k = rnd(3, 5), cin = rnd(8, 70), cout = 16 * rnd(1, 5);
    int64_t pl = rnd(0, k + 1), pr = rnd(0, k + 1);
    int64_t m = 9 - k, wout = rnd(2 * m, trial < 30 ? 200 : 60);
    int64_t win = wout + k - 1 - pl - pr;
    if (win < 1) {
      continue;
    }
    uint32_t nb = (uint32_t)rnd(1, 3);
    pe__step_t s;
    const int64_t p[10] = {cin, cout, 1, k, 1, 1, pl, pr, win, wout};
    float *ab[2] = {NULL, NULL};
    conv1d_packed(&s, p, trial % 3 == 0 ? ab : NULL);
    PE_CHECK(s.wg != NULL); /* at dilation 1, the 1-D form */
    char what[160];
    snprintf(what, sizeof what,
             "conv1d winograd 1-D cin %lld cout %lld k %lld pads %lld,%lld "
             "win %lld batch %u act %d%s",
             (long long)cin, (long long)cout, (long long)k, (long long)pl,
             (long long)pr, (long long)win, nb, s.act,
             ab[0] != NULL ? " affine after" : "");
    bad += !agree1(&s, cin * win, cout * wout, nb, 1.0f, what);
    free(ab[0]);
    free(ab[1]);
    if (bad >= 5) {
      break;
    }
  }
  /* shapes the form does not take stay direct */
  static const int64_t direct[][10] = {
      {16, 24, 1, 3, 1, 1, 1, 1, 80, 80}, /* output channels not of 16 */
      {4, 16, 1, 3, 1, 1, 1, 1, 80, 80},  /* 4 channels in */
      {16, 16, 1, 2, 1, 1, 0, 0, 80, 79}, /* 2 taps */
      {16, 16, 1, 6, 1, 1, 0, 0, 80, 75}, /* 6 taps */
      {16, 16, 1, 3, 2, 1, 1, 1, 80, 40}, /* stride 2 */
      {16, 16, 1, 3, 1, 2, 2, 2, 80, 80}, /* dilation 2 */
      {16, 16, 2, 3, 1, 1, 1, 1, 80, 80}, /* groups */
      {16, 16, 1, 3, 1, 1, 0, 0, 12, 10}, /* less than two tiles */
  };
  check_unmade(direct, sizeof direct / sizeof direct[0], 0);
}

/* Dense layers, both weight layouts (M <= 4: dot products; else panels). */
static void test_dense(void) {
  for (int trial = 0; trial < 400; trial++) {
    int64_t rows = rnd(1, 6), K = rnd(1, 300), M = rnd(1, 70);
    uint32_t nb = (uint32_t)rnd(1, 5);
    pe__step_t s;
    memset(&s, 0, sizeof s);
    s.kind = PE__K_DENSE;
    s.act = rnd_act(&s.alpha);
    s.p[0] = rows;
    s.p[1] = K;
    s.p[2] = M;
    s.w = rnd_buf(M * K, 1.0f / sqrtf((float)K));
    s.bias = rnd(0, 1) ? rnd_buf(M, 0.5f) : NULL;
    PE_CHECK(pe__step_pack(&s) == PE_OK);
    char what[120];
    snprintf(what, sizeof what, "dense rows %lld K %lld M %lld batch %u act %d",
             (long long)rows, (long long)K, (long long)M, nb, s.act);
    agree1(&s, rows * K, rows * M, nb, 1.0f, what);
  }
}

/* Conv2d: groups, odd channels, kernel sizes, strides, dilations, pads on
 * all four sides, image sizes, batch sizes, fused activations. */
static void test_conv2d(void) {
  for (int trial = 0; trial < 400; trial++) {
    int64_t group = rnd(1, 3), cin_g = rnd(1, 4), cout_g = rnd(1, 5);
    int64_t kh = rnd(1, 4), kw = rnd(1, 4), sh = rnd(1, 3), sw = rnd(1, 3);
    int64_t dh = rnd(1, 2), dw = rnd(1, 2);
    int64_t pt = rnd(0, 2), pl = rnd(0, 2), pb = rnd(0, 2), pr = rnd(0, 2);
    int64_t spanh = (kh - 1) * dh + 1, spanw = (kw - 1) * dw + 1;
    int64_t H = rnd(spanh - pt - pb > 1 ? spanh - pt - pb : 1, 14);
    int64_t W = rnd(spanw - pl - pr > 1 ? spanw - pl - pr : 1, 40);
    int64_t OH = (H + pt + pb - spanh) / sh + 1;
    int64_t OW = (W + pl + pr - spanw) / sw + 1;
    int64_t cin = group * cin_g, cout = group * cout_g;
    uint32_t nb = (uint32_t)rnd(1, 3);
    pe__step_t s;
    memset(&s, 0, sizeof s);
    s.kind = PE__K_CONV2D;
    s.act = rnd_act(&s.alpha);
    int64_t p[17] = {cin, cout, group, kh, kw, sh, sw, dh, dw,
                     pt,  pl,   H,     W,  OH, OW, pb, pr};
    memcpy(s.p, p, sizeof p);
    s.w =
        rnd_buf(cout * cin_g * kh * kw, 1.0f / sqrtf((float)(cin_g * kh * kw)));
    s.bias = rnd_buf(cout, 0.5f);
    PE_CHECK(pe__step_pack(&s) == PE_OK);
    PE_CHECK(s.w2 != NULL);
    char what[200];
    snprintf(what, sizeof what,
             "conv2d cin %lld cout %lld group %lld k %lldx%lld stride "
             "%lldx%lld dil %lldx%lld pads %lld,%lld,%lld,%lld in %lldx%lld "
             "batch %u act %d",
             (long long)cin, (long long)cout, (long long)group, (long long)kh,
             (long long)kw, (long long)sh, (long long)sw, (long long)dh,
             (long long)dw, (long long)pt, (long long)pl, (long long)pb,
             (long long)pr, (long long)H, (long long)W, nb, s.act);
    agree1(&s, cin * H * W, cout * OH * OW, nb, 1.0f, what);
  }
}

/* Conv2d over more output positions than one im2col block, and a wide
 * kernel (the first layers of a DeepLOB-style model). */
static void test_conv2d_large(void) {
  static const int64_t cfg[][6] = {
      /* cin, cout, kh, kw, H, W */
      {1, 16, 1, 2, 100, 40},
      {16, 16, 4, 1, 100, 20},
      {16, 16, 1, 10, 100, 10},
      {3, 7, 3, 3, 33, 29},
  };
  for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
    const int64_t *f = cfg[c];
    int64_t sw = f[3] == 2 ? 2 : 1;
    int64_t OH = f[4] - f[2] + 1, OW = (f[5] - f[3]) / sw + 1;
    pe__step_t s;
    memset(&s, 0, sizeof s);
    s.kind = PE__K_CONV2D;
    s.act = PE__ACT_LEAKY;
    s.alpha = 0.01f;
    int64_t p[17] = {f[0], f[1], 1,    f[2], f[3], 1,  sw, 1, 1,
                     0,    0,    f[4], f[5], OH,   OW, 0,  0};
    memcpy(s.p, p, sizeof p);
    s.w = rnd_buf(f[1] * f[0] * f[2] * f[3],
                  1.0f / sqrtf((float)(f[0] * f[2] * f[3])));
    s.bias = rnd_buf(f[1], 0.5f);
    PE_CHECK(pe__step_pack(&s) == PE_OK);
    agree1(&s, f[0] * f[4] * f[5], f[1] * OH * OW, 2, 1.0f, "conv2d large");
  }
}

/* LSTM and GRU (both linear_before_reset), forward, reverse and
 * bidirectional (two steps writing the halves of the outputs), with and
 * without initial states, odd hidden sizes, all three outputs. */
static void test_rnn(void) {
  for (int trial = 0; trial < 400; trial++) {
    int lstm = (int)rnd(0, 1);
    int64_t seq = rnd(1, 12), in = rnd(1, 20), H = rnd(1, 37);
    int64_t G = lstm ? 4 : 3, GH = G * H;
    int64_t dirs = rnd(1, 2), lbr = lstm ? 0 : rnd(0, 1);
    int reverse = dirs == 1 && rnd(0, 1);
    uint32_t nb = (uint32_t)rnd(1, 4);
    int with_state = (int)rnd(0, 1);
    pe__step_t s[2];
    memset(s, 0, sizeof s);
    float sc = 1.0f / sqrtf((float)H);
    for (int64_t d = 0; d < dirs; d++) {
      s[d].kind = lstm ? PE__K_LSTM : PE__K_GRU;
      s[d].n_in = 3;
      s[d].in[0] = 0;
      s[d].in[1] = with_state ? 4 : -1;
      s[d].in[2] = with_state && lstm ? 5 : -1;
      s[d].out[0] = 1;
      s[d].out[1] = 2;
      s[d].out[2] = lstm ? 3 : -1;
      int64_t p[8] = {seq, in, H, lbr, 0, reverse || d == 1, dirs, d};
      memcpy(s[d].p, p, sizeof p);
      s[d].w = rnd_buf(GH * in, sc);
      s[d].w2 = rnd_buf(GH * H, sc);
      s[d].bias = rnd_buf(GH, sc);
      s[d].bias2 = rnd_buf(H, sc);
      PE_CHECK(pe__step_pack(&s[d]) == PE_OK);
    }
    mini_t mm;
    int64_t numel[6] = {seq * in, seq * dirs * H, dirs * H,
                        dirs * H, dirs * H,       dirs * H};
    mini_init(&mm, numel, 6);
    float *bufs[6];
    for (int i = 0; i < 6; i++) {
      bufs[i] = rnd_buf(nb * numel[i], 1.0f);
    }
    char what[160];
    snprintf(what, sizeof what,
             "%s seq %lld in %lld H %lld lbr %lld dirs %lld reverse %d batch "
             "%u state %d",
             lstm ? "lstm" : "gru", (long long)seq, (long long)in, (long long)H,
             (long long)lbr, (long long)dirs, reverse, nb, with_state);
    agree(&mm, s, (int)dirs, nb, bufs, 6, what);
    for (int i = 0; i < 6; i++) {
      free(bufs[i]);
    }
    for (int64_t d = 0; d < dirs; d++) {
      pe__step_free(&s[d]);
    }
  }
}

/* Element-wise activations and the per-channel affine step. */
static void test_act_affine(void) {
  static const int acts[] = {PE__ACT_RELU, PE__ACT_LEAKY, PE__ACT_SIGMOID,
                             PE__ACT_TANH, PE__ACT_EXP};
  for (int trial = 0; trial < 200; trial++) {
    int affine = (int)rnd(0, 1);
    int64_t outer = rnd(1, 3), C = rnd(1, 9), inner = rnd(1, 40);
    int64_t n = outer * C * inner;
    uint32_t nb = (uint32_t)rnd(1, 3);
    pe__step_t s;
    memset(&s, 0, sizeof s);
    s.kind = affine ? PE__K_AFFINE : PE__K_UNARY;
    s.act = acts[rnd(0, 4)];
    s.alpha = 0.2f;
    s.p[0] = outer;
    s.p[1] = C;
    s.p[2] = inner;
    if (affine) {
      s.w = rnd_buf(C, 2.0f);
      s.bias = rnd_buf(C, 1.0f);
    }
    agree1(&s, n, n, nb, 6.0f, affine ? "affine" : "activation");
  }
}

/* Every activation (those without a vector form included: the tables
 * must route them to the portable one), over inputs that reach their edges:
 * negative arguments of Sqrt, Log and Reciprocal (NaN, -inf), saturation. */
static void test_act_all(void) {
  for (int act = PE__ACT_RELU; act <= PE__ACT_RECIP; act++) {
    for (int trial = 0; trial < 20; trial++) {
      int64_t n = rnd(1, 77);
      uint32_t nb = (uint32_t)rnd(1, 3);
      pe__step_t s;
      memset(&s, 0, sizeof s);
      s.kind = PE__K_UNARY;
      s.act = act;
      s.alpha = 0.3f;
      char what[64];
      snprintf(what, sizeof what, "activation %d n %lld batch %u", act,
               (long long)n, nb);
      agree1(&s, n, n, nb, trial < 10 ? 4.0f : 30.0f, what);
    }
  }
}

/* Activations near 0, relative error: tanh(1e-5) must keep its digits
 * (1 - 2 / (exp(2x) + 1) would not), and erf, GELU, sqrt likewise. The
 * generic kernels use libm; 4 ulp of float is the bound. */
static void test_act_small(void) {
  static const int acts[] = {PE__ACT_TANH,      PE__ACT_ERF,  PE__ACT_GELU,
                             PE__ACT_GELU_TANH, PE__ACT_SQRT, PE__ACT_SIGMOID};
  float *x = malloc(4096 * sizeof(float)), *yg = malloc(4096 * sizeof(float)),
        *yv = malloc(4096 * sizeof(float));
  for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
    for (int i = 0; i < 4096; i++) {
      /* magnitudes 1e-30 to 0.7, both signs (sqrt: positive only) */
      double mag = pow(10.0, -30.0 + 29.85 * (double)i / 4095.0);
      x[i] = (float)(acts[a] == PE__ACT_SQRT || i % 2 ? mag : -mag);
    }
    memcpy(yg, x, 4096 * sizeof(float));
    pe__kernels_generic.act(yg, 4096, acts[a], 0.0f);
    for (int t = 0; t < n_tables; t++) {
      memcpy(yv, x, 4096 * sizeof(float));
      tables[t]->act(yv, 4096, acts[a], 0.0f);
      n_cases++;
      n_compared += 4096;
      for (int i = 0; i < 4096; i++) {
        double d = fabs((double)yv[i] - (double)yg[i]);
        if (!(d <= 4.8e-7 * fabs((double)yg[i]) + 1e-45)) {
          fprintf(stderr,
                  "activation %d near 0 [%s]: x %.9g: %.9g, generic %.9g "
                  "(relative %.3g)\n",
                  acts[a], tables[t]->name, (double)x[i], (double)yv[i],
                  (double)yg[i], d / fabs((double)yg[i]));
          pe_test_failures++;
          break;
        }
      }
    }
  }
  free(x);
  free(yg);
  free(yv);
}

/* MatMul of two runtime tensors: M, K, N from 1 up past the vector widths,
 * two batch axes with the second operand broadcast along the first. */
static void test_matmul(void) {
  for (int trial = 0; trial < 300; trial++) {
    int64_t M = rnd(1, 40), K = rnd(1, 70), N = rnd(1, 40);
    int64_t P1 = rnd(1, 3), P2 = rnd(1, 3);
    int bcast = (int)rnd(0, 1);
    uint32_t nb = (uint32_t)rnd(1, 3);
    pe__step_t s;
    memset(&s, 0, sizeof s);
    s.kind = PE__K_MATMUL;
    s.n_in = 2;
    s.in[0] = 0;
    s.in[1] = 2;
    s.out[0] = 1;
    s.out[1] = s.out[2] = -1;
    s.p[0] = M;
    s.p[1] = K;
    s.p[2] = N;
    s.p[3] = P1 * P2;
    s.rank = 2;
    s.dims[0] = P1;
    s.dims[1] = P2;
    s.st[0][0] = P2 * M * K;
    s.st[0][1] = M * K;
    s.st[1][0] = bcast ? 0 : P2 * K * N;
    s.st[1][1] = K * N;
    mini_t mm;
    int64_t numel[3] = {P1 * P2 * M * K, P1 * P2 * M * N,
                        (bcast ? 1 : P1) * P2 * K * N};
    mini_init(&mm, numel, 3);
    float *bufs[3] = {rnd_buf(nb * numel[0], 1.0f),
                      malloc((size_t)(nb * numel[1]) * sizeof(float)),
                      rnd_buf(nb * numel[2], 1.0f / sqrtf((float)K))};
    char what[120];
    snprintf(what, sizeof what,
             "matmul M %lld K %lld N %lld batch axes %lldx%lld%s batch %u",
             (long long)M, (long long)K, (long long)N, (long long)P1,
             (long long)P2, bcast ? " (b broadcast)" : "", nb);
    agree(&mm, &s, 1, nb, bufs, 3, what);
    for (int i = 0; i < 3; i++) {
      free(bufs[i]);
    }
  }
}

/* LayerNormalization: row lengths across the vector widths, inputs off
 * centre (the mean must come out before the variance), with and without
 * bias, with the Mean and InvStdDev outputs. */
static void test_layernorm(void) {
  for (int trial = 0; trial < 300; trial++) {
    int64_t rows = rnd(1, 9), len = rnd(1, 300);
    uint32_t nb = (uint32_t)rnd(1, 3);
    int stats = (int)rnd(0, 1);
    pe__step_t s;
    memset(&s, 0, sizeof s);
    s.kind = PE__K_LAYERNORM;
    s.n_in = 1;
    s.in[0] = 0;
    s.out[0] = 1;
    s.out[1] = stats ? 2 : -1;
    s.out[2] = stats ? 3 : -1;
    s.p[0] = rows;
    s.p[1] = len;
    s.ext.f[0] = rnd(0, 1) ? 1e-5f : 1e-3f;
    s.w = rnd_buf(len, 2.0f);
    s.bias = rnd(0, 1) ? rnd_buf(len, 1.0f) : NULL;
    mini_t mm;
    int64_t numel[4] = {rows * len, rows * len, rows, rows};
    mini_init(&mm, numel, 4);
    float *bufs[4] = {rnd_buf(nb * numel[0], 3.0f),
                      malloc((size_t)(nb * numel[1]) * sizeof(float)),
                      malloc((size_t)(nb * rows) * sizeof(float)),
                      malloc((size_t)(nb * rows) * sizeof(float))};
    float off = rndf(20.0f);
    for (int64_t i = 0; i < nb * numel[0]; i++) {
      bufs[0][i] += off;
    }
    char what[100];
    snprintf(what, sizeof what, "layernorm rows %lld len %lld batch %u%s",
             (long long)rows, (long long)len, nb, stats ? " stats" : "");
    agree(&mm, &s, 1, nb, bufs, 4, what);
    for (int i = 0; i < 4; i++) {
      free(bufs[i]);
    }
    pe__step_free(&s);
  }
}

/* The fused self-attention step: sequence lengths not a multiple of the
 * four query rows a block takes, heads, head widths across the vector
 * widths, with and without the output projection, a causal additive mask
 * (one for all heads or one per head) and Where-style replacements; then
 * unmasked heads 8 and 16 wide. */
static void test_attention(void) {
  for (int trial = 0; trial < 260; trial++) {
    /* the last 60: no mask, head widths of 8 and 16 (the vector kernels'
     * transposed heads and their register transposes) */
    const int wide = trial >= 200;
    int64_t L = rnd(1, 72), H = rnd(1, 4);
    int64_t D = wide ? 8 * rnd(1, 2) : rnd(1, 20), E = H * D;
    uint32_t nb = (uint32_t)rnd(1, 3);
    int mask = wide ? 0 : (int)rnd(0, 2), repl = wide ? 0 : (int)rnd(0, 1);
    pe__step_t s;
    memset(&s, 0, sizeof s);
    s.kind = PE__K_ATTENTION;
    pe__attn_t *at = &s.ext.attn;
    at->L = L;
    at->E = E;
    at->H = H;
    at->D = D;
    at->mask_h = mask == 2;
    at->scale = 1.0f / sqrtf((float)D) * (rnd(0, 1) ? 1.0f : 0.5f);
    at->has_out = (int)rnd(0, 1);
    float sc = 1.0f / sqrtf((float)E);
    s.w = rnd_buf(3 * E * E, sc);
    s.bias = rnd_buf(3 * E, 0.5f);
    if (at->has_out) {
      s.w2 = rnd_buf(E * E, sc);
      s.bias2 = rnd_buf(E, 0.5f);
    }
    int64_t nm = (mask == 2 ? H : 1) * L * L;
    if (mask) {
      s.ext.mask = malloc((size_t)nm * sizeof(float));
      for (int64_t i = 0; i < nm; i++) {
        int64_t q = (i / L) % L, kk = i % L;
        s.ext.mask[i] = kk > q ? -INFINITY : rndf(1.0f);
      }
    }
    if (repl) {
      s.ext.repl = malloc((size_t)nm * sizeof(float));
      for (int64_t i = 0; i < nm; i++) {
        s.ext.repl[i] = i % L != 0 && rnd(0, 3) == 0 ? -1e4f : NAN;
      }
    }
    PE_CHECK(pe__step_pack(&s) == PE_OK);
    char what[140];
    snprintf(what, sizeof what,
             "attention L %lld H %lld D %lld out %d mask %d repl %d batch %u",
             (long long)L, (long long)H, (long long)D, at->has_out, mask, repl,
             nb);
    agree1(&s, L * E, L * E, nb, 1.0f, what);
  }
}

int main(void) {
  if (pe__kernels_avx2_usable()) {
    tables[n_tables++] = &pe__kernels_avx2;
  }
  if (pe__kernels_avx512_usable()) {
    tables[n_tables++] = &pe__kernels_avx512;
  }
  printf("test_kernels: generic against");
  for (int t = 0; t < n_tables; t++) {
    printf(" %s", tables[t]->name);
  }
  printf("%s\n", n_tables ? "" : " nothing (no vector kernels here)");
  test_conv1d();
  test_conv1d_flat();
  test_conv1d_lanes();
  test_conv1d_winograd();
  test_conv1d_winograd_1d();
  test_dense();
  test_conv2d();
  test_conv2d_large();
  test_rnn();
  test_act_affine();
  test_act_all();
  test_act_small();
  test_matmul();
  test_layernorm();
  test_attention();
  printf("test_kernels: %lld cases, %lld output elements compared: %s\n",
         (long long)n_cases, (long long)n_compared,
         pe_test_failures ? "FAILED" : "ok");
  return pe_test_failures ? 1 : 0;
}
