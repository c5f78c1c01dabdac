/* The persistent mode's kernel generated for a plan (cuda_gen.h): the
 * source, NVRTC through dlopen, and the kernel loaded with the runtime's
 * library calls.
 *
 * The block's shared memory, in floats from its start, each region from
 * a multiple of 4: the weights (each tensor in the layout its step reads
 * best: a dense step's as [M][K], a convolution's as [cout / CB][cin /
 * group][k][CB], CB output channels side by side; the rest as stored),
 * then the input of max_n windows, the output of max_n windows, and the
 * arena laid out for max_n windows (a tensor at off_ps * max_n, window b
 * at + b * its stride), as the general kernel lays out its own. */
#define _POSIX_C_SOURCE 200809L
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/cuda_gen.h"
#include "backends/cuda_plan.h"
#include "model/plan_view.h"
#include "pe/error.h"

/* The text of src/cuda/act.cuh, src/cuda/rows.cuh and
 * src/cuda/persist_proto.cuh, in that order (made by the build:
 * cmake/embed.cmake). */
extern const char pe__cuda_gen_prelude[];

/* The most threads of the block, and of a step's share of it. */
#define PE__GEN_MAX_THREADS 512
/* Products a window of a dense step at most for its sums to be in
 * double. */
#define PE__GEN_DOUBLE_MACS 4096
/* Keys a lane of pe__attn_rows holds: rows.cuh's PE__ATTN_PK, which the
 * generated code checks */
#define PE__GEN_ATTN_PK 16

/* ---- a growing string ----------------------------------------------------*/

typedef struct pe__sb {
  char *buf;
  size_t len, cap;
  int oom;
} pe__sb_t;

static void pe__sb(pe__sb_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void pe__sb(pe__sb_t *s, const char *fmt, ...) {
  if (s->oom) {
    return;
  }
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = s->cap - s->len;
    int n = vsnprintf(s->buf != NULL ? s->buf + s->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
      s->oom = 1;
      return;
    }
    if ((size_t)n < room) {
      s->len += (size_t)n;
      return;
    }
    size_t cap = s->cap ? s->cap * 2 : 4096;
    while (cap - s->len <= (size_t)n) {
      cap *= 2;
    }
    char *b = realloc(s->buf, cap);
    if (b == NULL) {
      s->oom = 1;
      return;
    }
    s->buf = b;
    s->cap = cap;
  }
}

/* ---- the generator
 * ---------------------------------------------------------*/

/* The arena floats [lo, hi) of one window that step k reads or writes
 * (pe__gen_at), as a first pass records them. */
typedef struct pe__gen_acc {
  int k;
  int64_t lo, hi;
} pe__gen_acc_t;

typedef struct pe__gen_accs {
  pe__gen_acc_t *a;
  int n, cap, oom;
} pe__gen_accs_t;

/* A run of arena floats [lo, hi) of one window that no tensor holds
 * during a step: used floats of it (from lo rounded up to 4) taken by the
 * step's staged weights. */
typedef struct pe__gen_hole {
  int64_t lo, hi, used;
} pe__gen_hole_t;

typedef struct pe__gen {
  const pe_cuda_gen_plan_t *p;
  /* the arena's accesses: recorded (rec) by a first pass; read (live) by
   * a staged pass, which puts a step's weights where the arena is free
   * during the step (holes, n_holes of them) before the weights region */
  pe__gen_accs_t *rec;
  const pe__gen_accs_t *live;
  pe__gen_hole_t *holes;
  int n_holes, cap_holes;
  pe__sb_t copy; /* the weights' copies, once per launch */
  pe__sb_t body; /* the steps of a request */
  /* staged: the current step's weights' copies (stage), put before the
   * step's code at each group; the floats they take (stage_used) and the
   * most any step takes (stage_max), the weights region */
  int staged;
  pe__sb_t stage;
  int64_t stage_used, stage_max;
  int64_t w_floats;
  uint32_t pn; /* windows per request */
  int nt;      /* the block */
  int want;    /* the most threads a step asked for */
  int64_t off_in, off_out, off_ar;
  /* scratch floats per window the recurrent steps ask for (their gates
   * and states), at off_scr: pn windows of scr_ps */
  int64_t scr_ps, off_scr;
  char *why;
  size_t cap;
} pe__gen_t;

static int64_t pe__r4(int64_t n) { return (n + 3) / 4 * 4; }

static int pe__r32(int64_t n) { return (int)((n + 31) / 32 * 32); }

static int pe__unsupported(pe__gen_t *g, int k, const char *what) {
  snprintf(g->why, g->cap, "step %d: %s", k, what);
  return PE_EUNSUPPORTED;
}

/* The layouts of a weight tensor copied on chip. PE__W_TC: the weights
 * of a dense step on the tensor cores (pe__gen_dense_tc), from [K][M]
 * (PE__W_TC_T: from [M][K]), as [M / 8][K / 4][8][4] and rounded to
 * TF32, so that a lane's four k of one column are one 16-byte read and a
 * warp's 32 reads fall in distinct banks. */
enum { PE__W_ASIS, PE__W_T, PE__W_CONV, PE__W_TC, PE__W_TC_T };

/* The reads of weights a thread issues together when copying them on
 * chip (pe__gen_w) */
enum { PE__W_ROUND = 8 };

/* Room in the arena where no tensor is held during the current step
 * (after what the step put there already), in the first run of g->holes
 * with room: its offset, or -1. For floats once (per_window 0, a weight
 * tensor), decided in a window's floats: a run's floats from lo rounded
 * up to 4 are free in a layout of any number of windows too (a window's
 * [lo, hi) is [lo pn, hi pn) there), so every pass decides alike. For
 * floats of each of the g->pn windows (per_window 1, a step's own
 * scratch; window b at + b floats), decided in the layout's. */
static int64_t pe__gen_hole_take(pe__gen_t *g, int64_t floats, int per_window) {
  const int64_t need = per_window ? floats * g->pn : floats;
  for (int h = 0; h < g->n_holes; h++) {
    pe__gen_hole_t *r = &g->holes[h];
    const int64_t start = pe__r4(r->lo) * g->pn + r->used;
    const int fits = per_window
                         ? start + need <= r->hi * g->pn
                         : pe__r4(r->lo) + r->used + pe__r4(need) <= r->hi;
    if (fits) {
      r->used += pe__r4(need);
      return g->off_ar + start;
    }
  }
  return -1;
}

/* Blob ref (`floats` of it used) copied into the weights region in a
 * layout: as stored, transposed from [a][b] to [b][a] (PE__W_T), or
 * [cout][r] as [cout / b][r][b] (PE__W_CONV, a = r); its offset in
 * floats, or -1 (why set). */
static int64_t pe__gen_w(pe__gen_t *g, int k, uint64_t ref, int64_t floats,
                         int layout, int64_t a, int64_t b) {
  const uint64_t i = PE_CUDA_REF_VALUE(ref);
  if (PE_CUDA_REF_KIND(ref) != PE_CUDA_REF_BLOB ||
      i >= (uint64_t)g->p->n_blobs || g->p->blob_floats[i] < floats ||
      floats <= 0) {
    pe__unsupported(g, k, "weights not in a blob of their size");
    return -1;
  }
  /* staged: where the arena is free during the step, else the weights
   * region */
  pe__sb_t *cp = g->staged ? &g->stage : &g->copy;
  int64_t off = g->staged ? pe__gen_hole_take(g, floats, 0) : -1;
  if (off < 0 && g->staged) {
    off = g->stage_used;
    g->stage_used += pe__r4(floats);
    g->stage_max = g->stage_used > g->stage_max ? g->stage_used : g->stage_max;
  } else if (off < 0) {
    off = g->w_floats;
    g->w_floats += pe__r4(floats);
  }
  /* Each thread's reads of a round are issued before its stores: the
   * source is a generic pointer, which the compiler cannot tell apart
   * from shared memory, so it would keep each read after the store
   * before it. A weights tensor kept as stored is read and written 16
   * bytes at a time where the blob allows; the other layouts scatter
   * single floats, in the same order as a float a thread. */
  const uint64_t dev = (uint64_t)(uintptr_t)g->p->blob_dev[i];
  const int vec = layout == PE__W_ASIS && floats % 4 == 0 && dev % 16 == 0;
  const int64_t units = vec ? floats / 4 : floats;
  const int64_t per = (units + g->nt - 1) / g->nt;
  const int r = per < PE__W_ROUND ? (int)per : PE__W_ROUND;
  const char *t = vec ? "float4" : "float";
  pe__sb(cp,
         "  {\n    const %s *src = (const %s *)0x%llxull;\n"
         "    for (int i0 = tid; i0 < %lld; i0 += %d * PE_G_NT) {\n"
         "      %s v[%d];\n"
         "#pragma unroll\n      for (int j = 0; j < %d; j++) {\n"
         "        const int i = i0 + j * PE_G_NT;\n"
         "        if (i < %lld) {\n          v[j] = src[i];\n        }\n"
         "      }\n"
         "#pragma unroll\n      for (int j = 0; j < %d; j++) {\n"
         "        const int i = i0 + j * PE_G_NT;\n"
         "        if (i >= %lld) {\n          break;\n        }\n",
         t, t, (unsigned long long)dev, (long long)units, r, t, r, r,
         (long long)units, r, (long long)units);
  if (vec) {
    pe__sb(cp, "        *(float4 *)(sh + %lld + 4 * i) = v[j];\n",
           (long long)off);
  } else if (layout == PE__W_ASIS) {
    pe__sb(cp, "        sh[%lld + i] = v[j];\n", (long long)off);
  } else if (layout == PE__W_T) {
    pe__sb(cp,
           "        const int r = i / %lld, q = i - r * %lld;\n"
           "        sh[%lld + q * %lld + r] = v[j];\n",
           (long long)b, (long long)b, (long long)off, (long long)a);
  } else if (layout == PE__W_CONV) {
    pe__sb(cp,
           "        const int co = i / %lld, r = i - co * %lld;\n"
           "        sh[%lld + (co / %lld * %lld + r) * %lld + co %% %lld] = "
           "v[j];\n",
           (long long)a, (long long)a, (long long)off, (long long)b,
           (long long)a, (long long)b, (long long)b);
  } else {
    /* a K, b M; the source [K][M] or [M][K] */
    if (layout == PE__W_TC) {
      pe__sb(cp, "        const int kk = i / %lld, m = i - kk * %lld;\n",
             (long long)b, (long long)b);
    } else {
      pe__sb(cp, "        const int m = i / %lld, kk = i - m * %lld;\n",
             (long long)a, (long long)a);
    }
    pe__sb(cp,
           "        sh[%lld + ((m / 8 * %lld + kk / 4) * 8 + m %% 8) * 4 + "
           "kk %% 4] = pe__tf32r(v[j]);\n",
           (long long)off, (long long)(a / 4));
  }
  pe__sb(cp, "      }\n    }\n  }\n");
  return off;
}

/* Records that step k reads or writes the arena floats [lo, hi) of a
 * window (a first pass only). */
static void pe__gen_record(pe__gen_t *g, int k, int64_t lo, int64_t hi) {
  pe__gen_accs_t *r = g->rec;
  if (r == NULL || r->oom) {
    return;
  }
  if (r->n == r->cap) {
    const int cap = r->cap ? 2 * r->cap : 64;
    pe__gen_acc_t *a = realloc(r->a, (size_t)cap * sizeof *a);
    if (a == NULL) {
      r->oom = 1;
      return;
    }
    r->a = a;
    r->cap = cap;
  }
  r->a[r->n++] = (pe__gen_acc_t){k, lo, hi};
}

/* The runs of the arena that no tensor holds during step k, into
 * g->holes: a float is held where a step up to k and a step from k on
 * both touch it (whatever step k's weights overwrite there is then
 * neither read after k nor written before it for a later step).
 * Conservative: two tensors that share floats at different times hold
 * them from the first's first access to the second's last. */
static int pe__gen_holes(pe__gen_t *g, int k) {
  const int64_t n = g->p->arena_ps;
  g->n_holes = 0;
  if (g->live == NULL || n < 1) {
    return PE_OK;
  }
  /* 1: touched at a step up to k; 2: from k on */
  unsigned char *m = calloc((size_t)n, 1);
  if (m == NULL) {
    return PE_ENOMEM;
  }
  for (int i = 0; i < g->live->n; i++) {
    const pe__gen_acc_t *a = &g->live->a[i];
    const unsigned char bit = (a->k <= k ? 1u : 0u) | (a->k >= k ? 2u : 0u);
    for (int64_t x = a->lo; x < a->hi && x < n; x++) {
      m[x] |= bit;
    }
  }
  int rc = PE_OK;
  for (int64_t x = 0; x < n && rc == PE_OK;) {
    if (m[x] == 3u) {
      x++;
      continue;
    }
    int64_t e = x;
    while (e < n && m[e] != 3u) {
      e++;
    }
    if (g->n_holes == g->cap_holes) {
      const int cap = g->cap_holes ? 2 * g->cap_holes : 16;
      pe__gen_hole_t *h = realloc(g->holes, (size_t)cap * sizeof *h);
      if (h == NULL) {
        rc = PE_ENOMEM;
        break;
      }
      g->holes = h;
      g->cap_holes = cap;
    }
    g->holes[g->n_holes++] = (pe__gen_hole_t){x, e, 0};
    x = e;
  }
  free(m);
  return rc;
}

/* Where operand ref of a step lives in shared memory: *off the offset of
 * its window 0 in floats, *st its stride per window (0 for a constant,
 * copied as stored), for numel floats a window. */
static int pe__gen_at(pe__gen_t *g, int k, uint64_t ref, int64_t stride,
                      int64_t numel, int64_t *off, int64_t *st) {
  const uint64_t v = PE_CUDA_REF_VALUE(ref);
  *st = stride;
  switch (PE_CUDA_REF_KIND(ref)) {
  case PE_CUDA_REF_INPUT:
    *off = g->off_in;
    return stride == g->p->in_numel && numel <= g->p->in_numel
               ? PE_OK
               : pe__unsupported(g, k, "an input of another size");
  case PE_CUDA_REF_OUTPUT:
    *off = g->off_out;
    return stride == g->p->out_numel && numel <= g->p->out_numel
               ? PE_OK
               : pe__unsupported(g, k, "an output of another size");
  case PE_CUDA_REF_ARENA:
    *off = g->off_ar + (int64_t)v * g->pn;
    if ((int64_t)v + numel > g->p->arena_ps || stride < numel) {
      return pe__unsupported(g, k, "a tensor outside the arena");
    }
    pe__gen_record(g, k, (int64_t)v, (int64_t)v + stride);
    return PE_OK;
  case PE_CUDA_REF_BLOB:
    *st = 0;
    *off = pe__gen_w(g, k, ref, numel, PE__W_ASIS, 0, 0);
    return *off >= 0 ? PE_OK : PE_EUNSUPPORTED;
  default:
    return pe__unsupported(g, k, "an operand that is nowhere");
  }
}

/* How a step stores output element `idx` (an expression) of window b:
 * into shared memory, or, for the last step that makes the scores, as
 * the answer's tagged word (the batch kernel: into the output buffer). */
typedef struct pe__gen_out {
  int answer;
  int64_t off, st;
} pe__gen_out_t;

static void pe__gen_store(pe__gen_t *g, const pe__gen_out_t *o, const char *idx,
                          const char *y) {
  if (o->answer && g->p->batch) {
    pe__sb(&g->body, "gout[(size_t)(w0 + b) * %lld + (%s)] = %s;",
           (long long)g->p->out_numel, idx, y);
  } else if (o->answer) {
    pe__sb(&g->body, "pe__st_tagged(h_out + b * %lld + (%s), last, %s);",
           (long long)g->p->out_numel, idx, y);
  } else {
    pe__sb(&g->body, "sh[%lld + b * %lld + (%s)] = %s;", (long long)o->off,
           (long long)o->st, idx, y);
  }
}

/* The loop over the windows of a request for a step that takes tpw
 * threads a window (a multiple of 32, so that a warp works on one
 * window: the butterflies need whole warps): as many windows at a time
 * as the block holds; l is the thread's place in its window's share. */
static void pe__gen_windows(pe__gen_t *g, int tpw) {
  if (tpw >= g->nt) {
    pe__sb(&g->body,
           "  for (int b = 0; b < (int)n; b++) {\n    const int l = tid;\n");
  } else {
    const int at_once = g->nt / tpw;
    pe__sb(&g->body,
           "  if (tid < %d)\n  for (int b = tid / %d; b < (int)n; b += %d) {\n"
           "    const int l = tid %% %d;\n",
           at_once * tpw, tpw, at_once, tpw);
  }
}

static const char *const pe__comp[4] = {"x", "y", "z", "w"};

/* Float v as a C float literal (one that always has a point or an
 * exponent: "0f" would not be one), into buf of PE__FLT bytes. */
#define PE__FLT 32
static const char *pe__flt(char *buf, float v) {
  snprintf(buf, PE__FLT, "%.9ef", (double)v);
  return buf;
}

