/* Field parsers (src/io/parse.c): numbers against strtod, timestamps in
 * every accepted form against values worked out by hand (date -u -d). */
#include "pe/parse.h"

#include <stdint.h>
#include <stdlib.h>

#include "pe/error.h"
#include "pe_test.h"

static double num(const char *s) {
  double v = -12345.0;
  int rc = pe_parse_double(s, strlen(s), &v);
  PE_CHECK_INT(rc, PE_OK);
  return v;
}

static int num_rc(const char *s) {
  double v;
  return pe_parse_double(s, strlen(s), &v);
}

static void test_numbers_round_trip_like_strtod(void) {
  const char *cases[] = {
      "0",
      "1",
      "-1",
      "61837.63000000",
      "0.02000000",
      "2683.8",
      "1e-3",
      "1.5E+10",
      "  42.5 ",
      "\t7\t",
      "+3.25",
      ".5",
      "5.",
      "0.1",
      "0.3",
      "123456789012345678901234567890",
      "1.7976931348623157e308",
      "4.9e-324",
      "2.2250738585072014e-308",
      "0.000000000000000000001234",
      "9007199254740993",
      "1234567890123456789.5",
      "3.141592653589793238462643383279",
      "1e22",
      "1e23",
      "-0",
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    double want = strtod(cases[i], NULL);
    double got = num(cases[i]);
    if (memcmp(&want, &got, sizeof want) != 0) {
      fprintf(stderr, "parse '%s': %.17g, strtod %.17g\n", cases[i], got, want);
      pe_test_failures++;
    }
  }
}

static void test_numbers_random_decimals_match_strtod(void) {
  /* Prices and sizes as exchanges print them: up to 19 digits. */
  uint64_t s = 12345;
  char buf[64];
  for (int i = 0; i < 200000; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t mant = (s >> 11) % 10000000000000ull;
    size_t frac = (size_t)((s >> 3) % 12);
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)mant);
    size_t n = strlen(buf);
    if (frac < n) {
      memmove(buf + n - frac + 1, buf + n - frac, frac + 1);
      buf[n - frac] = '.';
    }
    double want = strtod(buf, NULL);
    double got = num(buf);
    if (memcmp(&want, &got, sizeof want) != 0) {
      fprintf(stderr, "parse '%s': %.17g, strtod %.17g\n", buf, got, want);
      pe_test_failures++;
      break;
    }
  }
}

static void test_numbers_special_and_bad(void) {
  PE_CHECK(isnan(num("nan")));
  PE_CHECK(isnan(num("NaN")));
  PE_CHECK(isinf(num("inf")) && num("inf") > 0);
  PE_CHECK(isinf(num("-Infinity")) && num("-Infinity") < 0);
  const char *bad[] = {"",    "   ",  "abc", "1.2.3", "1e", "1e+", "--1",
                       "12a", "0x10", "1,5", ".",     "+",  "e5",  "nana"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (num_rc(bad[i]) != PE_ENUMBER) {
      fprintf(stderr, "'%s' should be PE_ENUMBER\n", bad[i]);
      pe_test_failures++;
    }
  }
}

/* Numbers of 128 characters and more: the same double as glibc's strtod of
 * the whole text, halfway cases with long zero runs included, and bad
 * ones still bad. */
static void test_long_numbers_match_strtod(void) {
  static char s[4096];
  const char *heads[] = {
      "9007199254740993", "0.", "-1.5", "123456789.",
      "1.00000000000000011102230246251565404236316680908203125"};
  const char *tails[] = {"", "1", "5", "00001", "e-5", "e+300", "e-330"};
  for (size_t h = 0; h < sizeof heads / sizeof heads[0]; h++) {
    for (size_t t = 0; t < sizeof tails / sizeof tails[0]; t++) {
      for (size_t zeros = 100; zeros < 3000; zeros = zeros * 3 + 7) {
        size_t n = (size_t)snprintf(s, sizeof s, "%s", heads[h]);
        if (strchr(s, '.') == NULL) {
          s[n++] = '.';
        }
        memset(s + n, '0', zeros);
        n += zeros;
        snprintf(s + n, sizeof s - n, "%s", tails[t]);
        double want = strtod(s, NULL);
        double got = 0.0;
        int rc = pe_parse_double(s, strlen(s), &got);
        if (rc != PE_OK || memcmp(&got, &want, sizeof got) != 0) {
          fprintf(stderr, "%zu-char number %.40s...%s: %.17g, want %.17g\n",
                  strlen(s), s, tails[t], got, want);
          pe_test_failures++;
        }
      }
    }
  }
  /* Many significant digits: random, against strtod. */
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 2000; i++) {
    size_t n = 0;
    size_t len = 128 + (size_t)(i % 900);
    size_t point = (size_t)(i * 7) % len;
    for (size_t k = 0; k < len; k++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      s[n++] = k == point ? '.' : (char)('0' + x % 10);
    }
    snprintf(s + n, sizeof s - n, "e%d", (int)(x % 700) - 350);
    double want = strtod(s, NULL);
    double got = 0.0;
    if (pe_parse_double(s, strlen(s), &got) != PE_OK ||
        memcmp(&got, &want, sizeof got) != 0) {
      fprintf(stderr, "%s: %.17g, want %.17g\n", s, got, want);
      pe_test_failures++;
    }
  }
  memset(s, '1', 300);
  snprintf(s + 300, sizeof s - 300, "x");
  PE_CHECK_INT(num_rc(s), PE_ENUMBER);
  snprintf(s + 300, sizeof s - 300, ".5.5");
  PE_CHECK_INT(num_rc(s), PE_ENUMBER);
}

