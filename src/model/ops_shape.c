/* Op builders for shape, layout and constant ops: Constant, Identity, Cast,
 * Shape, ConstantOfShape, Squeeze, Unsqueeze, Flatten, Reshape, Transpose,
 * Slice, Gather and Concat. Most of them fold or alias; see build_impl.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/build_impl.h"
#include "pe/error.h"

int pe__op_constant(pe__b_t *b) {
  int rc =
      pe__check_attrs(b, "value,value_float,value_floats,value_int,value_ints");
  if (rc != PE_OK) {
    return rc;
  }
  int out = pe__out(b, 0);
  const pe__attr_t *a;
  if ((a = pe__attr(b, "value")) != NULL && a->t != NULL) {
    const pe__tensor_t *v = a->t;
    rc = pe__set_shape(b, out, v->dtype, v->rank, v->dims, -1);
    if (rc == PE_OK) {
      rc = v->dtype == PE__DT_F32 ? pe__const_f(b, out) : pe__const_i(b, out);
    }
    if (rc == PE_OK && v->numel > 0) {
      pe__tensor_t *o = T(b, out);
      if (v->dtype == PE__DT_F32) {
        memcpy(o->f, v->f, (size_t)v->numel * sizeof(float));
      } else {
        memcpy(o->i, v->i, (size_t)v->numel * sizeof(int64_t));
      }
    }
    return rc;
  }
  int64_t one = 1;
  if ((a = pe__attr(b, "value_float")) != NULL) {
    rc = pe__set_shape(b, out, PE__DT_F32, 0, NULL, -1);
    if (rc == PE_OK && (rc = pe__const_f(b, out)) == PE_OK) {
      T(b, out)->f[0] = a->f;
    }
    return rc;
  }
  if ((a = pe__attr(b, "value_int")) != NULL) {
    rc = pe__set_shape(b, out, PE__DT_I64, 0, NULL, -1);
    if (rc == PE_OK && (rc = pe__const_i(b, out)) == PE_OK) {
      T(b, out)->i[0] = a->i;
    }
    return rc;
  }
  if ((a = pe__attr(b, "value_floats")) != NULL) {
    one = (int64_t)a->n_floats;
    rc = pe__set_shape(b, out, PE__DT_F32, 1, &one, -1);
    if (rc == PE_OK && (rc = pe__const_f(b, out)) == PE_OK && one > 0) {
      memcpy(T(b, out)->f, a->floats, (size_t)one * sizeof(float));
    }
    return rc;
  }
  if ((a = pe__attr(b, "value_ints")) != NULL) {
    one = (int64_t)a->n_ints;
    rc = pe__set_shape(b, out, PE__DT_I64, 1, &one, -1);
    if (rc == PE_OK && (rc = pe__const_i(b, out)) == PE_OK && one > 0) {
      memcpy(T(b, out)->i, a->ints, (size_t)one * sizeof(int64_t));
    }
    return rc;
  }
  return ERR(PE_EUNSUPPORTED,
             "Constant without a value; value (a tensor), value_float(s) or "
             "value_int(s) are supported");
}

/* Identity, Dropout (inference only): an alias of the input. */
int pe__op_identity(pe__b_t *b) {
  int rc =
      pe__check_attrs(b, strcmp(b->n->op, "Dropout") == 0 ? "seed,ratio" : "");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *x = pe__in(b, 0);
  if (x == NULL) {
    return ERR(PE_EMODEL, "missing input");
  }
  int dropout = strcmp(b->n->op, "Dropout") == 0;
  if (dropout) {
    /* training mode drops nothing at a ratio of 0 (scale 1, mask all
     * true), which is inference */
    const pe__tensor_t *tm = pe__in(b, 2), *ratio = pe__in(b, 1);
    int training = tm != NULL && (!tm->is_const || (tm->i && tm->i[0] != 0));
    int keep_all = ratio != NULL && ratio->is_const &&
                   ratio->dtype == PE__DT_F32 && ratio->numel == 1 &&
                   ratio->f[0] == 0.0f;
    if (training && !keep_all) {
      return ERR(PE_EUNSUPPORTED,
                 "Dropout in training mode (random); export the model in "
                 "eval mode");
    }
  }
  int out = pe__out(b, 0);
  rc = pe__set_shape(b, out, x->dtype, x->rank, x->dims, x->batch_axis);
  if (rc == PE_OK && dropout && b->n->n_out > 1 && b->n->out[1] >= 0) {
    /* the mask: every element kept, the same for every window */
    int mk = b->n->out[1];
    rc = pe__set_shape(b, mk, PE__DT_BOOL, x->rank, x->dims, -1);
    if (rc == PE_OK && (rc = pe__const_i(b, mk)) == PE_OK) {
      for (int64_t i = 0; i < T(b, mk)->numel; i++) {
        T(b, mk)->i[i] = 1;
      }
    }
  }
  return rc == PE_OK ? pe__alias(b, out, b->n->in[0]) : rc;
}

