/* Conv1d with 4 taps by Winograd's minimal filtering, F(3, 4): three
 * outputs of a 4-tap correlation from the element-wise product of two
 * 6-point transforms (Lavin and Gray, "Fast Algorithms for Convolutional
 * Neural Networks", 2015; interpolation points 0, 1, -1, 2, -2 and
 * infinity). Over cin input and cout output channels that is 6 products of
 * a [cout x cin] matrix by the transformed input instead of 12, half the
 * multiply-adds of the direct kernel; the transforms are O(cin + cout) per
 * output position.
 *
 * The convolution is taken as rows: a dilation d over a window of H * d
 * floats is H rows of d columns, each tap one row further (the (4, 1)
 * convolutions of a 2-D model run this way over their flattened H * W
 * axis, ops_conv2d.c). Rows of at least 8 columns only: the transforms run
 * along the columns, a vector at a time. A tile is three output rows;
 * tiles are taken a chunk at a time (about 100 to 250 positions) so that
 * the transformed input and products stay in L1 and L2. The 6 products of
 * a chunk are one grouped 1x1 convolution (6 groups) run by the table's own
 * Conv1d kernel, so each instruction set brings its register blocking; the
 * input transform writes straight into that kernel's phase rows
 * (PE__P_ROWS_READY), the output transform reads its products.
 *
 * Rounding: the transforms add a few float roundings per output (about 7x
 * those of the direct sum over cin x 4 products on random data, a few
 * 1e-6 at outputs of order 1). The generic table keeps the direct kernel:
 * it is the reference the vector tables are compared with. */
#include <stdlib.h>
#include <string.h>

#include "model/model_impl.h"
#include "pe/error.h"

#define PE__WG_A 6 /* points of the transforms */
#define PE__WG_M 3 /* output rows per tile */

/* Tiles per chunk for rows of w columns: at least 96 positions, up to 16
 * more tiles, the count whose positions fill the kernels' 32-step blocks
 * best; at most `tiles`. */
static int64_t pe__wg_chunk(int64_t w, int64_t tiles) {
  int64_t c0 = (96 + w - 1) / w, best = c0, waste = -1;
  for (int64_t c = c0; c < c0 + 16; c++) {
    int64_t np = c * w, pad = (np + 31) / 32 * 32 - np;
    /* pad / np compared as products, no division */
    if (waste < 0 || pad * best * w < waste * np) {
      best = c;
      waste = pad;
    }
  }
  return best < tiles ? best : tiles;
}

/* Shape of an eligible step: rows of d columns, 4 taps a row apart, pads
 * of whole rows (a 'same' (4, 1) convolution: rows of zeros above and
 * below). */
static int pe__wg_fits(const pe__step_t *s) {
  const int64_t cin = s->p[0], cout = s->p[1], d = s->p[5], win = s->p[8];
  const int64_t pl = s->p[6], pr = s->p[7];
  return s->kind == PE__K_CONV1D && s->p[2] == 1 && s->p[3] == 4 &&
         s->p[4] == 1 && d >= 8 && pl >= 0 && pr >= 0 && pl % d == 0 &&
         pr % d == 0 && win % d == 0 && (win + pl + pr) / d >= 3 + PE__WG_M &&
         cin >= 8 && cout >= 8 && s->p[9] == win + pl + pr - 3 * d &&
         s->w != NULL && s->bias != NULL;
}