/* The activation of step s applied to expression v, into buf. */
static const char *pe__gen_act(const pe_cuda_step_t *s, const char *v,
                               char *buf, size_t cap) {
  if (s->act == PE_PLAN_ACT_NONE) {
    snprintf(buf, cap, "%s", v);
  } else {
    char a[PE__FLT];
    snprintf(buf, cap, "pe__act(%s, %d, %s)", v, s->act, pe__flt(a, s->alpha));
  }
  return buf;
}

/* Threads per window a step asks for: units of work, capped. */
static int pe__gen_tpw(int64_t units) {
  return units >= PE__GEN_MAX_THREADS ? PE__GEN_MAX_THREADS
                                      : pe__r32(units > 0 ? units : 1);
}

/* Opens the loop over a step's E elements a window, a thread each (as
 * many windows at a time as the block holds): `e` the element; closed by
 * pe__gen_each_close after its store. */
static void pe__gen_each_open(pe__gen_t *g, int64_t E) {
  const int tpw = pe__gen_tpw(E);
  g->want = tpw > g->want ? tpw : g->want;
  pe__gen_windows(g, tpw);
  pe__sb(&g->body,
         "#pragma unroll\n    for (int j = 0; j < %lld; j++) {\n"
         "      const int e = l + j * %d;\n      if (e < %lld) {\n",
         (long long)((E + tpw - 1) / tpw), tpw, (long long)E);
}

static void pe__gen_each_close(pe__gen_t *g) {
  pe__sb(&g->body, "\n      }\n    }\n  }\n");
}

/* Affine, unary and binary: one thread per element. */
static int pe__gen_elementwise(pe__gen_t *g, int k, const pe_cuda_step_t *s,
                               const pe__gen_out_t *o) {
  const int64_t E = s->numel;
  int64_t xo = 0, xs = 0, x2o = 0, x2s = 0, wo = -1, bo = -1;
  int rc = pe__gen_at(g, k, (uint64_t)(uintptr_t)s->in[0], s->in_stride[0], E,
                      &xo, &xs);
  if (rc == PE_OK && s->kind == PE_PLAN_BINARY) {
    if (s->p[1] < 1 || s->p[1] > 3 || s->binop > PE_PLAN_OP_DIV ||
        s->p[0] != E) {
      return pe__unsupported(g, k, "a binary step that broadcasts");
    }
    rc = pe__gen_at(g, k, (uint64_t)(uintptr_t)s->in[1], s->in_stride[1],
                    s->p[1] == 1 ? E : 1, &x2o, &x2s);
  }
  if (rc == PE_OK && s->kind == PE_PLAN_AFFINE) {
    const int64_t C = s->p[1], inner = s->p[2];
    if (C < 1 || inner < 1) {
      return pe__unsupported(g, k, "an affine step of no channels");
    }
    wo = pe__gen_w(g, k, (uint64_t)(uintptr_t)s->w, C, PE__W_ASIS, 0, 0);
    if (wo >= 0 && s->bias != NULL) {
      bo = pe__gen_w(g, k, (uint64_t)(uintptr_t)s->bias, C, PE__W_ASIS, 0, 0);
    }
    rc = wo < 0 || (s->bias != NULL && bo < 0) ? PE_EUNSUPPORTED : PE_OK;
  }
  if (rc != PE_OK) {
    return rc;
  }
  pe__gen_each_open(g, E);
  char v[160], act[256];
  if (s->kind == PE_PLAN_AFFINE) {
    pe__sb(&g->body, "        const int c = e / %lld %% %lld;\n",
           (long long)s->p[2], (long long)s->p[1]);
    char prod[96];
    snprintf(prod, sizeof prod,
             "__fmul_rn(sh[%lld + b * %lld + e], sh[%lld + c])", (long long)xo,
             (long long)xs, (long long)wo);
    if (bo >= 0) {
      snprintf(v, sizeof v, "__fadd_rn(%s, sh[%lld + c])", prod, (long long)bo);
    } else {
      snprintf(v, sizeof v, "%s", prod);
    }
  } else if (s->kind == PE_PLAN_BINARY) {
    static const char *const op[4] = {"__fadd_rn", "__fsub_rn", "__fmul_rn",
                                      "__fdiv_rn"};
    snprintf(
        v, sizeof v, "%s(sh[%lld + b * %lld + %s], sh[%lld + b * %lld + %s])",
        op[s->binop], (long long)xo, (long long)xs, s->p[1] == 3 ? "0" : "e",
        (long long)x2o, (long long)x2s, s->p[1] == 2 ? "0" : "e");
  } else {
    snprintf(v, sizeof v, "sh[%lld + b * %lld + e]", (long long)xo,
             (long long)xs);
  }
  pe__sb(&g->body, "        const float y = %s;\n        ",
         pe__gen_act(s, v, act, sizeof act));
  pe__gen_store(g, o, "e", "y");
  pe__gen_each_close(g);
  return PE_OK;
}

/* The taps of input channel ci (an expression) of a conv unit into sums
 * set `set` (a[set][0 .. cb)). */
static void pe__gen_conv_ci(pe__gen_t *g, const pe_cuda_step_t *s,
                            const char *ci, int set, int cb) {
  const int64_t K = s->p[3], stride = s->p[4], dil = s->p[5], pl = s->p[6];
  const int64_t win = s->p[8];
  const char *vt = cb == 4 ? "float4" : cb == 2 ? "float2" : "float";
  pe__sb(&g->body,
         "        {\n          const float *xr = x + (%s) * %lld;\n"
         "          const %s *wr = w + (%s) * %lld;\n"
         "#pragma unroll\n          for (int kk = 0; kk < %lld; kk++) {\n"
         "            const int pos = t * %lld + (kk * %lld - %lld);\n"
         "            const float xv = pos >= 0 && pos < %lld ? xr[pos] : "
         "0.0f;\n"
         "            const %s wv = wr[kk];\n",
         ci, (long long)win, vt, ci, (long long)K, (long long)K,
         (long long)stride, (long long)dil, (long long)pl, (long long)win, vt);
  for (int q = 0; q < cb; q++) {
    pe__sb(&g->body, "            a[%d][%d] = fmaf(xv, wv%s%s, a[%d][%d]);\n",
           set, q, cb > 1 ? "." : "", cb > 1 ? pe__comp[q] : "", set, q);
  }
  pe__sb(&g->body, "          }\n        }\n");
}

/* A conv unit's pointers, once its block blk of cb output channels is
 * known: x, its group's input channels of window b (xo, xs), and w, the
 * block's weights (vectors vt of cb, wr of them a block, from wo). */
static void pe__gen_conv_xw(pe__gen_t *g, const pe_cuda_step_t *s, int64_t xo,
                            int64_t xs, int64_t wo, int cb, const char *vt,
                            int64_t wr) {
  const int64_t cin = s->p[0], cout = s->p[1], group = s->p[2];
  const int64_t win = s->p[8];
  pe__sb(&g->body, "      const float *x = sh + %lld + b * %lld", (long long)xo,
         (long long)xs);
  if (group > 1) {
    pe__sb(&g->body, " + blk * %d / %lld * %lld", cb, (long long)(cout / group),
           (long long)(cin / group * win));
  }
  pe__sb(&g->body,
         ";\n      const %s *w = (const %s *)(sh + %lld) + blk * %lld;\n", vt,
         vt, (long long)wo, (long long)wr);
}

/* Output channel blk * CB + q of a conv unit, element idx (an
 * expression) of the output: its sums s0 (plus s1, the other set, where
 * not NULL), plus the bias (at bo where the step has one), activated. */
static void pe__gen_conv_out(pe__gen_t *g, const pe_cuda_step_t *s,
                             const pe__gen_out_t *o, const char *s0,
                             const char *s1, int64_t bo, int cb, int q,
                             const char *idx) {
  char v[80], act[256], sum[200];
  if (s1 != NULL) {
    snprintf(v, sizeof v, "%s + %s", s0, s1);
  } else {
    snprintf(v, sizeof v, "%s", s0);
  }
  if (bo >= 0) {
    snprintf(sum, sizeof sum, "(%s) + sh[%lld + blk * %d + %d]", v,
             (long long)bo, cb, q);
  } else {
    snprintf(sum, sizeof sum, "%s", v);
  }
  pe__sb(&g->body, "        {\n          const float y = %s;\n          ",
         pe__gen_act(s, sum, act, sizeof act));
  pe__gen_store(g, o, idx, "y");
  pe__sb(&g->body, "\n        }\n");
}

/* The taps of input channel ci (an expression) of a wide conv unit into
 * sums set `set` (a[set][p][0 .. cb) for its np positions t[p]): each
 * tap's cb weights read once (cb / 4 16-byte reads, or one of cb
 * floats) for the np positions. */
static void pe__gen_conv_ci_wide(pe__gen_t *g, const pe_cuda_step_t *s,
                                 const char *ci, int set, int cb, int np) {
  const int64_t K = s->p[3], stride = s->p[4], dil = s->p[5], pl = s->p[6];
  const int64_t win = s->p[8];
  const int nv = cb >= 4 ? cb / 4 : 1; /* weight vectors a tap */
  const char *vt = cb >= 4 ? "float4" : cb == 2 ? "float2" : "float";
  pe__sb(&g->body,
         "        {\n          const float *xr = x + (%s) * %lld;\n"
         "          const %s *wr = w + (%s) * %lld;\n"
         "#pragma unroll\n          for (int kk = 0; kk < %lld; kk++) {\n",
         ci, (long long)win, vt, ci, (long long)(K * nv), (long long)K);
  for (int p = 0; p < np; p++) {
    pe__sb(&g->body,
           "            const int pos%d = t[%d] * %lld + (kk * %lld - %lld);\n"
           "            const float xv%d = pos%d >= 0 && pos%d < %lld ? "
           "xr[pos%d] : 0.0f;\n",
           p, p, (long long)stride, (long long)dil, (long long)pl, p, p, p,
           (long long)win, p);
  }
  for (int v = 0; v < nv; v++) {
    pe__sb(&g->body, "            const %s wv%d = wr[kk * %d + %d];\n", vt, v,
           nv, v);
  }
  for (int p = 0; p < np; p++) {
    for (int q = 0; q < cb; q++) {
      char wq[16];
      if (cb > 1) {
        snprintf(wq, sizeof wq, "wv%d.%s", q / 4, pe__comp[q % 4]);
      } else {
        snprintf(wq, sizeof wq, "wv0");
      }
      pe__sb(&g->body,
             "            a[%d][%d][%d] = fmaf(xv%d, %s, a[%d][%d][%d]);\n",
             set, p, q, p, wq, set, p, q);
    }
  }
  pe__sb(&g->body, "          }\n        }\n");
}

/* Conv 1-D in its wide form (pe_cuda_gen_plan_t.conv_wide):
 * a unit is CB output channels (8 where a group's come in eights, else as
 * pe__gen_conv1d) of two positions 32 apart, the units of a warp at
 * consecutive positions (positions 64 p + lane and 64 p + lane + 32), so
 * that each weight read serves two positions and each x read eight
 * channels. Each output's sums are pe__gen_conv1d's (two sets by input
 * channel parity, taps in order, added at the end), so the same bits. */
static int pe__gen_conv1d_wide(pe__gen_t *g, const pe_cuda_step_t *s,
                               const pe__gen_out_t *o, int64_t xo, int64_t xs,
                               int64_t wo, int64_t bo, int cb) {
  const int64_t cin = s->p[0], cout = s->p[1], group = s->p[2], K = s->p[3];
  const int64_t wout = s->p[9], cin_g = cin / group;
  const int np = 2, nv = cb >= 4 ? cb / 4 : 1;
  const int64_t tiles = (wout + 63) / 64, units = cout / cb * tiles * 32;
  const int tpw = pe__gen_tpw(units);
  g->want = tpw > g->want ? tpw : g->want;
  const int64_t iters = (units + tpw - 1) / tpw;
  const int sets = cin_g >= 2 ? 2 : 1;
  const char *vt = cb >= 4 ? "float4" : cb == 2 ? "float2" : "float";
  pe__gen_windows(g, tpw);
  pe__sb(&g->body,
         "#pragma unroll 1\n    for (int j = 0; j < %lld; j++) {\n"
         "      const int u0 = l + j * %d, u = u0 < %lld ? u0 : 0;\n"
         "      const int lane = u %% 32, blk = u / %lld;\n"
         "      const int tt = (u / 32) %% %lld * 64 + lane;\n"
         "      const int t[2] = {tt < %lld ? tt : 0, "
         "tt + 32 < %lld ? tt + 32 : 0};\n",
         (long long)iters, tpw, (long long)units, (long long)(tiles * 32),
         (long long)tiles, (long long)wout, (long long)wout);
  pe__gen_conv_xw(g, s, xo, xs, wo, cb, vt, cin_g * K * nv);
  pe__sb(&g->body,
         "      float a[%d][%d][%d];\n"
         "#pragma unroll\n      for (int p = 0; p < %d; p++) {\n"
         "#pragma unroll\n        for (int q = 0; q < %d; q++) {\n"
         "          a[0][p][q] = 0.0f;\n          a[%d][p][q] = 0.0f;\n"
         "        }\n      }\n",
         sets, np, cb, np, cb, sets - 1);
  if (cin_g >= 2) {
    pe__sb(&g->body, "      for (int cp = 0; cp < %lld; cp++) {\n",
           (long long)(cin_g / 2));
    pe__gen_conv_ci_wide(g, s, "2 * cp", 0, cb, np);
    pe__gen_conv_ci_wide(g, s, "2 * cp + 1", 1, cb, np);
    pe__sb(&g->body, "      }\n");
  }
  if (cin_g % 2 != 0) {
    char ci[32];
    snprintf(ci, sizeof ci, "%lld", (long long)(cin_g - 1));
    pe__gen_conv_ci_wide(g, s, ci, 0, cb, np);
  }
  for (int p = 0; p < np; p++) {
    pe__sb(&g->body, "      if (u0 < %lld && tt + %d < %lld) {\n",
           (long long)units, 32 * p, (long long)wout);
    for (int q = 0; q < cb; q++) {
      char s0[32], s1[32], idx[96];
      snprintf(s0, sizeof s0, "a[0][%d][%d]", p, q);
      snprintf(s1, sizeof s1, "a[1][%d][%d]", p, q);
      snprintf(idx, sizeof idx, "(blk * %d + %d) * %lld + tt + %d", cb, q,
               (long long)wout, 32 * p);
      pe__gen_conv_out(g, s, o, s0, sets > 1 ? s1 : NULL, bo, cb, q, idx);
    }
    pe__sb(&g->body, "      }\n");
  }
  pe__sb(&g->body, "    }\n  }\n");
  return PE_OK;
}

/* Conv 1-D: a unit is CB consecutive output channels of one output
 * position, the positions of a warp side by side (consecutive inputs, and
 * the same weights for the whole warp: one shared-memory read of CB of
 * them); its products in two sums by input channel parity. */
