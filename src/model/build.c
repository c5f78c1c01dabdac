/* Graph -> plan steps: validation, shape inference and constant folding.
 *
 * Nodes are visited once, in file order (ONNX requires topological order;
 * the importer already refused an input that no earlier node produces). For
 * each node the handler of its op type checks attributes and inputs, infers
 * the output shape per sample (see model_impl.h for the batch convention),
 * and either
 *   - folds it: every input is a constant, so the value is computed now
 *     (int64 shape arithmetic here, float ops by running the step once), or
 *   - aliases it: Reshape, Flatten, Squeeze, Unsqueeze, Identity and
 *     Transposes that only move size-1 axes change no byte of batch-major
 *     storage, so the output shares the input's buffer, or
 *   - appends one step to the plan.
 * Every refusal names the file, the node and what is supported. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_impl.h"
#include "onnx.pb-c.h"
#include "pe/error.h"

typedef struct pe__b {
  pe_model_t *m;
  pe__graph_t *g;
  const pe__node_t *n;
  const Onnx__NodeProto *np;
  int cap_step;
} pe__b_t;

#define ERR(rc, ...) pe__node_err(b->g, b->n, rc, __VA_ARGS__)

/* ---- attributes -----------------------------------------------------------
 */
static const Onnx__AttributeProto *pe__attr(const pe__b_t *b,
                                            const char *name) {
  for (size_t i = 0; i < b->np->n_attribute; i++) {
    const Onnx__AttributeProto *a = b->np->attribute[i];
    if (a->name && strcmp(a->name, name) == 0) {
      return a;
    }
  }
  return NULL;
}

/* Integer attribute `name`, def when absent. */
static int64_t pe__attr_i(const pe__b_t *b, const char *name, int64_t def) {
  const Onnx__AttributeProto *a = pe__attr(b, name);
  return a && a->has_i ? a->i : def;
}

/* Float attribute `name`, def when absent. */
static float pe__attr_f(const pe__b_t *b, const char *name, float def) {
  const Onnx__AttributeProto *a = pe__attr(b, name);
  return a && a->has_f ? a->f : def;
}

/* ints attribute: count (0 when absent), values in *v. */
static size_t pe__attr_ints(const pe__b_t *b, const char *name,
                            const int64_t **v) {
  const Onnx__AttributeProto *a = pe__attr(b, name);
  *v = a ? a->ints : NULL;
  return a ? a->n_ints : 0;
}

/* 1 when string attribute `name` equals val, def when absent. */
static int pe__attr_s_is(const pe__b_t *b, const char *name, const char *val,
                         int def) {
  const Onnx__AttributeProto *a = pe__attr(b, name);
  if (a == NULL || !a->has_s) {
    return def;
  }
  return a->s.len == strlen(val) && memcmp(a->s.data, val, a->s.len) == 0;
}

/* Refuses any attribute not in the comma-separated list `known`. */
static int pe__check_attrs(pe__b_t *b, const char *known) {
  for (size_t i = 0; i < b->np->n_attribute; i++) {
    const char *name = b->np->attribute[i]->name;
    if (name == NULL) {
      name = "";
    }
    size_t len = strlen(name);
    const char *p = known;
    int ok = 0;
    while (*p && !ok) {
      const char *e = strchr(p, ',');
      size_t l = e ? (size_t)(e - p) : strlen(p);
      ok = l == len && len > 0 && memcmp(p, name, l) == 0;
      p = e ? e + 1 : p + l;
    }
    if (!ok) {
      return ERR(PE_EUNSUPPORTED, "unsupported attribute '%s'; %s supports: %s",
                 name, b->n->op, known[0] ? known : "none");
    }
  }
  return PE_OK;
}

/* ---- tensors ----------------------------------------------------------------
 */
static pe__tensor_t *T(pe__b_t *b, int id) { return &b->g->t[id]; }

/* Input k of the node, NULL when absent or empty. */
static pe__tensor_t *pe__in(pe__b_t *b, int k) {
  return k < b->n->n_in && b->n->in[k] >= 0 ? T(b, b->n->in[k]) : NULL;
}

/* Sets the per-window shape of tensor id (the batch axis stored as 1)
 * and its element count; refuses ranks above 8 and tensors over 2^22. */
static int pe__set_shape(pe__b_t *b, int id, int dtype, int rank,
                         const int64_t *dims, int batch_axis) {
  pe__tensor_t *t = T(b, id);
  if (rank < 0 || rank > PE__MAX_RANK) {
    return ERR(PE_EUNSUPPORTED, "result of rank %d; at most %d is supported",
               rank, PE__MAX_RANK);
  }
  t->dtype = dtype;
  t->rank = rank;
  t->numel = 1;
  for (int d = 0; d < rank; d++) {
    if (dims[d] < 0) {
      return ERR(PE_ESHAPE, "result dimension %d is negative", d);
    }
    t->dims[d] = dims[d];
    if (dims[d] > 0 && t->numel > ((int64_t)1 << 22) / dims[d]) {
      return ERR(PE_EUNSUPPORTED,
                 "result has more than 2^22 elements per window");
    }
    t->numel *= dims[d];
  }
  t->batch_axis = batch_axis;
  if (batch_axis >= 0) {
    t->dims[batch_axis] = 1;
  }
  t->known = 1;
  return PE_OK;
}

/* Output tensor id k of the node; -1 when absent. */
static int pe__out(const pe__b_t *b, int k) {
  return k < b->n->n_out ? b->n->out[k] : -1;
}

/* Folded constants are capped well below the initializer limit: a hostile
 * shape subgraph must not make the loader allocate gigabytes. */
#define PE__MAX_FOLDED ((int64_t)1 << 22)

/* Makes tensor id a float constant of its shape (zeroed); the caller
 * fills it. */
static int pe__const_f(pe__b_t *b, int id) {
  pe__tensor_t *t = T(b, id);
  if (t->numel > PE__MAX_FOLDED) {
    return ERR(PE_EUNSUPPORTED,
               "a folded constant of %lld elements; at most "
               "2^22",
               (long long)t->numel);
  }
  t->is_const = 1;
  t->f = calloc(t->numel ? (size_t)t->numel : 1, sizeof(float));
  return t->f ? PE_OK : PE_ENOMEM;
}

/* Makes tensor id an int64 constant with batch marks (zeroed). */
static int pe__const_i(pe__b_t *b, int id) {
  pe__tensor_t *t = T(b, id);
  if (t->numel > PE__MAX_FOLDED) {
    return ERR(PE_EUNSUPPORTED,
               "a folded constant of %lld elements; at most "
               "2^22",
               (long long)t->numel);
  }
  t->is_const = 1;
  t->dtype = PE__DT_I64;
  t->i = calloc(t->numel ? (size_t)t->numel : 1, sizeof(int64_t));
  t->mark = calloc(t->numel ? (size_t)t->numel : 1, 1);
  return t->i && t->mark ? PE_OK : PE_ENOMEM;
}

/* 1 when element k of an int64 constant is the batch size. */
static int pe__marked(const pe__tensor_t *t, int64_t k) {
  return t->mark != NULL && t->mark[k];
}

/* Output `out` shares the storage of `in` (a runtime tensor), or is a
 * copy of it (a constant). */