/* A step casting the runtime int64 or bool tensor `in` to the float32
 * tensor `out` of its shape. */
int pe__cast_step(pe__b_t *b, int in, int out) {
  const pe__tensor_t *x = T(b, in);
  int rc = pe__set_shape(b, out, PE__DT_F32, x->rank, x->dims, x->batch_axis);
  pe__step_t *s = rc == PE_OK ? pe__step_new(b, PE__K_CAST) : NULL;
  if (s == NULL) {
    return rc == PE_OK ? PE_ENOMEM : rc;
  }
  s->n_in = 1;
  s->in[0] = in;
  s->out[0] = out;
  s->p[0] = x->numel;
  s->p[1] = x->dtype;
  s->flops = x->numel;
  return pe__finish(b, s);
}

/* Cast: float32 to float32 is an alias; constants convert between
 * float32 and int64 (shape arithmetic); runtime casts to other types are
 * refused. */
int pe__op_cast(pe__b_t *b) {
  int rc = pe__check_attrs(b, "to,saturate,round_mode");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *x = pe__in(b, 0);
  int64_t to = pe__attr_i(b, "to", 0);
  int out = pe__out(b, 0);
  if (to == x->dtype) {
    rc = pe__set_shape(b, out, x->dtype, x->rank, x->dims, x->batch_axis);
    return rc == PE_OK ? pe__alias(b, out, b->n->in[0]) : rc;
  }
  if (!x->is_const && to == PE__DT_F32) { /* an int64 or bool input */
    return pe__cast_step(b, b->n->in[0], out);
  }
  if (!x->is_const || (to != PE__DT_F32 && to != PE__DT_I64 && to != 6)) {
    return ERR(PE_EUNSUPPORTED,
               "Cast to type %lld of a %s tensor; only casts to float32 of "
               "float tensors, and of constants between float32 and int64, "
               "are supported",
               (long long)to, x->is_const ? "constant" : "runtime");
  }
  rc = pe__set_shape(b, out, to == PE__DT_F32 ? PE__DT_F32 : PE__DT_I64,
                     x->rank, x->dims, x->batch_axis);
  if (rc != PE_OK) {
    return rc;
  }
  pe__tensor_t *o = T(b, out);
  if (to == PE__DT_F32) {
    if ((rc = pe__const_f(b, out)) != PE_OK) {
      return rc;
    }
    for (int64_t k = 0; k < o->numel; k++) {
      o->f[k] = x->dtype == PE__DT_F32 ? x->f[k] : (float)x->i[k];
    }
    return PE_OK;
  }
  if ((rc = pe__const_i(b, out)) != PE_OK) {
    return rc;
  }
  for (int64_t k = 0; k < o->numel; k++) {
    if (x->dtype == PE__DT_I64) {
      o->i[k] = x->i[k];
      o->mark[k] = (uint8_t)pe__marked(x, k);
    } else {
      float v = x->f[k];
      o->i[k] = isfinite(v) && fabsf(v) < 9e18f ? (int64_t)v : 0;
    }
  }
  return PE_OK;
}

/* Shape: folded; the batch dimension becomes a marked element. */
int pe__op_shape(pe__b_t *b) {
  int rc = pe__check_attrs(b, "start,end");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *x = pe__in(b, 0);
  int r = x->rank;
  int64_t s = pe__attr_i(b, "start", 0), e = pe__attr_i(b, "end", r);
  s = s < 0 ? s + r : s;
  e = e < 0 ? e + r : e;
  s = s < 0 ? 0 : (s > r ? r : s);
  e = e < 0 ? 0 : (e > r ? r : e);
  int64_t n = e > s ? e - s : 0;
  int out = pe__out(b, 0);
  if ((rc = pe__set_shape(b, out, PE__DT_I64, 1, &n, -1)) != PE_OK ||
      (rc = pe__const_i(b, out)) != PE_OK) {
    return rc;
  }
  pe__tensor_t *o = T(b, out);
  for (int64_t k = 0; k < n; k++) {
    o->i[k] = x->dims[s + k];
    o->mark[k] = (uint8_t)(s + k == x->batch_axis);
  }
  return PE_OK;
}

/* ConstantOfShape: folded; a marked element in the shape makes the batch
 * axis of a constant shared by every window (stride 0). */
