/* Which kernels a model runs (internal to src/model/, exported to the layers
 * above through the model target: the cpu backend names them in its
 * summary). */
#ifndef PE_MODEL_KERNEL_LEVEL_H
#define PE_MODEL_KERNEL_LEVEL_H

#include "pe/model.h"

/* The level a plan made for choice k uses on this CPU: 2 for AVX-512 (with
 * AVX2/FMA for the rest), 1 for AVX2/FMA, 0 for portable C. AUTO is the best
 * the CPU has; an explicit choice is capped by it. */
int pe__kernels_level(pe_kernels_t k);

/* "avx512+fma", "avx2+fma" or "generic". */
const char *pe__kernels_name(int level);

#endif
