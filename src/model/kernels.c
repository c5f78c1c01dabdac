/* Step kernels, portable C, and the dispatch through the kernel table.
 *
 * Hot path: nothing here allocates, locks or calls the system. Each kernel
 * runs n samples; a tensor's sample b starts at ptr[t] + b * stride(t),
 * where stride is 0 for a constant (one copy shared by every sample). The
 * kernels that carry the FLOPs come from the table of the instruction set
 * chosen at load (pe__kernels_t: this file's pe__kernels_generic,
 * kernels_avx2.c, kernels_avx512.c). Math
 * functions come from libm (expf, tanhf, erff) so results stay within a few
 * ulp of ONNX Runtime's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_impl.h"
#include "pe/error.h"

/* Floats between two windows of a tensor: 0 for a constant. */
/* The logistic function, libm exp. */
static float pe__sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Portable activations in place over n floats. */
void pe__act_apply(float *y, int64_t n, int act, float alpha) {
  switch (act) {
  case PE__ACT_NONE:
    return;
  case PE__ACT_RELU:
    for (int64_t i = 0; i < n; i++) {
      y[i] = y[i] > 0.0f ? y[i] : 0.0f;
    }
    return;
  case PE__ACT_LEAKY:
    for (int64_t i = 0; i < n; i++) {
      y[i] = y[i] >= 0.0f ? y[i] : y[i] * alpha;
    }
    return;
  case PE__ACT_SIGMOID:
    for (int64_t i = 0; i < n; i++) {
      y[i] = pe__sigmoid(y[i]);
    }
    return;
  case PE__ACT_TANH:
    for (int64_t i = 0; i < n; i++) {
      y[i] = tanhf(y[i]);
    }
    return;
  case PE__ACT_ERF:
    for (int64_t i = 0; i < n; i++) {
      y[i] = erff(y[i]);
    }
    return;
  case PE__ACT_SQRT:
    for (int64_t i = 0; i < n; i++) {
      y[i] = sqrtf(y[i]);
    }
    return;
  case PE__ACT_GELU:
    for (int64_t i = 0; i < n; i++) {
      y[i] = 0.5f * y[i] * (1.0f + erff(y[i] * 0.70710678118654752f));
    }
    return;
  case PE__ACT_GELU_TANH:
    for (int64_t i = 0; i < n; i++) {
      float x = y[i];
      y[i] = 0.5f * x *
             (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    }
    return;
  case PE__ACT_EXP:
    for (int64_t i = 0; i < n; i++) {
      y[i] = expf(y[i]);
    }
    return;
  case PE__ACT_NEG:
    for (int64_t i = 0; i < n; i++) {
      y[i] = -y[i];
    }
    return;
  case PE__ACT_ABS:
    for (int64_t i = 0; i < n; i++) {
      y[i] = fabsf(y[i]);
    }
    return;
  case PE__ACT_LOG:
    for (int64_t i = 0; i < n; i++) {
      y[i] = logf(y[i]);
    }
    return;
  case PE__ACT_RECIP:
    for (int64_t i = 0; i < n; i++) {
      y[i] = 1.0f / y[i];
    }
    return;
  default:
    return;
  }
}

/* ---- dense ------------------------------------------------------------------
 */
/* n zeroed floats on a 64-byte boundary, so that the vector kernels' 64-byte
 * loads of packed weights never straddle two cache lines (which halves
 * their throughput); free() releases it. */
static float *pe__zalloc64(int64_t n) {
  size_t bytes = ((size_t)(n > 0 ? n : 1) * sizeof(float) + 63) / 64 * 64;
  float *p = aligned_alloc(64, bytes);
  if (p != NULL) {
    memset(p, 0, bytes);
  }
  return p;
}

int pe__dense_pack(pe__dense_t *d, const float *w) {
  int64_t K = d->K, M = d->M;
  d->dot = M <= 4;
  if (d->dot) {
    d->wp = malloc((size_t)(M * K > 0 ? M * K : 1) * sizeof(float));
    if (d->wp == NULL) {
      return PE_ENOMEM;
    }
    if (M * K > 0) {
      memcpy(d->wp, w, (size_t)(M * K) * sizeof(float));
    }
    return PE_OK;
  }
  int64_t P = (M + 15) / 16;
  d->wp = pe__zalloc64(P * K * 16);
  d->bp = pe__zalloc64(P * 16);
  if (d->wp == NULL || d->bp == NULL) {
    free(d->wp);
    free(d->bp);
    d->wp = NULL;
    d->bp = NULL;
    return PE_ENOMEM;
  }
  for (int64_t m = 0; m < M && d->bias; m++) {
    d->bp[m] = d->bias[m];
  }
  for (int64_t m = 0; m < M; m++) {
    for (int64_t k = 0; k < K; k++) {
      d->wp[((m / 16) * K + k) * 16 + m % 16] = w[m * K + k];
    }
  }
  return PE_OK;
}

/* Portable dense layer over `rows` rows, double accumulation. */
static void pe__dense_generic(const pe__dense_t *d, const float *x, float *y,
                              int64_t rows, int act, float alpha) {
  int64_t K = d->K, M = d->M;
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * K;
    float *yr = y + r * M;
    if (d->dot) {
      for (int64_t m = 0; m < M; m++) {
        const float *w = d->wp + m * K;
        /* the portable kernels sum in double: scalar code pays nothing for
         * it, and the result stays within an ulp of the exact sum */
        double acc = d->bias ? d->bias[m] : 0.0;
        for (int64_t k = 0; k < K; k++) {
          acc += (double)xr[k] * (double)w[k];
        }
        yr[m] = (float)acc;
      }
    } else {
      for (int64_t p = 0; p * 16 < M; p++) {
        double acc[16];
        int64_t w = M - p * 16 < 16 ? M - p * 16 : 16;
        for (int j = 0; j < 16; j++) {
          acc[j] = d->bias && j < w ? d->bias[p * 16 + j] : 0.0;
        }
        const float *wp = d->wp + p * K * 16;
        for (int64_t k = 0; k < K; k++) {
          double xv = xr[k];
          for (int j = 0; j < 16; j++) {
            acc[j] += xv * (double)wp[k * 16 + j];
          }
        }
        for (int64_t j = 0; j < w; j++) {
          yr[p * 16 + j] = (float)acc[j];
        }
      }
    }
    pe__act_apply(yr, M, act, alpha);
  }
}

