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
 *   kernels*.c     the step kernels: portable C, AVX2/FMA and AVX-512,
 *                  one table of them per instruction set (pe__kernels_t)
 *   fuse_attention.c  the self-attention block as one step (from plan.c)
 *
 * The batch dimension. Every runtime tensor is stored batch-major: sample b
 * of tensor t lives at base + b * numel(t), where numel is the element count
 * of ONE sample. Shapes are kept per sample: the logical ONNX shape with the
 * batch dimension set to 1, and `batch_axis` saying where it is (-1 for a
 * tensor that is the same for every sample, such as a weight). Ops may move
 * the batch axis (Transpose, the [seq, batch, feature] layout of LSTM/GRU)
 * but never mix samples; an op that would is rejected at load. A Reshape
 * may merge the batch with the axes next to it ([L, N, E] -> [L, N * H, E/H],
 * [N, L, E] -> [N * L, E], [L, N, E] -> [L * N, E]): each window still
 * holds a contiguous block and its shape keeps k (not 1) on the batch axis;
 * `bpre` says where the batch sits in the merged axis (index (j1 * N + b) *
 * (k / bpre) + j2, j1 < bpre: 1 when the batch is outermost, k when it is
 * innermost). Only ops that treat the rows of that axis alike take such a
 * tensor (pe__batch_order). Shape subgraphs are folded with the batch size
 * kept symbolic: an int64 constant element that is a multiple k * N of the
 * batch size carries a mark and holds k, so the plan is the same for every
 * batch size and is built once. */
#ifndef PE_MODEL_MODEL_IMPL_H
#define PE_MODEL_MODEL_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "model/kernel_level.h"
#include "pe/model.h"

#define PE__MAX_RANK 8
#define PE__STEP_MAX_IN 16

/* Element types, numbered as ONNX's TensorProto.DataType. int32 constants
 * are widened to int64 at import; bool tensors (masks, comparisons) keep
 * their 0/1 values in the int64 array `i`. */
typedef enum pe__dtype {
  PE__DT_NONE = 0,
  PE__DT_F32 = 1,
  PE__DT_I64 = 7,
  PE__DT_BOOL = 9
} pe__dtype_t;

/* The newest ONNX versions the importer knows the operator changes of
 * (those of onnx 1.23: onnx.defs.onnx_opset_version(), onnx.IR_VERSION). */
#define PE__OPSET_MIN 11
#define PE__OPSET_MAX 28
#define PE__IR_MIN 3
#define PE__IR_MAX 14

