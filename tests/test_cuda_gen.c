/* The kernels generated for a plan (src/backends/cuda_gen.c), with no
 * device: for each model given, its plan's steps resolved as the cuda
 * backend resolves them (pointers as plan-file references, weights as
 * blobs laid out as the backend uploads them, here in host memory), the
 * source of both the persistent mode's resident kernel and graph mode's
 * batch kernel generated and compiled by NVRTC for sm_90. Models whose
 * plans the generator takes must compile; a model after "--refuse" must be
 * refused with a reason naming a step; after "--staged", a model whose
 * weights and one window's activations outgrow the shared memory: its
 * resident kernel refused for that, its batch kernel made with each
 * step's weights staged in turn (and run on the CPU with --cxx), and its
 * resident kernel made so too where staging is allowed (as the backend
 * asks for one block); after "--too-big", a model whose one window's
 * activations alone outgrow it: both refused for their size.
 *
 * With --cxx COMPILER SHIM, the batch kernel also runs on the CPU: its
 * source, with SHIM's definitions in place of CUDA's (tests/cuda_emu/shim.h:
 * a thread per CUDA thread, __syncthreads a barrier of the block's
 * threads, a warp's shuffles a barrier of its 32, shared memory one array
 * filled with NaN before each block), is compiled as C++ by that compiler
 * into a shared library and run over 23 random windows in 3 blocks of groups of
 * at most 5 windows, reading the host blobs the source names; its scores must
 * agree with the cpu backend's portable kernels within 1e-5 relative to
 * max(1, |y|). That checks what the generator writes (every index, the
 * groups, the steps' order and barriers) where no GPU is at hand; the
 * device's own arithmetic and its parity over 10,000 windows are
 * test_cuda_parity's business. Exits 77 (skipped) where NVRTC cannot be
 * loaded.
 *
 * --emu-windows N runs N windows on the CPU instead of 23 (at least 3, one
 * a block; with fewer, a block's share may fit one group of 5, though
 * not where each window is a group, as in a staged kernel). --dense-rows
 * N and --dense-sums N make both kernels with those dense forms
 * (pe_cuda_gen_plan_t.dense_rows, .dense_sums); --tf32 in precision
 * tf32 (.tf32: the dense steps that can on the tensor cores, whose
 * m16n8k8 product the shim gathers from the lanes' fragments in the
 * PTX ISA's layout), the scores then within 1e-2 (the tolerance of
 * precision tf32, docs/models.md); --conv-wide makes both kernels with
 * their Conv 1-D steps in the wide form (.conv_wide).
 *
 * Usage: test_cuda_gen [--cxx COMPILER SHIM] [--emu-windows N]
 *                      [--dense-rows N] [--dense-sums N] [--tf32]
 *                      [--conv-wide] MODEL.onnx...
 *                      [--staged MODEL.onnx...] [--refuse MODEL.onnx...]
 *                      [--too-big MODEL.onnx...] */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/cuda_fold.h"
#include "backends/cuda_gen.h"
#include "backends/cuda_plan.h"
#include "model/plan_view.h"
#include "pe/error.h"
#include "pe/model.h"
#include "splitmix.h"

#define PE_T_MAX_BLOBS 256

/* The text of src/cuda/act.cuh, src/cuda/rows.cuh and
 * src/cuda/persist_proto.cuh (the build embeds it in the library). */
extern const char pe__cuda_gen_prelude[];

typedef struct pe_t_plan {
  pe_cuda_step_t *steps;
  int n_steps;               /* resolved: an attention step is two or three */
  int64_t arena_ps;          /* the plan's, and the attention rows after it */
  void *dev[PE_T_MAX_BLOBS]; /* host copies, owned */
  const void *dev_c[PE_T_MAX_BLOBS];
  int64_t floats[PE_T_MAX_BLOBS];
  int n_blobs;
  int oom;
} pe_t_plan_t;

