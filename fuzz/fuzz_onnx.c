/* libFuzzer target for the ONNX importer: any byte string given to
 * pe_model_load_buffer must load or be refused with a message, never crash,
 * leak or trip a sanitizer. A model that loads is also run (batch 1 and 3,
 * several tiles' worth of contexts) so the plan and the kernels are checked
 * against the shapes the importer inferred. Properties: a refusal leaves
 * *out NULL and a one-line message starting with the name. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pe/error.h"
#include "pe/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pe_model_t *m = NULL;
  char err[512];
  int rc =
      pe_model_load_buffer(data, size, "fuzz.onnx", NULL, &m, err, sizeof err);
  if (rc != PE_OK) {
    if (m != NULL || strncmp(err, "fuzz.onnx: ", 11) != 0 ||
        strchr(err, '\n')) {
      abort();
    }
    return 0;
  }
  const pe_model_desc_t *d = pe_model_desc(m);
  if (d->flops < (int64_t)1 << 26 && d->input.numel < (1 << 16) &&
      d->outputs[0].numel < (1 << 16) && d->arena_floats < (1 << 20)) {
    size_t ni = (size_t)d->input.numel * 3,
           no = (size_t)d->outputs[0].numel * 3;
    float *in = calloc(ni + 1, sizeof(float));
    float *out = calloc(no + 1, sizeof(float));
    for (size_t i = 0; in != NULL && i < ni; i++) {
      in[i] = (float)(i % 7) - 3.0f;
    }
    pe_model_ctx_t *ctx = NULL;
    if (in && out && pe_model_ctx_create(m, 2, &ctx) == PE_OK) {
      pe_model_run(ctx, in, 1, out);
      pe_model_run(ctx, in, 3, out);
    }
    pe_model_ctx_destroy(ctx);
    free(in);
    free(out);
  }
  pe_model_destroy(m);
  return 0;
}
