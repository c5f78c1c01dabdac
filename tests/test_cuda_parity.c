/* The cuda backend against the cpu backend on the same models: every
 * model given runs 10,000 random windows through both (the cuda backend in
 * batches of changing size, up to its max batch). Each output must agree
 * within 1e-5 relative to max(1, |y|) (absolute up to 1) with the cpu
 * backend's portable kernels (which the cuda kernels follow operation for
 * operation but for the orders of their sums: runs of 32 products in
 * float, src/cuda/sums.cuh; the generated kernels' own) and with the
 * kernels the CPU picks (their vector exp and tanh differ from libm's by
 * more, on logits of order 10: the figure printed beside it is how far the
 * CPU's two kernel families are apart; on pattern_cnn, whose logits reach
 * 38 on these windows, where a float's step is 3.8e-6, those two differ
 * by 1.3e-5). The same windows in batches of other sizes must give the
 * same bits (pe_t_again). No device allocation may happen after open, and
 * a batch above the max batch is refused. Each model runs in both cuda modes:
 * graph, then persistent (batches of up to 16 through the resident kernel,
 * larger ones through graphs); in persistent mode the kernel is left idle past
 * its idle time, must have left, and must be started again by the next run with
 * the same scores, and the backend's detail line must report no allocation
 * after load. Persistent mode runs four times: with the kernel generated
 * for the plan where the backend can make one, or as a cluster of blocks
 * for a plan of many FLOPs (the detail line printed says which kernel
 * ran), then with the general kernel of one block (codegen "off", blocks
 * "1"), then as one block with the generated kernel where there is one
 * (blocks "1": a plan that gets a cluster by default gets it only so),
 * then as a cluster of 4 blocks whatever the plan's size. The cpu backend's
 * outputs are computed once per model for every mode.
 *
 * Then the tile: the model opened in graph mode with a device memory budget
 * large enough for the max batch (a tile of 4096 windows) gives the bytes
 * one window takes (its detail line); opened with a budget of one byte less
 * it is refused with a message naming them; opened with a budget of 64
 * windows exactly, its tile is 64, its device memory 4032 windows' less,
 * and batches that are not multiples of 64 run in chunks: their outputs
 * must be the cpu's (as above) and bit for bit those of the large tile run
 * over the same chunks one batch each (the same bucket's launches), with
 * no device allocation after open. Persistent mode runs once more with a
 * tile of 8 windows, below its 16, so that its batches of 9 to 16 go
 * through chunked graphs too. Last, graph mode in precision tf32 (the
 * generated kernel's dense steps on tensor cores where graph mode runs
 * one, else the steps' dense and Conv1d steps): within 1e-2 of both cpu
 * runs, relative to max(1, |y|). Exits 77 (skipped) where there is no
 * CUDA device.
 *
 * --codegen SETTINGS gives the runs that take the generated kernels
 * those settings (the backend's codegen option: windows=N,rows=N,sums=N,
 * conv=N).
 *
 * Usage: test_cuda_parity [--codegen SETTINGS] MODEL.onnx... */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda/kernels.h"
#include "pe/backend.h"
#include "pe/error.h"

#define PE_T_WINDOWS 10000
#define PE_T_MAX_BATCH 4096
#define PE_T_TOL 1e-5
/* precision tf32 (docs/models.md): relative to max(1, |y|) against both
 * cpu runs */
#define PE_T_TOL_TF32 1e-2
/* A device memory budget no model here comes near (a tile of the max
 * batch), and the small tiles forced by a budget of so many windows. */
#define PE_T_BIG_BUDGET ((uint64_t)8000 * 1000 * 1000)
#define PE_T_TILE 64
#define PE_T_PERSIST_TILE 8

static uint64_t pe_t_rng = 0x9e3779b97f4a7c15ull;

/* The cuda backend's codegen, precision and persist_blocks options for the
 * next open; the codegen setting of --codegen, where the runs take the
 * default. */
static const char *pe_t_codegen, *pe_t_precision, *pe_t_blocks;
static const char *pe_t_codegen_on;

/* Uniform in [-3, 3): xorshift64*. */
static float pe_t_uniform(void) {
  pe_t_rng ^= pe_t_rng >> 12;
  pe_t_rng ^= pe_t_rng << 25;
  pe_t_rng ^= pe_t_rng >> 27;
  uint64_t v = pe_t_rng * 0x2545f4914f6cdd1dull;
  return (float)((double)(v >> 11) / 9007199254740992.0 * 6.0 - 3.0);
}

