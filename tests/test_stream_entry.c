/* Stream entry decoding and entry ids (pe/stream.h). */
#include <stdint.h>

#include "pe/error.h"
#include "pe/stream.h"
#include "pe_test.h"

/* Builds fields from NULL-terminated name, value, name, value, ... */
static size_t pe__fields(pe_stream_field_t *f, const char *const *kv) {
  size_t n = 0;
  for (; kv[2 * n] != NULL; n++) {
    f[n].name = kv[2 * n];
    f[n].name_len = strlen(kv[2 * n]);
    f[n].value = kv[2 * n + 1];
    f[n].value_len = strlen(kv[2 * n + 1]);
  }
  return n;
}

static int pe__decode(const char *const *kv, pe_tick_t *t, pe_stream_why_t *w) {
  pe_stream_field_t f[16];
  size_t n = pe__fields(f, kv);
  return pe_stream_entry_decode(f, n, NULL, t, w);
}

static void test_flat(void) {
  pe_tick_t t;
  pe_stream_why_t w;
  const char *kv[] = {"symbol", "AAPL", "price",     "185.64",
                      "volume", "93",   "timestamp", "1704205800.012482",
                      "extra",  "x",    NULL};
  PE_CHECK_INT(pe__decode(kv, &t, &w), PE_OK);
  PE_CHECK_STR(t.symbol, "AAPL");
  PE_CHECK_INT(t.symbol_len, 4);
  PE_CHECK_SAME(t.price, 185.64);
  PE_CHECK_SAME(t.volume, 93.0);
  PE_CHECK_INT(t.ts_ns, 1704205800012482000LL);
  PE_CHECK_INT(t.recv_ts_ns, PE_TS_NONE);

  /* Aliases, any case, ns timestamps, a receive time, spaces trimmed. */
  const char *kv2[] = {"TS",      "1704205800012482001",
                       "Symbol",  " BTC-USD ",
                       "qty",     "0.5",
                       "PRICE",   "61837.63",
                       "recv_ts", "1704205800012482999",
                       NULL};
  PE_CHECK_INT(pe__decode(kv2, &t, &w), PE_OK);
  PE_CHECK_STR(t.symbol, "BTC-USD");
  PE_CHECK_INT(t.ts_ns, 1704205800012482001LL);
  PE_CHECK_INT(t.recv_ts_ns, 1704205800012482999LL);
  PE_CHECK_SAME(t.volume, 0.5);

  /* ISO-8601 too, as pe_parse_timestamp reads it. */
  const char *kv3[] = {"symbol", "X", "price", "1",
                       "size",   "0", "time",  "2024-01-02T14:30:00.5Z",
                       NULL};
  PE_CHECK_INT(pe__decode(kv3, &t, &w), PE_OK);
  PE_CHECK_INT(t.ts_ns, 1704205800500000000LL);
}

static void test_json(void) {
  pe_tick_t t;
  pe_stream_why_t w;
  const char *kv[] = {
      "data",
      " {\"symbol\": \"ETH\\u00e9\", \"price\": 2683.8, "
      "\"volume\": \"0.002\", \"timestamp\": 1723161255.611, "
      "\"nested\": {\"a\": [1, 2, {\"b\": null}]}, \"ok\": true} ",
      "source", "feed-1", NULL};
  PE_CHECK_INT(pe__decode(kv, &t, &w), PE_OK);
  PE_CHECK_STR(t.symbol, "ETH\xc3\xa9");
  PE_CHECK_SAME(t.price, 2683.8);
  PE_CHECK_SAME(t.volume, 0.002);
  PE_CHECK_INT(t.ts_ns, 1723161255611000000LL);

  /* Escapes decoded in numbers, a surrogate pair in the symbol. */
  const char *kv2[] = {"data",
                       "{\"symbol\":\"\\ud83d\\ude00\",\"price\":\"1\\u0030\","
                       "\"volume\":0,\"ts\":\"1700000000\",\"recv_ts\":null}",
                       NULL};
  PE_CHECK_INT(pe__decode(kv2, &t, &w), PE_OK);
  PE_CHECK_STR(t.symbol, "\xf0\x9f\x98\x80");
  PE_CHECK_SAME(t.price, 10.0);
  PE_CHECK_INT(t.recv_ts_ns, PE_TS_NONE);
}

typedef struct pe__bad {
  const char *kv[16];
  int err;
  int reason;
  const char *field;
} pe__bad_t;

