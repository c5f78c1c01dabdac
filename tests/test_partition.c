/* Symbol partitions: the FNV-1a 64 hash against its published test vectors,
 * the hash partition pinned, greedy packing worked by hand, the canonical
 * text and digest, parsing back, and refusals. */
#define _XOPEN_SOURCE 700
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pe/error.h"
#include "pe/partition.h"
#include "pe_test.h"

static char g_dir[64];

/* A temporary folder for the weights files, made on first use. */
static const char *dir(void) {
  if (!g_dir[0]) {
    snprintf(g_dir, sizeof g_dir, "/tmp/pe_partition_XXXXXX");
    if (!mkdtemp(g_dir)) {
      perror("mkdtemp");
      exit(1);
    }
  }
  return g_dir;
}

static const char *write_file(const char *name, const char *text) {
  static char path[128];
  snprintf(path, sizeof path, "%s/%s", dir(), name);
  FILE *f = fopen(path, "wb");
  if (!f) {
    perror(path);
    exit(1);
  }
  fputs(text, f);
  fclose(f);
  return path;
}

/* The FNV reference's test vectors (offset basis, "a", "foobar"). */
static void fnv1a64_vectors(void) {
  PE_CHECK(pe_fnv1a64("", 0) == 0xcbf29ce484222325ull);
  PE_CHECK(pe_fnv1a64("a", 1) == 0xaf63dc4c8601ec8cull);
  PE_CHECK(pe_fnv1a64("foobar", 6) == 0x85944171f73967e8ull);
}

/* Pinned: changing the hash would move every symbol of a deployment. */
static void hash_partition_pinned(void) {
  PE_CHECK_INT(pe_partition_of("BTCUSDT", 7, 16), 12);
  PE_CHECK_INT(pe_partition_of("ETHUSDT", 7, 16), 0);
  PE_CHECK_INT(pe_partition_of("AAPL", 4, 16), 11);
  PE_CHECK_INT(pe_partition_of("BTCUSDT", 7, 7), 4);
  PE_CHECK_INT(pe_partition_of("AAPL", 4, 7), 2);
  PE_CHECK_INT(pe_partition_of("AAPL", 4, 1), 0);
  PE_CHECK_INT(pe_partition_of("AAPL", 4, 0), 0);
  /* Only the given bytes count. */
  PE_CHECK_INT(pe_partition_of("BTCUSDTX", 7, 16), 12);
}

static void stream_keys(void) {
  char key[32];
  PE_CHECK_INT(pe_partition_key(key, sizeof key, "ticks", 17), 11);
  PE_CHECK_STR(key, "ticks:{p17}");
  PE_CHECK_INT(pe_partition_key(key, sizeof key, "signals", 0), 12);
  PE_CHECK_STR(key, "signals:{p0}");
  PE_CHECK_INT(pe_partition_key(key, 8, "ticks", 17), PE_EFULL);
}

/* A10 B7 C5 D4 E3 onto 2 partitions, heaviest first onto the lighter:
 * A->0, B->1, C->1 (7 < 10), D->0 (10 < 12), E->1 (12 < 14). */