/* ---- conv1d ---------------------------------------------------------------
 */
static void pe__conv1d_generic(const pe__step_t *s, const float *x, float *y,
                               float *scratch) {
  (void)scratch;
  int64_t cin = s->p[0], cout = s->p[1], group = s->p[2], k = s->p[3];
  int64_t stride = s->p[4], dil = s->p[5], pl = s->p[6], win = s->p[8];
  int64_t wout = s->p[9];
  int64_t cin_g = cin / group, cout_g = cout / group;
  for (int64_t co = 0; co < cout; co++) {
    int64_t g = co / cout_g;
    const float *w = s->w + co * cin_g * k;
    float *yr = y + co * wout;
    for (int64_t t = 0; t < wout; t++) {
      double acc = s->bias[co];
      for (int64_t ci = 0; ci < cin_g; ci++) {
        const float *xr = x + (g * cin_g + ci) * win;
        for (int64_t kk = 0; kk < k; kk++) {
          int64_t pos = t * stride + kk * dil - pl;
          if (pos >= 0 && pos < win) {
            acc += (double)w[ci * k + kk] * (double)xr[pos];
          }
        }
      }
      yr[t] = (float)acc;
    }
    pe__act_apply(yr, wout, s->act, s->alpha);
    for (int64_t t = 0; s->es != NULL && t < wout; t++) {
      const float v = yr[t] * s->es[co];
      yr[t] = v + s->et[co];
    }
  }
}

/* y = x * s[c] + t[c] over outer x C x inner: two roundings, as the Mul
 * and Add it replaces. */
static void pe__affine_generic(const pe__step_t *s, const float *x, float *y) {
  for (int64_t o = 0; o < s->p[0]; o++) {
    for (int64_t c = 0; c < s->p[1]; c++) {
      int64_t base = (o * s->p[1] + c) * s->p[2];
      for (int64_t i = 0; i < s->p[2]; i++) {
        float v = x[base + i] * s->w[c];
        y[base + i] = v + s->bias[c];
      }
    }
  }
}

void pe__split2_rest(const float *x, int64_t n, int64_t j, float *even,
                     float *odd, int64_t lr) {
  const int64_t ne = (n + 1) / 2, no = n / 2;
  for (int64_t i = j; i < ne; i++) {
    even[i] = x[2 * i];
  }
  for (int64_t i = j; i < no; i++) {
    odd[i] = x[2 * i + 1];
  }
  memset(even + ne, 0, (size_t)(lr - ne) * sizeof(float));
  memset(odd + no, 0, (size_t)(lr - no) * sizeof(float));
}

/* The zero-padded input of a Conv1d window split into `stride` phase rows
 * per channel (row r of channel c holds padded[j * stride + r], lr floats
 * each, lr = pe__conv_lr(pl + win + pr, stride): a 32-step block may read
 * past the end), then the offsets of the taps of one group after
 * them: tap kk of its input channel ci reads, from the group's first row,
 * channel ci's phase row (kk * dil) % stride at offset (kk * dil) / stride,
 * entry ci * k + kk (the order of the weights of an output channel). For
 * the vector Conv1d kernels; returns the offsets (pe__conv_taps). */
int64_t *pe__conv1d_phase_rows(const pe__step_t *s, const float *x,
                               float *scratch, int64_t lr, pe__split_fn split) {
  const int64_t cin = s->p[0], k = s->p[3], st = s->p[4], dil = s->p[5];
  const int64_t pl = s->p[6], win = s->p[8];
  for (int64_t ci = 0; ci < cin && st == 1; ci++) {
    float *row = scratch + ci * lr;
    memset(row, 0, (size_t)pl * sizeof(float));
    memcpy(row + pl, x + ci * win, (size_t)win * sizeof(float));
    memset(row + pl + win, 0, (size_t)(lr - pl - win) * sizeof(float));
  }
  for (int64_t ci = 0; ci < cin && st > 1 && pl == 0; ci++) {
    split(x + ci * win, win, st, scratch + ci * st * lr, lr);
  }
  for (int64_t ci = 0; ci < cin && st > 1 && pl > 0; ci++) {
    const float *xr = x + ci * win;
    for (int64_t r = 0; r < st; r++) {
      float *row = scratch + (ci * st + r) * lr;
      /* j reads padded position j st + r, input position j st + r - pl:
       * inside for j in [j0, j1) */
      const int64_t j0 = pl - r > 0 ? (pl - r + st - 1) / st : 0;
      int64_t j1 = win - 1 + pl - r >= 0 ? (win - 1 + pl - r) / st + 1 : 0;
      j1 = j1 > lr ? lr : j1;
      const int64_t a = j0 < j1 ? j0 : j1;
      memset(row, 0, (size_t)a * sizeof(float));
      for (int64_t j = a; j < j1; j++) {
        row[j] = xr[j * st + r - pl];
      }
      memset(row + j1, 0, (size_t)(lr - j1) * sizeof(float));
    }
  }
  int64_t *tap = pe__conv_taps(scratch, cin * st * lr);
  const int64_t cin_g = cin / s->p[2];
  /* channel ci's taps are channel 0's plus its st rows: k divisions
   * (none at stride 1), not one per (channel, tap) pair */
  for (int64_t kk = 0; kk < k; kk++) {
    const int64_t off = kk * dil;
    tap[kk] = st == 1 ? off : off % st * lr + off / st;
  }
  for (int64_t ci = 1; ci < cin_g; ci++) {
    for (int64_t kk = 0; kk < k; kk++) {
      tap[ci * k + kk] = tap[kk] + ci * st * lr;
    }
  }
  return tap;
}