/* A backend opened through its ops table rather than pe_backend_open:
 * the engine's handle takes at most PE_MODEL_MAX_FEATURES channels, and
 * models of more (DeepLOB's 40 price levels) are compared too. */
typedef struct pe_t_be {
  const pe_backend_ops_t *ops;
  void *self;
  pe_model_info_t info;
} pe_t_be_t;

extern const pe_backend_ops_t pe_backend_cpu_ops, pe_backend_cuda_ops;

static void pe_t_close(pe_t_be_t *b) {
  if (b->self != NULL) {
    b->ops->close(b->self);
    b->self = NULL;
  }
}

/* Opens backend `name` on model for PE_T_MAX_BATCH with a device memory
 * budget (0: the default); the message of a failure in err. */
static int pe_t_open_err(const char *name, const char *model,
                         const char *kernels, const char *mode, uint64_t memory,
                         pe_t_be_t *b, char *err, size_t cap) {
  pe_backend_options_t o = {0};
  o.model_path = model;
  o.max_batch = PE_T_MAX_BATCH;
  o.kernels = kernels;
  o.mode = mode;
  o.device_memory_bytes = memory;
  o.codegen = pe_t_codegen;
  o.precision = pe_t_precision;
  o.persist_blocks = pe_t_blocks;
  err[0] = '\0';
  b->ops =
      strcmp(name, "cuda") == 0 ? &pe_backend_cuda_ops : &pe_backend_cpu_ops;
  b->self = NULL;
  int rc = b->ops->open(&o, &b->self, err, cap);
  if (rc == PE_OK && (rc = b->ops->describe(b->self, &b->info)) != PE_OK) {
    snprintf(err, cap, "%s", b->ops->errmsg(b->self));
    pe_t_close(b);
  }
  return rc;
}

/* pe_t_open_err, a failure reported (exit 77 for no device). */
static int pe_t_open(const char *name, const char *model, const char *kernels,
                     const char *mode, uint64_t memory, pe_t_be_t *b) {
  char err[512];
  int rc =
      pe_t_open_err(name, model, kernels, mode, memory, b, err, sizeof err);
  if (rc != PE_OK) {
    if (strstr(err, "no CUDA device") != NULL) {
      printf("SKIP: %s\n", err);
      exit(77);
    }
    fprintf(stderr, "FAIL: open %s on %s: %s\n", name, model, err);
  }
  return rc;
}

/* Runs n windows through b in batches cycling through sizes[]. */
static int pe_t_run(pe_t_be_t *b, const float *in, size_t in_w, float *out,
                    size_t out_w, uint32_t n, const uint32_t *sizes,
                    int n_sizes) {
  uint32_t done = 0;
  for (int k = 0; done < n; k = (k + 1) % n_sizes) {
    uint32_t m = n - done < sizes[k] ? n - done : sizes[k];
    int rc = b->ops->run(b->self, in + (size_t)done * in_w, m,
                         out + (size_t)done * out_w);
    if (rc != PE_OK) {
      fprintf(stderr, "FAIL: %s run of %u windows: %s\n", b->ops->name, m,
              b->ops->errmsg(b->self));
      return rc;
    }
    done += m;
  }
  return PE_OK;
}

/* Persistent mode: the kernel left idle until it has gone, then one more
 * window, which must start it again and give the same scores. */
static int pe_t_idle(pe_t_be_t *gpu, const char *path, const float *in,
                     const float *expect, size_t out_w) {
  char d0[1024], d1[1024];
  float y[64];
  gpu->ops->detail(gpu->self, d0, sizeof d0);
  struct timespec ts = {0, 400 * 1000 * 1000};
  nanosleep(&ts, NULL);
  if (out_w > 64 || gpu->ops->run(gpu->self, in, 1, y) != PE_OK) {
    fprintf(stderr, "FAIL: %s: run after idle: %s\n", path,
            gpu->ops->errmsg(gpu->self));
    return 1;
  }
  gpu->ops->detail(gpu->self, d1, sizeof d1);
  const char *a = strstr(d0, "started "), *b = strstr(d1, "started ");
  long n0 = a ? strtol(a + 8, NULL, 10) : -1;
  long n1 = b ? strtol(b + 8, NULL, 10) : -1;
  if (n0 < 1 || n1 != n0 + 1) {
    fprintf(stderr,
            "FAIL: %s: the idle kernel was not started again (before: %s; "
            "after: %s)\n",
            path, d0, d1);
    return 1;
  }
  if (memcmp(y, expect, out_w * sizeof(float)) != 0) {
    fprintf(stderr, "FAIL: %s: scores after the restart differ\n", path);
    return 1;
  }
  if (strstr(d1, "allocations after load: 0 ") == NULL) {
    fprintf(stderr, "FAIL: %s: detail line: %s\n", path, d1);
    return 1;
  }
  printf("%s: persistent: %s\n", path, d1);
  return 0;
}