int pe__op_constant_of_shape(pe__b_t *b) {
  int rc = pe__check_attrs(b, "value");
  if (rc != PE_OK) {
    return rc;
  }
  const int64_t *sh;
  int64_t r;
  if ((rc = pe__const_ints(b, 0, "the shape", &sh, &r)) != PE_OK) {
    return rc;
  }
  const pe__tensor_t *st = pe__in(b, 0);
  int batch_axis = -1;
  for (int64_t k = 0; k < r; k++) {
    if (pe__marked(st, k)) {
      if (batch_axis >= 0 || sh[k] != 1) {
        return ERR(PE_EUNSUPPORTED,
                   "shape names the batch size twice, or a multiple of it");
      }
      batch_axis = (int)k;
    }
  }
  float fv = 0.0f;
  int64_t iv = 0;
  int dtype = PE__DT_F32;
  const pe__attr_t *a = pe__attr(b, "value");
  if (a != NULL && a->t != NULL) {
    if (a->t->numel != 1) {
      return ERR(PE_EMODEL, "value must hold one element");
    }
    dtype = a->t->dtype;
    if (dtype == PE__DT_F32) {
      fv = a->t->f[0];
    } else {
      iv = a->t->i[0];
    }
  }
  int out = pe__out(b, 0);
  if (r > PE__MAX_RANK) {
    return ERR(PE_EUNSUPPORTED, "rank %lld; at most %d", (long long)r,
               PE__MAX_RANK);
  }
  if ((rc = pe__set_shape(b, out, dtype, (int)r, sh, batch_axis)) != PE_OK) {
    return rc;
  }
  pe__tensor_t *o = T(b, out);
  if (dtype == PE__DT_F32) {
    if ((rc = pe__const_f(b, out)) != PE_OK) {
      return rc;
    }
    for (int64_t k = 0; k < o->numel; k++) {
      o->f[k] = fv;
    }
  } else {
    if (batch_axis >= 0) {
      return ERR(PE_EUNSUPPORTED, "an int64 tensor with a batch dimension");
    }
    if ((rc = pe__const_i(b, out)) != PE_OK) {
      return rc;
    }
    for (int64_t k = 0; k < o->numel; k++) {
      o->i[k] = iv;
    }
  }
  return PE_OK;
}

/* Unsqueeze / Squeeze: axes from the attribute (opset < 13) or input 1. */
static int pe__axes(pe__b_t *b, const int64_t **axes, int64_t *n) {
  if (pe__opset(b) >= 13) {
    return pe__const_ints(b, 1, "axes", axes, n);
  }
  *n = (int64_t)pe__attr_ints(b, "axes", axes);
  return PE_OK;
}

/* Unsqueeze: an alias (or a folded constant), the batch axis shifted. */
int pe__op_unsqueeze(pe__b_t *b) {
  int rc = pe__check_attrs(b, pe__opset(b) >= 13 ? "" : "axes");
  const int64_t *axes;
  int64_t na;
  if (rc != PE_OK || (rc = pe__axes(b, &axes, &na)) != PE_OK) {
    return rc;
  }
  const pe__tensor_t *x = pe__in(b, 0);
  int r = x->rank + (int)na;
  if (na <= 0 || r > PE__MAX_RANK) {
    return ERR(PE_EUNSUPPORTED, "Unsqueeze needs 1 to %d axes in all",
               PE__MAX_RANK);
  }
  int ins[PE__MAX_RANK] = {0};
  for (int64_t k = 0; k < na; k++) {
    int a = 0;
    if ((rc = pe__norm_axis(b, axes[k], r, &a, "axis")) != PE_OK) {
      return rc;
    }
    if (ins[a]) {
      return ERR(PE_EMODEL, "axis %d repeated", a);
    }
    ins[a] = 1;
  }
  int64_t dims[PE__MAX_RANK];
  int ba = -1;
  for (int d = 0, s = 0; d < r; d++) {
    if (ins[d]) {
      dims[d] = 1;
    } else {
      if (s == x->batch_axis) {
        ba = d;
      }
      dims[d] = x->dims[s++];
    }
  }
  int out = pe__out(b, 0);
  rc = pe__set_shape(b, out, x->dtype, r, dims, ba);
  return rc == PE_OK ? pe__alias(b, out, b->n->in[0]) : rc;
}

/* Squeeze: an alias; the batch axis may not be squeezed. */
int pe__op_squeeze(pe__b_t *b) {
  int rc = pe__check_attrs(b, pe__opset(b) >= 13 ? "" : "axes");
  const int64_t *axes;
  int64_t na;
  if (rc != PE_OK || (rc = pe__axes(b, &axes, &na)) != PE_OK) {
    return rc;
  }
  const pe__tensor_t *x = pe__in(b, 0);
  int del[PE__MAX_RANK] = {0};
  for (int64_t k = 0; k < na; k++) {
    int a = 0;
    if ((rc = pe__norm_axis(b, axes[k], x->rank, &a, "axis")) != PE_OK) {
      return rc;
    }
    if (a == x->batch_axis) {
      return ERR(PE_EUNSUPPORTED,
                 "Squeeze of axis %d, the batch dimension; the batch size "
                 "is not fixed",
                 a);
    }
    if (x->dims[a] != 1) {
      return ERR(PE_ESHAPE, "Squeeze of axis %d of size %lld", a,
                 (long long)x->dims[a]);
    }
    del[a] = 1;
  }
  if (na == 0) {
    for (int d = 0; d < x->rank; d++) {
      del[d] = x->dims[d] == 1 && d != x->batch_axis;
    }
  }
  int64_t dims[PE__MAX_RANK];
  int r = 0, ba = -1;
  for (int d = 0; d < x->rank; d++) {
    if (!del[d]) {
      if (d == x->batch_axis) {
        ba = r;
      }
      dims[r++] = x->dims[d];
    }
  }
  int out = pe__out(b, 0);
  rc = pe__set_shape(b, out, x->dtype, r, dims, ba);
  return rc == PE_OK ? pe__alias(b, out, b->n->in[0]) : rc;
}