/* A blob holding n floats' room, a copy of `bytes` of data (zeros where
 * data is NULL): its reference. */
static void *pe_t_blob(pe_t_plan_t *p, const void *data, size_t bytes,
                       int64_t n) {
  void *b = p->n_blobs < PE_T_MAX_BLOBS
                ? calloc((size_t)(n > 0 ? n : 1), sizeof(float))
                : NULL;
  if (b == NULL) {
    p->oom = 1;
    return NULL;
  }
  if (data != NULL) {
    memcpy(b, data, bytes);
  }
  const int i = p->n_blobs++;
  p->dev[i] = b;
  p->dev_c[i] = b;
  p->floats[i] = n;
  uint64_t r = PE_CUDA_REF_BLOB | (uint64_t)i;
  void *v;
  memcpy(&v, &r, sizeof v);
  return v;
}

/* A blob of n floats from data. */
static void *pe_t_floats(pe_t_plan_t *p, const float *data, int64_t n) {
  return pe_t_blob(p, data, (size_t)n * sizeof(float), n);
}

/* w [rows][cols] as a blob of [cols][rows]. */
static void *pe_t_transposed(pe_t_plan_t *p, const float *w, int64_t rows,
                             int64_t cols) {
  float *t = malloc((size_t)(rows * cols > 0 ? rows * cols : 1) * sizeof *t);
  if (t == NULL || w == NULL) {
    free(t);
    p->oom = 1;
    return NULL;
  }
  for (int64_t r = 0; r < rows; r++) {
    for (int64_t k = 0; k < cols; k++) {
      t[k * rows + r] = w[r * cols + k];
    }
  }
  void *b = pe_t_floats(p, t, rows * cols);
  free(t);
  return b;
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
      return pe_t_floats(p, x.data, x.numel);
    }
  }
  const float *v;
  memcpy(&v, &r, sizeof v);
  return v;
}

/* An arena offset (floats per window) as a reference. */
static float *pe_t_arena(int64_t off) {
  uint64_t r = PE_CUDA_REF_ARENA | (uint64_t)off;
  float *v;
  memcpy(&v, &r, sizeof v);
  return v;
}

/* A dense step over rows rows a window as the backend's pe__rows_dense
 * makes it: x (stride xs) times w_mk ([M][K]) plus bias into y (stride
 * ys). */
static void pe_t_rows_dense(pe_t_plan_t *p, pe_cuda_step_t *d, const float *x,
                            int64_t xs, float *y, int64_t ys, int64_t rows,
                            const float *w_mk, int64_t K, int64_t M,
                            const float *bias) {
  pe__cuda_rows_dense(d, x, xs, y, ys, rows, K, M);
  d->dense_warp = pe_cuda_dense_warp(K);
  d->w = pe_t_transposed(p, w_mk, M, K);
  if (d->dense_warp) {
    d->w2 = pe_t_floats(p, w_mk, K * M);
  }
  d->bias = bias != NULL ? pe_t_floats(p, bias, M) : NULL;
}

/* An attention step as the backend's pe__resolve_attention makes it, from
 * p->steps[*k]: the Q, K, V projections into the attention rows after the
 * arena (qkv at `base`, the merged heads after them), the heads, and the
 * output projection where the step has one. */
