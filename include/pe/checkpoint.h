/* Live checkpoints: what `pattern-engine live` needs to resume exactly where
 * it stopped, as one versioned, checksummed block.
 *
 * A checkpoint holds the id of the last stream entry processed, the engine
 * snapshot taken right after it (pe_engine_snapshot), the length of the
 * rejects file at that point, the stream names it belongs to and the live
 * command's running totals. This module only encodes and decodes the block
 * in memory; where it is stored (a file, a Redis key) is the caller's
 * business. docs/live.md describes the layout.
 *
 * Integers are stored little-endian whatever the machine; the embedded
 * engine snapshot is the engine's own format with its own checksum. */
#ifndef PE_CHECKPOINT_H
#define PE_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "pe/stream.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PE_CHECKPOINT_VERSION 1u
#define PE_CHECKPOINT_COUNTERS 32
#define PE_CHECKPOINT_NAME_MAX 255 /* longest stream name stored */

typedef struct pe_checkpoint {
  pe_stream_id_t last_id;  /* last entry processed (0-0: none yet) */
  uint64_t position;       /* entries the stream ever held up to last_id, as
                              the live command counts them (gap accounting) */
  uint64_t rejects_offset; /* bytes of the rejects file written for entries
                              up to last_id */
  int64_t created_ns;      /* wall clock when taken, ns since the epoch */
  uint64_t counter[PE_CHECKPOINT_COUNTERS]; /* the caller's running totals */
  char ticks_stream[PE_CHECKPOINT_NAME_MAX + 1];
  char signals_stream[PE_CHECKPOINT_NAME_MAX + 1];
  const void *snapshot; /* engine snapshot bytes: borrowed by encode; after
                           decode they point into the decoded buffer */
  size_t snapshot_len;
} pe_checkpoint_t;

/* Bytes the encoded checkpoint takes. */
size_t pe_checkpoint_size(const pe_checkpoint_t *ckpt);

/* Encodes into buf (cap bytes); *len gets the size. PE_EFULL when cap is too
 * small, PE_EINVAL for a stream name over PE_CHECKPOINT_NAME_MAX. */
int pe_checkpoint_encode(const pe_checkpoint_t *ckpt, void *buf, size_t cap,
                         size_t *len);

/* Decodes and checks a block: PE_ECORRUPT (not a checkpoint, truncated,
 * trailing bytes, checksum mismatch) or PE_EVERSION (another layout), with a
 * one-line reason in err. Nothing is filled in on failure. The engine
 * snapshot is not checked here: pe_engine_restore does that. */
int pe_checkpoint_decode(const void *buf, size_t len, pe_checkpoint_t *ckpt,
                         char *err, size_t err_cap);

#ifdef __cplusplus
}
#endif
#endif