/* Flatten: an alias, as long as the batch stays the leading axis. */
int pe__op_flatten(pe__b_t *b) {
  int rc = pe__check_attrs(b, "axis");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *x = pe__in(b, 0);
  int64_t axis = pe__attr_i(b, "axis", 1);
  if (axis < 0) {
    axis += x->rank;
  }
  if (axis < 0 || axis > x->rank) {
    return ERR(PE_EMODEL, "axis %lld out of range", (long long)axis);
  }
  int64_t dims[2] = {1, 1};
  for (int d = 0; d < x->rank; d++) {
    dims[d < axis ? 0 : 1] *= x->dims[d];
  }
  int ba = -1;
  if (x->batch_axis >= 0) {
    if (x->batch_axis >= axis || dims[0] != 1) {
      return ERR(PE_EUNSUPPORTED,
                 "Flatten(axis=%lld) would merge the batch dimension (axis %d) "
                 "with other dimensions; only axis > batch axis with the "
                 "leading dimensions of size 1 is supported",
                 (long long)axis, x->batch_axis);
    }
    ba = 0;
  }
  int out = pe__out(b, 0);
  rc = pe__set_shape(b, out, x->dtype, 2, dims, ba);
  return rc == PE_OK ? pe__alias(b, out, b->n->in[0]) : rc;
}

/* Reshape with a constant target: an alias; the batch axis is the marked
 * element, a 0 copying it, or the -1 when the rest accounts for one window. */
int pe__op_reshape(pe__b_t *b) {
  int rc = pe__check_attrs(b, "allowzero");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *x = pe__in(b, 0);
  const int64_t *sh;
  int64_t r;
  if ((rc = pe__const_ints(b, 1, "the target shape", &sh, &r)) != PE_OK) {
    return rc;
  }
  if (r > PE__MAX_RANK) {
    return ERR(PE_EUNSUPPORTED, "target rank %lld; at most %d", (long long)r,
               PE__MAX_RANK);
  }
  int allowzero = (int)pe__attr_i(b, "allowzero", 0);
  const pe__tensor_t *st = pe__in(b, 1);
  int64_t dims[PE__MAX_RANK];
  int ba = -1, infer = -1;
  for (int64_t k = 0; k < r; k++) {
    dims[k] = sh[k];
    if (pe__marked(st, k)) {
      if (ba >= 0) {
        return ERR(PE_EUNSUPPORTED, "target shape names the batch size twice");
      }
      ba = (int)k;
      dims[k] = sh[k]; /* windows of sh[k] rows each (batch-outer) */
    } else if (sh[k] == 0 && !allowzero) {
      if (k >= x->rank) {
        return ERR(PE_EMODEL, "0 at axis %lld beyond the input rank",
                   (long long)k);
      }
      dims[k] = x->dims[k];
      if (k == x->batch_axis) {
        ba = (int)k;
      }
    } else if (sh[k] == -1) {
      if (infer >= 0) {
        return ERR(PE_EMODEL, "two -1 in the target shape");
      }
      infer = (int)k;
    } else if (sh[k] < 0) {
      return ERR(PE_EMODEL, "target dimension %lld", (long long)sh[k]);
    }
  }
  int64_t known = 1;
  for (int64_t k = 0; k < r; k++) {
    if (k == infer) {
      continue;
    }
    if (dims[k] > 0 && known > INT64_MAX / dims[k]) {
      return ERR(PE_EMODEL, "target shape of more than 2^63 elements");
    }
    known *= dims[k];
  }
  if (x->batch_axis >= 0 && ba < 0) {
    if (infer >= 0 && known > 0 && x->numel % known == 0) {
      /* [-1, 512]: the -1 is the batch; [32, -1, 8] from [32, N, 32]: the
       * batch times 4 (each window's rows; the outer check below holds) */
      ba = infer;
      dims[infer] = x->numel / known;
      known = x->numel;
      infer = -1;
    } else if (infer < 0 && known == x->numel &&
               b->g->t[b->g->input].dims[0] == 1) {
      for (int64_t k = 0; k < r && ba < 0; k++) {
        if (dims[k] == 1) {
          ba = (int)k; /* a model exported with a fixed batch of 1 */
        }
      }
    }
    if (ba < 0) {
      return ERR(PE_EUNSUPPORTED,
                 "Reshape would merge or split the batch dimension; keep it "
                 "as its own axis (x.view(x.size(0), -1) or x.flatten(1))");
    }
  }
  if (infer >= 0) {
    if (known == 0 || x->numel % known != 0) {
      return ERR(PE_ESHAPE, "cannot infer -1: %lld elements into %lld",
                 (long long)x->numel, (long long)known);
    }
    dims[infer] = x->numel / known;
    known *= dims[infer];
  }
  if (known != x->numel) {
    return ERR(PE_ESHAPE, "Reshape of %lld elements per window into %lld",
               (long long)x->numel, (long long)known);
  }
  if (ba >= 0 && dims[ba] != 1 && T(b, pe__out(b, 0))->output_idx >= 0) {
    return ERR(PE_EUNSUPPORTED,
               "Reshape would merge or split the batch dimension of a graph "
               "output; keep it as its own axis (x.view(x.size(0), -1) or "
               "x.flatten(1))");
  }
  /* Storage is batch-major: logically the tensor is [A, N, B] (A elements
   * of a window before the batch in row-major order, B after it), stored as
   * [N, A, B]. The reshape is an alias when the output keeps A: the rows of
   * the output's batch axis before the batch (bpre) make up what the axes
   * before it do not. */
  int64_t o_in = x->bpre > 1 ? x->bpre : 1, o_out = 1;
  for (int d = 0; d < x->batch_axis; d++) {
    o_in *= x->dims[d];
  }
  for (int d = 0; d < ba; d++) {
    o_out *= dims[d];
  }
  int64_t bpre = 1;
  if (x->batch_axis >= 0) {
    if (o_out == 0 || o_in % o_out != 0 || dims[ba] % (o_in / o_out) != 0) {
      return ERR(PE_EUNSUPPORTED,
                 "Reshape would move the batch dimension across other axes "
                 "(%lld elements before it, %lld after); transpose instead",
                 (long long)o_in, (long long)o_out);
    }
    bpre = o_in / o_out;
  }
  int out = pe__out(b, 0);
  rc = pe__set_shape(b, out, x->dtype, (int)r, dims, ba);
  T(b, out)->bpre = bpre;
  return rc == PE_OK ? pe__alias(b, out, b->n->in[0]) : rc;
}

