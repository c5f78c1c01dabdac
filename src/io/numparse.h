/* Fast paths of the number parsers, shared by parse.c and the CSV parser's
 * fused row parser (internal). Each handles the common form only and says
 * so by returning 1; on 0 the caller takes the general parser, which gives
 * the same result for every input both accept. */
#ifndef PE_IO_NUMPARSE_H
#define PE_IO_NUMPARSE_H

#include <stdint.h>
#include <string.h>

#include "pe/parse.h"

/* Powers of ten that doubles hold exactly. */
static const double pe__pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,
                                   1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
                                   1e18, 1e19, 1e20, 1e21, 1e22};

/* The common case of a short plain decimal ("61837.63000000"): at most 19
 * characters, so at most 19 digits, which a uint64 holds without checks.
 * Returns 1 with *out set when it applies and the result is exact-rounded;
 * 0 sends the input to the general parser. */
static inline int pe__parse_plain(const char *p, const char *end, double *out) {
  int neg = 0;
  if (p < end && (*p == '-' || *p == '+')) {
    neg = *p == '-';
    p++;
  }
  if (end - p > 19 || p == end) {
    return 0;
  }
  uint64_t mant = 0;
  int frac = -1; /* digits after the point, -1 before it */
  int digits = 0;
  for (; p < end; p++) {
    unsigned d = (unsigned)(unsigned char)*p - '0';
    if (d < 10) {
      mant = mant * 10 + d;
      digits++;
      frac += frac >= 0;
    } else if (*p == '.' && frac < 0) {
      frac = 0;
    } else {
      return 0;
    }
  }
  if (digits == 0 || mant > (1ull << 53) || frac > 22) {
    return 0;
  }
  double v = (double)mant;
  if (frac > 0) {
    v /= pe__pow10[frac];
  }
  *out = neg ? -v : v;
  return 1;
}

/* 1 when the 8 bytes of w are all ASCII digits. */
static inline int pe__eight_digits(uint64_t w) {
  return ((w + 0x4646464646464646ull) | (w - 0x3030303030303030ull)) &
                 0x8080808080808080ull
             ? 0
             : 1;
}

/* Value of 8 ASCII digits loaded little-endian (first digit in the low
 * byte), by pairwise combination: 4 multiplies instead of 8. */
static inline uint64_t pe__eight_digit_value(uint64_t w) {
  w -= 0x3030303030303030ull;
  w = (w * 10 + (w >> 8)) & 0x00FF00FF00FF00FFull;
  w = (w * 100 + (w >> 16)) & 0x0000FFFF0000FFFFull;
  return (w * 10000 + (w >> 32)) & 0xFFFFFFFFull;
}

/* ns per unit of an epoch number `whole`, the unit chosen by magnitude
 * when AUTO (see pe_ts_unit_t). */
static inline uint64_t pe__epoch_scale(uint64_t whole, pe_ts_unit_t unit) {
  if (unit == PE_TS_AUTO) {
    unit = whole < 100000000000ull         ? PE_TS_S
           : whole < 100000000000000ull    ? PE_TS_MS
           : whole < 100000000000000000ull ? PE_TS_US
                                           : PE_TS_NS;
  }
  switch (unit) {
  case PE_TS_S:
    return 1000000000u;
  case PE_TS_MS:
    return 1000000u;
  case PE_TS_US:
    return 1000u;
  default:
    return 1u;
  }
}

/* An unsigned integer epoch timestamp of 1 to 19 digits, nothing else. */
static inline int pe__parse_epoch_int(const char *p, const char *end,
                                      pe_ts_unit_t unit, int64_t *ts_ns) {
  size_t n = (size_t)(end - p);
  if (n == 0 || n > 19) {
    return 0;
  }
  uint64_t whole = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  while (end - p >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    if (!pe__eight_digits(w)) {
      return 0;
    }
    whole = whole * 100000000u + pe__eight_digit_value(w);
    p += 8;
  }
#endif
  for (; p < end; p++) {
    unsigned d = (unsigned)(unsigned char)*p - '0';
    if (d >= 10) {
      return 0;
    }
    whole = whole * 10 + d;
  }
  uint64_t scale = pe__epoch_scale(whole, unit);
  if (whole > (uint64_t)INT64_MAX / scale) {
    return 0;
  }
  *ts_ns = (int64_t)(whole * scale);
  return 1;
}

#endif