/* o_gpu against the cpu outputs o_cpu (the kernels the CPU picks) and
 * o_ref (the portable ones) of PE_T_WINDOWS windows: a line of figures,
 * and 1 with a message when a difference is above PE_T_TOL. */
static int pe_t_compare(const char *path, const char *label, size_t out_w,
                        const float *o_cpu, const float *o_ref,
                        const float *o_gpu) {
  double d_cpu = 0, r_cpu = 0, d_ref = 0, r_ref = 0, d_cc = 0, big = 0;
  size_t same = 0, n = PE_T_WINDOWS * out_w;
  for (size_t i = 0; i < n; i++) {
    double a = fabs((double)o_gpu[i] - o_cpu[i]);
    double b = fabs((double)o_gpu[i] - o_ref[i]);
    double cc = fabs((double)o_cpu[i] - o_ref[i]);
    double y = fabs((double)o_cpu[i]);
    double r = a / (y > 1.0 ? y : 1.0);
    d_cpu = a > d_cpu || a != a ? a : d_cpu;
    r_cpu = r > r_cpu || r != r ? r : r_cpu;
    d_ref = b > d_ref || b != b ? b : d_ref;
    const double rb = b / (y > 1.0 ? y : 1.0);
    r_ref = rb > r_ref || rb != rb ? rb : r_ref;
    d_cc = cc > d_cc ? cc : d_cc;
    big = y > big ? y : big;
    same += memcmp(&o_gpu[i], &o_ref[i], sizeof(float)) == 0;
  }
  printf("%s (%s): %d windows, max |y| %.3g; cuda vs cpu generic: max abs "
         "%.3g, max rel %.3g, %zu of %zu outputs bit-identical; cuda vs cpu: "
         "max abs %.3g, max rel %.3g (cpu vs cpu generic: max abs %.3g)\n",
         path, label, PE_T_WINDOWS, big, d_ref, r_ref, same, n, d_cpu, r_cpu,
         d_cc);
  const double tol = pe_t_precision != NULL ? PE_T_TOL_TF32 : PE_T_TOL;
  if (!(r_cpu <= tol) || !(r_ref <= tol)) {
    fprintf(stderr, "FAIL: %s (%s): difference above %g\n", path, label, tol);
    return 1;
  }
  return 0;
}

/* The number after `key` in the detail line d, or -1. */
static double pe_t_detail_num(const char *d, const char *key) {
  const char *p = strstr(d, key);
  return p != NULL ? strtod(p + strlen(key), NULL) : -1;
}

/* The same windows through gpu once more in batches of other sizes
 * (crossing the 64 rows of the tiled products, and in persistent mode the
 * resident kernel's batches and the graphs' the other way round from the
 * first run): every output bit for bit the first run's (o_first), since a
 * window's scores may not depend on the batch it rode in. */
static int pe_t_again(pe_t_be_t *gpu, const char *path, const char *label,
                      const float *in, size_t in_w, size_t out_w,
                      const float *o_first, int persist) {
  static const uint32_t gpu_sizes[] = {4096, 5, 63, 2000, 1, 100, 65};
  static const uint32_t persist_sizes[] = {7, 4096, 1, 250, 16, 9, 33};
  const uint32_t *sizes = persist ? persist_sizes : gpu_sizes;
  const int n_sizes = persist
                          ? (int)(sizeof persist_sizes / sizeof *persist_sizes)
                          : (int)(sizeof gpu_sizes / sizeof *gpu_sizes);
  float *o = malloc(PE_T_WINDOWS * out_w * sizeof(float));
  if (o == NULL || pe_t_run(gpu, in, in_w, o, out_w, PE_T_WINDOWS, sizes,
                            n_sizes) != PE_OK) {
    free(o);
    return 1;
  }
  size_t differ = 0, n = PE_T_WINDOWS * out_w;
  for (size_t i = 0; i < n; i++) {
    differ += memcmp(&o[i], &o_first[i], sizeof(float)) != 0;
  }
  free(o);
  printf("%s (%s): batches of other sizes: %zu of %zu outputs differ\n", path,
         label, differ, n);
  if (differ != 0) {
    fprintf(stderr, "FAIL: %s (%s): the scores depend on the batches' sizes\n",
            path, label);
    return 1;
  }
  return 0;
}