/* ---- the others
 * -------------------------------------------------------------- */
static float pe__binop(int op, float a, float b) {
  switch (op) {
  case PE__OP_ADD:
    return a + b;
  case PE__OP_SUB:
    return a - b;
  case PE__OP_MUL:
    return a * b;
  case PE__OP_DIV:
    return a / b;
  case PE__OP_MIN:
    return a < b || a != a ? a : b;
  case PE__OP_MAX:
    return a > b || a != a ? a : b;
  default:
    return b == 2.0f ? a * a : powf(a, b);
  }
}

/* One window of a broadcasting binary op; fast paths for equal shapes
 * and a scalar operand. */
static void pe__binary(const pe__step_t *s, const float *a, const float *b,
                       float *y) {
  int64_t n = s->p[0];
  int op = s->binop;
  if (s->p[1] == 1) {
    /* eight at a time, every load before the stores, so that the compiler
     * vectorises the block even where y may be a or b (in place) */
    int64_t i = 0;
    switch (op) {
    case PE__OP_ADD:
      for (; i + 8 <= n; i += 8) {
        float t[8];
        for (int k = 0; k < 8; k++)
          t[k] = a[i + k] + b[i + k];
        memcpy(y + i, t, sizeof t);
      }
      for (; i < n; i++)
        y[i] = a[i] + b[i];
      return;
    case PE__OP_MUL:
      for (; i + 8 <= n; i += 8) {
        float t[8];
        for (int k = 0; k < 8; k++)
          t[k] = a[i + k] * b[i + k];
        memcpy(y + i, t, sizeof t);
      }
      for (; i < n; i++)
        y[i] = a[i] * b[i];
      return;
    default:
      for (; i < n; i++)
        y[i] = pe__binop(op, a[i], b[i]);
      return;
    }
  }
  if (s->p[1] == 2) {
    float bv = b[0];
    for (int64_t i = 0; i < n; i++)
      y[i] = pe__binop(op, a[i], bv);
    return;
  }
  if (s->p[1] == 3) {
    float av = a[0];
    for (int64_t i = 0; i < n; i++)
      y[i] = pe__binop(op, av, b[i]);
    return;
  }
  int r = (int)s->rank;
  int64_t idx[PE__MAX_RANK] = {0};
  int64_t off[2] = {0, 0};
  int64_t last = r > 0 ? s->dims[r - 1] : 1;
  int64_t sa = r > 0 ? s->st[0][r - 1] : 0, sb = r > 0 ? s->st[1][r - 1] : 0;
  for (int64_t i = 0; i < n; i += last) {
    for (int64_t j = 0; j < last; j++) {
      y[i + j] = pe__binop(op, a[off[0] + j * sa], b[off[1] + j * sb]);
    }
    pe__index_next(r - 2, s->dims, idx, 2, s->st, off);
  }
}

/* One window of Softmax / LogSoftmax over outer x L x inner. */
static void pe__softmax(const pe__step_t *s, const float *x, float *y) {
  int64_t outer = s->p[0], L = s->p[1], inner = s->p[2];
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t i = 0; i < inner; i++) {
      const float *xr = x + o * L * inner + i;
      float *yr = y + o * L * inner + i;
      float mx = xr[0];
      for (int64_t l = 1; l < L; l++) {
        mx = xr[l * inner] > mx ? xr[l * inner] : mx;
      }
      float sum = 0.0f;
      for (int64_t l = 0; l < L; l++) {
        float e = expf(xr[l * inner] - mx);
        sum += e;
        if (!s->act) {
          yr[l * inner] = e;
        }
      }
      if (s->act) {
        float ls = logf(sum);
        for (int64_t l = 0; l < L; l++) {
          yr[l * inner] = xr[l * inner] - mx - ls;
        }
      } else {
        float inv = 1.0f / sum;
        for (int64_t l = 0; l < L; l++) {
          yr[l * inner] *= inv;
        }
      }
    }
  }
}

/* One window of an N-d strided copy (Transpose, Slice). */
static void pe__strided(const pe__step_t *s, const float *x, float *y) {
  int r = (int)s->rank;
  int64_t n = s->p[1];
  if (n == 0) {
    return;
  }
  if (r == 0) {
    y[0] = x[s->p[0]];
    return;
  }
  int64_t off = s->p[0];
  int64_t last = s->dims[r - 1], sl = s->st[0][r - 1];
  /* two axes that are not 1 (a 2-D transpose, the [C, W] -> [W, C] in
   * front of a recurrent op): a plain double loop */
  int d0 = -1, big = 0;
  for (int d = 0; d < r - 1; d++) {
    if (s->dims[d] != 1) {
      d0 = d;
      big++;
    }
  }
  if (big == 1 && sl != 1) {
    const int64_t rows = s->dims[d0], s0 = s->st[0][d0];
    for (int64_t i = 0; i < rows; i++) {
      const float *xr = x + off + i * s0;
      float *yr = y + i * last;
      for (int64_t j = 0; j < last; j++) {
        yr[j] = xr[j * sl];
      }
    }
    return;
  }
  int64_t idx[PE__MAX_RANK] = {0};
  for (int64_t i = 0; i < n; i += last) {
    if (sl == 1) {
      memcpy(y + i, x + off, (size_t)last * sizeof(float));
    } else {
      for (int64_t j = 0; j < last; j++) {
        y[i + j] = x[off + j * sl];
      }
    }
    for (int d = r - 2; d >= 0; d--) {
      off += s->st[0][d];
      if (++idx[d] < s->dims[d]) {
        break;
      }
      off -= s->st[0][d] * s->dims[d];
      idx[d] = 0;
    }
  }
}