typedef struct pe__tensor {
  char *name;
  int known; /* shape inferred (or an initializer) */
  int dtype; /* pe__dtype_t */
  int rank;
  int64_t dims[PE__MAX_RANK]; /* per window: 1 on the batch axis, or the
                                 rows merged with it */
  int batch_axis;             /* -1: same for every sample */
  int64_t bpre;               /* rows of a merged batch axis outside the
                                 batch (0 or 1: none; model_impl.h top) */
  int64_t numel;              /* elements per sample */
  /* Constant value (initializer, Constant, folded): one copy shared by every
   * sample (batch stride 0). int64 constants also carry `mark`: 1 for an
   * element whose value is k times the batch size (k stored in i). */
  int is_const;
  float *f;
  int64_t *i;
  uint8_t *mark;
  int is_input;   /* a runtime graph input */
  int input_idx;  /* its index among the runtime inputs */
  int output_idx; /* index among graph outputs, or -1 */
  int out_slot;   /* PE__ST_OUTPUT: the output buffer it is written to */
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

/* Bytes from the file (not NUL-terminated). */
typedef struct pe__bytes {
  const uint8_t *data;
  size_t len;
} pe__bytes_t;

/* Attribute types, numbered as ONNX's AttributeProto.AttributeType. */
typedef enum pe__attr_type {
  PE__AT_UNDEFINED = 0,
  PE__AT_FLOAT = 1,
  PE__AT_INT = 2,
  PE__AT_STRING = 3,
  PE__AT_TENSOR = 4,
  PE__AT_GRAPH = 5,
  PE__AT_FLOATS = 6,
  PE__AT_INTS = 7,
  PE__AT_STRINGS = 8
} pe__attr_type_t;

/* One node attribute as the importer read it, so that the op builders never
 * see protobuf. Arrays and strings point into the parsed file and are valid
 * during load only; a tensor attribute is loaded (checked, external data
 * resolved) at import into `t`, owned by the graph. */
typedef struct pe__attr {
  const char *name;
  int type; /* pe__attr_type_t */
  int has_i, has_f, has_s;
  int64_t i;
  float f;
  pe__bytes_t s;
  const int64_t *ints;
  size_t n_ints;
  const float *floats;
  size_t n_floats;
  const pe__bytes_t *strings;
  size_t n_strings;
  const struct pe__tensor *t;
} pe__attr_t;

typedef struct pe__node {
  int index; /* position in the file */
  const char *name;
  const char *op;
  const pe__attr_t *attr; /* valid during load only */
  int n_attr;
  int n_in, n_out;
  int in[PE__STEP_MAX_IN]; /* tensor ids, -1 for an empty optional input */
  int out[4];
} pe__node_t;

typedef struct pe__graph {
  const char *path; /* for messages */
  int64_t ir_version;
  int64_t opset;            /* of the default domain */
  pe_model_data_fn data_fn; /* NULL: the model came from a buffer alone */
  void *data_ctx;
  const pe_model_bind_t *binds; /* inputs given at load (options), or NULL */
  int n_binds;
  pe__attr_t *attr; /* every node's attributes (load only) */
  pe__bytes_t *attr_str;
  struct pe__tensor *attr_t; /* tensor attributes, loaded */
  int n_attr_t;
  char *producer;
  pe__tensor_t *t;
  int n_t, cap_t;
  int *hash; /* open addressing over tensor names: id + 1, 0 empty */
  int hash_cap;
  pe__node_t *node;
  int n_node;
  int input;                   /* the first runtime input tensor */
  int inputs[PE_MODEL_MAX_IO]; /* every runtime input, in graph order */
  int n_inputs;
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
  PE__K_CAST, /* int64 or bool (p[1], a pe__dtype_t) to float32, p[0] each */
  PE__K_GATHER_RT, /* constant rows picked by runtime int64 indices */
  PE__K_CONV2D,    /* [C, H, W] per sample; im2col + the dense kernel */
  PE__K_POOL2D,    /* max or average over [C, H, W] windows */
  /* ops_misc.c, ops_attention.c (kernels_misc.c, kernels_attention.c) */
  PE__K_ELEMWISE,  /* parametrised element-wise op: ext.op a pe__ew_t */
  PE__K_REDUCE,    /* any axes; ext.op a pe__binop_t, or -1 the mean */
  PE__K_PAD,       /* N-d pad, ext.op a pe__pad_t, ext.f[0] the value */
  PE__K_WHERE,     /* broadcasting select; condition s->w or in[2] */
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

/* Packs w_mk [M][K] into d->wp (and d->bp); PE_ENOMEM with both NULL. */
int pe__dense_pack(pe__dense_t *d, const float *w_mk);

/* Chunks the vector dense kernels cut the sum over k into (see
 * kernels_avx512.c): parallel FMA chains for a single row. */
#define PE__DENSE_NCH(K) ((K) >= 128 ? 4 : (K) >= 16 ? 2 : 1)

/* The p[] slot of a convolution or pooling step (CONV1D, CONV2D, POOL1D,
 * POOL2D) holding how many [C, ...] items a window's first axis carries,
 * run in turn (0 or 1: one). */
#define PE__P_ITEMS 23

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
  float *lw;           /* LSTM, for the fused vector kernels (pe__lstm_pack);
                          NULL: pe__rnn runs it with any kernels */
  struct pe__step *wg; /* CONV1D: the packed weights of its Winograd form
                          (kernels_winograd.c), owned; run with the vector
                          tables that take that form. NULL: direct only */
  /* LSTM with the fused kernels: reads its input in place from tensor
   * xin at offset xoff, x_t[k] at xt t + xk k (the source of the 2-D
   * Transpose before it, which is then skipped), when in_place; set by
   * plan.c for the cpu backend's run only (plan_view.h does not show it:
   * another backend runs the Transpose and reads in[0]) */
  int in_place, xin;
  int64_t xoff, xt, xk;
  /* the cpu run leaves this step out: a Transpose that the LSTM after it
   * reads in place; a per-channel affine step or a Concat that the
   * convolution before it writes for it */
  int skip;
  /* CONV1D, cpu run only (plan.c, pe__conv_redirect; plan_view.h does not
   * show them): when redirect, the result goes to tensor yo at offset yoff
   * of each window (the output of the per-channel affine step after it,
   * or its part of the Concat that reads it), as act(y) es[c] + et[c]
   * where es is not NULL (that affine step's, two roundings as it has) */
  int redirect, yo;
  int64_t yoff;
  const float *es, *et;
  float *wl; /* CONV1D whose taps equal its stride (pe__conv1d_cl_pack):
                the weights with the output channels in the lanes,
                [coutp / 16][cin k][16], then the bias [coutp], zero past
                cout; run by the AVX-512 table. NULL: not that form */
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
  int64_t flops;             /* per window */
  const pe__kernels_t *kern; /* chosen at load, before the plan */
  int all_outputs;           /* every graph output computed (options) */
  /* the element type of each computed graph output (pe__dtype_t): a
   * constant int64 or bool one is written as floats */
  int out_dtype[PE_MODEL_MAX_IO];
  pe_model_desc_t info;
  char err[512];
  char layout_note[640]; /* info.layout_note */
};

/* ---- kernels ------------------------------------------------------------- */
typedef void (*pe__dense_fn)(const pe__dense_t *d, const float *x, float *y,
                             int64_t rows, int act, float alpha);
typedef void (*pe__conv_fn)(const pe__step_t *s, const float *x, float *y,
                            float *scratch);
typedef void (*pe__act_fn)(float *y, int64_t n, int act, float alpha);
typedef void (*pe__affine_fn)(const pe__step_t *s, const float *x, float *y);
typedef void (*pe__gru_cell_fn)(const float *g, const float *r, const float *rb,
                                float *h, int64_t H);
/* Four query rows of one head of the fused attention step
 * (kernels_attention.c): their q rows, mask and replacement rows (or NULL),
 * score rows and context outputs. */
typedef struct pe__attn_blk {
  const float *q[4], *m[4], *r[4];
  float *sc[4], *c[4];
  const float *kt, *v;
  int64_t vs, L, D;
  float scale;
} pe__attn_blk_t;
typedef void (*pe__matmul_fn)(const pe__step_t *s, const float *a,
                              const float *b, float *y);
typedef void (*pe__layernorm_fn)(const pe__step_t *s, const float *x, float *y,
                                 float *mean, float *inv);
typedef void (*pe__attn_blk_fn)(const pe__attn_blk_t *b);
/* One head of the attention step without mask or replacements
 * (kernels_attention.c): its q, k and v rows (row i of each at i * vs), L
 * and D, the scale, its scratch (pe__attn_head_scratch floats) and its
 * context rows (row i at c + i * cs). */
typedef struct pe__attn_head {
  const float *q, *k, *v;
  int64_t vs, L, D;
  float scale;
  float *scratch;
  float *c;
  int64_t cs;
} pe__attn_head_t;
typedef void (*pe__attn_head_fn)(const pe__attn_head_t *h);
typedef void (*pe__lstm_seq_fn)(const float *lw, int64_t seq, int64_t in,
                                int64_t H, const float *x, int64_t xst,
                                int64_t xsk, const float *h0, const float *c0,
                                float *y, float *hn, float *cn, float *scratch);

/* The kernels of one instruction set (pe__kernels_t, model/kernel_level.h),
 * chosen once at load (pe__kernels_pick) and read by every step through
 * pe__exec_t. Read-only static tables: pe__kernels_generic (portable C,
 * kernels.c), pe__kernels_avx2 (AVX2/FMA, kernels_avx2.c) and
 * pe__kernels_avx512 (AVX-512 for dense, Conv1d, the LSTM and the GRU cell;
 * AVX2 for the rest). A NULL entry means the step has no fused form at this
 * level and runs the portable composition (pe__rnn) on the table's dense and
 * act. */
struct pe__kernels {
  const char *name; /* "generic", "avx2+fma", "avx512+fma" */
  int level;        /* 0, 1, 2: the order of preference */
  pe__dense_fn dense;
  pe__conv_fn conv1d; /* scratch: pe__step_scratch */
  pe__conv_fn conv2d; /* scratch: pe__step_scratch */
  pe__act_fn act;
  pe__affine_fn affine;
  pe__gru_cell_fn gru_cell; /* linear_before_reset = 1; NULL: portable */
  pe__lstm_seq_fn lstm_seq; /* fused LSTM; NULL: pe__rnn */
  pe__matmul_fn matmul;     /* one product of a runtime MatMul */
  pe__layernorm_fn layernorm;
  pe__attn_blk_fn attn_blk;   /* four query rows of the attention step */
  pe__attn_head_fn attn_head; /* a whole unmasked head; NULL: attn_blk */
};

extern const pe__kernels_t pe__kernels_generic, pe__kernels_avx2,
    pe__kernels_avx512;

/* One execution of a step over n samples: ptr[t] is the base of tensor t for
 * the first sample, and its per-sample stride is given by the tensor (0 for
 * constants). */
typedef struct pe__exec {
  const struct pe_model *m;
  const pe__kernels_t *k;
  float **ptr;
  float *scratch;
  uint32_t n;
} pe__exec_t;

int pe__kernels_avx2_usable(void);
int pe__kernels_avx512_usable(void);
void pe__step_exec(const pe__step_t *s, const pe__exec_t *x);
void pe__act_apply(float *y, int64_t n, int act, float alpha);
/* Floats from one window to the next: 0 for a constant, shared by all. */
static inline int64_t pe__tensor_stride(const pe__tensor_t *t) {
  return t->is_const ? 0 : t->numel;
}

/* The entries of the vector tables (kernels_avx2.c, kernels_avx512.c). */
void pe__dense_avx512(const pe__dense_t *d, const float *x, float *y,
                      int64_t rows, int act, float alpha);
void pe__conv1d_avx512(const pe__step_t *s, const float *x, float *y,
                       float *scratch);
void pe__dense_avx2(const pe__dense_t *d, const float *x, float *y,
                    int64_t rows, int act, float alpha);
void pe__conv1d_avx2(const pe__step_t *s, const float *x, float *y,
                     float *scratch);
void pe__act_avx2(float *y, int64_t n, int act, float alpha);
void pe__act_avx512(float *y, int64_t n, int act, float alpha);
void pe__affine_avx2(const pe__step_t *s, const float *x, float *y);
void pe__gru_cell_avx2(const float *g, const float *r, const float *rb,
                       float *h, int64_t H);
void pe__gru_cell_avx512(const float *g, const float *r, const float *rb,
                         float *h, int64_t H);

/* 2-D convolution and pooling (kernels_conv2d.c). CONV2D parameters p[]:
 * cin, cout, group, kh, kw, stride h, w, dilation h, w, pad top, left,
 * H, W, OH, OW, pad bottom, right. POOL2D: C, H, W, OH, OW, kh, kw,
 * stride h, w, pad top, left, dilation h, w, count_include_pad, is_max,
 * pad bottom, right. */
void pe__conv2d_generic(const pe__step_t *s, const float *x, float *y,
                        float *scratch);
void pe__conv2d_gemm_avx2(const pe__step_t *s, const float *x, float *y,
                          float *scratch);
void pe__conv2d_gemm_avx512(const pe__step_t *s, const float *x, float *y,
                            float *scratch);
void pe__pool2d(const pe__step_t *s, const float *x, float *y);
int64_t pe__conv2d_scratch(const pe__step_t *s, const pe__kernels_t *k);
int pe__conv2d_pack(pe__step_t *s);

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
 * window's input, x_t[k] at x[t xst + k xsk] ([seq][in]: xst = in, xsk = 1;
 * the [in][seq] it was transposed from: xst = 1, xsk = seq); h0, c0 its initial
 * state or NULL (zeros); y [seq][H], hn, cn [H] the outputs wanted, or NULL;
 * scratch at least PE__LSTM_SCRATCH(seq, H) floats. Every window takes the same
 * path whatever its position in the batch, so the bits do not depend on it. */
