/* CSV tick parser (src/io/csv.c): layouts, every rejection reason with its
 * line number, and the same events whatever the chunk sizes. */
#include "pe/csv.h"

#include <stdint.h>
#include <stdlib.h>

#include "pe/error.h"
#include "pe_test.h"

#define MAX_EVENTS 64

/* What the parser reported, in order, rendered as text to compare. */
typedef struct events {
  int n;
  char line[MAX_EVENTS][160];
} events_t;

static int on_tick(void *ctx, const pe_tick_t *t, uint64_t line_no,
                   const char *raw, size_t len) {
  events_t *e = ctx;
  (void)raw;
  (void)len;
  if (e->n < MAX_EVENTS) {
    char recv[32] = "-";
    if (t->recv_ts_ns != PE_TS_NONE) {
      snprintf(recv, sizeof recv, "%lld", (long long)t->recv_ts_ns);
    }
    snprintf(e->line[e->n++], sizeof e->line[0],
             "%llu tick %lld %s %.17g %.17g %s", (unsigned long long)line_no,
             (long long)t->ts_ns, t->symbol, t->price, t->volume, recv);
  }
  return 0;
}

static int on_reject(void *ctx, int err, uint64_t line_no, const char *raw,
                     size_t len) {
  events_t *e = ctx;
  if (e->n < MAX_EVENTS) {
    snprintf(e->line[e->n++], sizeof e->line[0], "%llu reject %s [%.*s]",
             (unsigned long long)line_no,
             pe_reject_name(pe_reject_from_error(err)),
             (int)(len > 40 ? 40 : len), raw);
  }
  return 0;
}

/* Parses text fed in pieces of `chunk` bytes (0: all at once). */
static int parse_with(const char *text, size_t chunk, uint32_t max_line,
                      uint32_t flags, events_t *e) {
  memset(e, 0, sizeof *e);
  pe_csv_options_t opt = {PE_TS_AUTO, max_line, flags};
  pe_csv_t *c = NULL;
  PE_CHECK_INT(pe_csv_create(&opt, &c), PE_OK);
  pe_csv_handler_t h = {e, on_tick, on_reject};
  size_t len = strlen(text);
  size_t step = chunk ? chunk : len;
  int rc = PE_OK;
  for (size_t i = 0; i < len && rc == PE_OK; i += step) {
    size_t n = len - i < step ? len - i : step;
    rc = pe_csv_feed(c, text + i, n, &h);
  }
  if (rc == PE_OK) {
    rc = pe_csv_finish(c, &h);
  }
  pe_csv_destroy(c);
  return rc;
}

/* parse_with twice, with and without the fused row parser, which must agree
 * event for event. */
static int parse(const char *text, size_t chunk, uint32_t max_line,
                 events_t *e) {
  static events_t general;
  int rc = parse_with(text, chunk, max_line, 0, e);
  PE_CHECK_INT(parse_with(text, chunk, max_line, PE_CSV_GENERAL_ONLY, &general),
               rc);
  PE_CHECK_INT(general.n, e->n);
  for (int i = 0; i < e->n && i < general.n; i++) {
    PE_CHECK_STR(general.line[i], e->line[i]);
  }
  return rc;
}

static void check_events(const events_t *e, const char *const *want, int n) {
  PE_CHECK_INT(e->n, n);
  for (int i = 0; i < n && i < e->n; i++) {
    PE_CHECK_STR(e->line[i], want[i]);
  }
}

static void test_headerless_prototype_layout(void) {
  events_t e;
  PE_CHECK_INT(
      parse("1700000000,AAA,10.5,3\n1700000001.5,BBB,20,0\n", 0, 0, &e), PE_OK);
  const char *want[] = {"1 tick 1700000000000000000 AAA 10.5 3 -",
                        "2 tick 1700000001500000000 BBB 20 0 -"};
  check_events(&e, want, 2);
}

