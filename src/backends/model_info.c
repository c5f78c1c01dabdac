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
  if (d->layout == PE_MODEL_LAYOUT_NONE) {
    snprintf(msg, msg_cap, "%s", d->layout_note);
    return PE_ESHAPE;
  }
  if (d->window > UINT32_MAX || d->channels > UINT32_MAX) {
    snprintf(msg, msg_cap, "the input's windows are too large");
    return PE_ESHAPE;
  }
  info->window = (uint32_t)d->window;
  info->n_features = (uint32_t)d->channels;
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
