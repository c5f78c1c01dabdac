/* What the engine needs to know of an ONNX model, read from its input
 * shape and metadata (shared by the backends that run ONNX models; the
 * keys are documented in cpu.c). At load. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backends.h"
#include "pe/error.h"

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

/* A dimension of the input as a count of at most max; 0 when it is not one
 * (dynamic, zero, negative or too large). */
static uint32_t pe__dim(int64_t v, uint32_t max) {
  return v >= 1 && v <= (int64_t)max ? (uint32_t)v : 0;
}

int pe__backend_model_info(const pe_model_t *m, pe_model_info_t *info,
                           char *msg, size_t msg_cap) {
  memset(info, 0, sizeof *info);
  const pe_model_desc_t *d = pe_model_desc(m);
  const pe_model_tensor_t *in = &d->input;
  if (d->n_inputs != 1 || in->dtype != PE_MODEL_FLOAT32) {
    snprintf(msg, msg_cap,
             "the model takes %d inputs ('%s'%s, %s); the engine feeds one "
             "float32 window input (run the model itself with `pattern-engine "
             "infer --input NAME=FILE.npy ...`)",
             d->n_inputs, in->name, d->n_inputs > 1 ? " first" : "",
             in->dtype == PE_MODEL_FLOAT32 ? "float32" : "not float32");
    return PE_EUNSUPPORTED;
  }
  const char *win_s = pe_model_meta(m, "pe.window");
  uint32_t win_meta = 0;
  if (win_s != NULL) {
    char *end = NULL;
    long v = strtol(win_s, &end, 10);
    win_meta = end != win_s && *end == '\0' ? pe__dim(v, UINT32_MAX) : 0;
    if (win_meta == 0) {
      snprintf(msg, msg_cap,
               "metadata pe.window='%.60s' is not a positive whole number",
               win_s);
      return PE_ESHAPE;
    }
  }
  if (in->rank == 3) {
    info->n_features = pe__dim(in->dims[1], UINT32_MAX);
    info->window = pe__dim(in->dims[2], UINT32_MAX);
  } else if (in->rank == 2) {
    uint32_t v = pe__dim(in->dims[1], UINT32_MAX);
    if (win_meta > 0 && v % win_meta == 0) {
      info->window = win_meta;
      info->n_features = v / win_meta;
    } else {
      info->window = v;
      info->n_features = 1;
    }
  } else {
    snprintf(msg, msg_cap,
             "input '%s' has rank %d; the engine feeds [batch, channels, "
             "window] (or [batch, values])",
             in->name, in->rank);
    return PE_ESHAPE;
  }
  if (info->n_features == 0 || info->window == 0) {
    snprintf(msg, msg_cap,
             "input '%s' has a dimension that is not a count from 1 to %u",
             in->name, UINT32_MAX);
    return PE_ESHAPE;
  }
  if (win_s != NULL && win_meta != info->window) {
    snprintf(msg, msg_cap,
             "metadata pe.window=%s but the input '%s' holds windows of %u",
             win_s, in->name, info->window);
    return PE_ESHAPE;
  }
  const pe_model_tensor_t *out = &d->outputs[0];
  if (out->numel < 1 || out->numel > 1 << 20) {
    snprintf(msg, msg_cap, "the first output is empty or too large");
    return PE_ESHAPE;
  }
  info->n_outputs = (uint32_t)out->numel;
  info->max_batch = UINT32_MAX;
  snprintf(info->input_name, sizeof info->input_name, "%s", in->name);
  snprintf(info->output_name, sizeof info->output_name, "%s", out->name);
  const char *feats = pe_model_meta(m, "pe.features");
  if (feats != NULL) {
    int n = pe__split(feats, info->feature_name, PE_MODEL_MAX_FEATURES);
    if (n < 0 || (uint32_t)n != info->n_features) {
      snprintf(msg, msg_cap,
               "metadata pe.features='%.100s' names %d features but the input "
               "has %u channels",
               feats, n, info->n_features);
      return PE_ESHAPE;
    }
  }
  const char *classes = pe_model_meta(m, "pe.classes");
  if (classes != NULL) {
    int n = pe__split(classes, info->class_name, PE_MODEL_MAX_CLASSES);
    if (n < 0 || (uint32_t)n != info->n_outputs) {
      snprintf(msg, msg_cap,
               "metadata pe.classes='%.100s' names %d classes but the output "
               "has %u values (at most %d classes)",
               classes, n, info->n_outputs, PE_MODEL_MAX_CLASSES);
      return PE_ESHAPE;
    }
    info->n_classes = (uint32_t)n;
  }
  const char *kind = pe_model_meta(m, "pe.output");
  info->output = info->n_classes ? PE_OUTPUT_LOGITS : PE_OUTPUT_RAW;
  if (kind != NULL) {
    if (strcmp(kind, "logits") == 0) {
      info->output = PE_OUTPUT_LOGITS;
    } else if (strcmp(kind, "probs") == 0) {
      info->output = PE_OUTPUT_PROBS;
    } else if (strcmp(kind, "raw") == 0) {
      info->output = PE_OUTPUT_RAW;
    } else {
      snprintf(msg, msg_cap, "metadata pe.output='%.60s'; logits, probs or raw",
               kind);
      return PE_EUNSUPPORTED;
    }
    if (info->output != PE_OUTPUT_RAW && info->n_classes == 0) {
      info->n_classes = info->n_outputs;
    }
  }
  return PE_OK;
}
