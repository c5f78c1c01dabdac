/* The `cuda` backend: the execution plan of src/model/ (the same one the
 * `cpu` backend runs) on an NVIDIA GPU.
 *
 * open loads the model with the ONNX importer (its metadata read as the cpu
 * backend reads it), then resolves every step of the plan into a launch of
 * src/cuda/kernels.cu: weights are copied to the device, and the device
 * arena (the plan's arena layout for a tile of windows), the device input
 * and output and their pinned host staging buffers are allocated once. The
 * tile is the most windows whose arena, input and output fit a budget of
 * device memory (opts->device_memory_bytes, 256 MB by default): max_batch
 * itself when they fit, else the largest power of two that does; a model
 * of which not even one window fits is refused, the bytes it needs named.
 * A step the plan's view has no form for is refused here,
 * with the step named. An attention block becomes three launches (its Q, K,
 * V projection, its heads, its output projection), and a model whose input
 * holds windows as [time][channel] (NWC, N1WC) gets a first launch that
 * transposes the caller's [channel][time] windows into the arena; both use
 * arena of the backend's own after the plan's. run copies the windows into
 * pinned memory (a caller's page-locked buffer, such as host_alloc gives, goes
 * directly), then to the device, launches the steps on one stream (as a CUDA
 * graph captured at open for each batch bucket: 1, 2, 4, ... up to the tile,
 * a batch run with the smallest bucket that holds it) and copies the scores
 * back. A batch larger than the tile runs as consecutive chunks of a tile
 * (the last one smaller) on the same stream, each copied in, computed and
 * copied out; their pinned staging alternates between two sets, so that
 * the host copies one chunk's scores out while the device runs the next.
 * No allocation after open (pe_cuda_alloc_count counts the calling
 * thread's, and run fails if one happened during it). Times of the last run's
 * three phases (host to device, compute, device to host; summed over its
 * chunks) are kept when opened with phase_times (events on the stream between
 * the phases), for bench-model. */
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backends.h"
#include "backends/cuda_fold.h"
#include "backends/cuda_gen.h"
#include "backends/cuda_plan.h"
#include "cuda/kernels.h"
#include "cuda/lstm_rec.h"
#include "model/plan_view.h"
#include "pe/clock.h"
#include "pe/error.h"
#include "pe/model.h"

#define PE__CUDA_MAX_WEIGHTS 256
#define PE__CUDA_MAX_GRAPHS 33
/* Device memory for the buffers that grow with the batch (the arena, input
 * and output of a tile) when the caller gives no budget. */
#define PE__CUDA_MEMORY_DEFAULT ((uint64_t)256 * 1000 * 1000)

/* The codegen option's settings of the generated kernels. */
typedef struct pe__codegen_opts {
  uint32_t windows; /* a block of the batch kernel holds at most these */
  int rows, sums;   /* its dense steps' form (cuda_gen.h: dense_rows,
                       dense_sums); 0 the generator's own */
  int conv;         /* positions a thread of their Conv 1-D steps: 2 the
                       wide form (cuda_gen.h: conv_wide), else 1 */
} pe__codegen_opts_t;

typedef struct pe__cuda {
  pe_model_t *model;
  pe_model_info_t info;
  int device;
  cudaStream_t stream;
  /* per staging set: start, after H2D, after compute, after D2H (the last
   * also marks a chunk's scores in h_out) */
  cudaEvent_t ev[2][4];
  /* the second stream of a chunk run in pieces, and the events that fork
   * the chunk onto it and join it back */
  cudaStream_t stream2;
  cudaEvent_t fork, join;
  int timing;
  float *d_arena, *d_in, *d_out; /* tile windows each */
  float *h_in[2], *h_out[2];     /* pinned staging, two sets of a tile */
  void *weights[PE__CUDA_MAX_WEIGHTS];
  size_t weight_bytes[PE__CUDA_MAX_WEIGHTS];
  int n_weights;
  pe_cuda_step_t *steps;
  int n_steps;
  int *plan_of; /* the plan step each launch step comes from; NULL for a
                   plan file */
  /* arena regions of the backend's own: the windows in the model's layout
   * (NULL for NCW, whose windows the plan reads from d_in), and the rows
   * of an attention block (its Q, K, V projections, then its heads), and
   * an LSTM's input projection (W x_t + bias for every t) */
  float *d_xin, *d_attn, *d_lstm;
  /* one CUDA graph of every step's launch per batch bucket: bucket k
   * computes graph_n[k] windows (powers of two, then the tile) */
  cudaGraphExec_t graph[PE__CUDA_MAX_GRAPHS];
  uint32_t graph_n[PE__CUDA_MAX_GRAPHS];
  int n_graphs;
  uint32_t max_batch; /* the largest batch run accepts */
  /* windows the device buffers hold, and the arena tensors' stride: a
   * tensor at off_ps floats per window starts at d_arena + off_ps * tile */
  uint32_t tile;
  uint64_t budget_bytes; /* for the tile's buffers */
  size_t window_bytes;   /* of those buffers, per window */
  int64_t in_numel, out_numel, arena_ps;
  uint64_t allocs_in_runs; /* device allocations seen during runs */
  float last_ms[3];
  size_t dev_bytes, host_bytes; /* held since open */
  size_t weights_bytes;         /* of dev_bytes */
  /* how far the device's free memory fell while open ran (allocation
   * granularity, the graphs, the kernels' code), or 0 when not known */
  size_t dev_free0, dev_drop;
  /* persistent mode: the resident kernel's stream, control block, mapped
   * windows and scores, and its copy of the steps */
  int persistent;
  cudaStream_t pstream;
  pe_cuda_ctrl_t *ctrl;    /* mapped pinned host memory */
  uint64_t *m_in, *m_out;  /* mapped pinned host memory, tagged words */
  pe_cuda_step_t *d_steps; /* device; the table wcopy follows the steps */
  pe_cuda_wcopy_t wcopy[PE__CUDA_MAX_WEIGHTS]; /* the weights on chip */
  int n_wcopy;
  pe_cuda_persist_t pargs; /* device addresses */
  size_t pshmem;
  uint32_t seq;
  uint64_t launches; /* of the resident kernel */
  /* diagnostics (opts->stamps_path names a file): the kernel's stamps in
   * device memory, and the host's of the same requests (before the
   * windows' copy, the request stored, the answer seen, the scores
   * copied), both written to that file as the backend closes */
  const char *stamps_path;
  uint64_t *d_stamps;
  uint64_t *h_stamps; /* [PE_CUDA_STAMP_RING][4] */
  /* and the batch kernel's sums of its phases (cuda_gen.h,
   * PE_CUDA_GEN_BS_*), written after them */
  uint64_t *d_bstamps;
  /* the resident kernel generated for the plan (cuda_gen.h), or NULL and
   * why the general one runs */
  int codegen_off;
  pe_cuda_gen_t *gen;
  char gen_why[192];
  /* graph mode's kernel generated for the plan, which each graph launches
   * instead of the steps' kernels, or NULL and why not; the most windows
   * a block of it holds at once */
  pe_cuda_gen_t *bgen;
  char bgen_why[192];
  pe__codegen_opts_t gen_opts;
  int tf32;           /* precision tf32: the dense steps' tiled products and the
                         Conv1d steps without groups on tensor cores */
  int persist_blocks; /* the persist_blocks option: 0 auto, else 1 to
                         PE__CUDA_CLUSTER_MAX */
  int64_t flops;      /* per window, the plan's count (0 from a plan file that
                         has none) */
  int n_fused;        /* residual adds folded into a LayerNorm */
  char errmsg[256];
} pe__cuda_t;

/* How long the resident kernel waits for a request before it leaves, and
 * how long run waits for its answer. */
#define PE__CUDA_IDLE_NS 250000000ull
#define PE__CUDA_WAIT_NS 2000000000ull
/* Persistent mode's automatic choice: one block running the kernel
 * generated for the plan wherever the generator takes it (the zoo
 * Transformer, 1.4 MFLOP a window: 37 us on an H100 against 79 us for a
 * cluster of 16 running the general kernel's steps); else a cluster of at
 * most PE__CUDA_CLUSTER_MAX blocks (the most an H100 or H200 runs) for a
 * plan of at least PE__CUDA_CLUSTER_FLOPS a window, one block below: a
 * step of a small plan has too little work to share out for the
 * cluster's barriers and trips to L2 to pay. */
#define PE__CUDA_CLUSTER_MAX 16
#define PE__CUDA_CLUSTER_FLOPS 1000000
/* How often a waiting run asks whether the resident kernel failed. */
#define PE__CUDA_QUERY_NS 200000ull
/* The most windows a block of graph mode's generated kernel holds at once
 * unless the codegen option says (windows=N). */
#define PE__CUDA_GEN_WINDOWS 32
/* Bytes of windows staged into pinned memory per device copy. */
#define PE__CUDA_STAGE ((size_t)1 << 20)

static const char *const pe__kind_names[PE_PLAN_KIND_COUNT] = {
    "copy",   "conv1d",    "dense",        "matmul",    "unary",
    "binary", "softmax",   "strided_copy", "gather",    "concat",
    "affine", "pool1d",    "reduce_mean",  "lstm",      "gru",
    "cast",   "gather_rt", "conv2d",       "pool2d",    "elemwise",
    "reduce", "pad",       "where",        "layernorm", "attention"};

/* A kind added to the plan after this table is named "new" (the message
 * gives its number too). */
static const char *pe__kind_name(int kind) {
  return kind >= 0 && kind < PE_PLAN_KIND_COUNT && pe__kind_names[kind]
             ? pe__kind_names[kind]
             : "new";
}

static int pe__u64_cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* One line of the stamps' report: the median and p99 of v[0..n). */
static void pe__stamps_line(FILE *f, const char *what, uint64_t *v, size_t n) {
  if (n == 0) {
    return;
  }
  qsort(v, n, sizeof *v, pe__u64_cmp);
  fprintf(f, "%-22s median %8.3f us  p99 %8.3f us\n", what,
          (double)v[n / 2] / 1e3, (double)v[n * 99 / 100] / 1e3);
}

/* The persistent kernel's and the host's stamps, as phase lengths over the
 * requests answered (the last PE_CUDA_STAMP_RING), into stamps_path. Not
 * on the hot path; diagnostics only. */
static void pe__stamps_report(pe__cuda_t *c, FILE *f) {
  const size_t ring = PE_CUDA_STAMP_RING, slots = PE_CUDA_STAMP_SLOTS;
  uint64_t *d = malloc(ring * slots * sizeof *d);
  uint64_t *v = malloc(ring * sizeof *v);
  if (d == NULL || v == NULL ||
      cudaMemcpy(d, c->d_stamps, ring * slots * sizeof *d,
                 cudaMemcpyDeviceToHost) != cudaSuccess) {
    free(d);
    free(v);
    return;
  }
  /* every slot of the ring written (a zero stamp was not) */
  const size_t have = ring;
  fprintf(f, "requests %u, steps %d\n", c->seq, c->n_steps);
  /* the device's phases: each stamp after the previous one present in the
   * same request */
  int last_step =
      c->n_steps < PE_CUDA_STAMP_STEPS ? c->n_steps : PE_CUDA_STAMP_STEPS;
  for (int slot = PE_CUDA_STAMP_SEEN + 1; slot < (int)slots; slot++) {
    char name[32];
    int k = slot - PE_CUDA_STAMP_STEP0;
    if (k >= 0 && k < PE_CUDA_STAMP_STEPS && k >= last_step) {
      continue;
    }
    snprintf(name, sizeof name, "%s",
             slot == PE_CUDA_STAMP_START    ? "block start"
             : slot == PE_CUDA_STAMP_WINDOW ? "windows read"
             : slot == PE_CUDA_STAMP_SCORES ? "scores written"
             : slot == PE_CUDA_STAMP_FENCED ? "system fence"
             : slot == PE_CUDA_STAMP_DONE   ? "done stored"
                                            : "?");
    if (k >= 0 && k < PE_CUDA_STAMP_STEPS) {
      snprintf(name, sizeof name, "step %d %s", k,
               k == PE_CUDA_STAMP_STEPS - 1 && c->n_steps > k + 1
                   ? "on"
                   : pe__kind_name(c->steps[k].kind));
    }
    size_t n = 0;
    for (size_t r = 0; r < have; r++) {
      const uint64_t *x = d + r * slots;
      int prev = slot - 1;
      while (prev > PE_CUDA_STAMP_SEEN && x[prev] == 0) {
        prev--;
      }
      if (x[slot] != 0 && x[prev] != 0 && x[slot] >= x[prev]) {
        v[n++] = x[slot] - x[prev];
      }
    }
    pe__stamps_line(f, name, v, n);
  }
  size_t n = 0;
  for (size_t r = 0; r < have; r++) {
    const uint64_t *x = d + r * slots;
    if (x[PE_CUDA_STAMP_DONE] >= x[PE_CUDA_STAMP_SEEN] &&
        x[PE_CUDA_STAMP_SEEN] != 0) {
      v[n++] = x[PE_CUDA_STAMP_DONE] - x[PE_CUDA_STAMP_SEEN];
    }
  }
  pe__stamps_line(f, "device, seen -> done", v, n);
  static const char *const hn[] = {"host: windows copied",
                                   "host: request -> answer",
                                   "host: scores copied", "host: in -> out"};
  for (int p = 0; p < 4; p++) {
    n = 0;
    for (size_t r = 0; r < have; r++) {
      const uint64_t *h = c->h_stamps + r * 4;
      int a = p == 3 ? 0 : p, b = p + 1 > 3 ? 3 : p + 1;
      if (h[b] >= h[a] && h[a] != 0) {
        v[n++] = h[b] - h[a];
      }
    }
    pe__stamps_line(f, hn[p], v, n);
  }
  free(d);
  free(v);
}

