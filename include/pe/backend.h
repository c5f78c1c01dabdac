/* Model backends: one versioned interface, several implementations.
 *
 * A backend turns a batch of feature windows into a batch of output vectors.
 * Input layout is [batch][channel][time] float32 (channel-major, oldest time
 * step first), the layout of a PyTorch Conv1d input; a backend whose model
 * takes another layout ([N, W, C], [N, 1, W, C]) converts it. Output is
 * [batch][n_outputs] float32.
 *
 * The interface and the handle belong to the core library (src/core/
 * backend.c): the engine runs a model only through a pe_backend_t, whatever
 * backend made it. The registry (src/backends/registry.c) holds the backends
 * of this build, from one list (PE_BACKENDS in CMakeLists.txt). The `stub`
 * backend is always built; others depend on build options, and
 * `pattern-engine --version` lists what is compiled in. */
#ifndef PE_BACKEND_H
#define PE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any change to pe_backend_ops_t, pe_backend_options_t or
 * pe_model_info_t. A backend whose abi_version differs is refused at open. */
#define PE_BACKEND_ABI_VERSION 9

#define PE_MODEL_MAX_FEATURES 32
#define PE_MODEL_MAX_CLASSES 16
#define PE_MODEL_NAME_MAX 64

typedef enum pe_model_output {
  PE_OUTPUT_RAW = 0, /* regression values, no class meaning */
  PE_OUTPUT_LOGITS,  /* class scores; the engine applies softmax */
  PE_OUTPUT_PROBS    /* class probabilities */
} pe_model_output_t;

/* What a model expects and produces. Filled by the backend's describe; the
 * feature indices are resolved by pe_backend_open. */
typedef struct pe_model_info {
  uint32_t window;     /* time steps per window (W) */
  uint32_t n_features; /* channels per time step (C) */
  uint32_t n_outputs;  /* values per window */
  uint32_t n_classes;  /* == n_outputs for class outputs, else 0 */
  pe_model_output_t output;
  uint32_t max_batch; /* largest batch one run accepts */
  char input_name[PE_MODEL_NAME_MAX];
  char output_name[PE_MODEL_NAME_MAX];
  /* Channel order: standard feature names (docs/features.md); empty when the
   * model declares none. */
  char feature_name[PE_MODEL_MAX_FEATURES][PE_MODEL_NAME_MAX];
  int feature[PE_MODEL_MAX_FEATURES]; /* pe_feature_t per channel */
  char class_name[PE_MODEL_MAX_CLASSES][PE_MODEL_NAME_MAX];
} pe_model_info_t;

typedef struct pe_backend_options {
  const char *model_path;     /* model file; NULL for backends without one */
  const char *model_features; /* "a,b,c": overrides the model's declared
                                 features; NULL to use them */
  uint32_t window;            /* W for backends whose model does not fix it;
                                 0 means PE_DEFAULT_MODEL_WINDOW */
  uint32_t max_batch;         /* largest batch the caller will run; 0 = 1 */
  uint32_t threads;           /* worker threads, 0 = backend default */
  const char *kernels;        /* kernel family for backends that have several
                                 ("generic", "avx2", "avx512"; capped by the
                                 CPU); NULL for the best there is */
  int phase_times;            /* 1: time each run's phases (see
                                 pe_backend_phases), at some cost per run */
  const char *mode;           /* how a backend that has several ways runs
                                 (cuda: "graph" or "persistent"); NULL for
                                 its default */
  const char *stamps_path;    /* diagnostics: a file the cuda backend
                                 writes to as it closes: persistent mode's
                                 phase times of its last requests, and the
                                 generated batch kernel's time a window in
                                 each step (docs/models.md); NULL for
                                 none. Read until the backend is closed. */
  /* Device memory a backend that runs on a device may take for the
   * buffers that grow with the batch (cuda: the arena, input and output of
   * a tile of windows; a larger batch runs a tile at a time); 0 for its
   * default (cuda: 256 MB). */
  uint64_t device_memory_bytes;
  const char *codegen;        /* cuda: "off" (or "0") runs the general
                                 kernels; NULL, "", "on", "1" or "auto"
                                 kernels generated for the plan and compiled
                                 at open, where they can be (persistent
                                 mode's resident kernel, and graph mode's
                                 kernel for a whole batch; docs/models.md);
                                 or on with settings separated by commas:
                                 "windows=N", a block of the batch kernel
                                 holding at most N windows (1 to 4096; 32
                                 otherwise), "rows=N", its dense steps of
                                 four columns a thread taking up to N rows
                                 a thread (1 to 8), "sums=1" or "sums=4",
                                 each such dense output's sums in both
                                 kernels (4 otherwise); anything else is
                                 refused at open */
  const char *precision;      /* cuda: the arithmetic of the dense and
                                 Conv1d steps: "fp32" (NULL or "" too:
                                 fp32 for an ONNX model, a plan file's own
                                 for a plan file) or "tf32" (tensor cores,
                                 10 bits of mantissa in the operands;
                                 docs/models.md); anything else, or a plan
                                 file of the other precision, is refused
                                 at open */
  const char *persist_blocks; /* cuda persistent mode: "auto" (NULL or
                                 "" too) one block running the kernel
                                 generated for the plan where there is
                                 one, else a thread-block cluster of up
                                 to 16 blocks, one per SM, for a plan of
                                 1 MFLOP or more a window, one block for
                                 a smaller one; "1" one block; "N" (2 to
                                 16) a cluster of at most N blocks.
                                 Either way, one block where the device
                                 has no clusters (docs/models.md);
                                 anything else is refused at open */
} pe_backend_options_t;

