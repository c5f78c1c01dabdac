/* Op builders for the parametrised element-wise ops (Clip, Elu, Selu,
 * Softplus, HardSigmoid, HardSwish), the variadic ones (Min, Max, Sum,
 * Mean), the reductions (ReduceMean, ReduceSum, ReduceMax, ReduceMin,
 * ReduceProd), Pad, Where and Split. See build_impl.h; kernels in
 * kernels_misc.c. Version rules follow the ONNX operator spec: Clip takes
 * min/max as inputs from opset 11 (attributes before), Pad its pads from
 * opset 11 and axes from 18, ReduceSum its axes as an input from 13 and
 * the other reductions from 18, Split its sizes as an input from 13 and
 * num_outputs from 18. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/build_impl.h"
#include "pe/error.h"

/* A constant scalar float input k (Clip's min/max, Pad's value), or def
 * when absent. */
static int pe__scalar_in(pe__b_t *b, int k, const char *what, float def,
                         float *v) {
  const pe__tensor_t *t = pe__in(b, k);
  *v = def;
  if (t == NULL) {
    return PE_OK;
  }
  if (!t->is_const || t->numel != 1) {
    return ERR(PE_EUNSUPPORTED,
               "%s (input %d '%s') must be a constant scalar; a value "
               "computed at run time is not supported",
               what, k, t->name);
  }
  *v = t->dtype == PE__DT_F32 ? t->f[0] : (float)t->i[0];
  return PE_OK;
}

/* Clip, Elu, Selu, Softplus, HardSigmoid, HardSwish: one element-wise
 * step with up to two float parameters. */
int pe__op_elemwise(pe__b_t *b) {
  static const struct {
    const char *name, *attrs;
    int op;
    float f0, f1;
  } map[] = {
      {"Clip", "", PE__EW_CLIP, -FLT_MAX, FLT_MAX},
      {"Elu", "alpha", PE__EW_ELU, 1.0f, 0.0f},
      {"Selu", "alpha,gamma", PE__EW_SELU, 1.67326319217681884765625f,
       1.05070102214813232421875f},
      {"Softplus", "", PE__EW_SOFTPLUS, 0.0f, 0.0f},
      {"HardSigmoid", "alpha,beta", PE__EW_HARDSIGMOID, 0.2f, 0.5f},
      {"HardSwish", "", PE__EW_HARDSWISH, 1.0f / 6.0f, 0.5f},
  };
  size_t k = 0;
  while (strcmp(map[k].name, b->n->op) != 0) {
    k++;
  }
  int clip = map[k].op == PE__EW_CLIP, old_clip = clip && pe__opset(b) < 11;
  int rc = pe__check_attrs(b, old_clip ? "min,max" : map[k].attrs);
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *x = pe__in(b, 0);
  if (x->dtype != PE__DT_F32) {
    return ERR(PE_EUNSUPPORTED, "%s of an int64 tensor", b->n->op);
  }
  float f0 = map[k].f0, f1 = map[k].f1;
  if (old_clip) {
    f0 = pe__attr_f(b, "min", f0);
    f1 = pe__attr_f(b, "max", f1);
  } else if (clip) {
    if ((rc = pe__scalar_in(b, 1, "min", f0, &f0)) != PE_OK ||
        (rc = pe__scalar_in(b, 2, "max", f1, &f1)) != PE_OK) {
      return rc;
    }
  } else if (map[k].op != PE__EW_HARDSWISH) {
    f0 = pe__attr_f(b, "alpha", f0);
    f1 = pe__attr_f(b, map[k].op == PE__EW_SELU ? "gamma" : "beta", f1);
  }
  int out = pe__out(b, 0);
  if ((rc = pe__set_shape(b, out, PE__DT_F32, x->rank, x->dims,
                          x->batch_axis)) != PE_OK) {
    return rc;
  }
  pe__step_t *s = pe__step_new(b, PE__K_ELEMWISE);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  s->n_in = 1;
  s->in[0] = b->n->in[0];
  s->out[0] = out;
  s->ext.op = map[k].op;
  s->ext.f[0] = f0;
  s->ext.f[1] = f1;
  s->flops = x->numel;
  return pe__finish(b, s);
}

/* Min, Max, Sum, Mean of any number of broadcasting inputs: a chain of
 * binary steps through partial results (Mean: the sum, then a scaling). */