/* The cuda backend in one mode, with a device memory budget (0: the
 * default), against the cpu outputs o_cpu and o_ref of the windows in. */
static int pe_t_mode(const char *path, const char *mode, uint64_t memory,
                     const float *in, size_t in_w, size_t out_w,
                     const float *o_cpu, const float *o_ref, float *o_gpu) {
  pe_t_be_t gpu_be, *gpu = &gpu_be;
  if (pe_t_open("cuda", path, NULL, mode, memory, gpu) != PE_OK) {
    return 1;
  }
  static const uint32_t gpu_sizes[] = {1, 3, 64, 4096, 17, 1000, 4096};
  static const uint32_t persist_sizes[] = {1, 2, 16, 3, 4096, 1, 17, 1000};
  int persist = strcmp(mode, "persistent") == 0;
  uint64_t allocs = pe_cuda_alloc_count();
  int fail =
      (persist
           ? pe_t_run(gpu, in, in_w, o_gpu, out_w, PE_T_WINDOWS, persist_sizes,
                      (int)(sizeof persist_sizes / sizeof persist_sizes[0]))
           : pe_t_run(gpu, in, in_w, o_gpu, out_w, PE_T_WINDOWS, gpu_sizes,
                      (int)(sizeof gpu_sizes / sizeof gpu_sizes[0]))) != PE_OK;
  if (!fail && pe_cuda_alloc_count() != allocs) {
    fprintf(stderr, "FAIL: %s: %llu device allocations during the runs\n", path,
            (unsigned long long)(pe_cuda_alloc_count() - allocs));
    fail = 1;
  }
  if (!fail &&
      gpu->ops->run(gpu->self, in, PE_T_MAX_BATCH + 1, o_gpu) != PE_EINVAL) {
    fprintf(stderr, "FAIL: %s: a batch above the max batch was not refused\n",
            path);
    fail = 1;
  }
  char label[160];
  snprintf(label, sizeof label, "%s%s%s%s%s%s%s", mode,
           memory != 0 ? ", small tile" : "",
           pe_t_codegen != NULL ? ", codegen " : "",
           pe_t_codegen != NULL ? pe_t_codegen : "",
           pe_t_precision != NULL ? ", precision tf32" : "",
           pe_t_blocks != NULL ? ", blocks " : "",
           pe_t_blocks != NULL ? pe_t_blocks : "");
  if (!fail) {
    fail = pe_t_compare(path, label, out_w, o_cpu, o_ref, o_gpu);
  }
  if (!fail) {
    fail = pe_t_again(gpu, path, label, in, in_w, out_w, o_gpu, persist);
  }
  if (!fail && persist) {
    fail = pe_t_idle(gpu, path, in, o_gpu, out_w);
  }
  pe_t_close(gpu);
  return fail;
}

/* The tile (see the top of the file): graph mode on a large tile and on a
 * tile of PE_T_TILE windows, the refusal of a budget below one window, and
 * persistent mode on a tile of PE_T_PERSIST_TILE windows. o_gpu and o_big
 * hold PE_T_WINDOWS outputs each. */
