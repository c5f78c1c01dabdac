/* Ticks: the unit of input, and the reasons a row can be rejected.
 *
 * A tick is a plain value the caller owns; nothing in it points elsewhere, so
 * it can be copied, queued and compared byte for byte. */
#ifndef PE_TICK_H
#define PE_TICK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest symbol accepted, in bytes, not counting the terminating NUL. */
#define PE_SYMBOL_MAX 31

/* Marks an absent timestamp (recv_ts_ns of a tick without one). */
#define PE_TS_NONE INT64_MIN

typedef struct pe_tick {
  int64_t ts_ns;      /* trade time, ns since the Unix epoch, UTC */
  int64_t recv_ts_ns; /* receive time, ns since the epoch, or PE_TS_NONE */
  double price;       /* finite, > 0 */
  double volume;      /* finite, >= 0 (size, quantity) */
  uint32_t symbol_len;
  char symbol[PE_SYMBOL_MAX + 1]; /* symbol_len bytes, none of them NUL
                                     (a NUL is rejected: symbol_nul), then
                                     NUL padding */
} pe_tick_t;

/* Why a row was rejected. X(ID, name, error code): PE_REJECT_##ID is the
 * index, name is what counters and reject files print. */
#define PE_REJECT_MAP(X)                                                       \
  X(FIELD_COUNT, "field_count", PE_EFIELDS)                                    \
  X(BAD_NUMBER, "bad_number", PE_ENUMBER)                                      \
  X(BAD_TIMESTAMP, "bad_timestamp", PE_ETIMESTAMP)                             \
  X(BAD_PRICE, "bad_price", PE_EPRICE)                                         \
  X(BAD_VOLUME, "bad_volume", PE_EVOLUME)                                      \
  X(EMPTY_SYMBOL, "empty_symbol", PE_ESYMBOL)                                  \
  X(SYMBOL_TOO_LONG, "symbol_too_long", PE_ESYMLEN)                            \
  X(SYMBOL_NUL, "symbol_nul", PE_ESYMNUL)                                      \
  X(OUT_OF_ORDER, "out_of_order", PE_EORDER)                                   \
  X(LINE_TOO_LONG, "line_too_long", PE_ELINELEN)                               \
  X(BAD_QUOTING, "bad_quoting", PE_EQUOTE)

typedef enum pe_reject {
#define PE__REJECT_ENUM(id, name, err) PE_REJECT_##id,
  PE_REJECT_MAP(PE__REJECT_ENUM)
#undef PE__REJECT_ENUM
      PE_REJECT_COUNT
} pe_reject_t;

/* Counter name of a reason ("bad_price"); "unknown" when out of range. */
const char *pe_reject_name(int reason);

/* The reason an error code stands for, or -1 when the code is not a row
 * rejection (PE_ENOMEM, PE_EFULL, ...): not an index as it stands. */
int pe_reject_from_error(int err);

/* Counts a rejection: adds one to counts[reason] for the reason err stands
 * for and returns the reason; returns -1 and leaves counts alone when err is
 * not a row rejection. The way to index counters by an error code. */
int pe_reject_count(uint64_t counts[PE_REJECT_COUNT], int err);

/* Fills in the symbol of a tick. Returns PE_ESYMBOL when len is 0,
 * PE_ESYMLEN when it is over PE_SYMBOL_MAX and PE_ESYMNUL when it holds a
 * NUL byte; the tick is unchanged then. */
int pe_tick_set_symbol(pe_tick_t *tick, const char *symbol, uint32_t len);

/* The engine's checks of a tick that need no state, in its order: PE_OK,
 * or PE_EPRICE, PE_EVOLUME, PE_ESYMBOL, PE_ESYMLEN, PE_ESYMNUL, the code
 * pe_engine_push would return for it. */
int pe_tick_check(const pe_tick_t *tick);

#ifdef __cplusplus
}
#endif
#endif
