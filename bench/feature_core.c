/* Feature-core benchmark: per tick, with per-symbol state, the price EMAs
 * (spans 19 and 39), cumulative VWAP, Welford mean and sample variance,
 * written to five output arrays; the same work as the peers in
 * bench/feature_core_peers.py, on the same ticks (a PETK file it writes).
 *
 *   feature_core TICKS.petk [--repeat N] [--window W]
 *                [--isa auto|generic|avx2|avx512]
 *
 * Two C contenders: the columnar core (pe/core.h, pe_core_run: the library's
 * batch form, on the path --isa names, by default the fastest this CPU has;
 * "isa" then times each path the CPU has) and a loop over the streaming
 * structs of pe/state.h (run_core). For each it prints ns/tick
 * (best of N runs, each from fresh state; *all_s lists every run) and the
 * sums of each output (to compare with the peers' checksums); then the
 * memory floor (run_floor, run_floor_stream), the structs' work with the
 * features summed instead of stored (run_core_summed) and the engine's
 * memory per symbol at window W (default 32).
 * Every array, input and output, is allocated as numpy allocates its own
 * (see big_array). */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "pe/clock.h"
#include "pe/core.h"
#include "pe/engine.h"
#include "pe/state.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define FLOOR_STREAM 1
#endif

typedef struct ticks {
  uint64_t n;
  int32_t *sym;
  int64_t *ts;
  double *price;
  double *volume;
} ticks_t;

/* A large array as numpy makes one: 64-byte aligned, and advised to use
 * transparent huge pages (numpy advises them for every array of 4 MiB or
 * more on Linux), so that the C side and the peers see the same TLB
 * behaviour. Rounded up to whole 2 MiB pages. */
static void *big_array(size_t bytes) {
  const size_t huge = (size_t)2 << 20;
  size_t size = (bytes + huge - 1) / huge * huge;
  void *p = aligned_alloc(huge, size > 0 ? size : huge);
#ifdef MADV_HUGEPAGE
  if (p != NULL) {
    (void)madvise(p, size, MADV_HUGEPAGE);
  }
#endif
  return p;
}

static int read_petk(const char *path, ticks_t *t) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    perror(path);
    return -1;
  }
  char magic[4];
  if (fread(magic, 1, 4, f) != 4 || memcmp(magic, "PETK", 4) != 0 ||
      fread(&t->n, 8, 1, f) != 1) {
    fprintf(stderr, "%s: not a PETK file\n", path);
    fclose(f);
    return -1;
  }
  t->sym = big_array(t->n * sizeof *t->sym);
  t->ts = big_array(t->n * sizeof *t->ts);
  t->price = big_array(t->n * sizeof *t->price);
  t->volume = big_array(t->n * sizeof *t->volume);
  if (t->sym == NULL || t->ts == NULL || t->price == NULL ||
      t->volume == NULL || fread(t->sym, sizeof *t->sym, t->n, f) != t->n ||
      fread(t->ts, sizeof *t->ts, t->n, f) != t->n ||
      fread(t->price, sizeof *t->price, t->n, f) != t->n ||
      fread(t->volume, sizeof *t->volume, t->n, f) != t->n) {
    fprintf(stderr, "%s: truncated or out of memory\n", path);
    fclose(f);
    return -1;
  }
  fclose(f);
  return 0;
}

/* One symbol's state: the library's own statistics (pe/state.h); the VWAP
 * is the session-less one, as the work has no sessions (and the peers read
 * no timestamps). */
typedef struct core_state {
  pe_ema_t fast;
  pe_ema_t slow;
  pe_cvwap_t vwap;
  pe_welford_t w;
} core_state_t;

#define N_OUT 5

/* Every symbol's state from scratch. */
static void core_init(core_state_t *st, uint32_t n_symbols) {
  for (uint32_t s = 0; s < n_symbols; s++) {
    pe_ema_init_span(&st[s].fast, 19.0);
    pe_ema_init_span(&st[s].slow, 39.0);
    pe_cvwap_init(&st[s].vwap);
    pe_welford_init(&st[s].w);
  }
}

/* Folds tick i into its symbol's state and returns that state. */
static inline core_state_t *core_step(const ticks_t *t, core_state_t *st,
                                      uint64_t i) {
  core_state_t *s = &st[t->sym[i]];
  double p = t->price[i];
  pe_ema_update(&s->fast, p);
  pe_ema_update(&s->slow, p);
  pe_cvwap_update(&s->vwap, p, t->volume[i]);
  pe_welford_update(&s->w, p);
  return s;
}

