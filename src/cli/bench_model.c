/* `pattern-engine bench-model MODEL --batch N`: latency and throughput of
 * pe_model_run, reported as trtexec does (min, mean, median, percentiles,
 * max, throughput, sample count). With --backend NAME (cuda, say), of that
 * backend's run instead, one thread, and where the backend measures them
 * the median time of each phase of a run (host to device, compute, device
 * to host) over a second series of runs with phase timing on.
 *
 * Each thread has its own context and buffers over the one shared model;
 * every iteration is timed with the cycle counter. Inputs are uniform
 * random in [-1, 1] from a fixed seed. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "pe/backend.h"
#include "pe/clock.h"
#include "pe/error.h"
#include "pe/model.h"

static pe_cli_flag_t pe__bench_flags[] = {
    {"batch", "N", NULL, "1", "windows per run", NULL},
    {"iterations", "N", NULL, "auto",
     "timed runs per thread; auto: 200000/batch, between 50 and 100000", NULL},
    {"warmup", "N", NULL, "auto", "untimed runs first; auto: iterations/10",
     NULL},
    {"threads", "N", NULL, "1",
     "threads, each with its own context over the one loaded model", NULL},
    {"kernels", "NAME", PE_CLI_KERNELS_ENV, "auto",
     "kernels: auto, generic, avx2 or avx512", NULL},
    {"backend", "NAME", NULL, "cpu",
     "backend to run the model with: cpu (its contexts, as above) or one "
     "`--version` lists (cuda)",
     NULL},
    PE_CLI_CUDA_MODE_FLAG,
    PE_CLI_CUDA_PRECISION_FLAG,
    PE_CLI_CUDA_MEMORY_FLAG,
    {"cuda-stamps", "FILE", "PE_CUDA_STAMPS", NULL,
     "cuda: write where the time went to FILE at the end: in persistent "
     "mode each request's (the kernel's phases, the host's copy and wait), "
     "and where a generated batch kernel ran, each of its steps' time a "
     "window (the first block of each launch)",
     NULL},
    {"cuda-codegen", "on|off|SETTINGS", "PE_CUDA_CODEGEN", "on",
     "cuda: run kernels generated for the model's plan and compiled at open "
     "(NVRTC), where it can (the resident one in persistent mode, one for "
     "graph mode's batches); off (or 0): the general kernels. SETTINGS, "
     "on with settings separated by commas: windows=N, a block of graph "
     "mode's kernel holding at most N windows at once (32 unless given); "
     "rows=N, its dense steps taking up to N rows a thread (1 to 8); "
     "sums=1|4, each such dense output's sums in both kernels: one chain "
     "(k in order; other bits than the default's) or four (by k % 4, the "
     "default); conv=1|2, their Conv 1-D steps taking one "
     "position a thread or two (and eight channels where they come in "
     "eights; the default; the same bits)",
     NULL},
    {"cuda-blocks", "auto|N", "PE_CUDA_BLOCKS", "auto",
     "cuda persistent mode: the resident kernel as a thread-block cluster "
     "of at most N blocks, one per SM (2 to 16), or as one block (1); auto: "
     "one block where a kernel is generated for the plan, else a cluster "
     "for a plan of 1 MFLOP or more a window",
     NULL},
};

typedef struct pe__bench_thread {
  const pe_model_t *m;
  uint32_t batch;
  uint64_t iters, warmup;
  uint64_t *cycles; /* per timed iteration */
  int rc;
  pthread_t tid;
} pe__bench_thread_t;

