/* Constant folding of int64, bool and small float computations at load.
 *
 * Exporters compute shapes, masks and index vectors with small graphs of
 * Shape, Gather, Slice, Concat, Unsqueeze, Cast, Range, Equal, Where,
 * Expand, Mod, Div... Every node whose inputs are all constants is folded
 * here when its op is in the table below (the shape ops that alias or
 * copy, Squeeze, Unsqueeze, Reshape, Flatten, Concat, Slice, Shape and
 * ConstantOfShape, fold in their own builders), so that what reaches the
 * plan is static shapes and constant tensors.
 *
 * The batch size stays symbolic (model_impl.h): an int64 element that is
 * a multiple k * N of the batch size N carries a mark and holds k. An
 * operation on marked elements folds when its result is a constant or
 * again such a multiple (N * 8, 8N / 4, N - N, N == -1 since N >= 1, Where
 * picking it, Gather moving it); anything else (N + 1, N * N, a Range of N
 * elements) is refused with the node named, as is an op the table lacks
 * when its inputs are not all constant.
 *
 * Float32 constants are folded here only for ops that have no float
 * builder (Where, Expand, Range, comparisons, Min, Max, Mod); float
 * arithmetic on constants runs the op's own step once (build.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/build_impl.h"
#include "pe/error.h"

typedef enum pe__fk {
  PE__F_BINARY = 0, /* numpy-broadcast element-wise, two inputs */
  PE__F_UNARY,
  PE__F_WHERE,
  PE__F_EXPAND,
  PE__F_RANGE,
  PE__F_TRANSPOSE,
  PE__F_GATHER,
  PE__F_CAST
} pe__fk_t;

typedef enum pe__fop {
  PE__FO_ADD = 0,
  PE__FO_SUB,
  PE__FO_MUL,
  PE__FO_DIV,
  PE__FO_MOD,
  PE__FO_MIN,
  PE__FO_MAX,
  PE__FO_EQ,
  PE__FO_LT,
  PE__FO_GT,
  PE__FO_LE,
  PE__FO_GE,
  PE__FO_AND,
  PE__FO_OR,
  PE__FO_XOR,
  PE__FO_NOT,
  PE__FO_NEG,
  PE__FO_ABS
} pe__fop_t;

/* float_builder: the op also has a builder for float32 tensors, which
 * folds all-float constants itself (run once as a step). */
static const struct {
  const char *name;
  int kind, op, n_in, float_builder;
} pe__folds[] = {
    {"Add", PE__F_BINARY, PE__FO_ADD, 2, 1},
    {"Sub", PE__F_BINARY, PE__FO_SUB, 2, 1},
    {"Mul", PE__F_BINARY, PE__FO_MUL, 2, 1},
    {"Div", PE__F_BINARY, PE__FO_DIV, 2, 1},
    {"Mod", PE__F_BINARY, PE__FO_MOD, 2, 0},
    {"Min", PE__F_BINARY, PE__FO_MIN, 2, 0},
    {"Max", PE__F_BINARY, PE__FO_MAX, 2, 0},
    {"Equal", PE__F_BINARY, PE__FO_EQ, 2, 0},
    {"Less", PE__F_BINARY, PE__FO_LT, 2, 0},
    {"Greater", PE__F_BINARY, PE__FO_GT, 2, 0},
    {"LessOrEqual", PE__F_BINARY, PE__FO_LE, 2, 0},
    {"GreaterOrEqual", PE__F_BINARY, PE__FO_GE, 2, 0},
    {"And", PE__F_BINARY, PE__FO_AND, 2, 0},
    {"Or", PE__F_BINARY, PE__FO_OR, 2, 0},
    {"Xor", PE__F_BINARY, PE__FO_XOR, 2, 0},
    {"Not", PE__F_UNARY, PE__FO_NOT, 1, 0},
    {"Neg", PE__F_UNARY, PE__FO_NEG, 1, 1},
    {"Abs", PE__F_UNARY, PE__FO_ABS, 1, 1},
    {"Where", PE__F_WHERE, 0, 3, 0},
    {"Expand", PE__F_EXPAND, 0, 2, 0},
    {"Range", PE__F_RANGE, 0, 3, 0},
    {"Transpose", PE__F_TRANSPOSE, 0, 1, 1},
    {"Gather", PE__F_GATHER, 0, 2, 1},
    {"Cast", PE__F_CAST, 0, 1, 1},
};
#define PE__N_FOLDS (sizeof pe__folds / sizeof pe__folds[0])

