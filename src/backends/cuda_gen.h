/* Kernels generated for one plan at open and compiled there with NVRTC
 * (internal): the resident kernel of the cuda backend's persistent mode,
 * and the whole-model kernel that runs its batches in graph mode.
 *
 * The general resident kernel (kernels.cu, pe__k_persist) reads every
 * shape of every step at run time; at batch 1 its time goes into the
 * index arithmetic and loop control that this costs. For a plan made only
 * of affine, conv1d, dense, unary, simple binary, strided-copy, gather,
 * concat, LSTM and GRU (linear_before_reset) steps, and, where asked
 * (rows), LayerNorm, attention-head and reduction steps, this module writes
 * CUDA C for the plan instead, with every shape, stride, pad and offset a
 * constant, the loops of constant bounds and the work of each step shared
 * out among the threads by the generator; the block keeps the weights (as
 * floats, in layouts chosen here, copied once per launch from the
 * backend's device copies) and every activation (and a recurrent step's
 * gates and states) in its shared memory. The sums are in float (a small
 * dense layer's in double), in an order of this module's choosing; a
 * LayerNorm's and an attention head's rows run src/cuda/rows.cuh, the
 * steps' kernels' own code.
 *
 * The batch kernel runs the same steps, of the same generated code, over
 * a batch of windows in device memory: every block copies the weights
 * into its shared memory once, then takes its share of the batch (the
 * windows split evenly over the grid) a group of windows at a time,
 * reading them from the input buffer and writing their scores to the
 * output buffer, with every activation on chip. One launch replaces the
 * plan's launch per step and the arena's trips through device memory.
 * A window's scores are the same bits whichever block, group or batch
 * it is computed in.
 *
 * The resident kernel speaks the general one's protocol with the host exactly
 * (kernels.h, "The persistent kernel"; the code of it is
 * src/cuda/persist_proto.cuh, whose text, with src/cuda/act.cuh's and
 * src/cuda/rows.cuh's, the
 * build embeds here and the source begins with), so the backend's run is
 * the same for both.
 *
 * NVRTC is loaded with dlopen (libnvrtc.so.13, libnvrtc.so, then
 * /usr/local/cuda/lib64), so the library does not need it to link or to
 * run: without it, or when the plan has a step the generator has no form
 * for, open says why and the backend keeps the general kernel. Nothing
 * here is on the hot path but pe_cuda_gen_launch, which is called when
 * the kernel (re)starts. */
#ifndef PE_BACKENDS_CUDA_GEN_H
#define PE_BACKENDS_CUDA_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "cuda/kernels.h"

/* What the generator works from: the backend's resolved steps with each
 * pointer field written as a plan-file reference (cuda_plan.h,
 * PE_CUDA_REF_*: the input, the output, an arena offset in floats per
 * window, or blob i), so that it needs no device. The caller owns every
 * array. */
typedef struct pe_cuda_gen_plan {
  const pe_cuda_step_t *steps;
  int n_steps;
  /* blob i: its device address (any value where the source is only
   * generated, never run) and its size in floats */
  const void *const *blob_dev;
  const int64_t *blob_floats;
  int n_blobs;
  int64_t in_numel, out_numel, arena_ps; /* floats per window */
  uint32_t max_n;     /* windows per request at most (the host's buffers);
                         batch: windows a block holds at once at most */
  int batch;          /* 0: the resident kernel; 1: the batch kernel */
  int stamps;         /* 1: the kernel writes the stamps (the resident
                         kernel: kernels.h; the batch kernel: below) */
  size_t shmem_limit; /* dynamic shared memory a block may have, bytes */
  /* The dense steps of four columns a thread (an output a thread's sums):
   * rows a thread, in the batch kernel only (0: two where the rows come
   * in twos, else one; N: the largest of 1, 2, 4 and 8 up to N that
   * divides the rows), and each output's sums, in both kernels (0 or 4:
   * four, by k % 4; 1: one, k in order). The two kernels of a plan must
   * be made with the same sums, so that a window's bits do not depend on
   * its batch; the rows change no bits. */
  int dense_rows;
  int dense_sums;
  /* 1: the Conv 1-D steps of more than 32 positions in
   * their wide form (two positions a thread, eight output channels where
   * a group's come in eights): the same bits with fewer reads of shared
   * memory a product (the backend's default). 0: a position and at most
   * four channels a thread. */
  int conv_wide;
  /* 1: precision tf32, the dense steps of an output a thread's sums whose
   * rows come in sixteens and k in sixteens on the tensor cores (TF32
   * operands, float sums; src/cuda/mma_tf32.cuh), in both kernels alike;
   * the rest as in fp32. */
  int tf32;
  /* 1: where the weights and one window's activations do not fit the
   * shared memory together, the kernel may stage each step's weights
   * there in turn, copied before the step at each group (the batch
   * kernel; the resident kernel's requests would pay the copies each). */
  int allow_staged;
} pe_cuda_gen_plan_t;