static void greedy_packing(void) {
  const char *w = write_file("w.csv", "symbol,weight\n"
                                      "# comment\n"
                                      "C,5\r\n"
                                      "E,3\n"
                                      "\n"
                                      "A,10\n"
                                      "D,4\n"
                                      "B,7");
  pe_partition_options_t o = {.count = 2, .weights_path = w};
  pe_partition_map_t *m = NULL;
  char err[256] = "";
  PE_CHECK_INT(pe_partition_map_create(&o, &m, err, sizeof err), PE_OK);
  if (!m) {
    fprintf(stderr, "%s\n", err);
    return;
  }
  PE_CHECK_INT(pe_partition_map_lookup(m, "A", 1), 0);
  PE_CHECK_INT(pe_partition_map_lookup(m, "B", 1), 1);
  PE_CHECK_INT(pe_partition_map_lookup(m, "C", 1), 1);
  PE_CHECK_INT(pe_partition_map_lookup(m, "D", 1), 0);
  PE_CHECK_INT(pe_partition_map_lookup(m, "E", 1), 1);
  PE_CHECK_NEAR(pe_partition_map_load(m, 0), 14, 0);
  PE_CHECK_NEAR(pe_partition_map_load(m, 1), 15, 0);
  PE_CHECK_INT(pe_partition_map_symbols(m), 5);
  /* A symbol the file lacks goes by the hash. */
  PE_CHECK_INT(pe_partition_map_lookup(m, "BTCUSDT", 7),
               pe_partition_of("BTCUSDT", 7, 2));
  size_t len = 0;
  const char *text = pe_partition_map_text(m, &len);
  PE_CHECK_STR(text, "pe-partitions 1\ncount 2\nhash fnv1a64\n"
                     "0 A\n1 B\n1 C\n0 D\n1 E\n");
  PE_CHECK_INT(len, strlen(text));
  /* FNV-1a 64 of that text, computed outside this code. */
  PE_CHECK_STR(pe_partition_map_digest_hex(m), "329008b61a2fd9de");
  PE_CHECK(pe_partition_map_digest(m) == 0x329008b61a2fd9deull);

  /* The text parses back into the same placement. */
  pe_partition_map_t *back = NULL;
  PE_CHECK_INT(pe_partition_map_parse(text, len, &back, err, sizeof err),
               PE_OK);
  if (back) {
    PE_CHECK_STR(pe_partition_map_digest_hex(back), "329008b61a2fd9de");
    PE_CHECK_INT(pe_partition_map_lookup(back, "C", 1), 1);
    PE_CHECK_INT(pe_partition_map_lookup(back, "D", 1), 0);
    PE_CHECK_INT(pe_partition_map_count(back), 2);
    pe_partition_map_destroy(back);
  }
  pe_partition_map_destroy(m);
}

/* Hot symbols go first: E->0, then A->1, B->0 (3 < 10), C->0 (tie 10/10
 * goes to the lower), D->1. */
static void hot_symbols_first(void) {
  const char *w = write_file("w2.csv", "A,10\nB,7\nC,5\nD,4\nE,3\n");
  pe_partition_options_t o = {
      .count = 2, .weights_path = w, .hot_symbols = "E"};
  pe_partition_map_t *m = NULL;
  char err[256] = "";
  PE_CHECK_INT(pe_partition_map_create(&o, &m, err, sizeof err), PE_OK);
  if (!m)
    return;
  PE_CHECK_STR(pe_partition_map_text(m, NULL),
               "pe-partitions 1\ncount 2\nhash fnv1a64\n"
               "1 A\n0 B\n0 C\n1 D\n0 E\n");
  PE_CHECK_STR(pe_partition_map_digest_hex(m), "8696e88377934a53");
  pe_partition_map_destroy(m);

  /* Hot symbols without a file: each weighs 1, so three hot symbols land
   * on three partitions, in the order given. */
  pe_partition_options_t h = {.count = 4, .hot_symbols = "ZZ,YY,XX"};
  PE_CHECK_INT(pe_partition_map_create(&h, &m, err, sizeof err), PE_OK);
  if (!m)
    return;
  PE_CHECK_INT(pe_partition_map_lookup(m, "ZZ", 2), 0);
  PE_CHECK_INT(pe_partition_map_lookup(m, "YY", 2), 1);
  PE_CHECK_INT(pe_partition_map_lookup(m, "XX", 2), 2);
  PE_CHECK_INT(pe_partition_map_symbols(m), 3);
  pe_partition_map_destroy(m);
}

