/* Kernels of the steps ops_misc.c makes: parametrised element-wise ops,
 * reductions, Pad and Where, one window at a time (element-wise: n floats).
 * Portable C only: these ops move memory rather than carry FLOPs, and the
 * compiler vectorises the plain loops. Hot path: no allocation. */
#include <math.h>
#include <string.h>

#include "model/kernels_shared.h"
#include "model/model_impl.h"

/* y = op(x) over n floats (y may be x). */
void pe__elemwise_run(const pe__step_t *s, const float *x, float *y,
                      int64_t n) {
  const float f0 = s->ext.f[0], f1 = s->ext.f[1];
  switch (s->ext.op) {
  case PE__EW_CLIP:
    for (int64_t i = 0; i < n; i++) {
      float v = x[i] < f0 ? f0 : x[i];
      y[i] = v > f1 ? f1 : v;
    }
    return;
  case PE__EW_ELU:
    for (int64_t i = 0; i < n; i++) {
      y[i] = x[i] >= 0.0f ? x[i] : f0 * (expf(x[i]) - 1.0f);
    }
    return;
  case PE__EW_SELU:
    for (int64_t i = 0; i < n; i++) {
      y[i] = x[i] > 0.0f ? f1 * x[i] : f1 * (f0 * expf(x[i]) - f0);
    }
    return;
  case PE__EW_SOFTPLUS:
    /* log(1 + e^x) without overflow for large x */
    for (int64_t i = 0; i < n; i++) {
      float v = x[i];
      y[i] = v > 0.0f ? v + log1pf(expf(-v)) : log1pf(expf(v));
    }
    return;
  case PE__EW_HARDSIGMOID:
  case PE__EW_HARDSWISH:
    for (int64_t i = 0; i < n; i++) {
      float v = f0 * x[i] + f1;
      v = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
      y[i] = s->ext.op == PE__EW_HARDSWISH ? x[i] * v : v;
    }
    return;
  default:
    return;
  }
}

/* One window of a reduction: the input walked in order (s->dims), each
 * element folded into the output element st[0] points it to; the mean
 * (ext.op < 0) divides by p[1] at the end. */
void pe__reduce_run(const pe__step_t *s, const float *x, float *y) {
  const int op = s->ext.op, r = (int)s->rank;
  const int64_t no = s->p[0];
  const float init = op == PE__OP_MUL   ? 1.0f
                     : op == PE__OP_MAX ? -INFINITY
                     : op == PE__OP_MIN ? INFINITY
                                        : 0.0f;
  for (int64_t i = 0; i < no; i++) {
    y[i] = init;
  }
  int64_t n = 1, idx[PE__MAX_RANK] = {0}, off[1] = {0};
  for (int d = 0; d < r; d++) {
    n *= s->dims[d];
  }
  const int64_t last = r > 0 ? s->dims[r - 1] : 1;
  const int64_t sl = r > 0 ? s->st[0][r - 1] : 0;
  const int is_sum = op != PE__OP_MUL && op != PE__OP_MAX && op != PE__OP_MIN;
  for (int64_t i = 0; i < n; i += last) {
    const float *xr = x + i;
    float *yr = y + off[0];
    if (is_sum && sl == 1) {
      /* a sum over an outer axis (a mean over time): eight at a time, the
       * loads before the stores, so that the compiler vectorises it; the
       * same additions in the same order */
      int64_t j = 0;
      for (; j + 8 <= last; j += 8) {
        float t[8];
        for (int k = 0; k < 8; k++) {
          t[k] = yr[j + k] + xr[j + k];
        }
        memcpy(yr + j, t, sizeof t);
      }
      for (; j < last; j++) {
        yr[j] += xr[j];
      }
      pe__index_next(r - 2, s->dims, idx, 1, s->st, off);
      continue;
    }
    for (int64_t j = 0; j < last; j++) {
      float v = xr[j], *o = yr + j * sl;
      switch (op) {
      case PE__OP_MUL:
        *o *= v;
        break;
      case PE__OP_MAX:
        *o = v > *o || v != v ? v : *o;
        break;
      case PE__OP_MIN:
        *o = v < *o || v != v ? v : *o;
        break;
      default:
        *o += v;
        break;
      }
    }
    pe__index_next(r - 2, s->dims, idx, 1, s->st, off);
  }
  if (op < 0) {
    for (int64_t i = 0; i < no; i++) {
      y[i] /= (float)s->p[1];
    }
  }
}

/* One window of Pad: s->dims the output shape, st[0] the input's, st[1]
 * the pads before each axis. Rows along the last axis; a row whose outer
 * index lands in the constant padding is the value throughout. */