static void pe_t_attention(const pe_model_t *m, pe_t_plan_t *p,
                           const pe_plan_step_t *s, int64_t base, int *k) {
  const int64_t L = s->attn.L, E = s->attn.E, E3 = 3 * E;
  float *qkv = pe_t_arena(base), *ctx = pe_t_arena(base + L * E3);
  int64_t xs = 0, ys = 0;
  const float *x = pe_t_tensor(m, p, s->in[0], &xs);
  float *y = (float *)(uintptr_t)pe_t_tensor(m, p, s->out[0], &ys);
  pe_t_rows_dense(p, &p->steps[*k], x, xs, qkv, L * E3, L, s->w, E, E3,
                  s->bias);
  pe_cuda_step_t *d = &p->steps[++*k];
  pe__cuda_attn_heads(d, qkv, s->attn.has_out ? ctx : y,
                      s->attn.has_out ? L * E : ys, L, E, s->attn.H, s->attn.D,
                      s->attn.mask_h, s->attn.scale);
  const int64_t nm = (s->attn.mask_h ? s->attn.H : 1) * L * L;
  d->in[1] = s->attn.mask != NULL ? pe_t_floats(p, s->attn.mask, nm) : NULL;
  d->in[2] = s->attn.repl != NULL ? pe_t_floats(p, s->attn.repl, nm) : NULL;
  if (s->attn.has_out) {
    pe_t_rows_dense(p, &p->steps[++*k], ctx, L * E, y, ys, L, s->w2, E, E,
                    s->bias2);
  }
}

/* The steps of model m as the cuda backend resolves them (its pe__resolve,
 * pe__dense_set and pe__resolve_attention: the same weights in the same
 * layouts; no residual add folded into a LayerNorm) into p. */
static int pe_t_resolve(const pe_model_t *m, int n_steps, int64_t arena_ps,
                        pe_t_plan_t *p) {
  p->steps = calloc(3 * (size_t)n_steps + 1, sizeof *p->steps);
  p->arena_ps = arena_ps;
  int64_t attn_ps = 0;
  int at = 0;
  for (int i = 0; p->steps != NULL && i < n_steps; i++, at++) {
    pe_plan_step_t s;
    pe_plan_step(m, i, &s);
    if (s.kind == PE_PLAN_ATTENTION) {
      pe_t_attention(m, p, &s, arena_ps, &at);
      const int64_t need = 4 * s.attn.L * s.attn.E;
      attn_ps = need > attn_ps ? need : attn_ps;
      continue;
    }
    pe_cuda_step_t *d = &p->steps[at];
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
      d->in[k] = pe_t_tensor(m, p, s.in[k], &d->in_stride[k]);
    }
    for (int k = 0; k < 3; k++) {
      if (s.out[k] >= 0) {
        d->out[k] =
            (float *)(uintptr_t)pe_t_tensor(m, p, s.out[k], &d->out_stride[k]);
      }
    }
    pe_plan_tensor_t y;
    pe_plan_tensor(m, s.out[0] >= 0 ? s.out[0] : s.out[1], &y);
    d->numel = y.numel;
    if (s.kind == PE_PLAN_CONV1D) {
      d->w = pe_t_floats(p, s.w, s.p[1] * (s.p[0] / s.p[2]) * s.p[3]);
      d->bias = pe_t_floats(p, s.bias, s.p[1]);
    } else if (s.kind == PE_PLAN_DENSE) {
      const int64_t K = s.dense_k, M = s.dense_m;
      float *w = malloc((size_t)(K * M > 0 ? K * M : 1) * sizeof *w);
      if (w == NULL || pe_plan_dense_weights(m, i, w) != PE_OK) {
        free(w);
        p->oom = 1;
        break;
      }
      d->K = K;
      d->M = M;
      d->dense_warp = pe_cuda_dense_warp(K);
      d->w = pe_t_floats(p, w, K * M);
      if (d->dense_warp) {
        d->w2 = pe_t_transposed(p, w, K, M);
      }
      free(w);
      d->bias = s.bias != NULL ? pe_t_floats(p, s.bias, M) : NULL;
    } else if (s.kind == PE_PLAN_AFFINE) {
      d->w = pe_t_floats(p, s.w, s.p[1]);
      d->bias = pe_t_floats(p, s.bias, s.p[1]);
    } else if (s.kind == PE_PLAN_BINARY && s.w != NULL) {
      pe_plan_tensor_t b;
      pe_plan_tensor(m, s.in[1], &b);
      d->in[1] = pe_t_floats(p, s.w, b.numel);
      d->in_stride[1] = 0;
    } else if (s.kind == PE_PLAN_LSTM || s.kind == PE_PLAN_GRU) {
      const int64_t in = s.p[1], H = s.p[2];
      const int64_t GH = (s.kind == PE_PLAN_LSTM ? 4 : 3) * H;
      d->w = pe_t_transposed(p, s.w, GH, in);
      d->w2 = pe_t_transposed(p, s.w2, GH, H);
      d->bias = pe_t_floats(p, s.bias, GH);
      d->bias2 = pe_t_floats(p, s.bias2, H);
    } else if (s.kind == PE_PLAN_GATHER) {
      /* int64 indices: two floats' room each */
      d->n_idx = s.n_idx;
      d->idx =
          pe_t_blob(p, s.idx, (size_t)s.n_idx * sizeof(int64_t), 2 * s.n_idx);
    } else if (s.kind == PE_PLAN_REDUCE) {
      pe__cuda_reduce_axes(d, s.rank, s.dims, s.st[0], s.ext_op);
    } else if (s.kind == PE_PLAN_LAYERNORM) {
      memcpy(d->f, s.ext_f, sizeof d->f);
      d->w = pe_t_floats(p, s.w, s.p[1]);
      d->bias = s.bias != NULL ? pe_t_floats(p, s.bias, s.p[1]) : NULL;
    }
  }
  p->n_steps = at;
  p->arena_ps += attn_ps;
  return p->steps != NULL && !p->oom ? PE_OK : PE_ENOMEM;
}