/* One window of a 1-D max or average pool. */
static void pe__pool1d(const pe__step_t *s, const float *x, float *y) {
  int64_t C = s->p[0], win = s->p[1], wout = s->p[2], k = s->p[3];
  int64_t stride = s->p[4], pl = s->p[5], dil = s->p[6];
  int cip = s->p[7] != 0, is_max = s->p[8] != 0;
  for (int64_t c = 0; c < C; c++) {
    const float *xr = x + c * win;
    for (int64_t t = 0; t < wout; t++) {
      float acc = is_max ? -INFINITY : 0.0f;
      int64_t cnt = 0, cnt_pad = 0;
      for (int64_t kk = 0; kk < k; kk++) {
        int64_t pos = t * stride + kk * dil - pl;
        if (pos >= 0 && pos < win) {
          float v = xr[pos];
          acc = is_max ? (v > acc ? v : acc) : acc + v;
          cnt++;
        }
        if (pos < win + s->p[9]) {
          cnt_pad++; /* inside the padded input, not the ceil_mode overhang */
        }
      }
      if (!is_max) {
        acc /= (float)(cip ? cnt_pad : (cnt ? cnt : 1));
      }
      y[c * wout + t] = acc;
    }
  }
}

/* LSTM with the vector kernels: one fused pass per window through every
 * time step (pe__lstm_seq_*), so batch 1 runs without the per-step calls
 * and buffers of pe__rnn, and h and c of a window never leave L1. The
 * reverse direction runs the kernel on a time-reversed copy of the window;
 * the outputs of one direction of several (p[6] > 1) or of a reversed run
 * go through a [seq][H] buffer to their places in Y ([seq][dirs][H] per
 * window). */
static void pe__lstm_fused(const pe__step_t *s, const pe__exec_t *x) {
  const pe_model_t *m = x->m;
  const int64_t seq = s->p[0], in = s->p[1], H = s->p[2];
  const int rev = s->p[5] != 0;
  const int64_t dirs = s->p[6] > 1 ? s->p[6] : 1, dir = s->p[7];
  /* the input where it lies (in_place: the Transpose's source) */
  const int xid = s->in_place ? s->xin : s->in[0];
  const float *X = x->ptr[xid] + (s->in_place ? s->xoff : 0);
  const int64_t xs = pe__tensor_stride(&m->g.t[xid]);
  const int64_t xt = s->in_place ? s->xt : in, xk = s->in_place ? s->xk : 1;
  const float *st[2] = {NULL, NULL};
  int64_t sts[2] = {0, 0};
  for (int k = 0; k < 2; k++) {
    int id = s->in[1 + k];
    if (id >= 0) {
      st[k] = x->ptr[id] + dir * H;
      sts[k] = pe__tensor_stride(&m->g.t[id]);
    }
  }
  float *out[3];
  for (int k = 0; k < 3; k++) {
    out[k] = s->out[k] >= 0 ? x->ptr[s->out[k]] : NULL;
  }
  const int direct = !rev && dirs == 1;
  float *xr = x->scratch + (PE__LSTM_SCRATCH(seq, H) + 15) / 16 * 16;
  float *yt = xr + (seq * in + 15) / 16 * 16;
  for (int64_t b = 0; b < x->n; b++) {
    const float *h0 = st[0] ? st[0] + b * sts[0] : NULL;
    const float *c0 = st[1] ? st[1] + b * sts[1] : NULL;
    const float *xb = X + b * xs;
    float *y = out[0] ? out[0] + b * seq * dirs * H : NULL;
    float *hn = out[1] ? out[1] + (b * dirs + dir) * H : NULL;
    float *cn = out[2] ? out[2] + (b * dirs + dir) * H : NULL;
    int64_t bt = xt, bk = xk;
    if (rev) {
      for (int64_t t = 0; t < seq; t++) {
        for (int64_t k = 0; k < in; k++) {
          xr[t * in + k] = xb[(seq - 1 - t) * xt + k * xk];
        }
      }
      xb = xr;
      bt = in;
      bk = 1;
    }
    x->k->lstm_seq(s->lw, seq, in, H, xb, bt, bk, h0, c0,
                   direct ? y : (y ? yt : NULL), hn, cn, x->scratch);
    for (int64_t t = 0; !direct && y != NULL && t < seq; t++) {
      memcpy(y + ((rev ? seq - 1 - t : t) * dirs + dir) * H, yt + t * H,
             (size_t)H * sizeof(float));
    }
  }
}

/* LSTM / GRU over the n samples of a tile at once: the input projection of
 * every time step is one dense call (rows = n * seq), then each step does
 * one dense call for R * h over all n hidden states (rows = n) and the gate
 * arithmetic. ONNX gate orders: LSTM i, o, f, c; GRU z, r, h. */
