/* The features writer's rows, for callers that place and write them
 * themselves (internal; see pe_features_writer_* in pe/sink.h).
 *
 * A row is PE_FEATURES_COLS doubles, the .npy row: ts_s, ts_ns, symbol
 * index, then price ... the last feature. A caller that runs several
 * engines fills rows at their final positions in its own blocks, formats
 * them with pe__features_text and writes them with pe__features_write_at
 * or pe__features_write_next; the writer keeps the symbols' names, the
 * header and the row count, and commits at pe_features_writer_close as
 * usual. The writer must be opened with threads 0 and must not be given
 * rows with pe_features_writer_add as well. */
#ifndef PE_IO_FEATURES_ROWS_H
#define PE_IO_FEATURES_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "pe/engine.h"
#include "pe/sink.h"

#define PE_FEATURES_COLS (10 + PE_FEATURE_COUNT)
/* Room for a text row: a ts of 20 characters, a quoted symbol of 64, each
 * value at most 32 after its comma (io/dtoa.h's PE__DTOA_MAX), the
 * newline; and the 8 bytes of scratch the last value's formatting may
 * write past its text (PE__DTOA_ROOM - PE__DTOA_MAX; features_out.c
 * checks both). */
#define PE_FEATURES_ROW_TEXT_MAX                                               \
  (20 + 1 + 64 + (PE_FEATURES_COLS - 3) * 33 + 1 + 8)

/* One accepted tick's row into v[PE_FEATURES_COLS], symbol index id. Hot
 * path. */
void pe__features_row(double *v, const pe_tick_t *tick, uint32_t id,
                      const pe_tick_out_t *out);

/* Keeps the name of symbol index id (the tick's symbol), unless kept
 * already: before any row of that index is formatted, and by one thread at
 * a time. PE_EFULL past the writer's 67 million names, PE_ENOMEM. */
int pe__features_name(pe_features_writer_t *w, uint32_t id,
                      const pe_tick_t *tick);

/* The CSV text of n rows into text (room for n * PE_FEATURES_ROW_TEXT_MAX
 * bytes); returns its length. Reads the kept names only: safe from several
 * threads at once. */
size_t pe__features_text(const pe_features_writer_t *w, const double *rows,
                         size_t n, char *text);

/* 1 for a .npy output, 0 for CSV text. */
int pe__features_is_npy(const pe_features_writer_t *w);

/* Writes the header now and says where the rows go: 1 when the output can
 * take positional writes (a regular file, not opened for appending), the
 * rows starting at byte *data_at; 0 when they must be written in order with
 * pe__features_write_next. PE_EIO when the header cannot be written (errno
 * holds why). */
int pe__features_begin(pe_features_writer_t *w, int *positional,
                       uint64_t *data_at);

/* len bytes at byte offset at (positional outputs), from any thread; or
 * the next len bytes (ordered outputs), from one thread at a time. 0, or
 * -1 with errno. */
int pe__features_write_at(pe_features_writer_t *w, const void *buf, size_t len,
                          uint64_t at);
int pe__features_write_next(pe_features_writer_t *w, const void *buf,
                            size_t len);

/* Positional outputs may be written through a mapping instead, so that
 * threads writing at once do not queue on the file's lock: map_start
 * reserves the address space (*base, *reserved bytes; -1 when it cannot,
 * and the output is written with pe__features_write_at), map makes the
 * file at least `end` bytes long and maps it that far at *base (0, or -1
 * with errno). The caller serializes map calls and writes only below the
 * last end it mapped; pe__features_end unmaps and cuts the file to its
 * end. A write through the mapping that the file system cannot take (no
 * space) raises SIGBUS, which the caller must handle. */
int pe__features_map_start(pe_features_writer_t *w, void **base,
                           uint64_t *reserved);
int pe__features_map(pe_features_writer_t *w, uint64_t end);

/* Allocates the file's blocks of [from, from + len) ahead of the writes
 * through the mapping, without changing its size (fallocate(2),
 * FALLOC_FL_KEEP_SIZE): a page written there then needs no allocation in
 * its fault, which on a tmpfs is most of the fault's cost and the part
 * that threads faulting at once contend on. From one thread at a time,
 * while other threads write through the mapping or call
 * pe__features_map; pe__features_end gives back what lies past the end.
 * 0, or -1 with errno (EOPNOTSUPP: the file system cannot). */
int pe__features_reserve(pe_features_writer_t *w, uint64_t from, uint64_t len);

/* The end of the caller's rows: rows written in all, and where the output
 * ends (the file's offset is left there); failed_errno nonzero when a write
 * failed, so that closing with commit reports it. Before
 * pe_features_writer_close. */
void pe__features_end(pe_features_writer_t *w, uint64_t rows, uint64_t end_at,
                      int failed_errno);

#endif
