/* The persistent mode's generated kernel (src/backends/cuda_gen.c), with
 * no device: for each model given, its plan's steps resolved as the cuda
 * backend resolves them (pointers as plan-file references, weights as
 * blobs at made-up addresses), the kernel's source generated and compiled
 * by NVRTC for sm_90, both the persistent mode's resident kernel and
 * graph mode's batch kernel. Models whose plans the generator takes must
 * compile; a model after "--refuse" must be refused with a reason naming a
 * step. Whether the kernel computes the right scores is test_cuda_parity's
 * business, on a device. Exits 77 (skipped) where NVRTC cannot be loaded.
 *
 * Usage: test_cuda_gen MODEL.onnx... [--refuse MODEL.onnx...] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cuda_gen.h"
#include "backends/cuda_plan.h"
#include "model/plan_view.h"
#include "pe/error.h"
#include "pe/model.h"

#define PE_T_MAX_BLOBS 256

typedef struct pe_t_plan {
  pe_cuda_step_t *steps;
  const void *dev[PE_T_MAX_BLOBS];
  int64_t floats[PE_T_MAX_BLOBS];
  int n_blobs;
} pe_t_plan_t;

/* A blob of n floats: its reference (an address made up from its index). */
static void *pe_t_blob(pe_t_plan_t *p, int64_t n) {
  if (p->n_blobs == PE_T_MAX_BLOBS) {
    return NULL;
  }
  int i = p->n_blobs++;
  p->dev[i] = (const void *)((uintptr_t)0x7f0000000000u +
                             (uintptr_t)0x100000u * (uintptr_t)i);
  p->floats[i] = n;
  uint64_t r = PE_CUDA_REF_BLOB | (uint64_t)i;
  void *v;
  memcpy(&v, &r, sizeof v);
  return v;
}

/* Tensor t as a reference and its stride (0 for a constant). */
static const float *pe_t_tensor(const pe_model_t *m, pe_t_plan_t *p, int t,
                                int64_t *stride) {
  pe_plan_tensor_t x;
  uint64_t r = PE_CUDA_REF_NULL;
  *stride = 0;
  if (t >= 0 && pe_plan_tensor(m, t, &x) == PE_OK) {
    *stride = x.numel;
    if (x.storage == PE_PLAN_ST_INPUT) {
      r = PE_CUDA_REF_INPUT;
    } else if (x.storage == PE_PLAN_ST_OUTPUT) {
      r = PE_CUDA_REF_OUTPUT;
    } else if (x.storage == PE_PLAN_ST_ARENA) {
      r = PE_CUDA_REF_ARENA | (uint64_t)x.off_ps;
    } else if (x.storage == PE_PLAN_ST_CONST) {
      *stride = 0;
      return pe_t_blob(p, x.numel);
    }
  }
  const float *v;
  memcpy(&v, &r, sizeof v);
  return v;
}

/* The kernel of plan g (the resident one or the batch one) generated and
 * compiled: 0 when it went as expected (refuse: a refusal naming a step),
 * else 1; 77 when NVRTC is missing. numel0: the first step's output
 * numel, which the source holds as a constant. */
static int pe_t_gen(const char *path, const pe_cuda_gen_plan_t *g,
                    int64_t numel0, int refuse) {
  const char *kind = g->batch ? "batch" : "resident";
  const char *name = g->batch ? PE_CUDA_GEN_BATCH_KERNEL : PE_CUDA_GEN_KERNEL;
  pe_cuda_gen_src_t src;
  char why[512] = "";
  int rc = pe_cuda_gen_source(g, &src, why, sizeof why);
  int bad = 0;
  if (refuse) {
    bad = rc != PE_EUNSUPPORTED || strncmp(why, "step ", 5) != 0;
    printf("%s %s (%s): refused (%s)\n", bad ? "FAIL:" : "ok  ", path, kind,
           why);
    if (rc == PE_OK) {
      free(src.text);
    }
    return bad;
  }
  if (rc != PE_OK) {
    printf("FAIL: %s (%s): no source: %s\n", path, kind, why);
    return 1;
  }
  void *cubin = NULL;
  size_t len = 0;
  double ms = 0;
  rc = pe_cuda_gen_compile(src.text, 9, 0, &cubin, &len, &ms, why, sizeof why);
  if (rc == PE_EUNSUPPORTED) {
    printf("SKIP: %s\n", why);
    free(src.text);
    return 77;
  }
  char num[32];
  snprintf(num, sizeof num, "%lld", (long long)numel0);
  bad = rc != PE_OK || len == 0 || strstr(src.text, num) == NULL ||
        strstr(src.text, name) == NULL || src.max_n < 1 ||
        src.max_n > g->max_n || (!g->batch && src.max_n != g->max_n) ||
        src.threads < 32 || src.threads % 32 != 0;
  printf("%s %s (%s): %d threads, %u windows, %zu bytes of shared memory, "
         "source %zu bytes, cubin %zu bytes, NVRTC %.0f ms%s%s\n",
         bad ? "FAIL:" : "ok  ", path, kind, src.threads, src.max_n, src.shmem,
         strlen(src.text), len, ms, rc != PE_OK ? ": " : "",
         rc != PE_OK ? why : "");
  if (getenv("PE_TEST_GEN_DUMP") != NULL) {
    fputs(src.text, stderr);
  }
  free(cubin);
  free(src.text);
  return bad;
}

