/* Internals of the ONNX importer and the CPU execution plan (src/model/).
 *
 * The pipeline, all at load time:
 *   onnx_import.c  protobuf-c parse of a memory buffer -> pe__graph_t
 *                  (tensors by name, nodes in file order, metadata)
 *   build.c,       per node, in topological order: validation, shape
 *   ops_*.c        inference, constant folding (shape subgraphs included),
 *                  and one plan step per runtime node (build_impl.h)
 *   plan.c         fusion (BatchNorm into Conv/Gemm, bias, activations),
 *                  dead-step removal, weight packing, arena layout, and the
 *                  run loop over tiles of samples
 *   fuse_attention.c  the self-attention block as one step (from plan.c)
 *   kernels*.c     the step kernels: portable C and AVX2/FMA
 *
 * The batch dimension. Every runtime tensor is stored batch-major: sample b
 * of tensor t lives at base + b * numel(t), where numel is the element count
 * of ONE sample. Shapes are kept per sample: the logical ONNX shape with the
 * batch dimension set to 1, and `batch_axis` saying where it is (-1 for a
 * tensor that is the same for every sample, such as a weight). Ops may move
 * the batch axis (Transpose, the [seq, batch, feature] layout of LSTM/GRU)
 * but never mix samples; an op that would is rejected at load. Shape
 * subgraphs are folded with the batch size kept symbolic: an int64 constant
 * element that equals the batch size carries a mark, so the plan is the same
 * for every batch size and is built once. */
#ifndef PE_MODEL_MODEL_IMPL_H
#define PE_MODEL_MODEL_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "pe/model.h"

#define PE__MAX_RANK 8
#define PE__STEP_MAX_IN 16

typedef enum pe__dtype {
  PE__DT_NONE = 0,
  PE__DT_F32 = 1,
  PE__DT_I64 = 7
} pe__dtype_t;

typedef struct pe__tensor {
  char *name;
  int known; /* shape inferred (or an initializer) */
  int dtype; /* pe__dtype_t */
  int rank;
  int64_t dims[PE__MAX_RANK]; /* batch dimension stored as 1 */
  int batch_axis;             /* -1: same for every sample */
  int64_t numel;              /* elements per sample */
  /* Constant value (initializer, Constant, folded): one copy shared by every
   * sample (batch stride 0). int64 constants also carry `mark`: 1 for an
   * element whose value is the batch size (stored as 1). */
  int is_const;
  float *f;
  int64_t *i;
  uint8_t *mark;
  int is_input;   /* the runtime graph input */
  int output_idx; /* index among graph outputs, or -1 */
  int n_uses;     /* consumers among runtime steps */
  /* plan */
  int alias_of;   /* tensor whose storage this one shares (Reshape...), or -1 */
  int64_t off_ps; /* arena offset, floats per sample of the tile */
  int storage;    /* pe__storage_t */
} pe__tensor_t;

typedef enum pe__storage {
  PE__ST_NONE = 0,
  PE__ST_CONST,
  PE__ST_INPUT,
  PE__ST_OUTPUT,
  PE__ST_ARENA
} pe__storage_t;

typedef struct pe__node {
  int index; /* position in the file */
  const char *name;
  const char *op;
  const void *proto; /* Onnx__NodeProto *, valid during load only */
  int n_in, n_out;
  int in[PE__STEP_MAX_IN]; /* tensor ids, -1 for an empty optional input */
  int out[4];
} pe__node_t;

typedef struct pe__graph {
  const char *path; /* for messages */
  int64_t ir_version;
  int64_t opset;
  char *producer;
  pe__tensor_t *t;
  int n_t, cap_t;
  int *hash; /* open addressing over tensor names: id + 1, 0 empty */
  int hash_cap;
  pe__node_t *node;
  int n_node;
  int input; /* the one runtime input tensor */
  int outputs[PE_MODEL_MAX_IO];
  int n_outputs;
  int n_meta;
  char *meta_key[PE_MODEL_MAX_META];
  char *meta_val[PE_MODEL_MAX_META];
  char *err;
  size_t err_cap;
} pe__graph_t;

