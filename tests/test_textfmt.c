/* Text formatting (src/io/textfmt.c): pe__put_double against glibc's
 * snprintf("%.17g") byte for byte on 20 million doubles of several kinds,
 * pe__put_i64 against "%lld", and the truncation contract of textfmt.h.
 *
 * The test includes textfmt.c itself to reach its static fast path, so it can
 * count the values that take it: a fast path that declined everything would
 * still match snprintf. Its definitions stand in for the library's textfmt.o,
 * which the linker then leaves out of the archive. */
#include "io/textfmt.c"

#include <float.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>

#include "pe_test.h"

/* Sanitizer builds (and PE_TEST_QUICK=1) run a quarter of the values. */
static int pe__quick(void) {
#if defined(__SANITIZE_ADDRESS__)
  return 1;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  return 1;
#endif
#endif
  return getenv("PE_TEST_QUICK") != NULL;
}

static long pe__count(long full) { return pe__quick() ? full / 4 : full; }

/* splitmix64 with a fixed seed: every run checks the same values. */
static uint64_t pe__rng = 0x5eed2024u;

static uint64_t pe__next(void) {
  uint64_t z = (pe__rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t pe__ten_to(int k) {
  uint64_t p = 1;
  while (k-- > 0) {
    p *= 10;
  }
  return p;
}

static uint64_t pe__five_to(int k) { return pe__ten_to(k) >> k; }

/* Uniform in [0, 1). */
static double pe__unit(void) { return (double)(pe__next() >> 11) * 0x1p-53; }

static double pe__random_sign(double v) { return pe__next() & 1 ? -v : v; }

/* Values checked and values the fast path took, per kind. */
typedef struct pe__tally {
  const char *kind;
  long values;
  long fast;
  long mismatches;
} pe__tally_t;

/* One value: the put function's bytes must be snprintf's, except that every
 * value that is not finite (NaN of either sign, both infinities) prints as
 * "nan" (textfmt.h). */
static void pe__check_g17(pe__tally_t *t, double v) {
  char got[48], want[48], scratch[32];
  size_t pos = 0;
  pe__put_double(got, sizeof got - 1, &pos, v);
  got[pos < sizeof got - 1 ? pos : sizeof got - 1] = '\0';
  if (!isfinite(v)) {
    strcpy(want, "nan");
  } else {
    snprintf(want, sizeof want, "%.17g", v);
  }
  t->values++;
  t->fast += pe__g17_fast(scratch, v) != 0;
  if (pos != strlen(want) || strcmp(got, want) != 0) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    if (t->mismatches++ < 10) {
      fprintf(stderr, "%s: bits 0x%016" PRIx64 ": got \"%s\", want \"%s\"\n",
              t->kind, bits, got, want);
    }
    pe_test_failures++;
  }
}

static void pe__report(const pe__tally_t *t) {
  printf("  %-22s %9ld values, %9ld fast (%.2f%%), %ld mismatches\n", t->kind,
         t->values, t->fast, 100.0 * (double)t->fast / (double)t->values,
         t->mismatches);
}

/* The realistic kinds must nearly all take the fast path (where there is
 * one: it needs a 128-bit integer type). */
static void pe__report_mostly_fast(const pe__tally_t *t) {
  pe__report(t);
#if defined(__SIZEOF_INT128__)
  PE_CHECK((double)t->fast > 0.99 * (double)t->values);
#endif
}

static void test_double_random_bit_patterns(void) {
  /* Every exponent: subnormals, NaNs, infinities and huge values, which
   * mostly go to snprintf (and cost it microseconds each). */
  pe__tally_t t = {"random bits", 0, 0, 0};
  for (long i = pe__count(1000000); i > 0; i--) {
    uint64_t bits = pe__next();
    double v;
    memcpy(&v, &bits, sizeof v);
    pe__check_g17(&t, v);
  }
  pe__report(&t);
}

static void test_double_random_magnitudes(void) {
  pe__tally_t t = {"1e-8..1e18 any sign", 0, 0, 0};
  for (long i = pe__count(4000000); i > 0; i--) {
    pe__check_g17(&t, pe__random_sign(pow(10.0, -8.0 + 26.0 * pe__unit())));
  }
  pe__report_mostly_fast(&t);
}

static void test_double_prices(void) {
  /* Up to a million with 2 to 8 decimals, as exchanges quote them; the
   * divided result is the double a parser would make of the decimal. */
  pe__tally_t t = {"prices, 2-8 decimals", 0, 0, 0};
  for (long i = pe__count(9000000); i > 0; i--) {
    double scale = (double)pe__ten_to(2 + (int)(pe__next() % 7));
    double x = pe__unit() * (double)pe__ten_to((int)(pe__next() % 7));
    pe__check_g17(&t, round(x * scale) / scale);
  }
  pe__report_mostly_fast(&t);
}

static void test_double_integers(void) {
  pe__tally_t t = {"integers to 2^60", 0, 0, 0};
  for (long i = pe__count(2000000); i > 0; i--) {
    uint64_t n = pe__next() >> (4 + pe__next() % 60);
    pe__check_g17(&t, pe__random_sign((double)n));
  }
  pe__report_mostly_fast(&t);
}

static void test_double_dyadics(void) {
  /* m / 2^j has a short exact decimal expansion: many end in a 5 right at
   * the 17th digit, and many in zeros that %g drops. */
  pe__tally_t t = {"dyadic m/2^j", 0, 0, 0};
  for (long i = pe__count(2000000); i > 0; i--) {
    uint64_t m = pe__next() >> (11 + pe__next() % 53);
    int j = (int)(pe__next() % 64);
    pe__check_g17(&t, pe__random_sign(ldexp((double)m, -j)));
  }
  pe__report(&t);
}

/* An odd m over 2^t with t = 17 - x, where x is the decimal exponent of the
 * value, is an exact tie at the 17th significant digit: v * 10^(16 - x) is
 * m * 5^(16 - x) / 2, an odd number over 2. Exponent x means
 * 10^x <= m / 2^t < 10^(x+1), so m in [2^17 * 5^x, 10 * 2^17 * 5^x),
 * capped at 2^53. */
static double pe__tie(int x) {
  uint64_t num = (1ull << 17) * pe__five_to(x > 0 ? x : 0);
  uint64_t den = pe__five_to(x < 0 ? -x : 0);
  uint64_t lo = (num + den - 1) / den;
  uint64_t hi = (10 * num + den - 1) / den;
  if (hi > (1ull << 53)) {
    hi = 1ull << 53;
  }
  uint64_t m = (lo + pe__next() % (hi - lo)) | 1;
  if (m >= hi) {
    m -= 2;
  }
  return ldexp((double)m, x - 17);
}

/* Whether the exact decimal expansion of v (glibc prints it exactly) is a 5
 * right after the 17th significant digit and nothing else. */
static int pe__is_tie(double v) {
  char s[64];
  snprintf(s, sizeof s, "%.40e", v);
  if (s[18] != '5') {
    return 0;
  }
  for (int i = 19; s[i] != 'e'; i++) {
    if (s[i] != '0') {
      return 0;
    }
  }
  return 1;
}

static void test_double_exact_ties(void) {
  pe__tally_t t = {"ties at the 17th digit", 0, 0, 0};
  for (long i = pe__count(2000000); i > 0; i--) {
    /* Half from the construction above at exponents -8..15, half as the
     * brief suggests: n / 4 and n / 8 for n in [2^50, 2^53). */
    double v;
    if (i & 1) {
      v = pe__tie(-8 + (int)(pe__next() % 24));
    } else {
      uint64_t n = (1ull << 50) + pe__next() % (7ull << 50);
      v = ldexp((double)n, -2 - (int)(pe__next() & 1));
    }
    if (i % 1000 == 1) {
      /* The construction really makes ties (and not only rarely). */
      PE_CHECK(pe__is_tie(v));
    }
    pe__check_g17(&t, pe__random_sign(v));
  }
  pe__report_mostly_fast(&t);
}

/* v and its 3 neighbours on each side, in both signs. */
static void pe__check_around(pe__tally_t *t, double v) {
  double up = v, down = v;
  pe__check_g17(t, v);
  pe__check_g17(t, -v);
  for (int i = 0; i < 3; i++) {
    up = nextafter(up, INFINITY);
    down = nextafter(down, -INFINITY);
    pe__check_g17(t, up);
    pe__check_g17(t, -up);
    pe__check_g17(t, down);
    pe__check_g17(t, -down);
  }
}

static void test_double_edges(void) {
  /* Powers of ten cross the %g switch between fixed and exponent notation
   * (1e-5 / 1e-4, 1e16 / 1e17) and include 17-digit round-ups to the next
   * power (the double nearest 1e-14 is below it); powers of two cross the
   * ends of the fast path's range. */
  pe__tally_t t = {"edges", 0, 0, 0};
  char s[16];
  for (int y = -325; y <= 308; y++) {
    snprintf(s, sizeof s, "1e%d", y);
    pe__check_around(&t, strtod(s, NULL));
  }
  for (int q = -1074; q <= 1023; q++) {
    pe__check_around(&t, ldexp(1.0, q));
  }
  const double special[] = {0.0,
                            -0.0,
                            DBL_MIN,
                            DBL_MAX,
                            DBL_TRUE_MIN,
                            DBL_EPSILON,
                            NAN,
                            -NAN,
                            INFINITY,
                            -INFINITY,
                            0.1,
                            0.5,
                            2.5,
                            61837.63,
                            1e-22,
                            1.7e38,
                            9007199254740993.0};
  for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) {
    pe__check_around(&t, special[i]);
  }
  pe__report(&t);
  char buf[32];
  size_t pos = 0;
  pe__put_double(buf, sizeof buf, &pos, -0.0);
  PE_CHECK_INT(pos, 2);
  PE_CHECK(memcmp(buf, "-0", 2) == 0);
}