/* The map depends on the file's content, not its line order. */
static void order_of_lines_irrelevant(void) {
  const char *a = write_file("a.csv", "X,1\nY,1\nZ,1\nW,2\n");
  char a_path[128];
  snprintf(a_path, sizeof a_path, "%s", a);
  const char *b = write_file("b.csv", "Z,1\nW,2\nY,1\nX,1\n");
  pe_partition_options_t oa = {.count = 3, .weights_path = a_path};
  pe_partition_options_t ob = {.count = 3, .weights_path = b};
  pe_partition_map_t *ma = NULL, *mb = NULL;
  char err[256];
  PE_CHECK_INT(pe_partition_map_create(&oa, &ma, err, sizeof err), PE_OK);
  PE_CHECK_INT(pe_partition_map_create(&ob, &mb, err, sizeof err), PE_OK);
  if (ma && mb)
    PE_CHECK_STR(pe_partition_map_text(ma, NULL),
                 pe_partition_map_text(mb, NULL));
  pe_partition_map_destroy(ma);
  pe_partition_map_destroy(mb);
}

static void refusals(void) {
  pe_partition_map_t *m = NULL;
  char err[256] = "";
  pe_partition_options_t o = {.count = 0};
  PE_CHECK_INT(pe_partition_map_create(&o, &m, err, sizeof err), PE_EINVAL);
  PE_CHECK(strstr(err, "partition count") != NULL);
  o.count = PE_PARTITION_MAX + 1;
  PE_CHECK_INT(pe_partition_map_create(&o, &m, err, sizeof err), PE_EINVAL);
  o.count = 4;
  o.weights_path = write_file("bad1.csv", "A,1\nB,heavy\n");
  PE_CHECK_INT(pe_partition_map_create(&o, &m, err, sizeof err), PE_EINVAL);
  PE_CHECK(strstr(err, "bad1.csv:2:") != NULL);
  o.weights_path = write_file("bad2.csv", "A,1\nB,-2\n");
  PE_CHECK_INT(pe_partition_map_create(&o, &m, err, sizeof err), PE_EINVAL);
  o.weights_path = write_file("bad3.csv", "A,1\nB,2\nA,3\n");
  PE_CHECK_INT(pe_partition_map_create(&o, &m, err, sizeof err), PE_EINVAL);
  PE_CHECK(strstr(err, "named twice") != NULL);
  o.weights_path = write_file("bad4.csv", "A,1\nno comma\n");
  PE_CHECK_INT(pe_partition_map_create(&o, &m, err, sizeof err), PE_EINVAL);
  PE_CHECK(strstr(err, ":2:") != NULL);
  o.weights_path =
      write_file("bad5.csv", "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,1\n");
  PE_CHECK_INT(pe_partition_map_create(&o, &m, err, sizeof err), PE_EINVAL);
  o.weights_path = "/nonexistent/weights.csv";
  PE_CHECK_INT(pe_partition_map_create(&o, &m, err, sizeof err), PE_ENOENT);
  o.weights_path = NULL;
  o.hot_symbols = "A,,B";
  PE_CHECK_INT(pe_partition_map_create(&o, &m, err, sizeof err), PE_EINVAL);
  o.hot_symbols = "A,B,A";
  PE_CHECK_INT(pe_partition_map_create(&o, &m, err, sizeof err), PE_EINVAL);
  PE_CHECK(strstr(err, "twice") != NULL);
  PE_CHECK(m == NULL);

  const char *bad_texts[] = {
      "",
      "pe-partitions 2\ncount 2\nhash fnv1a64\n",
      "pe-partitions 1\ncount 0\nhash fnv1a64\n",
      "pe-partitions 1\ncount 2\nhash crc\n",
      "pe-partitions 1\ncount 2\nhash fnv1a64\n2 A\n",      /* p >= count */
      "pe-partitions 1\ncount 2\nhash fnv1a64\n1 B\n0 A\n", /* not sorted */
      "pe-partitions 1\ncount 2\nhash fnv1a64\n1 A\n0 A\n", /* twice */
      "pe-partitions 1\ncount 2\nhash fnv1a64\n1 A",        /* no newline */
      "pe-partitions 1\ncount 2\nhash fnv1a64\n01 A\n",     /* not canonical */
      "pe-partitions 1\ncount 2\nhash fnv1a64\nx A\n",
  };
  for (size_t i = 0; i < sizeof bad_texts / sizeof *bad_texts; i++) {
    int rc = pe_partition_map_parse(bad_texts[i], strlen(bad_texts[i]), &m, err,
                                    sizeof err);
    if (rc != PE_EPARSE)
      fprintf(stderr, "bad text %zu: %d\n", i, rc);
    PE_CHECK_INT(rc, PE_EPARSE);
    PE_CHECK(m == NULL);
  }
}

