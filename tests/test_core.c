/* The columnar feature core (pe/core.h) against pe/state.h's streaming
 * statistics, bit for bit, on both code paths (the AVX-512 one where this
 * CPU has it), whole and in chunks, with aligned, shifted and mismatched
 * output columns, and over the streaming-store threshold; and against the
 * engine's own features. Output columns are poisoned first, so an
 * unwritten element fails. */
#include "pe/core.h"

#include <stdint.h>

#include "pe/engine.h"
#include "pe/error.h"
#include "pe/state.h"
#include "pe_test.h"

#define MAX_N 300000
#define MAX_SYM 500

static int32_t syms[MAX_N];
static double px[MAX_N], vol[MAX_N];

/* xorshift64*: a fixed sequence whatever the platform's rand(). */
static uint64_t rng_state;
static double rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (double)((rng_state * 2685821657736338717ull) >> 11) * 0x1.0p-53;
}

/* n ticks over n_sym symbols drawn at random: per-symbol random walks in
 * cents around different levels, sizes 0..99 (a symbol's first sizes are
 * often 0, so its VWAP starts undefined), and one NaN price late on. */
static void make_ticks(size_t n, uint32_t n_sym, uint64_t seed) {
  static double level[MAX_SYM];
  rng_state = seed;
  for (uint32_t s = 0; s < n_sym; s++) {
    level[s] = 1.0 + rnd() * 1000.0;
  }
  for (size_t i = 0; i < n; i++) {
    uint32_t s = (uint32_t)(rnd() * n_sym);
    syms[i] = (int32_t)s;
    level[s] *= 1.0 + (rnd() - 0.5) * 2e-3;
    px[i] = round(level[s] * 100.0) / 100.0;
    vol[i] = rnd() < 0.1 ? 0.0 : floor(rnd() * 100.0);
  }
  if (n > 1000) {
    px[n - 1000] = NAN;
  }
}

typedef struct cols {
  double *c[5];
} cols_t;

/* Five columns of n doubles at byte offsets shift[k] from a 64-byte line,
 * poisoned with 0xA5 bytes (a finite number, -2.0e-29). */
static cols_t cols_new(size_t n, const size_t shift[5]) {
  cols_t c;
  for (int k = 0; k < 5; k++) {
    char *base = aligned_alloc(64, (n * sizeof(double) + 128) / 64 * 64 + 64);
    memset(base, 0xA5, (n * sizeof(double) + 128) / 64 * 64 + 64);
    c.c[k] = (double *)(void *)(base + shift[k]);
  }
  return c;
}

static void cols_free(cols_t *c, const size_t shift[5]) {
  for (int k = 0; k < 5; k++) {
    free((char *)c->c[k] - shift[k]);
  }
}

static pe_core_columns_t as_columns(const cols_t *c, size_t offset) {
  pe_core_columns_t out = {c->c[0] + offset, c->c[1] + offset, c->c[2] + offset,
                           c->c[3] + offset, c->c[4] + offset};
  return out;
}

/* The reference: pe/state.h's structs, one set per symbol, fed one tick at
 * a time, into five columns. */
static void reference(size_t n, uint32_t n_sym, const cols_t *ref) {
  static pe_ema_t fast[MAX_SYM], slow[MAX_SYM];
  static pe_cvwap_t vw[MAX_SYM];
  static pe_welford_t w[MAX_SYM];
  for (uint32_t s = 0; s < n_sym; s++) {
    pe_ema_init_span(&fast[s], 19.0);
    pe_ema_init_span(&slow[s], 39.0);
    pe_cvwap_init(&vw[s]);
    pe_welford_init(&w[s]);
  }
  for (size_t i = 0; i < n; i++) {
    uint32_t s = (uint32_t)syms[i];
    pe_ema_update(&fast[s], px[i]);
    pe_ema_update(&slow[s], px[i]);
    pe_cvwap_update(&vw[s], px[i], vol[i]);
    pe_welford_update(&w[s], px[i]);
    ref->c[0][i] = pe_ema_value(&fast[s]);
    ref->c[1][i] = pe_ema_value(&slow[s]);
    ref->c[2][i] = pe_cvwap_value(&vw[s]);
    ref->c[3][i] = pe_welford_mean(&w[s]);
    ref->c[4][i] = pe_welford_var_sample(&w[s]);
  }
}