static void test_floor_log10_pow2(void) {
#if defined(__SIZEOF_INT128__)
  /* q * log10(2) is at least 4.5e-4 from an integer for 0 < |q| < 1100, so
   * the floor of the double product is exact here. */
  for (int q = -1074; q <= 1023; q++) {
    PE_CHECK_INT(pe__floor_log10_pow2(q), (int)floor(q * log10(2.0)));
  }
#endif
}

static void pe__check_i64(int64_t v) {
  char got[32], want[32];
  size_t pos = 0;
  pe__put_i64(got, sizeof got, &pos, v);
  got[pos] = '\0';
  snprintf(want, sizeof want, "%lld", (long long)v);
  PE_CHECK_STR(got, want);
}

static void test_i64_matches_snprintf(void) {
  const int64_t edges[] = {0,  1,   -1,        9,         10,        -10,
                           99, 100, INT64_MAX, INT64_MIN, -INT64_MAX};
  for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
    pe__check_i64(edges[i]);
  }
  for (int k = 0; k < 19; k++) {
    int64_t p = (int64_t)pe__ten_to(k);
    pe__check_i64(p - 1);
    pe__check_i64(p);
    pe__check_i64(-p);
    pe__check_i64(1 - p);
  }
  /* Every length: the shift spreads the magnitudes. */
  for (long i = pe__count(1000000); i > 0; i--) {
    pe__check_i64((int64_t)(pe__next() >> (pe__next() % 64)) *
                  (pe__next() & 1 ? -1 : 1));
  }
}

