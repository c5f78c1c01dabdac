/* Text formatting (src/io/textfmt.c, src/io/dtoa.c): pe__put_double prints
 * the shortest decimal that reads back as the same double. Over more than
 * ten million doubles of several kinds (random bits, magnitudes, prices,
 * integers, dyadic fractions, ties at the 17th digit, subnormals, powers of
 * ten and two with their neighbours, the extremes), each output is checked
 * against the C library: strtod gives the value back; with n significant
 * digits, no %.{n-1}e reads back as the value (nothing shorter does; %e
 * with n-1 decimals is the correctly rounded n-digit decimal, so checking
 * n-1 covers every shorter length); and when %.{n}e does read back, the
 * digits are its digits (the nearest n-digit decimal, glibc rounding the
 * exact binary value half to even). Also pe__put_i64 against "%lld", the
 * truncation contract of textfmt.h and the layout. test_textfmt_repr.py
 * checks the same function against Python's repr(float). */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dtoa.h"
#include "io/textfmt.h"
#include "pe_test.h"
#include "splitmix.h"

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

static uint64_t pe__next(void) { return pe_splitmix64(&pe__rng); }

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

/* Values checked and values that failed, per kind. */
typedef struct pe__tally {
  const char *kind;
  long values;
  long mismatches;
} pe__tally_t;

/* The significant digits of a decimal text (sign, point, leading zeros and
 * exponent left out) into dig; returns their count. */
static int pe__sig_digits(const char *s, char *dig) {
  int n = 0;
  int started = 0;
  for (; *s != '\0' && *s != 'e'; s++) {
    if (*s >= '1' && *s <= '9') {
      started = 1;
    }
    if (started && *s >= '0' && *s <= '9') {
      dig[n++] = *s;
    }
  }
  while (n > 0 && dig[n - 1] == '0') {
    n--; /* "100" is one significant digit */
  }
  dig[n] = '\0';
  return n;
}

static void pe__fail(pe__tally_t *t, double v, const char *got,
                     const char *why) {
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  if (t->mismatches++ < 10) {
    fprintf(stderr, "%s: bits 0x%016" PRIx64 " (%.17g): \"%s\" %s\n", t->kind,
            bits, v, got, why);
  }
  pe_test_failures++;
}

/* One value: round trip, no shorter decimal reads back, the nearest of its
 * length; every value that is not finite prints as "nan" (textfmt.h). */
static void pe__check_shortest(pe__tally_t *t, double v) {
  char got[48];
  size_t pos = 0;
  pe__put_double(got, sizeof got - 1, &pos, v);
  got[pos < sizeof got - 1 ? pos : sizeof got - 1] = '\0';
  t->values++;
  if (!isfinite(v)) {
    if (strcmp(got, "nan") != 0) {
      pe__fail(t, v, got, "is not nan");
    }
    return;
  }
  if (pos >= sizeof got - 1 || pos > PE__DTOA_MAX) {
    pe__fail(t, v, got, "is too long");
    return;
  }
  double back = strtod(got, NULL);
  if (memcmp(&back, &v, sizeof v) != 0) {
    pe__fail(t, v, got, "does not read back as the value");
    return;
  }
  if (v == 0) {
    if (strcmp(got, signbit(v) ? "-0" : "0") != 0) {
      pe__fail(t, v, got, "is not 0 or -0");
    }
    return;
  }
  char dig[32], ref[400], ref_dig[400];
  int n = pe__sig_digits(got, dig);
  if (n < 1 || n > 17) {
    pe__fail(t, v, got, "has no or too many digits");
    return;
  }
  if (n > 1) {
    snprintf(ref, sizeof ref, "%.*e", n - 2, v);
    if (strtod(ref, NULL) == v) {
      pe__fail(t, v, got, "is longer than a decimal that reads back");
    }
  }
  snprintf(ref, sizeof ref, "%.*e", n - 1, v);
  if (strtod(ref, NULL) == v) {
    pe__sig_digits(ref, ref_dig);
    if (strcmp(dig, ref_dig) != 0) {
      pe__fail(t, v, got, "is not the nearest decimal of its length");
    }
  }
}

