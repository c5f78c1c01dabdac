/* Checkpoint files of the live service (internal to src/live/).
 *
 * A checkpoint file is replaced atomically (pe_file_write_atomic, pe/file.h:
 * written to PATH.tmp, fsynced, renamed over PATH, and the directory
 * fsynced), so a crash at any point leaves either the old or the new
 * checkpoint, never a mix. The writer runs that on its own thread, so the
 * worker does not wait for the disk; the worker only copies the encoded
 * checkpoint into the writer's buffer. Reading one back is
 * pe_file_read_all. */
#ifndef PE_LIVE_STORE_H
#define PE_LIVE_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct pe_ckpt_writer pe_ckpt_writer_t;

int pe_ckpt_writer_create(const char *path, pe_ckpt_writer_t **out);

/* Waits for a write in flight, stops the thread, frees. NULL: no-op. */
void pe_ckpt_writer_destroy(pe_ckpt_writer_t *w);

/* 1 while a write is in flight or its result has not been collected. */
int pe_ckpt_writer_busy(pe_ckpt_writer_t *w);

/* Copies data and writes it in the background; first fsyncs sync_fd when it
 * is >= 0 (the rejects file, so the checkpoint never names bytes that are not
 * on disk). tag comes back with the result. PE_EAGAIN when busy, PE_ENOMEM. */
int pe_ckpt_writer_submit(pe_ckpt_writer_t *w, const void *data, size_t len,
                          int sync_fd, int64_t tag);

/* Collects a finished write: returns 1 and fills *rc (PE_OK or PE_EIO, with
 * the reason in err) and *tag; 0 when none is finished. wait: block until
 * the write in flight, if any, is done. */
int pe_ckpt_writer_collect(pe_ckpt_writer_t *w, int wait, int *rc, int64_t *tag,
                           char *err, size_t err_cap);

#endif
