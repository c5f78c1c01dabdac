/* Which kernels a model runs (internal to src/model/, exported to the layers
 * above through the model target: the cpu backend names them in its
 * summary). */
#ifndef PE_MODEL_KERNEL_LEVEL_H
#define PE_MODEL_KERNEL_LEVEL_H

#include "pe/model.h"

/* The kernels of one instruction set: a read-only static table, defined in
 * model/model_impl.h (opaque above src/model/). */
typedef struct pe__kernels pe__kernels_t;

/* The table a plan made for choice k uses on this CPU: AVX-512 (with
 * AVX2/FMA for the rest), AVX2/FMA, or portable C. AUTO is the best the CPU
 * has; an explicit choice is capped by it, so the table returned is never one
 * the CPU cannot run. Never NULL. */
const pe__kernels_t *pe__kernels_pick(pe_kernels_t k);

/* The table's name: "avx512+fma", "avx2+fma" or "generic". */
const char *pe__kernels_name(const pe__kernels_t *k);

#endif
