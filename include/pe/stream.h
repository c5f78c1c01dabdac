/* Stream entries: a Redis Stream entry's field/value pairs decoded into a
 * tick, and stream entry ids.
 *
 * The decoder is a pure parser, like the CSV one: it reads byte ranges the
 * caller owns (the fields of an XREAD reply, a fuzz input), allocates
 * nothing and touches no socket or file. Redis I/O lives in pe/redis.h.
 *
 * An entry is either flat, with fields
 *   symbol, price, volume|size|qty, timestamp|ts|time, optional recv_ts
 * (names in any case and order, other fields ignored), or carries one field
 * `data` whose value is a JSON object with those same keys. Numbers may be
 * JSON numbers or strings. Timestamps are epoch numbers (seconds with a
 * fraction, or ms, us, ns, told apart by magnitude unless a unit is given)
 * or ISO-8601, exactly as pe_parse_timestamp reads them. */
#ifndef PE_STREAM_H
#define PE_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "pe/parse.h"
#include "pe/tick.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Entry ids ------------------------------------------------------------
 * "<ms>-<seq>", both unsigned 64-bit, ordered as the pair (ms, seq). */
typedef struct pe_stream_id {
  uint64_t ms;
  uint64_t seq;
} pe_stream_id_t;

/* Longest formatted id, NUL included: 20 digits, '-', 20 digits. */
#define PE_STREAM_ID_MAX 42

/* Parses "ms-seq" or "ms" (seq 0). PE_EPARSE for anything else, including
 * numbers over 2^64 - 1. */
int pe_stream_id_parse(const char *s, size_t len, pe_stream_id_t *id);

/* Writes "ms-seq" and a NUL; returns the length (cap >= PE_STREAM_ID_MAX
 * always suffices; a smaller cap truncates, like snprintf). */
size_t pe_stream_id_format(pe_stream_id_t id, char *buf, size_t cap);

/* -1, 0 or 1 as a is before, equal to or after b. */
int pe_stream_id_cmp(pe_stream_id_t a, pe_stream_id_t b);

/* ---- Entry decoding --------------------------------------------------------
 */

/* One field/value pair of an entry; neither is NUL-terminated. */
typedef struct pe_stream_field {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
} pe_stream_field_t;

/* Why an entry was rejected. X(ID, name): PE_STREAM_REJECT_##ID is the index,
 * name is what counters, metrics and reject records print. The last three
 * are not the decoder's: the engine's order check and its full symbol table,
 * and an entry whose reply shape is not field/value strings (the Redis
 * reader reports it). */
#define PE_STREAM_REJECT_MAP(X)                                                \
  X(MISSING_FIELD, "missing_field")                                            \
  X(DUPLICATE_FIELD, "duplicate_field")                                        \
  X(BAD_JSON, "bad_json")                                                      \
  X(BAD_NUMBER, "bad_number")                                                  \
  X(BAD_TIMESTAMP, "bad_timestamp")                                            \
  X(BAD_PRICE, "bad_price")                                                    \
  X(BAD_VOLUME, "bad_volume")                                                  \
  X(EMPTY_SYMBOL, "empty_symbol")                                              \
  X(SYMBOL_TOO_LONG, "symbol_too_long")                                        \
  X(SYMBOL_NUL, "symbol_nul")                                                  \
  X(TOO_MANY_FIELDS, "too_many_fields")                                        \
  X(OUT_OF_ORDER, "out_of_order")                                              \
  X(SYMBOL_TABLE_FULL, "symbol_table_full")                                    \
  X(MALFORMED, "malformed_entry")

typedef enum pe_stream_reject {
#define PE__STREAM_REJECT_ENUM(id, name) PE_STREAM_REJECT_##id,
  PE_STREAM_REJECT_MAP(PE__STREAM_REJECT_ENUM)
#undef PE__STREAM_REJECT_ENUM
      PE_STREAM_REJECT_COUNT
} pe_stream_reject_t;

/* Name of a reason ("bad_price"); "unknown" when out of range. Static. */
const char *pe_stream_reject_name(int reason);

/* The stream reason for an engine or parser error code (PE_EPRICE ->
 * BAD_PRICE, PE_EORDER -> OUT_OF_ORDER, PE_EFULL -> SYMBOL_TABLE_FULL, ...),
 * or -1 when the code is not a rejection. */
int pe_stream_reject_from_error(int err);

/* Most pairs an entry may have; the Redis reader rejects longer ones with
 * TOO_MANY_FIELDS before they reach the decoder. */
#define PE_STREAM_MAX_FIELDS 64

/* What the decoder says about a rejected entry. */
typedef struct pe_stream_why {
  int reason;     /* pe_stream_reject_t */
  char field[32]; /* the field at fault ("price"; "data" for the JSON as a
                     whole), NUL-terminated, "" when none */
} pe_stream_why_t;

typedef struct pe_stream_options {
  pe_ts_unit_t ts_unit; /* for timestamp and recv_ts; PE_TS_AUTO by default */
} pe_stream_options_t;

/* Decodes the n pairs of one entry into *tick. Returns PE_OK, or a negative
 * code with *why filled in: PE_ENOENT (missing_field), PE_EFIELDS
 * (duplicate_field; also a `data` field next to flat tick fields), PE_EPARSE
 * (bad_json), PE_ENUMBER, PE_ETIMESTAMP, PE_EPRICE (not finite and > 0),
 * PE_EVOLUME (negative or not finite), PE_ESYMBOL, PE_ESYMLEN. Checks run in
 * a fixed order (fields present, timestamp, symbol, price, volume, recv_ts),
 * so an entry gets one reason whatever its field order. Allocates nothing;
 * *tick is unspecified on failure. Hot path. */
int pe_stream_entry_decode(const pe_stream_field_t *fields, size_t n,
                           const pe_stream_options_t *options, pe_tick_t *tick,
                           pe_stream_why_t *why);

#ifdef __cplusplus
}
#endif
#endif