/* The batch kernel's sums (cuda_gen.h): each phase's time a window in the
 * launches' first blocks, and its share. */
static void pe__bstamps_report(pe__cuda_t *c, FILE *f) {
  const int n = PE_CUDA_GEN_BS_STEP0 + c->n_steps;
  uint64_t *d = malloc((size_t)n * sizeof *d);
  if (d == NULL || cudaMemcpy(d, c->d_bstamps, (size_t)n * sizeof *d,
                              cudaMemcpyDeviceToHost) != cudaSuccess) {
    fprintf(f, "batch kernel: its stamps could not be read\n");
    free(d);
    return;
  }
  if (d[PE_CUDA_GEN_BS_WINDOWS] == 0) {
    fprintf(f, "batch kernel: no batch ran through it\n");
    free(d);
    return;
  }
  const double w = (double)d[PE_CUDA_GEN_BS_WINDOWS];
  uint64_t all = 0;
  for (int i = 1; i < n; i++) {
    all += d[i];
  }
  fprintf(f,
          "batch kernel: %.0f windows in the first block of its launches; "
          "per window there (the global timer):\n",
          w);
  for (int i = 1; i < n; i++) {
    char name[48] = "";
    const int k = i - PE_CUDA_GEN_BS_STEP0;
    if (k >= 0) {
      snprintf(name, sizeof name, "step %d %s", k,
               pe__kind_name(c->steps[k].kind));
    }
    fprintf(f, "%-22s %9.3f us  %5.1f %%\n",
            i == PE_CUDA_GEN_BS_WEIGHTS  ? "weights copied"
            : i == PE_CUDA_GEN_BS_READ   ? "windows read"
            : i == PE_CUDA_GEN_BS_SCORES ? "scores stored"
                                         : name,
            (double)d[i] / w / 1e3,
            all > 0 ? 100.0 * (double)d[i] / (double)all : 0.0);
  }
  fprintf(f, "%-22s %9.3f us\n", "all", (double)all / w / 1e3);
  free(d);
}

/* Both reports, into stamps_path, as the backend closes. */
static void pe__stamps_write(pe__cuda_t *c) {
  FILE *f = fopen(c->stamps_path, "w");
  if (f == NULL) {
    return;
  }
  if (c->d_stamps != NULL) {
    pe__stamps_report(c, f);
  }
  if (c->d_bstamps != NULL && c->bgen != NULL) {
    pe__bstamps_report(c, f);
  } else {
    fprintf(f, "batch kernel: none (%s), so no stamps of graph mode's steps\n",
            c->bgen_why);
  }
  fclose(f);
}

static void pe__cuda_destroy(pe__cuda_t *c) {
  if (c == NULL) {
    return;
  }
  if (c->pstream != NULL) {
    if (c->ctrl != NULL) {
      /* the resident kernel leaves at its next poll */
      __atomic_store_n(&c->ctrl->stop, 1u, __ATOMIC_SEQ_CST);
    }
    cudaStreamSynchronize(c->pstream);
    cudaStreamDestroy(c->pstream);
  }
  pe_cuda_gen_close(c->gen);
  if (c->d_stamps != NULL || c->d_bstamps != NULL) {
    pe__stamps_write(c);
  }
  pe_cuda_free(c->d_stamps);
  pe_cuda_free(c->d_bstamps);
  free(c->h_stamps);
  pe_cuda_host_free(c->ctrl);
  pe_cuda_host_free(c->m_in);
  pe_cuda_host_free(c->m_out);
  pe_cuda_free(c->d_steps);
  for (int i = 0; i < c->n_graphs; i++) {
    cudaGraphExecDestroy(c->graph[i]);
  }
  pe_cuda_gen_close(c->bgen);
  for (int i = 0; i < c->n_weights; i++) {
    pe_cuda_free(c->weights[i]);
  }
  pe_cuda_free(c->d_arena);
  pe_cuda_free(c->d_in);
  pe_cuda_free(c->d_out);
  for (int s = 0; s < 2; s++) {
    pe_cuda_host_free(c->h_in[s]);
    pe_cuda_host_free(c->h_out[s]);
    for (int i = 0; i < 4; i++) {
      if (c->ev[s][i] != NULL) {
        cudaEventDestroy(c->ev[s][i]);
      }
    }
  }
  if (c->stream != NULL) {
    cudaStreamDestroy(c->stream);
  }
  if (c->stream2 != NULL) {
    cudaStreamDestroy(c->stream2);
  }
  if (c->fork != NULL) {
    cudaEventDestroy(c->fork);
  }
  if (c->join != NULL) {
    cudaEventDestroy(c->join);
  }
  free(c->steps);
  free(c->plan_of);
  pe_model_destroy(c->model);
  free(c);
}

static int pe__cuda_fail(pe__cuda_t *c, char *err, size_t cap, int rc,
                         const char *path, const char *msg) {
  snprintf(err, cap, "%s: %s", path, msg);
  pe__cuda_destroy(c);
  return rc;
}

/* A device copy of n host values of size elem; NULL (and msg) on failure. */
static void *pe__upload(pe__cuda_t *c, const void *host, int64_t n, size_t elem,
                        char *msg, size_t cap) {
  void *d = NULL;
  size_t bytes = (size_t)(n > 0 ? n : 1) * elem;
  if (c->n_weights == PE__CUDA_MAX_WEIGHTS) {
    snprintf(msg, cap, "more than %d weight tensors", PE__CUDA_MAX_WEIGHTS);
    return NULL;
  }
  int e = pe_cuda_malloc(&d, bytes);
  if (e != 0) {
    snprintf(msg, cap, "cudaMalloc of %zu bytes: %s", bytes,
             pe_cuda_strerror(e));
    return NULL;
  }
  c->weight_bytes[c->n_weights] = bytes;
  c->weights[c->n_weights++] = d;
  c->dev_bytes += bytes;
  c->weights_bytes += bytes;
  if (n > 0) {
    e = (int)cudaMemcpy(d, host, (size_t)n * elem, cudaMemcpyHostToDevice);
    if (e != 0) {
      snprintf(msg, cap, "copying weights to the device: %s",
               pe_cuda_strerror(e));
      return NULL;
    }
  }
  return d;
}

/* The device address of tensor t (window 0) and its stride in floats. */
static int pe__tensor_ptr(pe__cuda_t *c, int t, const float **p,
                          int64_t *stride, char *msg, size_t cap) {
  pe_plan_tensor_t x;
  if (pe_plan_tensor(c->model, t, &x) != PE_OK) {
    snprintf(msg, cap, "tensor %d is not in the plan", t);
    return PE_EMODEL;
  }
  *stride = x.numel;
  switch (x.storage) {
  case PE_PLAN_ST_CONST:
    *stride = 0;
    *p = pe__upload(c, x.data, x.numel, sizeof(float), msg, cap);
    return *p != NULL ? PE_OK : PE_EBACKEND;
  case PE_PLAN_ST_INPUT:
    *p = c->d_xin != NULL ? c->d_xin : c->d_in;
    return PE_OK;
  case PE_PLAN_ST_OUTPUT:
    *p = c->d_out;
    return PE_OK;
  case PE_PLAN_ST_ARENA:
    *p = c->d_arena + x.off_ps * (int64_t)c->tile;
    return PE_OK;
  default:
    snprintf(msg, cap, "tensor '%s' has no storage in the plan", x.name);
    return PE_EMODEL;
  }
}

/* w [rows][cols] as [cols][rows]. */
static float *pe__transpose(const float *w, int64_t rows, int64_t cols) {
  float *t = malloc((size_t)(rows * cols > 0 ? rows * cols : 1) * sizeof *t);
  if (t != NULL) {
    for (int64_t r = 0; r < rows; r++) {
      for (int64_t k = 0; k < cols; k++) {
        t[k * rows + r] = w[r * cols + k];
      }
    }
  }
  return t;
}

/* A dense step's weights uploaded: w_km [K][M] (the thread and tiled
 * kernels), and for one warp per output (warp) also as [M][K]; the bias
 * [M] or NULL; tf32 its precision. */
static int pe__dense_set(pe__cuda_t *c, pe_cuda_step_t *d, const float *w_km,
                         int64_t K, int64_t M, const float *bias, int warp,
                         int tf32, char *msg, size_t cap) {
  d->K = K;
  d->M = M;
  d->dense_warp = warp;
  d->tf32 = tf32;
  d->w = pe__upload(c, w_km, K * M, 4, msg, cap);
  if (d->w == NULL) {
    return PE_EBACKEND;
  }
  if (d->dense_warp) {
    float *mk = pe__transpose(w_km, K, M);
    if (mk == NULL) {
      snprintf(msg, cap, "out of memory");
      return PE_ENOMEM;
    }
    d->w2 = pe__upload(c, mk, K * M, 4, msg, cap);
    free(mk);
    if (d->w2 == NULL) {
      return PE_EBACKEND;
    }
  }
  if (bias != NULL) {
    d->bias = pe__upload(c, bias, M, 4, msg, cap);
    return d->bias != NULL ? PE_OK : PE_EBACKEND;
  }
  return PE_OK;
}

/* A dense step over `rows` rows per window (the attention block's
 * projections, an LSTM's input projection): x (stride xs) times w_mk
 * ([M][K], the ONNX layout) plus bias into y (stride ys), one warp per
 * output (warp) or not, in precision tf32 or fp32. */
static int pe__rows_dense(pe__cuda_t *c, pe_cuda_step_t *d, const float *x,
                          int64_t xs, float *y, int64_t ys, int64_t rows,
                          const float *w_mk, int64_t K, int64_t M,
                          const float *bias, int warp, int tf32, char *msg,
                          size_t cap) {
  pe__cuda_rows_dense(d, x, xs, y, ys, rows, K, M);
  float *km = pe__transpose(w_mk, M, K);
  if (km == NULL) {
    snprintf(msg, cap, "out of memory");
    return PE_ENOMEM;
  }
  int rc = pe__dense_set(c, d, km, K, M, bias, warp, tf32, msg, cap);
  free(km);
  return rc;
}

/* The self-attention block of plan step s as up to three launch steps
 * from c->steps[*k]: the Q, K, V projections into the arena's attention
 * rows, the heads, and the output projection. */
static int pe__resolve_attention(pe__cuda_t *c, const pe_plan_step_t *s,
                                 const pe_cuda_step_t *t, int *k, char *msg,
                                 size_t cap) {
  const int64_t L = s->attn.L, E = s->attn.E, E3 = 3 * E;
  float *qkv = c->d_attn, *ctx = c->d_attn + L * E3 * (int64_t)c->tile;
  pe_cuda_step_t *d = &c->steps[*k];
  int rc =
      pe__rows_dense(c, d, t->in[0], t->in_stride[0], qkv, L * E3, L, s->w, E,
                     E3, s->bias, pe_cuda_dense_warp(E), c->tf32, msg, cap);
  if (rc != PE_OK) {
    return rc;
  }
  d = &c->steps[++*k];
  pe__cuda_attn_heads(d, qkv, s->attn.has_out ? ctx : t->out[0],
                      s->attn.has_out ? L * E : t->out_stride[0], L, E,
                      s->attn.H, s->attn.D, s->attn.mask_h, s->attn.scale);
  const int64_t nm = (s->attn.mask_h ? s->attn.H : 1) * L * L;
  if (s->attn.mask != NULL) {
    d->in[1] = pe__upload(c, s->attn.mask, nm, 4, msg, cap);
  }
  if (s->attn.repl != NULL) {
    d->in[2] = pe__upload(c, s->attn.repl, nm, 4, msg, cap);
  }
  if ((s->attn.mask != NULL && d->in[1] == NULL) ||
      (s->attn.repl != NULL && d->in[2] == NULL)) {
    return PE_EBACKEND;
  }
  if (!s->attn.has_out) {
    return PE_OK;
  }
  d = &c->steps[++*k];
  return pe__rows_dense(c, d, ctx, L * E, t->out[0], t->out_stride[0], L, s->w2,
                        E, E, s->bias2, pe_cuda_dense_warp(E), c->tf32, msg,
                        cap);
}

/* Whether plan step s, an LSTM, runs as two launch steps: its input
 * projection as a dense step, then the recurrence in the warp form
 * (src/cuda/lstm_rec.h), *U and *KM the form's. */
