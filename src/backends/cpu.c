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
 * A model without pe.features is opened with --model-features, which
 * src/backends/registry.c applies. One instance is one context: threads that
 * share a loaded model use include/pe/model.h directly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backends.h"
#include "pe/error.h"
#include "pe/model.h"

typedef struct pe__cpu {
  pe_model_t *model;
  pe_model_ctx_t *ctx;
  pe_model_info_t info;
  char errmsg[256];
} pe__cpu_t;

/* Splits a comma-separated list into names[] (trimmed); returns the count
 * or -1 when there are more than cap or a name is too long or empty. */
static int pe__split(const char *list, char names[][PE_MODEL_NAME_MAX],
                     int cap) {
  int n = 0;
  const char *p = list;
  for (;;) {
    while (*p == ' ') {
      p++;
    }
    const char *e = p;
    while (*e && *e != ',') {
      e++;
    }
    const char *q = e;
    while (q > p && q[-1] == ' ') {
      q--;
    }
    size_t len = (size_t)(q - p);
    if (len == 0 || len >= PE_MODEL_NAME_MAX || n == cap) {
      return -1;
    }
    memcpy(names[n], p, len);
    names[n][len] = '\0';
    n++;
    if (*e == '\0') {
      return n;
    }
    p = e + 1;
  }
}

static int pe__cpu_fail(pe__cpu_t *c, char *err, size_t cap, int rc,
                        const char *path, const char *msg) {
  snprintf(err, cap, "%s: %s", path, msg);
  pe_model_ctx_destroy(c->ctx);
  pe_model_destroy(c->model);
  free(c);
  return rc;
}

static int pe__cpu_open(const pe_backend_options_t *opts, void **self,
                        char *err, size_t err_cap) {
  *self = NULL;
  if (opts->model_path == NULL) {
    snprintf(err, err_cap,
             "the cpu backend runs an ONNX model: give --model PATH");
    return PE_EINVAL;
  }
  pe__cpu_t *c = calloc(1, sizeof *c);
  if (c == NULL) {
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  const char *path = opts->model_path;
  int rc = pe_model_load_file(path, NULL, &c->model, err, err_cap);
  if (rc != PE_OK) {
    free(c);
    return rc;
  }
  const pe_model_desc_t *d = pe_model_desc(c->model);
  pe_model_info_t *info = &c->info;
  char msg[256];
  const pe_model_tensor_t *in = &d->input;
  if (d->n_inputs != 1 || in->dtype != PE_MODEL_FLOAT32) {
    snprintf(msg, sizeof msg,
             "the model takes %d inputs ('%s'%s, %s); the engine feeds one "
             "float32 window input (run the model itself with `pattern-engine "
             "infer --input NAME=FILE.npy ...`)",
             d->n_inputs, in->name, d->n_inputs > 1 ? " first" : "",
             in->dtype == PE_MODEL_FLOAT32 ? "float32" : "not float32");
    return pe__cpu_fail(c, err, err_cap, PE_EUNSUPPORTED, path, msg);
  }
  const char *win_s = pe_model_meta(c->model, "pe.window");
  long win_meta = win_s ? strtol(win_s, NULL, 10) : 0;
  if (in->rank == 3) {
    info->n_features = (uint32_t)in->dims[1];
    info->window = (uint32_t)in->dims[2];
  } else if (in->rank == 2) {
    int64_t v = in->dims[1];
    if (win_meta > 0 && v % win_meta == 0) {
      info->window = (uint32_t)win_meta;
      info->n_features = (uint32_t)(v / win_meta);
    } else {
      info->window = (uint32_t)v;
      info->n_features = 1;
    }
  } else {
    snprintf(msg, sizeof msg,
             "input '%s' has rank %d; the engine feeds [batch, channels, "
             "window] (or [batch, values])",
             in->name, in->rank);
    return pe__cpu_fail(c, err, err_cap, PE_ESHAPE, path, msg);
  }
  if (win_s != NULL && (win_meta <= 0 || (uint32_t)win_meta != info->window)) {
    snprintf(msg, sizeof msg,
             "metadata pe.window=%s but the input '%s' holds windows of %u",
             win_s, in->name, info->window);
    return pe__cpu_fail(c, err, err_cap, PE_ESHAPE, path, msg);
  }
  const pe_model_tensor_t *out = &d->outputs[0];
  if (out->numel < 1 || out->numel > 1 << 20) {
    return pe__cpu_fail(c, err, err_cap, PE_ESHAPE, path,
                        "the first output is empty or too large");
  }
  info->n_outputs = (uint32_t)out->numel;
  info->max_batch = UINT32_MAX;
  snprintf(info->input_name, sizeof info->input_name, "%s", in->name);
  snprintf(info->output_name, sizeof info->output_name, "%s", out->name);
  const char *feats = pe_model_meta(c->model, "pe.features");
  if (feats != NULL) {
    int n = pe__split(feats, info->feature_name, PE_MODEL_MAX_FEATURES);
    if (n < 0 || (uint32_t)n != info->n_features) {
      snprintf(msg, sizeof msg,
               "metadata pe.features='%.100s' names %d features but the input "
               "has %u channels",
               feats, n, info->n_features);
      return pe__cpu_fail(c, err, err_cap, PE_ESHAPE, path, msg);
    }
  }
  const char *classes = pe_model_meta(c->model, "pe.classes");
  if (classes != NULL) {
    int n = pe__split(classes, info->class_name, PE_MODEL_MAX_CLASSES);
    if (n < 0 || (uint32_t)n != info->n_outputs) {
      snprintf(msg, sizeof msg,
               "metadata pe.classes='%.100s' names %d classes but the output "
               "has %u values (at most %d classes)",
               classes, n, info->n_outputs, PE_MODEL_MAX_CLASSES);
      return pe__cpu_fail(c, err, err_cap, PE_ESHAPE, path, msg);
    }
    info->n_classes = (uint32_t)n;
  }
  const char *kind = pe_model_meta(c->model, "pe.output");
  info->output = info->n_classes ? PE_OUTPUT_LOGITS : PE_OUTPUT_RAW;
  if (kind != NULL) {
    if (strcmp(kind, "logits") == 0) {
      info->output = PE_OUTPUT_LOGITS;
    } else if (strcmp(kind, "probs") == 0) {
      info->output = PE_OUTPUT_PROBS;
    } else if (strcmp(kind, "raw") == 0) {
      info->output = PE_OUTPUT_RAW;
    } else {
      snprintf(msg, sizeof msg,
               "metadata pe.output='%.60s'; logits, probs or raw", kind);
      return pe__cpu_fail(c, err, err_cap, PE_EUNSUPPORTED, path, msg);
    }
    if (info->output != PE_OUTPUT_RAW && info->n_classes == 0) {
      info->n_classes = info->n_outputs;
    }
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

/* The summary names the kernels this CPU will run, so `--version` says it.
 * Filled before main by a constructor; the ops struct stays constant. */
static char pe__cpu_summary[128] = "ONNX models (opsets 11-17) on the CPU";

int pe__kernels_level(pe_kernels_t k);
const char *pe__kernels_name(int level);

__attribute__((constructor)) static void pe__cpu_summary_init(void) {
  snprintf(pe__cpu_summary, sizeof pe__cpu_summary,
           "ONNX models (opsets 11-17) on the CPU; kernels %s",
           pe__kernels_name(pe__kernels_level(PE_KERNELS_AUTO)));
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