static void test_put_truncates_but_counts_the_full_length(void) {
  /* Past cap nothing is written, yet *pos grows by the full length, on the
   * fast path, the snprintf path and the integers alike. */
  char buf[32];
  memset(buf, '#', sizeof buf);
  size_t pos = 0;
  pe__put_double(buf, 5, &pos, 61837.63);
  PE_CHECK_INT(pos, strlen("61837.629999999997"));
  PE_CHECK(memcmp(buf, "61837#", 6) == 0);
  pe__put_i64(buf, 5, &pos, INT64_MIN);
  PE_CHECK_INT(pos, 18 + strlen("-9223372036854775808"));
  PE_CHECK(buf[5] == '#');

  memset(buf, '#', sizeof buf);
  pos = 3;
  pe__put_double(buf, 8, &pos, -1e300);
  PE_CHECK_INT(pos, 3 + strlen("-1.0000000000000001e+300"));
  PE_CHECK(memcmp(buf, "###-1.00#", 9) == 0);

  memset(buf, '#', sizeof buf);
  pos = 0;
  pe__put_i64(buf, 4, &pos, INT64_MIN);
  PE_CHECK_INT(pos, 20);
  PE_CHECK(memcmp(buf, "-922#", 5) == 0);

  /* cap 0 measures without a buffer. */
  pos = 0;
  pe__put_double(NULL, 0, &pos, 0.1);
  pe__put_i64(NULL, 0, &pos, -42);
  PE_CHECK_INT(pos, strlen("0.10000000000000001") + 3);
}

static void test_non_finite_spellings(void) {
  /* One spelling per output kind: "nan" in CSV and stream fields, null in
   * JSON, whatever the sign or kind of the value. */
  const double bad[] = {NAN, -NAN, INFINITY, -INFINITY};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char buf[16];
    size_t pos = 0;
    pe__put_double(buf, sizeof buf, &pos, bad[i]);
    buf[pos] = '\0';
    PE_CHECK_STR(buf, "nan");
    pos = 0;
    pe__put_json_double(buf, sizeof buf, &pos, bad[i]);
    buf[pos] = '\0';
    PE_CHECK_STR(buf, "null");
  }
  char buf[32];
  size_t pos = 0;
  pe__put_json_double(buf, sizeof buf, &pos, -0.25);
  buf[pos] = '\0';
  PE_CHECK_STR(buf, "-0.25");
}

PE_TEST_MAIN(PE_TEST(test_non_finite_spellings),
             PE_TEST(test_double_random_bit_patterns),
             PE_TEST(test_double_random_magnitudes),
             PE_TEST(test_double_prices), PE_TEST(test_double_integers),
             PE_TEST(test_double_dyadics), PE_TEST(test_double_exact_ties),
             PE_TEST(test_double_edges), PE_TEST(test_floor_log10_pow2),
             PE_TEST(test_i64_matches_snprintf),
             PE_TEST(test_put_truncates_but_counts_the_full_length))
