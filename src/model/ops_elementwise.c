/* Op builders for element-wise ops (unary, binary with broadcasting) and
 * Softmax/LogSoftmax. See build_impl.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/build_impl.h"
#include "pe/error.h"

/* x * c, x + c, x - c, c - x with a constant c that varies along at most
 * one axis and x of the output's shape: a per-channel affine step
 * y = x * s[ch] + t[ch] (the input layer of a model, often). Returns PE_OK
 * when it made the step, 1 when the op is not of that form. */
static int pe__binary_as_affine(pe__b_t *b, int binop, int xi, int yi, int r,
                                const int64_t *dims, int out) {
  if (binop != PE__OP_ADD && binop != PE__OP_SUB && binop != PE__OP_MUL) {
    return 1;
  }
  const pe__tensor_t *x = T(b, xi), *y = T(b, yi);
  int cside = x->is_const ? 0 : 1;
  const pe__tensor_t *c = cside ? y : x, *v = cside ? x : y;
  if (!c->is_const || v->is_const || c->dtype != PE__DT_F32 || v->rank != r) {
    return 1;
  }
  for (int d = 0; d < r; d++) {
    if (v->dims[d] != dims[d]) {
      return 1;
    }
  }
  int axis = -1, lead = r - c->rank;
  for (int d = 0; d < c->rank; d++) {
    if (c->dims[d] != 1) {
      if (axis >= 0) {
        return 1;
      }
      axis = d + lead;
    }
  }
  int64_t outer = 1, C = 1, inner = 1;
  for (int d = 0; d < r; d++) {
    if (axis < 0 || d > axis) {
      inner *= dims[d];
    } else if (d < axis) {
      outer *= dims[d];
    } else {
      C = dims[d];
    }
  }
  pe__step_t *s = pe__step_new(b, PE__K_AFFINE);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  s->n_in = 1;
  s->in[0] = cside ? xi : yi;
  s->out[0] = out;
  s->w = malloc((size_t)C * sizeof(float));
  s->bias = malloc((size_t)C * sizeof(float));
  if (s->w == NULL || s->bias == NULL) {
    return PE_ENOMEM;
  }
  for (int64_t k = 0; k < C; k++) {
    float cv = c->f[k];
    s->w[k] = binop == PE__OP_MUL               ? cv
              : (binop == PE__OP_SUB && !cside) ? -1.0f
                                                : 1.0f;
    s->bias[k] = binop == PE__OP_MUL   ? 0.0f
                 : binop == PE__OP_ADD ? cv
                 : cside               ? -cv
                                       : cv;
  }
  s->p[0] = outer;
  s->p[1] = C;
  s->p[2] = inner;
  s->p[3] = binop == PE__OP_MUL ? 1 : 2; /* 1: only scales, 2: only shifts */
  s->flops = v->numel;
  return PE_OK;
}

/* Add, Sub, Mul, Div, Pow with numpy broadcasting. */
int pe__op_binary(pe__b_t *b) {
  int rc = pe__check_attrs(b, "");
  if (rc != PE_OK) {
    return rc;
  }
  const char *op = b->n->op;
  int binop = strcmp(op, "Add") == 0   ? PE__OP_ADD
              : strcmp(op, "Sub") == 0 ? PE__OP_SUB
              : strcmp(op, "Mul") == 0 ? PE__OP_MUL
              : strcmp(op, "Div") == 0 ? PE__OP_DIV
                                       : PE__OP_POW;
  const pe__tensor_t *x = pe__in(b, 0), *y = pe__in(b, 1);
  if (x == NULL || y == NULL) {
    return ERR(PE_EMODEL, "needs two inputs");
  }
  if (x->dtype == PE__DT_I64 && y->dtype == PE__DT_I64 && x->is_const &&
      y->is_const && binop != PE__OP_POW) {
    return pe__fold_i64_binary(b, binop);
  }
  return pe__binary_build(b, binop, b->n->in[0], b->n->in[1], pe__out(b, 0));
}

/* One broadcasting binary step out = xi (binop) yi over tensor ids (the
 * node's inputs, or the partial results of a variadic op). */
