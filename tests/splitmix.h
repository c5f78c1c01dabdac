/* splitmix64: a small, fast generator of well-mixed 64-bit values, for
 * tests that want the same pseudo-random values on every run. */
#ifndef PE_TEST_SPLITMIX_H
#define PE_TEST_SPLITMIX_H

#include <stdint.h>

static inline uint64_t pe_splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

#endif
