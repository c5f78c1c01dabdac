/* ONNX models on the CPU: load, describe, run batches.
 *
 * A model (pe_model_t) is loaded once from an .onnx file or a memory buffer:
 * the whole graph is validated, shapes are resolved, shape subgraphs are
 * folded, weights are repacked for the kernels and an execution plan is
 * built. After load the model is read-only, so several threads may share it;
 * each thread runs it through its own context (pe_model_ctx_t), which owns
 * the one arena the plan computes in. pe_model_run allocates nothing, locks
 * nothing and makes no system call.
 *
 * Layout: each input is batch-major and C order ([batch][channels][window]
 * for a Conv1d model, [batch][window][channels] for a batch_first RNN); the
 * output is the model's first output, [batch][values]. How the input holds
 * a feature window is recognised at load (pe_model_desc_t.layout). Most models
 * take one float32 input (pe_model_run); pe_model_run_inputs serves models with
 * several, or with int64 and bool inputs. docs/models.md lists the supported
 * ops.
 *
 * Ownership: the caller owns the buffers passed to pe_model_run; every
 * pointer returned by a describe function is owned by the model and valid
 * until pe_model_destroy. */
#ifndef PE_MODEL_H
#define PE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PE_MODEL_MAX_IO 8
#define PE_MODEL_MAX_META 32
#define PE_MODEL_MAX_RANK 8
#define PE_MODEL_TENSOR_NAME_MAX 64

typedef struct pe_model pe_model_t;
typedef struct pe_model_ctx pe_model_ctx_t;

/* Which kernels the plan uses. AUTO picks the best the CPU has (AVX-512
 * dense and Conv1d with AVX2/FMA for the rest, else AVX2/FMA, else portable
 * C). An explicit choice is capped by what the CPU has. The library reads
 * no environment: the command-line program takes the choice from --kernels
 * or PE_CPU_KERNELS and passes it here. */
typedef enum pe_kernels {
  PE_KERNELS_AUTO = 0,
  PE_KERNELS_GENERIC,
  PE_KERNELS_AVX2,
  PE_KERNELS_AVX512
} pe_kernels_t;

/* The choice called name: "auto", "generic", "avx2" or "avx512". PE_EINVAL
 * (and *out unchanged) for any other name. */
int pe_kernels_parse(const char *name, pe_kernels_t *out);

/* Element types of graph inputs (ONNX's numbering). */
#define PE_MODEL_FLOAT32 1
#define PE_MODEL_INT64 7
#define PE_MODEL_BOOL 9 /* one byte per element, 0 or 1 */

/* A runtime graph input given its value at load: the importer treats it as
 * an initializer holding `data`, so that what it feeds (a Reshape target, a
 * Slice's starts, Gather indices, a Conv's weights) is a constant and the
 * plan is built for it. The input is then no longer among the model's
 * runtime inputs. dims is the whole shape (no batch dimension); it must
 * agree with the dimensions the graph declares (a symbolic one takes any
 * size), and dtype with its element type. data holds the product of dims
 * elements of dtype (bool: one byte each), C order; it is copied at load
 * and need not outlive the call. */
typedef struct pe_model_bind {
  const char *name;
  int dtype; /* PE_MODEL_FLOAT32, PE_MODEL_INT64 or PE_MODEL_BOOL */
  int rank;
  const int64_t *dims;
  const void *data;
} pe_model_bind_t;

typedef struct pe_model_options {
  pe_kernels_t kernels;
  int n_binds; /* entries of binds, each naming a distinct runtime input */
  const pe_model_bind_t *binds;
  /* 1: the plan computes every graph output, for pe_model_run_outputs
   * (which then replaces pe_model_run and pe_model_run_inputs); each must
   * be float32 or a constant (pe_model_tensor_t.dtype). 0: output 0 only,
   * and what it does not need is not computed. */
  int all_outputs;
} pe_model_options_t;

/* A graph input or output. dims[i] is -1 for the batch dimension. A model
 * whose inputs declare a fixed first dimension (and no pe.batch metadata)
 * has no batch dimension: batch_axis is -1 and one window is the whole
 * declared tensor; pe_model_run still runs `batch` such windows. */
