/* pe/model.h, or its absence; see pe_py_model.h. */
#include "pe_py_model.h"

#include <stdio.h>

#include "pe/error.h"

#ifdef PE_HAVE_ONNX

int pe_py_model_load(const char *path, int kernels, pe_model_t **out, char *err,
                     size_t err_cap) {
  pe_model_options_t opts = {.kernels = (pe_kernels_t)kernels};
  return pe_model_load_file(path, &opts, out, err, err_cap);
}

void pe_py_model_destroy(pe_model_t *model) { pe_model_destroy(model); }

const pe_model_desc_t *pe_py_model_desc(const pe_model_t *model) {
  return pe_model_desc(model);
}

int pe_py_model_ctx_create(const pe_model_t *model, uint32_t max_batch,
                           pe_model_ctx_t **out) {
  return pe_model_ctx_create(model, max_batch, out);
}

void pe_py_model_ctx_destroy(pe_model_ctx_t *ctx) { pe_model_ctx_destroy(ctx); }

int pe_py_model_run(pe_model_ctx_t *ctx, const float *in, uint32_t batch,
                    float *out) {
  return pe_model_run(ctx, in, batch, out);
}

int pe_py_model_run_inputs(pe_model_ctx_t *ctx, const void *const *in, int n_in,
                           uint32_t batch, float *out) {
  return pe_model_run_inputs(ctx, in, n_in, batch, out);
}

#else

int pe_py_model_load(const char *path, int kernels, pe_model_t **out, char *err,
                     size_t err_cap) {
  (void)kernels;
  *out = NULL;
  snprintf(err, err_cap,
           "%s: this build has no ONNX importer (the library was built "
           "without protobuf-c; see README)",
           path);
  return PE_EUNSUPPORTED;
}

void pe_py_model_destroy(pe_model_t *model) { (void)model; }

const pe_model_desc_t *pe_py_model_desc(const pe_model_t *model) {
  (void)model;
  return NULL;
}

int pe_py_model_ctx_create(const pe_model_t *model, uint32_t max_batch,
                           pe_model_ctx_t **out) {
  (void)model;
  (void)max_batch;
  *out = NULL;
  return PE_EUNSUPPORTED;
}

void pe_py_model_ctx_destroy(pe_model_ctx_t *ctx) { (void)ctx; }

int pe_py_model_run(pe_model_ctx_t *ctx, const float *in, uint32_t batch,
                    float *out) {
  (void)ctx;
  (void)in;
  (void)batch;
  (void)out;
  return PE_EUNSUPPORTED;
}

int pe_py_model_run_inputs(pe_model_ctx_t *ctx, const void *const *in, int n_in,
                           uint32_t batch, float *out) {
  (void)ctx;
  (void)in;
  (void)n_in;
  (void)batch;
  (void)out;
  return PE_EUNSUPPORTED;
}

#endif