int pe__conv1d_wg_pack(pe__step_t *s) {
  if (s->wg != NULL || !pe__wg_fits(s)) {
    return PE_OK;
  }
  const int64_t cin = s->p[0], cout = s->p[1];
  pe__step_t *g = calloc(1, sizeof *g);
  if (g == NULL) {
    return PE_ENOMEM;
  }
  g->kind = PE__K_CONV1D;
  g->act = PE__ACT_NONE;
  g->out[0] = 0;
  g->out[1] = g->out[2] = -1;
  /* 6 groups of cin -> cout, 1 tap; the window is set per chunk */
  int64_t p[10] = {
      PE__WG_A * cin, PE__WG_A * cout, PE__WG_A, 1, 1, 1, 0, 0, 0, 0};
  memcpy(g->p, p, sizeof p);
  g->p[PE__P_ROWS_READY] = 1; /* pe__conv1d_wg writes them */
  g->w = malloc((size_t)(PE__WG_A * cout * cin) * sizeof(float));
  g->bias = calloc((size_t)(PE__WG_A * cout), sizeof(float));
  if (g->w == NULL || g->bias == NULL) {
    pe__step_free(g);
    free(g);
    return PE_ENOMEM;
  }
  /* U = G w per (co, ci): the rows of G for points 0, 1, -1, 2, -2, inf */
  for (int64_t co = 0; co < cout; co++) {
    for (int64_t ci = 0; ci < cin; ci++) {
      const float *w = s->w + (co * cin + ci) * 4;
      const double w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
      const double u[PE__WG_A] = {
          w0 / 4.0,
          -(w0 + w1 + w2 + w3) / 6.0,
          (-w0 + w1 - w2 + w3) / 6.0,
          w0 / 24.0 + w1 / 12.0 + w2 / 6.0 + w3 / 3.0,
          w0 / 24.0 - w1 / 12.0 + w2 / 6.0 - w3 / 3.0,
          w3,
      };
      for (int x = 0; x < PE__WG_A; x++) {
        g->w[((int64_t)x * cout + co) * cin + ci] = (float)u[x];
      }
    }
  }
  s->wg = g;
  return PE_OK;
}

/* Floats of one chunk's buffers: the products (6 cout rows), the grouped
 * kernel's scratch, whose phase rows are the transformed input (6 cin rows
 * of pe__conv_lr(np, 1) floats), then a zero row; each 16-aligned. */
static int64_t pe__wg_layout(const pe__step_t *s, int64_t *np_out,
                             int64_t *off_k, int64_t *off_z) {
  const int64_t cout = s->p[1], d = s->p[5];
  const int64_t tiles = (s->p[9] / d + PE__WG_M - 1) / PE__WG_M;
  const int64_t np = pe__wg_chunk(d, tiles) * d;
  pe__step_t g = *s->wg;
  g.p[8] = g.p[9] = np;
  const int64_t mm = (PE__WG_A * cout * np + 15) / 16 * 16;
  const int64_t k =
      (pe__step_scratch(&g, 1, &pe__kernels_generic) + 15) / 16 * 16;
  if (np_out != NULL) {
    *np_out = np;
    *off_k = mm;
    *off_z = mm + k;
  }
  return mm + k + (d + 15) / 16 * 16;
}

int64_t pe__conv1d_wg_scratch(const pe__step_t *s) {
  return pe__wg_layout(s, NULL, NULL, NULL);
}

/* The transforms run only with the vector tables (AVX2 at least), so they
 * are written for AVX2: 8 columns a vector (d >= 8), the last d % 8 as an
 * overlapping last vector. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define PE__WG_T __attribute__((target("avx2,fma")))
#define PE__V __m256
#define PE__LD(p) _mm256_loadu_ps(p)
#define PE__ST(p, v) _mm256_storeu_ps(p, v)
#define PE__ADD(a, b) _mm256_add_ps(a, b)
#define PE__SUB(a, b) _mm256_sub_ps(a, b)
#define PE__MUL(a, b) _mm256_mul_ps(a, b)
#define PE__SET(f) _mm256_set1_ps(f)
/* LeakyRelu as the AVX2 kernels do it: x >= 0 ? x : x alpha */
#define PE__LEAKY(v, a)                                                        \
  _mm256_blendv_ps(_mm256_mul_ps(v, a), v,                                     \
                   _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ))
#define PE__VW 8
#define PE__WG_TAIL 1
#else
#define PE__WG_T
#define PE__V float
#define PE__LD(p) (*(p))
#define PE__ST(p, v) (*(p) = (v))
#define PE__ADD(a, b) ((a) + (b))
#define PE__SUB(a, b) ((a) - (b))
#define PE__MUL(a, b) ((a) * (b))
#define PE__SET(f) (f)
#define PE__LEAKY(v, a) ((v) >= 0.0f ? (v) : (v) * (a))
#define PE__VW 1
#define PE__WG_TAIL 0
#endif

/* Input transform of columns [c, c + w) of one tile: rows r[0..5] to the
 * six rows of o, vstride apart; B^T d with the same float operations in
 * the vector and the scalar form. */
