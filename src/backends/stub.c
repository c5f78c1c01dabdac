/* The `stub` backend: a fixed, documented function in place of a model.
 *
 * It needs no model file and is always built, so every test can run the
 * engine's model path. For each window it reads x, the newest value of the
 * first channel, and outputs the probabilities softmax(0, x - 3, -x - 3) of
 * the classes none, up, down. With the default channel return_z, "up" wins
 * on a return more than about 3 standard deviations above zero. Window
 * length: opts->window (default PE_DEFAULT_MODEL_WINDOW, 32); channels:
 * opts->model_features (default return_z). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backends.h"
#include "pe/defaults.h"
#include "pe/error.h"

typedef struct pe__stub {
  pe_model_info_t info;
  char errmsg[128];
} pe__stub_t;

static int pe__stub_open(const pe_backend_options_t *opts, void **self,
                         char *err, size_t err_cap) {
  pe__stub_t *s = calloc(1, sizeof *s);
  if (s == NULL) {
    snprintf(err, err_cap, "stub: out of memory");
    return PE_ENOMEM;
  }
  pe_model_info_t *info = &s->info;
  info->window = opts->window ? opts->window : PE_DEFAULT_MODEL_WINDOW;
  info->n_features = 1;
  if (opts->model_features != NULL) {
    uint32_t n = 1;
    for (const char *p = opts->model_features; *p; p++) {
      n += *p == ',';
    }
    info->n_features = n;
  } else {
    snprintf(info->feature_name[0], sizeof info->feature_name[0], "return_z");
  }
  info->n_outputs = 3;
  info->n_classes = 3;
  info->output = PE_OUTPUT_PROBS;
  info->max_batch = UINT32_MAX;
  snprintf(info->input_name, sizeof info->input_name, "window");
  snprintf(info->output_name, sizeof info->output_name, "probs");
  snprintf(info->class_name[0], sizeof info->class_name[0], "none");
  snprintf(info->class_name[1], sizeof info->class_name[1], "up");
  snprintf(info->class_name[2], sizeof info->class_name[2], "down");
  *self = s;
  return PE_OK;
}

static int pe__stub_describe(void *self, pe_model_info_t *info) {
  *info = ((pe__stub_t *)self)->info;
  return PE_OK;
}

static int pe__stub_run(void *self, const float *in, uint32_t batch,
                        float *out) {
  const pe__stub_t *s = self;
  size_t stride = (size_t)s->info.n_features * s->info.window;
  for (uint32_t b = 0; b < batch; b++) {
    double x = in[(size_t)b * stride + s->info.window - 1];
    double l1 = x - 3.0;
    double l2 = -x - 3.0;
    double m = fmax(0.0, fmax(l1, l2));
    double e0 = exp(-m);
    double e1 = exp(l1 - m);
    double e2 = exp(l2 - m);
    double sum = e0 + e1 + e2;
    out[b * 3 + 0] = (float)(e0 / sum);
    out[b * 3 + 1] = (float)(e1 / sum);
    out[b * 3 + 2] = (float)(e2 / sum);
  }
  return PE_OK;
}

static const char *pe__stub_errmsg(void *self) {
  return ((pe__stub_t *)self)->errmsg;
}

static void pe__stub_close(void *self) { free(self); }

static void pe__stub_summary(const pe_backend_options_t *opts, char *buf,
                             size_t cap) {
  (void)opts;
  snprintf(buf, cap,
           "fixed function of the newest window value; no model file");
}

const pe_backend_ops_t pe_backend_stub_ops = {
    .abi_version = PE_BACKEND_ABI_VERSION,
    .name = "stub",
    .summary = pe__stub_summary,
    .open = pe__stub_open,
    .describe = pe__stub_describe,
    .run = pe__stub_run,
    .errmsg = pe__stub_errmsg,
    .close = pe__stub_close,
};
