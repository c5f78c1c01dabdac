/* Zero heap allocations per tick: this executable replaces malloc and its
 * siblings with counting versions (forwarding to glibc's __libc_* entry
 * points), then pushes ticks through the CSV parser, the engine with windows
 * and the stub model, and the signal and feature formatters; and runs the
 * columnar core (pe/core.h) over arrays. Not built with sanitizers, which
 * bring their own allocator. */
#include <stdint.h>
#include <stdlib.h>

#include "pe/core.h"
#include "pe/csv.h"
#include "pe/engine.h"
#include "pe/error.h"
#include "pe/sink.h"
#include "pe_test.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static uint64_t allocations = 0;

void *malloc(size_t n) {
  allocations++;
  return __libc_malloc(n);
}
void *calloc(size_t n, size_t m) {
  allocations++;
  return __libc_calloc(n, m);
}
void *realloc(void *p, size_t n) {
  allocations++;
  return __libc_realloc(p, n);
}
void *aligned_alloc(size_t align, size_t n) {
  allocations++;
  return __libc_memalign(align, n);
}
void free(void *p) { __libc_free(p); }

typedef struct run {
  pe_engine_t *engine;
  pe_tick_out_t out;
  uint64_t ticks, signals, model_signals;
  char buf[4096];
} run_t;

/* An accepted tick's report: its features and signals formatted. */
static int on_report(void *ctx, const pe_tick_t *t, int rc,
                     const pe_tick_out_t *out) {
  run_t *r = ctx;
  if (rc != PE_OK) {
    return 1;
  }
  pe_features_format(t, out, r->buf, sizeof r->buf);
  for (uint32_t i = 0; i < out->n_signals; i++) {
    pe_signal_format(&out->signal[i], PE_FORMAT_JSONL, r->buf, sizeof r->buf);
    r->signals++;
    r->model_signals += out->signal[i].pattern == PE_PATTERN_MODEL;
  }
  return 0;
}

static int on_tick(void *ctx, const pe_tick_t *t, uint64_t line_no,
                   const char *line, size_t len) {
  run_t *r = ctx;
  (void)line_no;
  (void)line;
  (void)len;
  if (pe_engine_push(r->engine, t, &r->out) != PE_OK) {
    return 1;
  }
  r->ticks++;
  return pe_engine_batched(r->engine) ? 0 : on_report(r, t, PE_OK, &r->out);
}

/* Unbatched, and micro-batched (model runs of up to max_batch windows, the
 * reports held in between). */