static int pe__gen_conv1d(pe__gen_t *g, int k, const pe_cuda_step_t *s,
                          const pe__gen_out_t *o) {
  const int64_t cin = s->p[0], cout = s->p[1], group = s->p[2], K = s->p[3];
  const int64_t stride = s->p[4], dil = s->p[5], win = s->p[8];
  const int64_t wout = s->p[9];
  if (group < 1 || cin % group != 0 || cout % group != 0 || K < 1 ||
      stride < 1 || dil < 1 || win < 1 || wout < 1 || s->numel != cout * wout) {
    return pe__unsupported(g, k, "a convolution of shapes that do not agree");
  }
  const int64_t cin_g = cin / group, cout_g = cout / group;
  const int wide = g->p->conv_wide && wout >= 33;
  const int cb = wide && cout_g % 8 == 0 ? 8
                 : cout_g % 4 == 0       ? 4
                 : cout_g % 2 == 0       ? 2
                                         : 1;
  int64_t xo = 0, xs = 0;
  int rc = pe__gen_at(g, k, (uint64_t)(uintptr_t)s->in[0], s->in_stride[0],
                      cin * win, &xo, &xs);
  if (rc != PE_OK) {
    return rc;
  }
  const int64_t wo = pe__gen_w(g, k, (uint64_t)(uintptr_t)s->w,
                               cout * cin_g * K, PE__W_CONV, cin_g * K, cb);
  const int64_t bo = wo >= 0 && s->bias != NULL
                         ? pe__gen_w(g, k, (uint64_t)(uintptr_t)s->bias, cout,
                                     PE__W_ASIS, 0, 0)
                         : -2;
  if (wo < 0 || bo == -1) {
    return PE_EUNSUPPORTED;
  }
  if (wide) {
    return pe__gen_conv1d_wide(g, s, o, xo, xs, wo, bo, cb);
  }
  const int64_t units = cout / cb * wout;
  const int tpw = pe__gen_tpw(units);
  g->want = tpw > g->want ? tpw : g->want;
  const int64_t iters = (units + tpw - 1) / tpw;
  const int sets = cin_g >= 2 ? 2 : 1;
  const char *vt = cb == 4 ? "float4" : cb == 2 ? "float2" : "float";
  pe__gen_windows(g, tpw);
  pe__sb(&g->body,
         "#pragma unroll\n    for (int j = 0; j < %lld; j++) {\n"
         "      const int u0 = l + j * %d, u = u0 < %lld ? u0 : 0;\n"
         "      const int t = u %% %lld, blk = u / %lld;\n",
         (long long)iters, tpw, (long long)units, (long long)wout,
         (long long)wout);
  pe__gen_conv_xw(g, s, xo, xs, wo, cb, vt, cin_g * K);
  pe__sb(&g->body,
         "      float a[%d][%d];\n"
         "#pragma unroll\n      for (int q = 0; q < %d; q++) {\n"
         "        a[0][q] = 0.0f;\n        a[%d][q] = 0.0f;\n      }\n",
         sets, cb, cb, sets - 1);
  /* the input channels two at a time, one into each set of sums, two
   * pairs unrolled where their reads fit about 64 registers: enough
   * reads in flight without holding every weight of the unit in
   * registers at once (the block's 512 threads have 128 each) */
  if (cin_g >= 2) {
    /* registers a pair's reads hold: its x and weights */
    const int64_t regs = 2 * K * (cb + 1);
    pe__sb(&g->body,
           "#pragma unroll %d\n      for (int cp = 0; cp < %lld; cp++) {\n",
           2 * regs <= 64 ? 2 : 1, (long long)(cin_g / 2));
    pe__gen_conv_ci(g, s, "2 * cp", 0, cb);
    pe__gen_conv_ci(g, s, "2 * cp + 1", 1, cb);
    pe__sb(&g->body, "      }\n");
  }
  if (cin_g % 2 != 0) {
    char ci[32];
    snprintf(ci, sizeof ci, "%lld", (long long)(cin_g - 1));
    pe__gen_conv_ci(g, s, ci, 0, cb);
  }
  pe__sb(&g->body, "      if (u0 < %lld) {\n", (long long)units);
  for (int q = 0; q < cb; q++) {
    char s0[32], s1[32], idx[96];
    snprintf(s0, sizeof s0, "a[0][%d]", q);
    snprintf(s1, sizeof s1, "a[1][%d]", q);
    snprintf(idx, sizeof idx, "(blk * %d + %d) * %lld + t", cb, q,
             (long long)wout);
    pe__gen_conv_out(g, s, o, s0, sets > 1 ? s1 : NULL, bo, cb, q, idx);
  }
  pe__sb(&g->body, "      }\n    }\n  }\n");
  return PE_OK;
}

/* A dense output's value before its activation, into buf: acc, plus the
 * bias of column `col` (an expression) where the step has one (at bo in
 * shared memory), rounded to float. */
static void pe__gen_dense_sum(char *buf, size_t cap, int64_t bo,
                              const char *col) {
  if (bo >= 0) {
    snprintf(buf, cap, "(float)(acc + sh[%lld + %s])", (long long)bo, col);
  } else {
    snprintf(buf, cap, "(float)acc");
  }
}

/* A dense step of an output a thread's sums with four columns of TR rows
 * a thread: the columns m .. m + 3 of rows r .. r + TR - 1, the weights
 * as [K][M] read 16 bytes at a time (w4 their float4s) once for the TR
 * rows, each x once for the four columns; each output's k in order into
 * C float sums by k % C (C 4, as the form of an output a thread sums
 * them, so the same bits with a fraction of the reads of shared memory;
 * or C 1, a chain a thread's four columns and TR rows long). TR: 2 where
 * the rows come in twos, else 1 (4 rows' 64 sums and their x do not fit
 * the 128 registers a thread of 512 has: ptxas spills them), unless the
 * batch kernel is asked for more (p->dense_rows); there, with more than
 * two, a window's units are few and the group's windows share the
 * threads, a unit each (b, u) in turn. */
static void pe__gen_dense4(pe__gen_t *g, const pe_cuda_step_t *s,
                           const pe__gen_out_t *o, int64_t xo, int64_t xs,
                           int64_t wo, int64_t bo, int vec) {
  const int64_t R = s->p[0], K = s->K, M = s->M, M4 = M / 4;
  const int C = g->p->dense_sums == 1 ? 1 : 4;
  int TR = R % 2 == 0 ? 2 : 1;
  if (g->p->batch && g->p->dense_rows > 0) {
    TR = 1;
    while (TR < 8 && 2 * TR <= g->p->dense_rows && R % (2 * TR) == 0) {
      TR *= 2;
    }
  }
  const char *q = C == 4 ? "q" : "0";
  const int64_t units = R / TR * M4;
  const int tpw = pe__gen_tpw(units);
  g->want = tpw > g->want ? tpw : g->want;
  const int64_t iters = (units + tpw - 1) / tpw;
  if (g->p->batch && TR > 2) {
    pe__sb(&g->body,
           "  for (int v0 = tid; v0 < (int)n * %lld; v0 += %d) {\n"
           "    const int b = v0 / %lld;\n    {\n"
           "      const int u0 = v0 %% %lld, u = u0;\n",
           (long long)units, g->nt, (long long)units, (long long)units);
  } else {
    pe__gen_windows(g, tpw);
    pe__sb(&g->body,
           "#pragma unroll\n    for (int j = 0; j < %lld; j++) {\n"
           "      const int u0 = l + j * %d, u = u0 < %lld ? u0 : 0;\n",
           (long long)iters, tpw, (long long)units);
  }
  pe__sb(&g->body,
         "      const int m = u %% %lld * 4, r = u / %lld * %d;\n"
         "      const float *x = sh + %lld + b * %lld + r * %lld;\n"
         "      const float4 *w4 = (const float4 *)(sh + %lld + m);\n"
         "      float a[%d][4][%d];\n"
         "#pragma unroll\n      for (int t = 0; t < %d; t++) {\n",
         (long long)M4, (long long)M4, TR, (long long)xo, (long long)xs,
         (long long)K, (long long)wo, TR, C, 4 * C * TR);
  if (C == 4) {
    pe__sb(&g->body,
           "        a[t / 16][t / 4 %% 4][t %% 4] = 0.0f;\n      }\n");
  } else {
    pe__sb(&g->body, "        a[t / 4][t %% 4][0] = 0.0f;\n      }\n");
  }
  /* k % C == q into sums a[.][.][q]; x four floats at once where aligned */
  pe__sb(&g->body,
         "#pragma unroll 2\n      for (int c = 0; c + 4 <= %lld; c += 4) {\n"
         "        float xs4[%d][4];\n"
         "#pragma unroll\n        for (int t = 0; t < %d; t++) {\n",
         (long long)K, TR, TR);
  if (vec) {
    pe__sb(&g->body,
           "          const float4 xv = *(const float4 *)(x + t * %lld + c);\n"
           "          xs4[t][0] = xv.x;\n          xs4[t][1] = xv.y;\n"
           "          xs4[t][2] = xv.z;\n          xs4[t][3] = xv.w;\n",
           (long long)K);
  } else {
    pe__sb(&g->body,
           "#pragma unroll\n          for (int q = 0; q < 4; q++) {\n"
           "            xs4[t][q] = x[t * %lld + c + q];\n          }\n",
           (long long)K);
  }
  pe__sb(&g->body,
         "        }\n"
         "#pragma unroll\n        for (int q = 0; q < 4; q++) {\n"
         "          const float4 wv = w4[(c + q) * %lld];\n"
         "#pragma unroll\n          for (int t = 0; t < %d; t++) {\n"
         "            a[t][0][%s] = fmaf(xs4[t][q], wv.x, a[t][0][%s]);\n"
         "            a[t][1][%s] = fmaf(xs4[t][q], wv.y, a[t][1][%s]);\n"
         "            a[t][2][%s] = fmaf(xs4[t][q], wv.z, a[t][2][%s]);\n"
         "            a[t][3][%s] = fmaf(xs4[t][q], wv.w, a[t][3][%s]);\n"
         "          }\n        }\n      }\n",
         (long long)M4, TR, q, q, q, q, q, q, q, q);
  for (int64_t c = K / 4 * 4; c < K; c++) {
    const int qc = C == 4 ? (int)(c % 4) : 0;
    pe__sb(&g->body,
           "      {\n        const float4 wv = w4[%lld];\n"
           "#pragma unroll\n        for (int t = 0; t < %d; t++) {\n"
           "          const float xv = x[t * %lld + %lld];\n"
           "          a[t][0][%d] = fmaf(xv, wv.x, a[t][0][%d]);\n"
           "          a[t][1][%d] = fmaf(xv, wv.y, a[t][1][%d]);\n"
           "          a[t][2][%d] = fmaf(xv, wv.z, a[t][2][%d]);\n"
           "          a[t][3][%d] = fmaf(xv, wv.w, a[t][3][%d]);\n"
           "        }\n      }\n",
           (long long)(c * M4), TR, (long long)K, (long long)c, qc, qc, qc, qc,
           qc, qc, qc, qc);
  }
  char sum[96], act[200];
  pe__gen_dense_sum(sum, sizeof sum, bo, "m + cc");
  pe__sb(&g->body,
         "      if (u0 < %lld) {\n"
         "#pragma unroll\n        for (int t = 0; t < %d; t++) {\n"
         "#pragma unroll\n        for (int cc = 0; cc < 4; cc++) {\n",
         (long long)units, TR);
  if (C == 4) {
    pe__sb(&g->body,
           "          const float acc = (a[t][cc][0] + a[t][cc][1]) +\n"
           "                            (a[t][cc][2] + a[t][cc][3]);\n");
  } else {
    pe__sb(&g->body, "          const float acc = a[t][cc][0];\n");
  }
  pe__sb(&g->body, "          const float y = %s;\n          ",
         pe__gen_act(s, sum, act, sizeof act));
  char idx[48];
  snprintf(idx, sizeof idx, "(r + t) * %lld + m + cc", (long long)M);
  pe__gen_store(g, o, idx, "y");
  pe__sb(&g->body, "\n        }\n        }\n      }\n    }\n  }\n");
}

/* A dense step on the tensor cores (precision tf32): a warp a tile of 16
 * rows by 8 NB columns (NB 4, 2 or 1 as the columns allow), the group's
 * windows' tiles shared out over the warps; k sixteen at a time as two
 * m16n8k8 products (pe__mma_tf32), the sixteen k taken in the order that
 * makes each lane's four of a row one 16-byte read of x (a lane's k are
 * 4 t .. 4 t + 3, the first two the first product's t and t + 4, the
 * other two the second's: any order of k is the same product), and the
 * weights laid out alike (PE__W_TC), rounded as they are copied; x is
 * rounded to TF32 as it is read. Then each sum plus the bias, the
 * activation, stored. The tiles and their k-order depend on the shape
 * alone, so both kernels give a window the same bits. */
static void pe__gen_dense_tc(pe__gen_t *g, const pe_cuda_step_t *s,
                             const pe__gen_out_t *o, int64_t xo, int64_t xs,
                             int64_t wo, int64_t bo) {
  const int64_t R = s->p[0], K = s->K, M = s->M;
  const int NB = M % 32 == 0 ? 4 : M % 16 == 0 ? 2 : 1;
  const int64_t CG = M / (8 * NB), U = R / 16 * CG;
  const int tpw = pe__gen_tpw(U * 32);
  g->want = tpw > g->want ? tpw : g->want;
  pe__sb(&g->body,
         "  {\n    const int lane = tid & 31, gq = lane >> 2, tq = lane & 3;\n"
         "    for (int v0 = tid >> 5; v0 < (int)n * %lld; v0 += %d) {\n"
         "      const int b = v0 / %lld, u = v0 %% %lld;\n"
         "      const int r0 = u / %lld * 16, n0 = u %% %lld * %d;\n"
         "      const float *xa = sh + %lld + b * %lld + (r0 + gq) * %lld + "
         "4 * tq;\n"
         "      const float4 *wq = (const float4 *)(sh + %lld) + "
         "(n0 / 8 * %lld + tq) * 8 + gq;\n"
         "      float d[%d][4];\n"
         "#pragma unroll\n      for (int j = 0; j < %d; j++) {\n"
         "        d[j][0] = d[j][1] = d[j][2] = d[j][3] = 0.0f;\n      }\n"
         "#pragma unroll 2\n      for (int c = 0; c < %lld; c += 16) {\n"
         "        const float4 va = *(const float4 *)(xa + c);\n"
         "        const float4 vb = *(const float4 *)(xa + %lld + c);\n"
         "        const float a0[4] = {pe__tf32r(va.x), pe__tf32r(vb.x),\n"
         "                             pe__tf32r(va.y), pe__tf32r(vb.y)};\n"
         "        const float a1[4] = {pe__tf32r(va.z), pe__tf32r(vb.z),\n"
         "                             pe__tf32r(va.w), pe__tf32r(vb.w)};\n"
         "#pragma unroll\n        for (int j = 0; j < %d; j++) {\n"
         "          const float4 wv = wq[(j * %lld + c / 4) * 8];\n"
         "          const float w0[2] = {wv.x, wv.y}, w1[2] = {wv.z, wv.w};\n"
         "          pe__mma_tf32(d[j], a0, w0);\n"
         "          pe__mma_tf32(d[j], a1, w1);\n"
         "        }\n      }\n"
         "#pragma unroll\n      for (int j = 0; j < %d; j++) {\n"
         "#pragma unroll\n        for (int q = 0; q < 4; q++) {\n"
         "          const int r = r0 + gq + (q >> 1) * 8;\n"
         "          const int m = n0 + 8 * j + 2 * tq + (q & 1);\n"
         "          const float acc = d[j][q];\n",
         (long long)U, g->nt / 32, (long long)U, (long long)U, (long long)CG,
         (long long)CG, 8 * NB, (long long)xo, (long long)xs, (long long)K,
         (long long)wo, (long long)(K / 4), NB, NB, (long long)K,
         (long long)(8 * K), NB, (long long)(K / 4), NB);
  char sum[96], act[200];
  pe__gen_dense_sum(sum, sizeof sum, bo, "m");
  pe__sb(&g->body, "          const float y = %s;\n          ",
         pe__gen_act(s, sum, act, sizeof act));
  char idx[48];
  snprintf(idx, sizeof idx, "r * %lld + m", (long long)M);
  pe__gen_store(g, o, idx, "y");
  pe__sb(&g->body, "\n        }\n      }\n    }\n  }\n");
}

/* Dense: G threads (a power of two, at most 32) per output, each taking
 * every G-th group of four k (16-byte reads of x and of the [M][K]
 * weights where the offsets allow, else every G-th k) into four sums,
 * which meet, then the other threads' in a butterfly, then the bias. */
