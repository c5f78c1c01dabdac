/* Text formatting helpers (see textfmt.h). */
#include "io/textfmt.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/digits.h"

static void pe__put_mem(char *buf, size_t cap, size_t *pos, const char *s,
                        size_t n) {
  if (*pos < cap) {
    size_t room = cap - *pos;
    memcpy(buf + *pos, s, n < room ? n : room);
  }
  *pos += n;
}

void pe__put_str(char *buf, size_t cap, size_t *pos, const char *s) {
  pe__put_mem(buf, cap, pos, s, strlen(s));
}

void pe__put_char(char *buf, size_t cap, size_t *pos, char c) {
  pe__put_mem(buf, cap, pos, &c, 1);
}

#if defined(__SIZEOF_INT128__)
/* The fast path of %.17g, for the writers' hot path: glibc's snprintf takes
 * some 350 ns a double, this some 35. glibc prints the exact binary value
 * rounded to 17 significant digits (half to even: the default rounding mode,
 * which this program never changes). So does this code, in exact integer
 * arithmetic: v = m * 2^e is scaled by 10^k into a 17-digit integer D with
 * 192-bit products, so the rounding sees the exact remainder. It takes normal
 * doubles from about 1e-22 to 1.7e38; the rest go to snprintf. */
__extension__ typedef unsigned __int128 pe__u128_t;

static const uint64_t pe__pow10[20] = {1ull,
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
                                       100000000000000000ull,
                                       1000000000000000000ull,
                                       10000000000000000000ull};

/* 10^k for k in [0, 38]: exact, as 10^38 < 2^127. */
static pe__u128_t pe__pow10_wide(int k) {
  if (k < 20) {
    return pe__pow10[k];
  }
  return (pe__u128_t)pe__pow10[19] * pe__pow10[k - 19];
}

/* q plus one when the discarded part calls for it: above when it is more than
 * one half, half when it is exactly one half (then to the even neighbour). */
static uint64_t pe__round_even(pe__u128_t q, int half, int above) {
  uint64_t d = (uint64_t)q;
  return d + (uint64_t)(above || (half && (d & 1)));
}

/* round(m * 10^k / 2^s), for m < 2^53, k in [0, 38], s in [1, 190]. The
 * product has up to 180 bits: hi holds bits 64 and up, lo the low 64. */
static uint64_t pe__scale_down(uint64_t m, int k, int s) {
  /* 10^k = 10^19 * 10^(k - 19) past 10^19, which is the last that fits in
   * 64 bits; m * 10^19 still fits in 128. */
  pe__u128_t x = m;
  int ky = k;
  if (k >= 20) {
    x *= pe__pow10[19];
    ky = k - 19;
  }
  uint64_t y = pe__pow10[ky];
  pe__u128_t low = (pe__u128_t)(uint64_t)x * y;
  pe__u128_t hi = (low >> 64) + (x >> 64) * y;
  uint64_t lo = (uint64_t)low;
  /* Shift by s - 1 first: the last bit kept is then the half bit. */
  int t = s - 1;
  pe__u128_t q;
  int sticky;
  if (t >= 64) {
    q = hi >> (t - 64);
    sticky = lo != 0 || (hi & (((pe__u128_t)1 << (t - 64)) - 1)) != 0;
  } else {
    /* The caller keeps D below 10^18, so q < 2^61 and the bits of hi
     * shifted out of 128 are zero anyway. */
    q = (hi << (64 - t)) | (lo >> t);
    sticky = (lo & ((1ull << t) - 1)) != 0;
  }
  int half = (int)(q & 1);
  return pe__round_even(q >> 1, half && !sticky, half && sticky);
}

/* round((m << e) * 10^k), for m < 2^53, e in [0, 74], k in [-22, 1] (with
 * e >= 0, v >= 2^52 and so X >= 15). Exact ties cannot happen here (v would
 * need more than 53 significant bits), but the rule costs nothing. */
static uint64_t pe__scale_int(uint64_t m, int e, int k) {
  pe__u128_t v = (pe__u128_t)m << e;
  if (k >= 0) {
    return (uint64_t)(v * pe__pow10[k]);
  }
  pe__u128_t p = pe__pow10_wide(-k);
  pe__u128_t q = v / p;
  pe__u128_t r = v - q * p;
  return pe__round_even(q, r == p / 2, r > p / 2);
}

/* floor(q * log10(2)): 78913 / 2^18 is exact enough for |q| <= 1650, and
 * q * log10(2) is never an integer for q != 0, which gives q < 0. */
static int pe__floor_log10_pow2(int q) {
  if (q >= 0) {
    return (int)(((uint32_t)q * 78913u) >> 18);
  }
  return -(int)(((uint32_t)-q * 78913u) >> 18) - 1;
}

/* The 17 significant digits of |v| = m * 2^e (m < 2^53) as an integer in
 * [10^16, 10^17), and in *x the decimal exponent of the first one; 0 when v
 * is outside the exact range. */
static uint64_t pe__g17_digits(uint64_t m, int e, int *x) {
  /* X starts at or below the exponent of v (at most one below): raising it
   * until D < 10^17 also handles 9.99...95 rounding up to 10.0. */
  int ex = pe__floor_log10_pow2(e + 52);
  if (ex < -22 || e > 74) {
    return 0;
  }
  uint64_t d;
  for (;;) {
    int k = 16 - ex;
    d = e < 0 ? pe__scale_down(m, k, -e) : pe__scale_int(m, e, k);
    if (d < pe__pow10[17]) {
      break;
    }
    ex++;
  }
  *x = ex;
  return d;
}