static void run_core(const ticks_t *t, core_state_t *st, uint32_t n_symbols,
                     double *const out[N_OUT]) {
  core_init(st, n_symbols);
  double *o_fast = out[0], *o_slow = out[1], *o_vwap = out[2], *o_mean = out[3],
         *o_var = out[4];
  for (uint64_t i = 0; i < t->n; i++) {
    const core_state_t *s = core_step(t, st, i);
    o_fast[i] = s->fast.value;
    o_slow[i] = s->slow.value;
    o_vwap[i] = pe_cvwap_value(&s->vwap);
    o_mean[i] = s->w.mean;
    o_var[i] = pe_welford_var_sample(&s->w);
  }
}

/* run_core with each tick's five features summed instead of stored, as a
 * consumer that reads them at once would (NaN adds nothing): the same
 * arithmetic without the 40 bytes a tick of output traffic. sums[] gets the
 * totals, which match the peers' summed kernel. */
static void run_core_summed(const ticks_t *t, core_state_t *st,
                            uint32_t n_symbols, double sums[N_OUT]) {
  core_init(st, n_symbols);
  double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0, a4 = 0.0;
  for (uint64_t i = 0; i < t->n; i++) {
    const core_state_t *s = core_step(t, st, i);
    double vwap = pe_cvwap_value(&s->vwap);
    double var = pe_welford_var_sample(&s->w);
    a0 += s->fast.value;
    a1 += s->slow.value;
    a2 += vwap == vwap ? vwap : 0.0;
    a3 += s->w.mean;
    a4 += var == var ? var : 0.0;
  }
  sums[0] = a0;
  sums[1] = a1;
  sums[2] = a2;
  sums[3] = a3;
  sums[4] = a4;
}

/* The memory floor: what any loop over these arrays must move, and no more
 * work. It reads the three inputs the peers read (sym, price, volume: 20
 * bytes a tick) and writes five outputs (40 bytes), with one operation
 * each and no per-symbol state, so the compiler may vectorise it. An
 * ordinary store first reads the line it writes, so this loop moves 100
 * bytes a tick; run_floor_stream writes with streaming stores, which do
 * not, and moves 60, the least any implementation can. numba's loop stores
 * the ordinary way. */
static void run_floor(const ticks_t *t, double *const out[N_OUT]) {
  double *o0 = out[0], *o1 = out[1], *o2 = out[2], *o3 = out[3], *o4 = out[4];
  const int32_t *sym = t->sym;
  const double *price = t->price, *volume = t->volume;
  for (uint64_t i = 0; i < t->n; i++) {
    double p = price[i], v = volume[i];
    o0[i] = p;
    o1[i] = p * v;
    o2[i] = v;
    o3[i] = p + (double)sym[i];
    o4[i] = p - v;
  }
}

#ifdef FLOOR_STREAM
/* run_floor with streaming stores: AVX-512, 64 bytes a store, where the
 * CPU has it, else SSE2 (every x86-64), 16. The output arrays are 64-byte
 * aligned. */
__attribute__((target("avx512f"))) static void
floor_stream_avx512(const ticks_t *t, double *const out[N_OUT]) {
  double *o0 = out[0], *o1 = out[1], *o2 = out[2], *o3 = out[3], *o4 = out[4];
  uint64_t i = 0;
  for (; i + 8 <= t->n; i += 8) {
    __m512d p = _mm512_loadu_pd(t->price + i),
            v = _mm512_loadu_pd(t->volume + i);
    __m512d s = _mm512_cvtepi32_pd(
        _mm256_loadu_si256((const __m256i *)(const void *)(t->sym + i)));
    _mm512_stream_pd(o0 + i, p);
    _mm512_stream_pd(o1 + i, _mm512_mul_pd(p, v));
    _mm512_stream_pd(o2 + i, v);
    _mm512_stream_pd(o3 + i, _mm512_add_pd(p, s));
    _mm512_stream_pd(o4 + i, _mm512_sub_pd(p, v));
  }
  for (; i < t->n; i++) {
    o0[i] = t->price[i];
  }
  _mm_sfence();
}

static void floor_stream_sse2(const ticks_t *t, double *const out[N_OUT]) {
  double *o0 = out[0], *o1 = out[1], *o2 = out[2], *o3 = out[3], *o4 = out[4];
  uint64_t i = 0;
  for (; i + 2 <= t->n; i += 2) {
    __m128d p = _mm_loadu_pd(t->price + i), v = _mm_loadu_pd(t->volume + i);
    __m128d s = _mm_cvtepi32_pd(
        _mm_loadl_epi64((const __m128i *)(const void *)(t->sym + i)));
    _mm_stream_pd(o0 + i, p);
    _mm_stream_pd(o1 + i, _mm_mul_pd(p, v));
    _mm_stream_pd(o2 + i, v);
    _mm_stream_pd(o3 + i, _mm_add_pd(p, s));
    _mm_stream_pd(o4 + i, _mm_sub_pd(p, v));
  }
  for (; i < t->n; i++) {
    o0[i] = t->price[i];
  }
  _mm_sfence();
}

