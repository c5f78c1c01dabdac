/* A fast 64-bit hash for checksums and fingerprints (internal). Not
 * cryptographic: it detects truncation and corruption, not tampering. */
#ifndef PE_CORE_HASH_H
#define PE_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

/* Hash of len bytes, continuing from seed (0 to start). */
uint64_t pe__hash64(const void *data, size_t len, uint64_t seed);

#endif