static int pe__gen_dense(pe__gen_t *g, int k, const pe_cuda_step_t *s,
                         const pe__gen_out_t *o) {
  const int64_t R = s->p[0], K = s->K, M = s->M;
  if (R < 1 || K < 1 || M < 1 || s->numel != R * M) {
    return pe__unsupported(g, k, "a dense step of shapes that do not agree");
  }
  int64_t xo = 0, xs = 0;
  int rc = pe__gen_at(g, k, (uint64_t)(uintptr_t)s->in[0], s->in_stride[0],
                      R * K, &xo, &xs);
  if (rc != PE_OK) {
    return rc;
  }
  const int64_t units = R * M;
  /* the split does not depend on vec, which the first pass of
   * pe_cuda_gen_source cannot know */
  int G = 32;
  while (G > 1 && (units * G > PE__GEN_MAX_THREADS || 4 * G > K)) {
    G >>= 1;
  }
  /* precision tf32: on the tensor cores where the form of an output a
   * thread would sum in float, rows and k come in sixteens and x's rows
   * in 16-byte reads */
  if (g->p->tf32 && G == 1 && K * M * R > PE__GEN_DOUBLE_MACS && R % 16 == 0 &&
      K % 16 == 0 && M % 8 == 0 && xo % 4 == 0 && xs % 4 == 0) {
    const int64_t wt =
        s->w != NULL
            ? pe__gen_w(g, k, (uint64_t)(uintptr_t)s->w, K * M, PE__W_TC, K, M)
            : pe__gen_w(g, k, (uint64_t)(uintptr_t)s->w2, K * M, PE__W_TC_T, K,
                        M);
    const int64_t bt =
        wt >= 0 && s->bias != NULL
            ? pe__gen_w(g, k, (uint64_t)(uintptr_t)s->bias, M, PE__W_ASIS, 0, 0)
            : -2;
    if (wt < 0 || bt == -1) {
      return PE_EUNSUPPORTED;
    }
    pe__gen_dense_tc(g, s, o, xo, xs, wt, bt);
    return PE_OK;
  }
  /* [M][K] (w2 where the step has it, else w [K][M] transposed), each
   * output's k side by side for the lanes that split it; or, with an
   * output a thread (G 1), [K][M] (w, else w2 transposed), so that a
   * warp's lanes, on consecutive outputs, read consecutive words of
   * shared memory at each k rather than one bank */
  const int64_t wo =
      G == 1 ? (s->w != NULL ? pe__gen_w(g, k, (uint64_t)(uintptr_t)s->w, K * M,
                                         PE__W_ASIS, 0, 0)
                             : pe__gen_w(g, k, (uint64_t)(uintptr_t)s->w2,
                                         K * M, PE__W_T, M, K))
      : s->w2 != NULL
          ? pe__gen_w(g, k, (uint64_t)(uintptr_t)s->w2, K * M, PE__W_ASIS, 0, 0)
          : pe__gen_w(g, k, (uint64_t)(uintptr_t)s->w, K * M, PE__W_T, K, M);
  const int64_t bo =
      wo >= 0 && s->bias != NULL
          ? pe__gen_w(g, k, (uint64_t)(uintptr_t)s->bias, M, PE__W_ASIS, 0, 0)
          : -2;
  if (wo < 0 || bo == -1) {
    return PE_EUNSUPPORTED;
  }
  const int vec = K % 4 == 0 && xo % 4 == 0 && (xs % 4 == 0 || g->pn == 1);
  /* a small layer (the scores of a classifier, say) sums in double: its
   * inputs' conversions cost little there, and its outputs, the answer
   * as often as not, then differ from the CPU's by its inputs' error
   * alone */
  const char *acc = K * M * R <= PE__GEN_DOUBLE_MACS ? "double" : "float";
  if (G == 1 && M % 4 == 0 && acc[0] == 'f') {
    pe__gen_dense4(g, s, o, xo, xs, wo, bo, vec);
    return PE_OK;
  }
  const int64_t chunks = vec ? K / 4 : K;
  const int tpw = pe__gen_tpw(units * G);
  g->want = tpw > g->want ? tpw : g->want;
  const int per = tpw / G; /* units at a time */
  const int64_t iters = (units + per - 1) / per;
  const int64_t cpt = (chunks + G - 1) / G;
  pe__gen_windows(g, tpw);
  /* an output's G lanes (G 1: one), its row of x and its weights, [M][K]
   * rows where its lanes split its k, else the column m of [K][M] */
  pe__sb(&g->body,
         "    const int sub = l %% %d, ul = l / %d;\n"
         "#pragma unroll\n    for (int j = 0; j < %lld; j++) {\n"
         "      const int u0 = ul + j * %d, u = u0 < %lld ? u0 : 0;\n"
         "      const int m = u %% %lld, r = u / %lld;\n"
         "      const float *x = sh + %lld + b * %lld + r * %lld;\n"
         "      const float *w = sh + %lld + m * %lld;\n"
         "      %s a0 = 0, a1 = 0, a2 = 0, a3 = 0;\n",
         G, G, (long long)iters, per, (long long)units, (long long)M,
         (long long)M, (long long)xo, (long long)xs, (long long)K,
         (long long)wo, (long long)(G == 1 ? 1 : K), acc);
  if (G == 1) {
    /* k in order into four sums by k % 4, as the split's chunks of four
     * go (the same sums) */
    pe__sb(&g->body,
           "#pragma unroll 2\n      for (int c = 0; c + 4 <= %lld; c += 4) {\n"
           "        a0 = fma((%s)x[c], (%s)w[c * %lld], a0);\n"
           "        a1 = fma((%s)x[c + 1], (%s)w[(c + 1) * %lld], a1);\n"
           "        a2 = fma((%s)x[c + 2], (%s)w[(c + 2) * %lld], a2);\n"
           "        a3 = fma((%s)x[c + 3], (%s)w[(c + 3) * %lld], a3);\n"
           "      }\n",
           (long long)K, acc, acc, (long long)M, acc, acc, (long long)M, acc,
           acc, (long long)M, acc, acc, (long long)M);
    for (int64_t c = K / 4 * 4; c < K; c++) {
      pe__sb(&g->body, "      a%d = fma((%s)x[%lld], (%s)w[%lld], a%d);\n",
             (int)(c % 4), acc, (long long)c, acc, (long long)(c * M),
             (int)(c % 4));
    }
    pe__sb(&g->body, "      {\n");
  } else {
    pe__sb(&g->body,
           "#pragma unroll\n      for (int i = 0; i < %lld; i++) {\n"
           "        const int c = sub + i * %d;\n",
           (long long)cpt, G);
    char guard[48] = "";
    if (chunks % G != 0) {
      snprintf(guard, sizeof guard, "if (c < %lld) ", (long long)chunks);
    }
    if (vec) {
      pe__sb(&g->body,
             "        %s{\n"
             "          const float4 xv = ((const float4 *)x)[c];\n"
             "          const float4 wv = ((const float4 *)w)[c];\n"
             "          a0 = fma((%s)xv.x, (%s)wv.x, a0);\n"
             "          a1 = fma((%s)xv.y, (%s)wv.y, a1);\n"
             "          a2 = fma((%s)xv.z, (%s)wv.z, a2);\n"
             "          a3 = fma((%s)xv.w, (%s)wv.w, a3);\n        }\n",
             guard, acc, acc, acc, acc, acc, acc, acc, acc);
    } else {
      pe__sb(&g->body,
             "        %s{\n          const %s p = (%s)x[c] * w[c];\n"
             "          if (i %% 4 == 0) a0 += p;\n"
             "          else if (i %% 4 == 1) a1 += p;\n"
             "          else if (i %% 4 == 2) a2 += p;\n"
             "          else a3 += p;\n        }\n",
             guard, acc, acc);
    }
  }
  pe__sb(&g->body, "      }\n      %s acc = (a0 + a1) + (a2 + a3);\n", acc);
  for (int d = G / 2; d > 0; d /= 2) {
    pe__sb(&g->body, "      acc += __shfl_xor_sync(0xffffffffu, acc, %d);\n",
           d);
  }
  char sum[96], act[200];
  pe__gen_dense_sum(sum, sizeof sum, bo, "m");
  pe__sb(&g->body,
         "      if (u0 < %lld && sub == 0) {\n        const float y = %s;\n"
         "        ",
         (long long)units, pe__gen_act(s, sum, act, sizeof act));
  pe__gen_store(g, o, "u", "y");
  pe__sb(&g->body, "\n      }\n    }\n  }\n");
  return PE_OK;
}

/* A strided copy (a transpose, say): output element e of p[1] a window
 * from input offset p[0] + sum over the axes of e's index times the
 * input's stride (dims and st[0], every one a constant here). */
static int pe__gen_strided(pe__gen_t *g, int k, const pe_cuda_step_t *s,
                           const pe__gen_out_t *o) {
  const int64_t E = s->p[1];
  int64_t reach = s->p[0] + 1;
  for (int d = 0; d < s->rank; d++) {
    if (s->dims[d] < 1 || s->st[0][d] < 0) {
      return pe__unsupported(g, k, "a strided copy of negative strides");
    }
    reach += (s->dims[d] - 1) * s->st[0][d];
  }
  if (E < 1 || s->numel != E || s->rank < 1 || s->rank > PE_CUDA_MAX_RANK ||
      s->p[0] < 0) {
    return pe__unsupported(g, k, "a strided copy of shapes that do not agree");
  }
  int64_t xo = 0, xs = 0;
  int rc = pe__gen_at(g, k, (uint64_t)(uintptr_t)s->in[0], s->in_stride[0],
                      reach, &xo, &xs);
  if (rc != PE_OK) {
    return rc;
  }
  pe__gen_each_open(g, E);
  pe__sb(&g->body, "        int r = e, off = %lld;\n", (long long)s->p[0]);
  for (int d = s->rank - 1; d >= 0; d--) {
    pe__sb(&g->body, "        off += r %% %lld * %lld;\n        r /= %lld;\n",
           (long long)s->dims[d], (long long)s->st[0][d],
           (long long)s->dims[d]);
  }
  char v[96];
  snprintf(v, sizeof v, "sh[%lld + b * %lld + off]", (long long)xo,
           (long long)xs);
  pe__sb(&g->body, "        ");
  pe__gen_store(g, o, "e", v);
  pe__gen_each_close(g);
  return PE_OK;
}

/* Where an optional operand ref lives (pe__gen_at), or *off -1 where
 * there is none; a constant only (copied as stored). */
static int pe__gen_const(pe__gen_t *g, int k, const float *ref, int64_t numel,
                         int64_t *off) {
  int64_t st = 0;
  *off = -1;
  if (ref == NULL) {
    return PE_OK;
  }
  int rc = pe__gen_at(g, k, (uint64_t)(uintptr_t)ref, 0, numel, off, &st);
  if (rc == PE_OK && st != 0) {
    return pe__unsupported(g, k, "a mask that is not a constant");
  }
  return rc;
}

/* LayerNormalization: a warp per two rows, pe__ln_rows<2>
 * (src/cuda/rows.cuh: each row's arithmetic as the steps' kernel's row a
 * warp makes it, so the same bits); with in[1], the residual add folded
 * into it. */
static int pe__gen_layernorm(pe__gen_t *g, int k, const pe_cuda_step_t *s,
                             const pe__gen_out_t *o) {
  const int64_t R = s->p[0], len = s->p[1];
  if (R < 1 || len < 1 || s->numel != R * len || s->w == NULL || o->answer) {
    return pe__unsupported(g, k, "a LayerNorm of shapes that do not agree");
  }
  int64_t xo = 0, xs = 0, x2o = -1, x2s = 0, bo = -1;
  int rc = pe__gen_at(g, k, (uint64_t)(uintptr_t)s->in[0], s->in_stride[0],
                      R * len, &xo, &xs);
  if (rc == PE_OK && s->in[1] != NULL) {
    rc = pe__gen_at(g, k, (uint64_t)(uintptr_t)s->in[1], s->in_stride[1],
                    R * len, &x2o, &x2s);
  }
  const int64_t wo = rc == PE_OK ? pe__gen_w(g, k, (uint64_t)(uintptr_t)s->w,
                                             len, PE__W_ASIS, 0, 0)
                                 : -1;
  if (wo >= 0 && s->bias != NULL) {
    bo = pe__gen_w(g, k, (uint64_t)(uintptr_t)s->bias, len, PE__W_ASIS, 0, 0);
  }
  if (rc != PE_OK || wo < 0 || (s->bias != NULL && bo < 0)) {
    return PE_EUNSUPPORTED;
  }
  /* two rows a warp, the last one alone where R is odd */
  const int tpw = pe__gen_tpw(32 * ((R + 1) / 2));
  g->want = tpw > g->want ? tpw : g->want;
  pe__gen_windows(g, tpw);
  char x2[64] = "0", bias[48] = "0", eps[PE__FLT];
  if (x2o >= 0) {
    snprintf(x2, sizeof x2, "sh + %lld + b * %lld + r * %lld", (long long)x2o,
             (long long)x2s, (long long)len);
  }
  if (bo >= 0) {
    snprintf(bias, sizeof bias, "sh + %lld", (long long)bo);
  }
  pe__flt(eps, s->f[0]);
  pe__sb(
      &g->body,
      "    for (int r = (l >> 5) * 2; r < %lld; r += %d) {\n"
      "      const float *x = sh + %lld + b * %lld + r * %lld;\n"
      "      float *y = sh + %lld + b * %lld + r * %lld;\n"
      "      if (r + 1 < %lld) {\n"
      "        pe__ln_rows<2>(x, %s, y, %lld, %lld, l & 31, sh + %lld, %s, "
      "%s, 0, 0);\n"
      "      } else {\n"
      "        pe__ln_row(x, %s, y, %lld, l & 31, sh + %lld, %s, %s, 0, 0);\n"
      "      }\n    }\n  }\n",
      (long long)R, tpw / 32 * 2, (long long)xo, (long long)xs, (long long)len,
      (long long)o->off, (long long)o->st, (long long)len, (long long)R, x2,
      (long long)len, (long long)len, (long long)wo, bias, eps, x2,
      (long long)len, (long long)wo, bias, eps);
  return PE_OK;
}

/* The heads of an attention block: a warp per (head, query) row,
 * pe__attn_row (src/cuda/rows.cuh) as the steps' kernels order it, so the
 * same bits, over the keys copied into scratch first; the masks
 * constants. */
static int pe__gen_attention(pe__gen_t *g, int k, const pe_cuda_step_t *s,
                             const pe__gen_out_t *o) {
  const int64_t L = s->p[0], E = s->p[1], H = s->p[2], D = s->p[3];
  const int64_t mh = s->p[4] != 0, E3 = 3 * E;
  if (L < 1 || E < 1 || H < 1 || D < 1 || H * D != E || s->numel != L * E ||
      o->answer) {
    return pe__unsupported(g, k, "attention heads of shapes that do not agree");
  }
  int64_t xo = 0, xs = 0, mo = -1, ro = -1;
  int rc = pe__gen_at(g, k, (uint64_t)(uintptr_t)s->in[0], s->in_stride[0],
                      L * E3, &xo, &xs);
  const int64_t mn = (mh ? H : 1) * L * L;
  rc = rc == PE_OK ? pe__gen_const(g, k, s->in[1], mn, &mo) : rc;
  rc = rc == PE_OK ? pe__gen_const(g, k, s->in[2], mn, &ro) : rc;
  if (rc != PE_OK) {
    return rc;
  }
  /* the keys of every head first copied into scratch, rows of P floats,
   * P odd, so that the lanes of a warp, a key each, read different banks
   * at each column (the projections' rows lie 3E floats apart: where 3E is
   * a multiple of 32, as at d_model 32, every lane's read of a column hits
   * one bank) */
  const int64_t P = D % 2 == 0 ? D + 1 : D + 2, scr = H * L * P;
  g->scr_ps = scr > g->scr_ps ? scr : g->scr_ps;
  pe__sb(&g->body,
         "  for (int e = tid; e < (int)n * %lld; e += PE_G_NT) {\n"
         "    const int b = e / %lld, r = e %% %lld, j = r / %lld %% %lld,\n"
         "              h = r / %lld, d = r %% %lld;\n"
         "    sh[%lld + b * %lld + (h * %lld + j) * %lld + d] =\n"
         "        sh[%lld + b * %lld + j * %lld + %lld + h * %lld + d];\n"
         "  }\n  __syncthreads();\n",
         (long long)(H * L * D), (long long)(H * L * D), (long long)(H * L * D),
         (long long)D, (long long)L, (long long)(L * D), (long long)D,
         (long long)g->off_scr, (long long)scr, (long long)L, (long long)P,
         (long long)xo, (long long)xs, (long long)E3, (long long)E,
         (long long)D);
  /* 32 / D query rows a warp where D is a power of two up to 16
   * (pe__attn_rows), else one */
  const int64_t rw =
      (D & (D - 1)) == 0 && D <= 16 && L <= PE__GEN_ATTN_PK * D ? 32 / D : 1;
  const int64_t nq = (L + rw - 1) / rw;
  const int tpw = pe__gen_tpw(32 * H * nq);
  g->want = tpw > g->want ? tpw : g->want;
  pe__gen_windows(g, tpw);
  char mrow[80] = "0", rrow[80] = "0", sc[PE__FLT];
  if (mo >= 0) {
    snprintf(mrow, sizeof mrow, "sh + %lld + (h * %lld + i) * %lld",
             (long long)mo, (long long)(mh * L), (long long)L);
  }
  if (ro >= 0) {
    snprintf(rrow, sizeof rrow, "sh + %lld + (h * %lld + i) * %lld",
             (long long)ro, (long long)(mh * L), (long long)L);
  }
  if (rw > 1) {
    pe__sb(&g->body,
           "    static_assert(%lld <= PE__ATTN_PK * %lld, \"pe__attn_rows "
           "holds the keys\");\n",
           (long long)L, (long long)D);
    pe__sb(&g->body,
           "    for (int u = l >> 5; u < %lld; u += %d) {\n"
           "      const int i = u %% %lld * %lld, h = u / %lld;\n"
           "      const float *qkv = sh + %lld + b * %lld;\n"
           "      pe__attn_rows(qkv + i * %lld + h * %lld, %lld,\n"
           "                    sh + %lld + b * %lld + h * %lld, %lld,\n"
           "                    qkv + %lld + h * %lld, %lld, %lld, %lld, %s,\n"
           "                    %s, %s, %lld - i < %lld ? %lld - i : %lld,\n"
           "                    l & 31, sh + %lld + b * %lld + i * %lld + h * "
           "%lld, %lld);\n"
           "    }\n  }\n",
           (long long)(H * nq), tpw / 32, (long long)nq, (long long)rw,
           (long long)nq, (long long)xo, (long long)xs, (long long)E3,
           (long long)D, (long long)E3, (long long)g->off_scr, (long long)scr,
           (long long)(L * P), (long long)P, (long long)(2 * E), (long long)D,
           (long long)E3, (long long)L, (long long)D, pe__flt(sc, s->f[0]),
           mrow, rrow, (long long)L, (long long)rw, (long long)L, (long long)rw,
           (long long)o->off, (long long)o->st, (long long)E, (long long)D,
           (long long)E);
    return PE_OK;
  }
  pe__sb(&g->body,
         "    for (int u = l >> 5; u < %lld; u += %d) {\n"
         "      const int i = u %% %lld, h = u / %lld;\n"
         "      const float *qkv = sh + %lld + b * %lld;\n"
         "      pe__attn_row(qkv + i * %lld + h * %lld,\n"
         "                   sh + %lld + b * %lld + h * %lld, %lld,\n"
         "                   qkv + %lld + h * %lld, %lld, %lld, %lld, %s,\n"
         "                   %s, %s, l & 31,\n"
         "                   sh + %lld + b * %lld + i * %lld + h * %lld);\n"
         "    }\n  }\n",
         (long long)(H * L), tpw / 32, (long long)L, (long long)L,
         (long long)xo, (long long)xs, (long long)E3, (long long)D,
         (long long)g->off_scr, (long long)scr, (long long)(L * P),
         (long long)P, (long long)(2 * E), (long long)D, (long long)E3,
         (long long)L, (long long)D, pe__flt(sc, s->f[0]), mrow, rrow,
         (long long)o->off, (long long)o->st, (long long)E, (long long)D);
  return PE_OK;
}

