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

#include "pe/tick.h"

typedef struct pe__symkey {
  char bytes[PE_SYMBOL_MAX + 1]; /* NUL-padded */
} pe__symkey_t;

typedef struct pe__symtab {
  uint32_t capacity;
  uint32_t count;
  uint32_t mask;     /* slots - 1 */
  uint32_t *slots;   /* id + 1, 0 = empty */
  pe__symkey_t *keys; /* [capacity], by id */
} pe__symtab_t;

int pe__symtab_init(pe__symtab_t *t, uint32_t capacity);
void pe__symtab_free(pe__symtab_t *t);

/* Clears every symbol; keeps the memory. */
void pe__symtab_clear(pe__symtab_t *t);

/* Id of a key, inserting it when new. *is_new tells which. PE_EFULL when new
 * and the table holds capacity symbols already. Hot path. */
int pe__symtab_intern(pe__symtab_t *t, const pe__symkey_t *key, uint32_t *id,
                      int *is_new);

/* Bytes of table memory per symbol of capacity. */
size_t pe__symtab_bytes_per_symbol(const pe__symtab_t *t);

#endif
