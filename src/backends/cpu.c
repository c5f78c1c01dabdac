/* The `cpu` backend: an ONNX model run by src/model/ on this CPU.
 *
 * open loads the model (validation, plan, packed weights) and creates one
 * context; run is pe_model_run, which allocates nothing. The engine passes
 * windows as [batch][channel][time]; the model's input may hold them as
 * [N, C, W] (or [N, C*W]), [N, W, C] or [N, 1, W, C], the layout the model
 * API recognised at load (pe_model_desc_t.layout). For the last two, run
 * transposes each window into [time][channel] in a buffer sized at open,
 * a tile of windows at a time. Its first output is [batch, values].
 * What the engine needs comes from the model's metadata_props:
 *   pe.features  comma-separated feature names, one per channel
 *   pe.window    window length (checked against the input shape)
 *   pe.layout    NCW, NWC or N1WC, where the shape cannot tell
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

/* Most windows one run transposes at a time (NWC and N1WC models). */
#define PE__CPU_TILE_MAX 256

typedef struct pe__cpu {
  pe_model_t *model;
  pe_model_ctx_t *ctx;
  pe_model_info_t info;
  float *packed; /* tile windows as [time][channel]; NULL for NCW models */
  uint32_t tile;
  char errmsg[256];
} pe__cpu_t;

static int pe__cpu_fail(pe__cpu_t *c, char *err, size_t cap, int rc,
                        const char *path, const char *msg) {
  snprintf(err, cap, "%s: %s", path, msg);
  pe_model_ctx_destroy(c->ctx);
  pe_model_destroy(c->model);
  free(c->packed);
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
  pe_model_options_t mo = {.kernels = PE_KERNELS_AUTO};
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
  const pe_model_desc_t *d = pe_model_desc(c->model);
  char msg[256];
  rc = pe__backend_model_info(c->model, &c->info, msg, sizeof msg);
  if (rc != PE_OK) {
    return pe__cpu_fail(c, err, err_cap, rc, path, msg);
  }
  rc = pe_model_ctx_create(c->model, opts->max_batch ? opts->max_batch : 1,
                           &c->ctx);
  if (rc == PE_OK && d->layout != PE_MODEL_LAYOUT_NCW) {
    c->tile = opts->max_batch == 0                 ? 1
              : opts->max_batch > PE__CPU_TILE_MAX ? PE__CPU_TILE_MAX
                                                   : opts->max_batch;
    c->packed =
        malloc((size_t)c->tile * (size_t)d->input.numel * sizeof *c->packed);
    rc = c->packed == NULL ? PE_ENOMEM : PE_OK;
  }
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

/* One window from [channel][time] (the engine's order) to [time][channel]
 * (the order of an NWC or N1WC input). */
static void pe__window_to_wc(const float *src, uint32_t n_channels,
                             uint32_t window, float *dst) {
  for (uint32_t t = 0; t < window; t++) {
    for (uint32_t k = 0; k < n_channels; k++) {
      dst[(size_t)t * n_channels + k] = src[(size_t)k * window + t];
    }
  }
}

static int pe__cpu_run(void *self, const float *in, uint32_t batch,
                       float *out) {
  pe__cpu_t *c = self;
  int rc = PE_OK;
  if (c->packed == NULL || in == NULL || batch == 0) {
    rc = pe_model_run(c->ctx, in, batch, out);
  } else {
    const uint32_t C = c->info.n_features, W = c->info.window;
    const size_t per = (size_t)C * W;
    for (uint32_t b0 = 0; b0 < batch && rc == PE_OK; b0 += c->tile) {
      uint32_t n = batch - b0 < c->tile ? batch - b0 : c->tile;
      for (uint32_t b = 0; b < n; b++) {
        pe__window_to_wc(in + (b0 + b) * per, C, W, c->packed + b * per);
      }
      rc = pe_model_run(c->ctx, c->packed, n,
                        out == NULL ? NULL
                                    : out + (size_t)b0 * c->info.n_outputs);
    }
  }
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
  free(c->packed);
  free(c);
}

/* Names the kernels this CPU runs for the choice in opts, so that
 * `--version` says it. */
static void pe__cpu_summary(const pe_backend_options_t *opts, char *buf,
                            size_t cap) {
  pe_kernels_t k;
  const pe__kernels_t *t =
      pe__cpu_kernels(opts, &k) == PE_OK ? pe__kernels_pick(k) : NULL;
  snprintf(buf, cap, "ONNX models (opsets 11-28) on the CPU; kernels %s",
           t == NULL ? "(unknown choice)" : pe__kernels_name(t));
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