static int pe_t_tile(const char *path, const float *in, size_t in_w,
                     size_t out_w, const float *o_cpu, const float *o_ref,
                     float *o_gpu, float *o_big) {
  pe_t_be_t big_be = {0}, small_be = {0}, *big = &big_be, *small = &small_be;
  char d_big[1024], d_small[1024], err[512];
  if (pe_t_open("cuda", path, NULL, "graph", PE_T_BIG_BUDGET, big) != PE_OK) {
    return 1;
  }
  big->ops->detail(big->self, d_big, sizeof d_big);
  const double per = pe_t_detail_num(d_big, " windows (");
  int fail = 0;
  if (pe_t_detail_num(d_big, ", tile ") != PE_T_MAX_BATCH || !(per >= 4)) {
    fprintf(stderr, "FAIL: %s: a budget of %llu bytes: %s\n", path,
            (unsigned long long)PE_T_BIG_BUDGET, d_big);
    fail = 1;
  }
  const uint64_t window = fail ? 0 : (uint64_t)per;
  /* one byte short of a window: refused, the bytes named */
  if (!fail) {
    char want[64];
    snprintf(want, sizeof want, "one window needs %llu bytes",
             (unsigned long long)window);
    int rc = pe_t_open_err("cuda", path, NULL, "graph", window - 1, small, err,
                           sizeof err);
    pe_t_close(small);
    if (rc != PE_ENOMEM || strstr(err, want) == NULL) {
      fprintf(stderr,
              "FAIL: %s: a budget of %llu bytes, one short of a window: rc "
              "%d, '%s'\n",
              path, (unsigned long long)(window - 1), rc, err);
      fail = 1;
    } else {
      printf("%s: a budget one byte short of a window: %s\n", path, err);
    }
  }
  /* exactly PE_T_TILE windows */
  if (!fail && pe_t_open("cuda", path, NULL, "graph", window * PE_T_TILE,
                         small) != PE_OK) {
    fail = 1;
  }
  if (!fail) {
    small->ops->detail(small->self, d_small, sizeof d_small);
    /* the same weights, steps and graphs' tables; buffers of 4096 - 64
     * windows fewer (to the 1 kB the figures are printed to) */
    const double mb_big = pe_t_detail_num(d_big, "; device memory ");
    const double mb_small = pe_t_detail_num(d_small, "; device memory ");
    const double less =
        (double)(PE_T_MAX_BATCH - PE_T_TILE) * (double)window / 1e6;
    if (pe_t_detail_num(d_small, ", tile ") != PE_T_TILE ||
        fabs(mb_big - mb_small - less) > 0.0015) {
      fprintf(stderr,
              "FAIL: %s: a budget of %d windows: %s (a large tile: %s; %.3f "
              "MB less expected)\n",
              path, PE_T_TILE, d_small, d_big, less);
      fail = 1;
    }
    printf("%s: large tile: %s\n%s: small tile: %s\n", path, d_big, path,
           d_small);
  }
  /* batches of other sizes than multiples of the tile, and the same windows
   * through the large tile as those chunks, one batch each */
  static const uint32_t sizes[] = {1000, 4096, 17, 3, 4095, 65, 1};
  const int n_sizes = (int)(sizeof sizes / sizeof sizes[0]);
  uint32_t chunks[PE_T_WINDOWS / PE_T_TILE + 64];
  int n_chunks = 0;
  for (uint32_t done = 0, k = 0; done < PE_T_WINDOWS;
       k = (k + 1) % (uint32_t)n_sizes) {
    uint32_t m =
        PE_T_WINDOWS - done < sizes[k] ? PE_T_WINDOWS - done : sizes[k];
    for (uint32_t c = 0; c < m; c += PE_T_TILE) {
      chunks[n_chunks++] = m - c < PE_T_TILE ? m - c : PE_T_TILE;
    }
    done += m;
  }
  uint64_t allocs = pe_cuda_alloc_count();
  fail = fail || pe_t_run(small, in, in_w, o_gpu, out_w, PE_T_WINDOWS, sizes,
                          n_sizes) != PE_OK;
  if (!fail) {
    small->ops->detail(small->self, d_small, sizeof d_small);
  }
  if (!fail && (pe_cuda_alloc_count() != allocs ||
                strstr(d_small, "allocations after load: 0 ") == NULL)) {
    fprintf(stderr, "FAIL: %s: device allocations in chunked runs: %s\n", path,
            d_small);
    fail = 1;
  }
  fail = fail || pe_t_run(big, in, in_w, o_big, out_w, PE_T_WINDOWS, chunks,
                          n_chunks) != PE_OK;
  if (!fail) {
    size_t differ = 0, n = PE_T_WINDOWS * out_w;
    for (size_t i = 0; i < n; i++) {
      differ += memcmp(&o_gpu[i], &o_big[i], sizeof(float)) != 0;
    }
    printf("%s: tile %d, %d batches in %d chunks: %zu of %zu outputs differ "
           "from a tile of %d\n",
           path, PE_T_TILE, n_sizes, n_chunks, differ, n, PE_T_MAX_BATCH);
    if (differ != 0) {
      fprintf(stderr,
              "FAIL: %s: the chunked runs differ from the large tile's\n",
              path);
      fail = 1;
    }
    fail |= pe_t_compare(path, "graph, tile of 64", out_w, o_cpu, o_ref, o_gpu);
  }
  pe_t_close(small);
  pe_t_close(big);
  if (!fail) {
    fail = pe_t_mode(path, "persistent", window * PE_T_PERSIST_TILE, in, in_w,
                     out_w, o_cpu, o_ref, o_gpu);
  }
  return fail;
}