#define PE__LSTM_SCRATCH(seq, H) ((((H) + 15) / 16) * (64 * (seq) + 48) + 16)
void pe__lstm_seq_avx512(const float *lw, int64_t seq, int64_t in, int64_t H,
                         const float *x, int64_t xst, int64_t xsk,
                         const float *h0, const float *c0, float *y, float *hn,
                         float *cn, float *scratch);
void pe__lstm_seq_avx2(const float *lw, int64_t seq, int64_t in, int64_t H,
                       const float *x, int64_t xst, int64_t xsk,
                       const float *h0, const float *c0, float *y, float *hn,
                       float *cn, float *scratch);
int pe__step_pack(pe__step_t *s);
/* Conv1d by Winograd's minimal filtering (kernels_winograd.c). _pack
 * makes s->wg for a step that fits: F(5, 4) over rows (4 taps, stride 1,
 * no groups, pads of whole rows, a window of whole rows of `dilation`
 * floats, at least a whole tile of rows, at least 8 channels in and out),
 * or the 1-D form (below); PE_OK with nothing made
 * otherwise, PE_ENOMEM with nothing made. _scratch: the floats
 * pe__conv1d_wg needs; pe__conv1d_wg runs one window with the transforms
 * and products of table kn's instruction set and its activation kernel. */
