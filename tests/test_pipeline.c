/* The pipeline (pe/pipeline.h): its outputs against the engine driven one
 * tick at a time through the public API, and every way a run stops. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pe/csv.h"
#include "pe/engine.h"
#include "pe/error.h"
#include "pe/pipeline.h"
#include "pe/sink.h"
#include "pe_test.h"

static char pe__dir[] = "/tmp/pe-test-pipeline-XXXXXX";

static void pe__cleanup(void);

/* name in this run's temporary folder (made on first use); the string
 * lasts until the 16th call after. */
static const char *pe__path(const char *name) {
  static char buf[16][256];
  static int next, made;
  if (!made) {
    made = 1;
    PE_CHECK(mkdtemp(pe__dir) != NULL);
    atexit(pe__cleanup);
  }
  char *p = buf[next++ % 16];
  snprintf(p, sizeof buf[0], "%s/%s", pe__dir, name);
  return p;
}

static char *pe__slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    return NULL;
  }
  size_t cap = 1 << 16, n = 0;
  char *b = malloc(cap);
  size_t r;
  while (b != NULL && (r = fread(b + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap) {
      char *g = realloc(b, cap *= 2);
      if (g == NULL) {
        free(b);
        b = NULL;
      }
      b = g;
    }
  }
  fclose(f);
  *len = n;
  return b;
}

static void pe__write(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  PE_CHECK(f != NULL);
  if (f != NULL) {
    fputs(text, f);
    fclose(f);
  }
}

/* An engine at the defaults but for max_symbols and all_features. */
static pe_engine_t *pe__engine(uint32_t max_symbols, uint32_t all_features) {
  pe_engine_config_t cfg;
  pe_engine_config_init(&cfg);
  cfg.max_symbols = max_symbols;
  cfg.all_features = all_features;
  pe_engine_t *engine = NULL;
  char err[512];
  PE_CHECK_INT(pe_engine_create(&cfg, &engine, err, sizeof err), PE_OK);
  return engine;
}

/* ---- the reference: pe_csv_feed and pe_engine_push, one tick a call ----- */

typedef struct pe__ref {
  pe_engine_t *engine;
  FILE *signals, *features, *rejects;
  pe_tick_out_t out;
  char line[4096];
} pe__ref_t;

/* A rejects record: line,reason,raw with the raw line one RFC 4180 field,
 * quoted with its quotes doubled when it holds , " CR or LF. */
static void pe__ref_record(FILE *f, int err, uint64_t line_no, const char *line,
                           size_t len) {
  fprintf(f, "%llu,%s,", (unsigned long long)line_no,
          pe_reject_name(pe_reject_from_error(err)));
  int quote = 0;
  for (size_t i = 0; i < len; i++) {
    quote |= strchr(",\"\r\n", line[i]) != NULL && line[i] != '\0';
  }
  if (quote) {
    fputc('"', f);
  }
  for (size_t i = 0; i < len; i++) {
    if (quote && line[i] == '"') {
      fputc('"', f);
    }
    fputc(line[i], f);
  }
  fputs(quote ? "\"\n" : "\n", f);
}

static int pe__ref_tick(void *ctx, const pe_tick_t *t, uint64_t line_no,
                        const char *line, size_t len) {
  pe__ref_t *r = ctx;
  int rc = pe_engine_push(r->engine, t, &r->out);
  if (rc != PE_OK) {
    pe__ref_record(r->rejects, rc, line_no, line, len);
    return 0;
  }
  size_t n = pe_features_format(t, &r->out, r->line, sizeof r->line);
  fwrite(r->line, 1, n, r->features);
  for (uint32_t i = 0; i < r->out.n_signals; i++) {
    n = pe_signal_format(&r->out.signal[i], PE_FORMAT_JSONL, r->line,
                         sizeof r->line);
    fwrite(r->line, 1, n, r->signals);
  }
  return 0;
}

static int pe__ref_reject(void *ctx, int err, uint64_t line_no,
                          const char *line, size_t len) {
  pe__ref_t *r = ctx;
  pe__ref_record(r->rejects, err, line_no, line, len);
  return 0;
}

static void pe__reference(const char *input) {
  pe__ref_t r;
  memset(&r, 0, sizeof r);
  r.engine = pe__engine(65536, 1);
  r.signals = fopen(pe__path("ref_signals"), "w");
  r.features = fopen(pe__path("ref_features"), "w");
  r.rejects = fopen(pe__path("ref_rejects"), "w");
  fputs(pe_features_csv_header(), r.features);
  fputs("line,reason,raw\n", r.rejects);
  pe_csv_options_t o;
  memset(&o, 0, sizeof o);
  pe_csv_t *csv = NULL;
  PE_CHECK_INT(pe_csv_create(&o, &csv), PE_OK);
  pe_csv_handler_t h = {&r, pe__ref_tick, pe__ref_reject};
  size_t len = 0;
  char *data = pe__slurp(input, &len);
  PE_CHECK(data != NULL);
  PE_CHECK_INT(pe_csv_feed(csv, data, len, &h), PE_OK);
  PE_CHECK_INT(pe_csv_finish(csv, &h), PE_OK);
  free(data);
  pe_csv_destroy(csv);
  fclose(r.signals);
  fclose(r.features);
  fclose(r.rejects);
  pe_engine_destroy(r.engine);
}