static int pe__lstm_split(const pe_plan_step_t *s, int64_t *U, int64_t *KM) {
  return s->kind == PE_PLAN_LSTM && s->p[1] >= PE_CUDA_LSTM_SPLIT_IN &&
         pe_cuda_lstm_rec_form(s->p[2], PE_CUDA_PERSIST_THREADS, U, KM);
}

/* The LSTM of plan step s as two launch steps from c->steps[*k] (t the
 * step resolved so far: its inputs, outputs and parameters): W x_t + bias
 * for every t as one dense step over the window's seq rows, into the
 * arena's rows for it (in fp32 whatever the precision: the recurrence
 * carries its error forward; in graph mode the tiled product, elsewhere
 * a thread per output), then the recurrence, reading them. */
static int pe__resolve_lstm(pe__cuda_t *c, const pe_plan_step_t *s,
                            const pe_cuda_step_t *t, int64_t U, int64_t KM,
                            int *k, char *msg, size_t cap) {
  const int64_t seq = s->p[0], in = s->p[1], H = s->p[2], GH = 4 * H;
  /* a thread per output (seq 4H of them a window, more than the
   * cluster's threads) whatever K */
  int rc =
      pe__rows_dense(c, &c->steps[*k], t->in[0], t->in_stride[0], c->d_lstm,
                     seq * GH, seq, s->w, in, GH, s->bias, 0, 0, msg, cap);
  if (rc != PE_OK) {
    return rc;
  }
  pe_cuda_step_t *d = &c->steps[++*k];
  *d = *t;
  d->in[0] = c->d_lstm;
  d->in_stride[0] = seq * GH;
  d->p[8] = 1;
  d->p[9] = U;
  d->p[10] = KM;
  float *rp = malloc((size_t)(PE_CUDA_PERSIST_THREADS * KM) * sizeof *rp);
  if (rp == NULL) {
    snprintf(msg, cap, "out of memory");
    return PE_ENOMEM;
  }
  pe_cuda_lstm_rec_pack(s->w2, H, U, KM, PE_CUDA_PERSIST_THREADS, rp);
  d->w = pe__upload(c, rp, PE_CUDA_PERSIST_THREADS * KM, 4, msg, cap);
  free(rp);
  return d->w != NULL ? PE_OK : PE_EBACKEND;
}

/* The step that transposes the caller's [channel][time] windows (d_in)
 * into the model's [time][channel] input (d_xin). */
static void pe__resolve_layout(pe__cuda_t *c, pe_cuda_step_t *d, int64_t W,
                               int64_t C) {
  memset(d, 0, sizeof *d);
  d->kind = PE_PLAN_STRIDED;
  d->n_in = 1;
  d->in[0] = c->d_in;
  d->in_stride[0] = W * C;
  d->out[0] = c->d_xin;
  d->out_stride[0] = W * C;
  d->numel = W * C;
  d->rank = 2;
  d->dims[0] = W;
  d->dims[1] = C;
  d->st[0][0] = 1;
  d->st[0][1] = W;
  d->p[0] = 0;
  d->p[1] = W * C;
}

/* Resolves plan step i into c->steps[*k] (the attention block into
 * several, *k left at the last). */
static int pe__resolve(pe__cuda_t *c, int i, int *at, char *msg, size_t cap) {
  pe_plan_step_t s;
  pe_plan_step(c->model, i, &s);
  if (!pe_cuda_kind_supported(s.kind)) {
    snprintf(
        msg, cap,
        "step %d (%s) is a %s step (kind %d), which the cuda backend has no "
        "kernel for",
        i, s.label, pe__kind_name(s.kind), s.kind);
    return PE_EUNSUPPORTED;
  }
  pe_cuda_step_t *d = &c->steps[*at];
  memset(d, 0, sizeof *d);
  d->kind = s.kind;
  d->act = s.act;
  d->alpha = s.alpha;
  d->binop = s.binop;
  d->n_in = s.n_in;
  d->rank = s.rank;
  memcpy(d->p, s.p, sizeof d->p);
  memcpy(d->dims, s.dims, sizeof d->dims);
  memcpy(d->st, s.st, sizeof d->st);
  for (int k = 0; k < s.n_in; k++) {
    if (s.in[k] >= 0) {
      int rc =
          pe__tensor_ptr(c, s.in[k], &d->in[k], &d->in_stride[k], msg, cap);
      if (rc != PE_OK) {
        return rc;
      }
    }
  }
  for (int k = 0; k < 3; k++) {
    if (s.out[k] >= 0) {
      const float *p = NULL;
      int rc = pe__tensor_ptr(c, s.out[k], &p, &d->out_stride[k], msg, cap);
      if (rc != PE_OK) {
        return rc;
      }
      d->out[k] = (float *)(uintptr_t)p;
    }
  }
  pe_plan_tensor_t y;
  pe_plan_tensor(c->model, s.out[0] >= 0 ? s.out[0] : s.out[1], &y);
  d->numel = y.numel;
  int64_t H = s.p[2];
  switch (s.kind) {
  case PE_PLAN_ATTENTION: {
    pe_cuda_step_t t = *d;
    return pe__resolve_attention(c, &s, &t, at, msg, cap);
  }
  case PE_PLAN_CONV2D: {
    const int64_t cout = s.p[1],
                  nw = cout * (s.p[0] / s.p[2]) * s.p[3] * s.p[4];
    d->w = pe__upload(c, s.w, nw, 4, msg, cap);
    if (s.bias != NULL && d->w != NULL) {
      d->bias = pe__upload(c, s.bias, cout, 4, msg, cap);
    }
    return d->w && (s.bias == NULL || d->bias) ? PE_OK : PE_EBACKEND;
  }
  case PE_PLAN_ELEMWISE:
  case PE_PLAN_PAD:
  case PE_PLAN_LAYERNORM:
    d->binop = s.ext_op;
    memcpy(d->f, s.ext_f, sizeof d->f);
    if (s.kind == PE_PLAN_LAYERNORM) {
      d->w = pe__upload(c, s.w, s.p[1], 4, msg, cap);
      if (s.bias != NULL && d->w != NULL) {
        d->bias = pe__upload(c, s.bias, s.p[1], 4, msg, cap);
      }
      return d->w && (s.bias == NULL || d->bias) ? PE_OK : PE_EBACKEND;
    }
    return PE_OK;
  case PE_PLAN_WHERE:
    d->n_in = 3;
    if (s.w != NULL) {
      /* the constant condition: as far as its strides reach */
      int64_t nc = 1;
      for (int a = 0; a < s.rank; a++) {
        nc += (s.dims[a] - 1) * s.st[0][a];
      }
      d->in[2] = pe__upload(c, s.w, nc, 4, msg, cap);
      d->in_stride[2] = 0;
    }
    return d->in[2] != NULL ? PE_OK : PE_EBACKEND;
  case PE_PLAN_CONV1D: {
    int64_t cin = s.p[0], cout = s.p[1], group = s.p[2], k = s.p[3];
    d->tf32 = c->tf32 && group == 1;
    d->w = pe__upload(c, s.w, cout * (cin / group) * k, 4, msg, cap);
    d->bias = pe__upload(c, s.bias, cout, 4, msg, cap);
    return d->w && d->bias ? PE_OK : PE_EBACKEND;
  }
  case PE_PLAN_DENSE: {
    float *w = malloc(
        (size_t)(s.dense_k * s.dense_m > 0 ? s.dense_k * s.dense_m : 1) * 4);
    if (w == NULL || pe_plan_dense_weights(c->model, i, w) != PE_OK) {
      free(w);
      snprintf(msg, cap, "out of memory");
      return PE_ENOMEM;
    }
    int rc = pe__dense_set(c, d, w, s.dense_k, s.dense_m, s.bias,
                           pe_cuda_dense_warp(s.dense_k), c->tf32, msg, cap);
    free(w);
    return rc;
  }
  case PE_PLAN_AFFINE:
    d->w = pe__upload(c, s.w, s.p[1], 4, msg, cap);
    d->bias = pe__upload(c, s.bias, s.p[1], 4, msg, cap);
    return d->w && d->bias ? PE_OK : PE_EBACKEND;
  case PE_PLAN_BINARY:
    if (s.w != NULL) {
      pe_plan_tensor_t b;
      pe_plan_tensor(c->model, s.in[1], &b);
      d->in[1] = pe__upload(c, s.w, b.numel, 4, msg, cap);
      d->in_stride[1] = 0;
      return d->in[1] ? PE_OK : PE_EBACKEND;
    }
    return PE_OK;
  case PE_PLAN_REDUCE:
    pe__cuda_reduce_axes(d, s.rank, s.dims, s.st[0], s.ext_op);
    return PE_OK;
  case PE_PLAN_GATHER:
    d->n_idx = s.n_idx;
    d->idx = pe__upload(c, s.idx, s.n_idx, sizeof(int64_t), msg, cap);
    return d->idx ? PE_OK : PE_EBACKEND;
  case PE_PLAN_LSTM:
  case PE_PLAN_GRU: {
    int64_t in = s.p[1], GH = (s.kind == PE_PLAN_LSTM ? 4 : 3) * H;
    if (H > 1024) {
      snprintf(msg, cap,
               "step %d (%s) has %lld hidden units; the cuda backend runs "
               "at most 1024",
               i, s.label, (long long)H);
      return PE_EUNSUPPORTED;
    }
    int64_t U = 0, KM = 0;
    if (pe__lstm_split(&s, &U, &KM)) {
      pe_cuda_step_t t = *d;
      return pe__resolve_lstm(c, &s, &t, U, KM, at, msg, cap);
    }
    float *wt = pe__transpose(s.w, GH, in), *rt = pe__transpose(s.w2, GH, H);
    if (wt == NULL || rt == NULL) {
      free(wt);
      free(rt);
      snprintf(msg, cap, "out of memory");
      return PE_ENOMEM;
    }
    d->w = pe__upload(c, wt, GH * in, 4, msg, cap);
    d->w2 = d->w ? pe__upload(c, rt, GH * H, 4, msg, cap) : NULL;
    free(wt);
    free(rt);
    d->bias = d->w2 ? pe__upload(c, s.bias, GH, 4, msg, cap) : NULL;
    d->bias2 = d->bias ? pe__upload(c, s.bias2, H, 4, msg, cap) : NULL;
    return d->bias2 ? PE_OK : PE_EBACKEND;
  }
  default:
    return PE_OK;
  }
}

/* Captures the launches of every step over n windows as a graph into
 * c->graph[c->n_graphs]. */
static int pe__capture(pe__cuda_t *c, uint32_t n) {
  cudaGraph_t g = NULL;
  int e =
      (int)cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal);
  if (c->bgen != NULL) {
    e = pe_cuda_gen_batch_launch(c->bgen, c->d_in, c->d_out, n, c->d_bstamps,
                                 c->stream);
  }
  for (int i = 0; c->bgen == NULL && i < c->n_steps && e == 0; i++) {
    e = pe_cuda_step_launch(&c->steps[i], n, c->stream);
  }
  int e2 = (int)cudaStreamEndCapture(c->stream, &g);
  e = e ? e : e2;
  if (e == 0) {
    e = (int)cudaGraphInstantiate(&c->graph[c->n_graphs], g, 0);
  }
  if (g != NULL) {
    cudaGraphDestroy(g);
  }
  if (e == 0) {
    c->graph_n[c->n_graphs++] = n;
  }
  return e;
}

/* Opens the first CUDA device, or says why there is none. */
static int pe__cuda_device(char *msg, size_t cap) {
  int n = 0;
  int e = pe_cuda_device_count(&n);
  if (e != 0 || n == 0) {
    snprintf(msg, cap, "no CUDA device (%s)",
             e != 0 ? pe_cuda_strerror(e) : "the driver reports none");
    return PE_EUNSUPPORTED;
  }
  e = (int)cudaSetDevice(0);
  if (e != 0) {
    snprintf(msg, cap, "cudaSetDevice(0): %s", pe_cuda_strerror(e));
    return PE_EBACKEND;
  }
  return PE_OK;
}

/* (Re)starts the resident kernel once the previous one has left. */
static int pe__persist_launch(pe__cuda_t *c) {
  int e = (int)cudaStreamSynchronize(c->pstream);
  if (e != 0) {
    return e;
  }
  c->pargs.last = __atomic_load_n(&c->ctrl->done, __ATOMIC_ACQUIRE);
  __atomic_store_n(&c->ctrl->running, 1u, __ATOMIC_SEQ_CST);
  e = c->gen != NULL ? pe_cuda_gen_launch(c->gen, &c->pargs, c->pstream)
                     : pe_cuda_persist_launch(&c->pargs, c->pshmem, c->pstream);
  if (e != 0) {
    __atomic_store_n(&c->ctrl->running, 0u, __ATOMIC_SEQ_CST);
  }
  c->launches++;
  return e;
}

/* The weight buffer at p (a step's pointer), as an index into weights[],
 * or -1. */
static int pe__weight_index(const pe__cuda_t *c, const void *p) {
  for (int i = 0; p != NULL && i < c->n_weights; i++) {
    if (c->weights[i] == p) {
      return i;
    }
  }
  return -1;
}

