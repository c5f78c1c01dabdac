/* Internals shared by the op builders (src/model/build.c and ops_*.c).
 *
 * build.c walks the graph and calls one builder per node (the op table at
 * its end); each builder checks its node's attributes and inputs, infers
 * the output shape per sample (model_impl.h explains the batch
 * convention), and folds the node, aliases its output or appends a plan
 * step. The builders of one op family live in one file:
 *   ops_shape.c       Constant, Identity, Cast, Shape, ConstantOfShape,
 *                     Squeeze, Unsqueeze, Flatten, Reshape, Transpose,
 *                     Slice, Gather, Concat
 *   ops_elementwise.c unary and binary element-wise ops, Softmax
 *   ops_nn.c          Gemm, MatMul, Conv, pooling, reductions, BatchNorm
 *   ops_recurrent.c   LSTM, GRU
 *   ops_conv2d.c      Conv, MaxPool, AveragePool over [N, C, H, W],
 *                     GlobalMaxPool
 *   fold.c            int64/bool/mask computations on constants (Equal,
 *                     Where, Expand, Range, Mod, Gather, Transpose, Cast...)
 *   ops_misc.c        Clip, Elu, Selu, Softplus, HardSigmoid, HardSwish,
 *                     Min, Max, Sum, Mean, the Reduce* ops, Pad, Where,
 *                     Split
 *   ops_attention.c   MatMul of runtime tensors, LayerNormalization
 * Everything here runs at load time only. */
#ifndef PE_MODEL_BUILD_IMPL_H
#define PE_MODEL_BUILD_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "model/model_impl.h"

/* The state of one pass over the graph: the node being built. */
typedef struct pe__b {
  pe_model_t *m;
  pe__graph_t *g;
  const pe__node_t *n;
  int cap_step;
} pe__b_t;

#define ERR(rc, ...) pe__node_err(b->g, b->n, rc, __VA_ARGS__)

/* Tensor `id` of the graph. */
static inline pe__tensor_t *T(pe__b_t *b, int id) { return &b->g->t[id]; }

/* Input k of the node, NULL when absent or empty. */
static inline pe__tensor_t *pe__in(pe__b_t *b, int k) {
  return k < b->n->n_in && b->n->in[k] >= 0 ? T(b, b->n->in[k]) : NULL;
}

/* The opset of the default domain the model imports: builders consult it
 * for the operator changes between versions (attributes that became
 * inputs, new defaults). */
static inline int64_t pe__opset(const pe__b_t *b) { return b->g->opset; }

/* 1 when element k of an int64 constant is a multiple of the batch size
 * (t->i[k] times it; 1 times for the batch size itself). */
static inline int pe__marked(const pe__tensor_t *t, int64_t k) {
  return t->mark != NULL && t->mark[k];
}

/* ---- helpers (build.c) --------------------------------------------------- */
const pe__attr_t *pe__attr(const pe__b_t *b, const char *name);
int64_t pe__attr_i(const pe__b_t *b, const char *name, int64_t def);
float pe__attr_f(const pe__b_t *b, const char *name, float def);
size_t pe__attr_ints(const pe__b_t *b, const char *name, const int64_t **v);
int pe__attr_s_is(const pe__b_t *b, const char *name, const char *val, int def);
int pe__check_attrs(pe__b_t *b, const char *known);
int pe__set_shape(pe__b_t *b, int id, int dtype, int rank, const int64_t *dims,
                  int batch_axis);
int pe__out(const pe__b_t *b, int k);
int pe__const_f(pe__b_t *b, int id);
int pe__const_i(pe__b_t *b, int id);
int pe__alias(pe__b_t *b, int out, int in);
void pe__contig_strides(int rank, const int64_t *dims, int64_t *st);
int pe__all_const(pe__b_t *b);
int pe__norm_axis(pe__b_t *b, int64_t axis, int rank, int *out,
                  const char *what);
int pe__const_ints(pe__b_t *b, int k, const char *what, const int64_t **v,
                   int64_t *n);
int pe__reduce_axes(pe__b_t *b, int64_t since, int rank, int *red, int *noop);
pe__step_t *pe__step_new(pe__b_t *b, int kind);
int pe__finish(pe__b_t *b, pe__step_t *s);
int pe__fold_i64_binary(pe__b_t *b, int op);
int pe__cast_step(pe__b_t *b, int in, int out); /* ops_shape.c */

/* ---- constant folding of int64, bool and mask computations (fold.c) ------ */
int pe__fold_applies(pe__b_t *b);
int pe__fold_only(const char *op);
int pe__fold(pe__b_t *b);
const float *pe__cf(pe__b_t *b, int k, int64_t n, const char *what, int *rc);
float *pe__dup(const float *p, int64_t n);
/* helpers for ops_misc.c and ops_attention.c */
int pe__binary_build(pe__b_t *b, int binop, int xi, int yi, int out);
int pe__strided(pe__b_t *b, int in, int out, int rank, const int64_t *odims,
                const int64_t *st, int64_t off);

/* ---- builders, one per op (ops_*.c) -------------------------------------- */
int pe__op_constant(pe__b_t *b);
int pe__op_identity(pe__b_t *b);
int pe__op_cast(pe__b_t *b);
int pe__op_shape(pe__b_t *b);
int pe__op_constant_of_shape(pe__b_t *b);
int pe__op_unsqueeze(pe__b_t *b);
int pe__op_squeeze(pe__b_t *b);
int pe__op_flatten(pe__b_t *b);
int pe__op_reshape(pe__b_t *b);
int pe__op_transpose(pe__b_t *b);
int pe__op_slice(pe__b_t *b);
int pe__op_gather(pe__b_t *b);
int pe__op_concat(pe__b_t *b);
int pe__op_binary(pe__b_t *b);
int pe__op_unary(pe__b_t *b);
int pe__op_softmax(pe__b_t *b);
int pe__op_gemm(pe__b_t *b);
int pe__op_matmul(pe__b_t *b);
int pe__op_conv(pe__b_t *b);
int pe__op_pool(pe__b_t *b);
int pe__op_global_avg(pe__b_t *b);
int pe__op_batchnorm(pe__b_t *b);
int pe__op_rnn(pe__b_t *b);
int pe__op_conv2d(pe__b_t *b);
int pe__conv_step(pe__b_t *b, int kind, int rank, const int64_t *dims,
                  const int64_t *p, int np, int64_t flops);
int pe__op_pool2d(pe__b_t *b);
int pe__op_global_max(pe__b_t *b);
/* ops_misc.c */
int pe__op_elemwise(pe__b_t *b);
int pe__op_variadic(pe__b_t *b);
int pe__op_reduce(pe__b_t *b);
int pe__op_pad(pe__b_t *b);
int pe__op_where(pe__b_t *b);
int pe__op_split(pe__b_t *b);
/* ops_attention.c */
int pe__op_matmul_runtime(pe__b_t *b);
int pe__op_layernorm(pe__b_t *b);

#endif