int pe__conv1d_wg_pack(pe__step_t *s);
int64_t pe__conv1d_wg_scratch(const pe__step_t *s);
/* " winograd F(m,r)" where table `level` runs step s in a Winograd form,
 * else NULL. Both forms (rows, and the 1-D form: taps 3 to 5 at dilation
 * 1, output channels in the lanes, AVX-512 only) also write the affine
 * step after the convolution (es, et) as the direct kernels do. */
const char *pe__conv1d_wg_form(const pe__step_t *s, int level);
void pe__conv1d_wg(const pe__step_t *s, const pe__kernels_t *kn, const float *x,
                   float *y, float *scratch);

/* Conv1d whose taps equal its stride (k = stride >= 2, dilation 1, no
 * groups, no pads, at least 16 (input channel, tap) pairs: the (1, 2)
 * stride (1, 2) and (1, W) convolutions of DeepLOB-style models): _pack
 * makes s->wl (PE_OK with nothing made for other shapes, PE_ENOMEM with
 * nothing made); the AVX-512 table then runs it with the output channels
 * in the vector lanes (kernels_avx512.c), each window's input read where
 * it lies, no phase rows. */
int pe__conv1d_cl_pack(pe__step_t *s);

int64_t pe__step_scratch(const pe__step_t *s, int64_t tile,
                         const pe__kernels_t *k);
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
void pe__where_run(const pe__step_t *s, const float *c, const float *a,
                   const float *b, float *y);