static void test_rejects(void) {
  static const pe__bad_t cases[] = {
      {{"symbol", "A", "volume", "1", "timestamp", "1", NULL},
       PE_ENOENT,
       PE_STREAM_REJECT_MISSING_FIELD,
       "price"},
      {{"price", "1", "volume", "1", "timestamp", "1", NULL},
       PE_ENOENT,
       PE_STREAM_REJECT_MISSING_FIELD,
       "symbol"},
      {{"symbol", "A", "price", "1", "volume", "1", NULL},
       PE_ENOENT,
       PE_STREAM_REJECT_MISSING_FIELD,
       "timestamp"},
      {{"symbol", "A", "price", "1", "timestamp", "1", NULL},
       PE_ENOENT,
       PE_STREAM_REJECT_MISSING_FIELD,
       "volume"},
      {{"symbol", "A", "price", "1", "PRICE", "2", "volume", "1", "ts", "1",
        NULL},
       PE_EFIELDS,
       PE_STREAM_REJECT_DUPLICATE_FIELD,
       "price"},
      {{"ts", "1", "time", "2", NULL},
       PE_EFIELDS,
       PE_STREAM_REJECT_DUPLICATE_FIELD,
       "timestamp"},
      {{"data", "{}", "symbol", "A", NULL},
       PE_EFIELDS,
       PE_STREAM_REJECT_DUPLICATE_FIELD,
       "data"},
      {{"data", "{}", "data", "{}", NULL},
       PE_EFIELDS,
       PE_STREAM_REJECT_DUPLICATE_FIELD,
       "data"},
      {{"data", "{\"price\":1,\"price\":2}", NULL},
       PE_EFIELDS,
       PE_STREAM_REJECT_DUPLICATE_FIELD,
       "price"},
      {{"data", "{\"symbol\":\"A\",", NULL},
       PE_EPARSE,
       PE_STREAM_REJECT_BAD_JSON,
       "data"},
      {{"data", "[1,2]", NULL}, PE_EPARSE, PE_STREAM_REJECT_BAD_JSON, "data"},
      {{"data", "{\"a\":1} x", NULL},
       PE_EPARSE,
       PE_STREAM_REJECT_BAD_JSON,
       "data"},
      {{"data", "{\"a\":\"\\x\"}", NULL},
       PE_EPARSE,
       PE_STREAM_REJECT_BAD_JSON,
       "data"},
      {{"data", "{\"a\":\"line\nbreak\"}", NULL},
       PE_EPARSE,
       PE_STREAM_REJECT_BAD_JSON,
       "data"},
      {{"data", "{}", NULL},
       PE_ENOENT,
       PE_STREAM_REJECT_MISSING_FIELD,
       "timestamp"},
      {{"symbol", "A", "price", "1e", "volume", "1", "ts", "1", NULL},
       PE_ENUMBER,
       PE_STREAM_REJECT_BAD_NUMBER,
       "price"},
      {{"symbol", "A", "price", "1", "volume", "", "ts", "1", NULL},
       PE_ENUMBER,
       PE_STREAM_REJECT_BAD_NUMBER,
       "volume"},
      {{"data", "{\"symbol\":\"A\",\"price\":null,\"volume\":1,\"ts\":1}",
        NULL},
       PE_ENUMBER,
       PE_STREAM_REJECT_BAD_NUMBER,
       "price"},
      {{"symbol", "A", "price", "1", "volume", "1", "ts", "noon", NULL},
       PE_ETIMESTAMP,
       PE_STREAM_REJECT_BAD_TIMESTAMP,
       "timestamp"},
      {{"symbol", "A", "price", "1", "volume", "1", "ts", "1", "recv_ts", "x",
        NULL},
       PE_ETIMESTAMP,
       PE_STREAM_REJECT_BAD_TIMESTAMP,
       "recv_ts"},
      {{"symbol", "A", "price", "0", "volume", "1", "ts", "1", NULL},
       PE_EPRICE,
       PE_STREAM_REJECT_BAD_PRICE,
       "price"},
      {{"symbol", "A", "price", "nan", "volume", "1", "ts", "1", NULL},
       PE_EPRICE,
       PE_STREAM_REJECT_BAD_PRICE,
       "price"},
      {{"symbol", "A", "price", "1", "volume", "-1", "ts", "1", NULL},
       PE_EVOLUME,
       PE_STREAM_REJECT_BAD_VOLUME,
       "volume"},
      {{"symbol", "A", "price", "1", "volume", "inf", "ts", "1", NULL},
       PE_EVOLUME,
       PE_STREAM_REJECT_BAD_VOLUME,
       "volume"},
      {{"symbol", "  ", "price", "1", "volume", "1", "ts", "1", NULL},
       PE_ESYMBOL,
       PE_STREAM_REJECT_EMPTY_SYMBOL,
       "symbol"},
      {{"data", "{\"symbol\":7,\"price\":1,\"volume\":1,\"ts\":1}", NULL},
       PE_ESYMBOL,
       PE_STREAM_REJECT_EMPTY_SYMBOL,
       "symbol"},
      {{"symbol", "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456", "price", "1", "volume",
        "1", "ts", "1", NULL},
       PE_ESYMLEN,
       PE_STREAM_REJECT_SYMBOL_TOO_LONG,
       "symbol"},
      /* "A\0B" would print as "A": rejected, as the engine does. */
      {{"data", "{\"symbol\":\"A\\u0000B\",\"price\":1,\"volume\":1,\"ts\":1}",
        NULL},
       PE_ESYMNUL,
       PE_STREAM_REJECT_SYMBOL_NUL,
       "symbol"},
      /* Order of checks: timestamp before price. */
      {{"symbol", "A", "price", "x", "volume", "1", "ts", "y", NULL},
       PE_ETIMESTAMP,
       PE_STREAM_REJECT_BAD_TIMESTAMP,
       "timestamp"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    pe_tick_t t;
    pe_stream_why_t w;
    int rc = pe__decode(cases[i].kv, &t, &w);
    if (rc != cases[i].err || w.reason != cases[i].reason ||
        strcmp(w.field, cases[i].field) != 0) {
      fprintf(stderr, "case %zu: got %s/%s/'%s', want %s/%s/'%s'\n", i,
              pe_errname(rc), pe_stream_reject_name(w.reason), w.field,
              pe_errname(cases[i].err), pe_stream_reject_name(cases[i].reason),
              cases[i].field);
      pe_test_failures++;
    }
  }
}

static void test_deep_json(void) {
  /* Nesting past the limit is refused, not a stack overflow. */
  char buf[4096];
  size_t n = 0;
  n += (size_t)snprintf(buf + n, sizeof buf - n, "{\"x\":");
  for (int i = 0; i < 1000; i++) {
    buf[n++] = '[';
  }
  buf[n] = '\0';
  const char *kv[] = {"data", buf, NULL};
  pe_tick_t t;
  pe_stream_why_t w;
  PE_CHECK_INT(pe__decode(kv, &t, &w), PE_EPARSE);
}

static void test_reasons(void) {
  PE_CHECK_STR(pe_stream_reject_name(PE_STREAM_REJECT_BAD_JSON), "bad_json");
  PE_CHECK_STR(pe_stream_reject_name(PE_STREAM_REJECT_COUNT), "unknown");
  PE_CHECK_INT(pe_stream_reject_from_error(PE_EORDER),
               PE_STREAM_REJECT_OUT_OF_ORDER);
  PE_CHECK_INT(pe_stream_reject_from_error(PE_EFULL),
               PE_STREAM_REJECT_SYMBOL_TABLE_FULL);
  PE_CHECK_INT(pe_stream_reject_from_error(PE_ENOMEM), -1);
}

static void test_ids(void) {
  pe_stream_id_t id;
  PE_CHECK_INT(pe_stream_id_parse("1704205800012-7", 15, &id), PE_OK);
  PE_CHECK(id.ms == 1704205800012ull && id.seq == 7);
  PE_CHECK_INT(pe_stream_id_parse("42", 2, &id), PE_OK);
  PE_CHECK(id.ms == 42 && id.seq == 0);
  PE_CHECK_INT(
      pe_stream_id_parse("18446744073709551615-18446744073709551615", 41, &id),
      PE_OK);
  PE_CHECK(id.ms == UINT64_MAX && id.seq == UINT64_MAX);
  char buf[PE_STREAM_ID_MAX];
  PE_CHECK_INT(pe_stream_id_format(id, buf, sizeof buf), 41);
  PE_CHECK_STR(buf, "18446744073709551615-18446744073709551615");
  /* A small cap cuts as snprintf does and still says the whole length. */
  PE_CHECK_INT(pe_stream_id_format(id, buf, 5), 41);
  PE_CHECK_STR(buf, "1844");
  pe_stream_id_t zero = {0, 0};
  PE_CHECK_INT(pe_stream_id_format(zero, buf, sizeof buf), 3);
  PE_CHECK_STR(buf, "0-0");
  static const char *const bad[] = {
      "",     "-", "1-", "-1", "a-1", "1-2-3", "18446744073709551616",
      "1 -2", "+1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (pe_stream_id_parse(bad[i], strlen(bad[i]), &id) != PE_EPARSE) {
      fprintf(stderr, "id '%s' parsed\n", bad[i]);
      pe_test_failures++;
    }
  }
  pe_stream_id_t a = {5, 9}, b = {6, 0}, c = {5, 10};
  PE_CHECK_INT(pe_stream_id_cmp(a, b), -1);
  PE_CHECK_INT(pe_stream_id_cmp(b, a), 1);
  PE_CHECK_INT(pe_stream_id_cmp(a, c), -1);
  PE_CHECK_INT(pe_stream_id_cmp(a, a), 0);
}

PE_TEST_MAIN(PE_TEST(test_flat), PE_TEST(test_json), PE_TEST(test_rejects),
             PE_TEST(test_deep_json), PE_TEST(test_reasons), PE_TEST(test_ids))