static void test_header_any_order_extra_columns(void) {
  const char *text =
      "venue,Volume,price,recv_ts,SYMBOL,side,timestamp\r\n"
      "spot, 0.02000000 ,61837.63000000,1723161254087896568, BTCUSDT ,S,"
      "1723161255342000000\r\n"
      "\r\n"
      "cm,\"5\",2683.8,,\"ETHUSD\",B,2024-08-09T00:05:00.5+00:00\r\n";
  events_t e;
  PE_CHECK_INT(parse(text, 0, 0, &e), PE_OK);
  const char *want[] = {
      "2 tick 1723161255342000000 BTCUSDT 61837.629999999997 0.02 "
      "1723161254087896568",
      "4 tick 1723161900500000000 ETHUSD 2683.8000000000002 5 -"};
  check_events(&e, want, 2);
}

static void test_alternative_names_and_bom(void) {
  events_t e;
  PE_CHECK_INT(parse("\xEF\xBB\xBFtime,symbol,price,qty\n5,A,1,2\n", 0, 0, &e),
               PE_OK);
  const char *want[] = {"2 tick 5000000000 A 1 2 -"};
  check_events(&e, want, 1);
  PE_CHECK_INT(parse("ts,symbol,price,size\n5,A,1,2\n", 0, 0, &e), PE_OK);
  PE_CHECK_INT(e.n, 1);
}

static void test_every_rejection_reason(void) {
  const char *text = "ts,symbol,price,volume\n"
                     "1700000000,AAA,10,1\n"    /* 2 ok */
                     "1700000000,AAA,10\n"      /* 3 field_count */
                     "1700000000,AAA,10,1,9\n"  /* 4 field_count */
                     "1700000000,AAA,ten,1\n"   /* 5 bad_number */
                     "1700000000,AAA,10,lots\n" /* 6 bad_number */
                     "yesterday,AAA,10,1\n"     /* 7 bad_timestamp */
                     "1700000000,AAA,nan,1\n"   /* 8 bad_price */
                     "1700000000,AAA,-1,1\n"    /* 9 bad_price */
                     "1700000000,AAA,0,1\n"     /* 10 bad_price */
                     "1700000000,AAA,inf,1\n"   /* 11 bad_price */
                     "1700000000,AAA,10,-0.5\n" /* 12 bad_volume */
                     "1700000000,AAA,10,inf\n"  /* 13 bad_volume */
                     "1700000000,AAA,10,NaN\n"  /* 14 bad_volume */
                     "1700000000, ,10,1\n"      /* 15 empty_symbol */
                     "1700000000,ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456,10,1\n"
                     /* 16 symbol_too_long */
                     "1700000001,AAA,11,2\n"; /* 17 ok */
  events_t e;
  PE_CHECK_INT(parse(text, 0, 0, &e), PE_OK);
  const char *want[] = {
      "2 tick 1700000000000000000 AAA 10 1 -",
      "3 reject field_count [1700000000,AAA,10]",
      "4 reject field_count [1700000000,AAA,10,1,9]",
      "5 reject bad_number [1700000000,AAA,ten,1]",
      "6 reject bad_number [1700000000,AAA,10,lots]",
      "7 reject bad_timestamp [yesterday,AAA,10,1]",
      "8 reject bad_price [1700000000,AAA,nan,1]",
      "9 reject bad_price [1700000000,AAA,-1,1]",
      "10 reject bad_price [1700000000,AAA,0,1]",
      "11 reject bad_price [1700000000,AAA,inf,1]",
      "12 reject bad_volume [1700000000,AAA,10,-0.5]",
      "13 reject bad_volume [1700000000,AAA,10,inf]",
      "14 reject bad_volume [1700000000,AAA,10,NaN]",
      "15 reject empty_symbol [1700000000, ,10,1]",
      "16 reject symbol_too_long [1700000000,ABCDEFGHIJKLMNOPQRSTUVWXYZ012]",
      "17 tick 1700000001000000000 AAA 11 2 -"};
  check_events(&e, want, 16);
}

