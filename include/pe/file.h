/* Whole files in and out: all-or-nothing writes and whole reads.
 *
 * Used for every output that is written in one piece (engine state, live
 * checkpoints, .npy arrays). Nothing here allocates on a write, so a
 * checkpoint writer can call it on a thread that must not allocate. */
#ifndef PE_FILE_H
#define PE_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pe/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How every output path is treated (pe_file_write_atomic, pe_out_open):
 *   nothing there, or a regular file: written to TARGET.tmp, fsynced,
 *     renamed over TARGET, the directory fsynced: a reader (or a crash)
 *     sees the old file or the whole new one;
 *   a symbolic link: followed (up to 32 links, relative ones from the
 *     link's folder) and its final target written as above, so the link
 *     stays a link; a dangling link is refused;
 *   a device (/dev/null, a terminal) or a socket, or anything reached
 *     through a /proc link that no path resolves (/dev/stdout on a pipe):
 *     written in place, never replaced;
 *   a FIFO: written in place when a reader has it open, else refused at
 *     once ("no reader"), never a wait for one;
 *   a directory: refused.
 * A temporary file is opened with O_NOFOLLOW and removed on failure. */

/* Writes data[0, len) to path as the list above says. Every failed write,
 * fsync, close or rename is PE_EIO with "cannot ... 'PATH': reason" in err;
 * a path longer than PATH_MAX is PE_EINVAL. */
int pe_file_write_atomic(const char *path, const void *data, size_t len,
                         char *err, size_t err_cap);

/* Reads a whole file (or a pipe, "-" is not special) into a malloc'd buffer
 * the caller frees; *len gets its size. PE_ENOENT when there is no such
 * file, PE_EIO for any other failure, PE_ENOMEM; reason in err. */
int pe_file_read_all(const char *path, void **data, size_t *len, char *err,
                     size_t err_cap);

/* ---- streamed outputs ----------------------------------------------------
 * A file written a piece at a time (signals, feature rows, rejected rows)
 * with the treatment above: a regular file appears, whole, at
 * pe_out_close(o, 1); pe_out_close(o, 0) leaves what the path held before.
 * "-" is standard output, written in place and never closed. */
typedef struct pe_out pe_out_t;

/* PE_EIO (cannot create, a dangling link, a directory, a FIFO without a
 * reader), PE_EINVAL (path too long), PE_ENOMEM; reason in err. */
int pe_out_open(const char *path, pe_out_t **out, char *err, size_t err_cap);

/* The stream to write to; valid until pe_out_close. */
FILE *pe_out_file(pe_out_t *o);

/* With commit: flushes, fsyncs and renames a regular file into place
 * (PE_EIO with the reason in err when a write failed earlier or any step
 * fails, and then nothing is replaced); without: discards a temporary file.
 * Frees; NULL is a no-op. */
int pe_out_close(pe_out_t *o, int commit, char *err, size_t err_cap);

/* ---- inputs and outputs that are one file -------------------------------
 * Identity of a file, to refuse an output that would overwrite an input
 * (replay --ticks t.csv --out t.csv) before anything is truncated. */
typedef struct pe_file_id {
  uint64_t dev;
  uint64_t ino;
  int exists;  /* 0: nothing there (dev and ino are 0) */
  int regular; /* 1: a regular file */
} pe_file_id_t;

/* The identity of what path names (links followed), or of an open fd. */
void pe_file_id_of_path(const char *path, pe_file_id_t *id);
void pe_file_id_of_fd(int fd, pe_file_id_t *id);

/* 1 when both name one regular file. Devices and FIFOs never match: reading
 * and writing /dev/null or a terminal at once is harmless. */
int pe_file_id_same(const pe_file_id_t *a, const pe_file_id_t *b);

/* A 64-bit digest of a file's bytes, continuing from seed (0 to start),
 * read in 64 KiB pieces: what a snapshot records of a model file
 * (pe_engine_config_t.model_digest). It tells files apart, it does not
 * authenticate them. PE_ENOENT, PE_EIO; reason in err. */
int pe_file_digest(const char *path, uint64_t seed, uint64_t *digest, char *err,
                   size_t err_cap);

/* The engine's snapshot (pe_engine_snapshot) written with
 * pe_file_write_atomic: what --state-out writes. */
int pe_engine_save(const pe_engine_t *engine, const char *path, char *err,
                   size_t err_cap);

#ifdef __cplusplus
}
#endif
#endif
