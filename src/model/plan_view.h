/* A read-only view of a loaded model's execution plan, for backends that
 * run the plan elsewhere (the `cuda` backend) and so need its steps and
 * tensors but not the importer's internals (model_impl.h stays private).
 *
 * Everything a view points to belongs to the model and is valid until
 * pe_model_destroy. Weights are the canonical (unpacked) ones, except a
 * dense step's, which are given as [K][M] floats copied out on request.
 * The numbering of kinds, activations and binary ops is the plan's own
 * (checked at compile time in plan_view.c). At load only; nothing here is
 * on a hot path. */
#ifndef PE_MODEL_PLAN_VIEW_H
#define PE_MODEL_PLAN_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "pe/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PE_PLAN_MAX_RANK 8
#define PE_PLAN_MAX_IN 16
#define PE_PLAN_NPARAM 24

typedef enum pe_plan_kind {
  PE_PLAN_COPY = 0,
  PE_PLAN_CONV1D,
  PE_PLAN_DENSE,
  PE_PLAN_MATMUL,
  PE_PLAN_UNARY,
  PE_PLAN_BINARY,
  PE_PLAN_SOFTMAX,
  PE_PLAN_STRIDED,
  PE_PLAN_GATHER,
  PE_PLAN_CONCAT,
  PE_PLAN_AFFINE,
  PE_PLAN_POOL1D,
  PE_PLAN_REDUCE_MEAN,
  PE_PLAN_LSTM,
  PE_PLAN_GRU,
  PE_PLAN_CAST,
  PE_PLAN_GATHER_RT,
  PE_PLAN_CONV2D,
  PE_PLAN_POOL2D,
  PE_PLAN_ELEMWISE,
  PE_PLAN_REDUCE,
  PE_PLAN_PAD,
  PE_PLAN_WHERE,
  PE_PLAN_LAYERNORM,
  PE_PLAN_ATTENTION,
  PE_PLAN_KIND_COUNT
} pe_plan_kind_t;

typedef enum pe_plan_act {
  PE_PLAN_ACT_NONE = 0,
  PE_PLAN_ACT_RELU,
  PE_PLAN_ACT_LEAKY,
  PE_PLAN_ACT_SIGMOID,
  PE_PLAN_ACT_TANH,
  PE_PLAN_ACT_ERF,
  PE_PLAN_ACT_SQRT,
  PE_PLAN_ACT_GELU,
  PE_PLAN_ACT_GELU_TANH,
  PE_PLAN_ACT_EXP,
  PE_PLAN_ACT_NEG,
  PE_PLAN_ACT_ABS,
  PE_PLAN_ACT_LOG,
  PE_PLAN_ACT_RECIP
} pe_plan_act_t;

typedef enum pe_plan_binop {
  PE_PLAN_OP_ADD = 0,
  PE_PLAN_OP_SUB,
  PE_PLAN_OP_MUL,
  PE_PLAN_OP_DIV,
  PE_PLAN_OP_POW,
  PE_PLAN_OP_MIN,
  PE_PLAN_OP_MAX
} pe_plan_binop_t;

/* ELEMWISE ops (ext_op; ext_f[0..1] their parameters) */
typedef enum pe_plan_ew {
  PE_PLAN_EW_CLIP = 0, /* min, max */
  PE_PLAN_EW_ELU,      /* alpha */
  PE_PLAN_EW_SELU,     /* alpha, gamma */
  PE_PLAN_EW_SOFTPLUS,
  PE_PLAN_EW_HARDSIGMOID, /* alpha, beta */
  PE_PLAN_EW_HARDSWISH
} pe_plan_ew_t;

/* PAD modes (ext_op; ext_f[0] the constant) */
typedef enum pe_plan_pad {
  PE_PLAN_PAD_CONSTANT = 0,
  PE_PLAN_PAD_REFLECT,
  PE_PLAN_PAD_EDGE
} pe_plan_pad_t;

/* ONNX element types of the runtime int64 and bool tensors a CAST step
 * reads (p[1]). */