#define PE__WG_IN(V, LD, ST, ADD, SUB, MUL, SET)                               \
  do {                                                                         \
    V d0 = LD(r[0] + c), d1 = LD(r[1] + c), d2 = LD(r[2] + c);                 \
    V d3 = LD(r[3] + c), d4 = LD(r[4] + c), d5 = LD(r[5] + c);                 \
    V four = SET(4.0f), five = SET(5.0f), two = SET(2.0f);                     \
    ST(o + c, ADD(SUB(MUL(four, d0), MUL(five, d2)), d4));                     \
    ST(o + vs + c, SUB(ADD(d3, d4), MUL(four, ADD(d1, d2))));                  \
    ST(o + 2 * vs + c, SUB(ADD(MUL(four, SUB(d1, d2)), d4), d3));              \
    ST(o + 3 * vs + c, SUB(ADD(MUL(two, SUB(d3, d1)), d4), d2));               \
    ST(o + 4 * vs + c, SUB(ADD(MUL(two, SUB(d1, d3)), d4), d2));               \
    ST(o + 5 * vs + c, ADD(SUB(MUL(four, d1), MUL(five, d3)), d5));            \
  } while (0)

#define PE__S_LD(p) (*(p))
#define PE__S_ST(p, v) (*(p) = (v))
#define PE__S_ADD(a, b) ((a) + (b))
#define PE__S_SUB(a, b) ((a) - (b))
#define PE__S_MUL(a, b) ((a) * (b))
#define PE__S_SET(f) (f)

/* The transformed input of tiles q0 .. q0 + nt of one channel: six rows of
 * nt * d floats, V[x][ci] at v + (x * cin + ci) * lr (vs = cin * lr apart).
 * Row r of the padded window is input row r - pt; the rows outside the
 * input (the padding, and past the window) read the zero row z. */
PE__WG_T static void pe__wg_in(const float *xc, int64_t hin, int64_t pt,
                               int64_t d, int64_t q0, int64_t nt,
                               const float *z, float *v, int64_t vs) {
  for (int64_t q = 0; q < nt; q++) {
    const float *r[PE__WG_A];
    for (int j = 0; j < PE__WG_A; j++) {
      int64_t row = (q0 + q) * PE__WG_M + j;
      r[j] = row >= pt && row - pt < hin ? xc + (row - pt) * d : z;
    }
    float *o = v + q * d;
    int64_t c = 0;
    for (; c + PE__VW <= d; c += PE__VW) {
      PE__WG_IN(PE__V, PE__LD, PE__ST, PE__ADD, PE__SUB, PE__MUL, PE__SET);
    }
#if PE__WG_TAIL
    if (c < d) {
      /* the last vector again, overlapping: the same values rewritten */
      c = d - PE__VW;
      PE__WG_IN(PE__V, PE__LD, PE__ST, PE__ADD, PE__SUB, PE__MUL, PE__SET);
    }
#else
    for (; c < d; c++) {
      PE__WG_IN(float, PE__S_LD, PE__S_ST, PE__S_ADD, PE__S_SUB, PE__S_MUL,
                PE__S_SET);
    }
#endif
  }
}

/* Output transform of columns [c, c + w): A^T M plus the bias, rows
 * y0, y1, y2 (the last ones only when the tile has them); LeakyRelu on
 * them when leaky. */
#define PE__WG_OUT(V, LD, ST, ADD, SUB, MUL, SET, LEAKY)                       \
  do {                                                                         \
    V a0 = LD(m0 + c), a1 = LD(m1 + c), a2 = LD(m2 + c);                       \
    V a3 = LD(m3 + c), a4 = LD(m4 + c), a5 = LD(m5 + c), bv = SET(b);          \
    V s12 = ADD(a1, a2), s34 = ADD(a3, a4);                                    \
    V t12 = SUB(a1, a2), t34 = SUB(a3, a4), av = SET(alpha);                   \
    V o0 = ADD(bv, ADD(ADD(a0, s12), s34));                                    \
    V o1 = ADD(bv, ADD(t12, MUL(SET(2.0f), t34)));                             \
    V o2 = ADD(bv, ADD(ADD(s12, MUL(SET(4.0f), s34)), a5));                    \
    if (leaky) {                                                               \
      o0 = LEAKY(o0, av);                                                      \
      o1 = LEAKY(o1, av);                                                      \
      o2 = LEAKY(o2, av);                                                      \
    }                                                                          \
    ST(y0 + c, o0);                                                            \
    if (rows > 1) {                                                            \
      ST(y1 + c, o1);                                                          \
    }                                                                          \
    if (rows > 2) {                                                            \
      ST(y2 + c, o2);                                                          \
    }                                                                          \
  } while (0)

