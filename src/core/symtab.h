/* Fixed-capacity symbol table (internal).
 *
 * Maps a symbol to a dense id in first-seen order. Open addressing with
 * linear probing over a power-of-two slot array of at least twice the
 * capacity, so probes stay short when full. Keys are compared as whole
 * zero-padded 32-byte blocks. Everything is allocated at create; lookups and
 * inserts allocate nothing. Symbols are never removed. */
#ifndef PE_CORE_SYMTAB_H
#define PE_CORE_SYMTAB_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pe/tick.h"

typedef struct pe__symkey {
  char bytes[PE_SYMBOL_MAX + 1]; /* NUL-padded */
} pe__symkey_t;

typedef struct pe__symtab {
  uint32_t capacity;
  uint32_t count;
  uint32_t mask;      /* slots - 1 */
  uint32_t *slots;    /* id + 1, 0 = empty */
  pe__symkey_t *keys; /* [capacity], by id */
} pe__symtab_t;

/* The 8 bytes at p as one word, in the machine's order. */
static inline uint64_t pe__word_at(const char *p) {
  uint64_t w;
  memcpy(&w, p, sizeof w);
  return w;
}

/* Multiplies the four 8-byte words of a key by distinct odd constants (four
 * independent multiplies, not a chain), then folds the high bits down, so
 * every input bit reaches the low bits used as the slot index. The words are
 * read one by one, not copied into an array, which GCC 12 would build on the
 * stack first. */
static inline uint32_t pe__symkey_hash(const pe__symkey_t *key) {
  const char *b = key->bytes;
  uint64_t h = (pe__word_at(b) * 0x9E3779B97F4A7C15ull) ^
               (pe__word_at(b + 8) * 0xC2B2AE3D27D4EB4Full) ^
               (pe__word_at(b + 16) * 0x165667B19E3779F9ull) ^
               (pe__word_at(b + 24) * 0xD6E8FEB86659FD93ull);
  h ^= h >> 29;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 32;
  return (uint32_t)h;
}

static inline int pe__symkey_eq(const pe__symkey_t *a, const pe__symkey_t *b) {
  const char *x = a->bytes;
  const char *y = b->bytes;
  return ((pe__word_at(x) ^ pe__word_at(y)) |
          (pe__word_at(x + 8) ^ pe__word_at(y + 8)) |
          (pe__word_at(x + 16) ^ pe__word_at(y + 16)) |
          (pe__word_at(x + 24) ^ pe__word_at(y + 24))) == 0;
}

int pe__symtab_init(pe__symtab_t *t, uint32_t capacity);
void pe__symtab_free(pe__symtab_t *t);

/* Clears every symbol; keeps the memory. */
void pe__symtab_clear(pe__symtab_t *t);

/* Id of a key, inserting it when new. *is_new tells which. PE_EFULL when new
 * and the table holds capacity symbols already. Hot path. */
int pe__symtab_intern(pe__symtab_t *t, const pe__symkey_t *key, uint32_t *id,
                      int *is_new);

/* pe__symtab_intern with the key's pe__symkey_hash already computed. */
int pe__symtab_intern_hashed(pe__symtab_t *t, const pe__symkey_t *key,
                             uint32_t hash, uint32_t *id, int *is_new);

/* The id in the key's first slot, UINT32_MAX when that slot is empty: a
 * guess (a collision may put the key further on) for prefetching, and for
 * pe__symtab_intern_guess. */
static inline uint32_t pe__symtab_first_id(const pe__symtab_t *t,
                                           uint32_t hash) {
  return t->slots[hash & t->mask] - 1u;
}

/* pe__symtab_intern_hashed, first trying `guess` (pe__symtab_first_id read
 * earlier; ids never move, so a guess that holds the key is its id). Inline
 * for the common case, a known symbol in its first slot. Hot path. */
static inline int pe__symtab_intern_guess(pe__symtab_t *t,
                                          const pe__symkey_t *key,
                                          uint32_t hash, uint32_t guess,
                                          uint32_t *id, int *is_new) {
  if (guess < t->count && pe__symkey_eq(&t->keys[guess], key)) {
    *id = guess;
    *is_new = 0;
    return 0;
  }
  /* Through locals of its own, so that a caller's *id and *is_new can stay
   * in registers on the common path. */
  uint32_t found = 0;
  int fresh = 0;
  int rc = pe__symtab_intern_hashed(t, key, hash, &found, &fresh);
  *id = found;
  *is_new = fresh;
  return rc;
}

/* Bytes of table memory per symbol of capacity. */
size_t pe__symtab_bytes_per_symbol(const pe__symtab_t *t);

#endif
