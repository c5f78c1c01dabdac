/* The pure parts of the Redis module (pe/redis.h): URLs, RESP commands,
 * reply walkers, stream info and the signal stream shape. The I/O parts run
 * against a real redis-server in tests/live/. */
#include <stdint.h>

#include "pe/error.h"
#include "pe/redis.h"
#include "pe_test.h"

static void test_urls(void) {
  pe_redis_url_t u;
  char err[256];
  PE_CHECK_INT(
      pe_redis_url_parse("redis://localhost:6379/0", &u, err, sizeof err),
      PE_OK);
  PE_CHECK_STR(u.host, "localhost");
  PE_CHECK_INT(u.port, 6379);
  PE_CHECK_INT(u.db, 0);
  PE_CHECK_STR(u.password, "");
  PE_CHECK_INT(pe_redis_url_parse("redis://bob:s%40cret@10.0.0.5:7000/3", &u,
                                  err, sizeof err),
               PE_OK);
  PE_CHECK_STR(u.user, "bob");
  PE_CHECK_STR(u.password, "s@cret");
  PE_CHECK_STR(u.host, "10.0.0.5");
  PE_CHECK_INT(u.port, 7000);
  PE_CHECK_INT(u.db, 3);
  PE_CHECK_INT(pe_redis_url_parse("redis://:pw@h", &u, err, sizeof err), PE_OK);
  PE_CHECK_STR(u.user, "");
  PE_CHECK_STR(u.password, "pw");
  PE_CHECK_INT(u.port, 6379);
  PE_CHECK_INT(pe_redis_url_parse("redis://[::1]:6380", &u, err, sizeof err),
               PE_OK);
  PE_CHECK_STR(u.host, "::1");
  PE_CHECK_INT(u.port, 6380);
  PE_CHECK_INT(
      pe_redis_url_parse("unix:///run/redis.sock?db=2", &u, err, sizeof err),
      PE_OK);
  PE_CHECK_STR(u.unix_path, "/run/redis.sock");
  PE_CHECK_INT(u.db, 2);
  PE_CHECK_INT(pe_redis_url_parse("redis://", &u, err, sizeof err), PE_OK);
  PE_CHECK_STR(u.host, "localhost");
  static const char *const bad[] = {
      "localhost:6379", "http://x",      "redis://h:0", "redis://h:99999",
      "redis://h:x/0",  "redis://h/abc", "rediss://h",  "unix://",
      "redis://a%zz@h", "redis://[::1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (pe_redis_url_parse(bad[i], &u, err, sizeof err) != PE_EINVAL) {
      fprintf(stderr, "URL '%s' accepted\n", bad[i]);
      pe_test_failures++;
    }
  }
  PE_CHECK(strstr(err, "redis://[::1") != NULL);
  /* A URL that does not parse is quoted without its password. */
  PE_CHECK_INT(
      pe_redis_url_parse("redis://bob:hunter2@h:99999/0", &u, err, sizeof err),
      PE_EINVAL);
  PE_CHECK(strstr(err, "hunter2") == NULL);
  PE_CHECK(strstr(err, "'redis://bob:***@h:99999/0'") != NULL);
  char shown[128];
  static const char *const redact[][2] = {
      {"redis://:pw@h:1/0", "redis://:***@h:1/0"},
      {"redis://pw@h", "redis://***@h"},
      {"redis://u:p@ss:w@h/2", "redis://u:***@h/2"},
      {"redis://h:1/0", "redis://h:1/0"},
      {"unix:///run/r.sock?db=1", "unix:///run/r.sock?db=1"},
      {"redis://h/a@b", "redis://h/a@b"}};
  for (size_t i = 0; i < sizeof redact / sizeof redact[0]; i++) {
    pe_redis_url_redact(redact[i][0], shown, sizeof shown);
    PE_CHECK_STR(shown, redact[i][1]);
  }
  pe_redis_url_redact("redis://:secret@h", shown, 12); /* cut, terminated */
  PE_CHECK_STR(shown, "redis://:**");
}