static void run_floor_stream(const ticks_t *t, double *const out[N_OUT]) {
  if (__builtin_cpu_supports("avx512f")) {
    floor_stream_avx512(t, out);
  } else {
    floor_stream_sse2(t, out);
  }
}
#endif

/* Best of repeat timed calls of fn(ctx); all_s gets each time. */
static double best_of(int repeat, void (*fn)(void *), void *ctx,
                      double *all_s) {
  double best = INFINITY;
  for (int r = 0; r < repeat; r++) {
    uint64_t t0 = pe_clock_ns();
    fn(ctx);
    double secs = (double)(pe_clock_ns() - t0) * 1e-9;
    if (all_s != NULL) {
      all_s[r] = secs;
    }
    best = secs < best ? secs : best;
  }
  return best;
}

typedef struct bench_ctx {
  const ticks_t *t;
  core_state_t *st;
  uint32_t n_symbols;
  double **out;
  pe_core_t *core;
  double sums[N_OUT];
} bench_ctx_t;

static void do_columns(void *p) {
  bench_ctx_t *c = p;
  pe_core_reset(c->core);
  pe_core_columns_t cols = {c->out[0], c->out[1], c->out[2], c->out[3],
                            c->out[4]};
  if (pe_core_run(c->core, c->t->n, c->t->sym, c->t->price, c->t->volume,
                  &cols) != 0) {
    fprintf(stderr, "%s\n", pe_core_errmsg(c->core));
    exit(1);
  }
}
static void do_structs(void *p) {
  bench_ctx_t *c = p;
  run_core(c->t, c->st, c->n_symbols, c->out);
}
static void do_summed(void *p) {
  bench_ctx_t *c = p;
  run_core_summed(c->t, c->st, c->n_symbols, c->sums);
}
static void do_floor(void *p) {
  bench_ctx_t *c = p;
  run_floor(c->t, c->out);
}
#ifdef FLOOR_STREAM
static void do_floor_stream(void *p) {
  bench_ctx_t *c = p;
  run_floor_stream(c->t, c->out);
}
#endif

static const char *const names[N_OUT] = {"ema_fast", "ema_slow", "vwap", "mean",
                                         "var"};

/* Prints "checksums": the sum of each output, NaN skipped. */
static void print_checksums(const char *key, const ticks_t *t,
                            double *const out[N_OUT]) {
  printf("\"%s\": {", key);
  for (int k = 0; k < N_OUT; k++) {
    double sum = 0.0;
    for (uint64_t i = 0; i < t->n; i++) {
      if (!isnan(out[k][i])) {
        sum += out[k][i];
      }
    }
    printf("%s\"%s\": %.17g", k ? ", " : "", names[k], sum);
  }
  printf("}");
}

