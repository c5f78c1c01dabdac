/* The ops tables of the backends in this build (internal).
 *
 * The list comes from the build: CMakeLists.txt names each backend once
 * (PE_BACKENDS; a backend NAME is src/backends/NAME.c defining
 * pe_backend_NAME_ops) and generates backends/list.h, which defines
 * PE_BACKEND_LIST(X) as X(NAME) for every backend built, in registry
 * order. The declarations below and the registry's table both expand it,
 * so a backend that is not built is not declared. */
#ifndef PE_BACKENDS_BACKENDS_H
#define PE_BACKENDS_BACKENDS_H

#include <stddef.h>

#include "backends/list.h"
#include "pe/backend.h"

#define PE__BACKEND_DECLARE(name)                                              \
  extern const pe_backend_ops_t pe_backend_##name##_ops;
PE_BACKEND_LIST(PE__BACKEND_DECLARE)
#undef PE__BACKEND_DECLARE

#include "pe/model.h"

/* Fills info from an ONNX model's input layout as the model API recognised
 * it (pe_model_desc_t.layout, from pe.layout, pe.window or the shape) and
 * its metadata (pe.features, pe.classes, pe.output; see cpu.c). On
 * failure writes one line into msg and returns PE_ESHAPE or
 * PE_EUNSUPPORTED. At load. */
int pe__backend_model_info(const pe_model_t *m, pe_model_info_t *info,
                           char *msg, size_t msg_cap);

#endif