/* Random inputs in [-1, 1), from a fixed seed. */
static void pe__bench_fill(float *in, size_t n, uint64_t s) {
  for (size_t i = 0; i < n; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    in[i] = (float)((double)(s >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
  }
}

static void *pe__bench_main(void *arg) {
  pe__bench_thread_t *t = arg;
  const pe_model_desc_t *d = pe_model_desc(t->m);
  size_t nin = (size_t)t->batch * (size_t)d->input.numel;
  size_t nout = (size_t)t->batch * (size_t)d->outputs[0].numel;
  float *in = malloc(nin * sizeof(float) + 1);
  float *out = malloc(nout * sizeof(float) + 1);
  pe_model_ctx_t *ctx = NULL;
  t->rc = in && out ? pe_model_ctx_create(t->m, t->batch, &ctx) : PE_ENOMEM;
  if (t->rc == PE_OK) {
    pe__bench_fill(in, nin, 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)t);
    for (uint64_t i = 0; i < t->warmup; i++) {
      pe_model_run(ctx, in, t->batch, out);
    }
    for (uint64_t i = 0; i < t->iters; i++) {
      uint64_t c0 = pe_cycles();
      pe_model_run(ctx, in, t->batch, out);
      t->cycles[i] = pe_cycles() - c0;
    }
  }
  pe_model_ctx_destroy(ctx);
  free(in);
  free(out);
  return NULL;
}

static int pe__cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static double pe__pct(const uint64_t *v, size_t n, double q) {
  size_t i = (size_t)(q * (double)(n - 1) + 0.5);
  return (double)v[i < n ? i : n - 1];
}

static int pe__cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Median of the phases of n runs of b (opened with phase_times); 0 when
 * the backend does not measure them. */
static int pe__bench_phases(pe_backend_t *b, const float *in, uint32_t batch,
                            float *out, uint64_t n, double *med) {
  double *v = malloc((size_t)(3 * n) * sizeof *v);
  if (v == NULL) {
    return PE_ENOMEM;
  }
  int rc = PE_OK;
  for (uint64_t i = 0; i < n && rc == PE_OK; i++) {
    pe_backend_phases_t p;
    rc = pe_backend_run(b, in, batch, out);
    rc = rc == PE_OK ? pe_backend_phases(b, &p) : rc;
    v[i] = p.h2d_us;
    v[n + i] = p.compute_us;
    v[2 * n + i] = p.d2h_us;
  }
  for (uint64_t k = 0; k < 3 && rc == PE_OK; k++) {
    qsort(v + k * n, n, sizeof *v, pe__cmp_double);
    med[k] = v[k * n + n / 2];
  }
  free(v);
  return rc;
}

/* bench-model --backend NAME: one thread through the backend's run. Fills
 * all[] with cycles per timed run, med[] with the phases (or -1) and
 * detail with the backend's detail line after the timed runs. */
static int pe__bench_backend(const pe_cli_command_t *cmd, const char *name,
                             const char *path, uint32_t batch, uint64_t iters,
                             uint64_t warmup, uint64_t device_memory_bytes,
                             uint64_t *all, double *med, char *detail,
                             size_t detail_cap) {
  pe_backend_options_t o = {0};
  o.model_path = path;
  o.max_batch = batch;
  o.mode = pe_cli_value(cmd, "cuda-mode");
  o.stamps_path = pe_cli_value(cmd, "cuda-stamps");
  o.device_memory_bytes = device_memory_bytes;
  o.codegen = pe_cli_value(cmd, "cuda-codegen");
  o.precision = pe_cli_value(cmd, "precision");
  o.persist_blocks = pe_cli_value(cmd, "cuda-blocks");
  char err[512];
  float *in = NULL, *out = NULL;
  pe_backend_t *b = NULL;
  /* the backend writes the stamps as it closes: an earlier file of that
   * name must not pass for them */
  const int stamps = o.stamps_path != NULL && o.stamps_path[0] != '\0' &&
                     strcmp(name, "cuda") == 0;
  if (stamps && remove(o.stamps_path) != 0 && errno != ENOENT) {
    pe_cli_error(cmd, "--cuda-stamps %s: %s", o.stamps_path, strerror(errno));
    return PE_EXIT_FAIL;
  }
  int rc = pe_backend_open(name, &o, &b, err, sizeof err);
  if (rc != PE_OK) {
    pe_cli_error(cmd, "%s", err);
    return PE_EXIT_FAIL;
  }
  const pe_model_info_t *info = pe_backend_info(b);
  size_t nin = (size_t)batch * info->window * info->n_features;
  /* the backend's host memory (page-locked for cuda), as a caller that
   * feeds it batches would hold its windows */
  in = pe_backend_host_alloc(b, nin * sizeof(float) + 1);
  out = pe_backend_host_alloc(
      b, (size_t)batch * info->n_outputs * sizeof(float) + 1);
  rc = in && out ? PE_OK : PE_ENOMEM;
  if (rc == PE_OK) {
    pe__bench_fill(in, nin, 0x9E3779B97F4A7C15ull);
  }
  for (uint64_t i = 0; i < warmup && rc == PE_OK; i++) {
    rc = pe_backend_run(b, in, batch, out);
  }
  for (uint64_t i = 0; i < iters && rc == PE_OK; i++) {
    uint64_t c0 = pe_cycles();
    rc = pe_backend_run(b, in, batch, out);
    all[i] = pe_cycles() - c0;
  }
  if (rc != PE_OK) {
    pe_cli_error(cmd, "%s: %s", name,
                 rc == PE_ENOMEM ? "out of memory" : pe_backend_errmsg(b));
  }
  pe_backend_detail(b, detail, detail_cap);
  /* the buffers outlive the first instance: the second, with phase
   * timing, runs them too, and frees them */
  pe_backend_t *first = b;
  b = NULL;
  med[0] = med[1] = med[2] = -1;
  o.phase_times = 1;
  if (rc == PE_OK && pe_backend_open(name, &o, &b, err, sizeof err) == PE_OK) {
    uint64_t n = iters < 1000 ? iters : 1000;
    if (pe__bench_phases(b, in, batch, out, n, med) != PE_OK) {
      med[0] = med[1] = med[2] = -1;
    }
  }
  pe_backend_close(b);
  pe_backend_host_free(first, in);
  pe_backend_host_free(first, out);
  pe_backend_close(first);
  FILE *f = rc == PE_OK && stamps ? fopen(o.stamps_path, "r") : NULL;
  if (rc == PE_OK && stamps && f == NULL) {
    pe_cli_error(cmd, "--cuda-stamps: %s was not written", o.stamps_path);
    rc = PE_EIO;
  }
  if (f != NULL) {
    fclose(f);
  }
  return rc == PE_OK ? PE_EXIT_OK : PE_EXIT_FAIL;
}

static int pe__bench_run(const pe_cli_command_t *cmd, int argc, char **argv) {
  char *pos[1];
  size_t n_pos = 1;
  int rc = pe_cli_parse(cmd, argc, argv, pos, &n_pos);
  if (rc != PE_EXIT_OK) {
    return rc < 0 ? PE_EXIT_OK : rc;
  }
  if (n_pos != 1) {
    pe_cli_error(cmd,
                 "give one MODEL path; see `pattern-engine help bench-model`");
    return PE_EXIT_USAGE;
  }
  uint32_t batch, threads;
  uint64_t iters, warmup;
  if (pe_cli_u32(cmd, "batch", &batch) != PE_EXIT_OK ||
      pe_cli_u32(cmd, "threads", &threads) != PE_EXIT_OK) {
    return PE_EXIT_USAGE;
  }
  if (batch == 0 || threads == 0 || threads > 256) {
    pe_cli_error(cmd, "--batch must be >= 1 and --threads 1 to 256");
    return PE_EXIT_USAGE;
  }
  if (strcmp(pe_cli_value(cmd, "iterations"), "auto") == 0) {
    iters = 200000 / batch;
    iters = iters < 50 ? 50 : (iters > 100000 ? 100000 : iters);
  } else if (pe_cli_u64(cmd, "iterations", &iters) != PE_EXIT_OK ||
             iters == 0) {
    pe_cli_error(cmd, "--iterations must be >= 1");
    return PE_EXIT_USAGE;
  }
  if (strcmp(pe_cli_value(cmd, "warmup"), "auto") == 0) {
    warmup = iters / 10;
  } else if (pe_cli_u64(cmd, "warmup", &warmup) != PE_EXIT_OK) {
    return PE_EXIT_USAGE;
  }
  uint64_t device_memory_bytes = 0;
  if (pe_cli_cuda_memory(cmd, &device_memory_bytes) != PE_EXIT_OK) {
    return PE_EXIT_USAGE;
  }
  const char *backend = pe_cli_value(cmd, "backend");
  int direct = strcmp(backend, "cpu") == 0;
  if (!direct && threads != 1) {
    pe_cli_error(cmd, "--threads applies to the cpu backend only");
    return PE_EXIT_USAGE;
  }
  pe_model_t *m = NULL;
  if (direct && (rc = pe_cli_load_model(cmd, pos[0], &m)) != PE_EXIT_OK) {
    return rc;
  }
  pe__bench_thread_t *t = calloc(threads, sizeof *t);
  uint64_t *all = malloc((size_t)(threads * iters) * sizeof *all);
  double phase[3] = {-1, -1, -1};
  char detail[2048] = "";
  rc = PE_EXIT_FAIL;
  if (t == NULL || all == NULL) {
    pe_cli_error(cmd, "out of memory");
    goto done;
  }
  double cpn = pe_cycles_per_ns();
  uint64_t w0 = pe_clock_ns();
  if (!direct) {
    if (pe__bench_backend(cmd, backend, pos[0], batch, iters, warmup,
                          device_memory_bytes, all, phase, detail,
                          sizeof detail) != PE_EXIT_OK) {
      goto done;
    }
    threads = 0; /* no thread to start or join */
  }
  for (uint32_t i = 0; i < threads; i++) {
    t[i] = (pe__bench_thread_t){m, batch, iters, warmup, all + i * iters, 0, 0};
    if (threads == 1) {
      pe__bench_main(&t[i]);
    } else if (pthread_create(&t[i].tid, NULL, pe__bench_main, &t[i]) != 0) {
      pe_cli_error(cmd, "cannot start thread %u", i);
      threads = i;
      goto join;
    }
  }
join:
  for (uint32_t i = 0; i < threads && threads > 1; i++) {
    pthread_join(t[i].tid, NULL);
  }
  double wall_s = (double)(pe_clock_ns() - w0) * 1e-9;
  threads = direct ? threads : 1;
  for (uint32_t i = 0; i < threads; i++) {
    if (t[i].rc != PE_OK) {
      pe_cli_error(cmd, "thread %u: %s", i, pe_strerror(t[i].rc));
      goto done;
    }
  }
  size_t n = (size_t)(threads * iters);
  qsort(all, n, sizeof *all, pe__cmp_u64);
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    sum += (double)all[i];
  }
  double us = 1.0 / (cpn * 1000.0);
  double mean = sum / (double)n * us;
  double median = pe__pct(all, n, 0.5) * us;
  /* throughput from the timed runs only: windows / (busy time per thread) */
  double busy_s = sum / (double)threads / (cpn * 1e9);
  double tput = (double)batch * (double)iters * (double)threads / busy_s;
  printf("bench-model %s: batch %u, %llu iterations + %llu warm-up per thread, "
         "%u thread%s, %s %s\n",
         pos[0], batch, (unsigned long long)iters, (unsigned long long)warmup,
         threads, threads > 1 ? "s" : "", direct ? "kernels" : "backend",
         direct ? pe_model_desc(m)->kernels : backend);
  if (detail[0] != '\0') {
    printf("backend %s: %s\n", backend, detail);
  }
  printf("latency per batch (us): min %.3f, mean %.3f, median %.3f, p90 %.3f, "
         "p95 %.3f, p99 %.3f, p99.9 %.3f, max %.3f\n",
         (double)all[0] * us, mean, median, pe__pct(all, n, 0.90) * us,
         pe__pct(all, n, 0.95) * us, pe__pct(all, n, 0.99) * us,
         pe__pct(all, n, 0.999) * us, (double)all[n - 1] * us);
  printf("latency per window (us): median %.4f\n", median / batch);
  printf("throughput: %.0f windows/s (%.0f batches/s, wall %.3f s)\n", tput,
         tput / batch, wall_s);
  if (phase[0] >= 0) {
    printf("phases per batch, median (us): host to device %.3f, compute "
           "%.3f, device to host %.3f\n",
           phase[0], phase[1], phase[2]);
  }
  printf("samples: %zu\n", n);
  rc = PE_EXIT_OK;
done:
  free(t);
  free(all);
  pe_model_destroy(m);
  return rc;
}