static int pe__fold_find(const char *op) {
  for (size_t k = 0; k < PE__N_FOLDS; k++) {
    if (strcmp(pe__folds[k].name, op) == 0) {
      return (int)k;
    }
  }
  return -1;
}

static int pe__is_int(const pe__tensor_t *t) {
  return t->dtype == PE__DT_I64 || t->dtype == PE__DT_BOOL;
}

/* Makes output 0 a constant of the given shape and type (zeroed). */
static int pe__fold_out(pe__b_t *b, int dtype, int rank, const int64_t *dims,
                        int ba) {
  int out = pe__out(b, 0);
  int rc = pe__set_shape(b, out, dtype, rank, dims, ba);
  if (rc != PE_OK) {
    return rc;
  }
  return dtype == PE__DT_F32 ? pe__const_f(b, out) : pe__const_i(b, out);
}

/* Numpy broadcasting of n inputs: the output shape, and per input the
 * strides of its elements along the output's axes (0 where it repeats).
 * The batch axis of an input that has one carries over. */
static int pe__bcast(pe__b_t *b, int n, const pe__tensor_t *const *in,
                     int *rank, int64_t *dims, int64_t st[][PE__MAX_RANK],
                     int *ba) {
  int r = 0;
  for (int k = 0; k < n; k++) {
    r = in[k]->rank > r ? in[k]->rank : r;
  }
  *ba = -1;
  for (int d = 0; d < r; d++) {
    dims[d] = 1;
  }
  for (int k = 0; k < n; k++) {
    int lead = r - in[k]->rank;
    if (in[k]->batch_axis >= 0) {
      *ba = in[k]->batch_axis + lead;
    }
    for (int d = 0; d < in[k]->rank; d++) {
      int64_t v = in[k]->dims[d];
      if (v != dims[d + lead] && v != 1 && dims[d + lead] != 1) {
        return ERR(PE_ESHAPE,
                   "input %d does not broadcast at axis %d (%lld vs %lld)", k,
                   d + lead, (long long)v, (long long)dims[d + lead]);
      }
      dims[d + lead] = v > dims[d + lead] ? v : dims[d + lead];
    }
  }
  for (int k = 0; k < n; k++) {
    int lead = r - in[k]->rank;
    int64_t s = 1;
    for (int d = r - 1; d >= 0; d--) {
      int64_t dk = d >= lead ? in[k]->dims[d - lead] : 1;
      st[k][d] = dk == 1 ? 0 : s;
      s *= dk;
    }
  }
  *rank = r;
  return PE_OK;
}

/* o[k] = x[offset of k], walking o's shape with x's strides (0 where x
 * repeats); marks follow their elements. */
static void pe__copy_strided(pe__tensor_t *o, const pe__tensor_t *x, int r,
                             const int64_t *dims, const int64_t *xst) {
  int64_t st[1][PE__MAX_RANK], idx[PE__MAX_RANK] = {0}, off[1] = {0};
  memcpy(st[0], xst, sizeof st[0]);
  for (int64_t k = 0; k < o->numel; k++) {
    if (o->f != NULL) {
      o->f[k] = x->f[off[0]];
    } else {
      o->i[k] = x->i[off[0]];
      o->mark[k] = (uint8_t)pe__marked(x, off[0]);
    }
    pe__index_next(r - 1, dims, idx, 1, (const int64_t(*)[PE__MAX_RANK])st,
                   off);
  }
}