static int pe__alias(pe__b_t *b, int out, int in) {
  pe__tensor_t *o = T(b, out);
  const pe__tensor_t *i = T(b, in);
  if (i->is_const) {
    /* a constant reshaped: copy it */
    if (i->dtype == PE__DT_F32) {
      int rc = pe__const_f(b, out);
      if (rc == PE_OK && o->numel > 0) {
        memcpy(o->f, i->f, (size_t)o->numel * sizeof(float));
      }
      return rc;
    }
    int rc = pe__const_i(b, out);
    if (rc == PE_OK && o->numel > 0) {
      memcpy(o->i, i->i, (size_t)o->numel * sizeof(int64_t));
      if (i->mark) {
        memcpy(o->mark, i->mark, (size_t)o->numel);
      }
    }
    return rc;
  }
  o->alias_of = in;
  return PE_OK;
}

/* C-order strides of a shape. */
static void pe__contig_strides(int rank, const int64_t *dims, int64_t *st) {
  int64_t s = 1;
  for (int d = rank - 1; d >= 0; d--) {
    st[d] = s;
    s *= dims[d];
  }
}

/* Every input must have a value (runtime float or constant). */
static int pe__inputs_ready(pe__b_t *b) {
  for (int k = 0; k < b->n->n_in; k++) {
    const pe__tensor_t *t = pe__in(b, k);
    if (t == NULL) {
      continue;
    }
    if (!t->known) {
      return ERR(PE_EMODEL,
                 "input %d '%s' has no value: it is produced by an output "
                 "this importer does not compute",
                 k, t->name);
    }
    if (!t->is_const && t->dtype != PE__DT_F32) {
      return ERR(PE_EUNSUPPORTED,
                 "input %d '%s' is a runtime non-float tensor; only float32 "
                 "runtime tensors are supported",
                 k, t->name);
    }
  }
  return PE_OK;
}

/* 1 when every present input of the node is a constant. */
static int pe__all_const(pe__b_t *b) {
  for (int k = 0; k < b->n->n_in; k++) {
    const pe__tensor_t *t = pe__in(b, k);
    if (t != NULL && !t->is_const) {
      return 0;
    }
  }
  return 1;
}

/* A possibly negative axis into [0, rank), or an error naming `what`. */
static int pe__norm_axis(pe__b_t *b, int64_t axis, int rank, int *out,
                         const char *what) {
  if (axis < -rank || axis >= rank) {
    return ERR(PE_EMODEL, "%s %lld is out of range for rank %d", what,
               (long long)axis, rank);
  }
  *out = (int)(axis < 0 ? axis + rank : axis);
  return PE_OK;
}

/* A constant int64 vector input (shape, axes, starts...). */
static int pe__const_ints(pe__b_t *b, int k, const char *what,
                          const int64_t **v, int64_t *n) {
  const pe__tensor_t *t = pe__in(b, k);
  if (t == NULL) {
    *v = NULL;
    *n = 0;
    return PE_OK;
  }
  if (!t->is_const || t->dtype != PE__DT_I64 || t->rank > 1) {
    return ERR(PE_EUNSUPPORTED,
               "%s (input %d '%s') must be a constant int64 vector; a value "
               "computed at run time is not supported",
               what, k, t->name);
  }
  *v = t->i;
  *n = t->numel;
  return PE_OK;
}

/* ---- steps
 * --------------------------------------------------------------------- */
static pe__step_t *pe__step_new(pe__b_t *b, int kind) {
  pe_model_t *m = b->m;
  if (m->n_step == b->cap_step) {
    int cap = b->cap_step ? b->cap_step * 2 : 32;
    pe__step_t *s = realloc(m->step, (size_t)cap * sizeof *s);
    if (s == NULL) {
      return NULL;
    }
    m->step = s;
    b->cap_step = cap;
  }
  pe__step_t *s = &m->step[m->n_step++];
  memset(s, 0, sizeof *s);
  s->kind = kind;
  s->node = b->n->index;
  snprintf(s->label, sizeof s->label, "%s", b->n->op);
  s->out[0] = s->out[1] = s->out[2] = -1;
  return s;
}

/* Frees what a step owns (weights, packed weights, indices). */
void pe__step_free(pe__step_t *s) {
  free(s->w);
  free(s->w2);
  free(s->bias);
  free(s->bias2);
  free(s->d.wp);
  free(s->d2.wp);
  free(s->d3.wp);
  free(s->d.bp);
  free(s->d2.bp);
  free(s->d3.bp);
  free(s->lw);
  free(s->idx);
}

/* Frees every step of the model. */
void pe__steps_free(pe_model_t *m) {
  for (int i = 0; i < m->n_step; i++) {
    pe__step_free(&m->step[i]);
  }
  free(m->step);
  m->step = NULL;
  m->n_step = 0;
}

/* Runs the just-built last step now, on constant inputs, and turns its
 * outputs into constants. */
static int pe__fold_last(pe__b_t *b) {
  pe_model_t *m = b->m;
  pe__step_t *s = &m->step[m->n_step - 1];
  float **ptr = calloc((size_t)b->g->n_t, sizeof *ptr);
  int64_t sc = pe__step_scratch(s, 1, 0);
  float *scratch = calloc((size_t)(sc > 0 ? sc : 1), sizeof(float));
  int rc = ptr && scratch ? PE_OK : PE_ENOMEM;
  for (int k = 0; k < 3 && rc == PE_OK; k++) {
    if (s->out[k] >= 0) {
      rc = pe__const_f(b, s->out[k]);
      T(b, s->out[k])->is_const = 0; /* written by the step below */
    }
  }
  if (rc == PE_OK) {
    for (int i = 0; i < b->g->n_t; i++) {
      ptr[i] = b->g->t[i].f;
    }
    pe__step_pack(s);
    pe__exec_t x = {m, ptr, scratch, 1};
    pe__step_exec(s, &x, 0);
    for (int k = 0; k < 3; k++) {
      if (s->out[k] >= 0) {
        T(b, s->out[k])->is_const = 1;
      }
    }
  }
  free(ptr);
  free(scratch);
  pe__step_free(s);
  m->n_step--;
  return rc;
}

/* Common end of a handler that appended a step: fold it if every input is
 * constant, else count the uses. */
static int pe__finish(pe__b_t *b, pe__step_t *s) {
  int all_const = 1;
  for (int k = 0; k < s->n_in; k++) {
    if (s->in[k] >= 0 && !T(b, s->in[k])->is_const) {
      all_const = 0;
    }
  }
  if (all_const) {
    return pe__fold_last(b);
  }
  return PE_OK;
}

