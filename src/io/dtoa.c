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

#if defined(__SSE2__) && defined(__x86_64__)
#include <emmintrin.h>
#define PE__DTOA_SSE2 1
#endif

#if !defined(__SIZEOF_INT128__)
#error "the shortest double formatting needs a 128-bit integer type"
#endif

__extension__ typedef unsigned __int128 pe__u128_t;

/* The text writer's steps, inlined into its loop (pe__dtoa_fields). */
#if defined(__GNUC__)
#define PE__INLINE static inline __attribute__((always_inline))
#else
#define PE__INLINE static inline
#endif

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

/* Schubfach's digits of v, finite and not zero: |v| = digits * 10^*exp10,
 * trailing zeros left on (pe__shortest_decimal takes them off, the text
 * writer finds them in its digits). Inlined into both. */
PE__INLINE uint64_t pe__schubfach(double v, int *exp10) {
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
  /* Both choices worked out and one picked without a branch (which of
   * them holds is as good as random): one digit fewer, as the multiple of
   * 10 times 10^(k + 1) inside R, written here as its 10 * ... * 10^k; or
   * the integer nearest v inside R, ties to even. */
  uint64_t sp = s / 10;
  int u_p = lower <= 40 * sp;
  int w_p = 40 * sp + 40 <= upper;
  int u_in = lower <= 4 * s;
  int w_in = 4 * s + 4 <= upper;
  uint64_t mid = 4 * s + 2;
  int up = (vb > mid) | ((vb == mid) & (int)(s & 1));
  uint64_t nearest = s + (uint64_t)(u_in != w_in ? w_in : up);
  uint64_t shorter = 10 * (sp + (uint64_t)w_p);
  *exp10 = k;
  return s >= 10 && u_p != w_p ? shorter : nearest;
}