static void pe__rnn(const pe__step_t *s, const pe__exec_t *x) {
  const pe__kernels_t *kn = x->k;
  const pe_model_t *m = x->m;
  int lstm = s->kind == PE__K_LSTM;
  const int64_t seq = s->p[0], in = s->p[1], H = s->p[2];
  if (lstm && kn->lstm_seq != NULL && s->lw != NULL) {
    pe__lstm_fused(s, x);
    return;
  }
  const int lbr = s->p[3] != 0, rev = s->p[5] != 0;
  const int64_t dirs = s->p[6] > 1 ? s->p[6] : 1, dir = s->p[7];
  const int64_t GH = (lstm ? 4 : 3) * H;
  const int64_t n = x->n;
  const pe__tensor_t *tx = &m->g.t[s->in[0]];
  const float *X = x->ptr[s->in[0]];
  const int64_t xs = pe__tensor_stride(tx);
  float *xproj = x->scratch;        /* [n][seq][GH] */
  float *hs = xproj + n * seq * GH; /* [n][H] */
  float *cs = hs + n * H;           /* [n][H] */
  float *rh = cs + n * H;           /* [n][GH] */
  float *rr = rh + n * GH;          /* [n][H] r * h (GRU, lbr 0) */
  float *rr2 = rr + n * H;          /* [n][H] */
  float *gate = rr2 + n * H;        /* [GH] */
  if (xs == seq * in) {
    kn->dense(&s->d, X, xproj, n * seq, PE__ACT_NONE, 0);
  } else {
    for (int64_t b = 0; b < n; b++) {
      kn->dense(&s->d, X + b * xs, xproj + b * seq * GH, seq, PE__ACT_NONE, 0);
    }
  }
  for (int k = 0; k < 2; k++) {
    float *st = k ? cs : hs;
    int id = s->in[1 + k];
    for (int64_t b = 0; b < n; b++) {
      if (id >= 0) {
        memcpy(st + b * H,
               x->ptr[id] + b * pe__tensor_stride(&m->g.t[id]) + dir * H,
               (size_t)H * sizeof(float));
      } else {
        memset(st + b * H, 0, (size_t)H * sizeof(float));
      }
    }
  }
  const int64_t rhw = s->d2.M; /* GH, or 2H for GRU without lbr */
  float *Y = s->out[0] >= 0 ? x->ptr[s->out[0]] : NULL;
  for (int64_t it = 0; it < seq; it++) {
    const int64_t t = rev ? seq - 1 - it : it; /* time index */
    kn->dense(&s->d2, hs, rh, n, PE__ACT_NONE, 0);
    for (int64_t b = 0; b < n; b++) {
      const float *g = xproj + (b * seq + t) * GH;
      const float *r = rh + b * rhw;
      float *h = hs + b * H;
      if (!lstm && lbr && kn->gru_cell != NULL) {
        kn->gru_cell(g, r, s->bias2, h, H);
      } else if (lstm) {
        float *c = cs + b * H;
        for (int64_t j = 0; j < GH; j++) {
          gate[j] = g[j] + r[j];
        }
        kn->act(gate, 3 * H, PE__ACT_SIGMOID, 0);
        kn->act(gate + 3 * H, H, PE__ACT_TANH, 0);
        for (int64_t j = 0; j < H; j++) {
          float fc = gate[2 * H + j] * c[j];
          float ic = gate[j] * gate[3 * H + j];
          c[j] = fc + ic;
          gate[j] = c[j];
        }
        kn->act(gate, H, PE__ACT_TANH, 0);
        for (int64_t j = 0; j < H; j++) {
          h[j] = gate[H + j] * gate[j];
        }
      } else if (lbr) {
        for (int64_t j = 0; j < 2 * H; j++) {
          gate[j] = g[j] + r[j];
        }
        kn->act(gate, 2 * H, PE__ACT_SIGMOID, 0);
        for (int64_t j = 0; j < H; j++) {
          gate[2 * H + j] =
              g[2 * H + j] + gate[H + j] * (r[2 * H + j] + s->bias2[j]);
        }
        kn->act(gate + 2 * H, H, PE__ACT_TANH, 0);
        for (int64_t j = 0; j < H; j++) {
          h[j] = (1.0f - gate[j]) * gate[2 * H + j] + gate[j] * h[j];
        }
      } else {
        for (int64_t j = 0; j < H; j++) {
          gate[j] = g[H + j] + r[H + j];
        }
        kn->act(gate, H, PE__ACT_SIGMOID, 0);
        for (int64_t j = 0; j < H; j++) {
          rr[b * H + j] = gate[j] * h[j];
        }
      }
    }
    if (!lstm && !lbr) {
      kn->dense(&s->d3, rr, rr2, n, PE__ACT_NONE, 0);
      for (int64_t b = 0; b < n; b++) {
        const float *g = xproj + (b * seq + t) * GH;
        const float *r = rh + b * rhw;
        float *h = hs + b * H;
        /* 1 - z as sigmoid(-a), which keeps its relative precision where
         * z saturates near 1; then h + (1 - z)(hc - h) */
        for (int64_t j = 0; j < H; j++) {
          gate[j] = -(g[j] + r[j]);
          gate[H + j] = g[2 * H + j] + rr2[b * H + j];
        }
        kn->act(gate, H, PE__ACT_SIGMOID, 0);
        kn->act(gate + H, H, PE__ACT_TANH, 0);
        for (int64_t j = 0; j < H; j++) {
          h[j] += gate[j] * (gate[H + j] - h[j]);
        }
      }
    }
    if (Y != NULL) {
      for (int64_t b = 0; b < n; b++) {
        memcpy(Y + ((b * seq + t) * dirs + dir) * H, hs + b * H,
               (size_t)H * sizeof(float));
      }
    }
  }
  for (int64_t b = 0; b < n; b++) {
    if (s->out[1] >= 0) {
      memcpy(x->ptr[s->out[1]] + (b * dirs + dir) * H, hs + b * H,
             (size_t)H * sizeof(float));
    }
    if (s->out[2] >= 0) {
      memcpy(x->ptr[s->out[2]] + (b * dirs + dir) * H, cs + b * H,
             (size_t)H * sizeof(float));
    }
  }
}