/* Strided copy step: out[i] = in[off + sum_d i_d * st_d]. */
int pe__strided(pe__b_t *b, int in, int out, int rank, const int64_t *odims,
                const int64_t *st, int64_t off) {
  pe__step_t *s = pe__step_new(b, PE__K_STRIDED);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  s->n_in = 1;
  s->in[0] = in;
  s->out[0] = out;
  /* size-1 axes dropped and axes that read on contiguously merged: the
   * same elements, fewer and longer rows for the kernels */
  int r = 0;
  for (int d = 0; d < rank; d++) {
    if (odims[d] == 1) {
      continue;
    }
    if (r > 0 && s->st[0][r - 1] == st[d] * odims[d]) {
      s->dims[r - 1] *= odims[d];
      s->st[0][r - 1] = st[d];
      continue;
    }
    s->dims[r] = odims[d];
    s->st[0][r] = st[d];
    r++;
  }
  s->rank = r;
  s->p[0] = off;
  s->p[1] = T(b, out)->numel;
  return pe__finish(b, s);
}

/* Transpose: an alias when only size-1 axes move, else a strided copy. */
int pe__op_transpose(pe__b_t *b) {
  int rc = pe__check_attrs(b, "perm");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *x = pe__in(b, 0);
  const int64_t *perm;
  size_t np = pe__attr_ints(b, "perm", &perm);
  int r = x->rank;
  int64_t p[PE__MAX_RANK];
  if (np == 0) {
    for (int d = 0; d < r; d++) {
      p[d] = r - 1 - d;
    }
  } else if ((int)np != r) {
    return ERR(PE_EMODEL, "perm has %zu entries for rank %d", np, r);
  } else {
    int seen[PE__MAX_RANK] = {0};
    for (int d = 0; d < r; d++) {
      if (perm[d] < 0 || perm[d] >= r || seen[perm[d]]) {
        return ERR(PE_EMODEL, "perm is not a permutation");
      }
      seen[perm[d]] = 1;
      p[d] = perm[d];
    }
  }
  int64_t dims[PE__MAX_RANK], ist[PE__MAX_RANK], st[PE__MAX_RANK];
  pe__contig_strides(r, x->dims, ist);
  int ba = -1;
  int order_kept = 1;
  int64_t last = -1;
  for (int d = 0; d < r; d++) {
    dims[d] = x->dims[p[d]];
    st[d] = ist[p[d]];
    if (p[d] == x->batch_axis) {
      ba = d;
    }
    if (dims[d] != 1) {
      if (p[d] < last) {
        order_kept = 0;
      }
      last = p[d];
    }
  }
  int out = pe__out(b, 0);
  if ((rc = pe__set_shape(b, out, x->dtype, r, dims, ba)) != PE_OK) {
    return rc;
  }
  if (order_kept || x->dtype != PE__DT_F32) {
    if (!order_kept) {
      return ERR(PE_EUNSUPPORTED, "Transpose of an int64 tensor");
    }
    return pe__alias(b, out, b->n->in[0]);
  }
  return pe__strided(b, b->n->in[0], out, r, dims, st, 0);
}

