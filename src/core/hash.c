/* pe__hash64: eight bytes a step, each folded in with a multiply and a
 * rotation, and a final avalanche; see hash.h. */
#include "core/hash.h"

#include <string.h>

static inline uint64_t pe__rotl(uint64_t x, int r) {
  return (x << r) | (x >> (64 - r));
}

static inline uint64_t pe__mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ull;
  h ^= h >> 33;
  return h;
}

uint64_t pe__hash64(const void *data, size_t len, uint64_t seed) {
  const unsigned char *p = data;
  uint64_t h = seed ^ (0x9E3779B97F4A7C15ull * (len + 1));
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    h = pe__rotl(h ^ (w * 0x87C37B91114253D5ull), 31) * 0x4CF5AD432745937Full;
    p += 8;
    len -= 8;
  }
  uint64_t tail = 0;
  memcpy(&tail, p, len);
  h ^= tail * 0x87C37B91114253D5ull;
  return pe__mix(h);
}