/* One model: the cpu outputs once, then the cuda backend in both modes,
 * then the tile. */
static int pe_t_model(const char *path) {
  pe_t_be_t cpu_be = {0}, ref_be = {0}, *cpu = &cpu_be, *ref = &ref_be;
  if (pe_t_open("cpu", path, NULL, NULL, 0, cpu) != PE_OK ||
      pe_t_open("cpu", path, "generic", NULL, 0, ref) != PE_OK) {
    pe_t_close(cpu);
    return 1;
  }
  const pe_model_info_t *info = &cpu->info;
  size_t in_w = (size_t)info->window * info->n_features;
  size_t out_w = info->n_outputs;
  float *in = malloc(PE_T_WINDOWS * in_w * sizeof(float));
  float *o_gpu = malloc(PE_T_WINDOWS * out_w * sizeof(float));
  float *o_big = malloc(PE_T_WINDOWS * out_w * sizeof(float));
  float *o_cpu = malloc(PE_T_WINDOWS * out_w * sizeof(float));
  float *o_ref = malloc(PE_T_WINDOWS * out_w * sizeof(float));
  int fail = in == NULL || o_gpu == NULL || o_big == NULL || o_cpu == NULL ||
             o_ref == NULL;
  for (size_t i = 0; !fail && i < PE_T_WINDOWS * in_w; i++) {
    in[i] = pe_t_uniform();
  }
  static const uint32_t cpu_sizes[] = {4096};
  fail = fail ||
         pe_t_run(cpu, in, in_w, o_cpu, out_w, PE_T_WINDOWS, cpu_sizes, 1) !=
             PE_OK ||
         pe_t_run(ref, in, in_w, o_ref, out_w, PE_T_WINDOWS, cpu_sizes, 1) !=
             PE_OK;
  if (!fail) {
    fail |= pe_t_mode(path, "graph", 0, in, in_w, out_w, o_cpu, o_ref, o_gpu);
    fail |=
        pe_t_mode(path, "persistent", 0, in, in_w, out_w, o_cpu, o_ref, o_gpu);
    pe_t_codegen = "off";
    pe_t_blocks = "1";
    fail |=
        pe_t_mode(path, "persistent", 0, in, in_w, out_w, o_cpu, o_ref, o_gpu);
    /* one block with the kernel generated for the plan, which a plan
     * persistent mode runs as a cluster by default gets only so */
    pe_t_codegen = pe_t_codegen_on;
    fail |=
        pe_t_mode(path, "persistent", 0, in, in_w, out_w, o_cpu, o_ref, o_gpu);
    pe_t_blocks = "4";
    fail |=
        pe_t_mode(path, "persistent", 0, in, in_w, out_w, o_cpu, o_ref, o_gpu);
    pe_t_blocks = NULL;
    fail |= pe_t_tile(path, in, in_w, out_w, o_cpu, o_ref, o_gpu, o_big);
    pe_t_precision = "tf32";
    fail |= pe_t_mode(path, "graph", 0, in, in_w, out_w, o_cpu, o_ref, o_gpu);
    pe_t_precision = NULL;
  }
  free(in);
  free(o_gpu);
  free(o_big);
  free(o_cpu);
  free(o_ref);
  pe_t_close(cpu);
  pe_t_close(ref);
  return fail;
}

int main(int argc, char **argv) {
  int a = 1;
  if (argc > 2 && strcmp(argv[1], "--codegen") == 0) {
    pe_t_codegen_on = argv[2];
    pe_t_codegen = pe_t_codegen_on;
    a = 3;
  }
  if (a >= argc) {
    fprintf(stderr, "usage: test_cuda_parity [--codegen SETTINGS] "
                    "MODEL.onnx...\n");
    return 2;
  }
  int n_dev = 0;
  if (pe_cuda_device_count(&n_dev) != 0 || n_dev == 0) {
    printf("SKIP: no CUDA device\n");
    return 77;
  }
  int fail = 0;
  for (int i = a; i < argc; i++) {
    fail |= pe_t_model(argv[i]);
  }
  return fail;
}