int pe__binary_build(pe__b_t *b, int binop, int xi, int yi, int out) {
  int rc;
  const char *op = b->n->op;
  const pe__tensor_t *x = T(b, xi), *y = T(b, yi);
  if (x->dtype != PE__DT_F32 ||
      (y->dtype != PE__DT_F32 && binop != PE__OP_POW)) {
    return ERR(PE_EUNSUPPORTED, "%s of int64 and float tensors", op);
  }
  const pe__tensor_t *in[2] = {x, y};
  float *ycopy = NULL;
  if (y->dtype == PE__DT_I64) { /* Pow with an int exponent */
    ycopy = malloc((size_t)(y->numel ? y->numel : 1) * sizeof(float));
    if (ycopy == NULL) {
      return PE_ENOMEM;
    }
    for (int64_t k = 0; k < y->numel; k++) {
      ycopy[k] = (float)y->i[k];
    }
  }
  int r = x->rank > y->rank ? x->rank : y->rank;
  int64_t dims[PE__MAX_RANK] = {0}, st[2][PE__MAX_RANK];
  int ba = -1;
  for (int k = 0; k < 2; k++) {
    int lead = r - in[k]->rank;
    if (in[k]->batch_axis >= 0) {
      int pos = in[k]->batch_axis + lead;
      if (ba >= 0 && ba != pos) {
        free(ycopy);
        return ERR(PE_EUNSUPPORTED,
                   "the two inputs have their batch on different axes");
      }
      ba = pos;
    }
  }
  for (int d = 0; d < r; d++) {
    int64_t dx = d - (r - x->rank) >= 0 ? x->dims[d - (r - x->rank)] : 1;
    int64_t dy = d - (r - y->rank) >= 0 ? y->dims[d - (r - y->rank)] : 1;
    if (dx != dy && dx != 1 && dy != 1) {
      free(ycopy);
      return ERR(PE_ESHAPE, "shapes do not broadcast at axis %d (%lld vs %lld)",
                 d, (long long)dx, (long long)dy);
    }
    dims[d] = dx > dy ? dx : dy;
  }
  for (int k = 0; k < 2 && ba >= 0; k++) {
    int pos = ba - (r - in[k]->rank); /* the batch axis in input k */
    int64_t dk = pos >= 0 ? in[k]->dims[pos] : 1;
    if ((in[k]->batch_axis < 0 && dk != 1) ||
        (in[k]->batch_axis >= 0 && dk != dims[ba])) {
      free(ycopy);
      return ERR(PE_EUNSUPPORTED,
                 "a constant spans the batch dimension (axis %d), or the "
                 "inputs hold different rows per window there",
                 ba);
    }
  }
  for (int k = 0; k < 2; k++) {
    int lead = r - in[k]->rank;
    int64_t s = 1;
    for (int d = r - 1; d >= 0; d--) {
      int64_t dk = d - lead >= 0 ? in[k]->dims[d - lead] : 1;
      st[k][d] = dk == 1 ? 0 : s;
      s *= dk;
    }
  }
  if ((rc = pe__set_shape(b, out, PE__DT_F32, r, dims, ba)) != PE_OK) {
    free(ycopy);
    return rc;
  }
  rc = pe__binary_as_affine(b, binop, xi, yi, r, dims, out);
  if (rc != 1) {
    free(ycopy);
    return rc;
  }
  pe__step_t *s = pe__step_new(b, PE__K_BINARY);
  if (s == NULL) {
    free(ycopy);
    return PE_ENOMEM;
  }
  s->binop = binop;
  s->n_in = 2;
  s->in[0] = xi;
  s->in[1] = yi;
  s->out[0] = out;
  s->rank = r;
  memcpy(s->dims, dims, sizeof dims);
  memcpy(s->st[0], st[0], sizeof st[0]);
  memcpy(s->st[1], st[1], sizeof st[1]);
  s->p[0] = T(b, out)->numel;
  s->p[1] = x->numel == s->p[0] && y->numel == s->p[0] ? 1
            : y->numel == 1 && x->numel == s->p[0]     ? 2
            : x->numel == 1 && y->numel == s->p[0]     ? 3
                                                       : 0;
  s->w = ycopy; /* Pow's converted exponent, when int64 */
  s->flops = s->p[0];
  return pe__finish(b, s);
}