static int pe__cmp(int op, double a, double c) {
  switch (op) {
  case PE__FO_EQ:
    return a == c;
  case PE__FO_LT:
    return a < c;
  case PE__FO_GT:
    return a > c;
  case PE__FO_LE:
    return a <= c;
  default:
    return a >= c;
  }
}

/* One int64 operation on operands that may be multiples of the batch size
 * N: a marked element holds k and stands for k * N (k >= 1; model_impl.h).
 * The result is again a constant or a multiple of N (*mr), or the op is
 * refused: its value would depend on N in another way. N >= 1 settles
 * comparisons such as k * N < c for c <= k. */
static int pe__iop_batch(pe__b_t *b, int op, int64_t a, int ma, int64_t c,
                         int mc, int64_t *r, int *mr) {
  int64_t ka = ma ? a : 0, kc = mc ? c : 0; /* coefficients of N */
  int64_t ca = ma ? 0 : a, cc = mc ? 0 : c; /* constant parts */
  int both = ma && mc;
  int64_t k = 0, v = ma ? cc : ca; /* one marked: its coefficient, the other */
  int64_t km = ma ? ka : kc;
  int ok = 1, flip = !ma; /* flip: the constant is on the left */
  *mr = 0;
  *r = 0;
  switch (op) {
  case PE__FO_ADD:
  case PE__FO_SUB:
    k = op == PE__FO_ADD ? ka + kc : ka - kc;
    ok = (op == PE__FO_ADD ? ca + cc : ca - cc) == 0 && k >= 0;
    *r = k;
    *mr = k > 0;
    break;
  case PE__FO_MUL:
    ok = !both && v >= 0 && km <= INT32_MAX && v <= INT32_MAX;
    *r = km * v;
    *mr = v > 0;
    break;
  case PE__FO_DIV:
  case PE__FO_MOD:
    if (both) { /* kaN / kcN = ka / kc exactly when kc divides ka */
      ok = ka % kc == 0;
      *r = op == PE__FO_DIV ? ka / kc : 0;
    } else if (!flip && v > 0 && km % v == 0) {
      *r = op == PE__FO_DIV ? km / v : 0;
      *mr = op == PE__FO_DIV;
    } else {
      ok = 0;
    }
    break;
  case PE__FO_MIN:
  case PE__FO_MAX:
    if (both) {
      *r = (op == PE__FO_MAX) == (ka > kc) ? ka : kc;
      *mr = 1;
    } else {
      ok = v <= km; /* kN >= k >= v */
      *r = op == PE__FO_MAX ? km : v;
      *mr = op == PE__FO_MAX;
    }
    break;
  case PE__FO_EQ:
    ok = both || v < km;
    *r = both && ka == kc;
    break;
  default: {
    int lt = (op == PE__FO_LT || op == PE__FO_LE) != flip; /* kN < or <= v */
    int strict = op == PE__FO_LT || op == PE__FO_GT;
    if (both) {
      *r = op == PE__FO_LT   ? ka < kc
           : op == PE__FO_GT ? ka > kc
           : op == PE__FO_LE ? ka <= kc
                             : ka >= kc;
    } else if (lt) { /* kN < v or kN <= v: false when v is below kN */
      ok = strict ? v <= km : v < km;
      *r = 0;
    } else { /* kN > v or kN >= v: true */
      ok = strict ? v < km : v <= km;
      *r = 1;
    }
    break;
  }
  }
  if (!ok) {
    return ERR(PE_EUNSUPPORTED,
               "%s of the batch size%s depends on the batch size in a way "
               "the plan cannot keep; the batch dimension must pass through "
               "shape computations as a multiple of itself",
               b->n->op, both ? " with itself" : " and a constant");
  }
  return PE_OK;
}