/* The weights the persistent kernel copies on chip (c->wcopy), in the
 * order its steps read them while they fit the block's shared memory
 * (limit bytes) beside `floats` floats of activations and scratch bytes:
 * each step's w (not a warp dense layer's, which reads w2), w2, bias,
 * bias2 and constant inputs; not an LSTM's or GRU's, which stage their
 * own. Returns the floats taken, each tensor rounded up to 4. */
static int64_t pe__persist_weights(pe__cuda_t *c, int64_t floats,
                                   size_t scratch, size_t limit) {
  int64_t taken = 0;
  char seen[PE__CUDA_MAX_WEIGHTS] = {0};
  for (int k = 0; k < c->n_steps; k++) {
    const pe_cuda_step_t *s = &c->steps[k];
    if (s->kind == PE_PLAN_LSTM || s->kind == PE_PLAN_GRU) {
      continue;
    }
    const void *ptrs[4 + PE_CUDA_MAX_IN] = {
        s->kind == PE_PLAN_DENSE && s->dense_warp ? NULL : s->w, s->w2, s->bias,
        s->bias2};
    for (int q = 0; q < s->n_in && q < PE_CUDA_MAX_IN; q++) {
      ptrs[4 + q] = s->in_stride[q] == 0 ? s->in[q] : NULL;
    }
    for (int q = 0; q < 4 + PE_CUDA_MAX_IN; q++) {
      int i = pe__weight_index(c, ptrs[q]);
      if (i < 0 || seen[i]) {
        continue;
      }
      seen[i] = 1;
      int64_t n = (int64_t)(c->weight_bytes[i] / sizeof(float));
      int64_t n4 = (n + 3) / 4 * 4;
      if (c->n_wcopy == PE__CUDA_MAX_WEIGHTS ||
          pe_cuda_persist_shmem(c->n_steps, floats + taken + n4, scratch) >
              limit) {
        continue;
      }
      pe_cuda_wcopy_t *w = &c->wcopy[c->n_wcopy++];
      memset(w, 0, sizeof *w);
      w->src = c->weights[i];
      w->floats = n;
      w->off = taken;
      taken += n4;
    }
  }
  return taken;
}

static void pe__persist_gen(pe__cuda_t *c);
static void pe__gen_kernel(pe__cuda_t *c, int batch, uint32_t max_n,
                           pe_cuda_gen_t **out, char *why, size_t cap);

/* The graphs gone and the generated batch kernel closed (why: what to
 * say of it), so that the graphs captured next launch the steps' kernels. */
static void pe__drop_bgen(pe__cuda_t *c, const char *why) {
  for (int i = 0; i < c->n_graphs; i++) {
    cudaGraphExecDestroy(c->graph[i]);
  }
  c->n_graphs = 0;
  pe_cuda_gen_close(c->bgen);
  c->bgen = NULL;
  snprintf(c->bgen_why, sizeof c->bgen_why, "%s", why);
}

/* A graph per batch-size bucket, up to the tile: of the generated batch
 * kernel where there is one, else (or where capturing it fails) of the
 * steps' kernels. */
static int pe__capture_all(pe__cuda_t *c) {
  int e = 0;
  for (;;) {
    for (uint32_t n = 1; e == 0; n = n < c->tile / 2 ? n * 2 : c->tile) {
      e = pe__capture(c, n);
      if (n == c->tile) {
        break;
      }
    }
    if (e == 0 || c->bgen == NULL) {
      return e;
    }
    char why[160];
    snprintf(why, sizeof why, "capturing its launch in a graph: %s",
             pe_cuda_strerror(e));
    cudaGetLastError(); /* clear it */
    pe__drop_bgen(c, why);
    e = 0;
  }
}

/* Persistent mode: the mapped control block, windows and scores, the
 * device copy of the steps (and of the table of weights it copies on
 * chip), and the resident kernel started. */
static int pe__persist_open(pe__cuda_t *c, char *msg, size_t cap) {
  size_t scratch = 0;
  int bad = pe_cuda_persist_check(c->steps, c->n_steps, &scratch);
  if (bad >= 0) {
    pe_plan_step_t s;
    memset(&s, 0, sizeof s);
    s.label = "from a plan file";
    if (c->model != NULL && c->plan_of != NULL) {
      pe_plan_step(c->model, c->plan_of[bad], &s);
    }
    snprintf(msg, cap,
             "step %d (%s) cannot run in the persistent kernel (one block of "
             "%d threads): run this model with --cuda-mode graph",
             bad, s.label, PE_CUDA_PERSIST_THREADS);
    return PE_EUNSUPPORTED;
  }
  /* one block where a kernel is generated for the plan (its batch kernel
   * was, with every weight on chip; a staged one's resident counterpart,
   * which copies each step's weights at each request, is made only where
   * one block is asked for), else a cluster of blocks for a plan of many
   * FLOPs a window (or as many as asked), where the device runs one;
   * else one block, on chip with as many windows as fit its shared
   * memory, else the activations in device memory */
  const int gen1 = c->bgen != NULL && !pe_cuda_gen_staged(c->bgen);
  int want = c->persist_blocks > 0                ? c->persist_blocks
             : gen1                               ? 1
             : c->flops >= PE__CUDA_CLUSTER_FLOPS ? PE__CUDA_CLUSTER_MAX
                                                  : 1;
  int blocks = 1;
  size_t cl_shmem = 0;
  if (want > 1) {
    int e =
        pe_cuda_persist_cluster(c->n_steps, scratch, want, &blocks, &cl_shmem);
    if (e != 0) {
      snprintf(msg, cap, "setting up the persistent kernel's cluster: %s",
               pe_cuda_strerror(e));
      return PE_EBACKEND;
    }
  }
  size_t limit = 0;
  pe_cuda_shmem_limit(&limit);
  uint32_t pn =
      c->tile < PE_CUDA_PERSIST_MAX_BATCH ? c->tile : PE_CUDA_PERSIST_MAX_BATCH;
  const int64_t per = c->arena_ps + c->in_numel + c->out_numel;
  uint32_t on = blocks > 1 ? 0 : pn;
  while (on > 0 && pe_cuda_persist_shmem(c->n_steps, (int64_t)on * per,
                                         scratch) > limit) {
    on--;
  }
  c->pargs.blocks = blocks;
  c->pargs.on_chip = on > 0;
  pn = on > 0 ? on : pn;
  /* tagged words (kernels.h), the windows' rounded up to 16 bytes (the
   * kernel reads them in pairs) */
  size_t in_b = ((size_t)pn * (size_t)c->in_numel + 1) / 2 * 16;
  size_t out_b = (size_t)pn * (size_t)c->out_numel * sizeof(uint64_t);
  size_t st_b = (size_t)c->n_steps * sizeof *c->steps;
  /* the steps with their arena tensors laid out for pn windows */
  pe_cuda_step_t *ps = malloc(st_b > 0 ? st_b : 1);
  if (ps == NULL) {
    snprintf(msg, cap, "out of memory");
    return PE_ENOMEM;
  }
  memcpy(ps, c->steps, st_b);
  const float *a0 = c->d_arena;
  const float *a1 = a0 + (c->arena_ps > 0 ? c->arena_ps : 1) * c->tile;
  for (int i = 0; i < c->n_steps; i++) {
    float **ptrs[PE_CUDA_MAX_IN + 3];
    for (int k = 0; k < PE_CUDA_MAX_IN; k++) {
      ptrs[k] = (float **)(uintptr_t)&ps[i].in[k];
    }
    for (int k = 0; k < 3; k++) {
      ptrs[PE_CUDA_MAX_IN + k] = &ps[i].out[k];
    }
    for (int k = 0; k < PE_CUDA_MAX_IN + 3; k++) {
      const float *p = *ptrs[k];
      if (p != NULL && p >= a0 && p < a1) {
        int64_t off_ps = (int64_t)(p - a0) / c->tile;
        *ptrs[k] = c->d_arena + off_ps * pn;
      }
    }
  }
  const int64_t act = (int64_t)on * per;
  c->n_wcopy = 0;
  int64_t w_floats = on > 0 ? pe__persist_weights(c, act, scratch, limit) : 0;
  c->pshmem = blocks > 1 ? cl_shmem
              : on > 0
                  ? pe_cuda_persist_shmem(c->n_steps, act + w_floats, scratch)
                  : scratch;
  int e = pe_cuda_host_alloc_mapped((void **)&c->ctrl, sizeof *c->ctrl);
  e = e ? e : pe_cuda_host_alloc_mapped((void **)&c->m_in, in_b);
  e = e ? e : pe_cuda_host_alloc_mapped((void **)&c->m_out, out_b);
  size_t wc_b = (size_t)c->n_wcopy * sizeof *c->wcopy;
  e = e ? e : pe_cuda_malloc((void **)&c->d_steps, st_b + wc_b);
  e = e ? e : (int)cudaMemcpy(c->d_steps, ps, st_b, cudaMemcpyHostToDevice);
  e = e || wc_b == 0 ? e
                     : (int)cudaMemcpy((char *)c->d_steps + st_b, c->wcopy,
                                       wc_b, cudaMemcpyHostToDevice);
  free(ps);
  e = e ? e
        : (int)cudaStreamCreateWithFlags(&c->pstream, cudaStreamNonBlocking);
  pe_cuda_persist_t *a = &c->pargs;
  e = e ? e : (int)cudaHostGetDevicePointer((void **)&a->ctrl, c->ctrl, 0);
  e = e ? e : (int)cudaHostGetDevicePointer((void **)&a->h_in, c->m_in, 0);
  e = e ? e : (int)cudaHostGetDevicePointer((void **)&a->h_out, c->m_out, 0);
  if (e != 0) {
    snprintf(msg, cap, "setting up the persistent kernel: %s",
             pe_cuda_strerror(e));
    return PE_EBACKEND;
  }
  a->arena = c->d_arena;
  a->arena_floats = (int64_t)pn * c->arena_ps;
  a->wcopy = (const pe_cuda_wcopy_t *)(const void *)((char *)c->d_steps + st_b);
  a->n_wcopy = c->n_wcopy;
  a->w_floats = w_floats;
  c->dev_bytes += st_b + wc_b;
  c->host_bytes += sizeof *c->ctrl + in_b + out_b;
  memset(c->ctrl, 0, sizeof *c->ctrl);
  a->steps = c->d_steps;
  a->n_steps = c->n_steps;
  a->max_n = pn;
  a->idle_ns = PE__CUDA_IDLE_NS;
  a->d_in = c->d_in;
  a->d_out = c->d_out;
  a->in_numel = c->in_numel;
  a->out_numel = c->out_numel;
  if (c->stamps_path != NULL && c->stamps_path[0] != '\0') {
    size_t sb = (size_t)PE_CUDA_STAMP_RING * PE_CUDA_STAMP_SLOTS * 8;
    c->h_stamps = calloc((size_t)PE_CUDA_STAMP_RING * 4, 8);
    e = c->h_stamps != NULL ? pe_cuda_malloc((void **)&c->d_stamps, sb) : 2;
    c->dev_bytes += sb;
    e = e ? e : (int)cudaMemset(c->d_stamps, 0, sb);
    if (e != 0) {
      snprintf(msg, cap, "allocating the stamps: %s", pe_cuda_strerror(e));
      return PE_EBACKEND;
    }
    a->stamps = c->d_stamps;
  }
  if (blocks > 1) {
    snprintf(c->gen_why, sizeof c->gen_why,
             "a generated kernel is one block, and a cluster of %d runs this "
             "plan",
             blocks);
  } else {
    const uint32_t general_n = c->pargs.max_n;
    pe__persist_gen(c);
    if (c->gen != NULL && c->bgen == NULL && !c->tf32) {
      /* the graphs of the larger batches must run the same generated code
       * as the resident kernel (the same bits for a window whatever its
       * batch); without the batch kernel of its steps, the general
       * resident kernel */
      snprintf(c->gen_why, sizeof c->gen_why,
               "the graphs have no batch kernel of its steps (%.140s)",
               c->bgen_why);
      pe_cuda_gen_close(c->gen);
      c->gen = NULL;
      c->pargs.max_n = general_n;
    }
  }
  if (c->gen == NULL && c->bgen != NULL) {
    /* the resident kernel runs the steps' kernels' forms: so must the
     * graphs of the larger batches, whose sums then keep its order
     * (sums.cuh), so that a window's scores do not depend on which of the
     * two its batch went to */
    pe__drop_bgen(c, "persistent mode's resident kernel is the general "
                     "one, and the graphs run its forms");
    int e2 = pe__capture_all(c);
    if (e2 != 0) {
      snprintf(msg, cap, "capturing the plan as CUDA graphs: %s",
               pe_cuda_strerror(e2));
      return PE_EBACKEND;
    }
  }
  c->persistent = 1;
  c->timing = 0;
  e = pe__persist_launch(c);
  if (e != 0) {
    snprintf(msg, cap, "starting the persistent kernel: %s",
             pe_cuda_strerror(e));
    return PE_EBACKEND;
  }
  return PE_OK;
}