/* A reduction over any axes (ReduceSum, Mean, Max, Min, Prod): a thread
 * per output, the kept axes (p[2] of them, sizes st[1], input strides
 * st[2]) giving its first element and the reduced ones (p[3], st[3],
 * st[4]) the others, in the input's order, by rows.cuh's pe__red_init
 * and pe__red_step, as the steps' kernel takes them. */
static int pe__gen_reduce(pe__gen_t *g, int k, const pe_cuda_step_t *s,
                          const pe__gen_out_t *o) {
  const int nk = (int)s->p[2], nr = (int)s->p[3], op = s->binop;
  const int64_t R = s->p[1];
  if (nk < 0 || nr < 1 || nk > PE_PLAN_MAX_RANK || nr > PE_PLAN_MAX_RANK ||
      R < 1 ||
      (op >= 0 && op != PE_PLAN_OP_ADD && op != PE_PLAN_OP_MUL &&
       op != PE_PLAN_OP_MAX && op != PE_PLAN_OP_MIN)) {
    return pe__unsupported(g, k, "a reduction of another kind");
  }
  /* the input's floats a window that it reads */
  int64_t reach = 1;
  for (int d = 0; d < nk; d++) {
    reach += (s->st[1][d] - 1) * s->st[2][d];
  }
  for (int d = 0; d < nr; d++) {
    reach += (s->st[3][d] - 1) * s->st[4][d];
  }
  int64_t xo = 0, xs = 0;
  int rc = pe__gen_at(g, k, (uint64_t)(uintptr_t)s->in[0], s->in_stride[0],
                      reach, &xo, &xs);
  if (rc != PE_OK) {
    return rc;
  }
  pe__gen_each_open(g, s->numel);
  pe__sb(&g->body, "        int q = e, base = 0;\n");
  for (int d = nk - 1; d >= 0; d--) {
    pe__sb(&g->body, "        base += q %% %lld * %lld;\n        q /= %lld;\n",
           (long long)s->st[1][d], (long long)s->st[2][d],
           (long long)s->st[1][d]);
  }
  pe__sb(&g->body,
         "        const float *x = sh + %lld + b * %lld + base;\n"
         "        float acc = pe__red_init(%d);\n"
         "        for (int r = 0; r < %lld; r++) {\n"
         "          int rest = r, off = 0;\n",
         (long long)xo, (long long)xs, op, (long long)R);
  for (int d = nr - 1; d >= 0; d--) {
    pe__sb(&g->body,
           "          off += rest %% %lld * %lld;\n          rest /= %lld;\n",
           (long long)s->st[3][d], (long long)s->st[4][d],
           (long long)s->st[3][d]);
  }
  pe__sb(&g->body,
         "          acc = pe__red_step(%d, acc, x[off]);\n        }\n", op);
  if (op < 0) {
    pe__sb(&g->body,
           "        const float y = __fdiv_rn(acc, (float)%lld);\n        ",
           (long long)R);
  } else {
    pe__sb(&g->body, "        const float y = acc;\n        ");
  }
  pe__gen_store(g, o, "e", "y");
  pe__gen_each_close(g);
  return PE_OK;
}

/* Gather along an axis of p[1] entries, inner p[2], the indices (n_idx,
 * int64, checked at load) read from their device copy. */
static int pe__gen_gather(pe__gen_t *g, int k, const pe_cuda_step_t *s,
                          const pe__gen_out_t *o) {
  const int64_t dim = s->p[1], inner = s->p[2], ni = s->n_idx, E = s->numel;
  const uint64_t ir = (uint64_t)(uintptr_t)s->idx;
  const uint64_t iv = PE_CUDA_REF_VALUE(ir);
  if (dim < 1 || inner < 1 || ni < 1 || E < 1 || E % (inner * ni) != 0 ||
      PE_CUDA_REF_KIND(ir) != PE_CUDA_REF_BLOB ||
      iv >= (uint64_t)g->p->n_blobs || g->p->blob_floats[iv] < 2 * ni) {
    return pe__unsupported(g, k, "a gather of shapes that do not agree");
  }
  int64_t xo = 0, xs = 0;
  int rc = pe__gen_at(g, k, (uint64_t)(uintptr_t)s->in[0], s->in_stride[0],
                      E / (inner * ni) * dim * inner, &xo, &xs);
  if (rc != PE_OK) {
    return rc;
  }
  pe__gen_each_open(g, E);
  pe__sb(&g->body,
         "        const long long *idx = (const long long *)0x%llxull;\n"
         "        const int q = e / %lld / %lld, kk = e / %lld %% %lld;\n"
         "        const int at = (q * %lld + (int)__ldg(idx + kk)) * %lld + "
         "e %% %lld;\n        ",
         (unsigned long long)(uintptr_t)g->p->blob_dev[iv], (long long)inner,
         (long long)ni, (long long)inner, (long long)ni, (long long)dim,
         (long long)inner, (long long)inner);
  char v[96];
  snprintf(v, sizeof v, "sh[%lld + b * %lld + at]", (long long)xo,
           (long long)xs);
  pe__gen_store(g, o, "e", v);
  pe__gen_each_close(g);
  return PE_OK;
}

/* Concat: a window's elements as Q rows of the parts side by side, part
 * k st[k][0] elements of a row (the step kernel's reading of it). */
static int pe__gen_concat(pe__gen_t *g, int k, const pe_cuda_step_t *s,
                          const pe__gen_out_t *o) {
  const int64_t E = s->numel;
  int64_t per = 0;
  for (int i = 0; i < s->n_in && i < PE_CUDA_MAX_IN; i++) {
    per += s->st[i][0];
  }
  if (E < 1 || s->n_in < 1 || s->n_in > PE_CUDA_MAX_IN || per < 1 ||
      E % per != 0) {
    return pe__unsupported(g, k, "a concat of shapes that do not agree");
  }
  const int64_t Q = E / per;
  int64_t xo[PE_CUDA_MAX_IN], xs[PE_CUDA_MAX_IN];
  for (int i = 0; i < s->n_in; i++) {
    if (s->st[i][0] < 1) {
      return pe__unsupported(g, k, "a concat of an empty part");
    }
    int rc = pe__gen_at(g, k, (uint64_t)(uintptr_t)s->in[i], s->in_stride[i],
                        Q * s->st[i][0], &xo[i], &xs[i]);
    if (rc != PE_OK) {
      return rc;
    }
  }
  pe__gen_each_open(g, E);
  pe__sb(&g->body,
         "        const int q = e / %lld, r = e %% %lld;\n        float y;\n",
         (long long)per, (long long)per);
  int64_t at = 0;
  for (int i = 0; i < s->n_in; i++) {
    const int64_t c = s->st[i][0];
    pe__sb(&g->body,
           "        %sif (r < %lld) {\n"
           "          y = sh[%lld + b * %lld + q * %lld + (r - %lld)];\n"
           "        }\n",
           i > 0 ? "else " : "", (long long)(at + c), (long long)xo[i],
           (long long)xs[i], (long long)c, (long long)at);
    at += c;
  }
  pe__sb(&g->body, "        ");
  pe__gen_store(g, o, "e", "y");
  pe__gen_each_close(g);
  return PE_OK;
}

/* Max or average pooling over [C][H][W], a thread per output: the taps
 * inside the input in the CPU's order (rows, then columns), the maximum
 * from -inf by `v > acc`, the average a float sum over the count of
 * taps inside the input, or inside the padded extent (p[13],
 * count_include_pad), as pe_ks_pool_taps and the general kernel. */
static int pe__gen_pool2d(pe__gen_t *g, int k, const pe_cuda_step_t *s,
                          const pe__gen_out_t *o) {
  const int64_t C = s->p[0], H = s->p[1], W = s->p[2], OH = s->p[3];
  const int64_t OW = s->p[4], kh = s->p[5], kw = s->p[6], sth = s->p[7];
  const int64_t stw = s->p[8], pt = s->p[9], pl = s->p[10], dh = s->p[11];
  const int64_t dw = s->p[12], pb = s->p[15], pr = s->p[16];
  const int cip = s->p[13] != 0, is_max = s->p[14] != 0;
  if (s->rank == 3) {
    return pe__unsupported(g, k, "a 3-D pooling");
  }
  if (C < 1 || H < 1 || W < 1 || OH < 1 || OW < 1 || kh < 1 || kw < 1 ||
      sth < 1 || stw < 1 || dh < 1 || dw < 1 || s->numel != C * OH * OW) {
    return pe__unsupported(g, k, "a pooling of shapes that do not agree");
  }
  int64_t xo = 0, xs = 0;
  const int rc = pe__gen_at(g, k, (uint64_t)(uintptr_t)s->in[0],
                            s->in_stride[0], C * H * W, &xo, &xs);
  if (rc != PE_OK) {
    return rc;
  }
  pe__gen_each_open(g, s->numel);
  pe__sb(&g->body,
         "        const int ow = e %% %lld, r = e / %lld, oh = r %% %lld;\n"
         "        const int h0 = oh * %lld - %lld, w0 = ow * %lld - %lld;\n"
         "        const float *xc = sh + %lld + b * %lld + r / %lld * %lld;\n"
         "        float acc = %s;\n        int cnt = 0;\n"
         "#pragma unroll\n        for (int a = 0; a < %lld; a++) {\n"
         "          const int h = h0 + a * %lld;\n"
         "#pragma unroll\n          for (int j = 0; j < %lld; j++) {\n"
         "            const int w = w0 + j * %lld;\n",
         (long long)OW, (long long)OW, (long long)OH, (long long)sth,
         (long long)pt, (long long)stw, (long long)pl, (long long)xo,
         (long long)xs, (long long)OH, (long long)(H * W),
         is_max ? "__int_as_float((int)0xff800000u)" : "0.0f", (long long)kh,
         (long long)dh, (long long)kw, (long long)dw);
  if (cip) {
    pe__sb(&g->body,
           "            cnt += h >= %lld && h < %lld && w >= %lld && "
           "w < %lld;\n",
           (long long)-pt, (long long)(H + pb), (long long)-pl,
           (long long)(W + pr));
  }
  pe__sb(&g->body,
         "            if (h >= 0 && h < %lld && w >= 0 && w < %lld) {\n"
         "              const float v = xc[h * %lld + w];\n",
         (long long)H, (long long)W, (long long)W);
  if (is_max) {
    pe__sb(&g->body, "              acc = v > acc ? v : acc;\n");
  } else {
    pe__sb(&g->body, "              acc = __fadd_rn(acc, v);\n%s",
           cip ? "" : "              cnt++;\n");
  }
  pe__sb(&g->body,
         "            }\n          }\n        }\n        (void)cnt;\n"
         "        const float y = %s;\n        ",
         is_max ? "acc" : "__fdiv_rn(acc, (float)(cnt > 0 ? cnt : 1))");
  pe__gen_store(g, o, "e", "y");
  pe__gen_each_close(g);
  return PE_OK;
}

/* Softmax (act set: LogSoftmax) over the axis of p[1] entries, outer
 * p[0], inner p[2], a thread per row: the maximum, the sum of the
 * exponentials in order, then each output, an exponential taken again
 * (the same bits) times the sum's reciprocal, or x - max - log(sum), as
 * the general kernel. The outputs are only stored, so that the scores
 * may go straight to the answer. */
static int pe__gen_softmax(pe__gen_t *g, int k, const pe_cuda_step_t *s,
                           const pe__gen_out_t *o) {
  const int64_t outer = s->p[0], L = s->p[1], inner = s->p[2];
  if (outer < 1 || L < 1 || inner < 1 || s->numel != outer * L * inner) {
    return pe__unsupported(g, k, "a softmax of shapes that do not agree");
  }
  int64_t xo = 0, xs = 0;
  const int rc = pe__gen_at(g, k, (uint64_t)(uintptr_t)s->in[0],
                            s->in_stride[0], s->numel, &xo, &xs);
  if (rc != PE_OK) {
    return rc;
  }
  pe__gen_each_open(g, outer * inner);
  pe__sb(&g->body,
         "        const int at = e / %lld * %lld + e %% %lld;\n"
         "        const float *x = sh + %lld + b * %lld + at;\n"
         "        float mx = x[0], sum = 0.0f;\n"
         "        for (int l = 1; l < %lld; l++) {\n"
         "          mx = x[l * %lld] > mx ? x[l * %lld] : mx;\n        }\n"
         "        for (int l = 0; l < %lld; l++) {\n"
         "          sum = __fadd_rn(sum, pe__expf(__fsub_rn(x[l * %lld], "
         "mx)));\n        }\n",
         (long long)inner, (long long)(L * inner), (long long)inner,
         (long long)xo, (long long)xs, (long long)L, (long long)inner,
         (long long)inner, (long long)L, (long long)inner);
  if (s->act) {
    pe__sb(&g->body, "        const float ls = (float)log((double)sum);\n");
  } else {
    pe__sb(&g->body, "        const float inv = __fdiv_rn(1.0f, sum);\n");
  }
  char y[160];
  if (s->act) {
    snprintf(y, sizeof y, "__fsub_rn(__fsub_rn(x[l * %lld], mx), ls)",
             (long long)inner);
  } else {
    snprintf(y, sizeof y,
             "__fmul_rn(pe__expf(__fsub_rn(x[l * %lld], mx)), inv)",
             (long long)inner);
  }
  pe__sb(&g->body,
         "        for (int l = 0; l < %lld; l++) {\n"
         "          const float y = %s;\n          ",
         (long long)L, y);
  char idx[64];
  snprintf(idx, sizeof idx, "at + l * %lld", (long long)inner);
  pe__gen_store(g, o, idx, "y");
  pe__sb(&g->body, "\n        }");
  pe__gen_each_close(g);
  return PE_OK;
}

/* An output of a recurrent step (slot q), which must be on chip: its
 * offset and stride into *off and *st, or -1 in *off when absent. */
static int pe__gen_rnn_out(pe__gen_t *g, int k, const pe_cuda_step_t *s, int q,
                           int64_t numel, int64_t *off, int64_t *st) {
  *off = -1;
  *st = 0;
  const uint64_t r = (uint64_t)(uintptr_t)s->out[q];
  if (PE_CUDA_REF_KIND(r) == PE_CUDA_REF_NULL) {
    return PE_OK;
  }
  if (PE_CUDA_REF_KIND(r) != PE_CUDA_REF_ARENA) {
    return pe__unsupported(g, k,
                           "a recurrent step whose output is the model's");
  }
  return pe__gen_at(g, k, r, s->out_stride[q], numel, off, st);
}

/* Time steps a thread of pe__gen_rnn_xproj sums at once. */
#define PE__GEN_XT 8

/* A recurrent step's W x_t + bias for every window and step t into xp
 * (window b's [seq][GH] at xpo + b seq GH), every thread of the block:
 * a thread a gate row u and PE__GEN_XT steps, each W read once for them,
 * each sum a chain in k order from the bias, as the recurrence's own (the
 * same bits); x read 16 bytes at a time where its rows allow. */