/* Counts the elements of got that are not bit-identical to ref (NaN equals
 * NaN), reporting the first. */
static size_t mismatches(const cols_t *got, const cols_t *ref, size_t n,
                         const char *what) {
  static const char *const names[5] = {"ema_fast", "ema_slow", "vwap", "mean",
                                       "var"};
  size_t bad = 0;
  for (int k = 0; k < 5; k++) {
    for (size_t i = 0; i < n; i++) {
      double a = got->c[k][i], b = ref->c[k][i];
      if ((isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0) {
        continue;
      }
      if (bad++ == 0) {
        fprintf(stderr, "%s: %s[%zu] = %.17g, reference %.17g\n", what,
                names[k], i, a, b);
      }
    }
  }
  return bad;
}

static const size_t aligned[5] = {0, 0, 0, 0, 0};

/* The ISAs to test: generic always, AVX2 and AVX-512 where this CPU has
 * them. */
static int isas(pe_core_isa_t out[3]) {
  static const pe_core_isa_t vector[2] = {PE_CORE_ISA_AVX2, PE_CORE_ISA_AVX512};
  int k = 0;
  out[k++] = PE_CORE_ISA_GENERIC;
  for (int v = 0; v < 2; v++) {
    pe_core_config_t cfg;
    pe_core_config_init(&cfg);
    cfg.n_symbols = 1;
    cfg.isa = vector[v];
    pe_core_t *core = NULL;
    if (pe_core_create(&cfg, &core, NULL, 0) == PE_OK) {
      out[k++] = vector[v];
      pe_core_destroy(core);
    } else {
      static int told[2];
      if (!told[v]++) {
        fprintf(stderr, "note: this CPU lacks %s; that path is not tested\n",
                v == 0 ? "AVX2" : "AVX-512");
      }
    }
  }
  return k;
}

/* stream_min_ticks 0 keeps the default. */
static pe_core_t *make_core_streaming(uint32_t n_sym, pe_core_isa_t isa,
                                      size_t stream_min_ticks) {
  pe_core_config_t cfg;
  pe_core_config_init(&cfg);
  cfg.n_symbols = n_sym;
  cfg.isa = isa;
  if (stream_min_ticks != 0) {
    cfg.stream_min_ticks = stream_min_ticks;
  }
  pe_core_t *core = NULL;
  char err[160];
  PE_CHECK_INT(pe_core_create(&cfg, &core, err, sizeof err), PE_OK);
  /* The path asked for is the path taken. */
  static const char *const names[] = {NULL, "generic", "avx2", "avx512"};
  if (isa != PE_CORE_ISA_AUTO) {
    PE_CHECK_STR(pe_core_isa_name(core), names[isa]);
  }
  return core;
}

static pe_core_t *make_core(uint32_t n_sym, pe_core_isa_t isa) {
  return make_core_streaming(n_sym, isa, 0);
}

static void test_matches_streaming_structs(void) {
  static const uint32_t n_syms[] = {1, 3, 12, 500};
  pe_core_isa_t isa[3];
  int n_isa = isas(isa);
  size_t n = 20011; /* not a multiple of 8 */
  cols_t ref = cols_new(n, aligned);
  for (size_t t = 0; t < sizeof n_syms / sizeof n_syms[0]; t++) {
    make_ticks(n, n_syms[t], 0x9E3779B97F4A7C15ull + t);
    reference(n, n_syms[t], &ref);
    for (int a = 0; a < n_isa; a++) {
      pe_core_t *core = make_core(n_syms[t], isa[a]);
      cols_t got = cols_new(n, aligned);
      pe_core_columns_t out = as_columns(&got, 0);
      PE_CHECK_INT(pe_core_run(core, n, syms, px, vol, &out), PE_OK);
      char what[64];
      snprintf(what, sizeof what, "%s, %u symbols", pe_core_isa_name(core),
               n_syms[t]);
      PE_CHECK_INT(mismatches(&got, &ref, n, what), 0);
      cols_free(&got, aligned);
      pe_core_destroy(core);
    }
  }
  cols_free(&ref, aligned);
}

/* Chunks of awkward sizes, so that blocks start at every offset within a
 * line, give the same bits as one call. */
/* Chunks of awkward sizes, so that blocks start at every offset within a
 * line, give the same bits as one call, with and without streaming
 * stores. */
static void test_chunks_equal_one_call(void) {
  static const size_t sizes[] = {1, 7, 8, 13, 64, 3, 1000, 9, 4096, 2, 15};
  pe_core_isa_t isa[3];
  int n_isa = isas(isa);
  size_t n = 50000;
  make_ticks(n, 500, 42);
  cols_t ref = cols_new(n, aligned);
  reference(n, 500, &ref);
  for (int a = 0; a < 2 * n_isa; a++) {
    /* The second time round, every chunk takes the streaming stores. */
    pe_core_t *core =
        make_core_streaming(500, isa[a % n_isa], a < n_isa ? 0 : 1);
    cols_t got = cols_new(n, aligned);
    size_t at = 0;
    for (size_t k = 0; at < n; k++) {
      size_t len = sizes[k % (sizeof sizes / sizeof sizes[0])];
      len = len < n - at ? len : n - at;
      pe_core_columns_t out = as_columns(&got, at);
      PE_CHECK_INT(pe_core_run(core, len, syms + at, px + at, vol + at, &out),
                   PE_OK);
      at += len;
    }
    PE_CHECK_INT(mismatches(&got, &ref, n, pe_core_isa_name(core)), 0);
    cols_free(&got, aligned);
    pe_core_destroy(core);
  }
  cols_free(&ref, aligned);
}

/* Over the streaming-store threshold: columns on a line boundary, all
 * shifted by the same 8 bytes (a few ticks before the first boundary),
 * shifted by different amounts (no common alignment: unaligned stores), and
 * on a line boundary with streaming stores turned off. */
static void test_large_runs_every_alignment(void) {
  static const size_t shifts[3][5] = {
      {0, 0, 0, 0, 0}, {8, 8, 8, 8, 8}, {0, 8, 24, 40, 16}};
  pe_core_isa_t isa[3];
  int n_isa = isas(isa);
  size_t n = MAX_N - 3;
  make_ticks(n, 500, 7);
  cols_t ref = cols_new(n, aligned);
  reference(n, 500, &ref);
  for (int a = 0; a < n_isa; a++) {
    for (int s = 0; s < 4; s++) {
      /* The fourth time: aligned columns, streaming stores turned off. */
      pe_core_t *core = make_core_streaming(500, isa[a], s < 3 ? 0 : SIZE_MAX);
      cols_t got = cols_new(n, shifts[s % 3]);
      pe_core_columns_t out = as_columns(&got, 0);
      PE_CHECK_INT(pe_core_run(core, n, syms, px, vol, &out), PE_OK);
      char what[64];
      snprintf(what, sizeof what, "%s, shifts %d", pe_core_isa_name(core), s);
      PE_CHECK_INT(mismatches(&got, &ref, n, what), 0);
      cols_free(&got, shifts[s % 3]);
      pe_core_destroy(core);
    }
  }
  cols_free(&ref, aligned);
}

/* A NULL column is left alone; the others are still right. */
static void test_null_columns(void) {
  pe_core_isa_t isa[3];
  int n_isa = isas(isa);
  size_t n = 100000;
  make_ticks(n, 500, 3);
  cols_t ref = cols_new(n, aligned);
  reference(n, 500, &ref);
  for (int a = 0; a < n_isa; a++) {
    pe_core_t *core = make_core(500, isa[a]);
    cols_t got = cols_new(n, aligned);
    pe_core_columns_t out = {NULL, got.c[1], NULL, got.c[3], NULL};
    PE_CHECK_INT(pe_core_run(core, n, syms, px, vol, &out), PE_OK);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
      bad += memcmp(&got.c[1][i], &ref.c[1][i], sizeof(double)) != 0;
      bad += memcmp(&got.c[3][i], &ref.c[3][i], sizeof(double)) != 0;
      uint64_t bits;
      memcpy(&bits, &got.c[0][i], sizeof bits);
      bad += bits != 0xA5A5A5A5A5A5A5A5ull;
    }
    PE_CHECK_INT(bad, 0);
    cols_free(&got, aligned);
    pe_core_destroy(core);
  }
  cols_free(&ref, aligned);
}