/* Exactly 8 digits of v < 10^8, leading zeros included. */
static void pe__8_digits(char *out, uint32_t v) {
  for (int i = 6; i >= 0; i -= 2) {
    memcpy(out + i, pe__digit_pairs + 2 * (v % 100), 2);
    v /= 100;
  }
}

/* Appends the digits dig[0..n) in C's %g layout for decimal exponent x and
 * precision 17 (trailing zeros already dropped); returns the end. */
static char *pe__g17_layout(char *out, const char *dig, int n, int x) {
  if (x >= -4 && x < 17) {
    if (x < 0) {
      memcpy(out, "0.0000", (size_t)(1 - x));
      out += 1 - x;
      memcpy(out, dig, (size_t)n);
      return out + n;
    }
    int ni = x + 1;
    memcpy(out, dig, (size_t)ni);
    out += ni;
    if (n > ni) {
      *out++ = '.';
      memcpy(out, dig + ni, (size_t)(n - ni));
      out += n - ni;
    }
    return out;
  }
  *out++ = dig[0];
  if (n > 1) {
    *out++ = '.';
    memcpy(out, dig + 1, (size_t)(n - 1));
    out += n - 1;
  }
  *out++ = 'e';
  *out++ = x < 0 ? '-' : '+';
  unsigned ax = (unsigned)(x < 0 ? -x : x);
  if (ax >= 100) {
    *out++ = (char)('0' + ax / 100);
    ax %= 100;
  }
  memcpy(out, pe__digit_pairs + 2 * ax, 2);
  return out + 2;
}

/* %.17g of v into out (32 bytes), returning the length, or 0 when v is not
 * one the fast path handles (NaN, infinities, subnormals, out of range). */
static size_t pe__g17_fast(char *out, double v) {
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  char *p = out;
  if (bits >> 63) {
    *p++ = '-';
  }
  int biased = (int)((bits >> 52) & 0x7ff);
  uint64_t frac = bits & ((1ull << 52) - 1);
  if (biased == 0 && frac == 0) {
    *p++ = '0';
    return (size_t)(p - out);
  }
  int x;
  uint64_t d = 0;
  if (biased != 0 && biased != 0x7ff) {
    d = pe__g17_digits(frac | (1ull << 52), biased - 1075, &x);
  }
  if (d == 0) {
    return 0;
  }
  /* 10^16 <= d < 10^17: a lead digit and two blocks of 8 that convert in
   * parallel, in 32-bit arithmetic. */
  char dig[17];
  uint64_t rest = d % pe__pow10[16];
  dig[0] = (char)('0' + d / pe__pow10[16]);
  pe__8_digits(dig + 1, (uint32_t)(rest / pe__pow10[8]));
  pe__8_digits(dig + 9, (uint32_t)(rest % pe__pow10[8]));
  int n = 17;
  while (dig[n - 1] == '0') {
    n--;
  }
  return (size_t)(pe__g17_layout(p, dig, n, x) - out);
}
#else
static size_t pe__g17_fast(char *out, double v) {
  (void)out;
  (void)v;
  return 0;
}
#endif

void pe__put_double(char *buf, size_t cap, size_t *pos, double v) {
  if (!isfinite(v)) {
    pe__put_str(buf, cap, pos, "nan");
    return;
  }
  char tmp[32];
  size_t n = pe__g17_fast(tmp, v);
  if (n == 0) {
    n = (size_t)snprintf(tmp, sizeof tmp, "%.17g", v);
  }
  pe__put_mem(buf, cap, pos, tmp, n);
}

void pe__put_json_double(char *buf, size_t cap, size_t *pos, double v) {
  if (!isfinite(v)) {
    pe__put_str(buf, cap, pos, "null");
    return;
  }
  pe__put_double(buf, cap, pos, v);
}

void pe__put_i64(char *buf, size_t cap, size_t *pos, int64_t v) {
  char tmp[24];
  char *end = tmp + sizeof tmp;
  /* The magnitude in unsigned arithmetic, where INT64_MIN's fits. */
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  char *p = pe__u64_digits(end, u);
  if (v < 0) {
    *--p = '-';
  }
  pe__put_mem(buf, cap, pos, p, (size_t)(end - p));
}

void pe__put_json_str(char *buf, size_t cap, size_t *pos, const char *s) {
  pe__put_char(buf, cap, pos, '"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      pe__put_char(buf, cap, pos, '\\');
      pe__put_char(buf, cap, pos, (char)*p);
    } else if (*p < 0x20) {
      char tmp[8];
      snprintf(tmp, sizeof tmp, "\\u%04x", *p);
      pe__put_str(buf, cap, pos, tmp);
    } else {
      pe__put_char(buf, cap, pos, (char)*p);
    }
  }
  pe__put_char(buf, cap, pos, '"');
}

void pe__put_csv_str(char *buf, size_t cap, size_t *pos, const char *s) {
  if (strpbrk(s, ",\"\r\n") == NULL) {
    pe__put_str(buf, cap, pos, s);
    return;
  }
  pe__put_char(buf, cap, pos, '"');
  for (const char *p = s; *p; p++) {
    if (*p == '"') {
      pe__put_char(buf, cap, pos, '"');
    }
    pe__put_char(buf, cap, pos, *p);
  }
  pe__put_char(buf, cap, pos, '"');
}
