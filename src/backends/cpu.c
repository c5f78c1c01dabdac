/* The `cpu` backend: an ONNX model run by src/model/ on this CPU.
 *
 * open loads the model (validation, plan, packed weights) and creates one
 * context; run is pe_model_run, which allocates nothing. The model's input
 * must be [batch, channels, window] (or [batch, values], read as one
 * channel unless pe.window splits it); its first output is [batch, values].
 * What the engine needs comes from the model's metadata_props:
 *   pe.features  comma-separated feature names, one per channel
 *   pe.window    window length (checked against the input shape)
 *   pe.classes   comma-separated class names, one per output value
 *   pe.output    logits | probs | raw (default logits with classes, else raw)
 * A model without pe.features is opened with a feature list
 * (pe_backend_options_t.model_features), which the handle applies
 * (src/core/backend.c). opts->kernels picks the kernels ("generic", "avx2",
 * "avx512"; NULL for the best the CPU has). One instance is one context:
 * threads that share a loaded model use include/pe/model.h directly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backends.h"
#include "model/kernel_level.h"
#include "pe/error.h"
#include "pe/model.h"

typedef struct pe__cpu {
  pe_model_t *model;
  pe_model_ctx_t *ctx;
  pe_model_info_t info;
  char errmsg[256];
} pe__cpu_t;

static int pe__cpu_fail(pe__cpu_t *c, char *err, size_t cap, int rc,
                        const char *path, const char *msg) {
  snprintf(err, cap, "%s: %s", path, msg);
  pe_model_ctx_destroy(c->ctx);
  pe_model_destroy(c->model);
  free(c);
  return rc;
}

/* The kernel choice of opts (NULL: the best there is). */
static int pe__cpu_kernels(const pe_backend_options_t *opts,
                           pe_kernels_t *out) {
  *out = PE_KERNELS_AUTO;
  return opts == NULL || opts->kernels == NULL
             ? PE_OK
             : pe_kernels_parse(opts->kernels, out);
}

static int pe__cpu_open(const pe_backend_options_t *opts, void **self,
                        char *err, size_t err_cap) {
  *self = NULL;
  if (opts->model_path == NULL) {
    snprintf(err, err_cap,
             "the cpu backend runs an ONNX model, and no model path was given");
    return PE_EINVAL;
  }
  pe_model_options_t mo = {PE_KERNELS_AUTO};
  if (pe__cpu_kernels(opts, &mo.kernels) != PE_OK) {
    snprintf(err, err_cap,
             "cpu backend: kernels '%.60s' are not auto, generic, avx2 or "
             "avx512",
             opts->kernels);
    return PE_EINVAL;
  }
  pe__cpu_t *c = calloc(1, sizeof *c);
  if (c == NULL) {
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  const char *path = opts->model_path;
  int rc = pe_model_load_file(path, &mo, &c->model, err, err_cap);
  if (rc != PE_OK) {
    free(c);
    return rc;
  }
  char msg[256];
  rc = pe__backend_model_info(c->model, &c->info, msg, sizeof msg);
  if (rc != PE_OK) {
    return pe__cpu_fail(c, err, err_cap, rc, path, msg);
  }
  rc = pe_model_ctx_create(c->model, opts->max_batch ? opts->max_batch : 1,
                           &c->ctx);
  if (rc != PE_OK) {
    return pe__cpu_fail(c, err, err_cap, rc, path, "out of memory");
  }
  *self = c;
  return PE_OK;
}

static int pe__cpu_describe(void *self, pe_model_info_t *info) {
  *info = ((pe__cpu_t *)self)->info;
  return PE_OK;
}

static int pe__cpu_run(void *self, const float *in, uint32_t batch,
                       float *out) {
  pe__cpu_t *c = self;
  int rc = pe_model_run(c->ctx, in, batch, out);
  if (rc != PE_OK) {
    /* only reached for a bad call; formatting here is off the normal path */
    snprintf(c->errmsg, sizeof c->errmsg, "pe_model_run: %s", pe_strerror(rc));
  }
  return rc;
}

static const char *pe__cpu_errmsg(void *self) {
  return ((pe__cpu_t *)self)->errmsg;
}

static void pe__cpu_close(void *self) {
  pe__cpu_t *c = self;
  if (c == NULL) {
    return;
  }
  pe_model_ctx_destroy(c->ctx);
  pe_model_destroy(c->model);
  free(c);
}

/* Names the kernels this CPU runs for the choice in opts, so that
 * `--version` says it. */
static void pe__cpu_summary(const pe_backend_options_t *opts, char *buf,
                            size_t cap) {
  pe_kernels_t k;
  int level = pe__cpu_kernels(opts, &k) == PE_OK ? pe__kernels_level(k) : -1;
  snprintf(buf, cap, "ONNX models (opsets 11-17) on the CPU; kernels %s",
           level < 0 ? "(unknown choice)" : pe__kernels_name(level));
}

const pe_backend_ops_t pe_backend_cpu_ops = {
    .abi_version = PE_BACKEND_ABI_VERSION,
    .name = "cpu",
    .summary = pe__cpu_summary,
    .open = pe__cpu_open,
    .describe = pe__cpu_describe,
    .run = pe__cpu_run,
    .errmsg = pe__cpu_errmsg,
    .close = pe__cpu_close,
};