const pe_cli_command_t pe_cli_bench_model = {
    .name = "bench-model",
    .summary = "Measure a model's latency and throughput (cpu, or --backend)",
    .usage = "bench-model MODEL [--batch N] [FLAGS]",
    .details =
        "Prints, as trtexec does: latency per batch in microseconds (min,\n"
        "mean, median, p90, p95, p99, p99.9, max), the median per window,\n"
        "throughput in windows per second (over the timed runs) and the\n"
        "sample count. With --backend cuda, also the median host-to-device,\n"
        "compute and device-to-host time per batch (CUDA events, a second\n"
        "series of runs; summed over the chunks of a batch larger than the\n"
        "tile) and the backend's line: device memory, the tile of windows\n"
        "its buffers hold within --cuda-memory, allocations after load.\n"
        "Pin it to cores with taskset for stable numbers;\n"
        "bench/bench_model_peers.py runs the same models in ONNX Runtime and\n"
        "PyTorch on the same core.\n"
        "\n"
        "examples:\n"
        "  pattern-engine bench-model models/toy_mlp.onnx\n"
        "  taskset -c 1 pattern-engine bench-model models/toy_cnn.onnx --batch "
        "4096\n"
        "  pattern-engine bench-model models/toy_cnn.onnx --batch 64 "
        "--iterations "
        "2000 --warmup 200 --threads 2\n"
        "  pattern-engine bench-model models/pattern_cnn.onnx --backend cuda "
        "--batch 4096\n"
        "  pattern-engine bench-model models/pattern_cnn.onnx --backend cuda "
        "--batch 65536 --cuda-memory 64\n"
        "  pattern-engine bench-model models/toy_cnn.onnx --kernels generic\n",
    .flags = pe__bench_flags,
    .n_flags = sizeof pe__bench_flags / sizeof pe__bench_flags[0],
    .run = pe__bench_run,
};