int pe__op_variadic(pe__b_t *b) {
  int rc = pe__check_attrs(b, "");
  if (rc != PE_OK) {
    return rc;
  }
  const char *op = b->n->op;
  int mean = strcmp(op, "Mean") == 0;
  int binop = strcmp(op, "Min") == 0   ? PE__OP_MIN
              : strcmp(op, "Max") == 0 ? PE__OP_MAX
                                       : PE__OP_ADD;
  int n = b->n->n_in, out = pe__out(b, 0);
  for (int k = 0; k < n; k++) {
    const pe__tensor_t *t = pe__in(b, k);
    if (t == NULL || t->dtype != PE__DT_F32) {
      return ERR(PE_EUNSUPPORTED,
                 "input %d is empty or not float32; %s of float32 tensors "
                 "is supported",
                 k, op);
    }
  }
  if (n == 1) {
    const pe__tensor_t *x = pe__in(b, 0);
    rc = pe__set_shape(b, out, PE__DT_F32, x->rank, x->dims, x->batch_axis);
    return rc == PE_OK ? pe__alias(b, out, b->n->in[0]) : rc;
  }
  /* partial results first: adding tensors may move the table */
  int part[PE__STEP_MAX_IN + 1];
  for (int k = 1; k < n - 1 + mean; k++) {
    char name[160];
    snprintf(name, sizeof name, "%s.pe_partial_%d", T(b, out)->name, k);
    if ((part[k] = pe__graph_add(b->g, name)) < 0) {
      return part[k];
    }
    T(b, part[k])->alias_of = -1;
    T(b, part[k])->output_idx = -1;
  }
  int scale = -1;
  if (mean) {
    char name[160];
    snprintf(name, sizeof name, "%s.pe_mean_scale", T(b, out)->name);
    if ((scale = pe__graph_add(b->g, name)) < 0) {
      return scale;
    }
    T(b, scale)->alias_of = -1;
    T(b, scale)->output_idx = -1;
    if ((rc = pe__set_shape(b, scale, PE__DT_F32, 0, NULL, -1)) != PE_OK ||
        (rc = pe__const_f(b, scale)) != PE_OK) {
      return rc;
    }
    T(b, scale)->f[0] = 1.0f / (float)n;
  }
  int acc = b->n->in[0];
  for (int k = 1; k < n && rc == PE_OK; k++) {
    int dst = k == n - 1 && !mean ? out : part[k];
    rc = pe__binary_build(b, binop, acc, b->n->in[k], dst);
    acc = dst;
  }
  if (rc == PE_OK && mean) {
    rc = pe__binary_build(b, PE__OP_MUL, acc, scale, out);
  }
  return rc;
}

/* ReduceMean, ReduceSum, ReduceMax, ReduceMin, ReduceProd over any axes
 * but the batch. */
int pe__op_reduce(pe__b_t *b) {
  const char *op = b->n->op;
  int kind = strcmp(op, "ReduceMean") == 0  ? -1
             : strcmp(op, "ReduceSum") == 0 ? PE__OP_ADD
             : strcmp(op, "ReduceMax") == 0 ? PE__OP_MAX
             : strcmp(op, "ReduceMin") == 0 ? PE__OP_MIN
                                            : PE__OP_MUL;
  const pe__tensor_t *x = pe__in(b, 0);
  if (x->dtype != PE__DT_F32) {
    return ERR(PE_EUNSUPPORTED, "%s of an int64 tensor", op);
  }
  /* the axes as an input from ReduceSum-13 and the others' 18 */
  int64_t since = kind == PE__OP_ADD ? 13 : 18;
  int rc =
      pe__check_attrs(b, pe__opset(b) >= since ? "keepdims,noop_with_empty_axes"
                                               : "axes,keepdims");
  int red[PE__MAX_RANK] = {0}, noop = 0;
  if (rc != PE_OK ||
      (rc = pe__reduce_axes(b, since, x->rank, red, &noop)) != PE_OK) {
    return rc;
  }
  if (noop) {
    int out = pe__out(b, 0);
    rc = pe__set_shape(b, out, PE__DT_F32, x->rank, x->dims, x->batch_axis);
    return rc == PE_OK ? pe__alias(b, out, b->n->in[0]) : rc;
  }
  int keep = pe__attr_i(b, "keepdims", 1) != 0;
  int64_t dims[PE__MAX_RANK], ost[PE__MAX_RANK], R = 1;
  int r = 0, ba = -1;
  for (int d = 0; d < x->rank; d++) {
    if (red[d] && d == x->batch_axis) {
      return ERR(PE_EUNSUPPORTED, "%s over the batch dimension (axis %d)", op,
                 d);
    }
    R *= red[d] ? x->dims[d] : 1;
    if (!red[d] || keep) {
      ba = d == x->batch_axis ? r : ba;
      dims[r++] = red[d] ? 1 : x->dims[d];
    }
  }
  int out = pe__out(b, 0);
  if ((rc = pe__set_shape(b, out, PE__DT_F32, r, dims, ba)) != PE_OK) {
    return rc;
  }
  /* the output offset of each input axis: 0 along the reduced ones */
  int64_t st = 1;
  for (int d = x->rank - 1; d >= 0; d--) {
    ost[d] = red[d] ? 0 : st;
    st *= red[d] ? 1 : x->dims[d];
  }
  pe__step_t *s = pe__step_new(b, PE__K_REDUCE);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  s->n_in = 1;
  s->in[0] = b->n->in[0];
  s->out[0] = out;
  s->rank = x->rank;
  memcpy(s->dims, x->dims, sizeof s->dims);
  memcpy(s->st[0], ost, sizeof ost);
  s->p[0] = T(b, out)->numel;
  s->p[1] = R;
  s->ext.op = kind;
  s->flops = x->numel;
  return pe__finish(b, s);
}

