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

#include "backends/list.h"
#include "pe/backend.h"

#define PE__BACKEND_DECLARE(name)                                              \
  extern const pe_backend_ops_t pe_backend_##name##_ops;
PE_BACKEND_LIST(PE__BACKEND_DECLARE)
#undef PE__BACKEND_DECLARE

#endif