static void test_line_too_long_in_place_and_carried(void) {
  char text[400];
  char longsym[200];
  memset(longsym, 'x', sizeof longsym - 1);
  longsym[sizeof longsym - 1] = '\0';
  snprintf(text, sizeof text, "1,A,1,1\n2,%s,1,1\n3,B,2,2\n", longsym);
  events_t whole, bytes;
  PE_CHECK_INT(parse(text, 0, 64, &whole), PE_OK);
  PE_CHECK_INT(parse(text, 1, 64, &bytes), PE_OK);
  const char *want[] = {
      "1 tick 1000000000 A 1 1 -",
      "2 reject line_too_long [2,xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx]",
      "3 tick 3000000000 B 2 2 -"};
  check_events(&whole, want, 3);
  check_events(&bytes, want, 3);
}

static void test_last_line_without_newline(void) {
  events_t e;
  PE_CHECK_INT(parse("1,A,1,1\n2,A,2,2", 0, 0, &e), PE_OK);
  PE_CHECK_INT(e.n, 2);
  PE_CHECK_STR(e.line[1], "2 tick 2000000000 A 2 2 -");
}

static void test_chunking_never_changes_the_events(void) {
  const char *text = "symbol,ts,price,volume\r\n"
                     "AAA,1700000000,10,1\r\n"
                     "\n"
                     "BBB,1700000000.123,bad,1\n"
                     "CCC,2023-11-14T22:13:20Z,12.5,0.25\n"
                     "DDD,1700000000,1,2,3\n"
                     "EEE,1700000002,7,7";
  events_t ref, e;
  PE_CHECK_INT(parse(text, 0, 0, &ref), PE_OK);
  PE_CHECK_INT(ref.n, 5);
  for (size_t chunk = 1; chunk <= strlen(text) + 1; chunk++) {
    PE_CHECK_INT(parse(text, chunk, 0, &e), PE_OK);
    PE_CHECK_INT(e.n, ref.n);
    for (int i = 0; i < ref.n && i < e.n; i++) {
      if (strcmp(e.line[i], ref.line[i]) != 0) {
        fprintf(stderr, "chunk %zu, event %d: '%s' vs '%s'\n", chunk, i,
                e.line[i], ref.line[i]);
        pe_test_failures++;
      }
    }
  }
}

/* Found by fuzz_csv: a byte order mark on a first line near max_line was
 * judged before it was stripped when the line was cut by a chunk. */
static void test_bom_line_at_the_limit_regression(void) {
  for (int extra = -1; extra <= 2; extra++) {
    char text[256];
    size_t n = 0;
    memcpy(text, "\xEF\xBB\xBF", 3);
    n = 3;
    memcpy(text + n, "1,A,1,", 6);
    n += 6;
    while (n - 3 < (size_t)(64 + extra)) {
      text[n++] = '1';
    }
    memcpy(text + n, "\r\n2,B,2,2\n", 11);
    text[n + 11] = '\0';
    events_t ref, e;
    PE_CHECK_INT(parse(text, 0, 64, &ref), PE_OK);
    PE_CHECK_INT(ref.n, 2);
    PE_CHECK(strstr(ref.line[0], extra > 0 ? "line_too_long" : "1 tick") !=
             NULL);
    for (size_t chunk = 1; chunk < n + 12; chunk++) {
      PE_CHECK_INT(parse(text, chunk, 64, &e), PE_OK);
      PE_CHECK_INT(e.n, 2);
      PE_CHECK_STR(e.line[0], ref.line[0]);
    }
  }
}

static void test_header_errors(void) {
  events_t e;
  pe_csv_options_t opt = {PE_TS_AUTO, 0, 0};
  pe_csv_t *c = NULL;
  pe_csv_create(&opt, &c);
  pe_csv_handler_t h = {&e, on_tick, on_reject};
  const char *t1 = "symbol,price,volume\n1,2,3\n";
  PE_CHECK_INT(pe_csv_feed(c, t1, strlen(t1), &h), PE_EHEADER);
  PE_CHECK(strstr(pe_csv_errmsg(c), "line 1") != NULL);
  PE_CHECK(strstr(pe_csv_errmsg(c), "timestamp column") != NULL);
  pe_csv_destroy(c);

  pe_csv_create(&opt, &c);
  const char *t2 = "ts,symbol,price,size,volume\n";
  PE_CHECK_INT(pe_csv_feed(c, t2, strlen(t2), &h), PE_EHEADER);
  PE_CHECK(strstr(pe_csv_errmsg(c), "'volume'") != NULL);
  PE_CHECK(strstr(pe_csv_errmsg(c), "'size'") != NULL);
  pe_csv_destroy(c);
}

