/* Signal output: formats and sinks.
 *
 * Formatting writes into a caller buffer and never allocates. A sink is an
 * opaque handle that writes formatted signals somewhere (a file here; Redis
 * Streams in pe/redis.h). */
#ifndef PE_SINK_H
#define PE_SINK_H

#include <stddef.h>
#include <stdio.h>

#include "pe/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pe_format { PE_FORMAT_CSV = 0, PE_FORMAT_JSONL } pe_format_t;

/* "csv" or "jsonl" -> format; PE_EINVAL otherwise. */
int pe_format_parse(const char *name, pe_format_t *format);

/* Header line of the CSV format, with its newline. Static. */
const char *pe_signal_csv_header(void);

/* Formats one signal as a line ending in '\n'. Returns the length it needs,
 * like snprintf: the output is complete only when that is below cap.
 * Numbers are printed as the shortest decimal that reads back as the same
 * double ("490.96"; see docs/features.md for the layout). The CSV column
 * `fired` lists rule=value pairs joined by ';'; JSON lines carry them as an
 * object of {value, contribution}. */
size_t pe_signal_format(const pe_signal_t *signal, pe_format_t format,
                        char *buf, size_t cap);

/* ---- Per-tick feature rows (--features-out) -------------------------------
 * Header: ts,symbol,price,volume,ema_fast,ema_slow,vwap,mean,var, then every
 * standard feature by name. ts is integer ns; numbers are the shortest
 * round-trip decimals, NaN "nan". */

/* Header line with its newline. Static. */
const char *pe_features_csv_header(void);

/* Formats one accepted tick's row, ending in '\n'; snprintf-style return. */
size_t pe_features_format(const pe_tick_t *tick, const pe_tick_out_t *out,
                          char *buf, size_t cap);

/* ---- The features writer ---------------------------------------------------
 * Every accepted tick's row, written fast: rows are gathered in blocks of
 * binary values, and each full block is formatted and written as one piece.
 *
 * A path ending in ".npy" gets one 2-D float64 array (NumPy's .npy, C
 * order), one row per tick, with the columns
 *   ts_s, ts_ns (the time is ts_s * 10^9 + ts_ns, ts_ns in [0, 10^9)),
 *   symbol (its index: the engine's symbol id, dense in first-seen order),
 *   price, volume, ema_fast, ema_slow, vwap, mean, var, then the features,
 * named one a line in X.columns.txt beside it (for X.npy), the symbols in
 * X.symbols.csv (index,symbol). Its header, which holds the row count, is
 * written last, so the path must be seekable (a file; a FIFO, a pipe or a
 * terminal is refused when opened). Any other path gets the CSV rows of
 * pe_features_format, byte for byte.
 *
 * With threads > 0, full blocks of text are formatted by that many threads
 * and written, in order, by one more (a .npy array, which needs no
 * formatting, gets the writing thread only): the output is the same bytes
 * whatever the count. 0 does everything on the caller's thread. */
typedef struct pe_features_writer pe_features_writer_t;

/* 1 when path names a .npy output. */
int pe_features_path_is_npy(const char *path);

/* Opens path as pe_out_open does (pe/file.h) and writes the CSV header.
 * PE_EIO (cannot create, not seekable for .npy), PE_EINVAL, PE_ENOMEM; the
 * reason in err. */
int pe_features_writer_open(const char *path, unsigned threads,
                            pe_features_writer_t **out, char *err,
                            size_t err_cap);

/* Adds one accepted tick's row. Hot path: a copy into the current block,
 * except when the block is full (then it is handed on, or formatted and
 * written here with threads 0) or the symbol is new to the writer (its
 * name is kept, in blocks of 1024 names allocated as needed). PE_EIO once a
 * write has failed (errno holds its reason), PE_ENOMEM. */
int pe_features_writer_add(pe_features_writer_t *w, const pe_tick_t *tick,
                           const pe_tick_out_t *out);

/* With commit: writes what is left, the .npy header and the files beside a
 * .npy array, and commits as pe_out_close does; PE_EIO with the reason in
 * err (and errno) when any write failed, and then nothing is replaced.
 * Without: discards. Stops the threads and frees; NULL is a no-op. */
int pe_features_writer_close(pe_features_writer_t *w, int commit, char *err,
                             size_t err_cap);

typedef struct pe_sink pe_sink_t;

/* Opens a file sink; path "-" is stdout. Writes the CSV header at once. The
 * path is opened as pe_out_open does (pe/file.h): a regular file appears,
 * whole, at pe_sink_close. */
int pe_sink_open_file(const char *path, pe_format_t format, pe_sink_t **out,
                      char *err, size_t err_cap);

int pe_sink_write(pe_sink_t *sink, const pe_signal_t *signal);
int pe_sink_flush(pe_sink_t *sink);

/* Flushes and closes; returns the first write error seen, if any (then a
 * regular file is left as it was). NULL is a no-op returning PE_OK. */
int pe_sink_close(pe_sink_t *sink);

/* Closes without committing: a regular file keeps what it held before the
 * sink was opened (a device or FIFO has had what was written). NULL is a
 * no-op. */
void pe_sink_discard(pe_sink_t *sink);

#ifdef __cplusplus
}
#endif
#endif