/* One int64 operation; see pe__iop_batch for marked operands. */
static int pe__iop(pe__b_t *b, int op, int64_t a, int ma, int64_t c, int mc,
                   int64_t fmod_, int64_t *r, int *mr) {
  *mr = 0;
  if (ma || mc) {
    return pe__iop_batch(b, op, a, ma, c, mc, r, mr);
  }
  int overflow = 0;
  switch (op) {
  case PE__FO_ADD:
    overflow = __builtin_add_overflow(a, c, r);
    break;
  case PE__FO_SUB:
    overflow = __builtin_sub_overflow(a, c, r);
    break;
  case PE__FO_MUL:
    overflow = __builtin_mul_overflow(a, c, r);
    break;
  case PE__FO_DIV:
  case PE__FO_MOD:
    if (c == 0) {
      return ERR(PE_EMODEL, "integer division by zero");
    }
    if (a == INT64_MIN && c == -1) {
      overflow = 1;
      break;
    }
    if (op == PE__FO_DIV) { /* ONNX: truncation, as C does */
      *r = a / c;
    } else { /* fmod 0: the sign of the divisor (Python); 1: of a (C) */
      *r = a % c;
      if (!fmod_ && *r != 0 && ((*r < 0) != (c < 0))) {
        *r += c;
      }
    }
    break;
  case PE__FO_MIN:
    *r = a < c ? a : c;
    break;
  case PE__FO_MAX:
    *r = a > c ? a : c;
    break;
  case PE__FO_AND:
    *r = a && c;
    break;
  case PE__FO_OR:
    *r = a || c;
    break;
  case PE__FO_XOR:
    *r = !a != !c;
    break;
  default:
    *r = op == PE__FO_EQ   ? a == c
         : op == PE__FO_LT ? a < c
         : op == PE__FO_GT ? a > c
         : op == PE__FO_LE ? a <= c
                           : a >= c;
    break;
  }
  if (overflow) {
    return ERR(PE_EMODEL, "int64 overflow in %s", b->n->op);
  }
  return PE_OK;
}

/* One float operation (Mod, Min, Max on float32 constants). */
static float pe__fop(int op, float a, float c, int64_t fmod_) {
  switch (op) {
  case PE__FO_MOD: {
    float r = fmodf(a, c);
    if (!fmod_ && r != 0.0f && ((r < 0.0f) != (c < 0.0f))) {
      r += c;
    }
    return r;
  }
  case PE__FO_MIN:
    return a < c ? a : c;
  default:
    return a > c ? a : c;
  }
}

static int pe__fold_binary(pe__b_t *b, int op) {
  const pe__tensor_t *in[2] = {pe__in(b, 0), pe__in(b, 1)};
  int isint = pe__is_int(in[0]);
  if (isint != pe__is_int(in[1])) {
    return ERR(PE_EMODEL, "%s of an integer and a float tensor", b->n->op);
  }
  int logic = op == PE__FO_AND || op == PE__FO_OR || op == PE__FO_XOR;
  int cmp = op >= PE__FO_EQ && op <= PE__FO_GE;
  if (logic && (in[0]->dtype != PE__DT_BOOL || in[1]->dtype != PE__DT_BOOL)) {
    return ERR(PE_EMODEL, "%s of non-bool tensors", b->n->op);
  }
  if (!isint && !cmp && op != PE__FO_MOD && op != PE__FO_MIN &&
      op != PE__FO_MAX) {
    return ERR(PE_EUNSUPPORTED, "%s of float32 constants", b->n->op);
  }
  int r, ba;
  int64_t dims[PE__MAX_RANK], st[2][PE__MAX_RANK];
  int rc = pe__bcast(b, 2, in, &r, dims, st, &ba);
  int dtype = cmp || logic ? PE__DT_BOOL : in[0]->dtype;
  if (rc != PE_OK || (rc = pe__fold_out(b, dtype, r, dims, ba)) != PE_OK) {
    return rc;
  }
  pe__tensor_t *o = T(b, pe__out(b, 0));
  int64_t idx[PE__MAX_RANK] = {0}, off[2] = {0, 0};
  int64_t fmod_ = pe__attr_i(b, "fmod", 0);
  for (int64_t k = 0; k < o->numel; k++) {
    if (isint) {
      int mr = 0;
      rc = pe__iop(b, op, in[0]->i[off[0]], pe__marked(in[0], off[0]),
                   in[1]->i[off[1]], pe__marked(in[1], off[1]), fmod_, &o->i[k],
                   &mr);
      if (rc != PE_OK) {
        return rc;
      }
      o->mark[k] = (uint8_t)mr;
    } else if (cmp) {
      o->i[k] = pe__cmp(op, in[0]->f[off[0]], in[1]->f[off[1]]);
    } else {
      o->f[k] = pe__fop(op, in[0]->f[off[0]], in[1]->f[off[1]], fmod_);
    }
    pe__index_next(r - 1, dims, idx, 2, (const int64_t(*)[PE__MAX_RANK])st,
                   off);
  }
  return PE_OK;
}

