/* Fixed-capacity symbol table: see symtab.h. */
#include "core/symtab.h"

#include <stdlib.h>
#include <string.h>

#include "pe/error.h"

int pe__symtab_init(pe__symtab_t *t, uint32_t capacity) {
  memset(t, 0, sizeof *t);
  if (capacity == 0 || capacity > (1u << 30)) {
    return PE_EINVAL;
  }
  uint32_t slots = 16;
  while (slots < 2u * capacity) {
    slots <<= 1;
  }
  t->slots = calloc(slots, sizeof *t->slots);
  t->keys = calloc(capacity, sizeof *t->keys);
  if (t->slots == NULL || t->keys == NULL) {
    pe__symtab_free(t);
    return PE_ENOMEM;
  }
  t->capacity = capacity;
  t->mask = slots - 1;
  return PE_OK;
}

void pe__symtab_free(pe__symtab_t *t) {
  free(t->slots);
  free(t->keys);
  memset(t, 0, sizeof *t);
}

void pe__symtab_clear(pe__symtab_t *t) {
  memset(t->slots, 0, ((size_t)t->mask + 1) * sizeof *t->slots);
  memset(t->keys, 0, (size_t)t->capacity * sizeof *t->keys);
  t->count = 0;
}

int pe__symtab_intern(pe__symtab_t *t, const pe__symkey_t *key, uint32_t *id,
                      int *is_new) {
  return pe__symtab_intern_hashed(t, key, pe__symkey_hash(key), id, is_new);
}

int pe__symtab_intern_hashed(pe__symtab_t *t, const pe__symkey_t *key,
                             uint32_t hash, uint32_t *id, int *is_new) {
  uint32_t i = hash & t->mask;
  for (;;) {
    uint32_t s = t->slots[i];
    if (s == 0) {
      break;
    }
    if (pe__symkey_eq(&t->keys[s - 1], key)) {
      *id = s - 1;
      *is_new = 0;
      return PE_OK;
    }
    i = (i + 1) & t->mask;
  }
  if (t->count == t->capacity) {
    return PE_EFULL;
  }
  uint32_t new_id = t->count++;
  t->keys[new_id] = *key;
  t->slots[i] = new_id + 1;
  *id = new_id;
  *is_new = 1;
  return PE_OK;
}

size_t pe__symtab_bytes_per_symbol(const pe__symtab_t *t) {
  size_t slots = (size_t)t->mask + 1;
  return sizeof(pe__symkey_t) + slots * sizeof(uint32_t) / t->capacity;
}