static void pe_t_plan_free(pe_t_plan_t *p) {
  for (int i = 0; i < p->n_blobs; i++) {
    free(p->dev[i]);
  }
  free(p->steps);
}

/* What a kernel's generation must give. */
enum {
  PE_T_MADE,    /* a source, every weight on chip */
  PE_T_STEP,    /* a refusal naming a step */
  PE_T_TOO_BIG, /* a refusal: it does not fit the shared memory */
  PE_T_STAGED   /* a source that stages each step's weights */
};

/* The kernel of plan g (the resident one or the batch one) generated and
 * compiled: 0 when it went as expected (PE_T_*), else 1; 77 when NVRTC
 * is missing. numel0: the first step's output numel, which the source
 * holds as a constant. On success the source is left in *text when text
 * is not NULL (the caller frees it), its threads and shared memory bytes
 * in *threads and *shmem. */
static int pe_t_gen(const char *path, const pe_cuda_gen_plan_t *g,
                    int64_t numel0, int expect, char **text, int *threads,
                    size_t *shmem) {
  const char *kind = g->batch ? "batch" : "resident";
  const char *name = g->batch ? PE_CUDA_GEN_BATCH_KERNEL : PE_CUDA_GEN_KERNEL;
  pe_cuda_gen_src_t src;
  char why[512] = "";
  int rc = pe_cuda_gen_source(g, &src, why, sizeof why);
  int bad = 0;
  if (expect == PE_T_STEP || expect == PE_T_TOO_BIG) {
    bad = rc != PE_EUNSUPPORTED ||
          (expect == PE_T_STEP ? strncmp(why, "step ", 5) != 0
                               : strstr(why, "do not fit") == NULL);
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
  /* a source the same as the last one compiled (a staged kernel holds one
   * window whatever the windows asked for) is not compiled again */
  static char *last;
  static size_t last_len;
  const int again = last != NULL && strcmp(last, src.text) == 0;
  if (again) {
    len = last_len;
  } else {
    rc =
        pe_cuda_gen_compile(src.text, 9, 0, &cubin, &len, &ms, why, sizeof why);
    if (rc == PE_EUNSUPPORTED) {
      printf("SKIP: %s\n", why);
      free(src.text);
      return 77;
    }
    free(last);
    last = rc == PE_OK ? strdup(src.text) : NULL;
    last_len = len;
  }
  char num[32];
  snprintf(num, sizeof num, "%lld", (long long)numel0);
  bad = rc != PE_OK || len == 0 || strstr(src.text, num) == NULL ||
        strstr(src.text, name) == NULL || src.max_n < 1 ||
        src.max_n > g->max_n || src.threads < 32 || src.threads % 32 != 0 ||
        src.staged != (expect == PE_T_STAGED);
  char took[48];
  snprintf(took, sizeof took, again ? "the source above" : "%.0f ms", ms);
  printf("%s %s (%s): %d threads, %u windows, %zu bytes of shared memory%s, "
         "source %zu bytes, cubin %zu bytes, NVRTC %s%s%s\n",
         bad ? "FAIL:" : "ok  ", path, kind, src.threads, src.max_n, src.shmem,
         src.staged ? " (each step's weights staged)" : "", strlen(src.text),
         len, took, rc != PE_OK ? ": " : "", rc != PE_OK ? why : "");
  if (getenv("PE_TEST_GEN_DUMP") != NULL) {
    fputs(src.text, stderr);
  }
  free(cubin);
  if (!bad && text != NULL) {
    *text = src.text;
    *threads = src.threads;
    *shmem = src.shmem;
  } else {
    free(src.text);
  }
  return bad;
}

/* ---- the batch kernel on the CPU ---------------------------------------*/

/* After the kernel: tests/cuda_emu/shim.h's launch of it. */
static const char pe_t_emu_tail[] =
    "struct pe_emu_gen { const float *in; float *out; unsigned int total;\n"
    "  unsigned long long *stamps; };\n"
    "static void pe_emu_gen_body(void *a) {\n"
    "  const pe_emu_gen *g = (const pe_emu_gen *)a;\n"
    "  pe_gen_batch(g->in, g->out, g->total, g->stamps);\n}\n"
    "extern \"C\" int pe_emu_run(const float *in, float *out,\n"
    "    unsigned int total, unsigned int grid, unsigned int nt,\n"
    "    unsigned long long *stamps, size_t shmem) {\n"
    "  if (nt > 1024 || shmem > sizeof pe_emu_dyn) return -1;\n"
    "  pe_emu_gen g = {in, out, total, stamps};\n"
    "  pe_emu_dyn_bytes = shmem;\n"
    "  pe_emu_launch(grid, 1, nt, pe_emu_gen_body, &g);\n"
    "  return pe_emu_dyn_over ? -2 : 0;\n}\n";

/* The windows the batch kernel runs on the CPU (--emu-windows), in
 * PE_T_EMU_GRID blocks. */
static unsigned pe_t_emu_windows = 23u;
/* --conv-wide: the kernels' Conv 1-D steps in their wide form
 * (pe_cuda_gen_plan_t.conv_wide) */
static int pe_t_conv_wide;
#define PE_T_EMU_GRID 3u

/* The batch kernel's source, made with its stamps, compiled by cxx with
 * shim (its definitions in place of CUDA's, of the global timer and of
 * the TF32 product; the prelude's protocol part and the tensor-core
 * helpers after it, device assembly, left out, and its dynamic shared
 * memory the shim's) and run on random windows against the cpu backend's
 * portable kernels: 0 when they agree within tol and the stamps of its
 * n_steps steps were all taken, else 1. */
static int pe_t_emulate(const char *path, const char *cxx, const char *shim,
                        const char *text, int threads, size_t shmem,
                        const pe_model_t *m, int n_steps, double tol) {
  static const char dyn[] = "extern __shared__ float4 pe__shv[];";
  const char *proto = strstr(pe__cuda_gen_prelude,
                             "/* The persistent kernels' side of the protocol");
  const char *pre = strstr(text, pe__cuda_gen_prelude);
  const char *sh = pre != NULL ? strstr(pre, dyn) : NULL;
  if (proto == NULL || pre == NULL || sh == NULL) {
    printf("FAIL: %s (emulated): the prelude is not where it was expected\n",
           path);
    return 1;
  }
  char dir[] = "/tmp/pe_gen_emu_XXXXXX";
  if (mkdtemp(dir) == NULL) {
    printf("FAIL: %s (emulated): no temporary folder\n", path);
    return 1;
  }
  char cpp[64], so[64], cmd[1024];
  snprintf(cpp, sizeof cpp, "%s/k.cpp", dir);
  snprintf(so, sizeof so, "%s/k.so", dir);
  FILE *f = fopen(cpp, "w");
  int bad = f == NULL;
  if (f != NULL) {
    const char *rest = pre + strlen(pe__cuda_gen_prelude);
    fwrite(text, 1, (size_t)(pre - text), f);
    fwrite(pe__cuda_gen_prelude, 1, (size_t)(proto - pe__cuda_gen_prelude), f);
    fwrite(rest, 1, (size_t)(sh - rest), f);
    fputs("PE__DYN_SHARED(float4, pe__shv);", f);
    fputs(sh + strlen(dyn), f);
    fputs(pe_t_emu_tail, f);
    bad = fclose(f) != 0;
  }
  snprintf(cmd, sizeof cmd,
           "%s -std=c++17 -O1 -ffp-contract=off -fno-strict-aliasing -fPIC "
           "-shared -include %s -o %s %s -lpthread",
           cxx, shim, so, cpp);
  if (!bad && system(cmd) != 0) {
    printf("FAIL: %s (emulated): %s failed\n", path, cmd);
    bad = 1;
  }
  void *lib = bad ? NULL : dlopen(so, RTLD_NOW | RTLD_LOCAL);
  int (*run)(const float *, float *, unsigned, unsigned, unsigned,
             unsigned long long *, size_t) = NULL;
  if (lib != NULL) {
    void *sym = dlsym(lib, "pe_emu_run");
    memcpy(&run, &sym, sizeof sym);
  }
  if (!bad && run == NULL) {
    printf("FAIL: %s (emulated): cannot load %s\n", path, so);
    bad = 1;
  }
  /* the cpu backend's portable kernels on the same windows */
  const pe_model_desc_t *desc = pe_model_desc(m);
  const int64_t in_n = desc->inputs[0].numel, out_n = desc->outputs[0].numel;
  pe_model_options_t go = {.kernels = PE_KERNELS_GENERIC};
  pe_model_t *ref = NULL;
  pe_model_ctx_t *ctx = NULL;
  char err[256];
  float *x = malloc((size_t)(pe_t_emu_windows * in_n) * sizeof *x);
  float *y = malloc((size_t)(pe_t_emu_windows * out_n) * sizeof *y);
  float *want = malloc((size_t)(pe_t_emu_windows * out_n) * sizeof *want);
  unsigned long long *stamps =
      calloc((size_t)(PE_CUDA_GEN_BS_STEP0 + n_steps), sizeof *stamps);
  if (!bad && (x == NULL || y == NULL || want == NULL || stamps == NULL ||
               pe_model_load_file(path, &go, &ref, err, sizeof err) != PE_OK ||
               pe_model_ctx_create(ref, pe_t_emu_windows, &ctx) != PE_OK)) {
    printf("FAIL: %s (emulated): the reference did not load\n", path);
    bad = 1;
  }
  if (!bad) {
    uint64_t st = 42;
    for (int64_t i = 0; i < pe_t_emu_windows * in_n; i++) {
      x[i] =
          (float)((double)(pe_splitmix64(&st) >> 11) * 0x1.0p-53 * 4.0 - 2.0);
    }
    for (int64_t i = 0; i < pe_t_emu_windows * out_n; i++) {
      y[i] = NAN;
    }
    const int ran = run(x, y, pe_t_emu_windows, PE_T_EMU_GRID,
                        (unsigned)threads, stamps, shmem);
    if (ran == -2) {
      printf("FAIL: %s (emulated): the kernel wrote shared memory past its "
             "%zu bytes\n",
             path, shmem);
    }
    bad = pe_model_run(ctx, x, pe_t_emu_windows, want) != PE_OK || ran != 0;
    double worst = 0.0;
    for (int64_t i = 0; !bad && i < pe_t_emu_windows * out_n; i++) {
      const double d = fabs((double)y[i] - (double)want[i]) /
                       fmax(1.0, fabs((double)want[i]));
      worst = d > worst || d != d ? d : worst;
    }
    bad = bad || !(worst <= tol);
    printf("%s %s (emulated): %u windows in %u blocks, largest difference "
           "from the cpu backend's portable kernels %.3g (relative to "
           "max(1, |y|))\n",
           bad ? "FAIL:" : "ok  ", path, pe_t_emu_windows, PE_T_EMU_GRID,
           worst);
    /* the stamps: the first block's windows, and every phase of its
     * groups stamped (the shim's timer moves at each read) */
    const unsigned first =
        (pe_t_emu_windows + PE_T_EMU_GRID - 1) / PE_T_EMU_GRID;
    int unstamped = -1;
    for (int i = PE_CUDA_GEN_BS_STEP0 + n_steps - 1; i > 0; i--) {
      unstamped = stamps[i] == 0 ? i : unstamped;
    }
    if (stamps[PE_CUDA_GEN_BS_WINDOWS] != first || unstamped >= 0) {
      printf("FAIL: %s (emulated): stamps: %llu windows in the first block "
             "(want %u), slot %d not stamped\n",
             path, stamps[PE_CUDA_GEN_BS_WINDOWS], first, unstamped);
      bad = 1;
    }
  }
  pe_model_ctx_destroy(ctx);
  pe_model_destroy(ref);
  free(x);
  free(y);
  free(want);
  free(stamps);
  if (lib != NULL) {
    dlclose(lib);
  }
  unlink(so);
  unlink(cpp);
  rmdir(dir);
  return bad;
}

/* One model through the generator and NVRTC (and, with cxx, the batch
 * kernel on the CPU): 0 when it went as expected, else 1; 77 when NVRTC
 * is missing. mode: PE_T_MADE (both kernels made), PE_T_STEP (both
 * refused, naming a step), PE_T_TOO_BIG (both refused for their size,
 * staged too) or PE_T_STAGED (the resident kernel refused
 * for its size, the batch kernel made with each step's weights staged,
 * as the backend allows it alone). */
static int pe_t_model(const char *path, int mode, const char *cxx,
                      const char *shim, int rows, int sums, int tf32) {
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
  if (pe_t_resolve(m, shape.n_steps, shape.arena_ps, &p) != PE_OK) {
    fprintf(stderr, "FAIL: %s: out of memory\n", path);
    pe_t_plan_free(&p);
    pe_model_destroy(m);
    return 1;
  }
  pe_cuda_gen_plan_t g = {0};
  g.steps = p.steps;
  g.n_steps = p.n_steps;
  g.blob_dev = p.dev_c;
  g.blob_floats = p.floats;
  g.n_blobs = p.n_blobs;
  g.in_numel = shape.in_numel;
  g.out_numel = shape.out_numel;
  g.arena_ps = p.arena_ps;
  g.shmem_limit = 227 * 1024 - 1024;
  g.dense_rows = rows;
  g.dense_sums = sums;
  g.conv_wide = pe_t_conv_wide;
  g.tf32 = tf32;
  int bad = 0;
  /* the resident kernel, a staged plan's resident kernel with staging
   * allowed (as the backend makes it for one block asked for), and the
   * batch kernel with staging allowed (last: the emulation's may be the
   * same source) */
  for (int pass = 0; pass < 3; pass++) {
    if (pass == 1 && mode != PE_T_STAGED) {
      continue;
    }
    const int batch = pass == 2;
    g.batch = batch;
    g.allow_staged = pass > 0;
    g.max_n = batch ? 32 : PE_CUDA_PERSIST_MAX_BATCH;
    g.stamps = 1;
    const int expect = mode != PE_T_STAGED ? mode
                       : pass > 0          ? PE_T_STAGED
                                           : PE_T_TOO_BIG;
    const int rc =
        pe_t_gen(path, &g, p.steps[0].numel, expect, NULL, NULL, NULL);
    if (rc == 77) {
      bad = 77;
      break;
    }
    bad |= rc;
  }
  if (bad == 0 && mode != PE_T_STEP && mode != PE_T_TOO_BIG && cxx != NULL) {
    /* groups of at most 5 windows, so that a block's share of 7 or 8
     * takes two */
    g.batch = 1;
    g.allow_staged = 1;
    g.max_n = 5;
    g.stamps = 1;
    char *text = NULL;
    int threads = 0;
    size_t shmem = 0;
    bad = pe_t_gen(path, &g, p.steps[0].numel, mode, &text, &threads, &shmem);
    if (bad == 0) {
      bad = pe_t_emulate(path, cxx, shim, text, threads, shmem, m, p.n_steps,
                         tf32 ? 1e-2 : 1e-5);
    }
    free(text);
  }
  pe_t_plan_free(&p);
  pe_model_destroy(m);
  return bad;
}

int main(int argc, char **argv) {
  int a = 1, rows = 0, sums = 0, tf32 = 0;
  const char *cxx = NULL, *shim = NULL;
  if (argc > 3 && strcmp(argv[1], "--cxx") == 0) {
    cxx = argv[2];
    shim = argv[3];
    a = 4;
  }
  while (a < argc) {
    if (a + 1 < argc && strcmp(argv[a], "--dense-rows") == 0) {
      rows = atoi(argv[a + 1]);
      a += 2;
    } else if (a + 1 < argc && strcmp(argv[a], "--dense-sums") == 0) {
      sums = atoi(argv[a + 1]);
      a += 2;
    } else if (a + 1 < argc && strcmp(argv[a], "--emu-windows") == 0) {
      const int n = atoi(argv[a + 1]);
      if (n < (int)PE_T_EMU_GRID) {
        fprintf(stderr, "test_cuda_gen: --emu-windows %s: at least %u\n",
                argv[a + 1], PE_T_EMU_GRID);
        return 2;
      }
      pe_t_emu_windows = (unsigned)n;
      a += 2;
    } else if (strcmp(argv[a], "--tf32") == 0) {
      tf32 = 1;
      a++;
    } else if (strcmp(argv[a], "--conv-wide") == 0) {
      pe_t_conv_wide = 1;
      a++;
    } else {
      break;
    }
  }
  if (a >= argc) {
    fprintf(stderr, "usage: test_cuda_gen [--cxx COMPILER SHIM] "
                    "[--emu-windows N] [--dense-rows N] [--dense-sums N] "
                    "[--tf32] [--conv-wide] MODEL.onnx... "
                    "[--staged MODEL...] [--refuse MODEL...] "
                    "[--too-big MODEL...]\n");
    return 2;
  }
  char v[160];
  if (pe_cuda_gen_nvrtc(v, sizeof v) != PE_OK) {
    printf("SKIP: %s\n", v);
    return 77;
  }
  printf("NVRTC %s; the batch kernel on the CPU: %s\n", v,
         cxx != NULL ? cxx : "not asked for (--cxx)");
  int fails = 0, mode = PE_T_MADE;
  for (int i = a; i < argc; i++) {
    if (strcmp(argv[i], "--refuse") == 0) {
      mode = PE_T_STEP;
      continue;
    }
    if (strcmp(argv[i], "--staged") == 0) {
      mode = PE_T_STAGED;
      continue;
    }
    if (strcmp(argv[i], "--too-big") == 0) {
      mode = PE_T_TOO_BIG;
      continue;
    }
    int rc = pe_t_model(argv[i], mode, cxx, shim, rows, sums, tf32);
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