void pe__matmul_run(const pe__step_t *s, const float *a, const float *b,
                    float *y, const pe__kernels_t *kn);
void pe__attention_run(const pe__step_t *s, const float *x, float *y, int64_t n,
                       int64_t xs, int64_t ys, float *scratch,
                       const pe__kernels_t *kn);
int64_t pe__attention_scratch(const pe__step_t *s);
void pe__step_exec_ext(const pe__step_t *s, const pe__exec_t *x);
/* The table entries of kernels_attention.c (pe__kernels_t). */
void pe__matmul_generic(const pe__step_t *s, const float *a, const float *b,
                        float *y);
void pe__layernorm_generic(const pe__step_t *s, const float *x, float *y,
                           float *mean, float *inv);
void pe__attn_blk_generic(const pe__attn_blk_t *b);
void pe__attn_blk_avx2(const pe__attn_blk_t *b);
void pe__attn_blk_avx512(const pe__attn_blk_t *b);
void pe__attn_head_avx2(const pe__attn_head_t *h);
void pe__attn_head_avx512(const pe__attn_head_t *h);
void pe__matmul_avx2(const pe__step_t *s, const float *a, const float *b,
                     float *y);
void pe__matmul_avx512(const pe__step_t *s, const float *a, const float *b,
                       float *y);