/* Scratch floats a step needs for a tile of `tile` samples with the kernels
 * of table kn. */
int64_t pe__step_scratch(const pe__step_t *s, int64_t tile,
                         const pe__kernels_t *kn) {
  if (s->kind == PE__K_LSTM && kn->lstm_seq != NULL && s->lw != NULL) {
    /* the kernel's, then a reversed window and Y of one direction */
    return (PE__LSTM_SCRATCH(s->p[0], s->p[2]) + 15) / 16 * 16 +
           (s->p[0] * s->p[1] + 15) / 16 * 16 + s->p[0] * s->p[2] + 16;
  }
  switch (s->kind) {
  case PE__K_CONV2D:
    return pe__conv2d_scratch(s, kn);
  case PE__K_ATTENTION:
    return pe__attention_scratch(s);
  case PE__K_CONV1D: /* phase rows, then the tap offsets of a group (int64,
                        2 floats each, 8-byte aligned: pe__conv_taps) */
  {
    const int64_t direct =
        s->p[0] * s->p[4] * pe__conv_lr(s->p[6] + s->p[8] + s->p[7], s->p[4]) +
        2 * (s->p[0] / s->p[2]) * s->p[3] + 64;
    /* a Winograd form's, or the direct kernel's where the table runs the
     * step directly */
    const int64_t wg = s->wg != NULL ? pe__conv1d_wg_scratch(s) : 0;
    return wg > direct ? wg : direct;
  }
  case PE__K_LSTM:
  case PE__K_GRU: {
    int64_t GH = (s->kind == PE__K_LSTM ? 4 : 3) * s->p[2];
    return tile * (s->p[0] * GH + GH + 4 * s->p[2]) + GH + 64;
  }
  default:
    return 0;
  }
}

/* Packs the canonical weights of a step for the kernels (at load). Returns
 * PE_OK, or PE_ENOMEM with nothing packed (the step as it was before). */
int pe__step_pack(pe__step_t *s) {
  int rc = PE_OK;
  if (s->kind == PE__K_CONV2D && s->w2 == NULL) {
    rc = pe__conv2d_pack(s);
    if (rc != PE_OK) {
      free(s->w2);
      free(s->d.bp);
      s->w2 = NULL;
      s->d.bp = NULL;
    }
  } else if (s->kind == PE__K_ATTENTION && s->d.wp == NULL) {
    const pe__attn_t *at = &s->ext.attn;
    s->d.K = at->E;
    s->d.M = 3 * at->E;
    s->d.bias = s->bias;
    rc = pe__dense_pack(&s->d, s->w);
    if (at->has_out && rc == PE_OK) {
      s->d2.K = at->E;
      s->d2.M = at->E;
      s->d2.bias = s->bias2;
      rc = pe__dense_pack(&s->d2, s->w2);
    }
    if (rc != PE_OK) {
      pe__dense_t *packed[2] = {&s->d, &s->d2};
      for (int i = 0; i < 2; i++) {
        free(packed[i]->wp);
        free(packed[i]->bp);
        packed[i]->wp = NULL;
        packed[i]->bp = NULL;
      }
    }
  } else if (s->kind == PE__K_CONV1D) {
    rc = pe__conv1d_wg_pack(s);
    if (rc == PE_OK) {
      rc = pe__conv1d_cl_pack(s);
    }
  } else if (s->kind == PE__K_DENSE && s->d.wp == NULL) {
    s->d.K = s->p[1];
    s->d.M = s->p[2];
    s->d.bias = s->bias;
    rc = pe__dense_pack(&s->d, s->w);
  } else if ((s->kind == PE__K_LSTM || s->kind == PE__K_GRU) &&
             s->d.wp == NULL) {
    int64_t H = s->p[2], in = s->p[1];
    int64_t GH = (s->kind == PE__K_LSTM ? 4 : 3) * H;
    s->d.K = in;
    s->d.M = GH;
    s->d.bias = s->bias;
    rc = pe__dense_pack(&s->d, s->w);
    int split = s->kind == PE__K_GRU && s->p[3] == 0;
    s->d2.K = H;
    s->d2.M = split ? 2 * H : GH;
    if (rc == PE_OK) {
      rc = pe__dense_pack(&s->d2, s->w2);
    }
    if (split && rc == PE_OK) {
      s->d3.K = H;
      s->d3.M = H;
      rc = pe__dense_pack(&s->d3, s->w2 + 2 * H * H);
    }
    if (s->kind == PE__K_LSTM && rc == PE_OK) {
      rc = pe__lstm_pack(s);
    }
    if (rc != PE_OK) {
      pe__dense_t *packed[3] = {&s->d, &s->d2, &s->d3};
      for (int i = 0; i < 3; i++) {
        free(packed[i]->wp);
        free(packed[i]->bp);
        packed[i]->wp = NULL;
        packed[i]->bp = NULL;
      }
    }
  }
  return rc;
}

int pe__conv1d_cl_pack(pe__step_t *s) {
  const int64_t cin = s->p[0], cout = s->p[1], k = s->p[3];
  if (s->wl != NULL || s->w == NULL || s->p[2] != 1 || k < 2 || s->p[4] != k ||
      s->p[5] != 1 || s->p[6] != 0 || s->p[7] != 0 || cin * k < 16 ||
      s->p[9] * k > s->p[8]) {
    return PE_OK;
  }
  const int64_t nb = (cout + 15) / 16, nj = cin * k;
  s->wl = pe__zalloc64(nb * 16 * (nj + 1));
  if (s->wl == NULL) {
    return PE_ENOMEM;
  }
  for (int64_t co = 0; co < cout; co++) {
    for (int64_t j = 0; j < nj; j++) {
      s->wl[(co / 16 * nj + j) * 16 + co % 16] = s->w[co * nj + j];
    }
    s->wl[nb * nj * 16 + co] = s->bias != NULL ? s->bias[co] : 0.0f;
  }
  return PE_OK;
}