static void pe__report(const pe__tally_t *t) {
  printf("  %-24s %9ld values, %ld mismatches\n", t->kind, t->values,
         t->mismatches);
}

static void test_double_random_bit_patterns(void) {
  /* Every exponent: subnormals, NaNs, infinities and huge values, which
   * mostly go to snprintf (and cost it microseconds each). */
  pe__tally_t t = {"random bits", 0, 0};
  for (long i = pe__count(1000000); i > 0; i--) {
    uint64_t bits = pe__next();
    double v;
    memcpy(&v, &bits, sizeof v);
    pe__check_shortest(&t, v);
  }
  pe__report(&t);
}

static void test_double_random_magnitudes(void) {
  pe__tally_t t = {"1e-8..1e18 any sign", 0, 0};
  for (long i = pe__count(2000000); i > 0; i--) {
    pe__check_shortest(&t,
                       pe__random_sign(pow(10.0, -8.0 + 26.0 * pe__unit())));
  }
  pe__report(&t);
}

static void test_double_prices(void) {
  /* Up to a million with 2 to 8 decimals, as exchanges quote them; the
   * divided result is the double a parser would make of the decimal. */
  pe__tally_t t = {"prices, 2-8 decimals", 0, 0};
  for (long i = pe__count(3000000); i > 0; i--) {
    double scale = (double)pe__ten_to(2 + (int)(pe__next() % 7));
    double x = pe__unit() * (double)pe__ten_to((int)(pe__next() % 7));
    pe__check_shortest(&t, round(x * scale) / scale);
  }
  pe__report(&t);
}

static void test_double_integers(void) {
  pe__tally_t t = {"integers to 2^60", 0, 0};
  for (long i = pe__count(2000000); i > 0; i--) {
    uint64_t n = pe__next() >> (4 + pe__next() % 60);
    pe__check_shortest(&t, pe__random_sign((double)n));
  }
  pe__report(&t);
}

static void test_double_dyadics(void) {
  /* m / 2^j has a short exact decimal expansion: many end in a 5 right at
   * the 17th digit, and many in zeros that %g drops. */
  pe__tally_t t = {"dyadic m/2^j", 0, 0};
  for (long i = pe__count(2000000); i > 0; i--) {
    uint64_t m = pe__next() >> (11 + pe__next() % 53);
    int j = (int)(pe__next() % 64);
    pe__check_shortest(&t, pe__random_sign(ldexp((double)m, -j)));
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
  pe__tally_t t = {"ties at the 17th digit", 0, 0};
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
    pe__check_shortest(&t, pe__random_sign(v));
  }
  pe__report(&t);
}

/* v and its 3 neighbours on each side, in both signs. */
static void pe__check_around(pe__tally_t *t, double v) {
  double up = v, down = v;
  pe__check_shortest(t, v);
  pe__check_shortest(t, -v);
  for (int i = 0; i < 3; i++) {
    up = nextafter(up, INFINITY);
    down = nextafter(down, -INFINITY);
    pe__check_shortest(t, up);
    pe__check_shortest(t, -up);
    pe__check_shortest(t, down);
    pe__check_shortest(t, -down);
  }
}