/* An id out of range stops the run at that tick: those before are folded
 * and written, none after; the message names the tick. */
static void test_symbol_out_of_range(void) {
  static const int32_t bad_ids[] = {500, -1};
  /* In the first and the second half of an eight-tick block. */
  static const size_t ats[] = {1234, 1237};
  pe_core_isa_t isa[3];
  int n_isa = isas(isa);
  size_t n = 5000;
  for (int a = 0; a < n_isa; a++) {
    for (int b = 0; b < 4; b++) {
      size_t at = ats[b / 2];
      make_ticks(n, 500, 11);
      size_t before = 0;
      for (size_t i = 0; i < at; i++) {
        before += syms[i] == syms[at];
      }
      int32_t victim = syms[at];
      cols_t ref = cols_new(n, aligned);
      reference(n, 500, &ref);
      syms[at] = bad_ids[b % 2];
      pe_core_t *core = make_core(500, isa[a]);
      cols_t got = cols_new(n, aligned);
      pe_core_columns_t out = as_columns(&got, 0);
      PE_CHECK_INT(pe_core_run(core, n, syms, px, vol, &out), PE_EINVAL);
      char want[32];
      snprintf(want, sizeof want, "tick %zu ", at);
      PE_CHECK(strstr(pe_core_errmsg(core), want) != NULL);
      PE_CHECK_INT(mismatches(&got, &ref, at, pe_core_isa_name(core)), 0);
      uint64_t bits;
      memcpy(&bits, &got.c[3][at], sizeof bits);
      PE_CHECK(bits == 0xA5A5A5A5A5A5A5A5ull);
      /* The symbol whose tick was spoilt holds its ticks before it. */
      pe_core_values_t v;
      PE_CHECK_INT(pe_core_symbol(core, (uint32_t)victim, &v), PE_OK);
      PE_CHECK_INT(v.n, before);
      cols_free(&got, aligned);
      cols_free(&ref, aligned);
      pe_core_destroy(core);
    }
  }
}