/* ---- int64 constant arithmetic (shape subgraphs) ------------------------ */
static int pe__fold_i64_binary(pe__b_t *b, int op) {
  const pe__tensor_t *x = pe__in(b, 0), *y = pe__in(b, 1);
  int out = pe__out(b, 0);
  if (x->numel != y->numel && x->numel != 1 && y->numel != 1) {
    return ERR(PE_EUNSUPPORTED,
               "int64 broadcasting of %lld by %lld elements; only equal sizes "
               "or a scalar are supported in shape arithmetic",
               (long long)x->numel, (long long)y->numel);
  }
  const pe__tensor_t *big = x->numel >= y->numel ? x : y;
  int rc = pe__set_shape(b, out, PE__DT_I64, big->rank, big->dims, -1);
  if (rc == PE_OK) {
    rc = pe__const_i(b, out);
  }
  if (rc != PE_OK) {
    return rc;
  }
  pe__tensor_t *o = T(b, out);
  for (int64_t k = 0; k < o->numel; k++) {
    int64_t kx = x->numel == 1 ? 0 : k, ky = y->numel == 1 ? 0 : k;
    int64_t a = x->i[kx], c = y->i[ky];
    int ma = pe__marked(x, kx), mc = pe__marked(y, ky);
    if (ma || mc) {
      /* N * 1, N / 1 keep the batch size; anything else depends on it. */
      int ok = (op == PE__OP_MUL &&
                ((ma && !mc && c == 1) || (mc && !ma && a == 1))) ||
               (op == PE__OP_DIV && ma && !mc && c == 1);
      if (!ok) {
        return ERR(PE_EUNSUPPORTED,
                   "shape arithmetic on the batch size; the batch dimension "
                   "must pass through shape subgraphs unchanged");
      }
      o->i[k] = 1;
      o->mark[k] = 1;
      continue;
    }
    switch (op) {
    case PE__OP_ADD:
      o->i[k] = a + c;
      break;
    case PE__OP_SUB:
      o->i[k] = a - c;
      break;
    case PE__OP_MUL:
      o->i[k] = a * c;
      break;
    default:
      if (c == 0) {
        return ERR(PE_EMODEL, "int64 division by zero");
      }
      o->i[k] = a / c;
      break;
    }
  }
  return PE_OK;
}

/* ---- op handlers ------------------------------------------------------------
 */