static void test_double_edges(void) {
  /* Powers of ten and their neighbours cross the switch between plain and
   * scientific layout (1e-5 / 1e-4, 1e15 / 1e16) and every decimal
   * exponent; powers of two have the narrower gap below them (the lower
   * end of the rounding interval is closer), down through the subnormals. */
  pe__tally_t t = {"edges", 0, 0};
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

static void pe__check_u64_put(uint64_t v) {
  char got[24], want[24];
  *pe__u64_put(got, v) = '\0';
  snprintf(want, sizeof want, "%" PRIu64, v);
  PE_CHECK_STR(got, want);
}

static void test_u64_put_matches_snprintf(void) {
  /* Below 10^8 two digits at a time, above in words of eight: each side
   * of 10^8 and 10^16, and UINT64_MAX's twenty digits. */
  pe__check_u64_put(0);
  pe__check_u64_put(UINT64_MAX);
  for (int k = 1; k < 20; k++) {
    uint64_t p = pe__ten_to(k);
    pe__check_u64_put(p - 1);
    pe__check_u64_put(p);
    pe__check_u64_put(p + 1);
  }
  pe__check_u64_put(10000000000000000000ull);
  for (long i = pe__count(1000000); i > 0; i--) {
    pe__check_u64_put(pe__next() >> (pe__next() % 64));
  }
}

/* One value through pe__dtoa_put into a buffer of canaries: the text is
 * pe__put_double's, at most PE__DTOA_MAX bytes, and nothing at or past
 * PE__DTOA_ROOM changes. */
static void pe__check_room(double v, long *bad) {
  char room[PE__DTOA_ROOM + 16];
  memset(room, '#', sizeof room);
  char *end = pe__dtoa_put(room, v);
  char want[64];
  size_t pos = 0;
  pe__put_double(want, sizeof want, &pos, v);
  size_t n = (size_t)(end - room);
  int ok = n == pos && n <= PE__DTOA_MAX && memcmp(room, want, n) == 0;
  for (size_t i = PE__DTOA_ROOM; i < sizeof room; i++) {
    ok = ok && room[i] == '#';
  }
  if (!ok && (*bad)++ < 10) {
    fprintf(stderr, "%.17g: %zu bytes, or past the room\n", v, n);
    pe_test_failures++;
  }
}

static void test_room_and_fields(void) {
  /* Every layout, both signs, each length: the longest texts write the
   * most scratch (17 digits with the point far right, scientific). */
  long bad = 0;
  const double fixed[] = {-1234567890123456.7,
                          -123456789012345.67,
                          -0.00012345678901234568,
                          -1.7976931348623157e+308,
                          -2.2250738585072014e-308,
                          -5e-324,
                          -9007199254740993.0,
                          0.0,
                          -0.0,
                          NAN,
                          -INFINITY,
                          1e15,
                          1e16,
                          490.96};
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
    pe__check_room(fixed[i], &bad);
  }
  for (long i = pe__count(400000); i > 0; i--) {
    uint64_t bits = pe__next();
    double v;
    memcpy(&v, &bits, sizeof v);
    pe__check_room(v, &bad);
    pe__check_room(pe__random_sign(pow(10.0, -6.0 + 24.0 * pe__unit())), &bad);
    pe__check_room(pe__random_sign(round(pe__unit() * 1e9) / 1e4), &bad);
  }
  /* The fields of a row: ",v" each, the same text. */
  double row[64];
  char got[64 * (1 + PE__DTOA_MAX) + PE__DTOA_ROOM];
  char want[sizeof got];
  for (int r = 0; r < 1000; r++) {
    for (size_t i = 0; i < 64; i++) {
      row[i] = i % 3 == 0   ? round(pe__unit() * 1e7) / 1e2
               : i % 3 == 1 ? pe__random_sign(pe__unit() * 1e3)
                            : (double)(int64_t)(pe__next() % 1000000);
    }
    row[r % 64] = r % 2 ? NAN : 0.0;
    size_t n = (size_t)(pe__dtoa_fields(got, row, 64) - got);
    size_t pos = 0;
    for (size_t i = 0; i < 64; i++) {
      pe__put_char(want, sizeof want, &pos, ',');
      pe__put_double(want, sizeof want, &pos, row[i]);
    }
    PE_CHECK_INT(n, pos);
    PE_CHECK(memcmp(got, want, pos) == 0);
  }
}