static int pe__fold_unary(pe__b_t *b, int op) {
  const pe__tensor_t *x = pe__in(b, 0);
  if (op == PE__FO_NOT && x->dtype != PE__DT_BOOL) {
    return ERR(PE_EMODEL, "Not of a non-bool tensor");
  }
  int rc = pe__fold_out(b, x->dtype, x->rank, x->dims, x->batch_axis);
  if (rc != PE_OK) {
    return rc;
  }
  pe__tensor_t *o = T(b, pe__out(b, 0));
  for (int64_t k = 0; k < o->numel; k++) {
    if (x->dtype == PE__DT_F32) {
      o->f[k] = op == PE__FO_NEG ? -x->f[k] : fabsf(x->f[k]);
      continue;
    }
    int64_t v = x->i[k];
    if (pe__marked(x, k)) {
      if (op == PE__FO_NEG) {
        return ERR(PE_EUNSUPPORTED,
                   "Neg of the batch size; the batch dimension must pass "
                   "through shape computations unchanged");
      }
      o->mark[k] = 1; /* |kN| = kN */
    }
    if (v == INT64_MIN && op != PE__FO_NOT) {
      return ERR(PE_EMODEL, "int64 overflow in %s", b->n->op);
    }
    o->i[k] = op == PE__FO_NOT ? !v : op == PE__FO_NEG ? -v : (v < 0 ? -v : v);
  }
  return PE_OK;
}

static int pe__fold_where(pe__b_t *b) {
  const pe__tensor_t *in[3] = {pe__in(b, 0), pe__in(b, 1), pe__in(b, 2)};
  if (in[0]->dtype != PE__DT_BOOL) {
    return ERR(PE_EMODEL, "condition (input 0) is not bool");
  }
  if (pe__is_int(in[1]) != pe__is_int(in[2])) {
    return ERR(PE_EMODEL, "inputs 1 and 2 differ in type");
  }
  int r, ba;
  int64_t dims[PE__MAX_RANK], st[3][PE__MAX_RANK];
  int rc = pe__bcast(b, 3, in, &r, dims, st, &ba);
  if (rc != PE_OK ||
      (rc = pe__fold_out(b, in[1]->dtype, r, dims, ba)) != PE_OK) {
    return rc;
  }
  pe__tensor_t *o = T(b, pe__out(b, 0));
  int64_t idx[PE__MAX_RANK] = {0}, off[3] = {0, 0, 0};
  for (int64_t k = 0; k < o->numel; k++) {
    int pick = in[0]->i[off[0]] ? 1 : 2;
    if (o->f != NULL) {
      o->f[k] = in[pick]->f[off[pick]];
    } else {
      o->i[k] = in[pick]->i[off[pick]];
      o->mark[k] = (uint8_t)pe__marked(in[pick], off[pick]);
    }
    pe__index_next(r - 1, dims, idx, 3, (const int64_t(*)[PE__MAX_RANK])st,
                   off);
  }
  return PE_OK;
}

/* Expand: broadcasts the input to a shape; a marked element of the shape
 * is the batch axis of a float constant shared by every window. */
