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
  /* the float parameters of ELEMWISE (f[0..1]), PAD (f[0] the constant),
   * LAYERNORM (f[0] eps) and the attention heads (f[0] the scale) */
  float f[4];
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
  /* device weights: conv [cout][cin/g][k]; dense w [K][M], and w2 [M][K]
   * too when dense_warp; LSTM/GRU W and R transposed to [in][G*H] and
   * [H][G*H] */
  const float *w, *w2, *bias, *bias2;
  const int64_t *idx;
  int64_t n_idx;
  int64_t K, M;
  int dense_warp; /* dense: few rows run one warp per output (long K) */
  int tf32;       /* precision tf32: a dense step's tiled product, and a
                     conv1d step without groups, on tensor cores */
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

/* ---- The persistent kernel (cuda mode "persistent") ----------------------
 * One resident block of PE_CUDA_PERSIST_THREADS threads runs every step of
 * the plan for batches of at most max_n windows (PE_CUDA_PERSIST_MAX_BATCH
 * or fewer), fed through a control block in mapped pinned host memory.
 * Windows and scores travel as tagged words, each float in the low half
 * of a 64-bit word whose high half is the request's seq (written in one
 * store, read in one load, so that a word carrying the seq carries its
 * float), which lets either side take data as it arrives, with no fence
 * and no second trip over the bus: the host writes the windows' words,
 * then req (the seq, one more than the last, and n, in one 64-bit store);
 * the kernel polls req together with the words of the first window, and
 * answers with the scores' words and done = seq. It leaves (running = 0)
 * when stop is set or after idle_ns without a request.
 *
 * On chip (on_chip = 1), the block keeps everything a request touches in
 * its shared memory: the steps (copied once per launch, their activation
 * pointers moved from the device arena, input and output into shared
 * memory), the windows read straight from mapped memory, every
 * intermediate tensor and the scores, which it writes to mapped memory,
 * and the weights that fit beside them (wcopy, copied once per launch).
 * Otherwise the activations and the weights stay in device memory. */
#define PE_CUDA_PERSIST_THREADS 512
#define PE_CUDA_PERSIST_MAX_BATCH 16

typedef struct pe_cuda_ctrl {
  /* req and stop share the first 16 bytes, which the kernel reads in one
   * load (the block is allocated page-aligned) */
  uint64_t req;     /* host: the latest request's seq | its windows << 32 */
  uint32_t stop;    /* host: 1 to make the kernel leave */
  uint32_t done;    /* kernel: the latest request answered */
  uint32_t running; /* host sets 1 at launch; the kernel 0 as it leaves */
} pe_cuda_ctrl_t;

/* A weight tensor the persistent kernel copies on chip once per launch:
 * floats from src (device) to the weights region + off (floats, a
 * multiple of 4); the steps' pointers into it move with it. */
typedef struct pe_cuda_wcopy {
  const float *src;
  int64_t floats, off;
} pe_cuda_wcopy_t;

typedef struct pe_cuda_persist {
  pe_cuda_ctrl_t *ctrl; /* device address of the mapped block */
  /* device copy of the steps, their arena tensors laid out for max_n
   * windows (off_ps * max_n floats into the arena) */
  const pe_cuda_step_t *steps;
  int n_steps;
  int on_chip;
  uint32_t max_n;
  uint32_t last; /* the request answered before launch */
  uint64_t idle_ns;
  const uint64_t *h_in; /* device address of mapped windows (tagged) */
  uint64_t *h_out;      /* device address of mapped scores (tagged) */
  float *d_in;          /* the plan's input */
  const float *d_out;   /* the plan's output */
  const float *arena;   /* the device arena */
  int64_t arena_floats; /* what the steps use of it: max_n * per window */
  int64_t in_numel, out_numel; /* per window */
  /* on chip: the weights copied into shared memory (device table of
   * n_wcopy; w_floats in all), after the scores' region */
  const pe_cuda_wcopy_t *wcopy;
  int n_wcopy;
  int64_t w_floats;
  /* diagnostics: NULL, or device memory for PE_CUDA_STAMP_RING requests
   * of PE_CUDA_STAMP_SLOTS %globaltimer stamps each (request seq %
   * PE_CUDA_STAMP_RING); a kernel built without the stamps runs when
   * NULL */
  uint64_t *stamps;
  /* 1: one resident block as above; 2 or more: a thread-block cluster of
   * that many blocks, one per SM, the activations in device memory, each
   * step shared out over the cluster (pe_cuda_persist_cluster) */
  int blocks;
} pe_cuda_persist_t;