static void print_all(const char *key, const double *all_s, int repeat) {
  printf("\"%s\": [", key);
  for (int r = 0; r < repeat; r++) {
    printf("%s%.6f", r ? ", " : "", all_s[r]);
  }
  printf("]");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: feature_core TICKS.petk [--repeat N] [--window W] "
                    "[--isa auto|generic|avx2|avx512]\n");
    return 2;
  }
  int repeat = 3;
  uint32_t window = 32;
  pe_core_isa_t isa = PE_CORE_ISA_AUTO;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--repeat") == 0) {
      repeat = atoi(argv[i + 1]);
    } else if (strcmp(argv[i], "--isa") == 0) {
      isa = strcmp(argv[i + 1], "generic") == 0  ? PE_CORE_ISA_GENERIC
            : strcmp(argv[i + 1], "avx2") == 0   ? PE_CORE_ISA_AVX2
            : strcmp(argv[i + 1], "avx512") == 0 ? PE_CORE_ISA_AVX512
                                                 : PE_CORE_ISA_AUTO;
    } else if (strcmp(argv[i], "--window") == 0) {
      window = (uint32_t)atoi(argv[i + 1]);
    }
  }
  ticks_t t;
  if (read_petk(argv[1], &t) != 0) {
    return 1;
  }
  uint32_t n_symbols = 0;
  for (uint64_t i = 0; i < t.n; i++) {
    if ((uint32_t)t.sym[i] + 1 > n_symbols) {
      n_symbols = (uint32_t)t.sym[i] + 1;
    }
  }
  core_state_t *st = calloc(n_symbols, sizeof *st);
  double *out[N_OUT];
  for (int k = 0; k < N_OUT; k++) {
    out[k] = big_array(t.n * sizeof(double));
    if (out[k] == NULL) {
      fprintf(stderr, "out of memory\n");
      return 1;
    }
    /* Touch the pages once so the first run does not pay page faults the
     * peers' preallocated numpy arrays do not. */
    memset(out[k], 0, t.n * sizeof(double));
  }
  double all_s[64];
  if (repeat < 1 || repeat > 64) {
    repeat = repeat < 1 ? 1 : 64;
  }
  pe_core_config_t ccfg;
  pe_core_config_init(&ccfg);
  ccfg.n_symbols = n_symbols;
  ccfg.isa = isa;
  char err[256];
  bench_ctx_t ctx = {&t, st, n_symbols, out, NULL, {0}};
  if (pe_core_create(&ccfg, &ctx.core, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  double n = (double)t.n;
  /* The columnar core first, then the structs, each leaving its outputs
   * for the checksums. */
  double best = best_of(repeat, do_columns, &ctx, all_s);
  printf("{\"n\": %" PRIu64 ", \"symbols\": %u, \"columns_isa\": \"%s\", "
         "\"columns_ns_per_tick\": %.3f, ",
         t.n, n_symbols, pe_core_isa_name(ctx.core), best * 1e9 / n);
  print_all("columns_all_s", all_s, repeat);
  printf(", ");
  print_checksums("columns_checksums", &t, out);
  /* Every path this CPU has, with its own sums. */
  static const pe_core_isa_t paths[3] = {PE_CORE_ISA_GENERIC, PE_CORE_ISA_AVX2,
                                         PE_CORE_ISA_AVX512};
  printf(", \"isa\": {");
  for (int k = 0, shown = 0; k < 3; k++) {
    pe_core_t *first = ctx.core;
    ccfg.isa = paths[k];
    if (pe_core_create(&ccfg, &ctx.core, NULL, 0) != 0) {
      ctx.core = first;
      continue;
    }
    best = best_of(repeat, do_columns, &ctx, NULL);
    printf("%s\"%s\": {\"ns_per_tick\": %.3f, ", shown++ ? ", " : "",
           pe_core_isa_name(ctx.core), best * 1e9 / n);
    print_checksums("checksums", &t, out);
    printf("}");
    pe_core_destroy(ctx.core);
    ctx.core = first;
  }
  printf("}");
  best = best_of(repeat, do_structs, &ctx, all_s);
  printf(", \"best_s\": %.6f, \"ns_per_tick\": %.3f, \"ticks_per_s\": %.0f, ",
         best, best * 1e9 / n, n / best);
  print_all("all_s", all_s, repeat);
  printf(", ");
  print_checksums("checksums", &t, out);
  /* The floors, on the same arrays, after the checksums are taken. */
  best = best_of(repeat, do_floor, &ctx, NULL);
  printf(", \"floor_ns_per_tick\": %.3f", best * 1e9 / n);
#ifdef FLOOR_STREAM
  best = best_of(repeat, do_floor_stream, &ctx, NULL);
  printf(", \"floor_stream_ns_per_tick\": %.3f", best * 1e9 / n);
#endif
  if (t.n > 0) {
    volatile double sink = out[1][t.n / 2] + out[3][t.n - 1];
    (void)sink;
  }
  /* The features summed instead of stored. */
  best = best_of(repeat, do_summed, &ctx, NULL);
  printf(", \"summed_ns_per_tick\": %.3f, \"summed\": {", best * 1e9 / n);
  for (int k = 0; k < N_OUT; k++) {
    printf("%s\"%s\": %.17g", k ? ", " : "", names[k], ctx.sums[k]);
  }
  printf("}");
  pe_core_destroy(ctx.core);
  /* Memory per symbol of the real engine, with windows of W ticks. */
  pe_engine_config_t cfg;
  pe_engine_config_init(&cfg);
  cfg.max_symbols = n_symbols;
  cfg.window = window;
  pe_engine_t *e = NULL;
  size_t per_symbol = 0;
  if (pe_engine_create(&cfg, &e, err, sizeof err) == 0) {
    per_symbol = pe_engine_bytes_per_symbol(e);
    pe_engine_destroy(e);
  }
  printf(", \"window\": %u, \"engine_bytes_per_symbol\": %zu}\n", window,
         per_symbol);
  return 0;
}
