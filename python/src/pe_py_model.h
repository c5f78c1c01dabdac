/* pe/model.h for the Python package, in every build: where the library was
 * built without the ONNX importer these return PE_EUNSUPPORTED (load) or do
 * nothing, so the extension links either way. The arguments and results
 * are pe/model.h's; kernels is a pe_kernels_t. */
#ifndef PE_PY_MODEL_H
#define PE_PY_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "pe/model.h"

int pe_py_model_load(const char *path, int kernels, pe_model_t **out, char *err,
                     size_t err_cap);
void pe_py_model_destroy(pe_model_t *model);
const pe_model_desc_t *pe_py_model_desc(const pe_model_t *model);
int pe_py_model_ctx_create(const pe_model_t *model, uint32_t max_batch,
                           pe_model_ctx_t **out);
void pe_py_model_ctx_destroy(pe_model_ctx_t *ctx);
int pe_py_model_run(pe_model_ctx_t *ctx, const float *in, uint32_t batch,
                    float *out);
int pe_py_model_run_inputs(pe_model_ctx_t *ctx, const void *const *in, int n_in,
                           uint32_t batch, float *out);

#endif