/* Slice with constant starts/ends/axes/steps: a strided copy (folded for
 * int64 shape vectors, marks kept). */
int pe__op_slice(pe__b_t *b) {
  int rc = pe__check_attrs(b, "");
  if (rc != PE_OK) {
    return rc;
  }
  if (pe__opset(b) < 10) {
    return ERR(PE_EUNSUPPORTED, "Slice before opset 10");
  }
  const pe__tensor_t *x = pe__in(b, 0);
  const int64_t *starts, *ends, *axes, *steps;
  int64_t ns, ne, na, nst;
  if ((rc = pe__const_ints(b, 1, "starts", &starts, &ns)) != PE_OK ||
      (rc = pe__const_ints(b, 2, "ends", &ends, &ne)) != PE_OK ||
      (rc = pe__const_ints(b, 3, "axes", &axes, &na)) != PE_OK ||
      (rc = pe__const_ints(b, 4, "steps", &steps, &nst)) != PE_OK) {
    return rc;
  }
  if (ns != ne || (axes && na != ns) || (steps && nst != ns)) {
    return ERR(PE_EMODEL, "starts, ends, axes and steps differ in length");
  }
  int r = x->rank;
  int64_t start[PE__MAX_RANK], step[PE__MAX_RANK], dims[PE__MAX_RANK];
  for (int d = 0; d < r; d++) {
    start[d] = 0;
    step[d] = 1;
    dims[d] = x->dims[d];
  }
  for (int64_t k = 0; k < ns; k++) {
    int a = 0;
    if ((rc = pe__norm_axis(b, axes ? axes[k] : k, r, &a, "axis")) != PE_OK) {
      return rc;
    }
    int64_t dim = x->dims[a];
    int64_t sp = steps ? steps[k] : 1;
    if (sp == 0) {
      return ERR(PE_EMODEL, "step 0");
    }
    if (a == x->batch_axis) {
      if (sp == 1 && starts[k] == 0 && ends[k] >= INT32_MAX) {
        continue; /* the whole batch */
      }
      return ERR(PE_EUNSUPPORTED,
                 "Slice along the batch dimension (axis %d); only the full "
                 "range is supported",
                 a);
    }
    if (x->dtype == PE__DT_I64 && pe__marked(x, 0) && ns > 0 && x->rank == 1) {
      /* slicing a shape vector: marks follow the elements (below) */
    }
    int64_t s0 = starts[k], e0 = ends[k];
    s0 = s0 < 0 ? s0 + dim : s0;
    e0 = e0 < 0 ? e0 + dim : e0;
    if (sp > 0) {
      s0 = s0 < 0 ? 0 : (s0 > dim ? dim : s0);
      e0 = e0 < 0 ? 0 : (e0 > dim ? dim : e0);
      dims[a] = e0 > s0 ? (e0 - s0 + sp - 1) / sp : 0;
    } else {
      s0 = s0 < 0 ? -1 : (s0 >= dim ? dim - 1 : s0);
      e0 = e0 < -1 ? -1 : (e0 >= dim ? dim - 1 : e0);
      dims[a] = s0 > e0 ? (s0 - e0 + (-sp) - 1) / (-sp) : 0;
    }
    start[a] = s0;
    step[a] = sp;
  }
  int out = pe__out(b, 0);
  if ((rc = pe__set_shape(b, out, x->dtype, r, dims, x->batch_axis)) != PE_OK) {
    return rc;
  }
  int64_t ist[PE__MAX_RANK], st[PE__MAX_RANK], off = 0;
  pe__contig_strides(r, x->dims, ist);
  for (int d = 0; d < r; d++) {
    off += start[d] * ist[d];
    st[d] = step[d] * ist[d];
  }
  if (x->dtype == PE__DT_I64) {
    if ((rc = pe__const_i(b, out)) != PE_OK) {
      return rc;
    }
    pe__tensor_t *o = T(b, out);
    int64_t idx[PE__MAX_RANK] = {0};
    for (int64_t k = 0; k < o->numel; k++) {
      int64_t src = off;
      for (int d = 0; d < r; d++) {
        src += idx[d] * st[d];
      }
      o->i[k] = x->i[src];
      o->mark[k] = (uint8_t)pe__marked(x, src);
      for (int d = r - 1; d >= 0; d--) {
        if (++idx[d] < dims[d]) {
          break;
        }
        idx[d] = 0;
      }
    }
    return PE_OK;
  }
  return pe__strided(b, b->n->in[0], out, r, dims, st, off);
}