static void test_put_truncates_but_counts_the_full_length(void) {
  /* Past cap nothing is written, yet *pos grows by the full length, on the
   * doubles and the integers alike. */
  char buf[32];
  memset(buf, '#', sizeof buf);
  size_t pos = 0;
  pe__put_double(buf, 5, &pos, 61837.63);
  PE_CHECK_INT(pos, strlen("61837.63"));
  PE_CHECK(memcmp(buf, "61837#", 6) == 0);
  pe__put_i64(buf, 5, &pos, INT64_MIN);
  PE_CHECK_INT(pos, 8 + strlen("-9223372036854775808"));
  PE_CHECK(buf[5] == '#');

  memset(buf, '#', sizeof buf);
  pos = 3;
  pe__put_double(buf, 8, &pos, -1e300);
  PE_CHECK_INT(pos, 3 + strlen("-1e+300"));
  PE_CHECK(memcmp(buf, "###-1e+3#", 9) == 0);

  memset(buf, '#', sizeof buf);
  pos = 0;
  pe__put_i64(buf, 4, &pos, INT64_MIN);
  PE_CHECK_INT(pos, 20);
  PE_CHECK(memcmp(buf, "-922#", 5) == 0);

  /* cap 0 measures without a buffer. */
  pos = 0;
  pe__put_double(NULL, 0, &pos, 0.1);
  pe__put_i64(NULL, 0, &pos, -42);
  PE_CHECK_INT(pos, strlen("0.1") + 3);
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

static void pe__check_layout(double v, const char *want) {
  char buf[PE__DTOA_MAX + 1];
  size_t pos = 0;
  pe__put_double(buf, sizeof buf, &pos, v);
  buf[pos < sizeof buf ? pos : sizeof buf - 1] = '\0';
  PE_CHECK_STR(buf, want);
}

static void test_layout(void) {
  /* Plain for a first digit from 10^-4 to 10^15, as Python's repr, without
   * its ".0"; scientific outside, with a sign and two exponent digits. */
  pe__check_layout(490.96, "490.96");
  pe__check_layout(-61837.63, "-61837.63");
  pe__check_layout(0.1, "0.1");
  pe__check_layout(100.0, "100");
  pe__check_layout(0.0001, "0.0001");
  pe__check_layout(0.00012345, "0.00012345");
  pe__check_layout(1e-05, "1e-05");
  pe__check_layout(-1.5e-05, "-1.5e-05");
  pe__check_layout(1e15, "1000000000000000");
  pe__check_layout(1234567890123456.0, "1234567890123456");
  pe__check_layout(1e16, "1e+16");
  pe__check_layout(12345678901234568.0, "1.2345678901234568e+16");
  pe__check_layout(9007199254740993.0, "9007199254740992");
  pe__check_layout(1e100, "1e+100");
  pe__check_layout(1e-100, "1e-100");
  pe__check_layout(DBL_MAX, "1.7976931348623157e+308");
  pe__check_layout(DBL_MIN, "2.2250738585072014e-308");
  pe__check_layout(DBL_TRUE_MIN, "5e-324");
  pe__check_layout(3 * DBL_TRUE_MIN, "1.5e-323");
  pe__check_layout(1.0 / 3.0, "0.3333333333333333");
  pe__check_layout(2.0 / 3.0, "0.6666666666666666");
  pe__check_layout(0.1 + 0.2, "0.30000000000000004");
  pe__check_layout(0.0, "0");
  pe__check_layout(-0.0, "-0");
}

PE_TEST_MAIN(PE_TEST(test_layout), PE_TEST(test_non_finite_spellings),
             PE_TEST(test_double_random_bit_patterns),
             PE_TEST(test_double_random_magnitudes),
             PE_TEST(test_double_prices), PE_TEST(test_double_integers),
             PE_TEST(test_double_dyadics), PE_TEST(test_double_exact_ties),
             PE_TEST(test_double_edges), PE_TEST(test_i64_matches_snprintf),
             PE_TEST(test_u64_put_matches_snprintf),
             PE_TEST(test_room_and_fields),
             PE_TEST(test_put_truncates_but_counts_the_full_length))