static void test_resp(void) {
  pe_resp_buf_t b = {0};
  pe_resp_begin(&b, 5);
  pe_resp_arg_str(&b, "XADD");
  pe_resp_arg(&b, "k\r\n", 3);
  pe_stream_id_t id = {17, 4};
  pe_resp_arg_id(&b, id);
  pe_resp_arg_i64(&b, INT64_MIN);
  pe_resp_arg_double(&b, 0.1);
  static const char want[] = "*5\r\n$4\r\nXADD\r\n$3\r\nk\r\n\r\n$4\r\n17-4\r\n"
                             "$20\r\n-9223372036854775808\r\n$3\r\n0.1\r\n";
  PE_CHECK_INT(b.len, sizeof want - 1);
  PE_CHECK(b.len == sizeof want - 1 && memcmp(b.data, want, b.len) == 0);
  PE_CHECK_INT(b.commands, 1);
  /* Extreme doubles in their shortest form; every value that is not finite
   * is "nan", the stream's one spelling for it. */
  pe_resp_buf_t d = {0};
  pe_resp_begin(&d, 4);
  pe_resp_arg_double(&d, NAN);
  pe_resp_arg_double(&d, -INFINITY);
  pe_resp_arg_double(&d, -1e300);
  pe_resp_arg_double(&d, 5e-324);
  static const char want_d[] = "*4\r\n$3\r\nnan\r\n$3\r\nnan\r\n"
                               "$7\r\n-1e+300\r\n"
                               "$6\r\n5e-324\r\n";
  PE_CHECK(d.len == sizeof want_d - 1 && memcmp(d.data, want_d, d.len) == 0);
  pe_resp_free(&d);
  pe_resp_buf_t c = {0};
  pe_resp_begin(&c, 1);
  pe_resp_arg_u64(&c, UINT64_MAX);
  pe_resp_append(&b, &c);
  PE_CHECK_INT(b.commands, 2);
  PE_CHECK(memcmp(b.data + sizeof want - 1,
                  "*1\r\n$20\r\n18446744073709551615\r\n", 31) == 0);
  /* Growth keeps what was there. */
  for (int i = 0; i < 10000; i++) {
    pe_resp_begin(&c, 1);
    pe_resp_arg_str(&c, "PING");
  }
  PE_CHECK_INT(c.len, 31 + 10000 * 14);
  PE_CHECK(memcmp(c.data + c.len - 14, "*1\r\n$4\r\nPING\r\n", 14) == 0);
  pe_resp_reset(&c);
  PE_CHECK_INT(c.len, 0);
  PE_CHECK(c.cap > 0);
  pe_resp_free(&b);
  pe_resp_free(&c);
}

static pe_redis_value_t pe__str(const char *s) {
  pe_redis_value_t v;
  memset(&v, 0, sizeof v);
  v.type = PE_REDIS_STRING;
  v.str = s;
  v.len = strlen(s);
  return v;
}

static pe_redis_value_t pe__arr(pe_redis_value_t *elem, uint32_t n) {
  pe_redis_value_t v;
  memset(&v, 0, sizeof v);
  v.type = PE_REDIS_ARRAY;
  v.elem = elem;
  v.n = n;
  return v;
}

static void test_xread(void) {
  pe_redis_value_t f1[4] = {pe__str("symbol"), pe__str("A"), pe__str("price"),
                            pe__str("1.5")};
  pe_redis_value_t e1[2] = {pe__str("5-1"), pe__arr(f1, 4)};
  pe_redis_value_t f2[3] = {pe__str("a"), pe__str("b"), pe__str("c")};
  pe_redis_value_t e2[2] = {pe__str("5-2"), pe__arr(f2, 3)};
  pe_redis_value_t e3[2] = {pe__str("x-2"), pe__arr(f2, 2)};
  pe_redis_value_t entries[3] = {pe__arr(e1, 2), pe__arr(e2, 2),
                                 pe__arr(e3, 2)};
  pe_redis_value_t stream[2] = {pe__str("ticks"), pe__arr(entries, 3)};
  pe_redis_value_t top1[1] = {pe__arr(stream, 2)};
  pe_redis_value_t reply = pe__arr(top1, 1);
  const pe_redis_value_t *list;
  size_t n;
  PE_CHECK_INT(pe_redis_xread_entries(&reply, &list, &n), PE_OK);
  PE_CHECK_INT(n, 3);
  pe_stream_field_t fields[4];
  size_t nf;
  pe_stream_id_t id;
  PE_CHECK_INT(pe_redis_entry_fields(&list[0], &id, fields, 4, &nf), PE_OK);
  PE_CHECK(id.ms == 5 && id.seq == 1);
  PE_CHECK_INT(nf, 2);
  PE_CHECK(fields[1].value_len == 3 && memcmp(fields[1].value, "1.5", 3) == 0);
  PE_CHECK_INT(pe_redis_entry_fields(&list[0], &id, fields, 1, &nf),
               PE_ELINELEN);
  PE_CHECK_INT(pe_redis_entry_fields(&list[1], &id, fields, 4, &nf), PE_EPARSE);
  PE_CHECK(id.ms == 5 && id.seq == 2);
  PE_CHECK_INT(pe_redis_entry_fields(&list[2], &id, fields, 4, &nf), PE_EINVAL);
  pe_redis_value_t nil;
  memset(&nil, 0, sizeof nil);
  nil.type = PE_REDIS_NIL;
  PE_CHECK_INT(pe_redis_xread_entries(&nil, &list, &n), PE_OK);
  PE_CHECK_INT(n, 0);
  PE_CHECK_INT(pe_redis_xread_entries(&entries[0], &list, &n), PE_EPARSE);
}