static int64_t ts(const char *s, pe_ts_unit_t unit) {
  int64_t v = -1;
  int rc = pe_parse_timestamp(s, strlen(s), unit, &v);
  if (rc != PE_OK) {
    fprintf(stderr, "timestamp '%s' rejected\n", s);
    pe_test_failures++;
  }
  return v;
}

static int ts_rc(const char *s) {
  int64_t v;
  return pe_parse_timestamp(s, strlen(s), PE_TS_AUTO, &v);
}

/* 2024-08-09T00:05:00Z, by `date -u -d 2024-08-09T00:05:00Z +%s`. */
#define T0 1723161900LL
#define NS 1000000000LL

static void test_epoch_units_by_magnitude(void) {
  PE_CHECK_INT(ts("1723161900", PE_TS_AUTO), T0 * NS);
  PE_CHECK_INT(ts("1723161900.25", PE_TS_AUTO), T0 * NS + 250000000);
  PE_CHECK_INT(ts("1723161900123", PE_TS_AUTO), T0 * NS + 123000000);
  PE_CHECK_INT(ts("1723161900123.5", PE_TS_AUTO), T0 * NS + 123500000);
  PE_CHECK_INT(ts("1723161900123456", PE_TS_AUTO), T0 * NS + 123456000);
  PE_CHECK_INT(ts("1723161900123456789", PE_TS_AUTO), T0 * NS + 123456789);
  PE_CHECK_INT(ts(" 1723161900.000000001 ", PE_TS_AUTO), T0 * NS + 1);
  /* Digits below 1 ns are truncated, never rounded into the next ns. */
  PE_CHECK_INT(ts("1723161900.0000000019", PE_TS_AUTO), T0 * NS + 1);
}

static void test_epoch_forced_units(void) {
  PE_CHECK_INT(ts("1723161900", PE_TS_MS), 1723161900LL * 1000000);
  PE_CHECK_INT(ts("5", PE_TS_S), 5 * NS);
  PE_CHECK_INT(ts("5", PE_TS_US), 5000);
  PE_CHECK_INT(ts("5", PE_TS_NS), 5);
  pe_ts_unit_t u;
  PE_CHECK_INT(pe_ts_unit_parse("us", &u), PE_OK);
  PE_CHECK_INT(u, PE_TS_US);
  PE_CHECK_INT(pe_ts_unit_parse("minutes", &u), PE_EINVAL);
}

static void test_iso8601(void) {
  PE_CHECK_INT(ts("2024-08-09T00:05:00Z", PE_TS_AUTO), T0 * NS);
  PE_CHECK_INT(ts("2024-08-09T00:05:00.5Z", PE_TS_AUTO), T0 * NS + 500000000);
  PE_CHECK_INT(ts("2024-08-09 00:05:00.123456789Z", PE_TS_AUTO),
               T0 * NS + 123456789);
  PE_CHECK_INT(ts("2024-08-09T02:05:00+02:00", PE_TS_AUTO), T0 * NS);
  PE_CHECK_INT(ts("2024-08-08T19:05:00-0500", PE_TS_AUTO), T0 * NS);
  PE_CHECK_INT(ts("2024-08-09T00:05:00", PE_TS_AUTO), T0 * NS);
  PE_CHECK_INT(ts("1970-01-01T00:00:00Z", PE_TS_AUTO), 0);
  PE_CHECK_INT(ts("2000-02-29T12:00:00Z", PE_TS_AUTO), 951825600LL * NS);
  PE_CHECK_INT(ts("1969-12-31T23:59:59Z", PE_TS_AUTO), -NS);
}

static void test_bad_timestamps(void) {
  const char *bad[] = {"",
                       "abc",
                       "12:00",
                       "2024-13-01T00:00:00Z",
                       "2023-02-29T00:00:00Z",
                       "2024-08-09T24:00:00Z",
                       "2024-08-09T00:60:00Z",
                       "2024-08-09",
                       "2024-08-09T00:05:00ZZ",
                       "2024-08-09T00:05:00+25:00",
                       "2024-08-09T00:05:00.Z",
                       "1.2.3",
                       "1e9",
                       "99999999999999999999",
                       "9999999999999999999",
                       "3000-01-01T00:00:00Z"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (ts_rc(bad[i]) != PE_ETIMESTAMP) {
      fprintf(stderr, "'%s' should be PE_ETIMESTAMP\n", bad[i]);
      pe_test_failures++;
    }
  }
}

PE_TEST_MAIN(PE_TEST(test_long_numbers_match_strtod),
             PE_TEST(test_numbers_round_trip_like_strtod),
             PE_TEST(test_numbers_random_decimals_match_strtod),
             PE_TEST(test_numbers_special_and_bad),
             PE_TEST(test_epoch_units_by_magnitude),
             PE_TEST(test_epoch_forced_units), PE_TEST(test_iso8601),
             PE_TEST(test_bad_timestamps))
