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

#include "model/build_impl.h"
#include "pe/error.h"

/* ---- attributes -----------------------------------------------------------
 */
const pe__attr_t *pe__attr(const pe__b_t *b, const char *name) {
  for (int i = 0; i < b->n->n_attr; i++) {
    if (strcmp(b->n->attr[i].name, name) == 0) {
      return &b->n->attr[i];
    }
  }
  return NULL;
}

/* Integer attribute `name`, def when absent. */
int64_t pe__attr_i(const pe__b_t *b, const char *name, int64_t def) {
  const pe__attr_t *a = pe__attr(b, name);
  return a && a->has_i ? a->i : def;
}

/* Float attribute `name`, def when absent. */
float pe__attr_f(const pe__b_t *b, const char *name, float def) {
  const pe__attr_t *a = pe__attr(b, name);
  return a && a->has_f ? a->f : def;
}

/* ints attribute: count (0 when absent), values in *v. */
size_t pe__attr_ints(const pe__b_t *b, const char *name, const int64_t **v) {
  const pe__attr_t *a = pe__attr(b, name);
  *v = a ? a->ints : NULL;
  return a ? a->n_ints : 0;
}

/* 1 when string attribute `name` equals val, def when absent. */
int pe__attr_s_is(const pe__b_t *b, const char *name, const char *val,
                  int def) {
  const pe__attr_t *a = pe__attr(b, name);
  if (a == NULL || !a->has_s) {
    return def;
  }
  return a->s.len == strlen(val) && memcmp(a->s.data, val, a->s.len) == 0;
}