#define PE__S_LEAKY(v, a) ((v) >= 0.0f ? (v) : (v) * (a))

/* The outputs of tiles q0 .. q0 + nt of one output channel from its six
 * product rows (M[x] at mc + x * ms), plus the bias; rows from hout on are
 * not written. */
PE__WG_T static void pe__wg_out(const float *mc, int64_t ms, int64_t hout,
                                int64_t d, int64_t q0, int64_t nt, float b,
                                int leaky, float alpha, float *yc) {
  for (int64_t q = 0; q < nt; q++) {
    const int64_t row = (q0 + q) * PE__WG_M;
    const float *m0 = mc + q * d, *m1 = m0 + ms, *m2 = m1 + ms;
    const float *m3 = m2 + ms, *m4 = m3 + ms, *m5 = m4 + ms;
    float *y0 = yc + row * d, *y1 = y0 + d, *y2 = y1 + d;
    const int rows = hout - row < PE__WG_M ? (int)(hout - row) : PE__WG_M;
    int64_t c = 0;
    for (; c + PE__VW <= d; c += PE__VW) {
      PE__WG_OUT(PE__V, PE__LD, PE__ST, PE__ADD, PE__SUB, PE__MUL, PE__SET,
                 PE__LEAKY);
    }
#if PE__WG_TAIL
    if (c < d) {
      /* the last vector again, overlapping: the same values rewritten */
      c = d - PE__VW;
      PE__WG_OUT(PE__V, PE__LD, PE__ST, PE__ADD, PE__SUB, PE__MUL, PE__SET,
                 PE__LEAKY);
    }
#else
    for (; c < d; c++) {
      PE__WG_OUT(float, PE__S_LD, PE__S_ST, PE__S_ADD, PE__S_SUB, PE__S_MUL,
                 PE__S_SET, PE__S_LEAKY);
    }
#endif
  }
}

void pe__conv1d_wg(const pe__step_t *s, const pe__kernels_t *kn, const float *x,
                   float *y, float *scratch) {
  const int64_t cin = s->p[0], cout = s->p[1], d = s->p[5], win = s->p[8];
  const int64_t wout = s->p[9], hin = win / d, hout = wout / d;
  const int64_t pt = s->p[6] / d; /* rows of zeros above the window */
  const int64_t tiles = (hout + PE__WG_M - 1) / PE__WG_M;
  int64_t np, off_k, off_z;
  pe__wg_layout(s, &np, &off_k, &off_z);
  const int64_t ct = np / d;
  float *mb = scratch, *ks = scratch + off_k, *z = scratch + off_z;
  memset(z, 0, (size_t)d * sizeof(float));
  pe__step_t g = *s->wg;
  /* LeakyRelu in the output transform, the others after it */
  const int leaky = s->act == PE__ACT_LEAKY;
  const float alpha = s->alpha;
  for (int64_t q0 = 0; q0 < tiles; q0 += ct) {
    const int64_t nt = tiles - q0 < ct ? tiles - q0 : ct, n = nt * d;
    /* the grouped kernel's phase rows, pe__conv_lr(n, 1) floats apart; its
     * 32-step blocks read up to the next multiple of 32 */
    const int64_t lr = pe__conv_lr(n, 1), tail = (n + 31) / 32 * 32 - n;
    for (int64_t ci = 0; ci < cin; ci++) {
      pe__wg_in(x + ci * win, hin, pt, d, q0, nt, z, ks + ci * lr, cin * lr);
    }
    for (int64_t r = 0; r < PE__WG_A * cin && tail > 0; r++) {
      memset(ks + r * lr + n, 0, (size_t)tail * sizeof(float));
    }
    g.p[8] = g.p[9] = n;
    kn->conv1d(&g, NULL, mb, ks);
    for (int64_t co = 0; co < cout; co++) {
      pe__wg_out(mb + co * n, cout * n, hout, d, q0, nt, s->bias[co], leaky,
                 alpha, y + co * wout);
    }
  }
  if (s->act != PE__ACT_NONE && !leaky) {
    kn->act(y, cout * wout, s->act, s->alpha);
  }
}
