/* Whole files in and out: all-or-nothing writes and whole reads.
 *
 * Used for every output that is written in one piece (engine state, live
 * checkpoints, .npy arrays). Nothing here allocates on a write, so a
 * checkpoint writer can call it on a thread that must not allocate. */
#ifndef PE_FILE_H
#define PE_FILE_H

#include <stddef.h>

#include "pe/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes data[0, len) to path so that a reader (or a crash) sees either the
 * old file or the whole new one: written to PATH.tmp, fsynced, closed,
 * renamed over PATH, and the directory fsynced. A path that names something
 * other than a regular file or nothing (a device such as /dev/stdout, a
 * FIFO) is written in place instead, never replaced. Every failed write,
 * fsync, close or rename is PE_EIO with "cannot ... 'PATH': reason" in err;
 * a path longer than PATH_MAX is PE_EINVAL. The temporary file is removed
 * on failure. */
int pe_file_write_atomic(const char *path, const void *data, size_t len,
                         char *err, size_t err_cap);

/* Reads a whole file (or a pipe, "-" is not special) into a malloc'd buffer
 * the caller frees; *len gets its size. PE_ENOENT when there is no such
 * file, PE_EIO for any other failure, PE_ENOMEM; reason in err. */
int pe_file_read_all(const char *path, void **data, size_t *len, char *err,
                     size_t err_cap);

/* The engine's snapshot (pe_engine_snapshot) written with
 * pe_file_write_atomic: what --state-out writes. */
int pe_engine_save(const pe_engine_t *engine, const char *path, char *err,
                   size_t err_cap);

#ifdef __cplusplus
}
#endif
#endif
