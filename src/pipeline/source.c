/* Tick sources: a CSV file or stream fed to the parser (see pe/pipeline.h).
 *
 * A regular file is mapped and parsed in place, read_size bytes a feed,
 * which spares the copy into a read buffer; anything else (a pipe, a
 * terminal, a file that cannot be mapped) is read in read_size chunks. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pe/error.h"
#include "pe/pipeline.h"

#define PE__READ_SIZE_DEFAULT ((size_t)1 << 20)

struct pe_source {
  int fd;
  int owned; /* close fd at the end (not standard input) */
  const char *name;
  size_t read_size;
  const volatile sig_atomic_t *stop;
  pe_csv_t *csv;
  char *buf; /* read buffer, allocated when the input is not mapped */
  uint64_t bytes_total;
  uint64_t bytes_done;
  char errmsg[512];
};

int pe_source_open(const pe_source_options_t *o, pe_source_t **out, char *err,
                   size_t err_cap) {
  *out = NULL;
  pe_source_t *s = calloc(1, sizeof *s);
  if (s == NULL || pe_csv_create(&o->csv, &s->csv) != PE_OK) {
    free(s);
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  s->read_size = o->read_size ? o->read_size : PE__READ_SIZE_DEFAULT;
  s->stop = o->stop;
  if (strcmp(o->path, "-") == 0) {
    s->fd = 0;
    s->name = "<stdin>";
  } else {
    s->name = o->path;
    s->fd = open(o->path, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0) {
      int rc = errno == ENOENT ? PE_ENOENT : PE_EIO;
      snprintf(err, err_cap, "cannot read '%s': %s", o->path, strerror(errno));
      pe_csv_destroy(s->csv);
      free(s);
      return rc;
    }
    s->owned = 1;
  }
  struct stat st;
  if (fstat(s->fd, &st) == 0 && S_ISREG(st.st_mode)) {
    s->bytes_total = (uint64_t)st.st_size;
  }
  *out = s;
  return PE_OK;
}

/* The end of the input, or a stop: the last line without a newline, and a
 * header error's message. */
static int pe__source_done(pe_source_t *s, int rc,
                           const pe_csv_batch_handler_t *h) {
  if (rc == 0) {
    rc = pe_csv_finish_batch(s->csv, h);
  }
  if (rc == PE_EHEADER) {
    snprintf(s->errmsg, sizeof s->errmsg, "%s: %s", s->name,
             pe_csv_errmsg(s->csv));
  }
  return rc;
}

/* Parses a mapped regular file; -1 when it cannot be mapped. */
static int pe__source_mapped(pe_source_t *s, const pe_csv_batch_handler_t *h) {
  if (s->bytes_total == 0 || s->bytes_total > SIZE_MAX) {
    return -1;
  }
  size_t len = (size_t)s->bytes_total;
  void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, s->fd, 0);
  if (map == MAP_FAILED) {
    return -1;
  }
  posix_madvise(map, len, POSIX_MADV_SEQUENTIAL);
  const char *data = map;
  int rc = 0;
  for (size_t off = 0; off < len && rc == 0; off += s->read_size) {
    size_t n = len - off < s->read_size ? len - off : s->read_size;
    s->bytes_done += n;
    rc = pe_csv_feed_batch(s->csv, data + off, n, h);
  }
  rc = pe__source_done(s, rc, h);
  munmap(map, len);
  return rc;
}

int pe_source_run(pe_source_t *s, const pe_csv_batch_handler_t *h) {
  int mapped = pe__source_mapped(s, h);
  if (mapped != -1) {
    return mapped;
  }
  if (s->buf == NULL && (s->buf = malloc(s->read_size)) == NULL) {
    snprintf(s->errmsg, sizeof s->errmsg, "out of memory");
    return PE_ENOMEM;
  }
  for (;;) {
    ssize_t n = read(s->fd, s->buf, s->read_size);
    if (n < 0 && errno == EINTR) {
      if (s->stop != NULL && *s->stop) {
        return PE_EAGAIN;
      }
      continue;
    }
    if (n < 0) {
      snprintf(s->errmsg, sizeof s->errmsg, "cannot read '%s': %s", s->name,
               strerror(errno));
      return PE_EIO;
    }
    if (n == 0) {
      break;
    }
    s->bytes_done += (uint64_t)n;
    int rc = pe_csv_feed_batch(s->csv, s->buf, (size_t)n, h);
    if (rc != 0) {
      return pe__source_done(s, rc, h);
    }
  }
  return pe__source_done(s, 0, h);
}

const char *pe_source_name(const pe_source_t *s) { return s->name; }

uint64_t pe_source_bytes_done(const pe_source_t *s) { return s->bytes_done; }

uint64_t pe_source_bytes_total(const pe_source_t *s) { return s->bytes_total; }

const char *pe_source_errmsg(const pe_source_t *s) { return s->errmsg; }

void pe_source_close(pe_source_t *s) {
  if (s == NULL) {
    return;
  }
  if (s->owned) {
    close(s->fd);
  }
  free(s->buf);
  pe_csv_destroy(s->csv);
  free(s);
}
