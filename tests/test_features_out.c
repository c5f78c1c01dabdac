/* The features writer (src/io/features_out.c, pe/sink.h): CSV blocks are
 * byte for byte the rows of pe_features_format, whatever the thread count;
 * a .npy array holds each row's values bit for bit, the time split into
 * ts_s and ts_ns, the symbol as its index, with the columns and symbols
 * files beside it; an empty run and a discarded one. The rows cross block
 * boundaries, have symbol indices spread over several name chunks, symbols
 * that need CSV quoting, negative times and values that are not finite,
 * subnormal, huge or -0. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pe/error.h"
#include "pe/file.h"
#include "pe/sink.h"
#include "pe_test.h"
#include "splitmix.h"

enum { N_ROWS = 5000, COLS = 3 + 7 + PE_FEATURE_COUNT };

typedef struct pe__row {
  pe_tick_t tick;
  pe_tick_out_t out;
} pe__row_t;

static pe__row_t pe__rows[N_ROWS];
static char pe__dir[] = "/tmp/pe-features-out-XXXXXX";

static void pe__cleanup(void) {
  const char *names[] = {"f.csv", "f.npy", "f.columns.txt", "f.symbols.csv",
                         "e.csv"};
  char p[256];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", pe__dir, names[i]);
    unlink(p);
  }
  rmdir(pe__dir);
}

static void pe__make_rows(void);

/* The folder and the rows, made on first use. */
static const char *pe__path(const char *name) {
  static int ready;
  if (!ready) {
    ready = 1;
    PE_CHECK(mkdtemp(pe__dir) != NULL);
    atexit(pe__cleanup);
    pe__make_rows();
  }
  static char buf[4][256];
  static int k;
  char *p = buf[k++ % 4];
  snprintf(p, 256, "%s/%s", pe__dir, name);
  return p;
}

/* Seven symbols, their indices in three chunks of 1024 names. */
static const uint32_t pe__ids[] = {0, 1, 1023, 1024, 2047, 5000, 9};
static const char *const pe__names[] = {"AAPL", "B,C",   "say \"hi\"", "X",
                                        "Y\nZ", "LONG_", "nine"};

static double pe__value(uint64_t r) {
  switch (r % 11) {
  case 0:
    return NAN;
  case 1:
    return r & 16 ? INFINITY : -INFINITY;
  case 2:
    return -0.0;
  case 3:
    return 4.9406564584124654e-324 * (double)(r >> 40);
  case 4:
    return 1.7e308;
  default:
    return ((double)(r >> 11) * 0x1p-53 - 0.5) * pow(10.0, (double)(r % 9));
  }
}

static void pe__make_rows(void) {
  uint64_t rng = 0xfea7u;
  for (size_t i = 0; i < N_ROWS; i++) {
    pe__row_t *row = &pe__rows[i];
    memset(row, 0, sizeof *row);
    uint64_t r = pe_splitmix64(&rng);
    size_t s = r % 7;
    const char *name = pe__names[s];
    PE_CHECK_INT(pe_tick_set_symbol(&row->tick, name, (uint32_t)strlen(name)),
                 PE_OK);
    row->tick.ts_ns = (int64_t)(pe_splitmix64(&rng) >> 1) *
                      (r & 32 ? -1 : 1); /* either sign, any size */
    row->tick.price = 1.0 + (double)(r >> 20) * 1e-9;
    row->tick.volume = (double)(r % 1000);
    row->out.symbol_id = pe__ids[s];
    double *v = &row->out.ema_fast;
    for (int k = 0; k < 5; k++) {
      v[k] = pe__value(pe_splitmix64(&rng));
    }
    for (int f = 0; f < PE_FEATURE_COUNT; f++) {
      row->out.feature[f] = pe__value(pe_splitmix64(&rng));
    }
  }
}

/* Writes every row to path with `threads`; PE_OK expected. */
static void pe__write_rows(const char *path, unsigned threads, size_t n) {
  char err[256];
  pe_features_writer_t *w = NULL;
  PE_CHECK_INT(pe_features_writer_open(path, threads, &w, err, sizeof err),
               PE_OK);
  for (size_t i = 0; w != NULL && i < n; i++) {
    PE_CHECK_INT(pe_features_writer_add(w, &pe__rows[i].tick, &pe__rows[i].out),
                 PE_OK);
  }
  PE_CHECK_INT(pe_features_writer_close(w, 1, err, sizeof err), PE_OK);
}

static char *pe__read(const char *path, size_t *len) {
  char err[256];
  void *data = NULL;
  PE_CHECK_INT(pe_file_read_all(path, &data, len, err, sizeof err), PE_OK);
  return data;
}