/* Where the last run's time went, for backends that move data to a device:
 * host to device, compute, device to host, in microseconds. */
typedef struct pe_backend_phases {
  double h2d_us, compute_us, d2h_us;
} pe_backend_phases_t;

/* The methods a backend implements. `self` is the backend's own instance.
 * Error text goes into err (open) or through errmsg (later calls). */
typedef struct pe_backend_ops {
  uint32_t abi_version; /* PE_BACKEND_ABI_VERSION */
  const char *name;     /* "stub", "cpu", ... */
  /* One line for --version and help, written into buf (cut to cap): what
   * the backend runs and, with opts (NULL: the defaults), how. */
  void (*summary)(const pe_backend_options_t *opts, char *buf, size_t cap);
  int (*open)(const pe_backend_options_t *opts, void **self, char *err,
              size_t err_cap);
  int (*describe)(void *self, pe_model_info_t *info);
  /* Hot path: must not allocate once open has returned. batch is at most
   * info.max_batch. */
  int (*run)(void *self, const float *in, uint32_t batch, float *out);
  const char *(*errmsg)(void *self);
  void (*close)(void *self);
  /* Optional (NULL: not measured): the last run's phases, when opened with
   * phase_times. */
  int (*phases)(void *self, pe_backend_phases_t *out);
  /* Optional (NULL: none): one line on how this instance runs (device,
   * mode, memory held, allocations since open), written into buf. */
  void (*detail)(void *self, char *buf, size_t cap);
  /* Optional (NULL: none): what this instance loaded, as bytes that its
   * open accepts as model_path's file (a plan made for this device), in a
   * malloc'd buffer *data of *len bytes the caller frees. */
  int (*serialize)(void *self, void **data, size_t *len, char *err,
                   size_t err_cap);
  /* Optional (NULL: malloc and free): host memory for a caller's windows
   * and scores that run can copy from and to faster (page-locked memory
   * the device reads directly), and its release. Not counted as an
   * allocation of the backend's; neither is allowed while a run is in
   * progress. */
  void *(*host_alloc)(void *self, size_t bytes);
  void (*host_free)(void *self, void *p);
} pe_backend_ops_t;

typedef struct pe_backend pe_backend_t;

/* ---- The handle (core) ------------------------------------------------- */

/* Opens the backend of an ops table and resolves the model's features.
 * PE_EVERSION when ops->abi_version is not PE_BACKEND_ABI_VERSION. On
 * failure *out is NULL and err holds one line naming the file and the
 * reason. */
int pe_backend_open_ops(const pe_backend_ops_t *ops,
                        const pe_backend_options_t *opts, pe_backend_t **out,
                        char *err, size_t err_cap);

/* Valid until pe_backend_close. */
const pe_model_info_t *pe_backend_info(const pe_backend_t *backend);
const char *pe_backend_name(const pe_backend_t *backend);

/* Runs one batch; see pe_backend_ops_t.run. */
int pe_backend_run(pe_backend_t *backend, const float *in, uint32_t batch,
                   float *out);

const char *pe_backend_errmsg(const pe_backend_t *backend);

/* The last run's phases; PE_EUNSUPPORTED for a backend that does not
 * measure them or was opened without phase_times. */
int pe_backend_phases(const pe_backend_t *backend, pe_backend_phases_t *out);

/* The backend's detail line (see pe_backend_ops_t.detail) into buf; an
 * empty string for a backend that has none. */
void pe_backend_detail(const pe_backend_t *backend, char *buf, size_t cap);

/* See pe_backend_ops_t.serialize; PE_EUNSUPPORTED, with a message, for a
 * backend that cannot. */
int pe_backend_serialize(pe_backend_t *backend, void **data, size_t *len,
                         char *err, size_t err_cap);

/* Host memory for windows and scores (pe_backend_ops_t.host_alloc): NULL
 * when there is none; released by pe_backend_host_free (NULL is a no-op)
 * before the backend is closed. */
void *pe_backend_host_alloc(pe_backend_t *backend, size_t bytes);
void pe_backend_host_free(pe_backend_t *backend, void *p);

/* NULL is a no-op. */
void pe_backend_close(pe_backend_t *backend);

/* ---- The registry (src/backends) ---------------------------------------
 * The backends compiled into this build, in a fixed order. */
size_t pe_backend_count(void);
const pe_backend_ops_t *pe_backend_at(size_t index);
const pe_backend_ops_t *pe_backend_find(const char *name);

/* pe_backend_open_ops of the backend called `name`; PE_ENOENT, with the
 * names this build has in err, when there is none. */
int pe_backend_open(const char *name, const pe_backend_options_t *opts,
                    pe_backend_t **out, char *err, size_t err_cap);

#ifdef __cplusplus
}
#endif
#endif