static int pe__fold_expand(pe__b_t *b) {
  const pe__tensor_t *x = pe__in(b, 0), *sh = pe__in(b, 1);
  const int64_t *v;
  int64_t n;
  int rc = pe__const_ints(b, 1, "the shape", &v, &n);
  if (rc != PE_OK) {
    return rc;
  }
  if (n > PE__MAX_RANK) {
    return ERR(PE_EUNSUPPORTED, "shape of rank %lld; at most %d", (long long)n,
               PE__MAX_RANK);
  }
  pe__tensor_t tgt;
  memset(&tgt, 0, sizeof tgt);
  tgt.rank = (int)n;
  tgt.batch_axis = -1;
  for (int64_t d = 0; d < n; d++) {
    if (pe__marked(sh, d)) {
      if (pe__is_int(x) || tgt.batch_axis >= 0 || v[d] != 1) {
        return ERR(PE_EUNSUPPORTED,
                   "an integer tensor expanded along the batch dimension");
      }
      tgt.batch_axis = (int)d;
    }
    if (v[d] < 0) {
      return ERR(PE_EMODEL, "shape dimension %lld", (long long)v[d]);
    }
    tgt.dims[d] = pe__marked(sh, d) ? 1 : v[d];
  }
  const pe__tensor_t *in[2] = {x, &tgt};
  int r, ba;
  int64_t dims[PE__MAX_RANK], st[2][PE__MAX_RANK];
  if ((rc = pe__bcast(b, 2, in, &r, dims, st, &ba)) != PE_OK ||
      (rc = pe__fold_out(b, x->dtype, r, dims, ba)) != PE_OK) {
    return rc;
  }
  pe__copy_strided(T(b, pe__out(b, 0)), x, r, dims, st[0]);
  return PE_OK;
}

static int pe__fold_range(pe__b_t *b) {
  const pe__tensor_t *in[3] = {pe__in(b, 0), pe__in(b, 1), pe__in(b, 2)};
  int isint = in[0]->dtype == PE__DT_I64;
  for (int k = 0; k < 3; k++) {
    if (in[k]->numel != 1 || in[k]->dtype != in[0]->dtype ||
        in[k]->dtype == PE__DT_BOOL) {
      return ERR(PE_EMODEL, "start, limit and delta must be scalars of one "
                            "numeric type");
    }
    if (pe__marked(in[k], 0)) {
      return ERR(PE_EUNSUPPORTED,
                 "a Range over the batch size; its length would depend on the "
                 "batch size");
    }
  }
  double s = isint ? (double)in[0]->i[0] : in[0]->f[0];
  double l = isint ? (double)in[1]->i[0] : in[1]->f[0];
  double d = isint ? (double)in[2]->i[0] : in[2]->f[0];
  if (d == 0 || !isfinite(s) || !isfinite(l) || !isfinite(d)) {
    return ERR(PE_EMODEL, "delta 0 or a non-finite bound");
  }
  double cnt = ceil((l - s) / d);
  int64_t n = cnt > 0 ? (cnt > 1e9 ? (int64_t)1e9 : (int64_t)cnt) : 0;
  int rc = pe__fold_out(b, in[0]->dtype, 1, &n, -1);
  if (rc != PE_OK) {
    return rc;
  }
  pe__tensor_t *o = T(b, pe__out(b, 0));
  for (int64_t k = 0; k < n; k++) {
    if (isint) {
      o->i[k] = in[0]->i[0] + k * in[2]->i[0];
    } else {
      o->f[k] = in[0]->f[0] + (float)k * in[2]->f[0];
    }
  }
  return PE_OK;
}