static void test_csv_rows_are_pe_features_format(void) {
  (void)pe__path("f.csv"); /* makes the rows */
  size_t cap = 64 + (size_t)N_ROWS * 1024, n = 0;
  char *want = malloc(cap);
  n += (size_t)snprintf(want, cap, "%s", pe_features_csv_header());
  for (size_t i = 0; i < N_ROWS; i++) {
    n += pe_features_format(&pe__rows[i].tick, &pe__rows[i].out, want + n,
                            cap - n);
  }
  const unsigned threads[] = {0, 1, 2, 5};
  for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
    pe__write_rows(pe__path("f.csv"), threads[t], N_ROWS);
    size_t len = 0;
    char *got = pe__read(pe__path("f.csv"), &len);
    PE_CHECK_INT(len, n);
    PE_CHECK(got != NULL && len == n && memcmp(got, want, n) == 0);
    free(got);
  }
  free(want);
}

/* The .npy file's rows against the input, and the files beside it. */
static void pe__check_npy(size_t n_rows) {
  size_t len = 0;
  char *b = pe__read(pe__path("f.npy"), &len);
  PE_CHECK_INT(len, 128 + n_rows * COLS * sizeof(double));
  if (b == NULL || len != 128 + n_rows * COLS * sizeof(double)) {
    free(b);
    return;
  }
  PE_CHECK(memcmp(b, "\x93NUMPY\x01\x00", 8) == 0);
  PE_CHECK_INT((unsigned char)b[8] | (unsigned char)b[9] << 8, 118);
  char shape[64];
  snprintf(shape, sizeof shape, "'shape': (%zu, %d)", n_rows, COLS);
  PE_CHECK(strstr(b + 10, shape) != NULL && b[127] == '\n');
  PE_CHECK(strstr(b + 10, "'descr': '<f8'") != NULL);
  size_t bad = 0;
  for (size_t i = 0; i < n_rows; i++) {
    double v[COLS];
    memcpy(v, b + 128 + i * sizeof v, sizeof v);
    const pe__row_t *r = &pe__rows[i];
    int64_t s = (int64_t)v[0];
    int64_t ns = (int64_t)v[1];
    int ok =
        ns >= 0 && ns < 1000000000 &&
        (uint64_t)s * 1000000000u + (uint64_t)ns == (uint64_t)r->tick.ts_ns;
    ok = ok && v[2] == (double)r->out.symbol_id;
    double want[COLS - 3] = {r->tick.price,   r->tick.volume, r->out.ema_fast,
                             r->out.ema_slow, r->out.vwap,    r->out.mean,
                             r->out.var};
    memcpy(want + 7, r->out.feature, sizeof r->out.feature);
    ok = ok && memcmp(v + 3, want, sizeof want) == 0;
    bad += !ok;
  }
  PE_CHECK_INT(bad, 0);
  free(b);
  char *cols = pe__read(pe__path("f.columns.txt"), &len);
  PE_CHECK(cols != NULL &&
           strncmp(cols, "ts_s\nts_ns\nsymbol\nprice\n", 24) == 0);
  int lines = 0;
  for (size_t i = 0; cols != NULL && i < len; i++) {
    lines += cols[i] == '\n';
  }
  PE_CHECK_INT(lines, COLS);
  free(cols);
  char *sym = pe__read(pe__path("f.symbols.csv"), &len);
  const char *want_sym =
      n_rows == 0 ? "index,symbol\n"
                  : "index,symbol\n0,AAPL\n1,\"B,C\"\n9,nine\n1023,\"say "
                    "\"\"hi\"\"\"\n1024,X\n2047,\"Y\nZ\"\n5000,LONG_\n";
  PE_CHECK(sym != NULL && len == strlen(want_sym) &&
           memcmp(sym, want_sym, len) == 0);
  free(sym);
}

static void test_npy_holds_every_value(void) {
  pe__write_rows(pe__path("f.npy"), 0, N_ROWS);
  pe__check_npy(N_ROWS);
  pe__write_rows(pe__path("f.npy"), 3, N_ROWS);
  pe__check_npy(N_ROWS);
}

static void test_empty_and_discarded(void) {
  pe__write_rows(pe__path("f.npy"), 2, 0);
  pe__check_npy(0);
  pe__write_rows(pe__path("e.csv"), 0, 0);
  size_t len = 0;
  char *got = pe__read(pe__path("e.csv"), &len);
  PE_CHECK(got != NULL && len == strlen(pe_features_csv_header()));
  free(got);
  /* Discarded, with blocks queued: no file appears. */
  char err[256];
  pe_features_writer_t *w = NULL;
  PE_CHECK_INT(
      pe_features_writer_open(pe__path("d.csv"), 3, &w, err, sizeof err),
      PE_OK);
  for (size_t i = 0; w != NULL && i < N_ROWS; i++) {
    pe_features_writer_add(w, &pe__rows[i].tick, &pe__rows[i].out);
  }
  PE_CHECK_INT(pe_features_writer_close(w, 0, err, sizeof err), PE_OK);
  PE_CHECK(access(pe__path("d.csv"), F_OK) != 0);
  PE_CHECK(pe_features_path_is_npy("a.npy") && !pe_features_path_is_npy("npy"));
}

PE_TEST_MAIN(PE_TEST(test_csv_rows_are_pe_features_format),
             PE_TEST(test_npy_holds_every_value),
             PE_TEST(test_empty_and_discarded))