static int pe__same_file(const char *a, const char *b) {
  size_t la = 0, lb = 0;
  char *da = pe__slurp(a, &la), *db = pe__slurp(b, &lb);
  int same = da != NULL && db != NULL && la == lb && memcmp(da, db, la) == 0;
  if (!same) {
    fprintf(stderr, "%s (%zu bytes) and %s (%zu bytes) differ\n", a, la, b, lb);
  }
  free(da);
  free(db);
  return same && la > 0;
}

/* The fixture through the pipeline in odd-sized feeds: the same bytes as
 * the engine fed one tick at a time, for every output. */
static void test_outputs_match_one_tick_at_a_time(void) {
  /* The fixture, with two bad rows and an out-of-order one appended. */
  size_t len = 0;
  char *fixture = pe__slurp(PE_TEST_FIXTURE, &len);
  PE_CHECK(fixture != NULL);
  char input[256];
  snprintf(input, sizeof input, "%s", pe__path("ticks.csv"));
  FILE *f = fopen(input, "w");
  fwrite(fixture, 1, len, f);
  fputs("1704205800012482000,AAPL,-1,5\nnot,a,row\n"
        "1000000000000000000,NVDA,10,1\n",
        f);
  long size = ftell(f);
  fclose(f);
  free(fixture);

  /* Read with read(2) and mapped (map = 1), in small and large pieces. */
  for (unsigned run = 0; run < 4; run++) {
    size_t read_size = run & 1u ? 4093u * 256u : 4093u;
    int map = (int)(run >> 1);
    pe_engine_t *engine = pe__engine(65536, 1);
    char err[512];
    pe_pipeline_config_t pc;
    pe_pipeline_config_init(&pc);
    pc.source.path = input;
    pc.source.read_size = read_size;
    pc.source.map = map;
    pc.signals_path = pe__path("signals");
    pc.format = PE_FORMAT_JSONL;
    pc.features_path = pe__path("features");
    /* Formatted on the run's thread, then by 1 to 3 threads: the same. */
    pc.features_threads = run;
    pc.rejects_path = pe__path("rejects");
    pe_pipeline_t *p = NULL;
    PE_CHECK_INT(pe_pipeline_create(&pc, engine, &p, err, sizeof err), PE_OK);
    const void *start = NULL;
    size_t mapped = 0;
    PE_CHECK_INT(pe_source_mapping(pe_pipeline_source(p), &start, &mapped),
                 map);
    PE_CHECK(map ? start != NULL : start == NULL);
    PE_CHECK_INT(mapped, map ? (uint64_t)size : 0u);
    PE_CHECK_INT(pe_pipeline_run(p), PE_OK);
    pe_pipeline_stats_t st;
    pe_pipeline_stats(p, &st);
    PE_CHECK_INT(st.rows, 24765 + 3);
    PE_CHECK_INT(st.engine.ticks, 24765);
    PE_CHECK_INT(st.rejected[PE_REJECT_BAD_PRICE], 1);
    PE_CHECK_INT(st.rejected[PE_REJECT_FIELD_COUNT], 1);
    PE_CHECK_INT(st.rejected[PE_REJECT_OUT_OF_ORDER], 1);
    PE_CHECK_INT(st.rejected_all, 3);
    PE_CHECK_INT(st.bytes_done, st.bytes_total);
    /* one batch in 16 timed, the first included */
    PE_CHECK(pe_pipeline_latency(p)->count > 0);
    PE_CHECK_STR(pe_pipeline_input(p), input);
    pe_pipeline_destroy(p);
    pe_engine_destroy(engine);
    pe__reference(input);
    PE_CHECK(pe__same_file(pe__path("signals"), pe__path("ref_signals")));
    PE_CHECK(pe__same_file(pe__path("features"), pe__path("ref_features")));
    PE_CHECK(pe__same_file(pe__path("rejects"), pe__path("ref_rejects")));
  }
}

/* Runs `text` through a pipeline with no outputs; returns the run's code
 * and leaves its message in msg. */
static int pe__run_text(const char *text, int stop_on_reject,
                        uint32_t max_symbols, char *msg, size_t cap) {
  char input[256];
  snprintf(input, sizeof input, "%s", pe__path("small.csv"));
  pe__write(input, text);
  pe_engine_t *engine = pe__engine(max_symbols, 0);
  char err[512];
  pe_pipeline_config_t pc;
  pe_pipeline_config_init(&pc);
  pc.source.path = input;
  pc.signals_path = NULL;
  pc.stop_on_reject = stop_on_reject;
  pe_pipeline_t *p = NULL;
  PE_CHECK_INT(pe_pipeline_create(&pc, engine, &p, err, sizeof err), PE_OK);
  int rc = p != NULL ? pe_pipeline_run(p) : PE_EINVAL;
  snprintf(msg, cap, "%s", p != NULL ? pe_pipeline_errmsg(p) : "");
  pe_pipeline_destroy(p);
  pe_engine_destroy(engine);
  return rc;
}