/* Transpose of a constant: any permutation, marks follow their elements. */
static int pe__fold_transpose(pe__b_t *b) {
  const pe__tensor_t *x = pe__in(b, 0);
  const int64_t *perm;
  size_t np = pe__attr_ints(b, "perm", &perm);
  int r = x->rank, seen[PE__MAX_RANK] = {0}, ba = -1;
  int64_t p[PE__MAX_RANK], dims[PE__MAX_RANK], ist[PE__MAX_RANK];
  int64_t st[1][PE__MAX_RANK];
  if (np != 0 && (int)np != r) {
    return ERR(PE_EMODEL, "perm has %zu entries for rank %d", np, r);
  }
  pe__contig_strides(r, x->dims, ist);
  for (int d = 0; d < r; d++) {
    p[d] = np ? perm[d] : r - 1 - d;
    if (p[d] < 0 || p[d] >= r || seen[p[d]]) {
      return ERR(PE_EMODEL, "perm is not a permutation");
    }
    seen[p[d]] = 1;
    dims[d] = x->dims[p[d]];
    st[0][d] = ist[p[d]];
    ba = p[d] == x->batch_axis ? d : ba;
  }
  int rc = pe__fold_out(b, x->dtype, r, dims, ba);
  if (rc != PE_OK) {
    return rc;
  }
  pe__copy_strided(T(b, pe__out(b, 0)), x, r, dims, st[0]);
  return PE_OK;
}

/* Gather of a constant by constant indices of any rank. */
static int pe__fold_gather(pe__b_t *b) {
  const pe__tensor_t *x = pe__in(b, 0), *it = pe__in(b, 1);
  int a = 0;
  int rc = pe__norm_axis(b, pe__attr_i(b, "axis", 0), x->rank, &a, "axis");
  if (rc != PE_OK) {
    return rc;
  }
  if (it->dtype != PE__DT_I64) {
    return ERR(PE_EMODEL, "indices must be int64 or int32");
  }
  int r = x->rank - 1 + it->rank;
  if (r > PE__MAX_RANK) {
    return ERR(PE_EUNSUPPORTED, "result of rank %d; at most %d", r,
               PE__MAX_RANK);
  }
  if (x->batch_axis == a) {
    return ERR(PE_EUNSUPPORTED, "Gather along the batch dimension (axis %d)",
               a);
  }
  /* a constant shared by every window keeps its batch axis */
  int ba = x->batch_axis < 0   ? -1
           : x->batch_axis < a ? x->batch_axis
                               : x->batch_axis - 1 + it->rank;
  int64_t dims[PE__MAX_RANK], outer = 1, inner = 1, dim = x->dims[a];
  int q = 0;
  for (int d = 0; d < a; d++) {
    dims[q++] = x->dims[d];
    outer *= x->dims[d];
  }
  for (int d = 0; d < it->rank; d++) {
    dims[q++] = it->dims[d];
  }
  for (int d = a + 1; d < x->rank; d++) {
    dims[q++] = x->dims[d];
    inner *= x->dims[d];
  }
  if ((rc = pe__fold_out(b, x->dtype, r, dims, ba)) != PE_OK) {
    return rc;
  }
  pe__tensor_t *o = T(b, pe__out(b, 0));
  int64_t ni = it->numel;
  for (int64_t j = 0; j < ni; j++) {
    int64_t v = it->i[j] < 0 ? it->i[j] + dim : it->i[j];
    if (pe__marked(it, j)) {
      return ERR(PE_EUNSUPPORTED, "an index that is the batch size");
    }
    if (v < 0 || v >= dim) {
      return ERR(PE_EMODEL, "index %lld out of range for dimension %lld",
                 (long long)it->i[j], (long long)dim);
    }
    for (int64_t u = 0; u < outer; u++) {
      for (int64_t w = 0; w < inner; w++) {
        int64_t src = (u * dim + v) * inner + w;
        int64_t dst = (u * ni + j) * inner + w;
        if (o->f != NULL) {
          o->f[dst] = x->f[src];
        } else {
          o->i[dst] = x->i[src];
          o->mark[dst] = (uint8_t)pe__marked(x, src);
        }
      }
    }
  }
  return PE_OK;
}