/* Packs W, R and the bias of an LSTM step for the fused kernels (layout in
 * model_impl.h), each gate's rows scaled so that the sums come out in the
 * base-2 form the kernels' activations take: -log2(e) for the sigmoid
 * gates i, o, f, 2 log2(e) for the tanh gate c. At load. */
int pe__lstm_pack(pe__step_t *s) {
  const int64_t in = s->p[1], H = s->p[2], HB = (H + 15) / 16;
  /* blocks of 16 units pad a small H up to 16x: past a few MB of that, the
   * portable path (pe__rnn) runs it instead */
  const int64_t n = HB * (in + H + 1) * 64, canonical = 4 * H * (in + H + 1);
  if (n > 4 * canonical + (1 << 20)) {
    return PE_OK;
  }
  s->lw = pe__zalloc64(n);
  if (s->lw == NULL) {
    return PE_ENOMEM;
  }
  for (int64_t g = 0; g < 4; g++) {
    const float sc = g == 3 ? 2.88539008177792681f : -1.44269504088896341f;
    for (int64_t j = 0; j < H; j++) {
      int64_t jb = j / 16, o = g * 16 + j % 16, row = g * H + j;
      for (int64_t k = 0; k < in; k++) {
        PE__LSTM_W(s->lw, in, H, jb)[k * 64 + o] = s->w[row * in + k] * sc;
      }
      for (int64_t k = 0; k < H; k++) {
        PE__LSTM_R(s->lw, in, H, jb)[k * 64 + o] = s->w2[row * H + k] * sc;
      }
      PE__LSTM_B(s->lw, in, H, jb)[o] = s->bias[row] * sc;
    }
  }
  return PE_OK;
}

/* int64 or bool runtime values (a model input) to float32, n windows of
 * p[0] elements; the source is read at its own element size. */
static void pe__cast_run(const pe__step_t *s, const float *in, float *y,
                         uint32_t n) {
  const int64_t cnt = s->p[0] * (int64_t)n;
  if (s->p[1] == PE__DT_BOOL) {
    const uint8_t *src = (const uint8_t *)in;
    for (int64_t k = 0; k < cnt; k++) {
      y[k] = src[k] ? 1.0f : 0.0f;
    }
    return;
  }
  const char *src = (const char *)in;
  for (int64_t k = 0; k < cnt; k++) {
    int64_t v;
    memcpy(&v, src + k * 8, 8);
    y[k] = (float)v;
  }
}

/* Gather of a constant by runtime int64 indices (in[1], p[3] per window):
 * out[q][k][:] = data[q][idx[k]][:] for outer p[0], axis size p[1], inner
 * p[2]. A negative index counts from the end; one out of range gives a
 * zero row (there is no error path at run time; docs/models.md). */
static void pe__gather_rt(const pe__step_t *s, const pe__exec_t *x,
                          const float *data, float *y, int64_t ys) {
  const int64_t outer = s->p[0], dim = s->p[1], inner = s->p[2], ni = s->p[3];
  const char *idx = (const char *)x->ptr[s->in[1]];
  for (uint32_t b = 0; b < x->n; b++) {
    float *yb = y + b * ys;
    for (int64_t k = 0; k < ni; k++) {
      int64_t v;
      memcpy(&v, idx + ((int64_t)b * ni + k) * 8, 8);
      v = v < 0 ? v + dim : v;
      for (int64_t q = 0; q < outer; q++) {
        float *dst = yb + (q * ni + k) * inner;
        if (v < 0 || v >= dim) {
          memset(dst, 0, (size_t)inner * sizeof(float));
        } else {
          memcpy(dst, data + (q * dim + v) * inner,
                 (size_t)inner * sizeof(float));
        }
      }
    }
  }
}