#define PE_PLAN_DT_I64 7
#define PE_PLAN_DT_BOOL 9

typedef enum pe_plan_storage {
  PE_PLAN_ST_NONE = 0,
  PE_PLAN_ST_CONST,  /* data holds the value, one copy for every window */
  PE_PLAN_ST_INPUT,  /* the caller's input */
  PE_PLAN_ST_OUTPUT, /* the caller's output */
  PE_PLAN_ST_ARENA   /* the arena: off_ps * tile floats from its start */
} pe_plan_storage_t;

/* One tensor as the plan stores it. A window's block of a runtime tensor
 * is numel floats; window b starts at its base + b * numel. */
typedef struct pe_plan_tensor {
  const char *name;
  int64_t numel;     /* elements per window */
  int storage;       /* pe_plan_storage_t of its root */
  int root;          /* the tensor whose storage it shares (itself if none) */
  int64_t off_ps;    /* the root's arena offset, floats per window */
  const float *data; /* constants: the value; else NULL */
  int dtype;         /* ONNX element type: 1 float32 */
} pe_plan_tensor_t;

/* One step. p, rank, dims and st mean what they mean to the plan's own
 * kernels (src/model/kernels.c, per kind). */
typedef struct pe_plan_step {
  int kind; /* pe_plan_kind_t */
  const char *label;
  int n_in;
  int in[PE_PLAN_MAX_IN]; /* tensor ids, -1 absent */
  int out[3];             /* out[0]; Y_h, Y_c of LSTM/GRU, or -1 */
  int act;                /* pe_plan_act_t applied to the result */
  float alpha;
  int binop; /* pe_plan_binop_t */
  int64_t p[PE_PLAN_NPARAM];
  int rank;
  int64_t dims[PE_PLAN_MAX_RANK];
  int64_t st[PE_PLAN_MAX_IN][PE_PLAN_MAX_RANK];
  const float *w, *w2, *bias, *bias2; /* canonical, or NULL */
  const int64_t *idx;                 /* Gather indices */
  int64_t n_idx;
  int64_t dense_k, dense_m; /* dense: Y[rows][M] = X[rows][K] W^T + bias */
  /* the kinds of ops_misc.c: the op (reduce: a pe_plan_binop_t, -1 the
   * mean) and its float parameters */
  int ext_op;
  float ext_f[4];
  /* ATTENTION: the block's shape and scale; w [3E][E] and bias [3E] the
   * Q, K, V projections, w2 [E][E] and bias2 [E] the output projection
   * (has_out); mask ([H or 1][L][L], added to the scaled scores) and repl
   * (the same shape: its non-NaN entries replace the scores), or NULL */
  struct {
    int64_t L, E, H, D; /* sequence, model width, heads, head width */
    int64_t mask_h;     /* 1: a mask per head, 0: one for all */
    float scale;
    int has_out;
    const float *mask, *repl;
  } attn;
} pe_plan_step_t;

typedef struct pe_plan_shape {
  int n_steps;
  int n_tensors;
  int64_t arena_ps; /* arena floats per window */
  int64_t in_numel, out_numel;
  int64_t flops; /* per window */
} pe_plan_shape_t;

void pe_plan_shape(const pe_model_t *m, pe_plan_shape_t *out);
/* PE_EINVAL when i is out of range. A convolution or pooling step that
 * runs several items per window (a first axis of more than one [C, ...]
 * item) has no form in this view: it comes back as kind
 * PE_PLAN_KIND_COUNT, which no backend runs, with PE_EUNSUPPORTED. */
int pe_plan_step(const pe_model_t *m, int i, pe_plan_step_t *out);
int pe_plan_tensor(const pe_model_t *m, int t, pe_plan_tensor_t *out);
/* A dense step's weights as [K][M] into w_km (K * M floats). */
int pe_plan_dense_weights(const pe_model_t *m, int i, float *w_km);

#ifdef __cplusplus
}
#endif
#endif