static int stop_at_first(void *ctx, int err, uint64_t line_no, const char *raw,
                         size_t len) {
  (void)ctx;
  (void)err;
  (void)raw;
  (void)len;
  return (int)line_no + 1000;
}

static void test_callback_stops_the_feed(void) {
  pe_csv_options_t opt = {PE_TS_AUTO, 0, 0};
  pe_csv_t *c = NULL;
  pe_csv_create(&opt, &c);
  events_t e;
  memset(&e, 0, sizeof e);
  pe_csv_handler_t h = {&e, on_tick, stop_at_first};
  const char *t = "1,A,1,1\n2,A,x,1\n3,A,1,1\n";
  PE_CHECK_INT(pe_csv_feed(c, t, strlen(t), &h), 1002);
  PE_CHECK_INT(e.n, 1);
  pe_csv_destroy(c);
}

/* Every event, rendered as text, appended to a growing buffer. */
typedef struct transcript {
  char *text;
  size_t len, cap;
  int ticks;
} transcript_t;

static void transcript_add(transcript_t *t, const char *s) {
  size_t n = strlen(s);
  if (t->len + n + 1 > t->cap) {
    t->cap = (t->len + n + 1) * 2;
    t->text = realloc(t->text, t->cap);
  }
  memcpy(t->text + t->len, s, n + 1);
  t->len += n;
}

static int transcript_tick(void *ctx, const pe_tick_t *tk, uint64_t line_no,
                           const char *raw, size_t len) {
  transcript_t *t = ctx;
  char buf[512];
  snprintf(buf, sizeof buf,
           "%llu tick %lld %lld %.17g %.17g %u [%.*s] [%.*s]\n",
           (unsigned long long)line_no, (long long)tk->ts_ns,
           (long long)tk->recv_ts_ns, tk->price, tk->volume, tk->symbol_len,
           (int)sizeof tk->symbol, tk->symbol, (int)len, raw);
  /* The padding too: the symbol must be zero after symbol_len. */
  for (size_t i = tk->symbol_len; i < sizeof tk->symbol; i++) {
    if (tk->symbol[i] != 0) {
      transcript_add(t, "unpadded symbol ");
    }
  }
  transcript_add(t, buf);
  t->ticks++;
  return 0;
}

static int transcript_reject(void *ctx, int err, uint64_t line_no,
                             const char *raw, size_t len) {
  char buf[512];
  snprintf(buf, sizeof buf, "%llu reject %s [%.*s]\n",
           (unsigned long long)line_no,
           pe_reject_name(pe_reject_from_error(err)), (int)len, raw);
  transcript_add(ctx, buf);
  return 0;
}

/* on_ticks: each tick of the batch as transcript_tick renders it. */
static int transcript_ticks(void *ctx, const pe_tick_t *ticks,
                            const pe_csv_row_t *rows, uint32_t n) {
  transcript_t *t = ctx;
  if (n == 0 || n > PE_CSV_BATCH) {
    transcript_add(t, "bad batch size ");
  }
  for (uint32_t i = 0; i < n; i++) {
    transcript_tick(ctx, &ticks[i], rows[i].line_no, rows[i].line, rows[i].len);
  }
  return 0;
}

/* Parses text in pieces of `chunk` bytes, ticks one at a time or (batch)
 * in batches. */
static void transcript_parse(const char *text, size_t chunk, uint32_t flags,
                             int batch, transcript_t *t) {
  memset(t, 0, sizeof *t);
  transcript_add(t, "");
  pe_csv_options_t opt = {PE_TS_AUTO, 0, flags};
  pe_csv_t *c = NULL;
  PE_CHECK_INT(pe_csv_create(&opt, &c), PE_OK);
  pe_csv_handler_t h = {t, transcript_tick, transcript_reject};
  pe_csv_batch_handler_t hb = {t, transcript_ticks, transcript_reject};
  size_t len = strlen(text);
  for (size_t i = 0; i < len; i += chunk) {
    size_t n = len - i < chunk ? len - i : chunk;
    PE_CHECK_INT(batch ? pe_csv_feed_batch(c, text + i, n, &hb)
                       : pe_csv_feed(c, text + i, n, &h),
                 PE_OK);
  }
  PE_CHECK_INT(batch ? pe_csv_finish_batch(c, &hb) : pe_csv_finish(c, &h),
               PE_OK);
  pe_csv_destroy(c);
}