/* The batch kernel's stamps: where its time goes, for diagnostics. A
 * kernel made with them adds, in thread 0 of each launch's first block,
 * the global timer's ns since its last stamp into these slots of a
 * device array of PE_CUDA_GEN_BS_STEP0 + n_steps counters (the host
 * zeroes it once): the windows those blocks ran, then the phases of
 * their groups. */
#define PE_CUDA_GEN_BS_WINDOWS 0 /* windows the first blocks ran */
#define PE_CUDA_GEN_BS_WEIGHTS 1 /* start to the weights copied */
#define PE_CUDA_GEN_BS_READ 2    /* a group's windows read in */
#define PE_CUDA_GEN_BS_SCORES 3  /* a group's scores stored (thread 0's) */
#define PE_CUDA_GEN_BS_STEP0 4   /* step k done: slot STEP0 + k */

/* The source of a plan's kernel (text malloc'd, the caller frees it),
 * the kernel's name in it, and what a launch needs. */
#define PE_CUDA_GEN_KERNEL "pe_gen_persist"
#define PE_CUDA_GEN_BATCH_KERNEL "pe_gen_batch"
typedef struct pe_cuda_gen_src {
  char *text;
  int threads;    /* the block */
  size_t shmem;   /* dynamic shared memory, bytes */
  uint32_t max_n; /* windows per request it takes (<= plan max_n); batch:
                     windows a block holds at once */
  int staged;     /* 1: each step's weights staged at each group */
} pe_cuda_gen_src_t;

/* Writes the kernel for plan p into out. PE_EUNSUPPORTED (with why) for
 * a plan with a step it has no form for, or that does not fit the
 * block's shared memory with one window; PE_ENOMEM. */
int pe_cuda_gen_source(const pe_cuda_gen_plan_t *p, pe_cuda_gen_src_t *out,
                       char *why, size_t cap);

/* Compiles src with NVRTC for compute capability major.minor into a cubin
 * (*cubin malloc'd, the caller frees it; *ms the time NVRTC took).
 * PE_EUNSUPPORTED when NVRTC cannot be loaded, PE_EBACKEND when the
 * compilation fails (the start of NVRTC's log in why). */
int pe_cuda_gen_compile(const char *src, int major, int minor, void **cubin,
                        size_t *len, double *ms, char *why, size_t cap);

/* NVRTC's version as "13.0", or why it cannot be loaded, into buf. 0
 * when it can be. */
int pe_cuda_gen_nvrtc(char *buf, size_t cap);

/* A plan's kernel generated, compiled and loaded on the current device. */
typedef struct pe_cuda_gen pe_cuda_gen_t;

/* Generates, compiles and loads plan p's kernel (the resident one or the
 * batch one, as p->batch says) for the current device.
 * On failure *g is NULL and why says why. */
int pe_cuda_gen_open(const pe_cuda_gen_plan_t *p, pe_cuda_gen_t **g, char *why,
                     size_t cap);

/* The windows per request the kernel takes. */
uint32_t pe_cuda_gen_max_n(const pe_cuda_gen_t *g);

/* 1 where the kernel stages each step's weights at each group
 * (pe_cuda_gen_src_t.staged). */
int pe_cuda_gen_staged(const pe_cuda_gen_t *g);

/* Launches the kernel on stream with the protocol's addresses from a
 * (ctrl, h_in, h_out, stamps, last, idle_ns; the rest is the general
 * kernel's); it returns at once. A cudaError_t. */
int pe_cuda_gen_launch(const pe_cuda_gen_t *g, const pe_cuda_persist_t *a,
                       void *stream);

/* Enqueues the batch kernel over the n windows of d_in (n * in_numel
 * floats, device memory) into d_out (n * out_numel) on stream: one block
 * per window up to as many as the device holds at once. stamps: for a
 * kernel made with them, the device array they are added to (below),
 * else NULL. A cudaError_t. */
int pe_cuda_gen_batch_launch(const pe_cuda_gen_t *g, const float *d_in,
                             float *d_out, uint32_t n, uint64_t *stamps,
                             void *stream);

/* One phrase on the kernel (its block, shared memory, compile time). */
void pe_cuda_gen_describe(const pe_cuda_gen_t *g, char *buf, size_t cap);

/* Unloads it; NULL is a no-op. The kernel must have left. */
void pe_cuda_gen_close(pe_cuda_gen_t *g);

#endif