pe__decimal_t pe__shortest_decimal(double v) {
  pe__decimal_t d;
  d.digits = pe__schubfach(v, &d.exp10);
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
static inline int pe__digit_count(uint64_t u) {
  int bits = 64 - __builtin_clzll(u);
  int t = (bits * 1233) >> 12;
  return t + (u >= pe__pow10_u64[t]);
}

#if PE__DTOA_SSE2
/* Four digits of each of the two 4-digit values in v2's halves (each
 * repeated in four lanes, times 4): divided by 10^3, 10^2, 10, 1 at once
 * with high products, then each lane less ten times the one before. */
PE__INLINE __m128i pe__4x4_digits(__m128i v2) {
  const __m128i div_powers = _mm_setr_epi16(8389, 5243, 13108, (short)0x8000,
                                            8389, 5243, 13108, (short)0x8000);
  const __m128i shift_powers =
      _mm_setr_epi16(1 << 7, 1 << 11, 1 << 13, (short)0x8000, 1 << 7, 1 << 11,
                     1 << 13, (short)0x8000);
  __m128i v4 = _mm_mulhi_epu16(_mm_mulhi_epu16(v2, div_powers), shift_powers);
  __m128i v6 = _mm_slli_epi64(_mm_mullo_epi16(v4, _mm_set1_epi16(10)), 16);
  return _mm_sub_epi16(v4, v6);
}
#endif

/* pe__8_digit_values of hi and of lo (each below 10^8). With SSE2 both in
 * one vector (W. Mula's method): / and % 10^4 in the two 64-bit lanes,
 * then the four 4-digit values in sixteen 16-bit lanes. */
PE__INLINE void pe__16_digit_values(uint32_t hi, uint32_t lo, uint64_t *a,
                                    uint64_t *b) {
#if PE__DTOA_SSE2
  __m128i x = _mm_set_epi64x((long long)lo, (long long)hi);
  __m128i q =
      _mm_srli_epi64(_mm_mul_epu32(x, _mm_set1_epi32((int)0xd1b71759)), 45);
  __m128i r = _mm_sub_epi32(x, _mm_mul_epu32(q, _mm_set1_epi32(10000)));
  /* 16-bit lanes: hi / 10^4, hi % 10^4, 0, 0, lo / 10^4, lo % 10^4, 0, 0 */
  __m128i v1a = _mm_slli_epi64(_mm_or_si128(q, _mm_slli_epi64(r, 16)), 2);
  __m128i h = _mm_unpacklo_epi16(v1a, v1a);
  __m128i l = _mm_unpackhi_epi16(v1a, v1a);
  __m128i packed = _mm_packus_epi16(pe__4x4_digits(_mm_unpacklo_epi32(h, h)),
                                    pe__4x4_digits(_mm_unpacklo_epi32(l, l)));
  *a = (uint64_t)_mm_cvtsi128_si64(packed);
  *b = (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(packed, packed));
#else
  *a = pe__8_digit_values(hi);
  *b = pe__8_digit_values(lo);
#endif
}

/* 16 bytes of text at dst: the low 16 bytes of t, its lowest byte first. */
static inline void pe__store16(char *dst, pe__u128_t t) {
  uint64_t lo = (uint64_t)t;
  uint64_t hi = (uint64_t)(t >> 64);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  lo = __builtin_bswap64(lo);
  hi = __builtin_bswap64(hi);
#endif
  memcpy(dst, &lo, 8);
  memcpy(dst + 8, &hi, 8);
}

/* The layout of dtoa.h for |v| = digits * 10^exp10 (0 < digits < 10^17,
 * trailing zeros allowed) at p; returns the end of the text. The digits
 * are scaled to exactly 17, so the first is always the first byte: one
 * byte and two words of eight (pe__8_digit_values) held in registers,
 * where the trailing zeros are counted and the point is put in by
 * shifting, and stored whole, at fixed sizes: bytes past the text, up to
 * PE__DTOA_ROOM from where the sign would be, are overwritten. */
PE__INLINE char *pe__put_decimal(char *p, uint64_t digits, int exp10) {
  int n0 = pe__digit_count(digits);
  int x = exp10 + n0 - 1; /* the power of ten of the first digit */
  uint64_t d = digits * pe__pow10_u64[17 - n0];
  uint64_t top = d / 10000000000000000ull; /* 1 to 9 */
  uint64_t rest = d - top * 10000000000000000ull;
  uint32_t mid = (uint32_t)(rest / 100000000u);
  uint32_t low = (uint32_t)(rest - (uint64_t)mid * 100000000u);
  uint64_t a; /* digits 2 to 9 */
  uint64_t b; /* digits 10 to 17 */
  pe__16_digit_values(mid, low, &a, &b);
  /* The last digit that is not zero: a word's last digit is its top byte. */
  int n = b != 0   ? 17 - (__builtin_clzll(b) >> 3)
          : a != 0 ? 9 - (__builtin_clzll(a) >> 3)
                   : 1;
  const uint64_t zeros = 0x3030303030303030ull;
  /* Digits 2 to 17 as text, the second digit in the lowest byte. */
  pe__u128_t tail = ((pe__u128_t)(b | zeros) << 64) | (a | zeros);
  char first = (char)('0' + top);
  if (x >= 0 && x < 16) {
    int ni = x + 1; /* digits before the point, 1 to 16 */
    p[0] = first;
    pe__store16(p + 1, tail);
    if (n <= ni) {
      return p + ni; /* an integer: the zeros past digit n are stored */
    }
    /* The fraction, digits ni + 1 on, one byte to the right behind '.'. */
    p[ni] = '.';
    pe__store16(p + ni + 1, tail >> (8 * (ni - 1)));
    return p + n + 1;
  }
  if (x < 0 && x >= -4) {
    memcpy(p, "0.000000", 8);
    p += 1 - x;
    p[0] = first;
    pe__store16(p + 1, tail);
    return p + n;
  }
  /* Scientific: d[.ddd]e[+-]XX. */
  p[0] = first;
  p[1] = '.';
  pe__store16(p + 2, tail);
  p += n > 1 ? n + 1 : 1;
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

/* The text of dtoa.h for v, finite, at out; returns its end. The forms
 * cheaper than Schubfach first: zeros; integers below 10^16 (their gap to
 * the next double is at most 2, so no decimal with fewer significant
 * digits reads back as them); and decimals of at most 8 places below 10^7
 * (prices, sizes), tried by rounding v * 10^8 to an integer r and checking
 * that r / 10^8, correctly rounded as strtod rounds it, is v again: r has
 * at most 15 digits, and no two decimals of 15 significant digits or
 * fewer read back as the same double, so r is the shortest, and the only
 * one of its length. */
PE__INLINE char *pe__put_finite(char *out, double v) {
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  /* The sign without a branch: a feature's sign is as good as random. */
  *out = '-';
  char *p = out + (bits >> 63);
  if ((bits << 1) == 0) {
    *p = '0';
    return p + 1;
  }
  double a = fabs(v);
  /* Signed conversions (below 2^63 here): one instruction each. */
  if (a < 1e16 && a == (double)(int64_t)a) {
    return pe__put_decimal(p, (uint64_t)(int64_t)a, 0);
  }
  if (a < 1e7) {
    int64_t r = (int64_t)(a * 1e8 + 0.5);
    if ((double)r / 1e8 == a) {
      return pe__put_decimal(p, (uint64_t)r, -8);
    }
  }
  int exp10;
  uint64_t digits = pe__schubfach(v, &exp10);
  return pe__put_decimal(p, digits, exp10);
}

size_t pe__dtoa_shortest(char *out, double v) {
  return (size_t)(pe__put_finite(out, v) - out);
}

PE__INLINE char *pe__put_any(char *out, double v) {
  if (!isfinite(v)) {
    memcpy(out, "nan", 3);
    return out + 3;
  }
  return pe__put_finite(out, v);
}

char *pe__dtoa_put(char *out, double v) { return pe__put_any(out, v); }

char *pe__dtoa_fields(char *out, const double *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    *out++ = ',';
    out = pe__put_any(out, v[i]);
  }
  return out;
}