/* One batch through the resident kernel: the windows into mapped memory,
 * then the request number; waits for the answer at most
 * PE__CUDA_WAIT_NS, restarting the kernel if it left for idleness. */
static int pe__persist_run(pe__cuda_t *c, const float *in, uint32_t batch,
                           float *out) {
  pe_cuda_ctrl_t *k = c->ctrl;
  if (__atomic_load_n(&k->stop, __ATOMIC_RELAXED)) {
    snprintf(c->errmsg, sizeof c->errmsg,
             "cuda: the persistent kernel was stopped after an earlier "
             "failure");
    return PE_EBACKEND;
  }
  uint64_t *hs = NULL;
  if (c->h_stamps != NULL) {
    hs = c->h_stamps + (size_t)((c->seq + 1) % PE_CUDA_STAMP_RING) * 4;
    hs[0] = pe_clock_ns();
  }
  /* seq 0 never: a word never written carries it */
  const uint32_t seq = ++c->seq != 0 ? c->seq : ++c->seq;
  const uint64_t tag = (uint64_t)seq << 32;
  const size_t n_in = (size_t)batch * (size_t)c->in_numel;
  for (size_t i = 0; i < n_in; i++) {
    uint32_t b;
    memcpy(&b, &in[i], sizeof b);
    __atomic_store_n(&c->m_in[i], tag | b, __ATOMIC_RELAXED);
  }
  __atomic_store_n(&k->req, (uint64_t)batch << 32 | seq, __ATOMIC_SEQ_CST);
  if (hs != NULL) {
    hs[1] = pe_clock_ns();
  }
  int e = 0;
  if (!__atomic_load_n(&k->running, __ATOMIC_ACQUIRE)) {
    e = pe__persist_launch(c);
  }
  /* the answer: every score's word carrying seq, taken in order (got of
   * them so far); the clock every 256 spins; the stream (a driver call of
   * microseconds, during which an answer would wait) only every
   * PE__CUDA_QUERY_NS */
  const size_t n_out = (size_t)batch * (size_t)c->out_numel;
  size_t got = 0;
  uint64_t t0 = 0, tq = 0;
  for (uint32_t spin = 1; e == 0 && got < n_out; spin++) {
    uint64_t w = __atomic_load_n(&c->m_out[got], __ATOMIC_ACQUIRE);
    if ((uint32_t)(w >> 32) == seq) {
      uint32_t b = (uint32_t)w;
      memcpy(&out[got++], &b, sizeof b);
      continue;
    }
    if ((spin & 255u) != 0) {
      continue;
    }
    uint64_t now = pe_clock_ns();
    t0 = t0 ? t0 : now;
    tq = tq ? tq : now;
    if (!__atomic_load_n(&k->running, __ATOMIC_ACQUIRE) &&
        (uint32_t)(__atomic_load_n(&c->m_out[got], __ATOMIC_ACQUIRE) >> 32) !=
            seq) {
      /* it left (idle) as the request came: start it again */
      e = pe__persist_launch(c);
    } else if (now - tq < PE__CUDA_QUERY_NS) {
      continue;
    } else if (now - t0 > PE__CUDA_WAIT_NS) {
      __atomic_store_n(&k->stop, 1u, __ATOMIC_SEQ_CST);
      snprintf(c->errmsg, sizeof c->errmsg,
               "cuda: the persistent kernel did not answer within %.0f s",
               PE__CUDA_WAIT_NS / 1e9);
      return PE_EBACKEND;
    } else {
      int q = (int)cudaStreamQuery(c->pstream);
      e = q == (int)cudaErrorNotReady ? 0 : q;
      tq = now;
    }
  }
  if (e != 0) {
    __atomic_store_n(&k->stop, 1u, __ATOMIC_SEQ_CST);
    snprintf(c->errmsg, sizeof c->errmsg, "cuda: persistent kernel: %s",
             pe_cuda_strerror(e));
    return PE_EBACKEND;
  }
  if (hs != NULL) {
    hs[2] = hs[3] = pe_clock_ns();
  }
  return PE_OK;
}

/* The tile (c->tile) for a plan of in_numel, out_numel and arena_ps floats
 * per window: max_batch when that many windows' arena, input and output fit
 * the budget (opts->device_memory_bytes, or PE__CUDA_MEMORY_DEFAULT), else
 * the largest power of two that fits; PE_ENOMEM, with the bytes one window
 * needs, when not even one does. Needs no device. */
static int pe__cuda_tile(pe__cuda_t *c, const pe_backend_options_t *opts,
                         int64_t in_numel, int64_t out_numel, int64_t arena_ps,
                         char *msg, size_t cap) {
  c->max_batch = opts->max_batch ? opts->max_batch : 1;
  c->info.max_batch = c->max_batch;
  c->budget_bytes = opts->device_memory_bytes ? opts->device_memory_bytes
                                              : PE__CUDA_MEMORY_DEFAULT;
  const uint64_t a = (uint64_t)(arena_ps > 0 ? arena_ps : 1);
  const uint64_t per = (a + (uint64_t)in_numel + (uint64_t)out_numel) * 4;
  c->window_bytes = (size_t)per;
  if (per > c->budget_bytes) {
    snprintf(msg, cap,
             "one window needs %llu bytes of device memory (arena %llu, input "
             "%llu, output %llu), more than the budget of %llu bytes for the "
             "buffers that grow with the batch: raise it (--cuda-memory MB)",
             (unsigned long long)per, (unsigned long long)(a * 4),
             (unsigned long long)in_numel * 4,
             (unsigned long long)out_numel * 4,
             (unsigned long long)c->budget_bytes);
    return PE_ENOMEM;
  }
  const uint64_t fit = c->budget_bytes / per;
  if (fit >= c->max_batch) {
    c->tile = c->max_batch;
  } else {
    c->tile = 1;
    while ((uint64_t)c->tile * 2 <= fit) {
      c->tile *= 2;
    }
  }
  return PE_OK;
}

/* The device arena, input and output for a tile of windows (c->tile, set
 * by pe__cuda_tile), their two sets of pinned staging, the stream, the
 * events and the step table. */
static int pe__cuda_buffers(pe__cuda_t *c, int64_t in_numel, int64_t out_numel,
                            int64_t arena_ps, int n_steps, char *msg,
                            size_t cap) {
  c->in_numel = in_numel;
  c->out_numel = out_numel;
  c->arena_ps = arena_ps;
  size_t nb = c->tile;
  size_t in_bytes = nb * (size_t)in_numel * sizeof(float);
  size_t out_bytes = nb * (size_t)out_numel * sizeof(float);
  size_t arena_bytes =
      nb * (size_t)(arena_ps > 0 ? arena_ps : 1) * sizeof(float);
  int e = pe_cuda_malloc((void **)&c->d_arena, arena_bytes);
  e = e ? e : pe_cuda_malloc((void **)&c->d_in, in_bytes);
  e = e ? e : pe_cuda_malloc((void **)&c->d_out, out_bytes);
  for (int s = 0; s < 2 && e == 0; s++) {
    e = pe_cuda_host_alloc((void **)&c->h_in[s], in_bytes);
    e = e ? e : pe_cuda_host_alloc((void **)&c->h_out[s], out_bytes);
    for (int k = 0; k < 4 && e == 0; k++) {
      e = (int)cudaEventCreate(&c->ev[s][k]);
    }
  }
  e = e ? e : (int)cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
  e = e ? e
        : (int)cudaStreamCreateWithFlags(&c->stream2, cudaStreamNonBlocking);
  e = e ? e : (int)cudaEventCreateWithFlags(&c->fork, cudaEventDisableTiming);
  e = e ? e : (int)cudaEventCreateWithFlags(&c->join, cudaEventDisableTiming);
  c->dev_bytes += arena_bytes + in_bytes + out_bytes;
  c->host_bytes += 2 * (in_bytes + out_bytes);
  /* windows past a batch are computed with the bucket's: zeros, not
   * whatever the allocator left */
  e = e ? e : (int)cudaMemset(c->d_in, 0, in_bytes);
  e = e ? e : (int)cudaMemset(c->d_arena, 0, arena_bytes);
  if (e != 0) {
    snprintf(msg, cap,
             "allocating %zu bytes of device buffers for a tile of %u "
             "windows: %s",
             arena_bytes + in_bytes + out_bytes, c->tile, pe_cuda_strerror(e));
    return PE_ENOMEM;
  }
  c->n_steps = n_steps;
  c->steps = calloc((size_t)(n_steps > 0 ? n_steps : 1), sizeof *c->steps);
  if (c->steps == NULL) {
    snprintf(msg, cap, "out of memory");
    return PE_ENOMEM;
  }
  return PE_OK;
}

/* v as a whole decimal number from lo to hi, or -1. */
static long pe__count(const char *v, unsigned long lo, unsigned long hi) {
  char *end = NULL;
  const unsigned long n = strtoul(v, &end, 10);
  return v[0] >= '0' && v[0] <= '9' && *end == '\0' && n >= lo && n <= hi
             ? (long)n
             : -1;
}

/* pe_backend_options_t.codegen: 1 on (NULL, "", "on", "1", "auto", or a
 * list of settings separated by commas, each at most once: "windows=N",
 * a block of graph mode's generated kernel holding at most N windows at
 * once, 1 to 4096; "rows=N", its dense steps of four columns a thread
 * taking up to N rows a thread, 1 to 8; "sums=N", each dense output's
 * sums in both generated kernels, 1 or 4; "conv=N", their Conv 1-D
 * steps taking N positions a thread, 1 or 2 (the default)), 0
 * off ("off", "0"), -1
 * anything else (refused at open). *o: the settings, the defaults
 * (PE__CUDA_GEN_WINDOWS, the generator's form) where not given. */
static int pe__codegen(const char *v, pe__codegen_opts_t *o) {
  o->windows = PE__CUDA_GEN_WINDOWS;
  o->rows = 0;
  o->sums = 0;
  o->conv = 2;
  if (v == NULL || *v == '\0' || strcmp(v, "on") == 0 || strcmp(v, "1") == 0 ||
      strcmp(v, "auto") == 0) {
    return 1;
  }
  if (strcmp(v, "off") == 0 || strcmp(v, "0") == 0) {
    return 0;
  }
  int seen = 0;
  while (*v != '\0') {
    char item[32];
    const size_t len = strcspn(v, ",");
    if (len == 0 || len >= sizeof item) {
      return -1;
    }
    memcpy(item, v, len);
    item[len] = '\0';
    v += len;
    if (*v == ',' && *++v == '\0') {
      return -1;
    }
    long n = -1;
    int bit = 0;
    if (strncmp(item, "windows=", 8) == 0) {
      n = pe__count(item + 8, 1, 4096);
      o->windows = (uint32_t)n;
      bit = 1;
    } else if (strncmp(item, "rows=", 5) == 0) {
      n = pe__count(item + 5, 1, 8);
      o->rows = (int)n;
      bit = 2;
    } else if (strncmp(item, "sums=", 5) == 0) {
      n = pe__count(item + 5, 1, 4);
      n = n == 1 || n == 4 ? n : -1;
      o->sums = (int)n;
      bit = 4;
    } else if (strncmp(item, "conv=", 5) == 0) {
      n = pe__count(item + 5, 1, 2);
      o->conv = (int)n;
      bit = 8;
    }
    if (n < 0 || (seen & bit) != 0) {
      return -1;
    }
    seen |= bit;
  }
  return 1;
}

/* pe_backend_options_t.persist_blocks: 0 auto (NULL, "" or "auto"), N
 * for "N" (1 to PE__CUDA_CLUSTER_MAX), -1 anything else (refused at
 * open). */
static int pe__persist_blocks(const char *v) {
  if (v == NULL || *v == '\0' || strcmp(v, "auto") == 0) {
    return 0;
  }
  return (int)pe__count(v, 1, PE__CUDA_CLUSTER_MAX);
}

/* pe_backend_options_t.precision: 0 fp32 (NULL, "" or "fp32"), 1 tf32,
 * -1 anything else (refused at open). */
static int pe__precision(const char *v) {
  if (v == NULL || *v == '\0' || strcmp(v, "fp32") == 0) {
    return 0;
  }
  return strcmp(v, "tf32") == 0 ? 1 : -1;
}

/* Once the steps are resolved: the graphs, the persistent kernel when
 * asked for, and the allocation count from which none may happen. */