static void pe__gen_rnn_xproj(pe__gen_t *g, const pe_cuda_step_t *s,
                              int64_t xpo, int64_t xo, int64_t xs, int64_t wo,
                              int64_t bo) {
  const int lstm = s->kind == PE_PLAN_LSTM;
  const int64_t seq = s->p[0], in = s->p[1], H = s->p[2];
  const int64_t GH = (lstm ? 4 : 3) * H;
  const int64_t tb = (seq + PE__GEN_XT - 1) / PE__GEN_XT;
  const int v4 = in % 4 == 0 && xo % 4 == 0 && xs % 4 == 0;
  pe__sb(&g->body,
         "    for (int e = tid; e < (int)n * %lld; e += %d) {\n"
         "      const int u = e %% %lld, r = e / %lld;\n"
         "      const int t0 = r %% %lld * %d, b = r / %lld;\n"
         "      const float *xr[%d];\n"
         "      float a[%d];\n"
         "#pragma unroll\n      for (int p = 0; p < %d; p++) {\n"
         "        /* steps past the last read the last again, never stored */\n"
         "        xr[p] = sh + %lld + b * %lld + "
         "(t0 + p < %lld ? t0 + p : %lld) * %lld;\n"
         "        a[p] = sh[%lld + u];\n      }\n",
         (long long)(GH * tb), g->nt, (long long)GH, (long long)GH,
         (long long)tb, PE__GEN_XT, (long long)tb, PE__GEN_XT, PE__GEN_XT,
         PE__GEN_XT, (long long)xo, (long long)xs, (long long)seq,
         (long long)(seq - 1), (long long)in, (long long)bo);
  if (v4) {
    pe__sb(&g->body,
           "      for (int q = 0; q < %lld; q += 4) {\n"
           "        const float w0 = sh[%lld + q * %lld + u], "
           "w1 = sh[%lld + (q + 1) * %lld + u];\n"
           "        const float w2 = sh[%lld + (q + 2) * %lld + u], "
           "w3 = sh[%lld + (q + 3) * %lld + u];\n"
           "#pragma unroll\n        for (int p = 0; p < %d; p++) {\n"
           "          const float4 xv = *(const float4 *)(xr[p] + q);\n"
           "          a[p] = fmaf(xv.x, w0, a[p]);\n"
           "          a[p] = fmaf(xv.y, w1, a[p]);\n"
           "          a[p] = fmaf(xv.z, w2, a[p]);\n"
           "          a[p] = fmaf(xv.w, w3, a[p]);\n        }\n      }\n",
           (long long)in, (long long)wo, (long long)GH, (long long)wo,
           (long long)GH, (long long)wo, (long long)GH, (long long)wo,
           (long long)GH, PE__GEN_XT);
  } else {
    pe__sb(&g->body,
           "      for (int q = 0; q < %lld; q++) {\n"
           "        const float w = sh[%lld + q * %lld + u];\n"
           "#pragma unroll\n        for (int p = 0; p < %d; p++) {\n"
           "          a[p] = fmaf(xr[p][q], w, a[p]);\n        }\n      }\n",
           (long long)in, (long long)wo, (long long)GH, PE__GEN_XT);
  }
  pe__sb(&g->body,
         "#pragma unroll\n      for (int p = 0; p < %d; p++) {\n"
         "        if (t0 + p < %lld) {\n"
         "          sh[%lld + b * %lld + (t0 + p) * %lld + u] = a[p];\n"
         "        }\n      }\n    }\n",
         PE__GEN_XT, (long long)seq, (long long)xpo, (long long)(seq * GH),
         (long long)GH);
}

/* LSTM or GRU, one direction (ONNX's equations: an LSTM's gates i, o, f,
 * c, a GRU's z, r, h with linear_before_reset, as PyTorch exports it; W
 * as W^T [in][GH], R as R^T [H][GH], one bias of GH, and a GRU's
 * recurrent bias of its h gate apart, bias2): each thread owns one gate
 * row u of the GH and a slot of the windows, the row's weights in its
 * registers (in shared memory when there are more than 96 of them); a
 * time step is the gate rows' sums over the slots' windows (W x_t + bias,
 * then R h_{t-1} in two sums, each rounded to float once, as the CPU
 * rounds them), a barrier, the state updates of every (window, unit), a
 * barrier. The sums and the states live in the windows' scratch: an
 * LSTM's [4H gates][H h][H c], a GRU's [2H z and r][H W x of h][H R h of
 * h][H h]. */
static int pe__gen_rnn(pe__gen_t *g, int k, const pe_cuda_step_t *s) {
  const int lstm = s->kind == PE_PLAN_LSTM;
  const int64_t seq = s->p[0], in = s->p[1], H = s->p[2];
  const int64_t rev = s->p[5] != 0, dirs = s->p[6] > 1 ? s->p[6] : 1;
  const int64_t dir = s->p[7], GH = (lstm ? 4 : 3) * H;
  if (seq < 1 || in < 1 || H < 1 || dir < 0 || dir >= dirs) {
    return pe__unsupported(g, k,
                           "a recurrent step of shapes that do not agree");
  }
  if (GH > PE__GEN_MAX_THREADS) {
    return pe__unsupported(g, k,
                           "a recurrent step of more gate rows than threads");
  }
  if (!lstm && (s->p[3] == 0 || s->in[2] != NULL || s->out[2] != NULL)) {
    return pe__unsupported(g, k, "a GRU without linear_before_reset");
  }
  if (lstm && s->p[8] != 0) {
    return pe__unsupported(g, k,
                           "an LSTM whose input projection is a step apart");
  }
  /* where h lives in the scratch, and an LSTM's c */
  const int64_t ho = lstm ? GH : GH + H, co = GH + H;
  int64_t xo = 0, xs = 0, h0o = -1, h0s = 0, c0o = -1, c0s = 0;
  int rc = pe__gen_at(g, k, (uint64_t)(uintptr_t)s->in[0], s->in_stride[0],
                      seq * in, &xo, &xs);
  if (rc == PE_OK && s->in[1] != NULL) {
    rc = pe__gen_at(g, k, (uint64_t)(uintptr_t)s->in[1], s->in_stride[1],
                    dirs * H, &h0o, &h0s);
  }
  if (rc == PE_OK && s->in[2] != NULL) {
    rc = pe__gen_at(g, k, (uint64_t)(uintptr_t)s->in[2], s->in_stride[2],
                    dirs * H, &c0o, &c0s);
  }
  int64_t yo = -1, ys = 0, hyo = -1, hys = 0, cyo = -1, cys = 0;
  rc = rc == PE_OK ? pe__gen_rnn_out(g, k, s, 0, seq * dirs * H, &yo, &ys) : rc;
  rc = rc == PE_OK ? pe__gen_rnn_out(g, k, s, 1, dirs * H, &hyo, &hys) : rc;
  rc = rc == PE_OK ? pe__gen_rnn_out(g, k, s, 2, dirs * H, &cyo, &cys) : rc;
  if (rc != PE_OK) {
    return rc;
  }
  const int64_t wo =
      pe__gen_w(g, k, (uint64_t)(uintptr_t)s->w, in * GH, PE__W_ASIS, 0, 0);
  const int64_t ro = wo >= 0 ? pe__gen_w(g, k, (uint64_t)(uintptr_t)s->w2,
                                         H * GH, PE__W_ASIS, 0, 0)
                             : -1;
  const int64_t bo = ro >= 0 ? pe__gen_w(g, k, (uint64_t)(uintptr_t)s->bias, GH,
                                         PE__W_ASIS, 0, 0)
                             : -1;
  const int64_t b2o =
      bo >= 0 && !lstm
          ? pe__gen_w(g, k, (uint64_t)(uintptr_t)s->bias2, H, PE__W_ASIS, 0, 0)
          : -2;
  if (bo < 0 || b2o == -1) {
    return PE_EUNSUPPORTED;
  }
  const int64_t scr = GH + 2 * H;
  g->scr_ps = scr > g->scr_ps ? scr : g->scr_ps;
  /* the rows' share of the block (every thread of it: the updates) */
  g->want = PE__GEN_MAX_THREADS;
  const int nt = g->nt, slots = nt / (int)GH;
  const int regs = in + H <= 96;
  const long long so = (long long)g->off_scr, ss = (long long)scr;
  /* staged, with W in shared memory: W x_t + bias of every step at once
   * before the recurrence, into free arena (xpo), so that a step's gate
   * sums read it instead of a chain of `in` products */
  const int64_t xpo =
      g->staged && !regs ? pe__gen_hole_take(g, seq * GH, 1) : -1;
  pe__sb(&g->body,
         "  {\n    const int u = tid %% %lld, slot = tid / %lld;\n"
         "    const float bu = slot < %d ? sh[%lld + u] : 0.0f;\n",
         (long long)GH, (long long)GH, slots, (long long)bo);
  if (regs) {
    pe__sb(&g->body,
           "    float wx[%lld], wh[%lld];\n"
           "#pragma unroll\n    for (int q = 0; q < %lld; q++) {\n"
           "      wx[q] = slot < %d ? sh[%lld + q * %lld + u] : 0.0f;\n    }\n"
           "#pragma unroll\n    for (int q = 0; q < %lld; q++) {\n"
           "      wh[q] = slot < %d ? sh[%lld + q * %lld + u] : 0.0f;\n    }\n",
           (long long)in, (long long)H, (long long)in, slots, (long long)wo,
           (long long)GH, (long long)H, slots, (long long)ro, (long long)GH);
  }
  /* the states: given, or zeros */
  pe__sb(&g->body,
         "    for (int e = tid; e < (int)n * %lld; e += %d) {\n"
         "      const int b = e / %lld, j = e %% %lld;\n"
         "      sh[%lld + b * %lld + %lld + j] = ",
         (long long)H, nt, (long long)H, (long long)H, so, ss, (long long)ho);
  if (h0o >= 0) {
    pe__sb(&g->body, "sh[%lld + b * %lld + %lld + j];\n", (long long)h0o,
           (long long)h0s, (long long)(dir * H));
  } else {
    pe__sb(&g->body, "0.0f;\n");
  }
  if (lstm) {
    pe__sb(&g->body, "      sh[%lld + b * %lld + %lld + j] = ", so, ss,
           (long long)co);
    if (c0o >= 0) {
      pe__sb(&g->body, "sh[%lld + b * %lld + %lld + j];\n", (long long)c0o,
             (long long)c0s, (long long)(dir * H));
    } else {
      pe__sb(&g->body, "0.0f;\n");
    }
  }
  /* the weights' reads (registers, or shared memory), their index an
   * expression of q */
  char wx[64], wh[4][64], whl[64], t[48];
  static const char *const hq[4] = {"q", "q + 1", "q + 2", "q + 3"};
  const int h4 = H % 4 == 0; /* h read 16 bytes at a time */
  if (regs) {
    snprintf(wx, sizeof wx, "wx[q]");
    snprintf(whl, sizeof whl, "wh[%lld]", (long long)(H - 1));
  } else {
    snprintf(wx, sizeof wx, "sh[%lld + q * %lld + u]", (long long)wo,
             (long long)GH);
    snprintf(whl, sizeof whl, "sh[%lld + u]", (long long)(ro + (H - 1) * GH));
  }
  for (int i = 0; i < 4; i++) {
    if (regs) {
      snprintf(wh[i], sizeof wh[i], "wh[%s]", hq[i]);
    } else {
      snprintf(wh[i], sizeof wh[i], "sh[%lld + (%s) * %lld + u]", (long long)ro,
               hq[i], (long long)GH);
    }
  }
  if (rev) {
    snprintf(t, sizeof t, "%lld - it", (long long)(seq - 1));
  } else {
    snprintf(t, sizeof t, "it");
  }
  pe__sb(&g->body, "    }\n");
  if (xpo >= 0) {
    pe__gen_rnn_xproj(g, s, xpo, xo, xs, wo, bo);
  }
  pe__sb(&g->body,
         "    __syncthreads();\n"
         "    for (int it = 0; it < %lld; it++) {\n"
         "      const int t = %s;\n"
         "      if (slot < %d)\n"
         "      for (int b = slot; b < (int)n; b += %d) {\n",
         (long long)seq, t, slots, slots);
  if (xpo < 0) {
    pe__sb(&g->body,
           "        const float *xt = sh + %lld + b * %lld + t * %lld;\n",
           (long long)xo, (long long)xs, (long long)in);
  }
  pe__sb(&g->body, "        const float *hb = sh + %lld + b * %lld + %lld;\n",
         so, ss, (long long)ho);
  if (xpo >= 0) {
    pe__sb(&g->body,
           "        float ax = sh[%lld + b * %lld + t * %lld + u], a0 = 0.0f, "
           "a1 = 0.0f;\n",
           (long long)xpo, (long long)(seq * GH), (long long)GH);
  } else {
    pe__sb(&g->body,
           "        float ax = bu, a0 = 0.0f, a1 = 0.0f;\n"
           "#pragma unroll\n        for (int q = 0; q < %lld; q++) {\n"
           "          ax = fmaf(xt[q], %s, ax);\n        }\n",
           (long long)in, wx);
  }
  /* R h: the even k into a0, the odd into a1 */
  if (h4) {
    pe__sb(&g->body,
           "#pragma unroll\n        for (int q = 0; q < %lld; q += 4) {\n"
           "          const float4 hv = *(const float4 *)(hb + q);\n"
           "          a0 = fmaf(hv.x, %s, a0);\n"
           "          a1 = fmaf(hv.y, %s, a1);\n"
           "          a0 = fmaf(hv.z, %s, a0);\n"
           "          a1 = fmaf(hv.w, %s, a1);\n        }\n",
           (long long)H, wh[0], wh[1], wh[2], wh[3]);
  } else {
    pe__sb(&g->body,
           "#pragma unroll\n        for (int q = 0; q + 1 < %lld; q += 2) {\n"
           "          a0 = fmaf(hb[q], %s, a0);\n"
           "          a1 = fmaf(hb[q + 1], %s, a1);\n        }\n",
           (long long)H, wh[0], wh[1]);
    if (H % 2 != 0) {
      pe__sb(&g->body, "        a0 = fmaf(hb[%lld], %s, a0);\n",
             (long long)(H - 1), whl);
    }
  }
  if (lstm) {
    pe__sb(&g->body,
           "        sh[%lld + b * %lld + u] = __fadd_rn(ax, __fadd_rn(a0, "
           "a1));\n",
           so, ss);
  } else {
    /* z and r whole; the h gate's two sums apart (r scales R h) */
    pe__sb(&g->body,
           "        if (u < %lld) {\n"
           "          sh[%lld + b * %lld + u] = __fadd_rn(ax, __fadd_rn(a0, "
           "a1));\n"
           "        } else {\n"
           "          sh[%lld + b * %lld + u] = ax;\n"
           "          sh[%lld + b * %lld + %lld + u] = __fadd_rn(a0, a1);\n"
           "        }\n",
           (long long)(2 * H), so, ss, so, ss, so, ss, (long long)H);
  }
  pe__sb(&g->body,
         "      }\n      __syncthreads();\n"
         "      for (int e = tid; e < (int)n * %lld; e += %d) {\n"
         "        const int b = e / %lld, j = e %% %lld;\n"
         "        float *gb = sh + %lld + b * %lld;\n",
         (long long)H, nt, (long long)H, (long long)H, so, ss);
  if (lstm) {
    pe__sb(
        &g->body,
        "        const float ig = pe__act(gb[j], PE_PLAN_ACT_SIGMOID, "
        "0.0f);\n"
        "        const float og = pe__act(gb[%lld + j], PE_PLAN_ACT_SIGMOID, "
        "0.0f);\n"
        "        const float fg = pe__act(gb[%lld + j], PE_PLAN_ACT_SIGMOID, "
        "0.0f);\n"
        "        const float cg = pe__tanhf(gb[%lld + j]);\n"
        "        const float c = __fadd_rn(__fmul_rn(fg, gb[%lld + j]), "
        "__fmul_rn(ig, cg));\n"
        "        const float hn = __fmul_rn(og, pe__tanhf(c));\n"
        "        gb[%lld + j] = c;\n",
        (long long)H, (long long)(2 * H), (long long)(3 * H), (long long)co,
        (long long)co);
  } else {
    pe__sb(
        &g->body,
        "        const float z = pe__act(gb[j], PE_PLAN_ACT_SIGMOID, "
        "0.0f);\n"
        "        const float rg = pe__act(gb[%lld + j], PE_PLAN_ACT_SIGMOID, "
        "0.0f);\n"
        "        const float nn = pe__tanhf(__fadd_rn(gb[%lld + j], "
        "__fmul_rn(rg, __fadd_rn(gb[%lld + j], sh[%lld + j]))));\n"
        "        const float hn = __fadd_rn(__fmul_rn(__fsub_rn(1.0f, z), "
        "nn), __fmul_rn(z, gb[%lld + j]));\n",
        (long long)H, (long long)(2 * H), (long long)GH, (long long)b2o,
        (long long)ho);
  }
  pe__sb(&g->body, "        gb[%lld + j] = hn;\n", (long long)ho);
  if (yo >= 0) {
    pe__sb(&g->body,
           "        sh[%lld + b * %lld + (t * %lld + %lld) * %lld + j] = hn;\n",
           (long long)yo, (long long)ys, (long long)dirs, (long long)dir,
           (long long)H);
  }
  pe__sb(&g->body, "      }\n      __syncthreads();\n    }\n");
  if (hyo >= 0 || cyo >= 0) {
    pe__sb(&g->body,
           "    for (int e = tid; e < (int)n * %lld; e += %d) {\n"
           "      const int b = e / %lld, j = e %% %lld;\n",
           (long long)H, nt, (long long)H, (long long)H);
    if (hyo >= 0) {
      pe__sb(
          &g->body,
          "      sh[%lld + b * %lld + %lld + j] = sh[%lld + b * %lld + %lld + "
          "j];\n",
          (long long)hyo, (long long)hys, (long long)(dir * H), so, ss,
          (long long)ho);
    }
    if (cyo >= 0) {
      pe__sb(
          &g->body,
          "      sh[%lld + b * %lld + %lld + j] = sh[%lld + b * %lld + %lld + "
          "j];\n",
          (long long)cyo, (long long)cys, (long long)(dir * H), so, ss,
          (long long)co);
    }
    pe__sb(&g->body, "    }\n");
  }
  pe__sb(&g->body, "  }\n");
  return PE_OK;
}

/* Staged: the copies of the weights of the step whose code begins at
 * body offset at put before that code, with a barrier between (the
 * barrier after the step before ends the last reads of what they
 * overwrite). */