void pe__layernorm_avx2(const pe__step_t *s, const float *x, float *y,
                        float *mean, float *inv);
void pe__layernorm_avx512(const pe__step_t *s, const float *x, float *y,
                          float *mean, float *inv);
float pe__exp_sum_avx512(float *y, int64_t n, float sub); /* kernels_avx512 */
float pe__exp_sum_avx2(float *y, int64_t n, float sub);   /* kernels_avx2 */

/* Where a Conv1D step's tap offsets start in its scratch: after the n
 * floats of phase rows, rounded up to 8 bytes, as int64 needs (the scratch
 * starts aligned and pe__step_scratch leaves room for the rounding). */
/* Floats per phase row of a Conv1d over lp padded positions at stride st
 * (pe__conv1d_phase_rows): ceil(lp / st) and 40 that a 32-step block may
 * read past the end, rounded up to an odd multiple of 16: rows start on
 * 64-byte lines (so a 16-float load of a row is never split over two
 * lines) an odd number of lines apart, so the rows of the taps of one
 * block spread over all the L1 sets instead of a few (rows of 128 floats,
 * 512 bytes, would put every row on the same 8 of the 64). */
static inline int64_t pe__conv_lr(int64_t lp, int64_t st) {
  const int64_t r = ((lp + st - 1) / st + 40 + 15) / 16 * 16;
  return r / 16 % 2 == 0 ? r + 16 : r;
}
static inline int64_t *pe__conv_taps(float *scratch, int64_t n) {
  return (int64_t *)(void *)(scratch + ((n + 1) & ~(int64_t)1));
}
/* The phase rows of a Conv1d of stride st >= 2 without left padding, one
 * input channel: row r (at rows + r lr) holds x[j st + r] for the j with
 * j st + r < n, then zeros up to lr floats. Each vector table has its own
 * (kernels_avx2.c, kernels_avx512.c) and passes it to
 * pe__conv1d_phase_rows. */
typedef void (*pe__split_fn)(const float *x, int64_t n, int64_t st, float *rows,
                             int64_t lr);
/* The even and odd rows of a stride of 2 from position j on (the vector
 * splits' last floats), then their zeros up to lr floats each. */
void pe__split2_rest(const float *x, int64_t n, int64_t j, float *even,
                     float *odd, int64_t lr);
/* The AVX2 table's (shuffles for a stride of 2, gathers above); the
 * AVX-512 table's for strides above 2 as well. */
void pe__split_avx2(const float *x, int64_t n, int64_t st, float *rows,
                    int64_t lr);
int64_t *pe__conv1d_phase_rows(const pe__step_t *s, const float *x,
                               float *scratch, int64_t lr, pe__split_fn split);

/* ---- load pipeline ------------------------------------------------------- */
int pe__onnx_import(pe__graph_t *g, const void *data, size_t len, void **proto);
void pe__onnx_free(void *proto);
int pe__graph_find(pe__graph_t *g, const char *name);
int pe__graph_add(pe__graph_t *g, const char *name);
void pe__graph_free(pe__graph_t *g);
int pe__build(struct pe_model *m);

/* Name of the i-th op the importer builds ("Conv", ...), NULL past the
 * last: the ops the importer claims, for docs and the conformance tests. */
const char *pe__op_name(size_t i);
int pe__plan(struct pe_model *m);
int pe__fuse_attention(struct pe_model *m, int *dead); /* fuse_attention.c */
int pe__fuse_gelu(struct pe_model *m, int *dead);      /* fuse_attention.c */
void pe__steps_free(struct pe_model *m);
void pe__step_free(pe__step_t *s);

/* Formats "FILE: node I (NAME, OP): " + message into g->err. Returns rc. */
int pe__node_err(pe__graph_t *g, const pe__node_t *n, int rc, const char *fmt,
                 ...) __attribute__((format(printf, 4, 5)));
int pe__graph_err(pe__graph_t *g, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