/* One model through the generator and NVRTC: 0 when it went as expected
 * (refuse: a refusal naming a step), else 1; 77 when NVRTC is missing. */
static int pe_t_model(const char *path, int refuse) {
  pe_model_options_t mo = {.kernels = PE_KERNELS_AUTO};
  pe_model_t *m = NULL;
  char err[512];
  if (pe_model_load_file(path, &mo, &m, err, sizeof err) != PE_OK) {
    fprintf(stderr, "FAIL: %s: %s\n", path, err);
    return 1;
  }
  pe_plan_shape_t shape;
  pe_plan_shape(m, &shape);
  pe_t_plan_t p;
  memset(&p, 0, sizeof p);
  p.steps = calloc((size_t)shape.n_steps + 1, sizeof *p.steps);
  for (int i = 0; p.steps != NULL && i < shape.n_steps; i++) {
    pe_plan_step_t s;
    pe_plan_step(m, i, &s);
    pe_cuda_step_t *d = &p.steps[i];
    d->kind = s.kind;
    d->act = s.act;
    d->alpha = s.alpha;
    d->binop = s.binop;
    d->n_in = s.n_in;
    d->rank = s.rank;
    memcpy(d->p, s.p, sizeof d->p);
    memcpy(d->dims, s.dims, sizeof d->dims);
    memcpy(d->st, s.st, sizeof d->st);
    for (int k = 0; k < s.n_in && k < PE_CUDA_MAX_IN; k++) {
      d->in[k] = pe_t_tensor(m, &p, s.in[k], &d->in_stride[k]);
    }
    for (int k = 0; k < 3; k++) {
      if (s.out[k] >= 0) {
        d->out[k] =
            (float *)(uintptr_t)pe_t_tensor(m, &p, s.out[k], &d->out_stride[k]);
      }
    }
    pe_plan_tensor_t y;
    pe_plan_tensor(m, s.out[0] >= 0 ? s.out[0] : s.out[1], &y);
    d->numel = y.numel;
    if (s.kind == PE_PLAN_CONV1D) {
      d->w = pe_t_blob(&p, s.p[1] * (s.p[0] / s.p[2]) * s.p[3]);
      d->bias = pe_t_blob(&p, s.p[1]);
    } else if (s.kind == PE_PLAN_DENSE) {
      d->K = s.dense_k;
      d->M = s.dense_m;
      d->w = pe_t_blob(&p, s.dense_k * s.dense_m);
      d->bias = s.bias != NULL ? pe_t_blob(&p, s.dense_m) : NULL;
    } else if (s.kind == PE_PLAN_AFFINE) {
      d->w = pe_t_blob(&p, s.p[1]);
      d->bias = pe_t_blob(&p, s.p[1]);
    } else if (s.kind == PE_PLAN_LSTM || s.kind == PE_PLAN_GRU) {
      const int64_t GH = (s.kind == PE_PLAN_LSTM ? 4 : 3) * s.p[2];
      d->w = pe_t_blob(&p, s.p[1] * GH);
      d->w2 = pe_t_blob(&p, s.p[2] * GH);
      d->bias = pe_t_blob(&p, GH);
      d->bias2 = pe_t_blob(&p, s.p[2]);
    } else if (s.kind == PE_PLAN_GATHER) {
      /* int64 indices: two floats' room each */
      d->n_idx = s.n_idx;
      d->idx = pe_t_blob(&p, 2 * s.n_idx);
    }
  }
  pe_cuda_gen_plan_t g = {0};
  g.steps = p.steps;
  g.n_steps = shape.n_steps;
  g.blob_dev = p.dev;
  g.blob_floats = p.floats;
  g.n_blobs = p.n_blobs;
  g.in_numel = shape.in_numel;
  g.out_numel = shape.out_numel;
  g.arena_ps = shape.arena_ps;
  g.shmem_limit = 227 * 1024 - 1024;
  int bad = 0;
  for (int batch = 0; batch < 2 && p.steps != NULL; batch++) {
    g.batch = batch;
    g.max_n = batch ? 32 : PE_CUDA_PERSIST_MAX_BATCH;
    g.stamps = !batch;
    const int rc = pe_t_gen(path, &g, p.steps[0].numel, refuse);
    if (rc == 77) {
      bad = 77;
      break;
    }
    bad |= rc;
  }
  free(p.steps);
  pe_model_destroy(m);
  return bad;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: test_cuda_gen MODEL.onnx... [--refuse MODEL...]\n");
    return 2;
  }
  char v[160];
  if (pe_cuda_gen_nvrtc(v, sizeof v) != PE_OK) {
    printf("SKIP: %s\n", v);
    return 77;
  }
  printf("NVRTC %s\n", v);
  int fails = 0, refuse = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--refuse") == 0) {
      refuse = 1;
      continue;
    }
    int rc = pe_t_model(argv[i], refuse);
    if (rc == 77) {
      return 77;
    }
    fails += rc;
  }
  if (fails) {
    fprintf(stderr, "FAIL: %d model(s)\n", fails);
    return 1;
  }
  printf("PASS\n");
  return 0;
}
