/* Decimal digits of integers, written without snprintf (internal; exported
 * to the layers above through the core target: the writers of src/io/ and
 * src/redis/ format numbers with it, as the engine formats signal ids). */
#ifndef PE_CORE_DIGITS_H
#define PE_CORE_DIGITS_H

#include <stdint.h>
#include <string.h>

/* Two decimal digits per entry: "00", "01", ... "99". Hidden: the library's
 * own, reached without a load through the GOT when built as PIC. */
#if defined(__GNUC__)
__attribute__((visibility("hidden")))
#endif
extern const char pe__digit_pairs[201];

/* Writes the decimal digits of u backwards, ending just before end, and
 * returns where they start. Two digits per division halves the chain of
 * dependent divisions, which is most of the cost. */
static inline char *pe__u64_digits(char *end, uint64_t u) {
  char *p = end;
  while (u >= 100) {
    p -= 2;
    memcpy(p, pe__digit_pairs + 2 * (u % 100), 2);
    u /= 100;
  }
  if (u >= 10) {
    p -= 2;
    memcpy(p, pe__digit_pairs + 2 * u, 2);
  } else {
    *--p = (char)('0' + u);
  }
  return p;
}

/* The 8 decimal digits of v < 10^8, leading zeros included, as the byte
 * values 0 to 9 of a word, the first digit in its lowest byte: four lanes
 * at once in one register (v / 10^4 and v % 10^4, then / 100 and / 10 by
 * multiplying with rounded-up reciprocals, exact below 10^4 and 100), so
 * no chain of divisions and no table. */
static inline uint64_t pe__8_digit_values(uint32_t v) {
  uint64_t merged = (uint64_t)(v / 10000u) | ((uint64_t)(v % 10000u) << 32);
  uint64_t div100 = ((merged * 10486u) >> 20) & 0x0000007F0000007Full;
  uint64_t hundreds = div100 | ((merged - 100u * div100) << 16);
  uint64_t tens = ((hundreds * 103u) >> 10) & 0x000F000F000F000Full;
  return tens | ((hundreds - 10u * tens) << 8);
}

/* pe__8_digit_values' digits as text at dst (8 bytes, no NUL). */
static inline void pe__8_digits_store(char *dst, uint64_t values) {
  uint64_t text = values | 0x3030303030303030ull;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  text = __builtin_bswap64(text);
#endif
  memcpy(dst, &text, sizeof text);
}

/* The decimal digits of v at dst (at most 20 bytes, no NUL); returns their
 * end. Below 10^8 two digits at a time; above, the last 8 or 16 digits
 * eight at a time (a nanosecond timestamp has 19). */
static inline char *pe__u64_put(char *dst, uint64_t v) {
  uint32_t low[2];
  int groups = 0;
  while (v >= 100000000u && groups < 2) {
    low[groups++] = (uint32_t)(v % 100000000u);
    v /= 100000000u;
  }
  char tmp[20];
  char *p = pe__u64_digits(tmp + sizeof tmp, v);
  size_t n = (size_t)(tmp + sizeof tmp - p);
  memcpy(dst, p, n);
  dst += n;
  while (groups > 0) {
    pe__8_digits_store(dst, pe__8_digit_values(low[--groups]));
    dst += 8;
  }
  return dst;
}

#endif