/* ---- plan steps --------------------------------------------------------- */
typedef enum pe__kind {
  PE__K_COPY = 0, /* numel floats */
  PE__K_CONV1D,
  PE__K_DENSE,  /* rows x K times K x M (+bias, act) */
  PE__K_MATMUL, /* per sample, both operands runtime or either const */
  PE__K_UNARY,
  PE__K_BINARY,  /* broadcasting, per sample */
  PE__K_SOFTMAX, /* outer x axis x inner; log variant by `act` */
  PE__K_STRIDED, /* N-d strided copy: Transpose, Slice, Gather of one index */
  PE__K_GATHER,  /* index select along one axis */
  PE__K_CONCAT,
  PE__K_AFFINE, /* per channel x*s + t (a BatchNorm that cannot fold) */
  PE__K_POOL1D,
  PE__K_REDUCE_MEAN,
  PE__K_LSTM,
  PE__K_GRU,
  /* ops_misc.c, ops_attention.c (kernels_misc.c, kernels_attention.c) */
  PE__K_ELEMWISE,  /* parametrised element-wise op: ext.op a pe__ew_t */
  PE__K_REDUCE,    /* any axes; ext.op a pe__binop_t, or -1 the mean */
  PE__K_PAD,       /* N-d pad, ext.op a pe__pad_t, ext.f[0] the value */
  PE__K_WHERE,     /* broadcasting select, condition constant (s->w) */
  PE__K_LAYERNORM, /* rows x len, scale s->w, bias s->bias, eps ext.f[0] */
  PE__K_ATTENTION, /* fused self-attention block (pe__attn_t) */
  PE__K_COUNT
} pe__kind_t;

typedef enum pe__act {
  PE__ACT_NONE = 0,
  PE__ACT_RELU,
  PE__ACT_LEAKY,
  PE__ACT_SIGMOID,
  PE__ACT_TANH,
  PE__ACT_ERF,
  PE__ACT_SQRT,
  PE__ACT_GELU,
  PE__ACT_GELU_TANH,
  PE__ACT_EXP,
  PE__ACT_NEG,
  PE__ACT_ABS,
  PE__ACT_LOG,
  PE__ACT_RECIP
} pe__act_t;

typedef enum pe__binop {
  PE__OP_ADD = 0,
  PE__OP_SUB,
  PE__OP_MUL,
  PE__OP_DIV,
  PE__OP_POW,
  PE__OP_MIN,
  PE__OP_MAX
} pe__binop_t;

/* Element-wise ops with parameters (PE__K_ELEMWISE), ext.f[0..1]: */
typedef enum pe__ew {
  PE__EW_CLIP = 0,    /* min, max */
  PE__EW_ELU,         /* alpha */
  PE__EW_SELU,        /* alpha, gamma */
  PE__EW_SOFTPLUS,    /* - */
  PE__EW_HARDSIGMOID, /* alpha, beta */
  PE__EW_HARDSWISH    /* - */
} pe__ew_t;

typedef enum pe__pad {
  PE__PAD_CONSTANT = 0,
  PE__PAD_REFLECT,
  PE__PAD_EDGE
} pe__pad_t;

/* A fused self-attention block over one window x [L][E]:
 *   q, k, v = x Wq + bq, x Wk + bk, x Wv + bv    (one dense, M = 3E)
 *   per head h: P = softmax(scale * q_h k_h^T + mask), c_h = P v_h
 *   y = concat_h(c_h) Wo + bo
 * The step's d packs [Wq Wk Wv] (w, bias canonical: [3E][E], [3E]), d2
 * packs Wo (w2, bias2); ext.mask is an additive mask or NULL, and ext.repl a
 * Where's replacement values (NaN: keep the score) or NULL. */
typedef struct pe__attn {
  int64_t L, E, H, D; /* sequence, model width, heads, head width */
  int64_t mask_h;     /* 1: a mask per head ([H][L][L]), 0: one for all */
  float scale;
  int has_out; /* 0: the block ends at the merged heads (no Wo) */
} pe__attn_t;

/* A dense layer Y[rows][M] = X[rows][K] W^T + bias, weights packed for the
 * kernels: M <= 4 keeps W as [M][K] (dot products); otherwise panels of 16
 * columns [M/16][K][16], zero-padded. */
typedef struct pe__dense {
  int64_t K, M;
  float *wp;         /* packed, owned */
  const float *bias; /* [M] or NULL */
  float *bp;         /* bias padded to the panels (panel layout), owned */
  int dot;           /* 1: [M][K] layout */
} pe__dense_t;

void pe__dense_pack(pe__dense_t *d, const float *w_mk); /* w_mk [M][K] */

/* Chunks the vector dense kernels cut the sum over k into (see
 * kernels_avx512.c): parallel FMA chains for a single row. */
#define PE__DENSE_NCH(K) ((K) >= 128 ? 4 : (K) >= 16 ? 2 : 1)
void pe__dense_run(const pe__dense_t *d, const float *x, float *y, int64_t rows,
                   int act, float alpha, int avx2);