/* Relu, LeakyRelu, Sigmoid, Tanh, Erf, Sqrt, Gelu, Exp, Neg, Abs, Log,
 * Reciprocal: one elementwise step (usually fused into its producer). */
int pe__op_unary(pe__b_t *b) {
  const char *op = b->n->op;
  static const struct {
    const char *name;
    int act;
  } map[] = {{"Relu", PE__ACT_RELU},       {"LeakyRelu", PE__ACT_LEAKY},
             {"Sigmoid", PE__ACT_SIGMOID}, {"Tanh", PE__ACT_TANH},
             {"Erf", PE__ACT_ERF},         {"Sqrt", PE__ACT_SQRT},
             {"Gelu", PE__ACT_GELU},       {"Exp", PE__ACT_EXP},
             {"Neg", PE__ACT_NEG},         {"Abs", PE__ACT_ABS},
             {"Log", PE__ACT_LOG},         {"Reciprocal", PE__ACT_RECIP}};
  int act = PE__ACT_NONE;
  for (size_t k = 0; k < sizeof map / sizeof map[0]; k++) {
    if (strcmp(map[k].name, op) == 0) {
      act = map[k].act;
    }
  }
  int rc = pe__check_attrs(b, act == PE__ACT_LEAKY  ? "alpha"
                              : act == PE__ACT_GELU ? "approximate"
                                                    : "");
  if (rc != PE_OK) {
    return rc;
  }
  if (act == PE__ACT_GELU && pe__attr_s_is(b, "approximate", "tanh", 0)) {
    act = PE__ACT_GELU_TANH;
  } else if (act == PE__ACT_GELU &&
             !pe__attr_s_is(b, "approximate", "none", 1)) {
    return ERR(PE_EUNSUPPORTED, "approximate must be 'none' or 'tanh'");
  }
  const pe__tensor_t *x = pe__in(b, 0);
  if (x->dtype != PE__DT_F32) {
    return ERR(PE_EUNSUPPORTED, "%s of an int64 tensor", op);
  }
  int out = pe__out(b, 0);
  if ((rc = pe__set_shape(b, out, PE__DT_F32, x->rank, x->dims,
                          x->batch_axis)) != PE_OK) {
    return rc;
  }
  pe__step_t *s = pe__step_new(b, PE__K_UNARY);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  s->n_in = 1;
  s->in[0] = b->n->in[0];
  s->out[0] = out;
  s->act = act;
  s->alpha = pe__attr_f(b, "alpha", 0.01f);
  s->p[0] = x->numel;
  s->flops = x->numel;
  return pe__finish(b, s);
}

/* Softmax, LogSoftmax over one axis (opset >= 13) or the coerced 2-D
 * tail (opset < 13). */
int pe__op_softmax(pe__b_t *b) {
  int rc = pe__check_attrs(b, "axis");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *x = pe__in(b, 0);
  int old = pe__opset(b) < 13;
  int a = 0;
  if ((rc = pe__norm_axis(b, pe__attr_i(b, "axis", old ? 1 : -1), x->rank, &a,
                          "axis")) != PE_OK) {
    return rc;
  }
  int64_t outer = 1, len = 1, inner = 1;
  for (int d = 0; d < x->rank; d++) {
    if (d < a) {
      outer *= x->dims[d];
    } else if (d == a || old) {
      len *= x->dims[d];
    } else {
      inner *= x->dims[d];
    }
  }
  if (x->batch_axis >= 0 &&
      (x->batch_axis == a || (old && x->batch_axis > a))) {
    return ERR(PE_EUNSUPPORTED, "%s over the batch dimension (axis %d)",
               b->n->op, x->batch_axis);
  }
  int out = pe__out(b, 0);
  if ((rc = pe__set_shape(b, out, PE__DT_F32, x->rank, x->dims,
                          x->batch_axis)) != PE_OK) {
    return rc;
  }
  pe__step_t *s = pe__step_new(b, PE__K_SOFTMAX);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  s->n_in = 1;
  s->in[0] = b->n->in[0];
  s->out[0] = out;
  s->p[0] = outer;
  s->p[1] = len;
  s->p[2] = inner;
  s->act = strcmp(b->n->op, "LogSoftmax") == 0;
  s->flops = 3 * x->numel;
  return pe__finish(b, s);
}
