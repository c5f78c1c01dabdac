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
 * for a Conv1d model); the output is the model's first output,
 * [batch][values]. Most models take one float32 input (pe_model_run);
 * pe_model_run_inputs serves models with several, or with int64 and bool
 * inputs. docs/models.md lists the supported ops.
 *
 * Ownership: the caller owns the buffers passed to pe_model_run; every
 * pointer returned by a describe function is owned by the model and valid
 * until pe_model_destroy. */
#ifndef PE_MODEL_H
#define PE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "pe/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PE_MODEL_MAX_IO 8
#define PE_MODEL_MAX_META 32
#define PE_MODEL_MAX_RANK 8

typedef struct pe_model pe_model_t;
typedef struct pe_model_ctx pe_model_ctx_t;

/* Which kernels the plan uses. AUTO picks the best the CPU has (AVX-512
 * dense and Conv1d with AVX2/FMA for the rest, else AVX2/FMA, else portable
 * C), capped by the environment variable PE_CPU_KERNELS (generic, avx2 or
 * avx512) when set. An explicit choice is capped by what the CPU has. */
typedef enum pe_kernels {
  PE_KERNELS_AUTO = 0,
  PE_KERNELS_GENERIC,
  PE_KERNELS_AVX2,
  PE_KERNELS_AVX512
} pe_kernels_t;

typedef struct pe_model_options {
  pe_kernels_t kernels;
} pe_model_options_t;

/* Element types of graph inputs (ONNX's numbering). */
#define PE_MODEL_FLOAT32 1
#define PE_MODEL_INT64 7
#define PE_MODEL_BOOL 9 /* one byte per element, 0 or 1 */

/* A graph input or output. dims[i] is -1 for the batch dimension. A model
 * whose inputs declare a fixed first dimension (and no pe.batch metadata)
 * has no batch dimension: batch_axis is -1 and one window is the whole
 * declared tensor; pe_model_run still runs `batch` such windows. */
typedef struct pe_model_tensor {
  char name[PE_MODEL_NAME_MAX];
  int rank;
  int batch_axis; /* -1 when the tensor has none */
  int64_t dims[PE_MODEL_MAX_RANK];
  int64_t numel; /* elements per window (batch dimension excluded) */
  int dtype;     /* PE_MODEL_FLOAT32, PE_MODEL_INT64 or PE_MODEL_BOOL */
} pe_model_tensor_t;

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
  int n_inputs;         /* runtime graph inputs; `input` is inputs[0] */
  pe_model_tensor_t inputs[PE_MODEL_MAX_IO];
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
 * one byte each), batch-major; n_in must equal n_inputs. out as for
 * pe_model_run. Returns PE_OK or PE_EINVAL. */
int pe_model_run_inputs(pe_model_ctx_t *ctx, const void *const *in, int n_in,
                        uint32_t batch, float *out);

#ifdef __cplusplus
}
#endif
#endif