typedef struct pe_model_tensor {
  char name[PE_MODEL_TENSOR_NAME_MAX];
  int rank;
  int batch_axis; /* -1 when the tensor has none */
  int64_t dims[PE_MODEL_MAX_RANK];
  int64_t numel; /* elements per window (batch dimension excluded) */
  /* PE_MODEL_FLOAT32, PE_MODEL_INT64 or PE_MODEL_BOOL. An output is written
   * as floats whatever its type: an int64 or bool one (a constant, such as
   * Shape's result, in a model without a batch dimension) holds its values
   * as floats, exact up to 2^24, bool as 0 and 1. */
  int dtype;
} pe_model_tensor_t;

/* How the input holds one feature window of W time steps of C features
 * (docs/models.md, "Input layouts"). Read from the metadata entry pe.layout
 * ("NCW", "NWC" or "N1WC"), else from the input's shape checked against
 * pe.window (W) and the count of pe.features (C). */
typedef enum pe_model_layout {
  PE_MODEL_LAYOUT_NONE = 0, /* not recognised: layout_note says why */
  PE_MODEL_LAYOUT_NCW,      /* [N, C, W] (Conv1d), or [N, C*W] channel-major */
  PE_MODEL_LAYOUT_NWC,      /* [N, W, C] (batch_first RNN, Transformer) */
  PE_MODEL_LAYOUT_N1WC      /* [N, 1, W, C] (Conv2d over the window) */
} pe_model_layout_t;

/* "NCW", "NWC", "N1WC", or "none" for PE_MODEL_LAYOUT_NONE and any other
 * value. */
const char *pe_model_layout_name(pe_model_layout_t layout);

/* What a loaded model is. The strings point into the model. */
typedef struct pe_model_desc {
  int64_t ir_version;
  int64_t opset;        /* of the default domain */
  const char *producer; /* "pytorch 2.3.0", or "" */
  pe_model_tensor_t input;
  int n_outputs; /* graph outputs; pe_model_run writes outputs[0] */
  pe_model_tensor_t outputs[PE_MODEL_MAX_IO];
  int n_meta;
  const char *meta_key[PE_MODEL_MAX_META];
  const char *meta_value[PE_MODEL_MAX_META];
  int n_steps;          /* steps of the execution plan */
  int64_t flops;        /* per window: 2 per multiply-add, 1 per other op */
  int64_t weight_bytes; /* packed weights */
  int64_t arena_floats; /* arena floats per window in flight */
  const char *kernels;  /* "avx512+fma", "avx2+fma" or "generic" */
  int n_inputs;         /* runtime inputs; `input`: inputs[0], or zeroed */
  pe_model_tensor_t inputs[PE_MODEL_MAX_IO];
  /* The input as a feature window. A model whose layout is not recognised
   * still loads (infer runs it as declared); the engine refuses it. */
  pe_model_layout_t layout;
  int64_t window;   /* W, time steps per window; 0 when layout is NONE */
  int64_t channels; /* C, features per time step; 0 when layout is NONE */
  /* One line: how the layout was recognised ("from pe.layout", ...), or,
   * for PE_MODEL_LAYOUT_NONE, why not. */
  const char *layout_note;
} pe_model_desc_t;

/* Loads a model from a memory buffer holding an .onnx file. `name` is used
 * in messages only (a path, or "<buffer>"); opts may be NULL. The buffer is
 * not kept. On failure *out is NULL, the return is PE_EMODEL,
 * PE_EUNSUPPORTED, PE_ESHAPE, PE_ECORRUPT or PE_ENOMEM, and err holds one
 * line: "NAME: node I (NODE_NAME, OP): what is wrong; what is supported". */
int pe_model_load_buffer(const void *data, size_t len, const char *name,
                         const pe_model_options_t *opts, pe_model_t **out,
                         char *err, size_t err_cap);