void pe__pad_run(const pe__step_t *s, const float *x, float *y) {
  const int r = (int)s->rank, mode = s->ext.op;
  const float value = s->ext.f[0];
  if (r == 0) {
    y[0] = x[0];
    return;
  }
  int64_t ist[PE__MAX_RANK], idx[PE__MAX_RANK] = {0}, rows = 1;
  int64_t s1 = 1;
  for (int d = r - 1; d >= 0; d--) {
    ist[d] = s1;
    s1 *= s->st[0][d];
    if (d < r - 1) {
      rows *= s->dims[d];
    }
  }
  const int64_t wo = s->dims[r - 1], wi = s->st[0][r - 1];
  const int64_t pl = s->st[1][r - 1];
  for (int64_t row = 0; row < rows; row++) {
    float *yr = y + row * wo;
    int64_t off = 0;
    int fill = 0;
    for (int d = 0; d < r - 1; d++) {
      int64_t src = pe_ks_pad_src(idx[d] - s->st[1][d], s->st[0][d], mode);
      fill |= src < 0;
      off += src * ist[d];
    }
    if (fill) {
      for (int64_t j = 0; j < wo; j++) {
        yr[j] = value;
      }
    } else {
      const float *xr = x + off;
      for (int64_t j = 0; j < wo; j++) {
        int64_t src = pe_ks_pad_src(j - pl, wi, mode);
        yr[j] = src < 0 ? value : xr[src];
      }
    }
    for (int d = r - 2; d >= 0; d--) {
      if (++idx[d] < s->dims[d]) {
        break;
      }
      idx[d] = 0;
    }
  }
}

/* One window of Where: y = cond ? a : b, the condition s->w (constant,
 * 0 or 1), strides st[0] (condition), st[1] (a), st[2] (b). */
void pe__where_run(const pe__step_t *s, const float *c, const float *a,
                   const float *b, float *y) {
  const int r = (int)s->rank;
  if (r == 0) {
    y[0] = c[0] != 0.0f ? a[0] : b[0];
    return;
  }
  int64_t idx[PE__MAX_RANK] = {0}, off[3] = {0, 0, 0}, n = 1;
  for (int d = 0; d < r; d++) {
    n *= s->dims[d];
  }
  const int64_t last = s->dims[r - 1];
  const int64_t sc = s->st[0][r - 1], sa = s->st[1][r - 1],
                sb = s->st[2][r - 1];
  for (int64_t i = 0; i < n; i += last) {
    for (int64_t j = 0; j < last; j++) {
      y[i + j] =
          c[off[0] + j * sc] != 0.0f ? a[off[1] + j * sa] : b[off[2] + j * sb];
    }
    pe__index_next(r - 2, s->dims, idx, 3, s->st, off);
  }
}

/* Runs one step of the kinds of ops_misc.c and ops_attention.c over x->n
 * windows (pe__step_exec's default). Hot path: no allocation. */
void pe__step_exec_ext(const pe__step_t *s, const pe__exec_t *x) {
  const pe__tensor_t *t = x->m->g.t;
  const float *a = x->ptr[s->in[0]];
  const int64_t as = pe__tensor_stride(&t[s->in[0]]);
  const float *b = s->n_in > 1 ? x->ptr[s->in[1]] : NULL;
  const int64_t bs = s->n_in > 1 ? pe__tensor_stride(&t[s->in[1]]) : 0;
  float *y = x->ptr[s->out[0]];
  const int64_t ys = t[s->out[0]].numel;
  if (s->kind == PE__K_ATTENTION) {
    pe__attention_run(s, a, y, x->n, as, ys, x->scratch, x->k);
    return;
  }
  for (uint32_t k = 0; k < x->n; k++) {
    const float *ak = a + k * as;
    float *yk = y + k * ys;
    switch (s->kind) {
    case PE__K_ELEMWISE:
      pe__elemwise_run(s, ak, yk, ys);
      break;
    case PE__K_REDUCE:
      pe__reduce_run(s, ak, yk);
      break;
    case PE__K_PAD:
      pe__pad_run(s, ak, yk);
      break;
    case PE__K_WHERE:
      /* the condition: constant (s->w), or a runtime third input */
      pe__where_run(s,
                    s->w != NULL ? s->w
                                 : x->ptr[s->in[2]] +
                                       k * pe__tensor_stride(&t[s->in[2]]),
                    ak, b + k * bs, yk);
      break;
    case PE__K_MATMUL:
      pe__matmul_run(s, ak, b + k * bs, yk, x->k);
      break;
    case PE__K_LAYERNORM: {
      float *mean = s->out[1] >= 0 ? x->ptr[s->out[1]] + k * s->p[0] : NULL;
      float *inv = s->out[2] >= 0 ? x->ptr[s->out[2]] + k * s->p[0] : NULL;
      x->k->layernorm(s, ak, yk, mean, inv);
      break;
    }
    default:
      break;
    }
  }
}
