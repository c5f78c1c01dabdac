/* The cuda backend's rewrites of its resolved steps that need no device:
 * which memory a step writes and reads, folding a residual add into the
 * LayerNorm after it; and the fields of the steps it makes of a plan's
 * (an attention block's, a reduction's), which its test makes alike. Steps'
 * pointers are only compared here, never read, so a test can give it any
 * addresses. */
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

/* A dense step over rows rows a window, but for its weights and bias: x
 * (stride xs) in, y (stride ys) out, K inputs and M outputs a row. */
void pe__cuda_rows_dense(pe_cuda_step_t *d, const float *x, int64_t xs,
                         float *y, int64_t ys, int64_t rows, int64_t K,
                         int64_t M);

/* The heads of an attention block over the projected rows qkv ([L][3E] a
 * window) into y (stride ys), but for its masks (in[1], in[2]): L, E, H,
 * D heads of D columns, mask_h (1: a mask per head), the scale. */
void pe__cuda_attn_heads(pe_cuda_step_t *d, const float *qkv, float *y,
                         int64_t ys, int64_t L, int64_t E, int64_t H, int64_t D,
                         int64_t mask_h, float scale);

/* A reduction step's axes as the kernels read them, from its input's
 * rank, dims and output offsets per axis (os, 0 along a reduced axis):
 * d->p[2] kept axes of sizes d->st[1] and input strides d->st[2], d->p[3]
 * reduced ones of sizes d->st[3] and strides d->st[4]; d->binop the op
 * (op: -1 the mean). */
void pe__cuda_reduce_axes(pe_cuda_step_t *d, int rank, const int64_t *dims,
                          const int64_t *os, int op);

#endif