static void zero_allocations_per_tick(uint32_t max_batch) {
  pe_engine_config_t cfg;
  pe_engine_config_init(&cfg);
  cfg.max_symbols = 1024;
  cfg.max_batch = max_batch;
  cfg.max_delay_us = 1000000;
  pe_engine_t *e = NULL;
  char err[256];
  PE_CHECK_INT(pe_engine_create(&cfg, &e, err, sizeof err), PE_OK);
  pe_backend_options_t opts;
  memset(&opts, 0, sizeof opts);
  opts.window = 32;
  pe_backend_t *b = NULL;
  PE_CHECK_INT(pe_backend_open("stub", &opts, &b, err, sizeof err), PE_OK);
  PE_CHECK_INT(pe_engine_set_backend(e, b), PE_OK);
  pe_csv_options_t copt = {PE_TS_AUTO, 0, 0};
  pe_csv_t *csv = NULL;
  PE_CHECK_INT(pe_csv_create(&copt, &csv), PE_OK);

  /* 200 symbols x 500 ticks as CSV text, with jumps so rules and the model
   * fire, and a few bad rows. */
  size_t cap = 64u << 20;
  char *text = __libc_malloc(cap);
  size_t len = 0;
  len += (size_t)snprintf(text, cap, "ts,symbol,price,volume\n");
  uint64_t s = 1;
  double price[200];
  for (int k = 0; k < 200; k++) {
    price[k] = 10.0 + k;
  }
  for (int i = 0; i < 100000; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    int k = (int)((s >> 33) % 200);
    double u = (double)(s >> 11) * 0x1.0p-53;
    price[k] *= 1.0 + (u - 0.5) * (u > 0.98 ? 0.1 : 0.001);
    if (i % 1000 == 999) {
      len += (size_t)snprintf(text + len, cap - len, "%d,SYM%d,oops,1\n", i, k);
    }
    len += (size_t)snprintf(text + len, cap - len, "%lld,SYM%d,%.6f,%.3f\n",
                            1700000000000000000LL + (long long)i * 1000000, k,
                            price[k], 1.0 + u * (u > 0.98 ? 100.0 : 5.0));
  }

  run_t *r = __libc_calloc(1, sizeof *r);
  r->engine = e;
  PE_CHECK_INT(pe_engine_batched(e), max_batch > 1);
  pe_engine_set_report(e, on_report, r);
  pe_csv_handler_t h = {r, on_tick, NULL};
  /* Warm-up: the first 10% (every symbol appears in it). */
  size_t warm = len / 10;
  while (text[warm - 1] != '\n') {
    warm++;
  }
  PE_CHECK_INT(pe_csv_feed(csv, text, warm, &h), PE_OK);
  uint64_t before = allocations;
  uint64_t ticks_before = r->ticks;
  /* The rest in odd-sized chunks, so lines are cut and carried. */
  for (size_t i = warm; i < len; i += 777) {
    size_t n = len - i < 777 ? len - i : 777;
    PE_CHECK_INT(pe_csv_feed(csv, text + i, n, &h), PE_OK);
  }
  PE_CHECK_INT(pe_csv_finish(csv, &h), PE_OK);
  PE_CHECK_INT(pe_engine_flush(e), PE_OK);
  uint64_t during = allocations - before;
  pe_engine_batch_stats_t bs;
  pe_engine_batch_stats(e, &bs);
  PE_CHECK(max_batch == 1 || bs.largest == max_batch);
  printf("max_batch %u (largest run %u): ticks after warm-up %llu, signals "
         "%llu (model %llu), allocations %llu\n",
         max_batch, bs.largest, (unsigned long long)(r->ticks - ticks_before),
         (unsigned long long)r->signals, (unsigned long long)r->model_signals,
         (unsigned long long)during);
  PE_CHECK(r->ticks - ticks_before > 80000);
  PE_CHECK(r->signals > 100);
  PE_CHECK(r->model_signals > 0);
  PE_CHECK_INT(during, 0);
  /* The counter works: an allocation is seen. */
  before = allocations;
  void *p = malloc(16);
  PE_CHECK_INT(allocations - before, 1);
  free(p);

  __libc_free(text);
  __libc_free(r);
  pe_csv_destroy(csv);
  pe_engine_destroy(e);
  pe_backend_close(b);
}

static void test_zero_allocations_per_tick(void) {
  zero_allocations_per_tick(1);
  zero_allocations_per_tick(64);
}

/* The columnar core allocates in create and nowhere else. */
static void test_core_run_allocates_nothing(void) {
  enum { N = 200000 };
  int32_t *sym = __libc_malloc(N * sizeof *sym);
  double *buf = __libc_malloc(7 * (size_t)N * sizeof *buf);
  double *price = buf, *volume = buf + N;
  for (size_t i = 0; i < N; i++) {
    sym[i] = (int32_t)((i * 7919u) % 500u);
    price[i] = 100.0 + (double)(i % 97) * 0.01;
    volume[i] = (double)(1 + i % 13);
  }
  pe_core_columns_t cols = {buf + 2 * N, buf + 3 * N, buf + 4 * N, buf + 5 * N,
                            buf + 6 * N};
  pe_core_config_t cfg;
  pe_core_config_init(&cfg);
  cfg.n_symbols = 500;
  pe_core_t *core = NULL;
  uint64_t before = allocations;
  PE_CHECK_INT(pe_core_create(&cfg, &core, NULL, 0), PE_OK);
  PE_CHECK(allocations - before >= 2);
  before = allocations;
  for (size_t at = 0; at < N; at += 1000) {
    PE_CHECK_INT(
        pe_core_run(core, 1000, sym + at, price + at, volume + at, &cols),
        PE_OK);
  }
  PE_CHECK_INT(pe_core_run(core, N, sym, price, volume, &cols), PE_OK);
  printf("core (%s): %d ticks twice, allocations %llu\n",
         pe_core_isa_name(core), N, (unsigned long long)(allocations - before));
  PE_CHECK_INT(allocations - before, 0);
  pe_core_destroy(core);
  __libc_free(buf);
  __libc_free(sym);
}

PE_TEST_MAIN(PE_TEST(test_zero_allocations_per_tick),
             PE_TEST(test_core_run_allocates_nothing))