static int pe__cuda_finish(pe__cuda_t *c, const pe_backend_options_t *opts,
                           char *msg, size_t cap) {
  c->timing = opts->phase_times != 0;
  c->stamps_path = opts->stamps_path;
  c->codegen_off = pe__codegen(opts->codegen, &c->gen_opts) == 0;
  c->persist_blocks = pe__persist_blocks(opts->persist_blocks);
  c->n_fused = pe__cuda_fold_add_ln(
      c->steps, &c->n_steps, c->plan_of, c->d_arena,
      c->d_arena + (c->arena_ps > 0 ? c->arena_ps : 1) * c->tile, c->tile);
  if (c->stamps_path != NULL && c->stamps_path[0] != '\0') {
    const size_t sb = (size_t)(PE_CUDA_GEN_BS_STEP0 + c->n_steps) * 8;
    int e = pe_cuda_malloc((void **)&c->d_bstamps, sb);
    e = e ? e : (int)cudaMemset(c->d_bstamps, 0, sb);
    if (e != 0) {
      snprintf(msg, cap, "allocating the stamps: %s", pe_cuda_strerror(e));
      return PE_EBACKEND;
    }
    c->dev_bytes += sb;
  }
  /* in precision tf32 too: the generated kernels' dense steps that can
   * then run on the tensor cores (cuda_gen.h, tf32) */
  pe__gen_kernel(c, 1, c->gen_opts.windows, &c->bgen, c->bgen_why,
                 sizeof c->bgen_why);
  int e = pe__capture_all(c);
  if (e != 0) {
    snprintf(msg, cap, "capturing the plan as CUDA graphs: %s",
             pe_cuda_strerror(e));
    return PE_EBACKEND;
  }
  if (opts->mode != NULL && strcmp(opts->mode, "persistent") == 0) {
    int rc = pe__persist_open(c, msg, cap);
    if (rc != PE_OK) {
      return rc;
    }
  }
  size_t free_b = 0, total_b = 0;
  if (c->dev_free0 != 0 && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
    c->dev_drop = c->dev_free0 > free_b ? c->dev_free0 - free_b : 0;
  }
  cudaGetLastError(); /* clear a failure of the query */
  return PE_OK;
}

/* The device's free memory as open begins (c->dev_free0; 0 when the
 * runtime does not say), from which pe__cuda_finish measures the fall. */
static void pe__cuda_mem_mark(pe__cuda_t *c) {
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
    cudaGetLastError(); /* clear it */
    free_b = 0;
  }
  c->dev_free0 = free_b;
}

/* A step pointer as a plan file reference. */
static uint64_t pe__ref_of(const pe__cuda_t *c, const void *p) {
  if (p == NULL) {
    return PE_CUDA_REF_NULL;
  }
  if (p == c->d_in) {
    return PE_CUDA_REF_INPUT;
  }
  if (p == c->d_out) {
    return PE_CUDA_REF_OUTPUT;
  }
  for (int i = 0; i < c->n_weights; i++) {
    if (p == c->weights[i]) {
      return PE_CUDA_REF_BLOB | (uint64_t)i;
    }
  }
  /* the arena: off_ps floats per window, times the tile */
  uint64_t off = (uint64_t)((const float *)p - c->d_arena);
  return PE_CUDA_REF_ARENA | (off / c->tile);
}

/* A plan file reference as a device pointer; NULL with *bad set when it
 * points nowhere valid. */
static void *pe__ptr_of(const pe__cuda_t *c, uint64_t r, int *bad) {
  uint64_t v = PE_CUDA_REF_VALUE(r);
  switch (PE_CUDA_REF_KIND(r)) {
  case PE_CUDA_REF_NULL:
    *bad |= v != 0;
    return NULL;
  case PE_CUDA_REF_INPUT:
    return c->d_in;
  case PE_CUDA_REF_OUTPUT:
    return c->d_out;
  case PE_CUDA_REF_BLOB:
    if (v < (uint64_t)c->n_weights) {
      return c->weights[v];
    }
    break;
  case PE_CUDA_REF_ARENA:
    if (v < (uint64_t)(c->arena_ps > 0 ? c->arena_ps : 1)) {
      return c->d_arena + v * c->tile;
    }
    break;
  default:
    break;
  }
  *bad = 1;
  return NULL;
}

/* Each pointer field of a step, for the two directions above. */
#define PE__STEP_PTRS(X, d)                                                    \
  do {                                                                         \
    for (int k_ = 0; k_ < PE_CUDA_MAX_IN; k_++) {                              \
      X((d)->in[k_]);                                                          \
    }                                                                          \
    for (int k_ = 0; k_ < 3; k_++) {                                           \
      X((d)->out[k_]);                                                         \
    }                                                                          \
    X((d)->w);                                                                 \
    X((d)->w2);                                                                \
    X((d)->bias);                                                              \
    X((d)->bias2);                                                             \
    X((d)->idx);                                                               \
  } while (0)

/* A kernel generated for the plan (cuda_gen.h): the resident one (batch
 * 0, taking at most max_n windows a request) or the batch one (batch 1,
 * holding at most max_n windows a block at once), into *out; where there
 * is none, *out is NULL and why says why. */
static void pe__gen_kernel(pe__cuda_t *c, int batch, uint32_t max_n,
                           pe_cuda_gen_t **out, char *why, size_t cap) {
  *out = NULL;
  if (c->codegen_off) {
    snprintf(why, cap, "code generation off");
    return;
  }
  const size_t st_b =
      (size_t)(c->n_steps > 0 ? c->n_steps : 1) * sizeof(pe_cuda_step_t);
  pe_cuda_step_t *rs = malloc(st_b);
  if (rs == NULL) {
    snprintf(why, cap, "out of memory");
    return;
  }
  for (int i = 0; i < c->n_steps; i++) {
    pe_cuda_step_t *d = &rs[i];
    *d = c->steps[i];
#define PE__TO_REF(f) memcpy(&(f), &(uint64_t){pe__ref_of(c, (f))}, 8)
    PE__STEP_PTRS(PE__TO_REF, d);
#undef PE__TO_REF
  }
  int64_t floats[PE__CUDA_MAX_WEIGHTS];
  for (int i = 0; i < c->n_weights; i++) {
    floats[i] = (int64_t)(c->weight_bytes[i] / sizeof(float));
  }
  pe_cuda_gen_plan_t p;
  memset(&p, 0, sizeof p);
  p.steps = rs;
  p.n_steps = c->n_steps;
  p.blob_dev = (const void *const *)c->weights;
  p.blob_floats = floats;
  p.n_blobs = c->n_weights;
  p.in_numel = c->in_numel;
  p.out_numel = c->out_numel;
  p.arena_ps = c->arena_ps;
  p.max_n = max_n;
  p.batch = batch;
  p.stamps = batch ? c->d_bstamps != NULL : c->d_stamps != NULL;
  p.dense_rows = c->gen_opts.rows;
  p.dense_sums = c->gen_opts.sums;
  p.conv_wide = c->gen_opts.conv == 2;
  p.tf32 = c->tf32;
  /* the resident kernel staged too where one block is asked for: the
   * cluster is the default for a plan whose batch kernel is staged */
  p.allow_staged = batch || c->persist_blocks == 1;
  pe_cuda_gen_open(&p, out, why, cap);
  free(rs);
}

/* The resident kernel generated for the plan into c->gen, unless asked
 * not to; where there is none, c->gen_why says why and the general kernel
 * runs. Batches of more windows than it takes go through the graphs. */
static void pe__persist_gen(pe__cuda_t *c) {
  pe__gen_kernel(c, 0, c->pargs.max_n, &c->gen, c->gen_why, sizeof c->gen_why);
  if (c->gen != NULL) {
    c->pargs.max_n = pe_cuda_gen_max_n(c->gen);
  }
}

static int pe__cuda_serialize(void *self, void **data, size_t *len, char *err,
                              size_t err_cap) {
  pe__cuda_t *c = self;
  size_t n = PE_CUDA_PLAN_HEADER + sizeof c->info + 3 * 8 + 2 * 4;
  for (int i = 0; i < c->n_weights; i++) {
    n += 8 + (c->weight_bytes[i] + 7) / 8 * 8;
  }
  n += (size_t)c->n_steps * sizeof(pe_cuda_step_t);
  unsigned char *buf = calloc(1, n), *p = buf + PE_CUDA_PLAN_HEADER;
  if (buf == NULL) {
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  pe_model_info_t info = c->info;
  info.max_batch = 0;
  memcpy(p, &info, sizeof info);
  p += sizeof info;
  int64_t shape[3] = {c->in_numel, c->out_numel, c->arena_ps};
  int32_t counts[2] = {c->n_steps, c->n_weights};
  memcpy(p, shape, sizeof shape);
  p += sizeof shape;
  memcpy(p, counts, sizeof counts);
  p += sizeof counts;
  for (int i = 0; i < c->n_weights; i++) {
    uint64_t b = c->weight_bytes[i];
    memcpy(p, &b, 8);
    int e = (int)cudaMemcpy(p + 8, c->weights[i], b, cudaMemcpyDeviceToHost);
    if (e != 0) {
      free(buf);
      snprintf(err, err_cap, "copying the weights from the device: %s",
               pe_cuda_strerror(e));
      return PE_EBACKEND;
    }
    p += 8 + (b + 7) / 8 * 8;
  }
  for (int i = 0; i < c->n_steps; i++) {
    pe_cuda_step_t d = c->steps[i];
#define PE__TO_REF(f) memcpy(&(f), &(uint64_t){pe__ref_of(c, (f))}, 8)
    PE__STEP_PTRS(PE__TO_REF, &d);
#undef PE__TO_REF
    memcpy(p, &d, sizeof d);
    p += sizeof d;
  }
  pe_cuda_plan_header_t h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, PE_CUDA_PLAN_MAGIC, 8);
  h.version = PE_CUDA_PLAN_VERSION;
  h.header_bytes = PE_CUDA_PLAN_HEADER;
  int major = 0, minor = 0;
  pe_cuda_device_name(c->device, h.device, sizeof h.device, &major, &minor);
  h.cc_major = major;
  h.cc_minor = minor;
  snprintf(h.precision, sizeof h.precision, "%s", c->tf32 ? "tf32" : "fp32");
  h.flops = (uint64_t)c->flops;
  h.payload_bytes = n - PE_CUDA_PLAN_HEADER;
  h.checksum = pe__cuda_plan_checksum(buf + PE_CUDA_PLAN_HEADER,
                                      n - PE_CUDA_PLAN_HEADER);
  memcpy(buf, &h, sizeof h);
  *data = buf;
  *len = n;
  return PE_OK;
}

/* open of a plan file (cuda_plan.h): checked, then its blobs uploaded and
 * its steps' references made device pointers again. */
