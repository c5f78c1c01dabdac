/* Symbol partitions: which of P partitions a symbol belongs to, and the
 * stream keys of each partition.
 *
 * By default a symbol's partition is a stable hash of its bytes,
 * pe_partition_of: FNV-1a 64 mod P, the same on every machine and in every
 * language. A map (pe_partition_map_t) can instead place the symbols of a
 * weights file by greedy bin-packing: the hot symbols first, then the rest
 * heaviest first, each onto the partition with the least weight so far.
 * Symbols the map does not name still go by the hash.
 *
 * Every process of one deployment must agree on the map. Its canonical text
 * (pe_partition_map_text) says everything that decides a lookup, so two maps
 * with the same text place every symbol alike; its digest is FNV-1a 64 of
 * that text, printed as 16 hex digits. The text parses back into the same
 * map (pe_partition_map_parse), which is how a process takes the map that
 * another one stored.
 *
 * Stream keys carry a hash tag (`ticks:{p17}`), so that Redis Cluster puts
 * all the keys of one partition in one slot, and the partitions spread over
 * the cluster's nodes.
 *
 * Memory: a map owns its symbols and table; lookups allocate nothing. */
#ifndef PE_PARTITION_H
#define PE_PARTITION_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The most partitions a map may have. */
#define PE_PARTITION_MAX 65536u

/* FNV-1a 64 of len bytes (offset basis 0xcbf29ce484222325, prime
 * 0x100000001b3). Pure. */
uint64_t pe_fnv1a64(const void *data, size_t len);

/* The hash partition of a symbol: pe_fnv1a64(sym, len) % P. P 0 is taken
 * as 1. Pure. */
uint32_t pe_partition_of(const char *sym, size_t len, uint32_t P);

/* The prefixes of the partitions' tick and signal streams. */
#define PE_PARTITION_TICKS "ticks"
#define PE_PARTITION_SIGNALS "signals"

/* Writes "<prefix>:{p<p>}" into out (cap bytes, terminated): the key of
 * partition p's stream, `ticks:{p17}` for prefix "ticks". Returns the
 * length, or PE_EFULL when it does not fit. */
int pe_partition_key(char *out, size_t cap, const char *prefix, uint32_t p);

typedef struct pe_partition_options {
  uint32_t count;           /* P, 1 .. PE_PARTITION_MAX */
  const char *weights_path; /* "symbol,weight" lines; NULL: hash only */
  const char *hot_symbols;  /* "A,B,C" placed first; NULL or "": none */
} pe_partition_options_t;

/* Fills what is still unset in *o (count 0, a NULL path or list) from the
 * environment: PARTITION_COUNT, SYMBOL_WEIGHTS_FILE, HOT_SYMBOLS. PE_EINVAL
 * with the reason in err when PARTITION_COUNT is set but not a count in
 * 1 .. PE_PARTITION_MAX. The strings point into the environment. */
int pe_partition_options_from_env(pe_partition_options_t *o, char *err,
                                  size_t err_cap);

typedef struct pe_partition_map pe_partition_map_t;

/* Builds the map of o: with a weights file, its symbols placed by greedy
 * bin-packing. The file holds one "symbol,weight" per line (weight a finite
 * number >= 0; a first line whose weight is not a number is a header; blank
 * lines and lines starting with '#' are skipped). A hot symbol missing from
 * the file weighs as much as the heaviest symbol of it (1 with no file);
 * with no weights file the hot symbols alone are placed. Ties go to the
 * lower partition; symbols of equal weight are taken in byte order, so the
 * map depends only on the file's content, not its order. PE_EINVAL (a bad
 * count, a bad line: file and line in err, a symbol named twice),
 * PE_ENOENT/PE_EIO for the file, PE_ENOMEM. */
int pe_partition_map_create(const pe_partition_options_t *o,
                            pe_partition_map_t **out, char *err,
                            size_t err_cap);

/* Parses a canonical text (as pe_partition_map_text writes) back into a
 * map. PE_EPARSE with the reason in err for anything else, PE_ENOMEM. */
int pe_partition_map_parse(const char *text, size_t len,
                           pe_partition_map_t **out, char *err, size_t err_cap);

/* NULL is a no-op. */
void pe_partition_map_destroy(pe_partition_map_t *m);

/* The partition of a symbol: the map's placement, else pe_partition_of.
 * Allocates nothing. */
uint32_t pe_partition_map_lookup(const pe_partition_map_t *m, const char *sym,
                                 size_t len);

uint32_t pe_partition_map_count(const pe_partition_map_t *m);

/* Symbols the map places itself (not by the hash). */
size_t pe_partition_map_symbols(const pe_partition_map_t *m);

/* The canonical text, owned by the map:
 *   pe-partitions 1\n
 *   count P\n
 *   hash fnv1a64\n
 *   then one "<partition> <symbol>\n" per placed symbol, in byte order of
 *   the symbols.
 * *len (when not NULL) gets its length. */
const char *pe_partition_map_text(const pe_partition_map_t *m, size_t *len);

/* FNV-1a 64 of the canonical text, and the same as 16 lower-case hex
 * digits (owned by the map). */
uint64_t pe_partition_map_digest(const pe_partition_map_t *m);
const char *pe_partition_map_digest_hex(const pe_partition_map_t *m);

/* The total weight the packing put on partition p (0 for a map parsed from
 * text, or p out of range): what the placement balanced. */
double pe_partition_map_load(const pe_partition_map_t *m, uint32_t p);

#ifdef __cplusplus
}
#endif
#endif