/* pe_core_symbol gives a symbol's latest features; reset forgets them. */
static void test_symbol_values_and_reset(void) {
  size_t n = 3000;
  make_ticks(n, 12, 5);
  pe_core_t *core = make_core(12, PE_CORE_ISA_AUTO);
  cols_t got = cols_new(n, aligned);
  pe_core_columns_t out = as_columns(&got, 0);
  PE_CHECK_INT(pe_core_run(core, n, syms, px, vol, &out), PE_OK);
  size_t last = n - 1;
  while (syms[last] != 4) {
    last--;
  }
  size_t count = 0;
  for (size_t i = 0; i < n; i++) {
    count += syms[i] == 4;
  }
  pe_core_values_t v;
  PE_CHECK_INT(pe_core_symbol(core, 4, &v), PE_OK);
  PE_CHECK_INT(v.n, count);
  PE_CHECK_SAME(v.ema_fast, got.c[0][last]);
  PE_CHECK_SAME(v.ema_slow, got.c[1][last]);
  PE_CHECK_SAME(v.vwap, got.c[2][last]);
  PE_CHECK_SAME(v.mean, got.c[3][last]);
  PE_CHECK_SAME(v.var, got.c[4][last]);
  PE_CHECK_INT(pe_core_symbol(core, 12, &v), PE_EINVAL);
  pe_core_reset(core);
  PE_CHECK_INT(pe_core_symbol(core, 4, &v), PE_OK);
  PE_CHECK_INT(v.n, 0);
  PE_CHECK(isnan(v.ema_fast) && isnan(v.vwap) && isnan(v.mean) && isnan(v.var));
  cols_free(&got, aligned);
  pe_core_destroy(core);
}