/* Gather of a float32 constant (an embedding table, say) by runtime int64
 * indices: the output takes the indices' batch axis. */
static int pe__gather_runtime(pe__b_t *b, const pe__tensor_t *x,
                              const pe__tensor_t *it) {
  if (!x->is_const || x->dtype != PE__DT_F32) {
    return ERR(PE_EUNSUPPORTED,
               "Gather by runtime indices of a runtime tensor; only a float32 "
               "constant (a table) may be indexed at run time");
  }
  int a = 0;
  int rc = pe__norm_axis(b, pe__attr_i(b, "axis", 0), x->rank, &a, "axis");
  if (rc != PE_OK) {
    return rc;
  }
  int r = x->rank - 1 + it->rank;
  if (r > PE__MAX_RANK) {
    return ERR(PE_EUNSUPPORTED, "result of rank %d; at most %d", r,
               PE__MAX_RANK);
  }
  int64_t dims[PE__MAX_RANK], outer = 1, inner = 1;
  int q = 0, ba = -1;
  for (int d = 0; d < a; d++) {
    outer *= x->dims[d];
    dims[q++] = x->dims[d];
  }
  for (int d = 0; d < it->rank; d++) {
    ba = d == it->batch_axis ? q : ba;
    dims[q++] = it->dims[d];
  }
  for (int d = a + 1; d < x->rank; d++) {
    inner *= x->dims[d];
    dims[q++] = x->dims[d];
  }
  int out = pe__out(b, 0);
  if ((rc = pe__set_shape(b, out, PE__DT_F32, r, dims, ba)) != PE_OK) {
    return rc;
  }
  pe__step_t *s = pe__step_new(b, PE__K_GATHER_RT);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  s->n_in = 2;
  s->in[0] = b->n->in[0];
  s->in[1] = b->n->in[1];
  s->out[0] = out;
  s->p[0] = outer;
  s->p[1] = x->dims[a];
  s->p[2] = inner;
  s->p[3] = it->numel;
  s->flops = T(b, out)->numel;
  return pe__finish(b, s);
}

/* Gather with constant indices along an axis other than the batch. */
int pe__op_gather(pe__b_t *b) {
  int rc = pe__check_attrs(b, "axis");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *x = pe__in(b, 0), *it = pe__in(b, 1);
  if (it != NULL && !it->is_const && it->dtype == PE__DT_I64) {
    return pe__gather_runtime(b, x, it);
  }
  if (it == NULL || !it->is_const || it->dtype != PE__DT_I64) {
    return ERR(PE_EUNSUPPORTED,
               "Gather indices must be int64, constant or a runtime input");
  }
  if (x->dtype != PE__DT_F32 && !x->is_const) {
    return ERR(PE_EUNSUPPORTED, "Gather of a runtime int64 or bool tensor");
  }
  for (int64_t k = 0; k < it->numel; k++) {
    if (pe__marked(it, k)) {
      return ERR(PE_EUNSUPPORTED,
                 "Gather by an index that is a multiple of the batch size");
    }
  }
  if (x->rank - 1 + it->rank > PE__MAX_RANK) {
    return ERR(PE_EUNSUPPORTED, "Gather result of rank %d; at most %d",
               x->rank - 1 + it->rank, PE__MAX_RANK);
  }
  int a = 0;
  if ((rc = pe__norm_axis(b, pe__attr_i(b, "axis", 0), x->rank, &a, "axis")) !=
      PE_OK) {
    return rc;
  }
  if (a == x->batch_axis) {
    return ERR(PE_EUNSUPPORTED,
               "Gather along the batch dimension (axis %d) is not supported",
               a);
  }
  int64_t dim = x->dims[a];
  int64_t ni = it->numel;
  int64_t *idx = malloc((size_t)(ni ? ni : 1) * sizeof *idx);
  if (idx == NULL) {
    return PE_ENOMEM;
  }
  for (int64_t k = 0; k < ni; k++) {
    int64_t v = it->i[k] < 0 ? it->i[k] + dim : it->i[k];
    if (v < 0 || v >= dim) {
      free(idx);
      return ERR(PE_EMODEL, "index %lld out of range for dimension %lld",
                 (long long)it->i[k], (long long)dim);
    }
    idx[k] = v;
  }
  int64_t dims[PE__MAX_RANK + 1];
  int r = 0, ba = -1;
  for (int d = 0; d < x->rank; d++) {
    if (d == a) {
      for (int q = 0; q < it->rank; q++) {
        dims[r++] = it->dims[q]; /* the indices' shape, in place of axis a */
      }
      continue;
    }
    if (d == x->batch_axis) {
      ba = r;
    }
    dims[r++] = x->dims[d];
  }
  int out = pe__out(b, 0);
  if ((rc = pe__set_shape(b, out, x->dtype, r, dims, ba)) != PE_OK) {
    free(idx);
    return rc;
  }
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < a; d++) {
    outer *= x->dims[d];
  }
  for (int d = a + 1; d < x->rank; d++) {
    inner *= x->dims[d];
  }
  if (x->dtype == PE__DT_I64) {
    rc = pe__const_i(b, out);
    pe__tensor_t *o = T(b, out);
    for (int64_t q = 0; rc == PE_OK && q < outer; q++) {
      for (int64_t k = 0; k < ni; k++) {
        for (int64_t j = 0; j < inner; j++) {
          int64_t src = (q * dim + idx[k]) * inner + j;
          int64_t dst = (q * ni + k) * inner + j;
          o->i[dst] = x->i[src];
          o->mark[dst] = (uint8_t)pe__marked(x, src);
        }
      }
    }
    free(idx);
    return rc;
  }
  pe__step_t *s = pe__step_new(b, PE__K_GATHER);
  if (s == NULL) {
    free(idx);
    return PE_ENOMEM;
  }
  s->n_in = 1;
  s->in[0] = b->n->in[0];
  s->out[0] = out;
  s->p[0] = outer;
  s->p[1] = dim;
  s->p[2] = inner;
  s->idx = idx;
  s->n_idx = ni;
  return pe__finish(b, s);
}