/* The fused parser against the general one on text[0, len): the same
 * transcript for chunks of 1 MiB, 4 KiB, 100 bytes and down to min_chunk,
 * fed tick by tick and in batches. Returns the general transcript (the
 * caller frees it), which holds more than 1000 ticks. */
static char *fused_matches_general(const char *text, size_t len,
                                   size_t min_chunk) {
  transcript_t general, fused;
  transcript_parse(text, len, PE_CSV_GENERAL_ONLY, 0, &general);
  PE_CHECK(general.ticks > 1000);
  static const size_t chunks[] = {1 << 20, 4096, 100, 7, 1};
  for (size_t k = 0; k < 2 * sizeof chunks / sizeof chunks[0]; k++) {
    if (chunks[k / 2] < min_chunk) {
      break;
    }
    transcript_parse(text, chunks[k / 2], 0, (int)(k % 2), &fused);
    PE_CHECK_INT(fused.ticks, general.ticks);
    PE_CHECK_INT(fused.len, general.len);
    PE_CHECK(strcmp(fused.text, general.text) == 0);
    free(fused.text);
  }
  return general.text;
}

/* The fused parser only takes a row with room after it in the buffer, so
 * the short texts above mostly miss it: here, long files of mixed rows in
 * three layouts, fed whole and in pieces, ticks one by one or in batches,
 * must give event for event what the general parser gives. */
static void test_fused_rows_match_the_general_parser(void) {
  static const char *const ts[] = {"1700000000123456789",
                                   "1700000000",
                                   "1700000000123",
                                   "17000000001234567",
                                   "1",
                                   "1700000000123456789x",
                                   "2024-08-09T00:05:00Z",
                                   " 1700000000",
                                   "-1700000000",
                                   "99999999999999999999",
                                   "",
                                   "1700000000.5",
                                   "170000000012345678",
                                   "1234567890123456",
                                   "17x0000000123456789",
                                   "1700000000123456:89",
                                   "170000000012345/789",
                                   "9223372036854775807",
                                   "9223372036854775808",
                                   "9999999999999999999"};
  static const char *const sym[] = {"BTCUSDT",
                                    "A",
                                    "SYM123",
                                    " ETH",
                                    "\"Q\"",
                                    "",
                                    "AB CD",
                                    "SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS",
                                    "SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS",
                                    "T\t",
                                    "X\r"};
  static const char *const num[] = {"283.9564",
                                    "2.126",
                                    "61837.63000000",
                                    "0.02000000",
                                    "12345678",
                                    "123456789",
                                    "5.",
                                    ".5",
                                    "0",
                                    "0.0",
                                    "-1.5",
                                    "+2.25",
                                    " 3.5",
                                    "3.5 ",
                                    "\"4.5\"",
                                    "1e3",
                                    "nan",
                                    "inf",
                                    "1..2",
                                    "12a.5",
                                    "12.5a",
                                    "99999999.99999999",
                                    "1234567.12345678",
                                    "9007199254740993",
                                    "",
                                    "0.000000000000000001",
                                    "12345678901234567890"};
  const size_t n_ts = sizeof ts / sizeof ts[0];
  const size_t n_sym = sizeof sym / sizeof sym[0];
  const size_t n_num = sizeof num / sizeof num[0];
  static const char *const head[] = {
      "", "ts,symbol,price,volume\r\n",
      "ts,recv_ts,symbol,venue,price,volume,side\n"};
  size_t cap = 1 << 20;
  char *text = malloc(cap);
  for (int layout = 0; layout < 3; layout++) {
    size_t len = (size_t)snprintf(text, cap, "%s", head[layout]);
    for (size_t i = 0; i < 3000; i++) {
      const char *t = ts[i % 7 == 0 ? (i / 7) % n_ts : 0];
      const char *s = sym[i % 5 == 0 ? (i / 5) % n_sym : i % 3];
      const char *p = num[(i * 7) % n_num];
      const char *v = num[(i * 11 + 3) % n_num];
      const char *eol = layout == 1 ? "\r\n" : (i % 13 == 0 ? "\r\n" : "\n");
      const char *extra = i % 17 == 0 ? ",x" : (i % 19 == 0 ? "\n" : "");
      if (i % 23 == 0) {
        p = i % 2 ? num[0] : num[1];
      }
      if (layout == 2) {
        const char *recv = i % 3 == 0 ? "" : (i % 29 == 0 ? "y" : ts[0]);
        len +=
            (size_t)snprintf(text + len, cap - len, "%s,%s,%s,spot,%s,%s,S%s%s",
                             t, recv, s, p, v, extra, eol);
      } else {
        len += (size_t)snprintf(text + len, cap - len, "%s,%s,%s,%s%s%s", t, s,
                                p, v, extra, eol);
      }
    }
    free(fused_matches_general(text, len, 1));
  }
  free(text);
}