/* The persistent kernel's stamps of one request, in ns of the device's
 * global timer: slot 0 the request's seq, then the moments named below;
 * a step's slot is PE_CUDA_STAMP_STEP0 + its index, the steps past the
 * last slot sharing it. */
#define PE_CUDA_STAMP_RING 4096
#define PE_CUDA_STAMP_SLOTS 24
#define PE_CUDA_STAMP_SEEN 1    /* the request and its first window in */
#define PE_CUDA_STAMP_START 2   /* (unused) */
#define PE_CUDA_STAMP_WINDOW 3  /* every window in (after the barrier) */
#define PE_CUDA_STAMP_STEP0 4   /* each step done (after its barrier) */
#define PE_CUDA_STAMP_STEPS 16  /* slots for steps */
#define PE_CUDA_STAMP_SCORES 20 /* thread 0's scores stored */
#define PE_CUDA_STAMP_FENCED 21 /* (unused) */
#define PE_CUDA_STAMP_DONE 22   /* done stored */

/* The first step the persistent kernel cannot run (a kind without a
 * kernel, or an LSTM/GRU of more hidden units than it has threads), or -1
 * when it runs them all; *scratch the shared memory its recurrent steps
 * need, in bytes. */
int pe_cuda_persist_check(const pe_cuda_step_t *steps, int n_steps,
                          size_t *scratch);
/* Shared memory of the persistent kernel on chip: its n_steps steps, the
 * activations of `floats` floats (arena, input and output of max_n
 * windows, then the weights copied), then scratch bytes. */
size_t pe_cuda_persist_shmem(int n_steps, int64_t floats, size_t scratch);
/* The most dynamic shared memory the persistent kernel's block may have
 * on device 0 (the device's limit less the kernel's static shared
 * memory). */
int pe_cuda_shmem_limit(size_t *bytes);
/* The largest thread-block cluster, up to `want` blocks, that the
 * persistent kernel of n_steps steps whose recurrent steps need scratch
 * bytes can run as on device 0 (*blocks; 1 where the device has no
 * clusters or fits none of 2), and the dynamic shared memory of each of
 * its blocks (*shmem; over half an SM's, so that each has an SM of its
 * own). Returns 0 or a cudaError_t. */
int pe_cuda_persist_cluster(int n_steps, size_t scratch, int want, int *blocks,
                            size_t *shmem);
/* Launches the persistent kernel on stream (a cluster of a->blocks
 * blocks where that is 2 or more); it returns at once. */
int pe_cuda_persist_launch(const pe_cuda_persist_t *a, size_t shmem,
                           void *stream);

/* Thin wrappers of the runtime that count device allocations, so that the
 * backend can show there is none after load. cudaError_t values. */
int pe_cuda_device_count(int *count);
int pe_cuda_device_name(int dev, char *buf, size_t cap, int *major, int *minor);
const char *pe_cuda_strerror(int err);
int pe_cuda_malloc(void **p, size_t bytes);
int pe_cuda_host_alloc(void **p, size_t bytes);
/* Pinned host memory mapped into the device's address space. */
int pe_cuda_host_alloc_mapped(void **p, size_t bytes);
void pe_cuda_free(void *p);
void pe_cuda_host_free(void *p);
/* Allocations of the calling thread through the functions above. */
uint64_t pe_cuda_alloc_count(void);

#ifdef __cplusplus
}
#endif
#endif