typedef struct pe__step {
  int kind;
  int node;       /* source node (first of a fused group) */
  char label[96]; /* "Conv+BatchNormalization+Relu" */
  int n_in;
  int in[PE__STEP_MAX_IN];
  int out[3];  /* out[0] always; LSTM/GRU may add Y_h, Y_c (-1 none) */
  int act;     /* pe__act_t applied to the result */
  float alpha; /* LeakyRelu slope */
  int binop;
  int64_t flops; /* per sample */
  /* weights: canonical while building, packed by plan.c */
  float *w, *w2, *bias, *bias2; /* canonical, owned */
  pe__dense_t d, d2, d3;        /* packed (DENSE, LSTM, GRU) */
  float *lw; /* LSTM, for the fused vector kernels (pe__lstm_pack);
                NULL: pe__rnn runs it with any kernels */
  /* shape parameters; meaning per kind (see build.c) */
  int64_t p[24];
  int64_t rank;
  int64_t dims[PE__MAX_RANK];
  int64_t st[PE__STEP_MAX_IN][PE__MAX_RANK]; /* strides per input */
  int64_t *idx;                              /* Gather indices */
  int64_t n_idx;
  /* scratch floats this step needs: fixed + per sample of the tile */
  int64_t scratch_fixed, scratch_ps;
  /* parameters of the kinds of ops_misc.c and ops_attention.c */
  struct {
    int op;      /* pe__ew_t, pe__binop_t, pe__pad_t (per kind) */
    float f[4];  /* per kind (see the enum) */
    float *mask; /* ATTENTION: additive mask or NULL, owned */
    float *repl; /* ATTENTION: replacement scores or NULL, owned */
    pe__attn_t attn;
  } ext;
} pe__step_t;

/* The loaded model: read-only after load, shared by every context. */
struct pe_model {
  pe__graph_t g;
  pe__step_t *step;
  int n_step;
  int64_t arena_ps; /* floats per sample of the tile, all live buffers */
  int64_t scratch_fixed, scratch_ps;
  int64_t in_numel, out_numel;
  int64_t flops; /* per window */
  int avx2;      /* kernels chosen at load, before the plan: 0 generic,
                    1 AVX2/FMA, 2 AVX-512 (dense, Conv1d, LSTM, GRU
                    cell) + AVX2 (the rest) */
  pe_model_desc_t info;
  char err[512];
};

/* ---- kernels ------------------------------------------------------------- */
/* In the kernels, the `avx2` argument is that level. */

/* One execution of a step over n samples: ptr[t] is the base of tensor t for
 * the first sample, and its per-sample stride is given by the tensor (0 for
 * constants). */
typedef struct pe__exec {
  const struct pe_model *m;
  float **ptr;
  float *scratch;
  uint32_t n;
} pe__exec_t;

int pe__kernels_avx2_usable(void);
int pe__kernels_avx512_usable(void);
int pe__kernels_level(pe_kernels_t k);
const char *pe__kernels_name(int level);
void pe__dense_avx512(const pe__dense_t *d, const float *x, float *y,
                      int64_t rows, int act, float alpha);
void pe__conv1d_avx512(const pe__step_t *s, const float *x, float *y,
                       float *scratch);
void pe__step_exec(const pe__step_t *s, const pe__exec_t *x, int avx2);
void pe__act_apply(float *y, int64_t n, int act, float alpha);
int64_t pe__tensor_stride(const pe__tensor_t *t);

/* AVX2 kernels (kernels_avx2.c); callers check pe__kernels_avx2_usable. */
void pe__dense_avx2(const pe__dense_t *d, const float *x, float *y,
                    int64_t rows, int act, float alpha);
void pe__conv1d_avx2(const pe__step_t *s, const float *x, float *y,
                     float *scratch);
void pe__act_avx2(float *y, int64_t n, int act, float alpha);
void pe__affine_avx2(const pe__step_t *s, const float *x, float *y);
void pe__gru_cell_avx2(const float *g, const float *r, const float *rb,
                       float *h, int64_t H);
void pe__gru_cell_avx512(const float *g, const float *r, const float *rb,
                         float *h, int64_t H);

/* LSTM weights for the fused kernels, packed by pe__lstm_pack into blocks of
 * 16 hidden units (HB = ceil(H / 16) of them, zero past H): per block jb,
 * W as [in][4][16], then (after all the W blocks) R as [H][4][16], then the
 * bias (Wb + Rb) as [4][16]; gates i, o, f, c, so the 4 gate vectors of
 * the 16 units of one input or hidden index k are 64 contiguous floats. */
#define PE__LSTM_W(lw, in, H, jb) ((lw) + (jb) * (in)*64)
#define PE__LSTM_R(lw, in, H, jb)                                              \
  ((lw) + (((H) + 15) / 16) * (in)*64 + (jb) * (H)*64)
#define PE__LSTM_B(lw, in, H, jb)                                              \
  ((lw) + (((H) + 15) / 16) * ((in) + (H)) * 64 + (jb)*64)
int pe__lstm_pack(pe__step_t *s);