static void test_info(void) {
  pe_redis_value_t first_fields[2] = {pe__str("a"), pe__str("1")};
  pe_redis_value_t first[2] = {pe__str("7-0"), pe__arr(first_fields, 2)};
  pe_redis_value_t last[2] = {pe__str("11-3"), pe__arr(first_fields, 2)};
  pe_redis_value_t kv[14];
  kv[0] = pe__str("length");
  memset(&kv[1], 0, sizeof kv[1]);
  kv[1].type = PE_REDIS_INTEGER;
  kv[1].integer = 5;
  kv[2] = pe__str("last-generated-id");
  kv[3] = pe__str("11-3");
  kv[4] = pe__str("max-deleted-entry-id");
  kv[5] = pe__str("0-0");
  kv[6] = pe__str("entries-added");
  kv[7] = kv[1];
  kv[7].integer = 12;
  kv[8] = pe__str("first-entry");
  kv[9] = pe__arr(first, 2);
  kv[10] = pe__str("groups");
  kv[11] = kv[1];
  kv[12] = pe__str("last-entry");
  kv[13] = pe__arr(last, 2);
  pe_redis_value_t reply = pe__arr(kv, 14);
  pe_redis_stream_info_t in;
  PE_CHECK_INT(pe_redis_stream_info_parse(&reply, &in), PE_OK);
  PE_CHECK_INT(in.exists, 1);
  PE_CHECK_INT(in.length, 5);
  PE_CHECK(in.last_generated.ms == 11 && in.last_generated.seq == 3);
  PE_CHECK(in.first.ms == 7 && in.first.seq == 0);
  PE_CHECK(in.last.ms == 11 && in.last.seq == 3);
  PE_CHECK_INT(in.entries_added, 12);
  PE_CHECK_INT(in.has_entries_added, 1);
  pe_redis_value_t err;
  memset(&err, 0, sizeof err);
  err.type = PE_REDIS_ERROR;
  err.str = "ERR no such key";
  err.len = strlen(err.str);
  PE_CHECK_INT(pe_redis_stream_info_parse(&err, &in), PE_OK);
  PE_CHECK_INT(in.exists, 0);
  err.str = "WRONGTYPE Operation against a key holding the wrong kind of value";
  err.len = strlen(err.str);
  PE_CHECK_INT(pe_redis_stream_info_parse(&err, &in), PE_EPARSE);
  err.str = "ERR The ID specified in XADD is equal or smaller than the target "
            "stream top item";
  PE_CHECK(pe_redis_is_duplicate_id(&err));
}

/* Parses a RESP array of bulk strings; returns the argument count or -1. */
static int pe__resp_args(const char *p, size_t len, const char **args,
                         size_t *lens, int cap) {
  const char *end = p + len;
  if (*p != '*') {
    return -1;
  }
  int n = atoi(p + 1);
  p = strstr(p, "\r\n") + 2;
  for (int i = 0; i < n; i++) {
    if (p >= end || *p != '$' || i >= cap) {
      return -1;
    }
    size_t k = (size_t)atol(p + 1);
    p = strstr(p, "\r\n") + 2;
    args[i] = p;
    lens[i] = k;
    p += k + 2;
  }
  return p == end ? n : -1;
}