static void pe__gen_unstage(pe__gen_t *g, size_t at) {
  if (!g->staged || g->stage.len == 0 || g->body.oom || g->stage.oom) {
    g->body.oom |= g->stage.oom;
    return;
  }
  char *tail = strdup(g->body.buf + at);
  if (tail == NULL) {
    g->body.oom = 1;
    return;
  }
  g->body.len = at;
  g->body.buf[at] = '\0';
  pe__sb(&g->body, "%s  __syncthreads();\n%s", g->stage.buf, tail);
  free(tail);
  g->stage.len = 0;
  g->stage.buf[0] = '\0';
}

/* A step's form: its code into g->body (o: where its output goes; a
 * recurrent step places its outputs itself). */
typedef int (*pe__gen_form_t)(pe__gen_t *g, int k, const pe_cuda_step_t *s,
                              const pe__gen_out_t *o);

static int pe__gen_rnn_form(pe__gen_t *g, int k, const pe_cuda_step_t *s,
                            const pe__gen_out_t *o) {
  (void)o;
  return pe__gen_rnn(g, k, s);
}

static const pe__gen_form_t pe__gen_forms[PE_PLAN_KIND_COUNT] = {
    [PE_PLAN_AFFINE] = pe__gen_elementwise,
    [PE_PLAN_UNARY] = pe__gen_elementwise,
    [PE_PLAN_COPY] = pe__gen_elementwise,
    [PE_PLAN_BINARY] = pe__gen_elementwise,
    [PE_PLAN_CONV1D] = pe__gen_conv1d,
    [PE_PLAN_DENSE] = pe__gen_dense,
    [PE_PLAN_STRIDED] = pe__gen_strided,
    [PE_PLAN_GATHER] = pe__gen_gather,
    [PE_PLAN_CONCAT] = pe__gen_concat,
    [PE_PLAN_POOL2D] = pe__gen_pool2d,
    [PE_PLAN_SOFTMAX] = pe__gen_softmax,
    [PE_PLAN_LSTM] = pe__gen_rnn_form,
    [PE_PLAN_GRU] = pe__gen_rnn_form,
    [PE_PLAN_LAYERNORM] = pe__gen_layernorm,
    [PE_PLAN_ATTENTION] = pe__gen_attention,
    [PE_PLAN_REDUCE] = pe__gen_reduce,
};

/* One pass over the steps with g->pn windows and g->nt threads: the
 * weights' copies and the steps' code into g. */
static int pe__gen_steps(pe__gen_t *g) {
  const pe_cuda_gen_plan_t *p = g->p;
  for (int k = 0; k < p->n_steps; k++) {
    const pe_cuda_step_t *s = &p->steps[k];
    const uint64_t out = (uint64_t)(uintptr_t)s->out[0];
    pe__gen_out_t o = {0, 0, 0};
    const int rnn = s->kind == PE_PLAN_LSTM || s->kind == PE_PLAN_GRU;
    int rc = PE_OK;
    /* a recurrent step places its outputs (on chip) itself */
    if (!rnn) {
      if (s->out[1] != NULL || s->out[2] != NULL) {
        return pe__unsupported(g, k, "a step of several outputs");
      }
      o.answer = k == p->n_steps - 1 &&
                 PE_CUDA_REF_KIND(out) == PE_CUDA_REF_OUTPUT &&
                 s->numel == p->out_numel && s->out_stride[0] == p->out_numel;
      rc = pe__gen_at(g, k, out, s->out_stride[0], s->numel, &o.off, &o.st);
      if (rc == PE_OK && o.st == 0) {
        rc = pe__unsupported(g, k, "an output into a constant");
      }
      if (rc != PE_OK) {
        return rc;
      }
    }
    pe__sb(&g->body, "  /* step %d: kind %d */\n", k, s->kind);
    const size_t at = g->body.len;
    g->stage_used = 0;
    if (g->staged && pe__gen_holes(g, k) != PE_OK) {
      return PE_ENOMEM;
    }
    const pe__gen_form_t form = s->kind >= 0 && s->kind < PE_PLAN_KIND_COUNT
                                    ? pe__gen_forms[s->kind]
                                    : NULL;
    rc = form != NULL
             ? form(g, k, s, &o)
             : pe__unsupported(g, k,
                               "a kind the generator has no form for (a 2-D "
                               "convolution, a MatMul of two tensors, Pad, "
                               "...)");
    if (rc != PE_OK) {
      return rc;
    }
    pe__gen_unstage(g, at);
    if (!o.answer) {
      pe__sb(&g->body, "  __syncthreads();\n");
    }
    /* the resident kernel's ring slot of step k, and k for the batch
     * kernel's sums */
    pe__sb(&g->body, "  PE_G_STEP(%d, %d);\n",
           PE_CUDA_STAMP_STEP0 +
               (k < PE_CUDA_STAMP_STEPS ? k : PE_CUDA_STAMP_STEPS - 1),
           k);
    if (o.answer) {
      pe__sb(&g->body, "  answered = 1;\n");
    }
  }
  return g->copy.oom || g->body.oom ? PE_ENOMEM : PE_OK;
}

static void pe__gen_free(pe__gen_t *g) {
  free(g->copy.buf);
  free(g->body.buf);
  free(g->stage.buf);
  free(g->holes);
  g->holes = NULL;
  g->n_holes = g->cap_holes = 0;
  memset(&g->copy, 0, sizeof g->copy);
  memset(&g->body, 0, sizeof g->body);
  memset(&g->stage, 0, sizeof g->stage);
}

/* The names the prelude uses, from this build's values. */
static void pe__gen_defines(pe__sb_t *s) {
  static const struct {
    const char *name;
    long v;
  } d[] = {
      {"PE_CUDA_STAMP_RING", PE_CUDA_STAMP_RING},
      {"PE_CUDA_STAMP_SLOTS", PE_CUDA_STAMP_SLOTS},
      {"PE_PLAN_ACT_NONE", PE_PLAN_ACT_NONE},
      {"PE_PLAN_ACT_RELU", PE_PLAN_ACT_RELU},
      {"PE_PLAN_ACT_LEAKY", PE_PLAN_ACT_LEAKY},
      {"PE_PLAN_ACT_SIGMOID", PE_PLAN_ACT_SIGMOID},
      {"PE_PLAN_ACT_TANH", PE_PLAN_ACT_TANH},
      {"PE_PLAN_ACT_ERF", PE_PLAN_ACT_ERF},
      {"PE_PLAN_ACT_SQRT", PE_PLAN_ACT_SQRT},
      {"PE_PLAN_ACT_GELU", PE_PLAN_ACT_GELU},
      {"PE_PLAN_ACT_GELU_TANH", PE_PLAN_ACT_GELU_TANH},
      {"PE_PLAN_ACT_EXP", PE_PLAN_ACT_EXP},
      {"PE_PLAN_ACT_NEG", PE_PLAN_ACT_NEG},
      {"PE_PLAN_ACT_ABS", PE_PLAN_ACT_ABS},
      {"PE_PLAN_ACT_LOG", PE_PLAN_ACT_LOG},
      {"PE_PLAN_ACT_RECIP", PE_PLAN_ACT_RECIP},
  };
  for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
    pe__sb(s, "#define %s %ld\n", d[i].name, d[i].v);
  }
}

static void pe__gen_resident_kernel(pe__sb_t *s, const pe__gen_t *g);
static void pe__gen_batch_kernel(pe__sb_t *s, const pe__gen_t *g);

/* The windows of pn at most whose activations fit p's shared memory
 * beside w floats of weights, scr of scratch a window; 0 for none. */
static uint32_t pe__gen_fit(const pe_cuda_gen_plan_t *p, uint32_t pn, int64_t w,
                            int64_t scr) {
  while (pn > 0 && (size_t)(w + pe__r4((int64_t)pn * p->in_numel) +
                            pe__r4((int64_t)pn * p->out_numel) +
                            pe__r4((int64_t)pn * p->arena_ps) +
                            pe__r4((int64_t)pn * scr)) *
                           sizeof(float) >
                       p->shmem_limit) {
    pn--;
  }
  return pn;
}

/* g made ready for a pass over p's steps, staged or not. */
static void pe__gen_begin(pe__gen_t *g, const pe_cuda_gen_plan_t *p, int staged,
                          char *why, size_t cap) {
  memset(g, 0, sizeof *g);
  g->p = p;
  g->why = why;
  g->cap = cap;
  g->staged = staged;
}

/* The floats of g's weights region: every weight, or staged, the most
 * any step's take. */
static int64_t pe__gen_wsize(const pe__gen_t *g) {
  return g->staged ? g->stage_max : g->w_floats;
}

/* A first pass over p's steps (one window, the most threads): the
 * weights region's floats, the scratch a window and the threads the
 * steps want; the arena's accesses recorded into acc, or (staged) read
 * from it. */
static int pe__gen_sizes(const pe_cuda_gen_plan_t *p, int staged, char *why,
                         size_t cap, pe__gen_accs_t *acc, int64_t *w,
                         int64_t *scr, int *want) {
  pe__gen_t g;
  pe__gen_begin(&g, p, staged, why, cap);
  if (staged) {
    g.live = acc;
  } else {
    g.rec = acc;
  }
  g.pn = 1;
  g.nt = PE__GEN_MAX_THREADS;
  const int rc = pe__gen_steps(&g);
  *w = pe__gen_wsize(&g);
  *scr = g.scr_ps;
  *want = g.want;
  pe__gen_free(&g);
  return rc;
}

int pe_cuda_gen_source(const pe_cuda_gen_plan_t *p, pe_cuda_gen_src_t *out,
                       char *why, size_t cap) {
  memset(out, 0, sizeof *out);
  if (p->n_steps < 1 || p->in_numel < 1 || p->out_numel < 1 || p->max_n < 1) {
    snprintf(why, cap, "an empty plan");
    return PE_EUNSUPPORTED;
  }
  /* a first pass for the weights' size and the threads the steps want,
   * then the windows that fit, then the source; where none fits beside
   * every weight and the plan allows, a first pass again with each
   * step's weights staged in turn: into the arena where it is free
   * during the step (the first pass's record of the arena's accesses
   * says where), else into the weights region, then the most that any
   * step puts there */
  int64_t w = 0, scr = 0;
  int want = 0;
  pe__gen_accs_t acc = {0};
  int rc = pe__gen_sizes(p, 0, why, cap, &acc, &w, &scr, &want);
  if (rc == PE_OK && acc.oom) {
    rc = PE_ENOMEM;
    snprintf(why, cap, "out of memory");
  }
  if (rc != PE_OK) {
    free(acc.a);
    return rc;
  }
  uint32_t pn = pe__gen_fit(p, p->max_n, w, scr);
  const int64_t all_w = w;
  const int staged = pn == 0 && p->allow_staged;
  if (staged) {
    rc = pe__gen_sizes(p, 1, why, cap, &acc, &w, &scr, &want);
    if (rc != PE_OK) {
      free(acc.a);
      return rc;
    }
    pn = pe__gen_fit(p, p->max_n, w, scr);
  }
  const int64_t per = p->in_numel + p->out_numel + p->arena_ps + scr;
  if (pn == 0) {
    free(acc.a);
    if (staged) {
      snprintf(why, cap,
               "%lld floats of weights (%lld staged outside the arena) and "
               "%lld of activations a window do not fit %zu bytes of shared "
               "memory",
               (long long)all_w, (long long)w, (long long)per, p->shmem_limit);
    } else {
      snprintf(why, cap,
               "%lld floats of weights and %lld of activations a window do "
               "not fit %zu bytes of shared memory",
               (long long)w, (long long)per, p->shmem_limit);
    }
    return PE_EUNSUPPORTED;
  }
  pe__gen_t g;
  pe__gen_begin(&g, p, staged, why, cap);
  g.live = staged ? &acc : NULL;
  g.pn = pn;
  g.nt = want;
  g.off_in = w;
  g.off_out = g.off_in + pe__r4((int64_t)pn * p->in_numel);
  g.off_ar = g.off_out + pe__r4((int64_t)pn * p->out_numel);
  g.off_scr = g.off_ar + pe__r4((int64_t)pn * p->arena_ps);
  const int64_t total = g.off_scr + pe__r4((int64_t)pn * scr);
  rc = pe__gen_steps(&g);
  free(acc.a);
  if (rc != PE_OK || pe__gen_wsize(&g) != w || g.want != want ||
      g.scr_ps != scr) {
    pe__gen_free(&g);
    if (rc == PE_OK) {
      snprintf(why, cap, "the generator's two passes disagree");
    }
    return rc != PE_OK ? rc : PE_EUNSUPPORTED;
  }
  const int nt = g.nt;
  pe__sb_t s = {0};
  if (p->batch) {
    pe__gen_batch_kernel(&s, &g);
  } else {
    pe__gen_resident_kernel(&s, &g);
  }
  pe__gen_free(&g);
  if (s.oom) {
    free(s.buf);
    snprintf(why, cap, "out of memory");
    return PE_ENOMEM;
  }
  out->text = s.buf;
  out->threads = nt;
  out->shmem = (size_t)total * sizeof(float);
  out->max_n = pn;
  out->staged = staged;
  return PE_OK;
}

/* The resident kernel around g's steps: the protocol's wait for a request,
 * the windows read from mapped memory, the steps, the answer. */
static void pe__gen_resident_kernel(pe__sb_t *s, const pe__gen_t *g) {
  const pe_cuda_gen_plan_t *p = g->p;
  const int nt = g->nt;
  const uint32_t pn = g->pn;
  const int64_t polled =
      p->in_numel < 2 * (nt - 1) ? p->in_numel : 2 * (nt - 1);
  pe__sb(s,
         "/* The persistent kernel generated for one plan (cuda_gen.c). */\n");
  pe__gen_defines(s);
  pe__sb(s, "%s\n", pe__cuda_gen_prelude);
  pe__sb(s,
         "#define PE_G_NT %d\n#define PE_G_STAMP(slot) do { if (%d && tid == "
         "0) pe__proto_stamp(stamps, last, (slot)); } while (0)\n"
         "#define PE_G_STEP(slot, k) PE_G_STAMP(slot)\n",
         nt, p->stamps ? 1 : 0);
  pe__sb(s,
         "extern \"C\" __global__ void __launch_bounds__(%d, 1)\n"
         "%s(pe__proto_ctrl_t *ctrl, const unsigned long long *h_in,\n"
         "    unsigned long long *h_out, unsigned long long *stamps,\n"
         "    unsigned int last, unsigned long long idle_ns) {\n"
         "  extern __shared__ float4 pe__shv[];\n"
         "  float *const sh = (float *)pe__shv;\n"
         "  __shared__ unsigned int cmd_n;\n"
         "  const int tid = (int)threadIdx.x;\n",
         nt, PE_CUDA_GEN_KERNEL);
  pe__sb(s, "%s", g->copy.buf != NULL ? g->copy.buf : "");
  pe__sb(
      s,
      "  __syncthreads();\n"
      "  for (;;) {\n"
      "    const unsigned int expect = pe__proto_next(last);\n"
      "    if (!pe__proto_wait(ctrl, h_in, %lld, expect, idle_ns, sh + %lld,\n"
      "                        &cmd_n, tid)) {\n"
      "      break;\n"
      "    }\n"
      "    last = expect;\n"
      "    PE_G_STAMP(%d);\n"
      "    const unsigned int n = cmd_n <= %uu ? cmd_n : %uu;\n"
      "    pe__proto_read(h_in, %lld, (int)n * %lld, expect, sh + %lld, tid, "
      "%d);\n"
      "    PE_G_STAMP(%d);\n"
      "    int answered = 0;\n",
      (long long)polled, (long long)g->off_in, PE_CUDA_STAMP_SEEN, pn, pn,
      (long long)polled, (long long)p->in_numel, (long long)g->off_in, nt,
      PE_CUDA_STAMP_WINDOW);
  pe__sb(s, "%s", g->body.buf != NULL ? g->body.buf : "");
  pe__sb(s,
         "    for (int i = tid; !answered && i < (int)n * %lld; i += %d) {\n"
         "      pe__st_tagged(h_out + i, last, sh[%lld + i]);\n"
         "    }\n"
         "    PE_G_STAMP(%d);\n"
         "    if (tid == 0) {\n"
         "      pe__proto_done(ctrl, last);\n"
         "      PE_G_STAMP(%d);\n"
         "    }\n"
         "  }\n"
         "  if (tid == 0) {\n"
         "    pe__proto_leave(ctrl);\n"
         "  }\n"
         "}\n",
         (long long)p->out_numel, nt, (long long)g->off_out,
         PE_CUDA_STAMP_SCORES, PE_CUDA_STAMP_DONE);
}

/* The batch kernel around g's steps: the weights copied once, then the
 * block's share of the batch (the windows split evenly over the grid) in
 * groups of at most g->pn windows, each group's windows read from gin
 * and its scores written to gout. */
