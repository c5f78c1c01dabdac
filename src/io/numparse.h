/* Fast paths of the number parsers, shared by parse.c and the CSV parser's
 * fused row parser (internal). Each handles the common form only and says
 * so by returning 1; on 0 the caller takes the general parser, which gives
 * the same result for every input both accept.
 *
 * Two kinds: the pe__parse_* functions read only [p, end); the pe__wide_*
 * functions may also read up to 8 bytes past the end of their field, which
 * the caller guarantees are inside its buffer (the CSV parser's fused path
 * keeps PE__WIDE_SLACK readable bytes after every line it takes). */
#ifndef PE_IO_NUMPARSE_H
#define PE_IO_NUMPARSE_H

#include <stdint.h>
#include <string.h>

#include "pe/parse.h"

#if defined(__SSE2__) && defined(__x86_64__)
#include <emmintrin.h>
#define PE__SSE2_DIGITS 1
#endif

/* Bytes past the end of its field that a pe__wide_* function may read. */
#define PE__WIDE_SLACK 8

/* The fused row parser calls each pe__wide_* function twice a row, and GCC
 * otherwise keeps them out of line, where every call reloads the 64-bit
 * constants. */
#if defined(__GNUC__)
#define PE__HOT_INLINE static inline __attribute__((always_inline))
#else
#define PE__HOT_INLINE static inline
#endif

/* Powers of ten that doubles hold exactly. */
static const double pe__pow10[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The same as integers, up to 10^8. */
static const uint64_t pe__pow10_u64[] = {
    1u, 10u, 100u, 1000u, 10000u, 100000u, 1000000u, 10000000u, 100000000u};

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
  const char *start = p;
  uint64_t mant = 0;
  unsigned d;
  while (p < end && (d = (unsigned)(unsigned char)*p - '0') < 10) {
    mant = mant * 10 + d;
    p++;
  }
  size_t digits = (size_t)(p - start);
  size_t frac = 0;
  if (p < end) {
    if (*p != '.') {
      return 0;
    }
    const char *f = ++p;
    while (p < end && (d = (unsigned)(unsigned char)*p - '0') < 10) {
      mant = mant * 10 + d;
      p++;
    }
    if (p != end) {
      return 0;
    }
    frac = (size_t)(p - f);
    digits += frac;
  }
  if (digits == 0 || mant > (1ull << 53)) {
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

#if defined(__GNUC__)
#define PE__DIGITS_INLINE static inline __attribute__((always_inline))
#else
#define PE__DIGITS_INLINE static inline
#endif

/* Value of 8 digits, each already less '0', loaded little-endian (first
 * digit in the low byte): pairs, then two groups of four at once in the
 * two halves of a product (as in fast_float). Zero bytes in the low end
 * count as leading zeros. Forced inline: GCC otherwise keeps it out of line
 * in the parser's field loop, a call per price (2% of a replay's samples,
 * perf). */
PE__DIGITS_INLINE uint64_t pe__eight_digit_value_raw(uint64_t w) {
  w = w * 10 + (w >> 8); /* byte 2k: the pair of digits 2k, 2k + 1 */
  const uint64_t mask = 0x000000FF000000FFull;
  const uint64_t mul1 = 100u + (1000000ull << 32);
  const uint64_t mul2 = 1u + (10000ull << 32);
  return (((w & mask) * mul1 + ((w >> 16) & mask) * mul2) >> 32) &
         0xFFFFFFFFull;
}

/* Value of 8 ASCII digits loaded little-endian. */
static inline uint64_t pe__eight_digit_value(uint64_t w) {
  return pe__eight_digit_value_raw(w - 0x3030303030303030ull);
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
static inline uint64_t pe__load8(const char *p) {
  uint64_t w;
  memcpy(&w, p, 8);
  return w;
}

/* The bytes of the first n (0..8) characters of a word. A table: the
 * shift-and-compare form compiles to a branch on n == 8, which field
 * lengths of 7 and 8 mixed make mispredict. */
static const uint64_t pe__low_bytes_tab[9] = {
    0x0000000000000000ull, 0x00000000000000FFull, 0x000000000000FFFFull,
    0x0000000000FFFFFFull, 0x00000000FFFFFFFFull, 0x000000FFFFFFFFFFull,
    0x0000FFFFFFFFFFFFull, 0x00FFFFFFFFFFFFFFull, 0xFFFFFFFFFFFFFFFFull};

static inline uint64_t pe__low_bytes(size_t n) { return pe__low_bytes_tab[n]; }

/* High bit set in each byte of w from the first one that is not an ASCII
 * digit (bytes after it may be marked or not): carries and borrows only
 * move towards later bytes, so the lowest marked byte is exact. */
static inline uint64_t pe__nondigits(uint64_t w) {
  return ((w + 0x4646464646464646ull) | (w - 0x3030303030303030ull)) &
         0x8080808080808080ull;
}

/* Value of the first n (1..8) characters of w, which the caller has checked
 * are digits. Forced inline: GCC otherwise keeps it out of line, a call per
 * field of the fused row parser. */
PE__DIGITS_INLINE uint64_t pe__first_digits(uint64_t w, size_t n) {
  return pe__eight_digit_value_raw((w - 0x3030303030303030ull)
                                   << (8 * (8 - n)));
}

#if defined(PE__SSE2_DIGITS)
/* Value of the 16 ASCII digits at p (reads p[0, 16)), first digit most
 * significant; 0 when one of them is not a digit. SSE2 only (no pmaddubsw):
 * a 16-bit multiply by 0x0A01 leaves 10 a + b in the high byte of a lane
 * that holds digits a, b; then two pmaddwd steps make groups of four and
 * eight. */
static inline int pe__sixteen_digits(const char *p, uint64_t *out) {
  __m128i d = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)(const void *)p),
                           _mm_set1_epi8('0'));
  __m128i over = _mm_subs_epu8(d, _mm_set1_epi8(9)); /* 0 for a digit */
  if (_mm_movemask_epi8(_mm_cmpeq_epi8(over, _mm_setzero_si128())) != 0xFFFF) {
    return 0;
  }
  __m128i pairs = _mm_srli_epi16(_mm_mullo_epi16(d, _mm_set1_epi16(0x0A01)), 8);
  __m128i fours = _mm_madd_epi16(pairs, _mm_set1_epi32(100 + (1 << 16)));
  __m128i eights = _mm_madd_epi16(_mm_packs_epi32(fours, fours),
                                  _mm_set1_epi32(10000 + (1 << 16)));
  uint64_t both = (uint64_t)_mm_cvtsi128_si64(eights);
  *out = (both & 0xFFFFFFFFull) * 100000000u + (both >> 32);
  return 1;
}
#endif