/* Refuses any attribute not in the comma-separated list `known`. */
int pe__check_attrs(pe__b_t *b, const char *known) {
  for (int i = 0; i < b->n->n_attr; i++) {
    const char *name = b->n->attr[i].name;
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

/* Sets the per-window shape of tensor id and its element count; refuses
 * ranks above 8 and tensors over 2^22. dims[batch_axis] is the window's
 * extent on the batch axis: 1, or k when a Reshape merged the batch with
 * an axis of k (model_impl.h). */
int pe__set_shape(pe__b_t *b, int id, int dtype, int rank, const int64_t *dims,
                  int batch_axis) {
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
  t->bpre = 1;
  t->known = 1;
  return PE_OK;
}

/* Output tensor id k of the node; -1 when absent. */
int pe__out(const pe__b_t *b, int k) {
  return k < b->n->n_out ? b->n->out[k] : -1;
}

/* Folded constants are capped well below the initializer limit: a hostile
 * shape subgraph must not make the loader allocate gigabytes. */
#define PE__MAX_FOLDED ((int64_t)1 << 22)

/* Makes tensor id a float constant of its shape (zeroed); the caller
 * fills it. */
int pe__const_f(pe__b_t *b, int id) {
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
int pe__const_i(pe__b_t *b, int id) {
  pe__tensor_t *t = T(b, id);
  if (t->numel > PE__MAX_FOLDED) {
    return ERR(PE_EUNSUPPORTED,
               "a folded constant of %lld elements; at most "
               "2^22",
               (long long)t->numel);
  }
  t->is_const = 1;
  if (t->dtype != PE__DT_BOOL) {
    t->dtype = PE__DT_I64;
  }
  t->i = calloc(t->numel ? (size_t)t->numel : 1, sizeof(int64_t));
  t->mark = calloc(t->numel ? (size_t)t->numel : 1, 1);
  return t->i && t->mark ? PE_OK : PE_ENOMEM;
}

/* Output `out` shares the storage of `in` (a runtime tensor), or is a
 * copy of it (a constant). */
int pe__alias(pe__b_t *b, int out, int in) {
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
void pe__contig_strides(int rank, const int64_t *dims, int64_t *st) {
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
    static const char *const int_ok[] = {"Cast",    "Shape",   "Identity",
                                         "Reshape", "Squeeze", "Unsqueeze",
                                         "Flatten", "Gather"};
    int ok = t->is_const || t->dtype == PE__DT_F32 ||
             (k == 0 && strcmp(b->n->op, "Where") == 0); /* the condition */
    for (size_t j = 0; !ok && j < sizeof int_ok / sizeof int_ok[0]; j++) {
      ok = strcmp(b->n->op, int_ok[j]) == 0;
    }
    if (!ok && strcmp(b->n->op, "ConstantOfShape") == 0) {
      return ERR(PE_EUNSUPPORTED,
                 "input 0 '%s' is a runtime int64 tensor; the shape must be "
                 "a constant (an initializer, folded, or bound at load)",
                 t->name);
    }
    if (!ok) {
      return ERR(PE_EUNSUPPORTED,
                 "input %d '%s' is a runtime %s tensor; arithmetic is "
                 "float32 only: int64 and bool runtime tensors are read "
                 "through Cast to float32, as Gather indices or Where's "
                 "condition (and by Shape, Reshape, Squeeze, Unsqueeze, "
                 "Flatten, Identity)",
                 k, t->name, t->dtype == PE__DT_BOOL ? "bool" : "int64");
    }
  }
  return PE_OK;
}

/* 1 when every present input of the node is a constant. */
int pe__all_const(pe__b_t *b) {
  for (int k = 0; k < b->n->n_in; k++) {
    const pe__tensor_t *t = pe__in(b, k);
    if (t != NULL && !t->is_const) {
      return 0;
    }
  }
  return 1;
}

/* A possibly negative axis into [0, rank), or an error naming `what`. */
int pe__norm_axis(pe__b_t *b, int64_t axis, int rank, int *out,
                  const char *what) {
  if (axis < -rank || axis >= rank) {
    return ERR(PE_EMODEL, "%s %lld is out of range for rank %d", what,
               (long long)axis, rank);
  }
  *out = (int)(axis < 0 ? axis + rank : axis);
  return PE_OK;
}

/* A constant int64 vector input (shape, axes, starts...). */
int pe__const_ints(pe__b_t *b, int k, const char *what, const int64_t **v,
                   int64_t *n) {
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

/* The axes a Reduce* node reduces: the `axes` attribute before opset
 * `since`, the constant input 1 from then on. red[d] = 1 for each axis
 * reduced. No axes reduce every axis, or none (*noop = 1) when
 * noop_with_empty_axes is set. */
int pe__reduce_axes(pe__b_t *b, int64_t since, int rank, int *red, int *noop) {
  const int64_t *axes;
  int64_t na = 0;
  int rc = PE_OK;
  if (pe__opset(b) >= since) {
    rc = pe__const_ints(b, 1, "axes", &axes, &na);
  } else {
    na = (int64_t)pe__attr_ints(b, "axes", &axes);
  }
  for (int64_t k = 0; rc == PE_OK && k < na; k++) {
    int a = 0;
    rc = pe__norm_axis(b, axes[k], rank, &a, "axis");
    red[a] = 1;
  }
  *noop = 0;
  if (rc == PE_OK && na == 0) {
    *noop = pe__attr_i(b, "noop_with_empty_axes", 0) != 0;
    for (int d = 0; d < rank; d++) {
      red[d] = !*noop;
    }
  }
  return rc;
}

/* ---- steps
 * --------------------------------------------------------------------- */
pe__step_t *pe__step_new(pe__b_t *b, int kind) {
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
  free(s->wl);
  if (s->wg != NULL) {
    pe__step_free(s->wg);
    free(s->wg);
  }
  free(s->idx);
  free(s->ext.mask);
  free(s->ext.repl);
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
  int64_t sc = pe__step_scratch(s, 1, &pe__kernels_generic);
  float *scratch = calloc((size_t)(sc > 0 ? sc : 1), sizeof(float));
  int rc = ptr && scratch ? PE_OK : PE_ENOMEM;
  for (int k = 0; k < 3 && rc == PE_OK; k++) {
    if (s->out[k] >= 0) {
      rc = pe__const_f(b, s->out[k]);
      T(b, s->out[k])->is_const = 0; /* written by the step below */
    }
  }
  if (rc == PE_OK) {
    rc = pe__step_pack(s);
  }
  if (rc == PE_OK) {
    for (int i = 0; i < b->g->n_t; i++) {
      ptr[i] = b->g->t[i].f;
    }
    pe__exec_t x = {m, &pe__kernels_generic, ptr, scratch, 1};
    pe__step_exec(s, &x);
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
int pe__finish(pe__b_t *b, pe__step_t *s) {
  /* convolution and pooling kernels see one [C, ...] item: a window whose
   * first axis holds several (a fixed first dimension of a model without
   * a batch, or rows a Reshape merged with the batch) runs them in turn */
  if (s->kind == PE__K_CONV1D || s->kind == PE__K_CONV2D ||
      s->kind == PE__K_POOL1D || s->kind == PE__K_POOL2D) {
    const pe__tensor_t *x = T(b, s->in[0]);
    s->p[PE__P_ITEMS] = x->batch_axis <= 0 && x->rank > 0 ? x->dims[0] : 1;
    s->flops *= s->p[PE__P_ITEMS];
  }
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
/* Folds the node's int64 arithmetic (fold.c); `op` is implied by the node. */
int pe__fold_i64_binary(pe__b_t *b, int op) {
  (void)op;
  return pe__fold(b);
}

/* A constant float input k with exactly `n` elements. */
const float *pe__cf(pe__b_t *b, int k, int64_t n, const char *what, int *rc) {
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
float *pe__dup(const float *p, int64_t n) {
  float *d = malloc((size_t)(n ? n : 1) * sizeof *d);
  if (d != NULL && n > 0) {
    memcpy(d, p, (size_t)n * sizeof *d);
  }
  return d;
}

/* Ops that came into the default domain after opset 11, with the opset
 * that introduced them (from the ONNX operator changelog): a model that
 * imports an older opset cannot use them. */
static const struct {
  const char *name;
  int64_t since;
} pe__op_since[] = {
    {"Gelu", 20},      {"LessOrEqual", 12},        {"GreaterOrEqual", 12},
    {"HardSwish", 14}, {"LayerNormalization", 17},
};

static int pe__op_exists(pe__b_t *b) {
  for (size_t k = 0; k < sizeof pe__op_since / sizeof pe__op_since[0]; k++) {
    if (strcmp(pe__op_since[k].name, b->n->op) == 0 &&
        pe__opset(b) < pe__op_since[k].since) {
      return ERR(PE_EMODEL,
                 "%s exists from opset %lld on; the model imports opset %lld",
                 b->n->op, (long long)pe__op_since[k].since,
                 (long long)pe__opset(b));
    }
  }
  return PE_OK;
}

/* min_in: the inputs the op cannot do without (ONNX opsets 11 and up), each
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
    {"ReduceMean", pe__op_reduce, 1},
    {"Cast", pe__op_cast, 1},
    {"Gather", pe__op_gather, 2},
    {"Slice", pe__op_slice, 3},
    {"Shape", pe__op_shape, 1},
    {"ConstantOfShape", pe__op_constant_of_shape, 1},
    {"LSTM", pe__op_rnn, 3},
    {"GRU", pe__op_rnn, 3},
    {"GlobalMaxPool", pe__op_global_max, 1},
    /* ops_misc.c, ops_attention.c */
    {"Clip", pe__op_elemwise, 1},
    {"Elu", pe__op_elemwise, 1},
    {"Selu", pe__op_elemwise, 1},
    {"Softplus", pe__op_elemwise, 1},
    {"HardSigmoid", pe__op_elemwise, 1},
    {"HardSwish", pe__op_elemwise, 1},
    {"Min", pe__op_variadic, 1},
    {"Max", pe__op_variadic, 1},
    {"Sum", pe__op_variadic, 1},
    {"Mean", pe__op_variadic, 1},
    {"ReduceSum", pe__op_reduce, 1},
    {"ReduceMax", pe__op_reduce, 1},
    {"ReduceMin", pe__op_reduce, 1},
    {"ReduceProd", pe__op_reduce, 1},
    {"Pad", pe__op_pad, 1},
    {"Where", pe__op_where, 3},
    {"Split", pe__op_split, 1},
    {"LayerNormalization", pe__op_layernorm, 2},
};

/* Ops that treat every row of each axis they do not act on alike, so that
 * they take a tensor whose batch is merged inside another axis (bpre > 1)
 * and keep its order. They refuse acting along the batch axis themselves. */
static const char *const pe__row_wise_ops[] = {
    "Gemm",       "MatMul",
    "Add",        "Sub",
    "Mul",        "Div",
    "Pow",        "Relu",
    "LeakyRelu",  "Sigmoid",
    "Tanh",       "Gelu",
    "Erf",        "Sqrt",
    "Exp",        "Neg",
    "Abs",        "Log",
    "Reciprocal", "Softmax",
    "LogSoftmax", "Identity",
    "Dropout",    "Cast",
    "Transpose",  "Squeeze",
    "Unsqueeze",  "Clip",
    "Elu",        "Selu",
    "Softplus",   "HardSigmoid",
    "HardSwish",  "Min",
    "Max",        "Sum",
    "Mean",       "LayerNormalization"};

/* After a builder: when a runtime input has its batch merged inside another
 * axis (bpre > 1), the op must be row-wise, every runtime input must merge
 * it the same way, and the outputs inherit the order. Reshape sets its own.
 */
static int pe__batch_order(pe__b_t *b) {
  if (strcmp(b->n->op, "Reshape") == 0) {
    return PE_OK;
  }
  int64_t bpre = 0;
  for (int k = 0; k < b->n->n_in; k++) {
    const pe__tensor_t *x = pe__in(b, k);
    if (x == NULL || x->is_const || x->batch_axis < 0) {
      continue;
    }
    int64_t p = x->bpre > 1 ? x->bpre : 1;
    if (bpre != 0 && p != bpre) {
      return ERR(PE_EUNSUPPORTED,
                 "inputs merge the batch dimension with another axis in "
                 "different orders");
    }
    bpre = p;
  }
  int folded = 1; /* Shape: only the extents count */
  for (int k = 0; k < b->n->n_out; k++) {
    folded &= b->n->out[k] < 0 || T(b, b->n->out[k])->is_const;
  }
  if (bpre <= 1 || folded) {
    return PE_OK;
  }
  int row_wise = 0;
  for (size_t k = 0; k < sizeof pe__row_wise_ops / sizeof pe__row_wise_ops[0];
       k++) {
    row_wise |= strcmp(pe__row_wise_ops[k], b->n->op) == 0;
  }
  if (!row_wise) {
    return ERR(PE_EUNSUPPORTED,
               "%s of a tensor whose batch dimension a Reshape merged inside "
               "another axis ([k * N, ...] with the batch inner); only "
               "row-wise ops take one",
               b->n->op);
  }
  for (int k = 0; k < b->n->n_out; k++) {
    if (b->n->out[k] >= 0 && T(b, b->n->out[k])->batch_axis >= 0) {
      T(b, b->n->out[k])->bpre = bpre;
    }
  }
  return PE_OK;
}

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
    const pe__op_entry_t *e = NULL;
    for (size_t k = 0; k < sizeof pe__ops / sizeof pe__ops[0]; k++) {
      if (strcmp(pe__ops[k].name, b.n->op) == 0) {
        e = &pe__ops[k];
      }
    }
    int fold_only = pe__fold_only(b.n->op);
    if (e == NULL && !fold_only) {
      char list[1200];
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
                          "unsupported op '%s'; supported ops: %s; and, on "
                          "constant inputs: Mod, Equal, Less, Greater, "
                          "LessOrEqual, GreaterOrEqual, And, Or, Xor, Not, "
                          "Expand, Range",
                          b.n->op, list);
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
    int rc = pe__op_exists(&b);
    if (rc == PE_OK) {
      rc = pe__inputs_ready(&b);
    }
    if (rc == PE_OK && pe__fold_applies(&b)) {
      rc = pe__fold(&b);
    } else if (rc == PE_OK && e == NULL) {
      rc = pe__node_err(g, b.n, PE_EUNSUPPORTED,
                        "%s is supported on constant inputs only (shape and "
                        "mask computations folded at load); here an input "
                        "is computed at run time",
                        b.n->op);
    } else if (rc == PE_OK) {
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
      if (rc == PE_OK) {
        rc = pe__batch_order(&b);
      }
    }
    if (rc != PE_OK) {
      return rc;
    }
  }
  return PE_OK;
}