/* Pad: constant, reflect or edge, pads per axis [begins..., ends...]
 * (negative pads crop). The pads, value and axes are attributes before
 * opset 11, constant inputs from 11 (axes from 18). */
int pe__op_pad(pe__b_t *b) {
  int old = pe__opset(b) < 11;
  int rc = pe__check_attrs(b, old ? "mode,pads,value" : "mode");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *x = pe__in(b, 0);
  if (x->dtype != PE__DT_F32) {
    return ERR(PE_EUNSUPPORTED, "Pad of an int64 tensor");
  }
  int mode = pe__attr_s_is(b, "mode", "constant", 1)  ? PE__PAD_CONSTANT
             : pe__attr_s_is(b, "mode", "reflect", 0) ? PE__PAD_REFLECT
             : pe__attr_s_is(b, "mode", "edge", 0)    ? PE__PAD_EDGE
                                                      : -1;
  if (mode < 0) {
    return ERR(PE_EUNSUPPORTED, "mode must be constant, reflect or edge");
  }
  int r = x->rank;
  const int64_t *pads, *axes = NULL;
  int64_t np = 0, na = 0;
  float value = 0.0f;
  if (old) {
    np = (int64_t)pe__attr_ints(b, "pads", &pads);
    value = pe__attr_f(b, "value", 0.0f);
  } else if ((rc = pe__const_ints(b, 1, "pads", &pads, &np)) != PE_OK ||
             (rc = pe__scalar_in(b, 2, "constant_value", 0.0f, &value)) !=
                 PE_OK ||
             (rc = pe__const_ints(b, 3, "axes", &axes, &na)) != PE_OK) {
    return rc;
  }
  int nax = axes ? (int)na : r;
  if (np != 2 * nax) {
    return ERR(PE_EMODEL, "pads has %lld values for %d axes", (long long)np,
               nax);
  }
  int64_t pb[PE__MAX_RANK] = {0}, pe[PE__MAX_RANK] = {0}, dims[PE__MAX_RANK];
  for (int k = 0; k < nax; k++) {
    int a = k;
    if (axes && (rc = pe__norm_axis(b, axes[k], r, &a, "axis")) != PE_OK) {
      return rc;
    }
    pb[a] = pads[k];
    pe[a] = pads[k + nax];
  }
  for (int d = 0; d < r; d++) {
    if ((pb[d] != 0 || pe[d] != 0) && d == x->batch_axis) {
      return ERR(PE_EUNSUPPORTED, "Pad along the batch dimension (axis %d)", d);
    }
    if (pb[d] > 4096 || pe[d] > 4096 || x->dims[d] + pb[d] + pe[d] < 0) {
      return ERR(PE_ESHAPE, "pads %lld, %lld on axis %d of size %lld",
                 (long long)pb[d], (long long)pe[d], d, (long long)x->dims[d]);
    }
    if (mode == PE__PAD_REFLECT &&
        (pb[d] >= x->dims[d] || pe[d] >= x->dims[d]) &&
        (pb[d] > 0 || pe[d] > 0)) {
      return ERR(PE_ESHAPE,
                 "reflect pads %lld, %lld on axis %d of size %lld; pads must "
                 "be smaller than the axis",
                 (long long)pb[d], (long long)pe[d], d, (long long)x->dims[d]);
    }
    if (mode == PE__PAD_EDGE && x->dims[d] == 0 && (pb[d] > 0 || pe[d] > 0)) {
      return ERR(PE_ESHAPE, "edge padding of an empty axis %d", d);
    }
    dims[d] = x->dims[d] + pb[d] + pe[d];
  }
  int out = pe__out(b, 0);
  if ((rc = pe__set_shape(b, out, PE__DT_F32, r, dims, x->batch_axis)) !=
      PE_OK) {
    return rc;
  }
  pe__step_t *s = pe__step_new(b, PE__K_PAD);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  s->n_in = 1;
  s->in[0] = b->n->in[0];
  s->out[0] = out;
  s->rank = r;
  for (int d = 0; d < r; d++) {
    s->dims[d] = dims[d];
    s->st[0][d] = x->dims[d];
    s->st[1][d] = pb[d];
  }
  s->ext.op = mode;
  s->ext.f[0] = value;
  s->flops = T(b, out)->numel;
  return pe__finish(b, s);
}