/* An unsigned integer of exactly n (1..19) digits at p: the first 1 to 8,
 * then up to two words of 8 (written out: compilers keep a loop of at
 * most two rounds as a loop); with SSE2, 16 digits or more as a head of
 * 0 to 3 and one vector of 16. Reads up to PE__WIDE_SLACK bytes past
 * p + n. */
PE__HOT_INLINE int pe__wide_uint(const char *p, size_t n, uint64_t *out) {
  if (n == 0 || n > 19) {
    return 0;
  }
#if defined(PE__SSE2_DIGITS)
  if (n >= 16) {
    size_t head = n - 16;
    uint64_t v = 0, tail;
    if (head > 0) {
      /* 1 to 3 digits in a 32-bit word (n >= 16: all inside the field). */
      uint32_t w;
      memcpy(&w, p, 4);
      uint32_t keep = 0xFFFFFFFFu >> (8 * (4 - head));
      if (((w + 0x46464646u) | (w - 0x30303030u)) & 0x80808080u & keep) {
        return 0;
      }
      w = (w - 0x30303030u) << (8 * (4 - head)); /* leading zeros */
      w = w * 10 + (w >> 8);                     /* bytes 0 and 2: pairs */
      v = (w & 0xFFu) * 100 + ((w >> 16) & 0xFFu);
    }
    if (!pe__sixteen_digits(p + head, &tail)) {
      return 0;
    }
    *out = v * 10000000000000000ull + tail;
    return 1;
  }
#endif
  size_t head = (n - 1) % 8 + 1;
  uint64_t w = pe__load8(p);
  if (pe__nondigits(w) & pe__low_bytes(head)) {
    return 0;
  }
  uint64_t v = pe__first_digits(w, head);
  if (n > 8) {
    w = pe__load8(p + head);
    if (pe__nondigits(w)) {
      return 0;
    }
    v = v * 100000000u + pe__eight_digit_value(w);
    if (n > 16) {
      w = pe__load8(p + head + 8);
      if (pe__nondigits(w)) {
        return 0;
      }
      v = v * 100000000u + pe__eight_digit_value(w);
    }
  }
  *out = v;
  return 1;
}