static int pe__op_constant(pe__b_t *b) {
  int rc =
      pe__check_attrs(b, "value,value_float,value_floats,value_int,value_ints");
  if (rc != PE_OK) {
    return rc;
  }
  int out = pe__out(b, 0);
  const Onnx__AttributeProto *a;
  if ((a = pe__attr(b, "value")) != NULL && a->t != NULL) {
    rc = pe__onnx_load_tensor(b->g, T(b, out), a->t, "Constant value");
    if (rc != PE_OK) {
      char msg[400];
      snprintf(msg, sizeof msg, "%s", b->g->err);
      const char *p = strstr(msg, ": ");
      return ERR(rc, "%s", p ? p + 2 : msg);
    }
    return PE_OK;
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
static int pe__op_identity(pe__b_t *b) {
  int rc =
      pe__check_attrs(b, strcmp(b->n->op, "Dropout") == 0 ? "seed,ratio" : "");
  if (rc != PE_OK) {
    return rc;
  }
  if (strcmp(b->n->op, "Dropout") == 0) {
    const pe__tensor_t *tm = pe__in(b, 2);
    if (tm != NULL && (!tm->is_const || (tm->i && tm->i[0] != 0))) {
      return ERR(PE_EUNSUPPORTED,
                 "Dropout in training mode; export the model in eval mode");
    }
  }
  const pe__tensor_t *x = pe__in(b, 0);
  if (x == NULL) {
    return ERR(PE_EMODEL, "missing input");
  }
  int out = pe__out(b, 0);
  rc = pe__set_shape(b, out, x->dtype, x->rank, x->dims, x->batch_axis);
  return rc == PE_OK ? pe__alias(b, out, b->n->in[0]) : rc;
}

/* Cast: float32 to float32 is an alias; constants convert between
 * float32 and int64 (shape arithmetic); runtime casts to other types are
 * refused. */
static int pe__op_cast(pe__b_t *b) {
  int rc = pe__check_attrs(b, "to,saturate");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *x = pe__in(b, 0);
  int64_t to = pe__attr_i(b, "to", 0);
  int out = pe__out(b, 0);
  if (to == PE__DT_F32 && x->dtype == PE__DT_F32) {
    rc = pe__set_shape(b, out, x->dtype, x->rank, x->dims, x->batch_axis);
    return rc == PE_OK ? pe__alias(b, out, b->n->in[0]) : rc;
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
static int pe__op_shape(pe__b_t *b) {
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
static int pe__op_constant_of_shape(pe__b_t *b) {
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
      if (batch_axis >= 0) {
        return ERR(PE_EUNSUPPORTED, "shape names the batch size twice");
      }
      batch_axis = (int)k;
    }
  }
  float fv = 0.0f;
  int64_t iv = 0;
  int dtype = PE__DT_F32;
  const Onnx__AttributeProto *a = pe__attr(b, "value");
  if (a != NULL && a->t != NULL) {
    pe__tensor_t tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.name = (char *)"value";
    rc = pe__onnx_load_tensor(b->g, &tmp, a->t, "ConstantOfShape value");
    if (rc == PE_OK && tmp.numel != 1) {
      rc = ERR(PE_EMODEL, "value must hold one element");
    } else if (rc == PE_OK) {
      dtype = tmp.dtype;
      if (dtype == PE__DT_F32) {
        fv = tmp.f[0];
      } else {
        iv = tmp.i[0];
      }
    } else {
      rc = ERR(rc, "value: only float32 and int64 are supported");
    }
    free(tmp.f);
    free(tmp.i);
    if (rc != PE_OK) {
      return rc;
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
  if (b->g->opset >= 13) {
    return pe__const_ints(b, 1, "axes", axes, n);
  }
  *n = (int64_t)pe__attr_ints(b, "axes", axes);
  return PE_OK;
}

/* Unsqueeze: an alias (or a folded constant), the batch axis shifted. */
static int pe__op_unsqueeze(pe__b_t *b) {
  int rc = pe__check_attrs(b, b->g->opset >= 13 ? "" : "axes");
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
static int pe__op_squeeze(pe__b_t *b) {
  int rc = pe__check_attrs(b, b->g->opset >= 13 ? "" : "axes");
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
static int pe__op_flatten(pe__b_t *b) {
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
static int pe__op_reshape(pe__b_t *b) {
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
      dims[k] = 1;
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
    if (infer >= 0 && known == x->numel) {
      ba = infer; /* [-1, 512]: the -1 is the batch */
      dims[infer] = 1;
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
  int out = pe__out(b, 0);
  rc = pe__set_shape(b, out, x->dtype, (int)r, dims, ba);
  return rc == PE_OK ? pe__alias(b, out, b->n->in[0]) : rc;
}

/* Strided copy step: out[i] = in[off + sum_d i_d * st_d]. */
static int pe__strided(pe__b_t *b, int in, int out, int rank,
                       const int64_t *odims, const int64_t *st, int64_t off) {
  pe__step_t *s = pe__step_new(b, PE__K_STRIDED);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  s->n_in = 1;
  s->in[0] = in;
  s->out[0] = out;
  s->rank = rank;
  for (int d = 0; d < rank; d++) {
    s->dims[d] = odims[d];
    s->st[0][d] = st[d];
  }
  s->p[0] = off;
  s->p[1] = T(b, out)->numel;
  return pe__finish(b, s);
}

/* Transpose: an alias when only size-1 axes move, else a strided copy. */
static int pe__op_transpose(pe__b_t *b) {
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
static int pe__op_slice(pe__b_t *b) {
  int rc = pe__check_attrs(b, "");
  if (rc != PE_OK) {
    return rc;
  }
  if (b->g->opset < 10) {
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

/* Gather with constant indices along an axis other than the batch. */
static int pe__op_gather(pe__b_t *b) {
  int rc = pe__check_attrs(b, "axis");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *x = pe__in(b, 0), *it = pe__in(b, 1);
  if (it == NULL || !it->is_const || it->dtype != PE__DT_I64) {
    return ERR(PE_EUNSUPPORTED,
               "Gather indices must be constant int64; indices computed at "
               "run time are not supported");
  }
  if (it->rank > 1 || pe__marked(it, 0)) {
    return ERR(PE_EUNSUPPORTED,
               "Gather indices of rank %d; a scalar or a "
               "vector is supported",
               it->rank);
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
      if (it->rank == 1) {
        dims[r++] = ni;
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
static int pe__op_concat(pe__b_t *b) {
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

/* x * c, x + c, x - c, c - x with a constant c that varies along at most
 * one axis and x of the output's shape: a per-channel affine step
 * y = x * s[ch] + t[ch] (the input layer of a model, often). Returns PE_OK
 * when it made the step, 1 when the op is not of that form. */
static int pe__binary_as_affine(pe__b_t *b, int binop, const pe__tensor_t *x,
                                const pe__tensor_t *y, int r,
                                const int64_t *dims, int out) {
  if (binop == PE__OP_DIV || binop == PE__OP_POW) {
    return 1;
  }
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
  s->in[0] = cside ? b->n->in[0] : b->n->in[1];
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
static int pe__op_binary(pe__b_t *b) {
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
  int64_t dims[PE__MAX_RANK], st[2][PE__MAX_RANK];
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
  if (ba >= 0 && dims[ba] != 1) {
    free(ycopy);
    return ERR(PE_EUNSUPPORTED,
               "a constant spans the batch dimension (axis %d)", ba);
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
  int out = pe__out(b, 0);
  if ((rc = pe__set_shape(b, out, PE__DT_F32, r, dims, ba)) != PE_OK) {
    free(ycopy);
    return rc;
  }
  rc = pe__binary_as_affine(b, binop, x, y, r, dims, out);
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
  s->in[0] = b->n->in[0];
  s->in[1] = b->n->in[1];
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
static int pe__op_unary(pe__b_t *b) {
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
static int pe__op_softmax(pe__b_t *b) {
  int rc = pe__check_attrs(b, "axis");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *x = pe__in(b, 0);
  int old = b->g->opset < 13;
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

/* A constant float input k with exactly `n` elements. */
static const float *pe__cf(pe__b_t *b, int k, int64_t n, const char *what,
                           int *rc) {
  const pe__tensor_t *t = pe__in(b, k);
  if (t == NULL || !t->is_const || t->dtype != PE__DT_F32 || t->numel != n) {
    *rc = ERR(PE_EUNSUPPORTED,
              "%s (input %d) must be a float32 initializer of %lld elements",
              what, k, (long long)n);
    return NULL;
  }
  return t->f;
}

/* A malloc'd copy of n floats, NULL on failure. */
static float *pe__dup(const float *p, int64_t n) {
  float *d = malloc((size_t)(n ? n : 1) * sizeof *d);
  if (d != NULL && n > 0) {
    memcpy(d, p, (size_t)n * sizeof *d);
  }
  return d;
}

/* Gemm with a constant B: a dense step, alpha and beta folded into the
 * weights and the bias. */
static int pe__op_gemm(pe__b_t *b) {
  int rc = pe__check_attrs(b, "alpha,beta,transA,transB");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *a = pe__in(b, 0), *w = pe__in(b, 1), *c = pe__in(b, 2);
  if (a == NULL || w == NULL || a->rank != 2 || w->rank != 2) {
    return ERR(PE_ESHAPE, "Gemm needs 2-D A and B");
  }
  if (pe__attr_i(b, "transA", 0) != 0 && a->batch_axis >= 0) {
    return ERR(PE_EUNSUPPORTED, "transA=1 on the batched input; only transA=0");
  }
  if (a->batch_axis > 0) {
    return ERR(PE_EUNSUPPORTED, "A must have the batch on axis 0");
  }
  if (!w->is_const || w->dtype != PE__DT_F32) {
    return ERR(PE_EUNSUPPORTED,
               "B must be a float32 initializer; a runtime B is not supported");
  }
  int tb = pe__attr_i(b, "transB", 0) != 0;
  float alpha = pe__attr_f(b, "alpha", 1.0f),
        beta = pe__attr_f(b, "beta", 1.0f);
  int64_t K = a->dims[1], M = tb ? w->dims[0] : w->dims[1];
  if ((tb ? w->dims[1] : w->dims[0]) != K) {
    return ERR(PE_ESHAPE, "A is [N,%lld] but B is [%lld,%lld]%s", (long long)K,
               (long long)w->dims[0], (long long)w->dims[1],
               tb ? " (transB=1)" : "");
  }
  if (a->is_const && a->dims[0] != 1) {
    return ERR(PE_EUNSUPPORTED, "Gemm of two constants with more than one row");
  }
  float *wc = malloc((size_t)(M * K > 0 ? M * K : 1) * sizeof *wc);
  float *bias = calloc((size_t)(M ? M : 1), sizeof *bias);
  if (wc == NULL || bias == NULL) {
    free(wc);
    free(bias);
    return PE_ENOMEM;
  }
  for (int64_t m = 0; m < M; m++) {
    for (int64_t k = 0; k < K; k++) {
      wc[m * K + k] = alpha * (tb ? w->f[m * K + k] : w->f[k * M + m]);
    }
  }
  if (c != NULL) {
    if (!c->is_const || c->dtype != PE__DT_F32 ||
        (c->numel != M && c->numel != 1) || (c->rank == 2 && c->dims[0] != 1)) {
      free(wc);
      free(bias);
      return ERR(PE_EUNSUPPORTED,
                 "C must be a float32 initializer of shape [M], [1,M] or a "
                 "scalar (M = %lld)",
                 (long long)M);
    }
    for (int64_t m = 0; m < M; m++) {
      bias[m] = beta * c->f[c->numel == 1 ? 0 : m];
    }
  }
  int out = pe__out(b, 0);
  int64_t dims[2] = {a->dims[0], M};
  if ((rc = pe__set_shape(b, out, PE__DT_F32, 2, dims, a->batch_axis)) !=
      PE_OK) {
    free(wc);
    free(bias);
    return rc;
  }
  pe__step_t *s = pe__step_new(b, PE__K_DENSE);
  if (s == NULL) {
    free(wc);
    free(bias);
    return PE_ENOMEM;
  }
  s->n_in = 1;
  s->in[0] = b->n->in[0];
  s->out[0] = out;
  s->w = wc;
  s->bias = bias;
  s->p[0] = 1;
  s->p[1] = K;
  s->p[2] = M;
  s->flops = 2 * K * M;
  return pe__finish(b, s);
}

/* MatMul with a constant second input: a dense step over every row of
 * the first. */
static int pe__op_matmul(pe__b_t *b) {
  int rc = pe__check_attrs(b, "");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *a = pe__in(b, 0), *w = pe__in(b, 1);
  if (!w->is_const || w->dtype != PE__DT_F32 || w->rank < 2) {
    return ERR(PE_EUNSUPPORTED,
               "the second input must be a float32 initializer of rank >= 2; "
               "MatMul of two runtime tensors is not supported");
  }
  for (int d = 0; d + 2 < w->rank; d++) {
    if (w->dims[d] != 1) {
      return ERR(PE_EUNSUPPORTED, "a batched (rank > 2) weight");
    }
  }
  if (a->rank < 1 || a->batch_axis == a->rank - 1) {
    return ERR(PE_EUNSUPPORTED, "the batch dimension is the contracted axis");
  }
  int64_t K = w->dims[w->rank - 2], M = w->dims[w->rank - 1];
  if (a->dims[a->rank - 1] != K) {
    return ERR(PE_ESHAPE, "inner dimensions %lld and %lld differ",
               (long long)a->dims[a->rank - 1], (long long)K);
  }
  int64_t dims[PE__MAX_RANK];
  int r = a->rank < w->rank ? w->rank : a->rank;
  int lead = r - a->rank;
  if (a->rank == 1) {
    return ERR(PE_EUNSUPPORTED, "a 1-D first input");
  }
  for (int d = 0; d < r; d++) {
    dims[d] = d - lead >= 0 ? a->dims[d - lead] : 1;
  }
  dims[r - 1] = M;
  float *wc = malloc((size_t)(M * K > 0 ? M * K : 1) * sizeof *wc);
  if (wc == NULL) {
    return PE_ENOMEM;
  }
  for (int64_t m = 0; m < M; m++) {
    for (int64_t k = 0; k < K; k++) {
      wc[m * K + k] = w->f[k * M + m];
    }
  }
  int out = pe__out(b, 0);
  if ((rc = pe__set_shape(b, out, PE__DT_F32, r, dims,
                          a->batch_axis >= 0 ? a->batch_axis + lead : -1)) !=
      PE_OK) {
    free(wc);
    return rc;
  }
  pe__step_t *s = pe__step_new(b, PE__K_DENSE);
  if (s == NULL) {
    free(wc);
    return PE_ENOMEM;
  }
  s->n_in = 1;
  s->in[0] = b->n->in[0];
  s->out[0] = out;
  s->w = wc;
  s->p[0] = a->numel / K;
  s->p[1] = K;
  s->p[2] = M;
  s->flops = 2 * s->p[0] * K * M;
  return pe__finish(b, s);
}

/* 1-D spatial attributes shared by Conv and the pools. */
static int pe__spatial(pe__b_t *b, int64_t win, int64_t k, int64_t *stride,
                       int64_t *dil, int64_t *pl, int64_t *pr, int64_t *wout,
                       int ceil_mode) {
  const int64_t *v;
  size_t n;
  *stride = 1;
  *dil = 1;
  *pl = *pr = 0;
  if ((n = pe__attr_ints(b, "strides", &v)) > 0) {
    if (n != 1 || v[0] < 1) {
      return ERR(PE_EUNSUPPORTED, "strides must be one value >= 1 (1-D)");
    }
    *stride = v[0];
  }
  if ((n = pe__attr_ints(b, "dilations", &v)) > 0) {
    if (n != 1 || v[0] < 1) {
      return ERR(PE_EUNSUPPORTED, "dilations must be one value >= 1 (1-D)");
    }
    *dil = v[0];
  }
  if ((n = pe__attr_ints(b, "pads", &v)) > 0) {
    if (n != 2 || v[0] < 0 || v[1] < 0 || v[0] > 4096 || v[1] > 4096) {
      return ERR(PE_EUNSUPPORTED, "pads must be [begin, end] >= 0 (1-D)");
    }
    *pl = v[0];
    *pr = v[1];
  }
  int64_t span = (k - 1) * *dil + 1;
  const Onnx__AttributeProto *ap = pe__attr(b, "auto_pad");
  if (ap != NULL && ap->has_s && !pe__attr_s_is(b, "auto_pad", "NOTSET", 1)) {
    if (pe__attr_s_is(b, "auto_pad", "VALID", 0)) {
      *pl = *pr = 0;
    } else if (pe__attr_s_is(b, "auto_pad", "SAME_UPPER", 0) ||
               pe__attr_s_is(b, "auto_pad", "SAME_LOWER", 0)) {
      int64_t o = (win + *stride - 1) / *stride;
      int64_t tot = (o - 1) * *stride + span - win;
      tot = tot < 0 ? 0 : tot;
      int upper = pe__attr_s_is(b, "auto_pad", "SAME_UPPER", 0);
      *pl = upper ? tot / 2 : tot - tot / 2;
      *pr = tot - *pl;
    } else {
      return ERR(PE_EUNSUPPORTED, "auto_pad must be NOTSET, VALID, SAME_UPPER "
                                  "or SAME_LOWER");
    }
  }
  int64_t avail = win + *pl + *pr - span;
  if (avail < 0) {
    return ERR(PE_ESHAPE, "kernel span %lld exceeds the padded width %lld",
               (long long)span, (long long)(win + *pl + *pr));
  }
  *wout = (ceil_mode ? (avail + *stride - 1) / *stride : avail / *stride) + 1;
  if (ceil_mode && (*wout - 1) * *stride >= win + *pl) {
    *wout -= 1;
  }
  return PE_OK;
}

/* Conv, 1-D: the canonical weights [M][C/group][k] and the bias are
 * kept for fusion and the kernels. */
static int pe__op_conv(pe__b_t *b) {
  int rc =
      pe__check_attrs(b, "auto_pad,dilations,group,kernel_shape,pads,strides");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *x = pe__in(b, 0), *w = pe__in(b, 1);
  if (x->rank != 3) {
    return ERR(PE_EUNSUPPORTED,
               "input of rank %d; only 1-D convolution (input [N, C, W]) is "
               "supported",
               x->rank);
  }
  if (x->batch_axis > 0) {
    return ERR(PE_EUNSUPPORTED, "the batch must be on axis 0");
  }
  if (w == NULL || !w->is_const || w->dtype != PE__DT_F32 || w->rank != 3) {
    return ERR(PE_EUNSUPPORTED,
               "W must be a float32 initializer [M, C/group, k]");
  }
  int64_t group = pe__attr_i(b, "group", 1);
  int64_t cin = x->dims[1], cout = w->dims[0], k = w->dims[2];
  if (group < 1 || cin % group != 0 || cout % group != 0 ||
      w->dims[1] != cin / group) {
    return ERR(PE_ESHAPE,
               "W is [%lld, %lld, %lld] for %lld input channels in %lld groups",
               (long long)w->dims[0], (long long)w->dims[1], (long long)k,
               (long long)cin, (long long)group);
  }
  const int64_t *ks;
  size_t nks = pe__attr_ints(b, "kernel_shape", &ks);
  if (nks > 0 && (nks != 1 || ks[0] != k)) {
    return ERR(PE_EUNSUPPORTED, "kernel_shape does not match W");
  }
  int64_t stride, dil, pl, pr, wout;
  if ((rc = pe__spatial(b, x->dims[2], k, &stride, &dil, &pl, &pr, &wout, 0)) !=
      PE_OK) {
    return rc;
  }
  const float *bias = NULL;
  if (pe__in(b, 2) != NULL && (bias = pe__cf(b, 2, cout, "B", &rc)) == NULL) {
    return rc;
  }
  int out = pe__out(b, 0);
  int64_t dims[3] = {x->dims[0], cout, wout};
  if ((rc = pe__set_shape(b, out, PE__DT_F32, 3, dims, x->batch_axis)) !=
      PE_OK) {
    return rc;
  }
  pe__step_t *s = pe__step_new(b, PE__K_CONV1D);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  s->n_in = 1;
  s->in[0] = b->n->in[0];
  s->out[0] = out;
  s->w = pe__dup(w->f, w->numel);
  s->bias = bias ? pe__dup(bias, cout) : calloc((size_t)cout, sizeof(float));
  if (s->w == NULL || s->bias == NULL) {
    return PE_ENOMEM;
  }
  int64_t p[10] = {cin, cout, group, k, stride, dil, pl, pr, x->dims[2], wout};
  memcpy(s->p, p, sizeof p);
  s->flops = 2 * cout * wout * (cin / group) * k;
  return pe__finish(b, s);
}

/* MaxPool, AveragePool, 1-D. */
static int pe__op_pool(pe__b_t *b) {
  int is_max = strcmp(b->n->op, "MaxPool") == 0;
  int rc = pe__check_attrs(
      b,
      is_max
          ? "auto_pad,ceil_mode,dilations,kernel_shape,pads,storage_order,"
            "strides"
          : "auto_pad,ceil_mode,count_include_pad,kernel_shape,pads,strides");
  if (rc != PE_OK) {
    return rc;
  }
  if (pe__out(b, 1) >= 0) {
    return ERR(PE_EUNSUPPORTED, "the Indices output is not supported");
  }
  const pe__tensor_t *x = pe__in(b, 0);
  if (x->rank != 3 || x->batch_axis > 0) {
    return ERR(PE_EUNSUPPORTED,
               "only 1-D pooling (input [N, C, W]) is supported");
  }
  const int64_t *ks;
  if (pe__attr_ints(b, "kernel_shape", &ks) != 1 || ks[0] < 1) {
    return ERR(PE_EUNSUPPORTED, "kernel_shape must be one value (1-D)");
  }
  int64_t stride, dil, pl, pr, wout;
  int ceil_mode = (int)pe__attr_i(b, "ceil_mode", 0);
  if ((rc = pe__spatial(b, x->dims[2], ks[0], &stride, &dil, &pl, &pr, &wout,
                        ceil_mode)) != PE_OK) {
    return rc;
  }
  int out = pe__out(b, 0);
  int64_t dims[3] = {x->dims[0], x->dims[1], wout};
  if ((rc = pe__set_shape(b, out, PE__DT_F32, 3, dims, x->batch_axis)) !=
      PE_OK) {
    return rc;
  }
  pe__step_t *s = pe__step_new(b, PE__K_POOL1D);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  s->n_in = 1;
  s->in[0] = b->n->in[0];
  s->out[0] = out;
  int64_t p[10] = {
      x->dims[1], x->dims[2], wout, ks[0],
      stride,     pl,         dil,  pe__attr_i(b, "count_include_pad", 0),
      is_max,     pr};
  memcpy(s->p, p, sizeof p);
  s->flops = x->dims[1] * wout * ks[0];
  return pe__finish(b, s);
}

/* A mean over the adjacent axes marked in red[] (not the batch). */
static int pe__reduce_step(pe__b_t *b, const pe__tensor_t *x, const int *red,
                           int keep) {
  int first = -1, last = -1;
  for (int d = 0; d < x->rank; d++) {
    if (red[d]) {
      if (d == x->batch_axis) {
        return ERR(PE_EUNSUPPORTED, "%s over the batch dimension (axis %d)",
                   b->n->op, d);
      }
      if (first < 0) {
        first = d;
      }
      last = d;
    }
  }
  for (int d = first; d >= 0 && d <= last; d++) {
    if (!red[d] && x->dims[d] != 1) {
      return ERR(PE_EUNSUPPORTED, "reduction over non-adjacent axes");
    }
  }
  int64_t outer = 1, R = 1, inner = 1, dims[PE__MAX_RANK];
  int r = 0, ba = -1;
  for (int d = 0; d < x->rank; d++) {
    if (first < 0 || d < first) {
      outer *= x->dims[d];
    } else if (d <= last) {
      R *= red[d] ? x->dims[d] : 1;
    } else {
      inner *= x->dims[d];
    }
    if (!red[d] || keep) {
      if (d == x->batch_axis) {
        ba = r;
      }
      dims[r++] = red[d] ? 1 : x->dims[d];
    }
  }
  int out = pe__out(b, 0);
  int rc = pe__set_shape(b, out, PE__DT_F32, r, dims, ba);
  if (rc != PE_OK) {
    return rc;
  }
  pe__step_t *s = pe__step_new(b, PE__K_REDUCE_MEAN);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  s->n_in = 1;
  s->in[0] = b->n->in[0];
  s->out[0] = out;
  s->p[0] = outer;
  s->p[1] = R;
  s->p[2] = inner;
  s->flops = x->numel;
  return pe__finish(b, s);
}

/* GlobalAveragePool: the mean over every axis after the channels. */
static int pe__op_global_avg(pe__b_t *b) {
  int rc = pe__check_attrs(b, "");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *x = pe__in(b, 0);
  if (x->rank < 3) {
    return ERR(PE_ESHAPE, "input of rank %d; [N, C, W...] expected", x->rank);
  }
  int red[PE__MAX_RANK] = {0};
  for (int d = 2; d < x->rank; d++) {
    red[d] = 1;
  }
  return pe__reduce_step(b, x, red, 1);
}

/* ReduceMean with the axes attribute (opset < 18). */
static int pe__op_reduce_mean(pe__b_t *b) {
  int rc = pe__check_attrs(
      b, b->g->opset >= 18 ? "keepdims,noop_with_empty_axes" : "axes,keepdims");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *x = pe__in(b, 0);
  const int64_t *axes;
  size_t na = pe__attr_ints(b, "axes", &axes);
  int red[PE__MAX_RANK] = {0};
  for (size_t k = 0; k < na; k++) {
    int a = 0;
    if ((rc = pe__norm_axis(b, axes[k], x->rank, &a, "axis")) != PE_OK) {
      return rc;
    }
    red[a] = 1;
  }
  if (na == 0) {
    for (int d = 0; d < x->rank; d++) {
      red[d] = 1;
    }
  }
  return pe__reduce_step(b, x, red, pe__attr_i(b, "keepdims", 1) != 0);
}

/* BatchNormalization, eval mode: a per-channel affine step that plan.c
 * folds into the preceding Conv or Gemm when it can. */
static int pe__op_batchnorm(pe__b_t *b) {
  int rc = pe__check_attrs(b, "epsilon,momentum,spatial,training_mode");
  if (rc != PE_OK) {
    return rc;
  }
  if (pe__attr_i(b, "training_mode", 0) != 0 || pe__out(b, 1) >= 0) {
    return ERR(PE_EUNSUPPORTED,
               "training mode; export the model in eval mode (model.eval())");
  }
  const pe__tensor_t *x = pe__in(b, 0);
  if (x->rank < 2 || x->batch_axis == 1) {
    return ERR(PE_EUNSUPPORTED, "input must be [N, C, ...]");
  }
  int64_t C = x->dims[1];
  const float *sc, *bi, *mu, *var;
  if ((sc = pe__cf(b, 1, C, "scale", &rc)) == NULL ||
      (bi = pe__cf(b, 2, C, "B", &rc)) == NULL ||
      (mu = pe__cf(b, 3, C, "mean", &rc)) == NULL ||
      (var = pe__cf(b, 4, C, "var", &rc)) == NULL) {
    return rc;
  }
  float eps = pe__attr_f(b, "epsilon", 1e-5f);
  int out = pe__out(b, 0);
  if ((rc = pe__set_shape(b, out, PE__DT_F32, x->rank, x->dims,
                          x->batch_axis)) != PE_OK) {
    return rc;
  }
  pe__step_t *s = pe__step_new(b, PE__K_AFFINE);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  s->n_in = 1;
  s->in[0] = b->n->in[0];
  s->out[0] = out;
  s->w = malloc((size_t)C * sizeof(float));
  s->bias = malloc((size_t)C * sizeof(float));
  if (s->w == NULL || s->bias == NULL) {
    return PE_ENOMEM;
  }
  for (int64_t c = 0; c < C; c++) {
    float inv = (float)(1.0 / sqrt((double)var[c] + (double)eps));
    s->w[c] = sc[c] * inv;
    s->bias[c] = bi[c] - mu[c] * s->w[c];
  }
  int64_t inner = 1;
  for (int d = 2; d < x->rank; d++) {
    inner *= x->dims[d];
  }
  s->p[0] = x->dims[0];
  s->p[1] = C;
  s->p[2] = inner;
  s->flops = 2 * x->numel;
  return pe__finish(b, s);
}

/* LSTM and GRU, forward, one layer, default activations. */
static int pe__op_rnn(pe__b_t *b) {
  int lstm = strcmp(b->n->op, "LSTM") == 0;
  int rc = pe__check_attrs(
      b, lstm ? "activation_alpha,activation_beta,activations,clip,direction,"
                "hidden_size,input_forget,layout"
              : "activation_alpha,activation_beta,activations,clip,direction,"
                "hidden_size,layout,linear_before_reset");
  if (rc != PE_OK) {
    return rc;
  }
  if (!pe__attr_s_is(b, "direction", "forward", 1)) {
    return ERR(PE_EUNSUPPORTED,
               "direction must be forward; reverse and bidirectional are not "
               "supported");
  }
  if (pe__attr(b, "clip") != NULL || pe__attr_i(b, "input_forget", 0) != 0) {
    return ERR(PE_EUNSUPPORTED, "clip and input_forget are not supported");
  }
  const Onnx__AttributeProto *acts = pe__attr(b, "activations");
  if (acts != NULL) {
    static const char *const def_lstm[] = {"Sigmoid", "Tanh", "Tanh"};
    size_t want = lstm ? 3 : 2;
    int ok = acts->n_strings == want;
    for (size_t k = 0; ok && k < want; k++) {
      const char *d = def_lstm[k];
      ok = acts->strings[k].len == strlen(d) &&
           memcmp(acts->strings[k].data, d, acts->strings[k].len) == 0;
    }
    if (!ok) {
      return ERR(PE_EUNSUPPORTED,
                 "activations other than the defaults (%s) are not supported",
                 lstm ? "Sigmoid, Tanh, Tanh" : "Sigmoid, Tanh");
    }
  }
  int layout = (int)pe__attr_i(b, "layout", 0);
  if (layout != 0 && layout != 1) {
    return ERR(PE_EUNSUPPORTED, "layout %d", layout);
  }
  int G = lstm ? 4 : 3;
  const pe__tensor_t *x = pe__in(b, 0), *W = pe__in(b, 1), *R = pe__in(b, 2);
  if (x->rank != 3 || x->batch_axis != (layout ? 0 : 1)) {
    return ERR(PE_EUNSUPPORTED,
               "X must be [seq, batch, input] (layout 0) or [batch, seq, "
               "input] (layout 1) with the batch of the model input");
  }
  int64_t seq = x->dims[layout ? 1 : 0], in = x->dims[2];
  int64_t H = pe__attr_i(b, "hidden_size", 0);
  if (W == NULL || R == NULL || !W->is_const || !R->is_const ||
      W->dtype != PE__DT_F32 || R->dtype != PE__DT_F32) {
    return ERR(PE_EUNSUPPORTED, "W and R must be float32 initializers");
  }
  if (H <= 0 && R->rank == 3) {
    H = R->dims[2];
  }
  if (H <= 0 || W->numel != G * H * in || R->numel != G * H * H) {
    return ERR(PE_ESHAPE,
               "W must be [1, %dH, %lld] and R [1, %dH, H] (H = %lld)", G,
               (long long)in, G, (long long)H);
  }
  const float *B = NULL;
  if (pe__in(b, 3) != NULL && (B = pe__cf(b, 3, 2 * G * H, "B", &rc)) == NULL) {
    return rc;
  }
  const pe__tensor_t *sl = pe__in(b, 4);
  if (sl != NULL) {
    int ok = sl->is_const && sl->dtype == PE__DT_I64;
    for (int64_t k = 0; ok && k < sl->numel; k++) {
      ok = sl->i[k] == seq;
    }
    if (!ok) {
      return ERR(PE_EUNSUPPORTED,
                 "sequence_lens must be absent or all equal to the sequence "
                 "length");
    }
  }
  int n_state = lstm ? 2 : 1;
  int state_in[2] = {-1, -1};
  for (int k = 0; k < n_state; k++) {
    const pe__tensor_t *h0 = pe__in(b, 5 + k);
    if (h0 == NULL) {
      continue;
    }
    if (h0->numel != H || h0->dtype != PE__DT_F32 ||
        (h0->batch_axis >= 0 && h0->batch_axis != (layout ? 0 : 1))) {
      return ERR(PE_ESHAPE, "%s must be [1, batch, %lld]",
                 k ? "initial_c" : "initial_h", (long long)H);
    }
    state_in[k] = b->n->in[5 + k];
  }
  if (lstm && pe__in(b, 7) != NULL) {
    return ERR(PE_EUNSUPPORTED, "peephole weights (P) are not supported");
  }
  pe__step_t *s = pe__step_new(b, lstm ? PE__K_LSTM : PE__K_GRU);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  s->n_in = 3;
  s->in[0] = b->n->in[0];
  s->in[1] = state_in[0];
  s->in[2] = state_in[1];
  int64_t GH = G * H;
  s->w = pe__dup(W->f, GH * in); /* [GH][in] */
  s->w2 = pe__dup(R->f, GH * H); /* [GH][H] */
  s->bias = calloc((size_t)GH, sizeof(float));
  s->bias2 = calloc((size_t)H, sizeof(float));
  if (!s->w || !s->w2 || !s->bias || !s->bias2) {
    return PE_ENOMEM;
  }
  int lbr = !lstm && pe__attr_i(b, "linear_before_reset", 0) != 0;
  for (int64_t j = 0; j < GH && B; j++) {
    s->bias[j] = B[j];
    if (lbr && j >= 2 * H) {
      s->bias2[j - 2 * H] = B[GH + j]; /* Rb_h stays inside r * (...) */
    } else {
      s->bias[j] += B[GH + j];
    }
  }
  s->p[0] = seq;
  s->p[1] = in;
  s->p[2] = H;
  s->p[3] = lbr;
  s->p[4] = layout;
  s->flops = seq * (2 * GH * in + 2 * GH * H + 10 * H);
  /* outputs */
  int64_t ydims[4], hdims[3];
  if (layout == 0) {
    int64_t y[4] = {seq, 1, 1, H}, h[3] = {1, 1, H};
    memcpy(ydims, y, sizeof y);
    memcpy(hdims, h, sizeof h);
  } else {
    int64_t y[4] = {1, seq, 1, H}, h[3] = {1, 1, H};
    memcpy(ydims, y, sizeof y);
    memcpy(hdims, h, sizeof h);
  }
  int ba_y = layout ? 0 : 2, ba_h = layout ? 0 : 1;
  for (int k = 0; k < 3; k++) {
    int o = pe__out(b, k);
    if (o < 0) {
      continue;
    }
    if (k == 2 && !lstm) {
      return ERR(PE_EMODEL, "GRU has two outputs");
    }
    rc = k == 0 ? pe__set_shape(b, o, PE__DT_F32, 4, ydims, ba_y)
                : pe__set_shape(b, o, PE__DT_F32, 3, hdims, ba_h);
    if (rc != PE_OK) {
      return rc;
    }
    s->out[k] = o;
  }
  if (s->out[0] < 0 && s->out[1] < 0 && s->out[2] < 0) {
    return ERR(PE_EMODEL, "no output is used");
  }
  return pe__finish(b, s);
}

/* min_in: the inputs the op cannot do without (ONNX opsets 11 to 17), each
 * checked to be present and named before fn runs, so that no builder reads
 * a missing one. */
typedef struct pe__op_entry {
  const char *name;
  int (*fn)(pe__b_t *b);
  int min_in;
} pe__op_entry_t;

static const pe__op_entry_t pe__ops[] = {
    {"Conv", pe__op_conv, 2},
    {"Gemm", pe__op_gemm, 2},
    {"MatMul", pe__op_matmul, 2},
    {"Add", pe__op_binary, 2},
    {"Sub", pe__op_binary, 2},
    {"Mul", pe__op_binary, 2},
    {"Div", pe__op_binary, 2},
    {"Pow", pe__op_binary, 2},
    {"Relu", pe__op_unary, 1},
    {"LeakyRelu", pe__op_unary, 1},
    {"Sigmoid", pe__op_unary, 1},
    {"Tanh", pe__op_unary, 1},
    {"Gelu", pe__op_unary, 1},
    {"Erf", pe__op_unary, 1},
    {"Sqrt", pe__op_unary, 1},
    {"Exp", pe__op_unary, 1},
    {"Neg", pe__op_unary, 1},
    {"Abs", pe__op_unary, 1},
    {"Log", pe__op_unary, 1},
    {"Reciprocal", pe__op_unary, 1},
    {"Softmax", pe__op_softmax, 1},
    {"LogSoftmax", pe__op_softmax, 1},
    {"Flatten", pe__op_flatten, 1},
    {"Reshape", pe__op_reshape, 2},
    {"Transpose", pe__op_transpose, 1},
    {"Squeeze", pe__op_squeeze, 1},
    {"Unsqueeze", pe__op_unsqueeze, 1},
    {"Concat", pe__op_concat, 1},
    {"Identity", pe__op_identity, 1},
    {"Dropout", pe__op_identity, 1},
    {"Constant", pe__op_constant, 0},
    {"BatchNormalization", pe__op_batchnorm, 5},
    {"MaxPool", pe__op_pool, 1},
    {"AveragePool", pe__op_pool, 1},
    {"GlobalAveragePool", pe__op_global_avg, 1},
    {"ReduceMean", pe__op_reduce_mean, 1},
    {"Cast", pe__op_cast, 1},
    {"Gather", pe__op_gather, 2},
    {"Slice", pe__op_slice, 3},
    {"Shape", pe__op_shape, 1},
    {"ConstantOfShape", pe__op_constant_of_shape, 1},
    {"LSTM", pe__op_rnn, 3},
    {"GRU", pe__op_rnn, 3},
};

const char *pe__op_name(size_t i) {
  return i < sizeof pe__ops / sizeof pe__ops[0] ? pe__ops[i].name : NULL;
}

/* Visits every node in order and builds the steps (see the top of the
 * file). Returns PE_OK or the first error, its message in g->err. */
int pe__build(pe_model_t *m) {
  pe__graph_t *g = &m->g;
  pe__b_t b;
  memset(&b, 0, sizeof b);
  b.m = m;
  b.g = g;
  for (int i = 0; i < g->n_node; i++) {
    b.n = &g->node[i];
    b.np = b.n->proto;
    const pe__op_entry_t *e = NULL;
    for (size_t k = 0; k < sizeof pe__ops / sizeof pe__ops[0]; k++) {
      if (strcmp(pe__ops[k].name, b.n->op) == 0) {
        e = &pe__ops[k];
      }
    }
    if (e == NULL) {
      char list[700];
      size_t n = 0;
      for (size_t k = 0; k < sizeof pe__ops / sizeof pe__ops[0]; k++) {
        int w = snprintf(list + n, sizeof list - n, "%s%s", k ? ", " : "",
                         pe__ops[k].name);
        if (w < 0 || (size_t)w >= sizeof list - n) {
          break;
        }
        n += (size_t)w;
      }
      return pe__node_err(g, b.n, PE_EUNSUPPORTED,
                          "unsupported op '%s'; supported ops: %s", b.n->op,
                          list);
    }
    if (b.n->n_in == 0 && strcmp(b.n->op, "Constant") != 0) {
      return pe__node_err(g, b.n, PE_EMODEL, "no inputs");
    }
    int named = 0;
    for (int k = 0; k < b.n->n_out; k++) {
      named |= b.n->out[k] >= 0;
    }
    int rnn = strcmp(b.n->op, "LSTM") == 0 || strcmp(b.n->op, "GRU") == 0;
    if ((rnn && !named) || (!rnn && b.n->out[0] < 0)) {
      return pe__node_err(g, b.n, PE_EMODEL, "output 0 has no name");
    }
    int rc = pe__inputs_ready(&b);
    for (int k = 0; rc == PE_OK && k < e->min_in; k++) {
      if (pe__in(&b, k) != NULL) {
        continue;
      }
      rc = k < b.n->n_in
               ? pe__node_err(g, b.n, PE_EMODEL, "input %d is empty", k)
               : pe__node_err(g, b.n, PE_EMODEL,
                              "input %d is missing; %s needs %d", k, b.n->op,
                              e->min_in);
    }
    if (rc == PE_OK) {
      rc = e->fn(&b);
    }
    if (rc != PE_OK) {
      return rc;
    }
  }
  return PE_OK;
}