/* Columns the parser ignores, four of them, quoted or blank-led in every
 * position: the fused parser hands such rows to the general one, so both
 * give the same transcript, for every chunk size. Among them a quoted field
 * whose commas, split as the fused parser splits, would make a clean row of
 * the right width: field_count, not a tick read from the wrong columns. */
static void test_fused_ignored_columns_quoted(void) {
  static const char *const extra[] = {"x",   "\"a,b\"",  " \"c\"", "\"\"",
                                      "\ty", "\"q\nr\"", "",       "z"};
  const size_t n_extra = sizeof extra / sizeof extra[0];
  size_t cap = 1 << 20;
  char *text = malloc(cap);
  size_t len = (size_t)snprintf(text, cap, "a,b,ts,c,symbol,price,volume,d\n");
  for (size_t i = 0; i < 2000; i++) {
    const char *a = extra[i % n_extra];
    const char *b = extra[(i / 3) % n_extra];
    const char *c = extra[(i / 7) % n_extra];
    const char *d = extra[(i / 5) % n_extra];
    if (i % 11 == 5) {
      /* c runs to d: four fields, but eight when split at every comma */
      len += (size_t)snprintf(text + len, cap - len,
                              "x,y,%zu,\"X,S%zu,%zu.5,%zu,Y\"\n",
                              1700000000 + i, i % 4, 10 + i % 9, 1 + i % 5);
      continue;
    }
    len += (size_t)snprintf(text + len, cap - len,
                            "%s,%s,%zu,%s,S%zu,%zu.5,%zu,%s\n", a, b,
                            1700000000 + i, c, i % 4, 10 + i % 9, 1 + i % 5, d);
  }
  char *general = fused_matches_general(text, len, 7);
  PE_CHECK(strstr(general, "field_count") != NULL);
  free(general);
  free(text);
}

static int stop_batch(void *ctx, const pe_tick_t *ticks,
                      const pe_csv_row_t *rows, uint32_t n) {
  int *seen = ctx;
  (void)ticks;
  *seen += (int)n;
  return rows[n - 1].line_no >= 40 ? 7 : 0;
}

static int count_reject(void *ctx, int err, uint64_t line_no, const char *raw,
                        size_t len) {
  (void)err;
  (void)line_no;
  (void)raw;
  (void)len;
  *(int *)ctx += 1000;
  return 0;
}

/* A batch callback's non-zero return stops the feed; a reject first hands
 * over the ticks before it. */
