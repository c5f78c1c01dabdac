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

/* The decimal digits of v at dst (at most 20 bytes, no NUL); returns their
 * end. */
static inline char *pe__u64_put(char *dst, uint64_t v) {
  char tmp[20];
  char *p = pe__u64_digits(tmp + sizeof tmp, v);
  size_t n = (size_t)(tmp + sizeof tmp - p);
  memcpy(dst, p, n);
  return dst + n;
}

#endif