static void test_signal(void) {
  pe_stream_id_t tick = {1704205800012ull, 5}, sid;
  PE_CHECK_INT(pe_signal_stream_id(tick, 1, &sid), PE_OK);
  PE_CHECK(sid.ms == tick.ms && sid.seq == 21);
  pe_stream_id_t next = {tick.ms, 6}, sid0;
  PE_CHECK_INT(pe_signal_stream_id(next, 0, &sid0), PE_OK);
  PE_CHECK(pe_stream_id_cmp(sid, sid0) < 0);
  pe_stream_id_t top = {1, UINT64_MAX / 4};
  PE_CHECK_INT(pe_signal_stream_id(top, 3, &sid), PE_OK);
  PE_CHECK(sid.seq == UINT64_MAX);
  top.seq += 1;
  PE_CHECK_INT(pe_signal_stream_id(top, 0, &sid), PE_EFULL);
  PE_CHECK_INT(pe_signal_stream_id(tick, 4, &sid), PE_EFULL);

  pe_signal_t s;
  memset(&s, 0, sizeof s);
  snprintf(s.id, sizeof s.id, "AAPL-1704205800012482000");
  snprintf(s.label, sizeof s.label, "ema_crossover");
  snprintf(s.symbol, sizeof s.symbol, "AAPL");
  s.ts_ns = 1704205800012482000LL;
  s.pattern = PE_RULE_EMA_CROSSOVER;
  s.model_class = -1;
  s.score = 0.5;
  s.confidence = 1.0;
  s.price = 185.64;
  s.fired = (1u << PE_RULE_EMA_CROSSOVER) | (1u << PE_RULE_VOLUME_SPIKE);
  s.value[PE_RULE_EMA_CROSSOVER] = 0.02;
  s.contribution[PE_RULE_EMA_CROSSOVER] = 0.04;
  s.value[PE_RULE_VOLUME_SPIKE] = 3.0;
  s.contribution[PE_RULE_VOLUME_SPIKE] = 0.3;
  pe_resp_buf_t b = {0};
  pe_stream_id_t out_id = {1704205800012ull, 20};
  pe_resp_xadd_signal(&b, "signals:global", 1000, out_id, &s, tick);
  const char *args[64];
  size_t lens[64];
  int n = pe__resp_args(b.data, b.len, args, lens, 64);
  PE_CHECK_INT(n, 3 + 3 + 2 * 13);
  static const char *const want[] = {"XADD",
                                     "signals:global",
                                     "MAXLEN",
                                     "~",
                                     "1000",
                                     "1704205800012-20",
                                     "id",
                                     "AAPL-1704205800012482000",
                                     "symbol",
                                     "AAPL",
                                     "score",
                                     "0.5",
                                     "pattern",
                                     "ema_crossover",
                                     "timestamp",
                                     "1704205800012482000",
                                     "confidence",
                                     "1",
                                     "price",
                                     "185.64",
                                     "fired",
                                     "ema_crossover,volume_spike",
                                     "ema_crossover",
                                     "0.02",
                                     "ema_crossover_contribution",
                                     "0.04",
                                     "volume_spike",
                                     "3",
                                     "volume_spike_contribution",
                                     "0.3",
                                     "tick_id",
                                     "1704205800012-5"};
  for (int i = 0; i < n && i < (int)(sizeof want / sizeof want[0]); i++) {
    if (lens[i] != strlen(want[i]) || memcmp(args[i], want[i], lens[i]) != 0) {
      fprintf(stderr, "arg %d: '%.*s', want '%s'\n", i, (int)lens[i], args[i],
              want[i]);
      pe_test_failures++;
    }
  }
  /* Values that are not finite are the stream's one spelling, "nan". */
  s.confidence = NAN;
  s.value[PE_RULE_EMA_CROSSOVER] = INFINITY;
  s.contribution[PE_RULE_EMA_CROSSOVER] = -INFINITY;
  pe_resp_reset(&b);
  pe_resp_xadd_signal(&b, "signals:global", 1000, out_id, &s, tick);
  n = pe__resp_args(b.data, b.len, args, lens, 64);
  static const int at[] = {17, 23, 25}; /* confidence, value, contribution */
  for (size_t i = 0; i < 3; i++) {
    int k = at[i];
    if (k >= n || lens[k] != 3 || memcmp(args[k], "nan", 3) != 0) {
      fprintf(stderr, "arg %d: '%.*s', want 'nan'\n", k,
              k < n ? (int)lens[k] : 0, k < n ? args[k] : "");
      pe_test_failures++;
    }
  }
  pe_resp_free(&b);
}

PE_TEST_MAIN(PE_TEST(test_urls), PE_TEST(test_resp), PE_TEST(test_xread),
             PE_TEST(test_info), PE_TEST(test_signal))