static void test_batch_callback_stops_the_feed(void) {
  char text[8192];
  size_t len = 0;
  for (int i = 1; i <= 100; i++) {
    len += (size_t)snprintf(text + len, sizeof text - len, "%d,SYM,%d.5,1\n",
                            1700000000 + i, i == 20 ? -1 : i);
  }
  pe_csv_options_t opt = {PE_TS_AUTO, 0, 0};
  pe_csv_t *c = NULL;
  PE_CHECK_INT(pe_csv_create(&opt, &c), PE_OK);
  int seen = 0;
  pe_csv_batch_handler_t h = {&seen, stop_batch, count_reject};
  PE_CHECK_INT(pe_csv_feed_batch(c, text, len, &h), 7);
  /* Lines 1-16 (a full batch), 17-19 (handed over before the reject of
   * line 20), the reject, 21-36, then 37-52, which holds line 40: stop. */
  PE_CHECK_INT(seen, 1000 + 16 + 3 + 16 + 16);
  pe_csv_destroy(c);
}

/* RFC 4180: quoted fields with commas, quotes ("") and line breaks, a
 * quoted header, a record spanning lines (numbered by its first line, the
 * next one by its own), quotes in the middle of a field taken as bytes,
 * text after a closing quote and an unclosed quote at the end rejected as
 * bad_quoting; the same events for every chunk size and for the fused and
 * general parsers. */
static void test_rfc4180_quoted_fields(void) {
  const char *text =
      "\"ts\",\"symbol\",price,volume,\"note, with comma\"\n" /* 1 */
      "1700000000,\"A\"\"B\",10,1,x\n"                        /* 2 */
      "1700000001,\"C,D\",11,2,\"a, b\"\"c\"\"\"\n"           /* 3 */
      "1700000002,E,12,3,\"two\r\nlines, \"\"q\"\"\"\n"       /* 4-5 */
      "1700000003,\"F\nG\",13,4,y\n"                          /* 6-7 */
      "1700000004,H\"I,14,5,z\n"                              /* 8 */
      "1700000005, \"J\" ,15,6,\"\"\n"                        /* 9 */
      "1700000006,\"K\"L,16,7,z\n"                            /* 10 */
      "1700000007,M,17,8,\"x\" y\n"                           /* 11 */
      "1700000008,N,18,9\n"                                   /* 12 */
      "\"1700000009\n\",P,20,1,\"q\nr\"\n"                    /* 13-15 */
      "1700000009,O,19,9,\"cut\nhere";                        /* 16-17 */
  const char *want[] = {
      "2 tick 1700000000000000000 A\"B 10 1 -",
      "3 tick 1700000001000000000 C,D 11 2 -",
      "4 tick 1700000002000000000 E 12 3 -",
      "6 tick 1700000003000000000 F\nG 13 4 -",
      "8 tick 1700000004000000000 H\"I 14 5 -",
      "9 tick 1700000005000000000 J 15 6 -",
      "10 reject bad_quoting [1700000006,\"K\"L,16,7,z]",
      "11 reject bad_quoting [1700000007,M,17,8,\"x\" y]",
      "12 reject field_count [1700000008,N,18,9]",
      "13 reject bad_timestamp [\"1700000009\n\",P,20,1,\"q\nr\"]",
      "16 reject bad_quoting [1700000009,O,19,9,\"cut\nhere]"};
  static const size_t chunks[] = {0, 1, 2, 3, 5, 7, 16, 64};
  for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
    events_t e;
    PE_CHECK_INT(parse(text, chunks[i], 0, &e), PE_OK);
    check_events(&e, want, (int)(sizeof want / sizeof want[0]));
  }
}

PE_TEST_MAIN(PE_TEST(test_rfc4180_quoted_fields),
             PE_TEST(test_fused_ignored_columns_quoted),
             PE_TEST(test_headerless_prototype_layout),
             PE_TEST(test_header_any_order_extra_columns),
             PE_TEST(test_alternative_names_and_bom),
             PE_TEST(test_every_rejection_reason),
             PE_TEST(test_line_too_long_in_place_and_carried),
             PE_TEST(test_last_line_without_newline),
             PE_TEST(test_chunking_never_changes_the_events),
             PE_TEST(test_bom_line_at_the_limit_regression),
             PE_TEST(test_header_errors), PE_TEST(test_callback_stops_the_feed),
             PE_TEST(test_fused_rows_match_the_general_parser),
             PE_TEST(test_batch_callback_stops_the_feed))