static void options_from_env(void) {
  char err[256] = "";
  setenv("PARTITION_COUNT", "12", 1);
  setenv("SYMBOL_WEIGHTS_FILE", "/tmp/w.csv", 1);
  setenv("HOT_SYMBOLS", "BTCUSDT,ETHUSDT", 1);
  pe_partition_options_t o = {0};
  PE_CHECK_INT(pe_partition_options_from_env(&o, err, sizeof err), PE_OK);
  PE_CHECK_INT(o.count, 12);
  PE_CHECK_STR(o.weights_path, "/tmp/w.csv");
  PE_CHECK_STR(o.hot_symbols, "BTCUSDT,ETHUSDT");
  /* What was set already wins over the environment. */
  pe_partition_options_t given = {.count = 3, .hot_symbols = "X"};
  PE_CHECK_INT(pe_partition_options_from_env(&given, err, sizeof err), PE_OK);
  PE_CHECK_INT(given.count, 3);
  PE_CHECK_STR(given.hot_symbols, "X");
  setenv("PARTITION_COUNT", "12x", 1);
  pe_partition_options_t bad = {0};
  PE_CHECK_INT(pe_partition_options_from_env(&bad, err, sizeof err), PE_EINVAL);
  PE_CHECK(strstr(err, "PARTITION_COUNT") != NULL);
  unsetenv("PARTITION_COUNT");
  unsetenv("SYMBOL_WEIGHTS_FILE");
  unsetenv("HOT_SYMBOLS");
}

/* Many symbols: the packing spreads equal weights evenly, every lookup
 * finds its symbol, and parse gives the same map back. */
static void many_symbols(void) {
  char path[128];
  snprintf(path, sizeof path, "%s/many.csv", dir());
  FILE *f = fopen(path, "wb");
  if (!f)
    return;
  for (int i = 0; i < 5000; i++)
    fprintf(f, "S%05d,1\n", i);
  fclose(f);
  pe_partition_options_t o = {.count = 16, .weights_path = path};
  pe_partition_map_t *m = NULL;
  char err[256];
  PE_CHECK_INT(pe_partition_map_create(&o, &m, err, sizeof err), PE_OK);
  if (!m)
    return;
  for (uint32_t p = 0; p < 16; p++) {
    double l = pe_partition_map_load(m, p);
    PE_CHECK(l == 312 || l == 313);
  }
  size_t len;
  const char *text = pe_partition_map_text(m, &len);
  pe_partition_map_t *back = NULL;
  PE_CHECK_INT(pe_partition_map_parse(text, len, &back, err, sizeof err),
               PE_OK);
  if (back) {
    int same = 1;
    for (int i = 0; i < 5000; i++) {
      char s[16];
      int n = snprintf(s, sizeof s, "S%05d", i);
      same &= pe_partition_map_lookup(m, s, (size_t)n) ==
              pe_partition_map_lookup(back, s, (size_t)n);
    }
    PE_CHECK(same);
    pe_partition_map_destroy(back);
  }
  pe_partition_map_destroy(m);
}

static void cleanup(void) {
  if (!g_dir[0])
    return;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", g_dir);
}

PE_TEST_MAIN(PE_TEST(fnv1a64_vectors), PE_TEST(hash_partition_pinned),
             PE_TEST(stream_keys), PE_TEST(greedy_packing),
             PE_TEST(hot_symbols_first), PE_TEST(order_of_lines_irrelevant),
             PE_TEST(refusals), PE_TEST(options_from_env),
             PE_TEST(many_symbols), PE_TEST(cleanup))