static void test_stops(void) {
  char msg[768], want[512];
  const char *rows = "ts,symbol,price,volume\n"
                     "1700000000,AAA,10,1\n"
                     "1700000001,BBB,0,1\n"
                     "1700000002,CCC,11,1\n";
  /* Skipping: the bad row is counted and the run goes on. */
  PE_CHECK_INT(pe__run_text(rows, 0, 16, msg, sizeof msg), PE_OK);
  /* Stopping at the first bad row: its code, file, line and raw text. */
  PE_CHECK_INT(pe__run_text(rows, 1, 16, msg, sizeof msg), PE_EPRICE);
  snprintf(want, sizeof want, "%s:3: bad_price (%s): 1700000001,BBB,0,1",
           pe__path("small.csv"), pe_strerror(PE_EPRICE));
  PE_CHECK_STR(msg, want);
  /* A full symbol table stops the run at the first symbol past it. */
  PE_CHECK_INT(pe__run_text(rows, 0, 1, msg, sizeof msg), PE_EFULL);
  snprintf(want, sizeof want, "%s:4: the symbol table is full (1 symbols)",
           pe__path("small.csv"));
  PE_CHECK_STR(msg, want);
  /* A header without a price column. */
  PE_CHECK_INT(pe__run_text("ts,symbol,size\n1,A,2\n", 0, 16, msg, sizeof msg),
               PE_EHEADER);
  PE_CHECK(strncmp(msg, pe__path("small.csv"), strlen(pe__path("small.csv"))) ==
           0);
}

static void test_open_errors(void) {
  pe_engine_t *engine = pe__engine(65536, 0);
  char err[512];
  pe_pipeline_config_t pc;
  pe_pipeline_config_init(&pc);
  pe_pipeline_t *p = (pe_pipeline_t *)&pc; /* must be reset to NULL */
  pc.source.path = pe__path("missing.csv");
  PE_CHECK_INT(pe_pipeline_create(&pc, engine, &p, err, sizeof err), PE_ENOENT);
  PE_CHECK(p == NULL);
  PE_CHECK(strstr(err, "missing.csv") != NULL &&
           strstr(err, strerror(ENOENT)) != NULL);
  pc.source.path = PE_TEST_FIXTURE;
  pc.signals_path = pe__path("no/such/folder/signals.csv");
  PE_CHECK_INT(pe_pipeline_create(&pc, engine, &p, err, sizeof err), PE_EIO);
  PE_CHECK(strstr(err, "no/such/folder/signals.csv") != NULL);
  pc.signals_path = NULL;
  pc.features_path = pe__path("no/such/folder/features.csv");
  PE_CHECK_INT(pe_pipeline_create(&pc, engine, &p, err, sizeof err), PE_EIO);
  pe_engine_destroy(engine);
  pe_pipeline_destroy(NULL);
}

/* A sink that cannot be written ends the run with PE_EIO, whether the
 * failure shows at a write or only at the final flush. */
static void test_failed_writes(void) {
  if (access("/dev/full", W_OK) != 0) {
    printf("skip test_failed_writes: no /dev/full\n");
    return;
  }
  const char *which[] = {"signals", "features", "rejects"};
  for (int k = 0; k < 3; k++) {
    pe_engine_t *engine = pe__engine(65536, 0);
    char err[512];
    pe_pipeline_config_t pc;
    pe_pipeline_config_init(&pc);
    pc.source.path = PE_TEST_FIXTURE;
    pc.signals_path = k == 0 ? "/dev/full" : NULL;
    pc.features_path = k == 1 ? "/dev/full" : NULL;
    pc.rejects_path = k == 2 ? "/dev/full" : NULL;
    pe_pipeline_t *p = NULL;
    PE_CHECK_INT(pe_pipeline_create(&pc, engine, &p, err, sizeof err), PE_OK);
    if (p != NULL) {
      PE_CHECK_INT(pe_pipeline_run(p), PE_EIO);
      const char *msg = pe_pipeline_errmsg(p);
      PE_CHECK(strstr(msg, "/dev/full") != NULL &&
               strstr(msg, strerror(ENOSPC)) != NULL);
      if (strstr(msg, k == 2 ? "rejected rows" : which[k]) == NULL) {
        fprintf(stderr, "message for %s: %s\n", which[k], msg);
        pe_test_failures++;
      }
    }
    pe_pipeline_destroy(p);
    pe_engine_destroy(engine);
  }
}

static void pe__cleanup(void) {
  const char *names[] = {"ticks.csv",   "signals",     "features",
                         "rejects",     "ref_signals", "ref_features",
                         "ref_rejects", "small.csv"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    unlink(pe__path(names[i]));
  }
  rmdir(pe__dir);
}

PE_TEST_MAIN(PE_TEST(test_outputs_match_one_tick_at_a_time),
             PE_TEST(test_stops), PE_TEST(test_open_errors),
             PE_TEST(test_failed_writes))