/* pe__parse_plain for a field of n bytes at p, without a loop over its
 * characters when there are at most eight of them, or at most eight digits
 * on each side of the point. The value is the same: mant / 10^frac in one
 * correctly rounded division. Reads up to PE__WIDE_SLACK bytes past p + n. */
PE__HOT_INLINE int pe__wide_plain(const char *p, size_t n, double *out) {
  uint64_t w = pe__load8(p);
  uint64_t nd = pe__nondigits(w);
  size_t i = nd ? (size_t)__builtin_ctzll(nd) >> 3 : 8; /* digits before '.' */
  if (i == 0 || i + 1 >= n || p[i] != '.') {
    return pe__parse_plain(p, p + n, out); /* integers, signs, odd forms */
  }
  size_t frac = n - i - 1;
  uint64_t mant;
  if (n <= 8) {
    /* One word: the digits after the point move down a byte over it, then
     * the n - 1 digits up to the top (which drops what follows them). */
    uint64_t z = w + (2ull << (8 * i)); /* '.' + 2 is '0' */
    if (pe__nondigits(z) & pe__low_bytes(n)) {
      return 0; /* a non-digit after the point */
    }
    uint64_t d = z - 0x3030303030303030ull;
    uint64_t before = pe__low_bytes(i);
    mant = pe__eight_digit_value_raw(((d & before) | ((d >> 8) & ~before))
                                     << (8 * (9 - n)));
  } else if (frac <= 8) {
    uint64_t f = pe__load8(p + i + 1);
    if (pe__nondigits(f) & pe__low_bytes(frac)) {
      return 0;
    }
    mant = pe__first_digits(w, i) * pe__pow10_u64[frac] +
           pe__first_digits(f, frac);
    if (mant > (1ull << 53)) {
      return 0;
    }
  } else {
    return pe__parse_plain(p, p + n, out);
  }
  *out = (double)mant / pe__pow10[frac];
  return 1;
}
#else
/* Elsewhere the same results, a byte at a time. */
static inline int pe__wide_uint(const char *p, size_t n, uint64_t *out) {
  if (n == 0 || n > 19) {
    return 0;
  }
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned d = (unsigned)(unsigned char)p[i] - '0';
    if (d >= 10) {
      return 0;
    }
    v = v * 10 + d;
  }
  *out = v;
  return 1;
}

static inline int pe__wide_plain(const char *p, size_t n, double *out) {
  return pe__parse_plain(p, p + n, out);
}
#endif

/* The unit of an epoch number `whole`, chosen by magnitude when AUTO (see
 * pe_ts_unit_t). */
static inline pe_ts_unit_t pe__epoch_unit(uint64_t whole, pe_ts_unit_t unit) {
  if (unit == PE_TS_AUTO) {
    unit = whole < 100000000000ull         ? PE_TS_S
           : whole < 100000000000000ull    ? PE_TS_MS
           : whole < 100000000000000000ull ? PE_TS_US
                                           : PE_TS_NS;
  }
  return unit;
}

/* ns per unit of an epoch number `whole` (see pe__epoch_unit). */
static inline uint64_t pe__epoch_scale(uint64_t whole, pe_ts_unit_t unit) {
  switch (pe__epoch_unit(whole, unit)) {
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

/* whole scaled to ns; 0 when that overflows int64. The limits are
 * INT64_MAX / scale, spelt out so that no division is left to run. */
static inline int pe__epoch_to_ns(uint64_t whole, pe_ts_unit_t unit,
                                  int64_t *ts_ns) {
  uint64_t scale, limit;
  if (unit == PE_TS_AUTO && whole >= 100000000000000000ull) {
    if (whole > (uint64_t)INT64_MAX) {
      return 0;
    }
    *ts_ns = (int64_t)whole; /* ns, the common case, without the switch */
    return 1;
  }
  switch (pe__epoch_unit(whole, unit)) {
  case PE_TS_S:
    scale = 1000000000u;
    limit = (uint64_t)INT64_MAX / 1000000000u;
    break;
  case PE_TS_MS:
    scale = 1000000u;
    limit = (uint64_t)INT64_MAX / 1000000u;
    break;
  case PE_TS_US:
    scale = 1000u;
    limit = (uint64_t)INT64_MAX / 1000u;
    break;
  default:
    scale = 1u;
    limit = (uint64_t)INT64_MAX;
    break;
  }
  if (whole > limit) {
    return 0;
  }
  *ts_ns = (int64_t)(whole * scale);
  return 1;
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
  return pe__epoch_to_ns(whole, unit, ts_ns);
}

#endif