static int pe__cuda_open_plan(const pe_backend_options_t *opts, void **self,
                              char *err, size_t err_cap) {
  const char *path = opts->model_path;
  FILE *f = fopen(path, "rb");
  unsigned char *file = NULL;
  long len = -1;
  if (f != NULL && fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 &&
      fseek(f, 0, SEEK_SET) == 0) {
    file = malloc((size_t)len + 1);
    if (file != NULL && fread(file, 1, (size_t)len, f) != (size_t)len) {
      free(file);
      file = NULL;
    }
  }
  if (f != NULL) {
    fclose(f);
  }
  if (file == NULL) {
    snprintf(err, err_cap, "%s: cannot read the cuda plan file", path);
    return PE_EIO;
  }
  char msg[512];
  int rc = pe__cuda_plan_check(file, (size_t)len, msg, sizeof msg);
  if (rc != PE_OK) {
    free(file);
    snprintf(err, err_cap, "%s: %s", path, msg);
    return rc;
  }
  pe_cuda_plan_header_t h;
  memcpy(&h, file, sizeof h);
  h.device[sizeof h.device - 1] = '\0';
  h.precision[sizeof h.precision - 1] = '\0';
  const int tf32 = strcmp(h.precision, "tf32") == 0;
  if (opts->precision != NULL && *opts->precision != '\0' &&
      pe__precision(opts->precision) != tf32) {
    free(file);
    snprintf(err, err_cap,
             "%s: a cuda plan made for precision %s, and %s was asked for: "
             "make the plan again with `pattern-engine build-engine "
             "--precision %s`, or leave the precision out",
             path, h.precision, opts->precision, opts->precision);
    return PE_EINVAL;
  }
  rc = pe__cuda_device(msg, sizeof msg);
  char name[128] = "";
  int major = 0, minor = 0;
  if (rc == PE_OK &&
      (pe_cuda_device_name(0, name, sizeof name, &major, &minor) != 0 ||
       strcmp(name, h.device) != 0 || major != h.cc_major ||
       minor != h.cc_minor)) {
    snprintf(msg, sizeof msg,
             "a cuda plan made for %s (compute capability %d.%d); this device "
             "is %s (%d.%d): make the plan again on this device with "
             "`pattern-engine build-engine`",
             h.device, h.cc_major, h.cc_minor, name, major, minor);
    rc = PE_EUNSUPPORTED;
  }
  if (rc != PE_OK) {
    free(file);
    snprintf(err, err_cap, "%s: %s", path, msg);
    return rc;
  }
  pe__cuda_t *c = calloc(1, sizeof *c);
  if (c == NULL) {
    free(file);
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  c->tf32 = tf32;
  c->flops = h.flops <= (uint64_t)INT64_MAX ? (int64_t)h.flops : INT64_MAX;
  const unsigned char *p = file + PE_CUDA_PLAN_HEADER, *end = file + len;
  int64_t shape[3] = {0, 0, 0};
  int32_t counts[2] = {0, 0};
  int bad = (size_t)(end - p) < sizeof c->info + sizeof shape + sizeof counts;
  if (!bad) {
    memcpy(&c->info, p, sizeof c->info);
    p += sizeof c->info;
    memcpy(shape, p, sizeof shape);
    p += sizeof shape;
    memcpy(counts, p, sizeof counts);
    p += sizeof counts;
    bad = shape[0] < 1 || shape[1] < 1 || shape[2] < 0 || counts[0] < 0 ||
          counts[1] < 0 || counts[1] > PE__CUDA_MAX_WEIGHTS;
  }
  pe__cuda_mem_mark(c);
  rc = bad ? PE_EMODEL
           : pe__cuda_tile(c, opts, shape[0], shape[1], shape[2], msg,
                           sizeof msg);
  rc = rc == PE_OK ? pe__cuda_buffers(c, shape[0], shape[1], shape[2],
                                      counts[0], msg, sizeof msg)
                   : rc;
  for (int i = 0; rc == PE_OK && !bad && i < counts[1]; i++) {
    uint64_t b = 0;
    bad = end - p < 8;
    if (!bad) {
      memcpy(&b, p, 8);
      bad = b == 0 || b % 4 != 0 || (uint64_t)(end - p - 8) < (b + 7) / 8 * 8;
    }
    if (!bad &&
        pe__upload(c, p + 8, (int64_t)(b / 4), 4, msg, sizeof msg) == NULL) {
      rc = PE_EBACKEND;
    }
    p += bad ? 0 : 8 + (b + 7) / 8 * 8;
  }
  for (int i = 0; rc == PE_OK && !bad && i < c->n_steps; i++) {
    pe_cuda_step_t *d = &c->steps[i];
    bad = (size_t)(end - p) < sizeof *d;
    if (!bad) {
      memcpy(d, p, sizeof *d);
      p += sizeof *d;
#define PE__FROM_REF(f)                                                        \
  do {                                                                         \
    uint64_t r_;                                                               \
    memcpy(&r_, &(f), 8);                                                      \
    void *q_ = pe__ptr_of(c, r_, &bad);                                        \
    memcpy(&(f), &q_, 8);                                                      \
  } while (0)
      PE__STEP_PTRS(PE__FROM_REF, d);
#undef PE__FROM_REF
      bad = bad || !pe_cuda_kind_supported(d->kind) || d->n_in < 0 ||
            d->n_in > PE_CUDA_MAX_IN || d->rank < 0 ||
            d->rank > PE_CUDA_MAX_RANK;
    }
  }
  free(file);
  if (rc == PE_OK && (bad || p != end)) {
    snprintf(msg, sizeof msg,
             "a cuda plan file whose contents do not hold "
             "together (made by another build?)");
    rc = PE_EMODEL;
  }
  rc = rc == PE_OK ? pe__cuda_finish(c, opts, msg, sizeof msg) : rc;
  if (rc != PE_OK) {
    return pe__cuda_fail(c, err, err_cap, rc, path, msg);
  }
  *self = c;
  return PE_OK;
}

static int pe__cuda_open(const pe_backend_options_t *opts, void **self,
                         char *err, size_t err_cap) {
  *self = NULL;
  if (opts->model_path == NULL) {
    snprintf(err, err_cap,
             "the cuda backend runs an ONNX model, and no model path was "
             "given");
    return PE_EINVAL;
  }
  const char *mode = opts->mode != NULL ? opts->mode : "graph";
  if (strcmp(mode, "graph") != 0 && strcmp(mode, "persistent") != 0) {
    snprintf(err, err_cap,
             "cuda backend: unknown mode '%s' (graph or persistent)", mode);
    return PE_EINVAL;
  }
  pe__codegen_opts_t gen_opts;
  if (pe__codegen(opts->codegen, &gen_opts) < 0) {
    snprintf(err, err_cap,
             "cuda backend: unknown codegen '%s' (on, off, or settings "
             "separated by commas: windows=N, N from 1 to 4096; rows=N, N "
             "from 1 to 8; sums=1 or sums=4; conv=1 or conv=2)",
             opts->codegen);
    return PE_EINVAL;
  }
  if (pe__precision(opts->precision) < 0) {
    snprintf(err, err_cap,
             "cuda backend: unknown precision '%s' (fp32 or tf32)",
             opts->precision);
    return PE_EINVAL;
  }
  if (pe__persist_blocks(opts->persist_blocks) < 0) {
    snprintf(err, err_cap,
             "cuda backend: persistent blocks '%s' is not auto or a number "
             "from 1 to %d",
             opts->persist_blocks, PE__CUDA_CLUSTER_MAX);
    return PE_EINVAL;
  }
  int rc = pe__cuda_plan_sniff(opts->model_path, err, err_cap);
  if (rc != 0) {
    return rc == 1 ? pe__cuda_open_plan(opts, self, err, err_cap) : rc;
  }
  char msg[256];
  pe__cuda_t *c = calloc(1, sizeof *c);
  if (c == NULL) {
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  c->tf32 = pe__precision(opts->precision) == 1;
  const char *path = opts->model_path;
  pe_model_options_t mo = {.kernels = PE_KERNELS_AUTO};
  rc = pe_model_load_file(path, &mo, &c->model, err, err_cap);
  if (rc != PE_OK) {
    free(c);
    return rc;
  }
  rc = pe__backend_model_info(c->model, &c->info, msg, sizeof msg);
  if (rc != PE_OK) {
    return pe__cuda_fail(c, err, err_cap, rc, path, msg);
  }
  const pe_model_desc_t *d = pe_model_desc(c->model);
  c->flops = d->flops;
  if (d->layout != PE_MODEL_LAYOUT_NCW && d->layout != PE_MODEL_LAYOUT_NWC &&
      d->layout != PE_MODEL_LAYOUT_N1WC) {
    snprintf(msg, sizeof msg,
             "the input's layout is not recognised (%s): the cuda backend "
             "feeds [channel][time] windows as NCW, NWC or N1WC",
             d->layout_note);
    return pe__cuda_fail(c, err, err_cap, PE_EUNSUPPORTED, path, msg);
  }
  pe_plan_shape_t shape;
  pe_plan_shape(c->model, &shape);
  /* the launch steps: a transpose first for a [time][channel] input, up
   * to three per attention block, whose rows take arena of their own
   * after the plan's (and the transposed windows), and two per LSTM split
   * in two, whose input projection takes arena after those */
  const int wc = d->layout != PE_MODEL_LAYOUT_NCW;
  int n_launch = shape.n_steps + wc;
  int64_t attn_ps = 0, lstm_ps = 0;
  for (int i = 0; i < shape.n_steps; i++) {
    pe_plan_step_t s;
    int64_t U = 0, KM = 0;
    if (pe_plan_step(c->model, i, &s) != PE_OK) {
      continue;
    }
    if (s.kind == PE_PLAN_ATTENTION) {
      const int64_t need = 4 * s.attn.L * s.attn.E;
      attn_ps = need > attn_ps ? need : attn_ps;
      n_launch += 1 + (s.attn.has_out != 0);
    } else if (pe__lstm_split(&s, &U, &KM)) {
      const int64_t need = 4 * s.p[0] * s.p[2];
      lstm_ps = need > lstm_ps ? need : lstm_ps;
      n_launch += 1;
    }
  }
  const int64_t xin_ps = wc ? shape.in_numel : 0;
  const int64_t arena_ps = shape.arena_ps + xin_ps + attn_ps + lstm_ps;
  /* the budget is checked before the device is asked for, so that a
   * model that cannot fit is refused alike on a host without one */
  rc = pe__cuda_tile(c, opts, shape.in_numel, shape.out_numel, arena_ps, msg,
                     sizeof msg);
  if (rc != PE_OK) {
    return pe__cuda_fail(c, err, err_cap, rc, path, msg);
  }
  rc = pe__cuda_device(msg, sizeof msg);
  if (rc != PE_OK) {
    snprintf(err, err_cap, "cuda backend: %s", msg);
    pe__cuda_destroy(c);
    return rc;
  }
  pe__cuda_mem_mark(c);
  rc = pe__cuda_buffers(c, shape.in_numel, shape.out_numel, arena_ps, n_launch,
                        msg, sizeof msg);
  c->plan_of =
      rc == PE_OK ? calloc((size_t)n_launch, sizeof *c->plan_of) : NULL;
  if (rc == PE_OK && c->plan_of == NULL) {
    snprintf(msg, sizeof msg, "out of memory");
    rc = PE_ENOMEM;
  }
  int k = 0;
  if (rc == PE_OK && wc) {
    c->d_xin = c->d_arena + shape.arena_ps * (int64_t)c->tile;
    pe__resolve_layout(c, &c->steps[k++], d->window, d->channels);
  }
  if (rc == PE_OK) {
    c->d_attn = c->d_arena + (shape.arena_ps + xin_ps) * (int64_t)c->tile;
    c->d_lstm = c->d_attn + attn_ps * (int64_t)c->tile;
  }
  for (int i = 0; i < shape.n_steps && rc == PE_OK; i++, k++) {
    const int k0 = k;
    rc = pe__resolve(c, i, &k, msg, sizeof msg);
    for (int q = k0; q <= k; q++) {
      c->plan_of[q] = i;
    }
  }
  rc = rc == PE_OK ? pe__cuda_finish(c, opts, msg, sizeof msg) : rc;
  if (rc != PE_OK) {
    return pe__cuda_fail(c, err, err_cap, rc, path, msg);
  }
  *self = c;
  return PE_OK;
}

static int pe__cuda_describe(void *self, pe_model_info_t *info) {
  *info = ((pe__cuda_t *)self)->info;
  return PE_OK;
}

/* Whether the caller's buffer of bytes is page-locked host memory the
 * device can copy from directly (asked only of large buffers: the question
 * costs about a microsecond). */
static int pe__pinned(const void *p, size_t bytes) {
  if (bytes < PE__CUDA_STAGE) {
    return 0;
  }
  struct cudaPointerAttributes at;
  if (cudaPointerGetAttributes(&at, p) != cudaSuccess) {
    cudaGetLastError(); /* clear it */
    return 0;
  }
  return at.type == cudaMemoryTypeHost;
}

/* Windows of a chunk from which graph mode's generated kernel runs it in
 * pieces, and the windows of a piece at least. */
#define PE__CUDA_PIECES_FROM 8192u
#define PE__CUDA_PIECE_MIN 2048u
#define PE__CUDA_PIECES_MAX 16u

/* Enqueues a chunk of n windows from pinned memory (in, n <= the tile)
 * through the generated kernel in pieces, alternating between the two
 * streams, so that one piece's windows cross the bus while the piece
 * before them computes: each piece's copy in, kernel and copy out of
 * scores to out (pinned) or h_out. The chunk is forked from c->stream
 * and joined back into it. Returns 0 or a cudaError_t. */
static int pe__chunk_pieces(pe__cuda_t *c, const float *in, float *out,
                            uint32_t n) {
  uint32_t pieces = n / PE__CUDA_PIECE_MIN;
  pieces = pieces < PE__CUDA_PIECES_MAX ? pieces : PE__CUDA_PIECES_MAX;
  const uint32_t per = (n + pieces - 1) / pieces;
  int e = (int)cudaEventRecord(c->fork, c->stream);
  e = e ? e : (int)cudaStreamWaitEvent(c->stream2, c->fork, 0);
  for (uint32_t at = 0, k = 0; at < n && e == 0; at += per, k++) {
    const uint32_t m = n - at < per ? n - at : per;
    cudaStream_t st = k & 1 ? c->stream2 : c->stream;
    float *d_in = c->d_in + (size_t)at * (size_t)c->in_numel;
    float *d_out = c->d_out + (size_t)at * (size_t)c->out_numel;
    e = (int)cudaMemcpyAsync(d_in, in + (size_t)at * (size_t)c->in_numel,
                             (size_t)m * (size_t)c->in_numel * sizeof(float),
                             cudaMemcpyHostToDevice, st);
    e = e ? e
          : pe_cuda_gen_batch_launch(c->bgen, d_in, d_out, m, c->d_bstamps, st);
    e = e ? e
          : (int)cudaMemcpyAsync(out + (size_t)at * (size_t)c->out_numel, d_out,
                                 (size_t)m * (size_t)c->out_numel *
                                     sizeof(float),
                                 cudaMemcpyDeviceToHost, st);
  }
  int e2 = (int)cudaEventRecord(c->join, c->stream2);
  e2 = e2 ? e2 : (int)cudaStreamWaitEvent(c->stream, c->join, 0);
  return e ? e : e2;
}

/* Enqueues one chunk of n windows (at most a tile) on the stream through
 * staging set `set`: the windows in (from `in` directly when pinned, else
 * staged through h_in[set] a piece at a time, each piece's copy to the
 * device running while the next is staged), the bucket's graph, and the
 * scores out (to `out` directly when pinned, else into h_out[set]). The
 * set's last event marks the chunk done when `mark` (or timing) asks for
 * it. h_in[set] and h_out[set] must be free: no copy of an earlier chunk
 * still reads or writes them. Returns 0 or a cudaError_t. */
static int pe__chunk_enqueue(pe__cuda_t *c, int set, const float *in,
                             int pin_in, float *out, int pin_out, uint32_t n,
                             int mark) {
  size_t in_bytes = (size_t)n * (size_t)c->in_numel * sizeof(float);
  size_t out_bytes = (size_t)n * (size_t)c->out_numel * sizeof(float);
  cudaEvent_t *ev = c->ev[set];
  int e = 0;
  if (c->bgen != NULL && pin_in && !c->timing && n >= PE__CUDA_PIECES_FROM) {
    e = pe__chunk_pieces(c, in, pin_out ? out : c->h_out[set], n);
    if (mark && e == 0) {
      e = (int)cudaEventRecord(ev[3], c->stream);
    }
    return e;
  }
  if (c->timing) {
    e = (int)cudaEventRecord(ev[0], c->stream);
  }
  if (pin_in && e == 0) {
    e = (int)cudaMemcpyAsync(c->d_in, in, in_bytes, cudaMemcpyHostToDevice,
                             c->stream);
  }
  char *h_in = (char *)c->h_in[set];
  for (size_t off = 0; !pin_in && off < in_bytes && e == 0;
       off += PE__CUDA_STAGE) {
    size_t part =
        in_bytes - off < PE__CUDA_STAGE ? in_bytes - off : PE__CUDA_STAGE;
    memcpy(h_in + off, (const char *)in + off, part);
    e = (int)cudaMemcpyAsync((char *)c->d_in + off, h_in + off, part,
                             cudaMemcpyHostToDevice, c->stream);
  }
  if (c->timing && e == 0) {
    e = (int)cudaEventRecord(ev[1], c->stream);
  }
  int bucket = 0;
  while (c->graph_n[bucket] < n) {
    bucket++;
  }
  e = e ? e : (int)cudaGraphLaunch(c->graph[bucket], c->stream);
  if (c->timing && e == 0) {
    e = (int)cudaEventRecord(ev[2], c->stream);
  }
  e = e ? e
        : (int)cudaMemcpyAsync(pin_out ? (void *)out : (void *)c->h_out[set],
                               c->d_out, out_bytes, cudaMemcpyDeviceToHost,
                               c->stream);
  if ((c->timing || mark) && e == 0) {
    e = (int)cudaEventRecord(ev[3], c->stream);
  }
  return e;
}

/* Waits for the chunk of n windows enqueued through staging set `set` (the
 * whole stream when it is the last one), adds its phase times to c->last_ms
 * and copies its scores from h_out[set] to out unless they went there
 * directly. Returns 0 or a cudaError_t. */
static int pe__chunk_collect(pe__cuda_t *c, int set, float *out, int pin_out,
                             uint32_t n, int last) {
  int e = last ? (int)cudaStreamSynchronize(c->stream)
               : (int)cudaEventSynchronize(c->ev[set][3]);
  if (e != 0) {
    return e;
  }
  for (int k = 0; c->timing && k < 3; k++) {
    float ms = 0;
    cudaEventElapsedTime(&ms, c->ev[set][k], c->ev[set][k + 1]);
    c->last_ms[k] += ms;
  }
  if (!pin_out) {
    memcpy(out, c->h_out[set],
           (size_t)n * (size_t)c->out_numel * sizeof(float));
  }
  return 0;
}

/* Hot path: copies, launches and one synchronisation per chunk of a tile;
 * no allocation. Chunk k goes through staging set k % 2: it is enqueued,
 * then chunk k - 1 is waited for and its scores copied out while the
 * device runs chunk k, so that a set is staged again only once the chunk
 * before it in that set is done. */
static int pe__cuda_run(void *self, const float *in, uint32_t batch,
                        float *out) {
  pe__cuda_t *c = self;
  if (batch == 0 || batch > c->max_batch) {
    snprintf(c->errmsg, sizeof c->errmsg,
             "batch %u is outside 1 to %u (the max batch given at open)", batch,
             c->max_batch);
    return PE_EINVAL;
  }
  const uint64_t allocs0 = pe_cuda_alloc_count();
  if (c->persistent && batch <= c->pargs.max_n) {
    int rc = pe__persist_run(c, in, batch, out);
    if (rc == PE_OK && pe_cuda_alloc_count() != allocs0) {
      c->allocs_in_runs += pe_cuda_alloc_count() - allocs0;
      snprintf(c->errmsg, sizeof c->errmsg,
               "cuda: a device allocation happened after open");
      return PE_ESTATE;
    }
    return rc;
  }
  const size_t in_w = (size_t)c->in_numel, out_w = (size_t)c->out_numel;
  /* a caller's buffer that is pinned already goes straight to the device */
  const int pin_in = pe__pinned(in, (size_t)batch * in_w * sizeof(float));
  const int pin_out = pe__pinned(out, (size_t)batch * out_w * sizeof(float));
  c->last_ms[0] = c->last_ms[1] = c->last_ms[2] = 0;
  int e = 0;
  uint32_t done = 0, prev_at = 0, prev_n = 0;
  for (int k = 0; done < batch && e == 0; k++) {
    const uint32_t n = batch - done < c->tile ? batch - done : c->tile;
    const int more = done + n < batch;
    e = pe__chunk_enqueue(c, k & 1, in + (size_t)done * in_w, pin_in,
                          out + (size_t)done * out_w, pin_out, n, more);
    if (e == 0 && prev_n > 0) {
      e = pe__chunk_collect(c, (k - 1) & 1, out + (size_t)prev_at * out_w,
                            pin_out, prev_n, 0);
    }
    if (e == 0 && !more) {
      e = pe__chunk_collect(c, k & 1, out + (size_t)done * out_w, pin_out, n,
                            1);
    }
    prev_at = done;
    prev_n = n;
    done += n;
  }
  if (e != 0) {
    /* no copy may still touch the staging or the caller's buffers */
    cudaStreamSynchronize(c->stream);
    cudaStreamSynchronize(c->stream2);
    snprintf(c->errmsg, sizeof c->errmsg, "cuda: %s", pe_cuda_strerror(e));
    return PE_EBACKEND;
  }
  if (pe_cuda_alloc_count() != allocs0) {
    c->allocs_in_runs += pe_cuda_alloc_count() - allocs0;
    snprintf(c->errmsg, sizeof c->errmsg,
             "cuda: a device allocation happened after open");
    return PE_ESTATE;
  }
  return PE_OK;
}

static const char *pe__cuda_errmsg(void *self) {
  return ((pe__cuda_t *)self)->errmsg;
}

static void pe__cuda_close(void *self) { pe__cuda_destroy(self); }

static int pe__cuda_phases(void *self, pe_backend_phases_t *out) {
  const pe__cuda_t *c = self;
  if (!c->timing) {
    return PE_EUNSUPPORTED;
  }
  out->h2d_us = c->last_ms[0] * 1e3;
  out->compute_us = c->last_ms[1] * 1e3;
  out->d2h_us = c->last_ms[2] * 1e3;
  return PE_OK;
}

static void pe__cuda_detail(void *self, char *buf, size_t cap) {
  const pe__cuda_t *c = self;
  char name[128] = "?";
  int major = 0, minor = 0;
  pe_cuda_device_name(c->device, name, sizeof name, &major, &minor);
  char mode[640];
  if (c->persistent && c->gen != NULL) {
    char g[224];
    pe_cuda_gen_describe(c->gen, g, sizeof g);
    snprintf(mode, sizeof mode,
             "persistent (one resident block, the kernel %s, for batches up "
             "to %u, started %llu time%s; larger batches as CUDA graphs)",
             g, c->pargs.max_n, (unsigned long long)c->launches,
             c->launches == 1 ? "" : "s");
  } else if (c->persistent && c->pargs.blocks > 1) {
    snprintf(mode, sizeof mode,
             "persistent (a cluster of %d resident blocks of %d threads, one "
             "per SM, for batches up to %u, activations in device memory, "
             "started %llu time%s; larger batches as CUDA graphs)",
             c->pargs.blocks, PE_CUDA_PERSIST_THREADS, c->pargs.max_n,
             (unsigned long long)c->launches, c->launches == 1 ? "" : "s");
  } else if (c->persistent) {
    snprintf(mode, sizeof mode,
             "persistent (one resident block of %d threads for batches up to "
             "%u, %s, started %llu time%s; larger batches as CUDA graphs; the "
             "general kernel: %s)",
             PE_CUDA_PERSIST_THREADS, c->pargs.max_n,
             c->pargs.on_chip ? "on chip" : "activations in device memory",
             (unsigned long long)c->launches, c->launches == 1 ? "" : "s",
             c->gen_why);
  } else if (c->tile < c->max_batch) {
    snprintf(mode, sizeof mode,
             "graph (%d CUDA graphs, batches 1 to %u; up to %u in chunks of "
             "the tile)",
             c->n_graphs, c->tile, c->max_batch);
  } else {
    snprintf(mode, sizeof mode, "graph (%d CUDA graphs, batches 1 to %u)",
             c->n_graphs, c->max_batch);
  }
  char graphs[400];
  if (c->bgen != NULL) {
    char g[224];
    pe_cuda_gen_describe(c->bgen, g, sizeof g);
    snprintf(graphs, sizeof graphs, "; the graphs launch one kernel %s", g);
  } else {
    snprintf(graphs, sizeof graphs,
             "; the graphs launch the steps' kernels (no generated one: %s)",
             c->bgen_why);
  }
  if (c->n_fused > 0) {
    size_t used = strlen(graphs);
    snprintf(graphs + used, sizeof graphs - used,
             "; %d residual add%s folded into the LayerNorm that follows "
             "each",
             c->n_fused, c->n_fused == 1 ? "" : "s");
  }
  char drop[80] = "";
  if (c->dev_drop > 0) {
    snprintf(drop, sizeof drop, "; the device's free memory fell %.3f MB",
             (double)c->dev_drop / 1e6);
  }
  snprintf(buf, cap,
           "device %d: %s, compute capability %d.%d; mode %s%s; precision "
           "%s; device memory %.3f MB, tile %u windows (%zu bytes each, "
           "budget %g MB; weights %.3f MB%s); pinned host memory %.3f MB; "
           "device allocations after load: %llu (checked on every run)",
           c->device, name, major, minor, mode, graphs,
           !c->tf32 ? "fp32"
           : c->bgen != NULL
               ? "tf32 (the generated kernels' dense steps of rows and k in "
                 "sixteens on tensor cores)"
               : "tf32 (dense and Conv1d steps on tensor cores)",
           (double)c->dev_bytes / 1e6, c->tile, c->window_bytes,
           (double)c->budget_bytes / 1e6, (double)c->weights_bytes / 1e6, drop,
           (double)c->host_bytes / 1e6, (unsigned long long)c->allocs_in_runs);
}

/* The device this build would run on, or why there is none. */
static void pe__cuda_summary(const pe_backend_options_t *opts, char *buf,
                             size_t cap) {
  (void)opts;
  int n = 0;
  int e = pe_cuda_device_count(&n);
  char name[128];
  int major = 0, minor = 0;
  if (e != 0 || n == 0) {
    snprintf(buf, cap,
             "ONNX models on an NVIDIA GPU (kernels for sm_90 and PTX); no "
             "CUDA device here (%s)",
             e != 0 ? pe_cuda_strerror(e) : "the driver reports none");
  } else if (pe_cuda_device_name(0, name, sizeof name, &major, &minor) != 0) {
    snprintf(buf, cap, "ONNX models on an NVIDIA GPU; device 0 of %d", n);
  } else {
    char nv[160];
    const int have = pe_cuda_gen_nvrtc(nv, sizeof nv) == PE_OK;
    snprintf(buf, cap,
             "ONNX models on an NVIDIA GPU; device 0 of %d: %s, compute "
             "capability %d.%d; persistent mode: %s%s",
             n, name, major, minor,
             have ? "a kernel generated per plan, NVRTC "
                  : "the general kernel only, ",
             nv);
  }
}

/* Page-locked host memory for a caller's windows and scores: run copies
 * them to and from the device directly, with no staging copy. */
static void *pe__cuda_host_alloc(void *self, size_t bytes) {
  (void)self;
  void *p = NULL;
  if (cudaHostAlloc(&p, bytes > 0 ? bytes : 1, cudaHostAllocDefault) !=
      cudaSuccess) {
    cudaGetLastError(); /* clear it */
    return NULL;
  }
  return p;
}

static void pe__cuda_host_free(void *self, void *p) {
  (void)self;
  cudaFreeHost(p);
}

const pe_backend_ops_t pe_backend_cuda_ops = {
    .abi_version = PE_BACKEND_ABI_VERSION,
    .name = "cuda",
    .summary = pe__cuda_summary,
    .open = pe__cuda_open,
    .describe = pe__cuda_describe,
    .run = pe__cuda_run,
    .errmsg = pe__cuda_errmsg,
    .close = pe__cuda_close,
    .phases = pe__cuda_phases,
    .detail = pe__cuda_detail,
    .serialize = pe__cuda_serialize,
    .host_alloc = pe__cuda_host_alloc,
    .host_free = pe__cuda_host_free,
};
