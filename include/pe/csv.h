/* CSV tick parser.
 *
 * Fed bytes in chunks of any size (a whole file, one line, one byte); emits a
 * tick or a rejection for every complete line, so the outcome never depends
 * on where the chunks were cut. It does no I/O: the caller reads the file or
 * socket and calls pe_csv_feed. Lines are parsed in place; only a line cut by
 * a chunk boundary is copied, into a buffer of max_line bytes allocated at
 * create. Nothing is allocated per line.
 *
 * Columns are found by header name in any order: ts|timestamp|time, symbol,
 * price, volume|size|qty, optional recv_ts; other columns are ignored. A first
 * line with no field named "symbol" is data in the prototype's layout
 * ts,symbol,price,volume. Blank lines are skipped. Fields are RFC 4180: a
 * field whose first non-blank byte is a double quote runs to the closing
 * quote and may hold commas, line breaks and "" (one quote); a record then
 * spans lines and is numbered by its first. A quoted field left open (input
 * cut inside it) or followed by more than blanks is bad_quoting. A last
 * line without a newline is a row like any other: a tick when its fields
 * parse, field_count when some are missing. */
#ifndef PE_CSV_H
#define PE_CSV_H

#include <stddef.h>
#include <stdint.h>

#include "pe/parse.h"
#include "pe/tick.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Rows in the layout ts,symbol,price,volume with plain numbers take a fused
 * one-pass parser; every other row the general one. Both give the same
 * result for every row (fuzz/fuzz_csv.c checks); this flag turns the fused
 * one off, for that check. */
#define PE_CSV_GENERAL_ONLY 1u

typedef struct pe_csv_options {
  pe_ts_unit_t ts_unit; /* for ts and recv_ts */
  uint32_t max_line;    /* longest line in bytes, newline excluded; 0: 4096 */
  uint32_t flags;       /* PE_CSV_GENERAL_ONLY, or 0 */
} pe_csv_options_t;

/* Where a tick came from: its line number (from 1, counting the header and
 * blank lines) and its raw line without the newline. */
typedef struct pe_csv_row {
  uint64_t line_no;
  const char *line;
  size_t len;
} pe_csv_row_t;

/* Callbacks. They return PE_CONTINUE, or a positive value that stops
 * pe_csv_feed, which returns that value (see PE_STOP in pe/error.h).
 * `line` is the raw line (without its newline), valid during the call only;
 * line_no counts from 1 and includes the header and blank lines. */
typedef struct pe_csv_handler {
  void *ctx;
  int (*on_tick)(void *ctx, const pe_tick_t *tick, uint64_t line_no,
                 const char *line, size_t len);
  /* err is one of the row rejection codes of pe/tick.h. */
  int (*on_reject)(void *ctx, int err, uint64_t line_no, const char *line,
                   size_t len);
} pe_csv_handler_t;

/* Most ticks one on_ticks call gets. */
#define PE_CSV_BATCH 16u

/* The callbacks of pe_csv_feed_batch and pe_csv_finish_batch, as
 * pe_csv_handler_t's but with ticks in batches. */
typedef struct pe_csv_batch_handler {
  void *ctx;
  /* ticks[0, n) (n from 1 to PE_CSV_BATCH) of consecutive tick lines, with
   * their rows; parsed straight into the parser's own array, and valid
   * during the call only, as on_tick's. */
  int (*on_ticks)(void *ctx, const pe_tick_t *ticks, const pe_csv_row_t *rows,
                  uint32_t n);
  int (*on_reject)(void *ctx, int err, uint64_t line_no, const char *line,
                   size_t len);
} pe_csv_batch_handler_t;

typedef struct pe_csv pe_csv_t;

int pe_csv_create(const pe_csv_options_t *options, pe_csv_t **out);

/* NULL is a no-op. */
void pe_csv_destroy(pe_csv_t *csv);

/* Parses every complete line in data; keeps a trailing partial line for the
 * next call. Returns PE_OK, a callback's stop value (positive), or
 * PE_EHEADER when the header lacks a required column (see pe_csv_errmsg). */
int pe_csv_feed(pe_csv_t *csv, const char *data, size_t len,
                const pe_csv_handler_t *handler);

/* Parses a last line that had no newline. Call once at end of input. */
int pe_csv_finish(pe_csv_t *csv, const pe_csv_handler_t *handler);

/* pe_csv_feed and pe_csv_finish with the ticks handed over in batches: the
 * same events in the same order (a batch goes out before any on_reject
 * call and before either function returns, so lines stay valid during the
 * call), minus a copy per tick. After a stop, lines past the one that
 * stopped it may have been parsed (pe_csv_lines counts them). Use one kind
 * of feed per parser. */
int pe_csv_feed_batch(pe_csv_t *csv, const char *data, size_t len,
                      const pe_csv_batch_handler_t *handler);
int pe_csv_finish_batch(pe_csv_t *csv, const pe_csv_batch_handler_t *handler);

/* Lines seen so far (data, header and blank). */
uint64_t pe_csv_lines(const pe_csv_t *csv);

/* 1 when the input had a header line. */
int pe_csv_has_header(const pe_csv_t *csv);

const char *pe_csv_errmsg(const pe_csv_t *csv);

#ifdef __cplusplus
}
#endif
#endif
