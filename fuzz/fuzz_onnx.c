/* libFuzzer target for the ONNX importer: any byte string given to
 * pe_model_load_buffer must load or be refused with a message, never crash,
 * leak or trip a sanitizer. A model that loads is also run (batch 1 and 3,
 * several tiles' worth of contexts) so the plan and the kernels are checked
 * against the shapes the importer inferred. Properties: a refusal leaves
 * *out NULL and a one-line message starting with the name.
 *
 * External data: an input that starts with "PEXD", a 4-byte little-endian
 * length L and L bytes carries a data blob; the rest is the model, and every
 * external tensor's location (once the importer has checked it) reads that
 * blob, so offsets, lengths and sizes against a real file size are fuzzed.
 * Any other input is a model alone, loaded with a lookup that finds no
 * file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pe/error.h"
#include "pe/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct blob {
  const uint8_t *p;
  size_t len;
  int present;
} blob_t;

static int blob_data(void *ctx, const char *loc, const void **data, size_t *len,
                     char *why, size_t why_cap) {
  const blob_t *b = ctx;
  size_t n = strlen(loc);
  if (n == 0 || loc[0] == '/' || strcmp(loc, "..") == 0 ||
      strncmp(loc, "../", 3) == 0 || strstr(loc, "/../") != NULL ||
      (n >= 3 && strcmp(loc + n - 3, "/..") == 0)) {
    abort(); /* the importer must have refused it */
  }
  if (!b->present) {
    snprintf(why, why_cap, "no such file");
    return PE_EIO;
  }
  *data = b->p;
  *len = b->len;
  return PE_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pe_model_t *m = NULL;
  char err[512];
  blob_t blob = {NULL, 0, 0};
  if (size >= 8 && memcmp(data, "PEXD", 4) == 0) {
    size_t l = (size_t)data[4] | (size_t)data[5] << 8 | (size_t)data[6] << 16 |
               (size_t)data[7] << 24;
    if (l > size - 8) {
      return 0;
    }
    blob.p = data + 8;
    blob.len = l;
    blob.present = 1;
    data += 8 + l;
    size -= 8 + l;
  }
  int rc = pe_model_load_buffer_data(data, size, "fuzz.onnx", NULL, blob_data,
                                     &blob, &m, err, sizeof err);
  if (rc != PE_OK) {
    if (m != NULL || strncmp(err, "fuzz.onnx: ", 11) != 0 ||
        strchr(err, '\n')) {
      abort();
    }
    return 0;
  }
  const pe_model_desc_t *d = pe_model_desc(m);
  int small = d->flops < (int64_t)1 << 26 && d->outputs[0].numel < (1 << 16) &&
              d->arena_floats < (1 << 20);
  for (int k = 0; k < d->n_inputs; k++) {
    small &= d->inputs[k].numel < (1 << 16);
  }
  if (small) {
    /* every input as 3 windows of its type (8 bytes each covers int64),
     * bools kept 0 or 1 */
    void *in[PE_MODEL_MAX_IO] = {NULL};
    int ok = 1;
    for (int k = 0; k < d->n_inputs; k++) {
      size_t n = (size_t)d->inputs[k].numel * 3;
      unsigned char *p = calloc(n + 1, 8);
      ok &= p != NULL;
      for (size_t i = 0; p != NULL && i < n; i++) {
        float f = (float)(i % 7) - 3.0f;
        int64_t v = (int64_t)(i % 7) - 3;
        if (d->inputs[k].dtype == PE_MODEL_FLOAT32) {
          memcpy(p + i * 4, &f, 4);
        } else if (d->inputs[k].dtype == PE_MODEL_INT64) {
          memcpy(p + i * 8, &v, 8);
        } else {
          p[i] = (unsigned char)(i % 2);
        }
      }
      in[k] = p;
    }
    size_t no = (size_t)d->outputs[0].numel * 3;
    float *out = calloc(no + 1, sizeof(float));
    pe_model_ctx_t *ctx = NULL;
    if (ok && out && pe_model_ctx_create(m, 2, &ctx) == PE_OK) {
      const void *const *ins = (const void *const *)in;
      pe_model_run_inputs(ctx, ins, d->n_inputs, 1, out);
      pe_model_run_inputs(ctx, ins, d->n_inputs, 3, out);
      if (d->n_inputs == 1) {
        pe_model_run(ctx, in[0], 3, out);
      }
    }
    pe_model_ctx_destroy(ctx);
    for (int k = 0; k < d->n_inputs; k++) {
      free(in[k]);
    }
    free(out);
  }
  pe_model_destroy(m);
  return 0;
}