/* One window of an LSTM through all seq steps (the fused kernels): x the
 * window's input [seq][in]; h0, c0 its initial state or NULL (zeros); y
 * [seq][H], hn, cn [H] the outputs wanted, or NULL; scratch at least
 * PE__LSTM_SCRATCH(seq, H) floats. Every window takes the same path whatever
 * its position in the batch, so the bits do not depend on it. */
#define PE__LSTM_SCRATCH(seq, H) ((((H) + 15) / 16) * (64 * (seq) + 48) + 16)
void pe__lstm_seq_avx512(const float *lw, int64_t seq, int64_t in, int64_t H,
                         const float *x, const float *h0, const float *c0,
                         float *y, float *hn, float *cn, float *scratch);
void pe__lstm_seq_avx2(const float *lw, int64_t seq, int64_t in, int64_t H,
                       const float *x, const float *h0, const float *c0,
                       float *y, float *hn, float *cn, float *scratch);
void pe__act_run(float *y, int64_t n, int act, float alpha, int avx2);
/* Steps the index idx of an N-d loop over dims[0..top] by one (the last
 * axis fastest), moving the offsets off[k] of n operands by their strides
 * st[k]: the walk of the broadcasting kernels. */
static inline void pe__index_next(int top, const int64_t *dims, int64_t *idx,
                                  int n, const int64_t (*st)[PE__MAX_RANK],
                                  int64_t *off) {
  for (int d = top; d >= 0; d--) {
    for (int k = 0; k < n; k++) {
      off[k] += st[k][d];
    }
    if (++idx[d] < dims[d]) {
      return;
    }
    for (int k = 0; k < n; k++) {
      off[k] -= st[k][d] * dims[d];
    }
    idx[d] = 0;
  }
}

/* Kernels of the kinds of ops_misc.c (kernels_misc.c) and ops_attention.c
 * (kernels_attention.c), one window at a time except where n is given. */
void pe__elemwise_run(const pe__step_t *s, const float *x, float *y, int64_t n);
void pe__reduce_run(const pe__step_t *s, const float *x, float *y);
void pe__pad_run(const pe__step_t *s, const float *x, float *y);
void pe__where_run(const pe__step_t *s, const float *a, const float *b,
                   float *y);
void pe__matmul_run(const pe__step_t *s, const float *a, const float *b,
                    float *y, int avx2);
void pe__layernorm_run(const pe__step_t *s, const float *x, float *y,
                       float *mean, float *inv, int avx2);
void pe__attention_run(const pe__step_t *s, const float *x, float *y, int64_t n,
                       int64_t xs, int64_t ys, float *scratch, int avx2);
int64_t pe__attention_scratch(const pe__step_t *s);
void pe__step_exec_ext(const pe__step_t *s, const pe__exec_t *x, int avx2);
/* Vector versions (kernels_attention.c); callers check the level. */
void pe__matmul_avx2(const pe__step_t *s, const float *a, const float *b,
                     float *y);
void pe__matmul_avx512(const pe__step_t *s, const float *a, const float *b,
                       float *y);
void pe__layernorm_avx2(const pe__step_t *s, const float *x, float *y,
                        float *mean, float *inv);
void pe__layernorm_avx512(const pe__step_t *s, const float *x, float *y,
                          float *mean, float *inv);
float pe__exp_sum_avx512(float *y, int64_t n, float sub); /* kernels_avx512 */
int pe__onnx_load_tensor(pe__graph_t *g, pe__tensor_t *t, const void *tp,
                         const char *what);
void pe__step_pack(pe__step_t *s);
int64_t pe__step_scratch(const pe__step_t *s, int64_t tile, int avx2);

/* Where a Conv1D step's tap offsets start in its scratch: after the n
 * floats of phase rows, rounded up to 8 bytes, as int64 needs (the scratch
 * starts aligned and pe__step_scratch leaves room for the rounding). */
static inline int64_t *pe__conv_taps(float *scratch, int64_t n) {
  return (int64_t *)(void *)(scratch + ((n + 1) & ~(int64_t)1));
}

/* ---- load pipeline ------------------------------------------------------- */
int pe__onnx_import(pe__graph_t *g, const void *data, size_t len, void **proto);
void pe__onnx_free(void *proto);
int pe__graph_find(pe__graph_t *g, const char *name);
int pe__graph_add(pe__graph_t *g, const char *name);
void pe__graph_free(pe__graph_t *g);
int pe__build(struct pe_model *m);
int pe__plan(struct pe_model *m);
int pe__fuse_attention(struct pe_model *m, int *dead); /* fuse_attention.c */
void pe__steps_free(struct pe_model *m);
void pe__step_free(pe__step_t *s);

/* Formats "FILE: node I (NAME, OP): " + message into g->err. Returns rc. */
int pe__node_err(pe__graph_t *g, const pe__node_t *n, int rc, const char *fmt,
                 ...) __attribute__((format(printf, 4, 5)));
int pe__graph_err(pe__graph_t *g, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
