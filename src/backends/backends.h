/* The ops tables of the backends in this build (internal). */
#ifndef PE_BACKENDS_BACKENDS_H
#define PE_BACKENDS_BACKENDS_H

#include "pe/backend.h"

extern const pe_backend_ops_t pe_backend_stub_ops;
#ifdef PE_HAVE_BACKEND_CPU
extern const pe_backend_ops_t pe_backend_cpu_ops;
#endif
#ifdef PE_HAVE_BACKEND_CUDA
extern const pe_backend_ops_t pe_backend_cuda_ops;
#endif
#ifdef PE_HAVE_BACKEND_TENSORRT
extern const pe_backend_ops_t pe_backend_tensorrt_ops;
#endif

#endif