/* Where(condition, X, Y), all three broadcasting, X and Y float32. A
 * constant condition (a mask) is kept in the step (s->w); a runtime bool
 * one is cast to 0/1 floats by a step before, read as the step's third
 * input. */
int pe__op_where(pe__b_t *b) {
  int rc = pe__check_attrs(b, "");
  if (rc != PE_OK) {
    return rc;
  }
  if (pe__in(b, 0) == NULL || pe__in(b, 1) == NULL || pe__in(b, 2) == NULL) {
    return ERR(PE_EMODEL, "Where needs three inputs");
  }
  if (pe__in(b, 1)->dtype != PE__DT_F32 || pe__in(b, 2)->dtype != PE__DT_F32) {
    return ERR(PE_EUNSUPPORTED,
               "Where of int64 or bool values; arithmetic is float32 only");
  }
  int cf = -1; /* the runtime condition as floats */
  if (!pe__in(b, 0)->is_const) {
    char name[160];
    snprintf(name, sizeof name, "%s.pe_condition", T(b, pe__out(b, 0))->name);
    if ((cf = pe__graph_add(b->g, name)) < 0) { /* may move the table */
      return cf;
    }
  }
  const pe__tensor_t *c = pe__in(b, 0),
                     *in[3] = {c, pe__in(b, 1), pe__in(b, 2)};
  if (cf >= 0 && c->dtype != PE__DT_BOOL) {
    return ERR(PE_EMODEL, "the condition '%s' is not bool", c->name);
  }
  int r = 0, ba = -1;
  for (int k = 0; k < 3; k++) {
    r = in[k]->rank > r ? in[k]->rank : r;
  }
  int64_t dims[PE__MAX_RANK];
  for (int d = 0; d < r; d++) {
    dims[d] = 1;
    for (int k = 0; k < 3; k++) {
      int dk = d - (r - in[k]->rank);
      int64_t v = dk >= 0 ? in[k]->dims[dk] : 1;
      if (v != 1 && dims[d] != 1 && v != dims[d]) {
        return ERR(PE_ESHAPE, "shapes do not broadcast at axis %d", d);
      }
      dims[d] = v != 1 ? v : dims[d];
      if (dk >= 0 && dk == in[k]->batch_axis) {
        if (ba >= 0 && ba != d) {
          return ERR(PE_EUNSUPPORTED,
                     "the inputs have their batch on different axes");
        }
        ba = d;
      }
    }
  }
  if (ba >= 0 && dims[ba] != 1) {
    return ERR(PE_EUNSUPPORTED,
               "a constant spans the batch dimension (axis %d)", ba);
  }
  int out = pe__out(b, 0);
  if ((rc = pe__set_shape(b, out, PE__DT_F32, r, dims, ba)) != PE_OK) {
    return rc;
  }
  if (cf >= 0 && (rc = pe__cast_step(b, b->n->in[0], cf)) != PE_OK) {
    return rc;
  }
  pe__step_t *s = pe__step_new(b, PE__K_WHERE);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  s->n_in = cf >= 0 ? 3 : 2;
  s->in[0] = b->n->in[1];
  s->in[1] = b->n->in[2];
  s->in[2] = cf;
  s->out[0] = out;
  s->rank = r;
  memcpy(s->dims, dims, sizeof dims);
  for (int k = 0; k < 3; k++) {
    int lead = r - in[k]->rank;
    int64_t st = 1;
    for (int d = r - 1; d >= 0; d--) {
      int64_t dk = d - lead >= 0 ? in[k]->dims[d - lead] : 1;
      s->st[k][d] = dk == 1 ? 0 : st;
      st *= dk;
    }
  }
  if (cf >= 0) {
    s->flops = T(b, out)->numel;
    return pe__finish(b, s);
  }
  s->w = malloc((size_t)(c->numel ? c->numel : 1) * sizeof(float));
  if (s->w == NULL) {
    return PE_ENOMEM;
  }
  for (int64_t k = 0; k < c->numel; k++) {
    s->w[k] = c->dtype == PE__DT_F32 ? (c->f[k] != 0.0f) : (c->i[k] != 0);
  }
  s->flops = T(b, out)->numel;
  return pe__finish(b, s);
}

