/* Shortest round-trip doubles with Schubfach (see dtoa.h).
 *
 * A double v = c * 2^q has the rounding interval R of the reals that read
 * back as v: halfway to each neighbour, the ends included when c is even
 * (strtod's ties go to even). Schubfach picks k so that R, scaled by
 * 10^-k, is between 1 and 10 units wide, so it holds at most one multiple
 * of 10 and at least one integer. It computes c * 2^q * 10^-k and both ends
 * of R in quarter units, rounded to odd (the last bit says "inexact") with
 * one 64 x 128-bit product each against a table of 10^-k over-estimated by
 * under one part in 2^127; the paper proves that precision enough for every
 * double. Then: a multiple of 10 inside R gives one digit fewer; otherwise
 * the integer nearest v among the one or two inside R, ties to even. */
#include "io/dtoa.h"

#include <math.h>
#include <string.h>

#include "core/digits.h"
#include "io/pow10_table.h"

#if !defined(__SIZEOF_INT128__)
#error "the shortest double formatting needs a 128-bit integer type"
#endif

__extension__ typedef unsigned __int128 pe__u128_t;

/* floor(x / 2^s), x negative included: GCC and Clang shift signed integers
 * arithmetically. */
static int pe__floor_shift(int x, int s) { return x >> s; }

/* floor(log10(2^q)), or floor(log10(3/4 * 2^q)) with three_quarters, for q
 * in [-1074, 971]; floor(log2(10^e)) for e in [-292, 324]. The generator
 * script checks these constants over those ranges exactly. */
static int pe__floor_log10_pow2(int q, int three_quarters) {
  return pe__floor_shift(q * 1262611 - (three_quarters ? 524031 : 0), 22);
}

static int pe__floor_log2_pow10(int e) {
  return pe__floor_shift(e * 1741647, 19);
}

/* floor(g * cp / 2^128) with its last bit set when the part dropped is not
 * (as good as) zero: g's high and low words times cp, in two products. */
static uint64_t pe__round_to_odd(const uint64_t g[2], uint64_t cp) {
  pe__u128_t x = (pe__u128_t)g[1] * cp;
  pe__u128_t y = (pe__u128_t)g[0] * cp + (uint64_t)(x >> 64);
  uint64_t y1 = (uint64_t)(y >> 64);
  uint64_t y0 = (uint64_t)y;
  return y1 | (uint64_t)(y0 > 1);
}

pe__decimal_t pe__shortest_decimal(double v) {
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  uint64_t frac = bits & ((1ull << 52) - 1);
  int biased = (int)((bits >> 52) & 0x7ff);
  uint64_t c;
  int q;
  if (biased != 0) {
    c = frac | (1ull << 52);
    q = biased - 1075;
  } else {
    c = frac;
    q = -1074;
  }
  /* At a power of two (not the least normal) the gap below is half the gap
   * above, and R with it. */
  int closer = frac == 0 && biased > 1;
  uint64_t out = c & 1; /* odd: the ends of R are not in it */
  uint64_t cbl = 4 * c - 2 + (uint64_t)closer;
  uint64_t cb = 4 * c;
  uint64_t cbr = 4 * c + 2;
  int k = pe__floor_log10_pow2(q, closer);
  int h = q + pe__floor_log2_pow10(-k) + 1; /* 1 to 4 */
  const uint64_t *g = pe__pow10_128[-k - PE__POW10_MIN];
  uint64_t vbl = pe__round_to_odd(g, cbl << h);
  uint64_t vb = pe__round_to_odd(g, cb << h);
  uint64_t vbr = pe__round_to_odd(g, cbr << h);
  uint64_t lower = vbl + out;
  uint64_t upper = vbr - out;
  uint64_t s = vb / 4;
  pe__decimal_t d;
  if (s >= 10) {
    uint64_t sp = s / 10;
    int u_in = lower <= 40 * sp;
    int w_in = 40 * sp + 40 <= upper;
    if (u_in != w_in) {
      d.digits = sp + (uint64_t)w_in;
      d.exp10 = k + 1;
      goto trim;
    }
  }
  {
    int u_in = lower <= 4 * s;
    int w_in = 4 * s + 4 <= upper;
    if (u_in != w_in) {
      d.digits = s + (uint64_t)w_in;
    } else {
      uint64_t mid = 4 * s + 2;
      d.digits = s + (uint64_t)(vb > mid || (vb == mid && (s & 1)));
    }
    d.exp10 = k;
  }
trim:
  /* Trailing zeros off, eight, four, two and one at a time: a short
   * decimal such as 564.58 comes out as 564580000000000 * 10^-12. */
  while (d.digits % 100000000u == 0) {
    d.digits /= 100000000u;
    d.exp10 += 8;
  }
  if (d.digits % 10000u == 0) {
    d.digits /= 10000u;
    d.exp10 += 4;
  }
  if (d.digits % 100u == 0) {
    d.digits /= 100u;
    d.exp10 += 2;
  }
  if (d.digits % 10u == 0) {
    d.digits /= 10u;
    d.exp10 += 1;
  }
  return d;
}

