/* The cuda backend's rewrites of its resolved steps that need no device:
 * which memory a step writes and reads, and folding a residual add into
 * the LayerNorm after it. Steps' pointers are only compared here, never
 * read, so a test can give it any addresses. */
#ifndef PE_BACKENDS_CUDA_FOLD_H
#define PE_BACKENDS_CUDA_FOLD_H

#include <stdint.h>

#include "cuda/kernels.h"

/* Whether step s writes anything of [p, p + n) floats over pn windows. */
int pe__cuda_step_writes(const pe_cuda_step_t *s, uint32_t pn, const float *p,
                         int64_t n);

/* Whether step s reads anything of [p, p + n) floats: one of its inputs
 * starts there (a tensor live at s that overlaps the range starts in it,
 * or is a view into it). */
int pe__cuda_step_reads(const pe_cuda_step_t *s, const float *p, int64_t n);

/* Folds each residual add that only a LayerNorm right after it reads (a
 * Transformer's x + f(x), then LN) into that LayerNorm, which then adds
 * its two inputs as it reads them (in[0] + in[1], the same float
 * additions, so the same bits): one step, one barrier and one tensor's
 * round trip through memory less. The add must be a same-shape Add with
 * no activation; its output must be the LayerNorm's whole input, lie in
 * the arena [lo, hi), and be dead after the LayerNorm (the first later
 * step that touches it writes it without reading it, or none does); and
 * the LayerNorm must write nothing over the add's inputs but, where the
 * arena put it there, its output exactly over one of them (each element
 * read before the thread that reads it writes it). steps (and plan_of,
 * the plan step of each, or NULL) are compacted over *n_steps, tensors
 * laid out for tile windows. Returns how many were folded. */
int pe__cuda_fold_add_ln(pe_cuda_step_t *steps, int *n_steps, int *plan_of,
                         const float *lo, const float *hi, uint32_t tile);

#endif