/* Concat along an axis other than the batch (folded for int64 shapes). */
int pe__op_concat(pe__b_t *b) {
  int rc = pe__check_attrs(b, "axis");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *x0 = pe__in(b, 0);
  if (x0 == NULL) {
    return ERR(PE_EMODEL, "no inputs");
  }
  int r = x0->rank;
  int a = 0;
  if ((rc = pe__norm_axis(b, pe__attr_i(b, "axis", 0), r, &a, "axis")) !=
      PE_OK) {
    return rc;
  }
  int64_t dims[PE__MAX_RANK];
  memcpy(dims, x0->dims, sizeof dims);
  dims[a] = 0;
  int ba = -1, all_i64 = 1;
  for (int k = 0; k < b->n->n_in; k++) {
    const pe__tensor_t *x = pe__in(b, k);
    if (x == NULL || x->rank != r) {
      return ERR(PE_ESHAPE, "input %d has a different rank", k);
    }
    all_i64 &= x->dtype == PE__DT_I64;
    if (x->batch_axis >= 0) {
      if (ba >= 0 && ba != x->batch_axis) {
        return ERR(PE_EUNSUPPORTED, "inputs with the batch on different axes");
      }
      ba = x->batch_axis;
    }
    for (int d = 0; d < r; d++) {
      if (d != a && x->dims[d] != x0->dims[d]) {
        return ERR(PE_ESHAPE, "input %d differs in dimension %d", k, d);
      }
    }
    dims[a] += x->dims[a];
  }
  if (ba >= 0 && ba == a) {
    return ERR(PE_EUNSUPPORTED, "Concat along the batch dimension");
  }
  for (int k = 0; k < b->n->n_in && ba >= 0; k++) {
    const pe__tensor_t *x = pe__in(b, k);
    if (x->batch_axis < 0 && x->dims[ba] != 1) {
      return ERR(PE_EUNSUPPORTED,
                 "input %d has no batch dimension but the others do", k);
    }
  }
  int out = pe__out(b, 0);
  if ((rc = pe__set_shape(b, out, all_i64 ? PE__DT_I64 : PE__DT_F32, r, dims,
                          ba)) != PE_OK) {
    return rc;
  }
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < a; d++) {
    outer *= dims[d];
  }
  for (int d = a + 1; d < r; d++) {
    inner *= dims[d];
  }
  if (all_i64) {
    if (!pe__all_const(b)) {
      return ERR(PE_EUNSUPPORTED, "int64 Concat of runtime values");
    }
    if ((rc = pe__const_i(b, out)) != PE_OK) {
      return rc;
    }
    pe__tensor_t *o = T(b, out);
    int64_t pos = 0;
    for (int64_t q = 0; q < outer; q++) {
      for (int k = 0; k < b->n->n_in; k++) {
        const pe__tensor_t *x = pe__in(b, k);
        int64_t chunk = x->dims[a] * inner;
        for (int64_t j = 0; j < chunk; j++) {
          o->i[pos] = x->i[q * chunk + j];
          o->mark[pos++] = (uint8_t)pe__marked(x, q * chunk + j);
        }
      }
    }
    return PE_OK;
  }
  for (int k = 0; k < b->n->n_in; k++) {
    if (pe__in(b, k)->dtype != PE__DT_F32) {
      return ERR(PE_EUNSUPPORTED, "Concat of float and int64");
    }
  }
  pe__step_t *s = pe__step_new(b, PE__K_CONCAT);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  s->n_in = b->n->n_in;
  for (int k = 0; k < s->n_in; k++) {
    s->in[k] = b->n->in[k];
    s->st[k][0] = pe__in(b, k)->dims[a] * inner;
  }
  s->out[0] = out;
  s->p[0] = outer;
  s->p[1] = dims[a] * inner;
  return pe__finish(b, s);
}