static void pe__gen_batch_kernel(pe__sb_t *s, const pe__gen_t *g) {
  const pe_cuda_gen_plan_t *p = g->p;
  const int nt = g->nt;
  const long long in = (long long)p->in_numel, out = (long long)p->out_numel;
  pe__sb(s, "/* The batch kernel generated for one plan (cuda_gen.c). */\n");
  pe__gen_defines(s);
  pe__sb(s, "%s\n", pe__cuda_gen_prelude);
  /* with stamps, thread 0 of each launch's first block adds the time
   * since its last stamp (the global timer's ns) into slot i of stamps
   * (cuda_gen.h, PE_CUDA_GEN_BS_*): one reduction to device memory a
   * phase, none without */
  pe__sb(s,
         "#define PE_G_NT %d\n"
         "#define PE_G_SUM(i) do { if (%d && tid == 0 && blockIdx.x == 0) "
         "{ const unsigned long long t_ = pe__gtime(); "
         "atomicAdd(stamps + (i), t_ - st_t); st_t = t_; } } while (0)\n"
         "#define PE_G_STEP(slot, k) PE_G_SUM(%d + (k))\n"
         "extern \"C\" __global__ void __launch_bounds__(%d, 1)\n"
         "%s(const float *__restrict__ gin, float *__restrict__ gout,\n"
         "    unsigned int total, unsigned long long *stamps) {\n"
         "  extern __shared__ float4 pe__shv[];\n"
         "  float *const sh = (float *)pe__shv;\n"
         "  const int tid = (int)threadIdx.x;\n"
         "  unsigned long long st_t = %s;\n",
         nt, p->stamps ? 1 : 0, PE_CUDA_GEN_BS_STEP0, nt,
         PE_CUDA_GEN_BATCH_KERNEL, p->stamps ? "pe__gtime()" : "0");
  pe__sb(s, "%s", g->copy.buf != NULL ? g->copy.buf : "");
  pe__sb(s,
         "  const unsigned int per = (total + gridDim.x - 1) / gridDim.x;\n"
         "  const unsigned int lo = min(total, blockIdx.x * per);\n"
         "  const unsigned int hi = min(total, lo + per);\n"
         "  const unsigned int groups = (hi - lo + %uu - 1) / %uu;\n"
         "  unsigned int w0 = lo;\n"
         "  for (unsigned int gi = 0; gi < groups; gi++) {\n"
         "    const unsigned int n = (hi - w0 + (groups - gi) - 1) / "
         "(groups - gi);\n"
         "    __syncthreads();\n"
         "    PE_G_SUM(gi == 0 ? %d : %d);\n",
         g->pn, g->pn, PE_CUDA_GEN_BS_WEIGHTS, PE_CUDA_GEN_BS_SCORES);
  if (p->in_numel % 4 == 0 && g->off_in % 4 == 0) {
    pe__sb(s,
           "    {\n      const float4 *src = (const float4 *)(gin + "
           "(size_t)w0 * %lld);\n"
           "      float4 *dst = (float4 *)(sh + %lld);\n"
           "      for (int i = tid; i < (int)n * %lld; i += %d) {\n"
           "        dst[i] = src[i];\n      }\n    }\n",
           in, (long long)g->off_in, in / 4, nt);
  } else {
    pe__sb(s,
           "    for (int i = tid; i < (int)n * %lld; i += %d) {\n"
           "      sh[%lld + i] = gin[(size_t)w0 * %lld + i];\n    }\n",
           in, nt, (long long)g->off_in, in);
  }
  pe__sb(s, "    __syncthreads();\n    PE_G_SUM(%d);\n    int answered = 0;\n",
         PE_CUDA_GEN_BS_READ);
  pe__sb(s, "%s", g->body.buf != NULL ? g->body.buf : "");
  pe__sb(s,
         "    for (int i = tid; !answered && i < (int)n * %lld; i += %d) {\n"
         "      gout[(size_t)w0 * %lld + i] = sh[%lld + i];\n"
         "    }\n"
         "    w0 += n;\n"
         "  }\n"
         "  PE_G_SUM(%d);\n"
         "  if (%d && tid == 0 && blockIdx.x == 0) {\n"
         "    atomicAdd(stamps + %d, (unsigned long long)(hi - lo));\n"
         "  }\n"
         "}\n",
         out, nt, out, (long long)g->off_out, PE_CUDA_GEN_BS_SCORES,
         p->stamps ? 1 : 0, PE_CUDA_GEN_BS_WINDOWS);
}

/* ---- NVRTC, through dlopen -------------------------------------------------
 * Its C API, declared here so that neither its header nor its library is
 * needed to build: nvrtcResult is an int (0 success), a program an
 * opaque pointer. */
typedef void *pe__nvrtc_prog_t;
typedef struct pe__nvrtc {
  void *lib;
  int (*create)(pe__nvrtc_prog_t *, const char *, const char *, int,
                const char *const *, const char *const *);
  int (*compile)(pe__nvrtc_prog_t, int, const char *const *);
  int (*log_size)(pe__nvrtc_prog_t, size_t *);
  int (*log)(pe__nvrtc_prog_t, char *);
  int (*cubin_size)(pe__nvrtc_prog_t, size_t *);
  int (*cubin)(pe__nvrtc_prog_t, char *);
  int (*destroy)(pe__nvrtc_prog_t *);
  const char *(*error)(int);
  int (*version)(int *, int *);
} pe__nvrtc_t;

/* NVRTC, loaded once per process and kept: unloading it would leak what
 * its runtime allocates when loaded (each load and unload cost about 71 KB
 * in the sanitizer's count), and a second load costs a few milliseconds. */
static pe__nvrtc_t pe__nvrtc_g;
static int pe__nvrtc_rc;
static char pe__nvrtc_why[256];
static pthread_once_t pe__nvrtc_once = PTHREAD_ONCE_INIT;

static void pe__nvrtc_open(void) {
  static const char *const names[] = {"libnvrtc.so.13", "libnvrtc.so",
                                      "/usr/local/cuda/lib64/libnvrtc.so.13",
                                      "/usr/local/cuda/lib64/libnvrtc.so"};
  pe__nvrtc_t *n = &pe__nvrtc_g;
  const char *err = "";
  for (size_t i = 0; i < sizeof names / sizeof names[0] && !n->lib; i++) {
    n->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (n->lib == NULL && i == 0) {
      err = dlerror();
    }
  }
  if (n->lib == NULL) {
    snprintf(pe__nvrtc_why, sizeof pe__nvrtc_why, "NVRTC not found (%s)",
             err != NULL ? err : "");
    pe__nvrtc_rc = PE_EUNSUPPORTED;
    return;
  }
  /* POSIX: a function's address through a void pointer */
#define PE__SYM(field, name)                                                   \
  do {                                                                         \
    void *f_ = dlsym(n->lib, name);                                            \
    memcpy(&n->field, &f_, sizeof f_);                                         \
  } while (0)
  PE__SYM(create, "nvrtcCreateProgram");
  PE__SYM(compile, "nvrtcCompileProgram");
  PE__SYM(log_size, "nvrtcGetProgramLogSize");
  PE__SYM(log, "nvrtcGetProgramLog");
  PE__SYM(cubin_size, "nvrtcGetCUBINSize");
  PE__SYM(cubin, "nvrtcGetCUBIN");
  PE__SYM(destroy, "nvrtcDestroyProgram");
  PE__SYM(error, "nvrtcGetErrorString");
  PE__SYM(version, "nvrtcVersion");
#undef PE__SYM
  if (!n->create || !n->compile || !n->log_size || !n->log || !n->cubin_size ||
      !n->cubin || !n->destroy || !n->error || !n->version) {
    dlclose(n->lib);
    memset(n, 0, sizeof *n);
    snprintf(pe__nvrtc_why, sizeof pe__nvrtc_why,
             "NVRTC lacks the calls it needs (an old version?)");
    pe__nvrtc_rc = PE_EUNSUPPORTED;
  }
}

/* Points *n at the process's NVRTC, or says why there is none (0 /
 * PE_EUNSUPPORTED). */
static int pe__nvrtc_load(const pe__nvrtc_t **n, char *why, size_t cap) {
  pthread_once(&pe__nvrtc_once, pe__nvrtc_open);
  if (pe__nvrtc_rc != PE_OK) {
    snprintf(why, cap, "%s", pe__nvrtc_why);
    return pe__nvrtc_rc;
  }
  *n = &pe__nvrtc_g;
  return PE_OK;
}

int pe_cuda_gen_nvrtc(char *buf, size_t cap) {
  const pe__nvrtc_t *n = NULL;
  if (pe__nvrtc_load(&n, buf, cap) != PE_OK) {
    return PE_EUNSUPPORTED;
  }
  int major = 0, minor = 0;
  n->version(&major, &minor);
  snprintf(buf, cap, "%d.%d", major, minor);
  return PE_OK;
}

static double pe__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int pe_cuda_gen_compile(const char *src, int major, int minor, void **cubin,
                        size_t *len, double *ms, char *why, size_t cap) {
  *cubin = NULL;
  *len = 0;
  *ms = 0;
  const pe__nvrtc_t *n = NULL;
  int rc = pe__nvrtc_load(&n, why, cap);
  if (rc != PE_OK) {
    return rc;
  }
  const double t0 = pe__now_ms();
  char arch[40];
  snprintf(arch, sizeof arch, "--gpu-architecture=sm_%d%d", major, minor);
  const char *opts[] = {arch, "--std=c++17", "-default-device"};
  pe__nvrtc_prog_t prog = NULL;
  int e = n->create(&prog, src, "pe_gen.cu", 0, NULL, NULL);
  int ce = e == 0 ? n->compile(prog, 3, opts) : e;
  if (ce != 0) {
    size_t ls = 0;
    char *log = NULL;
    if (prog != NULL && n->log_size(prog, &ls) == 0 && ls > 0 &&
        (log = malloc(ls + 1)) != NULL && n->log(prog, log) == 0) {
      log[ls] = '\0';
      for (char *q = log; *q; q++) {
        *q = *q == '\n' ? ' ' : *q;
      }
    }
    snprintf(why, cap, "NVRTC: %s: %s", n->error(ce), log ? log : "");
    free(log);
    rc = PE_EBACKEND;
  }
  size_t sz = 0;
  char *bin = NULL;
  if (rc == PE_OK && (n->cubin_size(prog, &sz) != 0 || sz == 0 ||
                      (bin = malloc(sz)) == NULL || n->cubin(prog, bin) != 0)) {
    free(bin);
    bin = NULL;
    snprintf(why, cap, "NVRTC gave no cubin");
    rc = PE_EBACKEND;
  }
  if (prog != NULL) {
    n->destroy(&prog);
  }
  *ms = pe__now_ms() - t0;
  *cubin = bin;
  *len = bin != NULL ? sz : 0;
  return rc;
}

/* ---- the kernel on the device
 * ----------------------------------------------*/

struct pe_cuda_gen {
  cudaLibrary_t lib;
  cudaKernel_t kernel;
  int batch;
  int threads;
  size_t shmem;
  uint32_t max_n;
  uint32_t grid_max; /* batch: the blocks the device holds at once */
  int staged;        /* pe_cuda_gen_src_t.staged */
  double gen_ms, compile_ms, load_ms;
  char nvrtc[32];
};

int pe_cuda_gen_open(const pe_cuda_gen_plan_t *p, pe_cuda_gen_t **out,
                     char *why, size_t cap) {
  *out = NULL;
  int dev = 0, major = 0, minor = 0, optin = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) !=
          cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) !=
          cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) !=
          cudaSuccess ||
      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin,
                             dev) != cudaSuccess) {
    cudaGetLastError(); /* clear it */
    snprintf(why, cap, "the device's compute capability is unknown");
    return PE_EBACKEND;
  }
  pe_cuda_gen_t *g = calloc(1, sizeof *g);
  if (g == NULL) {
    snprintf(why, cap, "out of memory");
    return PE_ENOMEM;
  }
  if (pe_cuda_gen_nvrtc(g->nvrtc, sizeof g->nvrtc) != PE_OK) {
    snprintf(why, cap, "%s", g->nvrtc);
    free(g);
    return PE_EUNSUPPORTED;
  }
  pe_cuda_gen_plan_t q = *p;
  /* less the kernel's static shared memory (cmd_n), rounded up */
  const size_t lim = optin > 1024 ? (size_t)optin - 1024 : 0;
  q.shmem_limit =
      q.shmem_limit != 0 && q.shmem_limit < lim ? q.shmem_limit : lim;
  const double t0 = pe__now_ms();
  pe_cuda_gen_src_t src;
  int rc = pe_cuda_gen_source(&q, &src, why, cap);
  const double t1 = pe__now_ms();
  void *bin = NULL;
  size_t len = 0;
  if (rc == PE_OK) {
    rc = pe_cuda_gen_compile(src.text, major, minor, &bin, &len, &g->compile_ms,
                             why, cap);
  }
  free(src.text);
  const double t2 = pe__now_ms();
  int e = 0;
  if (rc == PE_OK) {
    e = (int)cudaLibraryLoadData(&g->lib, bin, NULL, NULL, 0, NULL, NULL, 0);
    e = e ? e
          : (int)cudaLibraryGetKernel(&g->kernel, g->lib,
                                      p->batch ? PE_CUDA_GEN_BATCH_KERNEL
                                               : PE_CUDA_GEN_KERNEL);
    e = e ? e
          : (int)cudaFuncSetAttribute(
                (const void *)g->kernel,
                cudaFuncAttributeMaxDynamicSharedMemorySize, (int)src.shmem);
    if (e != 0) {
      cudaGetLastError(); /* clear it */
      snprintf(why, cap, "loading the generated kernel: %s",
               cudaGetErrorString((cudaError_t)e));
      rc = PE_EBACKEND;
    }
  }
  free(bin);
  if (rc != PE_OK) {
    pe_cuda_gen_close(g);
    return rc;
  }
  int per_sm = 0;
  if (rc == PE_OK && p->batch &&
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(
          &per_sm, (const void *)g->kernel, src.threads, src.shmem) !=
          cudaSuccess) {
    cudaGetLastError(); /* clear it: one block an SM */
    per_sm = 1;
  }
  g->batch = p->batch;
  g->grid_max =
      (uint32_t)(sms > 0 ? sms : 1) * (uint32_t)(per_sm > 0 ? per_sm : 1);
  g->threads = src.threads;
  g->staged = src.staged;
  g->shmem = src.shmem;
  g->max_n = src.max_n;
  g->gen_ms = t1 - t0;
  g->load_ms = pe__now_ms() - t2;
  *out = g;
  return PE_OK;
}

uint32_t pe_cuda_gen_max_n(const pe_cuda_gen_t *g) { return g->max_n; }

int pe_cuda_gen_staged(const pe_cuda_gen_t *g) { return g->staged; }

int pe_cuda_gen_launch(const pe_cuda_gen_t *g, const pe_cuda_persist_t *a,
                       void *stream) {
  /* the kernel's parameters: ctrl, h_in, h_out, stamps, last, idle_ns */
  void *ctrl = a->ctrl;
  const void *h_in = a->h_in;
  void *h_out = a->h_out, *stamps = a->stamps;
  unsigned int last = a->last;
  unsigned long long idle_ns = a->idle_ns;
  void *args[] = {&ctrl, &h_in, &h_out, &stamps, &last, &idle_ns};
  const dim3 grid = {1, 1, 1}, block = {(unsigned)g->threads, 1, 1};
  return (int)cudaLaunchKernel((const void *)g->kernel, grid, block, args,
                               g->shmem, (cudaStream_t)stream);
}

int pe_cuda_gen_batch_launch(const pe_cuda_gen_t *g, const float *d_in,
                             float *d_out, uint32_t n, uint64_t *stamps,
                             void *stream) {
  unsigned int total = n;
  void *args[] = {&d_in, &d_out, &total, &stamps};
  /* as many blocks as the device holds, fewer where that leaves some
   * without a window */
  const uint32_t per = (n + g->grid_max - 1) / g->grid_max;
  const dim3 grid = {(n + per - 1) / per, 1, 1};
  const dim3 block = {(unsigned)g->threads, 1, 1};
  return (int)cudaLaunchKernel((const void *)g->kernel, grid, block, args,
                               g->shmem, (cudaStream_t)stream);
}

void pe_cuda_gen_describe(const pe_cuda_gen_t *g, char *buf, size_t cap) {
  if (g->batch) {
    snprintf(buf, cap,
             "generated for this plan: blocks of %d threads, up to %u at "
             "once, %zu bytes of shared memory each, %u windows a block "
             "at a time%s; NVRTC %s compiled it in %.0f ms",
             g->threads, g->grid_max, g->shmem, g->max_n,
             g->staged ? ", each step's weights staged in turn" : "", g->nvrtc,
             g->compile_ms);
    return;
  }
  snprintf(buf, cap,
           "generated for this plan: %d threads, %zu bytes of shared memory; "
           "NVRTC %s compiled it in %.0f ms",
           g->threads, g->shmem, g->nvrtc, g->compile_ms);
}

void pe_cuda_gen_close(pe_cuda_gen_t *g) {
  if (g == NULL) {
    return;
  }
  if (g->lib != NULL) {
    cudaLibraryUnload(g->lib);
  }
  free(g);
}