/* Runs one step over x->n windows. Hot path: no allocation. */
void pe__step_exec(const pe__step_t *s, const pe__exec_t *x) {
  const pe__kernels_t *kn = x->k;
  const pe_model_t *m = x->m;
  const pe__tensor_t *t0 =
      s->n_in > 0 && s->in[0] >= 0 ? &m->g.t[s->in[0]] : NULL;
  const float *in0 = t0 ? x->ptr[s->in[0]] : NULL;
  int64_t xs = t0 ? pe__tensor_stride(t0) : 0;
  uint32_t n = x->n;
  if (s->kind == PE__K_LSTM || s->kind == PE__K_GRU) {
    pe__rnn(s, x);
    return;
  }
  if (s->skip) {
    return; /* an LSTM after it reads its input in place */
  }
  float *y = x->ptr[s->out[0]];
  int64_t ys = m->g.t[s->out[0]].numel;
  /* conv and pooling: items per window (PE__P_ITEMS), each xi and yi apart */
  const int conv = s->kind == PE__K_CONV1D || s->kind == PE__K_CONV2D ||
                   s->kind == PE__K_POOL1D || s->kind == PE__K_POOL2D;
  const int64_t items = conv && s->p[PE__P_ITEMS] > 1 ? s->p[PE__P_ITEMS] : 1;
  const int64_t xi = t0 ? t0->numel / items : 0, yi = ys / items;
  switch (s->kind) {
  case PE__K_CAST:
    pe__cast_run(s, in0, y, n);
    return;
  case PE__K_GATHER_RT:
    pe__gather_rt(s, x, in0, y, ys);
    return;
  case PE__K_COPY:
    for (uint32_t b = 0; b < n; b++) {
      memcpy(y + b * ys, in0 + b * xs, (size_t)ys * sizeof(float));
    }
    return;
  case PE__K_CONV1D:
    if (s->redirect) {
      y = x->ptr[s->yo] + s->yoff;
      ys = m->g.t[s->yo].numel;
    }
    for (uint32_t b = 0; b < n; b++) {
      for (int64_t i = 0; i < items; i++) {
        if (s->wg != NULL && kn->level > 0) {
          pe__conv1d_wg(s, kn, in0 + b * xs + i * xi, y + b * ys + i * yi,
                        x->scratch);
        } else {
          kn->conv1d(s, in0 + b * xs + i * xi, y + b * ys + i * yi, x->scratch);
        }
      }
    }
    return;
  case PE__K_DENSE:
    if (xs == t0->numel) {
      kn->dense(&s->d, in0, y, (int64_t)n * s->p[0], s->act, s->alpha);
    } else {
      for (uint32_t b = 0; b < n; b++) {
        kn->dense(&s->d, in0 + b * xs, y + b * ys, s->p[0], s->act, s->alpha);
      }
    }
    return;
  case PE__K_UNARY:
    for (uint32_t b = 0; b < n; b++) {
      if (y + b * ys != in0 + b * xs) {
        memcpy(y + b * ys, in0 + b * xs, (size_t)ys * sizeof(float));
      }
      kn->act(y + b * ys, ys, s->act, s->alpha);
    }
    return;
  case PE__K_BINARY: {
    const pe__tensor_t *t1 = &m->g.t[s->in[1]];
    const float *in1 = s->w ? s->w : x->ptr[s->in[1]];
    int64_t s1 = s->w ? 0 : pe__tensor_stride(t1);
    for (uint32_t b = 0; b < n; b++) {
      pe__binary(s, in0 + b * xs, in1 + b * s1, y + b * ys);
      kn->act(y + b * ys, ys, s->act, s->alpha);
    }
    return;
  }
  case PE__K_SOFTMAX:
    for (uint32_t b = 0; b < n; b++) {
      pe__softmax(s, in0 + b * xs, y + b * ys);
    }
    return;
  case PE__K_STRIDED:
    for (uint32_t b = 0; b < n; b++) {
      pe__strided(s, in0 + b * xs, y + b * ys);
    }
    return;
  case PE__K_GATHER: {
    int64_t outer = s->p[0], dim = s->p[1], inner = s->p[2], ni = s->n_idx;
    for (uint32_t b = 0; b < n; b++) {
      const float *xb = in0 + b * xs;
      float *yb = y + b * ys;
      for (int64_t q = 0; q < outer; q++) {
        for (int64_t k = 0; k < ni; k++) {
          memcpy(yb + (q * ni + k) * inner, xb + (q * dim + s->idx[k]) * inner,
                 (size_t)inner * sizeof(float));
        }
      }
    }
    return;
  }
  case PE__K_CONCAT:
    for (uint32_t b = 0; b < n; b++) {
      float *yb = y + b * ys;
      for (int64_t q = 0; q < s->p[0]; q++) {
        for (int k = 0; k < s->n_in; k++) {
          const pe__tensor_t *tk = &m->g.t[s->in[k]];
          int64_t chunk = s->st[k][0];
          memcpy(yb, x->ptr[s->in[k]] + b * pe__tensor_stride(tk) + q * chunk,
                 (size_t)chunk * sizeof(float));
          yb += chunk;
        }
      }
    }
    return;
  case PE__K_AFFINE:
    for (uint32_t b = 0; b < n; b++) {
      kn->affine(s, in0 + b * xs, y + b * ys);
      kn->act(y + b * ys, ys, s->act, s->alpha);
    }
    return;
  case PE__K_POOL1D:
    for (uint32_t b = 0; b < n; b++) {
      for (int64_t i = 0; i < items; i++) {
        pe__pool1d(s, in0 + b * xs + i * xi, y + b * ys + i * yi);
      }
    }
    return;
  case PE__K_CONV2D:
    for (uint32_t b = 0; b < n; b++) {
      for (int64_t i = 0; i < items; i++) {
        kn->conv2d(s, in0 + b * xs + i * xi, y + b * ys + i * yi, x->scratch);
      }
    }
    return;
  case PE__K_POOL2D:
    for (uint32_t b = 0; b < n; b++) {
      for (int64_t i = 0; i < items; i++) {
        pe__pool2d(s, in0 + b * xs + i * xi, y + b * ys + i * yi);
      }
    }
    return;
  case PE__K_REDUCE_MEAN: {
    int64_t outer = s->p[0], R = s->p[1], inner = s->p[2];
    for (uint32_t b = 0; b < n; b++) {
      const float *xb = in0 + b * xs;
      float *yb = y + b * ys;
      for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < inner; i++) {
          float acc = 0.0f;
          for (int64_t r = 0; r < R; r++) {
            acc += xb[(o * R + r) * inner + i];
          }
          yb[o * inner + i] = acc / (float)R;
        }
      }
    }
    return;
  }
  default:
    pe__step_exec_ext(s, x);
    return;
  }
}

const pe__kernels_t pe__kernels_generic = {
    .name = "generic",
    .level = 0,
    .dense = pe__dense_generic,
    .conv1d = pe__conv1d_generic,
    .conv2d = pe__conv2d_generic,
    .act = pe__act_apply,
    .affine = pe__affine_generic,
    .gru_cell = NULL,
    .lstm_seq = NULL,
    .matmul = pe__matmul_generic,
    .layernorm = pe__layernorm_generic,
    .attn_blk = pe__attn_blk_generic,
};