/* Exactly 8 digits of v < 10^8, leading zeros included. */
static inline void pe__8_digits(char *out, uint32_t v) {
  uint32_t hi = v / 10000u;
  uint32_t lo = v % 10000u;
  memcpy(out, pe__digit_pairs + 2 * (hi / 100u), 2);
  memcpy(out + 2, pe__digit_pairs + 2 * (hi % 100u), 2);
  memcpy(out + 4, pe__digit_pairs + 2 * (lo / 100u), 2);
  memcpy(out + 6, pe__digit_pairs + 2 * (lo % 100u), 2);
}

static const uint64_t pe__pow10_u64[18] = {1ull,
                                           10ull,
                                           100ull,
                                           1000ull,
                                           10000ull,
                                           100000ull,
                                           1000000ull,
                                           10000000ull,
                                           100000000ull,
                                           1000000000ull,
                                           10000000000ull,
                                           100000000000ull,
                                           1000000000000ull,
                                           10000000000000ull,
                                           100000000000000ull,
                                           1000000000000000ull,
                                           10000000000000000ull,
                                           100000000000000000ull};

/* The number of decimal digits of 0 < u < 10^17: log10 from the bit
 * length (1233 / 4096 ~ log10(2)), corrected by one comparison. */
static int pe__digit_count(uint64_t u) {
  int bits = 64 - __builtin_clzll(u);
  int t = (bits * 1233) >> 12;
  return t + (u >= pe__pow10_u64[t]);
}

/* The scientific form d[.ddd]e[+-]XX of the n digits at s. */
static char *pe__scientific(char *p, const char *s, int n, int x) {
  *p++ = s[0];
  if (n > 1) {
    *p++ = '.';
    memcpy(p, s + 1, (size_t)(n - 1));
    p += n - 1;
  }
  *p++ = 'e';
  *p++ = x < 0 ? '-' : '+';
  unsigned ax = (unsigned)(x < 0 ? -x : x);
  if (ax >= 100) {
    *p++ = (char)('0' + ax / 100);
    ax %= 100;
  }
  memcpy(p, pe__digit_pairs + 2 * ax, 2);
  return p + 2;
}

/* The layout of dtoa.h for |v| = digits * 10^exp10 at p; returns the end. */
static char *pe__layout(char *p, uint64_t digits, int exp10) {
  int n = pe__digit_count(digits);
  /* 17 digits, leading zeros included; s points at the first of n. */
  char dig[17];
  uint64_t rest = digits % 10000000000000000ull;
  dig[0] = (char)('0' + digits / 10000000000000000ull);
  pe__8_digits(dig + 1, (uint32_t)(rest / 100000000u));
  pe__8_digits(dig + 9, (uint32_t)(rest % 100000000u));
  const char *s = dig + 17 - n;
  int x = exp10 + n - 1; /* the power of ten of the first digit */
  if (x < -4 || x >= 16) {
    return pe__scientific(p, s, n, x);
  }
  if (x < 0) {
    memcpy(p, "0.0000", 6);
    p += 1 - x;
    memcpy(p, s, (size_t)n);
    return p + n;
  }
  int ni = x + 1; /* digits before the point, 1 to 16 */
  if (n <= ni) {
    memcpy(p, s, (size_t)n);
    memset(p + n, '0', (size_t)(ni - n));
    return p + ni;
  }
  memcpy(p, s, (size_t)ni);
  p += ni;
  *p++ = '.';
  memcpy(p, s + ni, (size_t)(n - ni));
  return p + n - ni;
}

size_t pe__dtoa_shortest(char *out, double v) {
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  char *p = out;
  if (bits >> 63) {
    *p++ = '-';
  }
  if ((bits << 1) == 0) {
    *p++ = '0';
    return (size_t)(p - out);
  }
  double a = fabs(v);
  if (a < 1e16 && a == (double)(uint64_t)a) {
    /* An integer below 10^16: its gap to the next double is at most 2, so
     * no decimal with fewer significant digits reads back as it; printed
     * as the integer it is. */
    return (size_t)(pe__u64_put(p, (uint64_t)a) - out);
  }
  pe__decimal_t d = pe__shortest_decimal(v);
  return (size_t)(pe__layout(p, d.digits, d.exp10) - out);
}