/* The engine's five core features (pe_tick_out_t) are the core's, bit for
 * bit, on ticks the engine accepts. */
static void test_engine_agrees(void) {
  size_t n = 6000;
  make_ticks(n, 40, 99);
  px[n - 1000] = 1.0; /* the engine would reject the NaN */
  pe_engine_config_t ecfg;
  pe_engine_config_init(&ecfg);
  ecfg.max_symbols = 64;
  pe_engine_t *e = NULL;
  char err[256];
  PE_CHECK_INT(pe_engine_create(&ecfg, &e, err, sizeof err), PE_OK);
  pe_core_t *core = make_core(40, PE_CORE_ISA_AUTO);
  cols_t got = cols_new(n, aligned);
  pe_core_columns_t cols = as_columns(&got, 0);
  PE_CHECK_INT(pe_core_run(core, n, syms, px, vol, &cols), PE_OK);
  static pe_tick_out_t out;
  size_t bad = 0;
  for (size_t i = 0; i < n && e != NULL; i++) {
    pe_tick_t t;
    memset(&t, 0, sizeof t);
    t.ts_ns = 1704205800000000000LL + (int64_t)i * 1000;
    t.recv_ts_ns = PE_TS_NONE;
    t.price = px[i];
    t.volume = vol[i];
    t.symbol_len =
        (uint32_t)snprintf(t.symbol, sizeof t.symbol, "S%d", syms[i]);
    PE_CHECK_INT(pe_engine_push(e, &t, &out), PE_OK);
    const double mine[5] = {out.ema_fast, out.ema_slow, out.vwap, out.mean,
                            out.var};
    for (int k = 0; k < 5; k++) {
      double a = got.c[k][i];
      bad += !((isnan(a) && isnan(mine[k])) ||
               memcmp(&a, &mine[k], sizeof a) == 0);
    }
  }
  PE_CHECK_INT(bad, 0);
  cols_free(&got, aligned);
  pe_core_destroy(core);
  pe_engine_destroy(e);
}

static void test_create_refuses_bad_config(void) {
  pe_core_config_t cfg;
  pe_core_config_init(&cfg);
  pe_core_t *core = NULL;
  char err[160];
  PE_CHECK_INT(pe_core_create(&cfg, &core, err, sizeof err), PE_EINVAL);
  PE_CHECK(strstr(err, "n_symbols") != NULL);
  PE_CHECK(core == NULL);
  cfg.n_symbols = 10;
  cfg.ema_slow_span = 0.5;
  PE_CHECK_INT(pe_core_create(&cfg, &core, err, sizeof err), PE_EINVAL);
  PE_CHECK(strstr(err, "span") != NULL);
  cfg.ema_slow_span = 39.0;
  cfg.isa = (pe_core_isa_t)7;
  PE_CHECK_INT(pe_core_create(&cfg, &core, err, sizeof err), PE_EINVAL);
  pe_core_destroy(NULL);
}

PE_TEST_MAIN({"matches_streaming_structs", test_matches_streaming_structs},
             {"chunks_equal_one_call", test_chunks_equal_one_call},
             {"large_runs_every_alignment", test_large_runs_every_alignment},
             {"null_columns", test_null_columns},
             {"symbol_out_of_range", test_symbol_out_of_range},
             {"symbol_values_and_reset", test_symbol_values_and_reset},
             {"engine_agrees", test_engine_agrees},
             {"create_refuses_bad_config", test_create_refuses_bad_config})
