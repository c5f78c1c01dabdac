/* The CUDA kernels of the `cuda` backend (src/cuda/kernels.cu), one per
 * step kind of the execution plan (src/model/plan_view.h), and the few
 * runtime calls the backend makes, behind plain C.
 *
 * A step is resolved once, at load, into a pe_cuda_step_t whose pointers
 * are device addresses that never change (weights, the arena, the input
 * and output buffers), so that a run only launches. Window b of a tensor
 * starts at its pointer + b * its stride in floats (0 for a constant). */
#ifndef PE_CUDA_KERNELS_H
#define PE_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PE_CUDA_MAX_RANK 8
#define PE_CUDA_MAX_IN 16

typedef struct pe_cuda_step {
  int kind; /* pe_plan_kind_t */
  int act;
  float alpha;
  int binop;
  int n_in;
  int rank;
  int64_t p[24];
  int64_t dims[PE_CUDA_MAX_RANK];
  int64_t st[PE_CUDA_MAX_IN][PE_CUDA_MAX_RANK];
  const float *in[PE_CUDA_MAX_IN]; /* device; NULL absent */
  int64_t in_stride[PE_CUDA_MAX_IN];
  float *out[3];
  int64_t out_stride[3];
  /* device weights: conv [cout][cin/g][k]; dense [K][M] or [M][K]
   * (dense_warp); LSTM/GRU W and R transposed to [in][G*H] and [H][G*H] */
  const float *w, *w2, *bias, *bias2;
  const int64_t *idx;
  int64_t n_idx;
  int64_t K, M;
  int dense_warp; /* dense: one warp per output, w as [M][K] (long K) */
  int64_t numel;  /* elements of out[0] per window */
} pe_cuda_step_t;

/* Whether a dense layer of K inputs runs one warp per output (its weights
 * then [M][K]) rather than one thread ([K][M]). */
int pe_cuda_dense_warp(int64_t K);

/* Whether a kind has a kernel here. */
int pe_cuda_kind_supported(int kind);

/* Enqueues step s over n windows on stream (a cudaStream_t). Returns 0 or
 * a cudaError_t. No allocation. */
int pe_cuda_step_launch(const pe_cuda_step_t *s, uint32_t n, void *stream);

/* Thin wrappers of the runtime that count device allocations, so that the
 * backend can show there is none after load. cudaError_t values. */
int pe_cuda_device_count(int *count);
int pe_cuda_device_name(int dev, char *buf, size_t cap, int *major, int *minor);
const char *pe_cuda_strerror(int err);
int pe_cuda_malloc(void **p, size_t bytes);
int pe_cuda_host_alloc(void **p, size_t bytes);
void pe_cuda_free(void *p);
void pe_cuda_host_free(void *p);
uint64_t pe_cuda_alloc_count(void);

#ifdef __cplusplus
}
#endif
#endif