/* Cast of a constant to float32, int64, int32 (kept as int64) or bool. */
static int pe__fold_cast(pe__b_t *b) {
  const pe__tensor_t *x = pe__in(b, 0);
  int64_t to = pe__attr_i(b, "to", 0);
  int dtype = to == PE__DT_F32              ? PE__DT_F32
              : to == PE__DT_I64 || to == 6 ? PE__DT_I64
              : to == PE__DT_BOOL           ? PE__DT_BOOL
                                            : PE__DT_NONE;
  if (dtype == PE__DT_NONE) {
    return ERR(PE_EUNSUPPORTED,
               "Cast to type %lld; float32, int64, int32 and bool are "
               "supported",
               (long long)to);
  }
  int rc = pe__fold_out(b, dtype, x->rank, x->dims, x->batch_axis);
  if (rc != PE_OK) {
    return rc;
  }
  pe__tensor_t *o = T(b, pe__out(b, 0));
  for (int64_t k = 0; k < o->numel; k++) {
    int m = pe__marked(x, k);
    if (dtype == PE__DT_F32) {
      if (m) {
        return ERR(PE_EUNSUPPORTED,
                   "Cast of the batch size to float; the batch dimension must "
                   "pass through shape computations unchanged");
      }
      o->f[k] = x->f != NULL ? x->f[k] : (float)x->i[k];
    } else if (x->f != NULL) {
      float v = x->f[k];
      o->i[k] = dtype == PE__DT_BOOL              ? v != 0.0f
                : isfinite(v) && fabsf(v) < 9e18f ? (int64_t)v
                                                  : 0;
    } else if (dtype == PE__DT_BOOL) {
      o->i[k] = m || x->i[k] != 0; /* N >= 1 */
    } else {
      o->i[k] = to == 6 ? (int64_t)(int32_t)x->i[k] : x->i[k];
      o->mark[k] = (uint8_t)m;
    }
  }
  return PE_OK;
}

/* 1 when the node is folded here: its op is in the table and every input
 * is a constant (for an op with a float builder, not every one float32). */
int pe__fold_applies(pe__b_t *b) {
  int k = pe__fold_find(b->n->op);
  if (k < 0 || b->n->n_in < pe__folds[k].n_in || !pe__all_const(b)) {
    return 0;
  }
  int any_int = 0;
  for (int i = 0; i < b->n->n_in; i++) {
    const pe__tensor_t *t = pe__in(b, i);
    if (t == NULL) {
      return i >= pe__folds[k].n_in; /* a missing required input */
    }
    any_int |= pe__is_int(t);
  }
  return any_int || !pe__folds[k].float_builder;
}

/* 1 when the op is one this file folds but the builders cannot run. */
int pe__fold_only(const char *op) {
  int k = pe__fold_find(op);
  return k >= 0 && !pe__folds[k].float_builder;
}

int pe__fold(pe__b_t *b) {
  int k = pe__fold_find(b->n->op);
  int rc = pe__check_attrs(b, strcmp(b->n->op, "Mod") == 0         ? "fmod"
                              : strcmp(b->n->op, "Transpose") == 0 ? "perm"
                              : strcmp(b->n->op, "Gather") == 0    ? "axis"
                              : strcmp(b->n->op, "Cast") == 0
                                  ? "to,saturate,round_mode"
                                  : "");
  if (rc != PE_OK) {
    return rc;
  }
  for (int i = 0; i < pe__folds[k].n_in; i++) {
    if (pe__in(b, i) == NULL) {
      return ERR(PE_EMODEL, "input %d is missing; %s needs %d", i, b->n->op,
                 pe__folds[k].n_in);
    }
  }
  switch (pe__folds[k].kind) {
  case PE__F_BINARY:
    return pe__fold_binary(b, pe__folds[k].op);
  case PE__F_UNARY:
    return pe__fold_unary(b, pe__folds[k].op);
  case PE__F_WHERE:
    return pe__fold_where(b);
  case PE__F_EXPAND:
    return pe__fold_expand(b);
  case PE__F_RANGE:
    return pe__fold_range(b);
  case PE__F_TRANSPOSE:
    return pe__fold_transpose(b);
  case PE__F_GATHER:
    return pe__fold_gather(b);
  default:
    return pe__fold_cast(b);
  }
}