/* Split along one axis (not the batch): one strided copy per output.
 * Sizes from the `split` attribute (before opset 13), input 1 (from 13),
 * num_outputs (from 18), else equal parts. */
int pe__op_split(pe__b_t *b) {
  int op13 = pe__opset(b) >= 13, op18 = pe__opset(b) >= 18;
  int rc = pe__check_attrs(b, op18   ? "axis,num_outputs"
                              : op13 ? "axis"
                                     : "axis,split");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *x = pe__in(b, 0);
  if (x->dtype != PE__DT_F32) {
    return ERR(PE_EUNSUPPORTED, "Split of an int64 tensor");
  }
  int a = 0, n = b->n->n_out;
  if ((rc = pe__norm_axis(b, pe__attr_i(b, "axis", 0), x->rank, &a, "axis")) !=
      PE_OK) {
    return rc;
  }
  if (a == x->batch_axis) {
    return ERR(PE_EUNSUPPORTED, "Split along the batch dimension (axis %d)", a);
  }
  const int64_t *sz = NULL;
  int64_t ns = 0;
  if (op13) {
    rc = pe__const_ints(b, 1, "split", &sz, &ns);
  } else {
    ns = (int64_t)pe__attr_ints(b, "split", &sz);
  }
  if (rc != PE_OK) {
    return rc;
  }
  int64_t dim = x->dims[a], size[4], sum = 0;
  int64_t chunk = (dim + n - 1) / n; /* num_outputs: the last may be less */
  if (op18 && pe__attr(b, "num_outputs") != NULL &&
      pe__attr_i(b, "num_outputs", 0) != n) {
    return ERR(PE_EMODEL, "num_outputs is %lld for %d outputs",
               (long long)pe__attr_i(b, "num_outputs", 0), n);
  }
  if (sz == NULL && !op18 && dim % n != 0) {
    return ERR(PE_ESHAPE, "axis of %lld does not split into %d equal parts",
               (long long)dim, n);
  }
  if (sz != NULL && ns != n) {
    return ERR(PE_EMODEL, "split has %lld sizes for %d outputs", (long long)ns,
               n);
  }
  for (int k = 0; k < n; k++) {
    size[k] = sz ? sz[k] : (dim - k * chunk < chunk ? dim - k * chunk : chunk);
    if (size[k] < 0) {
      return ERR(PE_ESHAPE, "split size %lld", (long long)size[k]);
    }
    sum += size[k];
  }
  if (sum != dim) {
    return ERR(PE_ESHAPE, "split sizes add up to %lld, the axis is %lld",
               (long long)sum, (long long)dim);
  }
  int64_t ist[PE__MAX_RANK], dims[PE__MAX_RANK], off = 0;
  pe__contig_strides(x->rank, x->dims, ist);
  memcpy(dims, x->dims, sizeof dims);
  for (int k = 0; k < n && rc == PE_OK; k++) {
    int out = pe__out(b, k);
    dims[a] = size[k];
    if (out >= 0) {
      rc = pe__set_shape(b, out, PE__DT_F32, x->rank, dims, x->batch_axis);
      if (rc == PE_OK) {
        rc = pe__strided(b, b->n->in[0], out, x->rank, dims, ist, off * ist[a]);
      }
    }
    off += size[k];
  }
  return rc;
}