/* Reads the file at path (the only I/O of this module) and loads it as
 * pe_model_load_buffer does. An unreadable file gives PE_EIO.
 *
 * External data (weights saved with onnx.save_model(...,
 * save_as_external_data=True)): each tensor's location is resolved in the
 * folder of `path`. A location that is absolute, has a '..' component, or
 * resolves (through symbolic links) to a file outside that folder is
 * refused, as is an offset or length outside the file or a length that
 * disagrees with the tensor's shape and type; the message names the tensor.
 * Each data file is mapped once, for the load only; the checksum entry is
 * not verified. */
int pe_model_load_file(const char *path, const pe_model_options_t *opts,
                       pe_model_t **out, char *err, size_t err_cap);

/* Supplies the bytes of an external data file: `location` is the tensor's
 * relative path, already checked as pe_model_load_file describes. Sets
 * *data and *len (valid until the load returns) and returns PE_OK, or
 * returns an error code with a one-line reason in why. */
typedef int (*pe_model_data_fn)(void *ctx, const char *location,
                                const void **data, size_t *len, char *why,
                                size_t why_cap);

/* pe_model_load_buffer for a model whose external data comes from `fn`
 * (called with ctx, at most once per distinct location is not promised).
 * pe_model_load_buffer refuses external data: a buffer has no folder. */
int pe_model_load_buffer_data(const void *data, size_t len, const char *name,
                              const pe_model_options_t *opts,
                              pe_model_data_fn fn, void *ctx, pe_model_t **out,
                              char *err, size_t err_cap);

/* NULL is a no-op. Every context of the model must be destroyed first. */
void pe_model_destroy(pe_model_t *model);

const pe_model_desc_t *pe_model_desc(const pe_model_t *model);

/* Value of metadata_props[key], NULL when absent. */
const char *pe_model_meta(const pe_model_t *model, const char *key);

/* One line describing plan step i ("conv1d+bias+relu 8x34 -> 16x32 ..."),
 * written into buf (NUL-terminated, truncated to cap). Returns the length
 * it would have had, or PE_EINVAL for i out of range. */
int pe_model_step_describe(const pe_model_t *model, int i, char *buf,
                           size_t cap);

/* A context for one thread: the arena plus the per-run pointers. max_batch
 * only sizes the arena's tile (batches larger than the tile run in tiles);
 * any batch size is accepted by pe_model_run. */
int pe_model_ctx_create(const pe_model_t *model, uint32_t max_batch,
                        pe_model_ctx_t **out);

/* NULL is a no-op. */
void pe_model_ctx_destroy(pe_model_ctx_t *ctx);

/* Hot path. Runs `batch` windows: in holds batch * input.numel floats, out
 * receives batch * outputs[0].numel floats. Returns PE_OK, or PE_EINVAL for
 * batch 0, a NULL buffer, or a model with more than one input (use
 * pe_model_run_inputs). */
int pe_model_run(pe_model_ctx_t *ctx, const float *in, uint32_t batch,
                 float *out);

/* Hot path, for a model with any number of inputs: in[k] holds batch *
 * inputs[k].numel elements of inputs[k].dtype (float32, int64, or bool as
 * one byte each), batch-major; n_in must equal n_inputs (0 for a model
 * without a runtime input, whose outputs are constants: in may be NULL,
 * and each of the batch windows gets them). out as for
 * pe_model_run. Returns PE_OK or PE_EINVAL (also for a model loaded with
 * all_outputs). */
int pe_model_run_inputs(pe_model_ctx_t *ctx, const void *const *in, int n_in,
                        uint32_t batch, float *out);

/* Hot path, for a model loaded with all_outputs (else n_out must be 1):
 * in as for pe_model_run_inputs; out[k] receives batch * outputs[k].numel
 * floats of graph output k, batch-major (the batch first, whatever axis the
 * graph gives it), for k < n_out = n_outputs. Returns PE_OK or
 * PE_EINVAL. */
int pe_model_run_outputs(pe_model_ctx_t *ctx, const void *const *in, int n_in,
                         uint32_t batch, float *const *out, int n_out);

#ifdef __cplusplus
}
#endif
#endif
